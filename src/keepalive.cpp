// The keepalive's shared timer (see detail/keepalive.hpp).

#include "detail/keepalive.hpp"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/query.hpp>

namespace p2p::detail {

namespace asio = boost::asio;

keepalive_service& keepalive_service::of(const asio::any_io_executor& ex) {
  return asio::use_service<keepalive_service>(asio::query(ex, asio::execution::context));
}

void keepalive_service::init(const asio::any_io_executor& ex) {
  std::call_once(init_once_, [&] { strand_.emplace(asio::make_strand(ex)); });
}

void keepalive_service::schedule(const std::shared_ptr<peer>& p, clock_type::time_point at,
                                 const asio::any_io_executor& ex) {
  init(ex);
  asio::post(*strand_, [this, w = std::weak_ptr<peer>(p), key = p.get(), at]() mutable {
    if (!timer_) timer_.emplace(*strand_);
    auto [it, fresh] = entries_.try_emplace(key, entry{at, std::move(w)});
    if (!fresh) {
      due_.erase({it->second.at, key});
      it->second = entry{at, std::move(w)};
    }
    due_.insert({at, key});
    rearm();
  });
}

void keepalive_service::cancel(const peer* p) {
  // Only a peer that scheduled (so init ran, in its own earlier call) cancels.
  if (!strand_) return;
  asio::post(*strand_, [this, p] {
    auto it = entries_.find(p);
    if (it == entries_.end()) return;
    due_.erase({it->second.at, p});
    entries_.erase(it);
    rearm();
  });
}

void keepalive_service::rearm() {
  if (due_.empty()) {
    if (armed_at_) {
      armed_at_.reset();
      ++generation_;
      timer_->cancel();  // no pending wait once nothing is scheduled
    }
    return;
  }
  const auto first = due_.begin()->first;
  if (armed_at_ && *armed_at_ <= first) return;
  armed_at_ = first;
  timer_->expires_at(first);
  timer_->async_wait(
      asio::bind_executor(*strand_, [this, gen = ++generation_](boost::system::error_code) {
        if (gen != generation_) return;  // replaced by a sooner wait, or cancelled
        armed_at_.reset();
        fire();
      }));
}

void keepalive_service::fire() {
  const auto now = clock_type::now();
  while (!due_.empty() && due_.begin()->first <= now) {
    const peer* key = due_.begin()->second;
    due_.erase(due_.begin());
    auto it = entries_.find(key);
    if (it == entries_.end()) continue;
    auto p = it->second.p.lock();
    entries_.erase(it);
    if (p) asio::post(p->io_, [p] { p->keepalive_tick(); });
  }
  rearm();
}

void keepalive_service::shutdown() {
  // The context is going: pending handlers are destroyed by it, not run. The timer goes
  // now, while the timer service it belongs to still exists.
  due_.clear();
  entries_.clear();
  armed_at_.reset();
  timer_.reset();
}

}  // namespace p2p::detail
