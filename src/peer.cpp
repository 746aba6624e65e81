#include <p2p/error.hpp>
#include <p2p/peer.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/uuid/name_generator_sha1.hpp>
#include <boost/uuid/uuid_io.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <cctype>
#include <cmath>
#include <stdexcept>

#include "detail/async.hpp"

namespace p2p {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;
using detail::use_nothrow;

namespace {

/// Frames gathered into one write; bounds both the iovec count and the bytes per write.
constexpr std::size_t max_frames_per_write = 64;
constexpr std::size_t max_bytes_per_write = 256 * 1024;

/// Non-blocking writes per flush before yielding to other peers (fairness).
constexpr int max_writes_per_flush = 4;

/// Send-queue slots kept after the queue drains (more are released: idle peers stay small).
constexpr std::size_t kept_queue_capacity = 8;

/// Bounds on the messages kept for receive() that no waiter claimed.
constexpr std::size_t max_inbox_messages = 16;
constexpr std::size_t max_inbox_bytes = 256 * 1024;

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

bool equal_ci(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

/// Errors that mean "we closed it ourselves", not a failure of the peer.
bool is_own_close(const error_code& ec) {
  return ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor;
}

}  // namespace

std::string_view to_string(severity s) noexcept {
  switch (s) {
    case severity::info:
      return "info";
    case severity::notice:
      return "notice";
    case severity::warning:
      return "warning";
    case severity::error:
      return "error";
  }
  return "unknown";
}

// ---- property ------------------------------------------------------------------------

void property::throw_out_of_range(std::uint64_t v) {
  throw std::invalid_argument(
      fmt::format("p2p: property value {} does not fit a signed 64-bit integer", v));
}

bool property::matches(const property& other) const noexcept {
  return std::visit(
      [](const auto& a, const auto& b) -> bool {
        using A = std::decay_t<decltype(a)>;
        using B = std::decay_t<decltype(b)>;
        if constexpr (std::is_same_v<A, std::string> && std::is_same_v<B, std::string>) {
          return equal_ci(a, b);
        } else if constexpr (std::is_same_v<A, bool> || std::is_same_v<B, bool>) {
          if constexpr (std::is_same_v<A, B>) return a == b;
          return false;
        } else if constexpr (std::is_same_v<A, std::string> || std::is_same_v<B, std::string>) {
          return false;
        } else if constexpr (std::is_same_v<A, std::int64_t> && std::is_same_v<B, std::int64_t>) {
          return a == b;
        } else {
          return static_cast<double>(a) == static_cast<double>(b);
        }
      },
      v_, other.v_);
}

std::string property::to_string() const {
  return std::visit(
      [](const auto& v) -> std::string {
        using V = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<V, bool>) {
          return v ? "true" : "false";
        } else if constexpr (std::is_same_v<V, std::string>) {
          return v;
        } else {
          return fmt::format("{}", v);
        }
      },
      v_);
}

// ---- peer_events ---------------------------------------------------------------------

signal<p2p::message>& peer_events::command(std::string_view command) {
  auto it = commands_.find(command);
  if (it == commands_.end())
    it = commands_.emplace(std::string(command), signal<p2p::message>{}).first;
  return it->second;
}

void peer_events::emit_message(const p2p::message& m) {
  message.emit(m);
  if (auto it = commands_.find(m.command); it != commands_.end()) it->second.emit(m);
}

// ---- peer: construction --------------------------------------------------------------

std::shared_ptr<peer> peer::outbound(executor_type strand, host remote, peer_options opts) {
  opts.validate();
  if (remote.name.empty() || remote.port == 0)
    throw std::invalid_argument(
        fmt::format("p2p: outbound peer needs a host and a port, got '{}'", remote.to_string()));
  // I/O objects use the strand's inner executor: handlers still run on the strand (the
  // coroutines' executor), and an io_context executor fits in any_io_executor's small
  // buffer where a strand would be copied to the heap.
  tcp::socket socket(strand.get_inner_executor());
  return std::make_shared<peer>(private_tag{}, std::move(strand), std::move(remote),
                                std::move(socket), false, std::move(opts));
}

std::shared_ptr<peer> peer::inbound(executor_type strand, tcp::socket socket, peer_options opts) {
  opts.validate();
  error_code ec;
  auto ep = socket.remote_endpoint(ec);
  if (ec) throw std::invalid_argument("p2p: inbound peer needs a connected socket");
  host remote{ep.address().to_string(), ep.port()};
  // Re-home the accepted descriptor onto the strand so every handler runs there.
  auto protocol = ep.protocol();
  tcp::socket homed(strand.get_inner_executor(), protocol, socket.release());
  return std::make_shared<peer>(private_tag{}, std::move(strand), std::move(remote),
                                std::move(homed), true, std::move(opts));
}

peer::peer(private_tag, executor_type strand, host remote, tcp::socket socket, bool inbound,
           peer_options opts)
    : strand_(std::move(strand)),
      remote_(std::move(remote)),
      socket_(std::move(socket)),
      inbound_(inbound),
      opts_(std::move(opts)),
      id_(uuid_for(remote_)),
      last_seen_(clock_type::now()),
      decoder_(opts_.magic, opts_.max_message_size) {
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

// ---- state and properties ------------------------------------------------------------

void peer::set_state(std::string state) {
  if (state == state_) return;
  std::string old = std::exchange(state_, std::move(state));
  events_.state_change.emit(old, state_);
}

void peer::set(std::string_view name, property value) {
  if (name.empty()) throw std::invalid_argument("p2p: property name is empty");
  if (name == "state") {
    const std::string* s = value.string();
    if (!s)
      throw std::invalid_argument(
          fmt::format("p2p: property 'state' must be a string, got '{}'", value.to_string()));
    set_state(*s);
    return;
  }
  auto it = props_.find(name);
  if (it == props_.end())
    props_.emplace(std::string(name), std::move(value));
  else
    it->second = std::move(value);
}

std::optional<property> peer::get(std::string_view name) const {
  if (name == "state") return property(state_);
  auto it = props_.find(name);
  if (it == props_.end()) return std::nullopt;
  return it->second;
}

void peer::emit_report(severity level, std::string text) {
  p2p::report r{level, fmt::format("peer {}: {}", remote_.to_string(), text)};
  if (observer_) observer_->on_peer_report(r);
  events_.report.emit(r);
}

// ---- connecting ----------------------------------------------------------------------

asio::awaitable<error_code> peer::connect() {
  // Not a coroutine: co_spawn with use_awaitable is the awaitable (and g++ 12 mishandles
  // capturing temporaries inside a co_await expression).
  return asio::co_spawn(
      strand_, [self = shared_from_this()] { return self->connect_on_strand(); },
      asio::use_awaitable);
}

asio::awaitable<error_code> peer::connect_within_timeout() {
  error_code aec;
  const auto address = asio::ip::make_address(remote_.name, aec);
  if (aec) {
    // A name: resolve, then try each address; `||` cancels whichever step is running.
    using namespace asio::experimental::awaitable_operators;
    asio::steady_timer timer(strand_.get_inner_executor(), opts_.connect_timeout);
    auto outcome = co_await (resolve_and_connect() || timer.async_wait(use_nothrow));
    co_return outcome.index() == 0 ? std::get<0>(outcome) : make_error_code(error::connect_timeout);
  }
  // An address (the common case): no resolver, whose getaddrinfo runs on a thread of its
  // own, and one connect bounded by a timer that closes the socket, which is much cheaper
  // than a parallel group.
  asio::steady_timer timer(strand_.get_inner_executor(), opts_.connect_timeout);
  connect_expired_ = false;
  timer.async_wait(asio::bind_executor(strand_, [self = shared_from_this()](error_code ec) {
    if (ec || !self->connecting_) return;
    self->connect_expired_ = true;
    error_code ig;
    self->socket_.close(ig);
  }));
  auto [cec] = co_await socket_.async_connect(tcp::endpoint(address, remote_.port), use_nothrow);
  timer.cancel();
  co_return connect_expired_ ? make_error_code(error::connect_timeout) : cec;
}

asio::awaitable<error_code> peer::resolve_and_connect() {
  tcp::resolver resolver(strand_);
  auto [rec, results] =
      co_await resolver.async_resolve(remote_.name, std::to_string(remote_.port), use_nothrow);
  if (rec) co_return rec;
  auto [cec, ep] = co_await asio::async_connect(socket_, results, use_nothrow);
  co_return cec;
}

asio::awaitable<error_code> peer::connect_on_strand() {
  if (inbound_ || state_ != "new" || closed_ || connecting_)
    co_return make_error_code(asio::error::already_started);
  connecting_ = true;
  set_state("connecting");
  error_code ec = co_await connect_within_timeout();
  connecting_ = false;
  // async_connect re-opens a socket we closed mid-resolve, so check the request itself.
  if (!ec && stop_requested_) ec = make_error_code(asio::error::operation_aborted);
  if (ec) {
    if (!is_own_close(ec) && !error_reported_) {
      error_reported_ = true;
      emit_error(ec);
    }
    finish(ec);
    co_return ec;
  }
  on_connected();
  co_return error_code{};
}

void peer::start() {
  auto self = shared_from_this();
  asio::post(strand_, [self] {
    if (self->closed_ || self->running_ || !self->inbound_) return;
    self->on_connected();
  });
}

void peer::on_connected() {
  assert(strand_.running_in_this_thread());
  error_code ec;
  auto ep = socket_.remote_endpoint(ec);
  if (!ec) endpoint_ = ep;
  socket_.set_option(tcp::no_delay(true), ec);
  socket_.non_blocking(true, ec);
  open_ = true;
  last_seen_ = clock_type::now();
  running_ = true;
  set_state("connected");
  if (observer_) observer_->on_peer_connect(*this);
  events_.connect.emit();
  if (closed_ || !socket_.is_open()) {
    finish(make_error_code(asio::error::operation_aborted));
    return;
  }
  // The reader runs for the peer's life and finishes it. Writes are made by a posted
  // flush (write_now); a writer coroutine exists only while the socket is full (an idle
  // peer holds one coroutine, not two and a wake-up timer). A write error closes the
  // socket, which ends the reader.
  asio::co_spawn(strand_, read_loop(),
                 [self = shared_from_this()](std::exception_ptr e, error_code ec) {
                   self->finish(self->end_error_ ? self->end_error_ : ec);
                   if (e) std::rethrow_exception(e);
                 });
  if (queue_head_ != queue_.size()) schedule_flush();
}

// ---- the loops -----------------------------------------------------------------------

void peer::end_with(error_code ec) {
  if (!end_error_) end_error_ = ec;
  error_code ig;
  socket_.close(ig);
}

void peer::schedule_flush() {
  // Posted, so that every frame queued by the current handler goes out in one write.
  if (!running_ || writing_ || flush_posted_) return;
  flush_posted_ = true;
  asio::post(strand_, [self = shared_from_this()] {
    self->flush_posted_ = false;
    self->flush_now();
  });
}

void peer::flush_now() {
  if (!running_ || writing_) return;
  if (write_now() == write_result::blocked) {
    writing_ = true;
    asio::co_spawn(
        strand_, [self = shared_from_this()] { return self->write_loop(); }, detail::rethrow{});
  }
}

asio::awaitable<error_code> peer::read_loop() {
  // Held for the loop's life and handed to the message observer: no reference count
  // traffic per message.
  const auto self = shared_from_this();
  for (;;) {
    auto [wec] = co_await socket_.async_wait(tcp::socket::wait_read, use_nothrow);
    if (wec) co_return wec;
    for (int round = 0; round < max_reads_per_wake; ++round) {
      // A large payload is read straight into its own buffer (one copy fewer); all else
      // goes through the per-thread buffer.
      const auto direct = decoder_.direct_buffer();
      auto& buf = read_buffer();
      const auto into = direct.empty() ? asio::buffer(buf) : asio::buffer(direct);
      error_code ec;
      const std::size_t n = socket_.read_some(into, ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) break;
      if (ec) co_return ec;
      last_seen_ = clock_type::now();
      received_any_ = true;
      error_code err;
      if (direct.empty()) {
        err = dispatch(self, {buf.data(), n});
      } else if (auto ev = decoder_.commit_direct(n)) {
        err = handle(self, *ev);
      }
      if (err) co_return err;
      if (closed_ || !socket_.is_open()) co_return make_error_code(asio::error::operation_aborted);
      if (n < into.size()) break;
    }
  }
}

error_code peer::dispatch(const std::shared_ptr<peer>& self, std::span<const std::uint8_t> bytes) {
  while (auto ev = decoder_.next(bytes))
    if (auto err = handle(self, *ev)) return err;
  return {};
}

error_code peer::handle(const std::shared_ptr<peer>& self, decode_event& ev) {
  switch (ev.what) {
    case decode_event::kind::message:
      ++frames_received_;
      last_message_ = last_seen_;
      garbage_run_ = 0;
      claimed_ = false;
      try {
        if (observer_) observer_->on_peer_message(self, ev.msg);
        events_.emit_message(ev.msg);
      } catch (const std::exception& e) {
        emit_report(severity::error,
                    fmt::format("a '{}' message handler threw: {}", ev.msg.command, e.what()));
        return make_error_code(error::handler_failed);
      }
      if (closed_) return make_error_code(asio::error::operation_aborted);
      if (inbox_on_ && !claimed_) keep_for_receive(std::move(ev.msg));
      break;
    case decode_event::kind::garbage:
      garbage_run_ += ev.count;
      emit_report(severity::notice, fmt::format("skipped {} bytes of garbage", ev.count));
      break;
    case decode_event::kind::bad_checksum:
      // Undeliverable bytes count like garbage, so a storm of bad frames is bounded too.
      garbage_run_ += header_size + ev.count;
      emit_report(severity::warning, fmt::format("dropped a '{}' frame of {} bytes: bad checksum",
                                                 ev.msg.command, ev.count));
      break;
    case decode_event::kind::bad_command:
      garbage_run_ += header_size + ev.count;
      emit_report(severity::warning,
                  fmt::format("dropped a frame of {} bytes: invalid command field", ev.count));
      break;
    case decode_event::kind::oversized:
      emit_report(severity::error, fmt::format("'{}' frame declares {} bytes; limit {}",
                                               ev.msg.command, ev.count, opts_.max_message_size));
      return make_error_code(error::oversized_message);
  }
  if (garbage_run_ > opts_.max_garbage) {
    emit_report(severity::error, fmt::format("{} bytes without a valid frame; limit {}",
                                             garbage_run_, opts_.max_garbage));
    return make_error_code(error::too_much_garbage);
  }
  return {};
}

peer::write_result peer::write_now() {
  if (closed_ || !socket_.is_open()) return write_result::failed;
  // Gathered per thread: the write below is synchronous (the socket is non-blocking).
  static thread_local std::vector<asio::const_buffer> bufs;
  for (int round = 0; round < max_writes_per_flush; ++round) {
    if (queue_head_ == queue_.size()) {
      // Flushed while disconnecting: half-close and let the reader wait for the remote's
      // close (the disconnect watchdog bounds the wait).
      if (closing_) shutdown_send();
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
      if (!is_own_close(ec)) end_with(ec);
      return write_result::failed;
    }
    consume_written(n);
  }
  return write_result::blocked;  // more to write: yield to other peers, then go on
}

void peer::consume_written(std::size_t n) {
  std::size_t frames = 0;
  while (n > 0) {
    const std::size_t left = queue_[queue_head_].size() - front_written_;
    if (n < left) {
      front_written_ += n;
      break;
    }
    n -= left;
    front_written_ = 0;
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
  if (frames > 0) {
    written_seq_ += frames;
    wake_waiters();
  }
}

asio::awaitable<void> peer::write_loop() {
  // Runs while the socket is full. writing_ is cleared in the same step that decides to
  // stop, so an enqueue() after that schedules a flush instead of leaving its frame behind.
  for (;;) {
    auto [ec] = co_await socket_.async_wait(tcp::socket::wait_write, use_nothrow);
    if (closed_) break;
    if (ec) {
      if (!is_own_close(ec)) end_with(ec);
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

// ---- sending -------------------------------------------------------------------------

void peer::enqueue(shared_bytes frame) {
  if (queue_frame(std::move(frame))) schedule_flush();
}

bool peer::queue_frame(shared_bytes frame) {
  assert(strand_.running_in_this_thread());
  if (closing_ || closed_) return false;
  if (queued_bytes_ > 0 && queued_bytes_ + frame.size() > opts_.max_send_buffer) {
    emit_report(severity::error,
                fmt::format("send queue would hold {} bytes; limit {} (the peer is not reading)",
                            queued_bytes_ + frame.size(), opts_.max_send_buffer));
    fail_on_strand(make_error_code(error::send_buffer_overflow));
    return false;
  }
  queued_bytes_ += frame.size();
  queue_.push_back(std::move(frame));
  ++enqueued_seq_;
  return true;
}

void peer::send(std::string_view command, std::span<const std::uint8_t> payload) {
  send_frame(encode_frame(opts_.magic, command, payload));
}

void peer::send_frame(shared_bytes frame) {
  if (strand_.running_in_this_thread()) {
    enqueue(std::move(frame));
    return;
  }
  asio::post(strand_, [self = shared_from_this(), f = std::move(frame)]() mutable {
    self->enqueue(std::move(f));
  });
}

asio::awaitable<error_code> peer::send_and_wait(std::string_view command,
                                                std::span<const std::uint8_t> payload) {
  auto frame = encode_frame(opts_.magic, command, payload);
  return asio::co_spawn(
      strand_, [self = shared_from_this(), frame] { return self->send_on_strand(frame); },
      asio::use_awaitable);
}

asio::awaitable<error_code> peer::send_on_strand(shared_bytes frame) {
  if (closing_ || closed_) co_return make_error_code(error::peer_closed);
  enqueue(std::move(frame));
  const std::uint64_t seq = enqueued_seq_;
  while (written_seq_ < seq) {
    if (closed_) co_return make_error_code(error::peer_closed);
    co_await waiters_wake().async_wait(use_nothrow);
    auto cs = co_await asio::this_coro::cancellation_state;
    if (cs.cancelled() != asio::cancellation_type::none)
      co_return make_error_code(asio::error::operation_aborted);
  }
  co_return error_code{};
}

// ---- receiving -----------------------------------------------------------------------

asio::awaitable<std::optional<message>> peer::receive(std::string command,
                                                      std::chrono::milliseconds timeout) {
  check_command(command);
  return asio::co_spawn(
      strand_,
      [self = shared_from_this(), command = std::move(command), timeout] {
        return self->receive_on_strand(command, timeout);
      },
      asio::use_awaitable);
}

void peer::keep_for_receive(message m) {
  inbox_bytes_ += m.payload.size();
  inbox_.push_back(std::move(m));
  std::size_t drop = 0;
  while (inbox_.size() - drop > max_inbox_messages || inbox_bytes_ > max_inbox_bytes)
    inbox_bytes_ -= inbox_[drop++].payload.size();
  inbox_.erase(inbox_.begin(), inbox_.begin() + static_cast<std::ptrdiff_t>(drop));
}

asio::awaitable<std::optional<message>> peer::receive_on_strand(std::string command,
                                                                std::chrono::milliseconds timeout) {
  // From the first receive() on, unclaimed messages are kept (bounded), so a reply that
  // arrived in the same read as the previous one is not lost between two receives.
  inbox_on_ = true;
  for (auto it = inbox_.begin(); it != inbox_.end(); ++it) {
    if (it->command != command) continue;
    message m = std::move(*it);
    inbox_bytes_ -= m.payload.size();
    inbox_.erase(it);
    co_return m;
  }
  if (closed_) co_return std::nullopt;
  asio::steady_timer timer(strand_, timeout);
  std::optional<message> got;
  subscription on_msg = events_.command(command).subscribe([&](const message& m) {
    if (!got) {
      got = m;
      claimed_ = true;
      timer.cancel();
    }
  });
  subscription on_close = events_.close.subscribe([&] { timer.cancel(); });
  co_await timer.async_wait(use_nothrow);
  auto cs = co_await asio::this_coro::cancellation_state;
  if (!got && cs.cancelled() != asio::cancellation_type::none)
    throw boost::system::system_error(asio::error::operation_aborted);
  co_return got;
}

// ---- closing -------------------------------------------------------------------------

asio::awaitable<void> peer::disconnect() {
  return asio::co_spawn(
      strand_,
      [self = shared_from_this()]() -> asio::awaitable<void> {
        self->start_disconnect();
        return self->wait_closed_on_strand();
      },
      asio::use_awaitable);
}

void peer::close() {
  asio::post(strand_, [self = shared_from_this()] { self->start_disconnect(); });
}

void peer::start_disconnect() {
  assert(strand_.running_in_this_thread());
  if (closing_ || closed_) return;
  if (!open_) {
    // Not connected (yet): nothing to flush.
    fail_on_strand(make_error_code(asio::error::operation_aborted));
    return;
  }
  closing_ = true;
  set_state("disconnecting");
  disconnect_timer_ =
      std::make_unique<asio::steady_timer>(strand_.get_inner_executor(), opts_.disconnect_timeout);
  auto self = shared_from_this();
  asio::co_spawn(
      strand_, [self] { return self->disconnect_watchdog(); }, detail::rethrow{});
  // With frames still queued, the flush that sends the last of them half-closes.
  if (!writing_ && !flush_posted_ && queue_head_ == queue_.size()) shutdown_send();
  wake_waiters();
}

asio::awaitable<void> peer::disconnect_watchdog() {
  auto [ec] = co_await disconnect_timer_->async_wait(use_nothrow);
  if (ec || closed_) co_return;
  emit_report(severity::notice, fmt::format("graceful disconnect took longer than {} ms; closing",
                                            opts_.disconnect_timeout.count()));
  error_code ig;
  socket_.close(ig);
}

void peer::destroy() {
  if (!strand_.running_in_this_thread()) {
    asio::post(strand_, [self = shared_from_this()] { self->destroy(); });
    return;
  }
  fail_on_strand(make_error_code(asio::error::operation_aborted));
}

void peer::fail(error_code ec) {
  if (!strand_.running_in_this_thread()) {
    asio::post(strand_, [self = shared_from_this(), ec] { self->fail_on_strand(ec); });
    return;
  }
  fail_on_strand(ec);
}

void peer::fail_on_strand(error_code ec) {
  if (closed_) return;
  stop_requested_ = true;
  if (ec && !is_own_close(ec) && !error_reported_) {
    error_reported_ = true;
    emit_error(ec);
  }
  error_code ig;
  socket_.close(ig);
  // Running loops end on the closed socket and call finish(); otherwise finish here.
  if (!running_ && !connecting_) finish(ec);
}

void peer::finish(error_code ec) {
  if (closed_) return;
  closed_ = true;
  const bool was_open = open_;
  open_ = false;
  error_code ig;
  socket_.close(ig);
  if (disconnect_timer_) disconnect_timer_->cancel();
  queue_ = {};
  queue_head_ = 0;
  front_written_ = 0;
  queued_bytes_ = 0;
  inbox_ = {};
  inbox_bytes_ = 0;
  auto self = shared_from_this();  // callbacks below may drop the last outside reference
  if (was_open && ec == asio::error::eof) {
    if (observer_) observer_->on_peer_end(*this);
    events_.end.emit();
  } else if (ec && !is_own_close(ec) && !closing_ && !error_reported_) {
    error_reported_ = true;
    emit_error(ec);
  }
  set_state("closed");
  if (observer_) observer_->on_peer_close(*this);
  events_.close.emit();
  wake_waiters();
}

void peer::emit_error(const error_code& ec) {
  if (observer_) observer_->on_peer_error(*this, ec);
  events_.error.emit(ec);
}

asio::steady_timer& peer::waiters_wake() {
  if (!waiters_wake_)
    waiters_wake_ = std::make_unique<asio::steady_timer>(strand_.get_inner_executor(),
                                                         clock_type::time_point::max());
  return *waiters_wake_;
}

void peer::wake_waiters() {
  if (waiters_wake_) waiters_wake_->cancel();
}

asio::awaitable<void> peer::wait_closed() {
  return asio::co_spawn(
      strand_, [self = shared_from_this()] { return self->wait_closed_on_strand(); },
      asio::use_awaitable);
}

asio::awaitable<void> peer::wait_closed_on_strand() {
  while (!closed_) {
    co_await waiters_wake().async_wait(use_nothrow);
    auto cs = co_await asio::this_coro::cancellation_state;
    if (cs.cancelled() != asio::cancellation_type::none) co_return;
  }
}

}  // namespace p2p
