#pragma once
/// @file peer.hpp
/// One TCP connection speaking the framed protocol, run by one coroutine.

#include <p2p/async.hpp>
#include <p2p/codec.hpp>
#include <p2p/events.hpp>
#include <p2p/host.hpp>
#include <p2p/lifecycle.hpp>
#include <p2p/message.hpp>
#include <p2p/options.hpp>
#include <p2p/stats.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/system/error_code.hpp>
#include <boost/uuid/uuid.hpp>

#include <atomic>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace p2p {

/// How serious a report is, in increasing order.
enum class severity { info, notice, warning, error };

/// "info", "notice", "warning" or "error".
std::string_view to_string(severity s) noexcept;

/// A report event: something the application may want to log.
struct report {
  /// How serious it is.
  severity level = severity::info;
  /// What happened, naming the peer or value concerned.
  std::string message;
};

/// A value of a peer property: bool, integer, floating point or string.
class property {
 public:
  /// The stored alternatives.
  using variant_type = std::variant<bool, std::int64_t, double, std::string>;

  /// A boolean.
  property(bool v) : v_(v) {}

  /// An integer.
  template <std::integral T>

  requires(!std::same_as<T, bool>) property(T v) : v_(to_int64(v)) {}

  /// A floating-point number.
  property(double v) : v_(v) {}

  /// A string.
  property(std::string v) : v_(std::move(v)) {}

  /// A string.
  property(std::string_view v) : v_(std::string(v)) {}

  /// A string.
  property(const char* v) : v_(std::string(v ? v : "")) {}

  /// The value.
  const variant_type& value() const noexcept { return v_; }

  /// The string, or nullptr when this is not a string.
  const std::string* string() const noexcept { return std::get_if<std::string>(&v_); }

  /// Selection equality: strings case-insensitively, numbers by value, bools with bools.
  bool matches(const property& other) const noexcept;

  /// Exact equality.
  friend bool operator==(const property& a, const property& b) noexcept { return a.v_ == b.v_; }

  /// Text rendering: true, 42, 1.5, text.
  std::string to_string() const;

 private:
  template <class T>
  static std::int64_t to_int64(T v) {
    if constexpr (std::is_unsigned_v<T> && sizeof(T) >= sizeof(std::int64_t)) {
      if (v > static_cast<T>(INT64_MAX)) throw_out_of_range(static_cast<std::uint64_t>(v));
    }
    return static_cast<std::int64_t>(v);
  }

  [[noreturn]] static void throw_out_of_range(std::uint64_t v);

  variant_type v_;
};

/// The events of one peer.
///
/// @par Thread safety
/// Emitted, subscribed and unsubscribed on the peer's home executor (`peer::get_executor`:
/// the manager's strand for a peer of a manager).
/// @par Exceptions
/// What a callback throws is caught; the other callbacks still run and the peer carries on
/// as if the callback had returned. It is reported (`report`, severity error); an exception
/// thrown by a `report` callback itself propagates out of `io_context::run()`.
struct peer_events : private detail::event_sink {
  /// State changed from the first to the second value.
  signal<std::string, std::string> state_change;
  /// The TCP connection is up (state is already "connected").
  signal<> connect;
  /// The remote closed its side.
  signal<> end;
  /// An error ended the connection.
  signal<boost::system::error_code> error;
  /// The connection is closed; nothing more will be emitted.
  signal<> close;
  /// A valid message arrived.
  signal<p2p::message> message;
  /// Something worth logging happened (garbage skipped, a frame dropped, a callback threw).
  signal<p2p::report> report;

  /// Every signal's callback exceptions go to the owner's sink.
  peer_events();

  /// The per-command message event: "foo" → the `foo` message event.
  signal<p2p::message>& command(std::string_view command);

  /// Emits `message` and the matching per-command event.
  void emit_message(const p2p::message& m);

 private:
  friend class peer;

  std::map<std::string, signal<p2p::message>, std::less<>> commands_;
};

class peer;

namespace detail {

class manager_impl;
class keepalive_service;

/// Internal: how a manager follows its peers, with one pointer per peer rather than a
/// subscription per event. Called on the peer's home executor (the manager's strand), after
/// the peer's state is settled and before the peer's own signals.
class peer_observer {
 public:
  virtual void on_peer_connect(const std::shared_ptr<peer>& p) = 0;
  virtual void on_peer_message(const std::shared_ptr<peer>& p, const message& m) = 0;
  virtual void on_peer_report(const report& r) = 0;
  /// The peer closed: the remote ended it (`remote_ended`), or it failed (`ec`), or neither.
  /// `final_stats`: the transport's statistics at the close (null if it never ran).
  virtual void on_peer_close(const std::shared_ptr<peer>& p, bool remote_ended,
                             const boost::system::error_code& ec,
                             const peer_stats* final_stats) = 0;

