#include <p2p/address_book.hpp>

#include <boost/asio/ip/address.hpp>
#include <boost/json.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <limits>
#include <stdexcept>
#include <utility>

#include "detail/bar_list.hpp"
#include "detail/book_time.hpp"
#include "detail/json_fields.hpp"
#include "detail/text.hpp"

namespace p2p {

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using time_point = address_book::time_point;
using duration = address_book::duration;
using std::chrono::milliseconds;

/// Random probes per kind (worked / never worked) in `take` before the fallback scan.
constexpr std::size_t probe_tries = 64;
/// Most hosts the fallback scan of `take` looks at.
constexpr std::size_t scan_limit = 1024;
/// Failed attempts are counted up to this (the most `load` accepts).
constexpr std::uint32_t max_attempts = 1'000'000;
/// The "format" member of a saved book.
constexpr std::string_view format_name = "p2p-manager address book";
/// The newest format version this library reads and the one it writes.
constexpr std::int64_t format_version = 1;

/// 0.66^a for a = 0..8: Bitcoin Core's chance of taking a host with `a` failed attempts.
constexpr std::array<double, 9> chance = [] {
  std::array<double, 9> c{};
  double p = 1;
  for (auto& x : c) x = p, p *= 0.66;
  return c;
}();

/// `t` as Unix milliseconds, `now` being `wall_ms`; zero (never) is null.
json::value unix_ms(time_point t, time_point now, std::int64_t wall_ms) {
  if (t == time_point{}) return nullptr;
  return detail::to_unix_ms(t, now, wall_ms);
}

/// `name` as an IP address, if it spells one. Only hex digits, '.' and ':' (or digits and
/// '.' alone) are tried: Asio's parser stops at a NUL and looks up "%scope" names, so
/// "1.2.3.4\0x" or "fe80::1%eth0" are keyed as names, and plain DNS names skip the parse.
std::optional<asio::ip::address> parse_address(std::string_view name) {
  const bool colon = name.find(':') != std::string_view::npos;
  const auto ok = [colon](char c) {
    const char l = detail::to_lower(c);
    return (c >= '0' && c <= '9') || c == '.' || (colon && (c == ':' || (l >= 'a' && l <= 'f')));
  };
  constexpr std::size_t longest = 45;  // "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
  if (name.empty() || name.size() > longest || !std::all_of(name.begin(), name.end(), ok))
    return std::nullopt;
  std::array<char, longest + 1> text{};  // NUL-terminated, without a heap string
  std::copy(name.begin(), name.end(), text.begin());
  boost::system::error_code ec;
  if (!colon) {
    const auto v4 = asio::ip::make_address_v4(text.data(), ec);
    return ec ? std::nullopt : std::optional<asio::ip::address>(v4);
  }
  const auto v6 = asio::ip::make_address_v6(text.data(), ec);
  if (ec) return std::nullopt;
  if (v6.is_v4_mapped())
    return asio::ip::address(asio::ip::make_address_v4(asio::ip::v4_mapped, v6));
  return asio::ip::address(v6);
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = detail::to_lower(c);
  return out;
}

/// The netgroup of a key (host_key's spelling).
std::string group_of_key(std::string_view key) {
  const auto a = parse_address(key);
  if (!a) return std::string(key);
  if (a->is_v4()) {
    const auto b = a->to_v4().to_bytes();
    return fmt::format("{}.{}.0.0/16", b[0], b[1]);
  }
  const auto b = a->to_v6().to_bytes();
  return fmt::format("{:02x}{:02x}:{:02x}{:02x}::/32", b[0], b[1], b[2], b[3]);
}

std::optional<host_source> source_named(std::string_view s) noexcept {
  for (auto src : {host_source::seed, host_source::pool, host_source::active})
    if (to_string(src) == s) return src;
  return std::nullopt;
}

/// Throws unless `h` is what parse_host gives back for its name and port: the book saves
/// only hosts that it can load again.
void check_host(const host& h) {
  if (h.port == 0)
    throw std::invalid_argument(
        fmt::format("p2p: address book: host '{}' has port 0", detail::escape(h.name)));
  const auto r = parse_host(h.name, h.port);
  if (!r) throw std::invalid_argument(r.error().message);
  if (r->name != h.name || r->port != h.port)
    throw std::invalid_argument(fmt::format(
        "p2p: address book: host name '{}' is not a bare name or address", detail::escape(h.name)));
}

/// A host's key: (host_key(name), port).
struct host_id {
  std::string key;
  std::uint16_t port = 0;
  friend bool operator==(const host_id&, const host_id&) = default;
};

// Not noexcept on purpose: libstdc++ then caches each node's hash, where it would otherwise
// hash the key of every node it walks past in a bucket (18 % of a benchmark's time).
struct host_id_hash {
  std::size_t operator()(const host_id& id) const {
    return std::hash<std::string_view>{}(id.key) ^ (id.port * 0x9e3779b97f4a7c15ULL);
  }
};

host_id id_of(const host& h) {
  return {address_book::host_key(h.name), h.port};
}

bool has_worked(const host_record& r) noexcept {
  return r.last_success != time_point{};
}

/// A known host. The indexes below point at entries (nodes of an unordered_map never move)
/// and order them by fields that change only while the entry is out of them.
struct entry {
  host_record rec;
  std::uint64_t seq = 0;        // order learned: lower is older
  std::size_t pos = 0;          // index in its kind's vector
  const host_id* id = nullptr;  // its key in the map
};

/// A position in an ordered index: the sort key is copied beside the pointer, so that a
/// search compares what the index's own nodes hold instead of reaching into each entry it
/// passes (a cache miss apiece in a large book).
struct index_key {
  std::int64_t first;  // the index's own order
  std::uint64_t seq;   // then the order learned
  entry* e;

