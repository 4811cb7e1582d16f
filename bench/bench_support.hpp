#pragma once
// What the benchmarks that talk over 127.0.0.1 share: loopback sockets with TCP_NODELAY,
// whole reads and writes, and percentiles; for those that start `levee node` processes,
// where the binary is, a log's last line, and removing their temp dir from a signal handler.

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <sys/wait.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

namespace levee::bench {

inline void set_nodelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

inline sockaddr_in loopback(uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

/// A listening socket on 127.0.0.1 and a free port (in `port`); exits on failure.
inline int listen_loopback(uint16_t& port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  auto addr = loopback(0);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 64) != 0) {
    std::perror("bench: listen on 127.0.0.1");
    std::exit(1);
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  port = ntohs(addr.sin_port);
  return fd;
}

/// A connection to 127.0.0.1:port with TCP_NODELAY, or -1.
inline int connect_loopback(uint16_t port, bool nodelay = true) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  auto addr = loopback(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  if (nodelay)
    set_nodelay(fd);
  return fd;
}

inline bool read_exact(int fd, char* buf, size_t n) {
  while (n > 0) {
    auto r = ::recv(fd, buf, n, 0);
    if (r <= 0)
      return false;
    buf += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

inline bool write_all(int fd, const char* buf, size_t n) {
  while (n > 0) {
    auto r = ::send(fd, buf, n, MSG_NOSIGNAL);
    if (r <= 0)
      return false;
    buf += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

/// The p-quantile (0..1) of `xs` (nearest rank below).
inline double percentile(std::vector<double> xs, double p) {
  std::sort(xs.begin(), xs.end());
  return xs[static_cast<size_t>(p * static_cast<double>(xs.size() - 1))];
}

/// The `levee` binary of the build this bench belongs to (<build>/apps/levee).
inline std::string default_levee_binary() {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec)
    return "apps/levee";
  return (self.parent_path().parent_path() / "apps" / "levee").string();
}

/// The last non-empty line of the file at `path` (a node's log), for a failure message.
inline std::string last_line(const std::string& path) {
  std::ifstream in(path);
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty())
      last = line;
  return last.empty() ? "(no output)" : last;
}

/// `rm -rf dir` from a signal handler: fork, execv and waitpid are async-signal-safe.
inline void remove_dir_from_signal(char* dir) {
  if (dir[0] == '\0')
    return;
  char rm[] = "/bin/rm", flags[] = "-rf";
  char* argv[] = {rm, flags, dir, nullptr};
  if (auto pid = ::fork(); pid == 0) {
    ::execv(rm, argv);
    ::_exit(127);
  } else if (pid > 0) {
    ::waitpid(pid, nullptr, 0);
  }
}

} // namespace levee::bench
