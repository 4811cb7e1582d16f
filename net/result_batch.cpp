#include "net/result_batch.hpp"

#include <limits>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

#include "net/satellite.pb.h"

namespace levee::net {

std::optional<uint64_t> count_result_rows(std::string_view batch) {
  using google::protobuf::internal::WireFormatLite;
  if (batch.size() > static_cast<size_t>(std::numeric_limits<int>::max()))
    return std::nullopt;  // protobuf reads at most 2 GiB; frames are far smaller
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(batch.data()),
                                            static_cast<int>(batch.size()));
  uint64_t rows = 0;
  while (auto tag = in.ReadTag()) {
    if (WireFormatLite::GetTagFieldNumber(tag) == 0)
      return std::nullopt;
    if (WireFormatLite::GetTagFieldNumber(tag) == wire::ResultBatch::kEventsFieldNumber
        && WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED)
      ++rows;
    if (!WireFormatLite::SkipField(&in, tag))
      return std::nullopt;
  }
  if (!in.ConsumedEntireMessage())
    return std::nullopt;
  return rows;
}

} // namespace levee::net
