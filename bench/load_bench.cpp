// The ceiling of `levee load` itself (issue 17): how many requests per second one `levee
// load` process offers and measures on this machine, against the raw TCP echo floor, so a
// user knows when the tool, not the target, is the limit. Target: the tool is never the
// bottleneck below 80% of the floor.
//
// The target must cost next to nothing, or the ratio would measure the target: a `levee
// node`'s cheapest actor still pays the connection gate, the actor gate and CAF's
// scheduling, which is several times the tool's own work per request. So the tool drives
// the **frame echo**: a thread per connection, as net_bench's raw TCP echo, that speaks
// Levee's framing (net/frame.hpp) and answers a Hello with a Hello and every Request with a
// Response carrying its payload back (and "stats" with the count of requests answered, so
// the tool's accounting check runs and holds). In the same run:
//
//   floor        net_bench's raw TCP echo (bench_support.hpp serve_raw_echo), driven by a
//                raw client: length-prefixed 1 KiB frames, N in flight, nothing measured
//   frame floor  the frame echo driven by a raw client sending pre-encoded Request frames
//                (one encode for the whole run, no parse of the answers): what the frame
//                echo can answer at all, so that a ratio below 1 is the tool's
//   tool closed  `levee load --closed N`: its highest throughput, and its CPU per request
//   tool at 80%  `levee load --rate` at 80% of the higher of the two floors (open loop;
//                at most 100,000/s, the tool's highest rate): the target of the issue, held
//                when the run is valid (the tool kept its schedule), nothing failed, the
//                goodput is the rate offered and the frame echo counted every request
//   tool ramp    `levee load --ramp` from 10% of the higher floor up by 10% of it: the
//                highest rate at which its p99 (from intended send times) stays below 10 ms
//
// The floor, frame floor and closed-loop phases run in interleaved rounds (--rounds), the
// median of each round's ratio reported; --cpu N puts everything on one CPU.
//
// `--knees DIR` instead finds the knee of the query path (a server and two satellites) and
// of stream publish (a broker) with `levee load --ramp`, shipped configs, HTML reports in DIR.
//
// Every `levee load` and `levee node` is a real process on loopback (build/apps/levee,
// --levee PATH); servers and nodes are children on ports the kernel picks, killed at the
// end (and on a signal or the watchdog). Progress on stderr; --json for one JSON object on
// stdout. Figures in bench/RESULTS.md ("Issue 17: the load tool's own ceiling, and the
// knees it finds").

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include <poll.h>

#include "bench/bench_support.hpp"
#include "net/frame.hpp"
#include "net/satellite.pb.h"

