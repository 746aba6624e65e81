#pragma once
// Shared by the benchmark sides: a library-free wire codec (for the raw reference and the
// counterpart process), statistics, JSON lines, process spawning, RSS.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fmt/format.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace bench {

namespace asio = boost::asio;

/// Completion token that never throws.
constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

using clock_type = std::chrono::steady_clock;

/// A wake-up for a measuring coroutine: callbacks notify, the coroutine re-checks `pred`.
struct waker {
  explicit waker(asio::any_io_executor ex) : t(std::move(ex), clock_type::time_point::max()) {}

  void notify() { t.cancel(); }

  template <class Pred>
  asio::awaitable<void> until(Pred pred) {
    while (!pred()) {
      t.expires_at(clock_type::time_point::max());
      co_await t.async_wait(use_nothrow);
    }
  }

  /// As `until(pred)`, but gives up at `deadline`; returns `pred()`.
  template <class Pred>
  asio::awaitable<bool> until(Pred pred, clock_type::time_point deadline) {
    while (!pred() && clock_type::now() < deadline) {
      t.expires_at(deadline);
      co_await t.async_wait(use_nothrow);
    }
    co_return pred();
  }

  asio::steady_timer t;
};

/// Bitcoin's magic, little-endian on the wire.
constexpr std::uint32_t magic = 0xD9B4BEF9;

/// Frame header size.
constexpr std::size_t header_size = 24;

/// Seconds since `t0`.
inline double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

/// SHA-256d with a fetched EVP_MD and a reused context (the fastest EVP path measured here).
class hasher {
 public:
  hasher() : md_(EVP_MD_fetch(nullptr, "SHA256", nullptr)), ctx_(EVP_MD_CTX_new()) {
    if (!md_ || !ctx_) throw std::runtime_error("bench: no SHA256");
  }

  hasher(const hasher&) = delete;
  hasher& operator=(const hasher&) = delete;

  ~hasher() {
    EVP_MD_CTX_free(ctx_);
    EVP_MD_free(md_);
  }

  /// First four bytes of SHA-256(SHA-256(data)).
  std::array<std::uint8_t, 4> checksum(const std::uint8_t* data, std::size_t n) {
    std::uint8_t a[32], b[32];
    unsigned len = 0;
    EVP_DigestInit_ex2(ctx_, md_, nullptr);
    EVP_DigestUpdate(ctx_, data, n);
    EVP_DigestFinal_ex(ctx_, a, &len);
    EVP_DigestInit_ex2(ctx_, md_, nullptr);
    EVP_DigestUpdate(ctx_, a, 32);
    EVP_DigestFinal_ex(ctx_, b, &len);
    return {b[0], b[1], b[2], b[3]};
  }

 private:
  EVP_MD* md_;
  EVP_MD_CTX* ctx_;
};

inline hasher& thread_hasher() {
  static thread_local hasher h;
  return h;
}

inline void put_le32(std::uint8_t* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

inline std::uint32_t get_le32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16 |
         std::uint32_t{p[3]} << 24;
}

/// Appends one frame to `out`.
inline void append_frame(std::vector<std::uint8_t>& out, std::string_view command,
                         std::span<const std::uint8_t> payload) {
  const std::size_t at = out.size();
  out.resize(at + header_size + payload.size());
  std::uint8_t* h = out.data() + at;
  put_le32(h, magic);
  std::memset(h + 4, 0, 12);
  std::memcpy(h + 4, command.data(), std::min<std::size_t>(command.size(), 12));
  put_le32(h + 16, static_cast<std::uint32_t>(payload.size()));
  auto sum = thread_hasher().checksum(payload.data(), payload.size());
  std::memcpy(h + 20, sum.data(), 4);
  if (!payload.empty()) std::memcpy(h + header_size, payload.data(), payload.size());
}

inline std::vector<std::uint8_t> frame(std::string_view command,
                                       std::span<const std::uint8_t> payload) {
  std::vector<std::uint8_t> out;
  append_frame(out, command, payload);
  return out;
}

/// A frame found in place in a receive buffer.
struct frame_view {
  std::string_view command;
  std::span<const std::uint8_t> payload;
  bool checksum_ok;
};

