#include "server/query_request.hpp"

#include "net/satellite.pb.h"
#include "net/wire_text.hpp"

namespace levee::server {

std::optional<rejection> check_query_request(std::string_view payload,
                                             const query::query_limits& limits) {
  if (auto refused = query::check_text_bytes(
        net::field_bytes(payload, wire::QueryRequest::kTextFieldNumber), limits))
    return refused;
  // The text is `bytes` (a query's strings may hold any byte); the other strings must be
  // UTF-8 or protobuf refuses the whole request, and says why only on stderr.
  // Malformed, not over a limit: the refusal names no limit.
  return net::check_text_fields(*wire::QueryRequest::descriptor(), payload);
}

} // namespace levee::server
