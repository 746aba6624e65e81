#include <p2p/error.hpp>
#include <p2p/format.hpp>
#include <p2p/manager.hpp>

#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "support/async.hpp"
#include "support/loopback.hpp"
#include "support/reports.hpp"

namespace asio = boost::asio;
using asio::ip::tcp;
using p2p::test::eventually;
using p2p::test::has_report;
using p2p::test::run_async_test;
using p2p::test::sleep_for;
using namespace std::chrono_literals;

namespace {

using awaitable_void = asio::awaitable<void>;

using p2p::test::make_remote;

p2p::manager_options test_options(std::string address = "127.0.0.1") {
  return p2p::test::loopback_options(std::move(address));
}

/// A manager that only dials out (hosts without a port take 8333), kept between min and max.
p2p::manager_options dialer_options(std::size_t min_peers, std::size_t max_peers) {
  auto o = test_options();
  o.listen = false;
  o.port = 8333;
  o.min_peers = min_peers;
  o.max_peers = max_peers;
  return o;
}

struct remotes {
  std::vector<std::unique_ptr<p2p::peer_manager>> managers;
  std::vector<p2p::host> hosts;
};

/// `n` listening remote managers on 127.0.0.(first + i).
asio::awaitable<remotes> start_remotes(asio::io_context& io, int n, int first = 10) {
  remotes r;
  for (int i = 0; i < n; ++i) {
    auto address = "127.0.0." + std::to_string(first + i);
    auto m = make_remote(io, address);
    co_await m->launch();
    r.hosts.push_back({address, m->listen_endpoint()->port()});
    r.managers.push_back(std::move(m));
  }
  co_return r;
}

asio::awaitable<void> shutdown_all(remotes& r) {
  for (auto& m : r.managers) co_await m->shutdown();
}

/// Reads a manager getter on its strand (getters are strand-only).
template <class F>
auto on_strand(p2p::peer_manager& m, F f) -> asio::awaitable<decltype(f())> {
  auto fn = [f]() -> asio::awaitable<decltype(f())> { co_return f(); };
  co_return co_await asio::co_spawn(m.get_executor(), std::move(fn), asio::use_awaitable);
}

}  // namespace

TEST_CASE("manager: options keep the original's defaults", "[manager]") {
  p2p::manager_options o;
  REQUIRE(o.listen);
  REQUIRE(o.port == 8333);
  REQUIRE(o.magic == 0xD9B4BEF9);
  REQUIRE(o.min_peers == 3);
  REQUIRE(o.max_peers == 20);
  REQUIRE(o.idle_timeout == 30min);
  REQUIRE(o.connect_timeout == 5s);
  REQUIRE(o.disconnect_timeout == 5s);
  REQUIRE(o.check_interval == 60s);
  REQUIRE(o.status_interval == 10s);
  REQUIRE(o.bar_duration == 10min);
  asio::io_context io;
  o.min_peers = 5;
  o.max_peers = 2;
  REQUIRE_THROWS_WITH(p2p::peer_manager(io.get_executor(), o),
                      Catch::Contains("min_peers (5) is greater than max_peers (2)"));
}

SCENARIO("manager: launch connects seeds up to (min+max)/2, pools the rest, and runs",
         "[manager]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto r = co_await start_remotes(io, 8);
    auto o = dialer_options(2, 10);  // launch target (2 + 10) / 2 = 6
    p2p::peer_manager m(io.get_executor(), o);
    std::vector<std::string> states;
    auto sub = co_await on_strand(m, [&] {
      return std::make_shared<p2p::subscription>(
          m.events().state_change.subscribe([&](p2p::manager_state from, p2p::manager_state to) {
            states.push_back(fmt::format("{}>{}", from, to));
          }));
    });
    REQUIRE(m.state() == p2p::manager_state::created);
    co_await m.launch(r.hosts);
    auto active = co_await on_strand(m, [&] { return m.active_count(); });
    auto pool = co_await on_strand(m, [&] { return m.pool().size(); });
    THEN("six connect and two wait in the pool") {
      REQUIRE(active == 6);
      REQUIRE(pool == 2);
      CO_REQUIRE(co_await eventually([&] { return m.state() == p2p::manager_state::running; }));
      REQUIRE(states == std::vector<std::string>{"new>launching", "launching>running"});
    }
    co_await m.shutdown();
    REQUIRE(m.state() == p2p::manager_state::shutdown);
    REQUIRE(states.back() == "running>shutdown");
    REQUIRE(m.active_count() == 0);
    co_await shutdown_all(r);
  });
}

