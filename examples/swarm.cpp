// swarm: many peer managers on one machine that find each other through address gossip,
// stay connected through churn, and lose no answer.
//
//   swarm [--nodes N] [--seconds S] [--churn F] [--interval I] [--quiet-seconds Q]
//         [--json FILE] [--chart FILE.png] [--threads T] [--port P] [--min-peers M]
//         [--max-peers X] [--rate R] [--answer-timeout A] [--cache-interval C]
//         [--cache-dir DIR]
//
// Node i is a p2p::peer_manager listening on 127.(1 + i % 250).(i / 250).1:P, so nodes fall
// in distinct /16 netgroups. Nodes 0..2 are the seeds: every other node is launched with
// them and nothing else. The application protocol, written with the public API only:
//   hello    "ADDR:PORT GEN", sent to every peer when it is ready: the sender's listen
//            address (an inbound peer's remote port is ephemeral) and its run number.
//   getaddr  sent to every peer after the hello; answered with
//   addr     "ADDR:PORT,ADDR:PORT,...": up to 16 addresses the node knows to work.
//            Learned addresses go to add_pool.
//   knock    answered with `answer` and the same payload.
// Every I seconds until S, a fraction F of the nodes stop, half with `co_await shutdown()`,
// half by destroying the manager (no goodbye); they come back at the next tick on the same
// address with the address book they saved (manager_options::use_cache). Throughout, R
// knock rounds a second go from a random live node to a random peer of it, and every
// answer that did not come although both nodes stayed up is counted as lost. Then Q quiet
// seconds without churn. Every second the connection graph is sampled.
//
// Prints one line per second and a summary; writes the figures as JSON (--json) and a
// chart with gnuplot (--chart; the .gp script and data files are written next to it).
// Exit status: 0 when it ran to the end, 1 on failure, 2 for bad arguments.

#include <p2p/p2p.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include <sys/resource.h>
#include <unistd.h>

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;
using peer_ptr = std::shared_ptr<p2p::peer>;

constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

/// Nodes 0 .. seed_count - 1 are the seeds.
constexpr int seed_count = 3;

/// Addresses in one `addr` answer.
constexpr std::size_t addr_entries = 50;

/// The nodes that said hello last, which a node keeps to pass on in its `addr` answers.
constexpr std::size_t heard_size = 256;

/// A node that has just started is "joining", not yet part of the graph, until a peer said
/// hello or this much time passed; then, with no peer, it counts as a component of its own.
constexpr auto join_grace = 2s;

/// Connections a seed takes at once: every node dials the seeds first, and leaves them as
/// soon as their `addr` answer came.
constexpr std::size_t seed_max_peers = 1024;

constexpr std::string_view usage_text =
    "usage: swarm [--nodes N] [--seconds S] [--churn F] [--interval I] [--quiet-seconds Q]\n"
    "             [--json FILE] [--chart FILE.png] [--threads T] [--port P] [--min-peers M]\n"
    "             [--max-peers X] [--rate R] [--answer-timeout A] [--cache-interval C]\n"
    "             [--cache-dir DIR]\n";

/// Prints a line and flushes, so a parent reading our pipe sees it at once.
template <class... Args>
void say(fmt::format_string<Args...> f, Args&&... args) {
  fmt::print(f, std::forward<Args>(args)...);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---- arguments -------------------------------------------------------------------------

struct config {
  int nodes = 1000;
  seconds churn_for{60};
  double churn = 0.1;
  seconds interval{10};
  seconds quiet{30};
  std::string json_path;
  std::string chart_path;
  int threads = 2;
  std::uint16_t port = 28444;
  int min_peers = 8;
  int max_peers = 32;
  int rate = 100;
  seconds answer_timeout{5};
  seconds cache_interval{2};
  std::string cache_dir;

  seconds total() const { return churn_for + quiet; }
};

template <class T>
T parse_number(std::string_view option, std::string_view text, T lo, T hi) {
  T v{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || !(v >= lo) ||
      !(v <= hi))
    throw usage_error(fmt::format("{} '{}' is not a number in {}..{}", option, text, lo, hi));
  return v;
}

config parse_args(int argc, char** argv) {
  config c;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value = [&]() -> std::string_view {
      if (i + 1 >= argc) throw usage_error(fmt::format("option {} needs a value", arg));
      return argv[++i];
    };
    auto secs = [&](int lo, int hi) { return seconds(parse_number<int>(arg, value(), lo, hi)); };
    if (arg == "--nodes")
      c.nodes = parse_number<int>(arg, value(), seed_count + 1, 250 * 256);
    else if (arg == "--seconds")
      c.churn_for = secs(1, 86400);
    else if (arg == "--churn")
      c.churn = parse_number<double>(arg, value(), 0.0, 0.5);
    else if (arg == "--interval")
      c.interval = secs(1, 86400);
    else if (arg == "--quiet-seconds")
      c.quiet = secs(0, 86400);
    else if (arg == "--json")
      c.json_path = value();
    else if (arg == "--chart")
      c.chart_path = value();
    else if (arg == "--threads")
      c.threads = parse_number<int>(arg, value(), 1, 256);
    else if (arg == "--port")
      c.port = parse_number<std::uint16_t>(arg, value(), 1, 65535);
    else if (arg == "--min-peers")
      c.min_peers = parse_number<int>(arg, value(), 1, 1000);
    else if (arg == "--max-peers")
      c.max_peers = parse_number<int>(arg, value(), 1, 1000);
    else if (arg == "--rate")
      c.rate = parse_number<int>(arg, value(), 0, 100000);
    else if (arg == "--answer-timeout")
      c.answer_timeout = secs(1, 600);
    else if (arg == "--cache-interval")
      c.cache_interval = secs(1, 3600);
    else if (arg == "--cache-dir")
      c.cache_dir = value();
    else
      throw usage_error(fmt::format("unknown argument '{}'", arg));
  }
  if (c.min_peers > c.max_peers)
    throw usage_error(
        fmt::format("--min-peers {} is greater than --max-peers {}", c.min_peers, c.max_peers));
  if (c.min_peers >= c.nodes)
    throw usage_error(
        fmt::format("--min-peers {} needs more than {} nodes (--nodes)", c.min_peers, c.nodes));
  if (c.chart_path.find('\'') != std::string::npos)
    throw usage_error(fmt::format("--chart '{}' may not contain a quote", c.chart_path));
  return c;
}

