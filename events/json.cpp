#include "events/json.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

#include "base/time_text.hpp"

namespace levee::events {

namespace {

using njson = nlohmann::json;

// In order of preference: the first one present is the event's time.
constexpr std::array<std::string_view, 4> timestamp_keys{"ts", "timestamp", "time", "@timestamp"};

/// Events carry times from 1970 to the last instant RFC 3339's four-digit years can name.
constexpr int64_t max_timestamp_ms = base::rfc3339_max_ms;

/// Epoch numbers above this are milliseconds (1973-03-03 in ms, year 5138 in seconds).
constexpr double ms_threshold = 1e11;

enum class json_kind : uint8_t { absent, number, string, boolean, null, object, array };

std::string_view kind_name(json_kind k) {
  switch (k) {
    case json_kind::number: return "a number";
    case json_kind::string: return "a string";
    case json_kind::boolean: return "a boolean";
    case json_kind::null: return "null";
    case json_kind::object: return "an object";
    case json_kind::array: return "an array";
    case json_kind::absent: break;
  }
  return "absent";
}

/// At most `n` bytes of `s` for an error message, cut on a UTF-8 character boundary.
std::string excerpt(std::string_view s, size_t n = 40) {
  if (s.size() <= n)
    return std::string{s};
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80)
    --n;
  return std::string{s.substr(0, n)} + "...";
}

void append_int(std::string& out, int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void append_uint(std::string& out, uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

/// Bytes of the well-formed UTF-8 sequence starting `s` (n bytes available), or 0 when the
/// bytes there are not one (stray continuation, overlong, surrogate, above U+10FFFF, cut).
size_t utf8_sequence_bytes(const char* s, size_t n) {
  auto c = static_cast<unsigned char>(s[0]);
  if (c < 0x80)
    return 1;
  size_t len = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0)
      lo = 0xA0;  // overlong
    if (c == 0xED)
      hi = 0x9F;  // UTF-16 surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0)
      lo = 0x90;  // overlong
    if (c == 0xF4)
      hi = 0x8F;  // above U+10FFFF
  }
  if (len == 0 || len > n)
    return 0;
  for (size_t k = 1; k < len; ++k) {
    auto b = static_cast<unsigned char>(s[k]);
    if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF))
      return 0;
  }
  return len;
}

/// nlohmann's message without its "[json.exception...] " and "parse error at line 1,
/// column N: " prefixes (the byte position is given separately and lines are single), cut
/// to a bounded length and made valid UTF-8: it quotes the input ("last read: ...") and
/// ends up in logs, stats and protobuf strings.
std::string clean_parse_message(const char* what) {
  constexpr size_t max_bytes = 200;
  std::string_view m{what};
  if (!m.empty() && m.front() == '[') {
    auto close = m.find("] ");
    if (close != std::string_view::npos)
      m.remove_prefix(close + 2);
  }
  constexpr std::string_view at = "parse error at ";
  if (m.substr(0, at.size()) == at) {
    auto colon = m.find(": ");
    if (colon != std::string_view::npos)
      m.remove_prefix(colon + 2);
  }
  std::string out;
  size_t i = 0;
  while (i < m.size()) {
    size_t len = utf8_sequence_bytes(m.data() + i, m.size() - i);
    if (out.size() + std::max<size_t>(len, 1) > max_bytes) {
      out += "...";
      break;
    }
    if (len == 0) {
      out += '?';
      ++i;
    } else {
      out.append(m.data() + i, len);
      i += len;
    }
  }
  return out;
}

/// Builds the event while nlohmann's SAX parser reads the line: no DOM, limits checked
/// as soon as they are crossed, and `out`'s fields reused in place.
class event_builder {
public:
  event_builder(event& out, const json_limits& limits) : out_(out), limits_(limits) {}

  // -- nlohmann's SAX interface ---------------------------------------------------------

  bool null() {
    if (capturing()) {
      separator();
      text_ += "null";
      return true;
    }
    return put(value{}, json_kind::null);
  }

  bool boolean(bool v) {
    if (capturing()) {
      separator();
      text_ += v ? "true" : "false";
      return true;
    }
    return put(value{v}, json_kind::boolean);
  }

  bool number_integer(njson::number_integer_t v) {
    if (capturing()) {
      separator();
      append_int(text_, v);
      return true;
    }
    return put(value{static_cast<int64_t>(v)}, json_kind::number);
  }