 protected:
  ~peer_observer() = default;
};

struct peer_note;
enum class peer_input : int;

}  // namespace detail

/// One TCP peer: a coroutine reads frames in a loop; another drains the send queue while
/// there is something to send.
///
/// Two executors. The *transport* (socket, decoder, checksum, send queue, lifecycle) runs on
/// a strand of the peer's own, so the peers of one manager are read and decoded on every
/// thread that runs the `io_context`. The *home* executor (`get_executor()`: the manager's
/// strand, or the strand given to a standalone peer) is where its events are emitted and its
/// properties, state string and `receive()` live. The transport hands over what it read in
/// one post per read, with the lifecycle changes in order after the messages before them.
///
/// Library lifecycle: `peer_lifecycle` (created → connecting → open → disconnecting →
/// closed), changed in one place; each change is notified on the home executor after it is
/// complete. The seed's `state` string: "new" → "connecting" → "connected" → "disconnecting"
/// → "closed", any other value the application's. Once a peer is closed, or `destroy()` or
/// `fail()` was called, nothing more of it is delivered, even frames already read.
/// @par Thread safety
/// Any thread: `send`, `send_frame`, `close`, `destroy`, `fail`, the asynchronous operations,
/// `id`, `remote`, `is_inbound`, `last_seen`, `has_received`, `frames_received`,
/// `queued_bytes`, `garbage_received`. Home executor only: `state`, `set_state`, `set`,
/// `get`, `endpoint`, `lifecycle`, `is_open`, `is_closed`, `last_message`, `events`,
/// `end_handshake`. State-changing calls post: none runs inline inside a callback.
/// @par Lifetimes
/// Held by `shared_ptr`; the running coroutines keep the peer alive until it is closed.
class peer : public std::enable_shared_from_this<peer> {
  struct private_tag {};

 public:
  /// The home executor type: a strand.
  using executor_type = boost::asio::strand<boost::asio::any_io_executor>;
  /// The clock of `last_seen`.
  using clock_type = std::chrono::steady_clock;

  /// A peer that will connect to `remote` when `connect()` is awaited; `home` is where its
  /// events run (its transport gets a strand of its own on the same execution context).
  static std::shared_ptr<peer> outbound(executor_type home, host remote, peer_options opts = {});

  /// A peer over an accepted `socket`; call `start()` to run it.
  static std::shared_ptr<peer> inbound(executor_type home, boost::asio::ip::tcp::socket socket,
                                       peer_options opts = {});

  /// Use the factories.
  peer(private_tag, executor_type home, host remote, boost::asio::ip::tcp::socket socket,
       bool inbound, peer_options opts);

  peer(const peer&) = delete;
  peer& operator=(const peer&) = delete;
  ~peer();

  /// Resolves and connects (outbound), then runs the peer. Completes with `void(error_code)`
  /// once the outcome was delivered on the home executor: the connect's failure
  /// (`error::connect_timeout`, a socket error), `asio::error::already_started` for a peer
  /// that is inbound or was started before, or success.
  /// @par Per-Operation Cancellation
  /// Terminal, partial and total: the connect is abandoned, the peer closes (with no error
  /// event), and the operation completes with `operation_aborted`.
  template <class Token = default_token>
  auto connect(Token&& token = {}) {
    return detail::async_run(home_, connect_op(shared_from_this()), std::forward<Token>(token));
  }

  /// Runs an inbound peer: state "connected", connect event, then the read loop.
  void start();

  /// The home executor: where events run and properties live.
  executor_type get_executor() const noexcept { return home_; }

  /// Name-based (v5) UUID of "host:port" of the remote.
  const boost::uuids::uuid& id() const noexcept { return id_; }

  /// The id an outbound peer to `remote` gets: v5 UUID of "p2p://host:port".
  static boost::uuids::uuid outbound_id(const host& remote);

  /// The id as text.
  std::string id_string() const;

  /// The remote as given (outbound) or as accepted (inbound).
  const host& remote() const noexcept { return remote_; }

  /// The connected remote endpoint (unset before the connection is up). Home only.
  std::optional<boost::asio::ip::tcp::endpoint> endpoint() const noexcept { return endpoint_; }

