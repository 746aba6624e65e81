// Placeholder: the address book (include/p2p/address_book.hpp) is being written.
#include <p2p/address_book.hpp>

#include <fmt/format.h>

#include <stdexcept>

namespace p2p {

void book_options::validate() const {
  if (max_hosts == 0) throw std::invalid_argument("p2p: book.max_hosts is 0");
  if (max_bars == 0) throw std::invalid_argument("p2p: book.max_bars is 0");
  if (backoff_initial.count() <= 0)
    throw std::invalid_argument(
        fmt::format("p2p: book.backoff_initial ({} ms) must be positive", backoff_initial.count()));
  if (backoff_max < backoff_initial)
    throw std::invalid_argument(
        fmt::format("p2p: book.backoff_max ({} ms) is less than book.backoff_initial ({} ms)",
                    backoff_max.count(), backoff_initial.count()));
}

}  // namespace p2p
