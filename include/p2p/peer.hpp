#pragma once
/// @file peer.hpp
/// One TCP connection speaking the framed protocol, run by one coroutine.

#include <p2p/codec.hpp>
#include <p2p/events.hpp>
#include <p2p/host.hpp>
#include <p2p/message.hpp>
#include <p2p/options.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/system/error_code.hpp>
#include <boost/uuid/uuid.hpp>

#include <chrono>
#include <concepts>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
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
/// Subscribe and unsubscribe on the peer's executor (see `peer::get_executor`).
struct peer_events {
  /// State changed from the first to the second value.
  signal<std::string, std::string> state_change;
  /// The TCP connection is up (state is already "connected").
  signal<> connect;
  /// The remote closed its side.
  signal<> end;
  /// An error ended or will end the connection.
  signal<boost::system::error_code> error;
  /// The connection is closed; nothing more will be emitted but state changes.
  signal<> close;
  /// A valid message arrived.
  signal<p2p::message> message;
  /// Something worth logging happened (garbage skipped, a frame dropped).
  signal<p2p::report> report;

  /// The per-command message event: "foo" → the `foo` message event.
  signal<p2p::message>& command(std::string_view command);

  /// Emits `message` and the matching per-command event.
  void emit_message(const p2p::message& m);

 private:
  std::map<std::string, signal<p2p::message>, std::less<>> commands_;
};

class peer;

namespace detail {

class manager_impl;

/// Internal: how a manager follows its peers, with one pointer per peer rather than a
/// subscription (a heap slot and a std::function) per event. Called on the strand, before
/// the peer's own signals.
class peer_observer {
 public:
  virtual void on_peer_connect(peer& p) = 0;
  virtual void on_peer_error(peer& p, const boost::system::error_code& ec) = 0;
  virtual void on_peer_end(peer& p) = 0;
  virtual void on_peer_message(const std::shared_ptr<peer>& p, const message& m) = 0;
  virtual void on_peer_report(const report& r) = 0;
  virtual void on_peer_close(peer& p) = 0;

 protected:
  ~peer_observer() = default;
};

}  // namespace detail

/// One TCP peer: a coroutine reads frames in a loop; another drains the send queue while
/// there is something to send.
///
/// States: "new" → "connecting" → "connected" → "disconnecting" → "closed"; any other
/// value is the application's. Properties are named values; "state" is one of them.
/// @par Thread safety
/// Every member function must be called on the peer's executor (a strand, shared with its
/// manager), except `send`, `close`, `destroy` and the awaitable functions, which may be
/// called from any thread.
/// @par Lifetimes
/// Held by `shared_ptr`; the running coroutines keep the peer alive until it is closed.
class peer : public std::enable_shared_from_this<peer> {
  struct private_tag {};

 public:
  /// The strand every operation of this peer runs on.
  using executor_type = boost::asio::strand<boost::asio::any_io_executor>;
  /// The clock of `last_seen`.
  using clock_type = std::chrono::steady_clock;

  /// A peer that will connect to `remote` when `connect()` is awaited.
  static std::shared_ptr<peer> outbound(executor_type strand, host remote, peer_options opts = {});

  /// A peer over an accepted `socket`; call `start()` to run it.
  static std::shared_ptr<peer> inbound(executor_type strand, boost::asio::ip::tcp::socket socket,
                                       peer_options opts = {});

  /// Use the factories.
  peer(private_tag, executor_type strand, host remote, boost::asio::ip::tcp::socket socket,
       bool inbound, peer_options opts);

  peer(const peer&) = delete;
  peer& operator=(const peer&) = delete;
  ~peer();

  /// Resolves and connects (outbound), then runs the peer. Returns the failure, if any.
  /// @par Cancellation
  /// Cancelling the caller destroys the peer.
  boost::asio::awaitable<boost::system::error_code> connect();

  /// Runs an inbound peer: state "connected", connect event, then the read/write loops.
  void start();

  /// The strand.
  executor_type get_executor() const noexcept { return strand_; }