  bool number_unsigned(njson::number_unsigned_t v) {
    if (capturing()) {
      separator();
      append_uint(text_, v);
      return true;
    }
    if (v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      return put(value{static_cast<int64_t>(v)}, json_kind::number);
    return put(value{static_cast<double>(v)}, json_kind::number);
  }

  bool number_float(njson::number_float_t v, const njson::string_t&) {
    if (capturing()) {
      separator();
      append_json_double(text_, v);
      return true;
    }
    return put(value{static_cast<double>(v)}, json_kind::number);
  }

  bool string(njson::string_t& v) {
    if (capturing()) {
      separator();
      append_json_string(text_, v);
      return true;
    }
    return put(value{std::move(v)}, json_kind::string);
  }

  bool binary(njson::binary_t&) { return true; }  // CBOR and friends only; never in JSON

  bool start_object(std::size_t) {
    if (depth_ == 0) {
      depth_ = 1;
      return true;
    }
    if (!capturing())
      note_timestamp_kind(json_kind::object);
    if (!enter())
      return false;
    if (capturing()) {
      separator();
      text_ += '{';
      comma_.push_back(false);
      return true;
    }
    path_lengths_.push_back(path_.size());
    path_ = name_;
    path_ += '.';
    return true;
  }

  bool end_object() {
    --depth_;
    if (capturing()) {
      text_ += '}';
      comma_.pop_back();
    } else if (!path_lengths_.empty()) {
      path_.resize(path_lengths_.back());
      path_lengths_.pop_back();
    }
    return true;
  }

  bool start_array(std::size_t) {
    if (depth_ == 0)
      return fail(bad_line_kind::not_an_object, "not a JSON object: the line is an array");
    if (!capturing())
      note_timestamp_kind(json_kind::array);
    if (!enter())
      return false;
    if (capturing()) {
      separator();
    } else {
      capture_depth_ = depth_;
      capture_name_.swap(name_);
      text_.clear();
      comma_.clear();
    }
    text_ += '[';
    comma_.push_back(false);
    return true;
  }

  bool end_array() {
    text_ += ']';
    comma_.pop_back();
    if (depth_-- == capture_depth_) {
      capture_depth_ = 0;
      return add_field(capture_name_, value{text_});
    }
    return true;
  }

  bool key(njson::string_t& k) {
    if (capturing()) {
      separator();
      append_json_string(text_, k);
      text_ += ':';
      after_key_ = true;
      return true;
    }
    name_.assign(path_);
    name_ += k;
    if (name_.size() > limits_.max_field_name_bytes)
      return fail(bad_line_kind::field_name_too_long,
                  "field name of " + std::to_string(name_.size())
                    + " bytes exceeds events.max_field_name_bytes "
                    + std::to_string(limits_.max_field_name_bytes) + ": '" + excerpt(name_) + "'");
    candidate_ = -1;
    if (depth_ == 1)
      for (size_t i = 0; i < timestamp_keys.size(); ++i)
        if (k == timestamp_keys[i])
          candidate_ = static_cast<int>(i);
    return true;
  }

  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& ex) {
    return fail(bad_line_kind::invalid_json, "invalid JSON at byte " + std::to_string(position)
                                               + ": " + clean_parse_message(ex.what()));
  }

  // -- after the parse --------------------------------------------------------------------

  /// Drops the fields of a previous use of `out` that this line did not overwrite, and
  /// moves the timestamp out of the fields.
  status finish(int64_t now_ms) {
    out_.fields.resize(used_);
    out_.timestamp_ms = now_ms;
    for (size_t i = 0; i < timestamp_keys.size(); ++i) {
      if (ts_kinds_[i] == json_kind::absent)
        continue;
      auto key = timestamp_keys[i];
      if (ts_kinds_[i] != json_kind::number && ts_kinds_[i] != json_kind::string) {
        kind_ = bad_line_kind::bad_timestamp;
        return status::error(code::bad_request,
                             "timestamp '" + std::string{key} + "' is " + std::string{kind_name(ts_kinds_[i])}
                               + "; expected epoch seconds or ms, or an RFC 3339 string");
      }
      auto it = out_.fields.begin();
      while (it != out_.fields.end() && it->name != key)
        ++it;
      if (it == out_.fields.end())
        break;  // cannot happen: a number or string under the key made this field
      auto ms = timestamp_of(key, it->val);
      if (!ms) {
        kind_ = bad_line_kind::bad_timestamp;
        return ms.error();
      }
      out_.timestamp_ms = *ms;
      out_.fields.erase(it);
      break;
    }
    return {};
  }

  const status& error() const { return error_; }
  bad_line_kind kind() const { return kind_; }

private:
  bool capturing() const { return capture_depth_ != 0; }

  /// One level deeper, within max_depth.
  bool enter() {
    if (static_cast<uint64_t>(depth_) + 1 > limits_.max_depth)
      return fail(bad_line_kind::too_deep,
                  "field '" + excerpt(capturing() ? capture_name_ : name_)
                    + "' nests deeper than events.max_depth " + std::to_string(limits_.max_depth));
    ++depth_;
    return true;
  }

