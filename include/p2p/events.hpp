#pragma once
/// @file events.hpp
/// Callback subscriptions with RAII handles, and awaitable waits for the next event.

#include <p2p/async.hpp>
#include <p2p/error.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <concepts>
#include <cstddef>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

namespace p2p {

namespace detail {
/// What a subscription handle points at; the signal owns it.
struct slot_base {
  bool active = true;
  virtual ~slot_base() = default;
};
}  // namespace detail

/// A handle to one callback subscribed to a signal: destroying it unsubscribes.
///
/// @par Thread safety
/// Unsubscribe (or destroy) on the executor that emits the signal: the manager's strand.
/// @par Lifetimes
/// The handle may outlive the signal; unsubscribing is then a no-op.
class subscription {
 public:
  /// An empty handle.
  subscription() = default;

  /// Wraps a slot of a signal.
  explicit subscription(std::weak_ptr<detail::slot_base> slot) noexcept : slot_(std::move(slot)) {}

  subscription(const subscription&) = delete;
  subscription& operator=(const subscription&) = delete;

  /// Moves the subscription; `other` becomes empty.
  subscription(subscription&& other) noexcept = default;

  /// Unsubscribes the current callback, then takes `other`'s.
  subscription& operator=(subscription&& other) noexcept {
    if (this != &other) {
      unsubscribe();
      slot_ = std::move(other.slot_);
    }
    return *this;
  }

  /// Unsubscribes.
  ~subscription() { unsubscribe(); }

  /// Stops the callback from being called again; safe from inside the callback itself.
  void unsubscribe() noexcept {
    if (auto s = slot_.lock()) s->active = false;
    slot_.reset();
  }

  /// Keeps the callback subscribed for the signal's whole life, and empties this handle.
  void release() noexcept { slot_.reset(); }

  /// True while the callback is subscribed.
  bool active() const noexcept {
    auto s = slot_.lock();
    return s && s->active;
  }

 private:
  std::weak_ptr<detail::slot_base> slot_;
};

/// A list of callbacks called in subscription order with `Args`.
///
/// A callback may unsubscribe itself or others, or subscribe new ones, while it runs; one
/// subscribed during an emit is first called on the next emit. The library's own signals
/// catch what a callback throws (`catch_into`): the other callbacks still run, and the
/// exception is reported instead of unwinding through the library.
/// @par Thread safety
/// Subscribe, emit and unsubscribe on one executor (the manager's strand).
template <class... Args>
class signal {
 public:
  /// The callback type.
  using callback = std::function<void(const Args&...)>;

  /// An empty signal.
  signal() = default;

  signal(const signal&) = delete;
  signal& operator=(const signal&) = delete;

  /// From now on, an exception thrown by a callback is handed to `sink` and the emit goes
  /// on with the next callback. Without a sink it stops the emit and propagates.
  void catch_into(std::function<void(std::exception_ptr)> sink) { sink_ = std::move(sink); }

  /// Subscribes `fn`; it is called until the returned handle is destroyed or unsubscribed.
  [[nodiscard]] subscription subscribe(callback fn) {
    // Dead slots are dropped here too, so subscribe/unsubscribe cycles on a signal that
    // never emits cannot grow it.
    if (depth_ == 0) compact();
    auto s = std::make_shared<slot>();
    s->fn = std::move(fn);
    slots_.push_back(s);
    return subscription(std::weak_ptr<detail::slot_base>(s));
  }

  /// Calls every active callback; what one throws goes to the sink (see `catch_into`).
  void emit(const Args&... args) {
    const std::size_t n = slots_.size();
    ++depth_;

    struct guard {
      signal* self;
      bool saw_dead = false;

      ~guard() {
        if (--self->depth_ == 0 && saw_dead) self->compact();
      }
    } g{this};

    for (std::size_t i = 0; i < n; ++i) {
      // Index, and a raw pointer: a callback may subscribe (reallocating slots_) or
      // unsubscribe, but slots are only erased at depth 0, so the slot outlives the call.
      slot* s = slots_[i].get();
      if (!s->active) {
        g.saw_dead = true;
      } else if (!sink_) {
        s->fn(args...);
      } else {
        try {
          s->fn(args...);
        } catch (...) {
          sink_(std::current_exception());
        }
      }
    }
  }

  /// Number of active callbacks.
  std::size_t size() const noexcept {
    std::size_t n = 0;
    for (const auto& s : slots_) n += s->active ? 1 : 0;
    return n;
  }

  /// True when no callback is active.
  bool empty() const noexcept { return size() == 0; }

 private:
  struct slot : detail::slot_base {
    callback fn;
  };

