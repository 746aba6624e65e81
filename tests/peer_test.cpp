#include <p2p/error.hpp>
#include <p2p/peer.hpp>

#include <boost/asio/read.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "support/async.hpp"
#include "support/peers.hpp"

namespace asio = boost::asio;
using asio::ip::tcp;
using p2p::test::connect_pair;
using p2p::test::eventually;
using p2p::test::host_of;
using p2p::test::run_async_test;
using p2p::test::sleep_for;
using p2p::test::state_on_strand;
using p2p::test::strand_of;
using namespace std::chrono_literals;

namespace {

using awaitable_void = asio::awaitable<void>;

std::vector<std::uint8_t> bytes_of(std::string_view s) {
  return {s.begin(), s.end()};
}

}  // namespace

SCENARIO("peer: state moves new -> connecting -> connected with an event per change", "[peer]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto acceptor = p2p::test::listen_on(io.get_executor());
    auto out = p2p::peer::outbound(strand_of(io), host_of(acceptor));
    std::vector<std::string> seen;
    bool connect_saw_connected = false;
    auto s1 = out->events().state_change.subscribe(
        [&](const std::string& from, const std::string& to) { seen.push_back(from + ">" + to); });
    // The connect event fires after the state is already "connected", so a handler may
    // overwrite it.
    auto s2 = out->events().connect.subscribe([&] {
      connect_saw_connected = out->state() == "connected";
      out->set_state("ready");
    });
    REQUIRE(out->state() == "new");
    co_await out->connect();  // throws on failure
    THEN("the states came in order and the hook's state stuck") {
      REQUIRE(seen == std::vector<std::string>{"new>connecting", "connecting>connected",
                                               "connected>ready"});
      REQUIRE(connect_saw_connected);
      REQUIRE(out->state() == "ready");
      REQUIRE(out->endpoint()->port() == acceptor.local_endpoint().port());
      REQUIRE_FALSE(out->is_inbound());
    }
    out->destroy();
    co_await out->wait_closed();
    REQUIRE(out->state() == "closed");
    REQUIRE(seen.back() == "ready>closed");
  });
}

TEST_CASE("peer: identity is a v5 UUID of host:port, stable per endpoint", "[peer]") {
  asio::io_context io;
  auto a = p2p::peer::outbound(strand_of(io), {"127.0.0.1", 18333});
  auto b = p2p::peer::outbound(strand_of(io), {"127.0.0.1", 18333});
  auto c = p2p::peer::outbound(strand_of(io), {"127.0.0.1", 18334});
  REQUIRE(a->id() == b->id());
  REQUIRE(a->id() != c->id());
  REQUIRE(a->id().version() == boost::uuids::uuid::version_name_based_sha1);
  REQUIRE(a->id() == p2p::peer::outbound_id({"127.0.0.1", 18333}));
  REQUIRE(a->id_string().size() == 36);
}

TEST_CASE("peer: properties hold bool, integer, double and string, state is one of them",
          "[peer]") {
  asio::io_context io;
  auto p = p2p::peer::outbound(strand_of(io), {"127.0.0.1", 18333});
  p->set("myProp", 42);
  p->set("flag", false);
  p->set("ratio", 1.5);
  p->set("name", "Alice");
  REQUIRE(p->get("myProp") == p2p::property(42));
  REQUIRE(p->get("flag") == p2p::property(false));
  REQUIRE(p->get("ratio") == p2p::property(1.5));
  REQUIRE(p->get("name")->string() != nullptr);
  REQUIRE(*p->get("name")->string() == "Alice");
  REQUIRE_FALSE(p->get("missing"));
  REQUIRE(*p->get("state")->string() == "new");
  std::vector<std::string> changes;
  auto sub = p->events().state_change.subscribe(
      [&](const std::string&, const std::string& to) { changes.push_back(to); });
  p->set("state", "lonely");
  REQUIRE(p->state() == "lonely");
  REQUIRE(changes == std::vector<std::string>{"lonely"});
  REQUIRE_THROWS_WITH(p->set("state", 7), Catch::Contains("'state' must be a string"));
  REQUIRE_THROWS_WITH(p->set("", 1), Catch::Contains("name is empty"));
  REQUIRE(p->state() == "lonely");
}

