#include "detail/metrics_server.hpp"

#include <p2p/stats.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json.hpp>
#include <boost/system/system_error.hpp>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "support/async.hpp"

// The HTTP endpoint on a real io_context, with Beast clients on loopback.

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using namespace std::chrono_literals;
using asio::awaitable;
using asio::ip::tcp;
using boost::system::error_code;
using p2p::detail::metrics_server;
using p2p::detail::metrics_server_options;
using p2p::test::as_result;
using response = http::response<http::string_body>;

// A client's guard on every wait: the server must act well before it.
constexpr auto client_guard = 5s;

p2p::manager_snapshot fixed_snapshot() {
  p2p::manager_snapshot s;
  s.taken_at = p2p::wall_clock::time_point(std::chrono::milliseconds(1'700'000'000'000));
  s.state = p2p::manager_state::running;
  s.active = s.outbound = 1;
  s.max_peers = 8;
  s.counters.outbound_attempts = 3;
  p2p::count_command(s.counters.commands, "verack", true, 1, 24);
  p2p::peer_stats p;
  p.remote = {"127.0.0.1", 18444};
  p.state = "connected";
  p.rtt_min = std::chrono::microseconds(250);
  s.peers.push_back(p);
  return s;
}

awaitable<std::optional<p2p::manager_snapshot>> give(std::optional<p2p::manager_snapshot> s) {
  co_return s;
}

awaitable<std::optional<p2p::manager_snapshot>> fail_to_give() {
  throw std::runtime_error("no manager here");
  co_return std::nullopt;
}

// The reports a server made, from any thread.
struct reports {
  std::mutex mutex;
  std::vector<std::string> lines;

  metrics_server::reporter reporter() {
    return [this](std::string line) {
      std::lock_guard<std::mutex> lock(mutex);
      lines.push_back(std::move(line));
    };
  }

  std::size_t count() {
    std::lock_guard<std::mutex> lock(mutex);
    return lines.size();
  }

  // The reports containing `text`.
  std::size_t count(std::string_view text) {
    std::lock_guard<std::mutex> lock(mutex);
    std::size_t n = 0;
    for (const auto& l : lines)
      if (l.find(text) != std::string::npos) ++n;
    return n;
  }
};

// A server of `snapshot` (nullopt: none), counting the source's calls.
struct fixture {
  const p2p::manager_snapshot snapshot = fixed_snapshot();
  std::atomic<bool> serve_snapshot{true};
  std::atomic<bool> source_throws{false};
  std::atomic<int> calls{0};
  reports seen;

  std::shared_ptr<metrics_server> start(asio::any_io_executor ex, metrics_server_options o = {}) {
    const tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
    return metrics_server::start(
        ex, ep,
        [this] {
          ++calls;
          if (source_throws) return fail_to_give();
          return give(serve_snapshot ? std::optional(snapshot) : std::nullopt);
        },
        seen.reporter(), o);
  }
};

// One client connection; every operation bounded by `client_guard`.
struct client {
  beast::tcp_stream stream;
  beast::flat_buffer buffer;

  explicit client(asio::any_io_executor ex) : stream(std::move(ex)) {}

  awaitable<error_code> connect(const tcp::endpoint& ep) {
    stream.expires_after(client_guard);
    auto [ec] = co_await stream.async_connect(ep, as_result);
    co_return ec;
  }

  awaitable<std::pair<error_code, response>> request(http::verb method, std::string target) {
    http::request<http::empty_body> req{method, target, 11};
    req.set(http::field::host, "127.0.0.1");
    stream.expires_after(client_guard);
    auto [ec, n] = co_await http::async_write(stream, req, as_result);
    response res;
    if (!ec) std::tie(ec, n) = co_await http::async_read(stream, buffer, res, as_result);
    co_return std::pair(ec, std::move(res));
  }

  // Waits for the server to close the connection; the error the read ends with.
  awaitable<error_code> closed_by_server() {
    stream.expires_after(client_guard);
    char byte;
    auto [ec, n] = co_await stream.async_read_some(asio::buffer(&byte, 1), as_result);
    co_return ec;
  }
};

// A GET on a fresh connection.
awaitable<std::pair<error_code, response>> get(tcp::endpoint ep, std::string target) {
  client c(co_await asio::this_coro::executor);
  if (auto ec = co_await c.connect(ep)) co_return std::pair(ec, response{});
  co_return co_await c.request(http::verb::get, std::move(target));
}

void require_closed(const error_code& ec) {
  INFO(ec.message());
  REQUIRE(ec);
  REQUIRE(ec != beast::error::timeout);  // the client's guard: the server did not close
}

}  // namespace