  friend bool operator<(const index_key& a, const index_key& b) noexcept {
    return a.first != b.first ? a.first < b.first : a.seq < b.seq;
  }
};

/// Worst first: most failed attempts, then oldest learned.
index_key rank_of(entry& e) noexcept {
  return {-static_cast<std::int64_t>(e.rec.attempts), e.seq, &e};
}

/// Soonest `retry_at` first.
index_key retry_of(entry& e) noexcept {
  return {e.rec.retry_at.time_since_epoch().count(), e.seq, &e};
}

}  // namespace

std::string_view to_string(host_source s) noexcept {
  switch (s) {
    case host_source::seed:
      return "seed";
    case host_source::pool:
      return "pool";
    case host_source::active:
      return "active";
  }
  return "unknown";
}

void book_options::validate() const {
  if (max_hosts == 0) throw std::invalid_argument("p2p: book.max_hosts is 0; it must be positive");
  if (max_bars == 0) throw std::invalid_argument("p2p: book.max_bars is 0; it must be positive");
  if (backoff_initial.count() <= 0)
    throw std::invalid_argument(
        fmt::format("p2p: book.backoff_initial ({} ms) must be positive", backoff_initial.count()));
  if (backoff_max < backoff_initial)
    throw std::invalid_argument(
        fmt::format("p2p: book.backoff_max ({} ms) is less than book.backoff_initial ({} ms)",
                    backoff_max.count(), backoff_initial.count()));
}

struct address_book::state {
  state(book_options o, std::uint64_t seed) : opts(o), rng(seed), bars(o.max_bars) {}

  book_options opts;
  std::mt19937_64 rng;
  std::unordered_map<host_id, entry, host_id_hash> hosts;
  // Hosts that worked and hosts that never did, for uniform picks (swap-remove).
  std::vector<entry*> worked, fresh;
  // The hosts that never worked, the one to replace first.
  std::set<index_key> eviction;
  // Every host, soonest retry first: the fallback scan of `take`.
  std::set<index_key> by_retry;
  detail::bar_list bars;
  std::uint64_t next_seq = 0;

  std::vector<entry*>& kind_of(const entry& e) { return has_worked(e.rec) ? worked : fresh; }

  void index(entry& e) {
    auto& kind = kind_of(e);
    e.pos = kind.size();
    kind.push_back(&e);
    if (!has_worked(e.rec)) eviction.insert(rank_of(e));
    by_retry.insert(retry_of(e));
  }

  void unindex(entry& e) {
    auto& kind = kind_of(e);
    kind[e.pos] = kind.back();
    kind[e.pos]->pos = e.pos;
    kind.pop_back();
    if (!has_worked(e.rec)) eviction.erase(rank_of(e));
    by_retry.erase(retry_of(e));
  }

