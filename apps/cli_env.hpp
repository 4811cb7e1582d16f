#pragma once
// Defaults the environment may set, so an operator need not give --server or --broker to
// every command: LEVEE_SERVER and LEVEE_BROKER (host:port). A flag on the command line wins.

#include <cstdlib>
#include <string>

namespace levee::apps {

constexpr const char* server_env = "LEVEE_SERVER";
constexpr const char* broker_env = "LEVEE_BROKER";

/// The value of environment variable `name` when set and not empty, else `fallback`.
inline std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string{v} : std::string{fallback};
}

inline std::string default_server() { return env_or(server_env, "127.0.0.1:7400"); }
inline std::string default_broker_address() { return env_or(broker_env, "127.0.0.1:7600"); }

} // namespace levee::apps
