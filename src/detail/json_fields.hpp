#pragma once
// Checked reads of JSON fields for the address book's loader: each read names the field's
// place ("hosts[3].attempts") in the message of its error. Included by address_book.cpp only.

#include <boost/json.hpp>
#include <boost/system/result.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "text.hpp"

namespace p2p::detail {

/// A value, or a message naming what is wrong.
template <class T>
using checked = boost::system::result<T, std::string>;

/// The fields of one JSON object, at a place of the file ("" or "hosts[3]").
class json_fields {
 public:
  /// `list` is the array holding the object ("" at the top level), `index` its position.
  json_fields(const boost::json::object& o, std::string_view list = {}, std::size_t index = 0)
      : o_(o), list_(list), index_(index) {}

  /// The fields of `array[index]`, which must be an object; `list` names the array.
  static checked<json_fields> element(const boost::json::array& array, std::string_view list,
                                      std::size_t index) {
    const boost::json::value& v = array[index];
    if (const auto* o = v.if_object()) return json_fields(*o, list, index);
    return fmt::format("p2p: address book: {}[{}]: expected an object, got {}", list, index,
                       kind_name(v));
  }

  /// "p2p: address book: <place of field>: <what>".
  std::string error(std::string_view field, std::string_view what) const {
    if (list_.empty()) return fmt::format("p2p: address book: {}: {}", field, what);
    return fmt::format("p2p: address book: {}[{}].{}: {}", list_, index_, field, what);
  }

  /// The field, which must be present.
  checked<const boost::json::value*> value(std::string_view field) const {
    const auto* v = o_.if_contains(field);
    if (!v) return error(field, "missing");
    return v;
  }

  /// A string field.
  checked<const boost::json::string*> string(std::string_view field) const {
    auto v = value(field);
    if (!v) return v.error();
    if (const auto* s = (*v)->if_string()) return s;
    return wrong_kind(field, "a string", **v);
  }

  /// An array field.
  checked<const boost::json::array*> array(std::string_view field) const {
    auto v = value(field);
    if (!v) return v.error();
    if (const auto* a = (*v)->if_array()) return a;
    return wrong_kind(field, "an array", **v);
  }

  /// An integer field within `lo`..`hi`.
  checked<std::int64_t> integer(std::string_view field, std::int64_t lo, std::int64_t hi) const {
    auto v = value(field);
    if (!v) return v.error();
    auto i = as_integer(field, **v);
    if (!i) return i.error();
    if (*i < lo || *i > hi)
      return error(field, fmt::format("{} is out of range {}..{}", json_text(**v), lo, hi));
    return *i;
  }

  /// An integer field, or null (nullopt). An integer beyond int64 reads as int64's limit.
  checked<std::optional<std::int64_t>> integer_or_null(std::string_view field) const {
    auto v = value(field);
    if (!v) return v.error();
    if ((*v)->is_null()) return std::optional<std::int64_t>();
    auto i = as_integer(field, **v);
    if (!i) return i.error();
    return std::optional<std::int64_t>(*i);
  }

  /// "a string", "an object", ... for messages.
  static std::string_view kind_name(const boost::json::value& v) noexcept {
    switch (v.kind()) {
      case boost::json::kind::null:
        return "null";
      case boost::json::kind::bool_:
        return "a boolean";
      case boost::json::kind::int64:
      case boost::json::kind::uint64:
        return "an integer";
      case boost::json::kind::double_:
        return "a number with a fraction or exponent";
      case boost::json::kind::string:
        return "a string";
      case boost::json::kind::array:
        return "an array";
      case boost::json::kind::object:
        return "an object";
    }
    return "a value";
  }

 private:
  std::string wrong_kind(std::string_view field, std::string_view want,
                         const boost::json::value& v) const {
    return error(field, fmt::format("expected {}, got {}", want, kind_name(v)));
  }

  /// The value as JSON text, shortened and escaped for a message.
  static std::string json_text(const boost::json::value& v) {
    std::string text = boost::json::serialize(v);
    if (text.size() > 40) text = text.substr(0, 40) + "...";
    return escape(text);
  }

  checked<std::int64_t> as_integer(std::string_view field, const boost::json::value& v) const {
    if (const auto* i = v.if_int64()) return *i;
    if (const auto* u = v.if_uint64())  // only above int64's range: Boost.JSON prefers int64
      return static_cast<std::int64_t>(
          std::min<std::uint64_t>(*u, std::numeric_limits<std::int64_t>::max()));
    return wrong_kind(field, "an integer", v);
  }

  const boost::json::object& o_;
  std::string_view list_;
  std::size_t index_;
};

}  // namespace p2p::detail
