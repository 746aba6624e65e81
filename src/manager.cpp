#include <p2p/error.hpp>
#include <p2p/manager.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/container_hash/hash.hpp>
#include <boost/uuid/uuid_io.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <map>
#include <random>
#include <stdexcept>
#include <unordered_map>

#include "detail/answer_collector.hpp"
#include "detail/async.hpp"
#include "detail/manager_impl.hpp"

namespace p2p {

using detail::time_point;
using detail::use_nothrow;
namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

// ---- manager_events ------------------------------------------------------------------

manager_events::manager_events() {
  wire(state_change, "state_change");
  wire(peer_connect, "peer_connect");
  wire(peer_ready, "peer_ready");
  wire(peer_end, "peer_end");
  wire(peer_error, "peer_error");
  wire(peer_message, "peer_message");
  wire(listen_connect, "listen_connect");
  wire(report, "report");
  wire(status, "status");
}

signal<std::shared_ptr<peer>, message>& manager_events::command(std::string_view command) {
  return command_signal(commands_, command);
}

void manager_events::emit_message(const std::shared_ptr<peer>& p, const message& m) {
  peer_message.emit(p, m);
  if (auto it = commands_.find(m.command); it != commands_.end()) it->second.emit(p, m);
}

namespace detail {

void manager_impl::callback_threw(std::string_view event, std::exception_ptr e) {
  if (event == "report") {
    // Reporting a failed report could loop: this one leaves through io_context::run()
    // from a handler of its own, so no loop of ours ends.
    asio::post(strand_, [e] { std::rethrow_exception(e); });
    return;
  }
  report(severity::error, fmt::format("a '{}' callback threw: {}", event, exception_text(e)));
}

void manager_impl::set_state(manager_state s) {
  if (s == state_) return;
  const manager_state old = std::exchange(state_, s);
  events_.state_change.emit(old, state_);
}

manager_impl::entry& manager_impl::track(const std::shared_ptr<peer>& p) {
  entry e;
  e.p = p;
  e.since = peer::clock_type::now();
  auto [it, fresh] = active_.emplace(p->id(), std::move(e));
  if (fresh) p->observer_ = this;
  return it->second;
}

void manager_impl::on_peer_message(const std::shared_ptr<peer>& p, const message& m) {
  // Collectors first: an answer counts even if a callback below destroys the peer.
  collectors_->for_each([&](answer_collector& c) {
    try {
      c.on_message(p, m);
    } catch (...) {
      callback_threw("answer_spec::matching predicate", std::current_exception());
    }
  });
  events_.emit_message(p, m);
}

void manager_impl::on_connect(const std::shared_ptr<peer>& p) {
  if (state_ == manager_state::launching) set_state(manager_state::running);
  events_.peer_connect.emit(p);
  if (p->silenced_.load(std::memory_order_relaxed)) return;  // a callback closed it
  if (!opts_.handshake) {
    // Without a hook no coroutine or timer runs per peer: an inbound peer's first valid
    // frame is awaited by the admission queue.
    p->end_handshake();
    mark_ready(p);
    return;
  }
  auto self = shared_from_this();
  asio::co_spawn(
      strand_, [self, p] { return self->handshake(p); }, rethrow{});
}

asio::awaitable<void> manager_impl::handshake(std::shared_ptr<peer> p) {
  using namespace asio::experimental::awaitable_operators;
  asio::steady_timer deadline(strand_, opts_.handshake_timeout);
  // The deadline also ends when the peer closes, so no timer outlives a closed peer.
  subscription on_close = p->events().close.subscribe([&deadline] { deadline.cancel(); });
  auto outcome = co_await (run_hook(p) || deadline.async_wait(use_nothrow));
  p->end_handshake();
  if (p->is_closed() || p->silenced_.load(std::memory_order_relaxed)) co_return;
  if (outcome.index() == 1) {
    report(severity::warning,
           fmt::format("peer {}: handshake did not finish within {} ms", p->remote().to_string(),
                       opts_.handshake_timeout.count()));
    ++counters_.handshakes_failed;
    p->fail(make_error_code(error::handshake_timeout));
    co_return;
  }
  if (const auto& why = std::get<0>(outcome); !why.empty()) {
    report(severity::warning,
           fmt::format("peer {}: handshake failed: {}", p->remote().to_string(), why));
    ++counters_.handshakes_failed;
    p->fail(make_error_code(error::handshake_failed));
    co_return;
  }
  mark_ready(p);
}

void manager_impl::mark_ready(const std::shared_ptr<peer>& p) {
  if (auto it = active_.find(p->id()); it != active_.end() && it->second.p == p)
    it->second.ready = true;
  ++counters_.handshakes_passed;
  events_.peer_ready.emit(p);
}

asio::awaitable<std::string> manager_impl::run_hook(std::shared_ptr<peer> p) {
  try {
    const error_code ec = co_await opts_.handshake(p);
    co_return ec ? fmt::format("{} ({})", ec.message(), ec.to_string()) : std::string{};
  } catch (const std::exception& e) {
    co_return std::string(e.what()[0] ? e.what() : "exception");
  } catch (...) {
    co_return std::string("unknown exception");
  }
}

void manager_impl::on_close(const std::shared_ptr<peer>& p, bool remote_ended,
                            const error_code& ec) {
  collectors_->for_each([&](answer_collector& c) { c.on_closed(*p); });
  auto it = active_.find(p->id());
  const bool tracked = it != active_.end() && it->second.p == p;
  if (ec) bar_peer(*p);
  if (ec == error::timeout) ++counters_.ping_timeouts;  // the keepalive's error
  if (tracked && it->second.dialled && !p->endpoint() && ec) ++counters_.outbound_failures;
  if (tracked) {
    if (it->second.evicted) --evicting_;
    uncount_inbound(it->second);
    if (auto& r = it->second.dialled)
      return_host(std::move(*r), it->second.ready, ec || remote_ended);
    active_.erase(it);
  }
  p->observer_ = nullptr;
  if (ec == error::connect_timeout)
    report(severity::warning, fmt::format("connect to {} timed out after {} ms; barred",
                                          p->remote().to_string(), opts_.connect_timeout.count()));
  else if (ec)
    report(severity::warning,
           fmt::format("peer {} error: {}; barred", p->remote().to_string(), ec.message()));
  if (tracked)
    report(severity::info,
           fmt::format("peer {} removed; {} active", p->remote().to_string(), active_.size()));
  if (remote_ended) events_.peer_end.emit(p);
  if (ec) events_.peer_error.emit(p, ec);
  if (!tracked) return;
  if (state_ == manager_state::shutdown) {
    if (active_.empty()) all_closed_.cancel();
    return;
  }
  auto self = shared_from_this();
  asio::post(strand_, [self] { asio::co_spawn(self->strand_, self->check_pool(), rethrow{}); });
}

asio::awaitable<void> manager_impl::check_pool() {
  if (state_ == manager_state::shutdown || state_ == manager_state::created) co_return;
  const auto real_now = peer::clock_type::now();
  for (auto& [id, e] : active_) {
    // Idleness counts valid messages, not bytes.
    auto& p = e.p;
    const auto last = std::max(e.since, p->last_message());
    if (p->is_open() && real_now - last > opts_.idle_timeout) {
      report(severity::notice,
             fmt::format("peer {}: no valid message for over {} ms; disconnecting",
                         p->remote().to_string(), opts_.idle_timeout.count()));
      ++counters_.idle_disconnects;
      p->close();
    }
  }
  refill(now());
  if (active_.size() > opts_.max_peers)
    report(severity::warning,
           fmt::format("{} active peers, above max_peers {}", active_.size(), opts_.max_peers));
}

asio::awaitable<void> manager_impl::check_loop() {
  auto self = shared_from_this();
  while (state_ != manager_state::shutdown) {
    co_await check_pool();
    check_timer_.expires_after(opts_.check_interval);
    co_await check_timer_.async_wait(use_nothrow);
  }
}

asio::awaitable<void> manager_impl::status_loop() {
  auto self = shared_from_this();
  for (;;) {
    status_timer_.expires_after(opts_.status_interval);
    co_await status_timer_.async_wait(use_nothrow);
    if (state_ == manager_state::shutdown) co_return;
    events_.status.emit(status());
  }
}

error_code manager_impl::launch(const host_list& seeds) {
  if (state_ != manager_state::created) return asio::error::already_started;
  if (opts_.listen) {
    try {
      open_listener();
    } catch (const boost::system::system_error& e) {
      report(severity::error, fmt::format("cannot listen on {}:{}: {}", opts_.listen_address,
                                          opts_.port, e.code().message()));
      return e.code();  // the state stays "new"
    }
  }
  if (!opts_.use_cache.empty()) load_cache();
  if (!opts_.metrics_address.empty()) open_metrics();
  set_state(manager_state::launching);
  add_hosts(seeds, host_source::seed);
  auto self = shared_from_this();
  if (acceptor_)
    asio::co_spawn(
        strand_, [self] { return self->accept_loop(); }, rethrow{});
  asio::co_spawn(
      strand_, [self] { return self->check_loop(); }, rethrow{});
  asio::co_spawn(
      strand_, [self] { return self->status_loop(); }, rethrow{});
  asio::co_spawn(
      strand_, [self] { return self->admission_loop(); }, rethrow{});
  if (!opts_.use_cache.empty())
    asio::co_spawn(
        strand_, [self] { return self->cache_loop(); }, rethrow{});
  return {};
}

void manager_impl::stop_background() {
  set_state(manager_state::shutdown);
  if (acceptor_) {
    error_code ig;
    acceptor_->close(ig);
  }
  check_timer_.cancel();
  status_timer_.cancel();
  cache_timer_.cancel();
  admission_timer_.cancel();
  close_metrics();
}

asio::awaitable<error_code> manager_impl::shutdown() {
  auto self = shared_from_this();
  if (state_ != manager_state::shutdown) {
    stop_background();
    for (auto& [id, e] : active_) e.p->close();
  }
  while (!active_.empty()) {
    co_await all_closed_.async_wait(use_nothrow);
    auto cs = co_await asio::this_coro::cancellation_state;
    if (cs.cancelled() != asio::cancellation_type::none)
      co_return make_error_code(asio::error::operation_aborted);
  }
  // Every dialled host is back in the book with its outcome: save it once.
  if (!saved_at_shutdown_) {
    saved_at_shutdown_ = true;
    save_cache();
  }
  // Wake any other shutdown() waiter.
  all_closed_.cancel();
  co_return error_code{};
}

void manager_impl::abandon() {
  if (state_ != manager_state::shutdown) stop_background();
  std::vector<std::shared_ptr<peer>> peers;
  for (auto& [id, e] : active_) peers.push_back(e.p);
  for (auto& p : peers) p->destroy();
  if (!saved_at_shutdown_) {
    saved_at_shutdown_ = true;
    save_cache();
  }
}

}  // namespace detail

// ---- peer_manager --------------------------------------------------------------------

peer_manager::peer_manager(asio::any_io_executor ex, manager_options opts) {
  opts.validate();
  impl_ = std::make_shared<detail::manager_impl>(std::move(ex), std::move(opts));
}

peer_manager::~peer_manager() {
  if (!impl_) return;
  auto impl = impl_;
  if (impl->strand_.running_in_this_thread())
    impl->abandon();
  else
    asio::post(impl->strand_, [impl] { impl->abandon(); });
}

peer_manager::executor_type peer_manager::get_executor() const noexcept {
  return impl_->strand_;
}

const manager_options& peer_manager::options() const noexcept {
  return impl_->opts_;
}

manager_events& peer_manager::events() noexcept {
  return impl_->events_;
}

namespace detail {

// The operations behind the public templates: each runs on the manager's strand.

asio::awaitable<op_result<>> launch_op(std::shared_ptr<manager_impl> m, host_list seeds) {
  co_return op_result<>{m->launch(seeds)};
}

asio::awaitable<op_result<>> shutdown_op(std::shared_ptr<manager_impl> m) {
  co_await asio::this_coro::reset_cancellation_state(asio::enable_total_cancellation());
  co_return op_result<>{co_await m->shutdown()};
}

asio::awaitable<op_result<>> check_pool_op(std::shared_ptr<manager_impl> m) {
  co_await m->check_pool();
  co_return op_result<>{};
}

asio::awaitable<op_result<>> del_active_op(std::shared_ptr<manager_impl> m, std::shared_ptr<peer> p,
                                           std::string reason) {
  co_await asio::this_coro::reset_cancellation_state(asio::enable_total_cancellation());
  m->report(severity::info,
            fmt::format("disconnecting peer {}: {}", p->remote().to_string(), reason));
  co_return co_await p->disconnect(asio::as_tuple(asio::use_awaitable));
}

asio::awaitable<op_result<sent_messages>> send_op(std::shared_ptr<manager_impl> m, int number,
                                                  std::string prop, match_values values,
                                                  shared_bytes frame, answer_spec spec) {
  co_return op_result<sent_messages>{error_code{},
                                     m->send(number, prop, values, frame, std::move(spec))};
}

}  // namespace detail

shared_bytes peer_manager::prepare_send(const std::string& prop, const match_values& values,
                                        std::string_view command,
                                        std::span<const std::uint8_t> payload,
                                        const answer_spec& spec) const {
  // Validated and encoded at the call site, once for every chosen peer.
  if (prop.empty()) throw std::invalid_argument("p2p: send() property name is empty");
  if (values.values().empty())
    throw std::invalid_argument(
        fmt::format("p2p: send() has no value to match '{}' against", prop));
  if (!spec.command.empty()) check_command(spec.command);
  return encode_frame(impl_->opts_.magic, command, payload);
}

void peer_manager::check_peer(const std::shared_ptr<peer>& p) {
  if (!p) throw std::invalid_argument("p2p: del_active needs a peer, got null");
}

void peer_manager::add_pool(host_list hosts) {
  auto impl = impl_;
  asio::post(impl->strand_,
             [impl, hosts = std::move(hosts)] { impl->add_hosts(hosts, host_source::pool); });
}

void peer_manager::add_active(host_list hosts) {
  auto impl = impl_;
  asio::post(impl->strand_,
             [impl, hosts = std::move(hosts)] { impl->add_hosts(hosts, host_source::active); });
}

void peer_manager::bar(std::string host_name, std::chrono::milliseconds d) {
  if (host_name.empty()) throw std::invalid_argument("p2p: bar() host name is empty");
  if (d.count() <= 0)
    throw std::invalid_argument(
        fmt::format("p2p: bar duration {} ms for '{}' is not positive", d.count(), host_name));
  auto impl = impl_;
  asio::post(impl->strand_, [impl, h = std::move(host_name), d] { impl->bar_key(h, d); });
}

manager_state peer_manager::state() const noexcept {
  return impl_->state_;
}

std::size_t peer_manager::active_count() const noexcept {
  return impl_->active_.size();
}

std::size_t peer_manager::collecting() const noexcept {
  return impl_->collectors_->size();
}

std::vector<std::shared_ptr<peer>> peer_manager::active_peers() const {
  std::vector<std::shared_ptr<peer>> out;
  for (auto& [id, e] : impl_->active_) out.push_back(e.p);
  return out;
}

std::shared_ptr<peer> peer_manager::find(const boost::uuids::uuid& id) const {
  auto it = impl_->active_.find(id);
  return it == impl_->active_.end() ? nullptr : it->second.p;
}

std::vector<host> peer_manager::pool() const {
  return impl_->book_.hosts();
}

const address_book& peer_manager::book() const noexcept {
  return impl_->book_;
}

std::chrono::steady_clock::duration peer_manager::barred_for(std::string_view host_name) const {
  return impl_->barred_for(host_name);
}

manager_status peer_manager::status() const {
  return impl_->status();
}

std::optional<tcp::endpoint> peer_manager::listen_endpoint() const {
  if (!impl_->acceptor_ || !impl_->acceptor_->is_open()) return std::nullopt;
  error_code ec;
  auto ep = impl_->acceptor_->local_endpoint(ec);
  if (ec) return std::nullopt;
  return ep;
}

}  // namespace p2p
