#pragma once
// The manager's state and policy glue (src/manager*.cpp); every member runs on `strand_`.

#include <p2p/address_book.hpp>
#include <p2p/manager.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/container_hash/hash.hpp>

#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "answer_collector.hpp"

namespace p2p::detail {

class metrics_server;

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;
using time_point = std::chrono::steady_clock::time_point;

/// The manager's state; every member runs on `strand_`.
class manager_impl : public std::enable_shared_from_this<manager_impl>, public peer_observer {
 public:
  manager_impl(asio::any_io_executor ex, manager_options opts)
      : strand_(asio::make_strand(std::move(ex))),
        opts_(std::move(opts)),
        book_(opts_.book),
        check_timer_(strand_),
        status_timer_(strand_),
        cache_timer_(strand_),
        admission_timer_(strand_, time_point::max()),
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

  void bar_key(std::string_view key, std::chrono::steady_clock::duration d);

  void bar_peer(const peer& p);

  std::chrono::steady_clock::duration barred_for(std::string_view name) const;

  bool barred(std::string_view name) const { return book_.barred(name, now()); }

  // ---- reports and state ----

  void report(severity level, std::string text) {
    events_.report.emit(p2p::report{level, std::move(text)});
  }

  /// A callback threw: reported, and the manager carries on as if it had returned.
  void callback_threw(std::string_view event, std::exception_ptr e);

  void set_state(manager_state s);

  std::size_t target() const {
    return state_ == manager_state::launching ? (opts_.min_peers + opts_.max_peers) / 2
                                              : opts_.min_peers;
  }

  manager_status status() {
    return manager_status{active_.size(), book_.size(), book_.barred_count(now())};
  }

  // ---- host lists ----

  std::vector<host> parse(const host_list& list);

  bool is_active(const host& h) const { return active_.contains(peer::outbound_id(h)); }

  /// add_active (`source` active): each host dialled now. add_pool (seed, pool): dialled
  /// now below the target, else learned by the book. Barred hosts are skipped (reported).
  void add_hosts(const host_list& list, host_source source);

  // ---- peers ----

  struct entry {
    std::shared_ptr<peer> p;
    peer::clock_type::time_point since;  // tracked at
    // An outbound peer's host, back to the book at close (a pointer: inbound peers, the
    // many, pay 8 bytes for it).
    std::unique_ptr<host_record> dialled;
    bool ready = false;  // passed the handshake: the host worked
    bool counted_inbound = false;
    std::string inbound_addr;
    std::uint64_t admitted = 0;  // admission order of an inbound peer (older is smaller)
    bool evicted = false;        // closing to make room; no longer counted
  };

  /// Dials the host of `r` (taken out of the book); it goes back with its outcome.
  void dial(host_record r);

  /// Follows p's events (peer_observer) until it closes or the manager goes.
  entry& track(const std::shared_ptr<peer>& p);

  /// The netgroups of the outbound peers, which the refill spreads over.
  std::set<std::string> busy_groups() const;

  void on_peer_connect(const std::shared_ptr<peer>& p) override { on_connect(p); }

  void on_peer_message(const std::shared_ptr<peer>& p, const message& m) override;

  void on_peer_report(const p2p::report& r) override { events_.report.emit(r); }

  void on_peer_close(const std::shared_ptr<peer>& p, bool remote_ended, const error_code& ec,
                     const peer_stats* final_stats) override {
    if (final_stats) add_peer_totals(counters_, *final_stats);
    on_close(p, remote_ended, ec);
  }

  void on_connect(const std::shared_ptr<peer>& p);

  /// Runs the application's hook, bounded by handshake_timeout.
  asio::awaitable<void> handshake(std::shared_ptr<peer> p);

  void mark_ready(const std::shared_ptr<peer>& p);

  /// The hook, made non-throwing for `||`: returns the failure (an error it returned, or
  /// what it threw) as text, empty on success.
  asio::awaitable<std::string> run_hook(std::shared_ptr<peer> p);

