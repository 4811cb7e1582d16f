// partition_log's replica side (partition_log.hpp "Replicas"): copies of a leader's
// batches, leader epochs, truncation and the replicated high-water mark, with their
// checkpoint files beside the segments (README.md "Replicas").

#include <algorithm>

#include "streams/partition_log.hpp"

namespace levee::streams {

namespace {

std::string epochs_path(const std::string& dir) { return dir + "/leader-epochs"; }
std::string high_water_path(const std::string& dir) { return dir + "/high-water"; }

} // namespace

status partition_log::load_replication_state() {
  auto epochs = persistence::read_leader_epochs(epochs_path(opts_.dir));
  if (epochs) {
    epochs_ = std::move(*epochs);
  } else if (epochs.error().code() != code::not_found) {
    return epochs.error();
  }
  // An epoch that starts past the end (its messages were never written, or a crash under
  // fsync none lost them) covers nothing: the next begin_epoch or note_epoch decides.
  auto end = log_->next_offset();
  while (!epochs_.empty() && epochs_.back().second > end)
    epochs_.pop_back();
  auto hw = persistence::read_high_water(high_water_path(opts_.dir));
  if (hw) {
    replicated_high_water_ = std::min(*hw, end);
    checkpointed_high_water_ = *hw;
  } else if (hw.error().code() != code::not_found) {
    return hw.error();
  }
  return {};
}

result<uint64_t> partition_log::read_copy(uint64_t from, uint64_t max_bytes,
                                          std::string& out) const {
  if (from < log_->start_offset())
    return status::error(code::not_found,
                         where() + " no longer holds offset " + std::to_string(from)
                           + ": it starts at " + std::to_string(log_->start_offset()));
  return log_->read_batches(from, max_bytes, out);
}

status partition_log::append_copy(std::string_view batches) {
  auto from = log_->next_offset();
  auto appended = log_->append_batches(batches);
  // What was written before a bad batch stays, and is learned below either way.
  auto end = log_->next_offset();
  auto at = from;
  while (at < end) {
    auto after = log_->visit(at, defaults::log_read_chunk_bytes, [&](const persistence::record_view& r) {
      last_timestamp_ms_ = std::max(last_timestamp_ms_, r.timestamp_ms);
      ++stats_.appended;
      if (window_.enabled())
        for (auto& [name, value] : r.headers)
          if (name == id_header && !value.empty())
            window_.insert(value, r.offset, r.timestamp_ms);
      return true;
    });
    if (!after)
      return after.error();
    if (*after <= at)
      break;
    at = *after;
  }
  if (!appended)
    return appended.error();
  return after_append();
}

status partition_log::enable_replication() {
  if (replicated_high_water_)
    return {};
  replicated_high_water_ = high_water();
  return checkpoint_high_water();
}

void partition_log::set_high_water(uint64_t hw) noexcept {
  if (!replicated_high_water_)
    return;
  hw = std::min(hw, log_->next_offset());
  replicated_high_water_ = std::max(*replicated_high_water_, hw);
}

status partition_log::checkpoint_high_water() {
  if (!replicated_high_water_ || *replicated_high_water_ == checkpointed_high_water_)
    return {};
  auto hw = *replicated_high_water_;
  if (auto st = persistence::write_high_water(high_water_path(opts_.dir), hw); !st)
    return st;
  checkpointed_high_water_ = hw;
  return {};
}

status partition_log::write_epochs() {
  return persistence::write_leader_epochs(epochs_path(opts_.dir), epochs_);
}

status partition_log::add_epoch(uint64_t epoch, uint64_t start_offset) {
  if (!epochs_.empty() && epochs_.back().first >= epoch)
    return {};
  if (!epochs_.empty() && start_offset < epochs_.back().second)
    return status::error(code::storage_error,
                         where() + ": leader epoch " + std::to_string(epoch) + " would start at "
                           + std::to_string(start_offset) + ", before epoch "
                           + std::to_string(epochs_.back().first) + " at "
                           + std::to_string(epochs_.back().second));
  auto before = epochs_;
  // An epoch that wrote nothing covers no offset: the newer one replaces it.
  while (!epochs_.empty() && epochs_.back().second == start_offset)
    epochs_.pop_back();
  epochs_.emplace_back(epoch, start_offset);
  if (auto st = write_epochs(); !st) {
    epochs_ = std::move(before);
    return st;
  }
  return {};
}

status partition_log::begin_epoch(uint64_t epoch) { return add_epoch(epoch, log_->next_offset()); }

status partition_log::note_epoch(uint64_t epoch, uint64_t start_offset) {
  return add_epoch(epoch, start_offset);
}

partition_log::epoch_end partition_log::end_offset_for_epoch(uint64_t epoch) const {
  epoch_end out;
  if (epochs_.empty() || epoch > epochs_.back().first) {
    out.undefined = true;
    return out;
  }
  if (epoch == epochs_.back().first) {
    out.epoch = epoch;
    out.end_offset = log_->next_offset();
    return out;
  }
  // The first epoch newer than `epoch` ends it; the one before that (if any) is the
  // largest not newer. Older than every epoch here: it ended where the first began.
  auto higher = std::upper_bound(epochs_.begin(), epochs_.end(), epoch,
                                 [](uint64_t e, const persistence::epoch_entry& x) { return e < x.first; });
  out.end_offset = higher->second;
  out.epoch = higher == epochs_.begin() ? epoch : std::prev(higher)->first;
  return out;
}

status partition_log::truncate_to(uint64_t offset) {
  if (offset >= log_->next_offset())
    return {};
  if (auto st = log_->truncate_to(offset); !st)
    return st;
  durable_end_ = std::min(durable_end_, log_->next_offset());
  if (replicated_high_water_ && *replicated_high_water_ > offset) {
    replicated_high_water_ = offset;
    if (auto st = checkpoint_high_water(); !st)
      return st;
  }
  bool cut = false;
  while (!epochs_.empty() && epochs_.back().second >= offset) {
    epochs_.pop_back();
    cut = true;
  }
  if (cut)
    if (auto st = write_epochs(); !st)
      return st;
  window_.clear();
  return rebuild_window();
}

} // namespace levee::streams