SCENARIO("manager: add_pool connects below the target, pools above it, without duplicates",
         "[manager]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto r = co_await start_remotes(io, 4);
    auto o = dialer_options(2, 2);
    p2p::peer_manager m(io.get_executor(), o);
    co_await m.launch();
    CO_REQUIRE(co_await eventually([&] { return m.state() == p2p::manager_state::launching; }));
    WHEN("four hosts are added, one of them twice") {
      m.add_pool({r.hosts[0], r.hosts[1], r.hosts[2], r.hosts[3], r.hosts[3]});
      CO_REQUIRE(co_await eventually([&] { return m.active_count() == 2; }));
      co_await sleep_for(100ms);
      THEN("two connect, two are pooled once each") {
        REQUIRE(m.active_count() == 2);
        auto pool = m.pool();
        REQUIRE(pool.size() == 2);
        REQUIRE(std::find(pool.begin(), pool.end(), r.hosts[3]) != pool.end());
      }
      AND_WHEN("an active host is added to the pool again") {
        m.add_pool(r.hosts[0]);
        co_await sleep_for(20ms);
        THEN("it is not pooled") {
          REQUIRE(m.pool().size() == 2);
        }
      }
      AND_WHEN("add_active is given a pooled host") {
        m.add_active(r.hosts[2]);
        THEN("it connects even above the count") {
          CO_REQUIRE(co_await eventually([&] { return m.active_count() == 3; }));
          REQUIRE(m.pool().size() == 1);
          CO_REQUIRE(co_await eventually(
              [&] { return m.find(p2p::peer::outbound_id(r.hosts[2])) != nullptr; }));
        }
      }
    }
    co_await m.shutdown();
    co_await shutdown_all(r);
  });
}

SCENARIO("manager: when a peer drops, the pool check refills from the pool with its own port",
         "[manager]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto r = co_await start_remotes(io, 3);
    auto o = test_options();
    o.min_peers = 2;
    o.max_peers = 2;
    o.listen = false;
    o.port = 1;  // the default port must never be used for pooled hosts
    p2p::peer_manager m(io.get_executor(), o);
    std::vector<p2p::report> reports;
    std::vector<std::shared_ptr<p2p::peer>> ended;
    const p2p::host_list seeds{r.hosts[0], r.hosts[1], r.hosts[2]};  // not inside co_await: g++ 12
    co_await m.launch(seeds);
    auto s1 = m.events().report.subscribe([&](const p2p::report& x) { reports.push_back(x); });
    auto s2 = m.events().peer_end.subscribe(
        [&](const std::shared_ptr<p2p::peer>& p) { ended.push_back(p); });
    CO_REQUIRE(co_await eventually([&] {
      auto peers = m.active_peers();
      return peers.size() == 2 && std::all_of(peers.begin(), peers.end(),
                                              [](auto& p) { return p->state() == "connected"; });
    }));
    REQUIRE(m.pool().size() == 1);
    const p2p::host pooled = m.pool()[0];
    WHEN("a remote closes its connection") {
      auto victim = m.active_peers()[0];
      auto& remote = *r.managers[std::find(r.hosts.begin(), r.hosts.end(), victim->remote()) -
                                 r.hosts.begin()];
      auto their_side = co_await on_strand(remote, [&] { return remote.active_peers(); });
      REQUIRE(their_side.size() == 1);
      co_await remote.del_active(their_side[0], "test");
      THEN("the peer ends, is removed with a report, and the pooled host connects") {
        const auto replacement_id = p2p::peer::outbound_id(pooled);
        CO_REQUIRE(co_await eventually([&] {
          return m.active_count() == 2 && m.find(replacement_id) && !m.find(victim->id());
        }));
        // The dropped host is back in the book: it worked (connected, no hook to fail).
        REQUIRE(m.pool() == std::vector<p2p::host>{victim->remote()});
        REQUIRE(m.book().find(victim->remote())->attempts == 0);
        REQUIRE(m.book().find(victim->remote())->last_success != p2p::host_record::time_point{});
        REQUIRE(ended.size() == 1);
        REQUIRE(ended[0] == victim);
        REQUIRE(has_report(reports, p2p::severity::info, "removed; 1 active"));
        auto replacement = m.find(p2p::peer::outbound_id(pooled));
        CO_REQUIRE(co_await eventually([&] { return replacement->state() == "connected"; }));
        REQUIRE(replacement->endpoint()->port() == pooled.port);
      }
    }
    co_await m.shutdown();
    co_await shutdown_all(r);
  });
}

