// Per-peer statistics after scripted exchanges, the manager's counters, and the snapshot
// taken from a thread that runs none of the io_context (loopback only).

#include <p2p/error.hpp>
#include <p2p/manager.hpp>
#include <p2p/peer.hpp>
#include <p2p/stats.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_future.hpp>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "support/async.hpp"
#include "support/loopback.hpp"
#include "support/peers.hpp"
#include "support/raw_frames.hpp"

namespace asio = boost::asio;
using asio::ip::tcp;
using p2p::test::at_home;
using p2p::test::connect_pair;
using p2p::test::connect_raw;
using p2p::test::eventually;
using p2p::test::host_of;
using p2p::test::run_async_test;
using p2p::test::sleep_for;
using p2p::test::strand_of;
using p2p::test::write_frame;
using namespace std::chrono_literals;

namespace {

using awaitable_void = asio::awaitable<void>;

p2p::command_stats row(const std::vector<p2p::command_stats>& rows, std::string_view c) {
  for (const auto& x : rows)
    if (x.command == c) return x;
  return p2p::command_stats{std::string(c)};
}

p2p::peer_options quiet(bool stats = true) {
  p2p::peer_options o;
  o.ping_interval = 0ms;  // no keepalive traffic in the figures
  o.collect_stats = stats;
  return o;
}

std::vector<std::uint8_t> bytes(std::size_t n) {
  return std::vector<std::uint8_t>(n, 0xab);
}

}  // namespace

TEST_CASE("stats: every per-peer figure after a scripted exchange", "[stats]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto acceptor = p2p::test::listen_on(io.get_executor());
    auto out = p2p::peer::outbound(strand_of(io), host_of(acceptor), quiet());
    auto accept = acceptor.async_accept(asio::use_awaitable);
    const auto before_connect = p2p::wall_clock::now();
    co_await out->connect();
    auto in = p2p::peer::inbound(strand_of(io), co_await std::move(accept), quiet());
    in->start();
    // out → in: 3 × alpha (10 bytes), 1 × beta (empty). in → out: 2 × gamma (5 bytes).
    for (int i = 0; i < 3; ++i) out->send("alpha", bytes(10));
    co_await out->send_and_wait("beta");
    co_await in->receive("beta", 5s);
    in->send("gamma", bytes(5));
    co_await in->send_and_wait("gamma", bytes(5));
    co_await out->receive("gamma", 5s);
    co_await out->receive("gamma", 5s);
    auto s = co_await out->stats();
    auto r = co_await in->stats();

    REQUIRE(s.id == out->id());
    REQUIRE(s.remote == host_of(acceptor));
    REQUIRE_FALSE(s.inbound);
    REQUIRE(r.inbound);
    REQUIRE(s.state == "connected");
    REQUIRE(s.connected_since.has_value());
    REQUIRE(*s.connected_since >= before_connect - 1s);
    REQUIRE(s.bytes_sent == 3 * 34 + 24);
    REQUIRE(s.messages_sent == 4);
    REQUIRE(s.bytes_received == 2 * 29);
    REQUIRE(s.messages_received == 2);
    REQUIRE(row(s.commands, "alpha").messages_sent == 3);
    REQUIRE(row(s.commands, "alpha").bytes_sent == 3 * 34);
    REQUIRE(row(s.commands, "alpha").messages_received == 0);
    REQUIRE(row(s.commands, "beta").messages_sent == 1);
    REQUIRE(row(s.commands, "beta").bytes_sent == 24);
    REQUIRE(row(s.commands, "gamma").messages_received == 2);
    REQUIRE(row(s.commands, "gamma").bytes_received == 2 * 29);
    REQUIRE(s.commands.size() == 3);
    REQUIRE(s.last_send.has_value());
    REQUIRE(s.last_receive.has_value());
    REQUIRE(*s.last_send >= *s.connected_since);
    REQUIRE(*s.last_receive >= *s.last_send);  // the gammas answered the beta
    REQUIRE(s.queued_bytes == 0);
    REQUIRE(s.garbage_bytes == 0);
    REQUIRE(s.violations == p2p::violation_counts{});
    REQUIRE(s.dropped_sends == 0);
    REQUIRE(s.pings_sent == 0);
    REQUIRE_FALSE(s.rtt_last);
    REQUIRE_FALSE(s.rtt_min);
    REQUIRE_FALSE(s.ping_outstanding);
    // The other side mirrors it.
    REQUIRE(r.bytes_received == s.bytes_sent);
    REQUIRE(r.bytes_sent == s.bytes_received);
    REQUIRE(r.messages_received == 4);
    REQUIRE(r.messages_sent == 2);
    REQUIRE(row(r.commands, "alpha").messages_received == 3);
    REQUIRE(row(r.commands, "gamma").messages_sent == 2);

    // Frames given after the peer stopped accepting them are counted as dropped.
    co_await out->disconnect();
    co_await in->wait_closed();
    out->send("late");
    out->send("late");
    REQUIRE(co_await eventually([&]() { return true; }, 50ms));
    co_await sleep_for(50ms);
    auto after = co_await out->stats();
    REQUIRE(after.dropped_sends == 2);
    REQUIRE(after.state == "closed");
    REQUIRE(after.messages_sent == 4);
  });
}

