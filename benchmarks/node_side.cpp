// The workloads on the Node.js original: a `node` child process runs node/bench.js against
// the same counterpart; this process only relays its JSON line.

#include <sstream>

#include "bench_util.hpp"
#include "sides.hpp"

#ifndef P2P_BENCH_NODE_SCRIPT
#define P2P_BENCH_NODE_SCRIPT "benchmarks/node/bench.js"
#endif

namespace bench {

std::string run_node(const args& a) {
  const std::string dir = a.str("node-dir", "build/bench/node");
  const std::string node = a.str("node", "/usr/bin/node");
  const auto limit = std::chrono::seconds(time_limit_s(a));
  std::string config =
      fmt::format(R"({{"peers":{},"size":{},"count":{},"rounds":{})", a.num("peers", 1),
                  a.num("size", 32), a.num("count", 1000), a.num("rounds", 100));
  child_process cp;
  if (a.workload == "connect") {
    cp = spawn_counterpart(a, 0);
    std::istringstream line(cp.read_line(std::chrono::seconds(60)));
    config += R"(,"hosts":[)";
    bool first = true;
    for (std::string h; line >> h; first = false)
      config += fmt::format(R"({}"{}")", first ? "" : ",", h);
    config += "]";
  }
  config += "}";
  auto js = spawn({node, "--max-old-space-size=4096", a.str("node-script", P2P_BENCH_NODE_SCRIPT),
                   a.workload, config},
                  {"NODE_PATH=" + dir + "/node_modules"});
  std::string out;
  if (a.workload == "connect") {
    out = js.read_line(limit);
  } else {
    const std::string port = js.read_line(std::chrono::seconds(30));
    if (port.rfind("port ", 0) == 0) {
      cp = spawn_counterpart(a, static_cast<unsigned short>(std::stoi(port.substr(5))));
      out = js.read_line(limit);
    } else {
      fmt::print(stderr, "node: no port line (got '{}')\n", port);
    }
  }
  js.finish(std::chrono::seconds(2));
  cp.finish();
  return out;
}

}  // namespace bench
