// Reading a satellite's config: [satellite], [events] and [source.<name>] sections.

#include <optional>
#include <set>

#include "base/host_port.hpp"
#include "limits/config_fields.hpp"
#include "limits/printable.hpp"
#include "satellite/satellite.hpp"

namespace levee::satellite {

namespace {

using S = satellite_options;

const field_spec<S> satellite_fields[] = {
  {"max_concurrent_queries", &S::max_concurrent_queries, 1, 4096, "queries"},
  {"batch_max_rows", &S::batch_max_rows, 1, 1'000'000, "rows"},
  {"batch_max_bytes", &S::batch_max_bytes, 1024, 64 * defaults::MiB, "bytes"},
  {"scan_step_bytes", &S::scan_step_bytes, 4096, 1 * defaults::GiB, "bytes"},
  {"read_cache_bytes", &S::read_cache_bytes, 0, 64 * defaults::GiB, "bytes"},
  {"connect_timeout_ms", &S::connect_timeout_ms, 100, 600'000, "ms"},
  {"heartbeat_interval_ms", &S::heartbeat_interval_ms, 0, 3'600'000, "ms"},
  {"heartbeat_jitter_pct", &S::heartbeat_jitter_pct, 0,
   defaults::satellite_heartbeat_jitter_pct_ceiling, "percent"},
  {"poll_interval_ms", &S::poll_interval_ms, 1, 3'600'000, "ms"},
  {"poll_max_events", &S::poll_max_events, 1, 1'000'000, "events"},
  {"retention_interval_ms", &S::retention_interval_ms, 10, 86'400'000, "ms"},
  {"retention_max_bytes", &S::retention_max_bytes, 0, 1ull << 50, "bytes"},
  {"retention_max_age_ms", &S::retention_max_age_ms, 0, 1ull << 50, "ms"},
  {"retention_max_events", &S::retention_max_events, 0, 1ull << 50, "events"},
  {"max_segment_bytes", &S::max_segment_bytes, 4096, 64 * defaults::GiB, "bytes"},
  {"max_segment_age_ms", &S::max_segment_age_ms, 0, 1ull << 50, "ms"},
  {"fsync_interval_ms", &S::fsync_interval_ms, 1, 3'600'000, "ms"},
  {"scrub_bytes_per_sec", &S::scrub_bytes_per_sec, 0, 64 * defaults::GiB, "bytes/s"},
  {"scrub_interval_ms", &S::scrub_interval_ms, 10, 1ull << 40, "ms"},
};

using J = events::json_limits;
const field_spec<J> json_fields[] = {
  {"max_line_bytes", &J::max_line_bytes, 1, 1ull << 40, "bytes"},
  {"max_fields", &J::max_fields, 1, 1ull << 40, "fields"},
  {"max_depth", &J::max_depth, 1, 1ull << 40, "levels"},
  {"max_field_name_bytes", &J::max_field_name_bytes, 1, 1ull << 40, "bytes"},
};

status bad(const std::string& key, const std::string& value, const std::string& why) {
  return status::error(code::bad_request, key + " = " + value + ": " + why);
}

/// A value the server and people read (an id, a label): UTF-8, or the server would refuse
/// the registration (PROTOCOL.md "Text fields").
status require_text(const std::string& key, const std::string& value) {
  if (is_valid_utf8(value))
    return {};
  return bad(key, value, "must be UTF-8 text: the server refuses anything else");
}

status read_bool(const std::string& key, const std::string& text, bool& out) {
  if (text == "true" || text == "yes" || text == "1" || text == "on")
    out = true;
  else if (text == "false" || text == "no" || text == "0" || text == "off")
    out = false;
  else
    return bad(key, text, "must be true or false");
  return {};
}

status read_number(const std::string& key, const std::string& text, uint64_t& out) {
  auto v = parse_quantity(key, text);
  if (!v)
    return v.error();
  out = *v;
  return {};
}

/// labels = env=prod,region=eu
status read_labels(const std::string& key, const std::string& text,
                   std::map<std::string, std::string>& out) {
  size_t at = 0;
  while (at < text.size()) {
    auto end = text.find(',', at);
    if (end == std::string::npos)
      end = text.size();
    auto pair = text.substr(at, end - at);
    auto eq = pair.find('=');
    auto trim = [](std::string s) {
      auto b = s.find_first_not_of(' ');
      auto e = s.find_last_not_of(' ');
      return b == std::string::npos ? std::string{} : s.substr(b, e - b + 1);
    };
    if (eq == std::string::npos || trim(pair.substr(0, eq)).empty())
      return bad(key, text, "labels are name=value pairs separated by commas");
    out[trim(pair.substr(0, eq))] = trim(pair.substr(eq + 1));
    at = end + 1;
  }
  return {};
}

/// levels = INFO:90,WARN:8,ERROR:2
status read_levels(const std::string& key, const std::string& text,
                   std::vector<events::weighted_level>& out) {
  out.clear();
  size_t at = 0;
  while (at < text.size()) {
    auto end = text.find(',', at);
    if (end == std::string::npos)
      end = text.size();
    auto item = text.substr(at, end - at);
    auto colon = item.find(':');
    if (colon == std::string::npos || colon == 0)
      return bad(key, text, "levels are NAME:weight pairs separated by commas");
    uint64_t w = 0;
    if (auto st = read_number(key, item.substr(colon + 1), w); !st)
      return st;
    if (w > UINT32_MAX)  // it was cut to 32 bits: 4294967296 read as 0
      return bad(key, text, "a weight must be a whole number from 0 to 4294967295");
    out.push_back(events::weighted_level{item.substr(0, colon), static_cast<uint32_t>(w)});
    at = end + 1;
  }
  return {};
}

/// The types a `type =` may name: the built-in ones, then those the program registered.
std::string source_type_list() {
  std::string list;
  for (auto& t : events::builtin_source_types())
    list += (list.empty() ? "" : ", ") + t;
  for (auto& t : events::registered_source_types())
    list += ", " + t;
  return list;
}

/// The keys a source of `type` takes (`custom`: the registered type of that name, if any);
/// empty for a type that does not exist.
std::set<std::string> source_keys(const std::string& type,
                                  const std::optional<events::source_type>& custom = std::nullopt) {
  std::set<std::string> known{"type", "poll_interval_ms"};
  if (custom) {
    known.insert(custom->keys.begin(), custom->keys.end());
    return known;
  }
  if (type == "file_tail")
    known.insert({"path", "start_at_end", "read_chunk_bytes", "max_read_bytes_per_poll",
                  "fingerprint_bytes"});
  else if (type == "unix_socket")
    known.insert({"path", "max_connections", "read_chunk_bytes", "max_read_bytes_per_poll",
                  "max_accepts_per_poll"});
  else if (type == "proc")
    known.insert({"interval_ms", "host", "proc_dir"});
  else if (type == "synthetic")
    known.insert({"rate", "burst_events", "seed", "users", "msg_bytes", "latency_mean_ms", "levels"});
  else
    return {};
  return known;
}

const std::initializer_list<const char*> satellite_text_keys = {
  "id", "server", "satellite_token", "labels", "data_dir"};

status read_source(const std::string& name, const flat_config& cfg, source_spec& out) {
  out.name = name;
  auto prefix = "source." + name;
  auto type = cfg.find(prefix + ".type");
  if (type == cfg.end())
    return status::error(code::bad_request,
                         prefix + ".type is missing: one of " + source_type_list());
  out.type = type->second;
  // The keys each type takes; anything else in the section is an error naming it.
  auto custom = events::find_source_type(out.type);
  auto known = source_keys(out.type, custom);
  if (known.empty())
    return bad(prefix + ".type", out.type, "must be one of " + source_type_list());
  auto p = prefix + ".";
  for (auto& [key, value] : cfg) {
    if (key.compare(0, p.size(), p) != 0)
      continue;
    auto k = key.substr(p.size());
    if (known.count(k) == 0) {
      std::string list;
      for (auto& n : known)
        list += (list.empty() ? "" : ", ") + n;
      return status::error(code::bad_request, "unknown key '" + key + "'; a " + out.type
                                                + " source takes: " + list);
    }
    status st;
    if (k == "type")
      continue;
    else if (k == "poll_interval_ms")
      st = read_number(key, value, out.poll_interval_ms);
    else if (custom)
      out.custom.keys[k] = value;
    else if (out.type == "file_tail") {
      auto& c = out.file_tail;
      if (k == "path") c.path = value;
      else if (k == "start_at_end") st = read_bool(key, value, c.start_at_end);
      else if (k == "read_chunk_bytes") st = read_number(key, value, c.read_chunk_bytes);
      else if (k == "fingerprint_bytes") st = read_number(key, value, c.fingerprint_bytes);
      else st = read_number(key, value, c.max_read_bytes_per_poll);
    } else if (out.type == "unix_socket") {
      auto& c = out.unix_socket;
      if (k == "path") c.path = value;
      else if (k == "max_connections") st = read_number(key, value, c.max_connections);
      else if (k == "read_chunk_bytes") st = read_number(key, value, c.read_chunk_bytes);
      else if (k == "max_read_bytes_per_poll") st = read_number(key, value, c.max_read_bytes_per_poll);
      else st = read_number(key, value, c.max_accepts_per_poll);
    } else if (out.type == "proc") {
      auto& c = out.proc;
      if (k == "interval_ms") st = read_number(key, value, c.interval_ms);
      else if (k == "host") c.host = value;
      else c.proc_dir = value;
    } else {
      auto& c = out.synthetic;
      if (k == "rate") st = read_number(key, value, c.rate_per_sec);
      else if (k == "burst_events") st = read_number(key, value, c.burst_events);
      else if (k == "seed") st = read_number(key, value, c.seed);
      else if (k == "users") st = read_number(key, value, c.users);
      else if (k == "msg_bytes") st = read_number(key, value, c.msg_bytes);
      else if (k == "latency_mean_ms") st = read_number(key, value, c.latency_mean_ms);
      else st = read_levels(key, value, c.levels);
    }
    if (!st)
      return st;
  }
  if (custom) {
    out.custom.name = name;
    return custom->check ? custom->check(out.custom) : status{};
  }
  if (out.type == "file_tail")
    return events::validate(out.file_tail, prefix);
  if (out.type == "unix_socket")
    return events::validate(out.unix_socket, prefix);
  if (out.type == "proc") {
    if (out.poll_interval_ms == 0)
      out.poll_interval_ms = out.proc.interval_ms;
    return events::validate(out.proc, prefix);
  }
  return events::validate(out.synthetic, prefix);
}

} // namespace

std::vector<std::string> config_keys() {
  std::vector<std::string> out;
  append_keys(out, "satellite", satellite_fields, satellite_text_keys);
  append_keys(out, "events", json_fields);
  std::set<std::string> source;
  for (auto& type : events::builtin_source_types())
    for (auto& k : source_keys(type))
      source.insert("source.<name>." + k);
  out.insert(out.end(), source.begin(), source.end());
  return out;
}

result<satellite_config> satellite_from_config(const flat_config& cfg) {
  satellite_config out;
  auto& s = out.satellite;
  if (auto st = read_fields(s, cfg, "satellite", satellite_fields, satellite_text_keys); !st)
    return st;
  if (auto i = cfg.find("satellite.id"); i != cfg.end()) {
    if (auto st = require_text(i->first, i->second); !st)
      return st;
    s.id = i->second;
  }
  if (auto i = cfg.find("satellite.server"); i != cfg.end())
    s.server = i->second;
  if (auto i = cfg.find("satellite.satellite_token"); i != cfg.end())
    s.satellite_token = i->second;
  if (auto i = cfg.find("satellite.labels"); i != cfg.end()) {
    if (auto st = require_text(i->first, i->second); !st)
      return st;
    if (auto st = read_labels(i->first, i->second, s.labels); !st)
      return st;
  }
  if (auto i = cfg.find("satellite.data_dir"); i != cfg.end())
    s.data_dir = i->second;
  if (s.data_dir.empty())
    return status::error(code::bad_request,
                         "satellite.data_dir is missing: the directory of the satellite's store");
  if (s.heartbeat_interval_ms != 0 && s.heartbeat_interval_ms < 10)
    return bad("satellite.heartbeat_interval_ms", std::to_string(s.heartbeat_interval_ms),
               "must be 0 (the server's interval) or from 10 to 3600000 ms");
  base::host_port server;
  std::string bad_server;
  if (!base::parse_host_port("satellite.server", s.server, server, bad_server))
    return status::error(code::bad_request, bad_server);
  if (auto st = read_fields(out.json, cfg, "events", json_fields); !st)
    return st;
  if (auto st = events::validate(out.json); !st)
    return st;
  std::set<std::string> names;
  for (auto& [key, value] : cfg) {
    if (key.compare(0, 7, "source.") != 0)
      continue;
    auto dot = key.find('.', 7);
    if (dot == std::string::npos)
      continue;
    names.insert(key.substr(7, dot - 7));
  }
  for (auto& name : names) {
    source_spec spec;
    spec.custom.json = out.json;
    if (auto st = read_source(name, cfg, spec); !st)
      return st;
    out.sources.push_back(std::move(spec));
  }
  return out;
}

} // namespace levee::satellite
