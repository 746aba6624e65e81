// W5 "many streams into one manager": --conns inbound connections (16 by default) stream
// --count frames in all (split evenly) of --size payload bytes into one receiver whose
// io_context runs on --threads threads. Both receivers (p2p and raw) live here because they
// share the setup, which differs from the single-threaded workloads of p2p_side/raw_side.
//
// Measured: frames_per_s = count / (t1 - t0), t0 just before "go" is sent on every
// connection (the counterpart writes nothing before its "go"), t1 when the frame that
// completes the count is counted. Setup (connects, accepts) is outside the window.

#include <p2p/p2p.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>

#include <atomic>
#include <memory>

#include "bench_util.hpp"
#include "sides.hpp"

namespace bench {

using asio::awaitable;
using asio::ip::tcp;

namespace {

struct streams_case {
  std::size_t size, count, conns, threads;

  explicit streams_case(const args& a)
      : size(static_cast<std::size_t>(a.num("size", 32))),
        count(static_cast<std::size_t>(a.num("count", 1000000))),
        conns(static_cast<std::size_t>(a.num("conns", 16))),
        threads(static_cast<std::size_t>(std::max<long>(1, a.num("threads", 1)))) {}

  std::string json(std::string_view impl, double dt) const {
    return fmt::format(
        R"({{"impl":"{}","workload":"streams","size":{},"count":{},"conns":{},"threads":{},"frames_per_s":{:.0f},"mb_per_s":{:.2f}}})",
        impl, size, count, conns, threads, static_cast<double>(count) / dt,
        static_cast<double>(count * size) / dt / 1e6);
  }
};

/// Where setup and measurement give up: 5 s before --time-limit, which leaves time to close
/// the counterpart and shut down before the io_context's own limit.
clock_type::time_point deadline_for(const args& a) {
  return clock_type::now() + std::chrono::seconds(std::max<long>(1, time_limit_s(a) - 5));
}

void log_error(const char* who, std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    fmt::print(stderr, "{}: {}\n", who, x.what());
  }
}

// ---- p2p: one peer_manager, counted through its public events ---------------------------

awaitable<std::string> p2p_body(args a, p2p::peer_manager& mgr) {
  const streams_case c(a);
  const auto deadline = deadline_for(a);
  co_await mgr.launch();
  // This coroutine, and every manager callback below, runs on the manager's strand: plain
  // counters are enough, however many threads run the io_context.
  waker wake(co_await asio::this_coro::executor);
  std::vector<std::shared_ptr<p2p::peer>> ready;
  std::size_t closed = 0, frames = 0, bytes = 0;
  clock_type::time_point t1;
  auto on_ready = mgr.events().peer_ready.subscribe([&](const std::shared_ptr<p2p::peer>& p) {
    ready.push_back(p);
    wake.notify();
  });
  auto on_end = mgr.events().peer_end.subscribe([&](const auto&) {
    ++closed;
    wake.notify();
  });
  auto on_error = mgr.events().peer_error.subscribe([&](const auto&, const auto&) {
    ++closed;
    wake.notify();
  });
  auto on_blk = mgr.events().command("blk").subscribe(
      [&](const std::shared_ptr<p2p::peer>&, const p2p::message& m) {
        bytes += m.payload.size();
        if (++frames == c.count) {
          t1 = clock_type::now();
          wake.notify();
        }
      });
  auto cp = spawn_counterpart(a, mgr.listen_endpoint()->port());
  std::string out;
  if (!co_await wake.until([&] { return ready.size() >= c.conns; }, deadline)) {
    fmt::print(stderr, "p2p streams: only {} of {} peers connected\n", ready.size(), c.conns);
  } else {
    const auto t0 = clock_type::now();
    for (auto& p : ready) p->send("go");
    co_await wake.until([&] { return frames >= c.count || closed > 0; }, deadline);
    if (frames == c.count && bytes == c.count * c.size)
      out = c.json("p2p", std::chrono::duration<double>(t1 - t0).count());
    else
      fmt::print(stderr, "p2p streams: {} of {} frames, {} peers closed\n", frames, c.count,
                 closed);
  }
  ready.clear();
  cp.finish();
  co_await mgr.shutdown();
  co_return out;
}

// ---- raw: plain Asio, a strand per connection -------------------------------------------

/// What the connections share with the measuring coroutine; kept alive by all of them.
struct raw_state {
  raw_state(asio::any_io_executor body, std::size_t count, std::size_t size)
      : wake(std::move(body)), count(count), size(size) {}

