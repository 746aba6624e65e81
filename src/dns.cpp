// Name lookups with c-ares, driven by Asio: c-ares tells us (socket-state callback) which
// of its sockets to watch; each is watched through a stream_descriptor that never owns it,
// c-ares' own retries run off a steady_timer, and the getaddrinfo callback records the
// outcome. All of it runs on the calling coroutine's executor.

#include "detail/dns.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "detail/async.hpp"
#include <ares.h>
#include <netinet/in.h>

namespace p2p::detail {

namespace {

using asio::ip::tcp;
using boost::system::error_code;
using endpoints = std::vector<tcp::endpoint>;
using lookup_signature = void(error_code, endpoints);

/// How often a lookup that c-ares gives no timeout for is looked at again (a safety net: a
/// pending query always has a timeout).
constexpr std::chrono::seconds idle_poll{1};

class ares_category_impl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "p2p.c-ares"; }

  std::string message(int status) const override {
    return std::string("c-ares: ") + ares_strerror(status);
  }
};

const boost::system::error_category& ares_category() {
  static const ares_category_impl category;
  return category;
}

/// A c-ares status as the error Asio's resolver would give for it.
error_code to_error(int status) {
  switch (status) {
    case ARES_SUCCESS:
      return {};
    case ARES_ENOTFOUND:
      return asio::error::host_not_found;
    case ARES_ETIMEOUT:
    case ARES_ECONNREFUSED:
      return asio::error::host_not_found_try_again;
    case ARES_ENODATA:
      return asio::error::no_data;
    case ARES_ECANCELLED:
    case ARES_EDESTRUCTION:
      return asio::error::operation_aborted;
    default:
      return {status, ares_category()};
  }
}

int library_status() {
  static std::once_flag once;
  static int status = ARES_SUCCESS;
  // Never cleaned up: lookups may run until the process ends.
  std::call_once(once, [] { status = ares_library_init(ARES_LIB_INIT_ALL); });
  return status;
}

/// An address of c-ares' answer as an endpoint with `port`, through Asio's own sockaddr
/// storage; nullopt for a family other than IPv4 and IPv6.
std::optional<tcp::endpoint> to_endpoint(const sockaddr* sa, std::size_t len, std::uint16_t port) {
  tcp::endpoint ep;
  if ((sa->sa_family != AF_INET && sa->sa_family != AF_INET6) || len > ep.capacity())
    return std::nullopt;
  std::memcpy(ep.data(), sa, len);
  ep.resize(len);
  ep.port(port);
  return ep;
}

/// One lookup: its channel, the sockets c-ares asked us to watch, and the timer of its
/// retries. Every pending wait holds it; the caller's handler runs only once the channel is
/// destroyed and every wait has completed, so nothing of it outlives the awaitable.
class lookup : public std::enable_shared_from_this<lookup> {
 public:
  lookup(asio::any_io_executor ex, asio::any_completion_handler<lookup_signature> handler,
         std::uint16_t port)
      : ex_(std::move(ex)), handler_(std::move(handler)), port_(port), timer_(ex_) {}

  lookup(const lookup&) = delete;
  lookup& operator=(const lookup&) = delete;

  ~lookup() {
    // Only when the executor's context was destroyed with the lookup still pending.
    destroy_channel();
  }

  void start(const std::string& name, const std::vector<std::string>& servers) {
    slot_ = asio::get_associated_cancellation_slot(handler_);
    if (slot_.is_connected()) slot_.emplace<canceller>(weak_from_this());
    if (const int status = open_channel(servers); status != ARES_SUCCESS) {
      finish({status, ares_category()});
      return;
    }
    ares_addrinfo_hints hints{};
    hints.ai_flags = ARES_AI_NUMERICSERV;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    const auto service = std::to_string(port_);
    // May answer at once (/etc/hosts); otherwise it opens sockets, announced to socket_state.
    ares_getaddrinfo(channel_, name.c_str(), service.c_str(), &hints, &lookup::on_addrinfo, this);
    after_processing();
  }

 private:
  /// One socket of c-ares. `fd` is released (not closed) when c-ares lets go of it; its
  /// pending waits then complete with operation_aborted and see `fd` closed.
  struct watch {
    explicit watch(const asio::any_io_executor& ex) : fd(ex) {}

    asio::posix::stream_descriptor fd;
    bool want_read = false;
    bool want_write = false;
    bool reading = false;
    bool writing = false;
  };

  struct canceller {
    std::weak_ptr<lookup> target;

