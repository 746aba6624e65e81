#include <p2p/error.hpp>

#include <boost/asio/error.hpp>
#include <boost/system/errc.hpp>

#include <catch2/catch.hpp>

#include <set>
#include <string>

namespace {

constexpr p2p::error all_errors[] = {
    p2p::error::oversized_message,
    p2p::error::bad_checksum,
    p2p::error::bad_command,
    p2p::error::too_much_garbage,
    p2p::error::send_buffer_overflow,
    p2p::error::connect_timeout,
    p2p::error::disconnect_timeout,
    p2p::error::handshake_failed,
    p2p::error::handshake_timeout,
    p2p::error::idle_timeout,
    p2p::error::peer_closed,
    p2p::error::shutting_down,
    p2p::error::timeout,
};

}  // namespace

TEST_CASE("error: codes are in the p2p category with a distinct message each", "[error]") {
  std::set<std::string> messages;
  for (p2p::error e : all_errors) {
    const boost::system::error_code ec = e;  // implicit through is_error_code_enum
    CAPTURE(static_cast<int>(e));
    CHECK(ec.category().name() == std::string("p2p"));
    CHECK(&ec.category() == &p2p::error_category());
    CHECK(ec.value() == static_cast<int>(e));
    CHECK(static_cast<bool>(ec));
    CHECK_FALSE(ec.message().empty());
    CHECK_THAT(ec.message(), !Catch::StartsWith("p2p error"));
    messages.insert(ec.message());
  }
  CHECK(messages.size() == std::size(all_errors));
  CHECK(p2p::make_error_code(p2p::error::bad_checksum).message() ==
        "frame checksum did not match its payload; the frame was dropped");
}

TEST_CASE("error: unknown values still get a message", "[error]") {
  CHECK(p2p::error_category().message(999) == "p2p error 999");
  CHECK(p2p::condition_category().message(999) == "p2p condition 999");
}

SCENARIO("error: conditions group the codes", "[error]") {
  using p2p::condition;
  using p2p::error;
  GIVEN("the protocol_violation condition") {
    const boost::system::error_condition cond = condition::protocol_violation;
    THEN("exactly the four wire errors match it") {
      for (error e : all_errors) {
        CAPTURE(static_cast<int>(e));
        const bool expected = e == error::oversized_message || e == error::bad_checksum ||
                              e == error::bad_command || e == error::too_much_garbage;
        CHECK((make_error_code(e) == cond) == expected);
      }
      CHECK(cond.category().name() == std::string("p2p.condition"));
      CHECK(cond.message() == "the remote broke the wire protocol");
    }
  }
  GIVEN("the timeout condition") {
    THEN("exactly the five timeouts match it") {
      for (error e : all_errors) {
        CAPTURE(static_cast<int>(e));
        const bool expected = e == error::connect_timeout || e == error::disconnect_timeout ||
                              e == error::handshake_timeout || e == error::idle_timeout ||
                              e == error::timeout;
        CHECK((make_error_code(e) == condition::timeout) == expected);
      }
    }
    THEN("Asio's timed_out and generic ETIMEDOUT match it too") {
      const boost::system::error_code asio_timeout = boost::asio::error::timed_out;
      CHECK(asio_timeout == condition::timeout);
      CHECK(make_error_code(boost::system::errc::timed_out) == condition::timeout);
      CHECK_FALSE(asio_timeout == condition::protocol_violation);
    }
    THEN("other foreign errors do not") {
      const boost::system::error_code eof = boost::asio::error::eof;
      const boost::system::error_code reset = boost::asio::error::connection_reset;
      CHECK_FALSE(eof == condition::timeout);
      CHECK_FALSE(reset == condition::timeout);
      CHECK_FALSE(boost::system::error_code() == condition::timeout);
    }
  }
}
