#pragma once
// Running a node from your own main(): the same program as `levee node` (the same config
// file, the same built-in roles server, satellite and broker, the same limits, /metrics,
// logs, signals and exit codes), plus roles of your own, and the source types you
// registered (levee/source.hpp) available to its satellite.
//
//   int main(int argc, char** argv) {
//     levee::register_source_type(counter_type());         // optional
//     levee::node_program node;
//     node.add_role({"echo", {"echo"}, check_echo, start_echo, {}});
//     return node.main(argc, argv);   // my-node --config FILE [--check] [--set key=value]
//   }                                 // (its messages say "levee node:", as the binary's)
//
// with a config file that names the role and has its section:
//
//   [node]
//   roles = satellite, echo
//   [echo]
//   listen = 127.0.0.1:7700
//
// The order of a start: the file is read and checked whole (unknown sections and keys are
// errors, your roles' check functions run); with --check the program stops there. Then the
// built-in roles start, then yours in the order you added them; if one fails, those
// started stop again and the program exits 1 with the error. SIGINT or SIGTERM (or a
// role's stop_node) stops your roles first, in reverse order, then the built-in ones.
// Exit codes are `levee node`'s (apps/README.md "Exit codes"): 0 stopped on a signal, 1 a
// start failed, 2 a usage or config error; stop_node chooses its own.
//
// examples/custom_source.cpp is a whole program; include/levee/EXTENDING.md the guide.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>

#include "actors/runtime.hpp"
#include "levee/serve.hpp"
#include "limits/config_file.hpp"
#include "limits/status.hpp"

namespace levee {

/// What a role of yours gets while it starts (and may keep until its stop runs).
class role_context {
public:
  virtual ~role_context() = default;
  /// The node's actor system (built from levee::system_config) and limits ([limits],
  /// [limits.<kind>]): spawn your actors with levee::spawn_limited(system(), runtime(), kind).
  virtual caf::actor_system& system() = 0;
  virtual levee::runtime& runtime() = 0;
  /// The whole config file, with --set overrides applied.
  virtual const flat_config& config() const = 0;
  /// A wire listener on `listen` with the node's [net] limits and token; the node stops it
  /// after your role's stop. Errors as wire_listener::start.
  virtual result<wire_listener*> serve(const std::string& listen) = 0;
  /// The port a built-in role listens on ("server", "broker"); 0 when the node does not run
  /// it. Useful with `listen = 127.0.0.1:0`.
  virtual uint16_t port_of(const std::string& role) const = 0;
  /// Asks the node to stop and exit with `exit_code`, `why` going to the log. Safe from any
  /// thread, returns at once; the first request wins.
  virtual void stop_node(int exit_code, const std::string& why) = 0;
};

/// A role of yours.
struct role {
  /// Its name in `node.roles` (letters, digits, _ and -; not server, satellite, broker).
  std::string name;
  /// The config sections it reads, e.g. {"echo"} for [echo]: the node accepts their keys
  /// when the role is named in node.roles, and refuses them otherwise.
  std::vector<std::string> sections;
  /// Optional: validates its sections (for --check and before any role starts). An error
  /// says which key is wrong and what it takes.
  std::function<status(const flat_config&)> check;
  /// Starts it: spawn actors, serve them, start threads. Must return (not run the role);
  /// an error stops the node's start.
  std::function<status(role_context&)> start;
  /// Optional: stops it, before the node's built-in roles stop and its listeners close.
  std::function<void()> stop;
};

class node_program {
public:
  node_program();
  ~node_program();
  node_program(const node_program&) = delete;
  node_program& operator=(const node_program&) = delete;

  /// Adds a role. Errors (bad_request): a malformed, built-in or already added name, no
  /// start function, a section a built-in role owns.
  status add_role(role r);

  /// Runs `levee node`'s command line (--config FILE [--check] [--set key=value]...) until
  /// the node stops; returns the exit code.
  int main(int argc, char** argv);
  int run(const std::vector<std::string>& args);

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace levee
