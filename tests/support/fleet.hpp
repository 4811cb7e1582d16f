#pragma once
// A fleet simulator: N simulated satellites in one process, each ONE real TCP connection
// to a real `levee node` server, speaking the wire protocol as a `levee node` satellite
// does (net/PROTOCOL.md; satellite/agent.cpp, net/uplink.cpp, satellite/store.cpp):
//
//   dial -> Hello (net.token) -> the server's Hello -> Request "register" (Register: id,
//   satellite token, labels, address) -> RegisterAck (id, heartbeat interval) -> a
//   Request "heartbeat" at once and then every interval, not waiting for the acks;
//   Ping -> Pong; a streamed Request "query" -> one Batch (a ResultBatch of one row, or one
//   count group for a text with "count") within the stream's credit, then EndOfStream
//   (QueryStats); Credit and Cancel for it (Reject cancelled); any other target ->
//   Reject not_found. A refused registration is tried again after its retry_after_ms (1 s
//   when it has none, as the agent does); a heartbeat refused with not_found registers
//   again (the server forgot us).
//
// One thread with epoll runs them all: non-blocking sockets, a bounded write buffer per
// connection, a timer heap for heartbeats, redials and registration retries, and
// epoll_wait with the next deadline as its timeout (no busy spin). Plain C++ over the
// wire codec (levee_wire): no CAF. Used by tests/fleet_test.cpp and bench/fleet_bench.cpp.
//
// Controls (callable from any thread; each is posted to the fleet's thread):
//   connect(n, concurrency)  satellites [0, n) dial and register, at most `concurrency`
//                            between dial and RegisterAck at a time
//   kill(ids)                close their sockets (a process that died); they stay down
//   silence(ids)             stop their heartbeats, keep the connection (they still answer
//                            pings and queries: an agent stuck, its store fine); a silent
//                            satellite the server closes stays down
//   redial_after_close       a live satellite whose connection the server closed (or that
//                            could not connect) dials again with the uplink's backoff
//                            (50 ms doubling to 2 s, with jitter): a registration herd when
//                            a server restarts
//
// Beyond ~28,000 connections to one server port the loopback runs out of source ports for
// one source address: satellite i then binds 127.0.0.(1 + i / 20000) first.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace levee::fleet {

struct fleet_options {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string net_token;        // Hello.token: the server's net.token, if it has one
  std::string satellite_token;  // Register.token: the server's server.satellite_token
  std::string id_prefix = "sim-";
  /// Labels of satellite i (Register.labels); by default {"fleet": "sim"}.
  std::function<std::map<std::string, std::string>(size_t)> labels;
  /// 0: the interval the server's RegisterAck names (as the agent does).
  std::chrono::milliseconds heartbeat_interval{0};
  /// Bytes one connection may hold unsent; a satellite that would need more is closed
  /// (counted in write_overflows): the simulator never buffers without bound.
  size_t max_write_buffer_bytes = 256 * 1024;
  bool redial_after_close = true;
  std::chrono::milliseconds backoff_initial{50};
  std::chrono::milliseconds backoff_max{2000};
  std::chrono::milliseconds connect_timeout{5000};
};

/// One satellite's state as the simulator sees it.
enum class sat_state : uint8_t {
  idle,         // not started
  dialing,      // connect in progress
  hello,        // Hello sent, waiting for the server's
  registering,  // Register sent, waiting for RegisterAck
  registered,   // beating
  waiting,      // closed; dials again after its backoff (or registers again after a refusal)
  down,         // killed, or closed for good
};

/// Counters since the fleet started (a snapshot).
struct fleet_stats {
  uint64_t connected = 0;           // gauge: connections open (past the dial)
  uint64_t registered = 0;          // gauge: satellites registered now
  uint64_t registrations = 0;       // counter: RegisterAcks received
  uint64_t dials = 0;               // counter: connects started
  uint64_t dial_failures = 0;       // counter: connects that failed or timed out
  uint64_t closed_by_server = 0;    // counter: connections the server closed
  uint64_t heartbeats_sent = 0;
  uint64_t heartbeat_acks = 0;
  uint64_t queries_answered = 0;    // EndOfStreams sent
  uint64_t queries_cancelled = 0;
  uint64_t write_overflows = 0;     // satellites closed: max_write_buffer_bytes would be passed
  uint64_t bad_frames = 0;          // frames from the server the simulator could not read
  std::map<uint32_t, uint64_t> rejects;  // Reject frames received, by code number
  std::string last_reject;          // the latest, as text
  std::string last_error;           // the latest local failure (connect, read), as text
  double heartbeat_rtt_p50_ms = 0;  // over the latest (up to 4096) heartbeat round trips
  double heartbeat_rtt_p99_ms = 0;
  double heartbeat_rtt_max_ms = 0;
};

class fleet {
public:
  explicit fleet(fleet_options opts);
  ~fleet();  // stops the thread and closes every socket
  fleet(const fleet&) = delete;
  fleet& operator=(const fleet&) = delete;

  /// RLIMIT_NOFILE raised so that this process can hold `fds` descriptors: the soft limit
  /// up to the hard one, and the hard one too where the process may (CAP_SYS_RESOURCE). The
  /// processes it starts afterwards (a server) inherit it. An empty string when it holds;
  /// otherwise what was missing and what to do.
  static std::string raise_fd_limit(uint64_t fds);

  /// The id of satellite i: id_prefix + i.
  std::string id_of(size_t i) const;

  void connect(size_t n, size_t concurrency);
  void kill(const std::vector<size_t>& which);
  void silence(const std::vector<size_t>& which);

  fleet_stats stats() const;
  sat_state state_of(size_t i) const;
  /// When satellite i's connection was last closed by the server (steady clock), or the
  /// epoch when it never was.
  std::chrono::steady_clock::time_point closed_by_server_at(size_t i) const;

  /// Waits until at least `n` satellites are registered at once; false after `bound`.
  bool wait_registered(size_t n, std::chrono::milliseconds bound) const;
  /// Waits until `pred(stats())` holds, woken by every change the fleet makes; false after
  /// `bound`.
  bool wait_for(const std::function<bool(const fleet_stats&)>& pred,
                std::chrono::milliseconds bound) const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace levee::fleet
