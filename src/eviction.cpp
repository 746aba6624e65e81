#include "detail/eviction.hpp"

#include <algorithm>
#include <map>

namespace p2p::detail {

std::optional<std::size_t> pick_eviction(const std::vector<eviction_candidate>& peers,
                                         std::mt19937_64& rng) {
  std::vector<std::size_t> c(peers.size());
  for (std::size_t i = 0; i < c.size(); ++i) c[i] = i;
  const auto older = [&](std::size_t a, std::size_t b) {
    return peers[a].admitted < peers[b].admitted;
  };
  // 1. One peer, the oldest, in each of up to 4 netgroups.
  std::sort(c.begin(), c.end(), older);
  std::vector<std::string> groups;
  for (auto i : c)
    if (std::find(groups.begin(), groups.end(), peers[i].group) == groups.end())
      groups.push_back(peers[i].group);
  std::shuffle(groups.begin(), groups.end(), rng);
  if (groups.size() > 4) groups.resize(4);
  for (const auto& g : groups)
    c.erase(std::find_if(c.begin(), c.end(), [&](std::size_t i) { return peers[i].group == g; }));
  // 2. The 4 most recent senders of a valid message.
  std::stable_sort(c.begin(), c.end(), [&](std::size_t a, std::size_t b) {
    return peers[a].last_message > peers[b].last_message;
  });
  std::size_t recent = 0;
  while (recent < c.size() && recent < 4 &&
         peers[c[recent]].last_message != std::chrono::steady_clock::time_point{})
    ++recent;
  c.erase(c.begin(), c.begin() + static_cast<std::ptrdiff_t>(recent));
  // 3. The older half of the rest.
  std::sort(c.begin(), c.end(), older);
  c.erase(c.begin(), c.begin() + static_cast<std::ptrdiff_t>(c.size() / 2));
  if (c.empty()) return std::nullopt;
  // The netgroup with the most of what is left; its youngest peer goes.
  std::map<std::string, std::size_t> sizes;
  for (auto i : c) ++sizes[peers[i].group];
  std::optional<std::size_t> victim;
  for (auto i : c) {
    if (!victim) {
      victim = i;
      continue;
    }
    const auto& v = peers[*victim];
    const auto n = sizes[peers[i].group];
    const auto vn = sizes[v.group];
    if (n > vn || (n == vn && peers[i].admitted > v.admitted)) victim = i;
  }
  return victim;
}

}  // namespace p2p::detail
