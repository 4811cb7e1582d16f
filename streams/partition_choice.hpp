#pragma once
// Which partition of a stream a publish goes to (README.md "Partitions"): the one it
// names, else the one its key hashes to, else the next in turn.
//
// The key hash is 64-bit FNV-1a over the key's bytes (offset basis 0xcbf29ce484222325,
// prime 0x100000001b3), taken modulo the partition count. It depends on nothing but the
// bytes (no seed, no byte order, no library version), so a key lands on the same
// partition across restarts, machines and builds as long as the partition count stays.

#include <cstdint>
#include <optional>
#include <string_view>

#include "limits/status.hpp"

namespace levee::streams {

/// FNV-1a 64 of `key` (test vectors in tests/streams_subject_test.cpp).
uint64_t key_hash(std::string_view key) noexcept;

/// key_hash(key) % partitions; `partitions` must be at least 1.
uint32_t partition_for_key(std::string_view key, uint32_t partitions) noexcept;

/// The partition for a publish to `stream` with `partitions` partitions: `named` when
/// given (not_found naming the range when it is not below `partitions`), else the key's
/// when `key` is not empty, else `turn` modulo `partitions` (the caller's round-robin
/// counter, which this advances).
result<uint32_t> choose_partition(std::string_view stream, uint32_t partitions,
                                  std::optional<uint32_t> named, std::string_view key,
                                  uint64_t& turn);

} // namespace levee::streams
