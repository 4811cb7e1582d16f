#include "streams/stream_config.hpp"

#include <algorithm>
#include <cctype>
#include <cinttypes>
#include <cstdio>
#include <iterator>

#include "limits/config_fields.hpp"
#include "limits/printable.hpp"
#include "persistence/crc32c.hpp"

namespace levee::streams {

namespace {

using C = stream_config;
using S = stream_settings;

// One table for the [stream] section, the checks of a stream's config and its catalog
// file: a setting has one name, one range and one unit everywhere.
const field_spec<C> stream_fields[] = {
  {"partitions", &C::partitions, 1, defaults::stream_partitions_ceiling, "partitions"},
  {"max_message_bytes", &C::max_message_bytes, 1, defaults::stream_max_message_bytes_ceiling,
   "bytes"},
  {"retention_max_bytes", &C::retention_max_bytes, 4096, uint64_t{1} << 50, "bytes"},
  {"retention_max_messages", &C::retention_max_messages, 0, uint64_t{1} << 50, "messages"},
  {"retention_max_age_ms", &C::retention_max_age_ms, 0, uint64_t{1} << 50, "ms"},
  {"max_segment_bytes", &C::max_segment_bytes, 4096, 64 * defaults::GiB, "bytes"},
  {"dedupe_window_ms", &C::dedupe_window_ms, 0, 7 * 86'400'000, "ms"},
  {"dedupe_max_entries", &C::dedupe_max_entries, 1, 100'000'000, "ids"},
  {"max_message_id_bytes", &C::max_message_id_bytes, 1, 64 * defaults::KiB, "bytes"},
  {"fsync_interval_ms", &C::fsync_interval_ms, 1, 3'600'000, "ms"},
};

const field_spec<S> settings_fields[] = {
  {"read_max_messages", &S::read_max_messages, 1, 1'000'000, "messages"},
  {"read_max_bytes", &S::read_max_bytes, 1024, 64 * defaults::MiB, "bytes"},
  {"replication_factor", &S::replication_factor, 1, defaults::stream_replication_factor_ceiling,
   "replicas"},
  {"min_insync_replicas", &S::min_insync_replicas, 1, defaults::stream_replication_factor_ceiling,
   "replicas"},
};

// subject_limits' members are not in S itself; read through these.
struct subject_fields {
  uint64_t max_subject_bytes;
  uint64_t max_subject_tokens;
};
const field_spec<subject_fields> subject_field_specs[] = {
  {"max_subject_bytes", &subject_fields::max_subject_bytes, 8, 64 * defaults::KiB, "bytes"},
  {"max_subject_tokens", &subject_fields::max_subject_tokens, 1, 256, "tokens"},
};

const char* const text_keys[] = {"on_full", "compact_by_key", "fsync"};

status bad(const std::string& key, const std::string& value, const std::string& why) {
  return status::error(code::bad_request, key + " = " + value + ": " + why);
}

/// Sets a text setting of `cfg` from `value`; `key` names it in errors.
status read_text_setting(stream_config& cfg, std::string_view name, const std::string& key,
                         const std::string& value) {
  if (name == "on_full") {
    if (value == "drop_oldest")
      cfg.on_full = on_full_policy::drop_oldest;
    else if (value == "reject")
      cfg.on_full = on_full_policy::reject;
    else
      return bad(key, value, "must be drop_oldest or reject");
  } else if (name == "compact_by_key") {
    if (value == "true")
      cfg.compact_by_key = true;
    else if (value == "false")
      cfg.compact_by_key = false;
    else
      return bad(key, value, "must be true or false");
  } else if (name == "fsync") {
    if (value == "every_batch")
      cfg.fsync = persistence::fsync_policy::every_batch;
    else if (value == "interval")
      cfg.fsync = persistence::fsync_policy::interval;
    else if (value == "none")
      cfg.fsync = persistence::fsync_policy::none;
    else
      return bad(key, value, "must be every_batch, interval or none");
  }
  return {};
}

template <class T, size_t N>
const field_spec<T>* find_field(const field_spec<T> (&fields)[N], std::string_view name) {
  for (auto& f : fields)
    if (name == f.name)
      return &f;
  return nullptr;
}

bool is_text_key(std::string_view name) {
  return std::find(std::begin(text_keys), std::end(text_keys), name) != std::end(text_keys);
}

bool is_actor_limit(std::string_view name) {
  auto& keys = actor_limit_keys();
  return std::find(keys.begin(), keys.end(), name) != keys.end();
}

} // namespace

bool operator==(const stream_config& a, const stream_config& b) {
  for (auto& f : stream_fields)
    if (a.*(f.member) != b.*(f.member))
      return false;
  return a.name == b.name && a.subject == b.subject && a.on_full == b.on_full
         && a.compact_by_key == b.compact_by_key && a.fsync == b.fsync && a.limits == b.limits;
}

std::string_view to_string(on_full_policy p) noexcept {
  return p == on_full_policy::reject ? "reject" : "drop_oldest";
}

std::string_view to_string(persistence::fsync_policy p) noexcept {
  switch (p) {
    case persistence::fsync_policy::every_batch: return "every_batch";
    case persistence::fsync_policy::interval: return "interval";
    case persistence::fsync_policy::none: return "none";
  }
  return "every_batch";
}

result<stream_settings> stream_settings_from_config(const flat_config& cfg) {
  stream_settings out;
  subject_fields subjects{out.subjects.max_bytes, out.subjects.max_tokens};
  for (auto& [key, value] : cfg) {
    if (key.rfind("stream.", 0) != 0)
      continue;
    auto name = std::string_view{key}.substr(7);
    if (auto* f = find_field(stream_fields, name)) {
      auto v = parse_quantity(key, value, *f);
      if (!v)
        return v.error();
      out.defaults.*(f->member) = *v;
    } else if (auto* g = find_field(settings_fields, name)) {
      auto v = parse_quantity(key, value, *g);
      if (!v)
        return v.error();
      out.*(g->member) = *v;
    } else if (auto* h = find_field(subject_field_specs, name)) {
      auto v = parse_quantity(key, value, *h);
      if (!v)
        return v.error();
      subjects.*(h->member) = *v;
    } else if (is_text_key(name)) {
      if (auto st = read_text_setting(out.defaults, name, key, value); !st)
        return st;
    } else {
      std::string known;
      for (auto& k : config_keys())
        known += (known.empty() ? "" : ", ") + k.substr(7);
      return status::error(code::bad_request,
                           "unknown key '" + key + "'; known keys in [stream]: " + known);
    }
  }
  if (auto st = check_fields(out, "stream", settings_fields); !st)
    return st;
  if (out.min_insync_replicas > out.replication_factor)
    return bad("stream.min_insync_replicas", std::to_string(out.min_insync_replicas),
               "must be at most stream.replication_factor ("
                 + std::to_string(out.replication_factor)
                 + "): more replicas than exist could never be in sync, and every ack = all "
                   "publish would be refused");
  if (auto st = check_fields(subjects, "stream", subject_field_specs); !st)
    return st;
  out.subjects.max_bytes = subjects.max_subject_bytes;
  out.subjects.max_tokens = subjects.max_subject_tokens;
  if (auto st = check_fields(out.defaults, "stream", stream_fields); !st)
    return st;
  if (out.defaults.max_segment_bytes > out.defaults.retention_max_bytes)
    return bad("stream.max_segment_bytes", std::to_string(out.defaults.max_segment_bytes),
               "must be at most stream.retention_max_bytes ("
                 + std::to_string(out.defaults.retention_max_bytes)
                 + "): retention drops whole segments, so a segment larger than the bound "
                   "could never be dropped");
  return out;
}

std::vector<std::string> config_keys() {
  std::vector<std::string> out;
  append_keys(out, "stream", stream_fields);
  append_keys(out, "stream", settings_fields);
  append_keys(out, "stream", subject_field_specs);
  for (auto* k : text_keys)
    out.push_back(std::string{"stream."} + k);
  return out;
}

status validate_stream_name(std::string_view name) {
  if (name.empty() || name.size() > max_stream_name_bytes)
    return status::error(code::bad_request,
                         "a stream name is 1 to " + std::to_string(max_stream_name_bytes)
                           + " bytes, not " + std::to_string(name.size()));
  for (size_t i = 0; i < name.size(); ++i) {
    auto c = static_cast<unsigned char>(name[i]);
    if (!(std::isalnum(c) != 0 && c < 0x80) && c != '_' && c != '-')
      return status::error(code::bad_request,
                           "stream name '" + printable(name) + "' at position "
                             + std::to_string(i)
                             + ": a stream name is letters, digits, '_' and '-' (it names a "
                               "directory), e.g. orders_eu");
  }
  return {};
}

status validate(const stream_config& cfg, const subject_limits& subjects) {
  if (auto st = validate_stream_name(cfg.name); !st)
    return st;
  auto where = "stream '" + cfg.name + "'";
  if (auto p = subject_pattern::parse(cfg.subject, subjects); !p)
    return status::error(code::bad_request,
                         where + " subject '" + printable(cfg.subject) + "': " + p.error().message());
  // Named as the [stream] keys they default from.
  if (auto st = check_fields(cfg, "stream", stream_fields); !st)
    return status::error(code::bad_request, where + ": " + st.message());
  auto at_most = [&](const char* name, uint64_t value, const char* bound_name, uint64_t bound,
                     const char* why) {
    return status::error(code::bad_request, where + ": " + name + " (" + std::to_string(value)
                                              + ") must be at most " + bound_name + " ("
                                              + std::to_string(bound) + "): " + why);
  };
  if (cfg.max_segment_bytes > cfg.retention_max_bytes)
    return at_most("max_segment_bytes", cfg.max_segment_bytes, "retention_max_bytes",
                   cfg.retention_max_bytes, "retention drops whole segments");
  if (cfg.max_message_bytes > cfg.max_segment_bytes)
    return at_most("max_message_bytes", cfg.max_message_bytes, "max_segment_bytes",
                   cfg.max_segment_bytes, "a message never spans segments");
  for (auto& [name, value] : cfg.limits)
    if (!is_actor_limit(name)) {
      std::string known;
      for (auto& k : actor_limit_keys())
        known += (known.empty() ? "" : ", ") + k;
      return status::error(code::bad_request, where + ": unknown limit '" + printable(name)
                                                + "'; a stream may override: " + known);
    }
  return levee::validate(effective_limits(cfg, actor_limits::defaults()), where + " limits");
}

actor_limits effective_limits(const stream_config& cfg, const actor_limits& kind) {
  // The names are actor_limit_keys(), in the order of actor_limits' members.
  auto out = kind;
  uint64_t* members[] = {&out.mailbox_capacity,   &out.mailbox_capacity_bytes,
                         &out.max_message_bytes,  &out.rate_msgs_per_sec,
                         &out.rate_burst_msgs,    &out.rate_bytes_per_sec,
                         &out.rate_burst_bytes,   &out.max_inflight_per_requester,
                         &out.overload_retry_after_ms};
  auto& names = actor_limit_keys();
  for (size_t i = 0; i < names.size() && i < std::size(members); ++i)
    if (auto at = cfg.limits.find(names[i]); at != cfg.limits.end())
      *members[i] = at->second;
  return out;
}

// -- the catalog file --------------------------------------------------------------------

namespace {

constexpr const char* catalog_first_line =
  "# A Levee stream (streams/README.md \"Catalog file\"). Written by the broker: do not edit,\n"
  "# the checksum on the last line guards every line above it.\n";
constexpr uint64_t catalog_format = 1;

std::string hex32(uint32_t v) {
  char out[16];
  std::snprintf(out, sizeof out, "%08" PRIx32, v);
  return out;
}

} // namespace

std::string encode_catalog_entry(const stream_config& cfg) {
  std::string out = catalog_first_line;
  auto line = [&](std::string_view key, const std::string& value) {
    out.append(key).append(" = ").append(value).append("\n");
  };
  line("format", std::to_string(catalog_format));
  line("name", cfg.name);
  line("subject", cfg.subject);
  for (auto& f : stream_fields)
    line(f.name, std::to_string(cfg.*(f.member)));
  line("on_full", std::string{to_string(cfg.on_full)});
  line("compact_by_key", cfg.compact_by_key ? "true" : "false");
  line("fsync", std::string{to_string(cfg.fsync)});
  for (auto& [name, value] : cfg.limits)
    line("limits." + name, std::to_string(value));
  line("checksum", hex32(persistence::crc32c(0, out.data(), out.size())));
  return out;
}

result<stream_config> decode_catalog_entry(const std::string& text, const std::string& file,
                                           const subject_limits& subjects) {
  const std::string what_to_do =
    ": restore the file from a backup, or delete the stream's directory to drop the stream "
    "(its messages go with it)";
  auto damaged = [&](const std::string& why) {
    return status::error(code::storage_error, file + " is damaged: " + why + what_to_do);
  };
  // The checksum line is the last one; it covers every byte before it.
  auto body_end = text.rfind("\nchecksum = ");
  if (body_end == std::string::npos)
    return damaged("it has no checksum line (cut short?)");
  ++body_end;
  auto sum_text = text.substr(body_end + 11);
  while (!sum_text.empty() && (sum_text.back() == '\n' || sum_text.back() == '\r'))
    sum_text.pop_back();
  auto expected = hex32(persistence::crc32c(0, text.data(), body_end));
  if (sum_text != expected)
    return damaged("its checksum is " + printable(sum_text) + " but its lines sum to " + expected);

  stream_config cfg;
  bool have_format = false, have_name = false, have_subject = false;
  size_t line_no = 0;
  size_t at = 0;
  while (at < body_end) {
    auto end = text.find('\n', at);
    auto line = std::string_view{text}.substr(at, end - at);
    at = end + 1;
    ++line_no;
    if (line.empty() || line[0] == '#')
      continue;
    auto eq = line.find(" = ");
    if (eq == std::string_view::npos)
      return damaged("line " + std::to_string(line_no) + " is not 'key = value'");
    auto key = std::string{line.substr(0, eq)};
    auto value = std::string{line.substr(eq + 3)};
    auto where = "line " + std::to_string(line_no) + ": ";
    if (key == "format") {
      if (value != std::to_string(catalog_format))
        return status::error(code::unsupported_version,
                             file + " " + where + "format " + printable(value)
                               + " is not one this broker reads (1): run the broker version "
                                 "that wrote it");
      have_format = true;
    } else if (key == "name") {
      cfg.name = value;
      have_name = true;
    } else if (key == "subject") {
      cfg.subject = value;
      have_subject = true;
    } else if (auto* f = find_field(stream_fields, key)) {
      auto v = parse_quantity(key, value);
      if (!v)
        return damaged(where + v.error().message());
      cfg.*(f->member) = *v;
    } else if (is_text_key(key)) {
      if (auto st = read_text_setting(cfg, key, key, value); !st)
        return damaged(where + st.message());
    } else if (key.rfind("limits.", 0) == 0) {
      auto v = parse_quantity(key, value);
      if (!v)
        return damaged(where + v.error().message());
      cfg.limits[key.substr(7)] = *v;
    } else {
      return damaged(where + "unknown key '" + printable(key) + "'");
    }
  }
  if (!have_format || !have_name || !have_subject)
    return damaged(std::string{"it lacks the "} + (!have_format ? "format" : !have_name ? "name" : "subject")
                   + " line");
  if (auto st = validate(cfg, subjects); !st)
    return damaged(st.message());
  return cfg;
}

} // namespace levee::streams
