#pragma once
// What the subcommands share: option parsing with one-line errors, config loading, and the
// client side of queries (used by `levee query` and by `levee local` to show one).

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include <boost/program_options.hpp>

#include "levee/client.hpp"
#include "limits/config_file.hpp"

namespace levee::apps {

struct parsed_args {
  std::optional<int> exit_code;  // set: return it (--help printed, or a usage error)
};

/// Parses `args` into `opts`' variables; prints --help, or a one-line error (exit 2).
parsed_args parse_args(const char* sub, const boost::program_options::options_description& opts,
                       const std::vector<std::string>& args,
                       const boost::program_options::positional_options_description* positional = nullptr);

/// "levee <sub>: <what>; run `levee <sub> --help`", exit code 2. `what` is shown through
/// printable(): a value from the command line or a file may hold any byte.
int usage_error(const char* sub, const std::string& what);
/// "levee <sub>: <what>", exit code 2 (a bad config value names its key); printable() too.
int config_error(const char* sub, const std::string& what);

/// The file with the command line's overrides on top; prints the error and returns
/// nullopt on failure.
std::optional<flat_config> load_config_with_overrides(const char* sub, const std::string& path,
                                                      const std::vector<std::string>& overrides);

std::vector<std::string> split_list(const std::string& text);  // "a, b" -> {"a", "b"}
/// "host:port" -> (host, port); port 0 when it does not parse.
std::pair<std::string, uint16_t> split_address(const std::string& text);

struct query_request {
  std::string text;
  std::string satellite_id;
  std::map<std::string, std::string> selector;
  uint32_t deadline_ms = 0;
};

/// Runs one query and prints its rows (JSON lines) or groups to `out`, then one summary
/// line to `err`. 0 when answered, 1 when refused (the Reject printed), 2 when the server
/// cannot be reached.
int run_one_query(const client_options& co, const query_request& q, std::ostream& out,
                  std::ostream& err);

/// Waits until every id in `ids` is registered and healthy with at least `min_events`
/// stored; false after `bound`.
bool wait_for_satellites(const client_options& co, const std::vector<std::string>& ids,
                         uint64_t min_events, std::chrono::milliseconds bound);

} // namespace levee::apps
