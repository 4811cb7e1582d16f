#include "server/query_request.hpp"

#include "net/satellite.pb.h"
#include "net/wire_text.hpp"

namespace levee::server {

std::optional<rejection> check_query_request(std::string_view payload,
                                             const query::query_limits& limits) {
  return query::check_text_bytes(
    net::field_bytes(payload, wire::QueryRequest::kTextFieldNumber), limits);
}

} // namespace levee::server
