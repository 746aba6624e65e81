#include <p2p/message.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

TEST_CASE("shared_bytes: an empty buffer", "[message]") {
  const p2p::shared_bytes b;
  CHECK(b.empty());
  CHECK(b.size() == 0);
  CHECK(b.data() == nullptr);
  CHECK(b.begin() == b.end());
  CHECK(b.view().empty());
  CHECK(b.hex().empty());
  CHECK(b == p2p::shared_bytes::copy(std::string_view()));
}

TEST_CASE("shared_bytes: takes a vector without copying its bytes", "[message]") {
  std::vector<std::uint8_t> v = {0x00, 0x01, 0xab, 0xff};
  const std::uint8_t* before = v.data();
  const p2p::shared_bytes b(std::move(v));
  CHECK(b.data() == before);
  CHECK(b.size() == 4);
  CHECK(b.hex() == "0001abff");
  CHECK(std::vector<std::uint8_t>(b.begin(), b.end()) ==
        std::vector<std::uint8_t>{0x00, 0x01, 0xab, 0xff});
}

TEST_CASE("shared_bytes: copies share the bytes", "[message]") {
  const auto a = p2p::shared_bytes::copy("payload");
  const p2p::shared_bytes b = a;  // NOLINT(performance-unnecessary-copy-initialization)
  CHECK(b.data() == a.data());
  CHECK(b.view() == "payload");
  auto shared = std::make_shared<const std::vector<std::uint8_t>>(3, std::uint8_t{7});
  const p2p::shared_bytes c(shared);
  CHECK(c.data() == shared->data());
  CHECK(c.hex() == "070707");
}

TEST_CASE("shared_bytes: copy() makes an independent buffer", "[message]") {
  std::vector<std::uint8_t> source = {1, 2, 3};
  const auto b = p2p::shared_bytes::copy(std::span<const std::uint8_t>(source));
  source[0] = 9;
  CHECK(b.data() != source.data());
  CHECK(b.hex() == "010203");
}

TEST_CASE("shared_bytes: make() hands the new bytes to fill once", "[message]") {
  int calls = 0;
  const auto b = p2p::shared_bytes::make(3, [&](std::span<std::uint8_t> out) {
    ++calls;
    REQUIRE(out.size() == 3);
    out[0] = 0xde;
    out[1] = 0xad;
    out[2] = 0x01;
  });
  CHECK(calls == 1);
  CHECK(b.hex() == "dead01");
  const auto empty = p2p::shared_bytes::make(0, [&](std::span<std::uint8_t>) { ++calls; });
  CHECK(calls == 1);  // nothing to fill
  CHECK(empty.data() == nullptr);
  CHECK(empty.empty());
}

TEST_CASE("shared_bytes: equality compares contents", "[message]") {
  CHECK(p2p::shared_bytes::copy("abc") == p2p::shared_bytes::copy(p2p::as_bytes("abc")));
  CHECK_FALSE(p2p::shared_bytes::copy("abc") == p2p::shared_bytes::copy("abd"));
  CHECK_FALSE(p2p::shared_bytes::copy("abc") == p2p::shared_bytes::copy("ab"));
  CHECK_FALSE(p2p::shared_bytes() == p2p::shared_bytes::copy("a"));
}

TEST_CASE("as_bytes: views text without copying", "[message]") {
  const std::string text = "hi";
  const auto span = p2p::as_bytes(text);
  CHECK(static_cast<const void*>(span.data()) == static_cast<const void*>(text.data()));
  CHECK(span.size() == 2);
  CHECK(span[0] == 'h');
}
