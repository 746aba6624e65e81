#pragma once
// Standalone peers on loopback: a connected outbound/inbound pair, or an outbound peer whose
// remote is a raw socket the test speaks for.

#include <p2p/peer.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <catch2/catch.hpp>

#include <memory>
#include <string>

#include "async.hpp"

namespace p2p::test {

/// A strand of `io`: the home executor of a standalone peer.
inline p2p::peer::executor_type strand_of(asio::io_context& io) {
  return asio::make_strand(asio::any_io_executor(io.get_executor()));
}

/// The host an acceptor listens on.
inline p2p::host host_of(const asio::ip::tcp::acceptor& a) {
  return {a.local_endpoint().address().to_string(), a.local_endpoint().port()};
}

/// Runs `f()` on the peer's home executor (home-only calls: end_handshake, state, events).
template <class F>
asio::awaitable<void> at_home(const std::shared_ptr<p2p::peer>& p, F f) {
  auto run = [f]() -> asio::awaitable<void> {
    f();
    co_return;
  };
  co_await asio::co_spawn(p->get_executor(), std::move(run), asio::use_awaitable);
}

/// The peer's state, read on its home executor.
inline asio::awaitable<std::string> state_on_strand(std::shared_ptr<p2p::peer> p) {
  auto read = [p]() -> asio::awaitable<std::string> { co_return p->state(); };
  co_return co_await asio::co_spawn(p->get_executor(), std::move(read), asio::use_awaitable);
}

/// An outbound peer connected to an inbound peer over 127.0.0.1 (the inbound one started).
struct peer_pair {
  std::shared_ptr<p2p::peer> out;
  std::shared_ptr<p2p::peer> in;
};

inline asio::awaitable<peer_pair> connect_pair(asio::io_context& io,
                                               p2p::peer_options out_opts = {},
                                               p2p::peer_options in_opts = {}) {
  auto acceptor = listen_on(io.get_executor());
  auto out = p2p::peer::outbound(strand_of(io), host_of(acceptor), out_opts);
  auto accept = acceptor.async_accept(asio::use_awaitable);
  auto [ec] = co_await out->connect(as_result);
  REQUIRE_FALSE(ec);
  auto sock = co_await std::move(accept);
  auto in = p2p::peer::inbound(strand_of(io), std::move(sock), in_opts);
  in->start();
  // state() is strand-only; with several io threads, read it there.
  std::string state;
  for (int i = 0; i < 1000; ++i) {
    state = co_await state_on_strand(in);
    if (state == "connected") break;
    co_await sleep_for(std::chrono::milliseconds(5));
  }
  REQUIRE(state == "connected");
  co_return peer_pair{out, in};
}

/// An outbound peer connected to a raw socket the test speaks for.
struct raw_remote {
  std::shared_ptr<p2p::peer> out;
  asio::ip::tcp::socket raw;
};

inline asio::awaitable<raw_remote> connect_raw(asio::io_context& io,
                                               p2p::peer_options out_opts = {}) {
  auto acceptor = listen_on(io.get_executor());
  auto out = p2p::peer::outbound(strand_of(io), host_of(acceptor), out_opts);
  auto accept = acceptor.async_accept(asio::use_awaitable);
  co_await out->connect();
  // Awaited into a local first: g++ 12 mis-compiles a co_await inside a braced init-list.
  auto raw = co_await std::move(accept);
  co_return raw_remote{out, std::move(raw)};
}

}  // namespace p2p::test
