#include <p2p/host.hpp>

#include <boost/asio/ip/address_v6.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "detail/text.hpp"

namespace p2p {

namespace {

/// Longest DNS name (RFC 1035, without the trailing dot).
constexpr std::size_t max_name_length = 253;

/// A parsed host, and whether its text carried a port of its own.
struct parsed_host {
  host value;
  bool had_port = false;
};

using parse_result = boost::system::result<parsed_host, host_error>;

host_error make_error(std::string message) {
  return host_error{std::move(message)};
}

bool is_name_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

bool is_ipv6(std::string_view text) {
  // Only hex digits, ':' and '.' (IPv4 tail): Asio's parser stops at a NUL and accepts any
  // "%scope" text, both of which let malformed names through (found by fuzz_hosts).
  if (text.empty() || text.size() > 45) return false;
  for (char c : text)
    if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') return false;
  boost::system::error_code ec;
  boost::asio::ip::make_address_v6(std::string(text), ec);
  return !ec;
}

boost::system::result<std::uint16_t, host_error> parse_port(std::string_view port,
                                                            std::string_view text) {
  if (port.empty())
    return make_error(fmt::format("p2p: host '{}' has an empty port", detail::escape(text)));
  if (!std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return make_error(fmt::format("p2p: port '{}' in host '{}' is not a decimal number",
                                  detail::escape(port), detail::escape(text)));
  // More than 5 digits is out of range whatever they are; this also bounds the arithmetic.
  unsigned long value = 0;
  if (port.size() <= 5)
    for (char c : port) value = value * 10 + static_cast<unsigned long>(c - '0');
  if (port.size() > 5 || value < 1 || value > 65535)
    return make_error(fmt::format("p2p: port '{}' in host '{}' is out of range 1..65535", port,
                                  detail::escape(text)));
  return static_cast<std::uint16_t>(value);
}

boost::system::result<void, host_error> check_name(std::string_view name, std::string_view text) {
  if (name.empty())
    return make_error(fmt::format("p2p: host '{}' has an empty name", detail::escape(text)));
  if (name.size() > max_name_length)
    return make_error(fmt::format("p2p: host name in '{}' is {} characters; limit {}",
                                  detail::escape(text), name.size(), max_name_length));
  const auto bad = std::find_if_not(name.begin(), name.end(), is_name_char);
  if (bad != name.end())
    return make_error(
        fmt::format("p2p: host '{}' has '{}' in its name; a host name holds only letters, "
                    "digits, '.', '-' and '_'",
                    detail::escape(text), detail::escape(std::string_view(&*bad, 1))));
  return {};
}

parse_result parse(std::string_view text, std::uint16_t default_port) {
  std::string_view name;
  std::optional<std::string_view> port;
  if (text.empty()) return make_error("p2p: host '' is empty");
  if (text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos)
      return make_error(
          fmt::format("p2p: host '{}' has '[' without a matching ']'", detail::escape(text)));
    name = text.substr(1, close - 1);
    if (!is_ipv6(name))
      return make_error(fmt::format("p2p: '{}' in host '{}' is not a valid IPv6 address",
                                    detail::escape(name), detail::escape(text)));
    const auto rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':')
        return make_error(fmt::format("p2p: host '{}' has '{}' after ']'; expected ':port'",
                                      detail::escape(text), detail::escape(rest)));
      port = rest.substr(1);
    }
  } else if (const auto colons = std::count(text.begin(), text.end(), ':'); colons > 1) {
    // Several colons without brackets can only be a bare IPv6 address, which has no port.
    if (!is_ipv6(text))
      return make_error(
          fmt::format("p2p: host '{}' is not a valid IPv6 address (an IPv6 address with a port is "
                      "written '[address]:port')",
                      detail::escape(text)));
    name = text;
  } else {
    const auto colon = text.find(':');
    name = text.substr(0, colon);
    if (colon != std::string_view::npos) port = text.substr(colon + 1);
    if (auto ok = check_name(name, text); !ok) return ok.error();
  }

  parsed_host out;
  out.value.name = std::string(name);
  out.had_port = port.has_value();
  if (port) {
    auto p = parse_port(*port, text);
    if (!p) return p.error();
    out.value.port = *p;
  } else if (default_port == 0) {
    return make_error(
        fmt::format("p2p: host '{}' has no port and there is no default port to give it",
                    detail::escape(text)));
  } else {
    out.value.port = default_port;
  }
  return out;
}

}  // namespace

std::string host::to_string() const {
  if (name.find(':') != std::string::npos) return fmt::format("[{}]:{}", name, port);
  return fmt::format("{}:{}", name, port);
}

bool operator==(const host& a, const host& b) noexcept {
  return a.port == b.port &&
         std::equal(a.name.begin(), a.name.end(), b.name.begin(), b.name.end(),
                    [](char x, char y) { return detail::to_lower(x) == detail::to_lower(y); });
}

void throw_exception_from_error(const host_error& e, const boost::source_location&) {
  throw std::invalid_argument(e.message);
}

boost::system::result<host, host_error> parse_host(std::string_view text,
                                                   std::uint16_t default_port) {
  auto r = parse(text, default_port);
  if (!r) return r.error();
  return std::move(r->value);
}

parsed_hosts parse_hosts(const host_list& list, std::uint16_t default_port) {
  parsed_hosts out;
  for (const host_entry& entry : list.entries()) {
    parse_result r = make_error("");
    if (entry.port) {
      const long long port = *entry.port;
      if (port < 1 || port > 65535) {
        out.errors.push_back(fmt::format("p2p: port {} of host '{}' is out of range 1..65535", port,
                                         detail::escape(entry.text)));
        continue;
      }
      r = parse(entry.text, static_cast<std::uint16_t>(port));
      if (r && r->had_port) {
        out.errors.push_back(
            fmt::format("p2p: host '{}' has a port of its own and is also given port {}",
                        detail::escape(entry.text), port));
        continue;
      }
    } else {
      r = parse(entry.text, default_port);
    }
    if (!r) {
      out.errors.push_back(std::move(r.error().message));
      continue;
    }
    if (std::find(out.hosts.begin(), out.hosts.end(), r->value) == out.hosts.end())
      out.hosts.push_back(std::move(r->value));
  }
  return out;
}

}  // namespace p2p
