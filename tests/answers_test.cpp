#include <p2p/answers.hpp>
#include <p2p/error.hpp>
#include <p2p/manager.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/async.hpp"
#include "support/loopback.hpp"
#include "support/reports.hpp"

namespace asio = boost::asio;
using p2p::test::eventually;
using p2p::test::has_report;
using p2p::test::run_async_test;
using p2p::test::sleep_for;
using namespace std::chrono_literals;

namespace {

using awaitable_void = asio::awaitable<void>;
using peer_ptr = std::shared_ptr<p2p::peer>;
using clock_type = std::chrono::steady_clock;

/// How a remote reacts to a `knock`.
enum class reply {
  answer,             ///< "answer" echoing the payload
  silent,             ///< nothing
  error,              ///< "error" echoing the payload
  noise_then_answer,  ///< "noise", then "answer"
};

/// Options for every manager here: loopback, ephemeral port, no background checks.
p2p::manager_options base_options(std::string address) {
  return p2p::test::remote_options(std::move(address));
}

/// A remote manager that listens, answers `knock` per `mode`, answers `version` with
/// `verack`, and records every message it receives.
struct answerer {
  std::unique_ptr<p2p::peer_manager> manager;
  p2p::host host;
  reply mode = reply::answer;
  std::vector<p2p::message> received;
  std::vector<p2p::subscription> subs;

  std::vector<p2p::message> received_of(const std::string& command) const {
    std::vector<p2p::message> out;
    for (const auto& m : received)
      if (m.command == command) out.push_back(m);
    return out;
  }
};

/// Subscribes the answering behaviour of `a` to its manager's events.
void subscribe_answers(answerer& a) {
  auto* raw = &a;
  auto& ev = a.manager->events();
  a.subs.push_back(ev.peer_message.subscribe(
      [raw](const peer_ptr&, const p2p::message& m) { raw->received.push_back(m); }));
  a.subs.push_back(ev.command("knock").subscribe([raw](const peer_ptr& p, const p2p::message& m) {
    switch (raw->mode) {
      case reply::answer:
        p->send("answer", m.payload.span());
        break;
      case reply::silent:
        break;
      case reply::error:
        p->send("error", m.payload.span());
        break;
      case reply::noise_then_answer:
        p->send("noise", m.payload.span());
        p->send("answer", m.payload.span());
        break;
    }
  }));
  a.subs.push_back(ev.command("version").subscribe(
      [](const peer_ptr& p, const p2p::message&) { p->send("verack"); }));
}

/// A launched answerer listening on `address`.
asio::awaitable<std::unique_ptr<answerer>> start_answerer(asio::io_context& io, std::string address,
                                                          reply mode) {
  auto a = std::make_unique<answerer>();
  a->mode = mode;
  a->manager = std::make_unique<p2p::peer_manager>(io.get_executor(), base_options(address));
  subscribe_answers(*a);
  co_await a->manager->launch();
  a->host = {address, a->manager->listen_endpoint()->port()};
  co_return a;
}

/// One asker connected to one answerer per mode, on 127.0.`subnet`.(1 + i).
struct network {
  std::unique_ptr<p2p::peer_manager> asker;
  std::vector<std::unique_ptr<answerer>> remotes;
  /// The asker's peer to remotes[i].
  std::vector<peer_ptr> peers;

  /// Index of the asker's peer `p` in `peers`.
  std::size_t index_of(const peer_ptr& p) const {
    return static_cast<std::size_t>(std::find(peers.begin(), peers.end(), p) - peers.begin());
  }

