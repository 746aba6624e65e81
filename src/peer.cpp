// The peer's transport: connect, the read loop, the send queue and the lifecycle's I/O
// shell. Everything here runs on the peer's own strand (io_); what the application sees is
// handed to the home executor in one post per read (peer_home.cpp).

#include <p2p/error.hpp>
#include <p2p/peer.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/uuid/name_generator_sha1.hpp>
#include <boost/uuid/uuid_io.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <stdexcept>

#include "detail/async.hpp"
#include "detail/dns.hpp"
#include "detail/keepalive.hpp"
#include "detail/peer_note.hpp"

namespace p2p {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;
using detail::peer_input;
using detail::use_nothrow;

namespace {

/// Frames gathered into one write; bounds both the iovec count and the bytes per write.
constexpr std::size_t max_frames_per_write = 64;
constexpr std::size_t max_bytes_per_write = 256 * 1024;

/// Non-blocking writes per flush before yielding to other peers (fairness).
constexpr int max_writes_per_flush = 4;

/// Send-queue slots kept after the queue drains (more are released: idle peers stay small).
constexpr std::size_t kept_queue_capacity = 8;

/// Reads per readiness wake-up before yielding to other peers (fairness).
constexpr int max_reads_per_wake = 4;

/// Per-thread read buffer: a peer holds no read buffer while it waits, so an idle
/// connection costs little memory; the decoder keeps only a partial frame.
std::array<std::uint8_t, 64 * 1024>& read_buffer() {
  static thread_local std::array<std::uint8_t, 64 * 1024> buf;
  return buf;
}

boost::uuids::uuid uuid_for(const host& h) {
  // Name-based (v5) so the same endpoint always has the same identity.
  static const boost::uuids::name_generator_sha1 gen(boost::uuids::ns::url());
  return gen("p2p://" + h.to_string());
}

}  // namespace

// ---- construction --------------------------------------------------------------------

std::shared_ptr<peer> peer::outbound(executor_type home, host remote, peer_options opts) {
  opts.validate();
  if (remote.name.empty() || remote.port == 0)
    throw std::invalid_argument(
        fmt::format("p2p: outbound peer needs a host and a port, got '{}'", remote.to_string()));
  // I/O objects use the inner executor: handlers still run on the transport strand (the
  // coroutines' executor), and an io_context executor fits in any_io_executor's small
  // buffer where a strand would be copied to the heap.
  tcp::socket socket(home.get_inner_executor());
  return std::make_shared<peer>(private_tag{}, std::move(home), std::move(remote),
                                std::move(socket), false, std::move(opts));
}

std::shared_ptr<peer> peer::inbound(executor_type home, tcp::socket socket, peer_options opts) {
  opts.validate();
  error_code ec;
  auto ep = socket.remote_endpoint(ec);
  if (ec) throw std::invalid_argument("p2p: inbound peer needs a connected socket");
  host remote{ep.address().to_string(), ep.port()};
  // Re-home the accepted descriptor onto this context's executor.
  auto protocol = ep.protocol();
  tcp::socket homed(home.get_inner_executor(), protocol, socket.release());
  return std::make_shared<peer>(private_tag{}, std::move(home), std::move(remote), std::move(homed),
                                true, std::move(opts));
}

peer::peer(private_tag, executor_type home, host remote, tcp::socket socket, bool inbound,
           peer_options opts)
    : home_(std::move(home)),
      io_(asio::make_strand(home_.get_inner_executor())),
      remote_(std::move(remote)),
      inbound_(inbound),
      opts_(std::move(opts)),
      id_(uuid_for(remote_)),
      socket_(std::move(socket)),
      decoder_(opts_.magic, opts_.max_message_size),
      last_seen_(clock_type::now().time_since_epoch().count()) {
  if (inbound_) {
    error_code ec;
    auto ep = socket_.remote_endpoint(ec);
    if (!ec) endpoint_ = ep;
  }
}

peer::~peer() = default;

boost::uuids::uuid peer::outbound_id(const host& remote) {
  return uuid_for(remote);
}

std::string peer::id_string() const {
  return boost::uuids::to_string(id_);
}

// ---- the lifecycle's shell -----------------------------------------------------------

void peer::apply(peer_input in, error_code ec) {
  assert(io_.running_in_this_thread());
  const auto t = detail::next_state(io_state_, in, ec);
  if (!t.changed()) return;
  io_state_ = t.to;
  detail::peer_note::change change{t, std::nullopt, nullptr};
  if (keepalive_.started && t.from == peer_lifecycle::open)
    detail::keepalive_service::of(io_.get_inner_executor()).cancel(this);
  if (t.close_socket) {
    error_code ig;
    socket_.close(ig);
    if (disconnect_timer_) disconnect_timer_->cancel();
    drop_queue();
  }
  if (t.to == peer_lifecycle::closed) {
    change.final_stats = std::make_unique<peer_stats>();
    fill_transport_stats(*change.final_stats);
  }
  if (t.begin_disconnect) {
    disconnect_timer_ =
        std::make_unique<asio::steady_timer>(io_.get_inner_executor(), opts_.disconnect_timeout);
    asio::co_spawn(io_, disconnect_watchdog(), [self = shared_from_this()](std::exception_ptr e) {
      if (e) std::rethrow_exception(e);
    });
    // With frames still queued, the flush that sends the last of them half-closes.
    if (!writing_ && !flush_posted_ && queue_head_ == queue_.size()) shutdown_send();
  }
  if (t.to == peer_lifecycle::open) {
    error_code ig;
    auto ep = socket_.remote_endpoint(ig);
    if (!ig) change.endpoint = ep;
    socket_.set_option(tcp::no_delay(true), ig);
    socket_.non_blocking(true, ig);
    stats_.connected = clock_type::now();
    last_seen_.store(stats_.connected.time_since_epoch().count(), relaxed);
  }
  if (transport_wake_) transport_wake_->cancel();  // send_and_wait re-checks the state
  outbox_.emplace_back(std::move(change));
  publish();
  if (t.start_reader) start_reader();
}

void peer::publish() {
  if (outbox_.empty()) return;
  batch_hint_ = std::min<std::size_t>(outbox_.size(), 1024);
  // One post per read: messages, reports and transitions in the order they happened.
  asio::post(home_, [self = shared_from_this(), batch = std::move(outbox_),
                     at = clock_type::now()]() mutable { self->deliver(batch, at); });
  outbox_.clear();
}

void peer::note_report(severity level, std::string text) {
  outbox_.emplace_back(p2p::report{level, fmt::format("peer {}: {}", remote_.to_string(), text)});
}

// ---- connecting ----------------------------------------------------------------------

asio::awaitable<detail::op_result<>> peer::connect_op(std::shared_ptr<peer> self) {
  // On the home executor: the transport connects; this resumes after the outcome was
  // delivered here, since the transport posted that first. Cancellation reaches the
  // transport's connect, which then closes the peer.
  co_await asio::this_coro::reset_cancellation_state(asio::enable_total_cancellation());
  const error_code ec =
      co_await asio::co_spawn(self->io_, self->connect_on_transport(), asio::use_awaitable);
  co_return detail::op_result<>{ec};
}

asio::awaitable<error_code> peer::connect_within_timeout() {
  error_code aec;
  const auto address = asio::ip::make_address(remote_.name, aec);
  if (aec) {
    // A name: look it up, then try each address. `||` cancels whichever step is running at
    // connect_timeout, or as soon as close() or destroy() ends the connecting state (apply()
    // wakes transport_wake on every transition).
    using namespace asio::experimental::awaitable_operators;
    const auto left_connecting = [](peer& self) -> asio::awaitable<error_code> {
      while (self.io_state_ == peer_lifecycle::connecting) {
        co_await self.transport_wake().async_wait(use_nothrow);
        auto cs = co_await asio::this_coro::cancellation_state;
        if (cs.cancelled() != asio::cancellation_type::none) break;
      }
      co_return make_error_code(asio::error::operation_aborted);
    };
    asio::steady_timer timer(io_.get_inner_executor(), opts_.connect_timeout);
    auto outcome =
        co_await (resolve_and_connect() || timer.async_wait(use_nothrow) || left_connecting(*this));
    switch (outcome.index()) {
      case 0:
        co_return std::get<0>(outcome);
      case 1:
        co_return make_error_code(error::connect_timeout);
      default:
        co_return std::get<2>(outcome);
    }
  }
  // An address (the common case): no lookup, and one connect bounded by a timer that closes the
  // socket, which is much cheaper than a parallel group.
  asio::steady_timer timer(io_.get_inner_executor(), opts_.connect_timeout);
  connect_expired_ = false;
  timer.async_wait(asio::bind_executor(io_, [self = shared_from_this()](error_code ec) {
    if (ec || self->io_state_ != peer_lifecycle::connecting) return;
    self->connect_expired_ = true;
    error_code ig;
    self->socket_.close(ig);
  }));
  auto [cec] = co_await socket_.async_connect(tcp::endpoint(address, remote_.port), use_nothrow);
  timer.cancel();
  co_return connect_expired_ ? make_error_code(error::connect_timeout) : cec;
}

asio::awaitable<error_code> peer::resolve_and_connect() {
  // c-ares, on this strand: cancelling it (the `||` above) ends it at once.
  auto [rec, endpoints] = co_await detail::resolve(remote_.name, remote_.port, opts_.dns_servers);
  if (rec) co_return rec;
  auto [cec, ep] = co_await asio::async_connect(socket_, endpoints, use_nothrow);
  co_return cec;
}

asio::awaitable<error_code> peer::connect_on_transport() {
  const auto self = shared_from_this();
  // Spawned from connect_op: it must pass on what that one accepts (partial and total too).
  co_await asio::this_coro::reset_cancellation_state(asio::enable_total_cancellation());
  if (inbound_ || io_state_ != peer_lifecycle::created)
    co_return make_error_code(asio::error::already_started);
  apply(peer_input::start_connect);
  error_code ec = co_await connect_within_timeout();
  if (io_state_ != peer_lifecycle::connecting) {
    // destroy() or close() ended it meanwhile; async_connect re-opens a socket closed
    // mid-resolve, so close again.
    error_code ig;
    socket_.close(ig);
    co_return make_error_code(asio::error::operation_aborted);
  }
  if (ec) {
    apply(peer_input::connect_failed, ec);
    co_return ec;
  }
  apply(peer_input::connected);
  co_return error_code{};
}

void peer::start() {
  asio::post(io_, [self = shared_from_this()] {
    if (self->inbound_) self->apply(peer_input::start_inbound);
  });
}

// ---- reading -------------------------------------------------------------------------

void peer::start_reader() {
  // The reader runs for the peer's life and ends it. Writes are made by a posted flush
  // (write_now); a writer coroutine exists only while the socket is full.
  reading_ = true;
  asio::co_spawn(io_, read_loop(),
                 [self = shared_from_this()](std::exception_ptr e, error_code ec) {
                   self->on_reader_done(ec);
                   if (e) std::rethrow_exception(e);
                 });
  if (queue_head_ != queue_.size()) schedule_flush();
}

void peer::on_reader_done(error_code ec) {
  reading_ = false;
  if (ec == asio::error::eof)
    apply(peer_input::remote_eof);
  else if (detail::is_own_close(ec))
    apply(peer_input::destroy, make_error_code(asio::error::operation_aborted));
  else
    apply(peer_input::failed, ec);
}

asio::awaitable<error_code> peer::read_loop() {
  for (;;) {
    auto [wec] = co_await socket_.async_wait(tcp::socket::wait_read, use_nothrow);
    if (wec) co_return wec;
    if (io_state_ == peer_lifecycle::closed)
      co_return make_error_code(asio::error::operation_aborted);
    error_code err;
    bool got_bytes = false;
    const std::uint64_t frames_before = frames_;
    for (int round = 0; round < max_reads_per_wake && !err; ++round) {
      // A large payload is read straight into its own buffer (one copy fewer); all else
      // goes through the per-thread buffer.
      const auto direct = decoder_.direct_buffer();
      auto& buf = read_buffer();
      const auto into = direct.empty() ? asio::buffer(buf) : asio::buffer(direct);
      error_code ec;
      const std::size_t n = socket_.read_some(into, ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) break;
      if (ec) {
        err = ec;
        break;
      }
      got_bytes = true;
      stats_.bytes_in += n;
      if (direct.empty()) {
        err = dispatch({buf.data(), n});
      } else if (auto ev = decoder_.commit_direct(n)) {
        err = handle(*ev);
      }
      if (n < into.size()) break;
    }
    if (got_bytes) {
      const auto t = clock_type::now();
      last_seen_.store(t.time_since_epoch().count(), relaxed);
      if (frames_ != frames_before && opts_.collect_stats) stats_.last_in = t;
      received_any_.store(true, relaxed);
      frames_seen_.store(frames_, relaxed);
      garbage_seen_.store(decoder_.garbage_total(), relaxed);
    }
    publish();
    if (err) co_return err;
  }
}

error_code peer::dispatch(std::span<const std::uint8_t> bytes) {
  while (auto ev = decoder_.next(bytes))
    if (auto err = handle(*ev)) return err;
  return {};
}

error_code peer::handle(decode_event& ev) {
  switch (ev.what) {
    case decode_event::kind::message: {
      ++frames_;
      garbage_run_ = 0;
      if (opts_.collect_stats) count_received(ev.msg);
      // The keepalive's own commands: answered and timed here, delivered all the same.
      if (const auto& c = ev.msg.command; c.size() == 4) {
        if (c == "ping")
          answer_ping(ev.msg);
        else if (c == "pong")
          on_pong(ev.msg);
      }
      // Sized like the last batch: a stream of small frames does not regrow it every read.
      if (outbox_.capacity() == 0 && batch_hint_ > 1) outbox_.reserve(batch_hint_);
      outbox_.emplace_back(std::move(ev.msg));
      return {};
    }
    case decode_event::kind::garbage:
      ++stats_.violations[static_cast<int>(violation::garbage)];
      garbage_run_ += ev.count;
      note_report(severity::notice, fmt::format("skipped {} bytes of garbage", ev.count));
      break;
    case decode_event::kind::bad_checksum:
      // Undeliverable bytes count like garbage, so a storm of bad frames is bounded too.
      ++stats_.violations[static_cast<int>(violation::bad_checksum)];
      garbage_run_ += header_size + ev.count;
      note_report(severity::warning, fmt::format("dropped a '{}' frame of {} bytes: bad checksum",
                                                 ev.msg.command, ev.count));
      break;
    case decode_event::kind::bad_command:
      ++stats_.violations[static_cast<int>(violation::bad_command)];
      garbage_run_ += header_size + ev.count;
      note_report(severity::warning,
                  fmt::format("dropped a frame of {} bytes: invalid command field", ev.count));
      break;
    case decode_event::kind::oversized:
      ++stats_.violations[static_cast<int>(violation::oversized)];
      note_report(severity::error, fmt::format("'{}' frame declares {} bytes; limit {}",
                                               ev.msg.command, ev.count, opts_.max_message_size));
      return make_error_code(error::oversized_message);
  }
  if (garbage_run_ > opts_.max_garbage) {
    ++stats_.violations[static_cast<int>(violation::too_much_garbage)];
    note_report(severity::error, fmt::format("{} bytes without a valid frame; limit {}",
                                             garbage_run_, opts_.max_garbage));
    return make_error_code(error::too_much_garbage);
  }
  return {};
}

// ---- writing -------------------------------------------------------------------------

void peer::schedule_flush() {
  // Posted, so that every frame queued by the current handler goes out in one write.
  if (!reading_ || writing_ || flush_posted_) return;
  flush_posted_ = true;
  asio::post(io_, [self = shared_from_this()] {
    self->flush_posted_ = false;
    self->flush_now();
  });
}

void peer::flush_now() {
  if (!reading_ || writing_) return;
  if (write_now() == write_result::blocked) {
    writing_ = true;
    asio::co_spawn(io_, write_loop(), [self = shared_from_this()](std::exception_ptr e) {
      if (e) std::rethrow_exception(e);
    });
  }
}

peer::write_result peer::write_now() {
  if (io_state_ == peer_lifecycle::closed || !socket_.is_open()) return write_result::failed;
  // Gathered per thread: the write below is synchronous (the socket is non-blocking).
  static thread_local std::vector<asio::const_buffer> bufs;
  for (int round = 0; round < max_writes_per_flush; ++round) {
    if (queue_head_ == queue_.size()) {
      // Flushed while disconnecting: half-close and let the reader wait for the remote's
      // close (the disconnect watchdog bounds the wait).
      if (io_state_ == peer_lifecycle::disconnecting) shutdown_send();
      return write_result::drained;
    }
    bufs.clear();
    std::size_t bytes = 0;
    for (std::size_t i = queue_head_; i < queue_.size() && bufs.size() < max_frames_per_write;
         ++i) {
      const std::size_t skip = i == queue_head_ ? front_written_ : 0;
      const std::size_t size = queue_[i].size() - skip;
      if (!bufs.empty() && bytes + size > max_bytes_per_write) break;
      bufs.emplace_back(queue_[i].data() + skip, size);
      bytes += size;
    }
    error_code ec;
    const std::size_t n = socket_.write_some(bufs, ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again)
      return write_result::blocked;
    if (ec) {
      if (!detail::is_own_close(ec)) apply(peer_input::failed, ec);
      return write_result::failed;
    }
    consume_written(n);
  }
  return write_result::blocked;  // more to write: yield to other peers, then go on
}

void peer::consume_written(std::size_t n) {
  std::size_t frames = 0;
  stats_.bytes_out += n;
  while (n > 0) {
    const std::size_t left = queue_[queue_head_].size() - front_written_;
    if (n < left) {
      front_written_ += n;
      break;
    }
    n -= left;
    front_written_ = 0;
    if (opts_.collect_stats) count_sent(queue_[queue_head_]);
    queued_bytes_ -= queue_[queue_head_].size();
    queue_[queue_head_++] = shared_bytes();
    ++frames;
  }
  if (queue_head_ == queue_.size()) {
    queue_head_ = 0;
    queue_.clear();
    if (queue_.capacity() > kept_queue_capacity) queue_.shrink_to_fit();
  } else if (queue_head_ >= max_frames_per_write && 2 * queue_head_ >= queue_.size()) {
    // Never drained (a steady stream): drop the written slots so the vector stays bounded.
    queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(queue_head_));
    queue_head_ = 0;
  }
  queued_bytes_seen_.store(queued_bytes_, relaxed);
  if (frames > 0) {
    stats_.frames_out += frames;
    if (opts_.collect_stats) stats_.last_out = clock_type::now();
    written_seq_ += frames;
    if (transport_wake_) transport_wake_->cancel();
  }
}