// ---- measurements ----------------------------------------------------------------------

double seconds_since(steady_clock::time_point t0) {
  return std::chrono::duration<double>(steady_clock::now() - t0).count();
}

std::size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t total = 0, resident = 0;
  statm >> total >> resident;
  return resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

std::size_t open_fds() {
  std::error_code ec;
  std::size_t n = 0;
  for (fs::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end; it.increment(ec)) ++n;
  return n;
}

struct cpu_time {
  double user_s = 0;
  double system_s = 0;
};

cpu_time cpu_used() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& t) { return double(t.tv_sec) + double(t.tv_usec) / 1e6; };
  return {s(u.ru_utime), s(u.ru_stime)};
}

/// One sample of the connection graph (every second).
struct sample {
  double t = 0;
  bool churning = false;
  int live = 0;
  int joining = 0;     // live nodes still joining: not counted in the graph
  int components = 0;  // among the live nodes that are not joining
  int below_min = 0;   // live nodes with fewer than min_peers peers
  int degree_min = 0;
  int degree_max = 0;
  double degree_avg = 0;
  std::size_t edges = 0;
  std::size_t fds = 0;
  std::size_t rss = 0;
  double cpu_s = 0;
};

/// Union-find over node indices.
class components {
 public:
  explicit components(std::size_t n) : parent_(n) { std::iota(parent_.begin(), parent_.end(), 0); }

  int find(int x) {
    while (parent_[x] != x) x = parent_[x] = parent_[parent_[x]];
    return x;
  }

  void join(int a, int b) { parent_[find(a)] = find(b); }

 private:
  std::vector<int> parent_;
};

std::mt19937_64& rng() {
  thread_local std::mt19937_64 r(std::random_device{}());
  return r;
}

std::size_t pick(std::size_t n) {
  return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng());
}

// ---- the swarm -------------------------------------------------------------------------

class swarm;

/// One run of a node, from its start to its stop. `index`, `gen`, `hello` and `strand` are
/// fixed; everything else is touched on `strand` only.
struct incarnation {
  incarnation(swarm* s, int index, std::uint32_t gen, std::string hello,
              std::unique_ptr<p2p::peer_manager> m)
      : s(s),
        index(index),
        gen(gen),
        hello(std::move(hello)),
        mgr(std::move(m)),
        strand(mgr->get_executor()) {}

  swarm* const s;
  const int index;
  const std::uint32_t gen;
  const std::string hello;
  std::unique_ptr<p2p::peer_manager> mgr;
  const p2p::peer_manager::executor_type strand;
  std::vector<p2p::subscription> subs;
  std::vector<int> heard;  // the last nodes that said hello, a ring of heard_size
  std::size_t heard_next = 0;
  std::vector<int> known;       // nodes to pass on in `addr` answers, see refresh_known
  std::vector<bool> connected;  // by node: connected to it (or it is us)
  steady_clock::time_point known_at{};
  const steady_clock::time_point launched = steady_clock::now();
  bool joined = false;  // a peer said hello
  bool stopping = false;
  std::atomic<bool> finished{false};
};

/// A node across its runs. `cur` and `last` belong to the controller's strand.
struct node {
  p2p::host address;
  std::string cache_file;
  std::shared_ptr<incarnation> cur;   // null while the node is down
  std::shared_ptr<incarnation> last;  // the run before, until its stop has finished
  std::atomic<bool> up{false};
  std::atomic<std::uint32_t> gen{0};
};

/// The node and run a peer named in its hello.
struct peer_node {
  int index = 0;
  std::uint32_t gen = 0;
};

std::optional<peer_node> node_of(const p2p::peer& p) {
  auto i = p.get("index");
  auto g = p.get("gen");
  if (!i || !g) return std::nullopt;
  auto* iv = std::get_if<std::int64_t>(&i->value());
  auto* gv = std::get_if<std::int64_t>(&g->value());
  if (!iv || !gv) return std::nullopt;
  return peer_node{static_cast<int>(*iv), static_cast<std::uint32_t>(*gv)};
}

std::string_view text_of(const p2p::message& m) {
  auto s = m.payload.span();
  return {reinterpret_cast<const char*>(s.data()), s.size()};
}

/// What one node sees: its ready peers and the nodes they belong to.
struct node_view {
  bool valid = false;
  bool joining = false;  // started less than join_grace ago and no peer said hello yet
  int index = 0;
  int peers = 0;
  std::vector<int> neighbours;
};

struct round_counts {
  std::atomic<std::uint64_t> sent{0};
  std::atomic<std::uint64_t> received{0};
  std::atomic<std::uint64_t> lost{0};
  std::atomic<std::uint64_t> interrupted{0};  // a side stopped during the round
  std::atomic<std::uint64_t> skipped{0};      // no peer to knock on
  std::atomic<int> in_flight{0};
};