  /// The comma before a value or key inside a captured array or its objects.
  void separator() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (comma_.back())
      text_ += ',';
    comma_.back() = true;
  }

  void note_timestamp_kind(json_kind k) {
    if (depth_ == 1 && candidate_ >= 0)
      ts_kinds_[static_cast<size_t>(candidate_)] = k;
  }

  bool put(value&& v, json_kind k) {
    if (depth_ == 0)
      return fail(bad_line_kind::not_an_object,
                  "not a JSON object: the line is " + std::string{kind_name(k)});
    note_timestamp_kind(k);
    return add_field(name_, std::move(v));
  }

  /// A repeated name (`{"a":1,"a":2}`, or `{"a.b":1,"a":{"b":2}}`) keeps the last value,
  /// as JavaScript and nlohmann's DOM do.
  bool add_field(const std::string& name, value&& v) {
    for (size_t i = 0; i < used_; ++i)
      if (out_.fields[i].name == name) {
        out_.fields[i].val = std::move(v);
        return true;
      }
    if (used_ >= limits_.max_fields)
      return fail(bad_line_kind::too_many_fields,
                  "more than " + std::to_string(limits_.max_fields)
                    + " fields exceeds events.max_fields " + std::to_string(limits_.max_fields)
                    + " (at field '" + excerpt(name) + "')");
    if (used_ < out_.fields.size()) {
      out_.fields[used_].name.assign(name);
      out_.fields[used_].val = std::move(v);
    } else {
      out_.fields.push_back(field{name, std::move(v)});
    }
    ++used_;
    return true;
  }

  bool fail(bad_line_kind k, std::string message) {
    kind_ = k;
    error_ = status::error(code::bad_request, std::move(message));
    return false;
  }

  static result<int64_t> timestamp_of(std::string_view key, const value& v) {
    auto out_of_range = [&](const std::string& shown) {
      return status::error(code::bad_request,
                           "timestamp '" + std::string{key} + "' = " + shown
                             + ": out of range (1970-01-01 to 9999-12-31)");
    };
    if (auto* i = std::get_if<int64_t>(&v)) {
      int64_t ms = *i;
      if (ms >= -static_cast<int64_t>(ms_threshold) && ms <= static_cast<int64_t>(ms_threshold))
        ms *= 1000;
      if (ms < 0 || ms > max_timestamp_ms)
        return out_of_range(std::to_string(*i));
      return ms;
    }
    if (auto* d = std::get_if<double>(&v)) {
      double ms = std::fabs(*d) > ms_threshold ? *d : *d * 1000.0;
      if (!(ms >= 0.0 && ms <= static_cast<double>(max_timestamp_ms))) {
        std::string shown;
        append_json_double(shown, *d);
        return out_of_range(shown);
      }
      return static_cast<int64_t>(std::llround(ms));
    }
    auto& text = std::get<std::string>(v);
    auto ms = parse_rfc3339_ms(text);
    if (!ms) {
      std::string shown;
      append_json_string(shown, excerpt(text));
      return status::error(code::bad_request, "timestamp '" + std::string{key} + "' = " + shown
                                                + ": " + ms.error().message());
    }
    return ms;
  }

  event& out_;
  const json_limits& limits_;
  size_t used_ = 0;                 // fields of out_ written by this line
  int depth_ = 0;                   // open objects and arrays
  std::string path_;                // the prefix of keys at this level: "http.request."
  std::vector<size_t> path_lengths_;
  std::string name_;                // the flat name of the value about to arrive
  int capture_depth_ = 0;           // depth of the outermost open array; 0 = none
  std::string capture_name_;
  std::string text_;                // the compact JSON of the array being captured
  std::vector<bool> comma_;         // per open container in the capture: a comma is due
  bool after_key_ = false;
  int candidate_ = -1;              // index in timestamp_keys of the current top-level key
  std::array<json_kind, timestamp_keys.size()> ts_kinds_{};
  status error_;
  bad_line_kind kind_ = bad_line_kind::invalid_json;
};

} // namespace

bool operator==(const json_limits& a, const json_limits& b) {
  return a.max_line_bytes == b.max_line_bytes && a.max_fields == b.max_fields
         && a.max_depth == b.max_depth && a.max_field_name_bytes == b.max_field_name_bytes;
}

status validate(const json_limits& limits, const std::string& prefix) {
  struct rule {
    const char* key;
    uint64_t value;
    uint64_t ceiling;
    const char* unit;
  };
  const rule rules[] = {
    {"max_line_bytes", limits.max_line_bytes, defaults::max_line_bytes_ceiling, "bytes"},
    {"max_fields", limits.max_fields, defaults::max_fields_ceiling, "fields"},
    {"max_depth", limits.max_depth, defaults::max_depth_ceiling, "levels"},
    {"max_field_name_bytes", limits.max_field_name_bytes,
     defaults::max_field_name_bytes_ceiling, "bytes"},
  };
  for (auto& r : rules)
    if (r.value < 1 || r.value > r.ceiling)
      return status::error(code::bad_request, prefix + "." + r.key + " = " + std::to_string(r.value)
                                                + ": must be between 1 and "
                                                + std::to_string(r.ceiling) + " " + r.unit);
  return {};
}

