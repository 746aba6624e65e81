#include "detail/dns.hpp"

#include <p2p/error.hpp>
#include <p2p/manager.hpp>
#include <p2p/peer.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/strand.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "support/async.hpp"
#include "support/loopback.hpp"
#include "support/reports.hpp"

namespace asio = boost::asio;
using asio::ip::tcp;
using asio::ip::udp;
using boost::system::error_code;
using p2p::test::as_result;
using p2p::test::eventually;
using p2p::test::has_report;
using p2p::test::run_async_test;
using namespace std::chrono_literals;

namespace {

using awaitable_void = asio::awaitable<void>;

/// A DNS server that never answers: a UDP socket on 127.0.0.1 that nobody reads.
struct silent_server {
  explicit silent_server(const asio::any_io_executor& ex)
      : socket(ex, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {}

  std::string address() const {
    return "127.0.0.1:" + std::to_string(socket.local_endpoint().port());
  }

  /// True once a query has arrived (c-ares asked this server, not the system's).
  bool asked() const { return socket.available() > 0; }

  udp::socket socket;
};

/// The outcome of a spawned lookup, once it has completed.
struct lookup_record {
  bool done = false;
  p2p::detail::lookup_result result;
};

/// Spawns `detail::resolve` with `signal` bound as its cancellation slot; `record` gets the
/// outcome.
void spawn_lookup(asio::any_io_executor ex, std::string name, std::vector<std::string> servers,
                  asio::cancellation_signal& signal, lookup_record& record) {
  asio::co_spawn(ex, p2p::detail::resolve(std::move(name), 8333, std::move(servers)),
                 asio::bind_cancellation_slot(
                     signal.slot(), [&record](std::exception_ptr e, p2p::detail::lookup_result r) {
                       if (e) std::rethrow_exception(e);
                       record.result = std::move(r);
                       record.done = true;
                     }));
}

// ---- a fake DNS server ------------------------------------------------------------------

/// DNS record types and the response code a fake answer uses.
constexpr std::uint16_t type_a = 1;
constexpr std::uint16_t rcode_nxdomain = 3;

/// The question's name (lower case, dotted) and the offset just past the question, or 0
/// when the query is malformed.
std::pair<std::string, std::size_t> parse_question(const std::vector<std::uint8_t>& q) {
  std::string name;
  std::size_t at = 12;
  for (int labels = 0; labels < 128 && at < q.size(); ++labels) {
    const std::size_t len = q[at++];
    if (len == 0) break;
    if (len > 63 || at + len > q.size()) return {"", 0};
    if (!name.empty()) name += '.';
    for (std::size_t i = 0; i < len; ++i)
      name += static_cast<char>(std::tolower(static_cast<unsigned char>(q[at + i])));
    at += len;
  }
  if (at + 4 > q.size()) return {"", 0};
  return {name, at + 4};  // QTYPE and QCLASS
}

void put16(std::vector<std::uint8_t>& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v & 0xFF));
}

/// The response to `query`: `known` has one A record, 127.0.0.1, and no AAAA record; any
/// other name does not exist (NXDOMAIN). Built by hand: the query's ID, flags with QR and
/// RA set, its question copied, then the answer.
std::vector<std::uint8_t> respond(const std::vector<std::uint8_t>& query,
                                  const std::string& known) {
  const auto [name, question_end] = parse_question(query);
  if (question_end == 0) return {};
  const std::uint16_t qtype =
      static_cast<std::uint16_t>(query[question_end - 4] << 8 | query[question_end - 3]);
  const bool exists = name == known;
  const bool answer = exists && qtype == type_a;
  std::vector<std::uint8_t> out(query.begin(), query.begin() + 2);  // ID
  const std::uint16_t query_flags = static_cast<std::uint16_t>(query[2] << 8 | query[3]);
  std::uint16_t flags = 0x8000 | 0x0080;     // QR (a response), RA
  flags |= query_flags & (0x7800 | 0x0100);  // the opcode and RD, as asked
  if (!exists) flags |= rcode_nxdomain;
  put16(out, flags);
  put16(out, 1);       // QDCOUNT
  put16(out, answer);  // ANCOUNT
  put16(out, 0);       // NSCOUNT
  put16(out, 0);       // ARCOUNT
  out.insert(out.end(), query.begin() + 12, query.begin() + static_cast<long>(question_end));
  if (answer) {
    put16(out, 0xC00C);  // the name: a pointer to the question's
    put16(out, type_a);
    put16(out, 1);  // class IN
    put16(out, 0);  // TTL: 60 s
    put16(out, 60);
    put16(out, 4);  // RDLENGTH
    for (std::uint8_t b : {127, 0, 0, 1}) out.push_back(b);
  }
  return out;
}

