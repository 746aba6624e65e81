#include <p2p/codec.hpp>

#include <fmt/format.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <stdexcept>
#include <utility>

#include "detail/text.hpp"

namespace p2p {

namespace {

/// Largest payload a frame's u32 length field can declare.
constexpr std::size_t max_frame_payload = std::numeric_limits<std::uint32_t>::max();

void put_le32(std::uint8_t* out, std::uint32_t v) noexcept {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

std::uint32_t get_le32(const std::uint8_t* in) noexcept {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= std::uint32_t{in[i]} << (8 * i);
  return v;
}

// Fetching the algorithm is the slow part of EVP; do it once per process.
const EVP_MD* sha256_md() {
  static const std::unique_ptr<EVP_MD, decltype(&EVP_MD_free)> md(
      EVP_MD_fetch(nullptr, "SHA256", nullptr), &EVP_MD_free);
  if (!md) throw std::runtime_error("p2p: OpenSSL provides no SHA256");
  return md.get();
}

// One reusable context per thread, freed when the thread exits.
class digest_context {
 public:
  digest_context() : ctx_(EVP_MD_CTX_new()) {
    if (!ctx_) throw std::bad_alloc();
  }

  digest_context(const digest_context&) = delete;
  digest_context& operator=(const digest_context&) = delete;

  ~digest_context() { EVP_MD_CTX_free(ctx_); }

  void sha256(const std::uint8_t* data, std::size_t size, std::uint8_t* out) {
    unsigned int len = 0;
    if (EVP_DigestInit_ex2(ctx_, sha256_md(), nullptr) != 1 ||
        EVP_DigestUpdate(ctx_, data, size) != 1 || EVP_DigestFinal_ex(ctx_, out, &len) != 1 ||
        len != 32)
      throw std::runtime_error("p2p: OpenSSL SHA256 failed");
  }

 private:
  EVP_MD_CTX* ctx_;
};

/// Length of a valid command field's text (printable ASCII, then only NULs), or 0 if invalid.
std::size_t command_length(std::span<const std::uint8_t, command_size> field) noexcept {
  std::size_t n = 0;
  while (n < command_size && field[n] != 0) {
    if (!detail::is_printable(field[n])) return 0;
    ++n;
  }
  for (std::size_t i = n; i < command_size; ++i)
    if (field[i] != 0) return 0;
  return n;
}

}  // namespace

void check_command(std::string_view command) {
  if (command.empty())
    throw std::invalid_argument(
        "p2p: command '' is empty; it needs 1..12 printable ASCII characters");
  if (command.size() > command_size)
    throw std::invalid_argument(fmt::format("p2p: command '{}' is {} bytes; limit {}",
                                            detail::escape(command), command.size(), command_size));
  for (std::size_t i = 0; i < command.size(); ++i) {
    const auto c = static_cast<unsigned char>(command[i]);
    if (!detail::is_printable(c))
      throw std::invalid_argument(fmt::format(
          "p2p: command '{}' has non-printable byte 0x{:02x} at offset {}; only printable "
          "ASCII is allowed",
          detail::escape(command), c, i));
  }
}

std::array<std::uint8_t, 32> sha256d(std::span<const std::uint8_t> bytes) {
  thread_local digest_context ctx;
  std::array<std::uint8_t, 32> once;
  std::array<std::uint8_t, 32> twice;
  ctx.sha256(bytes.data(), bytes.size(), once.data());
  ctx.sha256(once.data(), once.size(), twice.data());
  return twice;
}

std::array<std::uint8_t, 4> checksum(std::span<const std::uint8_t> payload) {
  const auto digest = sha256d(payload);
  return {digest[0], digest[1], digest[2], digest[3]};
}

shared_bytes encode_frame(std::uint32_t magic, std::string_view command,
                          std::span<const std::uint8_t> payload) {
  check_command(command);
  if (payload.size() > max_frame_payload)
    throw std::invalid_argument(
        fmt::format("p2p: payload of {} bytes for command '{}' is above the frame limit of {}",
                    payload.size(), command, max_frame_payload));
  return shared_bytes::make(header_size + payload.size(), [&](std::span<std::uint8_t> frame) {
    put_le32(frame.data(), magic);
    std::memset(frame.data() + 4, 0, command_size);  // the command's NUL padding
    std::memcpy(frame.data() + 4, command.data(), command.size());
    put_le32(frame.data() + 16, static_cast<std::uint32_t>(payload.size()));
    const auto sum = checksum(payload);
    std::copy(sum.begin(), sum.end(), frame.begin() + 20);
    if (!payload.empty()) std::memcpy(frame.data() + header_size, payload.data(), payload.size());
  });
}

decoder::decoder(std::uint32_t magic, std::size_t max_message_size)
    : max_message_size_(max_message_size) {
  put_le32(magic_bytes_.data(), magic);
}

std::size_t decoder::buffered() const noexcept {
  return header_len_ + payload_len_;
}

std::optional<decode_event> decoder::next(std::span<const std::uint8_t>& input) {
  if (failed_) return std::nullopt;
  if (!in_payload_ && header_len_ == 0 && pending_garbage_ == 0 && input.size() >= header_size)
    if (auto ev = whole_frame(input)) return ev;

  for (;;) {
    if (!in_payload_) {
      if (header_len_ < magic_bytes_.size() && !match_magic(input)) break;
      // Report what was skipped before this frame's event, so the counts come in order.
      if (pending_garbage_ > 0) return take_garbage();
      const std::size_t n = std::min(header_size - header_len_, input.size());
      std::copy_n(input.begin(), n, header_.begin() + header_len_);
      header_len_ += n;
      input = input.subspan(n);
      if (header_len_ < header_size) break;
      if (auto oversized = finish_header()) return oversized;
    }
    const std::size_t n = std::min<std::size_t>(length_ - received_, input.size());
    if (command_ok_ && n > 0) {
      std::memcpy(payload_.get() + payload_len_, input.data(), n);
      payload_len_ += n;
    }
    received_ += static_cast<std::uint32_t>(n);
    input = input.subspan(n);
    if (received_ < length_) break;
    return finish_payload();
  }
  if (pending_garbage_ > 0) return take_garbage();
  // The chunk is used up: the messages made from it own the shared block now.
  slab_.reset();
  slab_used_ = slab_size_ = 0;
  return std::nullopt;
}

std::optional<decode_event> decoder::whole_frame(std::span<const std::uint8_t>& input) {
  // The common case, parsed in place: a frame starts the input and all of it is there.
  // Anything else (garbage, a bad command, a limit, a partial frame) takes the general path,
  // which gives the same events byte for byte (the fuzzer checks split against whole input).
  const std::uint8_t* h = input.data();
  // Fixed-size loads, not memcmp calls: this runs once per frame.
  if (get_le32(h) != get_le32(magic_bytes_.data())) return std::nullopt;
  const std::uint32_t length = get_le32(h + 16);
  if (length > max_message_size_ || input.size() - header_size < length) return std::nullopt;
  const std::span<const std::uint8_t, command_size> field(h + 4, command_size);
  const std::size_t text_len = command_length(field);
  if (text_len == 0) return std::nullopt;
  const auto payload = input.subspan(header_size, length);
  decode_event ev;
  ev.msg.command.assign(reinterpret_cast<const char*>(field.data()), text_len);
  ev.count = length;
  const auto sum = checksum(payload);
  if (get_le32(sum.data()) == get_le32(h + 20)) {
    ev.what = decode_event::kind::message;
    ev.msg.payload = copy_small(payload, input.size());
  } else {
    ev.what = decode_event::kind::bad_checksum;
  }
  input = input.subspan(header_size + length);
  return ev;
}

shared_bytes decoder::copy_small(std::span<const std::uint8_t> payload, std::size_t input_left) {
  // Only small payloads share: a message kept for long keeps its whole block alive, which
  // is bounded by the chunk (at most the bytes of one read).
  constexpr std::size_t small_payload = 1024;
  constexpr std::size_t max_slab = 16 * 1024;  // freeing 64 KiB or more consolidates glibc's heap
  if (payload.size() > small_payload || payload.empty()) return shared_bytes::copy(payload);
  if (slab_size_ - slab_used_ < payload.size()) {
    slab_size_ = std::clamp<std::size_t>(input_left, payload.size(), max_slab);
    slab_ = std::make_shared_for_overwrite<std::uint8_t[]>(slab_size_);
    slab_used_ = 0;
  }
  std::uint8_t* first = slab_.get() + slab_used_;
  std::memcpy(first, payload.data(), payload.size());
  slab_used_ += payload.size();
  return shared_bytes::alias(slab_, first, payload.size());
}

bool decoder::match_magic(std::span<const std::uint8_t>& input) noexcept {
  while (header_len_ < magic_bytes_.size()) {
    if (input.empty()) return false;
    if (header_len_ == 0) {
      const void* hit = std::memchr(input.data(), magic_bytes_[0], input.size());
      const std::size_t skip =
          hit ? static_cast<const std::uint8_t*>(hit) - input.data() : input.size();
      add_garbage(skip);
      input = input.subspan(skip);
      if (input.empty()) return false;
    }
    if (input.front() == magic_bytes_[header_len_]) {
      header_[header_len_++] = input.front();
      input = input.subspan(1);
    } else {
      // The next byte is retried against whatever prefix survives.
      drop_held_byte();
    }
  }
  return true;
}

void decoder::drop_held_byte() noexcept {
  // The oldest held byte cannot start a magic; a later held byte still might (magic with
  // repeated bytes), so keep shifting until what is held is again a prefix of the magic.
  do {
    add_garbage(1);
    std::copy(header_.begin() + 1, header_.begin() + header_len_, header_.begin());
    --header_len_;
  } while (header_len_ > 0 &&
           !std::equal(header_.begin(), header_.begin() + header_len_, magic_bytes_.begin()));
}

void decoder::add_garbage(std::size_t n) noexcept {
  pending_garbage_ += n;
  garbage_total_ += n;
}

decode_event decoder::take_garbage() {
  decode_event ev;
  ev.what = decode_event::kind::garbage;
  ev.count = std::exchange(pending_garbage_, 0);
  return ev;
}

std::optional<decode_event> decoder::finish_header() {
  const std::span<const std::uint8_t, command_size> field(header_.data() + 4, command_size);
  const std::size_t text_len = command_length(field);
  command_ok_ = text_len > 0;
  if (command_ok_) {
    command_.assign(reinterpret_cast<const char*>(field.data()), text_len);
  } else {
    // Show what the frame carried, without its trailing NULs.
    std::size_t end = command_size;
    while (end > 0 && field[end - 1] == 0) --end;
    command_ = detail::escape({reinterpret_cast<const char*>(field.data()), end});
  }
  length_ = get_le32(header_.data() + 16);
  received_ = 0;
  if (length_ > max_message_size_) {
    // Decided from the header alone: nothing is allocated for the claimed payload.
    failed_ = true;
    header_len_ = 0;
    decode_event ev;
    ev.what = decode_event::kind::oversized;
    ev.msg.command = std::move(command_);
    ev.count = length_;
    return ev;
  }
  in_payload_ = true;
  // The declared length is already bounded by max_message_size. Reserving it whole costs
  // address space, not memory: pages become resident only as payload bytes are written,
  // so a header that declares 4 MB and sends nothing stays cheap, and a large frame is
  // not copied through a series of doubling buffers.
  if (command_ok_ && length_ > 0) {
    payload_ = std::make_unique_for_overwrite<std::uint8_t[]>(length_);
    payload_len_ = 0;
  }
  return std::nullopt;
}

std::span<std::uint8_t> decoder::direct_buffer() noexcept {
  if (failed_ || !in_payload_ || !command_ok_ || length_ - received_ < direct_read_threshold)
    return {};
  return {payload_.get() + payload_len_, length_ - received_};
}

std::optional<decode_event> decoder::commit_direct(std::size_t n) {
  payload_len_ += n;
  received_ += static_cast<std::uint32_t>(n);
  if (received_ < length_) return std::nullopt;
  return finish_payload();
}

decode_event decoder::finish_payload() {
  decode_event ev;
  ev.msg.command = std::move(command_);
  ev.count = length_;
  if (!command_ok_) {
    ev.what = decode_event::kind::bad_command;
  } else {
    const auto sum = checksum({payload_.get(), payload_len_});
    if (std::equal(sum.begin(), sum.end(), header_.begin() + 20)) {
      ev.what = decode_event::kind::message;
      ev.msg.payload = shared_bytes::adopt(std::move(payload_), payload_len_);
    } else {
      ev.what = decode_event::kind::bad_checksum;
    }
  }
  payload_.reset();
  payload_len_ = 0;
  command_.clear();
  header_len_ = 0;
  in_payload_ = false;
  received_ = 0;
  command_ok_ = true;
  return ev;
}

}  // namespace p2p