  waker wake;  // on the measuring coroutine's strand
  const std::size_t count, size;
  std::atomic<std::size_t> frames{0};  // relaxed: only the total matters
  std::atomic<std::size_t> failed{0};
  clock_type::time_point t1;  // written once, by the read that completes the count...
  bool done = false;          // ...which then sets this on the measuring strand
};

/// One connection on its own strand: writes "go", then reads into a large buffer, parses
/// and verifies (SHA-256d, this thread's reused EVP context) every frame in place, and adds
/// the read's frames to the total with one relaxed increment.
awaitable<void> raw_conn(std::shared_ptr<tcp::socket> s, std::shared_ptr<raw_state> st) {
  const auto go = frame("go", {});
  if (auto [ec, n] = co_await asio::async_write(*s, asio::buffer(go), use_nothrow); ec) {
    st->failed.fetch_add(1, std::memory_order_relaxed);
    co_return;
  }
  frame_reader reader(256 * 1024);
  // Bounded in count: exactly `count` frames are sent in all, and the counterpart closes
  // the connection when the measuring side is done.
  for (;;) {
    auto [ec, n] = co_await s->async_read_some(reader.tail(64 * 1024), use_nothrow);
    if (ec) co_return;
    reader.commit(n);
    std::size_t k = 0;
    while (auto f = reader.next())
      if (f->checksum_ok && f->command == "blk" && f->payload.size() == st->size) ++k;
    if (k == 0) continue;
    const std::size_t before = st->frames.fetch_add(k, std::memory_order_relaxed);
    if (before < st->count && before + k >= st->count) {
      st->t1 = clock_type::now();
      // The waker's timer belongs to the measuring strand; the post also publishes t1.
      asio::post(st->wake.t.get_executor(), [st] {
        st->done = true;
        st->wake.notify();
      });
    }
  }
}

awaitable<std::string> raw_body(args a, asio::io_context& ioc) {
  const streams_case c(a);
  const auto deadline = deadline_for(a);
  auto ex = co_await asio::this_coro::executor;
  auto st = std::make_shared<raw_state>(ex, c.count, c.size);
  tcp::acceptor acc(ex, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  auto cp = spawn_counterpart(a, acc.local_endpoint().port());
  // Accepts are bounded by the deadline: the guard cancels a pending one.
  asio::steady_timer guard(ex, deadline);
  guard.async_wait([&acc](boost::system::error_code ec) {
    if (!ec) acc.cancel();
  });
  std::vector<std::shared_ptr<tcp::socket>> socks;
  while (socks.size() < c.conns) {
    const asio::any_io_executor own = asio::make_strand(ioc);
    auto [ec, s] = co_await acc.async_accept(own, use_nothrow);
    if (ec) break;
    s.set_option(tcp::no_delay(true), ec);
    socks.push_back(std::make_shared<tcp::socket>(std::move(s)));
  }
  guard.cancel();
  std::string out;
  if (socks.size() < c.conns) {
    fmt::print(stderr, "raw streams: only {} of {} connections accepted\n", socks.size(),
               c.conns);
  } else {
    const auto t0 = clock_type::now();
    for (auto& s : socks) asio::co_spawn(s->get_executor(), raw_conn(s, st), asio::detached);
    co_await st->wake.until(
        [&] { return st->done || st->failed.load(std::memory_order_relaxed) > 0; }, deadline);
    const std::size_t frames = st->frames.load(std::memory_order_relaxed);
    if (st->done && frames == c.count)
      out = c.json("raw", std::chrono::duration<double>(st->t1 - t0).count());
    else
      fmt::print(stderr, "raw streams: {} of {} frames\n", frames, c.count);
  }
  // The connections stay with their strands: run_streams_raw stops the io_context, and its
  // destruction closes them.
  cp.finish();
  co_return out;
}

}  // namespace

std::string run_streams_p2p(const args& a) {
  raise_fd_limit();
  const streams_case c(a);
  asio::io_context ioc(static_cast<int>(c.threads));
  p2p::manager_options o;
  o.listen = true;
  o.listen_address = "127.0.0.1";
  o.port = 0;
  o.min_peers = 0;
  o.max_peers = c.conns + 16;
  o.max_inbound = c.conns + 16;
  o.handshake_timeout = std::chrono::minutes(10);
  o.check_interval = std::chrono::minutes(10);
  o.status_interval = std::chrono::minutes(10);
  o.disconnect_timeout = std::chrono::seconds(2);
  std::string out;
  {
    p2p::peer_manager mgr(ioc.get_executor(), o);
    asio::co_spawn(mgr.get_executor(), p2p_body(a, mgr),
                   [&](std::exception_ptr e, std::string r) {
                     log_error("p2p streams", e);
                     out = std::move(r);
                   });
    // shutdown() leaves no work behind, so every thread returns on its own.
    run_threads(ioc, c.threads, std::chrono::seconds(time_limit_s(a)));
  }
  return out;
}

std::string run_streams_raw(const args& a) {
  raise_fd_limit();
  const streams_case c(a);
  asio::io_context ioc(static_cast<int>(c.threads));
  std::string out;
  asio::co_spawn(asio::make_strand(ioc), raw_body(a, ioc),
                 [&](std::exception_ptr e, std::string r) {
                   log_error("raw streams", e);
                   out = std::move(r);
                   ioc.stop();
                 });
  run_threads(ioc, c.threads, std::chrono::seconds(time_limit_s(a)));
  return out;
}

}  // namespace bench
