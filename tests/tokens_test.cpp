#include <p2p/answers.hpp>
#include <p2p/async.hpp>
#include <p2p/error.hpp>
#include <p2p/manager.hpp>
#include <p2p/peer.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_future.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "support/async.hpp"
#include "support/loopback.hpp"

// Every asynchronous operation takes a completion token: use_awaitable, a plain callback,
// use_future and as_tuple(use_awaitable) each drive every operation here, and a
// cancellation slot of the test's own aborts each operation that waits.

namespace asio = boost::asio;
using asio::ip::tcp;
using p2p::test::as_result;
using p2p::test::eventually;
using p2p::test::run_async_test;
using p2p::test::sleep_for;
using namespace std::chrono_literals;

namespace {

using awaitable_void = asio::awaitable<void>;
using error_code = boost::system::error_code;
using peer_ptr = std::shared_ptr<p2p::peer>;

const std::string knock_payload = "who is there?";

p2p::peer::executor_type strand_of(asio::io_context& io) {
  return asio::make_strand(asio::any_io_executor(io.get_executor()));
}

p2p::host host_of(const tcp::acceptor& a) {
  return {a.local_endpoint().address().to_string(), a.local_endpoint().port()};
}

/// The connection waiting on `acceptor`, as a started inbound peer.
asio::awaitable<peer_ptr> accept_started(asio::io_context& io, tcp::acceptor& acceptor) {
  auto in = p2p::peer::inbound(strand_of(io), co_await acceptor.async_accept(asio::use_awaitable));
  in->start();
  co_return in;
}

struct peer_pair {
  peer_ptr out;
  peer_ptr in;
};

/// An outbound peer connected to a started inbound one on 127.0.0.1.
asio::awaitable<peer_pair> connected_pair(asio::io_context& io) {
  auto acceptor = p2p::test::listen_on(io.get_executor());
  auto out = p2p::peer::outbound(strand_of(io), host_of(acceptor));
  co_await out->connect();
  auto in = co_await accept_started(io, acceptor);
  co_return peer_pair{out, in};
}

asio::awaitable<void> close_pair(peer_pair& p) {
  p.out->destroy();
  p.in->destroy();
  co_await p.out->wait_closed();
  co_await p.in->wait_closed();
}

/// A listening manager on `address` that answers every `knock` with `answer` carrying the
/// knock's payload, unless silent.
struct remote {
  std::unique_ptr<p2p::peer_manager> manager;
  p2p::host host;
  p2p::subscription answering;
};

asio::awaitable<remote> start_remote(asio::io_context& io, std::string address,
                                     bool answers = true) {
  remote r;
  r.manager = p2p::test::make_remote(io, address);
  if (answers)
    r.answering = r.manager->events().command("knock").subscribe(
        [](const peer_ptr& p, const p2p::message& m) { p->send("answer", m.payload.span()); });
  co_await r.manager->launch();
  r.host = {address, r.manager->listen_endpoint()->port()};
  co_return r;
}

/// A manager that only dials out and never refills.
p2p::manager_options asker_options() {
  auto o = p2p::test::remote_options("127.0.0.1");
  o.listen = false;
  o.port = 8333;
  return o;
}

/// The manager's one active peer, once it is connected.
asio::awaitable<peer_ptr> connected_peer_of(p2p::peer_manager& m) {
  CO_REQUIRE(co_await eventually([&] {
    auto ps = m.active_peers();
    return ps.size() == 1 && ps[0]->state() == "connected";
  }));
  co_return m.active_peers()[0];
}

/// What an operation completed with, as recorded by a plain callback.
template <class... T>
struct completion {
  bool done = false;
  error_code ec;
  std::tuple<T...> values;

