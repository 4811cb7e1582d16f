#pragma once
// Checkpoint files: the high-water mark and the leader-epoch list ((epoch, start offset)
// pairs) of a replicated stream. Written atomically — a temporary file, fsync, rename over
// the old one, fsync the directory — so after a crash either the old or the new
// checkpoint is there, whole. Each file carries a CRC32C; a damaged one is a
// storage_error, never a wrong value. Layout in FORMAT.md.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "limits/status.hpp"

namespace levee::persistence {

using epoch_entry = std::pair<uint64_t, uint64_t>;  // (leader epoch, start offset)

status write_high_water(const std::string& path, uint64_t high_water);
/// not_found when there is no checkpoint yet.
result<uint64_t> read_high_water(const std::string& path);

status write_leader_epochs(const std::string& path, const std::vector<epoch_entry>& epochs);
/// not_found when there is no checkpoint yet.
result<std::vector<epoch_entry>> read_leader_epochs(const std::string& path);

} // namespace levee::persistence