TEST_CASE("manager: peers silent longer than idle_timeout are disconnected", "[manager]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto r = co_await start_remotes(io, 2);
    auto o = dialer_options(0, 4);
    o.idle_timeout = 300ms;
    p2p::peer_manager m(io.get_executor(), o);
    co_await m.launch();
    m.add_active({r.hosts[0], r.hosts[1]});
    CO_REQUIRE(co_await eventually([&] { return m.active_count() == 2; }));
    auto chatty = m.find(p2p::peer::outbound_id(r.hosts[0]));
    auto& talker = *r.managers[0];
    // Remote 0 keeps talking; remote 1 says nothing.
    for (int i = 0; i < 12; ++i) {
      co_await talker.send(p2p::all, "state", "connected", "ping", {});
      co_await sleep_for(50ms);
    }
    REQUIRE(m.find(p2p::peer::outbound_id(r.hosts[1])) == nullptr);
    REQUIRE(m.find(p2p::peer::outbound_id(r.hosts[0])) == chatty);
    REQUIRE(chatty->is_open());
    co_await m.shutdown();
    co_await shutdown_all(r);
  });
}

SCENARIO("manager: a connect that does not complete in time bars the host and removes it",
         "[manager]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    // A listener that never accepts, with its backlog full: further connects hang.
    tcp::acceptor stuck(io, tcp::endpoint(asio::ip::make_address("127.0.0.20"), 0));
    stuck.listen(0);
    std::vector<tcp::socket> fillers;
    for (int i = 0; i < 8; ++i) {
      fillers.emplace_back(io);
      // Async: a synchronous connect would block once the backlog is full.
      fillers.back().async_connect(stuck.local_endpoint(), [](boost::system::error_code) {});
    }
    co_await sleep_for(50ms);
    auto o = dialer_options(0, 20);
    o.connect_timeout = 300ms;
    p2p::peer_manager m(io.get_executor(), o);
    std::vector<p2p::report> reports;
    std::vector<boost::system::error_code> errors;
    auto s1 = m.events().report.subscribe([&](const p2p::report& x) { reports.push_back(x); });
    auto s2 = m.events().peer_error.subscribe(
        [&](const std::shared_ptr<p2p::peer>&, const boost::system::error_code& ec) {
          errors.push_back(ec);
        });
    co_await m.launch();
    const p2p::host h{"127.0.0.20", stuck.local_endpoint().port()};
    m.add_active(h);
    CO_REQUIRE(co_await eventually([&] { return m.active_count() == 1; }));
    THEN("after connect_timeout it is reported, barred for 10 minutes and removed") {
      CO_REQUIRE(co_await eventually([&] { return m.active_count() == 0; }, 3s));
      REQUIRE(errors.size() == 1);
      REQUIRE(errors[0] == p2p::error::connect_timeout);
      REQUIRE(errors[0] == p2p::condition::timeout);
      REQUIRE(has_report(reports, p2p::severity::warning, "timed out after 300 ms"));
      REQUIRE(m.barred_for("127.0.0.20") > 9min);
      REQUIRE(m.barred_for("127.0.0.20") <= 10min);
      AND_THEN("the barred host is not dialled again; the book holds its failure") {
        m.add_active(h);
        m.add_pool(h);
        co_await sleep_for(50ms);
        REQUIRE(m.active_count() == 0);
        REQUIRE(m.pool() == std::vector<p2p::host>{h});
        REQUIRE(m.book().find(h)->attempts == 1);
        REQUIRE(m.book().find(h)->retry_at > std::chrono::steady_clock::now());
      }
    }
    co_await m.shutdown();
  });
}

