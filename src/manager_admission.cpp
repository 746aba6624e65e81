// The manager's listener and admission: limits, eviction, the first valid frame's deadline.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>

#include <fmt/format.h>

#include <algorithm>

#include "detail/async.hpp"
#include "detail/eviction.hpp"
#include "detail/manager_impl.hpp"

namespace p2p::detail {

void manager_impl::open_listener() {
  tcp::endpoint ep(asio::ip::make_address(opts_.listen_address), opts_.port);
  tcp::acceptor a(strand_);
  a.open(ep.protocol());
  a.set_option(tcp::acceptor::reuse_address(true));
  a.bind(ep);
  a.listen(asio::socket_base::max_listen_connections);
  acceptor_.emplace(std::move(a));
}

asio::awaitable<void> manager_impl::accept_loop() {
  auto self = shared_from_this();
  while (acceptor_ && acceptor_->is_open()) {
    auto [ec, sock] = co_await acceptor_->async_accept(use_nothrow);
    if (state_ == manager_state::shutdown || !acceptor_->is_open()) co_return;
    if (ec) {
      report(severity::warning, fmt::format("accept failed: {}", ec.message()));
      // Out of descriptors or similar: back off instead of spinning.
      asio::steady_timer pause(strand_, std::chrono::milliseconds(100));
      co_await pause.async_wait(use_nothrow);
      continue;
    }
    admit(std::move(sock));
  }
}

void manager_impl::uncount_inbound(entry& e) {
  if (!e.counted_inbound) return;
  e.counted_inbound = false;
  --inbound_count_;
  if (auto h = inbound_per_host_.find(e.inbound_addr);
      h != inbound_per_host_.end() && --h->second == 0)
    inbound_per_host_.erase(h);
}

std::optional<std::pair<refusal, std::string>> manager_impl::capacity_refusal() const {
  if (inbound_count_ >= opts_.inbound_limit())
    return std::pair{refusal::inbound_limit,
                     fmt::format("max_inbound ({}) reached", opts_.inbound_limit())};
  if (active_.size() - evicting_ >= opts_.max_peers)
    return std::pair{refusal::max_peers, fmt::format("max_peers ({}) reached", opts_.max_peers)};
  return std::nullopt;
}

bool manager_impl::evict_one(const std::string& newcomer) {
  std::vector<entry*> who;
  std::vector<eviction_candidate> candidates;
  for (auto& [id, e] : active_) {
    if (!e.counted_inbound || e.p->is_closed()) continue;
    who.push_back(&e);
    candidates.push_back(
        {address_book::netgroup_of(e.inbound_addr), e.admitted, e.p->last_message()});
  }
  const auto pick = pick_eviction(candidates, rng_);
  if (!pick) return false;
  entry& v = *who[*pick];
  report(severity::notice,
         fmt::format("evicting inbound peer {} (netgroup {}) to admit {}",
                     v.p->remote().to_string(), candidates[*pick].group, newcomer));
  v.evicted = true;
  ++evicting_;
  ++counters_.evictions;
  uncount_inbound(v);
  v.p->destroy();
  return true;
}

void manager_impl::admit(tcp::socket sock) {
  error_code ec;
  auto ep = sock.remote_endpoint(ec);
  if (ec) return;  // already gone
  auto p = peer::inbound(strand_, std::move(sock), opts_.peer());
  const std::string addr = address_book::host_key(ep.address().to_string());
  std::optional<std::pair<refusal, std::string>> refused;
  if (barred(addr))
    refused = {refusal::barred, "barred"};
  else if (active_.contains(p->id()))
    refused = {refusal::already_active, "already active"};
  else if (opts_.max_inbound_per_host && inbound_per_host_[addr] >= *opts_.max_inbound_per_host)
    refused = {refusal::per_host_limit,
               fmt::format("max_inbound_per_host ({}) reached", *opts_.max_inbound_per_host)};
  else if (auto full = capacity_refusal())
    if (!opts_.evict_inbound || !evict_one(p->remote().to_string())) refused = std::move(full);
  if (inbound_per_host_.contains(addr) && inbound_per_host_[addr] == 0)
    inbound_per_host_.erase(addr);
  if (refused) {
    ++counters_.inbound_refused[static_cast<int>(refused->first)];
    p->destroy();
    events_.listen_connect.emit(p, false);
    report(severity::notice,
           fmt::format("inbound {} refused: {}", p->remote().to_string(), refused->second));
    return;
  }
  ++counters_.inbound_admitted;
  auto& e = track(p);
  e.counted_inbound = true;
  e.inbound_addr = addr;
  e.admitted = ++admissions_;
  ++inbound_count_;
  ++inbound_per_host_[addr];
  await_first_message(p);
  p->start();
  events_.listen_connect.emit(p, true);
}

void manager_impl::await_first_message(const std::shared_ptr<peer>& p) {
  // Peers that connect and close again leave entries until their deadline: past twice the
  // inbound limit, those of closed peers are dropped (amortised O(1); the queue stays near
  // the number of open inbound peers however fast connections churn).
  if (admission_queue_.size() >= 2 * std::max<std::size_t>(opts_.inbound_limit(), 64))
    std::erase_if(admission_queue_, [](const auto& q) {
      auto x = q.second.lock();
      return !x || x->is_closed();
    });
  const bool was_empty = admission_queue_.empty();
  admission_queue_.push_back({peer::clock_type::now() + opts_.handshake_timeout, p});
  if (was_empty) admission_timer_.cancel();  // the loop re-arms for this deadline
}

void manager_impl::check_admissions() {
  const auto t = peer::clock_type::now();
  while (!admission_queue_.empty() && admission_queue_.front().first <= t) {
    auto p = admission_queue_.front().second.lock();
    admission_queue_.pop_front();
    if (!p || !p->is_open() || p->last_message() != peer::clock_type::time_point{}) continue;
    report(severity::warning,
           fmt::format("peer {}: no valid message within {} ms", p->remote().to_string(),
                       opts_.handshake_timeout.count()));
    ++counters_.first_message_timeouts;
    p->fail(make_error_code(error::handshake_timeout));
  }
}

asio::awaitable<void> manager_impl::admission_loop() {
  auto self = shared_from_this();
  while (state_ != manager_state::shutdown) {
    admission_timer_.expires_at(admission_queue_.empty() ? peer::clock_type::time_point::max()
                                                         : admission_queue_.front().first);
    co_await admission_timer_.async_wait(use_nothrow);
    check_admissions();
  }
  admission_queue_.clear();
}

}  // namespace p2p::detail