  entry* find(const host_id& id) {
    const auto it = hosts.find(id);
    return it == hosts.end() ? nullptr : &it->second;
  }

  /// Takes `e` out of the book.
  host_record erase(entry& e) {
    unindex(e);
    host_record r = std::move(e.rec);
    hosts.erase(*e.id);  // erase(key) walks the bucket once; libstdc++ allows the node's key
    return r;
  }

  /// Learns `rec` under the capacity rule; false if it was dropped, or if the host is known
  /// and `replace` is false. With `replace`, a known host takes `rec` as its history and
  /// counts as learned now. One hash lookup either way.
  bool insert(host_id id, host_record rec, bool replace = false) {
    auto [it, added] = hosts.try_emplace(std::move(id));
    entry& e = it->second;
    if (!added) {
      if (!replace) return false;
      unindex(e);
      e.rec = std::move(rec);
      e.seq = next_seq++;
      index(e);
      return true;
    }
    e.rec = std::move(rec);
    e.seq = next_seq++;
    e.id = &it->first;
    if (hosts.size() > opts.max_hosts) {
      // The newcomer, learned last, is the worst itself only with more failed attempts; a
      // book full of hosts that worked keeps them.
      if (eviction.empty() ||
          (!has_worked(e.rec) && e.rec.attempts > eviction.begin()->e->rec.attempts)) {
        hosts.erase(it);
        return false;
      }
      erase(*eviction.begin()->e);
    }
    index(e);
    return true;
  }

  /// Not barred, not backing off, not in a busy netgroup, and not tried after `recent`.
  bool eligible(const entry& e, time_point now, const std::set<std::string>& busy,
                time_point recent) const {
    if (e.rec.retry_at > now || e.rec.last_try > recent || bars.barred(e.id->key, now))
      return false;
    return !opts.spread_netgroups || busy.empty() || !busy.contains(group_of_key(e.id->key));
  }

  /// A random eligible host of `kind`, a host with `a` failed attempts accepted with chance
  /// 0.66^min(a, 8). At most probe_tries probes: if every eligible host probed was refused,
  /// the first of them is taken (so a kind of hosts that all failed often is not skipped).
  entry* probe(const std::vector<entry*>& kind, time_point now, const std::set<std::string>& busy,
               time_point recent) {
    if (kind.empty()) return nullptr;
    std::uniform_int_distribution<std::size_t> pick(0, kind.size() - 1);
    std::uniform_real_distribution<double> draw(0.0, 1.0);
    entry* refused = nullptr;
    for (std::size_t i = 0; i < probe_tries; ++i) {
      entry* e = kind[pick(rng)];
      if (!eligible(*e, now, busy, recent)) continue;
      const auto a = std::min<std::uint32_t>(e->rec.attempts, chance.size() - 1);
      if (a == 0 || draw(rng) < chance[a]) return e;
      if (!refused) refused = e;
    }
    return refused;
  }

  /// The first eligible host in retry order, looking at no more than scan_limit hosts due
  /// for a retry. Probing misses eligible hosts only when they are few among many: most
  /// often because the others back off, which this order skips entirely. It can still miss
  /// one behind more than scan_limit due hosts that are all barred or in busy netgroups.
  entry* scan(time_point now, const std::set<std::string>& busy, time_point recent) const {
    std::size_t looked = 0;
    const auto due = now.time_since_epoch().count();
    for (auto it = by_retry.begin();
         it != by_retry.end() && looked < scan_limit && it->first <= due; ++it, ++looked)
      if (eligible(*it->e, now, busy, recent)) return it->e;
    return nullptr;
  }

  /// The entries in the order they were learned (what `save` writes, and `load` reads back
  /// in that order, so that the oldest stay the oldest).
  std::vector<const entry*> in_learned_order() const {
    std::vector<const entry*> out;
    out.reserve(hosts.size());
    for (const auto& [id, e] : hosts) out.push_back(&e);
    std::sort(out.begin(), out.end(), [](auto* a, auto* b) { return a->seq < b->seq; });
    return out;
  }