class swarm {
 public:
  swarm(asio::io_context& io, config cfg)
      : io_(io), cfg_(std::move(cfg)), ctl_(asio::make_strand(io)), nodes_(cfg_.nodes) {
    for (int i = 0; i < cfg_.nodes; ++i) {
      auto& n = nodes_[i];
      n.address = p2p::host{fmt::format("127.{}.{}.1", 1 + i % 250, i / 250), cfg_.port};
      n.cache_file = (fs::path(cfg_.cache_dir) / fmt::format("node-{}.json", i)).string();
      index_.emplace(n.address.to_string(), i);
    }
  }

  asio::strand<asio::io_context::executor_type> controller() const { return ctl_; }

  const config& cfg() const { return cfg_; }

  /// The node listening on `address` ("ADDR:PORT"), or -1.
  int index_of(std::string_view address) const {
    auto it = index_.find(std::string(address));
    return it == index_.end() ? -1 : it->second;
  }

  const node& at(int i) const { return nodes_[i]; }

  /// Whether node `i` is up in run `gen`.
  bool is_up(int i, std::uint32_t gen) const {
    return nodes_[i].up.load() && nodes_[i].gen.load() == gen;
  }

  round_counts rounds;
  std::atomic<std::uint64_t> errors{0};

  // Results, written on the controller's strand, read after io.run().
  std::vector<sample> samples;
  std::map<int, int> final_degrees;
  std::optional<double> converged_at;
  std::optional<double> reconverged_at;
  double churn_over_at = 0;  // when the last stopped node was back
  double started_in = 0;
  int stops_graceful = 0, stops_abrupt = 0, restarts = 0, restart_failures = 0;
  std::size_t fds_max = 0, rss_max = 0;
  double wall_s = 0;

  asio::awaitable<void> run();

 private:
  p2p::manager_options options_for(int i) const;
  asio::awaitable<bool> start(int i, bool first);
  void restart(int i, bool first = false);
  void stop(int i, bool graceful, bool churn = true);
  asio::awaitable<void> churn_loop();
  asio::awaitable<void> knock_loop();
  asio::awaitable<void> sample_loop();
  asio::awaitable<void> take_sample(double t, bool churning);
  asio::awaitable<void> pause(steady_clock::time_point until);

  asio::io_context& io_;
  const config cfg_;
  asio::strand<asio::io_context::executor_type> ctl_;
  std::vector<node> nodes_;
  std::unordered_map<std::string, int> index_;
  steady_clock::time_point t0_;
  int starting_ = 0;        // starts under way
  std::vector<int> retry_;  // nodes whose restart has to be tried again
  int start_failures_ = 0;
};

/// Counts and prints what a spawned coroutine threw.
struct report_exception {
  swarm* s;

  void operator()(std::exception_ptr e) const {
    if (!e) return;
    ++s->errors;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      say("error: {}", ex.what());
    }
  }
};

// ---- one node's application protocol (runs on the node's strand) -----------------------

/// What the node knows, gathered at most once a second: a seed has a thousand peers, and
/// going through them for every `getaddr` would make it the swarm's bottleneck.
void refresh_known(incarnation* inc) {
  const auto now = steady_clock::now();
  if (now - inc->known_at < 1s) return;
  inc->known_at = now;
  inc->known.clear();
  inc->connected.assign(inc->s->cfg().nodes, false);
  inc->connected[inc->index] = true;
  for (const auto& p : inc->mgr->active_peers())
    if (auto n = node_of(*p)) {
      inc->connected[n->index] = true;
      inc->known.push_back(n->index);
    }
  inc->known.insert(inc->known.end(), inc->heard.begin(), inc->heard.end());
  for (const auto& r : inc->mgr->book().records())
    if (int i = inc->s->index_of(r.host.to_string()); i >= 0 && r.attempts == 0)
      inc->known.push_back(i);
  std::sort(inc->known.begin(), inc->known.end());
  inc->known.erase(std::unique(inc->known.begin(), inc->known.end()), inc->known.end());
}

/// Up to addr_entries addresses the node knows to work, at random: its ready peers, the
/// nodes that said hello last, and the book's hosts that have not failed since they worked.
std::string addr_answer(incarnation* inc) {
  refresh_known(inc);
  auto& known = inc->known;
  const std::size_t n = std::min(known.size(), addr_entries);
  for (std::size_t k = 0; k < n; ++k) std::swap(known[k], known[k + pick(known.size() - k)]);
  std::string out;
  for (std::size_t k = 0; k < n; ++k)
    out += fmt::format("{}{}", k ? "," : "", inc->s->at(known[k]).address.to_string());
  return out;
}

/// Adds the addresses of an `addr` answer that are not ours and not connected already.
void learn_addresses(incarnation* inc, std::string_view list) {
  refresh_known(inc);
  std::vector<std::string> fresh;
  for (std::size_t start = 0; start < list.size();) {
    auto comma = std::min(list.find(',', start), list.size());
    const int i = inc->s->index_of(list.substr(start, comma - start));
    if (i >= 0 && !inc->connected[i]) {
      inc->connected[i] = true;
      fresh.push_back(inc->s->at(i).address.to_string());
    }
    start = comma + 1;
  }
  if (!fresh.empty()) inc->mgr->add_pool(p2p::host_list(fresh));
}

