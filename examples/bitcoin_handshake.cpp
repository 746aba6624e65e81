// bitcoin_handshake: shake hands with a real Bitcoin node through a peer_manager hook.
//
//   bitcoin_handshake HOST[:PORT] [--network main|testnet|regtest] [--timeout S]
//
// Connects (default port of the network), then in the manager's handshake hook sends
// `version` (protocol 70015), takes the node's `version` (sent before or after ours), sends
// `verack`, awaits the node's `verack` and sets the peer's state to "ready". Then checks
// that a `ping` nonce comes back in the `pong`, sends `getaddr` and prints the addresses of
// the `addr`/`addrv2` messages that arrive within the timeout (a node with an empty address
// book may send none: that is reported, not a failure). One line per step.
//
// S (default 10) bounds the connect, the handshake, and the wait for addresses; each single
// reply is awaited for at most 5 s (or S, if shorter). Exit status: 0 when the handshake and the
// ping nonce check succeeded, 1 otherwise, 2 for bad arguments.

#include <p2p/p2p.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <exception>
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

/// The protocol version we announce (BIP 339 wtxidrelay is 70016; we do not relay).
constexpr std::int32_t protocol_version = 70015;

/// Our user agent (BIP 14).
constexpr std::string_view user_agent = "/p2p-manager:0.1.0/";

/// Bound on each single reply of the node (lowered to --timeout when that is shorter).
constexpr milliseconds max_step_timeout = 5s;

constexpr std::string_view usage_text =
    "usage: bitcoin_handshake HOST[:PORT] [--network main|testnet|regtest] [--timeout S]\n";

template <class... Args>
void say(fmt::format_string<Args...> f, Args&&... args) {
  fmt::print(f, std::forward<Args>(args)...);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct network {
  std::string_view name;
  std::uint32_t magic;
  std::uint16_t port;
};

constexpr std::array<network, 3> networks{{
    {"main", 0xD9B4BEF9, 8333},
    {"testnet", 0x0709110B, 18333},  // testnet3
    {"regtest", 0xDAB5BFFA, 18444},
}};

struct config {
  network net = networks[0];
  std::string target;  // as given; parsed once the network (default port) is known
  p2p::host node;
  seconds timeout{10};
};

config parse_args(int argc, char** argv) {
  config cfg;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value = [&]() -> std::string_view {
      if (i + 1 >= argc) throw usage_error(fmt::format("option {} needs a value", arg));
      return argv[++i];
    };
    if (arg == "--network") {
      auto name = value();
      auto it = std::find_if(networks.begin(), networks.end(),
                             [&](const network& n) { return n.name == name; });
      if (it == networks.end())
        throw usage_error(fmt::format("--network '{}' is not one of main, testnet, regtest", name));
      cfg.net = *it;
    } else if (arg == "--timeout") {
      auto text = value();
      int v = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (ec != std::errc{} || end != text.data() + text.size() || v < 1 || v > 3600)
        throw usage_error(
            fmt::format("--timeout '{}' is not a number of seconds in 1..3600", text));
      cfg.timeout = seconds(v);
    } else if (arg.starts_with("-")) {
      throw usage_error(fmt::format("unknown option '{}'", arg));
    } else if (cfg.target.empty()) {
      cfg.target = arg;
    } else {
      throw usage_error(fmt::format("unexpected argument '{}': one node only", arg));
    }
  }
  if (cfg.target.empty()) throw usage_error("which node? give HOST[:PORT]");
  auto h = p2p::parse_host(cfg.target, cfg.net.port);
  if (!h) throw usage_error(h.error().message);
  cfg.node = *h;
  return cfg;
}

// ---- wire encoding (little-endian, as Bitcoin) -----------------------------------------

class writer {
 public:
  void u8(std::uint8_t v) { out_.push_back(v); }

  void le(std::uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  }

  void u16_be(std::uint16_t v) {
    out_.push_back(static_cast<std::uint8_t>(v >> 8));
    out_.push_back(static_cast<std::uint8_t>(v));
  }

  void bytes(std::span<const std::uint8_t> b) { out_.insert(out_.end(), b.begin(), b.end()); }

