#pragma once
/// @file host.hpp
/// Host addresses and the host lists accepted by launch, add_pool and add_active.

#include <boost/assert/source_location.hpp>
#include <boost/system/result.hpp>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace p2p {

/// A host to connect to: a DNS name or IP address, and a port.
struct host {
  /// DNS name, IPv4 address, or IPv6 address without brackets.
  std::string name;
  /// TCP port, 1..65535.
  std::uint16_t port = 0;

  /// "name:port", with brackets around an IPv6 address: "[::1]:8333".
  std::string to_string() const;

  /// Same name (case-insensitive) and port.
  friend bool operator==(const host& a, const host& b) noexcept;
};

/// Why a host string was rejected: a message that names the value.
struct host_error {
  /// E.g. "p2p: port '70000' in host '1.2.3.4:70000' is out of range 1..65535".
  std::string message;
};

/// Lets `result<host, host_error>::value()` throw `std::invalid_argument`.
///
/// Takes `boost::source_location`: that is what `boost::system::result` passes (found by ADL).
[[noreturn]] void throw_exception_from_error(const host_error& e,
                                             const boost::source_location& loc);

/// Parses "host:port", "[v6addr]:port", "v6addr" or a bare "host" (taking `default_port`).
///
/// A bare host with `default_port` 0 is an error, as are ports outside 1..65535, empty
/// names, spaces and characters no host name can hold.
boost::system::result<host, host_error> parse_host(std::string_view text,
                                                   std::uint16_t default_port);

/// One element of a host list, in any of the forms the original accepted.
struct host_entry {
  /// A "host:port" / "[v6]:port" / bare host string.
  host_entry(const char* text) : text(text ? text : "") {}

  /// A "host:port" / "[v6]:port" / bare host string.
  host_entry(std::string text) : text(std::move(text)) {}

  /// A "host:port" / "[v6]:port" / bare host string.
  host_entry(std::string_view text) : text(text) {}

  /// A (host, port) pair; the port is checked when the list is used.
  host_entry(std::string_view name, long long port) : text(name), port(port) {}

  /// A (host, port) pair.
  template <class S, class I>
  host_entry(const std::pair<S, I>& p)
      : host_entry(std::string_view(p.first), (long long)p.second) {}

  /// A {host, port} record.
  host_entry(const host& h) : text(h.name), port(h.port) {}

  /// The host text (with or without a port).
  std::string text;
  /// The separate port of the pair and record forms.
  std::optional<long long> port;
};

/// A list of hosts: one string, or a list of strings, pairs and records.
class host_list {
 public:
  /// The empty list.
  host_list() = default;

  /// A single "host:port" string.
  host_list(const char* one) : entries_{host_entry(one)} {}

  /// A single "host:port" string.
  host_list(std::string one) : entries_{host_entry(std::move(one))} {}

  /// A single record.
  host_list(const host& one) : entries_{host_entry(one)} {}

  /// A list of entries of any form.
  host_list(std::initializer_list<host_entry> entries) : entries_(entries) {}

  /// A list of entries of any form.
  host_list(std::vector<host_entry> entries) : entries_(std::move(entries)) {}

  /// A list of strings.
  host_list(const std::vector<std::string>& entries) : entries_(entries.begin(), entries.end()) {}

  /// A list of records.
  host_list(const std::vector<host>& entries) : entries_(entries.begin(), entries.end()) {}

  /// The entries as given.
  const std::vector<host_entry>& entries() const noexcept { return entries_; }

 private:
  std::vector<host_entry> entries_;
};

/// A host list checked entry by entry.
struct parsed_hosts {
  /// The valid hosts, in order, without duplicates.
  std::vector<host> hosts;
  /// One message per malformed entry, naming it.
  std::vector<std::string> errors;
};

/// Parses every entry of `list`; malformed entries go to `errors`, the rest are kept.
parsed_hosts parse_hosts(const host_list& list, std::uint16_t default_port);

}  // namespace p2p
