#pragma once
// The process's resident memory, from /proc/self/status (Linux): what the node budget is
// there to protect, reported by `levee demo`, the benchmarks and the flood tests.

#include <cstdint>
#include <string>

namespace levee {

/// Peak resident set size (VmHWM) in bytes; 0 if unknown.
uint64_t peak_rss_bytes();

/// Current resident set size (VmRSS) in bytes; 0 if unknown.
uint64_t current_rss_bytes();

/// Resets the kernel's peak mark to the current RSS, so a later peak_rss_bytes() measures
/// one phase only. Returns false where the kernel does not allow it.
bool reset_peak_rss();

} // namespace levee
