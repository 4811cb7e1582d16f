#pragma once
// Durations as the query language writes them (QUERY.md "Times"): `15m`, `2h`, `500ms`.
// Plain functions, no clock. RFC 3339 instants ("2026-11-22T05:00:00Z") are read by
// base/time_text.hpp, which JSON events share.

#include <cstdint>
#include <string>
#include <string_view>

namespace levee::query {

/// Milliseconds in one duration unit (`ms`, `s`, `m`, `h`, `d`, any case); 0 if unknown.
int64_t duration_unit_ms(std::string_view unit) noexcept;

/// The shortest text for a duration: the largest unit that divides it (900000 -> "15m").
std::string format_duration(int64_t ms);

} // namespace levee::query
