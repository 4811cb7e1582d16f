#pragma once
// JSON lines -> events, and events -> JSON text. The rules (flattening, arrays, numbers,
// the timestamp keys, every reason a line is refused) are in EVENTS.md.

#include <cstdint>
#include <string>
#include <string_view>

#include "events/defaults.hpp"
#include "events/event.hpp"
#include "limits/status.hpp"

namespace levee::events {

/// The bounds on one JSON line. Config keys are `<prefix>.<member>` (prefix "events").
struct json_limits {
  uint64_t max_line_bytes = defaults::max_line_bytes;              // bytes, newline excluded
  uint64_t max_fields = defaults::max_fields;                      // fields after flattening
  uint64_t max_depth = defaults::max_depth;                        // nesting, top level = 1
  uint64_t max_field_name_bytes = defaults::max_field_name_bytes;  // bytes of a flat name
};

bool operator==(const json_limits& a, const json_limits& b);

/// Each value in range; the error names the key (`events.max_depth = 0: must be ...`).
status validate(const json_limits& limits, const std::string& prefix = "events");

/// Why a line was refused; sources count bad lines by kind. Numbers are stable.
enum class bad_line_kind : uint8_t {
  too_long = 0,             // over max_line_bytes
  invalid_json = 1,         // syntax, truncation, invalid UTF-8, number overflow
  not_an_object = 2,        // the top level is an array, a string, a number...
  too_many_fields = 3,      // over max_fields
  too_deep = 4,             // over max_depth
  field_name_too_long = 5,  // over max_field_name_bytes
  bad_timestamp = 6,        // a timestamp key holds something that is not a time
};
constexpr size_t bad_line_kind_count = 7;

/// "too_long", "invalid_json", ...
std::string_view to_string(bad_line_kind kind) noexcept;

/// Parses one line (without its newline) into `out`, reusing `out`'s storage. A refused
/// line is `bad_request` with a reason saying what and where, `*kind` (if given) says which
/// rule, and `out` holds nothing useful. `now_ms` is the timestamp of a line that has none.
status parse_json_line(std::string_view line, int64_t now_ms, const json_limits& limits,
                       event& out, bad_line_kind* kind = nullptr);

/// The same, returning a fresh event.
result<event> parse_json_line(std::string_view line, int64_t now_ms, const json_limits& limits);

/// One compact JSON object: `ts` (epoch ms) first, then the fields in order. Always valid
/// JSON: invalid UTF-8 becomes U+FFFD and non-finite doubles become null. A field named
/// `ts` is not written (the name is the timestamp's; parse_json_line never makes one).
/// parse_json_line(to_json(e)) == e for every event it produced whose ts is after 1973
/// (smaller epoch-ms numbers read back as seconds).
std::string to_json(const event& e);

/// Appends `text` as a JSON string literal (quotes included), with the same UTF-8 repair.
void append_json_string(std::string& out, std::string_view text);

/// Appends a double as JSON: shortest text that reads back to the same value, always with
/// a '.' or an exponent so it reads back as a double; null when not finite.
void append_json_double(std::string& out, double v);

/// Epoch ms of an RFC 3339 time ("2026-11-22T05:00:00.250+01:00") from 1970 to 9999, the
/// range of an event's timestamp, or a bad_request saying what is wrong (the text is read
/// by base::parse_rfc3339_ms).
result<int64_t> parse_rfc3339_ms(std::string_view text);

} // namespace levee::events