/// "ADDR:PORT GEN" → the node and its run, if it is one of ours.
std::optional<peer_node> parse_hello(const swarm& s, std::string_view text) {
  auto space = text.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  const int i = s.index_of(text.substr(0, space));
  auto gen = text.substr(space + 1);
  std::uint32_t g = 0;
  auto [end, ec] = std::from_chars(gen.data(), gen.data() + gen.size(), g);
  if (i < 0 || ec != std::errc{} || end != gen.data() + gen.size()) return std::nullopt;
  return peer_node{i, g};
}

/// Whether `p` is a node's connection to a seed, which the node closes once the seed's
/// `addr` answer came: no knock goes over it, from either side.
bool leaves_seed(const incarnation& inc, const p2p::peer& p, int other) {
  if (inc.index < seed_count) return other >= seed_count && p.is_inbound();
  return other < seed_count && !p.is_inbound();
}

/// Subscribes the node's protocol. The callbacks hold a plain pointer: the subscriptions
/// are dropped on the strand before the manager is destroyed.
void install_protocol(incarnation* inc) {
  auto& ev = inc->mgr->events();
  inc->subs.push_back(ev.peer_ready.subscribe([inc](const peer_ptr& p) {
    p->send("hello", p2p::as_bytes(inc->hello));
    p->send("getaddr", {});
  }));
  inc->subs.push_back(
      ev.command("hello").subscribe([inc](const peer_ptr& p, const p2p::message& m) {
        auto n = parse_hello(*inc->s, text_of(m));
        if (!n) return;
        p->set("index", n->index);
        p->set("gen", n->gen);
        p->set("node", fmt::format("{}/{}", n->index, n->gen));
        inc->joined = true;
        if (n->index == inc->index) return;
        if (inc->heard.size() < heard_size)
          inc->heard.push_back(n->index);
        else
          inc->heard[inc->heard_next++ % heard_size] = n->index;
      }));
  inc->subs.push_back(
      ev.command("getaddr").subscribe([inc](const peer_ptr& p, const p2p::message&) {
        p->send("addr", p2p::as_bytes(addr_answer(inc)));
      }));
  inc->subs.push_back(ev.command("addr").subscribe([inc](const peer_ptr& p, const p2p::message& m) {
    learn_addresses(inc, text_of(m));
    // A seed is for finding others (Bitcoin Core's -seednode): leave it, to make room.
    if (auto n = node_of(*p); n && leaves_seed(*inc, *p, n->index))
      inc->mgr->del_active(p, "addresses received from a seed", [](boost::system::error_code) {});
  }));
  inc->subs.push_back(ev.command("knock").subscribe(
      [](const peer_ptr& p, const p2p::message& m) { p->send("answer", m.payload.span()); }));
}

asio::awaitable<bool> launch_node(std::shared_ptr<incarnation> inc, p2p::host_list seeds) {
  install_protocol(inc.get());
  auto [ec] = co_await inc->mgr->launch(std::move(seeds), use_nothrow);
  if (!ec) co_return true;
  say("node {}: launch failed: {}", inc->index, ec.message());
  inc->subs.clear();
  inc->mgr.reset();
  inc->finished = true;
  co_return false;
}

asio::awaitable<void> stop_node(std::shared_ptr<incarnation> inc, bool graceful) {
  inc->stopping = true;
  if (graceful) co_await inc->mgr->shutdown(use_nothrow);
  inc->subs.clear();
  inc->mgr.reset();  // without shutdown(): every connection is closed at once
  inc->finished = true;
}

asio::awaitable<node_view> view_node(std::shared_ptr<incarnation> inc) {
  node_view v;
  v.index = inc->index;
  if (inc->stopping) co_return v;
  v.valid = true;
  v.joining = !inc->joined && steady_clock::now() - inc->launched < join_grace;
  for (const auto& p : inc->mgr->active_peers()) {
    auto n = node_of(*p);
    if (!n || !p->is_open() || !inc->s->is_up(n->index, n->gen)) continue;
    ++v.peers;
    v.neighbours.push_back(n->index);
  }
  co_return v;
}

/// One knock from node `inc` to a random ready peer of it, and the wait for its answer.
asio::awaitable<void> knock_round(std::shared_ptr<incarnation> inc) {
  swarm& s = *inc->s;
  auto& counts = s.rounds;
  if (inc->stopping) {
    ++counts.skipped;
    co_return;
  }
  std::vector<peer_node> candidates;
  for (const auto& p : inc->mgr->active_peers())
    if (auto n = node_of(*p);
        n && p->is_open() && s.is_up(n->index, n->gen) && !leaves_seed(*inc, *p, n->index))
      candidates.push_back(*n);
  if (candidates.empty()) {
    ++counts.skipped;
    co_return;
  }
  const peer_node to = candidates[pick(candidates.size())];
  std::vector<std::uint8_t> payload(8);
  for (auto& b : payload) b = static_cast<std::uint8_t>(pick(256));
  auto same = [payload](const p2p::message& m) {
    return m.command == "answer" && std::ranges::equal(m.payload.span(), payload);
  };
  auto sent = co_await inc->mgr->send(1, "node", fmt::format("{}/{}", to.index, to.gen), "knock",
                                      payload, p2p::answer_spec::matching(same));
  if (sent.empty()) {
    ++counts.skipped;
    co_return;
  }
  ++counts.sent;
  auto got = co_await sent.wait(s.cfg().answer_timeout);
  if (!got.answered.empty()) {
    ++counts.received;
  } else if (s.is_up(inc->index, inc->gen) && s.is_up(to.index, to.gen)) {
    ++counts.lost;
    say("lost: node {} asked node {} (run {}): {} after {:.0f} ms", inc->index, to.index, to.gen,
        got.closed.empty() ? "no answer" : "the connection closed",
        std::chrono::duration<double, std::milli>(got.elapsed).count());
  } else {
    ++counts.interrupted;
  }
}

