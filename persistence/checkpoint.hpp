#pragma once
// Checkpoint files: the high-water mark and the leader-epoch list ((epoch, start offset)
// pairs) of a replicated stream, and a satellite store's source-position hint. Written atomically — a temporary file, fsync, rename over
// the old one, fsync the directory — so after a crash either the old or the new
// checkpoint is there, whole. Each file carries a CRC32C; a damaged one is a
// storage_error, never a wrong value. Layout in FORMAT.md.

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "limits/status.hpp"
#include "persistence/source_positions.hpp"

namespace levee::persistence {

using epoch_entry = std::pair<uint64_t, uint64_t>;  // (leader epoch, start offset)

status write_high_water(const std::string& path, uint64_t high_water);
/// not_found when there is no checkpoint yet.
result<uint64_t> read_high_water(const std::string& path);

status write_leader_epochs(const std::string& path, const std::vector<epoch_entry>& epochs);
/// not_found when there is no checkpoint yet.
result<std::vector<epoch_entry>> read_leader_epochs(const std::string& path);

/// Every file-reading source's position as of `log_offset`: the log's batches before it
/// hold no newer position than these (source_positions.hpp). Recovery starts from it and
/// reads only the batches from `log_offset` on.
struct position_hint {
  uint64_t log_offset = 0;
  std::map<std::string, file_position> positions;  // by source name
};

/// bad_request (nothing written) when it would be over log_position_hint_max_bytes.
status write_position_hint(const std::string& path, const position_hint& hint);
/// not_found when there is none yet; any damage is a storage_error.
result<position_hint> read_position_hint(const std::string& path);

} // namespace levee::persistence
