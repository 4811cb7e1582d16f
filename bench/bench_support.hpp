#pragma once
// What the benchmarks that talk over 127.0.0.1 share: loopback sockets with TCP_NODELAY,
// whole reads and writes, and percentiles; for those that start `levee node` processes,
// where the binary is, a log's last line, and removing their temp dir from a signal handler;
// for those that start servers of their own (query_bench, stream_bench), child processes
// that never outlive the bench, a temp dir removed at exit, pinning to one CPU, finding a
// program and waiting for its port.

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>

#ifdef LEVEE_BENCH_NATS
#include <nats/nats.h>
#endif

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

/// The raw TCP echo, the floor of net_bench and load_bench: accepts on `lfd` for ever and
/// echoes length-prefixed frames (u32 big-endian length, then that many bytes) with a
/// thread per connection, one read and one write per frame, no framework.
inline void serve_raw_echo(int lfd) {
  for (;;) {
    int fd = ::accept(lfd, nullptr, nullptr);
    if (fd < 0)
      continue;
    std::thread([fd] {
      set_nodelay(fd);
      std::vector<char> buf(4 + (1 << 20));
      for (;;) {
        if (!read_exact(fd, buf.data(), 4))
          break;
        uint32_t len = ntohl(*reinterpret_cast<uint32_t*>(buf.data()));
        if (len > (1u << 20) || !read_exact(fd, buf.data() + 4, len)
            || !write_all(fd, buf.data(), 4 + len))
          break;
      }
      ::close(fd);
    }).detach();
  }
}

/// Request/response on `fd` with `window` requests in flight and nothing measured: writes
/// `window` copies of `request`, then one more (one write each) for each answer of
/// `answer_bytes` read, while `more(sent)` says so; returns the answers read (0 when the
/// connection failed). Answers are read one at a time (net_bench's floor, which the
/// figures in RESULTS.md were taken with) or, with `bulk_reads`, as much as one read
/// returns, up to 64 KiB (as levee::client reads: load_bench's floor of `levee load`).
template <class More>
uint64_t run_window(int fd, const std::string& request, size_t answer_bytes, int window, More more,
                    bool bulk_reads = false) {
  std::vector<char> back(bulk_reads ? std::max<size_t>(answer_bytes, 64 * 1024) : answer_bytes);
  uint64_t sent = 0, received = 0;
  size_t partial = 0;  // bytes of an answer not complete yet (bulk reads)
  for (; sent < static_cast<uint64_t>(window) && more(sent); ++sent)
    if (!write_all(fd, request.data(), request.size()))
      return 0;
  while (received < sent) {
    uint64_t answers = 1;
    if (!bulk_reads) {
      if (!read_exact(fd, back.data(), back.size()))
        return 0;
    } else {
      auto n = ::recv(fd, back.data(), back.size(), 0);
      if (n <= 0)
        return 0;
      partial += static_cast<size_t>(n);
      answers = partial / answer_bytes;
      partial %= answer_bytes;
    }
    for (uint64_t i = 0; i < answers; ++i) {
      ++received;
      if (more(sent)) {
        if (!write_all(fd, request.data(), request.size()))
          return 0;
        ++sent;
      }
    }
  }
  return received;
}

/// The p-quantile (0..1) of `xs` (nearest rank below).
inline double percentile(std::vector<double> xs, double p) {
  std::sort(xs.begin(), xs.end());
  return xs[static_cast<size_t>(p * static_cast<double>(xs.size() - 1))];
}

