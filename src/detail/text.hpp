#pragma once
// Private text helpers shared by the codec and host parsing.

#include <cstdint>
#include <string>
#include <string_view>

namespace p2p::detail {

/// True for printable ASCII (0x20..0x7E), the bytes a command may hold.
constexpr bool is_printable(unsigned char c) noexcept {
  return c >= 0x20 && c <= 0x7e;
}

/// `text` with every non-printable byte and backslash written as an escape (`\x01`, `\\`),
/// so error messages show exactly what was given.
inline std::string escape(std::string_view text) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\\') {
      out += "\\\\";
    } else if (is_printable(c)) {
      out.push_back(ch);
    } else {
      out += "\\x";
      out.push_back(digits[c >> 4]);
      out.push_back(digits[c & 0x0f]);
    }
  }
  return out;
}

/// ASCII lower-case of one character (locale-independent).
constexpr char to_lower(char c) noexcept {
  return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c;
}

}  // namespace p2p::detail
