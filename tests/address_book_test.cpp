#include <p2p/address_book.hpp>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>

// The address book tested with values: no sockets, an injected time.

namespace {

using namespace std::chrono_literals;
using p2p::address_book;
using p2p::book_options;
using p2p::host;
using p2p::host_record;
using p2p::host_source;
using time_point = address_book::time_point;
using wall_time = std::chrono::system_clock::time_point;

const time_point t0 = time_point{} + 1h;
const wall_time wall0 = wall_time{} + std::chrono::milliseconds(1'700'000'000'000);

host h(std::string name, std::uint16_t port = 8333) {
  return {std::move(name), port};
}

// Gives `x` (in the book) `attempts` failed attempts at `now`.
void fail(address_book& b, const host& x, std::uint32_t attempts, time_point now) {
  auto r = b.extract(x, now);
  REQUIRE(r);
  r->attempts = attempts - 1;
  b.put_back(*r, false, now);
  REQUIRE(b.find(x)->attempts == attempts);
}

// Makes `x` (in the book) a host that worked at `now`.
void work(address_book& b, const host& x, time_point now) {
  auto r = b.extract(x, now);
  REQUIRE(r);
  b.put_back(*r, true, now);
}

// The message `text` fails to load with.
std::string load_error(std::string_view text) {
  auto r = address_book::load(text, {}, t0, wall0, 1);
  INFO(text);
  REQUIRE_FALSE(r.has_value());
  return r.error();
}

// A saved book with one host whose fields are given as JSON text.
std::string one_host(std::string_view host_text, std::string_view source = "\"pool\"",
                     std::string_view attempts = "0", std::string_view last_try = "null") {
  return fmt::format(
      R"({{"format":"p2p-manager address book","version":1,"saved_at":1700000000000,)"
      R"("hosts":[{{"host":"1.1.1.1:1","source":"seed","attempts":0,"last_try":null,)"
      R"("last_success":null,"retry_at":null}},{{"host":{},"source":{},"attempts":{},)"
      R"("last_try":{},"last_success":null,"retry_at":null}}],"bars":[]}})",
      host_text, source, attempts, last_try);
}

}  // namespace

TEST_CASE("address book: keys and netgroups use one spelling per address", "[book]") {
  CHECK(address_book::host_key("::ffff:1.2.3.4") == "1.2.3.4");
  CHECK(address_book::host_key("0::1") == "::1");
  CHECK(address_book::host_key("2001:DB8:0::1") == "2001:db8::1");
  CHECK(address_book::host_key("Seed.Example.COM") == "seed.example.com");
  CHECK(address_book::host_key("1.2.3") == "1.2.3");        // a name, not an address
  CHECK(address_book::host_key("01.2.3.4") == "01.2.3.4");  // so is this (leading zero)
  CHECK(address_book::host_key("10.0.0.255") == "10.0.0.255");
  CHECK(address_book::host_key("FE80::1%Eth0") == "fe80::1%eth0");  // scoped: kept as a name
  CHECK(address_book::netgroup_of("1.2.3.4") == "1.2.0.0/16");
  CHECK(address_book::netgroup_of("::ffff:1.2.3.4") == "1.2.0.0/16");
  CHECK(address_book::netgroup_of("2001:db8:1::1") == "2001:0db8::/32");
  CHECK(address_book::netgroup_of("Seed.Example.com") == "seed.example.com");
}

