#pragma once
// CRC32C (Castagnoli), the checksum of every batch in the segment log. crc32c() picks, by
// CPU feature: Intel's ISA-L (Debian libisal-dev, when the build found it; it picks its own
// code by CPU feature, carry-less-multiply folding where there is PCLMULQDQ) for buffers
// of 256 bytes and more; else the SSE4.2 crc32 instruction in three interleaved streams
// (chosen once at start-up, __builtin_cpu_supports); else a table (any CPU). All give the
// same value for the same bytes. The per-path functions are for tests, which check each
// path against the table and the published test vectors.

#include <cstddef>
#include <cstdint>

namespace levee::persistence {

/// Extends `crc` (0 to start) over `n` bytes at `data`.
uint32_t crc32c(uint32_t crc, const void* data, size_t n) noexcept;

/// True when the hardware instruction is in use.
bool crc32c_hardware() noexcept;

/// The table path, on any CPU: the reference the others are checked against.
uint32_t crc32c_portable(uint32_t crc, const void* data, size_t n) noexcept;

/// The SSE4.2 path. Only on a CPU where crc32c_sse42_supported() is true (elsewhere it
/// would fault on an illegal instruction).
uint32_t crc32c_sse42(uint32_t crc, const void* data, size_t n) noexcept;
bool crc32c_sse42_supported() noexcept;

/// ISA-L's crc32_iscsi, when the build has it (crc32c_isal_available()); otherwise the
/// table.
uint32_t crc32c_isal(uint32_t crc, const void* data, size_t n) noexcept;
bool crc32c_isal_available() noexcept;

} // namespace levee::persistence
