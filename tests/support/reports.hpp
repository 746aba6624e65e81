#pragma once
// Test helpers: looking for a report among those a manager or peer emitted.

#include <p2p/peer.hpp>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

namespace p2p::test {

/// A report of any severity whose message contains `text`.
inline bool has_report(const std::vector<p2p::report>& reports, std::string_view text) {
  return std::any_of(reports.begin(), reports.end(), [&](const p2p::report& r) {
    return r.message.find(text) != std::string::npos;
  });
}

/// A report of severity `level` whose message contains `text` and `also`.
inline bool has_report(const std::vector<p2p::report>& reports, p2p::severity level,
                       std::string_view text, std::string_view also = {}) {
  return std::any_of(reports.begin(), reports.end(), [&](const p2p::report& r) {
    return r.level == level && r.message.find(text) != std::string::npos &&
           r.message.find(also) != std::string::npos;
  });
}

}  // namespace p2p::test
