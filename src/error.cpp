#include <p2p/error.hpp>

#include <boost/system/errc.hpp>

#include <string>

namespace p2p {

namespace {

class error_codes final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "p2p"; }

  std::string message(int ev) const override {
    switch (static_cast<error>(ev)) {
      case error::oversized_message:
        return "frame header declared a payload larger than max_message_size";
      case error::bad_checksum:
        return "frame checksum did not match its payload; the frame was dropped";
      case error::bad_command:
        return "frame command field was not printable ASCII padded with NULs";
      case error::too_much_garbage:
        return "too many bytes arrived that were not part of a valid frame";
      case error::send_buffer_overflow:
        return "the peer does not read and its send queue passed max_send_buffer";
      case error::connect_timeout:
        return "the connect did not complete within connect_timeout";
      case error::disconnect_timeout:
        return "the graceful disconnect did not finish within disconnect_timeout";
      case error::handshake_failed:
        return "the handshake hook failed";
      case error::handshake_timeout:
        return "the handshake hook did not finish within handshake_timeout";
      case error::idle_timeout:
        return "the peer sent nothing for longer than idle_timeout";
      case error::peer_closed:
        return "the peer is closed or closing";
      case error::shutting_down:
        return "the manager is shutting down";
      case error::timeout:
        return "the operation did not complete within its timeout";
    }
    return "p2p error " + std::to_string(ev);
  }

  boost::system::error_condition default_error_condition(int ev) const noexcept override {
    switch (static_cast<error>(ev)) {
      case error::oversized_message:
      case error::bad_checksum:
      case error::bad_command:
      case error::too_much_garbage:
        return condition::protocol_violation;
      case error::connect_timeout:
      case error::disconnect_timeout:
      case error::handshake_timeout:
      case error::idle_timeout:
      case error::timeout:
        return condition::timeout;
      default:
        return {ev, *this};
    }
  }
};

class error_conditions final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "p2p.condition"; }

  std::string message(int cv) const override {
    switch (static_cast<condition>(cv)) {
      case condition::protocol_violation:
        return "the remote broke the wire protocol";
      case condition::timeout:
        return "the operation timed out";
    }
    return "p2p condition " + std::to_string(cv);
  }

  // Our own codes map through default_error_condition; this adds foreign codes that mean
  // the same thing, so a socket's ETIMEDOUT compares equal to condition::timeout too.
  bool equivalent(const boost::system::error_code& code, int cv) const noexcept override {
    if (code.category() == p2p::error_category())
      return code.category().default_error_condition(code.value()) ==
             boost::system::error_condition(cv, *this);
    // ETIMEDOUT in the system category (asio::error::timed_out) or the generic one.
    return static_cast<condition>(cv) == condition::timeout &&
           code == boost::system::errc::timed_out;
  }
};

}  // namespace

const boost::system::error_category& error_category() noexcept {
  static const error_codes category;
  return category;
}

const boost::system::error_category& condition_category() noexcept {
  static const error_conditions category;
  return category;
}

boost::system::error_code make_error_code(error e) noexcept {
  return {static_cast<int>(e), error_category()};
}

boost::system::error_condition make_error_condition(condition c) noexcept {
  return {static_cast<int>(c), condition_category()};
}

}  // namespace p2p