  /// The remote manager behind the asker's peer `p`.
  answerer& remote_of(const peer_ptr& p) { return *remotes.at(index_of(p)); }
};

/// The asker's options: dials only, never refills, never drops.
p2p::manager_options asker_options() {
  auto o = base_options("127.0.0.1");
  o.listen = false;
  o.port = 8333;
  return o;
}

asio::awaitable<network> start_network(asio::io_context& io, std::vector<reply> modes, int subnet) {
  network net;
  net.asker = std::make_unique<p2p::peer_manager>(io.get_executor(), asker_options());
  co_await net.asker->launch();
  std::vector<p2p::host> hosts;
  for (std::size_t i = 0; i < modes.size(); ++i) {
    auto address = "127.0." + std::to_string(subnet) + "." + std::to_string(i + 1);
    net.remotes.push_back(co_await start_answerer(io, address, modes[i]));
    hosts.push_back(net.remotes.back()->host);
  }
  net.asker->add_active(hosts);
  auto& asker = *net.asker;
  CO_REQUIRE(co_await eventually([&] {
    for (const auto& h : hosts) {
      auto p = asker.find(p2p::peer::outbound_id(h));
      if (!p || p->state() != "connected") return false;
    }
    for (const auto& r : net.remotes)
      if (r->manager->active_count() != 1) return false;
    return true;
  }));
  for (const auto& h : hosts) net.peers.push_back(asker.find(p2p::peer::outbound_id(h)));
  co_return net;
}

asio::awaitable<void> stop_network(network& net) {
  co_await net.asker->shutdown();
  for (auto& r : net.remotes) co_await r->manager->shutdown();
}

/// The peers of a send result.
std::set<peer_ptr> chosen_of(const p2p::sent_messages& sent) {
  std::set<peer_ptr> out;
  for (const auto& [id, p] : sent.peers()) out.insert(p);
  return out;
}

/// The peers that answered.
std::set<peer_ptr> answered_of(const p2p::answers& got) {
  std::set<peer_ptr> out;
  for (const auto& a : got.answered) out.insert(a.peer);
  return out;
}

std::set<peer_ptr> set_of(const std::vector<peer_ptr>& peers) {
  return {peers.begin(), peers.end()};
}

/// `wait`, made non-throwing for `||`: nullopt when cancelled.
asio::awaitable<std::optional<p2p::answers>> wait_or_aborted(p2p::sent_messages& sent,
                                                             std::chrono::milliseconds timeout) {
  try {
    co_return co_await sent.wait(timeout);
  } catch (const boost::system::system_error& e) {
    if (e.code() != asio::error::operation_aborted) throw;
  }
  co_return std::nullopt;
}

const std::string knock_payload = "who is there?";

const std::span<const std::uint8_t> no_payload;

}  // namespace

// ---- selection -----------------------------------------------------------------------

SCENARIO("send: selects the active peers whose property matches", "[send]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    const std::vector<reply> modes(6, reply::silent);
    auto net = co_await start_network(io, modes, 3);
    auto& m = *net.asker;
    auto& p = net.peers;
    GIVEN("six peers with states and myProp values of different types") {
      p[0]->set_state("Waiting");
      p[0]->set("myProp", 1);
      p[1]->set_state("waiting");
      p[1]->set("myProp", 5);
      p[2]->set_state("WAITING");
      p[2]->set("myProp", 42);
      p[3]->set_state("busy");
      p[3]->set("myProp", false);
      p[4]->set_state("waiting");
      p[4]->set("myProp", "1");   // a string never equals a number
      p[5]->set("myProp", true);  // a bool never equals 1
      const auto waiting = set_of({p[0], p[1], p[2], p[4]});

      WHEN("sending to every peer in state \"waiting\" (0, negative and all)") {
        const std::vector<int> numbers{0, -1, -100, p2p::all};
        for (int number : numbers) {
          INFO("number " << number);
          auto sent =
              co_await m.send(number, "state", "waiting", "knock", p2p::as_bytes(knock_payload));
          // every match is chosen, case-insensitively, and nothing else
          REQUIRE(chosen_of(sent) == waiting);
        }
      }
      WHEN("sending to 2 of the 4 waiting peers") {
        auto sent = co_await m.send(2, "state", "Waiting", "knock", p2p::as_bytes(knock_payload));
        THEN("exactly two are chosen, both waiting") {
          REQUIRE(sent.size() == 2);
          for (const auto& c : chosen_of(sent)) REQUIRE(waiting.contains(c));
        }
      }
      WHEN("asking for more peers than match") {
        auto sent = co_await m.send(10, "state", "WAITING", "knock", p2p::as_bytes(knock_payload));
        THEN("every match is chosen") {
          REQUIRE(chosen_of(sent) == waiting);
        }
      }
      WHEN("the value is a list: myProp in {1, 5, 42, false}") {
        const p2p::match_values any_of{1, 5, 42, false};
        auto sent = co_await m.send(p2p::all, "myProp", any_of, "knock", no_payload);
        THEN("peers with any of the values match; \"1\" and true do not") {
          REQUIRE(chosen_of(sent) == set_of({p[0], p[1], p[2], p[3]}));
        }
        AND_WHEN("a random three of them") {
          auto three = co_await m.send(3, "myProp", any_of, "knock", no_payload);
          THEN("three distinct matching peers are chosen") {
            REQUIRE(three.size() == 3);
            for (const auto& c : chosen_of(three))
              REQUIRE(set_of({p[0], p[1], p[2], p[3]}).contains(c));
          }
        }
      }
      WHEN("a list of strings matches case-insensitively") {
        const p2p::match_values states{"BUSY", "connected"};
        auto sent = co_await m.send(p2p::all, "state", states, "knock", no_payload);
        THEN("the busy and the connected peers are chosen") {
          REQUIRE(chosen_of(sent) == set_of({p[3], p[5]}));
        }
      }
      WHEN("nothing matches, or the property is unknown") {
        auto none = co_await m.send(3, "state", "asleep", "knock", no_payload);
        auto unknown = co_await m.send(p2p::all, "colour", "red", "knock", no_payload, "answer");
        THEN("the result is empty, not an error, and waiting on it returns at once") {
          REQUIRE(none.empty());
          REQUIRE(none.size() == 0);
          REQUIRE(unknown.empty());
          const auto t0 = clock_type::now();
          auto got = co_await unknown.wait(5s);
          REQUIRE(clock_type::now() - t0 < 1s);
          REQUIRE(got.answered.empty());
          REQUIRE(got.timed_out.empty());
          REQUIRE(got.closed.empty());
          co_await sleep_for(50ms);
          for (const auto& r : net.remotes) REQUIRE(r->received.empty());
        }
      }
    }
    co_await stop_network(net);
  });
}

