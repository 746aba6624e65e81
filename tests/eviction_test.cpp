// Inbound eviction (manager_options::evict_inbound) over loopback: which peer goes, and
// that nobody goes when every inbound peer is protected.

#include <p2p/codec.hpp>
#include <p2p/manager.hpp>

#include <boost/asio/write.hpp>

#include <catch2/catch.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "support/async.hpp"
#include "support/loopback.hpp"

namespace asio = boost::asio;
using asio::ip::tcp;
using p2p::test::eventually;
using p2p::test::run_async_test;
using namespace std::chrono_literals;

namespace {

using awaitable_void = asio::awaitable<void>;

/// A listening manager with `max_inbound` slots, eviction on, and no background checks
/// that could drop a silent peer during the test.
p2p::manager_options eviction_options(std::size_t max_inbound) {
  auto o = p2p::test::loopback_options();
  o.min_peers = 0;
  o.max_peers = 50;
  o.max_inbound = max_inbound;
  o.evict_inbound = true;
  o.handshake_timeout = 10min;
  o.check_interval = 1h;
  o.status_interval = 1h;
  return o;
}

/// The manager's side of each inbound connection, by the client's local port; and the
/// connections it refused.
struct admissions {
  std::map<unsigned short, std::shared_ptr<p2p::peer>> by_port;
  int refused = 0;
};

/// Records every listen_connect decision of `m` into `seen`.
p2p::subscription watch(p2p::peer_manager& m, std::shared_ptr<admissions> seen) {
  return m.events().listen_connect.subscribe(
      [seen](const std::shared_ptr<p2p::peer>& p, bool admitted) {
        if (admitted)
          seen->by_port[p->remote().port] = p;
        else
          ++seen->refused;
      });
}

struct client {
  std::string name;
  tcp::socket socket;
};

/// Connects from `from` and waits until the manager has decided about the connection.
asio::awaitable<client> join(std::string name, std::string from, tcp::endpoint to,
                             std::shared_ptr<admissions> seen) {
  const auto before = seen->by_port.size() + static_cast<std::size_t>(seen->refused);
  auto s = co_await p2p::test::dial_from(std::move(from), to);
  CO_REQUIRE(co_await eventually(
      [&] { return seen->by_port.size() + static_cast<std::size_t>(seen->refused) > before; }));
  co_return client{std::move(name), std::move(s)};
}

}  // namespace

SCENARIO("eviction: the youngest unprotected peer of the largest netgroup makes room",
         "[eviction]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    p2p::peer_manager m(io.get_executor(), eviction_options(10));
    co_await m.launch();
    const auto ep = *m.listen_endpoint();
    auto seen = std::make_shared<admissions>();
    auto sub = watch(m, seen);
    GIVEN("10 inbound peers: A1, A2 from 127.1/16, then B1..B8 from 127.2/16; B3, B5 talk") {
      std::vector<client> clients;
      for (int i = 1; i <= 2; ++i)
        clients.push_back(
            co_await join("A" + std::to_string(i), "127.1.0." + std::to_string(i), ep, seen));
      for (int i = 1; i <= 8; ++i)
        clients.push_back(
            co_await join("B" + std::to_string(i), "127.2.0." + std::to_string(i), ep, seen));
      REQUIRE(seen->by_port.size() == 10);
      auto manager_side = [&](const std::string& name) {
        for (auto& c : clients)
          if (c.name == name) return seen->by_port.at(c.socket.local_endpoint().port());
        FAIL("no client " << name);
        return std::shared_ptr<p2p::peer>();
      };
      const auto ping = p2p::encode_frame(p2p::bitcoin_magic, "ping", {});
      for (auto& c : clients)
        if (c.name == "B3" || c.name == "B5")
          co_await asio::async_write(c.socket, asio::buffer(ping.data(), ping.size()),
                                     asio::use_awaitable);
      CO_REQUIRE(co_await eventually([&] {
        return manager_side("B3")->frames_received() == 1 &&
               manager_side("B5")->frames_received() == 1;
      }));
      WHEN("C1 connects from 127.3/16 with every inbound slot taken") {
        auto c1 = co_await join("C1", "127.3.0.1", ep, seen);
        THEN("C1 is admitted and B8 alone is evicted") {
          // Protected: A1 and B1 (oldest of their netgroups), B3 and B5 (recent messages),
          // A2, B2, B4 (older half of the rest). Left: B6, B7, B8, all of 127.2/16.
          CHECK(seen->refused == 0);
          CHECK(seen->by_port.contains(c1.socket.local_endpoint().port()));
          CO_REQUIRE(co_await eventually([&] { return manager_side("B8")->is_closed(); }));
          for (auto& c : clients)
            if (c.name != "B8") CHECK_FALSE(manager_side(c.name)->is_closed());
          CHECK(m.active_count() == 10);
          CHECK(m.barred_for("127.2.0.8") == std::chrono::steady_clock::duration::zero());
        }
      }
    }
    co_await m.shutdown();
  });
}

TEST_CASE("eviction: when every inbound peer is protected the newcomer is refused", "[eviction]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    p2p::peer_manager m(io.get_executor(), eviction_options(2));
    co_await m.launch();
    const auto ep = *m.listen_endpoint();
    auto seen = std::make_shared<admissions>();
    auto sub = watch(m, seen);
    // Two netgroups, one peer each: both are protected as their netgroup's oldest.
    auto a = co_await join("A", "127.1.0.1", ep, seen);
    auto b = co_await join("B", "127.2.0.1", ep, seen);
    REQUIRE(seen->by_port.size() == 2);
    auto c = co_await join("C", "127.3.0.1", ep, seen);
    CHECK(seen->refused == 1);
    CHECK(seen->by_port.size() == 2);
    for (const auto& [port, p] : seen->by_port) CHECK_FALSE(p->is_closed());
    CHECK(m.active_count() == 2);
    co_await m.shutdown();
  });
}
