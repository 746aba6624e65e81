#include <p2p/host.hpp>

#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace Catch {
template <>
struct StringMaker<p2p::host> {
  static std::string convert(const p2p::host& h) { return h.to_string(); }
};
}  // namespace Catch

namespace {

// The host a valid text parses to, or a failed REQUIRE showing why it did not.
p2p::host parsed(std::string_view text, std::uint16_t default_port = 8333) {
  auto r = p2p::parse_host(text, default_port);
  INFO(text);
  if (!r) FAIL(r.error().message);
  return *r;
}

// The message a malformed text is rejected with.
std::string rejection(std::string_view text, std::uint16_t default_port = 8333) {
  auto r = p2p::parse_host(text, default_port);
  INFO(text);
  REQUIRE_FALSE(r.has_value());
  return r.error().message;
}

}  // namespace

SCENARIO("parse_host: accepts every form the original accepted", "[host]") {
  GIVEN("host:port strings") {
    CHECK(parsed("1.2.3.4:18333") == p2p::host{"1.2.3.4", 18333});
    CHECK(parsed("seed.bitcoin.sipa.be:8333") == p2p::host{"seed.bitcoin.sipa.be", 8333});
    CHECK(parsed("my_host-1:1") == p2p::host{"my_host-1", 1});
    CHECK(parsed("localhost:65535") == p2p::host{"localhost", 65535});
  }
  GIVEN("bracketed IPv6 with and without a port") {
    CHECK(parsed("[::1]:8333") == p2p::host{"::1", 8333});
    CHECK(parsed("[2001:db8::7]:1") == p2p::host{"2001:db8::7", 1});
    CHECK(parsed("[fe80::1]", 9) == p2p::host{"fe80::1", 9});
  }
  GIVEN("a bare IPv6 address") {
    THEN("it is a host without a port, taking the default") {
      CHECK(parsed("::1", 18444) == p2p::host{"::1", 18444});
      CHECK(parsed("2001:db8::1:2") == p2p::host{"2001:db8::1:2", 8333});
    }
  }
  GIVEN("a bare name") {
    THEN("it takes the default port") {
      CHECK(parsed("example.com", 8333).port == 8333);
    }
  }
  GIVEN("the name keeps its case") {
    CHECK(parsed("Example.COM:1").name == "Example.COM");
  }
}

SCENARIO("parse_host: malformed hosts are rejected with a message naming the value", "[host]") {
  GIVEN("ports out of range") {
    CHECK(rejection("1.2.3.4:70000") ==
          "p2p: port '70000' in host '1.2.3.4:70000' is out of range 1..65535");
    CHECK(rejection("1.2.3.4:0") == "p2p: port '0' in host '1.2.3.4:0' is out of range 1..65535");
    CHECK_THAT(rejection("a:99999999999999999999"),
               Catch::Contains("'99999999999999999999'") && Catch::Contains("out of range"));
    CHECK_THAT(rejection("[::1]:65536"), Catch::Contains("port '65536' in host '[::1]:65536'"));
  }
  GIVEN("ports that are not decimal numbers") {
    CHECK(rejection("a:80x") == "p2p: port '80x' in host 'a:80x' is not a decimal number");
    CHECK_THAT(rejection("a:-1"), Catch::Contains("port '-1'"));
    CHECK_THAT(rejection("a:+80"), Catch::Contains("port '+80'"));
    CHECK_THAT(rejection("a: 80"), Catch::Contains("port ' 80'"));
    CHECK_THAT(rejection("a:"), Catch::Contains("host 'a:' has an empty port"));
  }
  GIVEN("bad names") {
    CHECK_THAT(rejection(""), Catch::Contains("host '' is empty"));
    CHECK_THAT(rejection(":8333"), Catch::Contains("host ':8333' has an empty name"));
    CHECK_THAT(rejection("bad host:80"), Catch::Contains("host 'bad host:80' has ' ' in its name"));
    CHECK_THAT(rejection(" a:80"), Catch::Contains("' a:80'"));
    CHECK_THAT(rejection("a/b"), Catch::Contains("has '/' in its name"));
    CHECK_THAT(rejection("a\nb:1"), Catch::Contains("'a\\x0ab:1'"));
    const std::string long_name(254, 'a');
    CHECK_THAT(rejection(long_name), Catch::Contains("is 254 characters; limit 253"));
    CHECK(parsed(std::string(253, 'a')).name.size() == 253);
  }
  GIVEN("bad IPv6 forms") {
    CHECK_THAT(rejection("[::1"), Catch::Contains("host '[::1' has '[' without a matching ']'"));
    CHECK_THAT(rejection("[not-v6]:80"),
               Catch::Contains("'not-v6' in host '[not-v6]:80' is not a valid IPv6 address"));
    CHECK_THAT(rejection("[1.2.3.4]:80"), Catch::Contains("is not a valid IPv6 address"));
    CHECK_THAT(rejection("[::1]80"), Catch::Contains("has '80' after ']'"));
    CHECK_THAT(rejection("::1:zz:80"), Catch::Contains("host '::1:zz:80' is not a valid IPv6"));
    CHECK_THAT(rejection("a:b:c"), Catch::Contains("'[address]:port'"));
  }
  GIVEN("no port and no default port") {
    CHECK(rejection("example.com", 0) ==
          "p2p: host 'example.com' has no port and there is no default port to give it");
    CHECK_THAT(rejection("::1", 0), Catch::Contains("host '::1' has no port"));
    CHECK_THAT(rejection("[::1]", 0), Catch::Contains("host '[::1]' has no port"));
    THEN("a host with its own port needs no default") {
      CHECK(parsed("example.com:1", 0).port == 1);
    }
  }
}

