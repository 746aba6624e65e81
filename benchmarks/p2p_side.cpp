// The workloads measured through the library's public API.

#include <p2p/p2p.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <memory>
#include <sstream>

#include "bench_util.hpp"
#include "sides.hpp"

namespace bench {

using asio::awaitable;

namespace {

/// Waits (polling every millisecond) until `pred` holds or `limit` passes.
template <class Pred>
awaitable<bool> poll_until(Pred pred, std::chrono::milliseconds limit) {
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer t(ex);
  const auto deadline = clock_type::now() + limit;
  while (!pred()) {
    if (clock_type::now() > deadline) co_return false;
    t.expires_after(std::chrono::milliseconds(1));
    co_await t.async_wait(use_nothrow);
  }
  co_return true;
}

awaitable<std::string> body(args a, p2p::peer_manager& mgr) {
  const std::size_t peers = static_cast<std::size_t>(a.num("peers", 1));
  const std::chrono::seconds setup_limit(std::min<long>(time_limit_s(a), 60));
  co_await mgr.launch();

  if (a.workload == "connect") {
    auto cp = spawn_counterpart(a, 0);
    std::istringstream line(cp.read_line(setup_limit));
    std::vector<std::string> hosts;
    for (std::string h; line >> h;) hosts.push_back(h);
    if (hosts.size() != peers) {
      cp.finish();
      co_return std::string();
    }
    std::size_t connected = 0;
    auto sub = mgr.events().peer_connect.subscribe([&](const auto&) { ++connected; });
    const auto t0 = clock_type::now();
    mgr.add_active(p2p::host_list(hosts));
    const bool ok = co_await poll_until([&] { return connected >= peers; }, setup_limit);
    const double dt = seconds_since(t0);
    cp.finish();
    co_await mgr.shutdown();
    if (!ok) co_return std::string();
    co_return fmt::format(
        R"({{"impl":"p2p","workload":"connect","peers":{},"connects_per_s":{:.1f}}})", peers,
        static_cast<double>(peers) / dt);
  }

  const std::size_t rss0 = rss_bytes();
  std::vector<std::shared_ptr<p2p::peer>> ready;
  auto on_ready = mgr.events().peer_ready.subscribe(
      [&](const std::shared_ptr<p2p::peer>& p) { ready.push_back(p); });
  auto cp = spawn_counterpart(a, mgr.listen_endpoint()->port());
  const std::size_t want = a.workload == "fanout" || a.workload == "idle" ? peers : 1;
  if (!co_await poll_until([&] { return ready.size() >= want; }, setup_limit)) {
    fmt::print(stderr, "p2p: only {} of {} peers connected\n", ready.size(), want);
    cp.finish();
    co_return std::string();
  }
  std::string out;
  waker wake(co_await asio::this_coro::executor);

  if (a.workload == "pingpong") {
    const long rounds = a.num("rounds", 10000);
    auto p = ready.front();
    std::size_t got = 0;
    auto sub = p->events().command("pong").subscribe([&](const p2p::message&) {
      ++got;
      wake.notify();
    });
    const auto payload = make_payload(32);
    std::vector<double> lat;
    for (long i = 0; i < rounds + 100; ++i) {
      const auto t0 = clock_type::now();
      const std::size_t expect = got + 1;
      p->send("ping", payload);
      co_await wake.until([&] { return got >= expect || p->is_closed(); });
      if (p->is_closed()) break;
      if (i >= 100) lat.push_back(seconds_since(t0) * 1e6);  // the first 100 warm up
    }
    if (lat.size() == static_cast<std::size_t>(rounds))
      out = fmt::format(
          R"({{"impl":"p2p","workload":"pingpong","rounds":{},"p50_us":{:.2f},"p99_us":{:.2f}}})",
          rounds, quantile(lat, 0.5), quantile(lat, 0.99));
  } else if (a.workload == "stream") {
    const std::size_t size = static_cast<std::size_t>(a.num("size", 32));
    const std::size_t count = static_cast<std::size_t>(a.num("count", 100000));
    std::size_t frames = 0, bytes = 0;
    auto sub = mgr.events().command("blk").subscribe(
        [&](const std::shared_ptr<p2p::peer>&, const p2p::message& m) {
          ++frames;
          bytes += m.payload.size();
          if (frames == count) wake.notify();
        });
    auto p = ready.front();
    const auto t0 = clock_type::now();
    p->send("go");
    co_await wake.until([&] { return frames >= count || p->is_closed(); });
    const double dt = seconds_since(t0);
    if (frames == count && bytes == count * size)
      out = fmt::format(
          R"({{"impl":"p2p","workload":"stream","size":{},"count":{},"frames_per_s":{:.0f},"mb_per_s":{:.2f}}})",
          size, count, static_cast<double>(count) / dt, static_cast<double>(bytes) / dt / 1e6);
  } else if (a.workload == "fanout") {
    const long rounds = a.num("rounds", 100);
    const auto payload = make_payload(32);
    std::vector<double> lat;
    const long warmup = 3;
    clock_type::time_point start;
    for (long i = 0; i < rounds + warmup; ++i) {
      if (i == warmup) start = clock_type::now();
      const auto t0 = clock_type::now();
      auto sent = co_await mgr.send(p2p::all, "state", "connected", "knock", payload, "answer");
      auto ans = co_await sent.wait(std::chrono::seconds(10));
      if (ans.answered.size() != peers) {
        fmt::print(stderr, "p2p fanout: round {}: {} of {} answered\n", i, ans.answered.size(),
                   peers);
        break;
      }
      if (i >= warmup) lat.push_back(seconds_since(t0) * 1e6);
    }
    if (lat.size() == static_cast<std::size_t>(rounds))
      out = fmt::format(
          R"({{"impl":"p2p","workload":"fanout","peers":{},"rounds":{},"rounds_per_s":{:.1f},"p50_us":{:.1f},"p99_us":{:.1f}}})",
          peers, rounds, static_cast<double>(rounds) / seconds_since(start), quantile(lat, 0.5),
          quantile(lat, 0.99));
  } else if (a.workload == "idle") {
    co_await poll_until([] { return false; }, std::chrono::milliseconds(300));  // settle
    const std::size_t rss1 = rss_bytes();
    out = fmt::format(
        R"({{"impl":"p2p","workload":"idle","peers":{},"rss_per_peer_bytes":{:.0f}}})", peers,
        (static_cast<double>(rss1) - static_cast<double>(rss0)) / static_cast<double>(peers));
  }
  ready.clear();
  cp.finish();
  co_await mgr.shutdown();
  co_return out;
}

}  // namespace

std::string run_p2p(const args& a) {
  raise_fd_limit();
  const std::size_t peers = static_cast<std::size_t>(a.num("peers", 1));
  asio::io_context ioc(1);
  p2p::manager_options o;
  o.listen = a.workload != "connect";
  o.listen_address = "127.0.0.1";
  o.port = o.listen ? 0 : 8333;  // 0 means "ephemeral" only with a listener
  o.min_peers = 0;
  o.max_peers = peers + 16;
  o.max_inbound = peers + 16;
  o.handshake_timeout = std::chrono::minutes(10);
  o.check_interval = std::chrono::minutes(10);
  o.status_interval = std::chrono::minutes(10);
  o.connect_timeout = std::chrono::seconds(30);
  o.disconnect_timeout = std::chrono::seconds(2);
  // --stats off / --keepalive off: the statistics' and the pings' cost, measured against the
  // defaults (on) in the same run.
  o.collect_stats = a.str("stats", "on") != "off";
  if (a.str("keepalive", "on") == "off") o.ping_interval = std::chrono::milliseconds(0);
  std::string out;
  {
    p2p::peer_manager mgr(ioc.get_executor(), o);
    asio::co_spawn(mgr.get_executor(), body(a, mgr), [&](std::exception_ptr e, std::string r) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& x) {
          fmt::print(stderr, "p2p: {}\n", x.what());
        }
      }
      out = std::move(r);
    });
    // shutdown() leaves no work behind, so run_for returns on its own; the limit bounds a hang.
    const auto t0 = clock_type::now();
    ioc.run_for(std::chrono::seconds(time_limit_s(a)));
    if (!ioc.stopped())
      fmt::print(stderr, "p2p: io_context still busy after {:.1f} s\n", seconds_since(t0));
  }
  return out;
}

}  // namespace bench