TEST_CASE("address book: add learns a host once, whatever its spelling", "[book]") {
  address_book b({}, 1);
  CHECK(b.add(h("1.2.3.4"), host_source::seed, t0));
  CHECK_FALSE(b.add(h("::ffff:1.2.3.4"), host_source::pool, t0));
  CHECK(b.add(h("1.2.3.4", 8334), host_source::pool, t0));  // another port, another host
  CHECK(b.add(h("Seed.Example.COM"), host_source::active, t0));
  CHECK_FALSE(b.add(h("seed.example.com"), host_source::pool, t0));
  CHECK(b.add(h("::1"), host_source::pool, t0));
  CHECK_FALSE(b.add(h("0::1"), host_source::pool, t0));
  CHECK(b.size() == 4);
  CHECK(b.hosts().size() == 4);
  CHECK(b.records().size() == 4);

  CHECK(b.contains(h("::ffff:1.2.3.4")));
  CHECK_FALSE(b.contains(h("1.2.3.5")));
  REQUIRE(b.find(h("SEED.example.com")));
  CHECK(b.find(h("SEED.example.com"))->host.name == "Seed.Example.COM");  // spelling kept
  CHECK(b.find(h("1.2.3.4"))->source == host_source::seed);               // first source kept
  CHECK(b.find(h("9.9.9.9")) == nullptr);

  // A known host keeps its history when learned again.
  fail(b, h("1.2.3.4"), 1, t0);
  CHECK_FALSE(b.add(h("1.2.3.4"), host_source::pool, t0));
  CHECK(b.find(h("1.2.3.4"))->attempts == 1);

  CHECK(b.remove(h("::FFFF:1.2.3.4")));
  CHECK_FALSE(b.remove(h("1.2.3.4")));
  CHECK_FALSE(b.contains(h("1.2.3.4")));
  CHECK(b.size() == 3);

  SECTION("a host the book could not load back is refused") {
    CHECK_THROWS_WITH(b.add(h("1.2.3.4", 0), host_source::pool, t0), Catch::Contains("port 0"));
    CHECK_THROWS_WITH(b.add(h(""), host_source::pool, t0), Catch::Contains("host '' is empty"));
    CHECK_THROWS_WITH(b.add(h("a b"), host_source::pool, t0), Catch::Contains("'a b'"));
    CHECK_THROWS_WITH(b.add(h("1.2.3.4:80", 5), host_source::pool, t0),
                      Catch::Contains("'1.2.3.4:80' is not a bare name"));
    CHECK(b.size() == 3);
  }
}

TEST_CASE("address book: options are checked, naming the value", "[book]") {
  CHECK_THROWS_WITH(address_book(book_options{.max_hosts = 0}), Catch::Contains("max_hosts"));
  CHECK_THROWS_WITH(address_book(book_options{.max_bars = 0}), Catch::Contains("max_bars"));
  CHECK_THROWS_WITH(address_book(book_options{.backoff_initial = 0ms}),
                    Catch::Contains("backoff_initial (0 ms)"));
  CHECK_THROWS_WITH(address_book(book_options{.backoff_initial = 2s, .backoff_max = 1s}),
                    Catch::Contains("backoff_max (1000 ms)"));
}

TEST_CASE("address book: take skips barred, backing-off and busy-netgroup hosts", "[book]") {
  address_book b({}, 7);
  const host barred = h("10.0.0.1"), backing_off = h("10.1.0.1"), busy = h("10.2.0.1");
  for (const host& x : {barred, backing_off, busy}) b.add(x, host_source::pool, t0);
  b.bar("10.0.0.1", 1h, t0);
  fail(b, backing_off, 1, t0);  // retries 15..45 s later
  const std::set<std::string> groups{"10.2.0.0/16"};

  CHECK_FALSE(b.take(t0, groups));
  CHECK(b.size() == 3);

  auto r = b.take(t0);
  REQUIRE(r);
  CHECK(r->host.name == "10.2.0.1");
  CHECK(r->last_try == t0);
  CHECK(b.size() == 2);
  CHECK_FALSE(b.contains(busy));  // taken: out of the book until put back

  CHECK_FALSE(b.take(t0 + 14s));
  r = b.take(t0 + 46s);
  REQUIRE(r);
  CHECK(r->host.name == "10.1.0.1");
  CHECK(r->attempts == 1);
  CHECK_FALSE(b.take(t0 + 59min));
  r = b.take(t0 + 1h);  // the bar has ended
  REQUIRE(r);
  CHECK(r->host.name == "10.0.0.1");
  CHECK_FALSE(b.take(t0 + 2h));
  CHECK(b.size() == 0);

  SECTION("without spread_netgroups the busy groups do not matter") {
    address_book any(book_options{.spread_netgroups = false}, 7);
    any.add(busy, host_source::pool, t0);
    CHECK(any.take(t0, groups));
  }
}