namespace {

using namespace levee::bench;
using namespace std::chrono;
using json = nlohmann::json;

constexpr unsigned watchdog_seconds = 600;
constexpr double tool_max_rate = 100000;  // `levee load --rate` and `--ramp` allow no more
constexpr double target_share = 0.8;      // the target: the tool keeps up below 80%

struct options {
  bool quick = false;
  bool json = false;
  uint64_t connections = 1;
  uint64_t in_flight = 64;   // per connection, as net_bench
  uint64_t payload = 1024;   // as net_bench
  double seconds = 5;        // each measured phase, after a warm-up
  uint64_t rounds = 3;       // of floor, frame floor and tool closed loop, interleaved
  double warmup = 0.5;
  std::string levee;
  std::string html;          // the ramp's report, when given
  bool serve = false;        // only the frame echo, for levee load runs by hand
  int cpu = -1;              // --cpu N: everything on CPU N
  std::string knees;         // --knees DIR: the knees of the query path and of publish
  std::string configs = LEVEE_CONFIGS_DIR;
};

// -- the frame echo (a child process) ----------------------------------------------------

/// One connection of the frame echo: every frame read is decoded and answered, the answers
/// to one read going out together. It never stops reading to write: `levee load`'s open
/// loop writes requests on a blocking socket between its reads, so an echo that blocked on
/// a full socket while the tool blocked on its own would hang both (as a node stops
/// reading above half its write buffer, ending only at net.write_stall_timeout_ms). The
/// answers wait here instead, bounded by what the tool has in flight. `answered` counts
/// Requests answered (all connections), which a "stats" Request reports as
/// listener.requests_answered before counting itself: `levee load` expects exactly that of
/// a node (load/README.md `target_side`).
void frame_echo_connection(int fd, std::atomic<uint64_t>& answered) {
  set_nodelay(fd);
  auto limits = levee::net::default_codec_limits();
  levee::net::frame_reader reader{limits};
  std::vector<uint8_t> in(64 * 1024);
  std::string out;
  size_t written = 0;  // of `out`
  levee::wire::Envelope reply;
  for (;;) {
    if (written < out.size()) {
      auto n = ::send(fd, out.data() + written, out.size() - written, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && errno != EAGAIN && errno != EINTR)
        break;
      written += n > 0 ? static_cast<size_t>(n) : 0;
      if (written == out.size()) {
        out.clear();
        written = 0;
      }
    }
    auto n = ::recv(fd, in.data(), in.size(), MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
      break;
    if (n < 0) {
      // Nothing to read: wait for input, or for room for the answers that wait.
      pollfd p{fd, static_cast<short>(POLLIN | (written < out.size() ? POLLOUT : 0)), 0};
      ::poll(&p, 1, -1);
      continue;
    }
    for (size_t at = 0; at < static_cast<size_t>(n);) {
      at += reader.feed(in.data() + at, static_cast<size_t>(n) - at);
      if (reader.error()) {
        ::close(fd);
        return;
      }
      if (!reader.frame_ready())
        continue;
      auto env = reader.take();
      reply.Clear();
      reply.set_request_id(env.request_id());
      if (env.has_hello()) {
        auto& h = *reply.mutable_hello();
        h.set_protocol_version(levee::net::protocol_version);
        h.set_node_id("frame-echo");
        h.set_role(levee::wire::ROLE_SERVER);
        h.mutable_limits()->set_max_frame_bytes(limits.max_frame_bytes);
        h.mutable_limits()->set_max_decompressed_bytes(limits.max_decompressed_bytes);
      } else if (env.has_request()) {
        if (env.request().target() == "stats") {
          levee::wire::StatsReply stats;
          stats.mutable_listener()->set_requests_answered(answered.load());
          reply.mutable_response()->set_payload(stats.SerializeAsString());
        } else {
          reply.mutable_response()->set_allocated_payload(env.mutable_request()->release_payload());
        }
        answered++;
      } else if (env.has_ping()) {
        reply.mutable_pong()->set_nonce(env.ping().nonce());
      } else {
        continue;  // Cancel, Credit: nothing to answer
      }
      levee::net::encode_frame(reply, limits, out);
    }
  }
  ::close(fd);
}

void serve_frame_echo(int lfd) {
  std::atomic<uint64_t> answered{0};
  for (;;) {
    int fd = ::accept(lfd, nullptr, nullptr);
    if (fd >= 0)
      std::thread([fd, &answered] { frame_echo_connection(fd, answered); }).detach();
  }
}

/// A server child on a port the kernel picked: the listening socket is made here, served
/// there, and closed here (so `levee load` finds the child as the port's process).
template <class Serve>
uint16_t start_server(Serve serve) {
  uint16_t port = 0;
  int lfd = listen_loopback(port);
  fork_child([&] { serve(lfd); });
  ::close(lfd);
  return port;
}

// -- the raw clients: the same request/response, nothing measured -------------------------

struct floor_figures {
  double per_second = 0;
  double cpu_us_per_request = 0;  // the client's threads' CPU
  bool ok = false;
};

/// A Levee frame of `env` as the frame echo expects it (uncompressed: 1 KiB is below the
/// client's compression threshold too).
std::string frame_of(const levee::wire::Envelope& env) {
  std::string out;
  levee::net::encode_frame(env, levee::net::default_codec_limits(), out);
  return out;
}

/// `connections` threads, each a connection with `in_flight` requests in flight: warm-up,
/// then `seconds` counted. `open` connects (and shakes hands) and returns the fd or -1.
template <class Open>
floor_figures run_floor(const options& o, Open open, const std::string& request,
                        size_t answer_bytes) {
  std::vector<std::thread> threads;
  std::vector<uint64_t> answers(o.connections, 0);
  std::vector<double> cpu(o.connections, 0), spans(o.connections, 0);
  std::atomic<bool> failed{false};
  auto warm_end = steady_clock::now() + duration_cast<nanoseconds>(duration<double>(o.warmup));
  for (uint64_t c = 0; c < o.connections; ++c)
    threads.emplace_back([&, c] {
      int fd = open();
      if (fd < 0) {
        failed = true;
        return;
      }
      auto w = static_cast<int>(o.in_flight);
      run_window(fd, request, answer_bytes, w, [&](uint64_t) { return steady_clock::now() < warm_end; }, true);
      timespec t0{}, t1{};
      ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
      auto start = steady_clock::now();
      auto end = start + duration_cast<nanoseconds>(duration<double>(o.seconds));
      answers[c] = run_window(fd, request, answer_bytes, w, [&](uint64_t) { return steady_clock::now() < end; }, true);
      spans[c] = duration<double>(steady_clock::now() - start).count();
      ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
      cpu[c] = static_cast<double>(t1.tv_sec - t0.tv_sec) + static_cast<double>(t1.tv_nsec - t0.tv_nsec) / 1e9;
      if (answers[c] == 0)
        failed = true;
      ::close(fd);
    });
  for (auto& t : threads)
    t.join();
  floor_figures f;
  if (failed)
    return f;
  uint64_t total = 0;
  double cpu_total = 0;
  for (uint64_t c = 0; c < o.connections; ++c) {
    total += answers[c];
    cpu_total += cpu[c];
    f.per_second += static_cast<double>(answers[c]) / spans[c];
  }
  f.cpu_us_per_request = cpu_total * 1e6 / static_cast<double>(total);
  f.ok = true;
  return f;
}

floor_figures raw_echo_floor(const options& o, uint16_t port) {
  std::string frame(4 + o.payload, 'r');
  *reinterpret_cast<uint32_t*>(frame.data()) = htonl(static_cast<uint32_t>(o.payload));
  return run_floor(o, [&] { return connect_loopback(port); }, frame, frame.size());
}

floor_figures frame_echo_floor(const options& o, uint16_t port) {
  levee::wire::Envelope hello;
  hello.mutable_hello()->set_protocol_version(levee::net::protocol_version);
  hello.mutable_hello()->set_node_id("load_bench");
  hello.mutable_hello()->set_role(levee::wire::ROLE_CLIENT);
  levee::wire::Envelope req;
  req.set_request_id(1);  // one id for all: the answers are all the same size
  req.mutable_request()->set_target("echo");
  req.mutable_request()->set_payload(std::string(o.payload, 'x'));
  levee::wire::Envelope resp;
  resp.set_request_id(1);
  resp.mutable_response()->set_payload(std::string(o.payload, 'x'));
  auto hello_frame = frame_of(hello);
  auto answer_bytes = frame_of(resp).size();
  auto open = [&, port] {
    int fd = connect_loopback(port);
    if (fd < 0 || !write_all(fd, hello_frame.data(), hello_frame.size()))
      return -1;
    // The echo's Hello: its header says how long it is.
    char header[levee::net::frame_header_bytes];
    if (!read_exact(fd, header, sizeof header))
      return -1;
    std::vector<char> body(ntohl(*reinterpret_cast<uint32_t*>(header)));
    return read_exact(fd, body.data(), body.size()) ? fd : -1;
  };
  return run_floor(o, open, frame_of(req), answer_bytes);
}

/// One round of the closed-loop comparison.
struct round_figures {
  floor_figures floor, frame_floor;
  double tool = 0;  // levee load --closed: goodput per second
  double tool_cpu_us = 0, tool_p99_us = 0, target_cpu_percent = 0;
  int tool_exit = 0;
};

// -- `levee load` runs ----------------------------------------------------------------------

struct tool_run {
  int exit_code = -1;
  double cpu_seconds = 0;  // the levee load process's user + system time
  json result;             // its --json line (null when there was none)
  bool hung = false;       // killed past its bound
  std::string log;
};

/// The command as a shell would take it (for the report: what to run again by hand).
std::string command_line(const std::vector<std::string>& args) {
  std::string line = "levee load";
  for (auto& a : args)
    line += " " + (a.find_first_of(" >*'") == std::string::npos ? a : "'" + a + "'");
  return line + " --json --progress";
}

/// Runs `levee load` with `args`, its progress line on this stderr, its --json result read
/// back.
tool_run run_levee_load(const options& o, const std::string& name, const std::vector<std::string>& args,
                        double bound_seconds) {
  std::vector<std::string> argv{o.levee, "load"};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.insert(argv.end(), {"--json", "--progress"});
  tool_run r;
  r.log = temp_dir + "/" + name + ".json";
  std::fprintf(stderr, "load_bench: %s\n", command_line(args).c_str());
  auto pid = spawn_program(argv, r.log, false);
  rusage usage{};
  r.exit_code = wait_child(pid, usage, milliseconds(static_cast<int64_t>(bound_seconds * 1000)), r.hung);
  std::fputs("\n", stderr);  // after its progress line
  if (r.hung)
    std::fprintf(stderr, "load_bench: levee load (%s) was still running after %.0f s and was "
                         "killed\n", name.c_str(), bound_seconds);
  r.cpu_seconds = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
                  + static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  std::ifstream in(r.log);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty() && line[0] == '{')
      r.result = json::parse(line, nullptr, false);
  if (r.result.is_discarded())
    r.result = nullptr;
  return r;
}

/// `levee load --target actor echo` against the frame echo with `extra` options.
tool_run run_tool(const options& o, uint16_t port, const std::string& name,
                  const std::vector<std::string>& extra, double bound_seconds) {
  std::vector<std::string> args{"--target", "actor", "echo", "--server",
                                "127.0.0.1:" + std::to_string(port), "--connections",
                                std::to_string(o.connections), "--payload-bytes",
                                std::to_string(o.payload)};
  args.insert(args.end(), extra.begin(), extra.end());
  return run_levee_load(o, name, args, bound_seconds);
}

/// How long a `levee load --ramp` may take at most: every step, each followed by up to a
/// send's timeout for its last answers, and half a minute for the rest.
double ramp_bound(double start, double step, double max, double step_seconds, double timeout_seconds) {
  return (std::floor((max - start) / step) + 1) * (step_seconds + timeout_seconds) + 30;
}

std::string seconds_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", s);
  return buf;
}

