#pragma once
/// @file events.hpp
/// Callback subscriptions with RAII handles, and awaitable waits for the next event.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
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
/// subscribed during an emit is first called on the next emit.
/// @par Thread safety
/// Subscribe, emit and unsubscribe on one executor (the manager's strand).
template <class... Args>
class signal {
 public:
  /// The callback type.
  using callback = std::function<void(const Args&...)>;

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

  /// Calls every active callback. A callback that throws stops the emit and propagates.
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
      if (s->active)
        s->fn(args...);
      else
        g.saw_dead = true;
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
  int depth_ = 0;
};

/// Waits for the next emit of `sig` whose arguments satisfy `pred`, for at most `timeout`.
///
/// Returns the arguments, or nullopt on timeout. Must run on the executor that emits `sig`
/// (use the peer's or manager's awaitable wrappers from elsewhere).
/// @par Cancellation
/// Cancelling the awaiting coroutine ends the wait with `operation_aborted` thrown.
/// @par Lifetimes
/// `sig` must outlive the wait or be destroyed only on its executor (then the wait times out).
template <class Pred, class... Args>
boost::asio::awaitable<std::optional<std::tuple<Args...>>> next_event(
    signal<Args...>& sig, std::chrono::steady_clock::duration timeout, Pred pred) {
  auto ex = co_await boost::asio::this_coro::executor;
  auto timer = std::make_shared<boost::asio::steady_timer>(ex, timeout);
  auto got = std::make_shared<std::optional<std::tuple<Args...>>>();
  subscription sub = sig.subscribe([timer, got, pred](const Args&... args) {
    if (!*got && pred(args...)) {
      got->emplace(args...);
      timer->cancel();
    }
  });
  try {
    co_await timer->async_wait(boost::asio::use_awaitable);
  } catch (const boost::system::system_error& e) {
    if (e.code() != boost::asio::error::operation_aborted || !*got) throw;
  }
  co_return std::move(*got);
}

/// Waits for the next emit of `sig`, for at most `timeout`.
template <class... Args>
boost::asio::awaitable<std::optional<std::tuple<Args...>>> next_event(
    signal<Args...>& sig, std::chrono::steady_clock::duration timeout) {
  return next_event(sig, timeout, [](const Args&...) { return true; });
}

}  // namespace p2p
