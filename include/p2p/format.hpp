#pragma once
/// @file format.hpp
/// `fmt::formatter` specializations for the library's printable types, so that
/// `fmt::format("{}", x)`, `fmt::print("{}", x)` and `fmt::to_string(x)` work for hosts,
/// errors, lifecycles, reports and peer ids.
///
/// Every formatter takes the format spec of a string (fill, alignment, width, precision):
/// `fmt::format("{:>20}", host)` right-aligns the host's text in 20 columns, and a range of
/// them prints with `fmt::join(hosts, ", ")`.
///
/// @note This header specializes `fmt::formatter<boost::uuids::uuid>`, for a type the
/// library does not own. An application that defines its own formatter for
/// `boost::uuids::uuid` must not include this header (nor `<p2p/p2p.hpp>`, which includes
/// it) in any translation unit of the same program: the two specializations would conflict.
///
/// @par Thread safety
/// A formatter holds only its parsed spec: format from any thread, under the same rules as
/// reading the value itself.

#include <p2p/error.hpp>
#include <p2p/host.hpp>
#include <p2p/lifecycle.hpp>
#include <p2p/peer.hpp>

#include <boost/uuid/uuid.hpp>
#include <boost/uuid/uuid_io.hpp>

#include <fmt/format.h>

#include <array>
#include <iterator>
#include <string_view>

// The members are templates on the context, not `format_context&` only: fmt 9's
// `fmt::to_string(x)` formats through a context of its own.

/// Formats a host as its `to_string()`: "1.2.3.4:8333", "[::1]:18444".
template <>
struct fmt::formatter<p2p::host> : fmt::formatter<std::string_view> {
  /// Writes `h.to_string()` with the parsed fill, alignment and width.
  template <class FormatContext>
  auto format(const p2p::host& h, FormatContext& ctx) const -> decltype(ctx.out()) {
    return formatter<std::string_view>::format(h.to_string(), ctx);
  }
};

/// Formats an error as its message, the text of `make_error_code(e).message()`.
template <>
struct fmt::formatter<p2p::error> : fmt::formatter<std::string_view> {
  /// Writes the error's message with the parsed fill, alignment and width.
  template <class FormatContext>
  auto format(p2p::error e, FormatContext& ctx) const -> decltype(ctx.out()) {
    return formatter<std::string_view>::format(p2p::make_error_code(e).message(), ctx);
  }
};

/// Formats a condition as its message, the text of `make_error_condition(c).message()`.
template <>
struct fmt::formatter<p2p::condition> : fmt::formatter<std::string_view> {
  /// Writes the condition's message with the parsed fill, alignment and width.
  template <class FormatContext>
  auto format(p2p::condition c, FormatContext& ctx) const -> decltype(ctx.out()) {
    return formatter<std::string_view>::format(p2p::make_error_condition(c).message(), ctx);
  }
};

/// Formats a peer's lifecycle as its `to_string()`: "created", "open", "closed", ...
template <>
struct fmt::formatter<p2p::peer_lifecycle> : fmt::formatter<std::string_view> {
  /// Writes `to_string(s)` with the parsed fill, alignment and width.
  template <class FormatContext>
  auto format(p2p::peer_lifecycle s, FormatContext& ctx) const -> decltype(ctx.out()) {
    return formatter<std::string_view>::format(p2p::to_string(s), ctx);
  }
};

/// Formats a manager's state as its `to_string()`: "new", "launching", "running", "shutdown".
template <>
struct fmt::formatter<p2p::manager_state> : fmt::formatter<std::string_view> {
  /// Writes `to_string(s)` with the parsed fill, alignment and width.
  template <class FormatContext>
  auto format(p2p::manager_state s, FormatContext& ctx) const -> decltype(ctx.out()) {
    return formatter<std::string_view>::format(p2p::to_string(s), ctx);
  }
};

/// Formats a severity as its `to_string()`: "info", "notice", "warning", "error".
template <>
struct fmt::formatter<p2p::severity> : fmt::formatter<std::string_view> {
  /// Writes `to_string(s)` with the parsed fill, alignment and width.
  template <class FormatContext>
  auto format(p2p::severity s, FormatContext& ctx) const -> decltype(ctx.out()) {
    return formatter<std::string_view>::format(p2p::to_string(s), ctx);
  }
};

/// Formats a report as its severity, a colon and its message: "warning: text".
template <>
struct fmt::formatter<p2p::report> : fmt::formatter<std::string_view> {
  /// Writes "level: message"; fill, alignment and width apply to the whole text.
  template <class FormatContext>
  auto format(const p2p::report& r, FormatContext& ctx) const -> decltype(ctx.out()) {
    // Built whole first, so that a width pads "level: message" as one text.
    fmt::memory_buffer text;
    fmt::format_to(std::back_inserter(text), "{}: {}", p2p::to_string(r.level), r.message);
    return formatter<std::string_view>::format(std::string_view(text.data(), text.size()), ctx);
  }
};

/// Formats a UUID (a peer's `id()`) in its canonical 36-character lower-case form,
/// "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", as `boost::uuids::to_string` writes it.
///
/// @note A specialization for a type of boost's: see the file's note about applications that
/// define their own.
template <>
struct fmt::formatter<boost::uuids::uuid> : fmt::formatter<std::string_view> {
  /// Writes the canonical form with the parsed fill, alignment and width.
  template <class FormatContext>
  auto format(const boost::uuids::uuid& id, FormatContext& ctx) const -> decltype(ctx.out()) {
    std::array<char, 36> text;  // on the stack: ids go on many log lines
    boost::uuids::to_chars(id, text.data());
    return formatter<std::string_view>::format(std::string_view(text.data(), text.size()), ctx);
  }
};