TEST_CASE("stats: garbage, bad checksums and bad commands are counted by kind", "[stats]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto [out, raw] = co_await connect_raw(io, quiet());
    const std::vector<std::uint8_t> junk{1, 2, 3, 4, 5};
    co_await asio::async_write(raw, asio::buffer(junk), asio::use_awaitable);
    co_await write_frame(raw, "ok");
    auto bad = p2p::encode_frame(p2p::bitcoin_magic, "sum", bytes(4));
    std::vector<std::uint8_t> corrupt(bad.data(), bad.data() + bad.size());
    corrupt.back() ^= 0xff;  // the payload no longer matches the checksum
    co_await asio::async_write(raw, asio::buffer(corrupt), asio::use_awaitable);
    co_await write_frame(raw, "ok");
    co_await out->receive("ok", 5s);
    co_await out->receive("ok", 5s);
    auto s = co_await out->stats();
    REQUIRE(s.garbage_bytes == 5);
    REQUIRE(s.violations[static_cast<int>(p2p::violation::garbage)] == 1);
    REQUIRE(s.violations[static_cast<int>(p2p::violation::bad_checksum)] == 1);
    REQUIRE(s.violations[static_cast<int>(p2p::violation::bad_command)] == 0);
    REQUIRE(s.messages_received == 2);
    REQUIRE(s.bytes_received == 5 + 24 + corrupt.size() + 24);
    REQUIRE(row(s.commands, "ok").messages_received == 2);
    REQUIRE(row(s.commands, "sum").messages_received == 0);
    raw.close();
    co_await out->wait_closed();
  });
}

TEST_CASE("stats: a remote inventing commands fills at most 32 rows and one '*other*'", "[stats]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto [out, raw] = co_await connect_raw(io, quiet());
    for (int i = 0; i < 40; ++i) co_await write_frame(raw, fmt::format("cmd{}", i));
    co_await write_frame(raw, "cmd0");
    co_await write_frame(raw, "last");
    co_await out->receive("last", 5s);
    auto s = co_await out->stats();
    REQUIRE(s.commands.size() == p2p::max_tracked_commands + 1);
    REQUIRE(row(s.commands, "cmd0").messages_received == 2);
    REQUIRE(row(s.commands, "cmd31").messages_received == 1);
    REQUIRE(row(s.commands, "cmd32").messages_received == 0);              // not a row of its own
    REQUIRE(row(s.commands, p2p::other_commands).messages_received == 9);  // cmd32..39, last
    REQUIRE(s.messages_received == 42);
    raw.close();
    co_await out->wait_closed();
  });
}

