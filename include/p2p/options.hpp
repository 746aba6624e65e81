#pragma once
/// @file options.hpp
/// Options of peers and of the manager, with the original library's defaults.

#include <p2p/address_book.hpp>
#include <p2p/codec.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace p2p {

class peer;

/// Default bound on the bytes queued for sending to one peer.
constexpr std::size_t default_max_send_buffer = 8 * 1024 * 1024;

/// Default bound on garbage bytes tolerated between two valid frames.
constexpr std::size_t default_max_garbage = 64 * 1024;

/// Options of one peer connection.
struct peer_options {
  /// Network magic of every frame sent and expected.
  std::uint32_t magic = bitcoin_magic;
  /// Largest payload accepted; a header declaring more is a protocol violation.
  std::size_t max_message_size = default_max_message_size;
  /// Bytes that may wait in the send queue; past this the peer is dropped.
  std::size_t max_send_buffer = default_max_send_buffer;
  /// Garbage bytes tolerated before a valid frame; past this the peer is dropped.
  std::size_t max_garbage = default_max_garbage;
  /// Bound on connecting an outbound peer: the name lookup, if any, and the TCP connect
  /// together; it also ends a lookup whose DNS server never answers.
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(5)};
  /// Bound on a graceful disconnect (flush, half-close, wait for the remote to close).
  std::chrono::milliseconds disconnect_timeout{std::chrono::seconds(5)};
  /// DNS servers for name lookups ("127.0.0.1", "127.0.0.1:5353", "[::1]:53"; port 53 when
  /// none is given); empty: the system's (/etc/resolv.conf). /etc/hosts is read first, and
  /// addresses need no lookup. Each lookup (c-ares) has its own channel: a silent server
  /// delays no other peer, and close() or destroy() ends a pending lookup at once.
  std::vector<std::string> dns_servers;
  /// Keepalive: a `ping` with an 8-byte nonce is sent once the handshake ends (see
  /// `peer::end_handshake`) and then every `ping_interval`, one at a time; the matching
  /// `pong` gives the round-trip time. Zero: no pings are sent.
  std::chrono::milliseconds ping_interval{std::chrono::minutes(2)};
  /// A ping not answered within this ends the peer with `error::timeout` -- if the peer has
  /// answered a ping before, or `require_pong` is set. A remote that never answers pings
  /// (the Node original) is kept: `idle_timeout` still covers it.
  std::chrono::milliseconds ping_timeout{std::chrono::minutes(2)};
  /// Every peer must answer pings: a first unanswered ping ends it too.
  bool require_pong = false;
  /// Incoming pings (8 bytes or more) are answered with a `pong` echoing the first 8 bytes;
  /// pings and pongs are delivered to the application as well.
  bool answer_pings = true;
  /// Per-peer statistics (bytes, messages per command, times); `peer::stats()` and the
  /// manager's snapshot read them. Off: only the keepalive's figures and the totals the
  /// library needs anyway are kept.
  bool collect_stats = true;

  /// @throws std::invalid_argument naming the first bad value.
  void validate() const;
};

/// The application's handshake, run for each newly connected peer. It rejects the peer by
/// returning an error (`awaitable<error_code>`) or by throwing (`awaitable<void>` or
/// `awaitable<error_code>`); either form may be assigned.
class handshake_hook {
 public:
  /// The form that reports failure as a value.
  using function_type =
      std::function<boost::asio::awaitable<boost::system::error_code>(std::shared_ptr<peer>)>;

  /// No hook.
  handshake_hook() = default;

  /// A hook that returns an `error_code` (empty: accepted).
  template <class F>

  requires std::is_invocable_r_v<boost::asio::awaitable<boost::system::error_code>, F&,
                                 std::shared_ptr<peer>>
  handshake_hook(F f) : fn_(std::move(f)) {}

  /// A hook that throws to reject.
  template <class F>

  requires std::is_invocable_r_v<boost::asio::awaitable<void>, F&, std::shared_ptr<peer>>
  handshake_hook(F f)
      : fn_(adapt(
            std::function<boost::asio::awaitable<void>(std::shared_ptr<peer>)>(std::move(f)))) {}

  /// True when a hook is set.
  explicit operator bool() const noexcept { return bool(fn_); }

  /// Runs the hook for `p`.
  boost::asio::awaitable<boost::system::error_code> operator()(std::shared_ptr<peer> p) const {
    return fn_(std::move(p));
  }