TEST_CASE("property: selection matching is case-insensitive for strings and numeric for numbers",
          "[peer]") {
  REQUIRE(p2p::property("Waiting").matches("wAITING"));
  REQUIRE_FALSE(p2p::property("waiting").matches("waiting "));
  REQUIRE(p2p::property(42).matches(42.0));
  REQUIRE_FALSE(p2p::property(42).matches(43));
  REQUIRE(p2p::property(false).matches(false));
  REQUIRE_FALSE(p2p::property(false).matches(0));
  REQUIRE_FALSE(p2p::property("1").matches(1));
  REQUIRE_THROWS_WITH(p2p::property(std::uint64_t(1) << 63),
                      Catch::Contains("9223372036854775808"));
}

SCENARIO("peer: two peers exchange thousands of frames in order", "[peer]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto [out, in] = co_await connect_pair(io);
    constexpr int count = 5000;
    std::vector<int> got_in, got_out;
    auto s1 = in->events().command("seq").subscribe([&](const p2p::message& m) {
      got_in.push_back(std::stoi(std::string(m.payload.view())));
      in->send("ack", m.payload.span());  // echo back
    });
    auto s2 = out->events().command("ack").subscribe([&](const p2p::message& m) {
      got_out.push_back(std::stoi(std::string(m.payload.view())));
    });
    WHEN("one side sends 5000 numbered frames without waiting") {
      for (int i = 0; i < count; ++i) out->send("seq", p2p::as_bytes(std::to_string(i)));
      CO_REQUIRE(co_await eventually([&] { return got_out.size() == count; }, 15s));
      THEN("both directions saw every frame exactly once, in order") {
        std::vector<int> expected(count);
        for (int i = 0; i < count; ++i) expected[i] = i;
        REQUIRE(got_in == expected);
        REQUIRE(got_out == expected);
        REQUIRE(in->frames_received() == count);
      }
    }
    out->destroy();
    in->destroy();
  });
}

TEST_CASE("peer: a frame larger than the socket buffers arrives whole after partial writes",
          "[peer]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto [out, in] = co_await connect_pair(io);
    // 3 MB: many times a loopback socket's buffers, so the writer resumes mid-frame.
    std::vector<std::uint8_t> payload(3'000'000);
    for (std::size_t i = 0; i < payload.size(); ++i)
      payload[i] = static_cast<std::uint8_t>(i * 7 + i / 251);
    std::vector<p2p::shared_bytes> got;
    auto sub = in->events().command("big").subscribe(
        [&](const p2p::message& m) { got.push_back(m.payload); });
    out->send("big", payload);
    out->send("after", p2p::as_bytes("tail"));
    auto after = co_await in->receive("after", 15s);
    REQUIRE(after.payload.view() == "tail");
    REQUIRE(got.size() == 1);
    REQUIRE(got.front().size() == payload.size());
    REQUIRE(std::equal(payload.begin(), payload.end(), got.front().begin()));
    REQUIRE(out->queued_bytes() == 0);
    out->destroy();
    in->destroy();
  });
}

TEST_CASE("peer: message and per-command events carry command and payload", "[peer]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto [out, in] = co_await connect_pair(io);
    std::vector<std::string> all;
    int foo = 0;
    auto s1 = in->events().message.subscribe([&](const p2p::message& m) {
      all.push_back(m.command + "=" + std::string(m.payload.view()));
    });
    auto s2 = in->events().command("foo").subscribe([&](const p2p::message& m) {
      ++foo;
      REQUIRE(m.payload.view() == "x");
    });
    out->send("foo", p2p::as_bytes("x"));
    out->send("bar", p2p::as_bytes("y"));
    out->send("foo", p2p::as_bytes("x"));
    CO_REQUIRE(co_await eventually([&] { return all.size() == 3; }));
    REQUIRE(all == std::vector<std::string>{"foo=x", "bar=y", "foo=x"});
    REQUIRE(foo == 2);
    out->destroy();
  });
}

