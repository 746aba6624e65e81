#pragma once
/// @file error.hpp
/// Error codes of p2p-manager, their category, and the conditions they map to.

#include <boost/system/error_code.hpp>

#include <type_traits>

namespace p2p {

/// Errors the library reports for peers and frames (never thrown for network input).
enum class error {
  /// A frame header declared a payload above `max_message_size` (protocol violation).
  oversized_message = 1,
  /// A frame's checksum did not match its payload; the frame was dropped.
  bad_checksum,
  /// A frame's command field was not printable ASCII padded with NULs; the frame was dropped.
  bad_command,
  /// More than the allowed amount of garbage arrived without a valid frame.
  too_much_garbage,
  /// The peer did not read and its send queue passed `max_send_buffer`.
  send_buffer_overflow,
  /// An outbound connect did not complete within `connect_timeout`.
  connect_timeout,
  /// A graceful disconnect did not finish within `disconnect_timeout`.
  disconnect_timeout,
  /// The application's handshake hook failed.
  handshake_failed,
  /// The application's handshake hook did not finish within `handshake_timeout`.
  handshake_timeout,
  /// The peer sent nothing for longer than `idle_timeout`.
  idle_timeout,
  /// The peer is closed or closing; nothing more is sent.
  peer_closed,
  /// The manager is shutting down.
  shutting_down,
  /// An operation did not complete within its timeout (e.g. `receive`).
  timeout,
};

/// Broad classes of errors, to compare an `error_code` against.
enum class condition {
  /// The remote broke the wire protocol (oversized frame, too much garbage, bad frames).
  protocol_violation = 1,
  /// Something did not happen in time.
  timeout,
};

/// The category of `p2p::error` values.
const boost::system::error_category& error_category() noexcept;

/// The category of `p2p::condition` values.
const boost::system::error_category& condition_category() noexcept;

/// Makes an `error_code` from a `p2p::error` (found by ADL).
boost::system::error_code make_error_code(error e) noexcept;

/// Makes an `error_condition` from a `p2p::condition` (found by ADL).
boost::system::error_condition make_error_condition(condition c) noexcept;

}  // namespace p2p

namespace boost::system {
template <>
struct is_error_code_enum<p2p::error> : std::true_type {};

template <>
struct is_error_condition_enum<p2p::condition> : std::true_type {};
}  // namespace boost::system
