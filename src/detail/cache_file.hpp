#pragma once
// Whole-file reads and atomic writes, for the address book's cache.

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace p2p::detail {

/// Writes `text` to `path` so that a crash leaves either the old file or the new one:
/// `path` + ".tmp" is written, flushed to disk (fsync), renamed over `path`, and the
/// directory is flushed. On error the temporary file is removed and `path` is untouched.
boost::system::error_code write_file_atomically(const std::string& path, std::string_view text);

/// The whole of `path`; `errc::file_too_large` beyond `max_bytes`.
boost::system::result<std::string> read_whole_file(const std::string& path, std::size_t max_bytes);

}  // namespace p2p::detail
