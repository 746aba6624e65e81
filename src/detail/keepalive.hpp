#pragma once
// The keepalive's state: one timer and the ping in flight (made when the handshake ends).

#include <p2p/peer.hpp>

#include <boost/asio/steady_timer.hpp>

#include <cstdint>

namespace p2p {

struct peer::keepalive {
  explicit keepalive(const boost::asio::any_io_executor& ex) : timer(ex) {}

  boost::asio::steady_timer timer;
  std::uint64_t nonce = 0;
  clock_type::time_point sent_at{};    // of the ping in flight
  clock_type::time_point next_ping{};  // when the next one is due
  bool outstanding = false;            // a ping waits for its pong
};

}  // namespace p2p