double number(const json& j, const json::json_pointer& at) {
  return j.is_object() && j.contains(at) && j.at(at).is_number() ? j.at(at).get<double>() : 0;
}

/// A rate `levee load` accepts: a whole number, at most its maximum.
double tool_rate(double r) {
  return std::min(tool_max_rate, std::max(1.0, std::floor(r)));
}

void say(const char* what) {
  std::fprintf(stderr, "load_bench: %s\n", what);
}

// -- --knees: the knee of the query path and of stream publish, found by the tool ----------

/// A `levee node` of a shipped config with `sets` (addresses, paths), logging to
/// <temp_dir>/<name>.log; its pid once `port` accepts (0 for a node that dials out), or
/// nothing, said.
std::optional<pid_t> start_node(const options& o, const std::string& name, const std::string& config,
                                const std::vector<std::string>& sets, uint16_t port) {
  std::vector<std::string> argv{o.levee, "node", "--config", o.configs + "/" + config};
  for (auto& kv : sets)
    argv.insert(argv.end(), {"--set", kv});
  auto log = temp_dir + "/" + name + ".log";
  auto pid = spawn_program(argv, log);
  std::optional<int> code;
  if (port != 0 && !wait_for_port(port, pid, seconds(10), code)) {
    std::fprintf(stderr, "load_bench: the %s node %s: %s\n", name.c_str(),
                 code ? ("exited with code " + std::to_string(*code)).c_str() : "did not listen within 10 s",
                 last_line(log).c_str());
    stop(pid);
    return std::nullopt;
  }
  return pid;
}

/// A levee command run to its end: its exit code, its stdout in `out`.
int run_levee(const options& o, const std::vector<std::string>& args, std::string& out) {
  std::vector<std::string> argv{o.levee};
  argv.insert(argv.end(), args.begin(), args.end());
  auto log = temp_dir + "/command.out";
  auto pid = spawn_program(argv, log);
  rusage usage{};
  bool hung = false;
  int code = wait_child(pid, usage, seconds(30), hung);
  std::ifstream in(log);
  out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return code;
}