TEST_CASE("metrics server: serves /metrics and /peers, 404, 405, 503", "[metrics-server]") {
  const int threads = GENERATE(1, 2);
  INFO("threads: " << threads);
  fixture f;
  p2p::test::run_async_test(
      [&](asio::io_context& io) -> awaitable<void> {
        auto server = f.start(io.get_executor());
        const auto ep = server->local_endpoint();
        REQUIRE(ep.port() != 0);
        const auto expected = p2p::to_prometheus(f.snapshot);

        client c(io.get_executor());
        CO_REQUIRE(!(co_await c.connect(ep)));
        auto [ec, res] = co_await c.request(http::verb::get, "/metrics");
        REQUIRE_FALSE(ec);
        CHECK(res.result() == http::status::ok);
        CHECK(res[http::field::content_type] == "text/plain; version=0.0.4; charset=utf-8");
        CHECK(res.body() == expected);
        CHECK(res.keep_alive());

        // The same connection again (keep-alive), with a query string.
        std::tie(ec, res) = co_await c.request(http::verb::get, "/metrics?x=1&y");
        REQUIRE_FALSE(ec);
        CHECK(res.result() == http::status::ok);
        CHECK(res.body() == expected);

        std::tie(ec, res) = co_await c.request(http::verb::get, "/peers");
        REQUIRE_FALSE(ec);
        CHECK(res.result() == http::status::ok);
        CHECK(res[http::field::content_type] == "application/json");
        const auto doc = boost::json::parse(res.body());
        CHECK(doc.at("state").as_string() == "running");
        CHECK(doc.at("peers").as_array().size() == 1);
        CHECK(doc.at("peers").as_array()[0].at("remote").as_string() == "127.0.0.1:18444");
        CHECK(res.body() == p2p::to_json(f.snapshot));

        std::tie(ec, res) = co_await c.request(http::verb::get, "/nope");
        REQUIRE_FALSE(ec);
        CHECK(res.result() == http::status::not_found);

        std::tie(ec, res) = co_await c.request(http::verb::post, "/metrics");
        REQUIRE_FALSE(ec);
        CHECK(res.result() == http::status::method_not_allowed);
        CHECK(res[http::field::allow].find("GET") != beast::string_view::npos);

        // HEAD: the headers of the GET, no body.
        {
          http::request<http::empty_body> req{http::verb::head, "/metrics", 11};
          c.stream.expires_after(client_guard);
          auto [wec, wn] = co_await http::async_write(c.stream, req, as_result);
          REQUIRE_FALSE(wec);
          http::response_parser<http::empty_body> head;
          head.skip(true);
          auto [rec, rn] = co_await http::async_read(c.stream, c.buffer, head, as_result);
          REQUIRE_FALSE(rec);
          CHECK(head.get().result() == http::status::ok);
          CHECK(head.get()[http::field::content_length] == std::to_string(expected.size()));
        }

        // One source call per /metrics, /peers and HEAD request; none for 404 and 405.
        CHECK(f.calls == 4);

        // Still served on a second connection.
        std::tie(ec, res) = co_await get(ep, "/metrics");
        REQUIRE_FALSE(ec);
        CHECK(res.body() == expected);

        f.serve_snapshot = false;
        std::tie(ec, res) = co_await get(ep, "/metrics");
        REQUIRE_FALSE(ec);
        CHECK(res.result() == http::status::service_unavailable);

        // A source that throws gives 500 and one report, however often it throws.
        f.source_throws = true;
        for (int i = 0; i < 2; ++i) {
          std::tie(ec, res) = co_await get(ep, "/peers");
          REQUIRE_FALSE(ec);
          CHECK(res.result() == http::status::internal_server_error);
        }
        CHECK(f.seen.count("no manager here") == 1);

        server->stop();
        server->stop();  // idempotent
        require_closed(co_await c.closed_by_server());
        CHECK(f.seen.count("") == 1);
      },
      20s, threads);
}

TEST_CASE("metrics server: start names the endpoint it cannot listen on", "[metrics-server]") {
  asio::io_context io;
  auto taken = p2p::test::listen_on(io.get_executor());
  const auto ep = taken.local_endpoint();
  try {
    metrics_server::start(io.get_executor(), ep, [] { return give(std::nullopt); });
    FAIL("start did not throw");
  } catch (const boost::system::system_error& e) {
    CHECK(std::string(e.what()).find(fmt::format("127.0.0.1:{}", ep.port())) != std::string::npos);
    CHECK(e.code() == asio::error::address_in_use);
  }
  io.run();  // nothing was left behind
}