SCENARIO("manager: bars add up and expire on the injected clock", "[manager]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto r = co_await start_remotes(io, 1, 30);
    auto now =
        std::make_shared<std::chrono::steady_clock::time_point>(std::chrono::steady_clock::now());
    auto o = dialer_options(0, 20);
    o.clock = [now] { return *now; };
    p2p::peer_manager m(io.get_executor(), o);
    co_await m.launch();
    GIVEN("a host barred twice for 10 minutes") {
      m.bar("127.0.0.30", 10min);
      m.bar("127.0.0.30", 10min);
      co_await sleep_for(1ms);
      THEN("it is barred for 20 minutes, on any port") {
        REQUIRE(m.barred_for("127.0.0.30") == 20min);
        REQUIRE(m.status().barred == 1);
      }
      WHEN("15 minutes pass and another 10-minute bar comes") {
        *now += 15min;
        REQUIRE(m.barred_for("127.0.0.30") == 5min);
        m.bar("127.0.0.30", 10min);
        co_await sleep_for(1ms);
        THEN("what was left is added to") {
          REQUIRE(m.barred_for("127.0.0.30") == 15min);
        }
      }
      WHEN("the host is offered while barred, then after the bar ends") {
        m.add_active(r.hosts[0]);
        co_await sleep_for(50ms);
        REQUIRE(m.active_count() == 0);
        *now += 21min;
        REQUIRE(m.barred_for("127.0.0.30") == std::chrono::steady_clock::duration::zero());
        m.add_active(r.hosts[0]);
        THEN("it connects once the bar is over") {
          CO_REQUIRE(co_await eventually([&] { return m.active_count() == 1; }));
          REQUIRE(m.status().barred == 0);
        }
      }
    }
    REQUIRE_THROWS_WITH(m.bar("x", 0ms), Catch::Contains("bar duration 0 ms for 'x'"));
    co_await m.shutdown();
    co_await shutdown_all(r);
  });
}

TEST_CASE("manager: a bar covers every spelling of an address and any case of a name",
          "[manager]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    p2p::peer_manager m(io.get_executor(), dialer_options(0, 20));
    co_await m.launch();
    m.bar("0:0::1", 10min);
    m.bar("::ffff:127.0.0.40", 10min);
    m.bar("Node.Example", 10min);
    co_await sleep_for(1ms);
    CHECK(m.barred_for("::1") > 9min);
    CHECK(m.barred_for("0000::0001") > 9min);
    CHECK(m.barred_for("127.0.0.40") > 9min);
    CHECK(m.barred_for("::FFFF:127.0.0.40") > 9min);
    CHECK(m.barred_for("node.example") > 9min);
    CHECK(m.barred_for("127.0.0.41") == std::chrono::steady_clock::duration::zero());
    CHECK(m.status().barred == 3);
    co_await m.shutdown();
  });
}

SCENARIO("manager: a peer error is reported, bars the host and drops the peer", "[manager]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto o = test_options();
    o.min_peers = 0;
    o.max_message_size = 1000;
    p2p::peer_manager m(io.get_executor(), o);
    std::vector<p2p::report> reports;
    std::vector<std::shared_ptr<p2p::peer>> errored;
    auto s1 = m.events().report.subscribe([&](const p2p::report& x) { reports.push_back(x); });
    auto s2 = m.events().peer_error.subscribe(
        [&](const std::shared_ptr<p2p::peer>& p, const boost::system::error_code&) {
          errored.push_back(p);
        });
    co_await m.launch();
    // An inbound client from 127.0.0.40 declares a 2000-byte payload.
    auto raw = co_await p2p::test::dial_from("127.0.0.40", *m.listen_endpoint());
    CO_REQUIRE(co_await eventually([&] { return m.active_count() == 1; }));
    auto frame = p2p::encode_frame(p2p::bitcoin_magic, "big", std::vector<std::uint8_t>(2000));
    co_await asio::async_write(raw, asio::buffer(frame.data(), 24), asio::use_awaitable);
    CO_REQUIRE(co_await eventually([&] { return m.active_count() == 0; }));
    REQUIRE(errored.size() == 1);
    REQUIRE(has_report(reports, p2p::severity::warning, "barred"));
    REQUIRE(m.barred_for("127.0.0.40") > 9min);
    WHEN("the barred host connects again") {
      bool admitted = true;
      auto s3 = m.events().listen_connect.subscribe(
          [&](const std::shared_ptr<p2p::peer>&, bool ok) { admitted = ok; });
      auto again = co_await p2p::test::dial_from("127.0.0.40", *m.listen_endpoint());
      THEN("it is refused") {
        std::array<char, 8> buf;
        auto [ec, n] =
            co_await again.async_read_some(asio::buffer(buf), asio::as_tuple(asio::use_awaitable));
        REQUIRE(ec);  // closed on us
        REQUIRE_FALSE(admitted);
        REQUIRE(m.active_count() == 0);
        REQUIRE(has_report(reports, p2p::severity::notice, "refused: barred"));
      }
    }
    co_await m.shutdown();
  });
}

