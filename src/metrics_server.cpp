// The optional HTTP endpoint (Boost.Beast): /metrics and /peers.

#include "detail/metrics_server.hpp"

#include <p2p/stats.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/assert.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/system/system_error.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <exception>
#include <limits>
#include <string_view>
#include <utility>

#include "detail/async.hpp"

namespace p2p::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::awaitable;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

using request = http::request<http::string_body>;
using response = http::response<http::string_body>;

/// "127.0.0.1:9100" or "[::1]:9100".
std::string endpoint_text(const tcp::endpoint& ep) {
  const auto a = ep.address();
  if (a.is_v6()) return fmt::format("[{}]:{}", a.to_string(), ep.port());
  return fmt::format("{}:{}", a.to_string(), ep.port());
}

std::string exception_text(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "an exception of unknown type";
  }
}

// A body of `text` (empty for HEAD, with the length the GET would have).
response make_response(const request& req, http::status status, std::string_view content_type,
                       std::string text) {
  response res{status, req.version()};
  res.set(http::field::content_type, content_type);
  res.keep_alive(req.keep_alive());
  const auto size = text.size();
  if (req.method() != http::verb::head) res.body() = std::move(text);
  res.content_length(size);
  return res;
}

// Errors of the request's reading that end the connection without an answer: the client
// went away, was too slow, or we closed it.
bool is_quiet_end(const error_code& ec) {
  return ec == http::error::end_of_stream || ec == http::error::partial_message ||
         ec == beast::error::timeout || ec == asio::error::operation_aborted ||
         ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::bad_descriptor || ec == asio::error::broken_pipe;
}

// The answer to a request that was read in full. A failure of the source or of a rendering
// gives 500 and its text in `error`.
awaitable<response> respond(const request& req, const metrics_server::source& src,
                            std::string& error) {
  const std::string_view target(req.target().data(), req.target().size());
  const auto path = target.substr(0, target.find('?'));
  constexpr std::string_view text = "text/plain; charset=utf-8";
  if (path != "/metrics" && path != "/peers")
    co_return make_response(req, http::status::not_found, text, "not found\n");
  if (req.method() != http::verb::get && req.method() != http::verb::head) {
    auto res = make_response(req, http::status::method_not_allowed, text, "method not allowed\n");
    res.set(http::field::allow, "GET, HEAD");
    co_return res;
  }
  std::optional<manager_snapshot> snapshot;
  try {
    if (src) snapshot = co_await src();
  } catch (...) {
    error = exception_text(std::current_exception());
  }
  if (error.empty() && !snapshot)
    co_return make_response(req, http::status::service_unavailable, text,
                            "no snapshot: the manager is not running\n");
  if (snapshot) {
    try {
      if (path == "/metrics")
        co_return make_response(req, http::status::ok, "text/plain; version=0.0.4; charset=utf-8",
                                to_prometheus(*snapshot));
      co_return make_response(req, http::status::ok, "application/json", to_json(*snapshot));
    } catch (...) {
      error = exception_text(std::current_exception());
    }
  }
  co_return make_response(req, http::status::internal_server_error, text, "internal error\n");
}

}  // namespace

struct metrics_server::connection {
  connection(tcp::socket s, std::uint64_t id, std::string remote)
      : stream(std::move(s)), id(id), remote(std::move(remote)) {}

  beast::tcp_stream stream;
  const std::uint64_t id;
  /// The client's address, for reports.
  const std::string remote;
};

metrics_server::metrics_server(passkey, asio::any_io_executor ex, source src, reporter rep,
                               metrics_server_options o)
    : strand_(asio::make_strand(std::move(ex))),
      acceptor_(strand_),
      source_(std::move(src)),
      reporter_(std::move(rep)),
      options_(o) {}

std::shared_ptr<metrics_server> metrics_server::start(asio::any_io_executor ex,
                                                      const tcp::endpoint& ep, source src,
                                                      reporter rep, metrics_server_options o) {
  auto s =
      std::make_shared<metrics_server>(passkey{}, std::move(ex), std::move(src), std::move(rep), o);
  error_code ec;
  auto fail = [&](std::string_view what) {
    throw boost::system::system_error(
        ec, fmt::format("p2p: metrics endpoint {}: cannot {}", endpoint_text(ep), what));
  };
  if (s->acceptor_.open(ep.protocol(), ec); ec) fail("open a socket");
  if (s->acceptor_.set_option(tcp::acceptor::reuse_address(true), ec); ec) fail("set SO_REUSEADDR");
  if (s->acceptor_.bind(ep, ec); ec) fail("bind");
  if (s->acceptor_.listen(tcp::acceptor::max_listen_connections, ec); ec) fail("listen");
  s->local_ = s->acceptor_.local_endpoint(ec);
  if (ec) fail("read the bound address");
  s->spawn(s->accept_loop());
  return s;
}

void metrics_server::stop() {
  asio::post(strand_, [self = shared_from_this()] { self->do_stop(); });
}

