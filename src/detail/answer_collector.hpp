#pragma once
// Collects the answers to one send() from the moment the frame is queued.

#include <p2p/answers.hpp>
#include <p2p/manager.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/container_hash/hash.hpp>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <vector>

namespace p2p::detail {

class answer_collector;

/// The collectors of one manager that are still collecting. The manager hands them every
/// message and every close of its peers (one call each, instead of two subscriptions per
/// chosen peer per send). Strand only. Shared, so a collector that outlives its manager
/// can still leave.
class collector_registry {
 public:
  void add(answer_collector* c) { live_.push_back(c); }

  /// Safe during for_each (the slot is emptied, and compacted afterwards).
  void remove(answer_collector* c) noexcept;

  /// Collectors still registered.
  std::size_t size() const noexcept {
    return static_cast<std::size_t>(
        std::count_if(live_.begin(), live_.end(), [](const answer_collector* c) { return c; }));
  }

  template <class F>
  void for_each(F&& f) {
    ++depth_;

    struct done {
      collector_registry* r;

      ~done() {
        if (--r->depth_ == 0 && r->holes_) r->compact();
      }
    } d{this};

    const std::size_t n = live_.size();  // collectors added meanwhile wait for the next event
    for (std::size_t i = 0; i < n; ++i)
      if (answer_collector* c = live_[i]) f(*c);
  }

 private:
  void compact() noexcept;

  std::vector<answer_collector*> live_;
  int depth_ = 0;
  bool holes_ = false;
};

class answer_collector : public std::enable_shared_from_this<answer_collector> {
 public:
  using executor_type = peer::executor_type;

  answer_collector(executor_type strand,
                   const std::map<boost::uuids::uuid, std::shared_ptr<peer>>& chosen,
                   answer_spec spec);

  answer_collector(const answer_collector&) = delete;
  answer_collector& operator=(const answer_collector&) = delete;
  ~answer_collector();

  /// Joins `registry` to be told of messages and closes. Strand only; call before the
  /// frame is queued, so no answer can be missed.
  void start(std::shared_ptr<collector_registry> registry);

  /// From the manager: a message from one of its peers.
  void on_message(const std::shared_ptr<peer>& p, const message& m);

  /// From the manager: one of its peers closed.
  void on_closed(const peer& p);

  /// Strand only: waits per sent_messages::wait.
  boost::asio::awaitable<op_result<answers>> wait(std::chrono::milliseconds timeout,
                                                  std::size_t quorum);

  /// Strand only: ends the collection and removes every subscription.
  void stop();

  executor_type get_executor() const { return strand_; }

 private:
  struct entry {
    boost::uuids::uuid id;
    std::shared_ptr<peer> p;
    bool answered = false;
    bool closed = false;
  };

  entry* find(const boost::uuids::uuid& id);
  void record(const std::shared_ptr<peer>& p, const message& m);
  bool satisfied(std::size_t quorum) const;
  answers result() const;

  executor_type strand_;
  answer_spec spec_;
  std::vector<entry> chosen_;                        // sorted by id
  std::map<boost::uuids::uuid, bool> answered_any_;  // any-peer pattern: one answer per peer
  std::vector<answer> answered_;
  std::shared_ptr<collector_registry> registry_;
  boost::asio::steady_timer wake_;
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::duration elapsed_{};
  bool waiting_ = false;
  bool stopped_ = false;
};

}  // namespace p2p::detail