  auto& value() { return std::get<0>(values); }
};

/// Initiates an operation, `start(callback)`, with a plain callback recording its completion.
template <class... T, class Start>
std::shared_ptr<completion<T...>> start_with_callback(Start&& start) {
  auto c = std::make_shared<completion<T...>>();
  start([c](error_code ec, T... v) {
    c->ec = ec;
    c->values = std::tuple<T...>(std::move(v)...);
    c->done = true;
  });
  return c;
}

/// Waits (bounded) until the callback of `c` ran.
template <class... T>
asio::awaitable<void> until_done(std::shared_ptr<completion<T...>> c) {
  CO_REQUIRE(co_await eventually([&] { return c->done; }, 10s));
}

/// Starts an operation with a callback bound to a cancellation slot of ours, checks that it
/// still waits once `ready()` holds (and at least 50 ms passed), emits `type` and returns
/// what it completed with.
template <class... T, class Start, class Ready>
asio::awaitable<completion<T...>> cancel_while_waiting(asio::cancellation_type type, Start start,
                                                       Ready ready) {
  asio::cancellation_signal sig;
  auto c = start_with_callback<T...>(
      [&](auto handler) { start(asio::bind_cancellation_slot(sig.slot(), std::move(handler))); });
  co_await sleep_for(50ms);
  CO_REQUIRE(co_await eventually(ready));
  REQUIRE_FALSE(c->done);  // it waits
  sig.emit(type);
  co_await until_done(c);
  co_return std::move(*c);
}

const auto at_once = [] { return true; };

/// Each cancellation test runs once per type of cancellation.
#define EACH_CANCELLATION_TYPE                                                  \
  GENERATE(asio::cancellation_type::terminal, asio::cancellation_type::partial, \
           asio::cancellation_type::total)

const char* name_of(asio::cancellation_type t) {
  using ct = asio::cancellation_type;
  return t == ct::terminal ? "terminal" : t == ct::partial ? "partial" : "total";
}

/// `got` holds one answer: from `p`, "answer" with the knock's payload.
void require_one_answer(const p2p::answers& got, const peer_ptr& p) {
  REQUIRE(got.answered.size() == 1);
  REQUIRE(got.answered[0].peer == p);
  REQUIRE(got.answered[0].msg.command == "answer");
  REQUIRE(got.answered[0].msg.payload.view() == knock_payload);
  REQUIRE(got.closed.empty());
}

/// The kinds of completion token every operation is driven with.
enum class token_kind { awaitable, tuple, callback, future };

const char* name_of(token_kind k) {
  constexpr const char* names[] = {"use_awaitable", "as_tuple(use_awaitable)", "a plain callback",
                                   "use_future from another thread"};
  return names[static_cast<int>(k)];
}

/// Runs one operation, `start(token)`, with a token of `kind` and returns what it completed
/// with: under use_awaitable the error is the `system_error` thrown; under use_future the
/// operation is initiated, and its future waited for (at most 5 s), on a thread of its own
/// that does not run the io_context, while this coroutine lets the io_context run.
template <class... T, class Start>
asio::awaitable<completion<T...>> complete(token_kind kind, Start start) {
  completion<T...> c;
  switch (kind) {
    case token_kind::awaitable:
      try {
        if constexpr (sizeof...(T) == 0)
          co_await start(asio::use_awaitable);
        else
          std::get<0>(c.values) = co_await start(asio::use_awaitable);
      } catch (const boost::system::system_error& e) {
        c.ec = e.code();
      }
      c.done = true;
      break;
    case token_kind::tuple: {
      auto r = co_await start(as_result);
      c.ec = std::get<0>(r);
      if constexpr (sizeof...(T) == 1) std::get<0>(c.values) = std::move(std::get<1>(r));
      c.done = true;
      break;
    }
    case token_kind::callback: {
      auto recorded = start_with_callback<T...>(start);
      co_await until_done(recorded);
      c = std::move(*recorded);
      break;
    }
    case token_kind::future: {
      auto caller = std::async(std::launch::async, [start]() mutable {
        completion<T...> f;
        // Shared, so that the exception stays owned by the state until we are done with it:
        // TSan does not see the reference counts of libstdc++'s exception_ptr, and would
        // report the io thread freeing it with the promise as a race with our catch.
        auto fut = start(asio::use_future).share();
        if (fut.wait_for(5s) != std::future_status::ready) return f;  // not done: it hung
        f.done = true;
        try {
          if constexpr (sizeof...(T) == 0) {
            fut.get();
          } else {
            using value_type = std::tuple_element_t<0, std::tuple<T...>>;
            std::get<0>(f.values) = std::move(const_cast<value_type&>(fut.get()));  // sole owner
          }
        } catch (const boost::system::system_error& e) {
          f.ec = e.code();
        }
        return f;
      });
      CO_REQUIRE(co_await eventually(
          [&] { return caller.wait_for(0s) == std::future_status::ready; }, 10s));
      c = caller.get();
      break;
    }
  }
  INFO("the operation did not complete under " << name_of(kind));
  REQUIRE(c.done);
  co_return c;
}

}  // namespace