TEST_CASE("manager: an inbound connection from an endpoint already active is refused",
          "[manager]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto o = test_options();
    o.min_peers = 0;
    p2p::peer_manager m(io.get_executor(), o);
    std::vector<bool> admissions;
    auto s = m.events().listen_connect.subscribe(
        [&](const std::shared_ptr<p2p::peer>&, bool ok) { admissions.push_back(ok); });
    co_await m.launch();
    // We dial 127.0.0.50:Q; then a socket bound to that same 127.0.0.50:Q dials us.
    tcp::acceptor remote(io, tcp::endpoint(asio::ip::make_address("127.0.0.50"), 0));
    const p2p::host h{"127.0.0.50", remote.local_endpoint().port()};
    m.add_active(h);
    auto accepted = co_await remote.async_accept(asio::use_awaitable);
    CO_REQUIRE(co_await eventually([&] { return m.active_count() == 1; }));
    remote.close();
    tcp::socket twin(io);
    twin.open(tcp::v4());
    twin.set_option(tcp::socket::reuse_address(true));
    twin.bind({asio::ip::make_address("127.0.0.50"), h.port});
    co_await twin.async_connect(*m.listen_endpoint(), asio::use_awaitable);
    CO_REQUIRE(co_await eventually([&] { return admissions.size() == 1; }));
    REQUIRE_FALSE(admissions[0]);
    REQUIRE(m.active_count() == 1);
    co_await m.shutdown();
  });
}

SCENARIO("manager: every host-list form works, a malformed entry is reported, the rest used",
         "[manager]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto r = co_await start_remotes(io, 4, 60);
    auto v6 = make_remote(io, "::1");
    co_await v6->launch();
    auto named = make_remote(io, "127.0.0.1");
    co_await named->launch();
    auto o = test_options();
    o.min_peers = 0;
    o.max_peers = 10;
    o.listen = false;
    o.port = r.hosts[3].port;  // the bare host takes the default port
    p2p::peer_manager m(io.get_executor(), o);
    std::vector<p2p::report> reports;
    auto s = m.events().report.subscribe([&](const p2p::report& x) { reports.push_back(x); });
    co_await m.launch();
    m.add_active({
        r.hosts[0].to_string(),                                           // "host:port"
        std::pair<std::string, int>{r.hosts[1].name, r.hosts[1].port},    // (host, port)
        p2p::host{r.hosts[2].name, r.hosts[2].port},                      // {host, port}
        r.hosts[3].name,                                                  // bare host, default port
        "[::1]:" + std::to_string(v6->listen_endpoint()->port()),         // IPv6
        "localhost:" + std::to_string(named->listen_endpoint()->port()),  // DNS name
        "127.0.0.99:99999",                                               // malformed: port
        "bad host:1",                                                     // malformed: space
    });
    THEN("the six good entries connect and both bad ones are reported by value") {
      CO_REQUIRE(co_await eventually([&] {
        auto peers = m.active_peers();
        return peers.size() == 6 && std::all_of(peers.begin(), peers.end(),
                                                [](auto& p) { return p->state() == "connected"; });
      }));
      REQUIRE(has_report(reports, p2p::severity::warning, "99999"));
      REQUIRE(has_report(reports, p2p::severity::warning, "bad host"));
    }
    AND_THEN("a single string works too") {
      auto extra = make_remote(io, "127.0.0.70");
      co_await extra->launch();
      m.add_active("127.0.0.70:" + std::to_string(extra->listen_endpoint()->port()));
      CO_REQUIRE(co_await eventually([&] { return m.active_count() == 7; }));
      co_await m.shutdown();
      co_await extra->shutdown();
    }
    co_await m.shutdown();
    co_await v6->shutdown();
    co_await named->shutdown();
    co_await shutdown_all(r);
  });
}

