// The sparse index: entries kept in memory for every segment, and the `.index` file a
// closed segment gets so that the next open need not read it (FORMAT.md "Index files").

#include <algorithm>

#include "base/codec.hpp"
#include "persistence/crc32c.hpp"
#include "persistence/segment_log.hpp"
#include "persistence/segment_log_internal.hpp"

namespace levee::persistence {

using detail::io_error;

namespace {

constexpr uint32_t index_magic = 0x5849564Cu;  // "LVIX"
constexpr uint32_t index_version = 1;
constexpr size_t index_header_bytes = 48;
constexpr size_t index_entry_bytes = 24;

} // namespace

void segment_log::note_batch(segment& seg, uint64_t base_offset, uint64_t position,
                             int64_t max_ts) const {
  if (seg.entries.empty() || position - seg.entries.back().position >= opts_.index_interval_bytes)
    seg.entries.push_back(index_entry{base_offset, position, max_ts});
  else
    seg.entries.back().max_timestamp_ms = std::max(seg.entries.back().max_timestamp_ms, max_ts);
  seg.max_timestamp_ms = std::max(seg.max_timestamp_ms, max_ts);
}

uint64_t segment_log::start_position(const segment& seg, uint64_t offset) const noexcept {
  auto e = std::upper_bound(seg.entries.begin(), seg.entries.end(), offset,
                            [](uint64_t o, const index_entry& x) { return o < x.base_offset; });
  return e == seg.entries.begin() ? 0 : (e - 1)->position;
}

std::string segment_log::index_path(const segment& seg) const {
  auto p = seg.path;
  return p.substr(0, p.size() - 4) + ".index";
}

status segment_log::write_index(const segment& seg, uint64_t end_offset) {
  // Header: magic, version, base offset, segment size, end offset, max timestamp, entry
  // count; entries: (first offset, position, max timestamp of the range); CRC32C.
  std::string out;
  base::put_u32_le(out, index_magic);
  base::put_u32_le(out, index_version);
  base::put_u64_le(out, seg.base_offset);
  base::put_u64_le(out, seg.size);
  base::put_u64_le(out, end_offset);
  base::put_u64_le(out, static_cast<uint64_t>(seg.max_timestamp_ms));
  base::put_u32_le(out, static_cast<uint32_t>(seg.entries.size()));
  base::put_u32_le(out, 0);
  for (auto& e : seg.entries) {
    base::put_u64_le(out, e.base_offset);
    base::put_u64_le(out, e.position);
    base::put_u64_le(out, static_cast<uint64_t>(e.max_timestamp_ms));
  }
  base::put_u32_le(out, crc32c(0, out.data(), out.size()));
  auto path = index_path(seg);
  auto tmp = path + ".tmp";
  // Under fsync none nothing else on the roll is synced either, and an index only speeds
  // up the next open: a crash may leave it empty, partly written or missing, which
  // load_index tells (size, magic, CRC32C over all of it, the segment's size) and recovery
  // then rebuilds it from the segment. Syncing it cost 1-19 ms per roll on ext4 (a
  // journal commit), several percent of the append rate.
  auto sync = opts_.fsync == fsync_policy::none ? detail::file_sync::no : detail::file_sync::yes;
  if (auto st = detail::write_whole_file(io_, tmp, out, sync); !st)
    return st;
  if (auto err = io_.rename(tmp, path); err != 0) {
    io_.unlink(tmp);
    return io_error("cannot write the index", path, err);
  }
  return {};
}

bool segment_log::load_index(segment& seg, uint64_t& end_offset) const {
  int fd = io_.open(index_path(seg), false);
  if (fd < 0)
    return false;
  auto size = io_.size(fd);
  std::string in;
  bool ok = size >= static_cast<int64_t>(index_header_bytes + 4);
  if (ok) {
    in.resize(static_cast<size_t>(size));
    ok = detail::read_all_at(io_, fd, 0, in.data(), in.size()) == 0;
  }
  io_.close(fd);
  auto field = [&in](size_t at) { return in.data() + at; };
  if (!ok || base::get_u32_le(field(0)) != index_magic
      || base::get_u32_le(field(4)) != index_version
      || crc32c(0, in.data(), in.size() - 4) != base::get_u32_le(field(in.size() - 4)))
    return false;
  auto count = base::get_u32_le(field(40));
  if (in.size() != index_header_bytes + count * index_entry_bytes + 4)
    return false;
  auto seg_fd = fd_of(seg);
  auto file_size = seg_fd < 0 ? int64_t{-1} : io_.size(seg_fd);
  if (base::get_u64_le(field(8)) != seg.base_offset || file_size < 0
      || base::get_u64_le(field(16)) != static_cast<uint64_t>(file_size))
    return false;  // stale: the segment changed after the index was written
  seg.size = static_cast<uint64_t>(file_size);
  end_offset = base::get_u64_le(field(24));
  seg.max_timestamp_ms = static_cast<int64_t>(base::get_u64_le(field(32)));
  seg.entries.clear();
  uint64_t previous_position = 0;
  for (uint64_t i = 0; i < count; ++i) {
    auto at = index_header_bytes + i * index_entry_bytes;
    index_entry e{base::get_u64_le(field(at)), base::get_u64_le(field(at + 8)),
                  static_cast<int64_t>(base::get_u64_le(field(at + 16)))};
    // Entries must lie inside the segment, in order: otherwise the index is not used.
    if (e.base_offset < seg.base_offset || e.base_offset >= end_offset
        || e.position >= seg.size || (i > 0 && e.position <= previous_position)
        || (i == 0 && e.position != 0))
      return false;
    previous_position = e.position;
    seg.entries.push_back(e);
  }
  return end_offset >= seg.base_offset;
}

} // namespace levee::persistence