  /// True for an accepted connection.
  bool is_inbound() const noexcept { return inbound_; }

  /// The library's lifecycle as last notified on the home executor. Home only.
  peer_lifecycle lifecycle() const noexcept { return lifecycle_; }

  /// The seed's state string. Home only.
  const std::string& state() const noexcept { return state_; }

  /// Sets the state and raises a state-change event (if it changed). Home only.
  void set_state(std::string state);

  /// Sets a property; "state" must be a string and goes through `set_state`. Home only.
  /// @throws std::invalid_argument for an empty name, or a non-string "state".
  void set(std::string_view name, property value);

  /// A property, or nullopt; "state" is always present. Home only.
  std::optional<property> get(std::string_view name) const;

  /// When bytes last arrived (the creation time before any did).
  clock_type::time_point last_seen() const noexcept {
    return clock_type::time_point(clock_type::duration(last_seen_.load(relaxed)));
  }

  /// Bytes arrived at all since connecting.
  bool has_received() const noexcept { return received_any_.load(relaxed); }

  /// True while open (connected, no disconnect started). Home only.
  bool is_open() const noexcept { return lifecycle_ == peer_lifecycle::open; }

  /// Bytes queued and not yet written.
  std::size_t queued_bytes() const noexcept { return queued_bytes_seen_.load(relaxed); }

  /// Valid frames received.
  std::uint64_t frames_received() const noexcept { return frames_seen_.load(relaxed); }

  /// When the last valid message was delivered (clock_type's epoch if none was). Home only.
  clock_type::time_point last_message() const noexcept { return last_message_; }

  /// Queues `command` + `payload`; never blocks. Dropped once the peer is disconnecting.
  /// @throws std::invalid_argument for a bad command (nothing is sent).
  void send(std::string_view command, std::span<const std::uint8_t> payload = {});

  /// Queues an already encoded frame (see `encode_frame`), shared with other peers.
  void send_frame(shared_bytes frame);

  /// Queues `command` + `payload` and completes with `void(error_code)` when it is written,
  /// or with `error::peer_closed` if the peer closed first (or was already closing).
  /// @throws std::invalid_argument for a bad command (nothing is sent).
  /// @par Per-Operation Cancellation
  /// Terminal, partial and total: the wait ends with `operation_aborted`; the frame stays
  /// queued and is still written.
  template <class Token = default_token>
  auto send_and_wait(std::string_view command, std::span<const std::uint8_t> payload = {},
                     Token&& token = {}) {
    return detail::async_run(
        io_, send_and_wait_op(shared_from_this(), encode_frame(opts_.magic, command, payload)),
        std::forward<Token>(token));
  }

  /// The next message with `command`: completes with `void(error_code, message)`, the error
  /// being `error::timeout` after `timeout`, or `error::peer_closed` once the peer is closed.
  ///
  /// The handshake rule: from the connection coming up until `end_handshake()` (which a
  /// manager calls when its handshake hook returns), every message no waiting `receive()`
  /// took is kept, and `receive()` looks there first. The window is bounded: a message that
  /// would make it hold more than 64 messages or 1 MiB ends it (a warning report says so). So a
  /// handshake written as straight-line `receive()` calls gets every message, whatever it awaits in
  /// between. A message goes to at most one `receive()` (the longest waiting for its command).
  /// After the handshake the buffer is released and `receive()` waits for messages that arrive
  /// after the call. Messages still go to every event subscriber as well.
  /// @throws std::invalid_argument for a bad command.
  /// @par Per-Operation Cancellation
  /// Terminal, partial and total: completes with `operation_aborted`; no message is taken.
  template <class Token = default_token>
  auto receive(std::string command, std::chrono::milliseconds timeout, Token&& token = {}) {
    check_command(command);
    return detail::async_run(home_, receive_op(shared_from_this(), std::move(command), timeout),
                             std::forward<Token>(token));
  }

  /// Ends the handshake window of `receive()` and releases its buffer, and starts the
  /// keepalive (`ping_interval`): a manager calls it when its handshake hook returns; a
  /// standalone peer pings once its application calls it. Home only.
  void end_handshake();

  /// The peer's statistics now (see `peer_stats`; `ready` is the manager's to fill).
  /// Completes with `void(error_code, peer_stats)`; any thread.
  /// @par Per-Operation Cancellation
  /// None: it completes without waiting.
  template <class Token = default_token>
  auto stats(Token&& token = {}) {
    return detail::async_run(home_, stats_op(shared_from_this()), std::forward<Token>(token));
  }