    void operator()(asio::cancellation_type type) const {
      if (type == asio::cancellation_type::none) return;
      if (auto l = target.lock()) l->finish(make_error_code(asio::error::operation_aborted));
    }
  };

  int open_channel(const std::vector<std::string>& servers) {
    if (const int status = library_status(); status != ARES_SUCCESS) return status;
    ares_options options{};
    options.sock_state_cb = &lookup::on_socket_state;
    options.sock_state_cb_data = this;
    if (const int status = ares_init_options(&channel_, &options, ARES_OPT_SOCK_STATE_CB);
        status != ARES_SUCCESS) {
      channel_ = nullptr;
      return status;
    }
    if (servers.empty()) return ARES_SUCCESS;
    return ares_set_servers_ports_csv(channel_, fmt::format("{}", fmt::join(servers, ",")).c_str());
  }

  static void on_socket_state(void* data, ares_socket_t fd, int readable, int writable) {
    static_cast<lookup*>(data)->socket_state(fd, readable != 0, writable != 0);
  }

  static void on_addrinfo(void* arg, int status, int /*timeouts*/, ares_addrinfo* result) {
    const std::unique_ptr<ares_addrinfo, decltype(&ares_freeaddrinfo)> owned(result,
                                                                             &ares_freeaddrinfo);
    static_cast<lookup*>(arg)->answer(status, result);
  }

  // ---- called by c-ares (never destroy the channel here) -------------------------------

  void socket_state(ares_socket_t fd, bool readable, bool writable) {
    auto it = std::find_if(watches_.begin(), watches_.end(),
                           [fd](const auto& w) { return w->fd.native_handle() == fd; });
    if (!readable && !writable) {
      // c-ares closes the socket next: Asio must let go of it first.
      if (it != watches_.end()) {
        (*it)->fd.release();
        watches_.erase(it);
      }
      return;
    }
    if (it == watches_.end()) {
      auto w = std::make_shared<watch>(ex_);
      error_code ec;
      w->fd.assign(fd, ec);
      if (ec) {
        // Unwatchable: end the lookup after c-ares returns (it owns the socket still).
        if (!failure_) failure_ = ec;
        return;
      }
      it = watches_.insert(watches_.end(), std::move(w));
    }
    (*it)->want_read = readable;
    (*it)->want_write = writable;
    if (!finished_) arm(*it);
  }

  void answer(int status, const ares_addrinfo* result) {
    if (finished_ || answered_) return;  // the channel is being destroyed: we know why
    answered_ = true;
    answer_ = to_error(status);
    if (answer_ || !result) return;
    for (auto* node = result->nodes; node; node = node->ai_next)
      if (auto ep = to_endpoint(node->ai_addr, node->ai_addrlen, port_)) endpoints_.push_back(*ep);
    if (endpoints_.empty()) answer_ = asio::error::no_data;
  }

  // ---- waits ---------------------------------------------------------------------------

  /// Keeps one wait per kind c-ares wants on `w`.
  void arm(const std::shared_ptr<watch>& w) {
    if (w->want_read && !w->reading) start_wait(w, true);
    if (w->want_write && !w->writing) start_wait(w, false);
  }

  void start_wait(const std::shared_ptr<watch>& w, bool readable) {
    using wait = asio::posix::stream_descriptor::wait_type;
    (readable ? w->reading : w->writing) = true;
    ++pending_;
    w->fd.async_wait(readable ? wait::wait_read : wait::wait_write,
                     [self = shared_from_this(), w, readable](error_code ec) {
                       (readable ? w->reading : w->writing) = false;
                       self->on_ready(w, ec, readable);
                     });
  }

  void on_ready(const std::shared_ptr<watch>& w, error_code ec, bool readable) {
    --pending_;
    // A released descriptor (c-ares closed it, or we finished) reads as closed.
    if (!ec && !finished_ && w->fd.is_open()) {
      const ares_socket_t fd = w->fd.native_handle();
      ares_process_fd(channel_, readable ? fd : ARES_SOCKET_BAD, readable ? ARES_SOCKET_BAD : fd);
      after_processing();
      // Still watched: wait again for what c-ares wants now.
      if (!finished_ && w->fd.is_open()) arm(w);
    }
    if (finished_ && pending_ == 0) complete();
  }