  void compact() {
    std::erase_if(slots_, [](const std::shared_ptr<slot>& s) { return !s->active; });
  }

  std::vector<std::shared_ptr<slot>> slots_;
  std::function<void(std::exception_ptr)> sink_;
  int depth_ = 0;
};

namespace detail {
/// Where the library's signals send what a callback threw: (event name, exception).
using callback_error_sink = std::function<void(std::string_view, std::exception_ptr)>;

/// The text of an exception for a report ("unknown exception" for a non-std one).
std::string exception_text(std::exception_ptr e);

/// The base of the library's event structs: each signal hands what its callbacks throw to
/// `sink_` (set by the owner: a manager or a peer), naming the event; without a sink the
/// exception propagates.
class event_sink {
 public:
  /// Where callback exceptions go; set by the owner.
  callback_error_sink sink_;

 protected:
  event_sink() = default;
  event_sink(const event_sink&) = delete;
  event_sink& operator=(const event_sink&) = delete;
  ~event_sink() = default;

  /// Routes `sig`'s callback exceptions here as event `name` (a string literal).
  template <class Signal>
  void wire(Signal& sig, std::string_view name) {
    sig.catch_into([this, name](std::exception_ptr e) { caught(name, e); });
  }

  /// The per-command signal for `command` in `signals`, made (and wired) on first use.
  template <class Signal>
  Signal& command_signal(std::map<std::string, Signal, std::less<>>& signals,
                         std::string_view command) {
    auto it = signals.find(command);
    if (it == signals.end()) {
      it = signals.try_emplace(std::string(command)).first;
      it->second.catch_into([this, name = "command(\"" + std::string(command) +
                                          "\")"](std::exception_ptr e) { caught(name, e); });
    }
    return it->second;
  }

 private:
  void caught(std::string_view event, std::exception_ptr e) const {
    if (!sink_) std::rethrow_exception(e);
    sink_(event, e);
  }
};
}  // namespace detail

namespace detail {

/// The wait of `next_event`, on the executor that emits `sig`.
template <class Pred, class... Args>
boost::asio::awaitable<op_result<std::tuple<Args...>>> next_event_op(
    signal<Args...>& sig, std::chrono::steady_clock::duration timeout, Pred pred) {
  namespace asio = boost::asio;
  using result = op_result<std::tuple<Args...>>;
  co_await asio::this_coro::reset_cancellation_state(asio::enable_total_cancellation());
  auto ex = co_await asio::this_coro::executor;
  // Shared with the callback: a timer's handler may outlive this frame.
  auto timer = std::make_shared<asio::steady_timer>(ex, timeout);
  auto got = std::make_shared<std::optional<std::tuple<Args...>>>();
  subscription sub = sig.subscribe([timer, got, pred](const Args&... args) {
    if (!*got && pred(args...)) {
      got->emplace(args...);
      timer->cancel();
    }
  });
  co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
  if (*got) co_return result{boost::system::error_code{}, std::move(**got)};
  auto cs = co_await asio::this_coro::cancellation_state;
  if (cs.cancelled() != asio::cancellation_type::none)
    co_return result{asio::error::operation_aborted, {}};
  co_return result{error::timeout, {}};
}

}  // namespace detail

/// Waits for the next emit of `sig` whose arguments satisfy `pred`, for at most `timeout`.
/// Completes with `void(error_code, std::tuple<Args...>)`; the error is `error::timeout`
/// when nothing matching was emitted in time.
/// @par Thread safety
/// `ex` must be the executor that emits `sig` (a manager's or peer's `get_executor()`).
/// @par Per-Operation Cancellation
/// Terminal, partial and total: completes with `operation_aborted`; the subscription goes.
/// @par Lifetimes
/// `sig` must outlive the wait or be destroyed only on `ex` (then the wait times out).
template <class Executor, class Pred, class... Args, class Token = default_token>
requires std::predicate<Pred&, const Args&...>

auto next_event(Executor ex, signal<Args...>& sig, std::chrono::steady_clock::duration timeout,
                Pred pred, Token&& token = {}) {
  return detail::async_run(std::move(ex), detail::next_event_op(sig, timeout, std::move(pred)),
                           std::forward<Token>(token));
}

/// Waits for the next emit of `sig`, for at most `timeout` (see the overload with a predicate).
template <class Executor, class... Args, class Token = default_token>

requires(!std::predicate<Token&, const Args&...>) auto next_event(
    Executor ex, signal<Args...>& sig, std::chrono::steady_clock::duration timeout,
    Token&& token = {}) {
  return next_event(
      std::move(ex), sig, timeout, [](const Args&...) { return true; }, std::forward<Token>(token));
}

}  // namespace p2p
