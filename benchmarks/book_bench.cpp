// p2p_book_bench: micro-benchmark of the address book at 100,000 hosts.
//   p2p_book_bench [--json]
// Measures adding hosts, take + put_back, bars with max_bars held, save and load of the full
// book, and the heap a full book holds (mallinfo2). Each figure is the median of 5 runs.

#include <p2p/address_book.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <malloc.h>

namespace {

using namespace std::chrono_literals;
using p2p::address_book;
using clock_type = std::chrono::steady_clock;

/// Hosts in the book.
constexpr std::size_t host_count = 100'000;
/// take + put_back pairs, and bars, per run.
constexpr std::size_t op_count = 100'000;
/// Runs per figure; the median is reported.
constexpr int runs = 5;

const address_book::time_point t0 = address_book::time_point{} + 24h;
const auto wall0 = std::chrono::system_clock::time_point{} + 1'700'000'000'000ms;

/// Host i: IPv4 for three in four, IPv6 for the rest, as in a real book.
p2p::host host_at(std::size_t i) {
  const auto n = static_cast<std::uint32_t>(i);
  if (i % 4 == 3) return {fmt::format("2001:db8:{:x}::{:x}", n >> 16, n & 0xffff), 8333};
  return {fmt::format("{}.{}.{}.{}", 1 + (n >> 16), (n >> 8) & 0xff, n & 0xff, 1 + n % 200), 8333};
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

/// The median over `runs` runs of `run()`, which returns one figure.
double median_of(const std::function<double()>& run) {
  std::vector<double> v;
  for (int i = 0; i < runs; ++i) v.push_back(run());
  return median(v);
}

double ns_since(clock_type::time_point start) {
  return std::chrono::duration<double, std::nano>(clock_type::now() - start).count();
}

p2p::book_options options() {
  p2p::book_options o;
  o.max_hosts = host_count;
  return o;
}

/// A book of every host in `hosts`, the odd ones having worked.
address_book full_book(const std::vector<p2p::host>& hosts, std::uint64_t seed) {
  address_book b(options(), seed);
  for (const auto& h : hosts) b.add(h, p2p::host_source::pool, t0);
  for (std::size_t i = 1; i < hosts.size(); i += 2) {
    auto r = b.extract(hosts[i], t0);
    b.put_back(*r, true, t0);
  }
  return b;
}

struct figures {
  double add_ns = 0;       // per add, filling an empty book to host_count
  double add_full_ns = 0;  // per add into a full book (each replaces a host)
  double take_put_ns = 0;  // per take + put_back pair
  double bar_ns = 0;       // per bar with max_bars held
  double save_ms = 0;      // the full book
  double load_ms = 0;
  double file_bytes = 0;
  double bytes_per_host = 0;  // heap held by a full book (hosts only, no bars)
};

figures measure() {
  std::vector<p2p::host> hosts, newcomers;
  for (std::size_t i = 0; i < host_count; ++i) hosts.push_back(host_at(i));
  for (std::size_t i = 0; i < op_count; ++i) newcomers.push_back(host_at(host_count + i));
  std::vector<std::string> bar_names;
  for (std::size_t i = 0; i < 16384 + op_count; ++i) bar_names.push_back(host_at(i).name);

  figures f;
  f.add_ns = median_of([&] {
    address_book b(options(), 1);
    const auto start = clock_type::now();
    for (const auto& h : hosts) b.add(h, p2p::host_source::pool, t0);
    return ns_since(start) / host_count;
  });
  f.add_full_ns = median_of([&] {
    address_book b = full_book(hosts, 1);
    const auto start = clock_type::now();
    for (const auto& h : newcomers) b.add(h, p2p::host_source::pool, t0);
    return ns_since(start) / op_count;
  });
  f.take_put_ns = median_of([&] {
    address_book b = full_book(hosts, 2);
    auto now = t0;
    const auto start = clock_type::now();
    for (std::size_t i = 0; i < op_count; ++i) {
      now += 10ms;
      auto r = b.take(now);
      if (!r) break;                    // cannot happen: most hosts stay eligible
      b.put_back(*r, i % 4 != 0, now);  // one in four fails and backs off
    }
    return ns_since(start) / op_count;
  });
  f.bar_ns = median_of([&] {
    address_book b({}, 3);
    const std::size_t held = b.options().max_bars;
    for (std::size_t i = 0; i < held; ++i) b.bar(bar_names[i], 1h, t0);
    const auto start = clock_type::now();
    for (std::size_t i = 0; i < op_count; ++i)
      b.bar(bar_names[held + i], 1h, t0 + static_cast<long long>(i) * 1us);
    return ns_since(start) / op_count;
  });

  address_book book = full_book(hosts, 4);
  for (std::size_t i = 0; i < 16384; ++i) book.bar(bar_names[i], 1h, t0);
  std::string text;
  f.save_ms = median_of([&] {
    const auto start = clock_type::now();
    text = book.save(t0 + 1s, wall0);
    return ns_since(start) / 1e6;
  });
  f.file_bytes = static_cast<double>(text.size());
  f.load_ms = median_of([&] {
    const auto start = clock_type::now();
    auto loaded = address_book::load(text, options(), t0 + 1s, wall0, 5);
    const double ms = ns_since(start) / 1e6;
    if (!loaded || loaded->size() != host_count) {
      std::fprintf(stderr, "p2p_book_bench: load failed\n");
      std::exit(1);
    }
    return ms;
  });
  f.bytes_per_host = median_of([&] {
    const auto before = mallinfo2().uordblks;
    double bytes = 0;
    {
      address_book b = full_book(hosts, 6);
      bytes = static_cast<double>(mallinfo2().uordblks - before);
    }
    return bytes / host_count;
  });
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  const bool json = argc > 1 && std::string_view(argv[1]) == "--json";
  if (argc > 2 || (argc == 2 && !json)) {
    std::fprintf(stderr, "usage: p2p_book_bench [--json]\n");
    return 2;
  }
  const figures f = measure();
  if (json) {
    fmt::print(
        "{{\"hosts\":{},\"runs\":{},\"add_ns\":{:.1f},\"add_full_ns\":{:.1f},"
        "\"take_put_back_ns\":{:.1f},\"bar_ns\":{:.1f},\"save_ms\":{:.2f},\"load_ms\":{:.2f},"
        "\"file_bytes\":{:.0f},\"bytes_per_host\":{:.1f}}}\n",
        host_count, runs, f.add_ns, f.add_full_ns, f.take_put_ns, f.bar_ns, f.save_ms, f.load_ms,
        f.file_bytes, f.bytes_per_host);
    return 0;
  }
  fmt::print("address book, {} hosts (median of {} runs)\n", host_count, runs);
  fmt::print("  {:<40} {:>12}\n", "operation", "cost");
  fmt::print("  {:<40} {:>9.0f} ns\n", "add (filling an empty book)", f.add_ns);
  fmt::print("  {:<40} {:>9.0f} ns\n", "add into a full book (replaces a host)", f.add_full_ns);
  fmt::print("  {:<40} {:>9.0f} ns\n", "take + put_back (1 in 4 fails)", f.take_put_ns);
  fmt::print("  {:<40} {:>9.0f} ns\n", "bar (max_bars = 16384 held)", f.bar_ns);
  fmt::print("  {:<40} {:>9.1f} ms\n", "save (100k hosts + 16384 bars)", f.save_ms);
  fmt::print("  {:<40} {:>9.1f} ms\n", "load (same text)", f.load_ms);
  fmt::print("  {:<40} {:>9.2f} MB\n", "saved text", f.file_bytes / 1e6);
  fmt::print("  {:<40} {:>9.0f} B\n", "heap per host (full book)", f.bytes_per_host);
  return 0;
}
