#pragma once
/// @file manager.hpp
/// The peer manager: a pool of known hosts and a set of active peers kept between bounds.

#include <p2p/address_book.hpp>
#include <p2p/answers.hpp>
#include <p2p/async.hpp>
#include <p2p/events.hpp>
#include <p2p/host.hpp>
#include <p2p/lifecycle.hpp>
#include <p2p/options.hpp>
#include <p2p/peer.hpp>
#include <p2p/stats.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/uuid/uuid.hpp>

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace p2p {

namespace detail {
class manager_impl;

// The operations behind peer_manager's templates (src/manager.cpp).
boost::asio::awaitable<op_result<>> launch_op(std::shared_ptr<manager_impl> m, host_list seeds);
boost::asio::awaitable<op_result<>> shutdown_op(std::shared_ptr<manager_impl> m);
boost::asio::awaitable<op_result<>> check_pool_op(std::shared_ptr<manager_impl> m);
boost::asio::awaitable<op_result<>> del_active_op(std::shared_ptr<manager_impl> m,
                                                  std::shared_ptr<peer> p, std::string reason);
boost::asio::awaitable<op_result<manager_snapshot>> snapshot_op(std::shared_ptr<manager_impl> m);
boost::asio::awaitable<op_result<sent_messages>> send_op(std::shared_ptr<manager_impl> m,
                                                         int number, std::string prop,
                                                         match_values values, shared_bytes frame,
                                                         answer_spec spec);
}  // namespace detail

/// A status event: how the manager stands.
struct manager_status {
  /// Peers being connected or connected.
  std::size_t active = 0;
  /// Known hosts in the address book (not counting those being dialled or connected).
  std::size_t pool = 0;
  /// Hosts currently barred.
  std::size_t barred = 0;
};

/// The events of a manager; peer events are bubbled up with the peer.
///
/// @par Thread safety
/// Emitted on the manager's strand (`peer_manager::get_executor`); subscribe and
/// unsubscribe there too.
/// @par Exceptions
/// What a callback throws is caught: the other callbacks still run, the manager carries on
/// exactly as if the callback had returned (no loop ends, no peer is closed or barred for
/// it), and it is reported (`report`, severity error, naming the event). An exception
/// thrown by a `report` callback itself propagates out of `io_context::run()` from a handler
/// of its own; calling `run()` again carries on.
struct manager_events : private detail::event_sink {
  /// The manager's state changed from the first to the second value.
  signal<manager_state, manager_state> state_change;
  /// An active peer connected (TCP up; before the handshake hook).
  signal<std::shared_ptr<peer>> peer_connect;
  /// An active peer passed the handshake hook (or connected, without one).
  signal<std::shared_ptr<peer>> peer_ready;
  /// An active peer's remote closed its side.
  signal<std::shared_ptr<peer>> peer_end;
  /// An active peer failed.
  signal<std::shared_ptr<peer>, boost::system::error_code> peer_error;
  /// An active peer sent a message.
  signal<std::shared_ptr<peer>, message> peer_message;
  /// An inbound connection arrived: the peer, and whether it was admitted.
  signal<std::shared_ptr<peer>, bool> listen_connect;
  /// Something worth logging, with its severity.
  signal<p2p::report> report;
  /// Periodic status.
  signal<manager_status> status;

  /// Every signal's callback exceptions go to the manager.
  manager_events();

  /// The per-command message event: "foo" → the `foo` message event of any active peer.
  signal<std::shared_ptr<peer>, message>& command(std::string_view command);

  /// Emits `peer_message` and the matching per-command event.
  void emit_message(const std::shared_ptr<peer>& p, const message& m);

 private:
  friend class detail::manager_impl;

  std::map<std::string, signal<std::shared_ptr<peer>, message>, std::less<>> commands_;
};

/// Manages a network of peers: the pool, the active set, the listener and the checks.
///
/// States: "new" → "launching" → "running" (first peer connected) → "shutdown".
/// @par Thread safety
/// The manager's state (pool, active set, bars, admission) lives on its strand
/// (`get_executor()`), where every event callback runs and the peers' home-side members
/// (properties, state, their events) live. Each peer's transport runs on a strand of its
/// own. Any thread: the awaitable functions and `add_pool`, `add_active`, `bar` (they post:
/// called from a callback, none runs inline). Strand only: the getters and `events()`.
/// @par Lifetimes
/// Destroying the manager closes every connection at once; prefer `co_await shutdown()`.
class peer_manager {
 public:
  /// The strand all of the manager's work runs on.
  using executor_type = peer::executor_type;

  /// A manager running on `ex` (a strand of it is made).
  /// @throws std::invalid_argument for bad options, naming the value.
  explicit peer_manager(boost::asio::any_io_executor ex, manager_options opts = {});

  peer_manager(const peer_manager&) = delete;
  peer_manager& operator=(const peer_manager&) = delete;

  /// Closes every connection at once if `shutdown()` was not awaited.
  ~peer_manager();

  /// The manager's strand.
  executor_type get_executor() const noexcept;

  /// The options in force.
  const manager_options& options() const noexcept;

  /// The manager's events.
  manager_events& events() noexcept;

  /// Adds `seeds` with pool semantics (launch target `(min_peers + max_peers) / 2`), opens
  /// the listener if `listen`, runs a pool check now and every `check_interval`, and a
  /// status event every `status_interval`. Completes with `void(error_code)` once the
  /// listener is open: the listener's error (reported too), or `asio::error::already_started`
  /// if the manager was launched before.
  /// @par Per-Operation Cancellation
  /// None: it completes without waiting.
  template <class Token = default_token>
  auto launch(host_list seeds = {}, Token&& token = {}) {
    return detail::async_run(get_executor(), detail::launch_op(impl_, std::move(seeds)),
                             std::forward<Token>(token));
  }

  /// For each host: skipped if barred; connected now if fewer than the target are active,
  /// else kept in the pool (no duplicates, nothing already active). Malformed entries are
  /// reported (warning) and skipped.
  void add_pool(host_list hosts);

  /// Connects to each host now, whatever the count, unless barred or already active.
  void add_active(host_list hosts);

  /// Gracefully disconnects `p` (if still open), removes it, reports the remaining count
  /// and runs a pool check (not in shutdown). Completes with `void(error_code)` when the
  /// peer is closed.
  /// @throws std::invalid_argument for a null peer.
  /// @par Per-Operation Cancellation
  /// Terminal, partial and total: the wait ends with `operation_aborted`; the disconnect
  /// goes on.
  template <class Token = default_token>
  auto del_active(std::shared_ptr<peer> p, std::string reason, Token&& token = {}) {
    check_peer(p);
    return detail::async_run(get_executor(),
                             detail::del_active_op(impl_, std::move(p), std::move(reason)),
                             std::forward<Token>(token));
  }

  /// Runs one pool check now: idle peers out, refill to `min_peers` from the pool,
  /// surplus over `max_peers` reported. Completes with `void(error_code)`.
  /// @par Per-Operation Cancellation
  /// None: it completes without waiting.
  template <class Token = default_token>
  auto check_pool(Token&& token = {}) {
    return detail::async_run(get_executor(), detail::check_pool_op(impl_),
                             std::forward<Token>(token));
  }

  /// State "shutdown", listener closed, every peer disconnected gracefully (forced after
  /// `disconnect_timeout`), timers stopped: afterwards the manager leaves no work behind.
  /// Completes with `void(error_code)` when the last peer is closed.
  /// @par Per-Operation Cancellation
  /// Terminal, partial and total: the wait ends with `operation_aborted`; the shutdown goes
  /// on (a later `shutdown()` waits for it).
  template <class Token = default_token>
  auto shutdown(Token&& token = {}) {
    return detail::async_run(get_executor(), detail::shutdown_op(impl_),
                             std::forward<Token>(token));
  }

  /// Sends `command` + `payload` to `number` random active peers whose property `prop`
  /// matches `values` (all of them when `number` <= 0), and collects answers per `spec`.
  /// The frame is encoded once. Completes with `void(error_code, sent_messages)`; nothing
  /// matched → an empty result, not an error.
  /// @throws std::invalid_argument for a bad command or an empty `prop`.
  /// @par Per-Operation Cancellation
  /// None: it completes without waiting (cancel the result's `wait` instead).
  template <class Token = default_token>
  auto send(int number, std::string prop, match_values values, std::string_view command,
            std::span<const std::uint8_t> payload, answer_spec spec = {}, Token&& token = {}) {
    auto frame = prepare_send(prop, values, command, payload, spec);
    return detail::async_run(get_executor(),
                             detail::send_op(impl_, number, std::move(prop), std::move(values),
                                             std::move(frame), std::move(spec)),
                             std::forward<Token>(token));
  }

  /// A snapshot of the manager: its state, counts, counters since it was made and every active
  /// peer's statistics (each read on its peer's own strand, off the per-message path).
  /// Completes with `void(error_code, manager_snapshot)`. Any thread: from a thread that runs
  /// none of the io_context, `snapshot(asio::use_future).get()` waits for it.
  /// @par Per-Operation Cancellation
  /// None: it completes without waiting.
  template <class Token = default_token>
  auto snapshot(Token&& token = {}) {
    return detail::async_run(get_executor(), detail::snapshot_op(impl_),
                             std::forward<Token>(token));
  }

  /// Bars `host_name` (an address or DNS name) for `d` more (added to what is left).
  void bar(std::string host_name, std::chrono::milliseconds d);

  /// The manager's state. (Strand only, as are the getters below.)
  manager_state state() const noexcept;

  /// Peers being connected or connected.
  std::size_t active_count() const noexcept;

  /// The active peers.
  std::vector<std::shared_ptr<peer>> active_peers() const;

  /// send() results still collecting answers (a wait not yet over, or a result not yet
  /// destroyed): what the manager does per message on their behalf.
  std::size_t collecting() const noexcept;

  /// The active peer with `id`, or null.
  std::shared_ptr<peer> find(const boost::uuids::uuid& id) const;

  /// Hosts in the pool (the address book's hosts; those being dialled or connected are out).
  std::vector<host> pool() const;

  /// The address book: the pool with each host's history, and the bars.
  const address_book& book() const noexcept;

  /// How much longer `host_name` is barred (zero if it is not).
  std::chrono::steady_clock::duration barred_for(std::string_view host_name) const;

  /// Active, pool and barred counts.
  manager_status status() const;

  /// The listener's bound endpoint, once launched with `listen`.
  std::optional<boost::asio::ip::tcp::endpoint> listen_endpoint() const;

  /// The metrics endpoint's bound endpoint, once launched with `metrics_address` (and until
  /// shutdown). Any thread.
  std::optional<boost::asio::ip::tcp::endpoint> metrics_endpoint() const;

 private:
  shared_bytes prepare_send(const std::string& prop, const match_values& values,
                            std::string_view command, std::span<const std::uint8_t> payload,
                            const answer_spec& spec) const;
  static void check_peer(const std::shared_ptr<peer>& p);

  std::shared_ptr<detail::manager_impl> impl_;
};

}  // namespace p2p
