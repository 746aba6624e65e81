#pragma once
// Steady-clock arithmetic for the address book that cannot overflow, and the conversion of
// steady times to and from Unix milliseconds through a pair (steady now, wall now).

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>

namespace p2p::detail {

using steady_time_point = std::chrono::steady_clock::time_point;

/// Times further than this from now are saved and loaded as this far (100 years): it keeps
/// the conversion to the steady clock's nanoseconds far from overflow.
constexpr std::int64_t max_offset_ms = 36525LL * 24 * 3600 * 1000;

/// a + b, held at int64's limits.
constexpr std::int64_t saturated_add(std::int64_t a, std::int64_t b) noexcept {
  std::int64_t r;
  if (!__builtin_add_overflow(a, b, &r)) return r;
  return b > 0 ? std::numeric_limits<std::int64_t>::max()
               : std::numeric_limits<std::int64_t>::min();
}

/// a - b, held at int64's limits.
constexpr std::int64_t saturated_sub(std::int64_t a, std::int64_t b) noexcept {
  std::int64_t r;
  if (!__builtin_sub_overflow(a, b, &r)) return r;
  return b < 0 ? std::numeric_limits<std::int64_t>::max()
               : std::numeric_limits<std::int64_t>::min();
}

/// t + d, held at the clock's limits.
constexpr steady_time_point plus(steady_time_point t,
                                 std::chrono::steady_clock::duration d) noexcept {
  using duration = std::chrono::steady_clock::duration;
  return steady_time_point(duration(saturated_add(t.time_since_epoch().count(), d.count())));
}

/// `t` as Unix milliseconds, `now` being `wall_ms`; at most max_offset_ms from `wall_ms`.
constexpr std::int64_t to_unix_ms(steady_time_point t, steady_time_point now,
                                  std::int64_t wall_ms) noexcept {
  const auto ns = saturated_sub(t.time_since_epoch().count(), now.time_since_epoch().count());
  return saturated_add(wall_ms,
                       std::clamp<std::int64_t>(ns / 1'000'000, -max_offset_ms, max_offset_ms));
}

/// The steady time of Unix milliseconds `ms`, `now` being `wall_ms`; at most max_offset_ms
/// from `now`.
constexpr steady_time_point from_unix_ms(std::int64_t ms, steady_time_point now,
                                         std::int64_t wall_ms) noexcept {
  const auto off = std::clamp(saturated_sub(ms, wall_ms), -max_offset_ms, max_offset_ms);
  return plus(now, std::chrono::milliseconds(off));
}

/// Unix milliseconds of a wall time.
constexpr std::int64_t unix_ms_of(std::chrono::system_clock::time_point wall) noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(wall.time_since_epoch()).count();
}

}  // namespace p2p::detail