TEST_CASE("peer: a bad command is rejected at the call site and nothing is sent", "[peer]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto [out, in] = co_await connect_pair(io);
    int received = 0;
    auto s = in->events().message.subscribe([&](const p2p::message&) { ++received; });
    REQUIRE_THROWS_WITH(out->send("thirteenchars"), Catch::Contains("thirteenchars"));
    REQUIRE_THROWS_AS(out->send("bad\x01"), std::invalid_argument);
    out->send("good");
    CO_REQUIRE(co_await eventually([&] { return received == 1; }));
    co_await sleep_for(50ms);
    REQUIRE(received == 1);
    REQUIRE(out->queued_bytes() == 0);
    out->destroy();
  });
}

SCENARIO("peer: receive(command, timeout) is empty on timeout and the frame when it comes",
         "[peer]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto [out, in] = co_await connect_pair(io);
    WHEN("nothing with that command arrives") {
      out->send("other");
      auto t0 = std::chrono::steady_clock::now();
      auto [ec, got] = co_await in->receive("verack", 150ms, p2p::test::as_result);
      THEN("it completes with error::timeout after the timeout") {
        REQUIRE(ec == p2p::error::timeout);
        REQUIRE(ec == p2p::condition::timeout);
        REQUIRE(std::chrono::steady_clock::now() - t0 >= 140ms);
      }
    }
    WHEN("the frame arrives while waiting") {
      auto sender = [](std::shared_ptr<p2p::peer> p) -> awaitable_void {
        co_await sleep_for(30ms);
        p->send("verack", p2p::as_bytes("v"));
      };
      asio::co_spawn(io, sender(out), p2p::test::rethrow{});
      auto got = co_await in->receive("verack", 5s);
      THEN("it is returned") {
        REQUIRE(got.command == "verack");
        REQUIRE(got.payload.view() == "v");
      }
    }
    WHEN("the peer closes while waiting") {
      auto closer = [](std::shared_ptr<p2p::peer> p) -> awaitable_void {
        co_await sleep_for(30ms);
        p->destroy();
      };
      asio::co_spawn(io, closer(out), p2p::test::rethrow{});
      auto t0 = std::chrono::steady_clock::now();
      auto [ec, got] = co_await in->receive("verack", 5s, p2p::test::as_result);
      THEN("it completes with error::peer_closed at once, not after the timeout") {
        REQUIRE(ec == p2p::error::peer_closed);
        REQUIRE(std::chrono::steady_clock::now() - t0 < 4s);
      }
    }
    out->destroy();
    in->destroy();
  });
}

SCENARIO("peer: graceful disconnect delivers everything queued before it", "[peer]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto [out, in] = co_await connect_pair(io);
    std::size_t got = 0;
    std::size_t bytes = 0;
    bool in_end = false, out_end = false, in_closed = false;
    auto s1 = in->events().message.subscribe([&](const p2p::message& m) {
      ++got;
      bytes += m.payload.size();
    });
    auto s2 = in->events().end.subscribe([&] { in_end = true; });
    auto s3 = in->events().close.subscribe([&] { in_closed = true; });
    auto s4 = out->events().end.subscribe([&] { out_end = true; });
    WHEN("200 frames of 16 KiB are queued and disconnect() follows at once") {
      std::vector<std::uint8_t> payload(16 * 1024, 0xAB);
      for (int i = 0; i < 200; ++i) out->send("blk", payload);
      co_await out->disconnect();
      THEN("every frame arrived, the receiver saw the end, and both sides closed") {
        CO_REQUIRE(co_await eventually([&] { return in_closed; }));
        REQUIRE(got == 200);
        REQUIRE(bytes == 200 * payload.size());
        REQUIRE(in_end);
        REQUIRE(out->state() == "closed");
        REQUIRE(out_end);  // the remote closed in answer to our half-close
      }
      AND_THEN("sends after the disconnect are dropped") {
        out->send("late");
        REQUIRE(out->queued_bytes() == 0);
        auto [late] = co_await out->send_and_wait("late", {}, p2p::test::as_result);
        REQUIRE(late == p2p::error::peer_closed);
      }
    }
  });
}

