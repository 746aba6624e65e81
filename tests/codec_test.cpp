#include <p2p/codec.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using bytes = std::vector<std::uint8_t>;
using kind = p2p::decode_event::kind;

std::string to_hex(std::span<const std::uint8_t> b) {
  return p2p::shared_bytes::copy(b).hex();
}

bytes frame(std::string_view command, const bytes& payload,
            std::uint32_t magic = p2p::bitcoin_magic) {
  auto f = p2p::encode_frame(magic, command, payload);
  return {f.begin(), f.end()};
}

bytes payload_of(std::size_t n) {
  bytes p(n);
  for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<std::uint8_t>(i * 7 + 3);
  return p;
}

void append(bytes& to, const bytes& more) {
  to.insert(to.end(), more.begin(), more.end());
}

// A readable summary of one event, so whole sequences compare (and print) at once.
std::string describe(const p2p::decode_event& ev) {
  switch (ev.what) {
    case kind::message:
      return "message " + ev.msg.command + " " + ev.msg.payload.hex();
    case kind::garbage:
      return "garbage " + std::to_string(ev.count);
    case kind::bad_checksum:
      return "bad_checksum " + ev.msg.command + " " + std::to_string(ev.count);
    case kind::bad_command:
      return "bad_command " + ev.msg.command + " " + std::to_string(ev.count);
    case kind::oversized:
      return "oversized " + std::to_string(ev.count);
  }
  return "?";
}

// Runs the decoder until it needs more input; the whole chunk must be consumed.
void drain(p2p::decoder& d, std::span<const std::uint8_t> chunk, std::vector<std::string>& out) {
  while (auto ev = d.next(chunk)) out.push_back(describe(*ev));
  REQUIRE(chunk.empty());
}

std::vector<std::string> decode_all(p2p::decoder& d, std::span<const std::uint8_t> input) {
  std::vector<std::string> out;
  drain(d, input, out);
  return out;
}

// Garbage may be reported in several pieces when the input is split inside it; merge them so
// sequences compare by what was found, not by where the chunks ended.
std::vector<std::string> merge_garbage(const std::vector<std::string>& events) {
  std::vector<std::string> out;
  std::size_t pending = 0;
  for (const auto& e : events) {
    if (e.starts_with("garbage ")) {
      pending += std::stoul(e.substr(8));
      continue;
    }
    if (pending) out.push_back("garbage " + std::to_string(std::exchange(pending, 0)));
    out.push_back(e);
  }
  if (pending) out.push_back("garbage " + std::to_string(pending));
  return out;
}

// A header with an arbitrary 12-byte command field and checksum, for malformed frames.
bytes raw_frame(std::string_view command_field, const bytes& payload,
                std::array<std::uint8_t, 4> sum, std::uint32_t length) {
  bytes f = {0xf9, 0xbe, 0xb4, 0xd9};
  REQUIRE(command_field.size() == p2p::command_size);
  f.insert(f.end(), command_field.begin(), command_field.end());
  for (int i = 0; i < 4; ++i) f.push_back(static_cast<std::uint8_t>(length >> (8 * i)));
  f.insert(f.end(), sum.begin(), sum.end());
  append(f, payload);
  return f;
}

}  // namespace

TEST_CASE("sha256d: matches known digests", "[codec]") {
  CHECK(to_hex(p2p::sha256d({})) ==
        "5df6e0e2761359d30a8275058e299fcc0381534545f55cf43e41983f5d4c9456");
  CHECK(to_hex(p2p::sha256d(p2p::as_bytes("hello"))) ==
        "9595c9df90075148eb06860365df33584b75bff782a510c6cd4883a419833d50");
}

TEST_CASE("sha256d: each thread gets its own context", "[codec]") {
  std::vector<std::string> results(4);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < results.size(); ++i)
    threads.emplace_back([&results, i] {
      for (int n = 0; n < 100; ++n) results[i] = to_hex(p2p::sha256d(p2p::as_bytes("hello")));
    });
  for (auto& t : threads) t.join();
  for (const auto& r : results)
    CHECK(r == "9595c9df90075148eb06860365df33584b75bff782a510c6cd4883a419833d50");
}

