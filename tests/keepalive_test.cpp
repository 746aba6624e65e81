// The keepalive: pings with a nonce, pongs that give the round-trip time, the timeout for a
// peer that stopped answering, and remotes that never speak ping (loopback only).

#include <p2p/error.hpp>
#include <p2p/manager.hpp>
#include <p2p/peer.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/strand.hpp>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <string>
#include <vector>

#include "support/async.hpp"
#include "support/loopback.hpp"
#include "support/peers.hpp"
#include "support/raw_frames.hpp"
#include "support/reports.hpp"

namespace asio = boost::asio;
using asio::ip::tcp;
using p2p::test::at_home;
using p2p::test::connect_pair;
using p2p::test::connect_raw;
using p2p::test::eventually;
using p2p::test::host_of;
using p2p::test::read_message;
using p2p::test::run_async_test;
using p2p::test::sleep_for;
using p2p::test::strand_of;
using p2p::test::write_frame;
using namespace std::chrono_literals;

namespace {

using awaitable_void = asio::awaitable<void>;

p2p::peer_options pinging(std::chrono::milliseconds interval, std::chrono::milliseconds timeout) {
  p2p::peer_options o;
  o.ping_interval = interval;
  o.ping_timeout = timeout;
  return o;
}

/// What an outbound peer under test saw: its error, its close and its reports.
struct watched {
  std::vector<boost::system::error_code> errors;
  bool closed = false;
  std::vector<p2p::report> reports;
  std::vector<p2p::subscription> subs;
};

void watch(p2p::peer& p, watched& w) {
  w.subs.push_back(
      p.events().error.subscribe([&w](boost::system::error_code ec) { w.errors.push_back(ec); }));
  w.subs.push_back(p.events().close.subscribe([&w] { w.closed = true; }));
  w.subs.push_back(
      p.events().report.subscribe([&w](const p2p::report& r) { w.reports.push_back(r); }));
}

}  // namespace

TEST_CASE("keepalive: pongs give the round-trip time and pings reach the application too",
          "[keepalive]") {
  for (int threads : {1, 2}) {
    DYNAMIC_SECTION("on " << threads << " threads") {
      run_async_test(
          [](asio::io_context& io) -> awaitable_void {
            auto acceptor = p2p::test::listen_on(io.get_executor());
            auto out = p2p::peer::outbound(strand_of(io), host_of(acceptor), pinging(50ms, 2s));
            auto accept = acceptor.async_accept(asio::use_awaitable);
            co_await out->connect();
            auto in = p2p::peer::inbound(strand_of(io), co_await std::move(accept));
            std::atomic<int> pings_seen{0};
            p2p::subscription sub;
            co_await at_home(in, [&] {
              sub = in->events().command("ping").subscribe(
                  [&](const p2p::message& m) { pings_seen += m.payload.size() == 8 ? 1 : 0; });
            });
            in->start();
            // Nothing is pinged before the handshake ends.
            co_await sleep_for(150ms);
            auto before = co_await out->stats();
            REQUIRE(before.pings_sent == 0);
            REQUIRE_FALSE(before.rtt_last);
            co_await at_home(out, [&] { out->end_handshake(); });
            p2p::peer_stats s;
            for (int i = 0; i < 400 && s.pongs_received < 3; ++i) {
              co_await sleep_for(10ms);
              s = co_await out->stats();
            }
            REQUIRE(s.pongs_received >= 3);
            REQUIRE(s.pings_sent >= s.pongs_received);
            REQUIRE(s.rtt_last.has_value());
            REQUIRE(s.rtt_min.has_value());
            REQUIRE(*s.rtt_min <= *s.rtt_last);
            REQUIRE(s.rtt_min->count() > 0);
            // The remote answered each ping (pong sent) and delivered it as a message too.
            auto r = co_await in->stats();
            const auto row = [](const p2p::peer_stats& st, std::string_view c) {
              for (const auto& x : st.commands)
                if (x.command == c) return x;
              return p2p::command_stats{};
            };
            REQUIRE(row(r, "ping").messages_received >= 3);
            REQUIRE(row(r, "pong").messages_sent >= 3);
            REQUIRE(row(r, "ping").bytes_received == row(r, "ping").messages_received * 32);
            REQUIRE(pings_seen.load() >= 3);
            // The inbound side never ended its handshake: it sends no pings of its own.
            REQUIRE(r.pings_sent == 0);
            co_await out->disconnect();
            co_await in->wait_closed();
            co_await at_home(in, [&] { sub = {}; });
          },
          20s, threads);
    }
  }
}

TEST_CASE("keepalive: a peer that answered pings and then falls silent ends at ping_timeout",
          "[keepalive]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto [out, raw] = co_await connect_raw(io, pinging(100ms, 300ms));
    watched w;
    watch(*out, w);
    co_await at_home(out, [&] { out->end_handshake(); });
    // Answer the first ping, then read on without answering (a connection that died quietly).
    p2p::decoder dec;
    auto ping = co_await read_message(raw, dec);
    REQUIRE(ping);
    REQUIRE(ping->command == "ping");
    REQUIRE(ping->payload.size() == 8);
    co_await write_frame(raw, "pong", ping->payload.span());
    int later_pings = 0;
    for (int i = 0; i < 50; ++i) {
      auto m = co_await read_message(raw, dec);
      if (!m) break;  // the peer closed the connection
      if (m->command == "ping") ++later_pings;
    }
    REQUIRE(co_await eventually([&] { return w.closed; }, 5s));
    REQUIRE(w.errors == std::vector<boost::system::error_code>{p2p::error::timeout});
    REQUIRE(p2p::test::has_report(w.reports, "no pong within 300 ms"));
    REQUIRE(later_pings >= 1);
    auto s = co_await out->stats();
    REQUIRE(s.pongs_received == 1);
    REQUIRE(s.ping_outstanding);
  });
}