  void var_int(std::uint64_t v) {
    if (v < 0xFD) {
      u8(static_cast<std::uint8_t>(v));
    } else if (v <= 0xFFFF) {
      u8(0xFD);
      le(v, 2);
    } else if (v <= 0xFFFF'FFFF) {
      u8(0xFE);
      le(v, 4);
    } else {
      u8(0xFF);
      le(v, 8);
    }
  }

  void var_str(std::string_view s) {
    var_int(s.size());
    bytes(p2p::as_bytes(s));
  }

  std::vector<std::uint8_t> take() { return std::move(out_); }

 private:
  std::vector<std::uint8_t> out_;
};

/// Reads from a payload; any read past the end sets `ok()` false and yields zeros.
class reader {
 public:
  explicit reader(std::span<const std::uint8_t> in) : in_(in) {}

  bool ok() const noexcept { return ok_; }

  std::size_t left() const noexcept { return in_.size() - pos_; }

  std::uint64_t le(int bytes) {
    if (!need(static_cast<std::size_t>(bytes))) return 0;
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= std::uint64_t(in_[pos_++]) << (8 * i);
    return v;
  }

  std::uint16_t u16_be() {
    if (!need(2)) return 0;
    std::uint16_t v = static_cast<std::uint16_t>(in_[pos_] << 8 | in_[pos_ + 1]);
    pos_ += 2;
    return v;
  }

  std::span<const std::uint8_t> bytes(std::size_t n) {
    if (!need(n)) return {};
    auto s = in_.subspan(pos_, n);
    pos_ += n;
    return s;
  }

  std::uint64_t var_int() {
    auto first = le(1);
    if (first < 0xFD) return first;
    return le(first == 0xFD ? 2 : first == 0xFE ? 4 : 8);
  }

  std::string var_str(std::size_t limit) {
    auto n = var_int();
    if (n > limit || !need(n)) {
      ok_ = false;
      return {};
    }
    auto b = bytes(n);
    return std::string(b.begin(), b.end());
  }

 private:
  bool need(std::size_t n) {
    if (ok_ && left() >= n) return true;
    ok_ = false;
    return false;
  }

