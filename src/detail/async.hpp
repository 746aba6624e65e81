#pragma once
// Private coroutine helpers shared by peer, manager and answers.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <exception>

namespace p2p::detail {

namespace asio = boost::asio;

/// Completion token that never throws: `auto [ec, n] = co_await op(use_nothrow);`.
constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

/// Completion handler for spawned coroutines: an escaping exception is a bug of ours or a
/// throwing application callback, so it propagates out of io_context::run() where the
/// application sees it, instead of vanishing as with `detached`.
/// The coroutine's result, if any, is ignored.
struct rethrow {
  template <class... Result>
  void operator()(std::exception_ptr e, const Result&...) const {
    if (e) std::rethrow_exception(e);
  }
};

}  // namespace p2p::detail