SCENARIO("send: random choice reaches every matching peer over many sends, never another",
         "[send]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    const std::vector<reply> modes(7, reply::silent);
    auto net = co_await start_network(io, modes, 4);
    GIVEN("five waiting peers and two busy ones") {
      for (std::size_t i = 0; i < 5; ++i) net.peers[i]->set_state("waiting");
      net.peers[5]->set_state("busy");
      net.peers[6]->set_state("busy");
      const std::set<peer_ptr> waiting(net.peers.begin(), net.peers.begin() + 5);
      WHEN("sending to one random waiting peer up to 200 times") {
        std::map<peer_ptr, int> picked;
        int sends = 0;
        for (; sends < 200 && picked.size() < waiting.size(); ++sends) {
          auto sent = co_await net.asker->send(1, "state", "waiting", "knock", no_payload);
          REQUIRE(sent.size() == 1);
          const auto& chosen = sent.peers().begin()->second;
          REQUIRE(waiting.contains(chosen));
          ++picked[chosen];
        }
        THEN("each waiting peer was picked at least once") {
          INFO("sends: " << sends);
          REQUIRE(picked.size() == 5);
        }
      }
    }
    co_await stop_network(net);
  });
}

TEST_CASE("send: the result is keyed by each peer's UUID", "[send]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    const std::vector<reply> modes(3, reply::silent);
    auto net = co_await start_network(io, modes, 5);
    auto sent = co_await net.asker->send(p2p::all, "state", "connected", "knock", no_payload);
    REQUIRE(sent.size() == 3);
    for (const auto& [id, p] : sent.peers()) {
      REQUIRE(id == p->id());
      REQUIRE(sent.contains(id));
      REQUIRE(net.asker->find(id) == p);
    }
    for (const auto& p : net.peers) REQUIRE(sent.peers().at(p->id()) == p);
    co_await stop_network(net);
  });
}

SCENARIO("send: one frame goes to every chosen peer, byte for byte", "[send]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    const std::vector<reply> modes(4, reply::silent);
    auto net = co_await start_network(io, modes, 6);
    GIVEN("a binary payload with NULs and high bytes") {
      std::vector<std::uint8_t> payload(1000);
      for (std::size_t i = 0; i < payload.size(); ++i)
        payload[i] = static_cast<std::uint8_t>(i * 7 + 3);
      payload[0] = 0x00;
      payload[1] = 0xff;
      WHEN("it is sent to 3 of 4 peers") {
        auto sent = co_await net.asker->send(3, "state", "connected", "knock", payload);
        REQUIRE(sent.size() == 3);
        THEN("each chosen remote gets the same command and bytes once; the other nothing") {
          CO_REQUIRE(co_await eventually([&] {
            for (const auto& p : chosen_of(sent))
              if (net.remote_of(p).received.size() != 1) return false;
            return true;
          }));
          const p2p::shared_bytes expected = p2p::shared_bytes::copy(payload);
          for (const auto& p : net.peers) {
            const auto& got = net.remote_of(p).received;
            if (!sent.contains(p->id())) {
              REQUIRE(got.empty());
              continue;
            }
            REQUIRE(got.size() == 1);
            REQUIRE(got[0].command == "knock");
            REQUIRE(got[0].payload == expected);
          }
        }
      }
    }
    co_await stop_network(net);
  });
}

// ---- answer patterns -----------------------------------------------------------------

SCENARIO("send: pattern 1, one answer_cmd from each chosen peer", "[send]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    const std::vector<reply> modes(5, reply::answer);
    auto net = co_await start_network(io, modes, 7);
    GIVEN("five peers that answer every knock") {
      WHEN("three are knocked with answer_cmd \"answer\" and the wait allows 5 s") {
        auto sent = co_await net.asker->send(3, "state", "connected", "knock",
                                             p2p::as_bytes(knock_payload), "answer");
        const auto t0 = clock_type::now();
        auto got = co_await sent.wait(5s);
        const auto took = clock_type::now() - t0;
        THEN("the wait returns as soon as all three answered, each once, with its payload") {
          REQUIRE(took < 2s);
          REQUIRE(got.elapsed < 2s);
          REQUIRE(got.answered.size() == 3);
          REQUIRE(got.timed_out.empty());
          REQUIRE(got.closed.empty());
          REQUIRE(answered_of(got) == chosen_of(sent));
          for (const auto& a : got.answered) {
            REQUIRE(a.msg.command == "answer");
            REQUIRE(a.msg.payload.view() == knock_payload);
            REQUIRE(a.after <= got.elapsed);
          }
          for (const auto& [id, p] : sent.peers())
            REQUIRE(got.status_of(id) == p2p::answer_status::answered);
        }
      }
    }
    co_await stop_network(net);
  });
}

