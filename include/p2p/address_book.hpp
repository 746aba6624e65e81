#pragma once
/// @file address_book.hpp
/// The address book: the pool of known hosts with their history, and the bars. Sans-I/O:
/// no sockets, no clock of its own (every call that needs the time takes `now`), no
/// threads. A peer_manager keeps one on its strand; it is usable on its own too.

#include <p2p/host.hpp>

#include <boost/system/result.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace p2p {

/// The address book's bounds and policy.
struct book_options {
  /// Most hosts known at once. When full, a newcomer replaces the worst host that never
  /// worked (most failed attempts, then the oldest learned); a book full of hosts that
  /// worked keeps them and drops the newcomer.
  std::size_t max_hosts = 16384;
  /// Most bars at once. When full, the bar that ends soonest is forgotten for the new one.
  std::size_t max_bars = 16384;
  /// Wait before retrying a host after its first failed attempt; doubled after each further
  /// consecutive failure, capped at `backoff_max`, then randomised to 50 %..150 %.
  std::chrono::milliseconds backoff_initial{std::chrono::seconds(30)};
  /// Cap of the backoff (before randomisation).
  std::chrono::milliseconds backoff_max{std::chrono::hours(1)};
  /// Outbound peers in distinct netgroups (/16 IPv4, /32 IPv6): `take` skips hosts whose
  /// group is excluded.
  bool spread_netgroups = true;

  /// @throws std::invalid_argument naming the first bad value.
  void validate() const;
};

/// Where a host was learned.
enum class host_source { seed, pool, active };

/// "seed", "pool" or "active".
std::string_view to_string(host_source s) noexcept;

/// One known host and its history.
struct host_record {
  using time_point = std::chrono::steady_clock::time_point;

  /// The host.
  p2p::host host;
  /// Where it was learned.
  host_source source = host_source::pool;
  /// Failed attempts since the last success.
  std::uint32_t attempts = 0;
  /// The last time it was taken to be dialled; zero if never.
  time_point last_try{};
  /// The last time a connection to it worked; zero if never.
  time_point last_success{};
  /// Not taken before this (the backoff after a failure); zero if no wait.
  time_point retry_at{};
};

/// The pool of known hosts with their history, and the bars.
///
/// Hosts are keyed by (`host_key(name)`, port); bars by `host_key(name)` alone (an address
/// in one spelling, or a lower-case name). Insertion, lookup and removal are O(log n) or
/// better; `take` is O(1) expected (random probing, with a bounded scan as fallback).
///
/// @par Thread safety
/// None: one thread (or strand) at a time.
class address_book {
 public:
  using clock_type = std::chrono::steady_clock;
  using time_point = clock_type::time_point;
  using duration = clock_type::duration;

  /// An empty book. `seed` makes `take`'s choices and the backoff's randomisation
  /// reproducible.
  /// @throws std::invalid_argument for bad options, naming the value.
  explicit address_book(book_options opts = {}, std::uint64_t seed = std::random_device{}());

  address_book(const address_book&) = delete;
  address_book& operator=(const address_book&) = delete;
  address_book(address_book&&) noexcept;
  address_book& operator=(address_book&&) noexcept;
  ~address_book();

  /// The options in force.
  const book_options& options() const noexcept;

  // ---- hosts ----

  /// Learns `h` (from `source`) at `now`. Returns false when it was known already (its
  /// history is kept), or when the book is full of hosts that worked. Barred hosts are
  /// learned too: `take` skips them while barred.
  /// @throws std::invalid_argument if `h` is not what `parse_host` gives for its name and
  /// port (port 0, a bad name): the book holds only hosts that `load` reads back.
  bool add(const host& h, host_source source, time_point now);

  /// Forgets `h`; returns whether it was known.
  bool remove(const host& h);

  /// Whether `h` is known (and not taken).
  bool contains(const host& h) const;

  /// The record of `h`, or null. Valid until the next call that changes the book.
  const host_record* find(const host& h) const;

  /// Known hosts (not counting taken ones).
  std::size_t size() const noexcept;

  /// Every known host, in no particular order.
  std::vector<host> hosts() const;

