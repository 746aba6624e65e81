#include "detail/peer_fsm.hpp"

#include <p2p/lifecycle.hpp>

#include <boost/asio/error.hpp>

namespace p2p {

std::string_view to_string(peer_lifecycle s) noexcept {
  switch (s) {
    case peer_lifecycle::created:
      return "created";
    case peer_lifecycle::connecting:
      return "connecting";
    case peer_lifecycle::open:
      return "open";
    case peer_lifecycle::disconnecting:
      return "disconnecting";
    case peer_lifecycle::closed:
      return "closed";
  }
  return "unknown";
}

std::string_view to_string(manager_state s) noexcept {
  switch (s) {
    case manager_state::created:
      return "new";
    case manager_state::launching:
      return "launching";
    case manager_state::running:
      return "running";
    case manager_state::shutdown:
      return "shutdown";
  }
  return "unknown";
}

namespace detail {

using boost::system::error_code;
using state = peer_lifecycle;

bool is_own_close(const error_code& ec) noexcept {
  return ec == boost::asio::error::operation_aborted || ec == boost::asio::error::bad_descriptor;
}

peer_transition next_state(peer_lifecycle from, peer_input in, error_code ec) noexcept {
  const state state_ = from;
  peer_transition t;
  t.from = from;
  t.to = from;
  const auto close_with = [&](error_code why) {
    t.to = state::closed;
    t.close_socket = true;
    if (why && !is_own_close(why)) t.error = why;
  };
  switch (in) {
    case peer_input::start_connect:
      if (state_ == state::created) t.to = state::connecting;
      break;
    case peer_input::connected:
      if (state_ == state::connecting) {
        t.to = state::open;
        t.start_reader = true;
      }
      break;
    case peer_input::start_inbound:
      if (state_ == state::created) {
        t.to = state::open;
        t.start_reader = true;
      }
      break;
    case peer_input::connect_failed:
      if (state_ == state::connecting) close_with(ec);
      break;
    case peer_input::close:
      if (state_ == state::open) {
        t.to = state::disconnecting;
        t.begin_disconnect = true;
      } else if (state_ == state::created || state_ == state::connecting) {
        close_with({});  // nothing to flush yet
      }
      break;
    case peer_input::destroy:
      if (state_ != state::closed) close_with(ec);
      break;
    case peer_input::remote_eof:
      if (state_ == state::open || state_ == state::disconnecting) {
        close_with({});
        t.remote_ended = true;
      }
      break;
    case peer_input::failed:
      // While disconnecting we are leaving anyway: a reset then is no failure to report.
      if (state_ == state::open)
        close_with(ec);
      else if (state_ == state::disconnecting)
        close_with({});
      break;
    case peer_input::disconnect_expired:
      if (state_ == state::disconnecting) close_with({});
      break;
  }
  return t;
}

}  // namespace detail
}  // namespace p2p
