#include <p2p/options.hpp>

#include <boost/asio/ip/address.hpp>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <stdexcept>
#include <string_view>

#include "detail/listen_endpoint.hpp"
#include "detail/text.hpp"

namespace p2p {

namespace {

/// Largest payload a frame's u32 length field can declare.
constexpr std::size_t max_frame_payload = 0xFFFF'FFFF;

[[noreturn]] void reject(std::string message) {
  throw std::invalid_argument(std::move(message));
}

void require_positive(std::string_view name, std::chrono::milliseconds value) {
  if (value.count() <= 0) reject(fmt::format("p2p: {} ({}) must be positive", name, value));
}

void check_frame_limits(std::size_t max_message_size, std::size_t max_send_buffer) {
  if (max_message_size == 0 || max_message_size > max_frame_payload)
    reject(fmt::format("p2p: max_message_size ({}) is out of range 1..{}", max_message_size,
                       max_frame_payload));
  if (max_send_buffer < header_size)
    reject(fmt::format("p2p: max_send_buffer ({}) is smaller than one frame header ({} bytes)",
                       max_send_buffer, header_size));
}

/// A DNS server is an IP address with an optional port: "1.2.3.4", "1.2.3.4:53", "[::1]:53".
void check_dns_servers(const std::vector<std::string>& servers) {
  for (const auto& text : servers) {
    auto h = parse_host(text, 53);
    boost::system::error_code ec;
    if (h) boost::asio::ip::make_address(h->name, ec);
    if (!h || ec)
      reject(fmt::format("p2p: dns_servers entry '{}' is not an IP address with an optional port",
                         detail::escape(text)));
  }
}

void check_keepalive(std::chrono::milliseconds interval, std::chrono::milliseconds timeout) {
  if (interval.count() < 0)
    reject(fmt::format("p2p: ping_interval ({}) is negative; 0 turns pings off", interval));
  require_positive("ping_timeout", timeout);
}

}  // namespace

namespace detail {

std::optional<boost::asio::ip::tcp::endpoint> parse_listen_endpoint(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon + 1 == text.size()) return std::nullopt;
  std::string_view addr = text.substr(0, colon);
  const std::string_view port_text = text.substr(colon + 1);
  if (addr.size() >= 2 && addr.front() == '[' && addr.back() == ']')
    addr = addr.substr(1, addr.size() - 2);
  else if (addr.find(':') != std::string_view::npos)
    return std::nullopt;  // an IPv6 address needs brackets
  unsigned port = 0;
  for (char c : port_text) {
    if (c < '0' || c > '9' || port_text.size() > 5) return std::nullopt;
    port = port * 10 + static_cast<unsigned>(c - '0');
  }
  if (port > 65535) return std::nullopt;
  boost::system::error_code ec;
  const auto a = boost::asio::ip::make_address(std::string(addr), ec);
  if (ec) return std::nullopt;
  return boost::asio::ip::tcp::endpoint(a, static_cast<std::uint16_t>(port));
}

}  // namespace detail

void peer_options::validate() const {
  check_frame_limits(max_message_size, max_send_buffer);
  require_positive("connect_timeout", connect_timeout);
  require_positive("disconnect_timeout", disconnect_timeout);
  check_keepalive(ping_interval, ping_timeout);
  check_dns_servers(dns_servers);
}

peer_options manager_options::peer() const {
  peer_options p;
  p.magic = magic;
  p.max_message_size = max_message_size;
  p.max_send_buffer = max_send_buffer;
  p.max_garbage = max_garbage;
  p.connect_timeout = connect_timeout;
  p.disconnect_timeout = disconnect_timeout;
  p.dns_servers = dns_servers;
  p.ping_interval = ping_interval;
  p.ping_timeout = ping_timeout;
  p.require_pong = require_pong;
  p.answer_pings = answer_pings;
  p.collect_stats = collect_stats;
  return p;
}

std::size_t manager_options::inbound_limit() const noexcept {
  if (max_inbound) return *max_inbound;
  return max_peers > min_peers ? max_peers - min_peers : 0;
}

void manager_options::validate() const {
  if (max_peers == 0) reject("p2p: max_peers is 0; at least one peer must be allowed");
  if (min_peers > max_peers)
    reject(fmt::format("p2p: min_peers ({}) is greater than max_peers ({})", min_peers, max_peers));
  if (port == 0 && !listen)
    reject(
        "p2p: port is 0 with listen = false; without a listener the port is the default port "
        "to dial, which must be 1..65535");
  require_positive("idle_timeout", idle_timeout);
  require_positive("connect_timeout", connect_timeout);
  require_positive("disconnect_timeout", disconnect_timeout);
  require_positive("check_interval", check_interval);
  require_positive("status_interval", status_interval);
  require_positive("bar_duration", bar_duration);
  require_positive("handshake_timeout", handshake_timeout);
  require_positive("cache_interval", cache_interval);
  check_keepalive(ping_interval, ping_timeout);
  check_dns_servers(dns_servers);
  if (!metrics_address.empty() && !detail::parse_listen_endpoint(metrics_address))
    reject(fmt::format("p2p: metrics_address '{}' is not IP:PORT (port 0..65535, IPv6 in brackets)",
                       detail::escape(metrics_address)));
  book.validate();
  check_frame_limits(max_message_size, max_send_buffer);
  if (max_inbound && *max_inbound > max_peers)
    reject(fmt::format("p2p: max_inbound ({}) is greater than max_peers ({})", *max_inbound,
                       max_peers));
  if (max_inbound_per_host && *max_inbound_per_host == 0)
    reject("p2p: max_inbound_per_host is 0; leave it unset for no per-address limit");
  if (listen) {
    boost::system::error_code ec;
    boost::asio::ip::make_address(listen_address, ec);
    if (ec)
      reject(fmt::format("p2p: listen_address '{}' is not an IP address",
                         detail::escape(listen_address)));
  }
}

namespace {

boost::asio::awaitable<boost::system::error_code> run_throwing_hook(
    std::function<boost::asio::awaitable<void>(std::shared_ptr<peer>)> f, std::shared_ptr<peer> p) {
  co_await f(std::move(p));
  co_return boost::system::error_code{};
}

}  // namespace

handshake_hook::function_type handshake_hook::adapt(
    std::function<boost::asio::awaitable<void>(std::shared_ptr<peer>)> f) {
  return [f = std::move(f)](std::shared_ptr<peer> p) { return run_throwing_hook(f, std::move(p)); };
}

}  // namespace p2p