TEST_CASE("address book: extract takes a host whatever its backoff", "[book]") {
  address_book b({}, 3);
  b.add(h("10.0.0.1"), host_source::seed, t0);
  fail(b, h("10.0.0.1"), 3, t0);
  b.bar("10.0.0.1", 1h, t0);
  CHECK_FALSE(b.extract(h("10.0.0.2"), t0));
  auto r = b.extract(h("::ffff:10.0.0.1"), t0 + 1s);
  REQUIRE(r);
  CHECK(r->host.name == "10.0.0.1");
  CHECK(r->attempts == 3);
  CHECK(r->source == host_source::seed);
  CHECK(r->last_try == t0 + 1s);
  CHECK(b.size() == 0);
}

TEST_CASE("address book: take with busy groups gives distinct netgroups", "[book]") {
  address_book b({}, 11);
  for (int g = 1; g <= 10; ++g)
    for (int i = 0; i < 20; ++i)
      b.add(h(fmt::format("127.{}.{}.{}", g, i, i + 1)), host_source::pool, t0);
  std::set<std::string> busy;
  for (int i = 0; i < 10; ++i) {
    auto r = b.take(t0, busy);
    REQUIRE(r);
    const auto group = address_book::netgroup_of(r->host.name);
    CHECK(busy.insert(group).second);
  }
  CHECK(busy.size() == 10);
  CHECK_FALSE(b.take(t0, busy));
  CHECK(b.size() == 190);
}

TEST_CASE("address book: take finds the one eligible host among many that are not", "[book]") {
  address_book b({}, 5);
  b.add(h("10.0.0.1"), host_source::pool, t0);
  for (int i = 0; i < 5000; ++i) {
    const host x = h(fmt::format("11.{}.{}.1", i / 256, i % 256));
    b.add(x, host_source::pool, t0);
    fail(b, x, 1 + i % 10, t0);
  }
  for (int i = 0; i < 3000; ++i) b.bar(fmt::format("12.0.{}.{}", i / 256, i % 256), 1h, t0);
  for (int i = 0; i < 3000; ++i)
    b.add(h(fmt::format("12.0.{}.{}", i / 256, i % 256)), host_source::pool, t0);
  auto r = b.take(t0);  // probing rarely hits it: the scan over due hosts finds it
  REQUIRE(r);
  CHECK(r->host.name == "10.0.0.1");
  CHECK_FALSE(b.take(t0));
}

TEST_CASE("address book: a host tried within backoff_initial comes last", "[book]") {
  address_book b({}, 9);
  const host just = h("10.0.0.1"), other = h("10.1.0.1");
  b.add(just, host_source::pool, t0);
  auto r = b.take(t0);
  REQUIRE(r);
  b.put_back(*r, true, t0 + 1s);  // its connection worked and just ended
  b.add(other, host_source::pool, t0 + 1s);
  for (int i = 0; i < 20; ++i) {  // whatever the coin says: the other one first
    auto x = b.take(t0 + 2s);
    REQUIRE(x);
    CHECK(x->host == other);
    b.remove(other);  // learned afresh: never tried
    b.add(other, host_source::pool, t0 + 2s);
  }
  b.remove(other);
  GIVEN("no other host") {
    auto y = b.take(t0 + 2s);
    REQUIRE(y);
    CHECK(y->host == just);
  }
  GIVEN("backoff_initial later") {
    b.add(other, host_source::pool, t0 + 2s);
    std::set<std::string> seen;
    for (int i = 0; i < 40; ++i) {
      const time_point now = t0 + (i + 1) * 1min;  // what was taken before is no longer recent
      auto x = b.take(now);
      REQUIRE(x);
      seen.insert(x->host.to_string());
      b.restore(*x, now);
    }
    CHECK(seen.size() == 2);
  }
}