TEST_CASE("stats: collect_stats false keeps the byte and message totals only", "[stats]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto [out, in] = co_await connect_pair(io, quiet(false), quiet(false));
    co_await out->send_and_wait("alpha", bytes(10));
    co_await in->receive("alpha", 5s);
    auto s = co_await out->stats();
    auto r = co_await in->stats();
    REQUIRE(s.bytes_sent == 34);
    REQUIRE(s.messages_sent == 1);
    REQUIRE(r.bytes_received == 34);
    REQUIRE(r.messages_received == 1);
    REQUIRE(s.commands.empty());
    REQUIRE(r.commands.empty());
    REQUIRE_FALSE(s.last_send);
    REQUIRE_FALSE(r.last_receive);
    co_await out->disconnect();
    co_await in->wait_closed();
  });
}

TEST_CASE("stats: the manager's snapshot counts peers, admissions, refusals and closed peers",
          "[stats]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto ro = p2p::test::remote_options("127.0.0.1");
    ro.max_inbound = 1;
    ro.ping_interval = 0ms;
    p2p::peer_manager remote(io.get_executor(), ro);
    co_await remote.launch();
    const auto port = remote.listen_endpoint()->port();
    auto o = p2p::test::loopback_options();
    o.listen = false;
    o.port = 8333;  // without a listener: the port of bare hosts
    o.min_peers = 1;
    o.max_peers = 1;
    o.ping_interval = 0ms;
    p2p::peer_manager local(io.get_executor(), o);
    co_await local.launch(p2p::host_list(fmt::format("127.0.0.1:{}", port)));
    REQUIRE(co_await eventually([&] { return remote.active_count() == 1; }));
    // A second inbound connection finds max_inbound (1) reached.
    auto extra = co_await p2p::test::dial_from("127.0.0.2", *remote.listen_endpoint());
    REQUIRE(co_await eventually([&] {
      std::uint8_t b;
      boost::system::error_code ec;
      extra.non_blocking(true);
      extra.read_some(asio::buffer(&b, 1), ec);
      return ec && ec != asio::error::would_block;
    }));
    // Traffic: three knocks out, the remote answers each.
    auto answer = remote.events().command("knock").subscribe(
        [](const std::shared_ptr<p2p::peer>& p, const p2p::message&) { p->send("answer"); });
    const std::vector<std::uint8_t> payload{1, 2, 3};
    for (int i = 0; i < 3; ++i) {
      auto sent = co_await local.send(0, "state", "connected", "knock", payload, "answer");
      auto got = co_await sent.wait(5s);
      REQUIRE(got.answered.size() == 1);
    }
    auto a = co_await local.snapshot();
    REQUIRE(a.state == p2p::manager_state::running);
    REQUIRE(a.active == 1);
    REQUIRE(a.outbound == 1);
    REQUIRE(a.inbound == 0);
    REQUIRE(a.min_peers == 1);
    REQUIRE(a.max_peers == 1);
    REQUIRE(a.peers.size() == 1);
    REQUIRE(a.peers[0].ready);
    REQUIRE(a.peers[0].remote.port == port);
    REQUIRE(row(a.peers[0].commands, "knock").messages_sent == 3);
    REQUIRE(row(a.counters.commands, "knock").messages_sent == 3);
    REQUIRE(row(a.counters.commands, "answer").messages_received == 3);
    REQUIRE(a.counters.messages_sent == 3);
    REQUIRE(a.counters.outbound_attempts == 1);
    REQUIRE(a.counters.handshakes_passed == 1);
    auto b = co_await remote.snapshot();
    REQUIRE(b.inbound == 1);
    REQUIRE(b.counters.inbound_admitted == 1);
    REQUIRE(b.counters.inbound_refused[static_cast<int>(p2p::refusal::inbound_limit)] == 1);
    REQUIRE(b.counters.bars == 0);
    // A closed peer's counts stay in the totals.
    co_await local.del_active(local.active_peers().at(0), "test");
    REQUIRE(co_await eventually([&] { return remote.active_count() == 0; }));
    auto b2 = co_await remote.snapshot();
    REQUIRE(b2.peers.empty());
    REQUIRE(b2.counters.messages_received >= 3);
    REQUIRE(row(b2.counters.commands, "knock").messages_received == 3);
    REQUIRE(row(b2.counters.commands, "answer").messages_sent == 3);
    REQUIRE(b2.counters.bytes_received >= b.counters.bytes_received);
    co_await local.shutdown();
    co_await remote.shutdown();
  });
}