SCENARIO("send: pattern 2, the first message a predicate accepts from each chosen peer", "[send]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    const std::vector<reply> modes{reply::noise_then_answer, reply::error, reply::answer};
    auto net = co_await start_network(io, modes, 8);
    GIVEN("one peer sends noise then an answer, one an error; the third is not chosen") {
      net.peers[0]->set("asked", true);
      net.peers[1]->set("asked", true);
      auto spec = p2p::answer_spec::matching(
          [](const p2p::message& m) { return m.command == "answer" || m.command == "error"; });
      WHEN("knocked with a predicate for answer or error") {
        auto sent = co_await net.asker->send(p2p::all, "asked", true, "knock",
                                             p2p::as_bytes(knock_payload), spec);
        REQUIRE(sent.size() == 2);
        auto got = co_await sent.wait(5s);
        THEN("the error and the answer are both accepted, the noise is not") {
          REQUIRE(got.elapsed < 2s);
          REQUIRE(got.answered.size() == 2);
          REQUIRE(got.timed_out.empty());
          std::map<peer_ptr, std::string> commands;
          for (const auto& a : got.answered) commands[a.peer] = a.msg.command;
          REQUIRE(commands.at(net.peers[0]) == "answer");
          REQUIRE(commands.at(net.peers[1]) == "error");
          REQUIRE(net.remotes[2]->received.empty());
        }
      }
    }
    THEN("matching needs a predicate") {
      REQUIRE_THROWS_WITH(p2p::answer_spec::matching(nullptr), Catch::Contains("predicate"));
    }
    co_await stop_network(net);
  });
}

SCENARIO("send: pattern 3, answer_cmd from any peer, including one not asked", "[send]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    const std::vector<reply> modes{reply::answer, reply::silent};
    auto net = co_await start_network(io, modes, 9);
    GIVEN("one peer is knocked; another, not asked, also sends an answer") {
      net.peers[0]->set("asked", true);
      auto sent = co_await net.asker->send(1, "asked", true, "knock", p2p::as_bytes(knock_payload),
                                           p2p::answer_spec::from_any_peer("answer"));
      REQUIRE(sent.size() == 1);
      REQUIRE(sent.contains(net.peers[0]->id()));
      auto& bystander = *net.remotes[1]->manager;
      co_await bystander.send(p2p::all, "state", "connected", "answer", p2p::as_bytes("me too"));
      co_await bystander.send(p2p::all, "state", "connected", "answer", p2p::as_bytes("again"));
      WHEN("three answers are awaited for 400 ms") {
        auto got = co_await sent.wait(400ms, 3);
        THEN("both peers' answers count, once per peer") {
          REQUIRE(got.answered.size() == 2);
          REQUIRE(answered_of(got) == set_of({net.peers[0], net.peers[1]}));
          for (const auto& a : got.answered)
            if (a.peer == net.peers[1]) REQUIRE(a.msg.payload.view() == "me too");
          REQUIRE(got.status_of(net.peers[0]->id()) == p2p::answer_status::answered);
          REQUIRE(got.timed_out.empty());
        }
      }
    }
    co_await stop_network(net);
  });
}

// ---- quorum, timeout, close ----------------------------------------------------------

SCENARIO("send: a quorum ends the wait once that many answered", "[send]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    const std::vector<reply> modes{reply::answer, reply::silent, reply::answer, reply::silent};
    auto net = co_await start_network(io, modes, 10);
    GIVEN("four peers knocked, two of which answer") {
      auto sent = co_await net.asker->send(p2p::all, "state", "connected", "knock",
                                           p2p::as_bytes(knock_payload), "answer");
      REQUIRE(sent.size() == 4);
      WHEN("waiting 5 s for a quorum of 2") {
        const auto t0 = clock_type::now();
        auto got = co_await sent.wait(5s, 2);
        THEN("the wait ends at the second answer; the silent two are not answered") {
          REQUIRE(clock_type::now() - t0 < 2s);
          REQUIRE(got.answered.size() == 2);
          REQUIRE(answered_of(got) == set_of({net.peers[0], net.peers[2]}));
          REQUIRE(set_of(got.timed_out) == set_of({net.peers[1], net.peers[3]}));
        }
      }
    }
    co_await stop_network(net);
  });
}