TEST_CASE("peer: graceful disconnect is bounded by disconnect_timeout", "[peer]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    // The remote is a raw socket that never closes its side.
    auto acceptor = p2p::test::listen_on(io.get_executor());
    p2p::peer_options opts;
    opts.disconnect_timeout = 200ms;
    auto out = p2p::peer::outbound(strand_of(io), host_of(acceptor), opts);
    auto accept = acceptor.async_accept(asio::use_awaitable);
    co_await out->connect();  // throws on failure
    auto raw = co_await std::move(accept);
    auto t0 = std::chrono::steady_clock::now();
    co_await out->disconnect();
    auto took = std::chrono::steady_clock::now() - t0;
    REQUIRE(out->is_closed());
    REQUIRE(took >= 190ms);
    REQUIRE(took < 3s);
  });
}

TEST_CASE("peer: send_and_wait completes when the bytes are written", "[peer]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto [out, in] = co_await connect_pair(io);
    int got = 0;
    auto s = in->events().message.subscribe([&](const p2p::message&) { ++got; });
    for (int i = 0; i < 100; ++i) {
      auto [ec] =
          co_await out->send_and_wait("n", p2p::as_bytes(std::to_string(i)), p2p::test::as_result);
      REQUIRE_FALSE(ec);
      REQUIRE(out->queued_bytes() == 0);
    }
    CO_REQUIRE(co_await eventually([&] { return got == 100; }));
    out->destroy();
  });
}

SCENARIO("peer: a remote that stops reading is dropped and our memory stays bounded", "[peer]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto acceptor = p2p::test::listen_on(io.get_executor());
    p2p::peer_options opts;
    opts.max_send_buffer = 1024 * 1024;
    auto out = p2p::peer::outbound(strand_of(io), host_of(acceptor), opts);
    auto accept = acceptor.async_accept(asio::use_awaitable);
    co_await out->connect();                // throws on failure
    auto raw = co_await std::move(accept);  // never read from
    boost::system::error_code error;
    std::vector<p2p::report> reports;
    auto s1 =
        out->events().error.subscribe([&](const boost::system::error_code& ec) { error = ec; });
    auto s2 = out->events().report.subscribe([&](const p2p::report& r) { reports.push_back(r); });
    std::vector<std::uint8_t> payload(64 * 1024, 1);
    std::size_t max_queued = 0;
    WHEN("we keep sending 64 KiB frames") {
      for (int i = 0; i < 2000 && !out->is_closed(); ++i) {
        out->send("blk", payload);
        max_queued = std::max(max_queued, out->queued_bytes());
        if (i % 16 == 0) co_await sleep_for(1ms);  // let the writer fill the socket buffers
      }
      THEN("the queue never passed max_send_buffer and the peer was dropped with an error") {
        CO_REQUIRE(co_await eventually([&] { return out->is_closed(); }));
        REQUIRE(max_queued <= opts.max_send_buffer);
        REQUIRE(error == p2p::error::send_buffer_overflow);
        REQUIRE(out->queued_bytes() == 0);
        REQUIRE(std::any_of(reports.begin(), reports.end(), [](const p2p::report& r) {
          return r.level == p2p::severity::error &&
                 r.message.find("not reading") != std::string::npos;
        }));
      }
    }
  });
}