  std::optional<std::string> read(std::string_view text, time_point now, std::int64_t wall_ms);
  std::optional<std::string> read_host(const detail::json_fields& f, time_point now,
                                       std::int64_t wall_ms);
  std::optional<std::string> read_bar(const detail::json_fields& f, time_point now,
                                      std::int64_t wall_ms);
};

address_book::address_book(book_options opts, std::uint64_t seed) {
  opts.validate();
  s_ = std::make_unique<state>(opts, seed);
}

address_book::address_book(address_book&&) noexcept = default;
address_book& address_book::operator=(address_book&&) noexcept = default;
address_book::~address_book() = default;

const book_options& address_book::options() const noexcept {
  return s_->opts;
}

bool address_book::add(const host& h, host_source source, time_point) {
  check_host(h);
  host_record r;
  r.host = h;
  r.source = source;
  return s_->insert(id_of(h), std::move(r));
}

bool address_book::remove(const host& h) {
  entry* e = s_->find(id_of(h));
  if (!e) return false;
  s_->erase(*e);
  return true;
}

bool address_book::contains(const host& h) const {
  return find(h) != nullptr;
}

const host_record* address_book::find(const host& h) const {
  const entry* e = s_->find(id_of(h));
  return e ? &e->rec : nullptr;
}

std::size_t address_book::size() const noexcept {
  return s_->hosts.size();
}

std::vector<host> address_book::hosts() const {
  std::vector<host> out;
  out.reserve(s_->hosts.size());
  for (const auto& [id, e] : s_->hosts) out.push_back(e.rec.host);
  return out;
}

std::vector<host_record> address_book::records() const {
  std::vector<host_record> out;
  out.reserve(s_->hosts.size());
  for (const auto& [id, e] : s_->hosts) out.push_back(e.rec);
  return out;
}

std::optional<host_record> address_book::take(time_point now,
                                              const std::set<std::string>& busy_groups) {
  state& s = *s_;
  // Half of the picks start with the hosts that worked, when there are both kinds.
  const std::vector<entry*>* first = &s.worked;
  const std::vector<entry*>* second = &s.fresh;
  if (s.worked.empty() || (!s.fresh.empty() && (s.rng() & 1))) std::swap(first, second);
  // Hosts tried within the last backoff_initial come last: a host whose connection just
  // ended is not dialled again while another is eligible.
  const time_point recent =
      detail::plus(now, -std::chrono::duration_cast<duration>(s.opts.backoff_initial));
  entry* e = nullptr;
  for (const time_point r : {recent, time_point::max()}) {
    e = s.probe(*first, now, busy_groups, r);
    if (!e) e = s.probe(*second, now, busy_groups, r);
    if (!e) e = s.scan(now, busy_groups, r);
    if (e) break;
  }
  if (!e) return std::nullopt;
  host_record r = s.erase(*e);
  r.last_try = now;
  return r;
}

std::optional<host_record> address_book::extract(const host& h, time_point now) {
  entry* e = s_->find(id_of(h));
  if (!e) return std::nullopt;
  host_record r = s_->erase(*e);
  r.last_try = now;
  return r;
}

void address_book::put_back(host_record r, bool worked, time_point now) {
  check_host(r.host);
  if (worked) {
    r.attempts = 0;
    r.last_success = now;
    r.retry_at = {};
  } else {
    r.attempts = std::min(r.attempts, max_attempts - 1) + 1;
    const double factor = std::uniform_real_distribution<double>(0.5, 1.5)(s_->rng);
    const double ns = static_cast<double>(backoff(r.attempts).count()) * factor;
    // The cast is defined only below int64's limit (a huge backoff_max can reach it).
    const auto wait = ns < 9.2e18 ? duration(static_cast<duration::rep>(ns)) : duration::max();
    r.retry_at = detail::plus(now, wait);
  }
  restore(std::move(r), now);
}

void address_book::restore(host_record r, time_point) {
  check_host(r.host);
  // Learned again while it was taken: the history that comes back is the newer one.
  host_id id = id_of(r.host);
  s_->insert(std::move(id), std::move(r), true);
}