/// Parses frames in place: a growable buffer that is read into at `tail()` and consumed
/// from the front. The raw reference's receive path.
class frame_reader {
 public:
  explicit frame_reader(std::size_t capacity = 64 * 1024) : buf_(capacity) {}

  /// Where the next read goes (at least `min_free` bytes).
  asio::mutable_buffer tail(std::size_t min_free = 16 * 1024) {
    const std::size_t held = end_ - begin_;
    if (want_ > held) min_free = std::max(min_free, want_ - held);
    if (begin_ > 0 && (end_ == begin_ || buf_.size() - end_ < min_free)) {
      std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (buf_.size() - end_ < min_free) buf_.resize(end_ + std::max(min_free, buf_.size()));
    return asio::buffer(buf_.data() + end_, buf_.size() - end_);
  }

  void commit(std::size_t n) { end_ += n; }

  /// The next complete frame, verified; nullopt when more bytes are needed. Garbage before a
  /// magic is skipped one byte at a time (never produced by the benchmarks).
  std::optional<frame_view> next() {
    for (;;) {
      if (end_ - begin_ < header_size) return std::nullopt;
      const std::uint8_t* h = buf_.data() + begin_;
      if (get_le32(h) != magic) {
        ++begin_;
        continue;
      }
      const std::uint32_t len = get_le32(h + 16);
      if (end_ - begin_ < header_size + len) {
        // Make room for the whole frame so a large payload arrives in few reads.
        want_ = header_size + len;
        return std::nullopt;
      }
      want_ = 0;
      const std::uint8_t* payload = h + header_size;
      auto sum = thread_hasher().checksum(payload, len);
      std::size_t clen = 0;
      while (clen < 12 && h[4 + clen]) ++clen;
      begin_ += header_size + len;
      return frame_view{{reinterpret_cast<const char*>(h + 4), clen},
                        {payload, len},
                        std::memcmp(sum.data(), h + 20, 4) == 0};
    }
  }

 private:
  std::vector<std::uint8_t> buf_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  std::size_t want_ = 0;
};

/// A payload of `n` bytes with a deterministic pattern.
inline std::vector<std::uint8_t> make_payload(std::size_t n) {
  std::vector<std::uint8_t> p(n);
  for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<std::uint8_t>(i * 131 + 7);
  return p;
}

/// The `q` quantile (0..1) of `v` (sorted copy, nearest rank).
inline double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  std::size_t i = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

/// Resident set size of this process in bytes (VmRSS).
std::size_t rss_bytes();

/// Command-line options: "--name value" pairs after the workload.
struct args {
  std::string workload;
  std::string impl = "p2p";
  std::map<std::string, std::string> kv;

  std::string str(const std::string& k, std::string d = {}) const {
    auto it = kv.find(k);
    return it == kv.end() ? d : it->second;
  }

  long num(const std::string& k, long d) const {
    auto it = kv.find(k);
    return it == kv.end() ? d : std::stol(it->second);
  }
};

/// A spawned process with its stdin and stdout connected to pipes.
struct child_process {
  int pid = -1;
  int to_child = -1;    // its stdin
  int from_child = -1;  // its stdout

  /// A line from its stdout (without the newline); empty on EOF or after `timeout`.
  std::string read_line(std::chrono::milliseconds timeout);

  /// Closes its stdin (it exits on EOF), waits up to `grace`, then kills it.
  void finish(std::chrono::milliseconds grace = std::chrono::seconds(5));
};

/// Spawns `argv` (argv[0] is a path) with `env_add` ("K=V") added to the environment.
child_process spawn(const std::vector<std::string>& argv,
                    const std::vector<std::string>& env_add = {});

/// This executable's path.
std::string self_path();

/// Raises RLIMIT_NOFILE to the hard limit.
void raise_fd_limit();

/// Runs `ioc` on `threads` threads (this one included) until it runs out of work, is
/// stopped, or `limit` passes.
void run_threads(asio::io_context& ioc, std::size_t threads, std::chrono::seconds limit);

}  // namespace bench
