// knock_answer: the seed's knock/answer exchange, written with co_await.
//
// An "asker" sends `knock` with a payload to some peers and waits (bounded) for each of them
// to send back `answer` with the same payload. Three ways to run it:
//
//   knock_answer
//       The whole network in this process, on 127.0.0.1: one asker and six answerers, two of
//       which never answer. Three rounds of
//         send(2, "state", "waiting", "knock", payload, "answer")  then  sent.wait(3s)
//       and one round to every peer (p2p::all). Prints who was asked, who answered what
//       after how long, and who never answered; then the asker's peer table, from its
//       snapshot.
//   knock_answer --answer --listen 127.0.0.1:PORT [--metrics HOST:PORT] [--magic HEX]
//                [--seconds N]
//       Listens (PORT 0: any free port) and answers every knock. Prints
//       "listening 127.0.0.1:PORT" once ready, and with --metrics "metrics http://HOST:PORT"
//       (Prometheus text at /metrics, JSON at /peers). Stops on SIGINT/SIGTERM or after N
//       seconds (default 60).
//   knock_answer --knock --connect HOST:PORT[,HOST:PORT...] [--magic HEX] [--timeout S]
//       Connects to every host, knocks each one with its own random payload and checks that
//       each echoes *its* payload. Exit 0 only if every host did. S (default 10) bounds the
//       connecting and, separately, the wait for the answers.
//
// Exit status: 0 success, 1 failure, 2 bad arguments.

#include <p2p/p2p.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;

constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

constexpr std::string_view usage_text =
    "usage: knock_answer                      (in-process demo on 127.0.0.1)\n"
    "       knock_answer --answer --listen ADDR:PORT [--metrics ADDR:PORT] [--magic HEX] "
    "[--seconds N]\n"
    "       knock_answer --knock --connect HOST:PORT[,HOST:PORT...] [--magic HEX] "
    "[--timeout S]\n";

/// Prints and flushes at once, so a parent process reading our pipe sees every line.
template <class... Args>
void say(fmt::format_string<Args...> f, Args&&... args) {
  fmt::print(f, std::forward<Args>(args)...);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---- arguments -------------------------------------------------------------------------

enum class mode { demo, answer, knock };

struct config {
  mode run = mode::demo;
  asio::ip::address listen_address;
  std::uint16_t listen_port = 0;
  std::vector<p2p::host> connect;
  std::string metrics;  // --metrics ADDR:PORT, as given
  std::uint32_t magic = p2p::bitcoin_magic;
  seconds run_for{60};
  seconds timeout{10};
};

std::uint32_t parse_magic(std::string_view text) {
  std::string_view digits = text;
  if (digits.starts_with("0x") || digits.starts_with("0X")) digits.remove_prefix(2);
  std::uint32_t v = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v, 16);
  if (digits.empty() || digits.size() > 8 || ec != std::errc{} ||
      end != digits.data() + digits.size())
    throw usage_error(fmt::format("--magic '{}' is not a 32-bit hex number", text));
  return v;
}

seconds parse_seconds(std::string_view option, std::string_view text) {
  int v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size() || v < 1 || v > 86400)
    throw usage_error(fmt::format("{} '{}' is not a number of seconds in 1..86400", option, text));
  return seconds(v);
}

/// "ADDR:PORT" or "[V6ADDR]:PORT" with an IP address; port 0 means any free port.
void parse_listen(std::string_view text, config& cfg) {
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos)
    throw usage_error(fmt::format("--listen '{}' needs ADDR:PORT, e.g. 127.0.0.1:0", text));
  std::string_view addr = text.substr(0, colon);
  std::string_view port = text.substr(colon + 1);
  if (addr.size() >= 2 && addr.front() == '[' && addr.back() == ']')
    addr = addr.substr(1, addr.size() - 2);
  boost::system::error_code ec;
  cfg.listen_address = asio::ip::make_address(std::string(addr), ec);
  if (ec)
    throw usage_error(
        fmt::format("--listen '{}': '{}' is not an IP address", text, std::string(addr)));
  unsigned v = 0;
  auto [end, pec] = std::from_chars(port.data(), port.data() + port.size(), v);
  if (port.empty() || pec != std::errc{} || end != port.data() + port.size() || v > 65535)
    throw usage_error(fmt::format("--listen '{}': port '{}' is not in 0..65535", text, port));
  cfg.listen_port = static_cast<std::uint16_t>(v);
}

