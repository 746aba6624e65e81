#pragma once
// The peer's lifecycle as a sans-I/O state machine: the I/O shell (peer.cpp) feeds it what
// happened, performs the actions it returns, then queues the notifications it returns.

#include <p2p/lifecycle.hpp>

#include <boost/system/error_code.hpp>

namespace p2p::detail {

/// What happened to a peer's transport: the inputs of the lifecycle.
enum class peer_input : int {
  start_connect,       ///< connect() began (outbound).
  connected,           ///< The TCP connect completed.
  connect_failed,      ///< The connect failed or timed out (with its error).
  start_inbound,       ///< An accepted connection starts.
  close,               ///< Graceful disconnect asked for.
  destroy,             ///< Close at once (with an error when it is a failure: fail()).
  remote_eof,          ///< The remote closed its side.
  failed,              ///< A read, write or protocol error (with its error).
  disconnect_expired,  ///< disconnect_timeout passed while disconnecting.
};

/// One transition: the state before and after, what the shell must do, what to notify.
struct peer_transition {
  peer_lifecycle from = peer_lifecycle::created;
  peer_lifecycle to = peer_lifecycle::created;
  /// Close the socket, drop the send queue, stop the timers.
  bool close_socket = false;
  /// Arm disconnect_timeout; half-close once the send queue has drained.
  bool begin_disconnect = false;
  /// Start the read loop (and flush what was queued before).
  bool start_reader = false;
  /// Notify `end`: the remote closed its side.
  bool remote_ended = false;
  /// Notify `error` with this (empty: no error to report).
  boost::system::error_code error;

  /// True when the state changed (nothing else is set otherwise).
  bool changed() const noexcept { return from != to; }
};

/// Errors that mean "we closed it ourselves", not a failure of the remote.
bool is_own_close(const boost::system::error_code& ec) noexcept;

/// The lifecycle's one transition function: applies `in` (with `ec` for connect_failed,
/// destroy and failed) to `from`; an input that does not apply changes nothing.
peer_transition next_state(peer_lifecycle from, peer_input in,
                           boost::system::error_code ec = {}) noexcept;

/// Frames may still be queued for sending in `s` (not disconnecting, not closed).
inline bool accepts_frames(peer_lifecycle s) noexcept {
  return s != peer_lifecycle::disconnecting && s != peer_lifecycle::closed;
}

}  // namespace p2p::detail
