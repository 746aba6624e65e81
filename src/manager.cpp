#include <p2p/error.hpp>
#include <p2p/manager.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/container_hash/hash.hpp>
#include <boost/uuid/uuid_io.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <cctype>
#include <map>
#include <random>
#include <stdexcept>
#include <unordered_map>

#include "detail/answer_collector.hpp"
#include "detail/async.hpp"

namespace p2p {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;
using detail::use_nothrow;
using time_point = std::chrono::steady_clock::time_point;

// ---- manager_events ------------------------------------------------------------------

manager_events::manager_events() {
  wire(state_change, "state_change");
  wire(peer_connect, "peer_connect");
  wire(peer_ready, "peer_ready");
  wire(peer_end, "peer_end");
  wire(peer_error, "peer_error");
  wire(peer_message, "peer_message");
  wire(listen_connect, "listen_connect");
  wire(report, "report");
  wire(status, "status");
}

signal<std::shared_ptr<peer>, message>& manager_events::command(std::string_view command) {
  return command_signal(commands_, command);
}

void manager_events::emit_message(const std::shared_ptr<peer>& p, const message& m) {
  peer_message.emit(p, m);
  if (auto it = commands_.find(m.command); it != commands_.end()) it->second.emit(p, m);
}

namespace detail {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

/// An address in one spelling: "::ffff:127.0.0.1" is "127.0.0.1", "0::1" is "::1".
std::string address_key(const asio::ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped())
    return asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6()).to_string();
  return a.to_string();
}

/// The network group eviction balances: /16 for IPv4, /32 for IPv6.
std::string netgroup(const std::string& address) {
  error_code ec;
  const auto a = asio::ip::make_address(address, ec);
  if (ec) return address;
  if (a.is_v4()) {
    const auto b = a.to_v4().to_bytes();
    return fmt::format("{}.{}.0.0/16", b[0], b[1]);
  }
  const auto b = a.to_v6().to_bytes();
  return fmt::format("{:02x}{:02x}:{:02x}{:02x}::/32", b[0], b[1], b[2], b[3]);
}

/// The key bars and per-host counts use: an address's one spelling, or a lower-case name.
std::string host_key(std::string_view name) {
  error_code ec;
  const auto a = asio::ip::make_address(name, ec);
  return ec ? lower(name) : address_key(a);
}

}  // namespace

/// The manager's state; every member runs on `strand_`.
class manager_impl : public std::enable_shared_from_this<manager_impl>, public peer_observer {
 public:
  manager_impl(asio::any_io_executor ex, manager_options opts)
      : strand_(asio::make_strand(std::move(ex))),
        opts_(std::move(opts)),
        check_timer_(strand_),
        status_timer_(strand_),
        all_closed_(strand_, time_point::max()),
        rng_(std::random_device{}()) {
    events_.sink_ = [this](std::string_view event, std::exception_ptr e) {
      callback_threw(event, e);
    };
  }

  manager_impl(const manager_impl&) = delete;
  manager_impl& operator=(const manager_impl&) = delete;

  ~manager_impl() {
    // Peers may outlive the manager (the application holds them): stop reporting to it.
    for (auto& [id, e] : active_) e.p->observer_ = nullptr;
  }

  // ---- clock and bars ----

  time_point now() const { return opts_.clock ? opts_.clock() : std::chrono::steady_clock::now(); }

  void bar_key(const std::string& key, std::chrono::steady_clock::duration d) {
    auto t = now();
    auto& until = bars_[key];
    until = std::max(until, t) + d;  // bars add up: what is left, plus the new bar
  }

  void bar_peer(const peer& p) {
    const std::string name = host_key(p.remote().name);
    bar_key(name, opts_.bar_duration);
    if (auto ep = p.endpoint()) {
      auto addr = address_key(ep->address());
      if (addr != name) bar_key(addr, opts_.bar_duration);
    }
  }

  std::chrono::steady_clock::duration barred_for(std::string_view name) {
    auto it = bars_.find(host_key(name));
    if (it == bars_.end()) return {};
    auto t = now();
    if (it->second <= t) {
      bars_.erase(it);
      return {};
    }
    return it->second - t;
  }

  bool barred(std::string_view name) { return barred_for(name).count() > 0; }

  std::size_t barred_count() {
    auto t = now();
    std::erase_if(bars_, [t](const auto& kv) { return kv.second <= t; });
    return bars_.size();
  }