SCENARIO("send: the timeout ends a wait with partial answers", "[send]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    const std::vector<reply> modes{reply::silent, reply::answer, reply::silent, reply::answer};
    auto net = co_await start_network(io, modes, 11);
    GIVEN("four peers knocked, two of which never answer") {
      auto sent = co_await net.asker->send(p2p::all, "state", "connected", "knock",
                                           p2p::as_bytes(knock_payload), "answer");
      WHEN("waiting 300 ms") {
        const auto t0 = clock_type::now();
        auto got = co_await sent.wait(300ms);
        const auto took = clock_type::now() - t0;
        THEN("it returns after the timeout; timed_out is exactly the silent two") {
          REQUIRE(took >= 290ms);
          REQUIRE(took < 2s);
          REQUIRE(answered_of(got) == set_of({net.peers[1], net.peers[3]}));
          REQUIRE(got.timed_out.size() == 2);
          REQUIRE(set_of(got.timed_out) == set_of({net.peers[0], net.peers[2]}));
          REQUIRE(got.closed.empty());
          REQUIRE(got.status_of(net.peers[0]->id()) == p2p::answer_status::timed_out);
          REQUIRE(got.status_of(net.peers[1]->id()) == p2p::answer_status::answered);
        }
      }
    }
    co_await stop_network(net);
  });
}

SCENARIO("send: a chosen peer closing mid-wait is listed as closed", "[send]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    const std::vector<reply> modes{reply::answer, reply::answer, reply::silent};
    auto net = co_await start_network(io, modes, 12);
    GIVEN("three peers knocked; two answer, the third stays silent") {
      auto sent = co_await net.asker->send(p2p::all, "state", "connected", "knock",
                                           p2p::as_bytes(knock_payload), "answer");
      WHEN("the silent remote disconnects 100 ms into a 5 s wait") {
        auto& silent = *net.remotes[2]->manager;
        auto drop = [&silent]() -> awaitable_void {
          co_await sleep_for(100ms);
          auto theirs = silent.active_peers();
          REQUIRE(theirs.size() == 1);
          co_await silent.del_active(theirs[0], "leaving mid-wait");
        };
        asio::co_spawn(io, drop, p2p::test::rethrow{});
        const auto t0 = clock_type::now();
        auto got = co_await sent.wait(5s);
        const auto took = clock_type::now() - t0;
        THEN("the wait ends early with that peer closed and the others answered") {
          REQUIRE(took >= 90ms);
          REQUIRE(took < 2s);
          REQUIRE(got.closed.size() == 1);
          REQUIRE(got.closed[0] == net.peers[2]);
          REQUIRE(got.timed_out.empty());
          REQUIRE(answered_of(got) == set_of({net.peers[0], net.peers[1]}));
          REQUIRE(got.status_of(net.peers[2]->id()) == p2p::answer_status::closed);
        }
      }
    }
    co_await stop_network(net);
  });
}

SCENARIO("send: answers arriving before the caller awaits are not lost", "[send]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    const std::vector<reply> modes(3, reply::answer);
    auto net = co_await start_network(io, modes, 13);
    GIVEN("three peers knocked with answer_cmd") {
      auto sent = co_await net.asker->send(p2p::all, "state", "connected", "knock",
                                           p2p::as_bytes(knock_payload), "answer");
      WHEN("the caller does something else for 200 ms before waiting") {
        co_await sleep_for(200ms);
        const auto t0 = clock_type::now();
        auto got = co_await sent.wait(300ms);
        THEN("every answer is already there and the wait returns at once") {
          REQUIRE(clock_type::now() - t0 < 100ms);
          REQUIRE(got.answered.size() == 3);
          REQUIRE(got.timed_out.empty());
          for (const auto& a : got.answered) REQUIRE(a.after < 200ms);
        }
      }
    }
    co_await stop_network(net);
  });
}

// ---- cancellation --------------------------------------------------------------------

namespace {

/// What a send's collection could leave behind: subscriptions on the peer and its
/// manager (there should be none at all), and the manager's count of collections.
struct collection_traces {
  std::size_t answer = 0, message = 0, close = 0, manager_answer = 0, collecting = 0;

