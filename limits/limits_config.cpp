#include "limits/limits_config.hpp"

#include <cctype>
#include <cstring>
#include <limits>

#include "limits/config_fields.hpp"
#include "limits/defaults.hpp"

namespace levee {

namespace {

using actor_field = field_spec<actor_limits>;
using node_field = field_spec<limits_config>;

const actor_field actor_fields[] = {
  {"mailbox_capacity", &actor_limits::mailbox_capacity, 1,
   defaults::mailbox_capacity_ceiling, "messages"},
  {"mailbox_capacity_bytes", &actor_limits::mailbox_capacity_bytes, 1,
   defaults::mailbox_capacity_bytes_ceiling, "bytes"},
  {"max_message_bytes", &actor_limits::max_message_bytes, 1,
   defaults::max_message_bytes_ceiling, "bytes"},
  {"rate_msgs_per_sec", &actor_limits::rate_msgs_per_sec, 0, defaults::rate_ceiling,
   "msgs/s"},
  {"rate_burst_msgs", &actor_limits::rate_burst_msgs, 0, defaults::rate_ceiling,
   "messages"},
  {"rate_bytes_per_sec", &actor_limits::rate_bytes_per_sec, 0, defaults::rate_ceiling,
   "bytes/s"},
  {"rate_burst_bytes", &actor_limits::rate_burst_bytes, 0, defaults::rate_ceiling,
   "bytes"},
  {"max_inflight_per_requester", &actor_limits::max_inflight_per_requester, 1,
   defaults::mailbox_capacity_ceiling, "requests"},
  {"overload_retry_after_ms", &actor_limits::overload_retry_after_ms, 1,
   defaults::overload_retry_after_ms_ceiling, "ms"},
};

const node_field node_fields[] = {
  {"memory_budget_bytes", &limits_config::memory_budget_bytes, 1,
   defaults::memory_budget_bytes_ceiling, "bytes"},
  {"rejection_log_lines_per_sec", &limits_config::rejection_log_lines_per_sec, 1, 10'000,
   "lines/s"},
  {"rejection_log_burst_lines", &limits_config::rejection_log_burst_lines, 1, 100'000,
   "lines"},
};

bool valid_kind_name(std::string_view name) {
  if (name.empty() || name.size() > 64)
    return false;
  for (char c : name)
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c))
          || c == '_' || c == '-'))
      return false;
  return true;
}

std::string known_keys() {
  std::string out;
  for (auto& f : actor_fields) {
    if (!out.empty())
      out += ", ";
    out += f.name;
  }
  return out;
}

} // namespace

actor_limits actor_limits::defaults() {
  return actor_limits{defaults::mailbox_capacity,
                      defaults::mailbox_capacity_bytes,
                      defaults::max_message_bytes,
                      defaults::rate_msgs_per_sec,
                      defaults::rate_burst_msgs,
                      defaults::rate_bytes_per_sec,
                      defaults::rate_burst_bytes,
                      defaults::max_inflight_per_requester,
                      defaults::overload_retry_after_ms};
}

bool operator==(const actor_limits& a, const actor_limits& b) {
  for (auto& f : actor_fields)
    if (a.*(f.member) != b.*(f.member))
      return false;
  return true;
}

limits_config::limits_config()
  : memory_budget_bytes(defaults::memory_budget_bytes),
    rejection_log_lines_per_sec(defaults::rejection_log_lines_per_sec),
    rejection_log_burst_lines(defaults::rejection_log_burst_lines) {
}

const actor_limits& limits_config::for_kind(std::string_view kind) const {
  auto i = kinds.find(kind);
  return i != kinds.end() ? i->second : default_limits;
}

std::string limit_key(std::string_view kind, std::string_view field) {
  std::string out{"limits."};
  out += kind;
  out += '.';
  out += field;
  return out;
}

const std::vector<std::string>& actor_limit_keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> out;
    for (auto& f : actor_fields)
      out.emplace_back(f.name);
    return out;
  }();
  return keys;
}

std::vector<std::string> limits_config_keys() {
  std::vector<std::string> out;
  append_keys(out, "limits", node_fields);
  append_keys(out, "limits.<kind>", actor_fields);
  return out;
}

