#include "load/scenario.hpp"

#include <fstream>
#include <sstream>
#include <sys/stat.h>

#include "limits/error_code.hpp"

namespace levee::load {

const std::vector<scenario_key>& scenario_keys() {
  static const std::vector<scenario_key> keys{
    {"target", "actor stats", false, false},
    {"server", "127.0.0.1:7400", false, false},
    {"token", "secret", false, false},
    {"rate", "1000", false, false},
    {"steps", "1000:10,2000:10", false, false},
    {"ramp", "100:100:1000:5", false, false},
    {"knee_p99_ms", "100", false, false},
    {"knee_refused_percent", "1", false, false},
    {"knee_goodput_gain", "0.5", false, false},
    {"closed", "16", false, false},
    {"duration", "10", false, false},
    {"count", "10000", false, false},
    {"warmup", "2", false, false},
    {"connections", "4", false, false},
    {"payload_bytes", "64", false, false},
    {"message_bytes", "100", false, false},
    {"ack", "leader", false, false},
    {"keys", "1000", false, false},
    {"key_distribution", "zipf", false, false},
    {"read_messages", "100", false, false},
    {"query_file", "queries.txt", false, false},
    {"from", "latest", false, false},
    {"group", "load", false, false},
    {"retry_after", "ignore", false, false},
    {"timeout_ms", "5000", false, false},
    {"max_lag_ms", "50", false, false},
    {"max_late_percent", "1", false, false},
    {"threshold", "latency.p99<50ms", false, true},
    {"other_traffic", "true", true, false},
    {"html", "load-report.html", false, false},
    {"json", "true", true, false},
    {"quiet", "true", true, false},
    {"progress", "true", true, false},
    {"config", "demo.ini", false, false},
    {"set", "limits.service.mailbox_capacity=64", false, true},
    {"service_us", "50", false, false},
    {"consumers", "2", false, false},
    {"consume_stream", "load", false, false},
  };
  return keys;
}

namespace {

std::string trim(const std::string& s) {
  auto a = s.find_first_not_of(" \t\r");
  auto b = s.find_last_not_of(" \t\r");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

const scenario_key* find_key(const std::string& name) {
  for (auto& k : scenario_keys())
    if (name == k.name)
      return &k;
  return nullptr;
}

status error_at(const std::string& origin, int line, const std::string& what) {
  return status::error(code::bad_request, origin + ":" + std::to_string(line) + ": " + what);
}

std::string key_list() {
  std::string out;
  for (auto& k : scenario_keys())
    out += std::string{out.empty() ? "" : ", "} + k.name;
  return out;
}

} // namespace

std::string option_of(const std::string& key) {
  std::string out = "--" + key;
  for (auto& c : out)
    if (c == '_')
      c = '-';
  return out;
}

std::vector<std::string> arguments_of(const scenario_entry& e) {
  auto* k = find_key(e.key);
  if (k && k->is_switch)
    return e.value == "true" ? std::vector<std::string>{option_of(e.key)} : std::vector<std::string>{};
  if (e.key == "target") {
    // The kind, then the rest of the line as one argument: a name, or a query's text of
    // several words (target = query count by level).
    std::vector<std::string> out{"--target"};
    auto kind_end = e.value.find_first_of(" \t");
    out.push_back(e.value.substr(0, kind_end));
    if (kind_end != std::string::npos) {
      auto rest = e.value.find_first_not_of(" \t", kind_end);
      if (rest != std::string::npos)
        out.push_back(e.value.substr(rest));
    }
    return out;
  }
  return {option_of(e.key), e.value};
}

std::string entry_error(const scenario& s, const scenario_entry& e, const std::string& what,
                        bool with_example) {
  auto* k = find_key(e.key);
  return s.origin + ":" + std::to_string(e.line) + ": key '" + e.key + "': " + what
         + (k && with_example ? std::string{"; write e.g. "} + k->name + " = " + k->example
                              : std::string{});
}

result<scenario> parse_scenario(const std::string& text, const std::string& origin) {
  scenario out;
  out.origin = origin;
  std::istringstream in{text};
  std::string raw;
  int line = 0;
  bool in_load = false, seen_section = false;
  while (std::getline(in, raw)) {
    ++line;
    // A comment starts at '#' or ';' (no value here needs either character).
    auto cut = raw.find_first_of("#;");
    auto text_of_line = trim(cut == std::string::npos ? raw : raw.substr(0, cut));
    if (text_of_line.empty())
      continue;
    if (text_of_line.front() == '[') {
      if (text_of_line != "[load]")
        return error_at(origin, line, "section " + text_of_line
                                        + ": a scenario has one section, [load]; put every key under it");
      in_load = seen_section = true;
      continue;
    }
    if (!in_load)
      return error_at(origin, line, "'" + text_of_line + "' comes before [load]; start the file with [load]");
    auto eq = text_of_line.find('=');
    if (eq == std::string::npos)
      return error_at(origin, line, "'" + text_of_line + "' is no key = value; write e.g. rate = 1000");
    scenario_entry e{line, trim(text_of_line.substr(0, eq)), trim(text_of_line.substr(eq + 1))};
    auto* k = find_key(e.key);
    if (!k) {
      std::string hint;
      auto underscored = e.key;
      for (auto& c : underscored)
        if (c == '-')
          c = '_';
      if (underscored != e.key && find_key(underscored))
        hint = "; keys are written with _: " + underscored;
      return error_at(origin, line, "unknown key '" + e.key + "'" + hint + " (the keys: " + key_list() + ")");
    }
    if (e.value.empty())
      return error_at(origin, line, "key '" + e.key + "' has no value; write e.g. " + k->name + " = " + k->example);
    if (k->is_switch && e.value != "true" && e.value != "false")
      return error_at(origin, line, "key '" + e.key + "': '" + e.value + "' is not true or false; write e.g. "
                                      + k->name + " = true");
    if (!k->repeatable)
      for (auto& earlier : out.entries)
        if (earlier.key == e.key)
          return error_at(origin, line, "key '" + e.key + "' is given again (first on line "
                                          + std::to_string(earlier.line) + "); give it once");
    out.entries.push_back(std::move(e));
  }
  if (!seen_section)
    return status::error(code::bad_request, origin + ": no [load] section; a scenario file starts with [load] "
                                               "and one key = value a line (configs/load-actor.ini)");
  return out;
}

result<scenario> read_scenario(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    return status::error(code::bad_request, path + ": no such file (or not a regular file); give the path of "
                                             "a scenario, e.g. configs/load-actor.ini");
  std::ifstream in{path, std::ios::binary};
  std::ostringstream text;
  text << in.rdbuf();
  if (!in && !in.eof())
    return status::error(code::bad_request, path + ": cannot be read; check its permissions");
  auto sc = parse_scenario(text.str(), path);
  if (!sc)
    return sc;
  // A file a scenario names is found beside it, wherever the command runs.
  auto slash = path.rfind('/');
  if (slash != std::string::npos)
    for (auto& e : sc->entries)
      if ((e.key == "query_file" || e.key == "config") && !e.value.empty() && e.value[0] != '/')
        e.value = path.substr(0, slash + 1) + e.value;
  return sc;
}

} // namespace levee::load