TEST_CASE("checksum: empty payload is 5d f6 e0 e2", "[codec]") {
  const auto sum = p2p::checksum({});
  CHECK(sum == std::array<std::uint8_t, 4>{0x5d, 0xf6, 0xe0, 0xe2});
  CHECK(to_hex(p2p::checksum(p2p::as_bytes("hello"))) == "9595c9df");
}

SCENARIO("encode: frames are byte-compatible with Bitcoin P2P v1", "[codec]") {
  GIVEN("the mainnet magic") {
    WHEN("a verack (empty payload) is encoded") {
      const auto f = p2p::encode_frame(p2p::bitcoin_magic, "verack", {});
      THEN("it is exactly Bitcoin's verack frame") {
        CHECK(f.hex() ==
              "f9beb4d9"
              "76657261636b000000000000"
              "00000000"
              "5df6e0e2");
        CHECK(f.size() == p2p::header_size);
      }
    }
    WHEN("a ping with an 8-byte nonce is encoded") {
      const bytes nonce = {1, 2, 3, 4, 5, 6, 7, 8};
      const auto f = p2p::encode_frame(p2p::bitcoin_magic, "ping", nonce);
      THEN("length is little-endian, checksum is sha256d's first 4 bytes, payload follows") {
        CHECK(f.hex() ==
              "f9beb4d970696e67000000000000000008000000"
              "2502fa94"
              "0102030405060708");
      }
    }
    WHEN("a command of exactly 12 characters is encoded") {
      const auto f = p2p::encode_frame(p2p::bitcoin_magic, "abcdefghijkl", {});
      THEN("it fills the field without padding and decodes back") {
        CHECK(f.view().substr(4, 12) == "abcdefghijkl");
        p2p::decoder d;
        CHECK(decode_all(d, f.span()) == std::vector<std::string>{"message abcdefghijkl "});
      }
    }
  }
  GIVEN("another network's magic") {
    THEN("the magic is written little-endian") {
      const auto f = p2p::encode_frame(0x0709110B, "verack", {});
      CHECK(f.hex().substr(0, 8) == "0b110907");
    }
  }
}

SCENARIO("encode: invalid commands are rejected at the call site", "[codec]") {
  p2p::shared_bytes out;
  WHEN("the command is 13 bytes") {
    THEN("it throws naming the command and its length, and produces nothing") {
      REQUIRE_THROWS_AS(out = p2p::encode_frame(p2p::bitcoin_magic, "thirteenchars", {}),
                        std::invalid_argument);
      REQUIRE_THROWS_WITH(out = p2p::encode_frame(p2p::bitcoin_magic, "thirteenchars", {}),
                          Catch::Contains("command 'thirteenchars' is 13 bytes; limit 12"));
      CHECK(out.empty());
    }
  }
  WHEN("the command holds a control byte") {
    THEN("it throws showing the byte escaped, and produces nothing") {
      REQUIRE_THROWS_WITH(out = p2p::encode_frame(p2p::bitcoin_magic,
                                                  "ver\x01"
                                                  "ack",
                                                  {}),
                          Catch::Contains("command 'ver\\x01ack'") &&
                              Catch::Contains("non-printable byte 0x01 at offset 3"));
      CHECK(out.empty());
    }
  }
  WHEN("the command is empty or holds a NUL or a byte above 0x7e") {
    THEN("check_command rejects each") {
      REQUIRE_THROWS_WITH(p2p::check_command(""), Catch::Contains("command '' is empty"));
      REQUIRE_THROWS_WITH(p2p::check_command(std::string_view("ver\0ack", 7)),
                          Catch::Contains("'ver\\x00ack'"));
      REQUIRE_THROWS_WITH(p2p::check_command("caf\xc3\xa9"), Catch::Contains("0xc3 at offset 3"));
      REQUIRE_THROWS_WITH(p2p::check_command("verylongcommand1"),
                          Catch::Contains("'verylongcommand1' is 16 bytes; limit 12"));
    }
  }
  WHEN("the command is 1..12 printable characters") {
    THEN("check_command accepts it") {
      CHECK_NOTHROW(p2p::check_command("a"));
      CHECK_NOTHROW(p2p::check_command("sendcmpct"));
      CHECK_NOTHROW(p2p::check_command("with space~"));
    }
  }
}