  // ---- reports and state ----

  void report(severity level, std::string text) {
    events_.report.emit(p2p::report{level, std::move(text)});
  }

  /// A callback threw: reported, and the manager carries on as if it had returned.
  void callback_threw(std::string_view event, std::exception_ptr e) {
    if (event == "report") {
      // Reporting a failed report could loop: this one leaves through io_context::run()
      // from a handler of its own, so no loop of ours ends.
      asio::post(strand_, [e] { std::rethrow_exception(e); });
      return;
    }
    report(severity::error, fmt::format("a '{}' callback threw: {}", event, exception_text(e)));
  }

  void set_state(manager_state s) {
    if (s == state_) return;
    const manager_state old = std::exchange(state_, s);
    events_.state_change.emit(old, state_);
  }

  std::size_t target() const {
    return state_ == manager_state::launching ? (opts_.min_peers + opts_.max_peers) / 2
                                              : opts_.min_peers;
  }

  manager_status status() { return manager_status{active_.size(), pool_.size(), barred_count()}; }

  // ---- host lists ----

  std::vector<host> parse(const host_list& list) {
    auto parsed = parse_hosts(list, opts_.port);
    for (auto& e : parsed.errors) report(severity::warning, e);
    return std::move(parsed.hosts);
  }

  bool is_active(const host& h) const { return active_.contains(peer::outbound_id(h)); }

  bool in_pool(const host& h) const {
    return std::find(pool_.begin(), pool_.end(), h) != pool_.end();
  }

  void add_pool(const host_list& list) {
    if (state_ == manager_state::shutdown) return;
    for (auto& h : parse(list)) {
      if (barred(h.name)) {
        report(severity::info, fmt::format("not adding {}: barred", h.to_string()));
        continue;
      }
      if (is_active(h)) continue;
      if (active_.size() < target()) {
        std::erase(pool_, h);
        connect_to(h);
      } else if (!in_pool(h)) {
        pool_.push_back(h);
      }
    }
  }

  void add_active(const host_list& list) {
    if (state_ == manager_state::shutdown) return;
    for (auto& h : parse(list)) {
      if (barred(h.name)) {
        report(severity::info, fmt::format("not connecting to {}: barred", h.to_string()));
        continue;
      }
      if (is_active(h)) continue;
      std::erase(pool_, h);
      connect_to(h);
    }
  }

  // ---- peers ----

  struct entry {
    std::shared_ptr<peer> p;
    bool counted_inbound = false;
    std::string inbound_addr;
    std::uint64_t admitted = 0;  // admission order of an inbound peer (older is smaller)
    bool evicted = false;        // closing to make room; no longer counted
  };

  void connect_to(const host& h) {
    auto p = peer::outbound(strand_, h, opts_.peer());
    track(p);
    // Straight to the transport's connect: its outcome arrives as the peer's notifications.
    asio::co_spawn(p->io_, p->connect_on_transport(), [p](std::exception_ptr e, error_code) {
      if (e) std::rethrow_exception(e);
    });
  }

  /// Follows p's events (peer_observer) until it closes or the manager goes.
  void track(const std::shared_ptr<peer>& p) {
    if (active_.emplace(p->id(), entry{p, false, {}, 0, false}).second) p->observer_ = this;
  }

  void on_peer_connect(const std::shared_ptr<peer>& p) override { on_connect(p); }

  void on_peer_message(const std::shared_ptr<peer>& p, const message& m) override {
    // Collectors first: an answer counts even if a callback below destroys the peer.
    collectors_->for_each([&](answer_collector& c) {
      try {
        c.on_message(p, m);
      } catch (...) {
        callback_threw("answer_spec::matching predicate", std::current_exception());
      }
    });
    events_.emit_message(p, m);
  }

  void on_peer_report(const p2p::report& r) override { events_.report.emit(r); }

  void on_peer_close(const std::shared_ptr<peer>& p, bool remote_ended,
                     const error_code& ec) override {
    on_close(p, remote_ended, ec);
  }

