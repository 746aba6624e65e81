#include <p2p/stats.hpp>

#include <boost/json.hpp>
#include <boost/uuid/string_generator.hpp>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

// The snapshot's renderings tested with hand-built values; the Prometheus text is also
// checked by promtool, the Prometheus project's own linter.

namespace {

using namespace std::chrono_literals;
using p2p::manager_snapshot;
using p2p::wall_clock;

const auto taken_at = wall_clock::time_point(std::chrono::milliseconds(1'700'000'100'000));
constexpr std::string_view quoted_command = R"(a"b\c)";

std::size_t index(p2p::refusal r) {
  return static_cast<std::size_t>(r);
}

std::size_t index(p2p::violation v) {
  return static_cast<std::size_t>(v);
}

// Two peers: an outbound one with round trips and commands, an inbound one still without.
manager_snapshot sample_snapshot() {
  manager_snapshot s;
  s.taken_at = taken_at;
  s.state = p2p::manager_state::running;
  s.active = 2;
  s.inbound = 1;
  s.outbound = 1;
  s.pool = 17;
  s.barred = 3;
  s.min_peers = 3;
  s.max_peers = 20;
  auto& c = s.counters;
  c.inbound_admitted = 5;
  c.inbound_refused[index(p2p::refusal::barred)] = 2;
  c.inbound_refused[index(p2p::refusal::max_peers)] = 7;
  c.outbound_attempts = 9;
  c.outbound_failures = 4;
  c.handshakes_passed = 6;
  c.handshakes_failed = 1;
  c.evictions = 2;
  c.bars = 3;
  c.idle_disconnects = 1;
  c.ping_timeouts = 2;
  c.first_message_timeouts = 3;
  c.violations[index(p2p::violation::bad_checksum)] = 4;
  c.dropped_sends = 8;
  c.bytes_received = 12345;
  c.bytes_sent = 6789;
  c.messages_received = 40;
  c.messages_sent = 30;
  p2p::count_command(c.commands, "ping", true, 10, 320);
  p2p::count_command(c.commands, "ping", false, 11, 352);
  p2p::count_command(c.commands, "version", true, 2, 250);
  p2p::count_command(c.commands, quoted_command, true, 1, 30);

  p2p::peer_stats a;
  a.id = boost::uuids::string_generator()("0a1b2c3d-4e5f-4061-8273-94a5b6c7d8e9");
  a.remote = {"10.0.0.1", 8333};
  a.inbound = false;
  a.state = "connected";
  a.ready = true;
  a.connected_since = taken_at - 90s;
  a.last_receive = taken_at - 2s;
  a.last_send = taken_at - 1s;
  a.bytes_received = 1000;
  a.bytes_sent = 900;
  a.messages_received = 12;
  a.messages_sent = 11;
  p2p::count_command(a.commands, "ping", true, 10, 320);
  a.pings_sent = 11;
  a.pongs_received = 10;
  a.rtt_last = std::chrono::microseconds(1500);
  a.rtt_min = std::chrono::microseconds(1200);
  a.queued_bytes = 100;
  a.violations[index(p2p::violation::garbage)] = 1;
  a.garbage_bytes = 7;

  p2p::peer_stats b;
  b.id = boost::uuids::string_generator()("ffeeddcc-bbaa-4998-8776-655443322110");
  b.remote = {"::1", 18444};
  b.inbound = true;
  b.state = "connecting";
  b.queued_bytes = 50;
  b.dropped_sends = 2;
  s.peers = {a, b};
  return s;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

bool has_line(const std::string& text, std::string_view line) {
  for (const auto& l : lines_of(text))
    if (l == line) return true;
  return false;
}

// The output of `promtool check metrics` run on `text`, and its exit status.
struct promtool_result {
  int status = -1;
  std::string output;
};

promtool_result promtool_check(const std::string& text) {
  promtool_result r;
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
    FAIL(
        "promtool is not installed: `apt-get install prometheus` (Debian) provides it; "
        "scripts/test installs it");
  }
  char path[] = "/tmp/p2p_stats_format_XXXXXX";
  const int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  ::close(fd);
  {
    std::ofstream f(path, std::ios::binary);
    f << text;
  }
  const std::string command = fmt::format("promtool check metrics < {} 2>&1", path);
  FILE* p = ::popen(command.c_str(), "r");
  REQUIRE(p != nullptr);
  char chunk[4096];
  for (std::size_t n; (n = std::fread(chunk, 1, sizeof chunk, p)) > 0;) r.output.append(chunk, n);
  const int status = ::pclose(p);
  std::remove(path);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

void require_promtool_clean(const std::string& text) {
  const auto r = promtool_check(text);
  INFO("promtool said: " << r.output);
  INFO("on:\n" << text);
  REQUIRE(r.status == 0);
  REQUIRE(r.output.empty());
}

}  // namespace