SCENARIO("manager: peer events, per-command events, reports and status bubble up", "[manager]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto r = co_await start_remotes(io, 1, 80);
    auto o = dialer_options(1, 1);
    p2p::peer_manager m(io.get_executor(), o);
    int connects = 0, foos = 0;
    std::vector<std::string> messages;
    std::vector<p2p::manager_status> statuses;
    auto s1 =
        m.events().peer_connect.subscribe([&](const std::shared_ptr<p2p::peer>&) { ++connects; });
    auto s2 = m.events().peer_message.subscribe(
        [&](const std::shared_ptr<p2p::peer>& p, const p2p::message& msg) {
          REQUIRE(p->remote() == r.hosts[0]);
          messages.push_back(msg.command + ":" + std::string(msg.payload.view()));
        });
    auto s3 = m.events().command("foo").subscribe(
        [&](const std::shared_ptr<p2p::peer>&, const p2p::message&) { ++foos; });
    auto s4 =
        m.events().status.subscribe([&](const p2p::manager_status& st) { statuses.push_back(st); });
    co_await m.launch(r.hosts[0]);
    CO_REQUIRE(co_await eventually([&] { return connects == 1; }));
    auto& remote = *r.managers[0];
    CO_REQUIRE(co_await eventually([&] { return remote.active_count() == 1; }));
    co_await remote.send(p2p::all, "state", "connected", "foo", p2p::as_bytes("1"));
    co_await remote.send(p2p::all, "state", "connected", "bar", p2p::as_bytes("2"));
    CO_REQUIRE(co_await eventually([&] { return messages.size() == 2; }));
    REQUIRE(messages == std::vector<std::string>{"foo:1", "bar:2"});
    REQUIRE(foos == 1);
    CO_REQUIRE(co_await eventually([&] { return !statuses.empty(); }));
    REQUIRE(statuses.back().active == 1);
    REQUIRE(statuses.back().pool == 0);
    auto next = co_await p2p::next_event(m.get_executor(), m.events().status, 2s);
    REQUIRE(std::get<0>(next).active == 1);
    co_await m.shutdown();
    co_await shutdown_all(r);
  });
}

SCENARIO("manager: del_active disconnects gracefully, reports, and refills", "[manager]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto r = co_await start_remotes(io, 2, 90);
    auto o = dialer_options(1, 1);
    p2p::peer_manager m(io.get_executor(), o);
    std::vector<p2p::report> reports;
    auto s = m.events().report.subscribe([&](const p2p::report& x) { reports.push_back(x); });
    const p2p::host_list seeds{r.hosts[0], r.hosts[1]};
    co_await m.launch(seeds);
    CO_REQUIRE(co_await eventually([&] { return m.state() == p2p::manager_state::running; }));
    REQUIRE(m.active_count() == 1);
    auto first = m.active_peers()[0];
    co_await m.del_active(first, "no longer wanted");
    REQUIRE(first->is_closed());
    REQUIRE(has_report(reports, p2p::severity::info, "no longer wanted"));
    REQUIRE(has_report(reports, p2p::severity::info, "removed; 0 active"));
    CO_REQUIRE(
        co_await eventually([&] { return m.active_count() == 1 && m.active_peers()[0] != first; }));
    co_await m.shutdown();
    co_await shutdown_all(r);
  });
}

TEST_CASE("manager: more than max_peers active is reported", "[manager]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto r = co_await start_remotes(io, 3, 100);
    auto o = dialer_options(1, 2);
    p2p::peer_manager m(io.get_executor(), o);
    std::vector<p2p::report> reports;
    auto s = m.events().report.subscribe([&](const p2p::report& x) { reports.push_back(x); });
    co_await m.launch();
    m.add_active(r.hosts);
    CO_REQUIRE(co_await eventually([&] { return m.active_count() == 3; }));
    co_await m.check_pool();
    REQUIRE(has_report(reports, p2p::severity::warning, "3 active peers, above max_peers 2"));
    REQUIRE(m.active_count() == 3);  // reported, not trimmed
    co_await m.shutdown();
    co_await shutdown_all(r);
  });
}

