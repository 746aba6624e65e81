#pragma once
// The sides of a benchmark case: the measured implementations and the counterpart.

#include <string>

#include "bench_util.hpp"

namespace bench {

/// The counterpart process (hidden subcommand `_counterpart`): plain Asio, never measured.
int run_counterpart(const args& a);

/// One case measured with the library; returns its JSON line (empty on failure).
std::string run_p2p(const args& a);

/// One case measured with plain Asio and no library: the ceiling of this machine.
std::string run_raw(const args& a);

/// One case measured on the Node.js original (a `node` child process).
std::string run_node(const args& a);

/// W5 (`streams`): many connections into one receiver on --threads threads, through the
/// library (one peer_manager) or plain Asio (a strand per connection); its JSON line.
std::string run_streams_p2p(const args& a);
std::string run_streams_raw(const args& a);

/// Spawns the counterpart for `a`, connecting to `port` (unused for connect).
child_process spawn_counterpart(const args& a, unsigned short port);

/// Seconds a case may take before it is abandoned.
inline long time_limit_s(const args& a) {
  return a.num("time-limit", 60);
}

}  // namespace bench
