// The optional HTTP endpoint (Boost.Beast): /metrics and /peers.

#include <p2p/stats.hpp>
