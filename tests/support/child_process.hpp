#pragma once
// The example programs as child processes: build/<cfg>/examples/<name>, its stdout and
// stderr on one pipe, every wait bounded, killed if still running when the test lets go.

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace p2p::test {

using std::chrono::milliseconds;
using std::chrono::steady_clock;
using namespace std::chrono_literals;

/// build/<cfg>/tests/p2p_tests → build/<cfg>/examples/<name>.
inline std::string example_path(const std::string& name) {
  auto self = std::filesystem::read_symlink("/proc/self/exe");
  return (self.parent_path().parent_path() / "examples" / name).string();
}

/// A child process with stdout and stderr on one pipe; killed if still running when
/// destroyed.
class child {
 public:
  explicit child(const std::string& name, std::vector<std::string> args) {
    const std::string path = example_path(name);
    // A missing binary is a failure, not a skip: the examples are part of the build.
    REQUIRE(std::filesystem::exists(path));
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    std::vector<std::string> all{path};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = ::posix_spawn(&pid_, path.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(fds[1]);
    fd_ = fds[0];
    REQUIRE(rc == 0);
    command_ = fmt::format("{}", fmt::join(all, " "));
  }

  child(const child&) = delete;
  child& operator=(const child&) = delete;

  ~child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (fd_ >= 0) ::close(fd_);
  }

  /// The next output line, or nullopt at EOF or after `limit`.
  std::optional<std::string> read_line(milliseconds limit) {
    const auto deadline = steady_clock::now() + limit;
    for (;;) {
      if (auto nl = pending_.find('\n'); nl != std::string::npos) {
        std::string line = pending_.substr(0, nl);
        pending_.erase(0, nl + 1);
        return line;
      }
      if (!read_some(deadline)) return std::nullopt;
    }
  }

  /// Waits for the exit (reading all output); after `limit` kills it and returns -1.
  int wait(milliseconds limit) {
    const auto deadline = steady_clock::now() + limit;
    while (read_some(deadline)) {
    }
    int status = 0;
    for (;;) {
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) break;
      if (steady_clock::now() >= deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        UNSCOPED_INFO("killed after " << limit.count() << " ms: " << command_);
        return -1;
      }
      ::usleep(10'000);
    }
    pid_ = -1;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
  }

  void signal(int sig) { ::kill(pid_, sig); }

  /// Everything the child printed so far.
  const std::string& output() const { return output_; }

  const std::string& command() const { return command_; }

 private:
  /// Reads one chunk; false at EOF or at the deadline.
  bool read_some(steady_clock::time_point deadline) {
    if (fd_ < 0) return false;
    auto left = std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now());
    if (left <= 0ms) return false;
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) return true;
    if (r <= 0) return false;
    char buf[4096];
    ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n <= 0) {
      ::close(fd_);
      fd_ = -1;
      return false;
    }
    output_.append(buf, static_cast<std::size_t>(n));
    pending_.append(buf, static_cast<std::size_t>(n));
    return true;
  }

  pid_t pid_ = -1;
  int fd_ = -1;
  std::string command_;
  std::string output_;
  std::string pending_;
};

/// Runs an example to completion within `limit`; returns (exit status, output).
inline std::pair<int, std::string> run(const std::string& name, std::vector<std::string> args,
                                       milliseconds limit) {
  child c(name, std::move(args));
  int rc = c.wait(limit);
  INFO(c.command() << "\n" << c.output());
  return {rc, c.output()};
}

}  // namespace p2p::test
