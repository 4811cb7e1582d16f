#pragma once
// Every limit and default of the events library, with its unit and why (as in
// limits/defaults.hpp). Ceilings are the largest values `validate()` accepts.
// tests/events_test.cpp pins these values: change one on purpose only.

#include <cstdint>

namespace levee::events::defaults {

constexpr uint64_t KiB = 1024;
constexpr uint64_t MiB = 1024 * KiB;

// -- one JSON line: events.* --------------------------------------------------------------

/// bytes in one line, newline excluded. 64 KiB holds any sane log line with a stack trace;
/// it is also the bound of every partial-line buffer, per file and per client.
constexpr uint64_t max_line_bytes = 64 * KiB;
constexpr uint64_t max_line_bytes_ceiling = 16 * MiB;
/// fields of one event after flattening. 256 is far above real events and keeps the
/// linear field lookups (duplicate names, queries) cheap.
constexpr uint64_t max_fields = 256;
constexpr uint64_t max_fields_ceiling = 65'536;
/// levels of nested objects and arrays, the top-level object counting as 1. Deeper JSON is
/// a dump, not an event, and its flattened names would be unreadable.
constexpr uint64_t max_depth = 8;
constexpr uint64_t max_depth_ceiling = 64;
/// bytes of one flattened field name ("http.request.method"). Names are repeated in every
/// stored event, so long ones cost storage on every row.
constexpr uint64_t max_field_name_bytes = 256;
constexpr uint64_t max_field_name_bytes_ceiling = 64 * KiB;

// -- every reader -------------------------------------------------------------------------

/// bytes asked of the kernel in one read of a file. One page-cache friendly chunk.
constexpr uint64_t file_read_chunk_bytes = 64 * KiB;
/// bytes asked of the kernel in one read of a socket client. Smaller than a file's: the
/// buffer of each of max_connections clients may grow to max_line_bytes + this.
constexpr uint64_t socket_read_chunk_bytes = 16 * KiB;
constexpr uint64_t read_chunk_bytes_ceiling = 16 * MiB;
/// bytes one poll may read from its source, so a poll stays short (a few ms of parsing)
/// even when every line is bad and no event bounds it.
constexpr uint64_t max_read_bytes_per_poll = 4 * MiB;
constexpr uint64_t max_read_bytes_per_poll_ceiling = 1024 * MiB;

// -- file_tail: events.file_tail.* -------------------------------------------------------

/// bytes at the start of a tailed file whose CRC32C is stored with its position, so that
/// a restarted satellite tells the same file from another that got its inode. 1 KiB holds
/// the first lines, which differ between files by their timestamps.
constexpr uint64_t fingerprint_bytes = 1 * KiB;
constexpr uint64_t fingerprint_bytes_ceiling = 64 * KiB;
/// directory entries looked at, at a restart, for the file the path named before it was
/// rotated away (rotated files sit beside the path): a huge directory cannot hold up the
/// start; past it the file counts as gone.
constexpr uint64_t rotated_search_max_entries = 100'000;

// -- unix_socket_source: events.unix_socket.* --------------------------------------------

/// clients connected at once; more are accepted, told why and closed. Each may hold up to
/// max_line_bytes + socket_read_chunk_bytes of buffered input.
constexpr uint64_t max_connections = 64;
constexpr uint64_t max_connections_ceiling = 4096;
/// connections taken from the backlog in one poll, so a connect flood cannot starve reads.
constexpr uint64_t max_accepts_per_poll = 64;
/// permissions of the socket file: the owner and its group may write events.
constexpr uint32_t socket_mode = 0660;

// -- proc_metrics: events.proc.* ----------------------------------------------------------

/// ms between two polls of /proc, for the actor that drives the reader. 10 s is the usual
/// resolution of host dashboards and costs nothing.
constexpr uint64_t proc_interval_ms = 10'000;
constexpr uint64_t proc_interval_ms_min = 100;
constexpr uint64_t proc_interval_ms_ceiling = 3'600'000;

// -- synthetic: events.synthetic.* -------------------------------------------------------

/// events/s.
constexpr uint64_t synthetic_rate_per_sec = 1'000;
constexpr uint64_t synthetic_rate_per_sec_ceiling = 10'000'000;
/// events one poll may make up for after a late poll; 0 = one second's worth.
constexpr uint64_t synthetic_burst_events = 0;
/// distinct values of the `user` field.
constexpr uint64_t synthetic_users = 100;
constexpr uint64_t synthetic_users_ceiling = 10'000'000;
/// bytes of the `msg` field. The ceiling keeps a generated event within a default line.
constexpr uint64_t synthetic_msg_bytes = 64;
constexpr uint64_t synthetic_msg_bytes_ceiling = 60 * KiB;
/// entries in the weighted list of levels.
constexpr uint64_t synthetic_max_levels = 64;
/// ms: the mean of the exponentially distributed `latency_ms` field.
constexpr uint64_t synthetic_latency_mean_ms = 50;
constexpr uint64_t synthetic_latency_mean_ms_ceiling = 3'600'000;

} // namespace levee::events::defaults