std::vector<p2p::host> parse_connect(std::string_view text) {
  std::vector<p2p::host> hosts;
  std::size_t start = 0;
  for (;;) {
    auto comma = text.find(',', start);
    auto item = text.substr(start, comma == std::string_view::npos ? comma : comma - start);
    auto h = p2p::parse_host(item, 0);  // no default port: every host names its port
    if (!h) throw usage_error(fmt::format("--connect: {}", h.error().message));
    if (std::find(hosts.begin(), hosts.end(), *h) == hosts.end()) hosts.push_back(*h);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return hosts;
}

config parse_args(int argc, char** argv) {
  config cfg;
  bool answer = false, knock = false, have_listen = false, have_seconds = false,
       have_timeout = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value = [&]() -> std::string_view {
      if (i + 1 >= argc) throw usage_error(fmt::format("option {} needs a value", arg));
      return argv[++i];
    };
    if (arg == "--answer") {
      answer = true;
    } else if (arg == "--knock") {
      knock = true;
    } else if (arg == "--listen") {
      parse_listen(value(), cfg);
      have_listen = true;
    } else if (arg == "--metrics") {
      cfg.metrics = std::string(value());
      config probe;
      parse_listen(cfg.metrics, probe);  // the same form as --listen
    } else if (arg == "--connect") {
      cfg.connect = parse_connect(value());
    } else if (arg == "--magic") {
      cfg.magic = parse_magic(value());
    } else if (arg == "--seconds") {
      cfg.run_for = parse_seconds(arg, value());
      have_seconds = true;
    } else if (arg == "--timeout") {
      cfg.timeout = parse_seconds(arg, value());
      have_timeout = true;
    } else {
      throw usage_error(fmt::format("unknown argument '{}'", arg));
    }
  }
  if (answer && knock) throw usage_error("--answer and --knock exclude each other");
  if (answer) {
    if (!have_listen) throw usage_error("--answer needs --listen ADDR:PORT");
    if (!cfg.connect.empty() || have_timeout)
      throw usage_error("--connect and --timeout belong to --knock");
    cfg.run = mode::answer;
  } else if (knock) {
    if (cfg.connect.empty()) throw usage_error("--knock needs --connect HOST:PORT[,...]");
    if (have_listen || have_seconds || !cfg.metrics.empty())
      throw usage_error("--listen, --metrics and --seconds belong to --answer");
    cfg.run = mode::knock;
  } else if (argc > 1) {
    throw usage_error("options need --answer or --knock; run without arguments for the demo");
  }
  return cfg;
}

// ---- shared pieces ---------------------------------------------------------------------

std::string hex(std::span<const std::uint8_t> bytes) {
  return fmt::format("{:02x}", fmt::join(bytes, ""));
}

std::vector<std::uint8_t> random_payload(std::size_t n) {
  static std::mt19937_64 rng(std::random_device{}());
  std::uniform_int_distribution<int> byte(0, 255);
  std::vector<std::uint8_t> out(n);
  for (auto& b : out) b = static_cast<std::uint8_t>(byte(rng));
  return out;
}

/// First 8 hex digits of the peer's UUID: enough to tell peers apart on screen.
std::string short_id(const p2p::peer& p) {
  return p.id_string().substr(0, 8);
}

double ms(steady_clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

/// Prints the manager's warnings and errors (refused connects, handshake failures, ...).
p2p::subscription print_warnings(p2p::peer_manager& mgr, std::string who) {
  return mgr.events().report.subscribe([who](const p2p::report& r) {
    if (r.level >= p2p::severity::warning)
      say("  [{} {}] {}", who, p2p::to_string(r.level), r.message);
  });
}

/// Answers every `knock` with an `answer` carrying the same payload; `log` sees each knock.
/// Call on the manager's strand.
p2p::subscription answer_knocks(
    p2p::peer_manager& mgr, bool answer,
    std::function<void(const std::shared_ptr<p2p::peer>&, const p2p::message&)> log) {
  return mgr.events().command("knock").subscribe(
      [answer, log](const std::shared_ptr<p2p::peer>& p, const p2p::message& m) {
        if (log) log(p, m);
        if (answer) p->send("answer", m.payload.span());
      });
}

/// Waits on the manager's strand until `expected` connects have each connected or failed
/// (add_active posts, so they start after it returns), or `limit` passed; returns how many
/// are connected.
asio::awaitable<std::size_t> wait_connected(p2p::peer_manager* mgr, std::size_t expected,
                                            milliseconds limit) {
  asio::steady_timer wake(co_await asio::this_coro::executor);
  const auto deadline = steady_clock::now() + limit;
  std::size_t failed = 0;
  p2p::subscription on_connect =
      mgr->events().peer_connect.subscribe([&wake](const auto&) { wake.cancel(); });
  p2p::subscription on_error = mgr->events().peer_error.subscribe([&](const auto&, const auto&) {
    ++failed;
    wake.cancel();
  });
  for (;;) {
    std::size_t open = 0;
    for (const auto& p : mgr->active_peers())
      if (p->is_open()) ++open;
    if (open + failed >= expected || steady_clock::now() >= deadline) co_return open;
    wake.expires_at(deadline);
    co_await wake.async_wait(use_nothrow);
  }
}

/// Runs `body` on `strand` as the program's main coroutine, with a watchdog: if the
/// program is not done after `limit` it is stopped (a bug, reported as failure).
template <class Strand>
int run_main(asio::io_context& io, Strand strand, asio::awaitable<int> body, milliseconds limit) {
  int rc = 1;
  asio::steady_timer watchdog(io, limit);
  watchdog.async_wait([&](boost::system::error_code ec) {
    if (ec) return;
    say("watchdog: still running after {} ms; stopping", limit.count());
    rc = 1;
    io.stop();
  });
  asio::co_spawn(strand, std::move(body), [&](std::exception_ptr e, int r) {
    watchdog.cancel();
    rc = r;
    if (e) {
      rc = 1;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        say("error: {}", ex.what());
      }
    }
  });
  io.run();
  return rc;
}

