#include <p2p/answers.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>

#include <fmt/format.h>

#include <stdexcept>

#include "detail/answer_collector.hpp"
#include "detail/async.hpp"

namespace p2p {

namespace asio = boost::asio;

bool match_values::matches(const property& v) const noexcept {
  for (const auto& candidate : values_)
    if (candidate.matches(v)) return true;
  return false;
}

answer_spec answer_spec::matching(std::function<bool(const message&)> accept) {
  if (!accept) throw std::invalid_argument("p2p: answer_spec::matching needs a predicate");
  answer_spec s;
  s.accept = std::move(accept);
  return s;
}

answer_spec answer_spec::from_any_peer(std::string command) {
  answer_spec s(std::move(command));
  s.any_peer = true;
  return s;
}

answer_status answers::status_of(const boost::uuids::uuid& id) const {
  for (const auto& a : answered)
    if (a.peer && a.peer->id() == id) return answer_status::answered;
  for (const auto& p : closed)
    if (p->id() == id) return answer_status::closed;
  return answer_status::timed_out;
}

// ---- sent_messages -------------------------------------------------------------------

sent_messages::sent_messages(std::map<boost::uuids::uuid, std::shared_ptr<peer>> peers,
                             std::shared_ptr<detail::answer_collector> collector,
                             peer::executor_type strand)
    : peers_(std::move(peers)), collector_(std::move(collector)), strand_(std::move(strand)) {}

sent_messages::sent_messages(sent_messages&&) noexcept = default;

sent_messages& sent_messages::operator=(sent_messages&& other) noexcept {
  if (this != &other) {
    sent_messages dying(std::move(*this));
    peers_ = std::move(other.peers_);
    collector_ = std::move(other.collector_);
    strand_ = std::move(other.strand_);
  }
  return *this;
}

sent_messages::~sent_messages() {
  if (!collector_) return;
  // Subscriptions belong to the strand: end the collection there.
  auto strand = collector_->get_executor();
  if (strand.running_in_this_thread())
    collector_->stop();
  else
    asio::post(strand, [c = std::move(collector_)] { c->stop(); });
}

void sent_messages::check_timeout(std::chrono::milliseconds timeout) {
  if (timeout.count() < 0)
    throw std::invalid_argument(
        fmt::format("p2p: wait timeout {} ms is negative", timeout.count()));
}

// ---- answer_collector ----------------------------------------------------------------

namespace detail {

void collector_registry::remove(answer_collector* c) noexcept {
  for (auto& slot : live_)
    if (slot == c) {
      slot = nullptr;
      holes_ = true;
    }
  if (depth_ == 0) compact();
}

void collector_registry::compact() noexcept {
  std::erase(live_, nullptr);
  holes_ = false;
}

answer_collector::answer_collector(
    executor_type strand, const std::map<boost::uuids::uuid, std::shared_ptr<peer>>& chosen,
    answer_spec spec)
    : strand_(std::move(strand)),
      spec_(std::move(spec)),
      wake_(strand_.get_inner_executor(), std::chrono::steady_clock::time_point::max()),
      started_(std::chrono::steady_clock::now()) {
  chosen_.reserve(chosen.size());
  for (const auto& [id, p] : chosen) chosen_.push_back(entry{id, p});  // the map is sorted
}

answer_collector::~answer_collector() {
  if (registry_) registry_->remove(this);
}

void answer_collector::start(std::shared_ptr<collector_registry> registry) {
  if (!spec_.expects_answers()) return;
  for (auto& e : chosen_)
    if (e.p->is_closed()) e.closed = true;
  registry_ = std::move(registry);
  if (registry_) registry_->add(this);
}

answer_collector::entry* answer_collector::find(const boost::uuids::uuid& id) {
  auto it = std::lower_bound(chosen_.begin(), chosen_.end(), id,
                             [](const entry& e, const boost::uuids::uuid& k) { return e.id < k; });
  return it != chosen_.end() && it->id == id ? &*it : nullptr;
}

void answer_collector::on_message(const std::shared_ptr<peer>& p, const message& m) {
  if (spec_.accept) {
    if (spec_.accept(m)) record(p, m);
  } else if (m.command == spec_.command) {
    record(p, m);
  }
}

void answer_collector::on_closed(const peer& p) {
  entry* e = find(p.id());
  if (e && e->p.get() == &p && !e->answered) {
    e->closed = true;
    wake_.cancel();
  }
}

void answer_collector::record(const std::shared_ptr<peer>& p, const message& m) {
  if (stopped_) return;
  entry* e = find(p->id());
  if (spec_.any_peer) {
    if (!answered_any_.emplace(p->id(), true).second) return;
    if (e) e->answered = true;
  } else {
    // Only the peers asked; one answer each.
    if (!e || e->p != p || e->answered) return;
    e->answered = true;
  }
  answered_.push_back(answer{p, m, std::chrono::steady_clock::now() - started_});
  wake_.cancel();
}

bool answer_collector::satisfied(std::size_t quorum) const {
  // Done when every chosen peer answered or closed, whatever the quorum; answers from peers
  // not asked (any-peer pattern) are collected and count only toward an explicit quorum.
  bool every_chosen_done = true;
  for (const auto& e : chosen_)
    if (!e.answered && !e.closed) every_chosen_done = false;
  if (every_chosen_done) return true;
  return quorum > 0 && answered_.size() >= quorum;
}

answers answer_collector::result() const {
  answers r;
  r.answered = answered_;
  for (const auto& e : chosen_) {
    if (e.answered) continue;
    (e.closed ? r.closed : r.timed_out).push_back(e.p);
  }
  r.elapsed = elapsed_;
  return r;
}

void answer_collector::stop() {
  if (stopped_) return;
  stopped_ = true;
  elapsed_ = std::chrono::steady_clock::now() - started_;
  if (registry_) registry_->remove(this);
  registry_.reset();
  wake_.cancel();
}

asio::awaitable<op_result<answers>> wait_for_answers(std::shared_ptr<answer_collector> collector,
                                                     std::chrono::milliseconds timeout,
                                                     std::size_t quorum) {
  co_await asio::this_coro::reset_cancellation_state(asio::enable_total_cancellation());
  co_return co_await collector->wait(timeout, quorum);
}

asio::awaitable<op_result<answers>> answer_collector::wait(std::chrono::milliseconds timeout,
                                                           std::size_t quorum) {
  if (waiting_) co_return op_result<answers>{asio::error::already_started, answers{}};
  if (!spec_.expects_answers()) stop();
  waiting_ = true;

  struct reset {
    bool& flag;

    ~reset() { flag = false; }
  } r{waiting_};

  asio::steady_timer deadline(strand_, timeout);
  // Shared, not captured by reference: an expired timer's handler may run after we return.
  auto timed_out = std::make_shared<bool>(false);
  deadline.async_wait([self = shared_from_this(), timed_out](boost::system::error_code ec) {
    if (!ec) {
      *timed_out = true;
      self->wake_.cancel();
    }
  });
  while (!stopped_ && !*timed_out && !satisfied(quorum)) {
    co_await wake_.async_wait(use_nothrow);
    auto cs = co_await asio::this_coro::cancellation_state;
    if (cs.cancelled() != asio::cancellation_type::none) {
      stop();
      deadline.cancel();
      co_return op_result<answers>{asio::error::operation_aborted, result()};
    }
  }
  deadline.cancel();
  stop();
  co_return op_result<answers>{boost::system::error_code{}, result()};
}

}  // namespace detail
}  // namespace p2p