TEST_CASE("decoder: decodes a stream of frames in one chunk", "[codec]") {
  bytes stream;
  append(stream, frame("verack", {}));
  append(stream, frame("ping", payload_of(8)));
  p2p::decoder d;
  const auto events = decode_all(d, stream);
  CHECK(events ==
        std::vector<std::string>{"message verack ", "message ping " + to_hex(payload_of(8))});
  CHECK(d.buffered() == 0);
  CHECK(d.garbage_total() == 0);
  CHECK_FALSE(d.failed());
}

TEST_CASE("decoder: the delivered payload holds the frame's bytes", "[codec]") {
  const bytes payload = payload_of(31);
  const bytes f = frame("tx", payload);
  p2p::decoder d;
  std::span<const std::uint8_t> in(f);
  auto ev = d.next(in);
  REQUIRE(ev);
  CHECK(ev->what == kind::message);
  CHECK(ev->msg.command == "tx");
  CHECK(ev->msg.payload == p2p::shared_bytes(payload));
  CHECK(in.empty());
  CHECK_FALSE(d.next(in));
}

namespace {

// Frames of payload sizes 0, 1, 31 and 1000, with garbage (holding partial magics) between
// two of them and a corrupt frame among them: every path of the decoder in one stream.
bytes mixed_stream() {
  bytes s;
  append(s, frame("verack", {}));
  append(s, frame("ping", payload_of(1)));
  append(s, {0x00, 0xf9, 0xbe, 0x01, 0xf9});
  append(s, frame("tx", payload_of(31)));
  bytes corrupt = frame("inv", payload_of(5));
  corrupt.back() ^= 0xff;
  append(s, corrupt);
  append(s, frame("block", payload_of(1000)));
  return s;
}

const std::vector<std::string>& mixed_expected() {
  static const std::vector<std::string> e = {
      "message verack ",    "message ping " + to_hex(payload_of(1)),
      "garbage 5",          "message tx " + to_hex(payload_of(31)),
      "bad_checksum inv 5", "message block " + to_hex(payload_of(1000)),
  };
  return e;
}

}  // namespace

SCENARIO("decoder: every split point decodes like one chunk", "[codec]") {
  const bytes stream = mixed_stream();
  GIVEN("the whole stream in one chunk") {
    p2p::decoder d;
    THEN("it yields the expected events") {
      CHECK(decode_all(d, stream) == mixed_expected());
    }
  }
  GIVEN("the stream split in two at one byte boundary") {
    const std::size_t split = GENERATE_COPY(range(std::size_t{0}, stream.size() + 1));
    CAPTURE(split);
    p2p::decoder d;
    std::vector<std::string> events;
    const std::span<const std::uint8_t> all(stream);
    drain(d, all.first(split), events);
    // Whatever the split, only an incomplete frame's bytes stay held.
    CHECK(d.buffered() <= p2p::header_size + 1000);
    drain(d, all.subspan(split), events);
    THEN("the events are the same") {
      CHECK(merge_garbage(events) == mixed_expected());
      CHECK(d.buffered() == 0);
      CHECK(d.garbage_total() == 5);
    }
  }
  GIVEN("the stream fed one byte at a time") {
    p2p::decoder d;
    std::vector<std::string> events;
    for (std::size_t i = 0; i < stream.size(); ++i)
      drain(d, std::span<const std::uint8_t>(stream).subspan(i, 1), events);
    THEN("the events are the same") {
      CHECK(merge_garbage(events) == mixed_expected());
      CHECK(d.buffered() == 0);
    }
  }
  GIVEN("the stream fed in random chunk sizes") {
    std::mt19937 rng(GENERATE(1u, 2u, 3u, 4u, 5u));
    p2p::decoder d;
    std::vector<std::string> events;
    std::span<const std::uint8_t> rest(stream);
    while (!rest.empty()) {
      const std::size_t n = std::min<std::size_t>(rest.size(), rng() % 64 + 1);
      drain(d, rest.first(n), events);
      rest = rest.subspan(n);
    }
    THEN("the events are the same") {
      CHECK(merge_garbage(events) == mixed_expected());
    }
  }
}

