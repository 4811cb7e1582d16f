#pragma once
// CRC32C (Castagnoli), the checksum of every batch in the segment log. Uses the SSE4.2
// crc32 instruction (8 bytes per step) when the CPU has it, and a table otherwise.

#include <cstddef>
#include <cstdint>

namespace levee::persistence {

/// Extends `crc` (0 to start) over `n` bytes at `data`.
uint32_t crc32c(uint32_t crc, const void* data, size_t n) noexcept;

/// True when the hardware instruction is in use.
bool crc32c_hardware() noexcept;

} // namespace levee::persistence
