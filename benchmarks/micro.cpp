// Google Benchmark micro-benchmarks of the hot path.

#include <p2p/codec.hpp>
#include <p2p/events.hpp>
#include <p2p/message.hpp>

#include <memory>
#include <random>
#include <vector>

#include <benchmark/benchmark.h>

namespace {

std::vector<std::uint8_t> payload(std::size_t n) {
  std::vector<std::uint8_t> p(n);
  for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<std::uint8_t>(i * 131 + 7);
  return p;
}

void encode(benchmark::State& state) {
  const auto p = payload(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(p2p::encode_frame(p2p::bitcoin_magic, "blk", p));
  state.SetBytesProcessed(state.iterations() * state.range(0));
}

BENCHMARK(encode)->Arg(32)->Arg(1024)->Arg(65536);

// The decoder on a stream of back-to-back frames, fed in 64 KiB chunks as the peer reads.
void decode_stream(benchmark::State& state) {
  const auto f = p2p::encode_frame(p2p::bitcoin_magic, "blk", payload(state.range(0)));
  std::vector<std::uint8_t> stream;
  while (stream.size() < 1024 * 1024) stream.insert(stream.end(), f.begin(), f.end());
  const std::size_t frames = stream.size() / f.size();
  p2p::decoder d;
  for (auto _ : state) {
    std::size_t got = 0;
    for (std::size_t at = 0; at < stream.size(); at += 64 * 1024) {
      std::span<const std::uint8_t> in(stream.data() + at,
                                       std::min<std::size_t>(64 * 1024, stream.size() - at));
      while (auto ev = d.next(in)) got += ev->what == p2p::decode_event::kind::message;
    }
    if (got != frames) state.SkipWithError("lost frames");
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(frames));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(stream.size()));
}

BENCHMARK(decode_stream)->Arg(32)->Arg(1024)->Arg(65536);

void checksum(benchmark::State& state) {
  const auto p = payload(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(p2p::checksum(p));
  state.SetBytesProcessed(state.iterations() * state.range(0));
}

BENCHMARK(checksum)->Arg(32)->Arg(1024)->Arg(1 << 20);

// One emit of a message to N subscribers.
void dispatch(benchmark::State& state) {
  p2p::signal<p2p::message> sig;
  std::vector<p2p::subscription> subs;
  std::size_t seen = 0;
  for (int i = 0; i < state.range(0); ++i)
    subs.push_back(sig.subscribe([&](const p2p::message& m) { seen += m.payload.size(); }));
  p2p::message m{"blk", p2p::shared_bytes::copy(std::span<const std::uint8_t>(payload(32)))};
  for (auto _ : state) sig.emit(m);
  benchmark::DoNotOptimize(seen);
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK(dispatch)->Arg(1)->Arg(4)->Arg(16);

// k random peers out of P: the partial Fisher-Yates peer_manager::send uses (a copy of it:
// the selection is not a public function).
void select_k_of_p(benchmark::State& state) {
  const auto k = static_cast<std::size_t>(state.range(0));
  const auto p = static_cast<std::size_t>(state.range(1));
  std::vector<std::shared_ptr<int>> all;
  for (std::size_t i = 0; i < p; ++i) all.push_back(std::make_shared<int>(static_cast<int>(i)));
  std::mt19937_64 rng(1);
  for (auto _ : state) {
    auto matching = all;
    for (std::size_t i = 0; i < k && i < matching.size(); ++i) {
      std::uniform_int_distribution<std::size_t> pick(i, matching.size() - 1);
      std::swap(matching[i], matching[pick(rng)]);
    }
    matching.resize(std::min(k, matching.size()));
    benchmark::DoNotOptimize(matching.data());
  }
}

BENCHMARK(select_k_of_p)->Args({8, 100})->Args({8, 1000})->Args({100, 10000});

}  // namespace

BENCHMARK_MAIN();
