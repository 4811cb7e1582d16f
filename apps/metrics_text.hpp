#pragma once
// /metrics as Prometheus reads it (http/METRICS.md): a node's StatsReply, the same fields
// `levee stats --json` prints, rendered in the text exposition format 0.0.4. The HTTP
// server (http/) serves it; this is the one place that names the families.

#include <string>
#include <utility>
#include <vector>

#include "http/exposition.hpp"
#include "net/satellite.pb.h"

namespace levee::apps {

/// What one node process shows: the process-wide figures once (I/O loop, node budget,
/// actor kinds), a server's queries and satellites, a broker's streams, the satellites it
/// runs, and each role's listener under its role's name.
struct node_metrics {
  std::string roles;          // "server,satellite": levee_node_info{roles}
  wire::StatsReply stats;     // listener unused: see listeners
  std::vector<std::pair<std::string, wire::ListenerStats>> listeners;  // "server", "broker"
};

/// Every family of http/METRICS.md the node has. A family whose part the reply does not
/// hold (no server: no queries) is left out rather than shown as zeros.
void write_node_metrics(const node_metrics& m, http::exposition& out);

/// write_node_metrics into a string (tests).
std::string node_metrics_text(const node_metrics& m);

} // namespace levee::apps