namespace {

/// A key's unit, from its name: `_ms` and `_us` keys are durations and take time suffixes
/// (in ns here); every other key is a count or a size and takes the byte suffixes.
uint64_t duration_unit_ns(const std::string& key) {
  auto ends_with = [&](const char* tail) {
    auto n = std::strlen(tail);
    return key.size() >= n && key.compare(key.size() - n, n, tail) == 0;
  };
  if (ends_with("_ms"))
    return 1'000'000;
  if (ends_with("_us"))
    return 1'000;
  return 0;
}

/// ns per time suffix (as the query language writes durations: 250ms, 30s, 5m, 1h, 7d);
/// 0 for anything else.
uint64_t time_suffix_ns(const std::string& suffix) {
  static const std::pair<const char*, uint64_t> units[] = {
    {"us", 1'000},          {"ms", 1'000'000},          {"s", 1'000'000'000},
    {"m", 60'000'000'000},  {"h", 3'600'000'000'000},   {"d", 86'400'000'000'000}};
  for (auto& [name, ns] : units)
    if (suffix == name)
      return ns;
  return 0;
}

} // namespace

result<uint64_t> parse_quantity(const std::string& key, const std::string& text) {
  const uint64_t unit_ns = duration_unit_ns(key);
  const char* unit_name = unit_ns == 1'000 ? "us" : "ms";
  const std::string example = unit_ns != 0 ? std::string{"e.g. 250"} + unit_name + ", 30s, 5m, 1h or 7d"
                                           : "e.g. 1024 or 16MiB";
  auto bad = [&](const std::string& why) {
    return status::error(code::bad_request, key + " = '" + text + "': " + why);
  };
  size_t i = 0;
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i])))
    ++i;
  if (i == text.size() || !std::isdigit(static_cast<unsigned char>(text[i])))
    return bad("not a whole number (write " + example + ")");
  uint64_t value = 0;
  for (; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i) {
    auto digit = static_cast<uint64_t>(text[i] - '0');
    if (value > (std::numeric_limits<uint64_t>::max() - digit) / 10)
      return bad("number too large");
    value = value * 10 + digit;
  }
  auto end = text.find_last_not_of(" \t\r");
  auto suffix = i <= end ? text.substr(i, end - i + 1) : std::string{};
  while (!suffix.empty() && std::isspace(static_cast<unsigned char>(suffix.front())))
    suffix.erase(suffix.begin());
  if (suffix.empty())
    return value;
  const uint64_t suffix_ns = time_suffix_ns(suffix);
  if (unit_ns != 0) {
    if (suffix_ns == 0)
      return bad(std::string{"a duration takes a time unit: us, ms, s, m, h or d ("} + example
                 + "), or a plain number of " + unit_name);
    if (value > std::numeric_limits<uint64_t>::max() / suffix_ns)
      return bad("number too large");
    auto ns = value * suffix_ns;
    if (ns % unit_ns != 0)
      return bad(std::string{"not a whole number of "} + unit_name + " (write it in " + unit_name
                 + ")");
    return ns / unit_ns;
  }
  if (suffix_ns != 0)
    return bad("'" + suffix + "' is a time unit, but this key is not a duration (durations are "
               "the keys ending in _ms or _us); write a number, or KiB, MiB or GiB for bytes");
  uint64_t scale = 1;
  if (suffix == "KiB")
    scale = defaults::KiB;
  else if (suffix == "MiB")
    scale = defaults::MiB;
  else if (suffix == "GiB")
    scale = defaults::GiB;
  else
    return bad("unknown suffix (use KiB, MiB or GiB, or none)");
  if (value > std::numeric_limits<uint64_t>::max() / scale)
    return bad("number too large");
  return value * scale;
}