/// Answers queries on `socket` (see respond()) until it is closed, at most 64 of them.
awaitable_void serve_dns(udp::socket& socket, std::string known, int& answered) {
  std::vector<std::uint8_t> buf(1500);
  for (int i = 0; i < 64; ++i) {
    udp::endpoint from;
    auto [ec, n] = co_await socket.async_receive_from(asio::buffer(buf), from, as_result);
    if (ec) co_return;  // closed: the test is over
    auto reply = respond({buf.begin(), buf.begin() + static_cast<long>(n)}, known);
    if (reply.empty()) continue;
    auto [wec, wn] = co_await socket.async_send_to(asio::buffer(reply), from, as_result);
    if (wec) co_return;
    ++answered;
  }
}

/// A fake DNS server on 127.0.0.1 (UDP) that knows one name; runs until close().
struct fake_server {
  fake_server(const asio::any_io_executor& ex, std::string known)
      : socket(ex, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    asio::co_spawn(ex, serve_dns(socket, std::move(known), answered), p2p::test::rethrow{});
  }

  std::string address() const {
    return "127.0.0.1:" + std::to_string(socket.local_endpoint().port());
  }

  void close() {
    error_code ig;
    socket.close(ig);
  }

  udp::socket socket;
  int answered = 0;
};

/// Options of a manager that only dials out (no listener: hosts carry their ports), asks
/// `silent` for names, and gives up a disconnect after 300 ms.
p2p::manager_options dialer_options(const silent_server& silent,
                                    std::chrono::milliseconds connect_timeout) {
  auto o = p2p::test::loopback_options();
  o.listen = false;
  o.port = 8333;
  o.min_peers = 0;
  o.dns_servers = {silent.address()};
  o.connect_timeout = connect_timeout;
  o.disconnect_timeout = 300ms;
  return o;
}

}  // namespace

SCENARIO("dns: a lookup a silent server never answers ends at once when cancelled", "[dns]") {
  const auto type = GENERATE(asio::cancellation_type::terminal, asio::cancellation_type::partial,
                             asio::cancellation_type::total);
  run_async_test([type](asio::io_context& io) -> awaitable_void {
    const auto ex = co_await asio::this_coro::executor;
    silent_server silent(ex);
    asio::cancellation_signal signal;
    lookup_record lookup;
    spawn_lookup(ex, "silent.invalid", {silent.address()}, signal, lookup);
    asio::steady_timer timer(io, 200ms);
    co_await timer.async_wait(as_result);
    REQUIRE_FALSE(lookup.done);  // the server never answers: it is still waiting
    REQUIRE(silent.asked());
    signal.emit(type);
    CO_REQUIRE(co_await eventually([&] { return lookup.done; }));
    THEN("it completes with operation_aborted, after the cancellation, and leaves no work") {
      REQUIRE(lookup.result.first == asio::error::operation_aborted);
      REQUIRE(lookup.result.second.empty());
    }
  });
}

