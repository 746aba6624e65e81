// The manager's address book over loopback: the cache file (use_cache), restarts, the
// refill's netgroup spread, and what a dialled host brings back to the book.

#include <p2p/error.hpp>
#include <p2p/manager.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "detail/cache_file.hpp"
#include "support/async.hpp"
#include "support/loopback.hpp"
#include "support/reports.hpp"
#include <unistd.h>

namespace asio = boost::asio;
namespace fs = std::filesystem;
using asio::ip::tcp;
using p2p::test::eventually;
using p2p::test::has_report;
using p2p::test::run_async_test;
using p2p::test::sleep_for;
using namespace std::chrono_literals;

namespace {

using awaitable_void = asio::awaitable<void>;

/// A fresh path in the temporary directory, removed (with its ".tmp") at scope exit.
struct temp_path {
  fs::path path;

  explicit temp_path(std::string_view tag) {
    static int counter = 0;
    path =
        fs::temp_directory_path() / ("p2p-" + std::string(tag) + "-" + std::to_string(::getpid()) +
                                     "-" + std::to_string(++counter) + ".json");
    fs::remove(path);
  }

  ~temp_path() {
    std::error_code ec;
    fs::remove(path, ec);
    fs::remove(path.string() + ".tmp", ec);
  }

  std::string str() const { return path.string(); }
};

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_text(const fs::path& p, std::string_view text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

/// A dialler that keeps added hosts in its book (min 0, max 1: the launch target is 0).
p2p::manager_options keeper_options(const temp_path& cache) {
  auto o = p2p::test::loopback_options();
  o.listen = false;
  o.port = 8333;
  o.min_peers = 0;
  o.max_peers = 1;
  o.use_cache = cache.str();
  return o;
}

// Outside the coroutines: g++ 12 miscompiles initializer lists inside them.
p2p::host_list three_hosts() {
  return {"127.0.0.50:1111", "127.0.0.51:2222", "seed.invalid:3333"};
}

std::vector<p2p::host> three_hosts_parsed() {
  return {{"127.0.0.50", 1111}, {"127.0.0.51", 2222}, {"seed.invalid", 3333}};
}

/// A port on 127.0.0.1 that refuses connections (bound, then closed).
std::uint16_t refusing_port(asio::io_context& io) {
  tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();
}

/// One bad cache file: reported, ignored, and replaced by a good one at shutdown.
awaitable_void bad_file_case(asio::io_context& io, std::string what, std::string text) {
  temp_path cache("bad");
  if (!text.empty()) write_text(cache.path, text);
  p2p::peer_manager m(io.get_executor(), keeper_options(cache));
  std::vector<p2p::report> reports;
  auto sub = m.events().report.subscribe([&](const p2p::report& r) { reports.push_back(r); });
  const p2p::host_list seeds(std::string("127.0.0.70:1"));
  auto [ec] = co_await m.launch(seeds, p2p::test::as_result);
  REQUIRE_FALSE(ec);  // the launch goes on without the file
  INFO(what);
  REQUIRE(has_report(reports, p2p::severity::warning, cache.str()));
  if (std::string_view(what) == "future version")
    REQUIRE(has_report(reports, p2p::severity::warning, cache.str(),
                       "2 is newer than this library reads"));
  // Nothing of the file was half-loaded: only the seed is known.
  const auto pool = m.pool();
  REQUIRE(pool.size() == 1);
  REQUIRE(pool[0] == p2p::host{"127.0.0.70", 1});
  REQUIRE(m.status().barred == 0);
  co_await m.shutdown();
  // The shutdown wrote a good book over it.
  auto reread = p2p::address_book::load(read_text(cache.path), {}, std::chrono::steady_clock::now(),
                                        std::chrono::system_clock::now());
  REQUIRE(reread.has_value());
  REQUIRE(reread->size() == 1);
}

}  // namespace

SCENARIO("persistence: a restart restores the pool, each host's history and a running bar",
         "[persistence]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    temp_path cache("restart");
    const p2p::host refused{"127.0.0.1", refusing_port(io)};
    {
      p2p::peer_manager a(io.get_executor(), keeper_options(cache));
      co_await a.launch();
      a.add_pool(three_hosts());
      a.bar("127.0.0.60", 10min);
      a.add_active(refused);  // refused: barred, and back in the book with one failure
      CO_REQUIRE(co_await eventually([&] {
        return a.pool().size() == 4 && a.book().find(refused) &&
               a.book().find(refused)->attempts == 1;
      }));
      co_await a.shutdown();
    }
    REQUIRE(fs::exists(cache.path));
    GIVEN("a new manager with the same use_cache") {
      p2p::peer_manager b(io.get_executor(), keeper_options(cache));
      std::vector<p2p::report> reports;
      auto sub = b.events().report.subscribe([&](const p2p::report& r) { reports.push_back(r); });
      co_await b.launch();
      THEN("the pool, the history and the bars are back") {
        auto pool = b.pool();
        REQUIRE(pool.size() == 4);
        auto expected = three_hosts_parsed();
        expected.push_back(refused);
        for (const auto& h : expected)
          REQUIRE(std::find(pool.begin(), pool.end(), h) != pool.end());
        const auto* r = b.book().find(refused);
        REQUIRE(r);
        REQUIRE(r->attempts == 1);
        REQUIRE(r->last_try != p2p::host_record::time_point{});
        REQUIRE(r->retry_at > std::chrono::steady_clock::now());
        REQUIRE(b.book().find({"127.0.0.50", 1111})->attempts == 0);
        REQUIRE(b.barred_for("127.0.0.60") > 9min);
        REQUIRE(b.barred_for("127.0.0.60") <= 10min);
        REQUIRE(b.barred_for("127.0.0.1") > 9min);
        REQUIRE(b.status().barred == 2);
        REQUIRE(has_report(reports, p2p::severity::info, cache.str(), "4 hosts, 2 bars"));
      }
      co_await b.shutdown();
    }
  });
}

