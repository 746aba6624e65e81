// The manager's statistics: its counters, the snapshot, and the metrics endpoint.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fmt/format.h>

#include "detail/async.hpp"
#include "detail/listen_endpoint.hpp"
#include "detail/manager_impl.hpp"
#include "detail/metrics_server.hpp"

namespace p2p {

namespace detail {

void manager_impl::add_peer_totals(manager_counters& c, const peer_stats& s) {
  c.bytes_received += s.bytes_received;
  c.bytes_sent += s.bytes_sent;
  c.messages_received += s.messages_received;
  c.messages_sent += s.messages_sent;
  c.dropped_sends += s.dropped_sends;
  for (std::size_t i = 0; i < violation_kinds; ++i) c.violations[i] += s.violations[i];
  for (const auto& row : s.commands) {
    if (row.messages_received > 0)
      count_command(c.commands, row.command, true, row.messages_received, row.bytes_received);
    if (row.messages_sent > 0)
      count_command(c.commands, row.command, false, row.messages_sent, row.bytes_sent);
  }
}

asio::awaitable<manager_snapshot> manager_impl::snapshot() {
  const auto self = shared_from_this();
  manager_snapshot s;
  s.taken_at = wall_clock::now();
  s.state = state_;
  s.active = active_.size();
  s.pool = book_.size();
  s.barred = book_.barred_count(now());
  s.min_peers = opts_.min_peers;
  s.max_peers = opts_.max_peers;
  // The counters hold the closed peers; the live ones are added as they are read. A peer
  // closing meanwhile is added to counters_ after this copy, so it counts once.
  s.counters = counters_;
  std::vector<std::shared_ptr<peer>> peers;
  peers.reserve(active_.size());
  s.peers.reserve(active_.size());
  for (const auto& [id, e] : active_) {
    peers.push_back(e.p);
    peer_stats home;
    home.state = e.p->state();
    home.ready = e.ready;
    s.peers.push_back(std::move(home));
    ++(e.p->is_inbound() ? s.inbound : s.outbound);
  }
  for (std::size_t i = 0; i < peers.size(); ++i) {
    auto t = co_await asio::co_spawn(peers[i]->io_, peer::transport_stats(peers[i]),
                                     asio::use_awaitable);
    t.state = std::move(s.peers[i].state);
    t.ready = s.peers[i].ready;
    add_peer_totals(s.counters, t);
    s.peers[i] = std::move(t);
  }
  co_return s;
}

namespace {

/// The endpoint's source: a snapshot taken on the manager's strand, or none once the manager
/// is gone.
asio::awaitable<std::optional<manager_snapshot>> snapshot_for_metrics(
    std::weak_ptr<manager_impl> weak) {
  auto m = weak.lock();
  if (!m) co_return std::nullopt;
  co_return co_await asio::co_spawn(m->strand_, m->snapshot(), asio::use_awaitable);
}

}  // namespace

void manager_impl::open_metrics() {
  const auto ep = parse_listen_endpoint(opts_.metrics_address);  // validated with the options
  if (!ep) return;
  std::weak_ptr<manager_impl> weak = shared_from_this();
  try {
    metrics_ = metrics_server::start(
        strand_.get_inner_executor(), *ep, [weak] { return snapshot_for_metrics(weak); },
        [weak](std::string line) {
          if (auto m = weak.lock())
            asio::post(m->strand_, [m, line = std::move(line)]() mutable {
              m->report(severity::warning, "metrics endpoint: " + line);
            });
        });
    std::lock_guard lock(metrics_mutex_);
    metrics_at_ = metrics_->local_endpoint();
  } catch (const boost::system::system_error& e) {
    // The node runs on without it; the application learns why from the report.
    report(severity::error, fmt::format("metrics endpoint not opened on {}: {}",
                                        opts_.metrics_address, e.code().message()));
  }
}

void manager_impl::close_metrics() {
  if (!metrics_) return;
  metrics_->stop();
  metrics_.reset();
  std::lock_guard lock(metrics_mutex_);
  metrics_at_.reset();
}

asio::awaitable<op_result<manager_snapshot>> snapshot_op(std::shared_ptr<manager_impl> m) {
  co_return op_result<manager_snapshot>{error_code{}, co_await m->snapshot()};
}

}  // namespace detail

std::optional<boost::asio::ip::tcp::endpoint> peer_manager::metrics_endpoint() const {
  std::lock_guard lock(impl_->metrics_mutex_);
  return impl_->metrics_at_;
}

}  // namespace p2p
