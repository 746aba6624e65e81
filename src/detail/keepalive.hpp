#pragma once
// The keepalive's clock: one timer per execution context wakes every peer whose next ping
// or pong deadline is due, so an idle peer holds no timer and no pending operation of its
// own (a timer and its wait cost about 0.8 KB per peer).

#include <p2p/peer.hpp>

#include <boost/asio/execution_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <unordered_map>
#include <utility>

namespace p2p::detail {

/// Wakes peers at the times they ask for: `keepalive_tick()` is posted to the peer's
/// transport strand. Its state lives on a strand of its own; `schedule` and `cancel` post to
/// it and may be called from any thread. With nothing scheduled it holds no pending wait,
/// so an io_context whose peers have all closed runs out of work.
class keepalive_service : public boost::asio::execution_context::service {
 public:
  using clock_type = peer::clock_type;
  static inline boost::asio::execution_context::id id;

  explicit keepalive_service(boost::asio::execution_context& ctx)
      : boost::asio::execution_context::service(ctx) {}

  /// The service of the context `ex` belongs to.
  static keepalive_service& of(const boost::asio::any_io_executor& ex);

  /// Wakes `p` at `at` (replacing what it asked for before). `ex`: an executor of the context.
  void schedule(const std::shared_ptr<peer>& p, clock_type::time_point at,
                const boost::asio::any_io_executor& ex);

  /// Forgets `p` (it is closing).
  void cancel(const peer* p);

 private:
  using strand_type = boost::asio::strand<boost::asio::any_io_executor>;

  struct entry {
    clock_type::time_point at;
    std::weak_ptr<peer> p;
  };

  void shutdown() override;
  void init(const boost::asio::any_io_executor& ex);
  void rearm();
  void fire();

  std::once_flag init_once_;
  std::optional<strand_type> strand_;
  // State below: on strand_ only.
  std::optional<boost::asio::steady_timer> timer_;
  std::set<std::pair<clock_type::time_point, const peer*>> due_;
  std::unordered_map<const peer*, entry> entries_;
  std::optional<clock_type::time_point> armed_at_;  // the pending wait's expiry, if any
  std::uint64_t generation_ = 0;                    // a newer wait makes older ones stale
};

}  // namespace p2p::detail