// ---- the controller (runs on its own strand) -------------------------------------------

p2p::manager_options swarm::options_for(int i) const {
  p2p::manager_options o;
  o.listen_address = nodes_[i].address.name;
  o.port = cfg_.port;
  o.min_peers = static_cast<std::size_t>(cfg_.min_peers);
  o.max_peers = static_cast<std::size_t>(cfg_.max_peers);
  if (i < seed_count) o.max_peers = std::max(o.max_peers, seed_max_peers);
  // Inbound capacity is three times what the nodes dial out: everyone's outbound fits.
  o.max_inbound = o.max_peers - o.min_peers;
  o.check_interval = 1s;
  o.connect_timeout = 3s;
  o.disconnect_timeout = 2s;
  // Every outbound connection comes from 127.0.0.1: a bar on an inbound peer's address would
  // refuse every node. The book's backoff keeps dead hosts from being redialled instead.
  o.bar_duration = 1s;
  o.book.backoff_initial = 2s;
  o.book.backoff_max = 30s;
  o.use_cache = nodes_[i].cache_file;
  o.cache_interval = cfg_.cache_interval;
  return o;
}

p2p::host_list seeds_for(const swarm& s, int i) {
  std::vector<p2p::host> seeds;
  for (int k = 0; k < seed_count; ++k)
    if (k != i) seeds.push_back(s.at(k).address);
  return p2p::host_list(seeds);
}

asio::awaitable<bool> swarm::start(int i, bool first) {
  auto& n = nodes_[i];
  if (n.last && !n.last->finished) co_return false;  // its stop is still going on
  n.last.reset();
  const std::uint32_t gen = n.gen + 1;
  auto inc = std::make_shared<incarnation>(
      this, i, gen, fmt::format("{} {}", n.address.to_string(), gen),
      std::make_unique<p2p::peer_manager>(io_.get_executor(), options_for(i)));
  // A run after a stop comes back with its saved address book only, not the seeds.
  p2p::host_list seeds = first ? seeds_for(*this, i) : p2p::host_list();
  n.gen = gen;
  n.up = true;
  const bool ok =
      co_await asio::co_spawn(inc->strand, launch_node(inc, std::move(seeds)), asio::use_awaitable);
  if (!ok) {
    n.up = false;
    co_return false;
  }
  n.cur = std::move(inc);
  co_return true;
}

void swarm::stop(int i, bool graceful, bool churn) {
  auto& n = nodes_[i];
  n.up = false;
  n.last = std::move(n.cur);
  if (churn) (graceful ? stops_graceful : stops_abrupt)++;
  asio::co_spawn(n.last->strand, stop_node(n.last, graceful), report_exception{this});
}

asio::awaitable<void> swarm::pause(steady_clock::time_point until) {
  asio::steady_timer t(ctl_, until);
  co_await t.async_wait(use_nothrow);
}

void swarm::restart(int i, bool first) {
  ++starting_;
  asio::co_spawn(ctl_, start(i, first),
                 asio::bind_executor(ctl_, [this, i, first](std::exception_ptr e, bool ok) {
                   --starting_;
                   report_exception{this}(e);
                   if (first && !ok) ++start_failures_;
                   if (first) return;
                   if (ok) {
                     ++restarts;
                   } else {
                     ++restart_failures;
                     retry_.push_back(i);
                   }
                 }));
}

asio::awaitable<void> swarm::churn_loop() {
  const auto per_tick = static_cast<std::size_t>(std::lround(cfg_.churn * cfg_.nodes));
  for (auto tick = cfg_.interval; tick < cfg_.churn_for; tick += cfg_.interval) {
    co_await pause(t0_ + tick);
    std::vector<int> down;
    for (int i = 0; i < cfg_.nodes; ++i)
      if (nodes_[i].cur) down.push_back(i);
    std::shuffle(down.begin(), down.end(), rng());
    down.resize(std::min(down.size(), per_tick));
    for (std::size_t k = 0; k < down.size(); ++k) stop(down[k], k % 2 == 0);
    say("t={:.1f}s churn: {} nodes stopped ({} gracefully)", seconds_since(t0_), down.size(),
        (down.size() + 1) / 2);
    // They come back half an interval later, on the same address, all at once.
    co_await pause(t0_ + tick + cfg_.interval / 2);
    for (int i : down) restart(i);
    say("t={:.1f}s churn: {} nodes coming back", seconds_since(t0_), down.size());
  }
  // A node whose stop was still going on when it was due back tries again.
  for (int attempt = 0; attempt < 40 && (starting_ > 0 || !retry_.empty()); ++attempt) {
    co_await pause(steady_clock::now() + 250ms);
    auto again = std::move(retry_);
    retry_.clear();
    for (int i : again) restart(i);
  }
  churn_over_at = seconds_since(t0_);
}

asio::awaitable<void> swarm::knock_loop() {
  if (cfg_.rate == 0) co_return;
  constexpr auto tick = 20ms;
  const auto end = t0_ + cfg_.total() - cfg_.answer_timeout - 1s;
  double owed = 0;
  for (auto next = steady_clock::now(); next < end; next += tick) {
    co_await pause(next);
    owed += cfg_.rate * std::chrono::duration<double>(tick).count();
    for (; owed >= 1; owed -= 1) {
      auto& n = nodes_[pick(nodes_.size())];
      if (!n.cur) continue;
      ++rounds.in_flight;
      asio::co_spawn(n.cur->strand, knock_round(n.cur), [this](std::exception_ptr e) {
        --rounds.in_flight;
        report_exception{this}(e);
      });
    }
  }
}

