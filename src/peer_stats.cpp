// A peer's statistics and keepalive, on its transport strand (io_): counting what was read
// and written, the ping in flight and its round trip, and the copy a snapshot takes.

#include <p2p/error.hpp>
#include <p2p/peer.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <cstring>
#include <random>

#include "detail/async.hpp"
#include "detail/keepalive.hpp"
#include "detail/peer_fsm.hpp"

namespace p2p {

namespace asio = boost::asio;
using boost::system::error_code;
using std::chrono::duration_cast;
using std::chrono::microseconds;

namespace {

/// Counts one message in `rows`, trying the row the last one went to first: a stream of one
/// command costs a string compare, not a search.
void count_row(std::vector<command_stats>& rows, std::uint32_t& cached, std::string_view command,
               bool received, std::uint64_t bytes) {
  if (cached < rows.size() && rows[cached].command == command) {
    auto& r = rows[cached];
    (received ? r.messages_received : r.messages_sent) += 1;
    (received ? r.bytes_received : r.bytes_sent) += bytes;
    return;
  }
  count_command(rows, command, received, 1, bytes);
  for (std::uint32_t i = 0; i < rows.size(); ++i) {
    if (rows[i].command == command) {
      cached = i;
      return;
    }
  }
}

std::uint64_t read_le64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::array<std::uint8_t, 8> le64(std::uint64_t v) {
  std::array<std::uint8_t, 8> out{};
  for (auto& b : out) {
    b = static_cast<std::uint8_t>(v & 0xff);
    v >>= 8;
  }
  return out;
}

std::uint64_t random_nonce() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  return rng();
}

}  // namespace

// ---- counting (io_) ------------------------------------------------------------------

void peer::count_received(const message& m) {
  count_row(stats_.commands, stats_.row_in, m.command, true, header_size + m.payload.size());
}

void peer::count_sent(const shared_bytes& frame) {
  if (frame.size() < header_size) return;
  const auto* field = reinterpret_cast<const char*>(frame.data() + 4);
  const std::string_view command(field, ::strnlen(field, command_size));
  count_row(stats_.commands, stats_.row_out, command, false, frame.size());
}

void peer::fill_transport_stats(peer_stats& s) const {
  assert(io_.running_in_this_thread());
  const auto steady_now = clock_type::now();
  const auto wall_now = wall_clock::now();
  const auto wall = [&](clock_type::time_point t) -> std::optional<wall_clock::time_point> {
    if (t == clock_type::time_point{}) return std::nullopt;
    return wall_now + duration_cast<wall_clock::duration>(t - steady_now);
  };
  const auto rtt = [](std::int64_t us) -> std::optional<microseconds> {
    if (us < 0) return std::nullopt;
    return microseconds(us);
  };
  s.id = id_;
  s.remote = remote_;
  s.inbound = inbound_;
  s.connected_since = wall(stats_.connected);
  s.last_receive = wall(stats_.last_in);
  s.last_send = wall(stats_.last_out);
  s.bytes_received = stats_.bytes_in;
  s.bytes_sent = stats_.bytes_out;
  s.messages_received = frames_;
  s.messages_sent = stats_.frames_out;
  s.commands = stats_.commands;
  s.pings_sent = stats_.pings_sent;
  s.pongs_received = stats_.pongs;
  s.rtt_last = rtt(stats_.rtt_last_us);
  s.rtt_min = rtt(stats_.rtt_min_us);
  s.ping_outstanding = keepalive_.outstanding;
  s.queued_bytes = queued_bytes_;
  s.garbage_bytes = decoder_.garbage_total();
  s.violations = stats_.violations;
  s.dropped_sends = stats_.dropped;
}

asio::awaitable<peer_stats> peer::transport_stats(std::shared_ptr<peer> self) {
  // Spawned on self->io_.
  peer_stats s;
  self->fill_transport_stats(s);
  co_return s;
}

asio::awaitable<detail::op_result<peer_stats>> peer::stats_op(std::shared_ptr<peer> self) {
  // On the home executor: the state string lives here, the counters on the transport.
  auto s = co_await asio::co_spawn(self->io_, transport_stats(self), asio::use_awaitable);
  s.state = self->state_;
  co_return detail::op_result<peer_stats>{error_code{}, std::move(s)};
}

// ---- keepalive (io_) -----------------------------------------------------------------

void peer::start_keepalive() {
  assert(io_.running_in_this_thread());
  if (keepalive_.started || opts_.ping_interval.count() <= 0 || io_state_ != peer_lifecycle::open)
    return;
  keepalive_.started = true;
  // The first ping at once: an RTT early, and a valid frame for the remote's admission.
  keepalive_.next_ping = clock_type::now();
  keepalive_tick();
}

void peer::keepalive_tick() {
  if (io_state_ != peer_lifecycle::open) return;
  auto& k = keepalive_;
  const auto now = clock_type::now();
  if (k.outstanding && now >= k.sent_at + opts_.ping_timeout) {
    if (stats_.pongs > 0 || opts_.require_pong) {
      note_report(severity::warning,
                  fmt::format("no pong within {} ms; closing", opts_.ping_timeout.count()));
      apply(detail::peer_input::failed, make_error_code(error::timeout));
      return;
    }
    // Never answered one: a remote that does not speak ping. It stays (idle_timeout covers
    // it); the next ping still goes out, in case it starts answering.
    k.outstanding = false;
  }
  if (!k.outstanding && now >= k.next_ping) {
    k.nonce = random_nonce();
    k.sent_at = now;
    k.outstanding = true;
    k.next_ping = now + opts_.ping_interval;
    ++stats_.pings_sent;
    const auto nonce = le64(k.nonce);
    enqueue(encode_frame(opts_.magic, "ping", nonce));
  }
  auto wake = k.next_ping;
  if (k.outstanding) wake = std::min(wake, k.sent_at + opts_.ping_timeout);
  const auto ex = io_.get_inner_executor();
  detail::keepalive_service::of(ex).schedule(shared_from_this(), wake, ex);
}

void peer::on_pong(const message& m) {
  auto& k = keepalive_;
  if (!k.outstanding || m.payload.size() != 8) return;
  if (read_le64(m.payload.data()) != k.nonce) return;
  const auto us = duration_cast<microseconds>(clock_type::now() - k.sent_at).count();
  k.outstanding = false;
  ++stats_.pongs;
  stats_.rtt_last_us = us;
  if (stats_.rtt_min_us < 0 || us < stats_.rtt_min_us) stats_.rtt_min_us = us;
}

void peer::answer_ping(const message& m) {
  if (!opts_.answer_pings || m.payload.size() < 8) return;
  enqueue(encode_frame(opts_.magic, "pong", std::span(m.payload.data(), 8)));
}

}  // namespace p2p
