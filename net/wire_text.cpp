#include "net/wire_text.hpp"

#include <cstdio>
#include <limits>
#include <string>

#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/io/coded_stream.h>

#include "limits/printable.hpp"

namespace levee::net {

namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::io::CodedInputStream;

/// Sub-messages looked into; ours nest two or three deep.
constexpr int max_depth = 16;

bool fits(std::string_view bytes) {
  return bytes.size() <= static_cast<size_t>(std::numeric_limits<int>::max());
}

std::optional<rejection> walk(const Descriptor& type, std::string_view bytes,
                              const std::string& path, int depth) {
  if (!fits(bytes))
    return std::nullopt;
  auto data = reinterpret_cast<const uint8_t*>(bytes.data());
  CodedInputStream in(data, static_cast<int>(bytes.size()));
  while (auto tag = in.ReadTag()) {
    auto number = wire_field_number(tag);
    if (number == 0)
      return std::nullopt;
    const FieldDescriptor* field = type.FindFieldByNumber(static_cast<int>(number));
    if (wire_type(tag) != wire_length_delimited || field == nullptr) {
      if (!skip_wire_field(in, tag))
        return std::nullopt;
      continue;
    }
    uint32_t length = 0;
    if (!in.ReadVarint32(&length))
      return std::nullopt;
    auto at = static_cast<size_t>(in.CurrentPosition());
    if (length > bytes.size() - at)
      return std::nullopt;
    std::string_view value = bytes.substr(at, length);
    in.Skip(static_cast<int>(length));
    // Inside a map's entry, its key (1) or value (2), named after the map. Named only when
    // it is needed (a refusal, or a message looked into): this runs on every query.
    auto name = [&] {
      if (type.options().map_entry())
        return path + (field->number() == 1 ? " (a key)" : " (a value)");
      return path + "." + field->name();
    };
    if (field->type() == FieldDescriptor::TYPE_STRING) {
      auto valid = valid_utf8_prefix(value);
      if (valid == value.size())
        continue;
      char byte[8];
      std::snprintf(byte, sizeof byte, "0x%02x",
                    static_cast<unsigned>(static_cast<uint8_t>(value[valid])));
      return rejection::of(code::bad_request)
               .detail(name() + " is not valid UTF-8: byte " + byte + " at offset "
                       + std::to_string(valid) + " of it; send it as UTF-8 text");
    }
    // A map is a repeated message of entries: its entries are named after it.
    if (field->type() == FieldDescriptor::TYPE_MESSAGE && depth < max_depth)
      if (auto refused = walk(*field->message_type(), value, name(), depth + 1))
        return refused;
  }
  return std::nullopt;
}

} // namespace

std::optional<rejection> check_text_fields(const Descriptor& type, std::string_view bytes) {
  return walk(type, bytes, type.name(), 0);
}

uint64_t field_bytes(std::string_view bytes, int number) {
  if (!fits(bytes))
    return 0;
  CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                      static_cast<int>(bytes.size()));
  uint64_t found = 0;
  while (auto tag = in.ReadTag()) {
    if (wire_field_number(tag) == static_cast<uint32_t>(number)
        && wire_type(tag) == wire_length_delimited) {
      uint32_t length = 0;
      if (!in.ReadVarint32(&length) || !in.Skip(static_cast<int>(length)))
        return 0;
      found = length;
      continue;
    }
    if (wire_field_number(tag) == 0 || !skip_wire_field(in, tag))
      return 0;
  }
  return in.ConsumedEntireMessage() ? found : 0;
}

bool skip_wire_field(CodedInputStream& in, uint32_t tag) {
  switch (wire_type(tag)) {
    case 0: {  // varint
      uint64_t v;
      return in.ReadVarint64(&v);
    }
    case 1: {  // fixed64
      uint64_t v;
      return in.ReadLittleEndian64(&v);
    }
    case wire_length_delimited: {
      uint32_t length = 0;
      return in.ReadVarint32(&length)
             && length <= static_cast<uint32_t>(std::numeric_limits<int>::max())
             && in.Skip(static_cast<int>(length));
    }
    case 3: {  // a group: its fields up to the end-group tag of the same number
      if (!in.IncrementRecursionDepth())
        return false;
      for (;;) {
        auto inner = in.ReadTag();
        if (inner == 0)
          return false;  // the input ends inside the group
        if (wire_type(inner) == 4) {
          in.DecrementRecursionDepth();
          return wire_field_number(inner) == wire_field_number(tag);
        }
        if (!skip_wire_field(in, inner))
          return false;
      }
    }
    case 5: {  // fixed32
      uint32_t v;
      return in.ReadLittleEndian32(&v);
    }
    default:  // an end-group tag without its start; 6 and 7 are no wire type
      return false;
  }
}

} // namespace levee::net