TEST_CASE("address book: take prefers hosts that worked and hosts that failed less", "[book]") {
  SECTION("one host that worked, one that never did: each about half the picks") {
    address_book b({}, 42);
    const host worked = h("10.0.0.1"), fresh = h("10.1.0.1");
    b.add(worked, host_source::pool, t0);
    b.add(fresh, host_source::pool, t0);
    work(b, worked, t0);
    int picks = 0;
    for (int i = 0; i < 1000; ++i) {
      const time_point now = t0 + i * 1min;  // past backoff_initial: no host is "recent"
      auto r = b.take(now);
      REQUIRE(r);
      if (r->host == worked) {
        ++picks;
        b.put_back(*r, true, now);
      } else {
        b.add(r->host, r->source, now);
      }
    }
    CHECK(picks > 420);
    CHECK(picks < 580);
  }
  SECTION("a host with 8 failures is taken far less often than one with none") {
    address_book b({}, 42);
    const host good = h("10.0.0.1"), bad = h("10.1.0.1");
    b.add(good, host_source::pool, t0);
    b.add(bad, host_source::pool, t0);
    fail(b, bad, 8, t0);
    int bad_picks = 0;
    for (int i = 0; i < 1000; ++i) {
      const time_point now = t0 + 2h + i * 2h;  // past any backoff (1.5 h at most)
      auto r = b.take(now);
      REQUIRE(r);
      if (r->host == bad) {
        ++bad_picks;
        b.put_back(*r, false, now);  // 9 failures and more weigh as 8
      } else {
        b.add(r->host, r->source, now);
      }
    }
    // 0.66^8 = 3.6 %: about 35 of 1000 picks.
    CHECK(bad_picks > 5);
    CHECK(bad_picks < 100);
  }
}

TEST_CASE("address book: backoff doubles from backoff_initial up to backoff_max", "[book]") {
  address_book b({}, 1);
  CHECK(b.backoff(0) == 0s);
  CHECK(b.backoff(1) == 30s);
  CHECK(b.backoff(2) == 60s);
  CHECK(b.backoff(3) == 120s);
  CHECK(b.backoff(7) == 1920s);
  CHECK(b.backoff(8) == 1h);  // 3840 s, capped
  CHECK(b.backoff(9) == 1h);
  CHECK(b.backoff(64) == 1h);
  CHECK(b.backoff(UINT32_MAX) == 1h);
  for (std::uint32_t a = 1; a < 7; ++a) CHECK(b.backoff(a + 1) == 2 * b.backoff(a));

  address_book huge(
      book_options{.backoff_initial = 1ms, .backoff_max = std::chrono::milliseconds::max()}, 1);
  CHECK(huge.backoff(11) == 1024ms);
  CHECK(huge.backoff(40) == std::chrono::milliseconds(1LL << 39));
  CHECK(huge.backoff(50) == address_book::duration::max());  // beyond nanoseconds' range
  CHECK(huge.backoff(UINT32_MAX) == address_book::duration::max());
}

TEST_CASE("address book: put_back records the outcome", "[book]") {
  address_book b({}, 9);
  const host x = h("10.0.0.1");
  b.add(x, host_source::seed, t0);

  SECTION("a failure counts an attempt and waits 50..150 % of the backoff") {
    std::chrono::hours shortest{100}, longest{0};
    for (std::uint32_t a = 1; a <= 200; ++a) {
      const time_point now = t0 + a * 2h;  // past any wait (1.5 h at most)
      auto r = b.take(now);
      REQUIRE(r);
      CHECK(r->attempts == a - 1);
      b.put_back(*r, false, now);
      const host_record* back = b.find(x);
      REQUIRE(back);
      CHECK(back->attempts == a);
      CHECK(back->last_try == now);
      CHECK(back->last_success == time_point{});
      const auto base = b.backoff(a);
      const auto wait = back->retry_at - now;
      CHECK(wait >= base / 2);
      CHECK(wait <= base * 3 / 2);
      if (a >= 8) {  // base 1 h: look at the spread
        shortest = std::min(shortest, std::chrono::duration_cast<std::chrono::hours>(wait * 10));
        longest = std::max(longest, std::chrono::duration_cast<std::chrono::hours>(wait * 10));
      }
    }
    CHECK(shortest <= 6h);  // tenths of the 1 h base: some waits below 0.7, some above 1.3
    CHECK(longest >= 13h);
  }
  SECTION("a success clears the attempts and the wait") {
    fail(b, x, 4, t0);
    auto r = b.take(t0 + 2h);
    REQUIRE(r);
    b.put_back(*r, true, t0 + 2h);
    const host_record* back = b.find(x);
    REQUIRE(back);
    CHECK(back->attempts == 0);
    CHECK(back->last_success == t0 + 2h);
    CHECK(back->last_try == t0 + 2h);
    CHECK(back->retry_at == time_point{});
    CHECK(back->source == host_source::seed);
  }
  SECTION("a host learned again while taken gets the history that comes back") {
    auto r = b.take(t0);
    REQUIRE(r);
    CHECK(b.add(x, host_source::pool, t0));
    b.put_back(*r, true, t0 + 1s);
    CHECK(b.size() == 1);
    CHECK(b.find(x)->last_success == t0 + 1s);
  }
  SECTION("a bad record is refused") {
    host_record r;
    r.host = h("", 1);
    CHECK_THROWS_AS(b.put_back(r, true, t0), std::invalid_argument);
  }
}