std::string_view to_string(bad_line_kind kind) noexcept {
  switch (kind) {
    case bad_line_kind::too_long: return "too_long";
    case bad_line_kind::invalid_json: return "invalid_json";
    case bad_line_kind::not_an_object: return "not_an_object";
    case bad_line_kind::too_many_fields: return "too_many_fields";
    case bad_line_kind::too_deep: return "too_deep";
    case bad_line_kind::field_name_too_long: return "field_name_too_long";
    case bad_line_kind::bad_timestamp: return "bad_timestamp";
  }
  return "unknown";
}

status parse_json_line(std::string_view line, int64_t now_ms, const json_limits& limits,
                       event& out, bad_line_kind* kind) {
  if (line.size() > limits.max_line_bytes) {
    if (kind != nullptr)
      *kind = bad_line_kind::too_long;
    return status::error(code::bad_request, "line of " + std::to_string(line.size())
                                              + " bytes exceeds events.max_line_bytes "
                                              + std::to_string(limits.max_line_bytes));
  }
  event_builder builder{out, limits};
  // strict: trailing bytes after the object are an error; no comments.
  bool parsed = njson::sax_parse(line.begin(), line.end(), &builder, njson::input_format_t::json,
                                 /*strict=*/true, /*ignore_comments=*/false);
  status st;
  if (!parsed)
    st = builder.error().ok()
           ? status::error(code::bad_request, "invalid JSON") : builder.error();
  else
    st = builder.finish(now_ms);
  if (!st) {
    out.fields.clear();
    if (kind != nullptr)
      *kind = builder.kind();
  }
  return st;
}

result<event> parse_json_line(std::string_view line, int64_t now_ms, const json_limits& limits) {
  event e;
  if (auto st = parse_json_line(line, now_ms, limits, e); !st)
    return st;
  return e;
}

void append_json_double(std::string& out, double v) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  std::string_view text{buf, static_cast<size_t>(r.ptr - buf)};
  out += text;
  if (text.find_first_of(".e") == std::string_view::npos)
    out += ".0";  // so that 100.0 reads back as a double, not as the integer 100
}

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out += '"';
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    // Runs of plain ASCII go in one append.
    size_t run = i;
    while (run < n) {
      auto c = static_cast<unsigned char>(s[run]);
      if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80)
        break;
      ++run;
    }
    out.append(s.data() + i, run - i);
    i = run;
    if (i == n)
      break;
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out += '\\';
      switch (c) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '\n': out += 'n'; break;
        case '\r': out += 'r'; break;
        case '\t': out += 't'; break;
        case '\b': out += 'b'; break;
        case '\f': out += 'f'; break;
        default:
          out += "u00";
          out += hex[c >> 4];
          out += hex[c & 0xF];
      }
      ++i;
      continue;
    }
    // A multi-byte UTF-8 sequence: well-formed ones are copied, anything else is U+FFFD.
    size_t len = utf8_sequence_bytes(s.data() + i, n - i);
    if (len != 0) {
      out.append(s.data() + i, len);
      i += len;
    } else {
      out += "\\ufffd";
      ++i;
    }
  }
  out += '"';
}

std::string to_json(const event& e) {
  std::string out;
  out.reserve(32 + e.fields.size() * 24);
  out += "{\"ts\":";
  append_int(out, e.timestamp_ms);
  for (auto& f : e.fields) {
    if (f.name == "ts")
      continue;
    out += ',';
    append_json_string(out, f.name);
    out += ':';
    std::visit(
      [&out](auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::monostate>)
          out += "null";
        else if constexpr (std::is_same_v<T, bool>)
          out += v ? "true" : "false";
        else if constexpr (std::is_same_v<T, int64_t>)
          append_int(out, v);
        else if constexpr (std::is_same_v<T, double>)
          append_json_double(out, v);
        else
          append_json_string(out, v);
      },
      f.val);
  }
  out += '}';
  return out;
}

result<int64_t> parse_rfc3339_ms(std::string_view text) {
  int64_t ms = 0;
  std::string why;
  if (!base::parse_rfc3339_ms(text, ms, why))
    return status::error(code::bad_request, "not RFC 3339 (like 2026-11-22T05:00:00Z): " + why);
  if (ms < 0 || ms > max_timestamp_ms)
    return status::error(code::bad_request, "out of range (1970-01-01 to 9999-12-31)");
  return ms;
}

} // namespace levee::events
