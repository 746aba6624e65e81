#pragma once
/// @file message.hpp
/// Immutable shared byte buffers and the message type delivered to subscribers.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace p2p {

/// An immutable, reference-counted byte buffer: copying it shares the bytes.
///
/// One received payload can go to many subscribers, and one encoded frame to many peers,
/// without copies.
/// @par Thread safety
/// Distinct objects: safe. Shared objects: safe (the bytes never change).
class shared_bytes {
 public:
  /// An empty buffer.
  shared_bytes() = default;

  /// Takes ownership of `bytes`.
  explicit shared_bytes(std::vector<std::uint8_t> bytes);

  /// Shares an existing immutable vector.
  explicit shared_bytes(std::shared_ptr<const std::vector<std::uint8_t>> bytes) noexcept;

  /// Copies `bytes` into a new buffer.
  static shared_bytes copy(std::span<const std::uint8_t> bytes);

  /// Copies the characters of `text` into a new buffer.
  static shared_bytes copy(std::string_view text);

  /// A view of the `size` bytes at `first`, kept alive by `owner` (which shares its count
  /// with every other view of the same block: one allocation for many small buffers).
  static shared_bytes alias(std::shared_ptr<const void> owner, const std::uint8_t* first,
                            std::size_t size) {
    shared_bytes out;
    if (!owner || size == 0) return out;
    out.bytes_ = std::shared_ptr<const std::uint8_t>(std::move(owner), first);
    out.size_ = size;
    return out;
  }

  /// Takes ownership of `block`, whose first `size` bytes are the buffer.
  static shared_bytes adopt(std::unique_ptr<std::uint8_t[]> block, std::size_t size) {
    shared_bytes out;
    if (!block || size == 0) return out;
    std::shared_ptr<std::uint8_t[]> owner(std::move(block));
    const std::uint8_t* first = owner.get();
    out.bytes_ = std::shared_ptr<const std::uint8_t>(std::move(owner), first);
    out.size_ = size;
    return out;
  }

  /// A new buffer of `size` bytes, written once by `fill(std::span<std::uint8_t>)` before
  /// it is shared; one allocation holds the bytes and the reference count.
  template <class Fill>
  static shared_bytes make(std::size_t size, Fill&& fill) {
    shared_bytes out;
    if (size == 0) return out;
    auto block = std::make_shared_for_overwrite<std::uint8_t[]>(size);
    std::forward<Fill>(fill)(std::span<std::uint8_t>(block.get(), size));
    const std::uint8_t* first = block.get();
    out.bytes_ = std::shared_ptr<const std::uint8_t>(std::move(block), first);
    out.size_ = size;
    return out;
  }

  /// Pointer to the first byte (nullptr when empty).
  const std::uint8_t* data() const noexcept { return bytes_.get(); }

  /// Number of bytes.
  std::size_t size() const noexcept { return size_; }

  /// True when there are no bytes.
  bool empty() const noexcept { return size() == 0; }

  /// The bytes as a span.
  std::span<const std::uint8_t> span() const noexcept { return {data(), size()}; }

  /// The bytes viewed as characters.
  std::string_view view() const noexcept { return {reinterpret_cast<const char*>(data()), size()}; }

  /// Lower-case hexadecimal rendering of the bytes.
  std::string hex() const;

  /// Iteration over the bytes.
  const std::uint8_t* begin() const noexcept { return data(); }

  /// End of the bytes.
  const std::uint8_t* end() const noexcept { return data() + size(); }

  /// Compares contents.
  friend bool operator==(const shared_bytes& a, const shared_bytes& b) noexcept;

 private:
  // Points into whatever owns the bytes (a vector, or the single block copy() makes).
  std::shared_ptr<const std::uint8_t> bytes_;
  std::size_t size_ = 0;
};

/// Views the characters of `text` as bytes (no copy), e.g. `peer->send("hi", as_bytes("x"))`.
inline std::span<const std::uint8_t> as_bytes(std::string_view text) noexcept {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

/// One received message: its command and payload.
struct message {
  /// The command, e.g. "version" (at most 12 printable ASCII characters).
  std::string command;
  /// The payload, shared with every other receiver of the same frame.
  shared_bytes payload;
};

}  // namespace p2p
