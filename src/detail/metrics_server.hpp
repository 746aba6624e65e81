#pragma once
// The optional HTTP endpoint that serves a manager's snapshot: GET /metrics (Prometheus text
// exposition) and GET /peers (JSON). Beast stays in metrics_server.cpp.

#include <p2p/stats.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>

#include <bitset>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

namespace p2p::detail {

/// Bounds of the metrics endpoint.
struct metrics_server_options {
  /// Connections open at once; more are accepted and closed at once.
  std::size_t max_connections = 16;
  /// Bound on a request's header, and on header and body together: a larger one gets 431
  /// (header) or 413 (body) and the connection is closed.
  std::size_t max_request_bytes = 8192;
  /// Time for reading one request, and for writing its response; a connection idle (or slow)
  /// past it is closed.
  std::chrono::milliseconds request_timeout{std::chrono::seconds(10)};
};

/// An HTTP/1.1 server for a snapshot source: `GET /metrics` gives `to_prometheus`,
/// `GET /peers` gives `to_json` (HEAD likewise, without the body); another method gets 405,
/// another path 404, a source that has no snapshot 503. A query string is ignored.
///
/// @par Thread safety
/// All its work runs on a strand of its own; `local_endpoint` and `stop` may be called from
/// any thread.
/// @par Lifetimes
/// Owned by `shared_ptr`; its coroutines hold it, so it lives until `stop()` has closed the
/// listener and every connection has ended. Without `stop()` it serves for as long as the
/// io_context runs. Nothing it does throws out of `io_context::run()`: failures go to the
/// reporter, at most once per kind of failure.
class metrics_server : public std::enable_shared_from_this<metrics_server> {
  struct passkey {};

 public:
  /// Gives the snapshot to serve; nullopt gives 503. Called once per /metrics or /peers
  /// request, on the server's strand.
  using source = std::function<boost::asio::awaitable<std::optional<manager_snapshot>>()>;
  /// Takes one line for a warning report. May be an empty function.
  using reporter = std::function<void(std::string)>;

  /// Opens, binds and listens on `ep` now, and starts accepting on `ex`.
  /// @throws boost::system::system_error naming the endpoint when it cannot listen there.
  static std::shared_ptr<metrics_server> start(boost::asio::any_io_executor ex,
                                               const boost::asio::ip::tcp::endpoint& ep, source src,
                                               reporter rep = {}, metrics_server_options o = {});

  /// Use `start`.
  metrics_server(passkey, boost::asio::any_io_executor ex, source src, reporter rep,
                 metrics_server_options o);

  /// Where it listens (the port chosen when `ep` had port 0). Any thread.
  boost::asio::ip::tcp::endpoint local_endpoint() const { return local_; }

  /// Closes the listener and every open connection (posted to the strand). Any thread;
  /// idempotent.
  void stop();

 private:
  struct connection;
  /// Kinds of failure, each reported at most once.
  enum class failure : std::size_t {
    accept,
    connection_limit,
    oversized_request,
    bad_request,
    source,
    internal,
    count_
  };

  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> serve(std::shared_ptr<connection> c);
  void do_stop();
  void report(failure kind, std::string line);
  void spawn(boost::asio::awaitable<void> op);

  boost::asio::strand<boost::asio::any_io_executor> strand_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::ip::tcp::endpoint local_;
  source source_;
  reporter reporter_;
  metrics_server_options options_;
  // Strand only, from here on.
  bool stopped_ = false;
  std::uint64_t next_id_ = 0;
  std::unordered_map<std::uint64_t, std::shared_ptr<connection>> connections_;
  std::bitset<static_cast<std::size_t>(failure::count_)> reported_;
};

}  // namespace p2p::detail
