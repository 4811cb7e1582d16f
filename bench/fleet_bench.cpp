// One `levee node` server against a fleet of simulated satellites (issue 14): for N = 1k,
// 10k and 100k (up to --max), the fleet simulator (tests/support/fleet.hpp: one process,
// one epoll thread, one real TCP connection per satellite, the wire protocol as `levee
// node` satellites speak it) registers N satellites against a fresh server and measures:
//
//   registration     satellites registered per second (N at --concurrency at a time)
//   RSS / satellite  the server's VmRSS (/proc/<pid>/status) after registration minus before,
//                    over N
//   CPU / heartbeat  the server's utime + stime (/proc/<pid>/stat) over a steady window,
//                    over the heartbeats answered in it; and its CPU share
//   fan-out          p50 / max of a query to every satellite, and to 10 (a label selects
//                    them), through the client library
//   satellites       p50 / max of a `satellites` request (what `levee satellites` asks)
//   detection        1% killed (sockets closed): until the server lists them all
//                    disconnected; 1% silent (no heartbeats, connection kept): the same
//   SIGTERM          until the server exits
//
// The simulator's own CPU share in the steady window is printed too: near 100% of a core,
// the simulator, not the server, was the limit. A size whose descriptors this process
// cannot have (RLIMIT_NOFILE, raised up to what is allowed) is skipped, saying so.
//
// It never hangs: every step is bounded, a server that does not answer is reported as
// "server hung (no answer within X s)" and killed, and an alarm kills everything past
// --watchdog seconds. Every child is killed at exit, also on a signal.
//
// Run: build-release/bench/fleet_bench [--levee PATH] [--max N] [--heartbeat-ms MS]
//      [--concurrency C] [--json]; figures in bench/RESULTS.md.

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench_support.hpp"
#include "levee/client.hpp"
#include "net/satellite.pb.h"
#include "tests/support/fleet.hpp"

