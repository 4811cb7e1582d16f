#include "base/time_text.hpp"

#include <cstdio>

namespace levee::base {

namespace {

constexpr int64_t ms_per_day = 86'400'000;

/// Floor division: days before 1970 belong to the day that starts before them.
constexpr int64_t floor_div(int64_t a, int64_t b) noexcept {
  return a / b - (a % b != 0 && (a < 0) != (b < 0) ? 1 : 0);
}

/// Reads RFC 3339 text left to right; every expectation that fails says what it wanted,
/// where, and what it found.
class rfc3339_reader {
public:
  rfc3339_reader(std::string_view s, std::string& why) : s_(s), why_(why) {}

  /// Exactly `width` digits.
  bool digits(size_t width, int64_t& v, const char* what) {
    v = 0;
    for (size_t k = 0; k < width; ++k, ++pos_) {
      if (pos_ >= s_.size() || s_[pos_] < '0' || s_[pos_] > '9')
        return expected(what);
      v = v * 10 + (s_[pos_] - '0');
    }
    return true;
  }

  bool literal(char c) noexcept {
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  bool require(char c) {
    if (literal(c))
      return true;
    const char quoted[] = {'\'', c, '\'', '\0'};
    return expected(quoted);
  }

  /// `.fraction` if there is one, as milliseconds (digits below the millisecond dropped).
  bool fraction(int64_t& millis) {
    millis = 0;
    if (!literal('.'))
      return true;
    size_t first = pos_;
    for (int64_t scale = 100; pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9'; ++pos_) {
      millis += (s_[pos_] - '0') * scale;
      scale /= 10;
    }
    return pos_ != first || expected("fractional digits");
  }

  bool at(char c) const noexcept { return pos_ < s_.size() && s_[pos_] == c; }
  bool at_end() const noexcept { return pos_ == s_.size(); }
  void skip() noexcept { ++pos_; }

  bool expected(const char* what) {
    std::string found = "the end";
    if (pos_ < s_.size()) {
      auto c = static_cast<unsigned char>(s_[pos_]);
      // A lone byte of a multi-byte character would put invalid UTF-8 in the message.
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02x", c);
      found = c >= 0x20 && c < 0x7F ? "'" + std::string(1, static_cast<char>(c)) + "'"
                                    : std::string{"byte "} + hex;
    }
    why_ = std::string{"expected "} + what + " at position " + std::to_string(pos_) + ", found "
           + found;
    return false;
  }

private:
  std::string_view s_;
  std::string& why_;
  size_t pos_ = 0;
};

bool out_of_range(std::string& why, const char* what, int64_t v, const char* range) {
  why = std::string{what} + " " + std::to_string(v) + " out of range " + range;
  return false;
}

} // namespace

int days_in_month(int64_t year, int month) noexcept {
  static constexpr int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && is_leap_year(year) ? 29 : days[month - 1];
}

int64_t days_from_civil(int64_t year, int month, int day) noexcept {
  // Days before January 1 of `y`, counted from January 1 of year 0 (itself a leap year).
  auto days_before = [](int64_t y) {
    return 365 * y + (y + 3) / 4 - (y + 99) / 100 + (y + 399) / 400;
  };
  static constexpr int before_month[] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
  int64_t day_of_year =
    before_month[month - 1] + (month > 2 && is_leap_year(year) ? 1 : 0) + day - 1;
  return days_before(year) - days_before(1970) + day_of_year;
}

civil_date civil_from_days(int64_t days) noexcept {
  // A year has 365 or 366 days: start from a guess no more than a few years off and step.
  civil_date d;
  d.year = 1970 + floor_div(days, 366);
  while (days_from_civil(d.year + 1, 1, 1) <= days)
    ++d.year;
  while (days_from_civil(d.year, 1, 1) > days)
    --d.year;
  auto left = days - days_from_civil(d.year, 1, 1);
  while (left >= days_in_month(d.year, d.month)) {
    left -= days_in_month(d.year, d.month);
    ++d.month;
  }
  d.day = static_cast<int>(left) + 1;
  return d;
}

bool parse_rfc3339_ms(std::string_view text, int64_t& epoch_ms, std::string& why) {
  rfc3339_reader in{text, why};
  int64_t year, month, day, hour, minute, second, millis;
  if (!(in.digits(4, year, "a 4-digit year") && in.require('-')
        && in.digits(2, month, "a 2-digit month") && in.require('-')
        && in.digits(2, day, "a 2-digit day")))
    return false;
  if (!(in.literal('T') || in.literal('t') || in.literal(' ')))
    return in.expected("'T'");
  if (!(in.digits(2, hour, "a 2-digit hour") && in.require(':')
        && in.digits(2, minute, "2-digit minutes") && in.require(':')
        && in.digits(2, second, "2-digit seconds") && in.fraction(millis)))
    return false;
  int64_t offset_minutes = 0;
  if (in.literal('Z') || in.literal('z')) {
  } else if (in.at('+') || in.at('-')) {
    int64_t sign = in.at('-') ? -1 : 1;
    in.skip();
    int64_t oh, om;
    if (!(in.digits(2, oh, "a 2-digit offset hour") && in.require(':')
          && in.digits(2, om, "2-digit offset minutes")))
      return false;
    if (oh > 23 || om > 59) {
      char shown[16];
      std::snprintf(shown, sizeof shown, "%c%02d:%02d", sign < 0 ? '-' : '+',
                    static_cast<int>(oh), static_cast<int>(om));
      why = std::string{"UTC offset "} + shown + " out of range (at most 23:59)";
      return false;
    }
    offset_minutes = sign * (oh * 60 + om);
  } else {
    return in.expected("a time zone (Z or +hh:mm)");
  }
  if (!in.at_end())
    return in.expected("the end");

  if (year < 1)
    return out_of_range(why, "year", year, "0001-9999");
  if (month < 1 || month > 12)
    return out_of_range(why, "month", month, "1-12");
  int month_days = days_in_month(year, static_cast<int>(month));
  if (day < 1 || day > month_days)
    return out_of_range(why, "day", day, ("1-" + std::to_string(month_days)).c_str());
  if (hour > 23)
    return out_of_range(why, "hour", hour, "0-23");
  if (minute > 59)
    return out_of_range(why, "minute", minute, "0-59");
  if (second > 60)  // 60: a leap second, counted as the next minute's first
    return out_of_range(why, "second", second, "0-60");
  int64_t days = days_from_civil(year, static_cast<int>(month), static_cast<int>(day));
  int64_t seconds = ((days * 24 + hour) * 60 + minute) * 60 + second - offset_minutes * 60;
  epoch_ms = seconds * 1000 + millis;
  return true;
}

std::string format_rfc3339_ms(int64_t epoch_ms, bool always_ms) {
  if (epoch_ms < rfc3339_min_ms || epoch_ms > rfc3339_max_ms)
    return {};
  auto days = floor_div(epoch_ms, ms_per_day);
  auto in_day = epoch_ms - days * ms_per_day;
  auto date = civil_from_days(days);
  auto ms = static_cast<int>(in_day % 1000);
  auto s = static_cast<int>(in_day / 1000);
  char buf[32];
  int n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d",
                        static_cast<int>(date.year), date.month, date.day, s / 3600,
                        s / 60 % 60, s % 60);
  if (ms != 0 || always_ms)
    n += std::snprintf(buf + n, sizeof buf - static_cast<size_t>(n), ".%03d", ms);
  buf[n] = 'Z';
  return std::string(buf, static_cast<size_t>(n) + 1);
}

} // namespace levee::base
