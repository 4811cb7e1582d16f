#pragma once
// "host:port" as configs and command lines write an address (`satellite.server =
// 10.0.0.5:7400`, `--server localhost:7400`, `server.listen = [::1]:7400`). One parser, so
// that every place refuses the same bad addresses with the same words.

#include <cstdint>
#include <string>
#include <string_view>

namespace levee::base {

struct host_port {
  std::string host;  // a name or an address; an IPv6 address without its brackets
  uint16_t port = 0;
};

/// Whether port 0 is an address: a listener may take "any free port", a dialer may not.
enum class port_zero { refused, any_free_port };

/// Parses `text` as `host:port` or `[IPv6 address]:port`, the port a whole number from 1
/// (or 0, under port_zero::any_free_port) to 65535. On failure returns false and sets
/// `error` to a line naming where the text came from, the text, and what a valid address
/// looks like: `name` is a config key ("satellite.server = 127.0.0.1: must be host:port,
/// e.g. 127.0.0.1:7400") or, starting with "--", an option ("--server h:0: the port must
/// be a whole number from 1 to 65535, e.g. 127.0.0.1:7400"). `text` is quoted as given:
/// whoever prints the error escapes what a terminal must not see.
bool parse_host_port(std::string_view name, std::string_view text, host_port& out,
                     std::string& error, port_zero zero = port_zero::refused);

} // namespace levee::base