SCENARIO(
    "persistence: a missing, truncated, corrupt or future-version file is reported and "
    "ignored",
    "[persistence]") {
  struct bad_file {
    const char* what;
    std::string text;  // empty: no file at all
  };

  const std::vector<bad_file> cases{
      {"missing", ""},
      {"not JSON", "this is not an address book"},
      {"truncated",
       R"({"format":"p2p-manager address book","version":1,"saved_at":1,"hosts":[{"host":"127.0.0.5:1","source":"pool")"},
      {"ill-typed",
       R"({"format":"p2p-manager address book","version":1,"saved_at":1,"hosts":7,"bars":[]})"},
      {"a bad host",
       R"({"format":"p2p-manager address book","version":1,"saved_at":1,"hosts":[{"host":"127.0.0.5:99999","source":"pool","attempts":0,"last_try":null,"last_success":null,"retry_at":null}],"bars":[]})"},
      {"future version",
       R"({"format":"p2p-manager address book","version":2,"saved_at":1,"hosts":[],"bars":[]})"},
  };
  for (const auto& c : cases) {
    DYNAMIC_SECTION("a file that is " << c.what) {
      run_async_test([&c](asio::io_context& io) { return bad_file_case(io, c.what, c.text); });
    }
  }
}

SCENARIO(
    "persistence: the book is saved every cache_interval while running, connected hosts "
    "included",
    "[persistence]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    temp_path cache("periodic");
    tcp::acceptor listener(io, tcp::endpoint(asio::ip::make_address("127.0.0.81"), 0));
    const p2p::host connected{"127.0.0.81", listener.local_endpoint().port()};
    auto o = keeper_options(cache);
    o.cache_interval = 100ms;
    p2p::peer_manager m(io.get_executor(), o);
    co_await m.launch();
    m.add_pool("127.0.0.80:8080");
    m.add_active(connected);
    CO_REQUIRE(co_await eventually([&] {
      auto p = m.find(p2p::peer::outbound_id(connected));
      return p && p->is_open();
    }));
    // The connected host is out of the book (not in the pool), yet the file holds it, as
    // a host that worked: a crash now would not lose it.
    REQUIRE_FALSE(m.book().contains(connected));
    CO_REQUIRE(co_await eventually([&] {
      if (!fs::exists(cache.path)) return false;
      auto b = p2p::address_book::load(read_text(cache.path), {}, std::chrono::steady_clock::now(),
                                       std::chrono::system_clock::now());
      return b && b->contains({"127.0.0.80", 8080}) && b->contains(connected) &&
             b->find(connected)->last_success != p2p::host_record::time_point{};
    }));
    co_await m.shutdown();
  });
}