/// Polls `levee satellites --json` until every one of `ids` is healthy and stores at least
/// `min_events` (30 s at most); the events they store then, or nothing, said.
std::optional<uint64_t> wait_healthy(const options& o, const std::string& server,
                                     const std::vector<std::string>& ids, uint64_t min_events) {
  auto deadline = steady_clock::now() + seconds(30);
  std::string out, last = "never listed";
  while (steady_clock::now() < deadline) {
    if (run_levee(o, {"satellites", "--server", server, "--json"}, out) == 0) {
      auto j = json::parse(out, nullptr, false);
      size_t healthy = 0;
      uint64_t events = 0;
      if (j.is_object() && j.contains("satellites"))
        for (auto& sat : j["satellites"])
          if (std::find(ids.begin(), ids.end(), sat.value("satellite_id", "")) != ids.end()
              && sat.value("state", "") == "healthy") {
            auto stored = sat.contains("store") ? sat["store"].value("events", uint64_t{0}) : 0;
            healthy += stored >= min_events ? 1 : 0;
            events += stored;
          }
      if (healthy == ids.size())
        return events;
      last = std::to_string(healthy) + " of " + std::to_string(ids.size()) + " healthy with "
             + std::to_string(min_events) + " events";
    } else {
      last = last_line(temp_dir + "/command.out");
    }
    std::this_thread::sleep_for(milliseconds(200));
  }
  std::fprintf(stderr, "load_bench: the satellites were not healthy within 30 s (%s)\n", last.c_str());
  return std::nullopt;
}

struct knee_run {
  std::string what, command;
  tool_run run;
};

/// Prints one ramp's knee and where each limit began, from its --json result.
void print_knee(const knee_run& k) {
  auto& r = k.run.result;
  std::printf("\n%s\n  %s\n  exit %d\n", k.what.c_str(), k.command.c_str(), k.run.exit_code);
  if (!r.is_object() || !r.contains("ramp")) {
    std::printf("  no result: %s\n", last_line(k.run.log).c_str());
    return;
  }
  auto& ramp = r["ramp"];
  std::printf("  %10s %10s %10s %10s %8s\n", "rate/s", "goodput/s", "p50 ms", "p99 ms", "refused");
  for (auto& st : ramp["steps"])
    std::printf("  %10.0f %10.1f %10.2f %10.2f %7.2f%%  %s\n", st.value("rate_per_second", 0.0),
                st.value("goodput_per_second", 0.0), st.value("p50_us", 0.0) / 1e3,
                st.value("p99_us", 0.0) / 1e3,
                st.value("offered", 0.0) > 0 ? 100 * st.value("not_accepted", 0.0) / st.value("offered", 1.0) : 0.0,
                st.value("within", false) ? "within" : ("PAST: " + st.value("why", std::string{})).c_str());
  // Sends made late are the tool's own falling behind: a knee with many is partly the tool's.
  if (r.contains("schedule"))
    std::printf("  the tool's schedule: %.0f of %.0f sends more than %.0f ms late, largest lag %.1f ms; "
                "run %s\n",
                r["schedule"].value("late", 0.0), r.value("offered", 0.0), r["schedule"].value("max_lag_ms", 0.0),
                r["schedule"].value("largest_lag_us", 0.0) / 1e3,
                r.value("valid", false) ? "valid" : "INVALID (the tool fell behind; exit 3)");
  auto knee = ramp["knee_per_second"];
  std::printf("  knee: %s%s\n", knee.is_number() ? (seconds_text(knee.get<double>()) + "/s").c_str() : "none",
              ramp.value("crossed", false) ? "" : " (not reached: ramp higher)");
  for (auto& l : ramp["limits_began"])
    std::printf("  %s %s began to refuse at %.0f/s\n", l.value("code", std::string{}).c_str(),
                l.value("limit", std::string{}).c_str(), l.value("rate_per_second", 0.0));
}

/// `n` JSON lines as an application writes them, for a satellite's file source to take in
/// before the run (a store that does not grow while it is measured): level INFO 90%, WARN
/// 8%, ERROR 2% (as the synthetic source), a user, a status, ~100 bytes of message; no
/// timestamp, so each is stamped when read (within the queries' "since 15m").
void write_events(const std::string& path, uint64_t n) {
  std::ofstream out(path);
  for (uint64_t i = 0; i < n; ++i) {
    auto k = i % 50;
    const char* level = k == 0 ? "ERROR" : k <= 4 ? "WARN" : "INFO";
    int status = k == 0 ? 503 : k <= 4 ? 404 : 200;
    out << "{\"level\":\"" << level << "\",\"seq\":" << i << ",\"user\":\"user-" << (i * 7919) % 100
        << "\",\"status\":" << status
        << ",\"msg\":\"request served from the cache after a lookup of the session and the account\"}\n";
  }
}