address_book::duration address_book::backoff(std::uint32_t attempts) const noexcept {
  if (attempts == 0) return duration::zero();
  const auto initial = s_->opts.backoff_initial.count();
  const auto cap = s_->opts.backoff_max.count();
  const auto shift = attempts - 1;
  // initial << shift, unless that passes the cap (tested without overflowing).
  const auto ms = shift >= 62 || initial > (cap >> shift) ? cap : std::min(initial << shift, cap);
  constexpr auto max_ms = std::chrono::duration_cast<milliseconds>(duration::max()).count();
  return ms >= max_ms ? duration::max() : duration(milliseconds(ms));
}

void address_book::bar(std::string_view name, duration d, time_point now) {
  if (name.empty()) throw std::invalid_argument("p2p: address book: bar() host name is empty");
  s_->bars.update(host_key(name), now,
                  [&](time_point end) { return detail::plus(std::max(end, now), d); });
}

address_book::duration address_book::barred_for(std::string_view name, time_point now) const {
  return s_->bars.left(host_key(name), now);
}

std::size_t address_book::barred_count(time_point now) {
  s_->bars.forget_ended(now);
  return s_->bars.size();
}

std::string address_book::save(time_point now, std::chrono::system_clock::time_point wall_now,
                               std::span<const host_record> taken) const {
  const std::int64_t wall_ms = detail::unix_ms_of(wall_now);
  json::monotonic_resource mr;
  json::object root(&mr);
  root["format"] = format_name;
  root["version"] = format_version;
  root["saved_at"] = wall_ms;
  json::array& hosts = root["hosts"].emplace_array();
  hosts.reserve(s_->hosts.size() + taken.size());
  std::vector<const host_record*> records;
  records.reserve(s_->hosts.size() + taken.size());
  for (const entry* e : s_->in_learned_order()) records.push_back(&e->rec);
  for (const host_record& r : taken) records.push_back(&r);
  for (const host_record* rp : records) {
    const host_record& r = *rp;
    json::object& o = hosts.emplace_back(json::object_kind).get_object();
    o.reserve(6);
    o["host"] = r.host.to_string();
    o["source"] = to_string(r.source);
    o["attempts"] = r.attempts;
    o["last_try"] = unix_ms(r.last_try, now, wall_ms);
    o["last_success"] = unix_ms(r.last_success, now, wall_ms);
    o["retry_at"] = unix_ms(r.retry_at, now, wall_ms);
  }
  json::array& bars = root["bars"].emplace_array();
  s_->bars.for_each_running(now, [&](const std::string& key, time_point until) {
    json::object& o = bars.emplace_back(json::object_kind).get_object();
    o["host"] = key;
    o["until"] = unix_ms(until, now, wall_ms);
  });
  return json::serialize(root);
}

std::optional<std::string> address_book::state::read_host(const detail::json_fields& f,
                                                          time_point now, std::int64_t wall_ms) {
  const auto text = f.string("host");
  if (!text) return text.error();
  auto h = parse_host(**text, 0);
  if (!h) {
    const std::string why = h.error().message;  // error() returns a copy
    return f.error("host", std::string_view(why).substr(why.starts_with("p2p: ") ? 5 : 0));
  }
  const auto source_text = f.string("source");
  if (!source_text) return source_text.error();
  const auto source = source_named(**source_text);
  if (!source)
    return f.error("source",
                   fmt::format("'{}' is not seed, pool or active", detail::escape(**source_text)));
  const auto attempts = f.integer("attempts", 0, max_attempts);
  if (!attempts) return attempts.error();
  host_record r;
  r.source = *source;
  r.attempts = static_cast<std::uint32_t>(*attempts);
  for (auto [field, t] :
       {std::pair{"last_try", &r.last_try}, std::pair{"last_success", &r.last_success},
        std::pair{"retry_at", &r.retry_at}}) {
    const auto ms = f.integer_or_null(field);
    if (!ms) return ms.error();
    if (*ms) *t = detail::from_unix_ms(**ms, now, wall_ms);
  }
  r.host = std::move(*h);
  // A host listed twice (never written by `save`) keeps its first entry, as `add` would.
  host_id id = id_of(r.host);
  insert(std::move(id), std::move(r));
  return std::nullopt;
}