  void arm_timer() {
    timeval tv{};
    const timeval* left = ares_timeout(channel_, nullptr, &tv);
    const auto after =
        left ? std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                   std::chrono::seconds(left->tv_sec) + std::chrono::microseconds(left->tv_usec))
             : std::chrono::steady_clock::duration(idle_poll);
    // Re-arming cancels the pending wait; its handler (or one already queued with success)
    // sees an older generation and does nothing.
    const auto generation = ++timer_generation_;
    timer_.expires_after(after);
    ++pending_;
    timer_.async_wait([self = shared_from_this(), generation](error_code ec) {
      --self->pending_;
      if (!ec && !self->finished_ && generation == self->timer_generation_) {
        ares_process_fd(self->channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
        self->after_processing();
      }
      if (self->finished_ && self->pending_ == 0) self->complete();
    });
  }

  /// After c-ares ran: finish if it answered (or a socket could not be watched), else wait
  /// for its next timeout.
  void after_processing() {
    if (finished_) return;
    if (failure_)
      finish(failure_);
    else if (answered_)
      finish(answer_);
    else
      arm_timer();
  }

  // ---- the end -------------------------------------------------------------------------

  /// Ends the lookup with `ec`: destroys the channel (c-ares releases its sockets through
  /// socket_state first) and cancels every wait; the handler runs once they have completed.
  void finish(error_code ec) {
    if (finished_) return;
    finished_ = true;
    result_ = ec;
    if (ec) endpoints_.clear();
    destroy_channel();
    error_code ig;
    timer_.cancel(ig);
    if (pending_ == 0) complete();
  }

  void destroy_channel() {
    if (auto* channel = std::exchange(channel_, nullptr)) ares_destroy(channel);
    for (auto& w : watches_) w->fd.release();  // none left unless c-ares skipped a callback
    watches_.clear();
  }

  void complete() {
    if (completed_) return;
    completed_ = true;
    // Posted: finish() may run inside start() or inside the cancellation slot's handler,
    // and the slot is cleared only once that handler has returned.
    const auto handler_ex = asio::get_associated_executor(handler_, ex_);
    asio::post(ex_,
               asio::bind_executor(handler_ex, [h = std::move(handler_), slot = slot_, ec = result_,
                                                eps = std::move(endpoints_)]() mutable {
                 if (slot.is_connected()) slot.clear();
                 std::move(h)(ec, std::move(eps));
               }));
  }

  asio::any_io_executor ex_;
  asio::any_completion_handler<lookup_signature> handler_;
  asio::cancellation_slot slot_;
  std::uint16_t port_;
  ares_channel channel_ = nullptr;
  std::vector<std::shared_ptr<watch>> watches_;
  asio::steady_timer timer_;
  std::uint64_t timer_generation_ = 0;
  int pending_ = 0;  // waits started and not completed
  bool answered_ = false;
  error_code answer_;   // c-ares' answer
  error_code failure_;  // a socket we could not watch
  bool finished_ = false;
  bool completed_ = false;
  error_code result_;
  endpoints endpoints_;
};

/// Stateless on purpose: g++ 12 mishandles an initiation object that owns something inside
/// `co_await async_initiate(...)` (asio issue #1007); holding the executor here broke its
/// reference count (a heap-use-after-free under ASan and TSan). It travels as an argument.
struct initiate_lookup {
  template <class Handler>
  void operator()(Handler&& handler, asio::any_io_executor ex, std::string name, std::uint16_t port,
                  std::vector<std::string> servers) const {
    auto l = std::make_shared<lookup>(std::move(ex), std::forward<Handler>(handler), port);
    l->start(name, servers);
  }
};

}  // namespace

asio::awaitable<lookup_result> resolve(std::string name, std::uint16_t port,
                                       std::vector<std::string> servers) {
  // Cancellation is reported as a value, never thrown: callers race this inside `||`. One
  // that came before this call would be forgotten by the reset below, so answer it here
  // (nothing suspends between this check and the lookup's start).
  if ((co_await asio::this_coro::cancellation_state).cancelled() != asio::cancellation_type::none)
    co_return lookup_result{make_error_code(asio::error::operation_aborted), {}};
  co_await asio::this_coro::reset_cancellation_state(asio::enable_total_cancellation());
  asio::any_io_executor ex = co_await asio::this_coro::executor;
  auto [ec, found] = co_await asio::async_initiate<decltype(use_nothrow), lookup_signature>(
      initiate_lookup{}, use_nothrow, std::move(ex), std::move(name), port, std::move(servers));
  co_return lookup_result{ec, std::move(found)};
}

}  // namespace p2p::detail