SCENARIO("decoder: skips garbage before magic and counts it", "[codec]") {
  const bytes good = frame("verack", {});
  GIVEN("7 bytes of garbage before a frame") {
    bytes s = {'g', 'a', 'r', 'b', 'a', 'g', 'e'};
    append(s, good);
    p2p::decoder d;
    THEN("a garbage event of 7 comes right before the frame's event") {
      CHECK(decode_all(d, s) == std::vector<std::string>{"garbage 7", "message verack "});
      CHECK(d.garbage_total() == 7);
    }
  }
  GIVEN("garbage holding partial magics: F9 BE then junk, F9 F9 BE B4 then junk") {
    bytes s = {0xf9, 0xbe, 0x00, 0xf9, 0xf9, 0xbe, 0xb4, 0x11, 0xf9};
    append(s, good);
    WHEN("fed in one chunk") {
      p2p::decoder d;
      THEN("all 9 bytes are garbage and the frame decodes") {
        CHECK(decode_all(d, s) == std::vector<std::string>{"garbage 9", "message verack "});
        CHECK(d.garbage_total() == 9);
      }
    }
    WHEN("fed one byte at a time") {
      p2p::decoder d;
      std::vector<std::string> events;
      for (std::uint8_t b : s) drain(d, std::span<const std::uint8_t>(&b, 1), events);
      THEN("the total is still exactly 9") {
        CHECK(merge_garbage(events) == std::vector<std::string>{"garbage 9", "message verack "});
        CHECK(d.garbage_total() == 9);
      }
    }
  }
  GIVEN("garbage and no frame") {
    const bytes s = {'x', 'y', 'z', 0xf9, 0xbe};
    p2p::decoder d;
    std::span<const std::uint8_t> in(s);
    THEN("the garbage is reported before the input runs out; a partial magic stays held") {
      auto ev = d.next(in);
      REQUIRE(ev);
      CHECK(describe(*ev) == "garbage 3");
      CHECK(in.empty());
      CHECK(d.buffered() == 2);
      CHECK_FALSE(d.next(in));
    }
    AND_WHEN("the held partial magic turns out to be garbage too") {
      std::span<const std::uint8_t> in2(s);
      std::vector<std::string> events;
      drain(d, in2, events);
      const bytes junk = {0x42};
      drain(d, junk, events);
      THEN("it is counted: 3 + 2 + 1") {
        CHECK(events == std::vector<std::string>{"garbage 3", "garbage 3"});
        CHECK(d.garbage_total() == 6);
        CHECK(d.buffered() == 0);
      }
    }
  }
  GIVEN("a magic whose bytes repeat (AA BB AA CC), and AA BB before its frame") {
    // The decoder holds AA BB AA, sees BB where CC belongs, and must find the magic that
    // starts inside what it held.
    const std::uint32_t magic = 0xCCAABBAA;
    bytes s = {0xaa, 0xbb};
    append(s, frame("ping", payload_of(2), magic));
    p2p::decoder d(magic);
    THEN("a mismatch re-checks the held bytes and only 2 bytes are garbage") {
      CHECK(decode_all(d, s) ==
            std::vector<std::string>{"garbage 2", "message ping " + to_hex(payload_of(2))});
    }
    AND_THEN("the same holds fed one byte at a time") {
      p2p::decoder d1(magic);
      std::vector<std::string> events;
      for (std::uint8_t b : s) drain(d1, std::span<const std::uint8_t>(&b, 1), events);
      CHECK(merge_garbage(events) ==
            std::vector<std::string>{"garbage 2", "message ping " + to_hex(payload_of(2))});
    }
  }
  GIVEN("a magic AA AA BB CC and the bytes AA AA AA BB CC") {
    const std::uint32_t magic = 0xCCBBAAAA;
    bytes s = {0xaa};
    append(s, frame("verack", {}, magic));
    p2p::decoder d(magic);
    THEN("exactly one byte is garbage") {
      CHECK(decode_all(d, s) == std::vector<std::string>{"garbage 1", "message verack "});
    }
  }
}

SCENARIO("decoder: a different magic is garbage", "[codec]") {
  GIVEN("a testnet frame followed by a mainnet frame, on a mainnet decoder") {
    bytes s = frame("verack", {}, 0x0709110B);
    append(s, frame("ping", payload_of(8)));
    p2p::decoder d;
    THEN("the testnet frame's 24 bytes are skipped and the mainnet frame decodes") {
      CHECK(decode_all(d, s) ==
            std::vector<std::string>{"garbage 24", "message ping " + to_hex(payload_of(8))});
    }
  }
  GIVEN("a decoder for another magic") {
    p2p::decoder d(0x0709110B);
    THEN("its own frames decode and mainnet frames are garbage") {
      bytes s = frame("verack", {});
      append(s, frame("verack", {}, 0x0709110B));
      CHECK(decode_all(d, s) == std::vector<std::string>{"garbage 24", "message verack "});
    }
  }
}