  void on_connect(const std::shared_ptr<peer>& p) {
    if (state_ == manager_state::launching) set_state(manager_state::running);
    events_.peer_connect.emit(p);
    if (p->silenced_.load(std::memory_order_relaxed)) return;  // a callback closed it
    if (!opts_.handshake) {
      // A silent inbound peer is caught by the pool check: no coroutine or timer per peer.
      p->end_handshake();
      events_.peer_ready.emit(p);
      return;
    }
    auto self = shared_from_this();
    asio::co_spawn(
        strand_, [self, p] { return self->handshake(p); }, rethrow{});
  }

  /// Runs the application's hook, bounded by handshake_timeout.
  asio::awaitable<void> handshake(std::shared_ptr<peer> p) {
    using namespace asio::experimental::awaitable_operators;
    asio::steady_timer deadline(strand_, opts_.handshake_timeout);
    // The deadline also ends when the peer closes, so no timer outlives a closed peer.
    subscription on_close = p->events().close.subscribe([&deadline] { deadline.cancel(); });
    auto outcome = co_await (run_hook(p) || deadline.async_wait(use_nothrow));
    p->end_handshake();
    if (p->is_closed() || p->silenced_.load(std::memory_order_relaxed)) co_return;
    if (outcome.index() == 1) {
      report(severity::warning,
             fmt::format("peer {}: handshake did not finish within {} ms", p->remote().to_string(),
                         opts_.handshake_timeout.count()));
      p->fail(make_error_code(error::handshake_timeout));
      co_return;
    }
    if (const auto& why = std::get<0>(outcome); !why.empty()) {
      report(severity::warning,
             fmt::format("peer {}: handshake failed: {}", p->remote().to_string(), why));
      p->fail(make_error_code(error::handshake_failed));
      co_return;
    }
    events_.peer_ready.emit(p);
  }

  /// The hook, made non-throwing for `||`: returns the failure (an error it returned, or
  /// what it threw) as text, empty on success.
  asio::awaitable<std::string> run_hook(std::shared_ptr<peer> p) {
    try {
      const error_code ec = co_await opts_.handshake(p);
      co_return ec ? fmt::format("{} ({})", ec.message(), ec.to_string()) : std::string{};
    } catch (const std::exception& e) {
      co_return std::string(e.what()[0] ? e.what() : "exception");
    } catch (...) {
      co_return std::string("unknown exception");
    }
  }

  /// A peer closed: the tables are settled first (removed, bar for a remote's failure),
  /// then the reports and events, then a pool check is posted.
  void on_close(const std::shared_ptr<peer>& p, bool remote_ended, const error_code& ec) {
    collectors_->for_each([&](answer_collector& c) { c.on_closed(*p); });
    auto it = active_.find(p->id());
    const bool tracked = it != active_.end() && it->second.p == p;
    if (tracked) {
      if (it->second.evicted) --evicting_;
      uncount_inbound(it->second);
      active_.erase(it);
    }
    p->observer_ = nullptr;
    if (ec) bar_peer(*p);
    if (ec == error::connect_timeout)
      report(severity::warning,
             fmt::format("connect to {} timed out after {} ms; barred", p->remote().to_string(),
                         opts_.connect_timeout.count()));
    else if (ec)
      report(severity::warning,
             fmt::format("peer {} error: {}; barred", p->remote().to_string(), ec.message()));
    if (tracked)
      report(severity::info,
             fmt::format("peer {} removed; {} active", p->remote().to_string(), active_.size()));
    if (remote_ended) events_.peer_end.emit(p);
    if (ec) events_.peer_error.emit(p, ec);
    if (!tracked) return;
    if (state_ == manager_state::shutdown) {
      if (active_.empty()) all_closed_.cancel();
      return;
    }
    auto self = shared_from_this();
    asio::post(strand_, [self] { asio::co_spawn(self->strand_, self->check_pool(), rethrow{}); });
  }

  // ---- the pool check ----