  /// Name-based (v5) UUID of "host:port" of the remote.
  const boost::uuids::uuid& id() const noexcept { return id_; }

  /// The id an outbound peer to `remote` gets: v5 UUID of "p2p://host:port".
  static boost::uuids::uuid outbound_id(const host& remote);

  /// The id as text.
  std::string id_string() const;

  /// The remote as given (outbound) or as accepted (inbound).
  const host& remote() const noexcept { return remote_; }

  /// The connected remote endpoint (unset before the connection is up).
  std::optional<boost::asio::ip::tcp::endpoint> endpoint() const noexcept { return endpoint_; }

  /// True for an accepted connection.
  bool is_inbound() const noexcept { return inbound_; }

  /// The current state.
  const std::string& state() const noexcept { return state_; }

  /// Sets the state and raises a state-change event (if it changed).
  void set_state(std::string state);

  /// Sets a property; "state" must be a string and goes through `set_state`.
  /// @throws std::invalid_argument for an empty name, or a non-string "state".
  void set(std::string_view name, property value);

  /// A property, or nullopt; "state" is always present.
  std::optional<property> get(std::string_view name) const;

  /// When bytes last arrived (the connect time before any did).
  clock_type::time_point last_seen() const noexcept { return last_seen_; }

  /// Bytes arrived at all since connecting.
  bool has_received() const noexcept { return received_any_; }

  /// True between the connection coming up and a disconnect starting.
  bool is_open() const noexcept { return open_ && !closing_; }

  /// Bytes queued and not yet written.
  std::size_t queued_bytes() const noexcept { return queued_bytes_; }

  /// Total frames and payload bytes received.
  std::uint64_t frames_received() const noexcept { return frames_received_; }

  /// When the last valid message arrived (the epoch of clock_type if none has).
  clock_type::time_point last_message() const noexcept { return last_message_; }

  /// Queues `command` + `payload`; never blocks. Dropped once the peer is closing.
  /// @throws std::invalid_argument for a bad command (nothing is sent).
  void send(std::string_view command, std::span<const std::uint8_t> payload = {});

  /// Queues an already encoded frame (see `encode_frame`), shared with other peers.
  void send_frame(shared_bytes frame);

  /// Queues `command` + `payload` and completes when written (or the peer closed).
  /// @throws std::invalid_argument for a bad command (nothing is sent).
  boost::asio::awaitable<boost::system::error_code> send_and_wait(
      std::string_view command, std::span<const std::uint8_t> payload = {});

  /// The next message with `command`, or nullopt after `timeout` or when the peer closes.
  ///
  /// From the first call on, messages no waiting receive() took are kept (the last 16, at
  /// most 256 KiB) and later calls look there first, so replies that arrive back to back
  /// (`version` then `verack` in one read) are not lost between two receives.
  /// @par Cancellation
  /// Supported; the internal subscription is removed.
  boost::asio::awaitable<std::optional<message>> receive(std::string command,
                                                         std::chrono::milliseconds timeout);

  /// Graceful disconnect: no new sends, flush, half-close, wait for the remote to close
  /// (bounded by `disconnect_timeout`), close. Completes when closed.
  boost::asio::awaitable<void> disconnect();

  /// Starts a graceful disconnect without waiting for it.
  void close();

  /// Closes at once, dropping what is queued.
  void destroy();

  /// Closes at once with `ec` reported as the error (error event, then close).
  void fail(boost::system::error_code ec);

  /// Total garbage bytes skipped on this connection.
  std::uint64_t garbage_received() const noexcept { return decoder_.garbage_total(); }

  /// Completes when the peer is closed (at once if it already is).
  boost::asio::awaitable<void> wait_closed();

  /// True once closed.
  bool is_closed() const noexcept { return closed_; }

  /// The peer's events.
  peer_events& events() noexcept { return events_; }