SCENARIO("decoder: an oversized declared length fails the stream", "[codec]") {
  GIVEN("a header declaring 0xFFFFFFFF bytes and no payload") {
    const bytes s = raw_frame(std::string("block\0\0\0\0\0\0\0", 12), {}, {1, 2, 3, 4}, 0xFFFFFFFF);
    p2p::decoder d;
    std::span<const std::uint8_t> in(s);
    auto ev = d.next(in);
    THEN("it yields oversized with the declared count, holds nothing and is failed") {
      REQUIRE(ev);
      CHECK(ev->what == kind::oversized);
      CHECK(ev->count == 0xFFFFFFFFu);
      CHECK(ev->msg.command == "block");
      CHECK(d.buffered() <= p2p::header_size);
      CHECK(d.failed());
    }
    AND_WHEN("more bytes arrive") {
      const bytes good = frame("verack", {});
      std::span<const std::uint8_t> more(good);
      THEN("nothing more is consumed or yielded") {
        CHECK_FALSE(d.next(more));
        CHECK(more.size() == good.size());
      }
    }
  }
  GIVEN("a limit of 1000 bytes") {
    p2p::decoder d(p2p::bitcoin_magic, 1000);
    THEN("1000 is accepted") {
      CHECK(decode_all(d, frame("b", payload_of(1000))) ==
            std::vector<std::string>{"message b " + to_hex(payload_of(1000))});
    }
    THEN("1001 is oversized, decided from the header alone") {
      const bytes f = frame("b", payload_of(1001));
      std::span<const std::uint8_t> in = std::span<const std::uint8_t>(f).first(p2p::header_size);
      auto ev = d.next(in);
      REQUIRE(ev);
      CHECK(describe(*ev) == "oversized 1001");
      CHECK(d.failed());
    }
  }
  GIVEN("a header with a bad command field that also declares too much") {
    const bytes s = raw_frame(std::string(12, '\x01'), {}, {0, 0, 0, 0}, 5'000'000);
    p2p::decoder d;
    THEN("the length wins: it is oversized") {
      std::span<const std::uint8_t> in(s);
      auto ev = d.next(in);
      REQUIRE(ev);
      CHECK(ev->what == kind::oversized);
      CHECK(d.failed());
    }
  }
}