  /// Graceful disconnect: no new sends, flush, half-close, wait for the remote to close
  /// (bounded by `disconnect_timeout`), close. Completes with `void(error_code)` when the
  /// close was delivered on the home executor.
  /// @par Per-Operation Cancellation
  /// Terminal, partial and total: the wait ends with `operation_aborted`; the disconnect
  /// goes on.
  template <class Token = default_token>
  auto disconnect(Token&& token = {}) {
    return detail::async_run(home_, disconnect_op(shared_from_this()), std::forward<Token>(token));
  }

  /// Starts a graceful disconnect without waiting for it (posts).
  void close();

  /// Closes at once, dropping what is queued; nothing more is delivered (posts).
  void destroy();

  /// Closes at once with `ec` reported as the error (error event, then close; posts).
  void fail(boost::system::error_code ec);

  /// Total garbage bytes skipped on this connection.
  std::uint64_t garbage_received() const noexcept { return garbage_seen_.load(relaxed); }

  /// Completes with `void(error_code)` when the close was delivered (at once if it was).
  /// @par Per-Operation Cancellation
  /// Terminal, partial and total: completes with `operation_aborted`; the peer is untouched.
  template <class Token = default_token>
  auto wait_closed(Token&& token = {}) {
    return detail::async_run(home_, wait_closed_op(shared_from_this()), std::forward<Token>(token));
  }

  /// True once the close was delivered. Home only.
  bool is_closed() const noexcept { return lifecycle_ == peer_lifecycle::closed; }

  /// The peer's events (made on first use). Home only.
  peer_events& events();

 private:
  static constexpr auto relaxed = std::memory_order_relaxed;
  struct receive_waiter;
  enum class write_result { drained, blocked, failed };

  // ---- transport: on io_ ----
  static boost::asio::awaitable<detail::op_result<>> connect_op(std::shared_ptr<peer> self);
  static boost::asio::awaitable<detail::op_result<>> send_and_wait_op(std::shared_ptr<peer> self,
                                                                      shared_bytes frame);
  static boost::asio::awaitable<detail::op_result<message>> receive_op(
      std::shared_ptr<peer> self, std::string command, std::chrono::milliseconds timeout);
  static boost::asio::awaitable<detail::op_result<>> disconnect_op(std::shared_ptr<peer> self);
  static boost::asio::awaitable<detail::op_result<>> wait_closed_op(std::shared_ptr<peer> self);
  static boost::asio::awaitable<detail::op_result<peer_stats>> stats_op(std::shared_ptr<peer> self);
  static boost::asio::awaitable<peer_stats> transport_stats(std::shared_ptr<peer> self);
  boost::asio::awaitable<boost::system::error_code> connect_on_transport();
  boost::asio::awaitable<boost::system::error_code> connect_within_timeout();
  boost::asio::awaitable<boost::system::error_code> resolve_and_connect();
  boost::asio::awaitable<boost::system::error_code> read_loop();
  boost::asio::awaitable<void> write_loop();
  boost::asio::awaitable<void> disconnect_watchdog();
  void apply(detail::peer_input in, boost::system::error_code ec = {});
  void on_reader_done(boost::system::error_code ec);
  void start_reader();
  void schedule_flush();
  void flush_now();
  write_result write_now();
  void consume_written(std::size_t n);
  void enqueue(shared_bytes frame);      // queue_frame, then a posted flush
  bool queue_frame(shared_bytes frame);  // false if dropped (closing, or over the limit)
  void send_frame_at_once(shared_bytes frame);
  void drop_queue();
  void shutdown_send();
  boost::system::error_code dispatch(std::span<const std::uint8_t> bytes);
  boost::system::error_code handle(decode_event& ev);
  void note_report(severity level, std::string text);
  void publish();
  boost::asio::steady_timer& transport_wake();
  // Statistics and keepalive (peer_stats.cpp), on io_.
  void fill_transport_stats(peer_stats& s) const;
  void count_received(const message& m);
  void count_sent(const shared_bytes& frame);
  void start_keepalive();
  void keepalive_tick();
  void on_pong(const message& m);
  void answer_ping(const message& m);