  asio::awaitable<void> check_pool() {
    if (state_ == manager_state::shutdown || state_ == manager_state::created) co_return;
    auto t = std::chrono::steady_clock::now();
    for (auto& [id, e] : active_) {
      auto& p = e.p;
      if (p->is_open() && p->is_inbound() && !p->has_received() &&
          t - p->last_seen() > opts_.handshake_timeout) {
        report(severity::warning,
               fmt::format("peer {}: sent nothing within {} ms", p->remote().to_string(),
                           opts_.handshake_timeout.count()));
        p->fail(make_error_code(error::handshake_timeout));
        continue;
      }
      if (p->is_open() && t - p->last_seen() > opts_.idle_timeout) {
        report(severity::notice, fmt::format("peer {} silent for over {} ms; disconnecting",
                                             p->remote().to_string(), opts_.idle_timeout.count()));
        p->close();
      }
    }
    while (active_.size() < opts_.min_peers) {
      std::vector<std::size_t> usable;
      for (std::size_t i = 0; i < pool_.size(); ++i)
        if (!barred(pool_[i].name) && !is_active(pool_[i])) usable.push_back(i);
      if (usable.empty()) break;
      std::size_t pick =
          usable[std::uniform_int_distribution<std::size_t>(0, usable.size() - 1)(rng_)];
      host h = pool_[pick];
      pool_.erase(pool_.begin() + static_cast<std::ptrdiff_t>(pick));
      connect_to(h);
    }
    if (active_.size() > opts_.max_peers)
      report(severity::warning,
             fmt::format("{} active peers, above max_peers {}", active_.size(), opts_.max_peers));
  }

  asio::awaitable<void> check_loop() {
    auto self = shared_from_this();
    while (state_ != manager_state::shutdown) {
      co_await check_pool();
      check_timer_.expires_after(opts_.check_interval);
      co_await check_timer_.async_wait(use_nothrow);
    }
  }

  asio::awaitable<void> status_loop() {
    auto self = shared_from_this();
    for (;;) {
      status_timer_.expires_after(opts_.status_interval);
      co_await status_timer_.async_wait(use_nothrow);
      if (state_ == manager_state::shutdown) co_return;
      events_.status.emit(status());
    }
  }

  // ---- the listener ----

  void open_listener() {
    tcp::endpoint ep(asio::ip::make_address(opts_.listen_address), opts_.port);
    tcp::acceptor a(strand_);
    a.open(ep.protocol());
    a.set_option(tcp::acceptor::reuse_address(true));
    a.bind(ep);
    a.listen(asio::socket_base::max_listen_connections);
    acceptor_.emplace(std::move(a));
  }

  asio::awaitable<void> accept_loop() {
    auto self = shared_from_this();
    while (acceptor_ && acceptor_->is_open()) {
      auto [ec, sock] = co_await acceptor_->async_accept(use_nothrow);
      if (state_ == manager_state::shutdown || !acceptor_->is_open()) co_return;
      if (ec) {
        report(severity::warning, fmt::format("accept failed: {}", ec.message()));
        // Out of descriptors or similar: back off instead of spinning.
        asio::steady_timer pause(strand_, std::chrono::milliseconds(100));
        co_await pause.async_wait(use_nothrow);
        continue;
      }
      admit(std::move(sock));
    }
  }

  /// Takes an inbound peer out of the inbound counts (once: it may be evicted, then close).
  void uncount_inbound(entry& e) {
    if (!e.counted_inbound) return;
    e.counted_inbound = false;
    --inbound_count_;
    if (auto h = inbound_per_host_.find(e.inbound_addr);
        h != inbound_per_host_.end() && --h->second == 0)
      inbound_per_host_.erase(h);
  }

  /// Why a new inbound peer finds no room, or empty if it does. Evicted peers that are
  /// still closing do not count.
  std::string capacity_refusal() const {
    if (inbound_count_ >= opts_.inbound_limit())
      return fmt::format("max_inbound ({}) reached", opts_.inbound_limit());
    if (active_.size() - evicting_ >= opts_.max_peers)
      return fmt::format("max_peers ({}) reached", opts_.max_peers);
    return {};
  }

