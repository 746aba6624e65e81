#pragma once
/// @file answers.hpp
/// What `peer_manager::send` sent to, and how to co_await the answers.

#include <p2p/message.hpp>
#include <p2p/peer.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/uuid/uuid.hpp>

#include <chrono>
#include <concepts>
#include <cstddef>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace p2p {

namespace detail {
class answer_collector;
}  // namespace detail

struct answers;

namespace detail {
/// The wait of `sent_messages::wait`, on the collector's strand.
boost::asio::awaitable<op_result<answers>> wait_for_answers(
    std::shared_ptr<answer_collector> collector, std::chrono::milliseconds timeout,
    std::size_t quorum);

/// Completes `token` at once with `(error_code{}, value)` on its associated executor.
template <class T, class Token>
auto async_ready(T value, Token&& token) {
  namespace asio = boost::asio;
  return asio::async_initiate<Token, void(boost::system::error_code, T)>(
      [](auto handler, T value) {
        auto ex = asio::get_associated_executor(handler);
        asio::post(ex, [h = std::move(handler), v = std::move(value)]() mutable {
          std::move(h)(boost::system::error_code{}, std::move(v));
        });
      },
      token, std::move(value));
}
}  // namespace detail

/// `send(all, ...)`: every matching peer.
constexpr int all = 0;

/// The values a property may equal for a peer to be selected ("any of them").
class match_values {
 public:
  /// One value.
  template <class T>

  requires std::constructible_from<property, T> match_values(T&& v)
      : values_{property(std::forward<T>(v))} {}

  /// Any of several values.
  match_values(std::initializer_list<property> values) : values_(values) {}

  /// Any of several values.
  match_values(std::vector<property> values) : values_(std::move(values)) {}

  /// True if `v` matches one of the values.
  bool matches(const property& v) const noexcept;

  /// The values.
  const std::vector<property>& values() const noexcept { return values_; }

 private:
  std::vector<property> values_;
};

/// How answers to a send are recognised (the seed's three patterns).
struct answer_spec {
  /// No answers expected.
  answer_spec() = default;

  /// Pattern 1: one `command` message from each chosen peer.
  answer_spec(const char* command) : command(command ? command : "") {}

  /// Pattern 1: one `command` message from each chosen peer.
  answer_spec(std::string command) : command(std::move(command)) {}

  /// Pattern 2: the first message from each chosen peer that `accept` takes.
  static answer_spec matching(std::function<bool(const message&)> accept);

  /// Pattern 3: `command` messages from any active peer, one per peer.
  static answer_spec from_any_peer(std::string command);

  /// The answer command (patterns 1 and 3).
  std::string command;
  /// The filter (pattern 2).
  std::function<bool(const message&)> accept;
  /// Count answers from every peer, not only the chosen ones (pattern 3).
  bool any_peer = false;

  /// True if answers are to be collected.
  bool expects_answers() const noexcept { return !command.empty() || bool(accept); }
};

/// What became of one peer asked.
enum class answer_status {
  answered,   ///< It answered.
  timed_out,  ///< The wait ended before it answered.
  closed,     ///< It closed before answering.
};

/// One answer.
struct answer {
  /// Who answered.
  std::shared_ptr<p2p::peer> peer;
  /// The answer.
  message msg;
  /// When it arrived, from the send.
  std::chrono::steady_clock::duration after{};
};

/// The outcome of waiting for answers.
struct answers {
  /// The answers in arrival order (pattern 3: possibly from peers not asked).
  std::vector<answer> answered;
  /// Chosen peers that had not answered when the wait ended.
  std::vector<std::shared_ptr<peer>> timed_out;
  /// Chosen peers that closed before answering.
  std::vector<std::shared_ptr<peer>> closed;
  /// Time from the send to the end of the wait.
  std::chrono::steady_clock::duration elapsed{};

  /// What became of the chosen peer `id`.
  answer_status status_of(const boost::uuids::uuid& id) const;
};

/// The peers one `send` went to, keyed by UUID; also how to await their answers.
///
/// Answers are collected from the moment of the send, so none is lost before the
/// `co_await`. Destroying this object stops the collection and removes every subscription.
/// @par Thread safety
/// `peers()` and friends: any thread (immutable). `wait`: any thread.
class sent_messages {
 public:
  /// Nothing sent.
  sent_messages() = default;
  /// Used by the manager: `strand` is the manager's, where the collector lives.
  sent_messages(std::map<boost::uuids::uuid, std::shared_ptr<peer>> peers,
                std::shared_ptr<detail::answer_collector> collector, peer::executor_type strand);
  sent_messages(sent_messages&&) noexcept;
  sent_messages& operator=(sent_messages&&) noexcept;
  sent_messages(const sent_messages&) = delete;
  sent_messages& operator=(const sent_messages&) = delete;
  ~sent_messages();

  /// The peers sent to, keyed by UUID.
  const std::map<boost::uuids::uuid, std::shared_ptr<peer>>& peers() const noexcept {
    return peers_;
  }

  /// Number of peers sent to.
  std::size_t size() const noexcept { return peers_.size(); }

  /// True when no peer matched.
  bool empty() const noexcept { return peers_.empty(); }

  /// True if the peer `id` was sent to.
  bool contains(const boost::uuids::uuid& id) const noexcept { return peers_.contains(id); }

  /// Waits until every chosen peer answered or closed, or `quorum` answers came (if
  /// non-zero; with `answer_spec::from_any_peer`, answers from peers not asked count toward
  /// it), or `timeout` passed. Collection then ends.
  ///
  /// Completes with `void(error_code, answers)`. Running out of time is an expected outcome,
  /// not an error: the answers list who timed out. Without an `answer_spec` at send time it
  /// completes at once with every peer timed out; a second wait while one is running
  /// completes with `asio::error::already_started`. A default-constructed result (not from
  /// `send`) completes at once on the token's associated executor.
  /// @throws std::invalid_argument for a negative timeout.
  /// @par Per-Operation Cancellation
  /// Terminal, partial and total: completes with `operation_aborted` and the answers
  /// collected so far; the collection ends.
  template <class Token = default_token>
  auto wait(std::chrono::milliseconds timeout, std::size_t quorum = 0, Token&& token = {}) {
    check_timeout(timeout);
    if (!collector_ || !strand_) return detail::async_ready(answers{}, std::forward<Token>(token));
    return detail::async_run(*strand_, detail::wait_for_answers(collector_, timeout, quorum),
                             std::forward<Token>(token));
  }

 private:
  static void check_timeout(std::chrono::milliseconds timeout);

  std::map<boost::uuids::uuid, std::shared_ptr<peer>> peers_;
  std::shared_ptr<detail::answer_collector> collector_;
  std::optional<peer::executor_type> strand_;
};

}  // namespace p2p
