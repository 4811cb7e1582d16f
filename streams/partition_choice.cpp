#include "streams/partition_choice.hpp"

#include <string>

namespace levee::streams {

uint64_t key_hash(std::string_view key) noexcept {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : key) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

uint32_t partition_for_key(std::string_view key, uint32_t partitions) noexcept {
  return static_cast<uint32_t>(key_hash(key) % partitions);
}

result<uint32_t> choose_partition(std::string_view stream, uint32_t partitions,
                                  std::optional<uint32_t> named, std::string_view key,
                                  uint64_t& turn) {
  if (named) {
    if (*named < partitions)
      return *named;
    return status::error(code::not_found,
                         "stream '" + std::string{stream} + "' has no partition "
                           + std::to_string(*named) + ": its partitions are 0 to "
                           + std::to_string(partitions - 1)
                           + "; name one of those, or none to choose by key");
  }
  if (!key.empty())
    return partition_for_key(key, partitions);
  return static_cast<uint32_t>(turn++ % partitions);
}

} // namespace levee::streams
