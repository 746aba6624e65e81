// p2p_bench: one workload case per run, one JSON line on stdout, logs on stderr.
//
//   p2p_bench pingpong --rounds R        [--impl p2p|raw|node]
//   p2p_bench stream   --size S --count N
//   p2p_bench fanout   --peers P --rounds R
//   p2p_bench connect  --peers P
//   p2p_bench idle     --peers P
//   p2p_bench streams  --size S --count N [--conns C] [--threads T]   (W5; p2p and raw only)
// Common: --time-limit SEC (default 60), --node-dir DIR (node_modules of the original).
// p2p only: --stats off (no per-peer statistics), --keepalive off (no pings).

#include <cstdio>
#include <iostream>

#include "bench_util.hpp"
#include "sides.hpp"

namespace bench {

child_process spawn_counterpart(const args& a, unsigned short port) {
  std::vector<std::string> argv{self_path(), "_counterpart", a.workload};
  for (const auto& [k, v] : a.kv) {
    if (k == "port" || k == "impl") continue;
    argv.push_back("--" + k);
    argv.push_back(v);
  }
  argv.push_back("--port");
  argv.push_back(std::to_string(port));
  // The counterpart outlives the measuring side's deadline a little, never much more.
  return spawn(argv);
}

}  // namespace bench

namespace {

int usage() {
  std::fputs(
      "usage: p2p_bench pingpong|stream|fanout|connect|idle|streams [--impl p2p|raw|node]\n"
      "         [--rounds R] [--size S] [--count N] [--peers P] [--conns C] [--threads T]\n"
      "         [--time-limit SEC] [--node-dir DIR] [--stats on|off] [--keepalive on|off]\n",
      stderr);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  bench::args a;
  int i = 1;
  bool counterpart = false;
  if (i < argc && std::string(argv[i]) == "_counterpart") {
    counterpart = true;
    ++i;
  }
  if (i >= argc) return usage();
  a.workload = argv[i++];
  for (; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0) return usage();
    a.kv[k.substr(2)] = argv[i + 1];
  }
  if (i != argc) return usage();
  a.impl = a.str("impl", "p2p");
  static const std::vector<std::string> workloads{"pingpong", "stream", "fanout",
                                                  "connect",  "idle",   "streams"};
  if (std::find(workloads.begin(), workloads.end(), a.workload) == workloads.end()) return usage();
  try {
    if (counterpart) return bench::run_counterpart(a);
    std::string line;
    if (a.workload == "streams" && a.impl == "p2p")
      line = bench::run_streams_p2p(a);
    else if (a.workload == "streams" && a.impl == "raw")
      line = bench::run_streams_raw(a);
    else if (a.workload == "streams")
      return usage();  // the Node.js original has no multi-threaded receiver to compare
    else if (a.impl == "p2p")
      line = bench::run_p2p(a);
    else if (a.impl == "raw")
      line = bench::run_raw(a);
    else if (a.impl == "node")
      line = bench::run_node(a);
    else
      return usage();
    if (line.empty() || line.front() != '{') {
      std::cout << fmt::format(R"({{"impl":"{}","workload":"{}","error":"failed or timed out"}})",
                               a.impl, a.workload)
                << std::endl;
      return 1;
    }
    std::cout << line << std::endl;
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "p2p_bench: {}\n", e.what());
    return 1;
  }
}
