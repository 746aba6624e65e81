// Placeholder: the c-ares lookup (src/detail/dns.hpp) is being written.
#include "detail/dns.hpp"