// ---- --answer --------------------------------------------------------------------------

asio::awaitable<int> serve(p2p::peer_manager* mgr, config cfg) {
  using namespace asio::experimental::awaitable_operators;
  auto ex = co_await asio::this_coro::executor;
  // Before announcing the port: a parent may signal us as soon as it reads that line.
  asio::signal_set signals(ex, SIGINT, SIGTERM);
  p2p::subscription warnings = print_warnings(*mgr, "answerer");
  co_await mgr->launch();
  auto ep = mgr->listen_endpoint();
  if (!ep) throw std::runtime_error("the listener did not open");
  say("listening {}", p2p::host{ep->address().to_string(), ep->port()}.to_string());
  if (auto m = mgr->metrics_endpoint())
    say("metrics http://{}", p2p::host{m->address().to_string(), m->port()}.to_string());
  p2p::subscription knocks =
      answer_knocks(*mgr, true, [](const std::shared_ptr<p2p::peer>& p, const p2p::message& m) {
        say("knock {} from {}: answering", m.payload.hex(), p->remote().to_string());
      });
  asio::steady_timer stop_after(ex, cfg.run_for);
  auto why = co_await (signals.async_wait(use_nothrow) || stop_after.async_wait(use_nothrow));
  if (why.index() == 0)
    say("signal {}: shutting down", std::get<1>(std::get<0>(why)));
  else
    say("{} s passed: shutting down", cfg.run_for.count());
  co_await mgr->shutdown();
  say("stopped");
  co_return 0;
}

int run_answer(const config& cfg) {
  asio::io_context io;
  p2p::manager_options opts;
  opts.listen = true;
  opts.listen_address = cfg.listen_address.to_string();
  opts.port = cfg.listen_port;
  opts.magic = cfg.magic;
  opts.min_peers = 0;
  opts.max_peers = 64;
  opts.disconnect_timeout = 2s;
  opts.metrics_address = cfg.metrics;
  p2p::peer_manager mgr(io.get_executor(), opts);
  return run_main(io, mgr.get_executor(), serve(&mgr, cfg), cfg.run_for + 15s);
}

// ---- --knock ---------------------------------------------------------------------------