TEST_CASE("manager: shutdown with 100 connected peers leaves io_context::run() to return",
          "[manager]") {
  asio::io_context io;
  auto o = test_options();
  o.min_peers = 0;
  o.max_peers = 200;
  o.max_inbound = 200;
  auto m = std::make_unique<p2p::peer_manager>(io.get_executor(), o);
  std::vector<std::unique_ptr<p2p::peer_manager>> clients;
  bool done = false;
  auto body = [&]() -> awaitable_void {
    co_await m->launch();
    const auto port = m->listen_endpoint()->port();
    // 100 client managers, each dialling us once from its own 127.0.1.x address.
    for (int i = 0; i < 100; ++i) {
      auto co = test_options("127.0.1." + std::to_string(i + 1));
      co.listen = false;
      co.port = 8333;
      co.min_peers = 0;
      clients.push_back(std::make_unique<p2p::peer_manager>(io.get_executor(), co));
      co_await clients.back()->launch();
      clients.back()->add_active("127.0.0.1:" + std::to_string(port));
    }
    CO_REQUIRE(co_await eventually([&] { return m->active_count() == 100; }, 10s));
    const auto t0 = std::chrono::steady_clock::now();
    co_await m->shutdown();
    REQUIRE(std::chrono::steady_clock::now() - t0 < 5s);
    REQUIRE(m->active_count() == 0);
    for (auto& c : clients) co_await c->shutdown();
    done = true;
  };
  asio::co_spawn(io, body, p2p::test::rethrow{});
  const auto t0 = std::chrono::steady_clock::now();
  io.run_for(30s);  // returns early only if no work is left anywhere
  REQUIRE(done);
  REQUIRE(std::chrono::steady_clock::now() - t0 < 25s);
  REQUIRE(io.stopped());
}

TEST_CASE("manager: two managers share one io_context run on 4 threads", "[manager]") {
  run_async_test(
      [](asio::io_context& io) -> awaitable_void {
        auto a_opts = test_options("127.0.0.110");
        a_opts.min_peers = 0;
        p2p::peer_manager a(io.get_executor(), a_opts);
        auto b_opts = test_options("127.0.0.111");
        b_opts.min_peers = 0;
        b_opts.port = 0;
        p2p::peer_manager b(io.get_executor(), b_opts);
        std::atomic<int> got{0};
        auto sub = co_await on_strand(b, [&] {
          return std::make_shared<p2p::subscription>(b.events().command("n").subscribe(
              [&](const std::shared_ptr<p2p::peer>&, const p2p::message&) { ++got; }));
        });
        co_await a.launch();
        co_await b.launch();
        b.add_active("127.0.0.110:" + std::to_string(a.listen_endpoint()->port()));
        for (int i = 0; i < 400; ++i) {
          auto n = co_await on_strand(a, [&] { return a.active_count(); });
          if (n == 1) break;
          co_await sleep_for(5ms);
        }
        for (int i = 0; i < 500; ++i)
          co_await a.send(p2p::all, "state", "connected", "n", p2p::as_bytes(std::to_string(i)));
        for (int i = 0; i < 1000 && got < 500; ++i) co_await sleep_for(5ms);
        REQUIRE(got == 500);
        co_await a.shutdown();
        co_await b.shutdown();
      },
      20s, 4);
}

TEST_CASE("manager: an inbound peer that sends nothing within handshake_timeout is dropped",
          "[manager]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto o = test_options();
    o.min_peers = 0;
    o.handshake_timeout = 200ms;
    p2p::peer_manager m(io.get_executor(), o);
    std::vector<boost::system::error_code> errors;
    auto s = m.events().peer_error.subscribe(
        [&](const std::shared_ptr<p2p::peer>&, const boost::system::error_code& ec) {
          errors.push_back(ec);
        });
    co_await m.launch();
    auto silent = co_await p2p::test::dial_from("127.0.0.120", *m.listen_endpoint());
    auto talker = co_await p2p::test::dial_from("127.0.0.121", *m.listen_endpoint());
    auto hello = p2p::encode_frame(p2p::bitcoin_magic, "hello", {});
    co_await asio::async_write(talker, asio::buffer(hello.data(), hello.size()),
                               asio::use_awaitable);
    CO_REQUIRE(co_await eventually([&] { return m.active_count() == 2; }));
    CO_REQUIRE(co_await eventually([&] { return m.active_count() == 1; }, 3s));
    REQUIRE(errors.size() == 1);
    REQUIRE(errors[0] == p2p::error::handshake_timeout);
    REQUIRE(m.barred_for("127.0.0.120") > 0ms);
    REQUIRE(m.active_peers()[0]->remote().name == "127.0.0.121");
    co_await m.shutdown();
  });
}
