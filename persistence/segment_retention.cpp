// Retention: whole segments, oldest first, by total bytes, records kept or age.

#include <limits>

#include "persistence/segment_log.hpp"
#include "persistence/segment_log_internal.hpp"

namespace levee::persistence {

using detail::io_error;

result<size_t> segment_log::apply_retention(const retention& policy, int64_t now_ms) {
  size_t removed = 0;
  while (segments_.size() > 1) {
    auto& oldest = segments_.front();
    auto next_base = segments_[1].base_offset;
    int64_t newest = oldest.max_timestamp_ms;
    bool over_bytes = policy.max_bytes != 0 && size_bytes() > policy.max_bytes;
    // Removing the oldest segment must leave at least max_messages records if that many
    // exist: only remove while what remains after it is still over the limit.
    bool over_messages = policy.max_messages != 0
                         && next_offset_ - oldest.base_offset > policy.max_messages
                         && next_offset_ - next_base >= policy.max_messages;
    bool too_old = policy.max_age_ms != 0 && newest != std::numeric_limits<int64_t>::min()
                   && now_ms - newest > policy.max_age_ms;
    if (over_messages || over_bytes || too_old) {
      remove_segment_files(oldest);
      if (auto err = io_.unlink(oldest.path); err != 0)
        return io_error("cannot remove segment", oldest.path, err);
      segments_.erase(segments_.begin());
      ++removed;
      continue;
    }
    break;
  }
  if (removed > 0) {
    cache_.clear();  // what it holds of the removed segments is never read again
    io_.sync_dir(opts_.dir);
  }
  return removed;
}

} // namespace levee::persistence
