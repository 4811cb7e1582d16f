// Recovery on open: every segment found, closed ones from their index when it is sound,
// every other batch verified; a torn tail cut, other damage reported or cut away
// (corruption_policy). FORMAT.md "Recovery when a log opens".

#include <algorithm>
#include <filesystem>
#include <limits>

#include "persistence/batch_reader.hpp"
#include "persistence/segment_log.hpp"
#include "persistence/segment_log_internal.hpp"

namespace levee::persistence {

namespace fs = std::filesystem;
using detail::io_error;
using detail::segment_path;

status segment_log::recover(recovery_report& report) {
  std::vector<uint64_t> bases;
  for (auto& entry : fs::directory_iterator(opts_.dir)) {
    auto name = entry.path().filename().string();
    if (name.size() == 32 && name.substr(24) == ".cleaned") {
      // Compaction stopped before its rename: the original segment is intact.
      io_.unlink(entry.path().string());
      continue;
    }
    if (name.size() != 24 || name.substr(20) != ".log"
        || !std::all_of(name.begin(), name.begin() + 20, ::isdigit))
      continue;
    bases.push_back(std::stoull(name.substr(0, 20)));
    std::error_code ec;
    total_bytes_ += entry.file_size(ec);
  }
  std::sort(bases.begin(), bases.end());
  for (size_t i = 0; i < bases.size(); ++i) {
    segment seg;
    seg.base_offset = bases[i];
    seg.path = segment_path(opts_.dir, bases[i]);
    if (!segments_.empty() && seg.base_offset != next_offset_) {
      if (opts_.on_corruption != corruption_policy::truncate)
        return status::error(code::storage_error,
                             "segment " + seg.path + " starts at offset "
                               + std::to_string(seg.base_offset) + " but the previous one ends at "
                               + std::to_string(next_offset_)
                               + ": a segment is missing; to open the log without it and "
                                 "everything after it: corruption policy truncate");
      report.truncated_file = seg.path;
      report.truncated_reason = "a segment is missing before it";
      if (auto st = remove_from(bases, i, report); !st)
        return st;
      break;
    }
    next_offset_ = seg.base_offset;
    seg.generation = ++generations_;
    segments_.push_back(std::move(seg));
    auto& added = segments_.back();
    bool is_last = i + 1 == bases.size();
    uint64_t end_offset = 0;
    if (!is_last && load_index(added, end_offset)) {
      // A closed segment with a sound index is not read now; it is verified batch by
      // batch when it is read.
      next_offset_ = end_offset;
      ++report.segments_from_index;
      scanned_bytes_ += added.size;
    } else {
      bool cut = false;
      if (auto st = scan(added, is_last, next_offset_, report, cut); !st)
        return st;
      if (cut) {
        // Repaired damage: this segment now ends the log; later ones go.
        io_.unlink(index_path(added));
        if (auto st = remove_from(bases, i + 1, report); !st)
          return st;
        ++report.segments;
        break;
      }
      if (!is_last) {
        ++report.indexes_rebuilt;
        if (auto st = write_index(added, next_offset_); !st)
          return st;
      }
    }
    ++report.segments;
  }
  if (opts_.on_progress)
    opts_.on_progress(scanned_bytes_, total_bytes_);
  if (segments_.empty())
    return roll(0);
  // The segment written next must be open (a repair may have made a closed one the last).
  // Its age (for max_segment_age_ms) counts from now: when it was created is not recorded.
  active_since_ms_ = now_ms();
  auto& last = segments_.back();
  if (report.repaired)
    io_.unlink(index_path(last));
  if (auto fd = fd_of(last); fd < 0)
    return io_error("cannot open segment", last.path, fd);
  return {};
}

status segment_log::remove_from(const std::vector<uint64_t>& bases, size_t from,
                                recovery_report& report) {
  report.repaired = true;
  report.repaired_from_offset = next_offset_;
  for (size_t j = from; j < bases.size(); ++j) {
    segment gone;
    gone.base_offset = bases[j];
    gone.path = segment_path(opts_.dir, bases[j]);
    std::error_code ec;
    report.repaired_bytes_removed += fs::file_size(gone.path, ec);
    io_.unlink(index_path(gone));
    if (auto err = io_.unlink(gone.path); err != 0)
      return io_error("cannot remove segment", gone.path, err);
    ++report.repaired_segments_removed;
  }
  if (auto err = io_.sync_dir(opts_.dir); err != 0)
    return io_error("cannot sync the directory", opts_.dir, err);
  return {};
}

status segment_log::scan(segment& seg, bool is_last, uint64_t& next, recovery_report& report,
                         bool& cut) {
  cut = false;
  auto fd = fd_of(seg);
  if (fd < 0)
    return io_error("cannot open segment", seg.path, fd);
  auto size = io_.size(fd);
  if (size < 0)
    return io_error("cannot stat segment", seg.path, static_cast<int>(size));
  auto file_size = static_cast<uint64_t>(size);
  seg.entries.clear();
  seg.max_timestamp_ms = std::numeric_limits<int64_t>::min();
  batch_reader reader{io_, fd, 0, file_size, opts_.limits.max_batch_bytes,
                      defaults::log_read_chunk_bytes};
  while (!reader.at_end()) {
    auto pos = reader.position();
    batch_header h;
    const uint8_t* data = nullptr;
    std::string why;
    int err = 0;
    auto verdict = reader.peek(h, data, why, err);
    if (err != 0)
      return io_error("cannot read segment", seg.path, err);
    // What a crash during the last append can leave: a batch cut short, or (on file
    // systems that allocate before they write) a last batch or header of zeros. Anything
    // else is damage, and an error.
    bool torn = false;
    if (verdict == batch_check::incomplete) {
      torn = true;
      why = "incomplete last batch";
    } else if (verdict == batch_check::corrupt_body) {
      torn = pos + h.length == file_size;
    } else if (verdict == batch_check::corrupt_header) {
      batch_reader rest{io_, fd, pos, file_size, opts_.limits.max_batch_bytes,
                        defaults::log_read_chunk_bytes};
      torn = rest.zeros_to_end(err);
      if (err != 0)
        return io_error("cannot read segment", seg.path, err);
    }
    if (verdict == batch_check::ok && h.base_offset != next) {
      verdict = batch_check::corrupt_header;
      why = "batch at offset " + std::to_string(h.base_offset) + " where "
            + std::to_string(next) + " was expected";
      torn = false;
    }
    if (verdict != batch_check::ok) {
      bool repair = opts_.on_corruption == corruption_policy::truncate;
      if ((!is_last || !torn) && !repair)
        return status::error(code::storage_error,
                             "corrupt log: " + seg.path + " at byte " + std::to_string(pos)
                               + ": " + why
                               + "; to open it, cut the log there: corruption policy truncate");
      cut = !is_last || !torn;
      if (auto e = io_.ftruncate(fd, pos); e != 0)
        return io_error("cannot truncate the torn tail of", seg.path, e);
      if (auto e = io_.fdatasync(fd); e != 0)
        return io_error("cannot sync", seg.path, e);
      if (cut) {
        report.repaired = true;
        report.repaired_from_offset = next;
        report.repaired_bytes_removed += file_size - pos;
      }
      report.truncated_bytes += file_size - pos;
      report.truncated_file = seg.path;
      report.truncated_reason = why;
      file_size = pos;
      break;
    }
    note_batch(seg, h.base_offset, pos, h.max_timestamp_ms);
    scanned_bytes_ += h.length;
    if (opts_.on_progress && scanned_bytes_ >= next_progress_) {
      opts_.on_progress(scanned_bytes_, total_bytes_);
      next_progress_ = scanned_bytes_ + (64ull << 20);
    }
    next = h.base_offset + h.offset_count;
    ++report.batches;
    report.records += h.offset_count;
    reader.advance(h.length);
  }
  seg.size = file_size;
  return {};
}

} // namespace levee::persistence
