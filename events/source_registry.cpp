#include "events/source_registry.hpp"

#include <algorithm>
#include <mutex>

namespace levee::events {

namespace {

std::mutex registry_mtx;

std::map<std::string, source_type>& registry() {
  static std::map<std::string, source_type> types;
  return types;
}

bool is_name(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

} // namespace

const std::vector<std::string>& builtin_source_types() {
  static const std::vector<std::string> names{"file_tail", "unix_socket", "proc", "synthetic"};
  return names;
}

status register_source_type(source_type type) {
  auto bad = [&](const std::string& why) {
    return status::error(code::bad_request, "source type '" + type.name + "': " + why);
  };
  if (!is_name(type.name))
    return bad("a type name is letters, digits and _; pick another name");
  auto& builtin = builtin_source_types();
  if (std::find(builtin.begin(), builtin.end(), type.name) != builtin.end())
    return bad("is built in; register yours under another name");
  if (!type.make)
    return bad("has no make function; give one that builds the source from its section");
  for (auto& k : type.keys)
    if (k == "type" || k == "poll_interval_ms" || !is_name(k))
      return bad("key '" + k + "' cannot be one of its own: every source takes type and "
                 "poll_interval_ms, and a key is letters, digits and _");
  std::lock_guard<std::mutex> guard{registry_mtx};
  auto name = type.name;
  if (!registry().emplace(name, std::move(type)).second)
    return status::error(code::bad_request, "source type '" + name
                                              + "' is registered already; register it once, "
                                                "at start-up");
  return {};
}

std::optional<source_type> find_source_type(const std::string& name) {
  std::lock_guard<std::mutex> guard{registry_mtx};
  auto i = registry().find(name);
  if (i == registry().end())
    return std::nullopt;
  return i->second;
}

std::vector<std::string> registered_source_types() {
  std::lock_guard<std::mutex> guard{registry_mtx};
  std::vector<std::string> out;
  for (auto& [name, type] : registry())
    out.push_back(name);
  return out;
}

} // namespace levee::events
