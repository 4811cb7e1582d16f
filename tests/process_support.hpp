#pragma once
// Helpers for tests that run real processes: a child process whose stdout is a pipe the
// test reads line by line with a bound, killed and reaped when the guard goes away (also
// when an assertion failed); a temporary directory removed afterwards; a free loopback
// port. POSIX only.

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace levee::test {

/// A directory under /tmp, removed with everything in it when this goes away.
class temp_dir {
public:
  explicit temp_dir(const std::string& prefix = "levee-test") {
    std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) != nullptr)
      path_ = buf.data();
  }
  ~temp_dir() {
    if (!path_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(path_, ec);
    }
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  bool ok() const noexcept { return !path_.empty(); }
  const std::string& path() const noexcept { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

private:
  std::string path_;
};

inline void write_file(const std::string& path, const std::string& text) {
  std::ofstream out{path, std::ios::binary | std::ios::trunc};
  out << text;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

/// Waits until the file at `path` contains `needle`: looks again whenever it is written
/// (inotify), not on a timer. False after `bound`, or when the file cannot be watched.
inline bool wait_for_file_text(const std::string& path, const std::string& needle,
                               std::chrono::milliseconds bound) {
  int fd = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (fd < 0)
    return false;
  // Watched before the first look, so no write falls between the look and the wait.
  bool watched = ::inotify_add_watch(fd, path.c_str(), IN_MODIFY | IN_CLOSE_WRITE) >= 0;
  auto deadline = std::chrono::steady_clock::now() + bound;
  bool found = false;
  while (watched && !(found = read_file(path).find(needle) != std::string::npos)) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                  deadline - std::chrono::steady_clock::now())
                  .count();
    if (left <= 0)
      break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) < 0 && errno != EINTR)
      break;
    char events[4096];
    while (::read(fd, events, sizeof events) > 0) {
    }
  }
  ::close(fd);
  return found;
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to :0, read, closed). Another
/// process could take it before the caller binds it; with the kernel handing out ports
/// from a wide range in turn, that does not happen in practice.
/// Bytes waiting unread in the receive queue of `pid`'s TCP connection to `remote_port`
/// (IPv4, from /proc/<pid>/net/tcp and the sockets among its descriptors); nullopt when it
/// has no such connection. For a test that must know a frame has reached a stopped peer.
inline std::optional<uint64_t> tcp_unread_bytes(pid_t pid, uint16_t remote_port) {
  namespace fs = std::filesystem;
  std::vector<std::string> inodes;
  std::error_code ec;
  for (auto& fd : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    auto target = fs::read_symlink(fd.path(), ec);
    auto t = target.string();
    if (!ec && t.rfind("socket:[", 0) == 0)
      inodes.push_back(t.substr(8, t.size() - 9));
  }
  std::ifstream tcp("/proc/" + std::to_string(pid) + "/net/tcp");
  std::string line;
  std::getline(tcp, line);  // the header
  while (std::getline(tcp, line)) {
    std::istringstream in(line);
    std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
    in >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >> timeout
      >> inode;
    auto colon = remote.find(':');
    if (colon == std::string::npos
        || std::stoul(remote.substr(colon + 1), nullptr, 16) != remote_port)
      continue;
    for (auto& mine : inodes)
      if (mine == inode)
        return std::stoull(queues.substr(queues.find(':') + 1), nullptr, 16);
  }
  return std::nullopt;
}