// ---- every operation under each kind of token ---------------------------------------

TEST_CASE("tokens: every operation completes with its error and values under each kind of token",
          "[tokens]") {
  const auto kind =
      GENERATE(token_kind::awaitable, token_kind::tuple, token_kind::callback, token_kind::future);
  INFO("token: " << name_of(kind));
  run_async_test([kind](asio::io_context& io) -> awaitable_void {
    auto acceptor = p2p::test::listen_on(io.get_executor());
    auto out = p2p::peer::outbound(strand_of(io), host_of(acceptor));
    auto connected = co_await complete<>(kind, [&](auto t) { return out->connect(t); });
    REQUIRE_FALSE(connected.ec);
    auto in = co_await accept_started(io, acceptor);
    in->send("hello", p2p::as_bytes("hi"));  // kept by the handshake window until taken
    auto hello =
        co_await complete<p2p::message>(kind, [&](auto t) { return out->receive("hello", 5s, t); });
    REQUIRE_FALSE(hello.ec);
    REQUIRE(hello.value().command == "hello");
    REQUIRE(hello.value().payload.view() == "hi");
    auto timeout = co_await complete<p2p::message>(
        kind, [&](auto t) { return out->receive("nothing", 50ms, t); });
    REQUIRE(timeout.ec == p2p::error::timeout);
    auto sent_ping = co_await complete<>(
        kind, [&](auto t) { return out->send_and_wait("ping", p2p::as_bytes("p"), t); });
    REQUIRE_FALSE(sent_ping.ec);
    auto ping = co_await in->receive("ping", 5s);
    REQUIRE(ping.payload.view() == "p");
    auto disconnected = co_await complete<>(kind, [&](auto t) { return out->disconnect(t); });
    REQUIRE_FALSE(disconnected.ec);
    REQUIRE(out->is_closed());
    auto in_closed = co_await complete<>(kind, [&](auto t) { return in->wait_closed(t); });
    REQUIRE_FALSE(in_closed.ec);
    REQUIRE(in->is_closed());
    auto out_closed = co_await complete<>(kind, [&](auto t) { return out->wait_closed(t); });
    REQUIRE_FALSE(out_closed.ec);  // already closed: at once
    auto closed_receive =
        co_await complete<p2p::message>(kind, [&](auto t) { return out->receive("hello", 5s, t); });
    REQUIRE(closed_receive.ec == p2p::error::peer_closed);
    auto closed_send =
        co_await complete<>(kind, [&](auto t) { return out->send_and_wait("late", {}, t); });
    REQUIRE(closed_send.ec == p2p::error::peer_closed);
    auto reconnect = co_await complete<>(kind, [&](auto t) { return out->connect(t); });
    REQUIRE(reconnect.ec == asio::error::already_started);

    auto r = co_await start_remote(io, "127.0.40.1");
    p2p::peer_manager asker(io.get_executor(), asker_options());
    auto launched = co_await complete<>(kind, [&](auto t) { return asker.launch(r.host, t); });
    REQUIRE_FALSE(launched.ec);
    auto again = co_await complete<>(kind, [&](auto t) { return asker.launch({}, t); });
    REQUIRE(again.ec == asio::error::already_started);
    auto p = co_await connected_peer_of(asker);
    auto sent = co_await complete<p2p::sent_messages>(kind, [&](auto t) {
      return asker.send(p2p::all, "state", "connected", "knock", p2p::as_bytes(knock_payload),
                        "answer", t);
    });
    REQUIRE_FALSE(sent.ec);
    REQUIRE(sent.value().size() == 1);
    REQUIRE(sent.value().contains(p->id()));
    auto got =
        co_await complete<p2p::answers>(kind, [&](auto t) { return sent.value().wait(5s, 0, t); });
    REQUIRE_FALSE(got.ec);
    require_one_answer(got.value(), p);
    REQUIRE(got.value().timed_out.empty());
    auto checked = co_await complete<>(kind, [&](auto t) { return asker.check_pool(t); });
    REQUIRE_FALSE(checked.ec);
    REQUIRE(asker.active_count() == 1);
    auto deleted =
        co_await complete<>(kind, [&](auto t) { return asker.del_active(p, "done", t); });
    REQUIRE_FALSE(deleted.ec);
    REQUIRE(p->is_closed());
    REQUIRE(asker.active_count() == 0);
    auto stopped = co_await complete<>(kind, [&](auto t) { return asker.shutdown(t); });
    REQUIRE_FALSE(stopped.ec);
    REQUIRE(asker.state() == p2p::manager_state::shutdown);
    co_await r.manager->shutdown();
  });
}

