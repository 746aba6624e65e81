// The snapshot's renderings: Prometheus text exposition, JSON, a text table.

#include <p2p/stats.hpp>
