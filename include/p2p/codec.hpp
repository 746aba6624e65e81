#pragma once
/// @file codec.hpp
/// The Bitcoin P2P v1 wire framing: encoder and an incremental, sans-I/O decoder.

#include <p2p/message.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace p2p {

/// Size of a frame header: magic, command, length and checksum.
constexpr std::size_t header_size = 24;

/// Size of the NUL-padded command field.
constexpr std::size_t command_size = 12;

/// Bitcoin main network's magic (the bytes F9 BE B4 D9 on the wire).
constexpr std::uint32_t bitcoin_magic = 0xD9B4BEF9;

/// Default largest payload accepted (Bitcoin Core's MAX_PROTOCOL_MESSAGE_LENGTH).
constexpr std::size_t default_max_message_size = 4'000'000;

/// Checks that `command` is 1..12 printable ASCII characters.
/// @throws std::invalid_argument naming the command when it is not.
void check_command(std::string_view command);

/// SHA-256(SHA-256(bytes)), computed with OpenSSL.
std::array<std::uint8_t, 32> sha256d(std::span<const std::uint8_t> bytes);

/// The frame checksum: the first four bytes of `sha256d(payload)`.
std::array<std::uint8_t, 4> checksum(std::span<const std::uint8_t> payload);

/// Encodes one complete frame (header + payload).
/// @throws std::invalid_argument if the command is invalid or the payload exceeds 4 GiB - 1.
shared_bytes encode_frame(std::uint32_t magic, std::string_view command,
                          std::span<const std::uint8_t> payload);

/// What the decoder found in the byte stream.
struct decode_event {
  /// The kinds of things a decoder yields.
  enum class kind {
    message,       ///< A complete, valid frame: `msg` holds it.
    garbage,       ///< `count` bytes were skipped while looking for the magic.
    bad_checksum,  ///< A frame for `msg.command` failed its checksum and was dropped.
    bad_command,   ///< A frame's command field was invalid; the frame was dropped.
    oversized,     ///< A header declared `count` bytes, above the limit; the stream is dead.
  };

  /// What this event is.
  kind what = kind::message;
  /// The message (kind::message) or the command the bad frame carried.
  message msg;
  /// Garbage bytes skipped, or the declared length of an oversized or dropped frame.
  std::size_t count = 0;
};

/// Incremental decoder: feed byte chunks of any size, take out events.
///
/// It never touches a socket (like Bitcoin Core's `Transport`). Memory is bounded: a frame's
/// payload buffer reserves the declared length (at most `max_message_size`) as address space;
/// its pages become resident only as payload bytes arrive.
/// @par Thread safety
/// Distinct objects: safe. Shared objects: unsafe.
class decoder {
 public:
  /// A decoder for frames with `magic` and payloads of at most `max_message_size` bytes.
  explicit decoder(std::uint32_t magic = bitcoin_magic,
                   std::size_t max_message_size = default_max_message_size);

  /// Consumes bytes from the front of `input` until one event is complete, and returns it.
  ///
  /// Returns nullopt when `input` is used up and more bytes are needed; garbage skipped in a
  /// chunk is reported before nullopt is returned, so no count is lost. After an `oversized`
  /// event the decoder is failed and consumes nothing more.
  std::optional<decode_event> next(std::span<const std::uint8_t>& input);

  /// True after an `oversized` event.
  bool failed() const noexcept { return failed_; }

  /// Bytes held for an incomplete frame (header or payload).
  std::size_t buffered() const noexcept;

  /// While a large payload (64 KiB or more still to come) is being received: the memory
  /// its remaining bytes go to, so a reader can read straight into it and then call
  /// `commit_direct`. Empty otherwise (feed bytes to `next`).
  std::span<std::uint8_t> direct_buffer() noexcept;

  /// Accounts `n` bytes written at the start of `direct_buffer()`; the frame's event once
  /// the payload is complete (message or bad_checksum), else nullopt.
  std::optional<decode_event> commit_direct(std::size_t n);

  /// Total garbage bytes skipped so far.
  std::uint64_t garbage_total() const noexcept { return garbage_total_; }

 private:
  bool match_magic(std::span<const std::uint8_t>& input) noexcept;
  void drop_held_byte() noexcept;
  void add_garbage(std::size_t n) noexcept;
  static constexpr std::uint32_t direct_read_threshold = 64 * 1024;

  std::optional<decode_event> whole_frame(std::span<const std::uint8_t>& input);
  shared_bytes copy_small(std::span<const std::uint8_t> payload, std::size_t input_left);
  std::optional<decode_event> finish_header();
  decode_event finish_payload();
  decode_event take_garbage();

  std::array<std::uint8_t, 4> magic_bytes_{};
  std::size_t max_message_size_;
  // Header bytes held; while fewer than 4, they are a matched prefix of the magic.
  std::array<std::uint8_t, header_size> header_{};
  std::size_t header_len_ = 0;
  bool in_payload_ = false;
  bool command_ok_ = true;
  std::string command_;
  std::uint32_t length_ = 0;
  // Payload bytes consumed so far: buffered, or skipped when the command is bad.
  std::uint32_t received_ = 0;
  // The payload being received: allocated at its declared length (bounded by
  // max_message_size) without being written, so only pages that bytes reach are resident.
  std::unique_ptr<std::uint8_t[]> payload_;
  std::size_t payload_len_ = 0;
  // Small payloads of one input chunk share one block (one allocation per read, not per
  // frame); released when the chunk is used up, so an idle decoder holds none.
  std::shared_ptr<std::uint8_t[]> slab_;
  std::size_t slab_used_ = 0;
  std::size_t slab_size_ = 0;
  std::size_t pending_garbage_ = 0;
  std::uint64_t garbage_total_ = 0;
  bool failed_ = false;
};

}  // namespace p2p
