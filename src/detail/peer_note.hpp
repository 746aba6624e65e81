#pragma once
// What a peer's transport hands to its home executor, in order, one batch per read.

#include <p2p/message.hpp>
#include <p2p/peer.hpp>

#include <boost/asio/ip/tcp.hpp>

#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

#include "peer_fsm.hpp"

namespace p2p::detail {

struct peer_note {
  /// A lifecycle transition, with the endpoint once connected.
  struct change {
    peer_transition t;
    std::optional<boost::asio::ip::tcp::endpoint> endpoint;
    /// The transport's statistics as the peer closed (the manager adds them to its totals).
    std::unique_ptr<peer_stats> final_stats;
  };

  /// Built in place in the outbox: a message is moved once, not twice.
  template <class T>

  requires(!std::is_same_v<std::remove_cvref_t<T>, peer_note>) explicit peer_note(T&& x)
      : v(std::forward<T>(x)) {}

  std::variant<message, report, change> v;
};

}  // namespace p2p::detail
