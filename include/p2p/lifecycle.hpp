#pragma once
/// @file lifecycle.hpp
/// The library's own lifecycle of a peer connection.

#include <string_view>

namespace p2p {

/// Where a peer's connection stands, as the library sees it. Separate from the seed's free
/// `state` string, which the library sets to "connecting", "connected", "disconnecting" and
/// "closed" on these transitions and the application may set to anything else.
enum class peer_lifecycle {
  created,        ///< Made, not started.
  connecting,     ///< An outbound connect (name lookup included) is in progress.
  open,           ///< Connected: frames flow both ways.
  disconnecting,  ///< Graceful disconnect: no new sends, flushing, waiting for the remote.
  closed,         ///< Terminal: the socket is closed and nothing more is delivered.
};

/// "created", "connecting", "open", "disconnecting" or "closed".
std::string_view to_string(peer_lifecycle s) noexcept;

}  // namespace p2p