 private:
  boost::asio::awaitable<boost::system::error_code> connect_on_strand();
  boost::asio::awaitable<boost::system::error_code> connect_within_timeout();
  boost::asio::awaitable<boost::system::error_code> resolve_and_connect();
  boost::asio::awaitable<boost::system::error_code> send_on_strand(shared_bytes frame);
  boost::asio::awaitable<std::optional<message>> receive_on_strand(
      std::string command, std::chrono::milliseconds timeout);
  boost::asio::awaitable<void> wait_closed_on_strand();
  boost::asio::awaitable<void> disconnect_watchdog();
  boost::asio::awaitable<boost::system::error_code> read_loop();
  enum class write_result { drained, blocked, failed };
  boost::asio::awaitable<void> write_loop();
  void schedule_flush();
  void flush_now();
  write_result write_now();
  void consume_written(std::size_t n);
  void shutdown_send();
  void end_with(boost::system::error_code ec);
  boost::asio::steady_timer& waiters_wake();
  void emit_error(const boost::system::error_code& ec);
  void wake_waiters();
  boost::system::error_code dispatch(const std::shared_ptr<peer>& self,
                                     std::span<const std::uint8_t> bytes);
  boost::system::error_code handle(const std::shared_ptr<peer>& self, decode_event& ev);
  void on_connected();
  void enqueue(shared_bytes frame);      // queue_frame, then a posted flush
  bool queue_frame(shared_bytes frame);  // false if dropped (closing, or over the limit)
  void start_disconnect();
  void fail_on_strand(boost::system::error_code ec);
  void finish(boost::system::error_code ec);
  void emit_report(severity level, std::string text);
  void keep_for_receive(message m);

  executor_type strand_;
  host remote_;
  boost::asio::ip::tcp::socket socket_;
  bool inbound_;
  peer_options opts_;
  boost::uuids::uuid id_;
  std::optional<boost::asio::ip::tcp::endpoint> endpoint_;
  std::string state_ = "new";
  std::map<std::string, property, std::less<>> props_;
  clock_type::time_point last_seen_;
  bool received_any_ = false;
  decoder decoder_;
  std::size_t garbage_run_ = 0;
  std::uint64_t frames_received_ = 0;
  clock_type::time_point last_message_{};

  // The send queue: frames from queue_head_ on are unwritten (a vector, not a deque: an
  // empty deque still holds a 512-byte block, and most peers are idle).
  std::vector<shared_bytes> queue_;
  std::size_t queue_head_ = 0;
  std::size_t front_written_ = 0;  // bytes of queue_[queue_head_] already written
  std::size_t queued_bytes_ = 0;
  std::uint64_t enqueued_seq_ = 0;
  std::uint64_t written_seq_ = 0;

  bool connecting_ = false;              // connect() in progress
  bool connect_expired_ = false;         // connect_timeout passed (address path)
  bool running_ = false;                 // the reader spawned
  bool writing_ = false;                 // a writer coroutine waits for the socket
  bool flush_posted_ = false;            // a write_now() is posted
  boost::system::error_code end_error_;  // a write error that closed the socket
  bool open_ = false;                    // connection up
  bool closing_ = false;                 // graceful disconnect started
  bool closed_ = false;                  // finished; terminal
  bool stop_requested_ = false;  // destroy()/fail() called: a connect in flight must not win
  bool error_reported_ = false;
  // Made on first use (an idle peer should cost little). waiters_wake_ is parked at
  // time_point::max() and cancelled as a wake-up.
  std::unique_ptr<boost::asio::steady_timer> waiters_wake_;  // send_and_wait, wait_closed
  std::unique_ptr<boost::asio::steady_timer> disconnect_timer_;
  std::vector<message> inbox_;  // unclaimed messages kept for receive(), bounded
  std::size_t inbox_bytes_ = 0;
  bool inbox_on_ = false;  // set by the first receive()
  bool claimed_ = false;   // a receive() took the message being dispatched
  peer_events events_;
  detail::peer_observer* observer_ = nullptr;  // the owning manager, if any

  friend class detail::manager_impl;
};

}  // namespace p2p
