#pragma once
// Applications write JSON lines into a UNIX-domain stream socket. Every call is
// non-blocking; each client's partial line is held within max_line_bytes; clients over
// max_connections are accepted, told why in one line, and closed.

#include <cstdint>
#include <memory>
#include <string>
#include <sys/types.h>
#include <vector>

#include "events/defaults.hpp"
#include "events/json.hpp"
#include "events/line_reader.hpp"
#include "events/source.hpp"

namespace levee::events {

/// Keys are `<prefix>.<member>`, prefix "events.unix_socket".
struct unix_socket_config {
  std::string path;  // a socket file there is replaced; any other kind of file is refused
  uint64_t max_connections = defaults::max_connections;
  uint64_t read_chunk_bytes = defaults::socket_read_chunk_bytes;
  uint64_t max_read_bytes_per_poll = defaults::max_read_bytes_per_poll;
  uint64_t max_accepts_per_poll = defaults::max_accepts_per_poll;
  uint32_t mode = defaults::socket_mode;  // permissions of the socket file
};

/// The error names the key: `events.unix_socket.max_connections = 0: must be ...`.
status validate(const unix_socket_config& config, const std::string& prefix = "events.unix_socket");

class unix_socket_source final : public source {
public:
  /// Binds and listens. Refuses (bad_request, naming the key) a path too long for a socket
  /// address, a path that is not a socket file, and a socket a live process listens on;
  /// removes a stale socket file left by a process that died. Other failures are
  /// storage_error with the system's reason. `config` and `limits` must pass validate().
  static result<std::unique_ptr<unix_socket_source>> listen(
    const unix_socket_config& config, const json_limits& limits,
    const std::string& prefix = "events.unix_socket");

  /// Closes every client and removes the socket file, if it is still ours.
  ~unix_socket_source() override;

  size_t poll(std::vector<event>& out, size_t max_events, int64_t now_ms) override;
  std::string_view kind() const noexcept override { return "unix_socket"; }

  const std::string& path() const noexcept { return config_.path; }
  size_t clients() const noexcept { return clients_.size(); }

private:
  struct client {
    int fd;
    line_reader reader;
  };

  unix_socket_source(unix_socket_config config, json_limits limits, std::string prefix,
                     int listen_fd);
  void accept_clients();
  void refuse(int fd);
  /// Takes the complete lines buffered from `c`, at most `room` events; returns how many.
  size_t drain(client& c, std::vector<event>& out, size_t room, int64_t now_ms);

  unix_socket_config config_;
  json_limits limits_;
  std::string prefix_;
  int listen_fd_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  std::vector<client> clients_;
  size_t next_client_ = 0;  // round robin: who reads first in the next poll
};

} // namespace levee::events