  /// Bitcoin Core's inbound eviction, simplified to what a peer manager knows. Protected,
  /// in turn: the oldest peer of each of up to 4 netgroups (picked at random when there
  /// are more), the 4 peers whose last valid message is most recent, then the older half
  /// of the rest. From what remains, the youngest peer of the netgroup with the most
  /// peers is closed. Returns false (nobody evicted) when every inbound peer is protected.
  bool evict_one(const std::string& newcomer) {
    struct candidate {
      entry* e;
      std::string group;
    };

    std::vector<candidate> c;
    for (auto& [id, e] : active_)
      if (e.counted_inbound && !e.p->is_closed()) c.push_back({&e, netgroup(e.inbound_addr)});
    const auto older = [](const candidate& a, const candidate& b) {
      return a.e->admitted < b.e->admitted;
    };
    // 1. One peer, the oldest, in each of up to 4 netgroups.
    std::sort(c.begin(), c.end(), older);
    std::vector<std::string> groups;
    for (const auto& x : c)
      if (std::find(groups.begin(), groups.end(), x.group) == groups.end())
        groups.push_back(x.group);
    std::shuffle(groups.begin(), groups.end(), rng_);
    if (groups.size() > 4) groups.resize(4);
    for (const auto& g : groups)
      c.erase(std::find_if(c.begin(), c.end(), [&](const candidate& x) { return x.group == g; }));
    // 2. The 4 most recent senders of a valid message.
    std::stable_sort(c.begin(), c.end(), [](const candidate& a, const candidate& b) {
      return a.e->p->last_message() > b.e->p->last_message();
    });
    std::size_t recent = 0;
    while (recent < c.size() && recent < 4 &&
           c[recent].e->p->last_message() != peer::clock_type::time_point{})
      ++recent;
    c.erase(c.begin(), c.begin() + static_cast<std::ptrdiff_t>(recent));
    // 3. The older half of the rest.
    std::sort(c.begin(), c.end(), older);
    c.erase(c.begin(), c.begin() + static_cast<std::ptrdiff_t>(c.size() / 2));
    if (c.empty()) return false;
    // The netgroup with the most of what is left; its youngest peer goes.
    std::map<std::string, std::size_t> sizes;
    for (const auto& x : c) ++sizes[x.group];
    const candidate* victim = nullptr;
    for (const auto& x : c) {
      if (!victim || sizes[x.group] > sizes[victim->group] ||
          (sizes[x.group] == sizes[victim->group] && x.e->admitted > victim->e->admitted))
        victim = &x;
    }
    entry& v = *victim->e;
    report(severity::notice,
           fmt::format("evicting inbound peer {} (netgroup {}, {} of the unprotected) to admit {}",
                       v.p->remote().to_string(), victim->group, sizes[victim->group], newcomer));
    v.evicted = true;
    ++evicting_;
    uncount_inbound(v);
    v.p->destroy();
    return true;
  }

  void admit(tcp::socket sock) {
    error_code ec;
    auto ep = sock.remote_endpoint(ec);
    if (ec) return;  // already gone
    auto p = peer::inbound(strand_, std::move(sock), opts_.peer());
    const std::string addr = address_key(ep.address());
    std::string refused;
    if (barred(addr))
      refused = "barred";
    else if (active_.contains(p->id()))
      refused = "already active";
    else if (opts_.max_inbound_per_host && inbound_per_host_[addr] >= *opts_.max_inbound_per_host)
      refused = fmt::format("max_inbound_per_host ({}) reached", *opts_.max_inbound_per_host);
    else if (const auto full = capacity_refusal(); !full.empty())
      if (!opts_.evict_inbound || !evict_one(p->remote().to_string())) refused = full;
    if (inbound_per_host_.contains(addr) && inbound_per_host_[addr] == 0)
      inbound_per_host_.erase(addr);
    if (!refused.empty()) {
      p->destroy();
      events_.listen_connect.emit(p, false);
      report(severity::notice,
             fmt::format("inbound {} refused: {}", p->remote().to_string(), refused));
      return;
    }
    track(p);
    auto& e = active_.at(p->id());
    e.counted_inbound = true;
    e.inbound_addr = addr;
    e.admitted = ++admissions_;
    ++inbound_count_;
    ++inbound_per_host_[addr];
    p->start();
    events_.listen_connect.emit(p, true);
  }

  // ---- launch and shutdown ----

  error_code launch(const host_list& seeds) {
    if (state_ != manager_state::created) return asio::error::already_started;
    if (opts_.listen) {
      try {
        open_listener();
      } catch (const boost::system::system_error& e) {
        report(severity::error, fmt::format("cannot listen on {}:{}: {}", opts_.listen_address,
                                            opts_.port, e.code().message()));
        return e.code();  // the state stays "new"
      }
    }
    set_state(manager_state::launching);
    add_pool(seeds);
    auto self = shared_from_this();
    if (acceptor_)
      asio::co_spawn(
          strand_, [self] { return self->accept_loop(); }, rethrow{});
    asio::co_spawn(
        strand_, [self] { return self->check_loop(); }, rethrow{});
    asio::co_spawn(
        strand_, [self] { return self->status_loop(); }, rethrow{});
    return {};
  }