asio::awaitable<void> swarm::take_sample(double t, bool churning) {
  sample sm;
  sm.t = t;
  sm.churning = churning;

  // Views first, then the graph among the nodes viewed: churn may go on meanwhile.
  // Every node is asked at once, on its own strand; the answers are gathered here.
  struct gathering {
    explicit gathering(asio::strand<asio::io_context::executor_type> ex) : done(ex) {}

    std::vector<node_view> views;
    std::size_t pending = 0;
    asio::steady_timer done;
  };

  auto g = std::make_shared<gathering>(ctl_);
  for (auto& n : nodes_) {
    if (!n.cur) continue;
    ++g->pending;
    asio::co_spawn(n.cur->strand, view_node(n.cur),
                   asio::bind_executor(ctl_, [this, g](std::exception_ptr e, node_view v) {
                     report_exception{this}(e);
                     g->views.push_back(std::move(v));
                     if (--g->pending == 0) g->done.cancel();
                   }));
  }
  if (g->pending > 0) {
    g->done.expires_at(steady_clock::time_point::max());
    co_await g->done.async_wait(use_nothrow);
  }
  std::vector<node_view> views = std::move(g->views);
  std::erase_if(views, [](const node_view& v) { return !v.valid; });
  sm.live = static_cast<int>(views.size());
  sm.joining = static_cast<int>(
      std::count_if(views.begin(), views.end(), [](const node_view& v) { return v.joining; }));
  std::erase_if(views, [](const node_view& v) { return v.joining; });
  std::vector<bool> viewed(nodes_.size(), false);
  for (const auto& v : views) viewed[v.index] = true;
  components graph(nodes_.size());
  std::vector<int> degree;
  for (auto& v : views) {
    std::sort(v.neighbours.begin(), v.neighbours.end());
    v.neighbours.erase(std::unique(v.neighbours.begin(), v.neighbours.end()), v.neighbours.end());
    std::erase_if(v.neighbours, [&](int j) { return !viewed[j]; });
    for (int j : v.neighbours) graph.join(v.index, j);
    sm.edges += v.neighbours.size();
    degree.push_back(static_cast<int>(v.neighbours.size()));
    if (v.peers < cfg_.min_peers) ++sm.below_min;
  }
  std::vector<bool> root(nodes_.size(), false);
  for (int i = 0; i < cfg_.nodes; ++i)
    if (viewed[i] && !root[graph.find(i)]) {
      root[graph.find(i)] = true;
      ++sm.components;
    }
  if (!degree.empty()) {
    sm.degree_min = *std::min_element(degree.begin(), degree.end());
    sm.degree_max = *std::max_element(degree.begin(), degree.end());
    sm.degree_avg = std::accumulate(degree.begin(), degree.end(), 0.0) / double(degree.size());
  }
  sm.edges /= 2;  // every edge is seen from both ends (mostly)
  sm.fds = open_fds();
  sm.rss = resident_bytes();
  auto cpu = cpu_used();
  sm.cpu_s = cpu.user_s + cpu.system_s;
  fds_max = std::max(fds_max, sm.fds);
  rss_max = std::max(rss_max, sm.rss);
  final_degrees.clear();
  for (int d : degree) ++final_degrees[d];
  const bool whole = sm.components == 1 && sm.below_min == 0;
  if (whole && !converged_at) converged_at = sm.t;
  if (whole && !churning && !reconverged_at) reconverged_at = sm.t;
  say("t={:.1f}s live={} joining={} components={} below_min={} degree {}/{:.1f}/{} fds={} "
      "rss={:.0f}MB cpu={:.1f}s knocks={} answers={} lost={}",
      sm.t, sm.live, sm.joining, sm.components, sm.below_min, sm.degree_min, sm.degree_avg,
      sm.degree_max, sm.fds, double(sm.rss) / 1e6, sm.cpu_s, rounds.sent.load(),
      rounds.received.load(), rounds.lost.load());
  samples.push_back(sm);
}

asio::awaitable<void> swarm::sample_loop() {
  // Half a second off the churn ticks, which fall on whole seconds.
  for (auto next = t0_ + 500ms; next <= t0_ + cfg_.total(); next += 1s) {
    co_await pause(next);
    const double t = seconds_since(t0_);
    co_await take_sample(t, churn_over_at == 0);
    while (next + 1s < steady_clock::now()) next += 1s;  // a late sample is not made up for
  }
}

asio::awaitable<void> swarm::run() {
  using namespace asio::experimental::awaitable_operators;
  t0_ = steady_clock::now();
  // The seeds first, so that nobody finds them not listening yet; then everyone at once.
  for (int i = 0; i < seed_count; ++i)
    if (!co_await start(i, true))
      throw std::runtime_error(
          fmt::format("seed {} could not listen on {}", i, nodes_[i].address.to_string()));
  for (int i = seed_count; i < cfg_.nodes; ++i) restart(i, true);
  while (starting_ > 0) co_await pause(steady_clock::now() + 10ms);
  if (start_failures_ > 0)
    throw std::runtime_error(fmt::format("{} nodes could not listen", start_failures_));
  started_in = seconds_since(t0_);
  say("started {} nodes in {:.2f} s", cfg_.nodes, started_in);
  co_await (sample_loop() && knock_loop() && churn_loop());
  for (int k = 0; (rounds.in_flight > 0 || starting_ > 0) && k < 100; ++k)
    co_await pause(steady_clock::now() + 100ms);
  for (int i = 0; i < cfg_.nodes; ++i)
    if (nodes_[i].cur) stop(i, true, false);
  for (int k = 0; k < 200; ++k) {
    bool done = std::all_of(nodes_.begin(), nodes_.end(),
                            [](const node& n) { return !n.last || n.last->finished; });
    if (done) break;
    co_await pause(steady_clock::now() + 100ms);
  }
  wall_s = seconds_since(t0_);
}