SCENARIO("peer: the network's garbage and corrupt frames are skipped and reported", "[peer]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto acceptor = p2p::test::listen_on(io.get_executor());
    tcp::socket raw(io);
    co_await raw.async_connect(acceptor.local_endpoint(), asio::use_awaitable);
    auto in =
        p2p::peer::inbound(strand_of(io), co_await acceptor.async_accept(asio::use_awaitable));
    std::vector<std::string> got;
    std::vector<p2p::report> reports;
    auto s1 =
        in->events().message.subscribe([&](const p2p::message& m) { got.push_back(m.command); });
    auto s2 = in->events().report.subscribe([&](const p2p::report& r) { reports.push_back(r); });
    in->start();
    WHEN("garbage, a frame with a bad checksum, and a good frame arrive") {
      std::vector<std::uint8_t> wire = bytes_of("junkjunk");
      auto bad = p2p::encode_frame(p2p::bitcoin_magic, "bad", p2p::as_bytes("payload"));
      std::vector<std::uint8_t> corrupt(bad.begin(), bad.end());
      corrupt.back() ^= 0xFF;  // payload no longer matches the checksum
      wire.insert(wire.end(), corrupt.begin(), corrupt.end());
      auto good = p2p::encode_frame(p2p::bitcoin_magic, "good", p2p::as_bytes("ok"));
      wire.insert(wire.end(), good.begin(), good.end());
      co_await asio::async_write(raw, asio::buffer(wire), asio::use_awaitable);
      THEN("only the good frame is delivered, the rest is reported, and the peer stays") {
        CO_REQUIRE(co_await eventually([&] { return got.size() == 1; }));
        REQUIRE(got[0] == "good");
        REQUIRE(in->garbage_received() == 8);
        REQUIRE(std::any_of(reports.begin(), reports.end(), [](auto& r) {
          return r.message.find("8 bytes of garbage") != std::string::npos;
        }));
        REQUIRE(std::any_of(reports.begin(), reports.end(), [](auto& r) {
          return r.level == p2p::severity::warning &&
                 r.message.find("bad checksum") != std::string::npos;
        }));
        REQUIRE(in->is_open());
      }
    }
    in->destroy();
  });
}

TEST_CASE("peer: a frame declaring more than max_message_size is a protocol violation", "[peer]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto acceptor = p2p::test::listen_on(io.get_executor());
    tcp::socket raw(io);
    co_await raw.async_connect(acceptor.local_endpoint(), asio::use_awaitable);
    p2p::peer_options opts;
    opts.max_message_size = 1000;
    auto in = p2p::peer::inbound(strand_of(io), co_await acceptor.async_accept(asio::use_awaitable),
                                 opts);
    boost::system::error_code error;
    auto s = in->events().error.subscribe([&](const boost::system::error_code& ec) { error = ec; });
    in->start();
    // A header declaring 4 GiB - 1 bytes: magic, "block", length FFFFFFFF, any checksum.
    std::vector<std::uint8_t> header = {0xF9, 0xBE, 0xB4, 0xD9, 'b', 'l', 'o', 'c', 'k'};
    header.resize(16, 0);
    header.insert(header.end(), {0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0});
    co_await asio::async_write(raw, asio::buffer(header), asio::use_awaitable);
    CO_REQUIRE(co_await eventually([&] { return in->is_closed(); }));
    REQUIRE(error == p2p::error::oversized_message);
    REQUIRE(error == p2p::condition::protocol_violation);
    // Our side closed: the raw socket sees EOF.
    std::array<char, 16> buf;
    auto [ec, n] =
        co_await raw.async_read_some(asio::buffer(buf), asio::as_tuple(asio::use_awaitable));
    REQUIRE(ec);
  });
}

SCENARIO("peer: end, error and close events", "[peer]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    GIVEN("a connected pair") {
      auto [out, in] = co_await connect_pair(io);
      std::vector<std::string> ev;
      auto s1 = in->events().end.subscribe([&] { ev.push_back("end"); });
      auto s2 = in->events().close.subscribe([&] { ev.push_back("close"); });
      auto s3 = in->events().error.subscribe(
          [&](const boost::system::error_code&) { ev.push_back("error"); });
      WHEN("the remote closes its side") {
        out->destroy();
        THEN("the peer raises end then close, no error") {
          CO_REQUIRE(co_await eventually([&] { return in->is_closed(); }));
          REQUIRE(ev == std::vector<std::string>{"end", "close"});
          REQUIRE(in->state() == "closed");
        }
      }
      WHEN("we destroy the peer") {
        in->destroy();
        THEN("only close is raised") {
          CO_REQUIRE(co_await eventually([&] { return in->is_closed(); }));
          REQUIRE(ev == std::vector<std::string>{"close"});
        }
      }
    }
  });
}

