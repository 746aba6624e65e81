#pragma once
/// @file async.hpp
/// How the library's asynchronous operations take an Asio completion token.
///
/// Every asynchronous operation of p2p-manager takes a completion token last,
/// `use_awaitable` by default, and completes with `void(error_code)` or
/// `void(error_code, T)`: `co_await op(...)` throws `boost::system::system_error` on an
/// error, `co_await op(..., as_tuple(use_awaitable))` returns the error as a value, and a
/// callback, `use_future`, `deferred` or a token with a cancellation slot of the caller's
/// choosing work as with any Asio operation.

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/error_code.hpp>

#include <exception>
#include <tuple>
#include <utility>

namespace p2p {

/// The default completion token of every asynchronous operation: `co_await op(...)`.
using default_token = boost::asio::use_awaitable_t<>;

namespace detail {

/// What an operation's coroutine returns: the error, then the values of its signature.
template <class... T>
using op_result = std::tuple<boost::system::error_code, T...>;

/// Runs the operation `op` on `ex` (the strand that owns its state) and completes `token`
/// with `(error_code, T...)` on the token's associated executor. The token's cancellation
/// slot reaches the operation's coroutine (its `this_coro::cancellation_state`).
template <class... T, class Executor, class Token>
auto async_run(Executor ex, boost::asio::awaitable<op_result<T...>> op, Token&& token) {
  namespace asio = boost::asio;
  return asio::async_initiate<Token, void(boost::system::error_code, T...)>(
      [](auto handler, Executor ex, asio::awaitable<op_result<T...>> op) {
        auto slot = asio::get_associated_cancellation_slot(handler);
        // The handler's executor has work until the handler runs.
        auto hex = asio::prefer(asio::get_associated_executor(handler, ex),
                                asio::execution::outstanding_work.tracked);
        asio::co_spawn(ex, std::move(op),
                       asio::bind_cancellation_slot(
                           slot, [h = std::move(handler), hex = std::move(hex)](
                                     std::exception_ptr e, op_result<T...> r) mutable {
                             // The operations return their failures; an exception here is a bug of
                             // ours, and leaves through io_context::run().
                             if (e) std::rethrow_exception(e);
                             asio::dispatch(hex, [h = std::move(h), r = std::move(r)]() mutable {
                               std::apply(std::move(h), std::move(r));
                             });
                           }));
      },
      token, std::move(ex), std::move(op));
}

}  // namespace detail
}  // namespace p2p