// ---- output ----------------------------------------------------------------------------

json::object results_json(const swarm& s) {
  const auto& c = s.cfg();
  json::object cfg{{"nodes", c.nodes},
                   {"seconds", c.churn_for.count()},
                   {"churn", c.churn},
                   {"interval", c.interval.count()},
                   {"quiet_seconds", c.quiet.count()},
                   {"threads", c.threads},
                   {"min_peers", c.min_peers},
                   {"max_peers", c.max_peers},
                   {"seeds", seed_count},
                   {"rate", c.rate},
                   {"answer_timeout", c.answer_timeout.count()},
                   {"cache_interval", c.cache_interval.count()}};
  // Samples while churning, from the first convergence on.
  int churn_samples = 0, churn_single = 0, churn_single_all = 0;
  json::array samples;
  for (const auto& sm : s.samples) {
    if (sm.churning && s.converged_at && sm.t >= *s.converged_at) {
      ++churn_samples;
      if (sm.components == 1) ++churn_single;
      if (sm.components + sm.joining == 1) ++churn_single_all;
    }
    samples.push_back(json::object{{"t", sm.t},
                                   {"churning", sm.churning},
                                   {"live", sm.live},
                                   {"joining", sm.joining},
                                   {"components", sm.components},
                                   {"below_min", sm.below_min},
                                   {"degree_min", sm.degree_min},
                                   {"degree_avg", sm.degree_avg},
                                   {"degree_max", sm.degree_max},
                                   {"edges", sm.edges},
                                   {"fds", sm.fds},
                                   {"rss_bytes", sm.rss},
                                   {"cpu_s", sm.cpu_s}});
  }
  json::object degrees;
  for (auto [d, count] : s.final_degrees) degrees[std::to_string(d)] = count;
  auto opt = [](const std::optional<double>& v) { return v ? json::value(*v) : json::value(); };
  const sample last = s.samples.empty() ? sample{} : s.samples.back();
  const auto cpu = cpu_used();
  const int live = std::max(last.live, 1);
  return json::object{
      {"config", std::move(cfg)},
      {"started_in_s", s.started_in},
      {"converged", bool(s.converged_at)},
      {"converged_at_s", opt(s.converged_at)},
      {"churn_over_at_s", s.churn_over_at},
      {"reconverged_after_churn_at_s", opt(s.reconverged_at)},
      {"final",
       json::object{
           {"live", last.live}, {"components", last.components}, {"below_min", last.below_min}}},
      {"components_during_churn",
       json::object{{"samples", churn_samples},
                    {"single", churn_single},
                    {"single_fraction", churn_samples ? double(churn_single) / churn_samples : 1.0},
                    {"single_counting_joining", churn_single_all},
                    {"single_fraction_counting_joining",
                     churn_samples ? double(churn_single_all) / churn_samples : 1.0}}},
      {"degree_histogram", std::move(degrees)},
      {"answers", json::object{{"sent", s.rounds.sent.load()},
                               {"received", s.rounds.received.load()},
                               {"lost", s.rounds.lost.load()},
                               {"interrupted", s.rounds.interrupted.load()},
                               {"skipped", s.rounds.skipped.load()}}},
      {"churn", json::object{{"stops", s.stops_graceful + s.stops_abrupt},
                             {"graceful", s.stops_graceful},
                             {"abrupt", s.stops_abrupt},
                             {"restarts", s.restarts},
                             {"restart_failures", s.restart_failures}}},
      {"resources", json::object{{"rss_max_bytes", s.rss_max},
                                 {"rss_per_node_bytes", s.rss_max / std::size_t(s.cfg().nodes)},
                                 {"rss_final_per_live_node_bytes", last.rss / std::size_t(live)},
                                 {"fds_max", s.fds_max},
                                 {"cpu_user_s", cpu.user_s},
                                 {"cpu_system_s", cpu.system_s},
                                 {"wall_s", s.wall_s}}},
      {"errors", s.errors.load()},
      {"samples", std::move(samples)}};
}

bool write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  return bool(out.flush());
}

