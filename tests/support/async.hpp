#pragma once
// Test helpers: run a coroutine on a real io_context with a time limit, on loopback.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <exception>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

/// Assertions on a co_await result: g++ 12 may evaluate a co_await inside Catch's macros
/// twice, so the value is awaited into a local first. Use only inside coroutines.
#define CO_REQUIRE(...)                   \
  do {                                    \
    auto co_require_value_ = __VA_ARGS__; \
    REQUIRE(co_require_value_);           \
  } while (false)
#define CO_REQUIRE_FALSE(...)             \
  do {                                    \
    auto co_require_value_ = __VA_ARGS__; \
    REQUIRE_FALSE(co_require_value_);     \
  } while (false)

namespace p2p::test {

namespace asio = boost::asio;
using namespace std::chrono_literals;

/// Runs `f(io)` as a coroutine on a fresh io_context, on `threads` threads, for at most
/// `limit` in all, and checks three things:
/// - the coroutine's exception is rethrown here (so REQUIRE inside the coroutine works);
/// - an exception that escapes io_context::run() on any thread (a handler or spawned
///   coroutine that threw) fails the test with that exception, rethrown on this thread;
/// - the coroutine finished, and afterwards the io_context ran out of work by itself.
/// The io_context is not stopped when the coroutine finishes: work the test leaves behind
/// (a peer that never closed, a loop that never ended) keeps run() from returning and
/// fails the test once `limit` has passed. It is stopped early only when the test has
/// already failed (the coroutine or a handler threw), so a failure does not wait `limit`.
template <class F>
void run_async_test(F&& f, std::chrono::milliseconds limit = 20s, int threads = 1) {
  asio::io_context io(threads);
  std::atomic<bool> done{false};
  std::exception_ptr error;  // written before `done`, read after every thread joined
  asio::co_spawn(io, f(io), [&](std::exception_ptr e) {
    error = e;
    done = true;
    if (e) io.stop();
  });
  std::mutex escaped_mutex;
  std::exception_ptr escaped;  // the first exception out of run_for, on any thread
  auto run = [&] {
    try {
      io.run_for(limit);
    } catch (...) {
      {
        std::lock_guard<std::mutex> lock(escaped_mutex);
        if (!escaped) escaped = std::current_exception();
      }
      io.stop();
    }
  };
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i) pool.emplace_back(run);
  run();
  for (auto& t : pool) t.join();
  const auto took =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  if (error) std::rethrow_exception(error);
  if (escaped) {
    INFO("an exception escaped io_context::run() (a handler or a spawned coroutine threw)");
    std::rethrow_exception(escaped);
  }
  {
    INFO("the test body did not finish within " << limit.count() << " ms (a hang)");
    REQUIRE(done);
  }
  INFO(
      "the test left work behind (a peer that never closed, a loop that never ended): "
      "the io_context still had work "
      << took.count() << " ms after the start, with a limit of " << limit.count() << " ms");
  REQUIRE(io.stopped());
}

/// The token that returns an operation's error as a value: `auto [ec, v] = co_await
/// op(..., as_result);`.
inline constexpr auto as_result = asio::as_tuple(asio::use_awaitable);

/// Completion handler for coroutines a test spawns: an exception surfaces from run().
struct rethrow {
  void operator()(std::exception_ptr e) const {
    if (e) std::rethrow_exception(e);
  }
};

/// Sleeps inside a coroutine.
inline asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::use_awaitable);
}

/// Polls `pred` every 5 ms until it holds or `limit` passes; returns its last value.
template <class Pred>
asio::awaitable<bool> eventually(Pred pred, std::chrono::milliseconds limit = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) co_return pred();
    co_await sleep_for(5ms);
  }
  co_return true;
}

/// An acceptor on `address`:0 (loopback only).
inline asio::ip::tcp::acceptor listen_on(asio::any_io_executor ex,
                                         const std::string& address = "127.0.0.1") {
  asio::ip::tcp::endpoint ep(asio::ip::make_address(address), 0);
  asio::ip::tcp::acceptor a(ex, ep);
  return a;
}

/// Resident set size of this process in KiB (from /proc/self/status), for test logs.
inline long rss_kib() {
  std::ifstream f("/proc/self/status");
  std::string key;
  while (f >> key) {
    if (key == "VmRSS:") {
      long kb = 0;
      f >> kb;
      return kb;
    }
    std::string rest;
    std::getline(f, rest);
  }
  return -1;
}

}  // namespace p2p::test