// ---- per-operation cancellation from a slot of ours ---------------------------------

TEST_CASE("tokens: a cancelled receive completes with operation_aborted and takes no message",
          "[tokens]") {
  const auto type = EACH_CANCELLATION_TYPE;
  INFO("cancellation: " << name_of(type));
  run_async_test([type](asio::io_context& io) -> awaitable_void {
    auto pair = co_await connected_pair(io);
    auto in = pair.in;
    auto c = co_await cancel_while_waiting<p2p::message>(
        type, [&](auto token) { in->receive("later", 10s, std::move(token)); }, at_once);
    REQUIRE(c.ec == asio::error::operation_aborted);
    REQUIRE(c.value().command.empty());
    // A waiter left behind would be the longest waiting and take it from the new receive.
    pair.out->send("later", p2p::as_bytes("still here"));
    auto later = co_await in->receive("later", 5s);
    REQUIRE(later.payload.view() == "still here");
    co_await close_pair(pair);
  });
}

TEST_CASE("tokens: a cancelled wait completes with operation_aborted and the answers so far",
          "[tokens]") {
  const auto type = EACH_CANCELLATION_TYPE;
  INFO("cancellation: " << name_of(type));
  run_async_test([type](asio::io_context& io) -> awaitable_void {
    auto talker = co_await start_remote(io, "127.0.41.1");
    auto silent = co_await start_remote(io, "127.0.41.2", false);
    p2p::peer_manager asker(io.get_executor(), asker_options());
    int answers_in = 0;
    auto sub = asker.events().command("answer").subscribe(
        [&](const peer_ptr&, const p2p::message&) { ++answers_in; });
    const p2p::host_list seeds{talker.host, silent.host};  // not inside the co_await (g++ 12)
    co_await asker.launch(seeds);
    CO_REQUIRE(co_await eventually([&] {
      auto ps = asker.active_peers();
      return ps.size() == 2 && ps[0]->state() == "connected" && ps[1]->state() == "connected";
    }));
    const auto to_talker = asker.find(p2p::peer::outbound_id(talker.host));
    const auto to_silent = asker.find(p2p::peer::outbound_id(silent.host));
    auto sent = co_await asker.send(p2p::all, "state", "connected", "knock",
                                    p2p::as_bytes(knock_payload), "answer");
    REQUIRE(sent.size() == 2);
    auto c = co_await cancel_while_waiting<p2p::answers>(
        type, [&](auto token) { sent.wait(10s, 0, std::move(token)); },
        [&] { return answers_in == 1; });
    REQUIRE(c.ec == asio::error::operation_aborted);
    require_one_answer(c.value(), to_talker);
    REQUIRE(c.value().timed_out == std::vector<peer_ptr>{to_silent});
    REQUIRE(asker.collecting() == 0);  // the collection ended
    co_await asker.shutdown();
    co_await talker.manager->shutdown();
    co_await silent.manager->shutdown();
  });
}

