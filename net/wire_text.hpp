#pragma once
// The text fields of a serialized protobuf message, read off its wire format before it is
// parsed: what a receiver checks before it spends a parse (and copies) on a message.

#include <cstdint>
#include <optional>
#include <string_view>

namespace levee::net {

/// Bytes of length-delimited field `number` at the top level of a serialized message: of
/// its last occurrence, which is the one the parser keeps. 0 when it is absent or the
/// bytes are no well-formed message. Reads no field's contents, copies nothing.
uint64_t field_bytes(std::string_view bytes, int number);

} // namespace levee::net
