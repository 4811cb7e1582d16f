#pragma once
// Times as the query language writes them (QUERY.md "Times"): durations (`15m`) and
// RFC 3339 instants ("2026-11-22T05:00:00Z"). Plain functions, no clock.

#include <cstdint>
#include <string>
#include <string_view>

namespace levee::query {

/// Milliseconds in one duration unit (`ms`, `s`, `m`, `h`, `d`, any case); 0 if unknown.
int64_t duration_unit_ms(std::string_view unit) noexcept;

/// The shortest text for a duration: the largest unit that divides it (900000 -> "15m").
std::string format_duration(int64_t ms);

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)` (RFC 3339; 'T' may also be
/// 't' or a space, 'Z' may be 'z'; seconds up to 60, years 0001-9999) into epoch ms,
/// dropping digits below the millisecond. On failure returns false and says why.
bool parse_rfc3339(std::string_view text, int64_t& epoch_ms, std::string& why);

} // namespace levee::query
