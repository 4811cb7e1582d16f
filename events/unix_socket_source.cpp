#include "events/unix_socket_source.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace levee::events {

namespace {

const char* file_kind(mode_t mode) {
  if (S_ISREG(mode))
    return "a regular file";
  if (S_ISDIR(mode))
    return "a directory";
  if (S_ISLNK(mode))
    return "a symbolic link";
  if (S_ISFIFO(mode))
    return "a FIFO";
  return "not a socket";
}

status range_error(const std::string& key, uint64_t v, uint64_t lo, uint64_t hi, const char* unit) {
  return status::error(code::bad_request, key + " = " + std::to_string(v) + ": must be between "
                                            + std::to_string(lo) + " and " + std::to_string(hi)
                                            + " " + unit);
}

} // namespace

status validate(const unix_socket_config& config, const std::string& prefix) {
  constexpr size_t max_path = sizeof(sockaddr_un::sun_path) - 1;
  if (config.path.empty())
    return status::error(code::bad_request, prefix + ".path: must not be empty");
  if (config.path.size() > max_path)
    return status::error(code::bad_request,
                         prefix + ".path: " + std::to_string(config.path.size())
                           + " bytes, longer than the " + std::to_string(max_path)
                           + " a UNIX socket address holds");
  if (config.max_connections < 1 || config.max_connections > defaults::max_connections_ceiling)
    return range_error(prefix + ".max_connections", config.max_connections, 1,
                       defaults::max_connections_ceiling, "connections");
  if (config.read_chunk_bytes < 1 || config.read_chunk_bytes > defaults::read_chunk_bytes_ceiling)
    return range_error(prefix + ".read_chunk_bytes", config.read_chunk_bytes, 1,
                       defaults::read_chunk_bytes_ceiling, "bytes");
  if (config.max_read_bytes_per_poll < config.read_chunk_bytes
      || config.max_read_bytes_per_poll > defaults::max_read_bytes_per_poll_ceiling)
    return range_error(prefix + ".max_read_bytes_per_poll", config.max_read_bytes_per_poll,
                       config.read_chunk_bytes, defaults::max_read_bytes_per_poll_ceiling,
                       "bytes (at least read_chunk_bytes)");
  if (config.max_accepts_per_poll < 1 || config.max_accepts_per_poll > defaults::max_connections_ceiling)
    return range_error(prefix + ".max_accepts_per_poll", config.max_accepts_per_poll, 1,
                       defaults::max_connections_ceiling, "connections");
  if (config.mode > 0777)
    return status::error(code::bad_request, prefix + ".mode: must be a permission mode (0 to 0777)");
  return {};
}

result<std::unique_ptr<unix_socket_source>> unix_socket_source::listen(
  const unix_socket_config& config, const json_limits& limits, const std::string& prefix) {
  if (auto st = validate(config, prefix); !st)
    return st;
  const std::string& path = config.path;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  auto* sa = reinterpret_cast<const sockaddr*>(&addr);

  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return status::error(code::bad_request, prefix + ".path '" + path + "' is "
                                                + file_kind(st.st_mode)
                                                + ", not a socket; refusing to remove it");
    // A socket file: live if something accepts connections on it, stale if refused.
    int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (probe < 0)
      return status::error(code::storage_error, "socket: " + errno_text(errno));
    int rc = ::connect(probe, sa, sizeof addr);
    int err = errno;
    ::close(probe);
    if (rc == 0 || err == EAGAIN || err == EINPROGRESS)
      return status::error(code::bad_request, prefix + ".path '" + path
                                                + "': a live process listens on this socket");
    if (err != ECONNREFUSED && err != ENOENT)
      return status::error(code::storage_error,
                           "probing existing socket " + path + ": " + errno_text(err));
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
      return status::error(code::storage_error,
                           "removing stale socket " + path + ": " + errno_text(errno));
  } else if (errno != ENOENT) {
    return status::error(code::storage_error, "lstat " + path + ": " + errno_text(errno));
  }

  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return status::error(code::storage_error, "socket: " + errno_text(errno));
  auto fail = [&](const std::string& what) {
    int e = errno;
    ::close(fd);
    return status::error(code::storage_error, what + " " + path + ": " + errno_text(e));
  };
  if (::bind(fd, sa, sizeof addr) != 0)
    return fail("bind");
  if (::chmod(path.c_str(), config.mode) != 0)
    return fail("chmod");
  int backlog = static_cast<int>(std::min<uint64_t>(config.max_connections, SOMAXCONN));
  if (::listen(fd, backlog) != 0)
    return fail("listen");
  std::unique_ptr<unix_socket_source> src{new unix_socket_source(config, limits, prefix, fd)};
  if (::stat(path.c_str(), &st) == 0) {
    src->dev_ = st.st_dev;
    src->ino_ = st.st_ino;
  }
  return src;
}

