#include "persistence/source_positions.hpp"

#include "base/codec.hpp"
#include "limits/defaults.hpp"
#include "persistence/checkpoint.hpp"
#include "persistence/segment_log.hpp"

namespace levee::persistence {

namespace {

constexpr uint8_t header_version = 1;
constexpr uint8_t flag_mid_line = 0x01;

} // namespace

bool operator==(const file_position& a, const file_position& b) {
  return a.device == b.device && a.inode == b.inode && a.offset == b.offset
         && a.fingerprint == b.fingerprint && a.fingerprint_bytes == b.fingerprint_bytes
         && a.mid_line == b.mid_line;
}

std::string encode_file_position(const file_position& pos) {
  std::string out;
  out.reserve(file_position_bytes);
  base::put_u64_le(out, pos.device);
  base::put_u64_le(out, pos.inode);
  base::put_u64_le(out, pos.offset);
  base::put_u32_le(out, pos.fingerprint);
  base::put_u32_le(out, pos.fingerprint_bytes);
  out.push_back(static_cast<char>(pos.mid_line ? flag_mid_line : 0));
  return out;
}

bool decode_file_position(std::string_view bytes, file_position& pos) {
  if (bytes.size() != file_position_bytes)
    return false;
  auto flags = static_cast<uint8_t>(bytes[32]);
  if ((flags & ~flag_mid_line) != 0)
    return false;
  pos.device = base::get_u64_le(bytes.data());
  pos.inode = base::get_u64_le(bytes.data() + 8);
  pos.offset = base::get_u64_le(bytes.data() + 16);
  pos.fingerprint = base::get_u32_le(bytes.data() + 24);
  pos.fingerprint_bytes = base::get_u32_le(bytes.data() + 28);
  pos.mid_line = (flags & flag_mid_line) != 0;
  return true;
}

std::string position_header_value(std::string_view source, std::string_view encoded_position) {
  std::string out;
  out.reserve(1 + base::varint_size(source.size()) + source.size() + encoded_position.size());
  out.push_back(static_cast<char>(header_version));
  base::put_varint(out, source.size());
  out.append(source);
  out.append(encoded_position);
  return out;
}

bool parse_position_header(std::string_view value, std::string& source, file_position& pos) {
  if (value.empty() || static_cast<uint8_t>(value[0]) != header_version)
    return false;
  uint64_t len = 0;
  size_t at = 1;
  if (!base::get_varint(value, at, len))
    return false;
  if (len > value.size() - at || value.size() - at - len != file_position_bytes)
    return false;
  source.assign(value.substr(at, len));
  return decode_file_position(value.substr(at + len), pos);
}

result<position_recovery> recover_positions(const segment_log& log, const std::string& hint_path) {
  position_recovery out;
  auto start = log.start_offset();
  auto end = log.next_offset();
  auto hint = read_position_hint(hint_path);
  if (hint && hint->log_offset <= end) {
    out.hint_used = true;
    out.positions = std::move(hint->positions);
    out.hint_behind_log_start = hint->log_offset < start;
    out.scanned_from = std::max(hint->log_offset, start);
  } else {
    out.scanned_from = start;
    if (hint)
      out.whole_log_because = "the position hint " + hint_path + " covers the log up to offset "
                              + std::to_string(hint->log_offset) + ", past its end at "
                              + std::to_string(end) + " (its tail was cut)";
    else if (hint.error().code() != code::not_found)
      out.whole_log_because = hint.error().message();
    else if (end > start)
      out.whole_log_because = "there is no position hint " + hint_path;
  }
  std::string name;
  file_position pos;
  for (auto from = out.scanned_from; from < end;) {
    auto next = log.visit(from, defaults::log_read_chunk_bytes, [&](const record_view& r) {
      for (auto& [header, value] : r.headers)
        if (header == position_header_name && parse_position_header(value, name, pos)) {
          out.positions[name] = pos;  // later batches hold later positions
          ++out.headers_found;
        }
      return true;
    });
    if (!next)
      return status::error(next.error().code(),
                           "reading source positions from the store: " + next.error().message());
    if (*next <= from)
      break;
    from = *next;
  }
  return out;
}

} // namespace levee::persistence