TEST_CASE("address book: max_hosts replaces the worst host that never worked", "[book]") {
  SECTION("most failed attempts first, then the oldest learned") {
    address_book b(book_options{.max_hosts = 4}, 1);
    const host a = h("10.0.0.1"), bb = h("10.0.0.2"), c = h("10.0.0.3"), d = h("10.0.0.4");
    for (const host& x : {a, bb, c, d}) CHECK(b.add(x, host_source::pool, t0));
    fail(b, bb, 3, t0);
    fail(b, c, 1, t0);
    CHECK(b.add(h("10.0.0.5"), host_source::pool, t0));
    CHECK(b.size() == 4);
    CHECK_FALSE(b.contains(bb));
    CHECK(b.add(h("10.0.0.6"), host_source::pool, t0));
    CHECK_FALSE(b.contains(c));
    CHECK(b.add(h("10.0.0.7"), host_source::pool, t0));
    CHECK_FALSE(b.contains(a));  // all at 0 attempts now: the oldest goes
    CHECK(b.contains(d));
    CHECK(b.add(h("10.0.0.8"), host_source::pool, t0));
    CHECK_FALSE(b.contains(d));
    CHECK(b.size() == 4);
  }
  SECTION("hosts that worked stay; a book full of them drops the newcomer") {
    address_book b(book_options{.max_hosts = 2}, 1);
    const host a = h("10.0.0.1"), bb = h("10.0.0.2");
    b.add(a, host_source::pool, t0);
    b.add(bb, host_source::pool, t0);
    work(b, a, t0);
    CHECK(b.add(h("10.0.0.3"), host_source::pool, t0));
    CHECK(b.contains(a));
    CHECK_FALSE(b.contains(bb));
    work(b, h("10.0.0.3"), t0);
    CHECK_FALSE(b.add(h("10.0.0.4"), host_source::pool, t0));
    CHECK_FALSE(b.contains(h("10.0.0.4")));
    CHECK(b.size() == 2);
  }
  SECTION("a host put back with more failures than any other is the one dropped") {
    address_book b(book_options{.max_hosts = 2}, 1);
    b.add(h("10.0.0.1"), host_source::pool, t0);
    b.add(h("10.0.0.2"), host_source::pool, t0);
    auto r = b.extract(h("10.0.0.1"), t0);
    REQUIRE(r);
    CHECK(b.add(h("10.0.0.3"), host_source::pool, t0));
    r->attempts = 5;
    b.put_back(*r, false, t0);
    CHECK_FALSE(b.contains(h("10.0.0.1")));
    CHECK(b.size() == 2);
    r = b.extract(h("10.0.0.2"), t0);
    CHECK(b.add(h("10.0.0.4"), host_source::pool, t0));
    b.put_back(*r, true, t0);  // it worked: it replaces the worst that never did
    CHECK(b.contains(h("10.0.0.2")));
    CHECK_FALSE(b.contains(h("10.0.0.3")));
  }
}

TEST_CASE("address book: bars add up, end, and are keyed by one spelling", "[book]") {
  address_book b({}, 1);
  b.bar("1.2.3.4", 10min, t0);
  CHECK(b.barred_for("::ffff:1.2.3.4", t0) == 10min);
  CHECK(b.barred_for("1.2.3.4", t0 + 4min) == 6min);
  b.bar("1.2.3.4", 10min, t0 + 4min);  // what is left plus the new bar
  CHECK(b.barred_for("1.2.3.4", t0 + 4min) == 16min);
  CHECK(b.barred("1.2.3.4", t0 + 19min));
  CHECK_FALSE(b.barred("1.2.3.4", t0 + 20min));
  CHECK(b.barred_for("1.2.3.4", t0 + 30min) == 0s);
  b.bar("1.2.3.4", 5min, t0 + 30min);  // an ended bar adds nothing
  CHECK(b.barred_for("1.2.3.4", t0 + 30min) == 5min);

  b.bar("Bad.Example.COM", 1min, t0);
  CHECK(b.barred("bad.example.com", t0));
  CHECK_FALSE(b.barred("good.example.com", t0));
  CHECK(b.barred_count(t0) == 2);
  CHECK(b.barred_count(t0 + 1min) == 1);
  CHECK(b.barred_count(t0 + 35min) == 0);
  CHECK_THROWS_WITH(b.bar("", 1min, t0), Catch::Contains("empty"));
}

