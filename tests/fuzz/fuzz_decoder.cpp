// libFuzzer target for p2p::decoder (the Bitcoin v1 frame decoder).
//
// Input layout: byte 0 seeds the chunk sizes, byte 1 picks the magic and the round-trip
// command, the rest is the byte stream. For each input it checks that:
// - the stream decoded in one piece, and split into chunks chosen from byte 0, gives the same
//   events (garbage compared as the sum between two other events, since a split may report
//   one run of garbage as several events) and the same final state;
// - both agree with a naive reference decoder written from the header's contract;
// - next() leaves input unconsumed only once the decoder has failed, every garbage event
//   counts at least one byte, and buffered() never exceeds header_size + max_message_size;
// - a frame made by encode_frame from a command and payload taken from the input decodes back
//   exactly (or as `oversized` when the payload is above the limit);
// - reading large payloads through direct_buffer()/commit_direct(), as a peer does, gives
//   the same events as next() alone: on the input itself, and on a frame of 64 KiB or more
//   built from it (intact, and with one payload byte flipped).
// All of this runs once with the default limit and once with a limit of 4096 bytes.
// A failed check prints what differed and aborts, which libFuzzer reports as a crash.

#include <p2p/codec.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "detail/text.hpp"

namespace {

using bytes = std::span<const std::uint8_t>;
using kind = p2p::decode_event::kind;

/// Small limit, so that `oversized` is reachable with small inputs.
constexpr std::size_t small_max_message_size = 4096;

/// One decoder event, with garbage runs merged.
struct event {
  kind what;
  std::string command;
  std::vector<std::uint8_t> payload;
  std::uint64_t count;

  friend bool operator==(const event&, const event&) = default;
};

/// What a whole stream decoded to.
struct outcome {
  std::vector<event> events;
  bool failed = false;
  std::size_t buffered = 0;
  std::uint64_t garbage_total = 0;
};

const char* kind_name(kind k) {
  switch (k) {
    case kind::message: return "message";
    case kind::garbage: return "garbage";
    case kind::bad_checksum: return "bad_checksum";
    case kind::bad_command: return "bad_command";
    case kind::oversized: return "oversized";
  }
  return "?";
}

void print(const char* name, const outcome& o) {
  std::fprintf(stderr, "%s: failed=%d buffered=%zu garbage_total=%llu, %zu events\n", name,
               o.failed, o.buffered, static_cast<unsigned long long>(o.garbage_total),
               o.events.size());
  for (const event& e : o.events)
    std::fprintf(stderr, "  %s command='%s' count=%llu payload=%zu bytes\n", kind_name(e.what),
                 p2p::detail::escape(e.command).c_str(), static_cast<unsigned long long>(e.count),
                 e.payload.size());
}

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_decoder: %s\n", what);
  std::abort();
}

void check(bool ok, const char* what) {
  if (!ok) fail(what);
}

void expect_same(const outcome& a, const char* a_name, const outcome& b, const char* b_name,
                 const char* what) {
  if (a.events == b.events && a.failed == b.failed && a.buffered == b.buffered &&
      a.garbage_total == b.garbage_total)
    return;
  print(a_name, a);
  print(b_name, b);
  fail(what);
}

void record(outcome& out, const p2p::decode_event& ev) {
  if (ev.what == kind::garbage) {
    check(ev.count > 0, "a garbage event counts no bytes");
    if (!out.events.empty() && out.events.back().what == kind::garbage) {
      out.events.back().count += ev.count;
      return;
    }
  }
  event e{ev.what, ev.msg.command, {}, ev.count};
  if (ev.what == kind::message) e.payload.assign(ev.msg.payload.begin(), ev.msg.payload.end());
  out.events.push_back(std::move(e));
}

/// Chunk sizes for a split, from a seed: 0 gives one byte at a time; others give pseudo-random
/// sizes up to a bound the seed picks, with an occasional empty chunk.
class splitter {
 public:
  explicit splitter(std::uint8_t seed)
      : one_byte_(seed == 0), bound_(1 + (seed & 0x3f) * ((seed & 0x40) ? 8 : 1)),
        state_(0x9E3779B9u * (seed + 1u)) {}

  std::size_t next() {
    if (one_byte_) return 1;
    state_ ^= state_ << 13;
    state_ ^= state_ >> 17;
    state_ ^= state_ << 5;
    if (state_ % 16 == 0) return 0;
    return 1 + (state_ >> 4) % bound_;
  }

 private:
  bool one_byte_;
  std::uint32_t bound_;
  std::uint32_t state_;
};

