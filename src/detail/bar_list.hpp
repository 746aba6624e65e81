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
#include <utility>

namespace p2p::detail {

/// Bars keyed by host key, at most `max` at once.
class bar_list {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  using duration = std::chrono::steady_clock::duration;

  /// An empty list holding at most `max` (> 0) bars.
  explicit bar_list(std::size_t max) : max_(max) {}

  /// Bars `key` until `until`, replacing its end if it has one; an end at or before `now`
  /// forgets the bar. When full, the bar that ends soonest makes room for a new key.
  void set(std::string key, time_point until, time_point now) {
    auto it = until_.find(key);
    if (it != until_.end()) {
      by_end_.erase({it->second, &it->first});
      if (until <= now) {
        until_.erase(it);
        return;
      }
      it->second = until;
      by_end_.insert({until, &it->first});
      return;
    }
    if (until <= now) return;
    if (until_.size() >= max_) {
      const auto soonest = by_end_.begin();
      until_.erase(*soonest->second);
      by_end_.erase(soonest);
    }
    it = until_.emplace(std::move(key), until).first;
    by_end_.insert({until, &it->first});
  }

  /// The end of `key`'s bar (which may have passed); zero if it has none.
  time_point end_of(std::string_view key) const {
    const auto it = until_.find(key);
    return it == until_.end() ? time_point{} : it->second;
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
  /// Lets `find` take a string_view without building a string.
  struct key_hash {
    using is_transparent = void;

    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
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