inline bool can_bind_loopback(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

/// A loopback port to give a node that must know its port before it starts (Raft members,
/// advertised addresses). Drawn at random *below* the kernel's ephemeral range
/// (net.ipv4.ip_local_port_range, 32768-60999 by default): every outgoing connection of
/// every test running beside this one takes its source port from that range, so a port
/// probed there (bind to 0) could be taken by some client before the node binds it, which
/// under `ctest -j` made brokers fail to start now and then. Never the same port twice in
/// one process; the port could still be bound between the probe and the node's bind by
/// another process probing the same way, which the randomness makes unlikely.
inline uint16_t probe_free_port() {
  static std::mutex mu;
  static std::set<uint16_t> given;
  static std::mt19937 rng{static_cast<uint32_t>(::getpid())
                          ^ static_cast<uint32_t>(std::chrono::steady_clock::now().time_since_epoch().count())};
  int low = 32768;
  if (std::ifstream range{"/proc/sys/net/ipv4/ip_local_port_range"}; range)
    range >> low;
  std::lock_guard<std::mutex> guard{mu};
  if (low > 12000) {
    std::uniform_int_distribution<int> pick{10000, low - 1};
    for (int tries = 0; tries < 500; ++tries) {
      auto port = static_cast<uint16_t>(pick(rng));
      if (given.count(port) == 0 && can_bind_loopback(port)) {
        given.insert(port);
        return port;
      }
    }
  }
  // No room below the range: let the kernel choose (the old way).
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    socklen_t len = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
      port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

/// A child process: argv[0] is executed as it is (a path), stdout is a pipe read by
/// read_line(), stderr goes to `stderr_path` (appended) or is inherited when empty. The
/// destructor continues a stopped child, kills it with SIGKILL and reaps it, so no test
/// leaves a process behind.
class child_process {
public:
  child_process() = default;
  child_process(const std::vector<std::string>& argv, const std::string& stderr_path = {}) {
    start(argv, stderr_path);
  }
  ~child_process() { kill_and_reap(); }
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  /// False when the pipe or fork failed.
  bool start(const std::vector<std::string>& argv, const std::string& stderr_path = {}) {
    kill_and_reap();
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
      return false;
    std::vector<std::string> args = argv;
    std::vector<char*> cargs;
    for (auto& a : args)
      cargs.push_back(a.data());
    cargs.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) {
      ::close(fds[0]);
      ::close(fds[1]);
      return false;
    }
    if (pid == 0) {
      // The child: only async-signal-safe calls until exec.
      ::dup2(fds[1], STDOUT_FILENO);
      if (!stderr_path.empty()) {
        int err = ::open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (err >= 0)
          ::dup2(err, STDERR_FILENO);
      }
      ::execv(cargs[0], cargs.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    pid_ = pid;
    out_fd_ = fds[0];
    buffer_.clear();
    exit_status_.reset();
    return true;
  }

  pid_t pid() const noexcept { return pid_; }
  bool running() const noexcept { return pid_ > 0 && !exit_status_; }

  bool signal(int sig) {
    if (!running())
      return false;
    return ::kill(pid_, sig) == 0;
  }

  /// SIGSTOP, and returns once the kernel reports the child stopped, so that everything
  /// sent to it from now on waits. False if it exited instead.
  bool pause() {
    if (!signal(SIGSTOP))
      return false;
    // The kernel reports the stop (or an exit, left unreaped for wait_exit) to the parent:
    // SIGSTOP cannot be caught or ignored, so this returns as soon as it is delivered.
    siginfo_t info{};
    for (;;) {
      if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WSTOPPED | WEXITED | WNOWAIT) == 0)
        break;
      if (errno != EINTR)
        return false;
    }
    if (info.si_code != CLD_STOPPED)
      return false;  // it exited instead
    // Consume the stop report, so that a later pause waits for its own stop.
    while (::waitid(P_PID, static_cast<id_t>(pid_), &info, WSTOPPED) != 0 && errno == EINTR) {
    }
    return true;
  }
  bool resume() { return signal(SIGCONT); }

  /// The next line of stdout (without its newline), or nullopt if none came within the
  /// bound or the child closed stdout.
  std::optional<std::string> read_line(std::chrono::milliseconds bound) {
    auto deadline = std::chrono::steady_clock::now() + bound;
    for (;;) {
      auto nl = buffer_.find('\n');
      if (nl != std::string::npos) {
        auto line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return line;
      }
      if (out_fd_ < 0)
        return std::nullopt;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
      if (left <= 0)
        return std::nullopt;
      pollfd p{out_fd_, POLLIN, 0};
      int n = ::poll(&p, 1, static_cast<int>(left));
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return std::nullopt;
      char buf[4096];
      auto got = ::read(out_fd_, buf, sizeof buf);
      if (got < 0 && errno == EINTR)
        continue;
      if (got <= 0) {
        ::close(out_fd_);
        out_fd_ = -1;
        continue;
      }
      buffer_.append(buf, static_cast<size_t>(got));
    }
  }

  /// Reads lines until one contains `needle`; returns it, or nullopt after the bound.
  std::optional<std::string> wait_for_line(const std::string& needle,
                                           std::chrono::milliseconds bound) {
    auto deadline = std::chrono::steady_clock::now() + bound;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0)
        return std::nullopt;
      auto line = read_line(left);
      if (!line)
        return std::nullopt;
      seen_.push_back(*line);
      if (line->find(needle) != std::string::npos)
        return line;
    }
  }

  /// Every line wait_for_line() has read so far (for failure messages).
  const std::vector<std::string>& lines_seen() const noexcept { return seen_; }

  /// Waits for the child to exit; its exit code (128 + signal when a signal ended it), or
  /// nullopt after the bound.
  std::optional<int> wait_exit(std::chrono::milliseconds bound) {
    if (exit_status_)
      return exit_status_;
    if (pid_ <= 0)
      return std::nullopt;
    // A pidfd becomes readable when the child exits: wait for that, with the bound.
    int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    if (pidfd < 0)
      return std::nullopt;
    pollfd p{pidfd, POLLIN, 0};
    int ready = 0;
    do
      ready = ::poll(&p, 1, static_cast<int>(bound.count()));
    while (ready < 0 && errno == EINTR);
    ::close(pidfd);
    if (ready <= 0)
      return std::nullopt;  // still running after the bound
    int status = 0;
    if (::waitpid(pid_, &status, 0) != pid_)
      return std::nullopt;
    exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status)
                                     : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return exit_status_;
  }

  /// Everything left on stdout until the child closes it (bounded).
  std::string read_rest(std::chrono::milliseconds bound) {
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + bound;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0)
        break;
      auto line = read_line(left);
      if (!line)
        break;
      out += *line + "\n";
    }
    return out + buffer_;
  }

  void kill_and_reap() {
    if (pid_ > 0 && !exit_status_) {
      // SIGKILL ends a stopped child too; a SIGCONT first would let it run for a moment
      // (and answer what it was holding), which tests of a satellite killed while
      // stopped must not see.
      ::kill(pid_, SIGKILL);
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      exit_status_ = 128 + SIGKILL;
    }
    if (out_fd_ >= 0) {
      ::close(out_fd_);
      out_fd_ = -1;
    }
    pid_ = -1;
  }