TEST_CASE("tokens: a cancelled wait_closed completes with operation_aborted, the peer untouched",
          "[tokens]") {
  const auto type = EACH_CANCELLATION_TYPE;
  INFO("cancellation: " << name_of(type));
  run_async_test([type](asio::io_context& io) -> awaitable_void {
    auto pair = co_await connected_pair(io);
    auto in = pair.in;
    auto c = co_await cancel_while_waiting<>(
        type, [&](auto token) { in->wait_closed(std::move(token)); },
        [&] { return in->is_open(); });
    REQUIRE(c.ec == asio::error::operation_aborted);
    REQUIRE(in->is_open());
    pair.out->send("still", p2p::as_bytes("open"));
    auto still = co_await in->receive("still", 5s);
    REQUIRE(still.payload.view() == "open");
    co_await close_pair(pair);
  });
}

TEST_CASE("tokens: a cancelled disconnect ends the wait, the disconnect goes on", "[tokens]") {
  const auto type = EACH_CANCELLATION_TYPE;
  INFO("cancellation: " << name_of(type));
  run_async_test([type](asio::io_context& io) -> awaitable_void {
    // The remote is a raw socket that does not close: the disconnect waits for it.
    auto acceptor = p2p::test::listen_on(io.get_executor());
    p2p::peer_options opts;
    opts.disconnect_timeout = 10s;
    auto out = p2p::peer::outbound(strand_of(io), host_of(acceptor), opts);
    co_await out->connect();
    auto raw = co_await acceptor.async_accept(asio::use_awaitable);
    auto c = co_await cancel_while_waiting<>(
        type, [&](auto token) { out->disconnect(std::move(token)); }, at_once);
    REQUIRE(c.ec == asio::error::operation_aborted);
    REQUIRE(out->lifecycle() == p2p::peer_lifecycle::disconnecting);
    std::array<char, 16> buf;
    auto [eof, n] = co_await raw.async_read_some(asio::buffer(buf), as_result);
    REQUIRE(eof == asio::error::eof);  // our half-close still went out
    raw.close();
    const auto t0 = std::chrono::steady_clock::now();
    co_await out->wait_closed();
    REQUIRE(out->is_closed());
    REQUIRE(std::chrono::steady_clock::now() - t0 < 5s);  // by the remote's close, not a timer
  });
}

TEST_CASE("tokens: a cancelled send_and_wait ends the wait, the frame is still written",
          "[tokens]") {
  const auto type = EACH_CANCELLATION_TYPE;
  INFO("cancellation: " << name_of(type));
  run_async_test([type](asio::io_context& io) -> awaitable_void {
    // The remote does not read yet: 32 MiB cannot all fit in loopback socket buffers.
    auto acceptor = p2p::test::listen_on(io.get_executor());
    p2p::peer_options opts;
    opts.max_send_buffer = 64 * 1024 * 1024;
    auto out = p2p::peer::outbound(strand_of(io), host_of(acceptor), opts);
    co_await out->connect();
    auto raw = co_await acceptor.async_accept(asio::use_awaitable);
    std::vector<std::uint8_t> payload(32 * 1024 * 1024);
    for (std::size_t i = 0; i < payload.size(); ++i)
      payload[i] = static_cast<std::uint8_t>(i % 251);
    auto c = co_await cancel_while_waiting<>(
        type, [&](auto token) { out->send_and_wait("big", payload, std::move(token)); },
        [&] { return out->queued_bytes() > 0; });
    REQUIRE(c.ec == asio::error::operation_aborted);
    std::vector<std::uint8_t> wire(p2p::header_size + payload.size());
    auto [read_ec, n] = co_await asio::async_read(raw, asio::buffer(wire), as_result);
    REQUIRE_FALSE(read_ec);
    REQUIRE(std::string_view(reinterpret_cast<const char*>(wire.data()) + 4, 4) ==
            std::string_view("big\0", 4));
    REQUIRE(std::equal(payload.begin(), payload.end(), wire.begin() + p2p::header_size));
    out->destroy();
    co_await out->wait_closed();
  });
}

