#pragma once
// Verified batches kept in memory for the reads that come back to them: a dashboard
// polling the same recent minutes, a point query asked again. A hit costs no pread, no
// copy out of the page cache and no CRC (the batch was verified when it was read).
//
// A batch is kept the second time it is offered: a scan that reads the log once copies
// nothing and evicts nothing. Bounded in bytes (least recently used goes first); a batch
// over a quarter of the bound is never kept. One reader at a time, like the log it
// serves.

#include <cstdint>
#include <list>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "persistence/batch.hpp"

namespace levee::persistence {

class batch_cache {
public:
  explicit batch_cache(uint64_t max_bytes) : max_bytes_(max_bytes) {}

  struct entry {
    uint64_t segment = 0;   // the segment's base offset
    uint64_t position = 0;  // the batch's byte position in it
    batch_header header;
    std::string bytes;      // the whole batch, header included
  };

  /// The batch at `position` of the segment based at `segment`, or nullptr. A hit
  /// becomes the most recently used; the entry stays valid until the next offer() or
  /// clear().
  const entry* find(uint64_t segment, uint64_t position);

  /// A batch just read and verified: kept if it was offered before (see above).
  void offer(uint64_t segment, uint64_t position, const batch_header& h, const uint8_t* data);

  /// Forgets everything (the log removed or rewrote segments).
  void clear();

  bool enabled() const noexcept { return max_bytes_ > 0; }
  uint64_t bytes() const noexcept { return bytes_; }
  size_t size() const noexcept { return index_.size(); }
  uint64_t hits() const noexcept { return hits_; }
  uint64_t misses() const noexcept { return misses_; }

private:
  struct key {
    uint64_t segment;
    uint64_t position;
    bool operator==(const key& o) const noexcept {
      return segment == o.segment && position == o.position;
    }
  };
  struct key_hash {
    size_t operator()(const key& k) const noexcept {
      return std::hash<uint64_t>{}(k.segment * 0x9e3779b97f4a7c15ull ^ k.position);
    }
  };
  /// Batches offered once and not kept yet; forgotten all at once when this many.
  static constexpr size_t max_seen = 16384;

  uint64_t max_bytes_;
  uint64_t bytes_ = 0;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
  std::list<entry> lru_;  // most recently used first
  std::unordered_map<key, std::list<entry>::iterator, key_hash> index_;
  std::unordered_set<key, key_hash> seen_;
};

} // namespace levee::persistence