  void stop_background() {
    set_state(manager_state::shutdown);
    if (acceptor_) {
      error_code ig;
      acceptor_->close(ig);
    }
    check_timer_.cancel();
    status_timer_.cancel();
    pool_.clear();
  }

  asio::awaitable<error_code> shutdown() {
    auto self = shared_from_this();
    if (state_ != manager_state::shutdown) {
      stop_background();
      for (auto& [id, e] : active_) e.p->close();
    }
    while (!active_.empty()) {
      co_await all_closed_.async_wait(use_nothrow);
      auto cs = co_await asio::this_coro::cancellation_state;
      if (cs.cancelled() != asio::cancellation_type::none)
        co_return make_error_code(asio::error::operation_aborted);
    }
    // Wake any other shutdown() waiter.
    all_closed_.cancel();
    co_return error_code{};
  }

  /// The handle was destroyed without shutdown(): close everything at once.
  void abandon() {
    if (state_ != manager_state::shutdown) stop_background();
    std::vector<std::shared_ptr<peer>> peers;
    for (auto& [id, e] : active_) peers.push_back(e.p);
    for (auto& p : peers) p->destroy();
  }

  // ---- send ----

  sent_messages send(int number, const std::string& prop, const match_values& values,
                     const shared_bytes& frame, answer_spec spec) {
    std::vector<std::shared_ptr<peer>> matching;
    for (auto& [id, e] : active_) {
      if (e.p->is_closed()) continue;
      auto v = e.p->get(prop);
      if (v && values.matches(*v)) matching.push_back(e.p);
    }
    if (number > 0 && matching.size() > static_cast<std::size_t>(number)) {
      // Partial Fisher-Yates: the first `number` entries become a uniform random sample.
      for (std::size_t i = 0; i < static_cast<std::size_t>(number); ++i) {
        std::uniform_int_distribution<std::size_t> pick(i, matching.size() - 1);
        std::swap(matching[i], matching[pick(rng_)]);
      }
      matching.resize(static_cast<std::size_t>(number));
    }
    std::map<boost::uuids::uuid, std::shared_ptr<peer>> chosen;
    for (auto& p : matching) chosen.emplace(p->id(), p);
    auto collector = std::make_shared<answer_collector>(strand_, chosen, std::move(spec));
    collector->start(collectors_);  // before sending: no answer can be missed
    // Each peer's transport queues and writes it on its own strand.
    for (auto& p : matching) p->send_frame_at_once(frame);
    return sent_messages(std::move(chosen), std::move(collector), strand_);
  }

  peer::executor_type strand_;
  manager_options opts_;
  manager_events events_;
  std::shared_ptr<collector_registry> collectors_ = std::make_shared<collector_registry>();
  manager_state state_ = manager_state::created;
  std::unordered_map<boost::uuids::uuid, entry, boost::hash<boost::uuids::uuid>> active_;
  std::vector<host> pool_;
  std::unordered_map<std::string, time_point> bars_;
  std::optional<tcp::acceptor> acceptor_;
  std::size_t inbound_count_ = 0;
  std::size_t evicting_ = 0;  // evicted peers not yet closed
  std::uint64_t admissions_ = 0;
  std::unordered_map<std::string, std::size_t> inbound_per_host_;
  asio::steady_timer check_timer_;
  asio::steady_timer status_timer_;
  asio::steady_timer all_closed_;  // parked at max; cancelled when the last peer is gone
  std::mt19937_64 rng_;
};

}  // namespace detail

// ---- peer_manager --------------------------------------------------------------------

peer_manager::peer_manager(asio::any_io_executor ex, manager_options opts) {
  opts.validate();
  impl_ = std::make_shared<detail::manager_impl>(std::move(ex), std::move(opts));
}

peer_manager::~peer_manager() {
  if (!impl_) return;
  auto impl = impl_;
  if (impl->strand_.running_in_this_thread())
    impl->abandon();
  else
    asio::post(impl->strand_, [impl] { impl->abandon(); });
}

peer_manager::executor_type peer_manager::get_executor() const noexcept {
  return impl_->strand_;
}

const manager_options& peer_manager::options() const noexcept {
  return impl_->opts_;
}

manager_events& peer_manager::events() noexcept {
  return impl_->events_;
}

