#pragma once
// Table-driven reading and range checking of whole-number config keys: a section's keys
// are described once (name, member, range, unit), and reading, "unknown key" errors and
// range errors all come from that table, naming the key and the value.

#include <cstdint>
#include <string>
#include <vector>

#include "limits/config_file.hpp"
#include "limits/status.hpp"

namespace levee {

template <class T>
struct field_spec {
  const char* name;
  uint64_t T::*member;
  uint64_t min;
  uint64_t max;
  const char* unit;
};

/// A whole number with an optional suffix: a time unit for the duration keys (`_ms`, `_us`),
/// KiB/MiB/GiB for the others (limits_config.hpp says which). An error names the key and
/// the value: not a number (a sign, a letter), a unit the key does not take, or too large
/// for 64 bits.
result<uint64_t> parse_quantity(const std::string& key, const std::string& text);

/// The same, and an error also says the range the key allows (the range itself is
/// checked by check_fields, after every key is read).
template <class T>
result<uint64_t> parse_quantity(const std::string& key, const std::string& text,
                                const field_spec<T>& spec) {
  auto v = parse_quantity(key, text);
  if (!v)
    return status::error(v.error().code(), v.error().message() + "; must be between "
                                              + std::to_string(spec.min) + " and "
                                              + std::to_string(spec.max) + " " + spec.unit);
  return v;
}

/// Checks every field of `target` against its range.
template <class T, size_t N>
status check_fields(const T& target, const std::string& section,
                    const field_spec<T> (&fields)[N]) {
  for (auto& f : fields) {
    auto v = target.*(f.member);
    if (v < f.min || v > f.max)
      return status::error(code::bad_request, section + "." + f.name + " = " + std::to_string(v)
                                                + ": must be between " + std::to_string(f.min)
                                                + " and " + std::to_string(f.max) + " " + f.unit);
  }
  return {};
}

/// Appends `section.<name>` for every field and extra key: what read_fields accepts, for
/// the list of every config key (`levee config-keys`).
template <class T, size_t N>
void append_keys(std::vector<std::string>& out, const std::string& section,
                 const field_spec<T> (&fields)[N],
                 std::initializer_list<const char*> extra_keys = {}) {
  for (auto& f : fields)
    out.push_back(section + "." + f.name);
  for (auto* e : extra_keys)
    out.push_back(section + "." + e);
}

/// Reads the keys `section.<name>` of `cfg` into `target`. A key of the section that is
/// not in `fields` (and not in `extra_keys`, handled by the caller) is an error naming it.
template <class T, size_t N>
status read_fields(T& target, const flat_config& cfg, const std::string& section,
                   const field_spec<T> (&fields)[N],
                   std::initializer_list<const char*> extra_keys = {}) {
  auto prefix = section + ".";
  for (auto& [key, text] : cfg) {
    if (key.compare(0, prefix.size(), prefix) != 0)
      continue;
    auto name = key.substr(prefix.size());
    const field_spec<T>* spec = nullptr;
    for (auto& f : fields)
      if (name == f.name)
        spec = &f;
    if (spec == nullptr) {
      bool extra = false;
      for (auto* e : extra_keys)
        extra = extra || name == e;
      if (extra)
        continue;
      std::string known;
      for (auto& f : fields)
        known += (known.empty() ? "" : ", ") + std::string{f.name};
      for (auto* e : extra_keys)
        known += std::string{", "} + e;
      return status::error(code::bad_request,
                           "unknown key '" + key + "'; known keys in [" + section + "]: " + known);
    }
    auto v = parse_quantity(key, text, *spec);
    if (!v)
      return v.error();
    target.*(spec->member) = *v;
  }
  return check_fields(target, section, fields);
}

} // namespace levee
