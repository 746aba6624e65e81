#pragma once
/// @file stats.hpp
/// Per-peer statistics and the manager's snapshot: plain values, and their renderings as
/// Prometheus text exposition, JSON and a text table.

#include <p2p/host.hpp>
#include <p2p/lifecycle.hpp>

#include <boost/uuid/uuid.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace p2p {

/// The wall clock of the statistics' times.
using wall_clock = std::chrono::system_clock;

/// Messages and bytes (frame header included) of one command, in each direction.
struct command_stats {
  /// The command; `other_commands` collects those past the per-peer table's bound.
  std::string command;
  std::uint64_t messages_received = 0;
  std::uint64_t bytes_received = 0;
  std::uint64_t messages_sent = 0;
  std::uint64_t bytes_sent = 0;
};

/// The row that counts commands past `max_tracked_commands` (Bitcoin Core's name).
inline constexpr std::string_view other_commands = "*other*";

/// Distinct commands counted on their own per peer (and per manager); the rest go to
/// `other_commands`, so a remote inventing commands cannot grow the tables.
inline constexpr std::size_t max_tracked_commands = 32;

/// Kinds of protocol violation a peer's transport counts.
enum class violation : int {
  garbage,           ///< A run of bytes that was not a frame, skipped.
  bad_checksum,      ///< A frame with a bad checksum, dropped.
  bad_command,       ///< A frame with an invalid command field, dropped.
  oversized,         ///< A header declaring more than `max_message_size` (ends the peer).
  too_much_garbage,  ///< More than `max_garbage` bytes without a valid frame (ends the peer).
  send_overflow,     ///< The send queue passed `max_send_buffer` (ends the peer).
};

/// Number of `violation` kinds.
inline constexpr std::size_t violation_kinds = 6;

/// "garbage", "bad_checksum", "bad_command", "oversized", "too_much_garbage",
/// "send_overflow".
std::string_view to_string(violation v) noexcept;

/// Counts per violation kind, indexed by `violation`.
using violation_counts = std::array<std::uint64_t, violation_kinds>;

/// Statistics of one peer at the time of a snapshot.
struct peer_stats {
  boost::uuids::uuid id{};
  /// The remote as given (outbound) or as accepted (inbound).
  host remote;
  bool inbound = false;
  /// The seed's state string ("connecting", "connected", ... or the application's).
  std::string state;
  /// Passed the manager's handshake (peer_ready was emitted).
  bool ready = false;
  /// When the TCP connection came up (unset while connecting).
  std::optional<wall_clock::time_point> connected_since;
  /// When a valid frame last arrived / a frame was last written in full (unset: never).
  std::optional<wall_clock::time_point> last_receive;
  std::optional<wall_clock::time_point> last_send;
  /// Bytes read from and written to the socket (frame headers, and garbage read, included).
  std::uint64_t bytes_received = 0;
  std::uint64_t bytes_sent = 0;
  /// Valid frames received; frames written in full.
  std::uint64_t messages_received = 0;
  std::uint64_t messages_sent = 0;
  /// Per command, in the order first seen; at most `max_tracked_commands` + 1 rows.
  std::vector<command_stats> commands;
  /// Keepalive: pings sent, matching pongs received, the last and the smallest round trip.
  std::uint64_t pings_sent = 0;
  std::uint64_t pongs_received = 0;
  std::optional<std::chrono::microseconds> rtt_last;
  std::optional<std::chrono::microseconds> rtt_min;
  /// A ping is waiting for its pong.
  bool ping_outstanding = false;
  /// Bytes queued and not yet written.
  std::uint64_t queued_bytes = 0;
  /// Garbage bytes skipped.
  std::uint64_t garbage_bytes = 0;
  /// Protocol violations by kind.
  violation_counts violations{};
  /// Frames given to send() after the peer stopped accepting them (closing or closed).
  std::uint64_t dropped_sends = 0;
};

/// Inbound connections refused, by reason.
enum class refusal : int {
  barred,          ///< The address is barred.
  already_active,  ///< A peer with the same id is active.
  per_host_limit,  ///< `max_inbound_per_host` reached.
  inbound_limit,   ///< The inbound limit reached (and no eviction possible or allowed).
  max_peers,       ///< `max_peers` reached (and no eviction possible or allowed).
};

/// Number of `refusal` reasons.
inline constexpr std::size_t refusal_reasons = 5;

/// "barred", "already_active", "per_host_limit", "inbound_limit", "max_peers".
std::string_view to_string(refusal r) noexcept;

/// The manager's counters since it was made; they only grow.
struct manager_counters {
  /// Inbound connections admitted.
  std::uint64_t inbound_admitted = 0;
  /// Inbound connections refused, indexed by `refusal`.
  std::array<std::uint64_t, refusal_reasons> inbound_refused{};
  /// Outbound connections attempted, and those whose connect failed.
  std::uint64_t outbound_attempts = 0;
  std::uint64_t outbound_failures = 0;
  /// Peers that passed the handshake hook; peers it rejected (or that timed out in it).
  std::uint64_t handshakes_passed = 0;
  std::uint64_t handshakes_failed = 0;
  /// Inbound peers evicted to make room.
  std::uint64_t evictions = 0;
  /// Bars placed (by the manager and by `bar()`).
  std::uint64_t bars = 0;
  /// Peers disconnected for idleness, for a missing pong, for no valid frame in time.
  std::uint64_t idle_disconnects = 0;
  std::uint64_t ping_timeouts = 0;
  std::uint64_t first_message_timeouts = 0;
  /// Protocol violations of every peer, closed ones included, by kind.
  violation_counts violations{};
  /// Frames dropped: given to send() after their peer stopped accepting them.
  std::uint64_t dropped_sends = 0;
  /// Totals over every peer since launch, closed ones included.
  std::uint64_t bytes_received = 0;
  std::uint64_t bytes_sent = 0;
  std::uint64_t messages_received = 0;
  std::uint64_t messages_sent = 0;
  /// Per command over every peer since launch; at most `max_tracked_commands` + 1 rows.
  std::vector<command_stats> commands;
};

/// Everything about a manager at one moment: a plain value.
struct manager_snapshot {
  /// When it was taken.
  wall_clock::time_point taken_at{};
  manager_state state = manager_state::created;
  /// Peers being connected or connected, and how they split.
  std::size_t active = 0;
  std::size_t inbound = 0;
  std::size_t outbound = 0;
  /// Hosts in the address book; addresses barred now.
  std::size_t pool = 0;
  std::size_t barred = 0;
  /// The bounds in force.
  std::size_t min_peers = 0;
  std::size_t max_peers = 0;
  manager_counters counters;
  /// Every active peer, outbound and inbound.
  std::vector<peer_stats> peers;
};

/// Adds `n` messages of `bytes` for `command` to `rows` (received or sent), keeping at most
/// `max_tracked_commands` named rows and one `other_commands` row.
void count_command(std::vector<command_stats>& rows, std::string_view command, bool received,
                   std::uint64_t messages, std::uint64_t bytes);

/// The snapshot as Prometheus text exposition (format 0.0.4): `p2p_` names, `_total`
/// counters, `_seconds` and `_bytes` units, per-command and per-reason labels. Per-peer series
/// are left out (their number is unbounded); `/peers` has them.
std::string to_prometheus(const manager_snapshot& s);

/// The snapshot as JSON: the counts, the counters and every peer's statistics.
std::string to_json(const manager_snapshot& s);

/// The peers as a text table, one line each (the demo prints it).
std::string format_peer_table(const manager_snapshot& s);

}  // namespace p2p
