#include <p2p/error.hpp>
#include <p2p/events.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/async.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using p2p::test::run_async_test;

SCENARIO("signal: callbacks run in subscription order", "[events]") {
  p2p::signal<int> sig;
  std::vector<std::string> calls;
  auto a = sig.subscribe([&](int v) { calls.push_back("a" + std::to_string(v)); });
  auto b = sig.subscribe([&](int v) { calls.push_back("b" + std::to_string(v)); });
  auto c = sig.subscribe([&](int v) { calls.push_back("c" + std::to_string(v)); });
  CHECK(sig.size() == 3);
  sig.emit(1);
  sig.emit(2);
  CHECK(calls == std::vector<std::string>{"a1", "b1", "c1", "a2", "b2", "c2"});
}

SCENARIO("subscription: destroying the handle unsubscribes", "[events]") {
  p2p::signal<std::string, int> sig;
  int calls = 0;
  GIVEN("a handle that goes out of scope") {
    {
      auto h = sig.subscribe([&](const std::string&, int) { ++calls; });
      sig.emit("x", 1);
      CHECK(h.active());
    }
    sig.emit("x", 2);
    THEN("the callback ran only while the handle lived") {
      CHECK(calls == 1);
      CHECK(sig.empty());
    }
  }
  GIVEN("an explicit unsubscribe") {
    auto h = sig.subscribe([&](const std::string&, int) { ++calls; });
    h.unsubscribe();
    sig.emit("x", 1);
    CHECK(calls == 0);
    CHECK_FALSE(h.active());
    h.unsubscribe();  // twice is harmless
  }
  GIVEN("a handle moved into another") {
    auto h = sig.subscribe([&](const std::string&, int) { ++calls; });
    p2p::subscription other = std::move(h);
    sig.emit("x", 1);
    CHECK(calls == 1);
    CHECK(other.active());
    WHEN("a handle is move-assigned over it") {
      int second = 0;
      other = sig.subscribe([&](const std::string&, int) { ++second; });
      sig.emit("x", 2);
      THEN("the old callback is unsubscribed and the new one runs") {
        CHECK(calls == 1);
        CHECK(second == 1);
        CHECK(sig.size() == 1);
      }
    }
  }
}

SCENARIO("subscription: a callback may unsubscribe itself or others while it runs", "[events]") {
  p2p::signal<> sig;
  std::vector<std::string> calls;
  p2p::subscription self;
  p2p::subscription later;
  self = sig.subscribe([&] {
    calls.push_back("self");
    self.unsubscribe();
    later.unsubscribe();
  });
  auto middle = sig.subscribe([&] { calls.push_back("middle"); });
  later = sig.subscribe([&] { calls.push_back("later"); });
  sig.emit();
  sig.emit();
  THEN("it is not called again, and a later one it removed is not called even in this emit") {
    CHECK(calls == std::vector<std::string>{"self", "middle", "middle"});
    CHECK(sig.size() == 1);
  }
}

SCENARIO("subscription: a callback subscribed during an emit runs from the next emit", "[events]") {
  p2p::signal<int> sig;
  std::vector<std::string> calls;
  std::vector<p2p::subscription> added;
  auto adder = sig.subscribe([&](int v) {
    calls.push_back("adder" + std::to_string(v));
    // Several, so the slot vector reallocates while it is being walked.
    for (int i = 0; i < 8 && v == 1; ++i)
      added.push_back(sig.subscribe([&, i](int w) {
        if (i == 0) calls.push_back("new" + std::to_string(w));
      }));
  });
  sig.emit(1);
  CHECK(calls == std::vector<std::string>{"adder1"});
  sig.emit(2);
  CHECK(calls == std::vector<std::string>{"adder1", "adder2", "new2"});
  CHECK(sig.size() == 9);
}

TEST_CASE("subscription: release() keeps the callback for the signal's life", "[events]") {
  p2p::signal<int> sig;
  int sum = 0;
  {
    auto h = sig.subscribe([&](int v) { sum += v; });
    h.release();
    CHECK_FALSE(h.active());
  }
  sig.emit(3);
  sig.emit(4);
  CHECK(sum == 7);
  CHECK(sig.size() == 1);
}

