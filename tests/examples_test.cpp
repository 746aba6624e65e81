// The example programs, run as child processes against each other and against a fake
// Bitcoin node, on 127.0.0.1 only. Every child is killed after a time limit.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "support/child_process.hpp"
#include "support/fake_node.hpp"
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

using namespace std::chrono_literals;
using p2p::test::child;
using p2p::test::fake_node;
using p2p::test::fake_node_options;
using p2p::test::run;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::string node_arg(const fake_node& node) {
  return "127.0.0.1:" + std::to_string(node.port());
}

fake_node_options with_addresses(fake_node_options o) {
  o.addresses = {{"127.0.0.11", 18444}, {"127.0.0.12", 18445}, {"127.0.0.13", 8333}};
  return o;
}

void check_our_version(const fake_node& node) {
  auto v = node.version();
  REQUIRE(v);
  CHECK(v->version == 70015);
  CHECK(v->services == 0);
  CHECK(v->user_agent == "/p2p-manager:0.1.0/");
  CHECK(v->start_height == 0);
  REQUIRE(v->relay);
  CHECK(*v->relay == false);
  // addr_recv: the node's own address, IPv4-mapped, port big-endian.
  const std::array<std::uint8_t, 16> mapped{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 127, 0, 0, 1};
  CHECK(v->recv_ip == mapped);
  CHECK(v->recv_port == node.port());
  CHECK(v->payload_size == 4 + 8 + 8 + 26 + 26 + 8 + 1 + 19 + 4 + 1);
}

}  // namespace

// ---- bitcoin_handshake -----------------------------------------------------------------

SCENARIO("examples: bitcoin_handshake shakes hands, pings and lists addresses", "[examples]") {
  GIVEN("a node that sends its version as soon as we connect") {
    fake_node node(with_addresses({}));
    auto [rc, out] =
        run("bitcoin_handshake", {node_arg(node), "--network", "regtest", "--timeout", "5"}, 40s);
    INFO(out);
    THEN("it exits 0 after the handshake, the pong check and the addresses") {
      CHECK(rc == 0);
      CHECK(contains(out, "-> version: protocol 70015"));
      CHECK(contains(out, "<- version: protocol 70016"));
      CHECK(contains(out, "/FakeNode:1.0/"));
      CHECK(contains(out, "<- verack"));
      CHECK(contains(out, "peer state \"ready\""));
      CHECK(contains(out, "matches"));
      CHECK(contains(out, "127.0.0.11:18444"));
      CHECK(contains(out, "127.0.0.12:18445"));
      CHECK(contains(out, "127.0.0.13:8333"));
      CHECK(node.verack_received() == 1);
      CHECK(node.pings() == 2);  // the example's, and the library's keepalive ping
      CHECK(node.getaddrs() == 1);
      check_our_version(node);
    }
  }
  GIVEN("a node that waits for our version, then sends version and verack in one write") {
    fake_node_options o = with_addresses({});
    o.version_first = false;
    fake_node node(o);
    auto [rc, out] =
        run("bitcoin_handshake", {node_arg(node), "--network", "regtest", "--timeout", "5"}, 40s);
    INFO(out);
    THEN("the back-to-back verack is not lost and it exits 0") {
      CHECK(rc == 0);
      CHECK(contains(out, "<- verack"));
      CHECK(contains(out, "127.0.0.12:18445"));
      check_our_version(node);
    }
  }
  GIVEN("a node with an empty address book") {
    fake_node node({});
    auto [rc, out] =
        run("bitcoin_handshake", {node_arg(node), "--network", "regtest", "--timeout", "2"}, 40s);
    INFO(out);
    THEN("it says so and still exits 0") {
      CHECK(rc == 0);
      CHECK(contains(out, "no addresses within 2 s"));
    }
  }
}