asio::awaitable<void> peer::write_loop() {
  // Runs while the socket is full. writing_ is cleared in the same step that decides to
  // stop, so an enqueue() after that schedules a flush instead of leaving its frame behind.
  for (;;) {
    auto [ec] = co_await socket_.async_wait(tcp::socket::wait_write, use_nothrow);
    if (io_state_ == peer_lifecycle::closed) break;
    if (ec) {
      if (!detail::is_own_close(ec)) apply(peer_input::failed, ec);
      break;
    }
    if (write_now() != write_result::blocked) break;
  }
  writing_ = false;
}

void peer::shutdown_send() {
  error_code ig;
  socket_.shutdown(tcp::socket::shutdown_send, ig);
}

void peer::drop_queue() {
  queue_ = {};
  queue_head_ = 0;
  front_written_ = 0;
  queued_bytes_ = 0;
  queued_bytes_seen_.store(0, relaxed);
}

void peer::enqueue(shared_bytes frame) {
  if (queue_frame(std::move(frame))) schedule_flush();
}

bool peer::queue_frame(shared_bytes frame) {
  assert(io_.running_in_this_thread());
  if (!detail::accepts_frames(io_state_)) {
    ++stats_.dropped;
    return false;
  }
  if (queued_bytes_ > 0 && queued_bytes_ + frame.size() > opts_.max_send_buffer) {
    ++stats_.violations[static_cast<int>(violation::send_overflow)];
    note_report(severity::error,
                fmt::format("send queue would hold {} bytes; limit {} (the peer is not reading)",
                            queued_bytes_ + frame.size(), opts_.max_send_buffer));
    apply(peer_input::failed, make_error_code(error::send_buffer_overflow));
    return false;
  }
  queued_bytes_ += frame.size();
  queued_bytes_seen_.store(queued_bytes_, relaxed);
  queue_.push_back(std::move(frame));
  ++enqueued_seq_;
  return true;
}