TEST_CASE("subscription: a handle may outlive its signal", "[events]") {
  p2p::subscription h;
  {
    p2p::signal<int> sig;
    h = sig.subscribe([](int) {});
    CHECK(h.active());
  }
  CHECK_FALSE(h.active());
  h.unsubscribe();
  SUCCEED("unsubscribing after the signal died is a no-op");
}

TEST_CASE("signal: a throwing callback propagates and the signal stays usable", "[events]") {
  p2p::signal<int> sig;
  int after = 0;
  auto thrower = sig.subscribe([](int v) {
    if (v == 1) throw std::runtime_error("boom");
  });
  auto counter = sig.subscribe([&](int) { ++after; });
  REQUIRE_THROWS_WITH(sig.emit(1), "boom");
  CHECK(after == 0);
  thrower.unsubscribe();
  sig.emit(2);
  CHECK(after == 1);
  CHECK(sig.size() == 1);
}

SCENARIO("next_event: waits for the next matching emit, with a timeout", "[events]") {
  GIVEN("nothing is emitted") {
    THEN("it completes with error::timeout after the timeout, and unsubscribes") {
      run_async_test([](asio::io_context&) -> asio::awaitable<void> {
        p2p::signal<int> sig;
        const auto start = std::chrono::steady_clock::now();
        auto ex = co_await asio::this_coro::executor;
        auto [ec, got] = co_await p2p::next_event(ex, sig, 30ms, p2p::test::as_result);
        CHECK(ec == p2p::error::timeout);
        CHECK(std::chrono::steady_clock::now() - start >= 30ms);
        CHECK(sig.empty());
      });
    }
  }
  GIVEN("events emitted later from the same executor") {
    THEN("it returns the first one the predicate accepts") {
      run_async_test([](asio::io_context& io) -> asio::awaitable<void> {
        p2p::signal<int, std::string> sig;
        asio::steady_timer later(io, 10ms);
        later.async_wait([&](boost::system::error_code ec) {
          if (ec) return;
          sig.emit(1, "skip");
          sig.emit(42, "first");
          sig.emit(42, "second");
        });
        const auto start = std::chrono::steady_clock::now();
        auto ex = co_await asio::this_coro::executor;
        auto got = co_await p2p::next_event(ex, sig, 5s,
                                            [](int v, const std::string&) { return v == 42; });
        CHECK(std::get<0>(got) == 42);
        CHECK(std::get<1>(got) == "first");
        CHECK(std::chrono::steady_clock::now() - start < 4s);
        CHECK(sig.empty());
      });
    }
  }
  GIVEN("an emit without a predicate") {
    THEN("any emit ends the wait") {
      run_async_test([](asio::io_context& io) -> asio::awaitable<void> {
        p2p::signal<std::string> sig;
        asio::steady_timer later(io, 5ms);
        later.async_wait([&](boost::system::error_code ec) {
          if (ec) return;
          sig.emit("verack");
        });
        auto ex = co_await asio::this_coro::executor;
        auto got = co_await p2p::next_event(ex, sig, 5s);
        CHECK(std::get<0>(got) == "verack");
      });
    }
  }
}

SCENARIO("next_event: a cancellation slot ends the wait with operation_aborted", "[events]") {
  run_async_test([](asio::io_context& io) -> asio::awaitable<void> {
    p2p::signal<int> sig;
    asio::cancellation_signal cancel;
    boost::system::error_code got_ec;
    bool done = false;
    p2p::next_event(io.get_executor(), sig, 5s,
                    asio::bind_cancellation_slot(
                        cancel.slot(), [&](boost::system::error_code ec, std::tuple<int>) {
                          got_ec = ec;
                          done = true;
                        }));
    co_await p2p::test::sleep_for(20ms);
    CHECK(sig.size() == 1);
    cancel.emit(asio::cancellation_type::terminal);
    CO_REQUIRE(co_await p2p::test::eventually([&] { return done; }, 2s));
    CHECK(got_ec == asio::error::operation_aborted);
    sig.emit(1);  // nobody listens any more
    CHECK(sig.empty());
  });
}
