#pragma once
// The text fields of a serialized protobuf message, read off its wire format before it is
// parsed. Protobuf refuses to parse a message whose `string` field holds bytes that are
// not UTF-8, and says why only on stderr (a library log line), so the receiver could only
// answer "does not parse". These find what it would refuse, and where, so that the answer
// can name it -- and nothing reaches the node's stderr. (Fields that may hold any bytes are
// `bytes` in the .proto files: PROTOCOL.md "Text fields".)

#include <cstdint>
#include <optional>
#include <string_view>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/coded_stream.h>

#include "limits/rejection.hpp"

namespace levee::net {

/// The first `string` field of `bytes` -- a serialized message of type `type`, its
/// sub-messages and map entries included -- that is not valid UTF-8, as a `bad_request`
/// refusal that names the field, the byte and its offset, and says to send UTF-8 text (no
/// limit key: the message itself is wrong):
/// `Register.labels (a key) is not valid UTF-8: byte 0xff at offset 3 of it; ...`.
/// nullopt when every string is valid, or when the bytes are no well-formed message (the
/// parser refuses those itself, without a log line).
std::optional<rejection> check_text_fields(const google::protobuf::Descriptor& type,
                                           std::string_view bytes);

/// Bytes of length-delimited field `number` at the top level of a serialized message: of
/// its last occurrence, which is the one the parser keeps. 0 when it is absent or the
/// bytes are no well-formed message. Reads no field's contents, copies nothing.
uint64_t field_bytes(std::string_view bytes, int number);

/// The parts of a protobuf tag (https://protobuf.dev/programming-guides/encoding/): the
/// field number above three bits of wire type.
constexpr uint32_t wire_field_number(uint32_t tag) noexcept { return tag >> 3; }
constexpr uint32_t wire_type(uint32_t tag) noexcept { return tag & 7; }
constexpr uint32_t wire_length_delimited = 2;

/// Moves `in` past the value of the field whose `tag` it just read, whatever its wire
/// type (groups too, within the stream's recursion limit: what protobuf's own parser
/// accepts); false when the value is truncated or the tag is no field's.
bool skip_wire_field(google::protobuf::io::CodedInputStream& in, uint32_t tag);

} // namespace levee::net