/// The query path (configs/server.ini and two satellites of configs/satellite-{a,b}.ini,
/// each with 20,000 events in its store) and a broker (configs/broker.ini): shipped configs, only
/// their addresses and paths changed, each driven by `levee load --ramp` with its report.
int run_knees(const options& o) {
  std::error_code ec;
  std::filesystem::create_directories(o.knees, ec);
  auto report = [&](const std::string& file) { return (std::filesystem::absolute(o.knees) / file).string(); };
  auto step_seconds = o.quick ? "1" : "5";
  uint64_t events_per_satellite = o.quick ? 2'000 : 20'000;
  std::vector<knee_run> knees;
  json out;
  out["bench"] = "load_bench --knees";

  // The query path: a server and two satellites, separate processes.
  auto server_port = free_port();
  auto server = "127.0.0.1:" + std::to_string(server_port);
  say(("query path: levee node server on " + server + " and satellites a, b").c_str());
  auto s = start_node(o, "server", "server.ini", {"server.listen=" + server, "http.listen=127.0.0.1:0"},
                      server_port);
  if (!s)
    return 1;
  std::vector<pid_t> satellites;
  for (std::string id : {"a", "b"}) {
    auto dir = temp_dir + "/" + id;
    std::filesystem::create_directories(dir, ec);
    write_events(dir + "/app.jsonl", events_per_satellite);
    auto sat = start_node(o, "satellite-" + id, "satellite-" + id + ".ini",
                          {"satellite.server=" + server, "satellite.data_dir=" + dir,
                           "source.app.path=" + dir + "/app.jsonl", "source.socket.path=" + dir + "/sock",
                           "http.listen=127.0.0.1:0"},
                          0);
    if (!sat)
      return 1;
    satellites.push_back(*sat);
  }
  auto events = wait_healthy(o, server, {"a", "b"}, events_per_satellite);
  if (!events)
    return 1;
  std::vector<std::string> query_args{"--target", "query", "--query-file", o.configs + "/load-queries.txt",
                                      "--server", server, "--ramp", std::string(o.quick ? "100:200:3000:" : "100:100:3000:") + step_seconds,
                                      "--connections", "2", "--timeout-ms", "2000", "--other-traffic",
                                      "--html", report("query-knee.html")};
  knees.push_back({"query path: server + 2 satellites (configs/server.ini, satellite-{a,b}.ini), "
                   "the mix of configs/load-queries.txt, " + std::to_string(*events) + " events stored at the start",
                   command_line(query_args),
                   run_levee_load(o, "query-knee", query_args, ramp_bound(100, o.quick ? 200 : 100, 3000, o.quick ? 1 : 5, 2))});
  out["query_path"] = {{"events_at_start", *events}, {"command", knees.back().command},
                       {"exit_code", knees.back().run.exit_code}, {"result", knees.back().run.result}};
  for (auto pid : satellites)
    stop(pid);
  stop(*s);

  // Stream publish: one broker, one stream of one partition (the shipped defaults).
  auto broker_port = free_port();
  auto broker = "127.0.0.1:" + std::to_string(broker_port);
  say(("publish: levee node broker on " + broker).c_str());
  auto b = start_node(o, "broker", "broker.ini",
                      {"broker.listen=" + broker, "broker.data_dir=" + temp_dir + "/broker",
                       "http.listen=127.0.0.1:0"},
                      broker_port);
  if (!b)
    return 1;
  // The shipped stream default (fsync every_batch), then a stream that does not fsync: the
  // first knee is the disk's, the second the broker's and the tool's own.
  struct publish_case {
    const char* stream;
    const char* subject;
    const char* fsync;
    const char* key;   // in the JSON, and the run's log
    const char* html;  // its report, in DIR
    const char* what;
    double start, step;
  };
  for (auto& c : {publish_case{"load", "load.test", "every_batch", "publish", "publish-knee.html",
                               "stream publish: one broker (configs/broker.ini), a stream of 1 partition with "
                               "fsync every_batch (the shipped default), 256-byte messages, ack leader",
                               2000, 2000},
                  publish_case{"nofsync", "nofsync.test", "none", "publish_fsync_none",
                               "publish-fsync-none-knee.html",
                               "stream publish: the same broker, a stream of 1 partition with fsync none, "
                               "256-byte messages, ack leader",
                               5000, 5000}}) {
    std::string created;
    if (run_levee(o, {"stream", "create", c.stream, "--subject", std::string(c.stream) + ".>", "--fsync", c.fsync,
                      "--broker", broker}, created) != 0) {
      std::fprintf(stderr, "load_bench: levee stream create failed: %s\n", created.c_str());
      return 1;
    }
    double step = o.quick ? 3 * c.step : c.step;
    std::vector<std::string> publish_args{"--target", "publish", c.subject, "--server", broker,
                                          "--ramp", seconds_text(c.start) + ":" + seconds_text(step) + ":100000:" + step_seconds,
                                          "--message-bytes", "256", "--connections", "2",
                                          "--html", report(c.html)};
    knees.push_back({c.what, command_line(publish_args),
                     run_levee_load(o, c.key, publish_args, ramp_bound(c.start, step, 100000, o.quick ? 1 : 5, 5))});
    out[c.key] = {{"command", knees.back().command}, {"exit_code", knees.back().run.exit_code},
                  {"result", knees.back().run.result}};
  }
  stop(*b);

  if (o.json) {
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("knees found by levee load --ramp (reports in %s)\n", o.knees.c_str());
    for (auto& k : knees)
      print_knee(k);
  }
  for (auto& k : knees)
    if (k.run.result.is_null())
      return 1;
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  options o;
  o.levee = default_levee_binary();
  bool seconds_given = false, rounds_given = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    uint64_t n = 0;
    if (a == "--quick") {
      o.quick = true;
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "--cpu" && i + 1 < argc && parse_number(argv[i + 1], 0, n) && n < CPU_SETSIZE) {
      o.cpu = static_cast<int>(n);
      ++i;
    } else if (a == "--serve") {
      o.serve = true;
    } else if (a == "--knees" && i + 1 < argc) {
      o.knees = argv[++i];
    } else if (a == "--configs" && i + 1 < argc) {
      o.configs = argv[++i];
    } else if (a == "--levee" && i + 1 < argc) {
      o.levee = argv[++i];
    } else if (a == "--html" && i + 1 < argc) {
      o.html = argv[++i];
    } else if (a == "--connections" && i + 1 < argc && parse_number(argv[i + 1], 1, n) && n <= 64) {
      o.connections = n;
      ++i;
    } else if (a == "--in-flight" && i + 1 < argc && parse_number(argv[i + 1], 1, n) && n <= 4096) {
      o.in_flight = n;
      ++i;
    } else if (a == "--payload-bytes" && i + 1 < argc && parse_number(argv[i + 1], 0, n) && n <= 4096) {
      // Above 4 KiB levee::client compresses its payloads (client_options::compress_above_bytes)
      // and the raw clients would not: no longer the same request.
      o.payload = n;
      ++i;
    } else if (a == "--rounds" && i + 1 < argc && parse_number(argv[i + 1], 1, n) && n <= 100) {
      o.rounds = n;
      rounds_given = true;
      ++i;
    } else if (a == "--seconds" && i + 1 < argc && parse_number(argv[i + 1], 1, n) && n <= 600) {
      o.seconds = static_cast<double>(n);
      seconds_given = true;
      ++i;
    } else {
      std::fprintf(stderr,
                   "usage: load_bench [--quick] [--json] [--cpu N] [--seconds S] [--rounds N] [--connections N] "
                   "[--in-flight W] [--payload-bytes B] [--html FILE] [--levee PATH]\n"
                   "       load_bench --knees DIR [--quick] [--json] [--configs DIR] [--levee PATH]\n"
                   "       load_bench --serve\n"
                   "  --quick            one round, 2 s a phase and a short ramp: a smoke run\n"
                   "  --json             the results as one JSON object on stdout\n"
                   "  --seconds S        seconds measured a phase, after 0.5 s of warm-up (default 5)\n"
                   "  --rounds N         rounds of floor, frame floor and tool closed loop, "
                   "interleaved; medians reported (default 3)\n"
                   "  --connections N    connections of every client, a thread each (default 1, at most 64)\n"
                   "  --in-flight W      requests in flight a connection in the closed-loop phases "
                   "(default 64)\n"
                   "  --payload-bytes B  bytes of each request and answer, at most 4096 (above, levee::client "
                   "compresses them and the raw clients would not; default 1024)\n"
                   "  --cpu N            run everything (servers, raw clients, levee load, nodes) on CPU N "
                   "only: no cross-CPU wake-ups, so each phase's rate is what the client and the "
                   "server cost together, and far steadier on a shared machine\n"
                   "  --html FILE        levee load's report of the ramp phase\n"
                   "  --knees DIR        instead: the knee of the query path (a server and two "
                   "satellites) and of stream publish (a broker), shipped configs, found by levee "
                   "load --ramp; its HTML reports written to DIR\n"
                   "  --configs DIR      the shipped configs (default: %s)\n"
                   "  --serve            only start the frame echo and print its port, to try "
                   "levee load --target actor echo against it by hand (Ctrl-C ends it)\n"
                   "  --levee PATH       the levee binary (default: %s)\n",
                   o.configs.c_str(), o.levee.c_str());
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  if (o.quick && !seconds_given)
    o.seconds = 2;
  if (o.quick && !rounds_given)
    o.rounds = 1;
  if (::access(o.levee.c_str(), X_OK) != 0) {
    std::fprintf(stderr, "load_bench: no levee binary at %s; build it (ninja -C build levee) or "
                         "give --levee PATH\n", o.levee.c_str());
    return 2;
  }
  // --knees: two ramps of up to 30 and 50 steps of 5 s (each stops at its knee).
  if (!guard_children("load_bench", o.knees.empty() ? watchdog_seconds : 3 * watchdog_seconds))
    return 1;
  // Inherited by every process started after.
  if (o.cpu >= 0 && !pin_to_cpu(o.cpu))
    return 2;
  if (!o.knees.empty())
    return run_knees(o);
  // Both servers first, before this process has threads (fork copies only the caller).
  auto raw_port = start_server([](int lfd) { serve_raw_echo(lfd); });
  auto frame_port = start_server([](int lfd) { serve_frame_echo(lfd); });
  if (o.serve) {
    std::printf("frame echo on 127.0.0.1:%u: levee load --target actor echo --server "
                "127.0.0.1:%u ...; Ctrl-C ends it\n", frame_port, frame_port);
    std::fflush(stdout);
    ::alarm(0);  // serves until stopped
    for (;;)
      ::pause();
  }
  auto window = std::to_string(o.connections * o.in_flight);
  char line[256];
  std::snprintf(line, sizeof line,
                "%llu connection(s), %llu in flight each, %llu-byte payloads, %g s a phase "
                "after %g s of warm-up",
                static_cast<unsigned long long>(o.connections),
                static_cast<unsigned long long>(o.in_flight),
                static_cast<unsigned long long>(o.payload), o.seconds, o.warmup);
  say(line);

  // Interleaved rounds (floor, frame floor, tool), each ratio taken within its round and
  // the median reported: on a shared machine the rate moves by tens of % between phases.
  auto span = seconds_text(o.seconds);
  auto warm = seconds_text(o.warmup);
  double phase_bound = o.seconds + o.warmup + 5 + 30;  // 5: a send's timeout
  std::vector<round_figures> rounds;
  for (uint64_t i = 1; i <= o.rounds; ++i) {
    auto n = "round " + std::to_string(i) + "/" + std::to_string(o.rounds) + ": ";
    round_figures r;
    say((n + "floor: raw TCP echo, raw client (net_bench's)").c_str());
    r.floor = raw_echo_floor(o, raw_port);
    say((n + "frame floor: the frame echo, raw client of pre-encoded Levee frames").c_str());
    r.frame_floor = frame_echo_floor(o, frame_port);
    if (!r.floor.ok || !r.frame_floor.ok) {
      say("a raw client lost its connection to an echo server; nothing measured");
      return 1;
    }
    say((n + "tool, closed loop: levee load --closed " + window).c_str());
    auto closed = run_tool(o, frame_port, "closed-" + std::to_string(i),
                           {"--closed", window, "--duration", span, "--warmup", warm}, phase_bound);
    if (closed.result.is_null()) {
      std::fprintf(stderr, "load_bench: levee load gave no result (exit %d%s); its output: %s\n",
                   closed.exit_code, closed.hung ? ", killed: it hung" : "", last_line(closed.log).c_str());
      return 1;
    }
    auto& cr = closed.result;
    r.tool = number(cr, json::json_pointer("/goodput_per_second"));
    double requests = number(cr, json::json_pointer("/accepted")) + number(cr, json::json_pointer("/warmup_sends"));
    r.tool_cpu_us = requests > 0 ? closed.cpu_seconds * 1e6 / requests : 0;
    r.tool_p99_us = number(cr, json::json_pointer("/latency/p99_us"));
    r.target_cpu_percent = number(cr, json::json_pointer("/target_side/process/cpu_percent"));
    r.tool_exit = closed.exit_code;
    rounds.push_back(r);
  }
  auto median_of = [&](auto figure) {
    std::vector<double> xs;
    for (auto& r : rounds)
      xs.push_back(figure(r));
    std::sort(xs.begin(), xs.end());
    return xs.size() % 2 ? xs[xs.size() / 2] : (xs[xs.size() / 2 - 1] + xs[xs.size() / 2]) / 2;
  };
  double floor_rate = median_of([](auto& r) { return r.floor.per_second; });
  double frame_rate = median_of([](auto& r) { return r.frame_floor.per_second; });
  double closed_rate = median_of([](auto& r) { return r.tool; });
  double closed_cpu_us = median_of([](auto& r) { return r.tool_cpu_us; });
  double floor_cpu_us = median_of([](auto& r) { return r.floor.cpu_us_per_request; });
  double frame_cpu_us = median_of([](auto& r) { return r.frame_floor.cpu_us_per_request; });
  double over_floor = median_of([](auto& r) { return r.tool / r.floor.per_second; });
  double over_frame = median_of([](auto& r) { return r.tool / r.frame_floor.per_second; });
  double cpu_over_frame = median_of([](auto& r) { return r.tool_cpu_us / r.frame_floor.cpu_us_per_request; });

  // 80% of the higher floor: the raw echo pays a write per answer, the frame echo one per
  // read, so either may answer faster; the tool must keep up below 80% of both.
  double best_floor = std::max(floor_rate, frame_rate);
  double at_target = tool_rate(target_share * best_floor);
  say(("tool, open loop at 80% of the higher floor: levee load --rate " + seconds_text(at_target)
       + (at_target >= tool_max_rate ? " (the tool's highest --rate)" : "")).c_str());
  auto open = run_tool(o, frame_port, "open", {"--rate", seconds_text(at_target), "--duration", span,
                                               "--warmup", warm}, phase_bound);
  // From a tenth of the floor up by a tenth of it, to 120% (or the tool's maximum rate).
  double step = tool_rate(0.1 * best_floor);
  double start = step;
  double top = tool_rate(1.2 * best_floor);
  if (o.quick)
    start = tool_rate(std::max(start, top - 2 * step));
  double ramp_step_seconds = o.quick ? 1 : std::max(2.0, o.seconds / 2);
  auto ramp_spec = seconds_text(start) + ":" + seconds_text(step) + ":" + seconds_text(std::max(start, top))
                   + ":" + seconds_text(ramp_step_seconds);
  say(("tool, ramp: levee load --ramp " + ramp_spec + " --knee-p99-ms 10").c_str());
  std::vector<std::string> ramp_args{"--ramp", ramp_spec, "--knee-p99-ms", "10", "--warmup", warm};
  if (!o.html.empty()) {
    ramp_args.push_back("--html");
    ramp_args.push_back(o.html);
  }
  auto ramp = run_tool(o, frame_port, "ramp", ramp_args,
                       ramp_bound(start, step, std::max(start, top), ramp_step_seconds, 5) + o.warmup);
  for (auto* r : {&open, &ramp})
    if (r->result.is_null()) {
      std::fprintf(stderr, "load_bench: levee load gave no result (exit %d%s); its output: %s\n",
                   r->exit_code, r->hung ? ", killed: it hung" : "", last_line(r->log).c_str());
      return 1;
    }

  using ptr = json::json_pointer;
  auto& orr = open.result;
  double open_goodput = number(orr, ptr("/goodput_per_second"));
  double open_late = number(orr, ptr("/schedule/late"));
  double open_offered = number(orr, ptr("/offered"));
  double open_failed = number(orr, ptr("/errors")) + number(orr, ptr("/timeouts"))
                       + number(orr, ptr("/rejected/total"));
  bool open_valid = orr.value("valid", false);  // the tool kept its schedule (else exit 3)
  // Exit 0: valid, and the frame echo's count matched the tool's (exit 4 otherwise).
  bool open_held = open_valid && open.exit_code == 0 && open_failed == 0
                   && open_goodput >= 0.99 * at_target;
  double open_cpu_share = open.cpu_seconds / (o.seconds + o.warmup);
  auto knee_json = ramp.result.contains(ptr("/ramp/knee_per_second")) ? ramp.result.at(ptr("/ramp/knee_per_second"))
                                                                      : json(nullptr);
  bool knee_reached = ramp.result.contains(ptr("/ramp/crossed")) && ramp.result.at(ptr("/ramp/crossed")).is_boolean()
                      && ramp.result.at(ptr("/ramp/crossed")).get<bool>();
  double knee = knee_json.is_number() ? knee_json.get<double>() : 0;

  json out;
  out["bench"] = "load_bench";
  out["settings"] = {{"connections", o.connections}, {"in_flight_per_connection", o.in_flight},
                     {"payload_bytes", o.payload}, {"seconds", o.seconds}, {"warmup_seconds", o.warmup},
                     {"rounds", o.rounds}, {"cpu", o.cpu},
                     {"quick", o.quick}};
  out["rounds"] = json::array();
  for (auto& r : rounds)
    out["rounds"].push_back({{"floor_per_second", r.floor.per_second},
                             {"floor_client_cpu_us_per_request", r.floor.cpu_us_per_request},
                             {"frame_floor_per_second", r.frame_floor.per_second},
                             {"frame_floor_client_cpu_us_per_request", r.frame_floor.cpu_us_per_request},
                             {"tool_closed_per_second", r.tool}, {"tool_cpu_us_per_request", r.tool_cpu_us},
                             {"tool_p99_us", r.tool_p99_us}, {"target_cpu_percent", r.target_cpu_percent},
                             {"tool_exit_code", r.tool_exit}});
  out["floor"] = {{"per_second", floor_rate}, {"client_cpu_us_per_request", floor_cpu_us}};
  out["frame_floor"] = {{"per_second", frame_rate}, {"client_cpu_us_per_request", frame_cpu_us}};
  out["tool_closed"] = {{"per_second", closed_rate}, {"cpu_us_per_request", closed_cpu_us}};
  out["tool_open_at_target"] = {{"rate_per_second", at_target}, {"offered", open_offered},
                                {"goodput_per_second", open_goodput}, {"late", open_late},
                                {"p50_us", number(orr, ptr("/latency/p50_us"))},
                                {"p99_us", number(orr, ptr("/latency/p99_us"))},
                                {"failed", open_failed}, {"valid", open_valid},
                                {"tool_cpu_share", open_cpu_share}, {"exit_code", open.exit_code}};
  out["tool_ramp"] = {{"spec", ramp_spec}, {"knee_per_second", knee_json}, {"crossed", knee_reached},
                      {"steps", ramp.result.contains(ptr("/ramp/steps")) ? ramp.result.at(ptr("/ramp/steps")) : json::array()},
                      {"exit_code", ramp.exit_code}};
  out["ratios"] = {{"tool_closed_over_floor", over_floor},
                   {"tool_closed_over_frame_floor", over_frame},
                   {"tool_cpu_over_frame_client_cpu", cpu_over_frame},
                   {"target_rate_over_higher_floor", at_target / best_floor},
                   {"tool_knee_over_floor", knee / floor_rate},
                   {"tool_knee_over_higher_floor", knee / best_floor},
                   {"held_at_80_percent", open_held}};
  if (o.json) {
    std::printf("%s\n", out.dump().c_str());
    return open_held ? 0 : 1;
  }
  std::printf("levee load's own ceiling, %llu connection(s), %llu-byte payloads, 127.0.0.1%s\n",
              static_cast<unsigned long long>(o.connections), static_cast<unsigned long long>(o.payload),
              o.cpu >= 0 ? (", everything on CPU " + std::to_string(o.cpu)).c_str() : "");
  for (size_t i = 0; i < rounds.size(); ++i) {
    auto& r = rounds[i];
    std::printf("  round %zu: floor %.0f/s (client %.1f us/req), frame floor %.0f/s (%.1f us/req), "
                "levee load --closed %s %.0f/s (%.1f us/req, p99 %.0f us, target CPU %.0f%%)\n",
                i + 1, r.floor.per_second, r.floor.cpu_us_per_request, r.frame_floor.per_second,
                r.frame_floor.cpu_us_per_request, window.c_str(), r.tool, r.tool_cpu_us, r.tool_p99_us,
                r.target_cpu_percent);
  }
  std::printf("  medians of %zu round(s):\n", rounds.size());
  std::printf("  %-46s %9.0f req/s   client CPU %5.1f us/req\n", "floor: raw TCP echo, raw client",
              floor_rate, floor_cpu_us);
  std::printf("  %-46s %9.0f req/s   client CPU %5.1f us/req\n", "frame floor: frame echo, raw client",
              frame_rate, frame_cpu_us);
  std::printf("  %-46s %9.0f req/s   tool CPU   %5.1f us/req\n",
              ("levee load --closed " + window).c_str(), closed_rate, closed_cpu_us);
  std::printf("  %-46s %9.0f req/s   late %.0f of %.0f   p50 %.0f us   p99 %.0f us   %s\n",
              ("levee load --rate " + seconds_text(at_target)).c_str(), open_goodput, open_late,
              open_offered, number(orr, ptr("/latency/p50_us")), number(orr, ptr("/latency/p99_us")),
              open_valid ? "valid" : "INVALID (the tool fell behind)");
  std::printf("  %-46s knee %s%s\n", ("levee load --ramp " + ramp_spec).c_str(),
              knee_json.is_number() ? (seconds_text(knee) + "/s").c_str() : "none",
              knee_reached ? "" : " (not reached: every step held)");
  std::printf("\nRatios (same run; closed loop: the median of the rounds' ratios):\n");
  std::printf("  tool closed loop / floor                     %6.2fx\n", over_floor);
  std::printf("  tool closed loop / frame floor               %6.2fx\n", over_frame);
  std::printf("  tool CPU per request / frame floor client's  %6.2fx\n", cpu_over_frame);
  std::printf("  tool's ramp knee / floor                     %6.2fx\n", knee / floor_rate);
  std::printf("  tool's ramp knee / higher floor              %6.2fx\n", knee / best_floor);
  std::printf("  tool open loop at %.0f%% of the higher floor   %s  (target: keeps up below 80%%)\n",
              100 * at_target / best_floor, open_held ? "held" : "NOT HELD");
  return open_held ? 0 : 1;
}
