#pragma once
// What the subcommands share: option parsing with one-line errors, config loading, and the
// client side of queries (used by `levee query` and by `levee local` to show one).

#include <cassert>
#include <chrono>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/program_options.hpp>

#include <google/protobuf/message.h>

#include "base/host_port.hpp"
#include "levee/client.hpp"
#include "limits/config_file.hpp"

namespace levee::apps {

/// Whole-number and decimal options with their allowed range. Boost reads "-5" into an
/// unsigned option as 4294967291 and refuses an overflow without saying what is allowed:
/// these take the text, and anything but decimal digits from `min` to `max` (a sign, an
/// exponent, a trailing letter, a number out of range) is a usage error that names the
/// option, the value and the range:
///   --deadline-ms -5: must be a whole number from 0 to 4294967295 ms
/// The value of `text`, or a std::invalid_argument carrying that message.
uint64_t whole_number_of(const char* option, const std::string& text, uint64_t min, uint64_t max,
                         const char* unit);

/// The option for po::options_description::add_options(); `*out` holds `fallback` until the
/// option is read. [min, max] must lie within T.
template <class T>
boost::program_options::typed_value<std::string>*
whole_number(const char* option, T* out, T fallback, uint64_t min, uint64_t max,
             const char* unit) {
  static_assert(std::is_unsigned<T>::value, "whole-number options are unsigned");
  assert(max <= std::numeric_limits<T>::max());
  *out = fallback;
  return boost::program_options::value<std::string>()
    ->default_value(std::to_string(fallback))
    ->notifier([=](const std::string& text) {
      *out = static_cast<T>(whole_number_of(option, text, min, max, unit));
    });
}

/// A number above `above` and at most `max`, written in decimal (no nan, no infinity):
///   --seconds -5: must be a number above 0 and at most 3600 s
boost::program_options::typed_value<std::string>*
decimal_number(const char* option, double* out, double fallback, double above, double max,
               const char* unit);

struct parsed_args {
  std::optional<int> exit_code;  // set: return it (--help printed, or a usage error)
};

/// Parses `args` into `opts`' variables; prints --help, or a one-line error (exit 2).
/// `parsed`, when given, receives the variables (to tell an option given from its default).
/// `error`, when given, receives the error's text instead of its being printed (a caller
/// that says where the arguments came from: `levee load --check` names a file's line).
parsed_args parse_args(const char* sub, const boost::program_options::options_description& opts,
                       const std::vector<std::string>& args,
                       const boost::program_options::positional_options_description* positional = nullptr,
                       boost::program_options::variables_map* parsed = nullptr,
                       std::string* error = nullptr);

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
/// `text`, the value of address option `option` ("--server"), as host and port. A bad
/// address is a usage error naming the option, the text and what a valid address looks
/// like: printed, and nullopt returned (exit code 2, as for every usage error).
std::optional<base::host_port> address_option(const char* sub, const char* option,
                                              const std::string& text);

struct query_request {
  std::string text;
  std::string satellite_id;
  std::map<std::string, std::string> selector;
  uint32_t deadline_ms = 0;
};

/// How `levee query` prints an answer.
struct query_output {
  bool json = false;    // groups and the summary as JSON lines too (rows always are)
  bool strict = false;  // satellites skipped by a fan-out make the exit code query_skipped
};

/// Runs one query and prints its rows (JSON lines) or groups to `out`, then one summary
/// line to `err`. A partial answer (QueryStats.partial: server.max_result_bytes cut it)
/// ends `out` with a marker line ("-- partial: ..."; with `json` the summary object says
/// "partial":true) and is said on `err` with what to do. Satellites a fan-out skipped are
/// named on `err` (and in the JSON summary). Exit codes (apps/exit_codes.hpp): 0 when
/// answered whole, query_partial when cut, query_skipped when `strict` and satellites were
/// skipped, 1 when refused (the Reject printed), 2 when the server cannot be reached.
int run_one_query(const client_options& co, const query_request& q, std::ostream& out,
                  std::ostream& err, const query_output& how = {});

/// A protobuf message as one line of JSON for `--json`: every field (defaults included,
/// so the keys do not come and go), by its .proto name; numbers as JSON numbers (64-bit
/// ones too), strings and bytes as strings (bytes that are not UTF-8 become U+FFFD), enums
/// by their value's name, maps as objects with sorted keys, a message field not set as null.
std::string message_json(const google::protobuf::Message& message);

/// Waits until every id in `ids` is registered and healthy with at least `min_events`
/// stored; false after `bound`.
bool wait_for_satellites(const client_options& co, const std::vector<std::string>& ids,
                         uint64_t min_events, std::chrono::milliseconds bound);

/// `levee local`'s streams banner: creates the stream `events` (subject `local.>`) on the
/// broker at `co`, publishes three messages and reads them back, printing each step as the
/// CLI would. 0 when every step worked.
int show_streams(const client_options& co, const std::string& address);

} // namespace levee::apps
