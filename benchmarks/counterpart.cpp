// The counterpart process: the other side of every workload, written once in plain Asio so
// that every implementation measured (p2p, raw, node) faces the same, fast remote.
//
// It exits when its stdin reaches EOF (the measuring process is done or died) or after
// --time-limit seconds, whichever comes first.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>

#include <iostream>
#include <memory>
#include <thread>

#include "bench_util.hpp"
#include "sides.hpp"

namespace bench {

using asio::awaitable;
using asio::ip::tcp;

namespace {

struct report_errors {
  void operator()(std::exception_ptr e) const {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      fmt::print(stderr, "counterpart: {}\n", x.what());
    }
  }
};

awaitable<void> say(std::string line) {
  std::cout << line << std::endl;
  co_return;
}

/// Connects `count` sockets to `ep`, at most 256 attempts in flight (the listen backlog).
awaitable<std::vector<std::shared_ptr<tcp::socket>>> connect_many(tcp::endpoint ep,
                                                                  std::size_t count) {
  auto ex = co_await asio::this_coro::executor;
  std::vector<std::shared_ptr<tcp::socket>> socks;
  std::size_t done = 0, failed = 0;
  asio::steady_timer wake(ex, clock_type::time_point::max());
  for (std::size_t i = 0; i < count; ++i) {
    while (i - done >= 256) {
      wake.expires_at(clock_type::time_point::max());
      co_await wake.async_wait(use_nothrow);
    }
    auto s = std::make_shared<tcp::socket>(ex);
    socks.push_back(s);
    s->async_connect(ep, [&, s](boost::system::error_code ec) {
      if (ec) ++failed;
      if (!ec) s->set_option(tcp::no_delay(true), ec);
      ++done;
      wake.cancel();
    });
  }
  while (done < count) {
    wake.expires_at(clock_type::time_point::max());
    co_await wake.async_wait(use_nothrow);
  }
  if (failed) fmt::print(stderr, "counterpart: {} of {} connects failed\n", failed, count);
  co_return socks;
}

/// Answers each frame with command `in` by the same payload under command `out`.
awaitable<void> echo(std::shared_ptr<tcp::socket> s, std::string in, std::string out) {
  frame_reader reader;
  std::vector<std::uint8_t> pending;
  for (;;) {
    auto [ec, n] = co_await s->async_read_some(asio::buffer(reader.tail()), use_nothrow);
    if (ec) co_return;
    reader.commit(n);
    pending.clear();
    while (auto f = reader.next()) {
      if (f->command != in) continue;
      // The checksum depends only on the payload: copy the frame and change the command.
      const std::size_t at = pending.size();
      pending.resize(at + header_size + f->payload.size());
      std::uint8_t* h = pending.data() + at;
      std::memcpy(h, f->payload.data() - header_size, header_size);
      std::memset(h + 4, 0, 12);
      std::memcpy(h + 4, out.data(), out.size());
      std::memcpy(h + header_size, f->payload.data(), f->payload.size());
    }
    if (!pending.empty()) {
      auto [wec, wn] = co_await asio::async_write(*s, asio::buffer(pending), use_nothrow);
      if (wec) co_return;
    }
  }
}

/// Waits for "go", then writes `count` frames of `size` bytes in batches of ~256 KiB.
awaitable<void> stream_out(std::shared_ptr<tcp::socket> s, std::size_t size, std::size_t count) {
  frame_reader reader;
  bool go = false;
  while (!go) {
    auto [ec, n] = co_await s->async_read_some(asio::buffer(reader.tail()), use_nothrow);
    if (ec) co_return;
    reader.commit(n);
    while (auto f = reader.next()) go = go || f->command == "go";
  }
  auto one = frame("blk", make_payload(size));
  const std::size_t per_batch = std::max<std::size_t>(1, 256 * 1024 / one.size());
  std::vector<std::uint8_t> batch;
  for (std::size_t i = 0; i < per_batch; ++i) batch.insert(batch.end(), one.begin(), one.end());
  std::size_t sent = 0;
  while (sent < count) {
    const std::size_t k = std::min(per_batch, count - sent);
    auto [ec, n] =
        co_await asio::async_write(*s, asio::buffer(batch.data(), k * one.size()), use_nothrow);
    if (ec) {
      fmt::print(stderr, "counterpart: stream write failed after {} frames: {}\n", sent,
                 ec.message());
      co_return;
    }
    sent += k;
  }
  // Keep the connection until the measuring side closes it.
  std::array<std::uint8_t, 256> sink;
  for (;;) {
    auto [ec, n] = co_await s->async_read_some(asio::buffer(sink), use_nothrow);
    if (ec) co_return;
  }
}

/// W5: connects --conns sockets to `ep`, each on a strand of its own (the sender may run on
/// several threads), and starts each streaming its share of --count frames after its "go".
awaitable<std::vector<std::shared_ptr<tcp::socket>>> stream_many(const args& a,
                                                                 asio::io_context& ioc,
                                                                 tcp::endpoint ep) {
  const auto conns = static_cast<std::size_t>(a.num("conns", 16));
  const auto count = static_cast<std::size_t>(a.num("count", 1000000));
  const auto size = static_cast<std::size_t>(a.num("size", 32));
  std::vector<std::shared_ptr<tcp::socket>> socks;
  for (std::size_t i = 0; i < conns; ++i) {
    auto s = std::make_shared<tcp::socket>(asio::make_strand(ioc));
    auto [ec] = co_await s->async_connect(ep, use_nothrow);
    if (ec) {
      fmt::print(stderr, "counterpart: connect {} of {} failed: {}\n", i + 1, conns, ec.message());
      break;
    }
    s->set_option(tcp::no_delay(true), ec);
    const std::size_t share = count / conns + (i < count % conns ? 1 : 0);
    asio::co_spawn(s->get_executor(), stream_out(s, size, share), report_errors{});
    socks.push_back(std::move(s));
  }
  co_return socks;
}

/// Holds a socket open, reading and dropping whatever arrives, until EOF.
awaitable<void> hold(std::shared_ptr<tcp::socket> s) {
  for (;;) {
    auto [ec] = co_await s->async_wait(tcp::socket::wait_read, use_nothrow);
    if (ec) co_return;
    std::array<std::uint8_t, 1024> sink;
    boost::system::error_code rec;
    s->non_blocking(true);
    std::size_t n = s->read_some(asio::buffer(sink), rec);
    if (rec == asio::error::would_block) continue;
    if (rec || n == 0) co_return;
  }
}

awaitable<void> run(args a, asio::io_context& ioc) {
  auto ex = co_await asio::this_coro::executor;
  const auto port = static_cast<unsigned short>(a.num("port", 0));
  const std::size_t peers = static_cast<std::size_t>(a.num("peers", 1));
  tcp::endpoint target(asio::ip::make_address(a.str("host", "127.0.0.1")), port);
  std::vector<std::shared_ptr<tcp::socket>> keep;
  std::vector<std::shared_ptr<tcp::acceptor>> acceptors;

  if (a.workload == "connect") {
    // P listeners spread over 127.0.0.2.. (distinct addresses and ephemeral ports).
    std::string line;
    for (std::size_t i = 0; i < peers; ++i) {
      tcp::endpoint ep(asio::ip::make_address_v4(fmt::format("127.0.0.{}", 2 + i % 200)), 0);
      auto acc = std::make_shared<tcp::acceptor>(ex, ep);
      acceptors.push_back(acc);
      line +=
          fmt::format("{}127.0.0.{}:{}", i ? " " : "", 2 + i % 200, acc->local_endpoint().port());
      asio::co_spawn(
          ex,
          [acc, &keep]() -> awaitable<void> {
            for (;;) {
              auto [ec, s] = co_await acc->async_accept(use_nothrow);
              if (ec) co_return;
              keep.push_back(std::make_shared<tcp::socket>(std::move(s)));
            }
          },
          report_errors{});
    }
    co_await say(line);
  } else if (a.workload == "streams") {
    keep = co_await stream_many(a, ioc, target);
    co_await say("ready");
  } else {
    auto socks =
        co_await connect_many(target, a.workload == "fanout" || a.workload == "idle" ? peers : 1);
    for (auto& s : socks) {
      if (a.workload == "pingpong")
        asio::co_spawn(ex, echo(s, "ping", "pong"), report_errors{});
      else if (a.workload == "fanout")
        asio::co_spawn(ex, echo(s, "knock", "answer"), report_errors{});
      else if (a.workload == "stream")
        asio::co_spawn(ex,
                       stream_out(s, static_cast<std::size_t>(a.num("size", 32)),
                                  static_cast<std::size_t>(a.num("count", 1000))),
                       report_errors{});
      else
        asio::co_spawn(ex, hold(s), report_errors{});
    }
    keep = std::move(socks);
    co_await say("ready");
  }
  // Run until stdin closes.
  asio::posix::stream_descriptor in(ex, ::dup(0));
  std::array<char, 64> b;
  for (;;) {
    auto [ec, n] = co_await in.async_read_some(asio::buffer(b), use_nothrow);
    if (ec) break;
  }
  ioc.stop();
}

}  // namespace

int run_counterpart(const args& a) {
  raise_fd_limit();
  // One thread, except for W5's many streams: a quarter of the cores (1 to 4) there, so that
  // a many-core receiver is not starved by a single sending thread.
  std::size_t threads = 1;
  if (a.workload == "streams")
    threads = static_cast<std::size_t>(a.num(
        "sender-threads", std::clamp<long>(std::thread::hardware_concurrency() / 4, 1, 4)));
  asio::io_context ioc(static_cast<int>(threads));
  // With several threads, run() and its helpers must stay on one strand.
  const asio::any_io_executor ex =
      threads > 1 ? asio::any_io_executor(asio::make_strand(ioc)) : ioc.get_executor();
  asio::co_spawn(ex, run(a, ioc), report_errors{});
  // Bounded: the measuring process normally closes our stdin long before this.
  run_threads(ioc, threads, std::chrono::seconds(a.num("time-limit", 120)));
  return 0;
}

}  // namespace bench