TEST_CASE("address book: max_bars forgets the bar that ends soonest", "[book]") {
  address_book b(book_options{.max_bars = 3}, 1);
  b.bar("a", 10min, t0);
  b.bar("b", 30min, t0);
  b.bar("c", 20min, t0);
  b.bar("d", 5min, t0);  // the new one stays even though it ends sooner
  CHECK(b.barred_count(t0) == 3);
  CHECK_FALSE(b.barred("a", t0));
  CHECK(b.barred("b", t0));
  CHECK(b.barred("c", t0));
  CHECK(b.barred("d", t0));
  b.bar("b", 1min, t0);  // a known name takes no room
  CHECK(b.barred_count(t0) == 3);
  CHECK(b.barred_for("b", t0) == 31min);
}

TEST_CASE("address book: a million barred addresses keep only max_bars bars", "[book]") {
  address_book b({}, 1);
  const std::size_t max = b.options().max_bars;
  REQUIRE(max == 16384);
  constexpr std::uint32_t count = 1'000'000;
  // Even numbers an IPv4 address, odd ones an IPv6 address; the later barred, the later ended.
  const auto name = [](std::uint32_t i) {
    return i % 2 ? fmt::format("2001:db8::{:x}:{:x}", i >> 16, i & 0xffff)
                 : fmt::format("10.{}.{}.{}", i >> 16, (i >> 8) & 0xff, i & 0xff);
  };
  for (std::uint32_t i = 0; i < count; ++i) b.bar(name(i), 1h, t0 + i * 1us);
  const time_point end = t0 + count * 1us;
  CHECK(b.barred_count(end) == max);
  CHECK(b.barred(name(count - 1), end));
  CHECK(b.barred(name(count - max), end));
  CHECK_FALSE(b.barred(name(count - max - 1), end));
  CHECK_FALSE(b.barred(name(0), end));
  CHECK(b.barred_for(name(count - 1), end) == 1h - 1us);
  CHECK(b.barred_count(t0 + 2h) == 0);
}

TEST_CASE("address book: save writes the hosts taken out too", "[book]") {
  address_book b({}, 1);
  const host in_book = h("10.0.0.1"), out = h("10.0.0.2");
  b.add(in_book, host_source::pool, t0);
  b.add(out, host_source::seed, t0);
  auto taken = b.extract(out, t0);
  REQUIRE(taken);
  taken->last_success = t0;  // connected
  CHECK(b.size() == 1);
  const auto loaded =
      address_book::load(b.save(t0, wall0, std::span(&*taken, 1)), {}, t0, wall0, 2);
  REQUIRE(loaded.has_value());
  CHECK(loaded->size() == 2);
  REQUIRE(loaded->find(out));
  CHECK(loaded->find(out)->source == host_source::seed);
  CHECK(loaded->find(out)->last_success == t0);
  CHECK(loaded->contains(in_book));
  CHECK(b.size() == 1);  // the book itself is unchanged
}