void peer::send(std::string_view command, std::span<const std::uint8_t> payload) {
  send_frame(encode_frame(opts_.magic, command, payload));
}

void peer::send_frame(shared_bytes frame) {
  asio::post(io_, [self = shared_from_this(), f = std::move(frame)]() mutable {
    self->enqueue(std::move(f));
  });
}

void peer::send_frame_at_once(shared_bytes frame) {
  // One frame for this peer in this hand-off (a manager's send): written in the same
  // handler, not after a second post. A flush already posted still gathers it.
  asio::post(io_, [self = shared_from_this(), f = std::move(frame)]() mutable {
    if (self->queue_frame(std::move(f)) && !self->flush_posted_) self->flush_now();
  });
}

asio::steady_timer& peer::transport_wake() {
  if (!transport_wake_)
    transport_wake_ = std::make_unique<asio::steady_timer>(io_.get_inner_executor(),
                                                           clock_type::time_point::max());
  return *transport_wake_;
}

asio::awaitable<detail::op_result<>> peer::send_and_wait_op(std::shared_ptr<peer> self,
                                                            shared_bytes frame) {
  // On the transport strand.
  co_await asio::this_coro::reset_cancellation_state(asio::enable_total_cancellation());
  using result = detail::op_result<>;
  if (!detail::accepts_frames(self->io_state_)) co_return result{error::peer_closed};
  self->enqueue(std::move(frame));
  const std::uint64_t seq = self->enqueued_seq_;
  while (self->written_seq_ < seq) {
    if (self->io_state_ == peer_lifecycle::closed) co_return result{error::peer_closed};
    co_await self->transport_wake().async_wait(use_nothrow);
    auto cs = co_await asio::this_coro::cancellation_state;
    if (cs.cancelled() != asio::cancellation_type::none)
      co_return result{asio::error::operation_aborted};
  }
  co_return result{};
}

// ---- closing -------------------------------------------------------------------------

void peer::close() {
  asio::post(io_, [self = shared_from_this()] { self->apply(peer_input::close); });
}

void peer::destroy() {
  fail(make_error_code(asio::error::operation_aborted));
}

void peer::fail(error_code ec) {
  // Silence at once, from any thread: frames already read are not delivered any more.
  silenced_.store(true, relaxed);
  asio::post(io_, [self = shared_from_this(), ec] { self->apply(peer_input::destroy, ec); });
}

asio::awaitable<void> peer::disconnect_watchdog() {
  auto [ec] = co_await disconnect_timer_->async_wait(use_nothrow);
  if (ec || io_state_ == peer_lifecycle::closed) co_return;
  note_report(severity::notice, fmt::format("graceful disconnect took longer than {} ms; closing",
                                            opts_.disconnect_timeout.count()));
  apply(peer_input::disconnect_expired);
}

}  // namespace p2p