/// Writes FILE.gp and its data files next to the chart and runs gnuplot.
bool write_chart(const swarm& s, const std::string& png) {
  const fs::path base = fs::path(png).replace_extension();
  const std::string samples = base.string() + "-samples.dat";
  const std::string degrees = base.string() + "-degrees.dat";
  const std::string script = base.string() + ".gp";
  std::string data = "# t live components below_min degree_avg rss_mb fds joining\n";
  for (const auto& sm : s.samples)
    data += fmt::format("{:.2f} {} {} {} {:.2f} {:.1f} {} {}\n", sm.t, sm.live, sm.components,
                        sm.below_min, sm.degree_avg, double(sm.rss) / 1e6, sm.fds, sm.joining);
  std::string hist = "# degree nodes\n";
  for (auto [d, n] : s.final_degrees) hist += fmt::format("{} {}\n", d, n);
  const auto& c = s.cfg();
  std::string gp = fmt::format(
      "set terminal pngcairo size 1200,900 noenhanced\n"
      "set output '{png}'\n"
      "set multiplot layout 3,1 title 'swarm: {n} nodes, {churn:.0f}% churn every {i} s until "
      "{s} s, then {q} s quiet'\n"
      "set xlabel 'seconds'\nset grid\nset key outside right\n"
      "set ylabel 'components'\nset y2label 'nodes'\nset ytics nomirror\nset y2tics\n"
      "set yrange [0:*]\nset y2range [0:*]\n"
      "plot '{d}' using 1:3 with steps lw 2 title 'components', \\\n"
      "     '{d}' using 1:4 axes x1y2 with steps title 'below min_peers', \\\n"
      "     '{d}' using 1:8 axes x1y2 with steps title 'joining', \\\n"
      "     '{d}' using 1:2 axes x1y2 with lines title 'live'\n"
      "unset y2label\nunset y2tics\nset ytics mirror\n"
      "set ylabel 'open fds'\nset y2label 'RSS MB'\nset ytics nomirror\nset y2tics\n"
      "plot '{d}' using 1:7 with lines title 'fds', \\\n"
      "     '{d}' using 1:6 axes x1y2 with lines title 'RSS MB'\n"
      "unset y2label\nunset y2tics\nset ytics mirror\n"
      "set xlabel 'distinct neighbours (last sample)'\nset ylabel 'nodes'\n"
      "set style fill solid 0.5\nset boxwidth 0.8\n"
      "plot '{h}' using 1:2 with boxes title 'degree'\n"
      "unset multiplot\n",
      fmt::arg("png", png), fmt::arg("n", c.nodes), fmt::arg("churn", c.churn * 100),
      fmt::arg("i", c.interval.count()), fmt::arg("s", c.churn_for.count()),
      fmt::arg("q", c.quiet.count()), fmt::arg("d", samples), fmt::arg("h", degrees));
  if (!write_text(samples, data) || !write_text(degrees, hist) || !write_text(script, gp))
    return false;
  const int rc = std::system(fmt::format("gnuplot '{}'", script).c_str());
  if (rc != 0) say("gnuplot '{}' failed ({}); is gnuplot installed?", script, rc);
  return rc == 0;
}

void print_summary(const swarm& s) {
  const auto& r = s.rounds;
  say("converged (all live nodes at min_peers, one component): {}",
      s.converged_at ? fmt::format("at {:.1f} s", *s.converged_at) : std::string("never"));
  say("after churn stopped: {}",
      s.reconverged_at ? fmt::format("one component again at {:.1f} s", *s.reconverged_at)
                       : std::string("not whole again"));
  say("knocks sent {}, answered {}, lost {}, interrupted by churn {}, skipped {}", r.sent.load(),
      r.received.load(), r.lost.load(), r.interrupted.load(), r.skipped.load());
  say("churn: {} graceful + {} abrupt stops, {} restarts ({} deferred)", s.stops_graceful,
      s.stops_abrupt, s.restarts, s.restart_failures);
  const auto cpu = cpu_used();
  say("resources: max RSS {:.1f} MB ({:.0f} KB per node), max {} fds, cpu {:.1f} s user + "
      "{:.1f} s system in {:.1f} s",
      double(s.rss_max) / 1e6, double(s.rss_max) / 1e3 / s.cfg().nodes, s.fds_max, cpu.user_s,
      cpu.system_s, s.wall_s);
}

int run(config cfg) {
  bool own_cache_dir = false;
  if (cfg.cache_dir.empty()) {
    // tmpfs where there is one: every node saves its book every few seconds.
    const fs::path base = fs::exists("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    cfg.cache_dir = (base / fmt::format("p2p-swarm-{}", ::getpid())).string();
    own_cache_dir = true;
  }
  fs::create_directories(cfg.cache_dir);
  asio::io_context io(cfg.threads);
  swarm s(io, cfg);
  int rc = 1;
  bool finished = false;
  asio::steady_timer watchdog(io, cfg.total() + 60s);
  watchdog.async_wait([&](boost::system::error_code ec) {
    if (ec) return;
    say("watchdog: still running after {} s; stopping", (cfg.total() + 60s).count());
    io.stop();
  });
  asio::co_spawn(s.controller(), s.run(), [&](std::exception_ptr e) {
    watchdog.cancel();
    finished = !e;
    report_exception{&s}(e);
    io.stop();  // every manager is shut down and destroyed by now
  });
  std::vector<std::thread> threads;
  for (int t = 1; t < cfg.threads; ++t) threads.emplace_back([&io] { io.run(); });
  io.run();
  for (auto& t : threads) t.join();
  if (finished) {
    rc = 0;
    print_summary(s);
    if (!cfg.json_path.empty()) {
      if (write_text(cfg.json_path, json::serialize(results_json(s))))
        say("json: {}", cfg.json_path);
      else
        rc = 1;
    }
    if (!cfg.chart_path.empty() && write_chart(s, cfg.chart_path)) say("chart: {}", cfg.chart_path);
  }
  if (own_cache_dir) {
    std::error_code ec;
    fs::remove_all(cfg.cache_dir, ec);
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  config cfg;
  try {
    cfg = parse_args(argc, argv);
  } catch (const usage_error& e) {
    fmt::print(stderr, "swarm: {}\n{}", e.what(), usage_text);
    return 2;
  }
  try {
    return run(std::move(cfg));
  } catch (const std::exception& e) {
    fmt::print(stderr, "swarm: {}\n", e.what());
  }
  return 1;
}
