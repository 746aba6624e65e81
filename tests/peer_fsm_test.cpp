// The peer lifecycle's transition function, tested with values (no sockets).

#include "detail/peer_fsm.hpp"

#include <p2p/error.hpp>

#include <boost/asio/error.hpp>

#include <catch2/catch.hpp>

using p2p::peer_lifecycle;
using p2p::detail::next_state;
using p2p::detail::peer_input;
using st = p2p::peer_lifecycle;

namespace {
const auto aborted = make_error_code(boost::asio::error::operation_aborted);
const auto reset = make_error_code(boost::asio::error::connection_reset);
}  // namespace

SCENARIO("peer lifecycle: an outbound peer connects, runs and is closed gracefully",
         "[peer][lifecycle]") {
  auto t = next_state(st::created, peer_input::start_connect);
  CHECK(t.changed());
  CHECK(t.to == st::connecting);
  CHECK_FALSE(t.start_reader);

  t = next_state(st::connecting, peer_input::connected);
  CHECK(t.to == st::open);
  CHECK(t.start_reader);
  CHECK_FALSE(t.close_socket);

  t = next_state(st::open, peer_input::close);
  CHECK(t.to == st::disconnecting);
  CHECK(t.begin_disconnect);
  CHECK_FALSE(t.close_socket);

  t = next_state(st::disconnecting, peer_input::remote_eof);
  CHECK(t.to == st::closed);
  CHECK(t.close_socket);
  CHECK(t.remote_ended);
  CHECK_FALSE(t.error);
}

SCENARIO("peer lifecycle: failures close with the error, our own close is no error",
         "[peer][lifecycle]") {
  GIVEN("a connect that fails") {
    auto t = next_state(st::connecting, peer_input::connect_failed,
                        make_error_code(p2p::error::connect_timeout));
    CHECK(t.to == st::closed);
    CHECK(t.close_socket);
    CHECK(t.error == p2p::error::connect_timeout);
  }
  GIVEN("a read error while open") {
    auto t = next_state(st::open, peer_input::failed, reset);
    CHECK(t.to == st::closed);
    CHECK(t.error == reset);
    CHECK_FALSE(t.remote_ended);
  }
  GIVEN("a reset while disconnecting: we are leaving anyway") {
    auto t = next_state(st::disconnecting, peer_input::failed, reset);
    CHECK(t.to == st::closed);
    CHECK_FALSE(t.error);
  }
  GIVEN("destroy() (operation_aborted) and fail(ec)") {
    auto d = next_state(st::open, peer_input::destroy, aborted);
    CHECK(d.to == st::closed);
    CHECK(d.close_socket);
    CHECK_FALSE(d.error);
    auto f =
        next_state(st::open, peer_input::destroy, make_error_code(p2p::error::handshake_failed));
    CHECK(f.error == p2p::error::handshake_failed);
  }
  GIVEN("the disconnect timeout") {
    auto t = next_state(st::disconnecting, peer_input::disconnect_expired);
    CHECK(t.to == st::closed);
    CHECK(t.close_socket);
    CHECK_FALSE(t.error);
  }
}

SCENARIO("peer lifecycle: inputs that do not apply change nothing", "[peer][lifecycle]") {
  const st all[] = {st::created, st::connecting, st::open, st::disconnecting, st::closed};
  for (st s : all) {
    // closed is terminal.
    if (s == st::closed) {
      for (auto in : {peer_input::start_connect, peer_input::connected, peer_input::close,
                      peer_input::destroy, peer_input::remote_eof, peer_input::failed,
                      peer_input::start_inbound, peer_input::disconnect_expired}) {
        auto t = next_state(s, in, reset);
        CHECK_FALSE(t.changed());
        CHECK_FALSE(t.close_socket);
        CHECK_FALSE(t.error);
      }
    }
  }
  CHECK_FALSE(next_state(st::open, peer_input::start_connect).changed());
  CHECK_FALSE(next_state(st::open, peer_input::connected).changed());
  CHECK_FALSE(next_state(st::created, peer_input::connected).changed());
  CHECK_FALSE(next_state(st::connecting, peer_input::start_inbound).changed());
  CHECK_FALSE(next_state(st::disconnecting, peer_input::close).changed());
  CHECK_FALSE(next_state(st::open, peer_input::disconnect_expired).changed());
  CHECK_FALSE(next_state(st::created, peer_input::remote_eof).changed());
}

SCENARIO("peer lifecycle: closing before the connection is up needs no flush",
         "[peer][lifecycle]") {
  auto t = next_state(st::connecting, peer_input::close);
  CHECK(t.to == st::closed);
  CHECK(t.close_socket);
  CHECK_FALSE(t.begin_disconnect);
  CHECK_FALSE(t.error);
  t = next_state(st::created, peer_input::start_inbound);
  CHECK(t.to == st::open);
  CHECK(t.start_reader);
  CHECK(p2p::detail::accepts_frames(st::created));
  CHECK(p2p::detail::accepts_frames(st::open));
  CHECK_FALSE(p2p::detail::accepts_frames(st::disconnecting));
  CHECK_FALSE(p2p::detail::accepts_frames(st::closed));
  CHECK(p2p::to_string(st::disconnecting) == "disconnecting");
}