status validate(const actor_limits& l, const std::string& section) {
  if (auto st = check_fields(l, section, actor_fields); !st)
    return st;
  if (l.mailbox_capacity_bytes < l.max_message_bytes)
    return status::error(code::bad_request,
                         section + ".mailbox_capacity_bytes = "
                           + std::to_string(l.mailbox_capacity_bytes)
                           + ": must be at least max_message_bytes ("
                           + std::to_string(l.max_message_bytes)
                           + "), or a message of the allowed size could never be queued");
  if (l.rate_bytes_per_sec > 0) {
    auto burst = l.rate_burst_bytes == 0 ? l.rate_bytes_per_sec : l.rate_burst_bytes;
    if (burst < l.max_message_bytes)
      return status::error(
        code::bad_request,
        section + ".rate_burst_bytes = " + std::to_string(l.rate_burst_bytes)
          + ": the byte-rate burst (" + std::to_string(burst)
          + ") must be at least max_message_bytes (" + std::to_string(l.max_message_bytes)
          + "), or a message of the allowed size could never pass");
  }
  if (l.rate_msgs_per_sec == 0 && l.rate_burst_msgs != 0)
    return status::error(code::bad_request,
                         section + ".rate_burst_msgs = " + std::to_string(l.rate_burst_msgs)
                           + ": set only together with rate_msgs_per_sec");
  if (l.rate_bytes_per_sec == 0 && l.rate_burst_bytes != 0)
    return status::error(code::bad_request,
                         section + ".rate_burst_bytes = " + std::to_string(l.rate_burst_bytes)
                           + ": set only together with rate_bytes_per_sec");
  return {};
}

status validate(const limits_config& cfg) {
  if (auto st = check_fields(cfg, "limits", node_fields); !st)
    return st;
  if (auto st = validate(cfg.default_limits, "limits.default"); !st)
    return st;
  for (auto& [kind, l] : cfg.kinds)
    if (auto st = validate(l, "limits." + kind); !st)
      return st;
  auto check_budget = [&](const actor_limits& l, const std::string& section) -> status {
    if (cfg.memory_budget_bytes < l.max_message_bytes)
      return status::error(code::bad_request,
                           "limits.memory_budget_bytes = "
                             + std::to_string(cfg.memory_budget_bytes)
                             + ": smaller than " + section + ".max_message_bytes ("
                             + std::to_string(l.max_message_bytes)
                             + "), so such a message could never be queued");
    return {};
  };
  if (auto st = check_budget(cfg.default_limits, "limits.default"); !st)
    return st;
  for (auto& [kind, l] : cfg.kinds)
    if (auto st = check_budget(l, "limits." + kind); !st)
      return st;
  return {};
}

result<limits_config> limits_from_config(const flat_config& cfg) {
  limits_config out;
  // Pass 1: node-wide keys and [limits.default]; pass 2: kinds, which inherit the result.
  std::map<std::string, std::vector<std::pair<const actor_field*, uint64_t>>> per_kind;
  for (auto& [key, text] : cfg) {
    if (key.rfind("limits.", 0) != 0)
      continue;
    auto rest = std::string_view{key}.substr(7);
    auto dot = rest.rfind('.');
    if (dot == std::string_view::npos) {
      const node_field* nf = nullptr;
      for (auto& f : node_fields)
        if (rest == f.name)
          nf = &f;
      if (nf == nullptr)
        return status::error(code::bad_request,
                             "unknown key '" + key
                               + "' in [limits]; known keys: memory_budget_bytes, "
                                 "rejection_log_lines_per_sec, rejection_log_burst_lines");
      auto v = parse_quantity(key, text, *nf);
      if (!v)
        return v.error();
      out.*(nf->member) = *v;
      continue;
    }
    auto kind = std::string{rest.substr(0, dot)};
    auto field = rest.substr(dot + 1);
    if (!valid_kind_name(kind))
      return status::error(code::bad_request,
                           "section [limits." + kind
                             + "]: an actor kind name is 1-64 characters of a-z, 0-9, _ and -");
    const actor_field* fi = nullptr;
    for (auto& f : actor_fields)
      if (field == f.name)
        fi = &f;
    if (fi == nullptr)
      return status::error(code::bad_request,
                           "unknown key '" + key + "'; known keys: " + known_keys());
    auto v = parse_quantity(key, text, *fi);
    if (!v)
      return v.error();
    per_kind[kind].emplace_back(fi, *v);
  }
  if (auto i = per_kind.find("default"); i != per_kind.end()) {
    for (auto& [fi, v] : i->second)
      out.default_limits.*(fi->member) = v;
    per_kind.erase(i);
  }
  for (auto& [kind, values] : per_kind) {
    auto l = out.default_limits;
    for (auto& [fi, v] : values)
      l.*(fi->member) = v;
    out.kinds.emplace(kind, l);
  }
  if (auto st = validate(out); !st)
    return st;
  return out;
}

} // namespace levee