  /// Every record, in no particular order.
  std::vector<host_record> records() const;

  /// Takes a host to dial out of the book: one that is not barred, not backing off
  /// (`retry_at` <= `now`) and, with `spread_netgroups`, whose netgroup is not in
  /// `busy_groups` (netgroup_of's spelling). Hosts that worked are preferred: with
  /// both kinds eligible, half of the picks go to hosts that worked; within a kind the pick is
  /// random, a host with `a` failed attempts weighted 0.66^min(a, 8) (Bitcoin Core's
  /// chance). Hosts tried within the last `backoff_initial` come last: taken only when no
  /// other host is eligible. `last_try` is set to `now`. Returns nullopt when no host is eligible.
  /// Give the record back with `put_back`.
  std::optional<host_record> take(time_point now, const std::set<std::string>& busy_groups = {});

  /// Takes `h` itself out of the book to dial it now, whatever its backoff or netgroup (the
  /// caller checks bars); `last_try` is set to `now`. Nullopt if `h` is not known.
  std::optional<host_record> extract(const host& h, time_point now);

  /// Returns a taken host with its outcome: `worked` clears `attempts` and sets
  /// `last_success` to `now`; otherwise `attempts` grows and `retry_at` is set by the
  /// backoff. Re-learned under the usual capacity rule.
  /// @throws std::invalid_argument for a bad host, as `add`.
  void put_back(host_record r, bool worked, time_point now);

  /// Returns a taken host whose attempt had no outcome (the application closed it first):
  /// its history stays as it was. Re-learned under the usual capacity rule.
  void restore(host_record r, time_point now);

  /// The backoff after `attempts` consecutive failures, before randomisation: zero for 0,
  /// else min(backoff_initial * 2^(attempts-1), backoff_max).
  duration backoff(std::uint32_t attempts) const noexcept;

  // ---- bars ----

  /// Bars `name` (an address in any spelling, or a name) for `d` more than what is left of
  /// its bar at `now`. When `max_bars` are running, the one that ends soonest is forgotten.
  /// @throws std::invalid_argument if `name` is empty.
  void bar(std::string_view name, duration d, time_point now);

  /// How much longer `name` is barred at `now` (zero if it is not).
  duration barred_for(std::string_view name, time_point now) const;

  /// Whether `name` is barred at `now`.
  bool barred(std::string_view name, time_point now) const {
    return barred_for(name, now).count() > 0;
  }

  /// Bars still running at `now` (ended ones are forgotten first).
  std::size_t barred_count(time_point now);

  // ---- persistence ----

  /// The book as JSON text: hosts with their history and the bars still running, times as
  /// Unix milliseconds (`wall_now` is the system clock at `now`).
  /// `taken`: hosts out of the book (being dialled or connected) to write too, after the
  /// book's own, so that a file saved while they are out still knows them.
  std::string save(time_point now, std::chrono::system_clock::time_point wall_now,
                   std::span<const host_record> taken = {}) const;

  /// A book read from `save`'s text: every field checked; any error (not JSON, a missing or
  /// ill-typed field, a bad host, a format version newer than 1) fails the whole load with
  /// a message naming what is wrong. Bars whose end has passed are dropped.
  /// @throws std::invalid_argument for bad options, as the constructor.
  static boost::system::result<address_book, std::string> load(
      std::string_view text, book_options opts, time_point now,
      std::chrono::system_clock::time_point wall_now, std::uint64_t seed = std::random_device{}());

  /// Learns every host and bar of `other` (the history of hosts known to both: `other`'s; a
  /// name barred in both: the later end).
  void merge(const address_book& other, time_point now);

  // ---- keys ----

  /// The key of a name: an IP address in one spelling ("::ffff:1.2.3.4" is "1.2.3.4",
  /// "0::1" is "::1"), or the name in lower case.
  static std::string host_key(std::string_view name);

  /// The netgroup of a name: "A.B.0.0/16" for IPv4, "xxxx:xxxx::/32" for IPv6, the key
  /// itself for a DNS name.
  static std::string netgroup_of(std::string_view name);

 private:
  struct state;
  std::unique_ptr<state> s_;
};

}  // namespace p2p
