#include "persistence/scrubber.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

#include "persistence/segment_log.hpp"

namespace levee::persistence {

std::string scrub_damage::to_string() const {
  return file + " at byte " + std::to_string(position) + ": " + reason;
}

namespace {

constexpr int64_t no_timestamp = std::numeric_limits<int64_t>::min();

template <class Segments>
auto find_segment(Segments& segments, uint64_t base_offset) {
  auto it = std::lower_bound(segments.begin(), segments.end(), base_offset,
                             [](const auto& s, uint64_t b) { return s.base_offset < b; });
  return it != segments.end() && it->base_offset == base_offset ? it : segments.end();
}

} // namespace

scrub_stats scrubber::stats() const {
  auto out = stats_;
  // Only segments the log still has, as the walk found them (not since rewritten), and
  // closed: retention or a truncation may have removed or reopened one since.
  out.damaged_segments = 0;
  auto& segments = log_.segments_;
  for (auto& [base, generation] : damaged_) {
    auto it = find_segment(segments, base);
    if (it != segments.end() && it->generation == generation && std::next(it) != segments.end())
      ++out.damaged_segments;
  }
  return out;
}

scrub_step scrubber::step(uint64_t max_bytes) {
  scrub_step out;
  auto budget = std::max(max_bytes, scrub_min_step_bytes);
  auto& segments = log_.segments_;
  if (!in_pass_) {
    in_pass_ = true;
    pass_end_base_ = segments.empty() ? 0 : segments.back().base_offset;
    last_base_.reset();
    // What the log no longer has is no longer damaged.
    for (auto it = damaged_.begin(); it != damaged_.end();) {
      auto seg = find_segment(segments, it->first);
      it = seg == segments.end() || seg->generation != it->second ? damaged_.erase(it)
                                                                  : std::next(it);
    }
  }
  while (out.bytes_read < budget) {
    if (!walk_) {
      // The next segment closed before the pass began, after the last one begun.
      auto next = last_base_ ? std::upper_bound(segments.begin(), segments.end(), *last_base_,
                                                [](uint64_t b, const auto& s) {
                                                  return b < s.base_offset;
                                                })
                             : segments.begin();
      if (next == segments.end() || std::next(next) == segments.end()
          || next->base_offset >= pass_end_base_) {
        in_pass_ = false;
        out.pass_done = true;
        ++stats_.passes_completed;
        buffer_.clear();
        buffer_.shrink_to_fit();
        break;
      }
      last_base_ = next->base_offset;
      walk w;
      w.base_offset = next->base_offset;
      w.generation = next->generation;
      w.range_max_ts = no_timestamp;
      w.segment_max_ts = no_timestamp;
      w.next_offset = next->base_offset;
      auto fd = log_.fd_of(*next);
      auto size = fd < 0 ? int64_t{fd} : log_.io_.size(fd);
      walk_ = w;
      if (size < 0) {
        found(0, std::string{"cannot read the segment: "} + std::strerror(static_cast<int>(-size)),
              out);
        continue;
      }
      walk_->file_size = static_cast<uint64_t>(size);
      walk_->limit = std::min<uint64_t>(walk_->file_size, next->size);
    }
    auto seg = find_segment(segments, walk_->base_offset);
    if (seg == segments.end() || seg->generation != walk_->generation
        || std::next(seg) == segments.end()) {
      // Removed by retention, rewritten by compaction, or cut and reopened by truncation.
      ++stats_.segments_skipped;
      walk_.reset();
      continue;
    }
    auto n = walk_some(budget - out.bytes_read, out);
    out.bytes_read += n;
    if (n == 0 && walk_)
      break;  // no progress and the walk goes on: end the step rather than spin
  }
  return out;
}

uint64_t scrubber::walk_some(uint64_t allowance, scrub_step& out) {
  auto& w = *walk_;
  auto seg = find_segment(log_.segments_, w.base_offset);
  if (w.position >= w.limit) {
    if (check_end(out)) {
      ++stats_.segments_verified;
      damaged_.erase(w.base_offset);
      walk_.reset();
    }
    return 0;
  }
  auto fd = log_.fd_of(*seg);
  if (fd < 0) {
    found(w.position, std::string{"cannot read the segment: "} + std::strerror(-fd), out);
    return 0;
  }
  auto want = static_cast<size_t>(std::min<uint64_t>(allowance, w.limit - w.position));
  if (buffer_.size() < want)
    buffer_.resize(want);
  size_t got = 0;
  while (got < want) {
    auto r = log_.io_.pread(fd, buffer_.data() + got, want - got, w.position + got);
    if (r < 0) {
      found(w.position + got,
            std::string{"cannot read the segment: "} + std::strerror(static_cast<int>(-r)), out);
      return got;
    }
    if (r == 0) {
      // The file got shorter since the walk began.
      w.file_size = w.position + got;
      w.limit = std::min(w.limit, w.file_size);
      break;
    }
    got += static_cast<size_t>(r);
  }
  auto data = reinterpret_cast<const uint8_t*>(buffer_.data());
  auto max_batch = log_.opts_.limits.max_batch_bytes;
  size_t p = 0;
  for (;;) {
    if (w.in_batch) {
      auto take = static_cast<size_t>(std::min<uint64_t>(w.payload_left, got - p));
      w.payload.feed(data + p, take);
      p += take;
      w.payload_left -= take;
      if (w.payload_left > 0)
        break;  // the rest comes with the next step
      w.in_batch = false;
      std::string why;
      if (w.payload.verdict(w.header, why) != batch_check::ok) {
        stats_.bytes_verified += p;
        found(w.batch_start, why, out);
        return got;
      }
      continue;
    }
    auto at = w.position + p;
    if (got - p < batch_header_bytes) {
      if (at + (got - p) < w.limit || at == w.limit)
        break;  // a header's start, read whole next time; or the segment's end
      stats_.bytes_verified += p;
      found(at,
            "incomplete batch: " + std::to_string(w.limit - at) + " bytes before the end at byte "
              + std::to_string(w.limit),
            out);
      return got;
    }
    batch_header h;
    std::string why;
    if (check_batch_header(data + p, got - p, max_batch, h, why) != batch_check::ok) {
      stats_.bytes_verified += p;
      found(at, why, out);
      return got;
    }
    if (!check_header(h, at, out)) {
      stats_.bytes_verified += p;
      return got;
    }
    if (at + h.length > w.limit) {
      stats_.bytes_verified += p;
      found(at,
            "incomplete batch: its " + std::to_string(h.length) + " bytes run past the end at byte "
              + std::to_string(w.limit),
            out);
      return got;
    }
    w.in_batch = true;
    w.batch_start = at;
    w.header = h;
    w.payload_left = h.length - batch_header_bytes;
    w.payload = payload_checksum{};
    p += batch_header_bytes;
  }
  w.position += p;
  stats_.bytes_verified += p;
  return got;
}

bool scrubber::check_header(const batch_header& h, uint64_t at, scrub_step& out) {
  auto& w = *walk_;
  auto& seg = *find_segment(log_.segments_, w.base_offset);
  if (h.base_offset != w.next_offset) {
    found(at,
          "batch at offset " + std::to_string(h.base_offset) + " where "
            + std::to_string(w.next_offset) + " was expected",
          out);
    return false;
  }
  // The sparse index: reads start at its entries, offset_for_time and retention trust its
  // timestamps.
  // Entries before `at` were all met: each batch's check below sees that the next entry
  // is at or after its end.
  auto& entries = seg.entries;
  if (w.entry < entries.size() && entries[w.entry].position == at) {
    if (!check_range(out))
      return false;
    if (entries[w.entry].base_offset != h.base_offset) {
      found(at,
            "the index has offset " + std::to_string(entries[w.entry].base_offset)
              + " for the batch at offset " + std::to_string(h.base_offset),
            out);
      return false;
    }
    ++w.entry;
    w.range_max_ts = no_timestamp;
  }
  if (w.entry < entries.size() && entries[w.entry].position < at + h.length) {
    found(entries[w.entry].position,
          "the index has an entry inside a batch (the batch starts at byte " + std::to_string(at)
            + ")",
          out);
    return false;
  }
  w.range_max_ts = std::max(w.range_max_ts, h.max_timestamp_ms);
  w.segment_max_ts = std::max(w.segment_max_ts, h.max_timestamp_ms);
  w.next_offset = h.base_offset + h.offset_count;
  return true;
}

bool scrubber::check_range(scrub_step& out) {
  auto& w = *walk_;
  auto& entries = find_segment(log_.segments_, w.base_offset)->entries;
  if (w.entry == 0 || w.range_max_ts <= entries[w.entry - 1].max_timestamp_ms)
    return true;
  found(entries[w.entry - 1].position,
        "the index says the largest timestamp from here is "
          + std::to_string(entries[w.entry - 1].max_timestamp_ms) + " but a batch holds "
          + std::to_string(w.range_max_ts),
        out);
  return false;
}

bool scrubber::check_end(scrub_step& out) {
  auto& w = *walk_;
  auto seg = find_segment(log_.segments_, w.base_offset);
  auto& entries = seg->entries;
  if (w.file_size < seg->size) {
    found(w.file_size,
          "the file ends at byte " + std::to_string(w.file_size) + " but the segment had "
            + std::to_string(seg->size) + " bytes",
          out);
    return false;
  }
  if (w.file_size > seg->size) {
    found(seg->size,
          std::to_string(w.file_size - seg->size) + " bytes after the segment's last batch",
          out);
    return false;
  }
  auto end_offset = std::next(seg)->base_offset;
  if (w.next_offset != end_offset) {
    found(w.position,
          "the segment ends at offset " + std::to_string(w.next_offset)
            + " but the next one starts at " + std::to_string(end_offset),
          out);
    return false;
  }
  if (w.entry < entries.size()) {
    found(entries[w.entry].position, "the index has an entry past the segment's last batch", out);
    return false;
  }
  if (!check_range(out))
    return false;
  if (w.segment_max_ts > seg->max_timestamp_ms) {
    found(0,
          "the index says the segment's largest timestamp is "
            + std::to_string(seg->max_timestamp_ms) + " but a batch holds "
            + std::to_string(w.segment_max_ts),
          out);
    return false;
  }
  return true;
}

void scrubber::found(uint64_t position, std::string reason, scrub_step& out) {
  auto& w = *walk_;
  auto seg = find_segment(log_.segments_, w.base_offset);
  scrub_damage d{seg->path, w.base_offset, position, std::move(reason)};
  auto known = damaged_.find(w.base_offset);
  if (known == damaged_.end() || known->second != w.generation)
    out.new_damage.push_back(d);
  damaged_[w.base_offset] = w.generation;
  stats_.last_damage = std::move(d);
  ++stats_.segments_verified;
  walk_.reset();
}

} // namespace levee::persistence
