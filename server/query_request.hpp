#pragma once
// A QueryRequest (satellite.proto) checked before the router parses it, so that what is
// wrong with it is refused for what it is: a text over query.max_text_bytes is
// message_too_large naming the limit (read off the wire: it is refused before it is
// copied), not a frame too large or a parse error; a satellite id or selector that is not
// UTF-8 is bad_request naming the field, not "does not parse" (and a protobuf complaint on
// the server's stderr).

#include <optional>
#include <string_view>

#include "limits/rejection.hpp"
#include "query/query.hpp"

namespace levee::server {

/// nullopt when `payload` (a serialized QueryRequest) may be parsed and run, else the
/// refusal to send back (query::check_text_bytes, net::check_text_fields).
std::optional<rejection> check_query_request(std::string_view payload,
                                             const query::query_limits& limits = {});

} // namespace levee::server