namespace {

using namespace std::chrono;
namespace fs = std::filesystem;
using levee::bench::default_levee_binary;
using levee::bench::last_line;
using levee::bench::parse_number;
using levee::bench::percentile;

constexpr auto answer_bound = seconds(10);  // a server that takes longer "hung"
constexpr uint64_t unhealthy_after = 3;     // the shipped configs/server.ini's
constexpr uint64_t disconnect_after = 10;

// -- the server process: killed at exit, on a signal and by the watchdog -----------------

std::atomic<pid_t> server_pid{0};
std::string temp_dir;
char temp_dir_for_signal[64];
pid_t bench_pid = 0;

void kill_server() {
  if (auto p = server_pid.exchange(0); p > 0) {
    ::kill(p, SIGKILL);
    ::waitpid(p, nullptr, 0);
  }
}

void cleanup_at_exit() {
  if (::getpid() != bench_pid)
    return;
  kill_server();
  if (!temp_dir.empty()) {
    std::error_code ec;
    fs::remove_all(temp_dir, ec);
  }
}

extern "C" void on_fatal_signal(int sig) {
  if (auto p = server_pid.load(); p > 0)
    ::kill(p, SIGKILL);
  if (sig == SIGALRM) {
    const char msg[] = "fleet_bench: watchdog expired; server hung or the run too long: killed\n";
    ::write(2, msg, sizeof msg - 1);
  }
  levee::bench::remove_dir_from_signal(temp_dir_for_signal);
  ::_exit(128 + sig);
}

pid_t spawn(const std::vector<std::string>& argv, const std::string& log) {
  std::vector<char*> args;
  for (auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::fflush(nullptr);
  auto pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    for (int s : {SIGINT, SIGTERM, SIGALRM, SIGHUP})
      std::signal(s, SIG_DFL);
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  return pid;
}

std::optional<int> exited(pid_t pid) {
  int st = 0;
  if (::waitpid(pid, &st, WNOHANG) != pid)
    return std::nullopt;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/// VmRSS of `pid` in bytes (0 if unknown).
uint64_t rss_bytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0)
      return std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
  return 0;
}

/// utime + stime of `pid` in seconds.
double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = text.rfind(')');
  if (close == std::string::npos)
    return 0;
  std::istringstream rest(text.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  // After the command: state (3), ... utime is field 14, stime 15 (proc(5)).
  for (int f = 3; f <= 15 && rest >> field; ++f) {
    if (f == 14)
      utime = std::strtoull(field.c_str(), nullptr, 10);
    if (f == 15)
      stime = std::strtoull(field.c_str(), nullptr, 10);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// -- one size ------------------------------------------------------------------------------

struct figures {
  size_t n = 0;
  std::string skipped;    // why this size did not run
  std::string failure;    // what went wrong (the figures after it are missing)
  size_t registered = 0;
  double register_s = 0;
  double registrations_per_s = 0;
  double rss_per_satellite_bytes = 0;
  double cpu_per_heartbeat_us = 0;
  double server_cpu_share = 0;  // of one CPU, in the steady window
  double fleet_cpu_share = 0;   // the simulator's, same window
  double heartbeats_per_s = 0;
  double heartbeat_rtt_p50_ms = 0, heartbeat_rtt_p99_ms = 0;
  double fan_all_p50_ms = 0, fan_all_max_ms = 0;
  uint64_t fan_all_rows = 0;
  double fan_ten_p50_ms = 0, fan_ten_max_ms = 0;
  double list_p50_ms = 0, list_max_ms = 0;
  double killed_detect_ms = 0, silent_detect_ms = 0;
  double sigterm_ms = 0;
};

struct options {
  std::string levee;
  size_t max = 10000;
  uint64_t heartbeat_ms = 1000;
  size_t concurrency = 64;
  bool json = false;
};

std::string write_config(const std::string& dir, uint16_t port, size_t n, const options& o) {
  auto path = dir + "/server.ini";
  auto room = std::to_string(n + 1000);
  auto mailbox = std::to_string(4 * n + 8192);
  std::ofstream(path) << "[node]\nroles = server\n"
                      << "[server]\nlisten = 127.0.0.1:" << port << "\n"
                      << "satellite_token = fleet-token\n"
                      << "heartbeat_interval_ms = " << o.heartbeat_ms << "\n"
                      << "unhealthy_after = " << unhealthy_after << "\n"
                      << "disconnect_after = " << disconnect_after << "\n"
                      << "max_satellites = " << room << "\n"
                      << "[net]\nmax_connections = " << room << "\n"
                      << "[limits.registry]\nmailbox_capacity = " << mailbox << "\n"
                      << "[limits.server]\nmailbox_capacity = " << mailbox << "\n";
  return path;
}

/// One request's round trip in ms, or nullopt (with `why`) when it was not answered.
std::optional<double> timed_request(levee::client& c, const char* target, const std::string& payload,
                                    std::string& why) {
  auto start = steady_clock::now();
  if (!c.connected()) {
    // The server closed an idle client (net.idle_timeout_ms) while the fleet registered.
    if (auto st = c.connect_with_backoff(answer_bound); !st) {
      why = st.to_string();
      return std::nullopt;
    }
    start = steady_clock::now();
  }
  auto r = c.request(target, payload, answer_bound);
  if (!r.ok()) {
    why = r.rejected ? r.rejected->to_string() : "no answer";
    return std::nullopt;
  }
  return duration<double, std::milli>(steady_clock::now() - start).count();
}

/// A fan-out read to its end: its time in ms and rows, or nullopt (with `why`).
std::optional<double> timed_fan_out(levee::client& c, const levee::wire::QueryRequest& q,
                                    uint64_t& rows, std::string& why) {
  if (!c.connected())
    if (auto st = c.connect_with_backoff(answer_bound); !st) {
      why = st.to_string();
      return std::nullopt;
    }
  auto start = steady_clock::now();
  uint64_t id = 0;
  if (auto refused = c.send_stream_request("query", q.SerializeAsString(), id)) {
    why = refused->to_string();
    return std::nullopt;
  }
  rows = 0;
  for (;;) {
    auto r = c.receive(answer_bound + seconds(30));
    if (r.rejected && (r.request_id == id || r.request_id == 0)) {
      why = r.rejected->to_string();
      return std::nullopt;
    }
    if (r.request_id != id)
      continue;
    if (r.end_of_stream)
      return duration<double, std::milli>(steady_clock::now() - start).count();
    if (r.batch) {
      levee::wire::ResultBatch b;
      if (b.ParseFromString(*r.payload))
        rows += static_cast<uint64_t>(b.events_size());
    }
  }
}

/// The states of `ids` in the server's list: how many are disconnected; nullopt if the
/// server did not answer.
std::optional<size_t> disconnected_among(levee::client& c, const std::vector<std::string>& ids,
                                         std::string& why) {
  if (!c.connected())
    if (auto st = c.connect_with_backoff(answer_bound); !st) {
      why = st.to_string();
      return std::nullopt;
    }
  // The list is paged: every page of the disconnected ones (the server's state filter).
  levee::wire::SatellitesRequest req;
  req.add_states(levee::wire::SatelliteInfo::disconnected);
  std::vector<std::string> down;
  do {
    auto r = c.request("satellites", req.SerializeAsString(), answer_bound);
    if (!r.ok()) {
      why = r.rejected ? r.rejected->to_string() : "no answer";
      return std::nullopt;
    }
    levee::wire::SatelliteList list;
    list.ParseFromString(*r.payload);
    for (auto& s : list.satellites())
      if (s.state() == levee::wire::SatelliteInfo::disconnected)
        down.push_back(s.satellite_id());
    req.set_after_id(list.next_after_id());
  } while (!req.after_id().empty());
  std::sort(down.begin(), down.end());
  size_t n = 0;
  for (auto& id : ids)
    n += std::binary_search(down.begin(), down.end(), id);
  return n;
}

double self_cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return s(ru.ru_utime) + s(ru.ru_stime);
}

figures run_size(size_t n, const options& o) {
  figures f;
  f.n = n;
  if (auto why = levee::fleet::fleet::raise_fd_limit(n + 1000); !why.empty()) {
    f.skipped = "the simulator cannot open " + std::to_string(n) + " connections: " + why;
    return f;
  }
  auto dir = temp_dir + "/n" + std::to_string(n);
  fs::create_directories(dir);
  uint16_t port = 0;
  ::close(levee::bench::listen_loopback(port));
  auto config = write_config(dir, port, n, o);
  auto log = dir + "/server.log";
  auto pid = spawn({o.levee, "node", "--config", config}, log);
  server_pid = pid;
  auto hung = [&](const std::string& what, const std::string& why) {
    // Its CPU share tells a deadlock (about 0) from an overload.
    auto before = cpu_seconds(pid);
    std::this_thread::sleep_for(seconds(2));  // the sampling window
    char share[48];
    std::snprintf(share, sizeof share, "%.0f%%", (cpu_seconds(pid) - before) * 50);
    f.failure = "server hung (no answer within " + std::to_string(answer_bound.count())
                + " s) while " + what + ": " + why + "; it used " + share
                + " of a CPU over the next 2 s (about 0: a deadlock)";
    kill_server();
    return f;
  };
  // Up when it accepts.
  auto up_until = steady_clock::now() + seconds(20);
  for (;;) {
    if (int fd = levee::bench::connect_loopback(port); fd >= 0) {
      ::close(fd);
      break;
    }
    if (auto code = exited(pid)) {
      server_pid = 0;
      f.failure = "the server exited with code " + std::to_string(*code) + ": " + last_line(log);
      return f;
    }
    if (steady_clock::now() > up_until)
      return hung("starting", "it did not listen within 20 s");
    std::this_thread::sleep_for(milliseconds(20));
  }
  auto rss_before = rss_bytes(pid);
  levee::client_options co;
  co.port = port;
  co.node_id = "fleet-bench";
  co.max_frame_bytes = 256u << 20;  // a list of 100,000 satellites
  co.max_decompressed_bytes = 256u << 20;
  levee::client c{co};
  if (auto st = c.connect_with_backoff(answer_bound); !st)
    return hung("connecting a client", st.to_string());

  // Registration.
  size_t step = std::max<size_t>(n / 10, 1);
  levee::fleet::fleet_options fo;
  fo.port = port;
  fo.satellite_token = "fleet-token";
  fo.labels = [step](size_t i) {
    return std::map<std::string, std::string>{{"fleet", "sim"},
                                              {"ten", i % step == 5 % step ? "yes" : "no"}};
  };
  levee::fleet::fleet sim{fo};
  auto t0 = steady_clock::now();
  sim.connect(n, o.concurrency);
  auto reg_bound = seconds(std::max<uint64_t>(120, n / 50));
  bool all = sim.wait_registered(n, reg_bound);
  f.register_s = duration<double>(steady_clock::now() - t0).count();
  f.registered = sim.stats().registered;
  f.registrations_per_s = static_cast<double>(f.registered) / f.register_s;
  std::string why;
  // The client sat idle while the fleet registered: the server may have closed it
  // (net.idle_timeout_ms) without its knowing. A fresh connection.
  c.close();
  if (auto st = c.connect_with_backoff(answer_bound); !st)
    return hung("connecting a client after the registration", st.to_string());
  if (!all) {
    if (!timed_request(c, "satellites", levee::wire::SatellitesRequest{}.SerializeAsString(), why))
      return hung("the fleet registered (" + std::to_string(f.registered) + " of "
                    + std::to_string(n) + ")",
                  why);
    auto fs = sim.stats();
    f.failure = "only " + std::to_string(f.registered) + " of " + std::to_string(n)
                + " registered within " + std::to_string(reg_bound.count()) + " s ("
                + std::to_string(fs.dials) + " dials, " + std::to_string(fs.closed_by_server)
                + " connections closed by the server; last refusal: " + fs.last_reject + ")";
    kill_server();
    return f;
  }
  f.rss_per_satellite_bytes =
    static_cast<double>(rss_bytes(pid) - std::min(rss_before, rss_bytes(pid))) / static_cast<double>(n);

  // Steady heartbeats: two intervals to settle, then a window of at least 5 s.
  std::this_thread::sleep_for(milliseconds(2 * o.heartbeat_ms));  // settling, not an event
  auto window = milliseconds(std::max<uint64_t>(5000, 3 * o.heartbeat_ms));
  auto acks0 = sim.stats().heartbeat_acks;
  auto cpu0 = cpu_seconds(pid);
  auto self0 = self_cpu_seconds();
  auto w0 = steady_clock::now();
  std::this_thread::sleep_for(window);  // the measured window
  auto secs = duration<double>(steady_clock::now() - w0).count();
  auto cpu = cpu_seconds(pid) - cpu0;
  auto st = sim.stats();
  auto beats = st.heartbeat_acks - acks0;
  f.server_cpu_share = cpu / secs;
  f.fleet_cpu_share = (self_cpu_seconds() - self0) / secs;
  f.heartbeats_per_s = static_cast<double>(beats) / secs;
  f.cpu_per_heartbeat_us = beats > 0 ? cpu * 1e6 / static_cast<double>(beats) : 0;
  f.heartbeat_rtt_p50_ms = st.heartbeat_rtt_p50_ms;
  f.heartbeat_rtt_p99_ms = st.heartbeat_rtt_p99_ms;

  // `satellites`, fan-outs.
  std::vector<double> list_ms, all_ms, ten_ms;
  auto list_payload = levee::wire::SatellitesRequest{}.SerializeAsString();
  for (int k = 0; k < 5; ++k) {
    auto ms = timed_request(c, "satellites", list_payload, why);
    if (!ms)
      return hung("listing the satellites", why);
    list_ms.push_back(*ms);
  }
  levee::wire::QueryRequest to_all;
  to_all.set_deadline_ms(30000);
  auto to_ten = to_all;
  (*to_ten.mutable_selector())["ten"] = "yes";
  for (int k = 0; k < 5; ++k) {
    auto ms = timed_fan_out(c, to_all, f.fan_all_rows, why);
    if (!ms)
      return hung("fanning out to all", why);
    all_ms.push_back(*ms);
  }
  uint64_t ten_rows = 0;
  for (int k = 0; k < 20; ++k) {
    auto ms = timed_fan_out(c, to_ten, ten_rows, why);
    if (!ms)
      return hung("fanning out to 10", why);
    ten_ms.push_back(*ms);
  }
  f.list_p50_ms = percentile(list_ms, 0.5);
  f.list_max_ms = *std::max_element(list_ms.begin(), list_ms.end());
  f.fan_all_p50_ms = percentile(all_ms, 0.5);
  f.fan_all_max_ms = *std::max_element(all_ms.begin(), all_ms.end());
  f.fan_ten_p50_ms = percentile(ten_ms, 0.5);
  f.fan_ten_max_ms = *std::max_element(ten_ms.begin(), ten_ms.end());

  // Detection: 1% killed, 1% silent (none of the ten).
  std::vector<size_t> killed, silent;
  std::vector<std::string> killed_ids, silent_ids;
  size_t dead = std::max<size_t>(n / 100, 10);
  for (size_t i = 1; i < n && killed.size() < dead; i += 97)
    if (i % step != 5 % step) {
      killed.push_back(i);
      killed_ids.push_back(sim.id_of(i));
    }
  for (size_t i = 2; i < n && silent.size() < dead; i += 97)
    if (i % step != 5 % step) {
      silent.push_back(i);
      silent_ids.push_back(sim.id_of(i));
    }
  auto d0 = steady_clock::now();
  sim.kill(killed);
  sim.silence(silent);
  auto detect_bound = milliseconds(disconnect_after * o.heartbeat_ms) + seconds(60);
  bool killed_seen = false, silent_seen = false;
  while (!(killed_seen && silent_seen)) {
    auto k = disconnected_among(c, killed_ids, why);
    if (!k)
      return hung("the dead were found", why);
    auto s = disconnected_among(c, silent_ids, why);
    if (!s)
      return hung("the dead were found", why);
    auto ms = duration<double, std::milli>(steady_clock::now() - d0).count();
    if (!killed_seen && *k == killed_ids.size()) {
      killed_seen = true;
      f.killed_detect_ms = ms;
    }
    if (!silent_seen && *s == silent_ids.size()) {
      silent_seen = true;
      f.silent_detect_ms = ms;
    }
    if (steady_clock::now() - d0 > detect_bound) {
      f.failure = "not every dead satellite was listed disconnected within "
                  + std::to_string(detect_bound.count()) + " ms (killed: " + std::to_string(*k)
                  + " of " + std::to_string(killed_ids.size()) + ", silent: " + std::to_string(*s)
                  + " of " + std::to_string(silent_ids.size()) + ")";
      break;
    }
    std::this_thread::sleep_for(milliseconds(50));  // between two looks at a remote state
  }
  c.close();

  // SIGTERM.
  auto s0 = steady_clock::now();
  ::kill(pid, SIGTERM);
  while (!exited(pid)) {
    if (steady_clock::now() - s0 > seconds(20)) {
      f.failure += (f.failure.empty() ? "" : "; ") + std::string("server hung: still running 20 s after SIGTERM");
      kill_server();
      return f;
    }
    std::this_thread::sleep_for(milliseconds(10));  // between two looks at the process
  }
  server_pid = 0;
  f.sigterm_ms = duration<double, std::milli>(steady_clock::now() - s0).count();
  return f;
}

void print_text(const figures& f) {
  std::printf("\nN = %zu\n", f.n);
  if (!f.skipped.empty()) {
    std::printf("  skipped: %s\n", f.skipped.c_str());
    return;
  }
  std::printf("  registration        %zu in %.2f s: %.0f /s\n", f.registered, f.register_s,
              f.registrations_per_s);
  if (f.rss_per_satellite_bytes > 0)
    std::printf("  server RSS          %.1f KiB per satellite\n", f.rss_per_satellite_bytes / 1024);
  if (f.heartbeats_per_s > 0)
    std::printf("  heartbeats          %.0f /s answered; server CPU %.0f%% of a CPU, %.1f us per "
                "heartbeat; simulator CPU %.0f%%%s; round trip p50 %.1f ms, p99 %.1f ms\n",
                f.heartbeats_per_s, f.server_cpu_share * 100, f.cpu_per_heartbeat_us,
                f.fleet_cpu_share * 100,
                f.fleet_cpu_share > 0.9 ? " (the simulator was the limit)" : "",
                f.heartbeat_rtt_p50_ms, f.heartbeat_rtt_p99_ms);
  if (f.list_p50_ms > 0)
    std::printf("  satellites          p50 %.1f ms, max %.1f ms\n", f.list_p50_ms, f.list_max_ms);
  if (f.fan_all_p50_ms > 0)
    std::printf("  fan-out to all      p50 %.1f ms, max %.1f ms (%llu rows)\n", f.fan_all_p50_ms,
                f.fan_all_max_ms, static_cast<unsigned long long>(f.fan_all_rows));
  if (f.fan_ten_p50_ms > 0)
    std::printf("  fan-out to 10       p50 %.1f ms, max %.1f ms\n", f.fan_ten_p50_ms,
                f.fan_ten_max_ms);
  if (f.killed_detect_ms > 0 || f.silent_detect_ms > 0)
    std::printf("  detection           killed (1%%) %.0f ms, silent (1%%) %.0f ms "
                "(server.disconnect_after = %llu intervals)\n",
                f.killed_detect_ms, f.silent_detect_ms,
                static_cast<unsigned long long>(disconnect_after));
  if (f.sigterm_ms > 0)
    std::printf("  SIGTERM             stopped in %.0f ms\n", f.sigterm_ms);
  if (!f.failure.empty())
    std::printf("  FAILED: %s\n", f.failure.c_str());
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\')
      out += '\\';
    if (static_cast<unsigned char>(ch) < 0x20) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\u%04x", ch);
      out += esc;
      continue;
    }
    out += ch;
  }
  return out + "\"";
}

