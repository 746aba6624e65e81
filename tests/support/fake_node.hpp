#pragma once
// A fake Bitcoin node for the example tests: a plain Asio acceptor on 127.0.0.1:0, run on a
// thread of its own, that speaks version/verack, ping→pong, getaddr→addr and knock→answer
// with p2p::encode_frame and p2p::decoder (not with the peer classes under test).

#include <p2p/codec.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace p2p::test {

/// What the fake node does.
struct fake_node_options {
  /// Network magic (regtest by default).
  std::uint32_t magic = 0xDAB5BFFA;
  /// Send `version` as soon as a connection is accepted; otherwise wait for the peer's and
  /// then send `version` and `verack` in one write (back to back, as Bitcoin Core may).
  bool version_first = true;
  /// Send `verack` at all.
  bool send_verack = true;
  /// Answer `ping` with a different nonce.
  bool wrong_pong = false;
  /// Answer `getaddr` with these (IPv4 text, port); empty: no answer (empty address book).
  std::vector<std::pair<std::string, std::uint16_t>> addresses;
  /// How `knock` is answered.
  enum class knock_reply { echo, wrong, none } knock = knock_reply::echo;
};

/// The peer's `version` fields the node saw.
struct seen_version {
  std::int32_t version = 0;
  std::uint64_t services = 0;
  std::array<std::uint8_t, 16> recv_ip{};
  std::uint16_t recv_port = 0;
  std::string user_agent;
  std::int32_t start_height = -1;
  std::optional<bool> relay;
  std::size_t payload_size = 0;
};

class fake_node {
 public:
  explicit fake_node(fake_node_options opts)
      : opts_(std::move(opts)),
        acceptor_(io_, {boost::asio::ip::make_address("127.0.0.1"), 0}),
        work_(io_.get_executor()) {
    boost::asio::co_spawn(io_, accept_loop(), rethrow);
    thread_ = std::thread([this] { io_.run(); });
  }

  fake_node(const fake_node&) = delete;
  fake_node& operator=(const fake_node&) = delete;

  ~fake_node() {
    io_.stop();
    thread_.join();
  }

  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

  std::optional<seen_version> version() const {
    std::lock_guard lock(mutex_);
    return version_;
  }

  int connections() const { return connections_; }

  int verack_received() const { return veracks_; }

  int pings() const { return pings_; }

  int getaddrs() const { return getaddrs_; }

 private:
  using tcp = boost::asio::ip::tcp;
  static constexpr auto use_nothrow = boost::asio::as_tuple(boost::asio::use_awaitable);

  /// Spawn completion: a failure of the fake node itself ends the test run loudly.
  static void rethrow(std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  }

  static void le(std::vector<std::uint8_t>& out, std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  }

  static std::uint64_t get_le(const std::uint8_t* p, int n) {
    std::uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= std::uint64_t(p[i]) << (8 * i);
    return v;
  }

  void frame(std::vector<std::uint8_t>& out, std::string_view command,
             std::span<const std::uint8_t> payload = {}) const {
    auto f = encode_frame(opts_.magic, command, payload);
    out.insert(out.end(), f.begin(), f.end());
  }