TEST_CASE("metrics server: an oversized request is refused and the next client served",
          "[metrics-server]") {
  fixture f;
  p2p::test::run_async_test([&](asio::io_context& io) -> awaitable<void> {
    auto server = f.start(io.get_executor());
    const auto ep = server->local_endpoint();
    client c(io.get_executor());
    CO_REQUIRE(!(co_await c.connect(ep)));
    const std::string big = fmt::format(
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\n\r\n", std::string(20'000, 'a'));
    c.stream.expires_after(client_guard);
    auto [wec, wn] = co_await asio::async_write(c.stream, asio::buffer(big), as_result);
    response res;
    auto [rec, rn] = co_await http::async_read(c.stream, c.buffer, res, as_result);
    INFO("write: " << wec.message() << ", read: " << rec.message());
    CHECK(rec != beast::error::timeout);
    if (!rec) {
      CHECK(res.result() == http::status::request_header_fields_too_large);
      CHECK_FALSE(res.keep_alive());
      CHECK(f.seen.count("oversized") == 1);
    }

    // A body past the bound: 413 (announced by Content-Length) or a closed connection.
    client poster(io.get_executor());
    CO_REQUIRE(!(co_await poster.connect(ep)));
    const std::string post =
        fmt::format("POST /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10000\r\n\r\n{}",
                    std::string(10'000, 'b'));
    poster.stream.expires_after(client_guard);
    std::tie(wec, wn) = co_await asio::async_write(poster.stream, asio::buffer(post), as_result);
    response posted;
    std::tie(rec, rn) = co_await http::async_read(poster.stream, poster.buffer, posted, as_result);
    INFO("write: " << wec.message() << ", read: " << rec.message());
    CHECK(rec != beast::error::timeout);
    if (!rec) CHECK(posted.result() == http::status::payload_too_large);
    CHECK(f.calls == 0);

    auto [ec, next] = co_await get(ep, "/metrics");
    REQUIRE_FALSE(ec);
    CHECK(next.result() == http::status::ok);
    server->stop();
  });
}

TEST_CASE("metrics server: connections past max_connections are closed at once",
          "[metrics-server]") {
  const int threads = GENERATE(1, 2);
  INFO("threads: " << threads);
  fixture f;
  p2p::test::run_async_test(
      [&](asio::io_context& io) -> awaitable<void> {
        metrics_server_options o;
        o.max_connections = 2;
        auto server = f.start(io.get_executor(), o);
        const auto ep = server->local_endpoint();

        // Two connections the server has surely taken: each got an answer.
        auto first = std::make_unique<client>(io.get_executor());
        client second(io.get_executor());
        for (client* c : {first.get(), &second}) {
          CO_REQUIRE(!(co_await c->connect(ep)));
          auto [ec, res] = co_await c->request(http::verb::get, "/metrics");
          REQUIRE_FALSE(ec);
          CHECK(res.result() == http::status::ok);
        }

        client third(io.get_executor());
        CO_REQUIRE(!(co_await third.connect(ep)));  // the kernel's backlog takes it
        require_closed(co_await third.closed_by_server());
        CHECK(f.seen.count("connections open") == 1);

        // Once one leaves, a new connection is served (as soon as the server saw it leave).
        first.reset();
        bool served = false;
        for (int attempt = 0; attempt < 200 && !served; ++attempt) {
          auto [ec, res] = co_await get(ep, "/metrics");
          served = !ec && res.result() == http::status::ok;
          if (!served) co_await p2p::test::sleep_for(10ms);
        }
        CHECK(served);

        // The second one is still open and served.
        auto [ec, res] = co_await second.request(http::verb::get, "/peers");
        REQUIRE_FALSE(ec);
        CHECK(res.result() == http::status::ok);
        CHECK(f.seen.count("connections open") == 1);  // reported once, however often refused
        server->stop();
      },
      20s, threads);
}

TEST_CASE("metrics server: a connection idle past request_timeout is closed", "[metrics-server]") {
  fixture f;
  p2p::test::run_async_test([&](asio::io_context& io) -> awaitable<void> {
    metrics_server_options o;
    o.request_timeout = 200ms;
    auto server = f.start(io.get_executor(), o);
    const auto ep = server->local_endpoint();

    client idle(io.get_executor());
    CO_REQUIRE(!(co_await idle.connect(ep)));
    require_closed(co_await idle.closed_by_server());

    // Half a request, then nothing.
    client slow(io.get_executor());
    CO_REQUIRE(!(co_await slow.connect(ep)));
    const std::string part = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    auto [wec, wn] = co_await asio::async_write(slow.stream, asio::buffer(part), as_result);
    REQUIRE_FALSE(wec);
    require_closed(co_await slow.closed_by_server());

    // After an answer, keep-alive waits at most the timeout too.
    client kept(io.get_executor());
    CO_REQUIRE(!(co_await kept.connect(ep)));
    auto [ec, res] = co_await kept.request(http::verb::get, "/metrics");
    REQUIRE_FALSE(ec);
    CHECK(res.result() == http::status::ok);
    require_closed(co_await kept.closed_by_server());
    server->stop();
  });
}

TEST_CASE("metrics server: stop closes the listener and the open connections", "[metrics-server]") {
  const int threads = GENERATE(1, 2);
  INFO("threads: " << threads);
  fixture f;
  p2p::test::run_async_test(
      [&](asio::io_context& io) -> awaitable<void> {
        auto server = f.start(io.get_executor());
        const auto ep = server->local_endpoint();
        client open(io.get_executor());
        CO_REQUIRE(!(co_await open.connect(ep)));
        auto [ec, res] = co_await open.request(http::verb::get, "/peers");
        REQUIRE_FALSE(ec);
        client silent(io.get_executor());  // connected, never asked anything
        CO_REQUIRE(!(co_await silent.connect(ep)));

        server->stop();
        require_closed(co_await open.closed_by_server());
        require_closed(co_await silent.closed_by_server());
        client late(io.get_executor());
        CO_REQUIRE(co_await late.connect(ep));  // refused: nothing listens
        // run_async_test then requires that the server left no work behind.
      },
      20s, threads);
}
