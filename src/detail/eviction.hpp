#pragma once
// Which inbound peer makes room for a newcomer: sans-I/O, tested with values.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace p2p::detail {

/// What the eviction rule knows of one inbound peer.
struct eviction_candidate {
  /// Netgroup of its address (address_book::netgroup_of).
  std::string group;
  /// Admission order: older is smaller.
  std::uint64_t admitted = 0;
  /// When its last valid message arrived; zero if none yet.
  std::chrono::steady_clock::time_point last_message{};
};

/// Bitcoin Core's inbound eviction, simplified to what a peer manager knows. Protected, in
/// turn: the oldest peer of each of up to 4 netgroups (picked at random when there are
/// more), the 4 peers whose last valid message is most recent, then the older half of the
/// rest. From what remains, the youngest peer of the netgroup with the most peers goes.
/// Returns its index in `peers`, or nullopt when every peer is protected.
std::optional<std::size_t> pick_eviction(const std::vector<eviction_candidate>& peers,
                                         std::mt19937_64& rng);

}  // namespace p2p::detail