TEST_CASE("peer: connect to a closed port reports an error and closes", "[peer]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    std::uint16_t port;
    {
      auto a = p2p::test::listen_on(io.get_executor());
      port = a.local_endpoint().port();
    }  // closed again: nothing listens there
    auto out = p2p::peer::outbound(strand_of(io), {"127.0.0.1", port});
    boost::system::error_code error;
    bool closed = false;
    auto s1 = out->events().error.subscribe([&](const boost::system::error_code& e) { error = e; });
    auto s2 = out->events().close.subscribe([&] { closed = true; });
    auto [ec] = co_await out->connect(p2p::test::as_result);
    REQUIRE(ec == asio::error::connection_refused);
    REQUIRE(error == ec);
    REQUIRE(closed);
    REQUIRE(out->state() == "closed");
  });
}

TEST_CASE("peer: last_seen advances when bytes arrive", "[peer]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto [out, in] = co_await connect_pair(io);
    auto before = in->last_seen();
    REQUIRE_FALSE(in->has_received());
    co_await sleep_for(20ms);
    out->send("ping");
    CO_REQUIRE(co_await eventually([&] { return in->last_seen() > before; }));
    REQUIRE(in->has_received());
    REQUIRE(in->is_inbound());
    REQUIRE(in->endpoint()->address().to_string() == "127.0.0.1");
    out->destroy();
  });
}

TEST_CASE("peer: a callback may unsubscribe itself while the peer dispatches", "[peer]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto [out, in] = co_await connect_pair(io);
    int calls = 0, later = 0;
    p2p::subscription self_sub;
    self_sub = in->events().message.subscribe([&](const p2p::message&) {
      ++calls;
      self_sub.unsubscribe();
    });
    auto s = in->events().message.subscribe([&](const p2p::message&) { ++later; });
    for (int i = 0; i < 3; ++i) out->send("x");
    CO_REQUIRE(co_await eventually([&] { return later == 3; }));
    REQUIRE(calls == 1);
    out->destroy();
  });
}

TEST_CASE("peer: sending from other threads keeps each sender's order (4 io threads)", "[peer]") {
  run_async_test(
      [](asio::io_context& io) -> awaitable_void {
        auto [out, in] = co_await connect_pair(io);
        std::vector<int> got;
        auto s = in->events().message.subscribe([&](const p2p::message& m) {
          got.push_back(std::stoi(std::string(m.payload.view())));
        });
        std::thread t([out = out] {
          for (int i = 0; i < 1000; ++i) out->send("n", p2p::as_bytes(std::to_string(i)));
        });
        t.join();
        // `got` is touched only on the inbound peer's strand; read it there.
        auto count = [in = in, &got]() -> asio::awaitable<std::size_t> {
          co_return co_await asio::co_spawn(
              in->get_executor(),
              [&got]() -> asio::awaitable<std::size_t> { co_return got.size(); },
              asio::use_awaitable);
        };
        for (int i = 0; i < 1000 && co_await count() < 1000; ++i) co_await sleep_for(5ms);
        auto snapshot = co_await asio::co_spawn(
            in->get_executor(), [&got]() -> asio::awaitable<std::vector<int>> { co_return got; },
            asio::use_awaitable);
        REQUIRE(snapshot.size() == 1000);
        REQUIRE(std::is_sorted(snapshot.begin(), snapshot.end()));
        out->destroy();
        in->destroy();
        co_await out->wait_closed();
        co_await in->wait_closed();
      },
      20s, 4);
}

TEST_CASE("peer: back-to-back replies are not lost between two receive() calls", "[peer]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto [out, in] = co_await connect_pair(io);
    auto [ec, first] = co_await in->receive("ping", 20ms, p2p::test::as_result);
    REQUIRE(ec == p2p::error::timeout);
    // Both frames in one write: they arrive in one read and are dispatched together.
    auto a = p2p::encode_frame(p2p::bitcoin_magic, "version", p2p::as_bytes("v"));
    auto b = p2p::encode_frame(p2p::bitcoin_magic, "verack", {});
    std::vector<std::uint8_t> both(a.begin(), a.end());
    both.insert(both.end(), b.begin(), b.end());
    out->send_frame(p2p::shared_bytes(std::move(both)));
    auto version = co_await in->receive("version", 2s);
    auto verack = co_await in->receive("verack", 2s);
    REQUIRE(version.payload.view() == "v");
    REQUIRE(verack.command == "verack");
    out->destroy();
  });
}
