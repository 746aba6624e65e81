#pragma once
// Shared loopback fixtures for the manager, send and hostile tests.

#include <p2p/manager.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

namespace p2p::test {

/// Options for a manager under test: listener on `address` (loopback), ephemeral port,
/// checks and status every 50 ms, short connect and disconnect bounds, no pings.
inline p2p::manager_options loopback_options(std::string address = "127.0.0.1") {
  p2p::manager_options o;
  o.listen_address = std::move(address);
  o.port = 0;
  o.check_interval = std::chrono::milliseconds(50);
  o.status_interval = std::chrono::milliseconds(50);
  o.connect_timeout = std::chrono::seconds(2);
  o.disconnect_timeout = std::chrono::seconds(1);
  // No keepalive pings: tests count the messages a remote receives (tests/keepalive_test.cpp
  // turns them on).
  o.ping_interval = std::chrono::milliseconds(0);
  return o;
}

/// Options for a remote that only listens: no minimum, room for 500 peers, no background
/// checks to speak of.
inline p2p::manager_options remote_options(std::string address) {
  auto o = loopback_options(std::move(address));
  o.min_peers = 0;
  o.max_peers = 500;
  o.max_inbound = 500;
  o.check_interval = std::chrono::hours(1);
  o.status_interval = std::chrono::hours(1);
  return o;
}

/// A listening remote manager on `address`; it closes gracefully when the other side does.
inline std::unique_ptr<p2p::peer_manager> make_remote(boost::asio::io_context& io,
                                                      std::string address) {
  return std::make_unique<p2p::peer_manager>(io.get_executor(), remote_options(std::move(address)));
}

/// A raw client bound to `from` (its own address, so bars stay apart) connected to `to`.
inline boost::asio::awaitable<boost::asio::ip::tcp::socket> dial_from(
    std::string from, boost::asio::ip::tcp::endpoint to,
    std::optional<int> receive_buffer = std::nullopt) {
  namespace asio = boost::asio;
  using asio::ip::tcp;
  tcp::socket s(co_await asio::this_coro::executor);
  s.open(tcp::v4());
  if (receive_buffer) s.set_option(tcp::socket::receive_buffer_size(*receive_buffer));
  s.bind(tcp::endpoint(asio::ip::make_address(from), 0));
  // Async: a synchronous connect blocks even on a non-blocking socket.
  co_await s.async_connect(to, asio::use_awaitable);
  co_return s;
}

}  // namespace p2p::test