SCENARIO("dns: a fake server's answer gives the address, its NXDOMAIN gives host_not_found",
         "[dns]") {
  run_async_test([](asio::io_context&) -> awaitable_void {
    const auto ex = co_await asio::this_coro::executor;
    fake_server fake(ex, "peer.p2p.test");
    // Named first: g++ 12 rejects a string literal or braced list as a coroutine's argument
    // inside a co_await ("array used as initializer").
    const std::vector<std::string> servers{fake.address()};
    WHEN("the name is known") {
      const std::string name = "peer.p2p.test";
      auto [ec, found] = co_await p2p::detail::resolve(name, 18444, servers);
      THEN("it resolves to 127.0.0.1 with the port asked for") {
        REQUIRE_FALSE(ec);
        REQUIRE(found == std::vector<tcp::endpoint>{
                             tcp::endpoint(asio::ip::make_address("127.0.0.1"), 18444)});
        REQUIRE(fake.answered >= 1);
      }
    }
    WHEN("the name does not exist") {
      const std::string name = "missing.p2p.test";
      auto [ec, found] = co_await p2p::detail::resolve(name, 18444, servers);
      THEN("it fails with host_not_found") {
        REQUIRE(ec == asio::error::host_not_found);
        REQUIRE(found.empty());
        REQUIRE(fake.answered >= 1);
      }
    }
    fake.close();
  });
}

TEST_CASE("dns: a server whose port is closed gives host_not_found_try_again", "[dns]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    // A port that was just free on 127.0.0.1: the queries draw ICMP port unreachable.
    std::string server;
    {
      udp::socket probe(io, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
      server = "127.0.0.1:" + std::to_string(probe.local_endpoint().port());
    }
    const std::string name = "refused.p2p.test";
    const std::vector<std::string> servers{server};
    auto [ec, found] = co_await p2p::detail::resolve(name, 8333, servers);
    REQUIRE(ec == asio::error::host_not_found_try_again);
    REQUIRE(found.empty());
  });
}

SCENARIO("dns: a lookup waiting on a silent server delays no other lookup", "[dns]") {
  run_async_test([](asio::io_context&) -> awaitable_void {
    const auto ex = co_await asio::this_coro::executor;
    silent_server silent(ex);
    fake_server fake(ex, "peer.p2p.test");
    asio::cancellation_signal signal;
    lookup_record slow;
    spawn_lookup(ex, "silent.invalid", {silent.address()}, signal, slow);
    CO_REQUIRE(co_await eventually([&] { return silent.asked(); }));
    const std::string name = "peer.p2p.test";
    const std::vector<std::string> servers{fake.address()};
    auto [ec, found] = co_await p2p::detail::resolve(name, 8333, servers);
    THEN("the other lookup is answered while the silent one still waits") {
      REQUIRE_FALSE(ec);
      REQUIRE(found.size() == 1);
      REQUIRE_FALSE(slow.done);
    }
    signal.emit(asio::cancellation_type::terminal);
    CO_REQUIRE(co_await eventually([&] { return slow.done; }));
    REQUIRE(slow.result.first == asio::error::operation_aborted);
    fake.close();
  });
}

SCENARIO("dns: with a silent server, a manager's connect fails at connect_timeout", "[dns]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    const auto ex = co_await asio::this_coro::executor;
    silent_server silent(ex);
    p2p::peer_manager m(io.get_executor(), dialer_options(silent, 1s));
    std::vector<p2p::report> reports;
    std::vector<error_code> errors;
    auto s1 = m.events().report.subscribe([&](const p2p::report& r) { reports.push_back(r); });
    auto s2 = m.events().peer_error.subscribe(
        [&](const std::shared_ptr<p2p::peer>&, const error_code& ec) { errors.push_back(ec); });
    co_await m.launch();
    m.add_active("silent.invalid:8333");
    CO_REQUIRE(co_await eventually([&] { return !errors.empty(); }, 10s));
    THEN("the peer fails with connect_timeout, reported with the bound") {
      REQUIRE(errors.size() == 1);
      REQUIRE(errors[0] == p2p::error::connect_timeout);
      REQUIRE(silent.asked());
      REQUIRE(has_report(reports, "timed out after 1000 ms"));
    }
    co_await m.shutdown();
  });
}