  bool operator==(const collection_traces&) const = default;
};

collection_traces counts(p2p::peer_manager& m, const peer_ptr& p) {
  return {p->events().command("answer").size(), p->events().message.size(),
          p->events().close.size(), m.events().command("answer").size(), m.collecting()};
}

p2p::answer_spec spec_number(int which) {
  switch (which) {
    case 0:
      return "answer";
    case 1:
      return p2p::answer_spec::matching([](const p2p::message& m) { return m.command == "x"; });
    default:
      return p2p::answer_spec::from_any_peer("answer");
  }
}

asio::awaitable<void> cancelled_wait_case(asio::io_context& io, int which) {
  const std::vector<reply> modes{reply::silent};
  auto net = co_await start_network(io, modes, 14 + which);
  auto& m = *net.asker;
  const auto& p = net.peers[0];
  const auto before = counts(m, p);
  REQUIRE(before.answer == 0);
  REQUIRE(before.manager_answer == 0);
  REQUIRE(before.collecting == 0);
  {
    auto sent =
        co_await m.send(p2p::all, "state", "connected", "knock", no_payload, spec_number(which));
    REQUIRE(m.collecting() == 1);  // the collection is registered
    WHEN("the wait is cancelled by a 100 ms timer racing it") {
      using namespace asio::experimental::awaitable_operators;
      asio::steady_timer timer(io, 100ms);
      const auto t0 = clock_type::now();
      auto outcome = co_await (wait_or_aborted(sent, 10s) ||
                               timer.async_wait(asio::as_tuple(asio::use_awaitable)));
      THEN("it ends at once and leaves no subscription behind") {
        REQUIRE(outcome.index() == 1);
        REQUIRE(clock_type::now() - t0 < 2s);
        REQUIRE(counts(m, p) == before);
      }
    }
  }
  THEN("destroying the result leaves no subscription behind") {
    CO_REQUIRE(co_await eventually([&] { return counts(m, p) == before; }, 2s));
  }
  co_await stop_network(net);
}

}  // namespace

SCENARIO("send: cancelling the wait or destroying the result removes every subscription",
         "[send]") {
  const int which = GENERATE(0, 1, 2);
  INFO("answer pattern " << which + 1);
  run_async_test([which](asio::io_context& io) { return cancelled_wait_case(io, which); });
}

// ---- bad input -----------------------------------------------------------------------

TEST_CASE("send: bad arguments throw at the call, naming the value, and send nothing", "[send]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    const std::vector<reply> modes{reply::answer};
    auto net = co_await start_network(io, modes, 20);
    auto& m = *net.asker;
    const auto payload = p2p::as_bytes(knock_payload);
    // An empty property name.
    REQUIRE_THROWS_AS(m.send(p2p::all, "", "connected", "knock", payload), std::invalid_argument);
    REQUIRE_THROWS_WITH(m.send(p2p::all, "", "connected", "knock", payload),
                        Catch::Contains("property name is empty"));
    // An empty list of values, naming the property.
    const p2p::match_values nothing(std::vector<p2p::property>{});
    REQUIRE_THROWS_WITH(m.send(p2p::all, "state", nothing, "knock", payload),
                        Catch::Contains("'state'"));
    // A 13-byte command, and one with a control byte.
    REQUIRE_THROWS_AS(m.send(p2p::all, "state", "connected", "thirteenchars", payload),
                      std::invalid_argument);
    REQUIRE_THROWS_WITH(m.send(p2p::all, "state", "connected", "thirteenchars", payload),
                        Catch::Contains("'thirteenchars' is 13 bytes; limit 12"));
    REQUIRE_THROWS_WITH(m.send(p2p::all, "state", "connected", "kn\nock", payload),
                        Catch::Contains("non-printable byte 0x0a"));
    // A bad answer command, in both forms.
    REQUIRE_THROWS_AS(m.send(p2p::all, "state", "connected", "knock", payload, "thirteenchars"),
                      std::invalid_argument);
    REQUIRE_THROWS_WITH(m.send(p2p::all, "state", "connected", "knock", payload, "thirteenchars"),
                        Catch::Contains("'thirteenchars' is 13 bytes"));
    REQUIRE_THROWS_WITH(m.send(p2p::all, "state", "connected", "knock", payload,
                               p2p::answer_spec::from_any_peer("much-too-long-answer")),
                        Catch::Contains("much-too-long-answer"));
    // A negative wait timeout.
    auto sent = co_await m.send(p2p::all, "state", "nobody", "knock", payload, "answer");
    REQUIRE_THROWS_WITH(sent.wait(-1ms), Catch::Contains("-1 ms"));
    // Nothing reached the remote.
    co_await sleep_for(100ms);
    REQUIRE(net.remotes[0]->received.empty());
    co_await stop_network(net);
  });
}

// ---- handshake hook ------------------------------------------------------------------

namespace {

/// The hook of the spec's example: version, then verack within 1 s, then "ready".
asio::awaitable<void> version_verack(peer_ptr p) {
  p->send("version", p2p::as_bytes("70015"));
  co_await p->receive("verack", 1s);  // throws error::timeout without one
  p->set_state("ready");
}

/// Events of a manager under test, recorded.
struct recorder {
  std::vector<peer_ptr> ready;
  std::vector<std::pair<peer_ptr, boost::system::error_code>> errors;
  std::vector<p2p::report> reports;
  std::vector<p2p::subscription> subs;

