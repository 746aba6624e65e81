#pragma once
// Collects the answers to one send() from the moment the frame is queued.

#include <p2p/answers.hpp>
#include <p2p/manager.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/container_hash/hash.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <vector>

namespace p2p::detail {

class answer_collector : public std::enable_shared_from_this<answer_collector> {
 public:
  using executor_type = peer::executor_type;

  answer_collector(executor_type strand, std::map<boost::uuids::uuid, std::shared_ptr<peer>> chosen,
                   answer_spec spec);

  /// Subscribes to the chosen peers (and the manager's events for the any-peer pattern).
  /// Strand only; call before the frame is queued.
  void start(manager_events* manager);

  /// Strand only: waits per sent_messages::wait.
  boost::asio::awaitable<answers> wait(std::chrono::milliseconds timeout, std::size_t quorum);

  /// Strand only: ends the collection and removes every subscription.
  void stop();

  executor_type get_executor() const { return strand_; }

 private:
  struct entry {
    std::shared_ptr<peer> p;
    bool answered = false;
    bool closed = false;
  };

  void record(const std::shared_ptr<peer>& p, const message& m);
  bool satisfied(std::size_t quorum) const;
  answers result() const;

  executor_type strand_;
  answer_spec spec_;
  std::map<boost::uuids::uuid, entry> chosen_;
  std::map<boost::uuids::uuid, bool> answered_any_;  // any-peer pattern: one answer per peer
  std::vector<answer> answered_;
  std::vector<subscription> subs_;
  boost::asio::steady_timer wake_;
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::duration elapsed_{};
  bool waiting_ = false;
  bool stopped_ = false;
};

}  // namespace p2p::detail