SCENARIO("examples: bitcoin_handshake fails cleanly", "[examples]") {
  GIVEN("a node that never sends verack") {
    fake_node_options o;
    o.send_verack = false;
    fake_node node(o);
    const auto t0 = steady_clock::now();
    auto [rc, out] =
        run("bitcoin_handshake", {node_arg(node), "--network", "regtest", "--timeout", "3"}, 40s);
    INFO(out);
    THEN("it exits 1 within the step timeout, naming the missing verack") {
      CHECK(rc == 1);
      CHECK(contains(out, "no verack"));
      CHECK(steady_clock::now() - t0 < 15s);
    }
  }
  GIVEN("a node that answers ping with another nonce") {
    fake_node_options o;
    o.wrong_pong = true;
    fake_node node(o);
    auto [rc, out] =
        run("bitcoin_handshake", {node_arg(node), "--network", "regtest", "--timeout", "3"}, 40s);
    INFO(out);
    THEN("it exits 1") {
      CHECK(rc == 1);
      CHECK(contains(out, "does NOT match"));
    }
  }
  GIVEN("a node on another network (wrong magic)") {
    fake_node node(with_addresses({}));  // regtest magic
    auto [rc, out] =
        run("bitcoin_handshake", {node_arg(node), "--network", "testnet", "--timeout", "2"}, 40s);
    INFO(out);
    THEN("no frame is understood and it exits 1") {
      CHECK(rc == 1);
    }
  }
}

// ---- knock_answer ----------------------------------------------------------------------

namespace {

/// Starts `knock_answer --answer` on 127.0.0.1:0 and returns it with its "host:port".
std::pair<std::unique_ptr<child>, std::string> start_answerer() {
  auto c = std::make_unique<child>(
      "knock_answer",
      std::vector<std::string>{"--answer", "--listen", "127.0.0.1:0", "--seconds", "60"});
  auto line = c->read_line(10s);
  INFO(c->output());
  REQUIRE(line);
  std::smatch m;
  REQUIRE(std::regex_match(*line, m, std::regex(R"(listening (127\.0\.0\.1:\d+))")));
  return {std::move(c), m[1].str()};
}

}  // namespace

SCENARIO("examples: knock_answer --knock against --answer processes", "[examples]") {
  GIVEN("two answering processes") {
    auto [a1, addr1] = start_answerer();
    auto [a2, addr2] = start_answerer();
    WHEN("a knocker knocks on both") {
      auto [rc, out] =
          run("knock_answer", {"--knock", "--connect", addr1 + "," + addr2, "--timeout", "5"}, 40s);
      INFO(out);
      THEN("each answered with its own payload and it exits 0") {
        CHECK(rc == 0);
        CHECK(contains(out, addr1 + ": answered"));
        CHECK(contains(out, addr2 + ": answered"));
        CHECK(contains(out, "ok, its own payload"));
      }
      AND_THEN("the answerers stop cleanly on SIGTERM") {
        a1->signal(SIGTERM);
        a2->signal(SIGTERM);
        CHECK(a1->wait(10s) == 0);
        CHECK(a2->wait(10s) == 0);
        INFO(a1->output());
        CHECK(contains(a1->output(), "knock"));
        CHECK(contains(a1->output(), "stopped"));
      }
    }
  }
  GIVEN("an answerer limited by --seconds") {
    child c("knock_answer", {"--answer", "--listen", "127.0.0.1:0", "--seconds", "1"});
    THEN("it stops by itself with status 0") {
      CHECK(c.wait(15s) == 0);
      INFO(c.output());
      CHECK(contains(c.output(), "1 s passed"));
    }
  }
}