void print_json(const std::vector<figures>& all, const options& o) {
  std::printf("{\"heartbeat_interval_ms\":%llu,\"concurrency\":%zu,\"sizes\":[",
              static_cast<unsigned long long>(o.heartbeat_ms), o.concurrency);
  for (size_t k = 0; k < all.size(); ++k) {
    auto& f = all[k];
    std::printf(
      "%s{\"n\":%zu,\"skipped\":%s,\"failure\":%s,\"registered\":%zu,\"register_s\":%.3f,"
      "\"registrations_per_s\":%.1f,\"rss_per_satellite_bytes\":%.0f,"
      "\"cpu_per_heartbeat_us\":%.2f,\"server_cpu_share\":%.3f,\"fleet_cpu_share\":%.3f,"
      "\"heartbeats_per_s\":%.1f,\"heartbeat_rtt_p50_ms\":%.2f,\"heartbeat_rtt_p99_ms\":%.2f,"
      "\"satellites_p50_ms\":%.2f,\"satellites_max_ms\":%.2f,\"fan_out_all_p50_ms\":%.2f,"
      "\"fan_out_all_max_ms\":%.2f,\"fan_out_all_rows\":%llu,\"fan_out_10_p50_ms\":%.2f,"
      "\"fan_out_10_max_ms\":%.2f,\"killed_detect_ms\":%.0f,\"silent_detect_ms\":%.0f,"
      "\"sigterm_ms\":%.0f}",
      k == 0 ? "" : ",", f.n, json_string(f.skipped).c_str(), json_string(f.failure).c_str(),
      f.registered, f.register_s, f.registrations_per_s, f.rss_per_satellite_bytes,
      f.cpu_per_heartbeat_us, f.server_cpu_share, f.fleet_cpu_share, f.heartbeats_per_s,
      f.heartbeat_rtt_p50_ms, f.heartbeat_rtt_p99_ms, f.list_p50_ms, f.list_max_ms,
      f.fan_all_p50_ms, f.fan_all_max_ms, static_cast<unsigned long long>(f.fan_all_rows),
      f.fan_ten_p50_ms, f.fan_ten_max_ms, f.killed_detect_ms, f.silent_detect_ms, f.sigterm_ms);
  }
  std::printf("]}\n");
}

} // namespace