namespace {

/// A manager whose one active peer's remote is a raw socket that never closes its side, so
/// a graceful disconnect waits for `disconnect_timeout` (1 s).
struct stubborn {
  std::unique_ptr<p2p::peer_manager> manager;
  tcp::acceptor acceptor;
  tcp::socket raw;
  peer_ptr p;
};

asio::awaitable<stubborn> start_stubborn(asio::io_context& io, std::string address) {
  auto m = std::make_unique<p2p::peer_manager>(io.get_executor(), asker_options());
  co_await m->launch();
  auto acceptor = p2p::test::listen_on(io.get_executor(), address);
  m->add_active(host_of(acceptor));
  auto raw = co_await acceptor.async_accept(asio::use_awaitable);
  auto p = co_await connected_peer_of(*m);
  co_return stubborn{std::move(m), std::move(acceptor), std::move(raw), p};
}

}  // namespace

TEST_CASE("tokens: a cancelled shutdown ends the wait, a second shutdown completes", "[tokens]") {
  const auto type = EACH_CANCELLATION_TYPE;
  INFO("cancellation: " << name_of(type));
  run_async_test([type](asio::io_context& io) -> awaitable_void {
    auto s = co_await start_stubborn(io, "127.0.42.1");
    auto& m = *s.manager;
    auto c = co_await cancel_while_waiting<>(
        type, [&](auto token) { m.shutdown(std::move(token)); }, at_once);
    REQUIRE(c.ec == asio::error::operation_aborted);
    REQUIRE(m.state() == p2p::manager_state::shutdown);
    REQUIRE(m.active_count() == 1);  // still disconnecting
    auto [again] = co_await m.shutdown(as_result);
    REQUIRE_FALSE(again);
    REQUIRE(m.active_count() == 0);
    REQUIRE(s.p->is_closed());
  });
}

TEST_CASE("tokens: a cancelled del_active ends the wait, the disconnect goes on", "[tokens]") {
  const auto type = EACH_CANCELLATION_TYPE;
  INFO("cancellation: " << name_of(type));
  run_async_test([type](asio::io_context& io) -> awaitable_void {
    auto s = co_await start_stubborn(io, "127.0.42.2");
    auto& m = *s.manager;
    auto c = co_await cancel_while_waiting<>(
        type, [&](auto token) { m.del_active(s.p, "cancelled", std::move(token)); }, at_once);
    REQUIRE(c.ec == asio::error::operation_aborted);
    REQUIRE(s.p->lifecycle() == p2p::peer_lifecycle::disconnecting);
    co_await s.p->wait_closed();  // closed by disconnect_timeout
    CO_REQUIRE(co_await eventually([&] { return m.active_count() == 0; }));
    co_await m.shutdown();
  });
}

