#pragma once
// Scenario files (`levee load --scenario FILE.ini`, checked by `levee load --check FILE`):
// the options of a run written down, one per line, under [load]:
//
//   [load]
//   target = actor stats          # the option --target, written without its dashes and
//   rate = 200                    # with _ for - (payload_bytes = 64 is --payload-bytes 64)
//   threshold = latency.p99<50ms  # repeatable
//   json = true                   # switches take true or false
//
// '#' and ';' start comments. This reads the file and says where it is wrong (file, line,
// key, and what to write); the values are checked by the command's own option parser, so a
// value means in a file what it means on the command line (apps/load_cli.cpp).

#include <string>
#include <vector>

#include "limits/status.hpp"

namespace levee::load {

struct scenario_key {
  const char* name;     // as written in the file: "payload_bytes"
  const char* example;  // a value to show in errors: "64"
  bool is_switch;       // true/false, given on the command line without a value
  bool repeatable;      // may appear on several lines (threshold)
};

/// Every key a scenario may hold.
const std::vector<scenario_key>& scenario_keys();

struct scenario_entry {
  int line = 0;
  std::string key;    // as written: "payload_bytes"
  std::string value;  // trimmed; an inline comment removed
};

struct scenario {
  std::string origin;  // the path, for errors
  std::vector<scenario_entry> entries;
};

/// The file at `path`; an error names the file (and the line) and says what to write.
result<scenario> read_scenario(const std::string& path);
/// The same from text; `origin` names it in errors.
result<scenario> parse_scenario(const std::string& text, const std::string& origin);

/// The command-line option an entry stands for: "--payload-bytes".
std::string option_of(const std::string& key);
/// The entry as command-line arguments: {"--rate", "200"}, {"--target", "actor", "stats"},
/// {"--json"} (a switch set to true), {} (false).
std::vector<std::string> arguments_of(const scenario_entry& e);
/// "FILE:LINE: key 'rate': WHAT; write e.g. rate = 1000" (the example left out when the
/// value is not what is wrong: a key that conflicts with another).
std::string entry_error(const scenario& s, const scenario_entry& e, const std::string& what,
                        bool with_example = true);

} // namespace levee::load