TEST_CASE("parse_host: value() throws std::invalid_argument with the message", "[host]") {
  CHECK(p2p::parse_host("a:1", 0).value() == p2p::host{"a", 1});
  REQUIRE_THROWS_AS(p2p::parse_host("a:0", 1).value(), std::invalid_argument);
  REQUIRE_THROWS_WITH(p2p::parse_host("a:0", 1).value(),
                      "p2p: port '0' in host 'a:0' is out of range 1..65535");
}

TEST_CASE("host: to_string brackets IPv6 and equality ignores name case", "[host]") {
  CHECK(p2p::host{"1.2.3.4", 8333}.to_string() == "1.2.3.4:8333");
  CHECK(p2p::host{"::1", 18444}.to_string() == "[::1]:18444");
  CHECK(p2p::host{"Seed.Example", 1}.to_string() == "Seed.Example:1");
  CHECK(p2p::host{"Seed.EXAMPLE", 1} == p2p::host{"seed.example", 1});
  CHECK_FALSE(p2p::host{"seed.example", 1} == p2p::host{"seed.example", 2});
  CHECK_FALSE(p2p::host{"seed.example", 1} == p2p::host{"seed.exampl", 1});
  THEN("to_string parses back to the same host") {
    for (const auto& h : {p2p::host{"::1", 18444}, p2p::host{"a.b", 7}})
      CHECK(parsed(h.to_string(), 0) == h);
  }
}

SCENARIO("parse_hosts: each form of a host list", "[host]") {
  GIVEN("a single host:port string") {
    const auto r = p2p::parse_hosts("10.0.0.1:8333", 8333);
    CHECK(r.hosts == std::vector<p2p::host>{{"10.0.0.1", 8333}});
    CHECK(r.errors.empty());
  }
  GIVEN("a list mixing strings, pairs and records") {
    const p2p::host_list list = {"a.example:1",
                                 "[::1]:2",
                                 "bare.example",
                                 std::pair<std::string, int>("b.example", 3),
                                 p2p::host{"c.example", 4},
                                 {"::2", 5}};
    const auto r = p2p::parse_hosts(list, 8333);
    THEN("all are kept, in order") {
      CHECK(r.errors.empty());
      CHECK(r.hosts == std::vector<p2p::host>{{"a.example", 1},
                                              {"::1", 2},
                                              {"bare.example", 8333},
                                              {"b.example", 3},
                                              {"c.example", 4},
                                              {"::2", 5}});
    }
  }
  GIVEN("duplicates, differing only in name case") {
    const auto r =
        p2p::parse_hosts({"a.example:1", "A.EXAMPLE:1", {"a.example", 1}, "a.example:2"}, 8333);
    THEN("they are dropped, the first kept") {
      CHECK(r.errors.empty());
      CHECK(r.hosts == std::vector<p2p::host>{{"a.example", 1}, {"a.example", 2}});
      CHECK(r.hosts[0].name == "a.example");
    }
  }
  GIVEN("malformed entries among good ones") {
    const auto r = p2p::parse_hosts({"good.example:1",
                                     "1.2.3.4:70000",
                                     {"pair.example", 0},
                                     {"pair.example", 70000},
                                     {"with.port:5", 6},
                                     std::pair<const char*, long>("bad name", 7),
                                     "also.good"},
                                    8333);
    THEN("each is reported once, naming it, and the rest are kept") {
      CHECK(r.hosts == std::vector<p2p::host>{{"good.example", 1}, {"also.good", 8333}});
      REQUIRE(r.errors.size() == 5);
      CHECK(r.errors[0] == "p2p: port '70000' in host '1.2.3.4:70000' is out of range 1..65535");
      CHECK(r.errors[1] == "p2p: port 0 of host 'pair.example' is out of range 1..65535");
      CHECK(r.errors[2] == "p2p: port 70000 of host 'pair.example' is out of range 1..65535");
      CHECK(r.errors[3] ==
            "p2p: host 'with.port:5' has a port of its own and is also given port 6");
      CHECK_THAT(r.errors[4], Catch::Contains("'bad name'"));
    }
  }
  GIVEN("a record with port 0 (the host struct's default)") {
    const auto r = p2p::parse_hosts(p2p::host{"x.example"}, 8333);
    THEN("it is rejected, not given the default port") {
      CHECK(r.hosts.empty());
      REQUIRE(r.errors.size() == 1);
      CHECK_THAT(r.errors[0], Catch::Contains("port 0 of host 'x.example'"));
    }
  }
  GIVEN("bare hosts and no default port") {
    const auto r = p2p::parse_hosts(std::vector<std::string>{"a.example", "b.example:9"}, 0);
    CHECK(r.hosts == std::vector<p2p::host>{{"b.example", 9}});
    REQUIRE(r.errors.size() == 1);
    CHECK_THAT(r.errors[0], Catch::Contains("'a.example' has no port"));
  }
  GIVEN("the empty list") {
    const auto r = p2p::parse_hosts({}, 8333);
    CHECK(r.hosts.empty());
    CHECK(r.errors.empty());
  }
}

TEST_CASE("parse_host: IPv6 text with a NUL or a scope id is rejected (fuzz_hosts finds)",
          "[host]") {
  using namespace std::string_literals;
  for (const auto& text : {"::1\0"s, "::1\0a"s, "::1%a b"s, "::1%]x"s, "[fe80::1%eth0]:8333"s}) {
    INFO("text: " << text);
    CHECK_FALSE(p2p::parse_host(text, 8333).has_value());
  }
  REQUIRE(p2p::parse_host("::1", 8333).value() == p2p::host{"::1", 8333});
  REQUIRE(p2p::parse_host("[::ffff:127.0.0.1]:1", 0).value() == p2p::host{"::ffff:127.0.0.1", 1});
}
