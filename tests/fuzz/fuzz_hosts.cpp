// libFuzzer target for host parsing: p2p::parse_host and p2p::parse_hosts.
//
// The input is text. For it, with default ports 0 and 8333, this checks that:
// - parse_host never crashes, and a success has a non-empty name, a port in 1..65535, and a
//   name with no space, control byte or NUL (host.hpp: "spaces and characters no host name
//   can hold" are errors);
// - a success round-trips: parse_host(h.to_string(), 0) == h;
// - parse_hosts on the input split into lines keeps exactly the lines parse_host accepts, in
//   order and without duplicates, and gives one error per other line;
// - the pair form {name, port} agrees with parsing "name" with that default port.
// A failed check prints the value and aborts, which libFuzzer reports as a crash.

#include <p2p/host.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "detail/text.hpp"

namespace {

[[noreturn]] void fail(const char* what, std::string_view text) {
  std::fprintf(stderr, "fuzz_hosts: %s; input '%s'\n", what, p2p::detail::escape(text).c_str());
  std::abort();
}

void check(bool ok, const char* what, std::string_view text) {
  if (!ok) fail(what, text);
}

void check_host(std::string_view text, std::uint16_t default_port) {
  const auto r = p2p::parse_host(text, default_port);
  if (!r) {
    check(!r.error().message.empty(), "an error without a message", text);
    return;
  }
  const p2p::host& h = *r;
  check(!h.name.empty(), "a host with an empty name", text);
  check(h.port != 0, "a host with port 0", text);
  check(std::all_of(h.name.begin(), h.name.end(),
                    [](char c) { return c != ' ' && p2p::detail::is_printable(c); }),
        "a host name with a space, a control byte or a non-ASCII byte", text);
  const std::string again = h.to_string();
  const auto back = p2p::parse_host(again, 0);
  if (!back)
    fail(("to_string() gives '" + p2p::detail::escape(again) + "', which does not parse: " +
          back.error().message)
             .c_str(),
         text);
  check(*back == h, "to_string() does not round-trip", text);
  check(back->to_string() == again, "to_string() is not stable", text);
}

std::vector<std::string> lines(std::string_view text) {
  std::vector<std::string> out;
  for (;;) {
    const auto eol = text.find('\n');
    out.emplace_back(text.substr(0, eol));
    if (eol == std::string_view::npos) return out;
    text.remove_prefix(eol + 1);
  }
}

void check_list(std::string_view text, std::uint16_t default_port) {
  const std::vector<std::string> entries = lines(text);
  const p2p::parsed_hosts got = p2p::parse_hosts(p2p::host_list(entries), default_port);
  std::vector<p2p::host> want;
  std::size_t errors = 0;
  for (const std::string& entry : entries) {
    const auto r = p2p::parse_host(entry, default_port);
    if (!r) {
      ++errors;
    } else if (std::find(want.begin(), want.end(), *r) == want.end()) {
      want.push_back(*r);
    }
  }
  check(got.errors.size() == errors, "parse_hosts error count differs from parse_host", text);
  check(got.hosts == want, "parse_hosts hosts differ from parse_host", text);
}

void check_pair(std::string_view text) {
  // The first line is the name, the rest a decimal port (possibly out of range).
  const auto eol = text.find('\n');
  if (eol == std::string_view::npos) return;
  const std::string_view name = text.substr(0, eol);
  const std::string_view digits = text.substr(eol + 1, 12);
  if (digits.empty() ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return;
  const long long port = std::stoll(std::string(digits));
  const p2p::parsed_hosts got =
      p2p::parse_hosts(p2p::host_list{p2p::host_entry(name, port)}, 8333);
  check(got.hosts.size() + got.errors.size() == 1, "a pair gives not exactly one result", text);
  if (port < 1 || port > 65535) {
    check(got.hosts.empty(), "a pair with an out-of-range port was accepted", text);
    return;
  }
  const auto alone = p2p::parse_host(name, static_cast<std::uint16_t>(port));
  if (!got.hosts.empty()) {
    check(alone && *alone == got.hosts[0], "a pair's host differs from parse_host", text);
    check(got.hosts[0].port == port, "a pair's host lost its port", text);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (std::uint16_t default_port : {std::uint16_t{0}, std::uint16_t{8333}}) {
    check_host(text, default_port);
    check_list(text, default_port);
  }
  check_pair(text);
  return 0;
}
