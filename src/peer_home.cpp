// The peer's home side: what the application sees. Runs on the home executor (the
// manager's strand, or a standalone peer's strand): delivery of what the transport read,
// lifecycle notifications, properties and the state string, receive() and wait_closed().

#include <p2p/error.hpp>
#include <p2p/peer.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <stdexcept>

#include "detail/async.hpp"
#include "detail/peer_note.hpp"

namespace p2p {

namespace asio = boost::asio;
using boost::system::error_code;
using detail::use_nothrow;

namespace {

/// Bounds on the messages the handshake window keeps for receive().
constexpr std::size_t max_inbox_messages = 64;
constexpr std::size_t max_inbox_bytes = 1024 * 1024;

}  // namespace

/// One receive() waiting: the first matching message is handed to it.
struct peer::receive_waiter {
  std::string_view command;
  asio::steady_timer timer;
  std::optional<message> got;
};

// ---- delivery ------------------------------------------------------------------------

void peer::deliver(std::vector<detail::peer_note>& batch, clock_type::time_point read_at) {
  assert(home_.running_in_this_thread());
  const auto self = shared_from_this();  // callbacks may drop the last outside reference
  for (auto& note : batch) {
    if (auto* m = std::get_if<message>(&note.v)) {
      // Closed, destroyed or failed: silent, even for frames already read.
      if (silenced_.load(relaxed)) continue;
      last_message_ = read_at;
      deliver_message(self, *m);
    } else if (auto* r = std::get_if<report>(&note.v)) {
      if (!silenced_.load(relaxed)) emit_report(*r);
    } else {
      deliver_transition(self, note);
    }
  }
}

void peer::deliver_message(const std::shared_ptr<peer>& self, const message& m) {
  // A waiting receive() takes it (the longest waiting for this command); in the handshake
  // window, one nobody took is kept for a later receive().
  bool taken = false;
  for (auto* w : receivers_) {
    if (!w->got && w->command == m.command) {
      w->got = m;
      w->timer.cancel();
      taken = true;
      break;
    }
  }
  if (!taken && handshake_open_) keep_for_receive(m);
  if (observer_) observer_->on_peer_message(self, m);
  if (events_) events_->emit_message(m);
}

void peer::deliver_transition(const std::shared_ptr<peer>& self, detail::peer_note& n) {
  const auto& c = std::get<detail::peer_note::change>(n.v);
  const auto& t = c.t;
  // The state is settled first; every notification comes after.
  lifecycle_ = t.to;
  switch (t.to) {
    case peer_lifecycle::created:
      break;
    case peer_lifecycle::connecting:
      set_library_state("connecting");
      break;
    case peer_lifecycle::open:
      if (c.endpoint) endpoint_ = c.endpoint;
      // Set before the manager starts the handshake hook, so the hook may overwrite it.
      set_library_state("connected");
      if (observer_) observer_->on_peer_connect(self);
      if (events_) events_->connect.emit();
      break;
    case peer_lifecycle::disconnecting:
      set_library_state("disconnecting");
      break;
    case peer_lifecycle::closed: {
      silenced_.store(true, relaxed);
      close_window();
      for (auto* w : receivers_) w->timer.cancel();
      std::string old = std::exchange(state_, "closed");
      // The manager settles its tables (and emits its events) before any peer callback.
      if (observer_) observer_->on_peer_close(self, t.remote_ended, t.error, c.final_stats.get());
      if (events_) {
        if (t.remote_ended) events_->end.emit();
        if (t.error) events_->error.emit(t.error);
        if (old != state_) events_->state_change.emit(old, state_);
        events_->close.emit();
      }
      wake_home();
      break;
    }
  }
}

void peer::emit_report(const p2p::report& r) {
  if (observer_) observer_->on_peer_report(r);
  if (events_) events_->report.emit(r);
}

void peer::callback_threw(std::string_view event, std::exception_ptr e) {
  if (event == "report") {
    // Reporting a failed report could loop: this one leaves through io_context::run(), as
    // a handler's exception does in Asio, from a handler of its own, so no loop ends.
    asio::post(home_, [e] { std::rethrow_exception(e); });
    return;
  }
  emit_report(p2p::report{
      severity::error, fmt::format("peer {}: a '{}' callback threw: {}", remote_.to_string(), event,
                                   detail::exception_text(e))});
}

peer_events& peer::events() {
  if (!events_) {
    // Made on first use: most peers of a manager have no subscriber of their own.
    events_ = std::make_unique<peer_events>();
    events_->sink_ = [this](std::string_view event, std::exception_ptr e) {
      callback_threw(event, e);
    };
  }
  return *events_;
}

// ---- state and properties ------------------------------------------------------------

void peer::set_library_state(std::string_view s) {
  if (s == state_) return;
  std::string old = std::exchange(state_, std::string(s));
  if (events_) events_->state_change.emit(old, state_);
}

void peer::set_state(std::string state) {
  if (state == state_) return;
  std::string old = std::exchange(state_, std::move(state));
  if (events_) events_->state_change.emit(old, state_);
}

void peer::set(std::string_view name, property value) {
  if (name.empty()) throw std::invalid_argument("p2p: property name is empty");
  if (name == "state") {
    const std::string* s = value.string();
    if (!s)
      throw std::invalid_argument(
          fmt::format("p2p: property 'state' must be a string, got '{}'", value.to_string()));
    set_state(*s);
    return;
  }
  auto it = props_.find(name);
  if (it == props_.end())
    props_.emplace(std::string(name), std::move(value));
  else
    it->second = std::move(value);
}

std::optional<property> peer::get(std::string_view name) const {
  if (name == "state") return property(state_);
  auto it = props_.find(name);
  if (it == props_.end()) return std::nullopt;
  return it->second;
}

// ---- receive -------------------------------------------------------------------------

void peer::keep_for_receive(const message& m) {
  if (inbox_.size() + 1 > max_inbox_messages || inbox_bytes_ + m.payload.size() > max_inbox_bytes) {
    // More than any handshake needs, none of it taken: the window ends here (once), so a
    // peer whose application never calls receive() costs nothing more.
    emit_report(p2p::report{
        severity::warning,
        fmt::format("peer {}: {} messages no receive() took during the handshake (limit {} "
                    "messages, {} bytes); receive() buffers no more",
                    remote_.to_string(), inbox_.size() + 1, max_inbox_messages, max_inbox_bytes)});
    close_window();
    return;
  }
  inbox_bytes_ += m.payload.size();
  inbox_.push_back(m);
}

void peer::close_window() {
  handshake_open_ = false;
  inbox_ = {};
  inbox_bytes_ = 0;
}

void peer::end_handshake() {
  close_window();
  asio::post(io_, [self = shared_from_this()] { self->start_keepalive(); });
}

asio::awaitable<detail::op_result<message>> peer::receive_op(std::shared_ptr<peer> self,
                                                             std::string command,
                                                             std::chrono::milliseconds timeout) {
  co_await asio::this_coro::reset_cancellation_state(asio::enable_total_cancellation());
  using result = detail::op_result<message>;
  auto& inbox = self->inbox_;
  for (auto it = inbox.begin(); it != inbox.end(); ++it) {
    if (it->command != command) continue;
    message m = std::move(*it);
    self->inbox_bytes_ -= m.payload.size();
    inbox.erase(it);
    co_return result{error_code{}, std::move(m)};
  }
  if (self->lifecycle_ == peer_lifecycle::closed) co_return result{error::peer_closed, {}};
  receive_waiter w{command, asio::steady_timer(self->home_.get_inner_executor(), timeout), {}};
  self->receivers_.push_back(&w);

  struct leave {
    std::vector<receive_waiter*>& list;
    receive_waiter* w;

    ~leave() { std::erase(list, w); }
  } guard{self->receivers_, &w};

  co_await w.timer.async_wait(use_nothrow);
  if (w.got) co_return result{error_code{}, std::move(*w.got)};
  auto cs = co_await asio::this_coro::cancellation_state;
  if (cs.cancelled() != asio::cancellation_type::none)
    co_return result{asio::error::operation_aborted, {}};
  if (self->lifecycle_ == peer_lifecycle::closed) co_return result{error::peer_closed, {}};
  co_return result{error::timeout, {}};
}

// ---- waiting for the close -----------------------------------------------------------

void peer::wake_home() {
  if (home_wake_) home_wake_->cancel();
}

asio::awaitable<detail::op_result<>> peer::disconnect_op(std::shared_ptr<peer> self) {
  co_await asio::this_coro::reset_cancellation_state(asio::enable_total_cancellation());
  self->close();
  co_return detail::op_result<>{co_await self->wait_closed_at_home()};
}

asio::awaitable<detail::op_result<>> peer::wait_closed_op(std::shared_ptr<peer> self) {
  co_await asio::this_coro::reset_cancellation_state(asio::enable_total_cancellation());
  co_return detail::op_result<>{co_await self->wait_closed_at_home()};
}

asio::awaitable<error_code> peer::wait_closed_at_home() {
  while (lifecycle_ != peer_lifecycle::closed) {
    if (!home_wake_)
      home_wake_ = std::make_unique<asio::steady_timer>(home_.get_inner_executor(),
                                                        clock_type::time_point::max());
    co_await home_wake_->async_wait(use_nothrow);
    auto cs = co_await asio::this_coro::cancellation_state;
    if (cs.cancelled() != asio::cancellation_type::none)
      co_return make_error_code(asio::error::operation_aborted);
  }
  co_return error_code{};
}

}  // namespace p2p
