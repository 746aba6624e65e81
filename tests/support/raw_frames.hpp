#pragma once
// A raw socket that speaks frames by hand: the remote of keepalive and statistics tests.

#include <p2p/codec.hpp>
#include <p2p/message.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace p2p::test {

/// Reads from `s` until `dec` yields a message; nullopt when the connection ends first.
inline boost::asio::awaitable<std::optional<p2p::message>> read_message(
    boost::asio::ip::tcp::socket& s, p2p::decoder& dec) {
  namespace asio = boost::asio;
  std::array<std::uint8_t, 1> byte{};
  for (;;) {
    // One byte at a time: nothing read past the frame is lost between calls.
    auto [ec, n] =
        co_await s.async_read_some(asio::buffer(byte), asio::as_tuple(asio::use_awaitable));
    if (ec) co_return std::nullopt;
    std::span<const std::uint8_t> in(byte.data(), n);
    while (auto ev = dec.next(in))
      if (ev->what == p2p::decode_event::kind::message) co_return std::move(ev->msg);
  }
}

/// Writes one frame of `command` + `payload` to `s`.
inline boost::asio::awaitable<void> write_frame(boost::asio::ip::tcp::socket& s,
                                                std::string_view command,
                                                std::span<const std::uint8_t> payload = {}) {
  namespace asio = boost::asio;
  auto frame = p2p::encode_frame(p2p::bitcoin_magic, command, payload);
  co_await asio::async_write(s, asio::buffer(frame.data(), frame.size()), asio::use_awaitable);
}

}  // namespace p2p::test