SCENARIO("examples: knock_answer --knock checks every payload", "[examples]") {
  GIVEN("a node that answers with a different payload") {
    fake_node_options o;
    o.magic = p2p::bitcoin_magic;
    o.version_first = false;
    o.knock = fake_node_options::knock_reply::wrong;
    fake_node node(o);
    auto [rc, out] = run("knock_answer", {"--knock", "--connect", node_arg(node)}, 40s);
    INFO(out);
    THEN("it exits 1") {
      CHECK(rc == 1);
      CHECK(contains(out, "WRONG"));
    }
  }
  GIVEN("a node that never answers, with a custom magic") {
    fake_node_options o;
    o.magic = 0x01020304;
    o.version_first = false;
    o.knock = fake_node_options::knock_reply::none;
    fake_node node(o);
    auto [rc, out] =
        run("knock_answer",
            {"--knock", "--connect", node_arg(node), "--magic", "01020304", "--timeout", "1"}, 40s);
    INFO(out);
    THEN("it exits 1 after the timeout") {
      CHECK(rc == 1);
      CHECK(contains(out, "no answer within 1 s"));
    }
  }
  GIVEN("a port nobody listens on") {
    std::uint16_t port = 0;
    {
      // Bind and release: the port is then (almost certainly) free and refuses connections.
      boost::asio::io_context io;
      boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
      port = a.local_endpoint().port();
    }
    auto [rc, out] =
        run("knock_answer",
            {"--knock", "--connect", "127.0.0.1:" + std::to_string(port), "--timeout", "2"}, 40s);
    INFO(out);
    THEN("it exits 1 and says the host was not connected") {
      CHECK(rc == 1);
      CHECK(contains(out, "not connected"));
    }
  }
}

SCENARIO("examples: knock_answer without arguments runs a whole network", "[examples]") {
  auto [rc, out] = run("knock_answer", {}, 60s);
  INFO(out);
  CHECK(rc == 0);
  CHECK(contains(out, "asker connected to 6 of 6"));
  CHECK(contains(out, "asked "));
  CHECK(contains(out, " answered "));
  CHECK(contains(out, "never answered"));
  // The round to all: A5 and A6 are the silent ones.
  CHECK(std::regex_search(out, std::regex(R"(\(A5 at 127\.0\.0\.1:\d+\) never answered)")));
  CHECK(std::regex_search(out, std::regex(R"(\(A6 at 127\.0\.0\.1:\d+\) never answered)")));
  CHECK(std::regex_search(out, std::regex(R"(\(A1 at 127\.0\.0\.1:\d+\) answered [0-9a-f]{8})")));
  CHECK(contains(out, "all managers shut down"));
  // It ends with the asker's peer table from its snapshot: one row per answerer.
  CHECK(contains(out, "the asker's peers (peer_manager::snapshot):"));
  CHECK(std::regex_search(out, std::regex(R"(127\.0\.0\.1:\d+ +out )")));
  CHECK(std::regex_search(out, std::regex(R"(6 active, \d+ messages sent and \d+ received)")));
}

