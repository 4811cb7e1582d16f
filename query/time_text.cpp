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

} // namespace levee::query