/// Decodes `stream` fed in chunks (all of it at once when `split` is null). With `direct`,
/// bytes go into direct_buffer() whenever the decoder offers one, as a peer reads them.
outcome decode(bytes stream, std::uint32_t magic, std::size_t max_size, splitter* split,
               bool direct = false) {
  p2p::decoder dec(magic, max_size);
  outcome out;
  std::size_t pos = 0;
  do {
    const std::size_t n = split ? std::min(split->next(), stream.size() - pos)
                                : stream.size() - pos;
    bytes input = stream.subspan(pos, n);
    pos += n;
    for (;;) {
      if (direct && !input.empty()) {
        if (const auto into = dec.direct_buffer(); !into.empty()) {
          const std::size_t k = std::min(into.size(), input.size());
          std::memcpy(into.data(), input.data(), k);
          input = input.subspan(k);
          if (auto ev = dec.commit_direct(k)) record(out, *ev);
          check(dec.buffered() <= p2p::header_size + max_size,
                "buffered() exceeds header_size + max_message_size (direct)");
          continue;
        }
      }
      auto ev = dec.next(input);
      check(dec.buffered() <= p2p::header_size + max_size,
            "buffered() exceeds header_size + max_message_size");
      if (!ev) break;
      record(out, *ev);
      check(ev->what != kind::oversized || dec.failed(), "oversized without failed()");
    }
    check(input.empty() || dec.failed(), "next() returned nullopt with input left over");
  } while (pos < stream.size());
  out.failed = dec.failed();
  out.buffered = dec.buffered();
  out.garbage_total = dec.garbage_total();
  return out;
}

std::uint32_t get_le32(const std::uint8_t* in) {
  return std::uint32_t{in[0]} | std::uint32_t{in[1]} << 8 | std::uint32_t{in[2]} << 16 |
         std::uint32_t{in[3]} << 24;
}

/// The decoder's contract, written the slow and obvious way: at each offset, either a whole
/// magic starts a frame, or the tail is a prefix of the magic (held), or one byte is garbage.
outcome reference(bytes s, std::uint32_t magic, std::size_t max_size) {
  std::uint8_t m[4];
  for (int i = 0; i < 4; ++i) m[i] = static_cast<std::uint8_t>(magic >> (8 * i));
  outcome out;
  std::uint64_t garbage = 0;
  auto flush = [&] {
    if (garbage == 0) return;
    out.events.push_back({kind::garbage, {}, {}, garbage});
    out.garbage_total += garbage;
    garbage = 0;
  };
  std::size_t pos = 0;
  while (pos < s.size()) {
    const std::size_t rem = s.size() - pos;
    const std::uint8_t* p = s.data() + pos;
    if (rem < 4 && std::memcmp(p, m, rem) == 0) {
      out.buffered = rem;
      break;
    }
    if (rem < 4 || std::memcmp(p, m, 4) != 0) {
      ++garbage;
      ++pos;
      continue;
    }
    flush();
    if (rem < p2p::header_size) {
      out.buffered = rem;
      break;
    }
    const std::uint8_t* field = p + 4;
    std::size_t text = 0;
    while (text < p2p::command_size && field[text] != 0 && p2p::detail::is_printable(field[text]))
      ++text;
    bool command_ok = text > 0 && (text == p2p::command_size || field[text] == 0);
    for (std::size_t i = text; command_ok && i < p2p::command_size; ++i)
      command_ok = field[i] == 0;
    std::size_t end = p2p::command_size;
    while (end > 0 && field[end - 1] == 0) --end;
    const std::string_view field_text(reinterpret_cast<const char*>(field), end);
    std::string command = command_ok ? std::string(field_text) : p2p::detail::escape(field_text);
    const std::uint32_t length = get_le32(p + 16);
    if (length > max_size) {
      out.events.push_back({kind::oversized, std::move(command), {}, length});
      out.failed = true;
      break;
    }
    if (rem - p2p::header_size < length) {
      out.buffered = p2p::header_size + (command_ok ? rem - p2p::header_size : 0);
      break;
    }
    const bytes payload(p + p2p::header_size, length);
    event e{kind::bad_command, std::move(command), {}, length};
    if (command_ok) {
      const auto sum = p2p::checksum(payload);
      if (std::equal(sum.begin(), sum.end(), p + 20)) {
        e.what = kind::message;
        e.payload.assign(payload.begin(), payload.end());
      } else {
        e.what = kind::bad_checksum;
      }
    }
    out.events.push_back(std::move(e));
    pos += p2p::header_size + length;
  }
  flush();
  return out;
}