TEST_CASE("address book: save and load keep hosts, history and running bars", "[book]") {
  address_book b({}, 1);
  const host seed = h("10.0.0.1"), failing = h("2001:db8::1"), active = h("Node.Example.com");
  b.add(seed, host_source::seed, t0);
  b.add(failing, host_source::pool, t0);
  b.add(active, host_source::active, t0);
  work(b, seed, t0);
  fail(b, failing, 2, t0 + 1min);
  b.bar("1.2.3.4", 1h, t0);
  b.bar("gone.example", 1min, t0);   // ended when saved
  b.bar("soon.example", 20min, t0);  // running when saved
  const time_point saved_now = t0 + 10min;
  const std::string text = b.save(saved_now, wall0);
  CHECK_THAT(text, Catch::Contains(R"("format":"p2p-manager address book","version":1)"));
  CHECK_THAT(text, Catch::Contains(R"("host":"[2001:db8::1]:8333")"));
  CHECK_THAT(text, Catch::Contains(R"("source":"active")"));
  CHECK_THAT(text, Catch::Contains("\"saved_at\":1700000000000"));
  CHECK_THAT(text, !Catch::Contains("gone.example"));

  // Loaded 5 s of wall time after the save, on a steady clock with another origin.
  const time_point now = t0 + 5h;
  const auto later = address_book::load(text, {}, now, wall0 + 5s, 2);
  REQUIRE(later.has_value());
  const address_book& l = *later;
  CHECK(l.size() == 3);
  // A steady time t is now at now + (t - saved_now) - 5 s, to the millisecond.
  const auto moved = [&](time_point t) { return now + (t - saved_now) - 5s; };
  const auto near = [](time_point a, time_point bb) { return a - bb < 1ms && bb - a < 1ms; };
  const host_record* s = l.find(seed);
  REQUIRE(s);
  CHECK(s->source == host_source::seed);
  CHECK(s->attempts == 0);
  CHECK(s->last_success == moved(t0));
  CHECK(s->last_try == moved(t0));
  CHECK(s->retry_at == time_point{});
  const host_record* f = l.find(failing);
  REQUIRE(f);
  CHECK(f->source == host_source::pool);
  CHECK(f->attempts == 2);
  CHECK(f->last_success == time_point{});
  CHECK(near(f->retry_at, moved(b.find(failing)->retry_at)));
  const host_record* a = l.find(active);
  REQUIRE(a);
  CHECK(a->host.name == "Node.Example.com");
  CHECK(a->source == host_source::active);
  CHECK(a->last_try == time_point{});
  CHECK(l.barred_for("1.2.3.4", now) == 50min - 5s);
  CHECK(l.barred_for("soon.example", now) == 10min - 5s);
  CHECK_FALSE(l.barred("gone.example", now));

  // Loaded and saved again at one wall time, the text is the same: order and values survive.
  const auto again = address_book::load(text, {}, now, wall0, 3);
  REQUIRE(again.has_value());
  CHECK(again->save(now, wall0) == text);

  SECTION("bars that ended by the load are dropped") {
    auto late = address_book::load(text, {}, now, wall0 + 30min, 2);
    REQUIRE(late.has_value());
    CHECK(late->barred_for("1.2.3.4", now) == 20min);
    CHECK_FALSE(late->barred("soon.example", now));
    CHECK_THAT(late->save(now, wall0 + 30min), !Catch::Contains("soon.example"));
  }
  SECTION("more hosts than max_hosts: the capacity rule, not an error") {
    auto small = address_book::load(text, book_options{.max_hosts = 2}, now, wall0, 2);
    REQUIRE(small.has_value());
    CHECK(small->size() == 2);
    CHECK(small->contains(seed));    // it worked
    CHECK(small->contains(active));  // no failures, where `failing` has 2
  }
}

