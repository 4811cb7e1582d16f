#include "net/wire_text.hpp"

#include <limits>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

namespace levee::net {

namespace {

using google::protobuf::internal::WireFormatLite;

bool fits(std::string_view bytes) {
  return bytes.size() <= static_cast<size_t>(std::numeric_limits<int>::max());
}

} // namespace

uint64_t field_bytes(std::string_view bytes, int number) {
  if (!fits(bytes))
    return 0;
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                            static_cast<int>(bytes.size()));
  uint64_t found = 0;
  while (auto tag = in.ReadTag()) {
    if (WireFormatLite::GetTagFieldNumber(tag) == number
        && WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      uint32_t length = 0;
      if (!in.ReadVarint32(&length) || !in.Skip(static_cast<int>(length)))
        return 0;
      found = length;
      continue;
    }
    if (WireFormatLite::GetTagFieldNumber(tag) == 0 || !WireFormatLite::SkipField(&in, tag))
      return 0;
  }
  return in.ConsumedEntireMessage() ? found : 0;
}

} // namespace levee::net