TEST_CASE("stats: to_string names every violation and refusal", "[stats-format]") {
  using p2p::refusal;
  using p2p::violation;
  const std::vector<std::string_view> violations = {
      "garbage", "bad_checksum", "bad_command", "oversized", "too_much_garbage", "send_overflow"};
  REQUIRE(violations.size() == p2p::violation_kinds);
  for (std::size_t i = 0; i < p2p::violation_kinds; ++i)
    CHECK(p2p::to_string(static_cast<violation>(i)) == violations[i]);
  CHECK(p2p::to_string(violation::too_much_garbage) == "too_much_garbage");
  const std::vector<std::string_view> refusals = {"barred", "already_active", "per_host_limit",
                                                  "inbound_limit", "max_peers"};
  REQUIRE(refusals.size() == p2p::refusal_reasons);
  for (std::size_t i = 0; i < p2p::refusal_reasons; ++i)
    CHECK(p2p::to_string(static_cast<refusal>(i)) == refusals[i]);
  CHECK(p2p::to_string(refusal::per_host_limit) == "per_host_limit");
}

TEST_CASE("stats: count_command keeps 32 named rows and sums the rest in *other*",
          "[stats-format]") {
  std::vector<p2p::command_stats> rows;
  for (int i = 0; i < 40; ++i) p2p::count_command(rows, fmt::format("cmd{}", i), true, 1, 24 + i);
  REQUIRE(rows.size() == p2p::max_tracked_commands + 1);
  for (std::size_t i = 0; i < p2p::max_tracked_commands; ++i) {
    CHECK(rows[i].command == fmt::format("cmd{}", i));
    CHECK(rows[i].messages_received == 1);
    CHECK(rows[i].bytes_received == 24 + i);
  }
  const auto& other = rows.back();
  CHECK(other.command == p2p::other_commands);
  CHECK(other.messages_received == 8);
  CHECK(other.bytes_received == (24 + 32) + (24 + 33) + (24 + 34) + (24 + 35) + (24 + 36) +
                                    (24 + 37) + (24 + 38) + (24 + 39));
  CHECK(other.messages_sent == 0);

  // A named command still counts in its row; one past the bound, in *other*, both ways.
  p2p::count_command(rows, "cmd5", false, 2, 100);
  p2p::count_command(rows, "cmd35", false, 3, 90);
  p2p::count_command(rows, "brand-new", true, 4, 80);
  REQUIRE(rows.size() == p2p::max_tracked_commands + 1);
  CHECK(rows[5].messages_sent == 2);
  CHECK(rows[5].bytes_sent == 100);
  CHECK(rows.back().messages_sent == 3);
  CHECK(rows.back().bytes_sent == 90);
  CHECK(rows.back().messages_received == 12);
}

TEST_CASE("stats: count_command keeps named rows ahead of *other* in the order first seen",
          "[stats-format]") {
  std::vector<p2p::command_stats> rows;
  p2p::count_command(rows, "ping", true, 1, 32);
  p2p::count_command(rows, p2p::other_commands, true, 1, 30);  // a remote may send this name
  p2p::count_command(rows, "pong", false, 1, 32);
  p2p::count_command(rows, "ping", false, 1, 32);
  REQUIRE(rows.size() == 3);
  CHECK(rows[0].command == "ping");
  CHECK(rows[0].messages_received == 1);
  CHECK(rows[0].messages_sent == 1);
  CHECK(rows[1].command == "pong");
  CHECK(rows[1].messages_sent == 1);
  CHECK(rows[2].command == p2p::other_commands);
  CHECK(rows[2].bytes_received == 30);
  for (int i = 0; i < 100; ++i) p2p::count_command(rows, fmt::format("x{}", i), true, 1, 1);
  REQUIRE(rows.size() == p2p::max_tracked_commands + 1);
  CHECK(rows.back().command == p2p::other_commands);
}