TEST_CASE("address book: load fails as a whole, naming what is wrong", "[book]") {
  CHECK_THAT(load_error("hello"), Catch::Contains("not JSON"));
  CHECK_THAT(load_error(""), Catch::Contains("not JSON"));
  address_book b({}, 1);
  b.add(h("10.0.0.1"), host_source::pool, t0);
  const std::string text = b.save(t0, wall0);
  CHECK_THAT(load_error(text.substr(0, text.size() / 2)), Catch::Contains("not JSON"));
  CHECK_THAT(load_error("[]"), Catch::Contains("expected an object at the top level"));
  CHECK_THAT(load_error(R"({"format":"other","version":1})"), Catch::Contains("format: 'other'"));
  const std::string v2 =
      R"({"format":"p2p-manager address book","version":2,"saved_at":0,"hosts":"x"})";
  CHECK_THAT(load_error(v2), Catch::Contains("version: 2 is newer than this library reads"));
  CHECK_THAT(load_error(R"({"format":"p2p-manager address book","version":1,"saved_at":0})"),
             Catch::Contains("hosts: missing"));
  CHECK_THAT(
      load_error(R"({"format":"p2p-manager address book","version":1,"saved_at":0,"hosts":{}})"),
      Catch::Contains("hosts: expected an array, got an object"));

  CHECK(address_book::load(one_host("\"1.2.3.4:5\""), {}, t0, wall0).has_value());
  CHECK_THAT(load_error(one_host("\"1.2.3.4\"")),
             Catch::Contains("hosts[1].host: host '1.2.3.4' has no port"));
  CHECK_THAT(load_error(one_host("\"bad host:1\"")), Catch::Contains("hosts[1].host:"));
  CHECK_THAT(load_error(one_host("7")),
             Catch::Contains("hosts[1].host: expected a string, got an integer"));
  CHECK_THAT(load_error(one_host("\"1.2.3.4:5\"", "\"friend\"")),
             Catch::Contains("hosts[1].source: 'friend' is not seed, pool or active"));
  CHECK_THAT(load_error(one_host("\"1.2.3.4:5\"", "null")),
             Catch::Contains("hosts[1].source: expected a string, got null"));
  CHECK_THAT(load_error(one_host("\"1.2.3.4:5\"", "\"pool\"", "-1")),
             Catch::Contains("hosts[1].attempts: -1 is out of range 0..1000000"));
  CHECK_THAT(load_error(one_host("\"1.2.3.4:5\"", "\"pool\"", "1000001")),
             Catch::Contains("out of range"));
  CHECK_THAT(load_error(one_host("\"1.2.3.4:5\"", "\"pool\"", "\"3\"")),
             Catch::Contains("hosts[1].attempts: expected an integer, got a string"));
  CHECK_THAT(load_error(one_host("\"1.2.3.4:5\"", "\"pool\"", "0", "1.5")),
             Catch::Contains("hosts[1].last_try: expected an integer"));
  CHECK_THAT(load_error(one_host("\"1.2.3.4:5\"", "\"pool\"", "0", "true")),
             Catch::Contains("hosts[1].last_try: expected an integer, got a boolean"));
  CHECK_THAT(load_error(R"({"format":"p2p-manager address book","version":1,"saved_at":0,)"
                        R"("hosts":[],"bars":[{"host":"","until":1}]})"),
             Catch::Contains("bars[0].host: empty"));
  CHECK_THAT(load_error(R"({"format":"p2p-manager address book","version":1,"saved_at":0,)"
                        R"("hosts":[],"bars":[{"host":"x"}]})"),
             Catch::Contains("bars[0].until: missing"));
}

TEST_CASE("address book: merge learns the other book's hosts and bars", "[book]") {
  address_book mine({}, 1), theirs({}, 2);
  mine.add(h("10.0.0.1"), host_source::pool, t0);
  mine.add(h("10.0.0.2"), host_source::pool, t0);
  fail(mine, h("10.0.0.2"), 3, t0);
  mine.bar("9.9.9.9", 10min, t0);
  theirs.add(h("10.0.0.2"), host_source::seed, t0);
  work(theirs, h("10.0.0.2"), t0 + 1s);
  theirs.add(h("10.0.0.3"), host_source::active, t0);
  theirs.bar("9.9.9.9", 30min, t0);
  theirs.bar("8.8.8.8", 5min, t0);

  mine.merge(theirs, t0);
  CHECK(mine.size() == 3);
  const host_record* both = mine.find(h("10.0.0.2"));
  REQUIRE(both);
  CHECK(both->attempts == 0);  // their history
  CHECK(both->last_success == t0 + 1s);
  CHECK(both->source == host_source::seed);
  CHECK(mine.find(h("10.0.0.3"))->source == host_source::active);
  CHECK(mine.barred_for("9.9.9.9", t0) == 30min);  // the later end, not the sum
  CHECK(mine.barred_for("8.8.8.8", t0) == 5min);
  mine.merge(theirs, t0);
  mine.merge(mine, t0);
  CHECK(mine.size() == 3);
  CHECK(mine.barred_for("9.9.9.9", t0) == 30min);
  // The merged host that worked is taken like any other that did.
  std::set<std::string> seen;
  while (auto r = mine.take(t0)) seen.insert(r->host.name);
  CHECK(seen == std::set<std::string>{"10.0.0.1", "10.0.0.2", "10.0.0.3"});
}
