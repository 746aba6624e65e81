// Peer property values, severities, and the peer's event signals.

#include <p2p/peer.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace p2p {

namespace {

bool equal_ci(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
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

namespace detail {

std::string exception_text(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what()[0] ? x.what() : "exception";
  } catch (...) {
    return "unknown exception";
  }
}

}  // namespace detail

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

peer_events::peer_events() {
  wire(state_change, "state_change");
  wire(connect, "connect");
  wire(end, "end");
  wire(error, "error");
  wire(close, "close");
  wire(message, "message");
  wire(report, "report");
}

signal<p2p::message>& peer_events::command(std::string_view command) {
  return command_signal(commands_, command);
}

void peer_events::emit_message(const p2p::message& m) {
  message.emit(m);
  if (auto it = commands_.find(m.command); it != commands_.end()) it->second.emit(m);
}

}  // namespace p2p
