// The README's API tour, compiled so it stays true. It dials 127.0.0.2/3:8333 and [::1]:18444;
// run knock_answer for a self-contained demo.
#include <p2p/p2p.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <fmt/format.h>

#include <iostream>
namespace asio = boost::asio;
using namespace std::chrono_literals;

asio::awaitable<void> app(p2p::peer_manager& mgr) {
  const p2p::host_list seeds{"127.0.0.2:8333", std::pair{"127.0.0.3", 8333},
                             p2p::host{"::1", 18444}};
  co_await mgr.launch(seeds);

  // Answers are collected from the moment of the send: none is lost before the co_await.
  auto sent = co_await mgr.send(2, "state", "waiting", "knock", p2p::as_bytes("hi"), "answer");
  p2p::answers got = co_await sent.wait(10s);
  for (auto& a : got.answered)
    fmt::print("{} answered {}\n", a.peer->id_string(), a.msg.payload.hex());
  for (auto& p : got.timed_out) fmt::print("{} never answered\n", p->id_string());

  co_await mgr.shutdown();  // afterwards io_context::run() returns by itself
}

int main() {
  asio::io_context io;
  p2p::manager_options opts;
  opts.listen_address = "127.0.0.1";
  opts.handshake = [](std::shared_ptr<p2p::peer> p) -> asio::awaitable<void> {
    p->send("version", {});
    if (!co_await p->receive("verack", 5s)) throw std::runtime_error("no verack");
    p->set_state("ready");
  };
  p2p::peer_manager mgr(io.get_executor(), opts);
  auto sub = mgr.events().report.subscribe(
      [](const p2p::report& r) { fmt::print("{}: {}\n", p2p::to_string(r.level), r.message); });
  asio::co_spawn(mgr.get_executor(), app(mgr), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  io.run();
}
