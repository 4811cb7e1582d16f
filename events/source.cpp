#include "events/source.hpp"

#include <cstring>

namespace levee::events {

namespace {

bool blank(std::string_view line) {
  for (char c : line)
    if (c != ' ' && c != '\t' && c != '\r')
      return false;
  return true;
}

// The GNU strerror_r returns the text (maybe not in buf); the XSI one fills buf.
[[maybe_unused]] const char* strerror_text(const char* gnu_result, const char*) { return gnu_result; }
[[maybe_unused]] const char* strerror_text(int, const char* buf) { return buf; }

} // namespace

bool source::take_line(std::string_view line, std::vector<event>& out, int64_t now_ms,
                       const json_limits& limits) {
  if (blank(line))
    return false;
  ++stats_.lines;
  out.emplace_back();
  bad_line_kind kind;
  if (auto st = parse_json_line(line, now_ms, limits, out.back(), &kind); !st) {
    out.pop_back();
    record_bad_line(kind, st.message());
    return false;
  }
  ++stats_.events;
  return true;
}

void source::take_too_long(uint64_t length, const json_limits& limits) {
  ++stats_.lines;
  record_bad_line(bad_line_kind::too_long, "line of " + std::to_string(length)
                                             + " bytes exceeds events.max_line_bytes "
                                             + std::to_string(limits.max_line_bytes));
}

std::string errno_text(int err) {
  char buf[256];
  return strerror_text(strerror_r(err, buf, sizeof buf), buf);
}

} // namespace levee::events
