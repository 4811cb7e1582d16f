#pragma once
// `levee stats` as people read it: a server's StatsReply rendered as lines of text. The
// server sends fields only (net/satellite.proto); this is the one place that words them.

#include <string>

#include "net/satellite.pb.h"

namespace levee::apps {

/// The listener, flow control, the I/O loop, the Rejects sent and connections closed by
/// code, the queries and their durations, the node budget and every actor kind, a line each (the listener's line and the query line
/// always; the others when the reply holds them). Names that came from the server are
/// shown through printable().
std::string stats_text(const wire::StatsReply& reply);

} // namespace levee::apps