TEST_CASE("stats: to_prometheus writes the families with labels, escapes and units",
          "[stats-format]") {
  const auto s = sample_snapshot();
  const std::string text = p2p::to_prometheus(s);
  INFO(text);
  const std::vector<std::string_view> expected = {
      "p2p_active_peers 2",
      R"(p2p_peers{direction="inbound"} 1)",
      R"(p2p_peers{direction="outbound"} 1)",
      "p2p_ready_peers 1",
      "p2p_pool_hosts 17",
      "p2p_barred_addresses 3",
      "p2p_min_peers 3",
      "p2p_max_peers 20",
      R"(p2p_manager_state{state="new"} 0)",
      R"(p2p_manager_state{state="launching"} 0)",
      R"(p2p_manager_state{state="running"} 1)",
      R"(p2p_manager_state{state="shutdown"} 0)",
      "p2p_queued_bytes 150",
      "p2p_peer_rtt_min_seconds 0.0012",
      "p2p_peer_rtt_last_max_seconds 0.0015",
      "p2p_inbound_admitted_total 5",
      R"(p2p_inbound_refused_total{reason="barred"} 2)",
      R"(p2p_inbound_refused_total{reason="already_active"} 0)",
      R"(p2p_inbound_refused_total{reason="max_peers"} 7)",
      "p2p_outbound_attempts_total 9",
      "p2p_outbound_failures_total 4",
      R"(p2p_handshakes_total{result="passed"} 6)",
      R"(p2p_handshakes_total{result="failed"} 1)",
      "p2p_evictions_total 2",
      "p2p_bars_total 3",
      R"(p2p_timeout_disconnects_total{reason="idle"} 1)",
      R"(p2p_timeout_disconnects_total{reason="ping"} 2)",
      R"(p2p_timeout_disconnects_total{reason="first_message"} 3)",
      R"(p2p_protocol_violations_total{kind="bad_checksum"} 4)",
      R"(p2p_protocol_violations_total{kind="garbage"} 0)",
      "p2p_dropped_sends_total 8",
      "p2p_received_bytes_total 12345",
      "p2p_sent_bytes_total 6789",
      "p2p_received_messages_total 40",
      "p2p_sent_messages_total 30",
      R"(p2p_command_received_messages_total{command="ping"} 10)",
      R"(p2p_command_received_bytes_total{command="ping"} 320)",
      R"(p2p_command_sent_messages_total{command="ping"} 11)",
      R"(p2p_command_sent_bytes_total{command="ping"} 352)",
      R"(p2p_command_received_messages_total{command="version"} 2)",
      R"(p2p_command_received_bytes_total{command="a\"b\\c"} 30)",
      R"(p2p_command_sent_messages_total{command="a\"b\\c"} 0)",
      "# TYPE p2p_received_bytes_total counter",
      "# TYPE p2p_peers gauge",
      "# HELP p2p_protocol_violations_total Protocol violations of peers, by kind.",
  };
  for (auto line : expected) {
    INFO("expected line: " << line);
    CHECK(has_line(text, line));
  }

  // Every family has HELP and TYPE before its samples, counters end in _total, and no
  // family is split.
  std::map<std::string, std::string> types;
  std::set<std::string> helps, finished;
  std::string current;
  for (const auto& line : lines_of(text)) {
    INFO("line: " << line);
    REQUIRE_FALSE(line.empty());
    if (line.rfind("# HELP ", 0) == 0) {
      const auto name = line.substr(7, line.find(' ', 7) - 7);
      REQUIRE(helps.insert(name).second);
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      const auto rest = line.substr(7);
      const auto name = rest.substr(0, rest.find(' '));
      REQUIRE(helps.count(name) == 1);
      types[name] = rest.substr(rest.find(' ') + 1);
      if (!current.empty()) finished.insert(current);
      current = name;
      continue;
    }
    REQUIRE(line[0] != '#');
    const auto name = line.substr(0, line.find_first_of("{ "));
    REQUIRE(name == current);
    REQUIRE(finished.count(name) == 0);
    REQUIRE(name.rfind("p2p_", 0) == 0);
    if (types[name] == "counter") CHECK(name.size() > 6);
    if (types[name] == "counter") CHECK(name.substr(name.size() - 6) == "_total");
  }
  CHECK(helps.size() == types.size());
  CHECK(types.size() >= 25);

  // No per-peer series: neither a peer's id nor its address appears.
  CHECK(text.find("0a1b2c3d") == std::string::npos);
  CHECK(text.find("10.0.0.1") == std::string::npos);
  CHECK(text.find("18444") == std::string::npos);
  CHECK(text.find("peer=") == std::string::npos);
  CHECK(text.find("id=") == std::string::npos);
}

TEST_CASE("stats: promtool accepts to_prometheus without lint", "[stats-format]") {
  SECTION("a snapshot with peers and a command holding a quote and a backslash") {
    require_promtool_clean(p2p::to_prometheus(sample_snapshot()));
  }
  SECTION("an empty snapshot (families without a sample)") {
    require_promtool_clean(p2p::to_prometheus(manager_snapshot{}));
  }
  SECTION("a command holding a newline") {
    auto s = sample_snapshot();
    p2p::count_command(s.counters.commands, "a\nb", true, 1, 25);
    const auto text = p2p::to_prometheus(s);
    CHECK(has_line(text, R"(p2p_command_received_bytes_total{command="a\nb"} 25)"));
    require_promtool_clean(text);
  }
}