  std::span<const std::uint8_t> in_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

/// A network address as in `version` and `addr`: services, IPv6 (v4-mapped) and port.
struct net_addr {
  std::uint64_t services = 0;
  std::array<std::uint8_t, 16> ip{};
  std::uint16_t port = 0;
};

net_addr to_net_addr(const asio::ip::tcp::endpoint& ep) {
  net_addr a;
  auto v6 = ep.address().is_v4()
                ? asio::ip::make_address_v6(asio::ip::v4_mapped, ep.address().to_v4())
                : ep.address().to_v6();
  a.ip = v6.to_bytes();
  a.port = ep.port();
  return a;
}

std::string ip_text(const std::array<std::uint8_t, 16>& ip, std::uint16_t port) {
  asio::ip::address_v6 v6(ip);
  if (v6.is_v4_mapped())
    return fmt::format("{}:{}", asio::ip::make_address_v4(asio::ip::v4_mapped, v6).to_string(),
                       port);
  return fmt::format("[{}]:{}", v6.to_string(), port);
}

struct version_message {
  std::int32_t version = 0;
  std::uint64_t services = 0;
  std::int64_t timestamp = 0;
  net_addr addr_recv;
  net_addr addr_from;
  std::uint64_t nonce = 0;
  std::string user_agent;
  std::int32_t start_height = 0;
  bool relay = false;
};

void write_net_addr(writer& w, const net_addr& a) {
  w.le(a.services, 8);
  w.bytes(a.ip);
  w.u16_be(a.port);
}

net_addr read_net_addr(reader& r) {
  net_addr a;
  a.services = r.le(8);
  auto ip = r.bytes(16);
  if (ip.size() == 16) std::copy(ip.begin(), ip.end(), a.ip.begin());
  a.port = r.u16_be();
  return a;
}

std::vector<std::uint8_t> encode_version(const version_message& v) {
  writer w;
  w.le(static_cast<std::uint32_t>(v.version), 4);
  w.le(v.services, 8);
  w.le(static_cast<std::uint64_t>(v.timestamp), 8);
  write_net_addr(w, v.addr_recv);
  write_net_addr(w, v.addr_from);
  w.le(v.nonce, 8);
  w.var_str(v.user_agent);
  w.le(static_cast<std::uint32_t>(v.start_height), 4);
  w.u8(v.relay ? 1 : 0);
  return w.take();
}

std::optional<version_message> parse_version(std::span<const std::uint8_t> payload) {
  reader r(payload);
  version_message v;
  v.version = static_cast<std::int32_t>(r.le(4));
  v.services = r.le(8);
  v.timestamp = static_cast<std::int64_t>(r.le(8));
  v.addr_recv = read_net_addr(r);
  v.addr_from = read_net_addr(r);
  v.nonce = r.le(8);
  v.user_agent = r.var_str(256);  // Bitcoin Core's MAX_SUBVERSION_LENGTH
  v.start_height = static_cast<std::int32_t>(r.le(4));
  if (r.ok() && r.left() > 0)
    v.relay = r.le(1) != 0;  // optional (BIP 37)
  else
    v.relay = true;
  if (!r.ok()) return std::nullopt;
  return v;
}

/// The addresses of an `addr` (or, with `v2`, `addrv2`, BIP 155) payload, as text.
std::optional<std::vector<std::string>> parse_addresses(std::span<const std::uint8_t> payload,
                                                        bool v2) {
  reader r(payload);
  auto count = r.var_int();
  if (!r.ok() || count > 1000) return std::nullopt;
  std::vector<std::string> out;
  for (std::uint64_t i = 0; i < count; ++i) {
    const auto time = static_cast<std::time_t>(r.le(4));
    std::string where;
    std::uint64_t services = 0;
    if (!v2) {
      auto a = read_net_addr(r);
      services = a.services;
      where = ip_text(a.ip, a.port);
    } else {
      services = r.var_int();
      auto network_id = r.le(1);
      auto len = r.var_int();
      if (len > 512) return std::nullopt;
      auto addr = r.bytes(len);
      auto port = r.u16_be();
      std::array<std::uint8_t, 16> ip{};
      if (network_id == 1 && addr.size() == 4) {
        ip[10] = ip[11] = 0xFF;
        std::copy(addr.begin(), addr.end(), ip.begin() + 12);
        where = ip_text(ip, port);
      } else if ((network_id == 2 || network_id == 6) && addr.size() == 16) {
        std::copy(addr.begin(), addr.end(), ip.begin());
        where = ip_text(ip, port);
      } else {
        static constexpr std::array<std::string_view, 7> names{"?",     "ipv4", "ipv6", "torv2",
                                                               "torv3", "i2p",  "cjdns"};
        where = fmt::format(
            "{}:{}... port {}", network_id < names.size() ? names[network_id] : "?",
            p2p::shared_bytes::copy(addr.first(std::min<std::size_t>(8, addr.size()))).hex(), port);
      }
    }
    if (!r.ok()) return std::nullopt;
    out.push_back(fmt::format("{:<24} services 0x{:x}, seen {:%Y-%m-%d %H:%M} UTC", where, services,
                              fmt::gmtime(time)));
  }
  return out;
}

std::uint64_t random_u64() {
  static std::mt19937_64 rng(std::random_device{}());
  return rng();
}

std::vector<std::uint8_t> le_bytes(std::uint64_t v) {
  writer w;
  w.le(v, 8);
  return w.take();
}

// ---- the handshake hook ----------------------------------------------------------------

/// version → (their version) → verack → (their verack) → state "ready". Throws to reject.
asio::awaitable<void> handshake(std::shared_ptr<p2p::peer> p, milliseconds step_timeout) {
  // The node may speak before we do, and send version and verack back to back: receive()
  // keeps every message of the handshake until the hook returns, so none is lost.
  const auto started = steady_clock::now();
  say("connected to {} ({})", p->remote().to_string(),
      p->endpoint() ? p->endpoint()->address().to_string() : std::string("?"));

  version_message ours;
  ours.version = protocol_version;
  ours.services = 0;  // NODE_NONE: we serve nothing
  ours.timestamp = std::time(nullptr);
  if (auto ep = p->endpoint()) ours.addr_recv = to_net_addr(*ep);
  ours.nonce = random_u64();
  ours.user_agent = std::string(user_agent);
  ours.start_height = 0;
  ours.relay = false;
  p->send("version", encode_version(ours));
  say("-> version: protocol {}, user agent {}, nonce {:016x}", ours.version, ours.user_agent,
      ours.nonce);

  auto [vec, theirs_msg] = co_await p->receive("version", step_timeout, use_nothrow);
  if (vec)
    throw std::runtime_error(fmt::format("no version from the node within {} ms: {}",
                                         step_timeout.count(), vec.message()));
  auto theirs = parse_version(theirs_msg.payload.span());
  if (!theirs)
    throw std::runtime_error(
        fmt::format("malformed version payload ({} bytes)", theirs_msg.payload.size()));
  if (theirs->nonce == ours.nonce) throw std::runtime_error("connected to ourselves");
  say("<- version: protocol {}, services 0x{:x}, user agent {}, start height {}, relay {}",
      theirs->version, theirs->services, theirs->user_agent, theirs->start_height, theirs->relay);

  p->send("verack");
  say("-> verack");
  auto [aec, ack] = co_await p->receive("verack", step_timeout, use_nothrow);
  if (aec)
    throw std::runtime_error(fmt::format("no verack from the node within {} ms: {}",
                                         step_timeout.count(), aec.message()));
  say("<- verack");
  p->set("user_agent", theirs->user_agent);
  p->set_state("ready");
  say("handshake complete in {:.1f} ms; peer state \"{}\"",
      std::chrono::duration<double, std::milli>(steady_clock::now() - started).count(), p->state());
}

// ---- the session -----------------------------------------------------------------------

/// Handshake, ping/pong, getaddr. Runs on the manager's strand; returns the exit status.
asio::awaitable<int> session(p2p::peer_manager* mgr, config cfg) {
  const milliseconds step_timeout = std::min<milliseconds>(max_step_timeout, cfg.timeout);
  auto ex = co_await asio::this_coro::executor;
  say("connecting to {} ({}, magic 0x{:08x})", cfg.node.to_string(), cfg.net.name, cfg.net.magic);

  // Subscribed before connecting, so nothing is missed.
  p2p::subscription warnings = mgr->events().report.subscribe([](const p2p::report& r) {
    if (r.level >= p2p::severity::warning) say("! {}: {}", p2p::to_string(r.level), r.message);
  });
  // The node's pings are answered by the library (answer_pings), which also pings the node
  // every ping_interval from the end of the handshake on.
  std::vector<std::string> addresses;
  int addr_messages = 0;
  bool big_addr = false;  // a getaddr answer, not just the node advertising itself
  asio::steady_timer wake(ex);
  auto on_addr = [&](bool v2) {
    return [&, v2](const std::shared_ptr<p2p::peer>&, const p2p::message& m) {
      ++addr_messages;
      auto got = parse_addresses(m.payload.span(), v2);
      if (!got) {
        say("! malformed {} message ({} bytes) ignored", m.command, m.payload.size());
        return;
      }
      say("<- {}: {} address(es)", m.command, got->size());
      big_addr = big_addr || got->size() > 1;
      addresses.insert(addresses.end(), got->begin(), got->end());
      wake.cancel();
    };
  };
  p2p::subscription addr = mgr->events().command("addr").subscribe(on_addr(false));
  p2p::subscription addrv2 = mgr->events().command("addrv2").subscribe(on_addr(true));

  std::shared_ptr<p2p::peer> node;
  p2p::subscription ready =
      mgr->events().peer_ready.subscribe([&](const std::shared_ptr<p2p::peer>& p) {
        node = p;
        wake.cancel();
      });
  // add_active posts: the peer is not active yet when it returns, so wait for its outcome.
  bool gone = false;
  p2p::subscription failed = mgr->events().peer_error.subscribe(
      [&](const std::shared_ptr<p2p::peer>&, const boost::system::error_code&) {
        gone = true;
        wake.cancel();
      });
  p2p::subscription ended =
      mgr->events().peer_end.subscribe([&](const std::shared_ptr<p2p::peer>&) {
        gone = true;
        wake.cancel();
      });

  co_await mgr->launch();
  mgr->add_active(cfg.node);
  const auto deadline =
      steady_clock::now() + mgr->options().connect_timeout + mgr->options().handshake_timeout + 1s;
  while (!node && !gone && steady_clock::now() < deadline) {
    wake.expires_at(deadline);
    co_await wake.async_wait(use_nothrow);
  }
  bool ok = false;
  if (!node) {
    say("handshake FAILED");
  } else {
    // The answer collector listens before the ping is queued: no pong can be missed. It takes
    // the pong that echoes our nonce; pongs with other nonces (the answer to the library's
    // keepalive ping, or a node echoing wrongly) are noted, to say what came instead.
    const std::uint64_t nonce = random_u64();
    auto echoes = [nonce](const p2p::message& m) {
      reader r(m.payload.span());
      return r.le(8) == nonce && r.ok();
    };
    std::vector<std::string> other_pongs;
    p2p::subscription pongs = mgr->events().command("pong").subscribe(
        [&](const std::shared_ptr<p2p::peer>&, const p2p::message& m) {
          if (!echoes(m)) other_pongs.push_back(m.payload.hex());
        });
    auto sent = co_await mgr->send(1, "state", "ready", "ping", le_bytes(nonce),
                                   p2p::answer_spec::matching([echoes](const p2p::message& m) {
                                     return m.command == "pong" && echoes(m);
                                   }));
    say("-> ping nonce {:016x}", nonce);
    auto got = co_await sent.wait(step_timeout);
    if (!got.answered.empty()) {
      const auto& pong = got.answered.front();
      ok = true;
      say("<- pong nonce {}: matches ({:.1f} ms)", pong.msg.payload.hex(),
          std::chrono::duration<double, std::milli>(pong.after).count());
    } else if (!other_pongs.empty()) {
      say("<- pong nonce {}: does NOT match, FAILED", other_pongs.back());
    } else {
      say("no pong within {} ms: FAILED", step_timeout.count());
    }

    if (ok) {
      node->send("getaddr");
      say("-> getaddr (waiting up to {} s for addresses)", cfg.timeout.count());
      const auto addr_deadline = steady_clock::now() + cfg.timeout;
      while (!big_addr && node->is_open() && steady_clock::now() < addr_deadline) {
        wake.expires_at(addr_deadline);
        co_await wake.async_wait(use_nothrow);
      }
      if (addresses.empty()) {
        say("no addresses within {} s (a node with an empty address book sends none); not a "
            "failure",
            cfg.timeout.count());
      } else {
        constexpr std::size_t shown = 20;
        for (std::size_t i = 0; i < addresses.size() && i < shown; ++i) say("   {}", addresses[i]);
        if (addresses.size() > shown) say("   ... and {} more", addresses.size() - shown);
        say("{} address(es) in {} message(s)", addresses.size(), addr_messages);
      }
    }
  }
  say("disconnecting");
  co_await mgr->shutdown();
  say("{}", ok ? "done: handshake and ping succeeded" : "done: FAILED");
  co_return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  config cfg;
  try {
    cfg = parse_args(argc, argv);
  } catch (const usage_error& e) {
    fmt::print(stderr, "bitcoin_handshake: {}\n{}", e.what(), usage_text);
    return 2;
  }
  try {
    asio::io_context io;
    p2p::manager_options opts;
    opts.listen = false;
    opts.port = cfg.net.port;
    opts.magic = cfg.net.magic;
    opts.min_peers = 0;
    opts.max_peers = 1;
    opts.connect_timeout = cfg.timeout;
    const milliseconds step = std::min<milliseconds>(max_step_timeout, cfg.timeout);
    // The hook bounds each of its two waits itself; this is only the safety net.
    opts.handshake_timeout = 2 * step + 1s;
    opts.disconnect_timeout = 2s;
    // A plain lambda that returns the coroutine (no capturing coroutine lambda).
    opts.handshake = [step](std::shared_ptr<p2p::peer> p) { return handshake(std::move(p), step); };
    p2p::peer_manager mgr(io.get_executor(), opts);

    int rc = 1;
    // Everything is bounded; the watchdog turns a hang (a bug) into a failure.
    const auto limit = 3 * cfg.timeout + 20s;
    asio::steady_timer watchdog(io, limit);
    watchdog.async_wait([&](boost::system::error_code ec) {
      if (ec) return;
      say("watchdog: still running after {} s; stopping", limit.count());
      io.stop();
    });
    asio::co_spawn(mgr.get_executor(), session(&mgr, cfg), [&](std::exception_ptr e, int r) {
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
  } catch (const std::exception& e) {
    fmt::print(stderr, "bitcoin_handshake: {}\n", e.what());
    return 1;
  }
}
