#include "detail/cache_file.hpp"

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <utility>

#include <fcntl.h>
#include <unistd.h>

namespace p2p::detail {

namespace {

using boost::system::error_code;

error_code last_error() {
  return error_code(errno, boost::system::system_category());
}

/// A descriptor closed on scope exit.
struct fd_guard {
  int fd = -1;

  ~fd_guard() {
    if (fd >= 0) ::close(fd);
  }
};

error_code write_all(int fd, std::string_view text) {
  while (!text.empty()) {
    const ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return last_error();
    }
    text.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

}  // namespace

error_code write_file_atomically(const std::string& path, std::string_view text) {
  const std::string tmp = path + ".tmp";
  error_code ec;
  {
    fd_guard f{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)};
    if (f.fd < 0) return last_error();
    ec = write_all(f.fd, text);
    if (!ec && ::fsync(f.fd) != 0) ec = last_error();
    if (!ec && ::close(std::exchange(f.fd, -1)) != 0) ec = last_error();
  }
  if (!ec && ::rename(tmp.c_str(), path.c_str()) != 0) ec = last_error();
  if (ec) {
    ::unlink(tmp.c_str());
    return ec;
  }
  // The rename itself is durable once the directory is.
  auto dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) dir = ".";
  fd_guard d{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (d.fd >= 0) ::fsync(d.fd);
  return {};
}

boost::system::result<std::string> read_whole_file(const std::string& path, std::size_t max_bytes) {
  fd_guard f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) return last_error();
  std::string out;
  char buf[64 * 1024];
  for (;;) {
    const ssize_t n = ::read(f.fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return last_error();
    }
    if (n == 0) break;
    if (out.size() + static_cast<std::size_t>(n) > max_bytes)
      return error_code(boost::system::errc::file_too_large, boost::system::generic_category());
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

}  // namespace p2p::detail