  std::vector<std::uint8_t> version_payload() const {
    std::vector<std::uint8_t> v;
    le(v, 70016, 4);
    le(v, 0x409, 8);
    le(v, 1'700'000'000, 8);
    for (int i = 0; i < 2; ++i) {  // addr_recv, addr_from: services, ::ffff:127.0.0.1, port
      le(v, 0, 8);
      v.insert(v.end(), {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 127, 0, 0, 1});
      v.insert(v.end(), {0x47, 0x9C});  // 18332, big-endian
    }
    le(v, 0x1122334455667788, 8);
    const std::string agent = "/FakeNode:1.0/";
    v.push_back(static_cast<std::uint8_t>(agent.size()));
    v.insert(v.end(), agent.begin(), agent.end());
    le(v, 321, 4);
    v.push_back(1);
    return v;
  }

  std::vector<std::uint8_t> addr_payload() const {
    std::vector<std::uint8_t> v;
    v.push_back(static_cast<std::uint8_t>(opts_.addresses.size()));
    for (const auto& [ip, port] : opts_.addresses) {
      le(v, 1'700'000'000, 4);
      le(v, 0x409, 8);
      auto b = boost::asio::ip::make_address_v4(ip).to_bytes();
      v.insert(v.end(), {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF});
      v.insert(v.end(), b.begin(), b.end());
      v.push_back(static_cast<std::uint8_t>(port >> 8));
      v.push_back(static_cast<std::uint8_t>(port));
    }
    return v;
  }

  void record_version(std::span<const std::uint8_t> p) {
    seen_version s;
    s.payload_size = p.size();
    if (p.size() >= 4 + 8 + 8 + 26 + 26 + 8 + 1) {
      s.version = static_cast<std::int32_t>(get_le(p.data(), 4));
      s.services = get_le(p.data() + 4, 8);
      std::copy(p.begin() + 28, p.begin() + 44, s.recv_ip.begin());
      s.recv_port = static_cast<std::uint16_t>(p[44] << 8 | p[45]);
      std::size_t pos = 80;
      const std::size_t len = p[pos++];  // short user agents only
      if (pos + len + 4 <= p.size()) {
        s.user_agent.assign(p.begin() + static_cast<std::ptrdiff_t>(pos),
                            p.begin() + static_cast<std::ptrdiff_t>(pos + len));
        pos += len;
        s.start_height = static_cast<std::int32_t>(get_le(p.data() + pos, 4));
        pos += 4;
        if (pos < p.size()) s.relay = p[pos] != 0;
      }
    }
    std::lock_guard lock(mutex_);
    version_ = s;
  }

  boost::asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, sock] = co_await acceptor_.async_accept(use_nothrow);
      if (ec) co_return;
      ++connections_;
      boost::asio::co_spawn(io_, serve(std::move(sock)), rethrow);
    }
  }

  boost::asio::awaitable<void> serve(tcp::socket sock) {
    decoder dec(opts_.magic);
    std::vector<std::uint8_t> out;
    bool version_sent = false;
    if (opts_.version_first) {
      frame(out, "version", version_payload());
      version_sent = true;
      auto [wec, wn] =
          co_await boost::asio::async_write(sock, boost::asio::buffer(out), use_nothrow);
      if (wec) co_return;
    }
    std::array<std::uint8_t, 4096> buf;
    for (;;) {
      auto [ec, n] = co_await sock.async_read_some(boost::asio::buffer(buf), use_nothrow);
      if (ec) co_return;
      out.clear();
      std::span<const std::uint8_t> in(buf.data(), n);
      while (auto ev = dec.next(in)) {
        if (ev->what != decode_event::kind::message) continue;
        const auto& m = ev->msg;
        if (m.command == "version") {
          record_version(m.payload.span());
          if (!version_sent) frame(out, "version", version_payload());
          version_sent = true;
          if (opts_.send_verack) frame(out, "verack");
        } else if (m.command == "verack") {
          ++veracks_;
        } else if (m.command == "ping") {
          ++pings_;
          std::vector<std::uint8_t> nonce(m.payload.begin(), m.payload.end());
          if (opts_.wrong_pong && !nonce.empty()) nonce[0] ^= 0xFF;
          frame(out, "pong", nonce);
        } else if (m.command == "getaddr") {
          ++getaddrs_;
          if (!opts_.addresses.empty()) frame(out, "addr", addr_payload());
        } else if (m.command == "knock") {
          std::vector<std::uint8_t> p(m.payload.begin(), m.payload.end());
          if (opts_.knock == fake_node_options::knock_reply::wrong) p.push_back(0x42);
          if (opts_.knock != fake_node_options::knock_reply::none) frame(out, "answer", p);
        }
      }
      if (!out.empty()) {
        auto [wec, wn] =
            co_await boost::asio::async_write(sock, boost::asio::buffer(out), use_nothrow);
        if (wec) co_return;
      }
    }
  }

  fake_node_options opts_;
  boost::asio::io_context io_;
  tcp::acceptor acceptor_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::thread thread_;
  mutable std::mutex mutex_;
  std::optional<seen_version> version_;
  std::atomic<int> connections_{0};
  std::atomic<int> veracks_{0};
  std::atomic<int> pings_{0};
  std::atomic<int> getaddrs_{0};
};

}  // namespace p2p::test
