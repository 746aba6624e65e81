// The same workloads in plain Asio with no library: large buffered reads parsed in place,
// SHA-256d verified on every received frame, batched writes. The ceiling of this machine.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <memory>
#include <sstream>

#include "bench_util.hpp"
#include "sides.hpp"

namespace bench {

using asio::awaitable;
using asio::ip::tcp;

namespace {

awaitable<void> sleep_ms(int ms) {
  asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(ms));
  co_await t.async_wait(use_nothrow);
}

/// Reads frames from `s` and calls `fn(frame_view)` for each verified one; ends on error.
template <class Fn>
awaitable<void> read_frames(std::shared_ptr<tcp::socket> s, Fn fn) {
  frame_reader reader;
  for (;;) {
    auto [ec, n] = co_await s->async_read_some(asio::buffer(reader.tail()), use_nothrow);
    if (ec) co_return;
    reader.commit(n);
    while (auto f = reader.next())
      if (f->checksum_ok) fn(*f);
  }
}

awaitable<std::string> body(args a) {
  auto ex = co_await asio::this_coro::executor;
  const std::size_t peers = static_cast<std::size_t>(a.num("peers", 1));
  waker wake(ex);

  if (a.workload == "connect") {
    auto cp = spawn_counterpart(a, 0);
    std::istringstream line(cp.read_line(std::chrono::seconds(60)));
    std::vector<tcp::endpoint> eps;
    for (std::string h; line >> h;) {
      auto colon = h.rfind(':');
      eps.emplace_back(asio::ip::make_address(h.substr(0, colon)),
                       static_cast<unsigned short>(std::stoi(h.substr(colon + 1))));
    }
    std::vector<std::shared_ptr<tcp::socket>> socks;
    std::size_t done = 0, failed = 0;
    const auto t0 = clock_type::now();
    for (auto& ep : eps) {
      auto s = std::make_shared<tcp::socket>(ex);
      socks.push_back(s);
      s->async_connect(ep, [&, s](boost::system::error_code ec) {
        if (!ec) s->set_option(tcp::no_delay(true), ec);
        failed += ec ? 1 : 0;
        ++done;
        wake.notify();
      });
    }
    co_await wake.until([&] { return done >= eps.size(); });
    const double dt = seconds_since(t0);
    cp.finish();
    if (eps.size() != peers || failed) co_return std::string();
    co_return fmt::format(
        R"({{"impl":"raw","workload":"connect","peers":{},"connects_per_s":{:.1f}}})", peers,
        static_cast<double>(peers) / dt);
  }

  tcp::acceptor acc(ex, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const std::size_t rss0 = rss_bytes();
  auto cp = spawn_counterpart(a, acc.local_endpoint().port());
  const std::size_t want = a.workload == "fanout" || a.workload == "idle" ? peers : 1;
  std::vector<std::shared_ptr<tcp::socket>> socks;
  while (socks.size() < want) {
    auto [ec, s] = co_await acc.async_accept(use_nothrow);
    if (ec) co_return std::string();
    s.set_option(tcp::no_delay(true));
    auto sp = std::make_shared<tcp::socket>(std::move(s));
    if (a.workload == "idle")  // parked like an idle peer: a readiness wait, no buffer
      sp->async_wait(tcp::socket::wait_read, [](boost::system::error_code) {});
    socks.push_back(std::move(sp));
  }
  std::string out;

  if (a.workload == "pingpong") {
    const long rounds = a.num("rounds", 10000);
    auto s = socks.front();
    std::size_t got = 0;
    asio::co_spawn(ex,
                   read_frames(s,
                               [&](const frame_view& f) {
                                 if (f.command == "pong") ++got;
                                 wake.notify();
                               }),
                   asio::detached);
    const auto payload = make_payload(32);
    std::vector<double> lat;
    std::vector<std::uint8_t> buf;
    for (long i = 0; i < rounds + 100; ++i) {
      const auto t0 = clock_type::now();
      const std::size_t expect = got + 1;
      buf.clear();
      append_frame(buf, "ping", payload);
      auto [ec, n] = co_await asio::async_write(*s, asio::buffer(buf), use_nothrow);
      if (ec) break;
      co_await wake.until([&] { return got >= expect; });
      if (i >= 100) lat.push_back(seconds_since(t0) * 1e6);
    }
    if (lat.size() == static_cast<std::size_t>(rounds))
      out = fmt::format(
          R"({{"impl":"raw","workload":"pingpong","rounds":{},"p50_us":{:.2f},"p99_us":{:.2f}}})",
          rounds, quantile(lat, 0.5), quantile(lat, 0.99));
  } else if (a.workload == "stream") {
    const std::size_t size = static_cast<std::size_t>(a.num("size", 32));
    const std::size_t count = static_cast<std::size_t>(a.num("count", 100000));
    std::size_t frames = 0, bytes = 0;
    auto s = socks.front();
    asio::co_spawn(ex,
                   read_frames(s,
                               [&](const frame_view& f) {
                                 if (f.command != "blk") return;
                                 ++frames;
                                 bytes += f.payload.size();
                                 if (frames == count) wake.notify();
                               }),
                   asio::detached);
    const auto go = frame("go", {});
    const auto t0 = clock_type::now();
    co_await asio::async_write(*s, asio::buffer(go), use_nothrow);
    co_await wake.until([&] { return frames >= count; });
    const double dt = seconds_since(t0);
    out = fmt::format(
        R"({{"impl":"raw","workload":"stream","size":{},"count":{},"frames_per_s":{:.0f},"mb_per_s":{:.2f}}})",
        size, count, static_cast<double>(count) / dt, static_cast<double>(bytes) / dt / 1e6);
  } else if (a.workload == "fanout") {
    const long rounds = a.num("rounds", 100);
    std::size_t answers = 0;
    for (auto& s : socks) {
      s->non_blocking(true);
      asio::co_spawn(ex,
                     read_frames(s,
                                 [&](const frame_view& f) {
                                   if (f.command == "answer" && ++answers == peers) wake.notify();
                                 }),
                     asio::detached);
    }
    const auto payload = make_payload(32);
    std::vector<double> lat;
    const long warmup = 3;
    clock_type::time_point start;
    for (long i = 0; i < rounds + warmup; ++i) {
      if (i == warmup) start = clock_type::now();
      const auto t0 = clock_type::now();
      answers = 0;
      const auto f = frame("knock", payload);  // encoded once per round, like the library
      bool ok = true;
      for (auto& s : socks) {
        // 56 bytes always fit the empty send buffer: one non-blocking send per peer.
        boost::system::error_code ec;
        s->write_some(asio::buffer(f), ec);
        ok = ok && !ec;
      }
      if (!ok) break;
      co_await wake.until([&] { return answers >= peers; });
      if (i >= warmup) lat.push_back(seconds_since(t0) * 1e6);
    }
    if (lat.size() == static_cast<std::size_t>(rounds))
      out = fmt::format(
          R"({{"impl":"raw","workload":"fanout","peers":{},"rounds":{},"rounds_per_s":{:.1f},"p50_us":{:.1f},"p99_us":{:.1f}}})",
          peers, rounds, static_cast<double>(rounds) / seconds_since(start), quantile(lat, 0.5),
          quantile(lat, 0.99));
  } else if (a.workload == "idle") {
    co_await sleep_ms(300);
    const std::size_t rss1 = rss_bytes();
    out = fmt::format(
        R"({{"impl":"raw","workload":"idle","peers":{},"rss_per_peer_bytes":{:.0f}}})", peers,
        (static_cast<double>(rss1) - static_cast<double>(rss0)) / static_cast<double>(peers));
  }
  cp.finish();
  for (auto& s : socks) {
    boost::system::error_code ig;
    s->close(ig);
  }
  co_return out;
}

}  // namespace

std::string run_raw(const args& a) {
  raise_fd_limit();
  asio::io_context ioc(1);
  std::string out;
  asio::co_spawn(ioc, body(a), [&](std::exception_ptr e, std::string r) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        fmt::print(stderr, "raw: {}\n", x.what());
      }
    }
    out = std::move(r);
    ioc.stop();
  });
  ioc.run_for(std::chrono::seconds(time_limit_s(a)));
  return out;
}

}  // namespace bench