TEST_CASE("stats: to_json holds the counts, the counters and every peer", "[stats-format]") {
  const auto s = sample_snapshot();
  const auto doc = boost::json::parse(p2p::to_json(s));
  const auto& root = doc.as_object();
  CHECK(root.at("taken_at").to_number<std::int64_t>() == 1'700'000'100'000);
  CHECK(root.at("state").as_string() == "running");
  CHECK(root.at("active").to_number<int>() == 2);
  CHECK(root.at("inbound").to_number<int>() == 1);
  CHECK(root.at("outbound").to_number<int>() == 1);
  CHECK(root.at("pool").to_number<int>() == 17);
  CHECK(root.at("barred").to_number<int>() == 3);
  CHECK(root.at("min_peers").to_number<int>() == 3);
  CHECK(root.at("max_peers").to_number<int>() == 20);

  const auto& c = root.at("counters").as_object();
  const auto& refused = c.at("inbound_refused").as_object();
  CHECK(refused.size() == p2p::refusal_reasons);
  for (std::size_t i = 0; i < p2p::refusal_reasons; ++i)
    CHECK(refused.contains(p2p::to_string(static_cast<p2p::refusal>(i))));
  CHECK(refused.at("max_peers").to_number<int>() == 7);
  CHECK(c.at("violations").as_object().at("bad_checksum").to_number<int>() == 4);
  CHECK(c.at("violations").as_object().size() == p2p::violation_kinds);
  CHECK(c.at("bytes_received").to_number<int>() == 12345);
  CHECK(c.at("first_message_timeouts").to_number<int>() == 3);
  const auto& commands = c.at("commands").as_array();
  REQUIRE(commands.size() == 3);
  CHECK(commands[0].at("command").as_string() == "ping");
  CHECK(commands[0].at("messages_sent").to_number<int>() == 11);
  CHECK(commands[2].at("command").as_string() == quoted_command);

  const auto& peers = root.at("peers").as_array();
  REQUIRE(peers.size() == 2);
  const auto& a = peers[0].as_object();
  CHECK(a.at("id").as_string() == "0a1b2c3d-4e5f-4061-8273-94a5b6c7d8e9");
  CHECK(a.at("remote").as_string() == "10.0.0.1:8333");
  CHECK(a.at("inbound").as_bool() == false);
  CHECK(a.at("state").as_string() == "connected");
  CHECK(a.at("ready").as_bool());
  CHECK(a.at("connected_since").to_number<std::int64_t>() == 1'700'000'010'000);
  CHECK(a.at("last_send").to_number<std::int64_t>() == 1'700'000'099'000);
  CHECK(a.at("rtt_last").to_number<int>() == 1500);
  CHECK(a.at("rtt_min").to_number<int>() == 1200);
  CHECK(a.at("pings_sent").to_number<int>() == 11);
  CHECK(a.at("queued_bytes").to_number<int>() == 100);
  CHECK(a.at("garbage_bytes").to_number<int>() == 7);
  CHECK(a.at("violations").as_object().at("garbage").to_number<int>() == 1);
  REQUIRE(a.at("commands").as_array().size() == 1);
  CHECK(a.at("commands").as_array()[0].at("bytes_received").to_number<int>() == 320);
  const auto& b = peers[1].as_object();
  CHECK(b.at("remote").as_string() == "[::1]:18444");
  CHECK(b.at("inbound").as_bool());
  CHECK(b.at("connected_since").is_null());
  CHECK(b.at("last_receive").is_null());
  CHECK(b.at("rtt_last").is_null());
  CHECK(b.at("rtt_min").is_null());
  CHECK(b.at("ping_outstanding").as_bool() == false);
  CHECK(b.at("dropped_sends").to_number<int>() == 2);
  CHECK(b.at("commands").as_array().empty());
}

TEST_CASE("stats: format_peer_table has a header and one line per peer", "[stats-format]") {
  const auto table = p2p::format_peer_table(sample_snapshot());
  INFO(table);
  const auto lines = lines_of(table);
  REQUIRE(lines.size() == 3);
  CHECK(lines[0].find("remote") != std::string::npos);
  CHECK(lines[0].find("state") != std::string::npos);
  CHECK(lines[1].find("0a1b2c3d") == 0);
  CHECK(lines[1].find("10.0.0.1:8333") != std::string::npos);
  CHECK(lines[1].find("90s") != std::string::npos);
  CHECK(lines[1].find("1.5") != std::string::npos);
  CHECK(lines[2].find("[::1]:18444") != std::string::npos);
  CHECK(lines[2].find(" in ") != std::string::npos);
  // Fixed widths: the columns line up.
  CHECK(lines[0].size() == lines[1].size());
  CHECK(lines[1].size() == lines[2].size());
  CHECK(p2p::format_peer_table(manager_snapshot{}).find('\n') ==
        p2p::format_peer_table(manager_snapshot{}).size() - 1);
}