private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string buffer_;
  std::vector<std::string> seen_;
  std::optional<int> exit_status_;
};

/// An INI file as sections of keys, in order; set() replaces a key.
class ini {
public:
  ini& set(const std::string& section, const std::string& key, const std::string& value) {
    auto& s = section_(section);
    for (auto& kv : s.second)
      if (kv.first == key) {
        kv.second = value;
        return *this;
      }
    s.second.emplace_back(key, value);
    return *this;
  }
  ini& erase(const std::string& section, const std::string& key) {
    auto& s = section_(section);
    s.second.erase(std::remove_if(s.second.begin(), s.second.end(),
                                  [&](auto& kv) { return kv.first == key; }),
                   s.second.end());
    return *this;
  }
  std::string text() const {
    std::string out;
    for (auto& [name, keys] : sections_) {
      out += "[" + name + "]\n";
      for (auto& [k, v] : keys)
        out += k + " = " + v + "\n";
      out += "\n";
    }
    return out;
  }

private:
  using section = std::pair<std::string, std::vector<std::pair<std::string, std::string>>>;
  section& section_(const std::string& name) {
    for (auto& s : sections_)
      if (s.first == name)
        return s;
    sections_.push_back({name, {}});
    return sections_.back();
  }
  std::vector<section> sections_;
};

} // namespace levee::test
