#pragma once
// Private coroutine helpers shared by peer, manager and answers.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <exception>

namespace p2p::detail {

namespace asio = boost::asio;

/// Completion token that never throws: `auto [ec, n] = co_await op(use_nothrow);`.
constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

/// Completion handler for spawned coroutines: an escaping exception is a bug of ours or a
/// throwing application callback, so it propagates out of io_context::run() where the
/// application sees it, instead of vanishing as with `detached`.
struct rethrow {
  void operator()(std::exception_ptr e) const {
    if (e) std::rethrow_exception(e);
  }
};

/// A wake-up: waiters park on a timer that expires at the far future; notify() cancels every
/// pending wait. Waiters check their predicate before waiting, so with every user on one
/// strand no notification can be missed. Deadlines use a timer of their own.
class wakeup {
 public:
  explicit wakeup(const asio::any_io_executor& ex)
      : timer_(ex, std::chrono::steady_clock::time_point::max()) {}

  /// Wakes every waiter.
  void notify() { timer_.cancel(); }

  /// Waits until notified (or the waiting coroutine is cancelled).
  asio::awaitable<void> wait() { co_await timer_.async_wait(use_nothrow); }

 private:
  asio::steady_timer timer_;
};

}  // namespace p2p::detail
