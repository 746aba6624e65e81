#pragma once
/// @file lifecycle.hpp
/// The library's own lifecycles of a peer connection and of a manager.

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

/// A manager's state: "new" → "launching" (in `launch`) → "running" (first peer connected)
/// → "shutdown".
enum class manager_state {
  created,    ///< "new": made, not launched.
  launching,  ///< "launching": launched, no peer connected yet.
  running,    ///< "running": a peer has connected.
  shutdown,   ///< "shutdown": `shutdown()` began or the manager was abandoned.
};

/// "new", "launching", "running" or "shutdown" (the seed's names).
std::string_view to_string(manager_state s) noexcept;

}  // namespace p2p