  /// A peer closed: the tables are settled first (removed, bar for a remote's failure),
  /// then the reports and events, then a pool check is posted.
  void on_close(const std::shared_ptr<peer>& p, bool remote_ended, const error_code& ec);

  /// A dialled host goes back to the book with its outcome: it worked (passed the
  /// handshake), failed (an error, or the remote closed first), or neither (we closed it
  /// first): then its history stays as it was.
  void return_host(host_record r, bool worked, bool failed);

  // ---- the pool check ----

  asio::awaitable<void> check_pool();

  /// Dials hosts from the book while fewer than min_peers are active. With
  /// spread_netgroups, hosts in netgroups no outbound peer is in come first; a busy group
  /// is used only when no other host is eligible.
  void refill(time_point t);

  asio::awaitable<void> check_loop();

  asio::awaitable<void> status_loop();

  // ---- the listener ----

  void open_listener();

  asio::awaitable<void> accept_loop();

  /// Takes an inbound peer out of the inbound counts (once: it may be evicted, then close).
  void uncount_inbound(entry& e);

  /// Why a new inbound peer finds no room, or empty if it does. Evicted peers that are
  /// still closing do not count.
  std::optional<std::pair<refusal, std::string>> capacity_refusal() const;

  /// Evicts an inbound peer by detail::pick_eviction's rule (README, "Limits and hostile
  /// peers"). Returns false (nobody evicted) when every inbound peer is protected.
  bool evict_one(const std::string& newcomer);

  void admit(tcp::socket sock);

  // ---- admission: a valid frame within handshake_timeout ----

  /// Queues an inbound peer's deadline for its first valid message. One timer serves the
  /// queue: deadlines come in admission order, since handshake_timeout is the same for all.
  void await_first_message(const std::shared_ptr<peer>& p);

  /// Fails the queued peers whose deadline passed without a valid message.
  void check_admissions();

  asio::awaitable<void> admission_loop();

  // ---- the address book's file ----

  /// Loads `use_cache` into the book; a missing or bad file is reported and ignored.
  void load_cache();

  /// Saves the book to `use_cache` (atomically); a failure is reported.
  void save_cache();

  asio::awaitable<void> cache_loop();

  // ---- statistics (manager_stats.cpp) ----

  /// Adds a peer's counts to the manager's totals (a closed peer's, or a live one's into a
  /// snapshot's copy).
  static void add_peer_totals(manager_counters& c, const peer_stats& s);

  /// Counts, counters and every peer's statistics: taken here, then each peer's transport
  /// is read on its own strand.
  asio::awaitable<manager_snapshot> snapshot();

  /// Opens the metrics endpoint (metrics_address); a failure is reported.
  void open_metrics();

  /// Closes it (shutdown, or the handle destroyed).
  void close_metrics();

  // ---- launch and shutdown ----

  error_code launch(const host_list& seeds);

  void stop_background();

  asio::awaitable<error_code> shutdown();

  /// The handle was destroyed without shutdown(): close everything at once.
  void abandon();

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
  address_book book_;  // the pool and the bars
  manager_counters counters_;
  std::shared_ptr<metrics_server> metrics_;
  mutable std::mutex metrics_mutex_;  // metrics_endpoint() is callable from any thread
  std::optional<tcp::endpoint> metrics_at_;
  std::deque<std::pair<peer::clock_type::time_point, std::weak_ptr<peer>>> admission_queue_;
  bool saved_at_shutdown_ = false;
  std::optional<tcp::acceptor> acceptor_;
  std::size_t inbound_count_ = 0;
  std::size_t evicting_ = 0;  // evicted peers not yet closed
  std::uint64_t admissions_ = 0;
  std::unordered_map<std::string, std::size_t> inbound_per_host_;
  asio::steady_timer check_timer_;
  asio::steady_timer status_timer_;
  asio::steady_timer cache_timer_;
  asio::steady_timer admission_timer_;  // the admission queue's front deadline
  asio::steady_timer all_closed_;       // parked at max; cancelled when the last peer is gone
  std::mt19937_64 rng_;
};

}  // namespace p2p::detail
