#include "query/time_text.hpp"

#include <cctype>

namespace levee::query {
namespace {

constexpr int64_t ms_per_day = 86'400'000;

bool ascii_iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size())
    return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

bool is_leap(int64_t y) noexcept {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int days_in_month(int64_t y, int m) noexcept {
  static constexpr int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

// Days from 0001-01-01 to the given date of the proleptic Gregorian calendar (y >= 1).
int64_t days_since_year_one(int64_t y, int m, int d) noexcept {
  static constexpr int before_month[] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
  int64_t past_years = y - 1;
  int64_t days = past_years * 365 + past_years / 4 - past_years / 100 + past_years / 400;
  days += before_month[m - 1] + (m > 2 && is_leap(y) ? 1 : 0);
  return days + d - 1;
}

// Reads exactly `width` digits at `pos`.
bool digits(std::string_view s, size_t& pos, size_t width, int& out) noexcept {
  if (pos + width > s.size())
    return false;
  int v = 0;
  for (size_t i = 0; i < width; ++i) {
    char c = s[pos + i];
    if (c < '0' || c > '9')
      return false;
    v = v * 10 + (c - '0');
  }
  pos += width;
  out = v;
  return true;
}

bool expect(std::string_view s, size_t& pos, char c) noexcept {
  if (pos < s.size() && s[pos] == c) {
    ++pos;
    return true;
  }
  return false;
}

} // namespace

int64_t duration_unit_ms(std::string_view unit) noexcept {
  if (ascii_iequals(unit, "ms"))
    return 1;
  if (ascii_iequals(unit, "s"))
    return 1000;
  if (ascii_iequals(unit, "m"))
    return 60'000;
  if (ascii_iequals(unit, "h"))
    return 3'600'000;
  if (ascii_iequals(unit, "d"))
    return ms_per_day;
  return 0;
}

std::string format_duration(int64_t ms) {
  if (ms == 0)
    return "0s";
  struct unit { int64_t ms; const char* name; };
  static constexpr unit units[] = {{ms_per_day, "d"}, {3'600'000, "h"}, {60'000, "m"}, {1000, "s"}};
  for (auto& u : units)
    if (ms % u.ms == 0)
      return std::to_string(ms / u.ms) + u.name;
  return std::to_string(ms) + "ms";
}

bool parse_rfc3339(std::string_view s, int64_t& epoch_ms, std::string& why) {
  size_t pos = 0;
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  bool shape = digits(s, pos, 4, year) && expect(s, pos, '-') && digits(s, pos, 2, month)
               && expect(s, pos, '-') && digits(s, pos, 2, day)
               && (expect(s, pos, 'T') || expect(s, pos, 't') || expect(s, pos, ' '))
               && digits(s, pos, 2, hour) && expect(s, pos, ':') && digits(s, pos, 2, minute)
               && expect(s, pos, ':') && digits(s, pos, 2, second);
  if (!shape) {
    why = "expected the form YYYY-MM-DDTHH:MM:SSZ";
    return false;
  }
  int64_t millis = 0;
  if (expect(s, pos, '.')) {
    size_t first = pos;
    int64_t scale = 100;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      millis += (s[pos] - '0') * scale;  // digits below the millisecond add 0
      scale /= 10;
      ++pos;
    }
    if (pos == first) {
      why = "expected digits after '.'";
      return false;
    }
  }
  int64_t offset_minutes = 0;
  if (expect(s, pos, 'Z') || expect(s, pos, 'z')) {
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int sign = s[pos] == '-' ? -1 : 1;
    ++pos;
    int oh = 0, om = 0;
    if (!(digits(s, pos, 2, oh) && expect(s, pos, ':') && digits(s, pos, 2, om))) {
      why = "expected a UTC offset like +02:00";
      return false;
    }
    if (oh > 23 || om > 59) {
      why = "UTC offset out of range";
      return false;
    }
    offset_minutes = sign * (oh * 60 + om);
  } else {
    why = "expected 'Z' or a UTC offset like +02:00 after the time";
    return false;
  }
  if (pos != s.size()) {
    why = "unexpected text after the time";
    return false;
  }
  if (year < 1) {
    why = "year out of range (0001-9999)";
    return false;
  }
  if (month < 1 || month > 12) {
    why = "month out of range";
    return false;
  }
  if (day < 1 || day > days_in_month(year, month)) {
    why = "day out of range for the month";
    return false;
  }
  if (hour > 23 || minute > 59 || second > 60) {
    why = "time of day out of range";
    return false;
  }
  int64_t days = days_since_year_one(year, month, day) - days_since_year_one(1970, 1, 1);
  int64_t seconds = ((days * 24 + hour) * 60 + minute) * 60 + second - offset_minutes * 60;
  epoch_ms = seconds * 1000 + millis;
  return true;
}

} // namespace levee::query
