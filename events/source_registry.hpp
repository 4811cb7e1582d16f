#pragma once
// Event source types beyond the four built in (file_tail, unix_socket, proc, synthetic):
// a program registers its own before its satellite reads its config, and
// `[source.<name>] type = <its name>` then makes one, polled by the satellite like any
// other (include/levee/source.hpp is the public face; examples/custom_source.cpp uses it).
// Process-wide, plain C++: registering is a start-up step, reading it is lock-protected.

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "events/json.hpp"
#include "events/source.hpp"
#include "limits/status.hpp"

namespace levee::events {

/// One `[source.<name>]` section of a registered type, as written.
struct source_settings {
  std::string name;                         // <name>
  std::map<std::string, std::string> keys;  // its keys (without `source.<name>.`), minus
                                            // `type` and `poll_interval_ms`
  json_limits json;                         // [events]: the limits of a JSON line
};

struct source_type {
  /// The `type =` value, e.g. "counter": letters, digits and _, not a built-in type.
  std::string name;
  /// The keys a section of this type may set besides `type` and `poll_interval_ms`; any
  /// other key is an error naming it, as for the built-in types.
  std::vector<std::string> keys;
  /// Makes a source from its section. Called when the satellite starts; an error stops
  /// the start with its message (name the key: "source.<name>.<key> = <value>: ...").
  std::function<result<std::unique_ptr<source>>(const source_settings&)> make;
  /// Optional: checks a section without making the source, for `levee node --check` and
  /// config parsing (an empty function accepts every value).
  std::function<status(const source_settings&)> check;
};

/// Adds a source type. Errors (bad_request): an empty or malformed name, a built-in or
/// already registered name, no `make`, a key named `type` or `poll_interval_ms`.
status register_source_type(source_type type);

/// The registered type of that name, if any (a copy: registration may go on meanwhile).
std::optional<source_type> find_source_type(const std::string& name);

/// The names of the registered types, sorted.
std::vector<std::string> registered_source_types();

/// The built-in type names, in the order messages list them.
const std::vector<std::string>& builtin_source_types();

} // namespace levee::events
