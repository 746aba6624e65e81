#pragma once
// Name lookups with c-ares: bounded by cancellation, one channel per lookup.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace p2p::detail {

/// What a lookup gives: an error (a c-ares failure mapped to asio::error::host_not_found,
/// host_not_found_try_again, no_data, ... or operation_aborted when cancelled), or the
/// addresses (IPv4 and IPv6) with `port`.
using lookup_result =
    std::pair<boost::system::error_code, std::vector<boost::asio::ip::tcp::endpoint>>;

/// Looks `name` up (A and AAAA, /etc/hosts first) with c-ares, asking `servers` ("a.b.c.d",
/// "a.b.c.d:port", "[v6]:port"; empty: the system's). Each lookup has a channel of its own,
/// so a silent server delays no other lookup. Runs on the calling coroutine's executor
/// (a strand, or a single-threaded context). Cancellation (terminal, partial, total) ends it
/// at once with `operation_aborted`; nothing of it is left running. It never throws for a
/// failed or cancelled lookup, and leaves the calling coroutine's cancellation state reset
/// (total cancellation enabled): await it in a coroutine of its own to keep yours.
boost::asio::awaitable<lookup_result> resolve(std::string name, std::uint16_t port,
                                              std::vector<std::string> servers);

}  // namespace p2p::detail
