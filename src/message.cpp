#include <p2p/message.hpp>

#include <algorithm>
#include <cstring>
#include <utility>

namespace p2p {

shared_bytes::shared_bytes(std::vector<std::uint8_t> bytes)
    : shared_bytes(std::make_shared<const std::vector<std::uint8_t>>(std::move(bytes))) {}

shared_bytes::shared_bytes(std::shared_ptr<const std::vector<std::uint8_t>> bytes) noexcept {
  if (!bytes || bytes->empty()) return;
  size_ = bytes->size();
  const std::uint8_t* first = bytes->data();
  bytes_ = std::shared_ptr<const std::uint8_t>(std::move(bytes), first);  // aliasing
}

shared_bytes shared_bytes::copy(std::span<const std::uint8_t> bytes) {
  return make(bytes.size(), [&](std::span<std::uint8_t> out) {
    std::memcpy(out.data(), bytes.data(), bytes.size());
  });
}

shared_bytes shared_bytes::copy(std::string_view text) {
  return copy(as_bytes(text));
}

std::string shared_bytes::hex() const {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(size() * 2);
  for (std::uint8_t b : span()) {
    out.push_back(digits[b >> 4]);
    out.push_back(digits[b & 0x0f]);
  }
  return out;
}

bool operator==(const shared_bytes& a, const shared_bytes& b) noexcept {
  return std::ranges::equal(a.span(), b.span());
}

}  // namespace p2p
