#pragma once
// What a peer's transport hands to its home executor, in order, one batch per read.

#include <p2p/message.hpp>
#include <p2p/peer.hpp>

#include <boost/asio/ip/tcp.hpp>

#include <optional>
#include <variant>

#include "peer_fsm.hpp"

namespace p2p::detail {

struct peer_note {
  /// A lifecycle transition, with the endpoint once connected.
  struct change {
    peer_transition t;
    std::optional<boost::asio::ip::tcp::endpoint> endpoint;
  };

  std::variant<message, report, change> v;
};

}  // namespace p2p::detail
