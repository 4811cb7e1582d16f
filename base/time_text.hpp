#pragma once
// RFC 3339 instants ("2026-11-22T05:00:00.250+01:00") and the calendar arithmetic under
// them: the one parser behind the query language's time literals and the timestamps of
// JSON events, and the printer for showing an instant to people. Proleptic Gregorian
// calendar, UTC, milliseconds since 1970-01-01T00:00:00Z; no clock, no time zone data.

#include <cstdint>
#include <string>
#include <string_view>

namespace levee::base {

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z: the instants RFC 3339's four-digit
/// years can name, in epoch ms.
constexpr int64_t rfc3339_min_ms = -62'135'596'800'000;
constexpr int64_t rfc3339_max_ms = 253'402'300'799'999;

constexpr bool is_leap_year(int64_t year) noexcept {
  return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

/// 28 to 31; `month` is 1 to 12.
int days_in_month(int64_t year, int month) noexcept;

/// Days from 1970-01-01 to `year`-`month`-`day` (negative before it); year >= 0, month
/// 1-12, day 1-31.
int64_t days_from_civil(int64_t year, int month, int day) noexcept;

struct civil_date {
  int64_t year = 1970;
  int month = 1;  // 1-12
  int day = 1;    // 1-31
};

/// The date `days` after 1970-01-01 (before it when negative); the inverse of
/// days_from_civil within years 0001-9999.
civil_date civil_from_days(int64_t days) noexcept;

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)` into epoch ms. 'T' may also be
/// 't' or a space and 'Z' may be 'z' (RFC 3339 section 5.6 allows both); years 0001-9999;
/// second 60 (a leap second) counts as the next minute's first; digits below the
/// millisecond are dropped. On failure returns false and sets `why` to what is wrong and
/// where ("expected ':' at position 16, found 'Z'", "day 30 out of range 1-28").
bool parse_rfc3339_ms(std::string_view text, int64_t& epoch_ms, std::string& why);

/// `YYYY-MM-DDTHH:MM:SSZ`, with `.mmm` before the Z when the milliseconds are not 0: the
/// shortest text parse_rfc3339_ms reads back to `epoch_ms`; with `always_ms`, `.mmm` even
/// when they are 0, so every text has one width (log lines). Empty when `epoch_ms` is
/// outside [rfc3339_min_ms, rfc3339_max_ms], which RFC 3339 cannot write.
std::string format_rfc3339_ms(int64_t epoch_ms, bool always_ms = false);

} // namespace levee::base