std::optional<std::string> address_book::state::read_bar(const detail::json_fields& f,
                                                         time_point now, std::int64_t wall_ms) {
  const auto name = f.string("host");
  if (!name) return name.error();
  if ((*name)->empty()) return f.error("host", "empty");
  const auto until = f.integer("until", std::numeric_limits<std::int64_t>::min(),
                               std::numeric_limits<std::int64_t>::max());
  if (!until) return until.error();
  // Ended bars are dropped by update(); a key listed twice keeps its latest end.
  const time_point end = detail::from_unix_ms(*until, now, wall_ms);
  bars.update(address_book::host_key(**name), now, [&](time_point e) { return std::max(e, end); });
  return std::nullopt;
}

std::optional<std::string> address_book::state::read(std::string_view text, time_point now,
                                                     std::int64_t wall_ms) {
  json::monotonic_resource mr;
  json::parse_options po;
  po.allow_invalid_utf8 = true;  // bars may hold any name given to bar()
  json::parser parser({}, po);
  parser.reset(&mr);  // the value in `mr`; the parser's own stack on the heap
  boost::system::error_code ec;
  const std::size_t used = parser.write(text.data(), text.size(), ec);
  if (ec)
    return fmt::format("p2p: address book: not JSON: {} at byte {} of {}", ec.message(), used,
                       text.size());
  const json::value doc = parser.release();
  const auto* root = doc.if_object();
  if (!root)
    return fmt::format("p2p: address book: expected an object at the top level, got {}",
                       detail::json_fields::kind_name(doc));
  const detail::json_fields f(*root);
  const auto format = f.string("format");
  if (!format) return format.error();
  if (**format != format_name)
    return f.error("format",
                   fmt::format("'{}' is not '{}'", detail::escape(**format), format_name));
  // The version before the rest: a newer version may have changed any other field.
  const auto version = f.integer("version", 1, std::numeric_limits<std::int64_t>::max());
  if (!version) return version.error();
  if (*version > format_version)
    return f.error("version", fmt::format("{} is newer than this library reads (version {})",
                                          *version, format_version));
  const auto saved_at = f.integer("saved_at", std::numeric_limits<std::int64_t>::min(),
                                  std::numeric_limits<std::int64_t>::max());
  if (!saved_at) return saved_at.error();
  // Members this version does not know are ignored; every one it reads is checked.
  const auto hosts_array = f.array("hosts");
  if (!hosts_array) return hosts_array.error();
  const auto bars_array = f.array("bars");
  if (!bars_array) return bars_array.error();

  for (std::size_t i = 0; i < (*hosts_array)->size(); ++i) {
    const auto item = detail::json_fields::element(**hosts_array, "hosts", i);
    if (!item) return item.error();
    if (auto err = read_host(*item, now, wall_ms)) return err;
  }
  for (std::size_t i = 0; i < (*bars_array)->size(); ++i) {
    const auto item = detail::json_fields::element(**bars_array, "bars", i);
    if (!item) return item.error();
    if (auto err = read_bar(*item, now, wall_ms)) return err;
  }
  return std::nullopt;
}

boost::system::result<address_book, std::string> address_book::load(
    std::string_view text, book_options opts, time_point now,
    std::chrono::system_clock::time_point wall_now, std::uint64_t seed) {
  address_book book(opts, seed);
  const std::int64_t wall_ms = detail::unix_ms_of(wall_now);
  if (auto err = book.s_->read(text, now, wall_ms)) return std::move(*err);
  return book;
}

void address_book::merge(const address_book& other, time_point now) {
  if (&other == this) return;
  state& s = *s_;
  // A host known to both takes their history and counts as learned now.
  for (const entry* theirs : other.s_->in_learned_order()) s.insert(*theirs->id, theirs->rec, true);
  // A bar known to both ends at the later of its two ends (merging twice adds nothing).
  other.s_->bars.for_each_running(now, [&](const std::string& key, time_point until) {
    s.bars.update(key, now, [&](time_point end) { return std::max(end, until); });
  });
}

std::string address_book::host_key(std::string_view name) {
  const auto a = parse_address(name);
  if (!a) return lower(name);
  // inet_pton reads IPv4 only as four decimal numbers without leading zeros: the text
  // to_string would print. Keeping it saves that work on every bar and lookup.
  if (a->is_v4() && name.find(':') == std::string_view::npos) return std::string(name);
  return a->to_string();
}

std::string address_book::netgroup_of(std::string_view name) {
  return group_of_key(host_key(name));
}

}  // namespace p2p