asio::awaitable<int> knock(p2p::peer_manager* mgr, config cfg) {
  p2p::subscription warnings = print_warnings(*mgr, "knocker");
  co_await mgr->launch();
  mgr->add_active(p2p::host_list(cfg.connect));
  const std::size_t connected = co_await wait_connected(mgr, cfg.connect.size(), cfg.timeout);
  say("connected to {} of {} host(s)", connected, cfg.connect.size());

  // A property per peer lets send() pick exactly that peer: each gets its own payload,
  // and its sent_messages collects its answer from the moment of sending.
  struct knocked {
    std::shared_ptr<p2p::peer> peer;
    std::vector<std::uint8_t> payload;
    p2p::sent_messages sent;
  };

  std::vector<knocked> knocks;
  int index = 0;
  for (const auto& p : mgr->active_peers()) {
    if (!p->is_open()) continue;
    p->set("knock_id", index);
    auto payload = random_payload(8);
    auto sent = co_await mgr->send(1, "knock_id", index, "knock", payload, "answer");
    say("knock {} -> {}", hex(payload), p->remote().to_string());
    knocks.push_back(knocked{p, std::move(payload), std::move(sent)});
    ++index;
  }

  bool all_ok = connected == cfg.connect.size();
  const auto deadline = steady_clock::now() + cfg.timeout;
  for (auto& k : knocks) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now());
    auto got = co_await k.sent.wait(std::max(left, 0ms));
    const std::string who = k.peer->remote().to_string();
    if (got.answered.empty()) {
      all_ok = false;
      say("{}: {}", who,
          got.closed.empty() ? fmt::format("no answer within {} s", cfg.timeout.count())
                             : std::string("closed without answering"));
      continue;
    }
    const auto& a = got.answered.front();
    const bool echoed = std::ranges::equal(a.msg.payload.span(), k.payload);
    all_ok = all_ok && echoed;
    say("{}: answered {} after {:.1f} ms: {}", who, a.msg.payload.hex(), ms(a.after),
        echoed ? "ok, its own payload" : fmt::format("WRONG, expected {}", hex(k.payload)));
  }
  for (const auto& h : cfg.connect) {
    bool seen = std::any_of(knocks.begin(), knocks.end(),
                            [&](const knocked& k) { return k.peer->remote() == h; });
    if (!seen) say("{}: not connected", h.to_string());
  }
  knocks.clear();
  co_await mgr->shutdown();
  say("{}", all_ok ? "all hosts answered with their own payload" : "FAILED");
  co_return all_ok ? 0 : 1;
}

int run_knock(const config& cfg) {
  asio::io_context io;
  p2p::manager_options opts;
  opts.listen = false;
  opts.magic = cfg.magic;
  opts.min_peers = 0;
  opts.max_peers = std::max<std::size_t>(1, cfg.connect.size());
  opts.connect_timeout = cfg.timeout;
  opts.disconnect_timeout = 2s;
  p2p::peer_manager mgr(io.get_executor(), opts);
  return run_main(io, mgr.get_executor(), knock(&mgr, cfg), 2 * cfg.timeout + 15s);
}

// ---- the in-process demo ---------------------------------------------------------------

/// One answering node of the demo.
struct answerer {
  std::string name;  // "A1".."A6"
  bool answers = true;
  std::unique_ptr<p2p::peer_manager> mgr;
  p2p::host address;
  int knocks_heard = 0;
  p2p::subscription on_knock;
  p2p::subscription warnings;
};

/// Launches one answerer; runs on its own manager's strand.
asio::awaitable<void> start_answerer(answerer* a) {
  co_await a->mgr->launch();
  auto ep = a->mgr->listen_endpoint();
  if (!ep) throw std::runtime_error(a->name + ": the listener did not open");
  a->address = p2p::host{ep->address().to_string(), ep->port()};
  a->warnings = print_warnings(*a->mgr, a->name);
  a->on_knock = answer_knocks(*a->mgr, a->answers,
                              [a](const std::shared_ptr<p2p::peer>&, const p2p::message& m) {
                                ++a->knocks_heard;
                                say("    {} heard knock {}{}", a->name, m.payload.hex(),
                                    a->answers ? " and answers" : " and stays silent");
                              });
}

/// What the demo's asker knows and counts.
struct demo_state {
  std::map<std::uint16_t, std::string> names;  // the asker sees answerers by port
  std::map<std::string, int> answered_by;      // answerer name -> answers received
  bool as_expected = true;

  std::string describe(const p2p::peer& p) {
    return fmt::format("{} ({} at {})", short_id(p), names[p.remote().port],
                       p.remote().to_string());
  }
};

/// One round: knock on `number` random "waiting" peers (all: p2p::all), wait up to 3 s.
asio::awaitable<void> knock_round(p2p::peer_manager* asker, demo_state* st, int round, int number) {
  auto payload = random_payload(4);
  say("");
  say("round {}: send({}, \"state\", \"waiting\", \"knock\", {}, \"answer\"), wait up to 3 s",
      round, number == p2p::all ? std::string("all") : std::to_string(number), hex(payload));
  auto sent = co_await asker->send(number, "state", "waiting", "knock", payload, "answer");
  for (const auto& [id, p] : sent.peers()) say("  asked {}", st->describe(*p));
  auto got = co_await sent.wait(3s);
  for (const auto& a : got.answered) {
    const bool echoed = std::ranges::equal(a.msg.payload.span(), payload);
    st->as_expected = st->as_expected && echoed;
    ++st->answered_by[st->names[a.peer->remote().port]];
    say("  {} answered {} after {:.1f} ms{}", st->describe(*a.peer), a.msg.payload.hex(),
        ms(a.after), echoed ? "" : " (NOT the payload we sent)");
  }
  for (const auto& p : got.timed_out)
    say("  {} never answered (gave up after {:.0f} ms)", st->describe(*p), ms(got.elapsed));
  for (const auto& p : got.closed) say("  {} closed without answering", st->describe(*p));
}