TEST_CASE("keepalive: a remote that never answers pings is kept unless require_pong",
          "[keepalive]") {
  for (bool require : {false, true}) {
    DYNAMIC_SECTION("require_pong " << require) {
      run_async_test([require](asio::io_context& io) -> awaitable_void {
        auto opts = pinging(50ms, 100ms);
        opts.require_pong = require;
        auto [out, raw] = co_await connect_raw(io, opts);
        watched w;
        watch(*out, w);
        co_await at_home(out, [&] { out->end_handshake(); });
        // The Node original: it reads pings as ordinary messages and never answers.
        p2p::decoder dec;
        int pings = 0;
        const auto until = std::chrono::steady_clock::now() + 700ms;
        while (std::chrono::steady_clock::now() < until && pings < 100) {
          auto m = co_await read_message(raw, dec);
          if (!m) break;
          if (m->command == "ping") ++pings;
        }
        if (require) {
          REQUIRE(co_await eventually([&] { return w.closed; }, 5s));
          REQUIRE(w.errors == std::vector<boost::system::error_code>{p2p::error::timeout});
          REQUIRE(pings == 1);
        } else {
          // Several ping_timeouts passed: still open, and pinged again after each timeout.
          REQUIRE_FALSE(w.closed);
          REQUIRE(w.errors.empty());
          REQUIRE(pings >= 3);
          auto s = co_await out->stats();
          REQUIRE(s.pongs_received == 0);
          REQUIRE_FALSE(s.rtt_last);
          raw.close();
          co_await out->wait_closed();
        }
      });
    }
  }
}

TEST_CASE("keepalive: answer_pings false leaves the pings to the application", "[keepalive]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto acceptor = p2p::test::listen_on(io.get_executor());
    auto out = p2p::peer::outbound(strand_of(io), host_of(acceptor));
    auto accept = acceptor.async_accept(asio::use_awaitable);
    co_await out->connect();
    p2p::peer_options quiet;
    quiet.answer_pings = false;
    auto in = p2p::peer::inbound(strand_of(io), co_await std::move(accept), quiet);
    in->start();
    const std::vector<std::uint8_t> nonce{1, 2, 3, 4, 5, 6, 7, 8};
    out->send("ping", nonce);
    out->send("done");
    co_await in->receive("done", 5s);
    co_await sleep_for(100ms);
    auto s = co_await in->stats();
    for (const auto& row : s.commands) REQUIRE(row.command != "pong");
    REQUIRE(s.messages_sent == 0);
    // With the default, a ping of 8 bytes or more is answered with its first 8 bytes.
    auto in2_acc = acceptor.async_accept(asio::use_awaitable);
    auto out2 = p2p::peer::outbound(strand_of(io), host_of(acceptor));
    co_await out2->connect();
    auto in2 = p2p::peer::inbound(strand_of(io), co_await std::move(in2_acc));
    in2->start();
    std::vector<std::uint8_t> long_ping(nonce);
    long_ping.push_back(9);
    out2->send("ping", long_ping);
    auto pong = co_await out2->receive("pong", 5s);
    REQUIRE(std::vector<std::uint8_t>(pong.payload.data(), pong.payload.data() + 8) == nonce);
    REQUIRE(pong.payload.size() == 8);
    co_await out->disconnect();
    co_await out2->disconnect();
    co_await in->wait_closed();
    co_await in2->wait_closed();
  });
}

TEST_CASE("keepalive: two managers that exchange nothing stay connected past handshake_timeout",
          "[keepalive]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto ro = p2p::test::remote_options("127.0.0.1");
    ro.handshake_timeout = 300ms;
    ro.ping_interval = 100ms;
    p2p::peer_manager remote(io.get_executor(), ro);
    co_await remote.launch();
    auto o = p2p::test::loopback_options();
    o.min_peers = 1;
    o.max_peers = 2;
    o.ping_interval = 100ms;
    o.listen = false;
    o.port = 8333;  // without a listener: the port of bare hosts
    p2p::peer_manager local(io.get_executor(), o);
    const auto port = remote.listen_endpoint()->port();
    co_await local.launch(p2p::host_list(fmt::format("127.0.0.1:{}", port)));
    // Three handshake_timeouts: the pings are the valid frames the admission waits for.
    co_await sleep_for(1000ms);
    auto a = co_await local.snapshot();
    auto b = co_await remote.snapshot();
    REQUIRE(a.active == 1);
    REQUIRE(b.active == 1);
    REQUIRE(b.counters.first_message_timeouts == 0);
    REQUIRE(a.peers.at(0).pongs_received >= 3);
    REQUIRE(b.peers.at(0).pongs_received >= 3);
    REQUIRE(a.peers.at(0).rtt_min.has_value());
    co_await local.shutdown();
    co_await remote.shutdown();
  });
}
