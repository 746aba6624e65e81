// The inbound eviction rule with values: no sockets.

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

#include "detail/eviction.hpp"

using p2p::detail::eviction_candidate;
using p2p::detail::pick_eviction;
using namespace std::chrono_literals;

namespace {

const auto t0 = std::chrono::steady_clock::time_point{} + 1h;

}  // namespace

SCENARIO("eviction rule: every peer protected means nobody is evicted", "[eviction-rule]") {
  std::mt19937_64 rng(1);
  // Four peers in four netgroups: each is its group's oldest.
  std::vector<eviction_candidate> peers{{"10.1.0.0/16", 1, {}},
                                        {"10.2.0.0/16", 2, {}},
                                        {"10.3.0.0/16", 3, {}},
                                        {"10.4.0.0/16", 4, {}}};
  REQUIRE_FALSE(pick_eviction(peers, rng));
  REQUIRE_FALSE(pick_eviction({}, rng));
}

SCENARIO("eviction rule: the youngest of the largest netgroup goes, recent senders are kept",
         "[eviction-rule]") {
  std::mt19937_64 rng(7);
  std::vector<eviction_candidate> peers;
  // One old peer in each of 4 small groups (protected as their groups' oldest).
  for (int g = 1; g <= 4; ++g)
    peers.push_back({"10." + std::to_string(g) + ".0.0/16", static_cast<std::uint64_t>(g), {}});
  // Ten peers of one attacking group, admitted later, silent.
  for (int i = 0; i < 10; ++i)
    peers.push_back({"66.6.0.0/16", static_cast<std::uint64_t>(10 + i), {}});
  // The attacking group's oldest (admitted 10) may be protected as its group's oldest only
  // when that group is among the 4 picked; either way the victim is its youngest.
  auto v = pick_eviction(peers, rng);
  REQUIRE(v);
  REQUIRE(peers[*v].group == "66.6.0.0/16");
  REQUIRE(peers[*v].admitted == 19);
  GIVEN("the youngest attackers are the most recent senders of a valid message") {
    for (std::size_t i = peers.size() - 4; i < peers.size(); ++i)
      peers[i].last_message = t0 + std::chrono::seconds(i);
    THEN("they are protected, and the youngest silent one of that group goes") {
      std::mt19937_64 rng2(7);
      auto w = pick_eviction(peers, rng2);
      REQUIRE(w);
      REQUIRE(peers[*w].group == "66.6.0.0/16");
      REQUIRE(peers[*w].admitted == 15);
    }
  }
}

SCENARIO("eviction rule: the older half of the unprotected is kept", "[eviction-rule]") {
  std::mt19937_64 rng(3);
  // All in one group: the oldest is protected, then the older half of the other 9.
  std::vector<eviction_candidate> peers;
  for (int i = 0; i < 10; ++i)
    peers.push_back({"10.9.0.0/16", static_cast<std::uint64_t>(i + 1), {}});
  auto v = pick_eviction(peers, rng);
  REQUIRE(v);
  REQUIRE(peers[*v].admitted == 10);
  // Two peers: one protected as its group's oldest, the other is the older half of one... of
  // zero: it goes.
  std::vector<eviction_candidate> two{{"10.9.0.0/16", 1, {}}, {"10.9.0.0/16", 2, {}}};
  auto w = pick_eviction(two, rng);
  REQUIRE(w);
  REQUIRE(*w == 1);
}