namespace {

/// GET `path` from `addr` ("127.0.0.1:PORT") over a blocking socket with a 5 s receive
/// bound; returns the status line's code and the body (the server closes the connection).
std::pair<int, std::string> http_get(const std::string& addr, const std::string& path) {
  namespace asio = boost::asio;
  asio::io_context io;
  asio::ip::tcp::socket s(io);
  const auto colon = addr.rfind(':');
  s.connect({asio::ip::make_address(addr.substr(0, colon)),
             static_cast<std::uint16_t>(std::stoi(addr.substr(colon + 1)))});
  timeval tv{5, 0};
  ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  const std::string req =
      fmt::format("GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", path, addr);
  asio::write(s, asio::buffer(req));
  std::string all;
  std::array<char, 4096> buf{};
  for (int i = 0; i < 10000; ++i) {
    boost::system::error_code ec;
    const auto n = s.read_some(asio::buffer(buf), ec);
    all.append(buf.data(), n);
    if (ec) break;
  }
  const auto end = all.find("\r\n\r\n");
  if (all.size() < 12 || end == std::string::npos) return {0, all};
  return {std::stoi(all.substr(9, 3)), all.substr(end + 4)};
}

/// `promtool check metrics` on `text`: its exit status and output.
std::pair<int, std::string> promtool_check(const std::string& text) {
  const auto dir = std::filesystem::temp_directory_path();
  const auto in = dir / fmt::format("p2p-metrics-{}.txt", ::getpid());
  const auto out = dir / fmt::format("p2p-promtool-{}.txt", ::getpid());
  std::ofstream(in) << text;
  const int rc = std::system(
      fmt::format("promtool check metrics < '{}' > '{}' 2>&1", in.string(), out.string()).c_str());
  std::ifstream f(out);
  std::string said((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::filesystem::remove(in);
  std::filesystem::remove(out);
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, said};
}

}  // namespace

SCENARIO("examples: knock_answer --answer --metrics serves Prometheus text and JSON",
         "[examples][metrics]") {
  child c("knock_answer",
          {"--answer", "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--seconds", "60"});
  auto listening = c.read_line(10s);
  auto metrics = c.read_line(10s);
  INFO(c.output());
  REQUIRE(listening);
  REQUIRE(metrics);
  std::smatch l, m;
  REQUIRE(std::regex_match(*listening, l, std::regex(R"(listening (127\.0\.0\.1:\d+))")));
  REQUIRE(std::regex_match(*metrics, m, std::regex(R"(metrics http://(127\.0\.0\.1:\d+))")));
  const std::string node = l[1].str();
  const std::string endpoint = m[1].str();
  WHEN("a knocker has knocked") {
    auto [rc, out] = run("knock_answer", {"--knock", "--connect", node, "--timeout", "5"}, 40s);
    INFO(out);
    REQUIRE(rc == 0);
    auto [code, text] = http_get(endpoint, "/metrics");
    INFO(text);
    THEN("/metrics passes promtool and counts the knock and the admission") {
      REQUIRE(code == 200);
      auto [prc, said] = promtool_check(text);
      INFO("promtool said: " << said);
      REQUIRE(prc == 0);
      REQUIRE(said.empty());
      CHECK(contains(text, "p2p_inbound_admitted_total 1"));
      CHECK(std::regex_search(
          text, std::regex(R"(p2p_command_received_messages_total\{command="knock"\} 1\b)")));
      CHECK(std::regex_search(
          text, std::regex(R"(p2p_command_sent_messages_total\{command="answer"\} 1\b)")));
    }
    AND_THEN("/peers is JSON with the counters, and other paths and methods are refused") {
      auto [pcode, body] = http_get(endpoint, "/peers");
      INFO(body);
      REQUIRE(pcode == 200);
      const auto v = boost::json::parse(body);
      REQUIRE(v.is_object());
      CHECK(v.at("peers").is_array());
      CHECK(v.at("state").as_string() == "running");
      auto [ncode, nbody] = http_get(endpoint, "/nothing");
      CHECK(ncode == 404);
    }
  }
  c.signal(SIGTERM);
  CHECK(c.wait(10s) == 0);
}

TEST_CASE("examples: bad arguments exit 2 naming the value", "[examples]") {
  struct bad {
    std::string program;
    std::vector<std::string> args;
    std::string named;
  };

  const std::vector<bad> cases{
      {"knock_answer", {"--knock", "--connect", "127.0.0.1:99999"}, "99999"},
      {"knock_answer", {"--knock", "--connect", "127.0.0.1"}, "127.0.0.1"},
      {"knock_answer", {"--answer", "--listen", "localhost:1"}, "localhost"},
      {"knock_answer", {"--answer", "--listen", "127.0.0.1:0", "--magic", "zz"}, "zz"},
      {"knock_answer", {"--answer", "--listen", "127.0.0.1:0", "--seconds", "-3"}, "-3"},
      {"knock_answer", {"--frobnicate"}, "--frobnicate"},
      {"knock_answer", {"--answer"}, "--listen"},
      {"bitcoin_handshake", {"127.0.0.1:1", "--network", "fakenet"}, "fakenet"},
      {"bitcoin_handshake", {"127.0.0.1:70000"}, "70000"},
      {"bitcoin_handshake", {"127.0.0.1:1", "--timeout", "soon"}, "soon"},
      {"bitcoin_handshake", {}, "HOST"},
  };
  for (const auto& c : cases) {
    auto [rc, out] = run(c.program, c.args, 10s);
    INFO(c.program << " " << fmt::format("{}", fmt::join(c.args, " ")) << "\n" << out);
    CHECK(rc == 2);
    CHECK(contains(out, c.named));
  }
}
