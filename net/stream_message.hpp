#pragma once
// A stream message's fields into its wire form (net/streams.proto): an OutMessage a
// client publishes and an InMessage a broker delivers carry the same key, id, body and
// headers, filled here once for both.

#include <string>
#include <utility>
#include <vector>

namespace levee::net {

/// Moves key, id, body and headers into `out` (a wire::OutMessage or wire::InMessage).
template <class WireMessage>
void move_message_fields(WireMessage& out, std::string& key, std::string& id, std::string& body,
                         std::vector<std::pair<std::string, std::string>>& headers) {
  out.set_key(std::move(key));
  out.set_id(std::move(id));
  out.set_body(std::move(body));
  for (auto& [name, value] : headers) {
    auto& h = *out.add_headers();
    h.set_name(std::move(name));
    h.set_value(std::move(value));
  }
}

} // namespace levee::net