/// Magic numbers to decode with: Bitcoin's, and some with repeated bytes, where a failed
/// partial match must fall back to a shorter prefix rather than start over.
constexpr std::uint32_t magics[] = {
    p2p::bitcoin_magic,
    0xF9BEF9F9,  // bytes F9 F9 BE F9
    0xF9F9F9F9,
    0xBEF9BEF9,  // bytes F9 BE F9 BE
};

void check_stream(bytes stream, std::uint32_t magic, std::size_t max_size, std::uint8_t seed) {
  const outcome whole = decode(stream, magic, max_size, nullptr);
  splitter split(seed);
  const outcome pieces = decode(stream, magic, max_size, &split);
  expect_same(whole, "one shot", pieces, "split", "split decode differs from one-shot decode");
  splitter split_again(seed);
  const outcome direct = decode(stream, magic, max_size, &split_again, true);
  expect_same(whole, "one shot", direct, "direct", "direct reads differ from one-shot decode");
  // A message's count is not part of the contract; the reference leaves it as decoded.
  outcome model = reference(stream, magic, max_size);
  for (std::size_t i = 0; i < model.events.size() && i < whole.events.size(); ++i)
    if (model.events[i].what == kind::message && whole.events[i].what == kind::message)
      model.events[i].count = whole.events[i].count;
  expect_same(whole, "decoder", model, "reference", "decoder differs from the reference");
}

void check_round_trip(bytes stream, std::uint32_t magic, std::size_t max_size,
                      std::uint8_t seed, std::uint8_t config) {
  const std::size_t command_length = 1 + (config >> 2) % p2p::command_size;
  std::string command(command_length, 'a');
  for (std::size_t i = 0; i < command_length && i < stream.size(); ++i)
    command[i] = static_cast<char>(0x20 + stream[i] % 95);
  const bytes payload = stream.subspan(std::min(command_length, stream.size()));
  const p2p::shared_bytes frame = p2p::encode_frame(magic, command, payload);
  check(frame.size() == p2p::header_size + payload.size(), "encode_frame size");

  splitter split(seed);
  const outcome got = decode(frame.span(), magic, max_size, &split);
  outcome want;
  if (payload.size() > max_size) {
    want.events.push_back({kind::oversized, command, {}, payload.size()});
    want.failed = true;
  } else {
    want.events.push_back(
        {kind::message, command, {payload.begin(), payload.end()}, payload.size()});
  }
  if (!got.events.empty() && got.events[0].what == kind::message)
    want.events[0].count = got.events[0].count;
  expect_same(got, "decoded", want, "encoded", "encode_frame does not round-trip");
}

/// A frame of at least 64 KiB (the direct-read threshold) made from the input, decoded with
/// direct reads in chunks; then the same frame with one payload byte flipped.
void check_large_frame(bytes stream, std::uint32_t magic, std::uint8_t seed) {
  if (stream.empty()) return;
  const std::size_t size = 65'536 + std::size_t{seed} * 97;
  std::vector<std::uint8_t> payload(size);
  for (std::size_t i = 0; i < size; ++i) payload[i] = stream[i % stream.size()];
  const p2p::shared_bytes frame = p2p::encode_frame(magic, "big", payload);
  std::vector<std::uint8_t> bytes_of(frame.begin(), frame.end());
  for (bool corrupt : {false, true}) {
    if (corrupt) bytes_of[p2p::header_size + (std::size_t{seed} * 131) % size] ^= 0x5a;
    splitter split(seed | 0x40);  // chunks of up to 512 bytes, so reads go direct
    const outcome got = decode(bytes_of, magic, p2p::default_max_message_size, &split, true);
    const outcome whole = decode(bytes_of, magic, p2p::default_max_message_size, nullptr);
    expect_same(whole, "one shot", got, "direct", "a large frame read directly differs");
    check(got.events.size() == 1 &&
              got.events[0].what == (corrupt ? kind::bad_checksum : kind::message),
          "a large frame read directly is not one message (or one bad_checksum)");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::uint8_t seed = data[0];
  const std::uint8_t config = data[1];
  const bytes stream(data + 2, size - 2);
  const std::uint32_t magic = magics[config % std::size(magics)];
  for (std::size_t max_size : {p2p::default_max_message_size, small_max_message_size}) {
    check_stream(stream, magic, max_size, seed);
    check_round_trip(stream, magic, max_size, seed, config);
  }
  if (config & 0x80) check_large_frame(stream, magic, seed);
  return 0;
}