TEST_CASE("tokens: a cancelled connect completes with operation_aborted and the peer closes",
          "[tokens]") {
  const auto type = EACH_CANCELLATION_TYPE;
  INFO("cancellation: " << name_of(type));
  run_async_test([type](asio::io_context& io) -> awaitable_void {
    // A listener with backlog 0 and one connection queued drops further SYNs: connects hang.
    tcp::acceptor full(io);
    full.open(tcp::v4());
    full.bind(tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    full.listen(0);
    tcp::socket filler(io);
    co_await filler.async_connect(full.local_endpoint(), asio::use_awaitable);
    p2p::peer_options opts;
    opts.connect_timeout = 2s;  // a cancellation not honoured shows as error::connect_timeout
    auto out = p2p::peer::outbound(strand_of(io), host_of(full), opts);
    int errors = 0;
    auto sub = out->events().error.subscribe([&](const error_code&) { ++errors; });
    auto c = co_await cancel_while_waiting<>(
        type, [&](auto token) { out->connect(std::move(token)); }, at_once);
    REQUIRE(c.ec == asio::error::operation_aborted);
    co_await out->wait_closed();
    REQUIRE(out->is_closed());
    REQUIRE(out->state() == "closed");
    REQUIRE(errors == 0);
  });
}

// ---- timeouts, launch ----------------------------------------------------------------

TEST_CASE(
    "tokens: receive times out with error::timeout, a wait's timeout is a value, not an error",
    "[tokens]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto pair = co_await connected_pair(io);
    auto t0 = std::chrono::steady_clock::now();
    auto [ec, m] = co_await pair.in->receive("none", 100ms, as_result);
    REQUIRE(ec == p2p::error::timeout);
    REQUIRE(ec == p2p::condition::timeout);
    REQUIRE(std::chrono::steady_clock::now() - t0 >= 90ms);
    co_await close_pair(pair);

    auto silent = co_await start_remote(io, "127.0.43.1", false);
    p2p::peer_manager asker(io.get_executor(), asker_options());
    co_await asker.launch(silent.host);
    auto p = co_await connected_peer_of(asker);
    auto sent = co_await asker.send(p2p::all, "state", "connected", "knock",
                                    p2p::as_bytes(knock_payload), "answer");
    t0 = std::chrono::steady_clock::now();
    auto first = start_with_callback<p2p::answers>([&](auto h) { sent.wait(200ms, 0, h); });
    auto [second_ec, second] = co_await sent.wait(200ms, 0, as_result);  // the first still runs
    REQUIRE(second_ec == asio::error::already_started);
    co_await until_done(first);
    REQUIRE_FALSE(first->ec);
    REQUIRE(std::chrono::steady_clock::now() - t0 >= 190ms);
    const auto& got = first->value();
    REQUIRE(got.answered.empty());
    REQUIRE(got.timed_out == std::vector<peer_ptr>{p});
    REQUIRE(got.status_of(p->id()) == p2p::answer_status::timed_out);
    co_await asker.shutdown();
    co_await silent.manager->shutdown();
  });
}

SCENARIO("tokens: launch twice is already_started, on an address in use is address_in_use",
         "[tokens]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    GIVEN("a manager launched once") {
      p2p::peer_manager m(io.get_executor(), p2p::test::loopback_options());
      co_await m.launch();
      auto [again] = co_await m.launch({}, as_result);
      REQUIRE(again == asio::error::already_started);
      REQUIRE(m.listen_endpoint().has_value());
      co_await m.shutdown();
    }
    GIVEN("a port another acceptor listens on") {
      auto taken = p2p::test::listen_on(io.get_executor(), "127.0.0.1");
      auto o = p2p::test::loopback_options("127.0.0.1");
      o.port = taken.local_endpoint().port();
      p2p::peer_manager m(io.get_executor(), o);
      auto [ec] = co_await m.launch({}, as_result);
      REQUIRE(ec == asio::error::address_in_use);
      REQUIRE(m.state() == p2p::manager_state::created);
      REQUIRE_FALSE(m.listen_endpoint().has_value());
      AND_THEN("once the port is free the same manager launches") {
        taken.close();
        auto [later] = co_await m.launch({}, as_result);
        REQUIRE_FALSE(later);
        REQUIRE(m.listen_endpoint()->port() == o.port);
        co_await m.shutdown();
      }
    }
  });
}
