#include <p2p/format.hpp>

#include <boost/uuid/string_generator.hpp>
#include <boost/uuid/uuid.hpp>
#include <boost/uuid/uuid_io.hpp>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <iterator>
#include <string>
#include <vector>

TEST_CASE("format: a host prints as name:port, with brackets around IPv6", "[format]") {
  const p2p::host v4{"1.2.3.4", 8333};
  const p2p::host v6{"::1", 18444};
  CHECK(fmt::format("{}", v4) == "1.2.3.4:8333");
  CHECK(fmt::format("{}", v6) == "[::1]:18444");
  CHECK(fmt::format("{}", p2p::host{"seed.example.org", 8333}) == "seed.example.org:8333");
}

TEST_CASE("format: fmt::to_string works for every type", "[format]") {
  // fmt 9's to_string formats through a context other than format_context.
  CHECK(fmt::to_string(p2p::host{"1.2.3.4", 8333}) == "1.2.3.4:8333");
  CHECK(fmt::to_string(p2p::error::peer_closed) == "the peer is closed or closing");
  CHECK(fmt::to_string(p2p::condition::timeout) == "the operation timed out");
  CHECK(fmt::to_string(p2p::peer_lifecycle::open) == "open");
  CHECK(fmt::to_string(p2p::manager_state::created) == "new");
  CHECK(fmt::to_string(p2p::severity::notice) == "notice");
  CHECK(fmt::to_string(p2p::report{p2p::severity::error, "x"}) == "error: x");
  CHECK(fmt::to_string(boost::uuids::uuid{}) == "00000000-0000-0000-0000-000000000000");
}

TEST_CASE("format: fill, alignment and width apply to the whole text", "[format]") {
  const p2p::host h{"1.2.3.4", 8333};
  CHECK(fmt::format("{:>20}", h) == "        1.2.3.4:8333");
  CHECK(fmt::format("{:<20}|", h) == "1.2.3.4:8333        |");
  CHECK(fmt::format("{:*^16}", h) == "**1.2.3.4:8333**");
  CHECK(fmt::format("{:.7}", h) == "1.2.3.4");
  CHECK(fmt::format("{:4}", h) == "1.2.3.4:8333");  // never truncated by a width
  CHECK(fmt::format(fmt::runtime("{:>{}}"), h, 14) == "  1.2.3.4:8333");

  const p2p::report r{p2p::severity::warning, "text"};
  CHECK(fmt::format("[{:<15}]", r) == "[warning: text  ]");
  CHECK(fmt::format("[{:>9}]", p2p::severity::info) == "[     info]");
}

TEST_CASE("format: a list of hosts joins with fmt::join", "[format]") {
  const std::vector<p2p::host> hosts{{"1.2.3.4", 8333}, {"::1", 18444}, {"a.example", 1}};
  CHECK(fmt::format("{}", fmt::join(hosts, ", ")) == "1.2.3.4:8333, [::1]:18444, a.example:1");
  CHECK(fmt::format("{:>13}", fmt::join(hosts, "|")) ==
        " 1.2.3.4:8333|  [::1]:18444|  a.example:1");
  CHECK(fmt::format("{}", fmt::join(std::vector<p2p::host>{}, ", ")).empty());
}

TEST_CASE("format: an error prints as its message", "[format]") {
  CHECK(fmt::format("{}", p2p::error::bad_checksum) ==
        "frame checksum did not match its payload; the frame was dropped");
  CHECK(fmt::format("{}", p2p::error::shutting_down) == "the manager is shutting down");
  for (auto e : {p2p::error::oversized_message, p2p::error::connect_timeout,
                 p2p::error::idle_timeout, p2p::error::peer_closed}) {
    CAPTURE(static_cast<int>(e));
    CHECK(fmt::format("{}", e) == p2p::make_error_code(e).message());
  }
  CHECK(fmt::format("{}", static_cast<p2p::error>(99)) == "p2p error 99");
  CHECK(fmt::format("peer closed: {:.8}", p2p::error::peer_closed) == "peer closed: the peer");
}

TEST_CASE("format: a condition prints as its message", "[format]") {
  CHECK(fmt::format("{}", p2p::condition::timeout) == "the operation timed out");
  CHECK(fmt::format("{}", p2p::condition::protocol_violation) ==
        "the remote broke the wire protocol");
}

TEST_CASE("format: lifecycles and manager states print their names", "[format]") {
  CHECK(fmt::format("{}", p2p::peer_lifecycle::created) == "created");
  CHECK(fmt::format("{}", p2p::peer_lifecycle::connecting) == "connecting");
  CHECK(fmt::format("{}", p2p::peer_lifecycle::open) == "open");
  CHECK(fmt::format("{}", p2p::peer_lifecycle::disconnecting) == "disconnecting");
  CHECK(fmt::format("{}", p2p::peer_lifecycle::closed) == "closed");
  CHECK(fmt::format("{}", p2p::manager_state::created) == "new");  // the seed's name
  CHECK(fmt::format("{}", p2p::manager_state::launching) == "launching");
  CHECK(fmt::format("{}", p2p::manager_state::running) == "running");
  CHECK(fmt::format("{}", p2p::manager_state::shutdown) == "shutdown");
}

TEST_CASE("format: severities and reports", "[format]") {
  CHECK(fmt::format("{}", p2p::severity::info) == "info");
  CHECK(fmt::format("{}", p2p::severity::notice) == "notice");
  CHECK(fmt::format("{}", p2p::severity::warning) == "warning");
  CHECK(fmt::format("{}", p2p::severity::error) == "error");
  CHECK(fmt::format("{}", p2p::report{p2p::severity::warning, "text"}) == "warning: text");
  CHECK(fmt::format("{}", p2p::report{p2p::severity::error, "peer 1.2.3.4:8333 threw"}) ==
        "error: peer 1.2.3.4:8333 threw");
  CHECK(fmt::format("{}", p2p::report{}) == "info: ");
}

TEST_CASE("format: a uuid prints in canonical lower-case form", "[format]") {
  const boost::uuids::uuid id =
      boost::uuids::string_generator()("{0123ABCD-89EF-4567-8A9B-CDEF01234567}");
  CHECK(fmt::format("{}", id) == "0123abcd-89ef-4567-8a9b-cdef01234567");
  CHECK(fmt::format("{}", id) == boost::uuids::to_string(id));
  CHECK(fmt::format("{}", boost::uuids::uuid{}) == "00000000-0000-0000-0000-000000000000");
  CHECK(fmt::format("<{:>38}>", id) == "<  0123abcd-89ef-4567-8a9b-cdef01234567>");

  // A peer's id, the usual thing to print: 36 characters either way.
  const auto peer_id = p2p::peer::outbound_id(p2p::host{"1.2.3.4", 8333});
  CHECK(fmt::format("{}", peer_id).size() == 36);
  CHECK(fmt::format("{}", peer_id) == boost::uuids::to_string(peer_id));
}

TEST_CASE("format: format_to writes into a memory buffer", "[format]") {
  fmt::memory_buffer out;
  fmt::format_to(std::back_inserter(out), "{} {} {}", p2p::host{"::1", 1},
                 p2p::peer_lifecycle::open, p2p::severity::notice);
  CHECK(fmt::to_string(out) == "[::1]:1 open notice");
}