SCENARIO("dns: a peer whose lookup hangs delays no other peer of the manager", "[dns]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    const auto ex = co_await asio::this_coro::executor;
    silent_server silent(ex);
    // localhost comes from /etc/hosts (c-ares reads it before asking a server).
    auto remote = p2p::test::make_remote(io, "127.0.0.1");
    co_await remote->launch();
    const auto remote_port = remote->listen_endpoint()->port();
    p2p::peer_manager m(io.get_executor(), dialer_options(silent, 1s));
    std::vector<std::string> order;
    auto s1 = m.events().peer_connect.subscribe([&](const std::shared_ptr<p2p::peer>& p) {
      order.push_back("connect " + p->remote().name);
    });
    auto s2 = m.events().peer_error.subscribe(
        [&](const std::shared_ptr<p2p::peer>& p, const error_code& ec) {
          order.push_back("error " + p->remote().name + ": " + ec.message());
        });
    co_await m.launch();
    m.add_active("silent.invalid:8333");
    CO_REQUIRE(co_await eventually([&] { return silent.asked(); }));
    m.add_active("localhost:" + std::to_string(remote_port));
    CO_REQUIRE(co_await eventually([&] { return order.size() == 2; }, 10s));
    THEN("localhost connects first, then the silent lookup times out") {
      REQUIRE(order[0] == "connect localhost");
      REQUIRE(order[1] ==
              "error silent.invalid: " + make_error_code(p2p::error::connect_timeout).message());
    }
    co_await m.shutdown();
    co_await remote->shutdown();
  });
}

SCENARIO("dns: close() or destroy() of a peer whose lookup is pending ends its connect at once",
         "[dns]") {
  const bool destroy = GENERATE(false, true);
  run_async_test([destroy](asio::io_context& io) -> awaitable_void {
    using namespace asio::experimental::awaitable_operators;
    const auto ex = co_await asio::this_coro::executor;
    silent_server silent(ex);
    p2p::peer_options o;
    o.connect_timeout = 30s;
    o.dns_servers = {silent.address()};
    auto p = p2p::peer::outbound(asio::make_strand(ex), {"silent.invalid", 8333}, o);
    bool connect_done = false;
    error_code connect_ec;
    asio::co_spawn(ex, p->connect(as_result), [&](std::exception_ptr e, std::tuple<error_code> r) {
      if (e) std::rethrow_exception(e);
      connect_ec = std::get<0>(r);
      connect_done = true;
    });
    CO_REQUIRE(co_await eventually([&] { return silent.asked(); }));
    REQUIRE_FALSE(connect_done);
    if (destroy)
      p->destroy();
    else
      p->close();
    asio::steady_timer generous(io, 10s);
    auto first =
        co_await (eventually([&] { return connect_done; }, 20s) || generous.async_wait(as_result));
    THEN("the connect ends with operation_aborted before the 10 s timer (connect_timeout 30 s)") {
      REQUIRE(first.index() == 0);
      REQUIRE(connect_ec == asio::error::operation_aborted);
      REQUIRE(p->state() == "closed");
    }
  });
}

SCENARIO("dns: shutdown ends a pending lookup at once", "[dns]") {
  // On 4 threads too: the lookup's waits and the peer's close meet on the peer's strand.
  const int threads = GENERATE(1, 4);
  run_async_test(
      [](asio::io_context& io) -> awaitable_void {
        using namespace asio::experimental::awaitable_operators;
        const auto ex = co_await asio::this_coro::executor;
        silent_server silent(ex);
        p2p::peer_manager m(io.get_executor(), dialer_options(silent, 30s));
        co_await m.launch();
        m.add_active("silent.invalid:8333");
        CO_REQUIRE(co_await eventually([&] { return silent.asked(); }));
        asio::steady_timer generous(io, 10s);
        auto first = co_await (m.shutdown(as_result) || generous.async_wait(as_result));
        THEN("shutdown completes before the 10 s timer (connect_timeout is 30 s)") {
          REQUIRE(first.index() == 0);
          REQUIRE_FALSE(std::get<0>(std::get<0>(first)));
          REQUIRE(m.active_count() == 0);
        }
      },
      20s, threads);
}
