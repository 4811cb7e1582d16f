#pragma once
// Reading a serialized ResultBatch (satellite.proto) without parsing it: a server that
// relays a satellite's batch needs its row count, not copies of its rows.

#include <cstdint>
#include <optional>
#include <string_view>

namespace levee::net {

/// The rows (`events` entries) of a serialized ResultBatch, read off its wire format;
/// nullopt when the bytes are not a well-formed protobuf message (a truncated varint, a
/// length past the end, a field number 0, an invalid wire type).
std::optional<uint64_t> count_result_rows(std::string_view batch);

} // namespace levee::net