  // ---- home: on home_ ----
  void deliver(std::vector<detail::peer_note>& batch, clock_type::time_point read_at);
  void deliver_message(const std::shared_ptr<peer>& self, const message& m);
  void deliver_transition(const std::shared_ptr<peer>& self, detail::peer_note& n);
  void set_library_state(std::string_view s);
  void emit_report(const p2p::report& r);
  void callback_threw(std::string_view event, std::exception_ptr e);
  void keep_for_receive(const message& m);
  void close_window();
  void wake_home();
  boost::asio::awaitable<boost::system::error_code> wait_closed_at_home();

  // Immutable after construction.
  executor_type home_;
  executor_type io_;
  host remote_;
  bool inbound_;
  peer_options opts_;
  boost::uuids::uuid id_;

  // Transport state (io_ only).
  boost::asio::ip::tcp::socket socket_;
  peer_lifecycle io_state_ = peer_lifecycle::created;  // the lifecycle (detail::next_state)
  decoder decoder_;
  std::size_t garbage_run_ = 0;
  std::uint64_t frames_ = 0;
  // The send queue: frames from queue_head_ on are unwritten (a vector, not a deque: an
  // empty deque still holds a 512-byte block, and most peers are idle).
  std::vector<shared_bytes> queue_;
  std::size_t queue_head_ = 0;
  std::size_t front_written_ = 0;  // bytes of queue_[queue_head_] already written
  std::size_t queued_bytes_ = 0;
  std::uint64_t enqueued_seq_ = 0;
  std::uint64_t written_seq_ = 0;
  bool reading_ = false;       // the reader runs
  bool writing_ = false;       // a writer coroutine waits for the socket
  bool flush_posted_ = false;  // a write_now() is posted
  bool connect_expired_ = false;
  boost::system::error_code write_error_;  // a write error that closed the socket
  std::vector<detail::peer_note> outbox_;  // for home, sent in one post
  std::size_t batch_hint_ = 0;             // the last batch's size (capped)

  // Statistics (io_ only; peer_stats.cpp). The time points are clock_type's.
  struct counters {
    std::uint64_t bytes_in = 0;
    std::uint64_t bytes_out = 0;
    std::uint64_t frames_out = 0;
    std::uint64_t pings_sent = 0;
    std::uint64_t pongs = 0;
    std::uint64_t dropped = 0;
    violation_counts violations{};
    std::vector<command_stats> commands;
    std::uint32_t row_in = 0;   // the row the last received command was counted in
    std::uint32_t row_out = 0;  // ... and the last sent one
    clock_type::time_point connected{};
    clock_type::time_point last_in{};
    clock_type::time_point last_out{};
    std::int64_t rtt_last_us = -1;
    std::int64_t rtt_min_us = -1;
  } stats_;

  // The keepalive (io_ only): woken by the context's detail::keepalive_service, so an idle
  // peer holds no timer of its own.
  struct keepalive_state {
    std::uint64_t nonce = 0;
    clock_type::time_point sent_at{};    // of the ping in flight
    clock_type::time_point next_ping{};  // when the next one is due
    bool started = false;                // the handshake ended; ticks are scheduled
    bool outstanding = false;            // a ping waits for its pong
  } keepalive_;

  // Made on first use (an idle peer should cost little).
  std::unique_ptr<boost::asio::steady_timer> transport_wake_;  // send_and_wait
  std::unique_ptr<boost::asio::steady_timer> disconnect_timer_;

  // Read by other threads: written by the transport, relaxed.
  std::atomic<clock_type::rep> last_seen_;
  std::atomic<bool> received_any_{false};
  std::atomic<std::uint64_t> frames_seen_{0};
  std::atomic<std::uint64_t> garbage_seen_{0};
  std::atomic<std::size_t> queued_bytes_seen_{0};
  // destroy()/fail() asked, from any thread: deliver nothing more.
  std::atomic<bool> silenced_{false};

  // Home state (home_ only).
  peer_lifecycle lifecycle_ = peer_lifecycle::created;
  std::string state_ = "new";
  std::map<std::string, property, std::less<>> props_;
  std::optional<boost::asio::ip::tcp::endpoint> endpoint_;
  clock_type::time_point last_message_{};
  bool handshake_open_ = true;
  std::vector<message> inbox_;  // the handshake window's unclaimed messages, bounded
  std::size_t inbox_bytes_ = 0;
  std::vector<receive_waiter*> receivers_;
  std::unique_ptr<boost::asio::steady_timer> home_wake_;  // wait_closed
  std::unique_ptr<peer_events> events_;
  detail::peer_observer* observer_ = nullptr;  // the owning manager, if any

  friend class detail::manager_impl;
  friend class detail::keepalive_service;
};

}  // namespace p2p