  explicit recorder(p2p::peer_manager& m) {
    auto& ev = m.events();
    subs.push_back(ev.peer_ready.subscribe([this](const peer_ptr& p) { ready.push_back(p); }));
    subs.push_back(
        ev.peer_error.subscribe([this](const peer_ptr& p, const boost::system::error_code& ec) {
          errors.emplace_back(p, ec);
        }));
    subs.push_back(ev.report.subscribe([this](const p2p::report& r) { reports.push_back(r); }));
  }
};

/// A listening manager on `address` with `hook`, short handshake timeout.
std::unique_ptr<p2p::peer_manager> hooked_manager(asio::io_context& io, std::string address,
                                                  p2p::handshake_hook hook,
                                                  std::chrono::milliseconds timeout = 2s) {
  auto o = base_options(std::move(address));
  o.handshake = std::move(hook);
  o.handshake_timeout = timeout;
  return std::make_unique<p2p::peer_manager>(io.get_executor(), o);
}

}  // namespace

SCENARIO("handshake: the hook runs for outbound and inbound peers before they are ready",
         "[send]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    std::vector<bool> hooked_inbound;
    auto hook = [&hooked_inbound](peer_ptr p) {
      hooked_inbound.push_back(p->is_inbound());
      return version_verack(std::move(p));
    };
    auto m = hooked_manager(io, "127.0.30.1", hook);
    recorder rec(*m);
    co_await m->launch();
    GIVEN("a remote we dial and a remote that dials us, both answering verack") {
      auto dialled = co_await start_answerer(io, "127.0.30.2", reply::answer);
      auto dialer = co_await start_answerer(io, "127.0.30.3", reply::answer);
      m->add_active(dialled->host);
      dialer->manager->add_active("127.0.30.1:" + std::to_string(m->listen_endpoint()->port()));
      THEN("both pass the hook: ready events fire and their state is \"ready\"") {
        CO_REQUIRE(co_await eventually([&] { return rec.ready.size() == 2; }, 3s));
        REQUIRE(rec.errors.empty());
        REQUIRE(hooked_inbound.size() == 2);
        REQUIRE(std::count(hooked_inbound.begin(), hooked_inbound.end(), true) == 1);
        for (const auto& p : rec.ready) REQUIRE(p->state() == "ready");
        REQUIRE(m->active_count() == 2);
        REQUIRE(dialled->received_of("version").size() == 1);
        REQUIRE(dialer->received_of("version").size() == 1);
        AND_THEN("a send to state \"ready\" reaches both") {
          auto sent = co_await m->send(p2p::all, "state", "READY", "knock",
                                       p2p::as_bytes(knock_payload), "answer");
          REQUIRE(sent.size() == 2);
          auto got = co_await sent.wait(2s);
          REQUIRE(got.answered.size() == 2);
        }
      }
      co_await dialled->manager->shutdown();
      co_await dialer->manager->shutdown();
    }
    co_await m->shutdown();
  });
}

SCENARIO("handshake: a hook that throws gets the peer reported, dropped and barred", "[send]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto hook = [](peer_ptr) -> awaitable_void {
      throw std::runtime_error("version 1 is too old");
      co_return;
    };
    auto m = hooked_manager(io, "127.0.31.1", hook);
    recorder rec(*m);
    co_await m->launch();
    auto dialled = co_await start_answerer(io, "127.0.31.2", reply::answer);
    auto dialer = co_await start_answerer(io, "127.0.31.3", reply::answer);
    WHEN("a peer is dialled and another dials in") {
      m->add_active(dialled->host);
      dialer->manager->add_active("127.0.31.1:" + std::to_string(m->listen_endpoint()->port()));
      THEN("both are reported with the hook's message and dropped; the dialled host is barred") {
        CO_REQUIRE(co_await eventually([&] { return rec.errors.size() == 2; }, 3s));
        for (const auto& [p, ec] : rec.errors) REQUIRE(ec == p2p::error::handshake_failed);
        REQUIRE(has_report(rec.reports, "handshake failed: version 1 is too old"));
        CO_REQUIRE(co_await eventually([&] { return m->active_count() == 0; }, 3s));
        REQUIRE(rec.ready.empty());
        REQUIRE(m->barred_for("127.0.31.2") > 9min);
      }
    }
    co_await dialled->manager->shutdown();
    co_await dialer->manager->shutdown();
    co_await m->shutdown();
  });
}