void metrics_server::do_stop() {
  BOOST_ASSERT(strand_.running_in_this_thread());
  if (stopped_) return;
  stopped_ = true;
  error_code ignored;
  acceptor_.close(ignored);
  // Each serve() ends on the error this gives its pending operation and erases itself.
  for (auto& [id, c] : connections_) c->stream.close();
}

void metrics_server::report(failure kind, std::string line) {
  BOOST_ASSERT(strand_.running_in_this_thread());
  const auto i = static_cast<std::size_t>(kind);
  if (reported_.test(i)) return;
  reported_.set(i);
  if (!reporter_) return;
  try {
    reporter_(std::move(line));
  } catch (...) {
    // The reporter is the application's; nothing it throws may end io_context::run().
  }
}

void metrics_server::spawn(awaitable<void> op) {
  asio::co_spawn(strand_, std::move(op),
                 asio::bind_executor(strand_, [self = shared_from_this()](std::exception_ptr e) {
                   if (e)
                     self->report(failure::internal,
                                  fmt::format("p2p: metrics endpoint {}: {}",
                                              endpoint_text(self->local_), exception_text(e)));
                 }));
}

awaitable<void> metrics_server::accept_loop() {
  while (!stopped_) {
    auto [ec, socket] = co_await acceptor_.async_accept(use_nothrow);
    if (stopped_) break;
    if (ec) {
      if (ec == asio::error::operation_aborted) break;
      // EMFILE and the like: wait a little instead of spinning on the error.
      report(failure::accept, fmt::format("p2p: metrics endpoint {}: accept failed: {}",
                                          endpoint_text(local_), ec.message()));
      asio::steady_timer pause(strand_, std::chrono::milliseconds(100));
      co_await pause.async_wait(use_nothrow);
      continue;
    }
    if (connections_.size() >= options_.max_connections) {
      report(failure::connection_limit,
             fmt::format("p2p: metrics endpoint {}: {} connections open; closing new ones",
                         endpoint_text(local_), connections_.size()));
      error_code ignored;
      socket.close(ignored);
      continue;
    }
    const auto remote = socket.remote_endpoint(ec);
    auto c = std::make_shared<connection>(std::move(socket), next_id_++,
                                          ec ? std::string("?") : endpoint_text(remote));
    connections_.emplace(c->id, c);
    spawn(serve(std::move(c)));
  }
}

awaitable<void> metrics_server::serve(std::shared_ptr<connection> c) {
  auto& stream = c->stream;
  const auto limit = static_cast<std::uint32_t>(
      std::min<std::size_t>(options_.max_request_bytes, std::numeric_limits<std::uint32_t>::max()));
  // The parser's limits stop a request before the buffer reaches its own bound.
  beast::flat_buffer buffer(2 * std::size_t(limit) + 1024);
  while (!stopped_) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(limit);
    parser.body_limit(limit);
    stream.expires_after(options_.request_timeout);
    auto [ec, header_bytes] = co_await http::async_read_header(stream, buffer, parser, use_nothrow);
    if (!ec) {
      parser.body_limit(limit - std::min<std::size_t>(header_bytes, limit));
      std::tie(ec, std::ignore) = co_await http::async_read(stream, buffer, parser, use_nothrow);
    }
    if (ec) {
      if (is_quiet_end(ec)) break;
      std::optional<http::status> status;
      if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
        status = http::status::request_header_fields_too_large;
      } else if (ec == http::error::body_limit) {
        status = http::status::payload_too_large;
      } else if (ec.category() == http::make_error_code(http::error::bad_method).category()) {
        status = http::status::bad_request;
      }
      if (!status) break;  // a socket error: nothing can be answered
      const bool oversized = *status != http::status::bad_request;
      report(oversized ? failure::oversized_request : failure::bad_request,
             fmt::format("p2p: metrics endpoint {}: {} request from {}: {}", endpoint_text(local_),
                         oversized ? "oversized" : "malformed", c->remote,
                         oversized ? fmt::format("limit {} bytes", limit) : "unparsable"));
      response res{*status, 11};
      res.set(http::field::content_type, "text/plain; charset=utf-8");
      res.keep_alive(false);
      res.body() = fmt::format("{}\n", http::obsolete_reason(*status));
      res.prepare_payload();
      stream.expires_after(options_.request_timeout);
      co_await http::async_write(stream, res, use_nothrow);
      break;
    }
    const request req = parser.release();
    std::string source_error;
    response res = co_await respond(req, source_, source_error);
    if (!source_error.empty())
      report(failure::source, fmt::format("p2p: metrics endpoint {}: the snapshot failed: {}",
                                          endpoint_text(local_), source_error));
    stream.expires_after(options_.request_timeout);
    auto [write_ec, written] = co_await http::async_write(stream, res, use_nothrow);
    if (write_ec || !res.keep_alive()) break;
  }
  error_code ignored;
  beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_send, ignored);
  stream.close();
  connections_.erase(c->id);
}

}  // namespace p2p::detail