namespace detail {

// The operations behind the public templates: each runs on the manager's strand.

asio::awaitable<op_result<>> launch_op(std::shared_ptr<manager_impl> m, host_list seeds) {
  co_return op_result<>{m->launch(seeds)};
}

asio::awaitable<op_result<>> shutdown_op(std::shared_ptr<manager_impl> m) {
  co_await asio::this_coro::reset_cancellation_state(asio::enable_total_cancellation());
  co_return op_result<>{co_await m->shutdown()};
}

asio::awaitable<op_result<>> check_pool_op(std::shared_ptr<manager_impl> m) {
  co_await m->check_pool();
  co_return op_result<>{};
}

asio::awaitable<op_result<>> del_active_op(std::shared_ptr<manager_impl> m, std::shared_ptr<peer> p,
                                           std::string reason) {
  co_await asio::this_coro::reset_cancellation_state(asio::enable_total_cancellation());
  m->report(severity::info,
            fmt::format("disconnecting peer {}: {}", p->remote().to_string(), reason));
  co_return co_await p->disconnect(asio::as_tuple(asio::use_awaitable));
}

asio::awaitable<op_result<sent_messages>> send_op(std::shared_ptr<manager_impl> m, int number,
                                                  std::string prop, match_values values,
                                                  shared_bytes frame, answer_spec spec) {
  co_return op_result<sent_messages>{error_code{},
                                     m->send(number, prop, values, frame, std::move(spec))};
}

}  // namespace detail

shared_bytes peer_manager::prepare_send(const std::string& prop, const match_values& values,
                                        std::string_view command,
                                        std::span<const std::uint8_t> payload,
                                        const answer_spec& spec) const {
  // Validated and encoded at the call site, once for every chosen peer.
  if (prop.empty()) throw std::invalid_argument("p2p: send() property name is empty");
  if (values.values().empty())
    throw std::invalid_argument(
        fmt::format("p2p: send() has no value to match '{}' against", prop));
  if (!spec.command.empty()) check_command(spec.command);
  return encode_frame(impl_->opts_.magic, command, payload);
}

void peer_manager::check_peer(const std::shared_ptr<peer>& p) {
  if (!p) throw std::invalid_argument("p2p: del_active needs a peer, got null");
}

void peer_manager::add_pool(host_list hosts) {
  auto impl = impl_;
  asio::post(impl->strand_, [impl, hosts = std::move(hosts)] { impl->add_pool(hosts); });
}

void peer_manager::add_active(host_list hosts) {
  auto impl = impl_;
  asio::post(impl->strand_, [impl, hosts = std::move(hosts)] { impl->add_active(hosts); });
}

void peer_manager::bar(std::string host_name, std::chrono::milliseconds d) {
  if (host_name.empty()) throw std::invalid_argument("p2p: bar() host name is empty");
  if (d.count() <= 0)
    throw std::invalid_argument(
        fmt::format("p2p: bar duration {} ms for '{}' is not positive", d.count(), host_name));
  auto impl = impl_;
  asio::post(impl->strand_, [impl, h = detail::host_key(host_name), d] { impl->bar_key(h, d); });
}

manager_state peer_manager::state() const noexcept {
  return impl_->state_;
}

std::size_t peer_manager::active_count() const noexcept {
  return impl_->active_.size();
}

std::size_t peer_manager::collecting() const noexcept {
  return impl_->collectors_->size();
}

std::vector<std::shared_ptr<peer>> peer_manager::active_peers() const {
  std::vector<std::shared_ptr<peer>> out;
  for (auto& [id, e] : impl_->active_) out.push_back(e.p);
  return out;
}

std::shared_ptr<peer> peer_manager::find(const boost::uuids::uuid& id) const {
  auto it = impl_->active_.find(id);
  return it == impl_->active_.end() ? nullptr : it->second.p;
}

std::vector<host> peer_manager::pool() const {
  return impl_->pool_;
}

std::chrono::steady_clock::duration peer_manager::barred_for(std::string_view host_name) const {
  return impl_->barred_for(host_name);
}

manager_status peer_manager::status() const {
  return impl_->status();
}

std::optional<tcp::endpoint> peer_manager::listen_endpoint() const {
  if (!impl_->acceptor_ || !impl_->acceptor_->is_open()) return std::nullopt;
  error_code ec;
  auto ep = impl_->acceptor_->local_endpoint(ec);
  if (ec) return std::nullopt;
  return ep;
}

}  // namespace p2p
