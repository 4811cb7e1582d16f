#include "net/result_batch.hpp"

#include <limits>

#include <google/protobuf/io/coded_stream.h>

#include "net/satellite.pb.h"
#include "net/wire_text.hpp"

namespace levee::net {

std::optional<uint64_t> count_result_rows(std::string_view batch) {
  if (batch.size() > static_cast<size_t>(std::numeric_limits<int>::max()))
    return std::nullopt;  // protobuf reads at most 2 GiB; frames are far smaller
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(batch.data()),
                                            static_cast<int>(batch.size()));
  uint64_t rows = 0;
  while (auto tag = in.ReadTag()) {
    if (wire_field_number(tag) == 0)
      return std::nullopt;
    if (wire_field_number(tag) == static_cast<uint32_t>(wire::ResultBatch::kEventsFieldNumber)
        && wire_type(tag) == wire_length_delimited)
      ++rows;
    if (!skip_wire_field(in, tag))
      return std::nullopt;
  }
  if (!in.ConsumedEntireMessage())
    return std::nullopt;
  return rows;
}

} // namespace levee::net