TEST_CASE("stats: snapshots from a thread outside the io_context while traffic flows", "[stats]") {
  // Two io threads carry the traffic; this thread takes snapshots with use_future. TSan
  // checks the reads; the counters only grow from one snapshot to the next.
  asio::io_context io(2);
  auto guard = asio::make_work_guard(io);
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) threads.emplace_back([&] { io.run_for(60s); });
  auto ro = p2p::test::remote_options("127.0.0.1");
  ro.ping_interval = 20ms;
  p2p::peer_manager remote(io.get_executor(), ro);
  remote.launch({}, asio::use_future).get();
  auto answer = asio::co_spawn(
                    remote.get_executor(),
                    [&]() -> asio::awaitable<p2p::subscription> {
                      co_return remote.events().command("knock").subscribe(
                          [](const std::shared_ptr<p2p::peer>& p, const p2p::message&) {
                            p->send("answer");
                          });
                    },
                    asio::use_future)
                    .get();
  const auto port =
      asio::co_spawn(
          remote.get_executor(),
          [&]() -> asio::awaitable<std::uint16_t> { co_return remote.listen_endpoint()->port(); },
          asio::use_future)
          .get();
  auto o = p2p::test::loopback_options();
  o.listen = false;
  o.port = 8333;  // without a listener: the port of bare hosts
  o.min_peers = 2;
  o.max_peers = 4;
  o.ping_interval = 20ms;
  p2p::peer_manager local(io.get_executor(), o);
  local.launch({}, asio::use_future).get();
  local.add_active(p2p::host_list(fmt::format("127.0.0.1:{}", port)));
  std::atomic<bool> stop{false};
  std::atomic<int> rounds{0};
  auto traffic = asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        const std::vector<std::uint8_t> payload(100, 7);
        for (int i = 0; i < 2000 && !stop; ++i) {
          auto sent = co_await local.send(0, "state", "connected", "knock", payload, "answer");
          co_await sent.wait(2s, 0, p2p::test::as_result);
          ++rounds;
          if (sent.size() == 0) co_await sleep_for(5ms);
        }
      },
      asio::use_future);
  std::uint64_t last_sent = 0;
  std::uint64_t last_bytes = 0;
  int with_peer = 0;
  for (int i = 0; i < 40; ++i) {
    auto s = local.snapshot(asio::use_future).get();
    REQUIRE(s.counters.messages_sent >= last_sent);
    REQUIRE(s.counters.bytes_received >= last_bytes);
    last_sent = s.counters.messages_sent;
    last_bytes = s.counters.bytes_received;
    REQUIRE(s.peers.size() == s.active);
    for (const auto& p : s.peers) REQUIRE(p.remote.port == port);
    if (!s.peers.empty() && s.peers[0].messages_sent > 0) ++with_peer;
    std::this_thread::sleep_for(10ms);
  }
  stop = true;
  traffic.get();
  REQUIRE(with_peer > 0);
  REQUIRE(rounds.load() > 0);
  REQUIRE(last_sent > 0);
  local.shutdown(asio::use_future).get();
  asio::co_spawn(
      remote.get_executor(),
      [&]() -> asio::awaitable<void> {
        answer = {};
        co_return;
      },
      asio::use_future)
      .get();
  remote.shutdown(asio::use_future).get();
  guard.reset();
  for (auto& t : threads) t.join();
  REQUIRE(io.stopped());
}
