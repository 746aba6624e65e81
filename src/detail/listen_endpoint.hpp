#pragma once
// "IP:PORT" / "[IPv6]:PORT" of a listener (port 0: any free port); no names, no lookups.

#include <boost/asio/ip/tcp.hpp>

#include <optional>
#include <string_view>

namespace p2p::detail {

/// The endpoint `text` names, or nullopt when it is not IP:PORT with a port of 0..65535.
std::optional<boost::asio::ip::tcp::endpoint> parse_listen_endpoint(std::string_view text);

}  // namespace p2p::detail
