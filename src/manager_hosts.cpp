// The manager's hosts: host lists, the address book (bars, refill, outcomes) and its file.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>

#include <fmt/format.h>

#include "detail/async.hpp"
#include "detail/cache_file.hpp"
#include "detail/manager_impl.hpp"

namespace p2p::detail {

void manager_impl::bar_key(std::string_view key, std::chrono::steady_clock::duration d) {
  book_.bar(key, d, now());  // bars add up: what is left, plus the new bar
  ++counters_.bars;
}

void manager_impl::bar_peer(const peer& p) {
  const std::string name = address_book::host_key(p.remote().name);
  bar_key(name, opts_.bar_duration);
  if (auto ep = p.endpoint()) {
    auto addr = address_book::host_key(ep->address().to_string());
    if (addr != name) bar_key(addr, opts_.bar_duration);
  }
}

std::chrono::steady_clock::duration manager_impl::barred_for(std::string_view name) const {
  return book_.barred_for(name, now());
}

std::vector<host> manager_impl::parse(const host_list& list) {
  auto parsed = parse_hosts(list, opts_.port);
  for (auto& e : parsed.errors) report(severity::warning, e);
  return std::move(parsed.hosts);
}

void manager_impl::add_hosts(const host_list& list, host_source source) {
  if (state_ == manager_state::shutdown) return;
  const auto t = now();
  const bool dial_all = source == host_source::active;
  for (auto& h : parse(list)) {
    if (barred(h.name)) {
      report(severity::info, fmt::format("not {} {}: barred", dial_all ? "connecting to" : "adding",
                                         h.to_string()));
      continue;
    }
    if (is_active(h)) continue;
    if (dial_all || active_.size() < target())
      dial(book_.extract(h, t).value_or(host_record{h, source, 0, t, {}, {}}));
    else
      book_.add(h, source, t);
  }
}

void manager_impl::dial(host_record r) {
  auto p = peer::outbound(strand_, r.host, opts_.peer());
  track(p).dialled = std::make_unique<host_record>(std::move(r));
  ++counters_.outbound_attempts;
  // Straight to the transport's connect: its outcome arrives as the peer's notifications.
  asio::co_spawn(p->io_, p->connect_on_transport(), [p](std::exception_ptr e, error_code) {
    if (e) std::rethrow_exception(e);
  });
}

std::set<std::string> manager_impl::busy_groups() const {
  std::set<std::string> groups;
  for (const auto& [id, e] : active_)
    if (!e.p->is_inbound()) groups.insert(address_book::netgroup_of(e.p->remote().name));
  return groups;
}

void manager_impl::return_host(host_record r, bool worked, bool failed) {
  if (worked || failed)
    book_.put_back(std::move(r), worked, now());
  else
    book_.restore(std::move(r), now());
}

void manager_impl::refill(time_point t) {
  std::set<std::string> busy =
      opts_.book.spread_netgroups ? busy_groups() : std::set<std::string>{};
  while (active_.size() < opts_.min_peers) {
    auto r = book_.take(t, busy);
    if (!r && !busy.empty()) r = book_.take(t);
    if (!r) break;
    if (is_active(r->host)) continue;  // cannot happen: dialling takes a host out first
    busy.insert(address_book::netgroup_of(r->host.name));
    dial(std::move(*r));
  }
}

void manager_impl::load_cache() {
  const auto& path = opts_.use_cache;
  // A saved host takes under 200 bytes and a bar under 100: a file far larger is not ours.
  const std::size_t limit = 64 * 1024 + opts_.book.max_hosts * 512 + opts_.book.max_bars * 256;
  auto text = read_whole_file(path, limit);
  if (!text) {
    report(severity::warning, fmt::format("address book {} not read ({}); starting without it",
                                          path, text.error().message()));
    return;
  }
  auto loaded = address_book::load(*text, opts_.book, now(), std::chrono::system_clock::now());
  if (!loaded) {
    report(severity::warning, fmt::format("address book {} ignored: {}", path, loaded.error()));
    return;
  }
  book_.merge(*loaded, now());
  report(severity::info, fmt::format("address book {} loaded: {} hosts, {} bars", path,
                                     loaded->size(), loaded->barred_count(now())));
}

void manager_impl::save_cache() {
  if (opts_.use_cache.empty()) return;
  // Hosts out of the book (dialled, connected) are written too: a crash before shutdown
  // must not lose the hosts that work best. A connected one worked just now.
  const auto t = now();
  std::vector<host_record> taken;
  for (const auto& [id, e] : active_) {
    if (!e.dialled) continue;
    taken.push_back(*e.dialled);
    if (e.ready) {
      taken.back().attempts = 0;
      taken.back().last_success = t;
    }
  }
  const auto text = book_.save(t, std::chrono::system_clock::now(), taken);
  if (auto ec = write_file_atomically(opts_.use_cache, text))
    report(severity::warning,
           fmt::format("address book {} not saved: {}", opts_.use_cache, ec.message()));
}

asio::awaitable<void> manager_impl::cache_loop() {
  auto self = shared_from_this();
  for (;;) {
    cache_timer_.expires_after(opts_.cache_interval);
    co_await cache_timer_.async_wait(use_nothrow);
    if (state_ == manager_state::shutdown) co_return;
    save_cache();
  }
}

}  // namespace p2p::detail