SCENARIO("persistence: the cache file is replaced atomically", "[persistence]") {
  temp_path cache("atomic");
  write_text(cache.path, "old book");
  GIVEN("a writer that crashed mid-write (a partial temporary file left behind)") {
    write_text(cache.path.string() + ".tmp", "half a new bo");
    THEN("the file itself is still the old one") {
      REQUIRE(read_text(cache.path) == "old book");
    }
    AND_WHEN("the next write completes, it replaces both") {
      REQUIRE_FALSE(p2p::detail::write_file_atomically(cache.str(), "new book"));
      REQUIRE(read_text(cache.path) == "new book");
      REQUIRE_FALSE(fs::exists(cache.path.string() + ".tmp"));
    }
  }
  GIVEN("a write that fails (the path's directory does not exist)") {
    const auto bad = (cache.path.parent_path() / "no-such-dir-p2p" / "book.json").string();
    auto ec = p2p::detail::write_file_atomically(bad, "new book");
    THEN("the error is returned and nothing is left behind") {
      REQUIRE(ec);
      REQUIRE_FALSE(fs::exists(bad));
      REQUIRE_FALSE(fs::exists(bad + ".tmp"));
      REQUIRE(read_text(cache.path) == "old book");
    }
  }
  GIVEN("a file larger than the reader's bound") {
    auto r = p2p::detail::read_whole_file(cache.str(), 3);
    THEN("it is refused, not read") {
      REQUIRE_FALSE(r);
      REQUIRE(r.error() == boost::system::errc::file_too_large);
    }
  }
}

SCENARIO("book: the refill spreads outbound peers over netgroups", "[persistence]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    // Six hosts in 127.1/16, one in 127.2/16, one in 127.3/16; each really listens.
    std::vector<std::string> addresses{"127.1.0.1", "127.1.0.2", "127.1.0.3", "127.1.0.4",
                                       "127.1.0.5", "127.1.0.6", "127.2.0.1", "127.3.0.1"};
    std::vector<tcp::acceptor> listeners;
    temp_path cache("spread");
    {
      p2p::address_book seed_book;
      const auto now = std::chrono::steady_clock::now();
      for (const auto& a : addresses) {
        listeners.emplace_back(io, tcp::endpoint(asio::ip::make_address(a), 0));
        seed_book.add({a, listeners.back().local_endpoint().port()}, p2p::host_source::pool, now);
      }
      write_text(cache.path, seed_book.save(now, std::chrono::system_clock::now()));
    }
    auto o = keeper_options(cache);
    o.min_peers = 3;
    o.max_peers = 3;
    p2p::peer_manager m(io.get_executor(), o);
    co_await m.launch();
    CO_REQUIRE(co_await eventually([&] { return m.active_count() == 3; }));
    THEN("the three outbound peers are in three netgroups (by chance: 1 in 9)") {
      std::set<std::string> groups;
      for (auto& p : m.active_peers())
        groups.insert(p2p::address_book::netgroup_of(p->remote().name));
      REQUIRE(groups == std::set<std::string>{"127.1.0.0/16", "127.2.0.0/16", "127.3.0.0/16"});
      REQUIRE(m.pool().size() == 5);
    }
    co_await m.shutdown();
  });
}