asio::awaitable<int> demo(p2p::peer_manager* asker, std::vector<answerer>* nodes) {
  const auto started = steady_clock::now();
  const auto silent =
      std::count_if(nodes->begin(), nodes->end(), [](const answerer& a) { return !a.answers; });
  say("knock/answer demo on 127.0.0.1: one asker, {} answerers, {} of which never answer",
      nodes->size(), silent);
  demo_state st;
  for (auto& a : *nodes) {
    co_await asio::co_spawn(a.mgr->get_executor(), start_answerer(&a), asio::use_awaitable);
    st.names[a.address.port] = a.name;
    say("  {} listening on {} ({})", a.name, a.address.to_string(),
        a.answers ? "answers every knock" : "never answers");
  }

  p2p::subscription warnings = print_warnings(*asker, "asker");
  co_await asker->launch();
  std::vector<p2p::host> hosts;
  for (const auto& a : *nodes) hosts.push_back(a.address);
  asker->add_active(p2p::host_list(hosts));
  const std::size_t connected = co_await wait_connected(asker, hosts.size(), 5s);
  say("asker connected to {} of {} answerers in {:.1f} ms", connected, nodes->size(),
      ms(steady_clock::now() - started));
  st.as_expected = connected == nodes->size();

  // The application's own state: "waiting" marks the peers we may knock on.
  for (const auto& p : asker->active_peers()) p->set_state("waiting");

  for (int round = 1; round <= 3; ++round) co_await knock_round(asker, &st, round, 2);
  co_await knock_round(asker, &st, 4, p2p::all);

  say("");
  say("summary:");
  for (const auto& a : *nodes) {
    const int got = st.answered_by[a.name];
    say("  {} at {}: heard {} knock(s), {} answer(s) received{}", a.name, a.address.to_string(),
        a.knocks_heard, got, got == 0 ? " -- never answered" : "");
    // Silent nodes must never answer; answering ones must answer every knock they heard.
    st.as_expected = st.as_expected && (a.answers ? got == a.knocks_heard : got == 0);
  }
  say("total time {:.0f} ms", ms(steady_clock::now() - started));
  say("");
  say("the asker's peers (peer_manager::snapshot):");
  const auto snap = co_await asker->snapshot();
  std::fputs(p2p::format_peer_table(snap).c_str(), stdout);
  say("{} active, {} messages sent and {} received since launch", snap.active,
      snap.counters.messages_sent, snap.counters.messages_received);

  co_await asker->shutdown();
  for (auto& a : *nodes) co_await a.mgr->shutdown();
  say("all managers shut down");
  co_return st.as_expected ? 0 : 1;
}

int run_demo() {
  asio::io_context io;
  p2p::manager_options asker_opts;
  asker_opts.listen = false;
  asker_opts.min_peers = 0;
  asker_opts.max_peers = 6;
  asker_opts.disconnect_timeout = 2s;
  p2p::peer_manager asker(io.get_executor(), asker_opts);

  std::vector<answerer> nodes(6);
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    p2p::manager_options opts;
    opts.listen = true;
    opts.listen_address = "127.0.0.1";
    opts.port = 0;  // any free port; see listen_endpoint()
    opts.min_peers = 0;
    opts.max_peers = 2;
    opts.disconnect_timeout = 2s;
    nodes[i].name = fmt::format("A{}", i + 1);
    nodes[i].answers = i < 4;  // A5 and A6 never answer
    nodes[i].mgr = std::make_unique<p2p::peer_manager>(io.get_executor(), opts);
  }
  int rc = run_main(io, asker.get_executor(), demo(&asker, &nodes), 60s);
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  config cfg;
  try {
    cfg = parse_args(argc, argv);
  } catch (const usage_error& e) {
    fmt::print(stderr, "knock_answer: {}\n{}", e.what(), usage_text);
    return 2;
  }
  try {
    switch (cfg.run) {
      case mode::demo:
        return run_demo();
      case mode::answer:
        return run_answer(cfg);
      case mode::knock:
        return run_knock(cfg);
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "knock_answer: {}\n", e.what());
  }
  return 1;
}
