// libFuzzer target for the address book's loader: p2p::address_book::load.
//
// The input is text. For it this checks that:
// - load never crashes; a failure has a message that starts with "p2p: address book: ";
// - a book that loads holds at most max_hosts hosts and max_bars bars, each host a valid one
//   (parse_host gives it back as is);
// - what loads saves and loads again, and the second save is the first to the byte (the
//   file keeps the order the hosts were learned in, and times within 100 years of now);
// - take() on the loaded book returns hosts of the book until it is empty of eligible ones.
// A failed check prints the value and aborts, which libFuzzer reports as a crash.

#include <p2p/address_book.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "detail/text.hpp"

namespace {

using namespace std::chrono_literals;

[[noreturn]] void fail(const char* what, std::string_view text) {
  std::fprintf(stderr, "fuzz_book: %s; input '%s'\n", what, p2p::detail::escape(text).c_str());
  std::abort();
}

void check(bool ok, const char* what, std::string_view text) {
  if (!ok) fail(what, text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  // Small bounds, so that the capacity rules run on short inputs.
  p2p::book_options opts;
  opts.max_hosts = 8;
  opts.max_bars = 4;
  const auto now = p2p::address_book::time_point{} + 1000h;
  const auto wall = std::chrono::system_clock::time_point{} + 1'700'000'000'000ms;

  auto book = p2p::address_book::load(text, opts, now, wall, 1);
  if (!book) {
    check(book.error().starts_with("p2p: address book: "), "an error without the prefix", text);
    return 0;
  }
  check(book->size() <= opts.max_hosts, "more hosts than max_hosts", text);
  check(book->barred_count(now) <= opts.max_bars, "more bars than max_bars", text);
  for (const auto& r : book->records()) {
    const auto back = p2p::parse_host(r.host.to_string(), 0);
    check(back && *back == r.host, "a host that does not round-trip", text);
    check(r.attempts <= 1'000'000, "attempts out of range", text);
  }

  const std::string saved = book->save(now, wall);
  auto again = p2p::address_book::load(saved, opts, now, wall, 1);
  if (!again) fail(("the saved book does not load: " + again.error()).c_str(), text);
  check(again->size() == book->size(), "the reloaded book has another size", text);
  check(again->save(now, wall) == saved, "the second save differs from the first", text);

  std::size_t taken = 0;
  while (auto r = again->take(now + 2h)) {
    check(book->contains(r->host), "take returned a host the book does not hold", text);
    check(++taken <= opts.max_hosts, "take returned more hosts than the book holds", text);
  }
  return 0;
}
