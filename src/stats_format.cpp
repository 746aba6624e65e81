// The snapshot's renderings: Prometheus text exposition, JSON, a text table.

#include <p2p/stats.hpp>

#include <boost/json.hpp>
#include <boost/uuid/uuid_io.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>

namespace p2p {

namespace {

namespace json = boost::json;

constexpr manager_state manager_states[] = {manager_state::created, manager_state::launching,
                                            manager_state::running, manager_state::shutdown};

/// Milliseconds since the Unix epoch.
std::int64_t unix_ms(wall_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

double seconds(std::chrono::microseconds d) {
  return static_cast<double>(d.count()) / 1e6;
}

// Prometheus text exposition 0.0.4: a family's samples must follow its HELP and TYPE lines
// without another family in between, so each family is written whole by one call.
class exposition {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    fmt::format_to(std::back_inserter(out_), "# HELP {} {}\n# TYPE {} {}\n", name, help, name,
                   type);
  }

  template <class T>
  void sample(std::string_view name, T value) {
    fmt::format_to(std::back_inserter(out_), "{} {}\n", name, value);
  }

  template <class T>
  void sample(std::string_view name, std::string_view label, std::string_view label_value,
              T value) {
    fmt::format_to(std::back_inserter(out_), "{}{{{}=\"", name, label);
    escape_label(label_value);
    fmt::format_to(std::back_inserter(out_), "\"}} {}\n", value);
  }

  /// A family of one unlabelled sample.
  template <class T>
  void single(std::string_view name, std::string_view type, std::string_view help, T value) {
    family(name, type, help);
    sample(name, value);
  }

  std::string take() { return std::move(out_); }

 private:
  // The format's three escapes in label values; anything else is written as it is.
  void escape_label(std::string_view v) {
    for (char c : v) {
      if (c == '\\')
        out_ += "\\\\";
      else if (c == '"')
        out_ += "\\\"";
      else if (c == '\n')
        out_ += "\\n";
      else
        out_.push_back(c);
    }
  }

  std::string out_;
};

json::object command_object(const command_stats& c) {
  json::object o;
  o["command"] = c.command;
  o["messages_received"] = c.messages_received;
  o["bytes_received"] = c.bytes_received;
  o["messages_sent"] = c.messages_sent;
  o["bytes_sent"] = c.bytes_sent;
  return o;
}

json::array commands_array(const std::vector<command_stats>& rows) {
  json::array a;
  a.reserve(rows.size());
  for (const auto& c : rows) a.emplace_back(command_object(c));
  return a;
}

json::object violations_object(const violation_counts& v) {
  json::object o;
  for (std::size_t i = 0; i < violation_kinds; ++i) o[to_string(static_cast<violation>(i))] = v[i];
  return o;
}

json::value time_or_null(const std::optional<wall_clock::time_point>& t) {
  if (!t) return nullptr;
  return unix_ms(*t);
}

json::value micros_or_null(const std::optional<std::chrono::microseconds>& d) {
  if (!d) return nullptr;
  return d->count();
}

json::object peer_object(const peer_stats& p) {
  json::object o;
  o["id"] = boost::uuids::to_string(p.id);
  o["remote"] = p.remote.to_string();
  o["inbound"] = p.inbound;
  o["state"] = p.state;
  o["ready"] = p.ready;
  o["connected_since"] = time_or_null(p.connected_since);
  o["last_receive"] = time_or_null(p.last_receive);
  o["last_send"] = time_or_null(p.last_send);
  o["bytes_received"] = p.bytes_received;
  o["bytes_sent"] = p.bytes_sent;
  o["messages_received"] = p.messages_received;
  o["messages_sent"] = p.messages_sent;
  o["commands"] = commands_array(p.commands);
  o["pings_sent"] = p.pings_sent;
  o["pongs_received"] = p.pongs_received;
  o["rtt_last"] = micros_or_null(p.rtt_last);
  o["rtt_min"] = micros_or_null(p.rtt_min);
  o["ping_outstanding"] = p.ping_outstanding;
  o["queued_bytes"] = p.queued_bytes;
  o["garbage_bytes"] = p.garbage_bytes;
  o["violations"] = violations_object(p.violations);
  o["dropped_sends"] = p.dropped_sends;
  return o;
}

json::object counters_object(const manager_counters& c) {
  json::object o;
  o["inbound_admitted"] = c.inbound_admitted;
  json::object refused;
  for (std::size_t i = 0; i < refusal_reasons; ++i)
    refused[to_string(static_cast<refusal>(i))] = c.inbound_refused[i];
  o["inbound_refused"] = std::move(refused);
  o["outbound_attempts"] = c.outbound_attempts;
  o["outbound_failures"] = c.outbound_failures;
  o["handshakes_passed"] = c.handshakes_passed;
  o["handshakes_failed"] = c.handshakes_failed;
  o["evictions"] = c.evictions;
  o["bars"] = c.bars;
  o["idle_disconnects"] = c.idle_disconnects;
  o["ping_timeouts"] = c.ping_timeouts;
  o["first_message_timeouts"] = c.first_message_timeouts;
  o["violations"] = violations_object(c.violations);
  o["dropped_sends"] = c.dropped_sends;
  o["bytes_received"] = c.bytes_received;
  o["bytes_sent"] = c.bytes_sent;
  o["messages_received"] = c.messages_received;
  o["messages_sent"] = c.messages_sent;
  o["commands"] = commands_array(c.commands);
  return o;
}

std::string millis_text(const std::optional<std::chrono::microseconds>& d) {
  if (!d) return "-";
  return fmt::format("{:.1f}", static_cast<double>(d->count()) / 1e3);
}

}  // namespace

std::string_view to_string(violation v) noexcept {
  switch (v) {
    case violation::garbage:
      return "garbage";
    case violation::bad_checksum:
      return "bad_checksum";
    case violation::bad_command:
      return "bad_command";
    case violation::oversized:
      return "oversized";
    case violation::too_much_garbage:
      return "too_much_garbage";
    case violation::send_overflow:
      return "send_overflow";
  }
  return "unknown";
}

std::string_view to_string(refusal r) noexcept {
  switch (r) {
    case refusal::barred:
      return "barred";
    case refusal::already_active:
      return "already_active";
    case refusal::per_host_limit:
      return "per_host_limit";
    case refusal::inbound_limit:
      return "inbound_limit";
    case refusal::max_peers:
      return "max_peers";
  }
  return "unknown";
}

void count_command(std::vector<command_stats>& rows, std::string_view command, bool received,
                   std::uint64_t messages, std::uint64_t bytes) {
  // A command literally named "*other*" lands in the overflow row: the names are the
  // table's keys, and that row is the one with this name.
  auto row = std::find_if(rows.begin(), rows.end(),
                          [&](const command_stats& c) { return c.command == command; });
  if (row == rows.end()) {
    auto other = std::find_if(rows.begin(), rows.end(),
                              [](const command_stats& c) { return c.command == other_commands; });
    const std::size_t named = rows.size() - (other == rows.end() ? 0 : 1);
    if (named < max_tracked_commands && command != other_commands) {
      // Named rows stay ahead of the overflow row, in the order first seen.
      row = rows.insert(other, command_stats{std::string(command)});
    } else if (other != rows.end()) {
      row = other;
    } else {
      row = rows.insert(rows.end(), command_stats{std::string(other_commands)});
    }
  }
  if (received) {
    row->messages_received += messages;
    row->bytes_received += bytes;
  } else {
    row->messages_sent += messages;
    row->bytes_sent += bytes;
  }
}

std::string to_prometheus(const manager_snapshot& s) {
  exposition e;
  const auto& c = s.counters;

  e.single("p2p_active_peers", "gauge", "Peers being connected or connected.", s.active);
  e.family("p2p_peers", "gauge", "Active peers by direction.");
  e.sample("p2p_peers", "direction", "inbound", s.inbound);
  e.sample("p2p_peers", "direction", "outbound", s.outbound);
  const auto ready =
      std::count_if(s.peers.begin(), s.peers.end(), [](const peer_stats& p) { return p.ready; });
  e.single("p2p_ready_peers", "gauge", "Active peers that passed the handshake.", ready);
  e.single("p2p_pool_hosts", "gauge", "Hosts in the address book.", s.pool);
  e.single("p2p_barred_addresses", "gauge", "Addresses barred now.", s.barred);
  e.single("p2p_min_peers", "gauge", "The lower bound on active peers in force.", s.min_peers);
  e.single("p2p_max_peers", "gauge", "The upper bound on active peers in force.", s.max_peers);
  e.family("p2p_manager_state", "gauge", "The manager's state: 1 for the current one.");
  for (auto st : manager_states)
    e.sample("p2p_manager_state", "state", to_string(st), st == s.state ? 1 : 0);

  std::uint64_t queued = 0;
  std::optional<std::chrono::microseconds> rtt_min, rtt_max;
  for (const auto& p : s.peers) {
    queued += p.queued_bytes;
    if (p.rtt_min && (!rtt_min || *p.rtt_min < *rtt_min)) rtt_min = p.rtt_min;
    if (p.rtt_last && (!rtt_max || *p.rtt_last > *rtt_max)) rtt_max = p.rtt_last;
  }
  e.single("p2p_queued_bytes", "gauge", "Bytes queued to send and not yet written, all peers.",
           queued);
  // A family without a sample is valid; NaN would read as a value in dashboards.
  e.family("p2p_peer_rtt_min_seconds", "gauge",
           "The smallest ping round trip of any current peer.");
  if (rtt_min) e.sample("p2p_peer_rtt_min_seconds", seconds(*rtt_min));
  e.family("p2p_peer_rtt_last_max_seconds", "gauge",
           "The largest last ping round trip of any current peer.");
  if (rtt_max) e.sample("p2p_peer_rtt_last_max_seconds", seconds(*rtt_max));

  e.single("p2p_inbound_admitted_total", "counter", "Inbound connections admitted.",
           c.inbound_admitted);
  e.family("p2p_inbound_refused_total", "counter", "Inbound connections refused, by reason.");
  for (std::size_t i = 0; i < refusal_reasons; ++i)
    e.sample("p2p_inbound_refused_total", "reason", to_string(static_cast<refusal>(i)),
             c.inbound_refused[i]);
  e.single("p2p_outbound_attempts_total", "counter", "Outbound connections attempted.",
           c.outbound_attempts);
  e.single("p2p_outbound_failures_total", "counter", "Outbound connections whose connect failed.",
           c.outbound_failures);
  e.family("p2p_handshakes_total", "counter", "Handshakes finished, by result.");
  e.sample("p2p_handshakes_total", "result", "passed", c.handshakes_passed);
  e.sample("p2p_handshakes_total", "result", "failed", c.handshakes_failed);
  e.single("p2p_evictions_total", "counter", "Inbound peers evicted to make room.", c.evictions);
  e.single("p2p_bars_total", "counter", "Bars placed.", c.bars);
  e.family("p2p_timeout_disconnects_total", "counter",
           "Peers disconnected for a timeout, by reason.");
  e.sample("p2p_timeout_disconnects_total", "reason", "idle", c.idle_disconnects);
  e.sample("p2p_timeout_disconnects_total", "reason", "ping", c.ping_timeouts);
  e.sample("p2p_timeout_disconnects_total", "reason", "first_message", c.first_message_timeouts);
  e.family("p2p_protocol_violations_total", "counter", "Protocol violations of peers, by kind.");
  for (std::size_t i = 0; i < violation_kinds; ++i)
    e.sample("p2p_protocol_violations_total", "kind", to_string(static_cast<violation>(i)),
             c.violations[i]);
  e.single("p2p_dropped_sends_total", "counter",
           "Frames given to send() after their peer stopped accepting them.", c.dropped_sends);
  e.single("p2p_received_bytes_total", "counter", "Bytes read from peers.", c.bytes_received);
  e.single("p2p_sent_bytes_total", "counter", "Bytes written to peers.", c.bytes_sent);
  e.single("p2p_received_messages_total", "counter", "Valid frames received.", c.messages_received);
  e.single("p2p_sent_messages_total", "counter", "Frames written in full.", c.messages_sent);

  struct per_command {
    std::string_view name, help;
    std::uint64_t command_stats::*field;
  };

  static constexpr per_command per_command_families[] = {
      {"p2p_command_received_messages_total", "Frames received, by command.",
       &command_stats::messages_received},
      {"p2p_command_received_bytes_total", "Bytes of frames received, by command.",
       &command_stats::bytes_received},
      {"p2p_command_sent_messages_total", "Frames sent, by command.",
       &command_stats::messages_sent},
      {"p2p_command_sent_bytes_total", "Bytes of frames sent, by command.",
       &command_stats::bytes_sent},
  };
  for (const auto& f : per_command_families) {
    e.family(f.name, "counter", f.help);
    for (const auto& row : c.commands) e.sample(f.name, "command", row.command, row.*f.field);
  }
  return e.take();
}

std::string to_json(const manager_snapshot& s) {
  json::object root;
  root["taken_at"] = unix_ms(s.taken_at);
  root["state"] = to_string(s.state);
  root["active"] = s.active;
  root["inbound"] = s.inbound;
  root["outbound"] = s.outbound;
  root["pool"] = s.pool;
  root["barred"] = s.barred;
  root["min_peers"] = s.min_peers;
  root["max_peers"] = s.max_peers;
  root["counters"] = counters_object(s.counters);
  json::array peers;
  peers.reserve(s.peers.size());
  for (const auto& p : s.peers) peers.emplace_back(peer_object(p));
  root["peers"] = std::move(peers);
  return json::serialize(root);
}

std::string format_peer_table(const manager_snapshot& s) {
  constexpr std::string_view row =
      "{:<8} {:<24} {:<3} {:<13} {:>7} {:>9} {:>11} {:>9} {:>11} {:>8} {:>8} {:>9}\n";
  std::string out;
  auto it = std::back_inserter(out);
  fmt::format_to(it, fmt::runtime(row), "id", "remote", "dir", "state", "since", "rx msgs",
                 "rx bytes", "tx msgs", "tx bytes", "rtt ms", "min ms", "queued");
  for (const auto& p : s.peers) {
    std::string since = "-";
    if (p.connected_since) {
      const auto up =
          std::chrono::duration_cast<std::chrono::seconds>(s.taken_at - *p.connected_since);
      since = fmt::format("{}s", std::max<std::int64_t>(up.count(), 0));
    }
    const std::string id = boost::uuids::to_string(p.id).substr(0, 8);
    fmt::format_to(it, fmt::runtime(row), id, p.remote.to_string(), p.inbound ? "in" : "out",
                   p.state, since, p.messages_received, p.bytes_received, p.messages_sent,
                   p.bytes_sent, millis_text(p.rtt_last), millis_text(p.rtt_min), p.queued_bytes);
  }
  return out;
}

}  // namespace p2p