 private:
  static function_type adapt(std::function<boost::asio::awaitable<void>(std::shared_ptr<peer>)> f);

  function_type fn_;
};

/// Options of a peer_manager. Defaults are the original's where it had them.
struct manager_options {
  /// Accept inbound connections.
  bool listen = true;
  /// Address the listener binds to.
  std::string listen_address = "0.0.0.0";
  /// Listening port, and the port of hosts given without one. 0 (listening only): any free
  /// port, see `peer_manager::listen_endpoint()`; hosts must then carry their port.
  std::uint16_t port = 8333;
  /// Network magic.
  std::uint32_t magic = bitcoin_magic;
  /// The pool check connects from the pool while fewer peers are active.
  std::size_t min_peers = 3;
  /// More active peers than this is reported; inbound connections beyond it are refused.
  std::size_t max_peers = 20;
  /// A peer that sent no valid message for longer is disconnected by the pool check.
  std::chrono::milliseconds idle_timeout{std::chrono::minutes(30)};
  /// Bound on an outbound connect: the name lookup (c-ares) and the TCP connect.
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(5)};
  /// Bound on a graceful disconnect; after it the socket is closed at once.
  std::chrono::milliseconds disconnect_timeout{std::chrono::seconds(5)};
  /// Period of the pool check.
  std::chrono::milliseconds check_interval{std::chrono::seconds(60)};
  /// Period of the status event.
  std::chrono::milliseconds status_interval{std::chrono::seconds(10)};
  /// How long a failing host is barred (bars add up).
  std::chrono::milliseconds bar_duration{std::chrono::minutes(10)};
  /// Bound on the handshake hook, and on an inbound peer delivering its first valid frame.
  std::chrono::milliseconds handshake_timeout{std::chrono::seconds(60)};
  /// Largest payload accepted.
  std::size_t max_message_size = default_max_message_size;
  /// Bytes that may wait in one peer's send queue.
  std::size_t max_send_buffer = default_max_send_buffer;
  /// Garbage bytes tolerated before a valid frame.
  std::size_t max_garbage = default_max_garbage;
  /// Most inbound peers at once; unset means `max_peers - min_peers`.
  std::optional<std::size_t> max_inbound;
  /// Most inbound peers from one address at once; unset means no per-address limit.
  std::optional<std::size_t> max_inbound_per_host;
  /// When an inbound connection finds the inbound slots (or max_peers) full: false refuses
  /// it; true evicts an inbound peer by Bitcoin Core's rule, simplified (README, "Limits
  /// and hostile peers"), and refuses only if every inbound peer is protected.
  bool evict_inbound = false;
  /// The application's handshake, run for every connected peer before it is "ready".
  handshake_hook handshake;
  /// DNS servers for name lookups ("127.0.0.1", "127.0.0.1:5353", "[::1]:53"); empty: the
  /// system's (/etc/resolv.conf).
  std::vector<std::string> dns_servers;
  /// The address book's bounds, backoff and netgroup spread (see address_book.hpp).
  book_options book;
  /// A file the address book is kept in (the original's `useCache`): loaded at launch,
  /// saved every `cache_interval` and at shutdown. Empty: no file.
  std::string use_cache;
  /// Period of saving the address book to `use_cache`.
  std::chrono::milliseconds cache_interval{std::chrono::minutes(5)};
  /// Keepalive and statistics of every peer (see peer_options).
  std::chrono::milliseconds ping_interval{std::chrono::minutes(2)};
  std::chrono::milliseconds ping_timeout{std::chrono::minutes(2)};
  bool require_pong = false;
  bool answer_pings = true;
  bool collect_stats = true;
  /// "HOST:PORT" of the HTTP endpoint serving `/metrics` (Prometheus text) and `/peers`
  /// (JSON) from the manager's snapshot; opened at launch, closed at shutdown. Empty: off.
  /// Port 0 picks a free port (see `peer_manager::metrics_endpoint()`).
  std::string metrics_address;
  /// The clock of the bars and of the address book's history (injectable for tests); unset
  /// means steady_clock.
  std::function<std::chrono::steady_clock::time_point()> clock;

  /// The peer options these manager options imply.
  peer_options peer() const;

  /// The effective inbound limit.
  std::size_t inbound_limit() const noexcept;

  /// @throws std::invalid_argument naming the first bad value (e.g. min_peers > max_peers).
  void validate() const;
};

}  // namespace p2p