int main(int argc, char** argv) {
  options o;
  o.levee = default_levee_binary();
  uint64_t watchdog_s = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    uint64_t v = 0;
    auto value = [&](uint64_t& out) { return i + 1 < argc && parse_number(argv[++i], 1, out); };
    if (a == "--levee" && i + 1 < argc) {
      o.levee = argv[++i];
    } else if (a == "--max" && value(v)) {
      o.max = v;
    } else if (a == "--heartbeat-ms" && value(v)) {
      o.heartbeat_ms = v;
    } else if (a == "--concurrency" && value(v)) {
      o.concurrency = v;
    } else if (a == "--watchdog" && value(v)) {
      watchdog_s = v;
    } else if (a == "--json") {
      o.json = true;
    } else {
      std::fprintf(stderr,
                   "usage: fleet_bench [--levee PATH] [--max N (10000)] [--heartbeat-ms MS (1000)] "
                   "[--concurrency C (64)] [--watchdog S] [--json]\n");
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  if (::access(o.levee.c_str(), X_OK) != 0) {
    std::fprintf(stderr, "fleet_bench: %s not found; pass --levee PATH\n", o.levee.c_str());
    return 2;
  }
  std::vector<size_t> sizes;
  for (size_t n : {size_t{1000}, size_t{10000}, size_t{100000}})
    if (n <= o.max)
      sizes.push_back(n);
  if (sizes.empty() || sizes.back() != o.max)
    sizes.push_back(o.max);  // --max itself, when it is not one of the three
  if (watchdog_s == 0)
    for (auto n : sizes)  // generous: a hung step is caught by its own bound first
      watchdog_s += 120 + n / 50 + disconnect_after * o.heartbeat_ms / 1000 + 60;
  std::signal(SIGPIPE, SIG_IGN);
  for (int s : {SIGINT, SIGTERM, SIGALRM, SIGHUP})
    std::signal(s, on_fatal_signal);
  ::alarm(static_cast<unsigned>(watchdog_s));
  char dir[] = "/tmp/levee-fleet-bench-XXXXXX";
  if (::mkdtemp(dir) == nullptr) {
    std::perror("fleet_bench: mkdtemp");
    return 1;
  }
  temp_dir = dir;
  std::snprintf(temp_dir_for_signal, sizeof temp_dir_for_signal, "%s", dir);
  bench_pid = ::getpid();
  std::atexit(cleanup_at_exit);
  if (!o.json)
    std::printf("fleet_bench: one `levee node` server, N simulated satellites (one TCP connection "
                "each, one simulator thread), heartbeats every %llu ms, %zu registering at a "
                "time; server.unhealthy_after %llu, disconnect_after %llu; watchdog %llu s\n",
                static_cast<unsigned long long>(o.heartbeat_ms), o.concurrency,
                static_cast<unsigned long long>(unhealthy_after),
                static_cast<unsigned long long>(disconnect_after),
                static_cast<unsigned long long>(watchdog_s));
  std::vector<figures> all;
  bool failed = false;
  for (auto n : sizes) {
    all.push_back(run_size(n, o));
    failed = failed || !all.back().failure.empty();
    if (!o.json) {
      print_text(all.back());
      std::fflush(stdout);
    }
  }
  if (o.json)
    print_json(all, o);
  return failed ? 1 : 0;
}
