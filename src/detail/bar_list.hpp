#pragma once
// The address book's bars: a bounded map from host key to the end of its bar, with an index
// ordered by end time so that the bar ending soonest is found in O(log n) (to forget it when
// full, or because it has ended). Sans-I/O: every call takes `now`.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <functional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>

namespace p2p::detail {

/// Bars keyed by host key, at most `max` at once.
class bar_list {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  using duration = std::chrono::steady_clock::duration;

  /// An empty list holding at most `max` (> 0) bars.
  explicit bar_list(std::size_t max) : max_(max) {}

  /// Sets the end of `key`'s bar to `new_end(old)`, `old` being its end now (zero if it has
  /// none). An end at or before `now` forgets the bar. When full, the bar that ends soonest
  /// makes room for a new key, its nodes reused: once full, a bar allocates nothing.
  template <class F>
  void update(std::string_view key, time_point now, F&& new_end) {
    if (const auto it = until_.find(key); it != until_.end()) {
      const time_point end = new_end(it->second);
      by_end_.erase({it->second, &it->first});
      if (end <= now) {
        until_.erase(it);
        return;
      }
      it->second = end;
      by_end_.insert({end, &it->first});
      return;
    }
    const time_point end = new_end(time_point{});
    if (end <= now) return;
    if (until_.size() < max_) {
      const auto it = until_.emplace(std::string(key), end).first;
      by_end_.insert({end, &it->first});
      return;
    }
    auto slot = by_end_.extract(by_end_.begin());
    auto node = until_.extract(*slot.value().second);
    node.key().assign(key);
    node.mapped() = end;
    slot.value() = {end, &until_.insert(std::move(node)).position->first};
    by_end_.insert(std::move(slot));
  }

  /// How much longer `key` is barred at `now`; zero if it is not.
  duration left(std::string_view key, time_point now) const {
    const auto it = until_.find(key);
    if (it == until_.end() || it->second <= now) return duration::zero();
    return it->second - now;
  }

  /// Whether `key` is barred at `now`.
  bool barred(std::string_view key, time_point now) const {
    if (until_.empty()) return false;
    const auto it = until_.find(key);
    return it != until_.end() && it->second > now;
  }

  /// Forgets the bars that ended at or before `now`; O(log n) per bar forgotten.
  void forget_ended(time_point now) {
    while (!by_end_.empty() && by_end_.begin()->first <= now) {
      until_.erase(*by_end_.begin()->second);
      by_end_.erase(by_end_.begin());
    }
  }

  /// Bars held (some may have ended).
  std::size_t size() const noexcept { return until_.size(); }

  /// Calls `f(key, until)` for every bar running at `now`, soonest ending first.
  template <class F>
  void for_each_running(time_point now, F&& f) const {
    for (auto it = by_end_.upper_bound({now, nullptr}); it != by_end_.end(); ++it)
      f(*it->second, it->first);
  }

 private:
  /// Lets `find` take a string_view without building a string. Not noexcept, so that
  /// libstdc++ caches each node's hash instead of hashing keys again while walking buckets.
  struct key_hash {
    using is_transparent = void;

    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  /// End time, then key text: a total order that does not depend on addresses, so that
  /// `for_each_running` (and a saved file) lists bars in the same order every time. A null
  /// key sorts last among equal ends, so `upper_bound({now, nullptr})` is the first end
  /// after `now`.
  struct by_end_order {
    bool operator()(const std::pair<time_point, const std::string*>& a,
                    const std::pair<time_point, const std::string*>& b) const noexcept {
      if (a.first != b.first) return a.first < b.first;
      if (!a.second || !b.second) return a.second && !b.second;
      return *a.second < *b.second;
    }
  };

  std::unordered_map<std::string, time_point, key_hash, std::equal_to<>> until_;
  // Points at the keys of until_: its nodes never move.
  std::set<std::pair<time_point, const std::string*>, by_end_order> by_end_;
  std::size_t max_;
};

}  // namespace p2p::detail