/// A command-line number: whole, decimal, at least `min`, into `out`; false for anything
/// else (a sign, trailing text, out of range).
inline bool parse_number(const char* text, uint64_t min, uint64_t& out) {
  char* end = nullptr;
  errno = 0;
  auto v = std::strtoull(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < min || text[0] == '-')
    return false;
  out = v;
  return true;
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

// -- child processes: every one is tracked and killed at exit, on a signal or the watchdog --

inline char bench_name[32] = "bench";  // for messages, the signal handler's too

// Fixed storage, so the signal handler can read it without allocating.
inline constexpr int max_children = 32;
inline pid_t children[max_children];
inline std::atomic<int> child_count{0};

/// A slot a stopped child left (-1) is used again: a bench that starts processes round
/// after round (query_bench --rounds) would otherwise run out of slots, and a child it
/// could not track would be neither stopped nor killed at exit (two satellites then wrote
/// one store). With every slot taken by a live child, the bench says so and exits.
inline void track(pid_t pid) {
  int n = child_count.load();
  for (int i = 0; i < n; ++i)
    if (children[i] == -1) {
      children[i] = pid;
      return;
    }
  if (n < max_children) {
    children[n] = pid;
    child_count.store(n + 1);
    return;
  }
  ::kill(pid, SIGKILL);
  std::fprintf(stderr, "%s: more than %d child processes at once; stopping\n", bench_name,
               max_children);
  std::exit(1);
}

/// Async-signal-safe: SIGKILL to each child's process group and to the child itself.
inline void kill_all_children() {
  for (int i = 0; i < child_count.load(); ++i)
    if (children[i] > 0) {
      ::kill(-children[i], SIGKILL);
      ::kill(children[i], SIGKILL);
    }
}

inline void reap_all_children() {
  kill_all_children();
  for (int i = 0; i < child_count.load(); ++i)
    if (children[i] > 0) {
      ::waitpid(children[i], nullptr, 0);
      children[i] = -1;
    }
}

/// Kills and reaps `pid` if it is a child not reaped yet (so a recycled pid is never hit).
inline void stop(pid_t pid) {
  for (int i = 0; i < child_count.load(); ++i)
    if (pid > 0 && children[i] == pid) {
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      children[i] = -1;
    }
}

inline std::string temp_dir;  // removed at exit
inline pid_t bench_pid = 0;   // forked children inherit the atexit handler: only this one acts
inline char temp_dir_for_signal[64];  // a copy of temp_dir the signal handler can use

inline void cleanup_at_exit() {
  if (::getpid() != bench_pid)
    return;
  reap_all_children();
  if (!temp_dir.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(temp_dir, ec);
  }
}

extern "C" inline void levee_bench_on_fatal_signal(int sig) {
  reap_all_children();  // kill and waitpid are async-signal-safe; reaped, none is left a zombie
  if (sig == SIGALRM) {
    const char msg[] = ": watchdog expired; children killed\n";
    ::write(2, bench_name, std::strlen(bench_name));
    ::write(2, msg, sizeof msg - 1);
  }
  remove_dir_from_signal(temp_dir_for_signal);
  ::_exit(128 + sig);
}

/// What a bench that starts processes does first (`name`: its program's, for messages and
/// the temp dir's name): a temp dir /tmp/levee-<name>-XXXXXX
/// (temp_dir), removed at exit with every child killed, also on SIGINT/SIGTERM/SIGHUP and
/// when the watchdog (`watchdog_seconds`, whatever hangs) expires. False (said) on failure.
inline bool guard_children(const char* name, unsigned watchdog_seconds) {
  std::snprintf(bench_name, sizeof bench_name, "%s", name);
  std::signal(SIGPIPE, SIG_IGN);
  for (int s : {SIGINT, SIGTERM, SIGALRM, SIGHUP})
    std::signal(s, levee_bench_on_fatal_signal);
  ::alarm(watchdog_seconds);
  std::snprintf(temp_dir_for_signal, sizeof temp_dir_for_signal, "/tmp/levee-%s-XXXXXX", name);
  if (::mkdtemp(temp_dir_for_signal) == nullptr) {
    std::fprintf(stderr, "%s: cannot create a temp dir under /tmp: %s\n", name,
                 std::strerror(errno));
    temp_dir_for_signal[0] = '\0';
    return false;
  }
  temp_dir = temp_dir_for_signal;
  bench_pid = ::getpid();
  std::atexit(cleanup_at_exit);
  return true;
}

/// Runs this process, and every process it starts after, on CPU `cpu` only (no wake-up
/// crosses CPUs: what each path costs by itself). False (said) when it cannot.
inline bool pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (::sched_setaffinity(0, sizeof set, &set) == 0)
    return true;
  std::fprintf(stderr, "%s: cannot run on CPU %d: %s\n", bench_name, cpu, std::strerror(errno));
  return false;
}

/// Forks; the child runs `body` in its own process group and dies with this process
/// (PR_SET_PDEATHSIG), so nothing outlives the bench even if it is SIGKILLed.
template <class F>
pid_t fork_child(F body) {
  std::fflush(nullptr);
  auto pid = ::fork();
  if (pid < 0) {
    std::fprintf(stderr, "%s: fork: %s\n", bench_name, std::strerror(errno));
    std::exit(1);
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() == 1)
      ::_exit(1);
    for (int s : {SIGINT, SIGTERM, SIGALRM, SIGHUP})
      std::signal(s, SIG_DFL);
    child_count.store(0);  // its siblings are not its to kill
    body();
    ::_exit(0);
  }
  ::setpgid(pid, pid);  // both sides set it, so it holds whichever runs first
  track(pid);
  return pid;
}