SCENARIO("handshake: a hook that never finishes times out and the peer is dropped", "[send]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    auto hook = [](peer_ptr) -> awaitable_void { co_await sleep_for(10s); };
    auto m = hooked_manager(io, "127.0.32.1", hook, 200ms);
    recorder rec(*m);
    co_await m->launch();
    auto dialled = co_await start_answerer(io, "127.0.32.2", reply::answer);
    WHEN("a peer is dialled") {
      const auto t0 = clock_type::now();
      m->add_active(dialled->host);
      THEN("after handshake_timeout it fails with handshake_timeout and is removed") {
        CO_REQUIRE(co_await eventually([&] { return rec.errors.size() == 1; }, 3s));
        const auto took = clock_type::now() - t0;
        REQUIRE(took >= 190ms);
        REQUIRE(took < 2s);
        REQUIRE(rec.errors[0].second == p2p::error::handshake_timeout);
        REQUIRE(rec.errors[0].second == p2p::condition::timeout);
        REQUIRE(has_report(rec.reports, "handshake did not finish within 200 ms"));
        CO_REQUIRE(co_await eventually([&] { return m->active_count() == 0; }, 3s));
        REQUIRE(rec.ready.empty());
      }
    }
    co_await dialled->manager->shutdown();
    co_await m->shutdown();
  });
}

SCENARIO("send: a quorum above what can still answer does not outwait the answers", "[send]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    const std::vector<reply> modes{reply::answer, reply::answer, reply::silent};
    auto net = co_await start_network(io, modes, 21);
    GIVEN("two chosen peers that both answer, and a quorum of 3") {
      net.peers[0]->set("asked", true);
      net.peers[1]->set("asked", true);
      auto sent = co_await net.asker->send(p2p::all, "asked", true, "knock",
                                           p2p::as_bytes(knock_payload), "answer");
      REQUIRE(sent.size() == 2);
      WHEN("waiting up to 1 s") {
        const auto t0 = clock_type::now();
        auto got = co_await sent.wait(1s, 3);
        THEN("the wait ends once every chosen peer answered") {
          REQUIRE(got.answered.size() == 2);
          REQUIRE(clock_type::now() - t0 < 500ms);
        }
      }
    }
    co_await stop_network(net);
  });
}

SCENARIO("send: with a quorum, the wait ends when every unanswered peer closed", "[send]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    const std::vector<reply> modes{reply::answer, reply::silent, reply::silent};
    auto net = co_await start_network(io, modes, 22);
    GIVEN("three chosen peers, one answering, a quorum of 2") {
      auto sent = co_await net.asker->send(p2p::all, "state", "connected", "knock",
                                           p2p::as_bytes(knock_payload), "answer");
      WHEN("the two silent remotes disconnect during a 1 s wait") {
        auto& r1 = *net.remotes[1]->manager;
        auto& r2 = *net.remotes[2]->manager;
        auto drop = [&r1, &r2]() -> awaitable_void {
          co_await sleep_for(100ms);
          auto a = r1.active_peers();
          auto b = r2.active_peers();
          co_await r1.del_active(a.at(0), "leaving");
          co_await r2.del_active(b.at(0), "leaving");
        };
        asio::co_spawn(io, drop, p2p::test::rethrow{});
        const auto t0 = clock_type::now();
        auto got = co_await sent.wait(1s, 2);
        THEN("it ends early: one answered, two closed") {
          REQUIRE(got.answered.size() == 1);
          REQUIRE(got.closed.size() == 2);
          REQUIRE(clock_type::now() - t0 < 500ms);
        }
      }
    }
    co_await stop_network(net);
  });
}

SCENARIO("send: pattern 3, an answer from a peer not asked does not end the wait for the asked one",
         "[send]") {
  run_async_test([](asio::io_context& io) -> awaitable_void {
    const std::vector<reply> modes{reply::silent, reply::silent};
    auto net = co_await start_network(io, modes, 23);
    GIVEN("one silent peer knocked with from_any_peer(\"answer\"); another, not asked, answers") {
      net.peers[0]->set("asked", true);
      auto sent = co_await net.asker->send(1, "asked", true, "knock", p2p::as_bytes(knock_payload),
                                           p2p::answer_spec::from_any_peer("answer"));
      auto& bystander = *net.remotes[1]->manager;
      co_await bystander.send(p2p::all, "state", "connected", "answer", p2p::as_bytes("me"));
      WHEN("waiting 500 ms") {
        const auto t0 = clock_type::now();
        auto got = co_await sent.wait(500ms);
        const auto took = clock_type::now() - t0;
        THEN("the bystander's answer is collected, and the asked peer times out at the timeout") {
          REQUIRE(got.answered.size() == 1);
          REQUIRE(got.answered[0].peer == net.peers[1]);
          REQUIRE(got.timed_out.size() == 1);
          // sent_messages::wait: "Waits until every chosen peer answered ... [or] the timeout
          // passed"; the asked peer cannot be reported timed out before the timeout.
          INFO("wait took " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                            << " ms of 500");
          REQUIRE(took >= 450ms);
        }
      }
    }
    co_await stop_network(net);
  });
}
