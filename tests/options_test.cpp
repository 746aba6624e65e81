#include <p2p/options.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <functional>
#include <stdexcept>

using namespace std::chrono_literals;

TEST_CASE("options: defaults are the original's", "[options]") {
  const p2p::manager_options o;
  CHECK(o.listen);
  CHECK(o.port == 8333);
  CHECK(o.magic == 0xD9B4BEF9);
  CHECK(o.min_peers == 3);
  CHECK(o.max_peers == 20);
  CHECK(o.idle_timeout == 30min);
  CHECK(o.connect_timeout == 5s);
  CHECK(o.disconnect_timeout == 5s);
  CHECK(o.check_interval == 60s);
  CHECK(o.status_interval == 10s);
  CHECK(o.bar_duration == 10min);
  CHECK(o.listen_address == "0.0.0.0");
  CHECK(o.max_message_size == 4'000'000);
  CHECK_NOTHROW(o.validate());
  CHECK_NOTHROW(p2p::peer_options().validate());
}

TEST_CASE("options: peer() copies the shared fields", "[options]") {
  p2p::manager_options o;
  o.magic = 0x0709110B;
  o.max_message_size = 1000;
  o.max_send_buffer = 5000;
  o.max_garbage = 77;
  o.connect_timeout = 123ms;
  o.disconnect_timeout = 456ms;
  const p2p::peer_options p = o.peer();
  CHECK(p.magic == 0x0709110B);
  CHECK(p.max_message_size == 1000);
  CHECK(p.max_send_buffer == 5000);
  CHECK(p.max_garbage == 77);
  CHECK(p.connect_timeout == 123ms);
  CHECK(p.disconnect_timeout == 456ms);
}

TEST_CASE("options: inbound_limit is max_inbound or max_peers - min_peers", "[options]") {
  p2p::manager_options o;
  CHECK(o.inbound_limit() == 17);
  o.max_inbound = 4;
  CHECK(o.inbound_limit() == 4);
  o.max_inbound.reset();
  o.min_peers = o.max_peers = 5;
  CHECK(o.inbound_limit() == 0);
}

SCENARIO("options: bad values are rejected with a message naming the value", "[options]") {
  p2p::manager_options o;
  auto rejects = [&](const std::function<void(p2p::manager_options&)>& change) {
    p2p::manager_options bad = o;
    change(bad);
    std::string what;
    try {
      bad.validate();
    } catch (const std::invalid_argument& e) {
      what = e.what();
    }
    return what;
  };
  GIVEN("peer counts") {
    CHECK(rejects([](auto& x) {
            x.min_peers = 5;
            x.max_peers = 2;
          }) == "p2p: min_peers (5) is greater than max_peers (2)");
    CHECK_THAT(rejects([](auto& x) {
                 x.min_peers = 0;
                 x.max_peers = 0;
               }),
               Catch::Contains("max_peers is 0"));
    CHECK_THAT(rejects([](auto& x) { x.max_inbound = 21; }),
               Catch::Contains("max_inbound (21) is greater than max_peers (20)"));
    CHECK_THAT(rejects([](auto& x) { x.max_inbound_per_host = 0; }),
               Catch::Contains("max_inbound_per_host is 0"));
    CHECK(rejects([](auto& x) {
            x.min_peers = 0;
            x.max_peers = 1;
            x.max_inbound = 1;
          }).empty());
  }
  GIVEN("timeouts and intervals") {
    CHECK(rejects([](auto& x) { x.idle_timeout = 0ms; }) ==
          "p2p: idle_timeout (0ms) must be positive");
    CHECK_THAT(rejects([](auto& x) { x.connect_timeout = -5ms; }),
               Catch::Contains("connect_timeout (-5ms)"));
    CHECK_THAT(rejects([](auto& x) { x.disconnect_timeout = 0ms; }),
               Catch::Contains("disconnect_timeout (0ms)"));
    CHECK_THAT(rejects([](auto& x) { x.check_interval = 0ms; }),
               Catch::Contains("check_interval (0ms)"));
    CHECK_THAT(rejects([](auto& x) { x.status_interval = 0ms; }),
               Catch::Contains("status_interval (0ms)"));
    CHECK_THAT(rejects([](auto& x) { x.bar_duration = 0ms; }),
               Catch::Contains("bar_duration (0ms)"));
    CHECK_THAT(rejects([](auto& x) { x.handshake_timeout = 0ms; }),
               Catch::Contains("handshake_timeout (0ms)"));
  }
  GIVEN("frame limits") {
    CHECK(rejects([](auto& x) { x.max_message_size = 0; }) ==
          "p2p: max_message_size (0) is out of range 1..4294967295");
    CHECK_THAT(rejects([](auto& x) { x.max_message_size = std::size_t{1} << 32; }),
               Catch::Contains("max_message_size (4294967296)"));
    CHECK(rejects([](auto& x) { x.max_message_size = 0xFFFFFFFF; }).empty());
    CHECK(rejects([](auto& x) { x.max_send_buffer = 23; }) ==
          "p2p: max_send_buffer (23) is smaller than one frame header (24 bytes)");
    CHECK(rejects([](auto& x) { x.max_send_buffer = 24; }).empty());
  }
  GIVEN("ports and addresses") {
    CHECK_THAT(rejects([](auto& x) {
                 x.listen = false;
                 x.port = 0;
               }),
               Catch::Contains("port is 0 with listen = false"));
    CHECK(rejects([](auto& x) { x.port = 0; }).empty());
    CHECK(rejects([](auto& x) { x.listen_address = "localhost"; }) ==
          "p2p: listen_address 'localhost' is not an IP address");
    CHECK(rejects([](auto& x) { x.listen_address = "::"; }).empty());
    CHECK(rejects([](auto& x) { x.listen_address = "127.0.0.1"; }).empty());
    THEN("the listen address is not checked when not listening") {
      CHECK(rejects([](auto& x) {
              x.listen = false;
              x.listen_address = "nonsense";
            }).empty());
    }
  }
}

TEST_CASE("options: peer_options::validate rejects bad values", "[options]") {
  p2p::peer_options p;
  p.max_message_size = 0;
  REQUIRE_THROWS_WITH(p.validate(), Catch::Contains("max_message_size (0)"));
  p = {};
  p.max_send_buffer = 0;
  REQUIRE_THROWS_WITH(p.validate(), Catch::Contains("max_send_buffer (0)"));
  p = {};
  p.connect_timeout = 0ms;
  REQUIRE_THROWS_AS(p.validate(), std::invalid_argument);
  REQUIRE_THROWS_WITH(p.validate(), "p2p: connect_timeout (0ms) must be positive");
  p = {};
  p.disconnect_timeout = -1ms;
  REQUIRE_THROWS_WITH(p.validate(), "p2p: disconnect_timeout (-1ms) must be positive");
}