/// Starts `argv` with stdout and stderr going to `log` (or /dev/null); with
/// `stderr_too = false` its stderr stays this process's (a progress line the user sees).
inline pid_t spawn_program(const std::vector<std::string>& argv, const std::string& log,
                           bool stderr_too = true) {
  std::vector<char*> args;
  for (auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  return fork_child([&] {
    int fd = ::open(log.empty() ? "/dev/null" : log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      if (stderr_too)
        ::dup2(fd, 2);
      ::close(fd);
    }
    ::execv(args[0], args.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  });
}

/// The exit status if `pid` has ended (reaping it), else nothing.
inline std::optional<int> exited(pid_t pid) {
  int st = 0;
  if (::waitpid(pid, &st, WNOHANG) != pid)
    return std::nullopt;
  for (int i = 0; i < child_count.load(); ++i)
    if (children[i] == pid)
      children[i] = -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/// Waits for child `pid` to end and reaps it: its exit status (128 + signal when killed)
/// and the CPU time it used in `usage`. Past `bound` it is killed (`timed_out` set), so one
/// hung program is reported as such instead of running into the watchdog.
inline int wait_child(pid_t pid, rusage& usage, std::chrono::milliseconds bound, bool& timed_out) {
  auto deadline = std::chrono::steady_clock::now() + bound;
  timed_out = false;
  int st = 0;
  for (;;) {
    auto r = ::wait4(pid, &st, WNOHANG, &usage);
    if (r == pid || (r < 0 && errno != EINTR))
      break;
    if (!timed_out && std::chrono::steady_clock::now() >= deadline) {
      timed_out = true;
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (int i = 0; i < child_count.load(); ++i)
    if (children[i] == pid)
      children[i] = -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/// A port nobody listens on now (bound to 0 and released; another process could take it
/// before the caller does, which on an idle loopback does not happen in practice).
inline uint16_t free_port() {
  uint16_t port = 0;
  ::close(listen_loopback(port));
  return port;
}

/// Waits until something accepts on `port` (true), or `pid` exits (false, `exit_code` set)
/// or `bound` passes (false).
inline bool wait_for_port(uint16_t port, pid_t pid, std::chrono::milliseconds bound,
                          std::optional<int>& exit_code) {
  auto deadline = std::chrono::steady_clock::now() + bound;
  while (std::chrono::steady_clock::now() < deadline) {
    if (int fd = connect_loopback(port); fd >= 0) {
      ::close(fd);
      return true;
    }
    if ((exit_code = exited(pid)))
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

/// The path of program `name` on PATH or in the sbin directories (Debian puts nats-server
/// in /usr/sbin, which a user's PATH often lacks); empty when not found.
inline std::string find_program(const std::string& name) {
  std::string path = std::getenv("PATH") ? std::getenv("PATH") : "";
  path += ":/usr/sbin:/usr/local/sbin:/sbin";
  size_t start = 0;
  while (start <= path.size()) {
    auto end = path.find(':', start);
    if (end == std::string::npos)
      end = path.size();
    auto candidate = path.substr(start, end - start) + "/" + name;
    if (end > start && ::access(candidate.c_str(), X_OK) == 0)
      return candidate;
    start = end + 1;
  }
  return {};
}

#ifdef LEVEE_BENCH_NATS

/// A connection to the nats-server on 127.0.0.1:port, or nullptr (said). "Send asap": a
/// publish is written at once instead of being handed to the library's flusher thread
/// (measured in query_bench: ~3 ms vs ~0.3 ms p50 sequential, and faster with 64 in flight).
inline natsConnection* nats_connect(uint16_t port) {
  natsOptions* opts = nullptr;
  natsOptions_Create(&opts);
  auto url = "nats://127.0.0.1:" + std::to_string(port);
  natsOptions_SetURL(opts, url.c_str());
  natsOptions_SetSendAsap(opts, true);
  natsConnection* nc = nullptr;
  auto s = natsConnection_Connect(&nc, opts);
  natsOptions_Destroy(opts);
  if (s != NATS_OK) {
    std::fprintf(stderr, "%s: NATS connect: %s\n", bench_name, natsStatus_GetText(s));
    return nullptr;
  }
  return nc;
}

#endif  // LEVEE_BENCH_NATS

/// Starts nats-server on 127.0.0.1 and a free port, with `extra` arguments (e.g. "-js",
/// "-sd", dir), logging to <temp_dir>/<log_name>, and waits until it accepts (10 s at
/// most). Its pid and port; nothing (with `why`) when it is not installed or did not start.
/// A tracked child: stop(pid) ends it, and it never outlives the bench.
inline std::optional<std::pair<pid_t, uint16_t>> start_nats_server(
  const std::vector<std::string>& extra, std::string& why,
  const std::string& log_name = "nats-server.log") {
  auto server = find_program("nats-server");
  if (server.empty()) {
    why = "nats-server not installed: scripts/install-deps bench";
    return std::nullopt;
  }
  auto port = free_port();
  std::vector<std::string> argv{server, "-a", "127.0.0.1", "-p", std::to_string(port)};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto log = temp_dir + "/" + log_name;
  auto pid = spawn_program(argv, log);
  std::optional<int> exit_code;
  if (!wait_for_port(port, pid, std::chrono::seconds(10), exit_code)) {
    why = "nats-server did not start: " + last_line(log);
    stop(pid);
    return std::nullopt;
  }
  return std::pair{pid, port};
}

} // namespace levee::bench