SCENARIO("decoder: memory follows the bytes that arrived, not the declared length", "[codec]") {
  GIVEN("a valid 200000-byte frame fed in 1000-byte chunks") {
    const bytes payload = payload_of(200'000);
    const bytes f = frame("block", payload);
    p2p::decoder d;
    std::vector<std::string> events;
    std::span<const std::uint8_t> rest(f);
    drain(d, rest.first(p2p::header_size + 10), events);
    THEN("after the header and 10 bytes, 34 bytes are held") {
      CHECK(d.buffered() == 34);
    }
    rest = rest.subspan(p2p::header_size + 10);
    while (!rest.empty()) {
      const std::size_t n = std::min<std::size_t>(rest.size(), 1000);
      drain(d, rest.first(n), events);
      rest = rest.subspan(n);
    }
    THEN("it decodes intact past the initial reservation") {
      REQUIRE(events.size() == 1);
      CHECK(events[0] == "message block " + to_hex(payload));
      CHECK(d.buffered() == 0);
    }
  }
}

SCENARIO("decoder: a large payload can be read straight into its buffer", "[codec]") {
  const bytes payload = payload_of(300'000);
  const bytes f = frame("block", payload);
  p2p::decoder d;
  std::span<const std::uint8_t> head(f.data(), p2p::header_size + 1000);
  CHECK_FALSE(d.next(head).has_value());
  THEN("the direct buffer is the rest of the payload, and it completes the frame") {
    auto direct = d.direct_buffer();
    REQUIRE(direct.size() == payload.size() - 1000);
    std::copy(f.begin() + p2p::header_size + 1000, f.end(), direct.begin());
    auto ev = d.commit_direct(direct.size() - 5);
    CHECK_FALSE(ev.has_value());  // 5 bytes short; under the threshold now
    CHECK(d.direct_buffer().empty());
    ev = d.commit_direct(5);
    REQUIRE(ev.has_value());
    CHECK(describe(*ev) == "message block " + to_hex(payload));
    CHECK(d.buffered() == 0);
    CHECK(d.direct_buffer().empty());
  }
  THEN("a corrupted payload read directly is a bad checksum") {
    auto direct = d.direct_buffer();
    std::copy(f.begin() + p2p::header_size + 1000, f.end(), direct.begin());
    direct[10] ^= 0x01;
    auto ev = d.commit_direct(direct.size());
    REQUIRE(ev.has_value());
    CHECK(ev->what == kind::bad_checksum);
    CHECK(ev->count == payload.size());
  }
  THEN("small frames never offer a direct buffer") {
    p2p::decoder small;
    const bytes g = frame("ping", payload_of(1000));
    std::span<const std::uint8_t> part(g.data(), p2p::header_size + 10);
    CHECK_FALSE(small.next(part).has_value());
    CHECK(small.direct_buffer().empty());
  }
}

SCENARIO("decoder: a bad checksum drops the frame and the next one decodes", "[codec]") {
  GIVEN("a ping whose payload was altered, then a good pong") {
    bytes bad = frame("ping", payload_of(8));
    bad[p2p::header_size + 3] ^= 0x01;
    bytes s = bad;
    append(s, frame("pong", payload_of(8)));
    p2p::decoder d;
    std::span<const std::uint8_t> in(s);
    auto first = d.next(in);
    THEN("the ping is reported as bad_checksum without a payload, and pong is delivered") {
      REQUIRE(first);
      CHECK(first->what == kind::bad_checksum);
      CHECK(first->msg.command == "ping");
      CHECK(first->count == 8);
      CHECK(first->msg.payload.empty());
      auto second = d.next(in);
      REQUIRE(second);
      CHECK(describe(*second) == "message pong " + to_hex(payload_of(8)));
      CHECK_FALSE(d.failed());
      CHECK(d.garbage_total() == 0);
    }
  }
}

SCENARIO("decoder: a bad command field drops the frame and the next one decodes", "[codec]") {
  const bytes payload = payload_of(6);
  const auto sum = p2p::checksum(payload);
  const bytes next = frame("verack", {});
  auto run = [&](std::string field) {
    bytes s = raw_frame(field, payload, sum, 6);
    append(s, next);
    p2p::decoder d;
    auto events = decode_all(d, s);
    CHECK(d.garbage_total() == 0);
    return events;
  };
  GIVEN("a control byte in the command") {
    THEN("the frame and its payload are dropped as bad_command, shown escaped") {
      CHECK(run(std::string("ve\x01rack\0\0\0\0\0", 12)) ==
            std::vector<std::string>{"bad_command ve\\x01rack 6", "message verack "});
    }
  }
  GIVEN("a non-NUL byte after the NUL padding") {
    THEN("it is bad_command") {
      CHECK(run(std::string("ver\0ack\0\0\0\0\0", 12)) ==
            std::vector<std::string>{"bad_command ver\\x00ack 6", "message verack "});
    }
  }
  GIVEN("an all-NUL (empty) command") {
    THEN("it is bad_command") {
      CHECK(run(std::string(12, '\0')) ==
            std::vector<std::string>{"bad_command  6", "message verack "});
    }
  }
  GIVEN("a byte above 0x7e") {
    THEN("it is bad_command") {
      CHECK(run(std::string("caf\xe9\0\0\0\0\0\0\0\0", 12)) ==
            std::vector<std::string>{"bad_command caf\\xe9 6", "message verack "});
    }
  }
  GIVEN("a bad command split across chunks") {
    bytes s = raw_frame(std::string("\x7f", 1) + std::string(11, '\0'), payload, sum, 6);
    append(s, next);
    p2p::decoder d;
    std::vector<std::string> events;
    for (std::uint8_t b : s) drain(d, std::span<const std::uint8_t>(&b, 1), events);
    THEN("its payload is skipped without being held") {
      CHECK(events == std::vector<std::string>{"bad_command \\x7f 6", "message verack "});
    }
  }
}