unix_socket_source::unix_socket_source(unix_socket_config config, json_limits limits,
                                       std::string prefix, int listen_fd)
    : config_(std::move(config)),
      limits_(limits),
      prefix_(std::move(prefix)),
      listen_fd_(listen_fd) {}

unix_socket_source::~unix_socket_source() {
  for (auto& c : clients_)
    if (c.fd >= 0)
      ::close(c.fd);
  ::close(listen_fd_);
  // Another process may have replaced the file since; only remove the one we made.
  struct stat st {};
  if (::stat(config_.path.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_)
    ::unlink(config_.path.c_str());
}

void unix_socket_source::refuse(int fd) {
  // One line telling the client why, if its socket buffer takes it now; never waits.
  std::string why = "too_many_connections: " + prefix_ + ".max_connections "
                    + std::to_string(config_.max_connections) + " reached\n";
  [[maybe_unused]] auto sent = ::send(fd, why.data(), why.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  ::close(fd);
  ++stats_.connections_refused;
}

void unix_socket_source::accept_clients() {
  for (uint64_t i = 0; i < config_.max_accepts_per_poll; ++i) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == EINTR || err == ECONNABORTED)
        continue;
      if (err != EAGAIN && err != EWOULDBLOCK)
        record_error(status::error(code::storage_error,
                                   "accept on " + config_.path + ": " + errno_text(err)));
      break;
    }
    // Connections still being drained after their peer closed count too: they hold buffers.
    if (clients_.size() >= config_.max_connections) {
      refuse(fd);
      continue;
    }
    clients_.push_back(client{fd, line_reader{limits_.max_line_bytes, config_.read_chunk_bytes}});
    ++stats_.connections_accepted;
  }
  stats_.connections_open = clients_.size();
}

size_t unix_socket_source::drain(client& c, std::vector<event>& out, size_t room, int64_t now_ms) {
  size_t produced = 0;
  while (produced < room) {
    std::string_view line;
    uint64_t length = 0;
    auto got = c.reader.next(line, length);
    if (got == line_reader::item::none)
      break;
    if (got == line_reader::item::too_long)
      take_too_long(length, limits_);
    else if (take_line(line, out, now_ms, limits_))
      ++produced;
  }
  return produced;
}

size_t unix_socket_source::poll(std::vector<event>& out, size_t max_events, int64_t now_ms) {
  accept_clients();
  size_t produced = 0;
  uint64_t bytes = 0;
  // Passes over all clients, one read each per pass, so a fast writer cannot starve the
  // others; stop when the batch is full, the byte budget is spent or nobody had data.
  bool progress = !clients_.empty();
  while (progress && produced < max_events) {
    progress = false;
    const size_t n = clients_.size();
    for (size_t k = 0; k < n && produced < max_events; ++k) {
      client& c = clients_[(next_client_ + k) % n];
      produced += drain(c, out, max_events - produced, now_ms);
      if (produced >= max_events || c.fd < 0 || bytes >= config_.max_read_bytes_per_poll)
        continue;
      size_t room = 0;
      char* into = c.reader.prepare(room);
      ssize_t r = ::recv(c.fd, into, room, 0);
      if (r > 0) {
        c.reader.commit(static_cast<size_t>(r));
        bytes += static_cast<uint64_t>(r);
        stats_.bytes_read += static_cast<uint64_t>(r);
      } else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        continue;
      } else if (r < 0 && errno == EINTR) {
        progress = true;
        continue;
      } else {
        if (r < 0)
          record_error(status::error(code::storage_error,
                                     "recv on " + config_.path + ": " + errno_text(errno)));
        // The peer is gone: its last line counts even without a newline.
        ::close(c.fd);
        c.fd = -1;
        c.reader.end_of_stream();
      }
      progress = true;
      produced += drain(c, out, max_events - produced, now_ms);
    }
  }
  if (!clients_.empty())
    next_client_ = (next_client_ + 1) % clients_.size();

  // Forget clients that are closed and fully drained.
  auto gone = [](const client& c) { return c.fd < 0 && c.reader.drained(); };
  size_t before = clients_.size();
  clients_.erase(std::remove_if(clients_.begin(), clients_.end(), gone), clients_.end());
  stats_.connections_closed += before - clients_.size();
  stats_.connections_open = clients_.size();
  if (!clients_.empty())
    next_client_ %= clients_.size();
  else
    next_client_ = 0;
  return produced;
}

} // namespace levee::events
