// Streams (issue 15): publishing and consuming 1 KiB messages, against baselines measured
// in the same run:
//
//   JetStream        nats-server (started by the bench on 127.0.0.1, a free port, a temp
//                    store dir; always stopped) with JetStream on: one stream per scenario,
//                    file storage, 1 replica. The bench is built only when libnats is
//                    found; without nats-server these rows say why they were skipped.
//     sync publish     js_Publish of one message, waiting for its ack, after a warm-up:
//                      p50 / p99 of the round trip;
//     async publish    js_PublishAsync with at most 4096 un-acked (the context's
//                      PublishAsync.MaxPending), then js_PublishAsyncComplete: msgs/s and
//                      MB/s from the first publish to the last ack;
//     consume          an ordered consumer (ephemeral, flow-controlled push, no acks) from
//                      the earliest of the messages the async publish stored: msgs/s and
//                      MB/s from subscribing to the last message.
//   the floor        the same messages as records of a Levee segment log (fsync none, no
//                    LZ4, batches of 64 records), page cache warm, the fastest of 3 runs:
//                    raw read() of its segment files (what no consumer can beat), the log's
//                    visit() (records as views, no copy) and its read() (records copied).
//   Levee            the same three scenarios through `levee node` with roles = broker
//                    (started by the bench, config and data dir in the temp dir) and
//                    levee::stream_client: publish with ack = leader; publish_async with
//                    at most 4096 un-acked, then flush(), twice: with the client's batching
//                    (successive calls share a Publish frame of up to 64 KiB, as Kafka's
//                    producers batch) and without it (a message a frame, as JetStream's
//                    publishes travel); subscribe from earliest to the last stored offset.
//                    Streams with one partition, R1, fsync none (acknowledged once written
//                    to the OS: what JetStream's file store promises by default).
//   limits           a publish refused message_too_large (its round trip), and a 10x
//                    overload of a stream's rate limit, open loop (Levee only).
//
// MB/s counts message bytes (1 KiB each) in every row, so rows compare; the floor also
// reads the log's framing (its file size is printed).
//
// Run: scripts/bench, or build-release/bench/stream_bench [--quick] [--json] [--cpu N]
// [--messages N] [--levee PATH]; figures in bench/RESULTS.md. Progress goes to stderr.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "bench/bench_support.hpp"
#include "bench/publish_support.hpp"
#include "levee/streams.hpp"
#include "persistence/segment_log.hpp"

namespace {

using namespace levee::bench;
using namespace std::chrono;
namespace fs = std::filesystem;

constexpr size_t records_per_batch = 64;     // segment log appends of 64 KiB
constexpr uint64_t floor_read_bytes = 1 << 20;  // per read() / visit() call, and raw chunk
constexpr int floor_runs = 3;                // the fastest counts: the CPUs may be shared
constexpr unsigned watchdog_seconds = 1800;  // the whole bench, whatever hangs

struct options {
  uint64_t messages = 1'000'000;  // async published, stored, consumed; the floor's too
  int sync_messages = 10'000;     // timed sync publishes
  int warmup_messages = 500;      // sync publishes before them
  bool quick = false;
  bool json = false;
  int cpu = -1;
};

// -- JetStream ----------------------------------------------------------------------------

struct jetstream_outcomes {
  outcome sync_publish, async_publish, consume;
  std::string server_version;
};

/// From the earliest message of stream ASYNC (o.messages, stored by the async publish).
outcome jetstream_consume(jsCtx* js, const options& o) {
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = "ASYNC";
  so.Ordered = true;  // deliver policy "all": from the earliest
  progress p{"JetStream ordered consumer", o.messages};
  auto t0 = steady_clock::now();
  natsSubscription* sub = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  if (auto s = js_SubscribeSync(&sub, js, "async", nullptr, &so, &code); s != NATS_OK)
    return unavailable("failed", "js_SubscribeSync (ordered): " + nats_error(s, code));
  // Flow control bounds what the server sends ahead; the library's own pending bound
  // (64 Ki messages, 64 MiB) would only drop messages as a slow consumer.
  natsSubscription_SetPendingLimits(sub, -1, -1);
  uint64_t received = 0;
  std::string failure;
  while (received < o.messages) {
    natsMsg* m = nullptr;
    auto s = natsSubscription_NextMsg(&m, sub, 10'000);
    if (s != NATS_OK) {
      failure = "after " + std::to_string(received) + " messages: " + nats_error(s, code);
      break;
    }
    bool right = natsMsg_GetDataLength(m) == static_cast<int>(message_bytes);
    natsMsg_Destroy(m);
    if (!right) {
      failure = "message " + std::to_string(received) + " is not " + std::to_string(message_bytes)
                + " bytes";
      break;
    }
    p.at(++received);
  }
  auto secs = seconds_since(t0);
  natsSubscription_Unsubscribe(sub);
  natsSubscription_Destroy(sub);
  if (!failure.empty())
    return unavailable("failed", "ordered consumer " + failure);
  return rate(received, secs);
}

/// Starts nats-server with JetStream (store in the temp dir), runs the three scenarios,
/// stops it. A scenario that cannot run says why.
jetstream_outcomes run_jetstream(const options& o, const std::string& body) {
  jetstream_outcomes r;
  std::string why;
  auto store = temp_dir + "/jetstream";
  auto started = start_nats_server({"-js", "-sd", store}, why);
  if (!started) {
    r.sync_publish = r.async_publish = r.consume = unavailable("skipped", why);
    return r;
  }
  auto [pid, port] = *started;
  r.server_version = nats_server_version(find_program("nats-server"));
  jsCtx* js = nullptr;
  auto nc = nats_connect(port);
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.PublishAsync.MaxPending = max_unacked;
  jo.PublishAsync.StallWait = 1000;  // ms a full window waits for acks before retrying
  jo.PublishAsync.ErrHandler = on_async_publish_error;
  natsStatus s = nc == nullptr ? NATS_CONNECTION_CLOSED : natsConnection_JetStream(&js, nc, &jo);
  if (s != NATS_OK) {
    r.sync_publish = r.async_publish = r.consume =
      unavailable("failed", "no JetStream context: " + nats_error(s, static_cast<jsErrCode>(0)));
  } else {
    if (!add_stream(js, "SYNC", "sync", 1, why))
      r.sync_publish = unavailable("failed", why);
    else
      r.sync_publish = jetstream_sync_publish(js, o.warmup_messages, o.sync_messages, "sync",
                                              body, "JetStream sync publish");
    if (!add_stream(js, "ASYNC", "async", 1, why))
      r.async_publish = unavailable("failed", why);
    else
      r.async_publish = jetstream_async_publish(js, o.messages, "ASYNC", "async", body,
                                                "JetStream async publish");
    r.consume = r.async_publish.ok()
                  ? jetstream_consume(js, o)
                  : unavailable("skipped", "nothing stored: the async publish failed");
  }
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  nats_Close();
  stop(pid);
  return r;
}

// -- the floor: the same messages in a Levee segment log ----------------------------------

struct floor_outcomes {
  outcome raw_read, visit, read;
  uint64_t file_bytes = 0;
  size_t segments = 0;
  double append_seconds = 0;
};

/// Reads every segment file once, `floor_read_bytes` at a time; the bytes read.
uint64_t read_segment_files(const fs::path& dir) {
  std::vector<char> buf(floor_read_bytes);
  uint64_t bytes = 0;
  for (auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".log")
      continue;
    int fd = ::open(e.path().c_str(), O_RDONLY | O_CLOEXEC);
    ssize_t n;
    while ((n = ::read(fd, buf.data(), buf.size())) > 0)
      bytes += static_cast<uint64_t>(n);
    ::close(fd);
  }
  return bytes;
}

/// The fastest of floor_runs runs of `one` (which returns the messages it saw; a run that
/// does not see them all fails the row).
outcome fastest(uint64_t messages, const std::function<uint64_t()>& one, const char* what) {
  outcome best = unavailable("failed", "");
  for (int run = 0; run < floor_runs; ++run) {
    auto t0 = steady_clock::now();
    auto seen = one();
    auto secs = seconds_since(t0);
    if (seen != messages)
      return unavailable("failed", std::string{what} + " saw " + std::to_string(seen) + " of "
                                     + std::to_string(messages) + " records");
    if (!best.ok() || secs < best.seconds)
      best = rate(messages, secs);
  }
  return best;
}

floor_outcomes run_floor(const options& o, const std::string& body) {
  floor_outcomes r;
  namespace p = levee::persistence;
  auto dir = fs::path(temp_dir) / "segment-log";
  p::log_options lo;
  lo.dir = dir.string();
  lo.fsync = p::fsync_policy::none;  // the page cache, as JetStream's file store acks
  lo.limits.compress = false;
  auto log = p::segment_log::open(lo);
  auto fail_all = [&](const std::string& why) {
    r.raw_read = r.visit = r.read = unavailable("failed", why);
    return r;
  };
  if (!log)
    return fail_all("cannot open a segment log in " + lo.dir + ": " + log.error().to_string());
  std::vector<p::record> batch(records_per_batch);
  for (auto& rec : batch)
    rec.value = body;
  progress pr{"segment log append", o.messages};
  auto t0 = steady_clock::now();
  for (uint64_t done = 0; done < o.messages;) {
    batch.resize(std::min<uint64_t>(records_per_batch, o.messages - done));
    for (auto& rec : batch)
      rec.timestamp_ms = static_cast<int64_t>(done);
    if (auto a = (*log)->append(batch); !a)
      return fail_all("segment log append: " + a.error().to_string());
    done += batch.size();
    pr.at(done);
  }
  if (auto st = (*log)->sync(); !st)
    return fail_all("segment log sync: " + st.to_string());
  r.append_seconds = seconds_since(t0);
  r.segments = (*log)->segment_count();
  r.file_bytes = (*log)->size_bytes();
  std::fprintf(stderr, "stream_bench: reading the segment log (%d runs of each)\n", floor_runs);
  read_segment_files(dir);  // page cache warm for every row
  auto& l = **log;
  r.raw_read = fastest(
    o.messages,
    [&] { return read_segment_files(dir) == r.file_bytes ? o.messages : uint64_t{0}; },
    "raw read()");
  r.visit = fastest(
    o.messages,
    [&]() -> uint64_t {
      uint64_t seen = 0, bytes = 0;
      for (uint64_t from = l.start_offset(); from < l.next_offset();) {
        auto next = l.visit(from, floor_read_bytes, [&](const p::record_view& v) {
          ++seen;
          bytes += v.value.size();  // touch what a consumer would hand on
          return true;
        });
        if (!next || *next <= from)
          return 0;
        from = *next;
      }
      return bytes == seen * message_bytes ? seen : 0;
    },
    "visit()");
  r.read = fastest(
    o.messages,
    [&]() -> uint64_t {
      uint64_t seen = 0;
      for (uint64_t from = l.start_offset(); from < l.next_offset();) {
        auto recs = l.read(from, floor_read_bytes);
        if (!recs || recs->empty())
          return 0;
        for (auto& rec : *recs)
          seen += rec.rec.value.size() == message_bytes ? 1 : 0;
        from = recs->back().offset + 1;
      }
      return seen;
    },
    "read()");
  log->reset();
  std::error_code ec;
  fs::remove_all(dir, ec);
  return r;
}

// -- Levee: the same scenarios through a broker ------------------------------------------

/// What the limits cost and hold: a refused publish's round trip, and the broker under
/// ten times the rate one stream's leader admits.
struct overload_outcome {
  std::string status = "ok";
  std::string why;
  double offered_per_s = 0;   // the schedule's rate
  double limit_per_s = 0;     // the leader's limits.stream.rate_msgs_per_sec (override)
  uint64_t offered = 0, accepted = 0, rate_limited = 0, other_refusals = 0, missed_sends = 0;
  double seconds = 0;
  uint64_t rss_before = 0, rss_peak = 0;  // the broker's VmRSS before, VmHWM after (bytes)
  bool ok() const { return status == "ok"; }
};

struct levee_outcomes {
  outcome sync_publish, async_publish, consume;
  outcome async_unbatched;  // publish_async with stream_client batching off
  outcome refused_publish;  // p50/p99 of a publish refused message_too_large
  overload_outcome overload;
};

/// A /proc/<pid>/status field in bytes (kB there), 0 when unreadable.
uint64_t proc_status_bytes(pid_t pid, const char* field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field, 0) == 0)
      return std::stoull(line.substr(std::strlen(field))) * 1024;
  return 0;
}

outcome levee_sync_publish(levee::stream_client& sc, const options& o, const std::string& body) {
  std::string why;
  if (!create_bench_stream(sc, "sync", "sync", 1, why))
    return unavailable("failed", why);
  return sync_latencies(o.warmup_messages, o.sync_messages, "Levee sync publish", [&]() -> std::string {
    auto acks = sc.publish("sync", {levee_message(body)});  // ack = leader
    if (!acks)
      return "publish: " + acks.error().to_string();
    return acks->size() == 1 ? "" : "publish: " + std::to_string(acks->size()) + " acks, not 1";
  });
}

/// Into stream `name` (subject the same); `batch_bytes` as stream_client::set_batch_bytes
/// (0: one message a frame, as JetStream's publishes travel).
outcome levee_async_publish(levee::stream_client& sc, const options& o, const std::string& body,
                            const char* name, uint64_t batch_bytes) {
  std::string why;
  if (!create_bench_stream(sc, name, name, 1, why))
    return unavailable("failed", why);
  sc.set_batch_bytes(batch_bytes);
  return levee::bench::levee_async_publish(sc, name, levee::publish_options{}, body, o.messages,
                             batch_bytes == 0 ? "Levee async publish, a message a frame"
                                              : "Levee async publish");
}

/// From the earliest message of stream "async" (o.messages, stored by the async publish).
outcome levee_consume(levee::stream_client& sc, const options& o) {
  levee::subscribe_options so;
  so.stream = "async";
  so.start = levee::start_at::earliest();
  so.stop_offset = o.messages - 1;
  progress p{"Levee consume", o.messages};
  auto t0 = steady_clock::now();
  auto sub = sc.subscribe(so);
  if (!sub)
    return unavailable("failed", "subscribe: " + sub.error().to_string());
  uint64_t received = 0;
  std::string failure;
  while (received < o.messages && failure.empty()) {
    auto ev = sc.next(*sub, seconds(10));
    if (ev.error) {
      failure = "after " + std::to_string(received) + " messages: " + ev.error->to_string();
      break;
    }
    if (ev.batch)
      for (auto& m : ev.batch->messages) {
        if (m.body.size() != message_bytes)
          failure = "message " + std::to_string(m.offset) + " is not "
                    + std::to_string(message_bytes) + " bytes";
        else
          ++received;
      }
    p.at(received);
    if (ev.end)
      break;
  }
  auto secs = seconds_since(t0);
  if (received < o.messages)
    (void)sc.unsubscribe(*sub);
  if (failure.empty() && received != o.messages)
    failure = "ended after " + std::to_string(received) + " of " + std::to_string(o.messages);
  if (!failure.empty())
    return unavailable("failed", "subscription " + failure);
  return rate(received, secs);
}

/// A publish the broker refuses (1 KiB to a stream whose max_message_bytes is 512): its
/// round trip, to set beside an accepted one's.
outcome levee_refused_publish(levee::stream_client& sc, const options& o,
                              const std::string& body) {
  levee::stream_spec spec;
  spec.name = "refusing";
  spec.subject = "refusing";
  spec.max_message_bytes = 512;
  if (auto info = sc.create_stream(spec, seconds(10)); !info)
    return unavailable("failed", "cannot create stream refusing: " + info.error().to_string());
  return sync_latencies(o.warmup_messages, o.sync_messages, "Levee refused publish", [&]() -> std::string {
    auto acks = sc.publish("refusing", {levee_message(body)});
    if (acks)
      return "a 1 KiB publish to a 512-byte stream was stored";
    return acks.error().code() == levee::code::message_too_large
             ? ""
             : "refused with " + acks.error().to_string() + ", not message_too_large";
  });
}

/// Ten times the rate the stream's leader admits (its limits.stream.rate_msgs_per_sec,
/// overridden at creation), offered open loop for a few seconds on a fixed schedule: how
/// many are accepted and refused, and the broker's memory before and at its peak.
overload_outcome levee_overload(levee::stream_client& sc, const options& o,
                                const std::string& body, pid_t broker) {
  overload_outcome r;
  r.limit_per_s = o.quick ? 1000 : 5000;
  r.offered_per_s = r.limit_per_s * 10;
  levee::stream_spec spec;
  spec.name = "overloaded";
  spec.subject = "overloaded";
  spec.fsync = levee::fsync_mode::none;
  spec.limits["rate_msgs_per_sec"] = static_cast<uint64_t>(r.limit_per_s);
  if (auto info = sc.create_stream(spec, seconds(10)); !info) {
    r.status = "failed";
    r.why = "cannot create stream overloaded: " + info.error().to_string();
    return r;
  }
  r.rss_before = proc_status_bytes(broker, "VmRSS:");
  sc.on_acks([&](uint64_t, levee::result<std::vector<levee::message_ack>> acks) {
    if (acks)
      ++r.accepted;
    else if (acks.error().code() == levee::code::rate_limited)
      ++r.rate_limited;
    else
      ++r.other_refusals;
  });
  sc.set_max_unacked(max_unacked);
  sc.set_batch_bytes(0);  // one message a frame: the leader's rate is per message
  auto run_for = o.quick ? 1.0 : 3.0;
  auto interval = duration<double>(1.0 / r.offered_per_s);
  auto t0 = steady_clock::now();
  auto end = t0 + duration_cast<steady_clock::duration>(duration<double>(run_for));
  auto next = t0;
  while (next < end) {
    // Every send due by now goes; one that is a whole interval late counts as missed (the
    // tool fell behind its own schedule), so the offered rate is what was really sent.
    auto now = steady_clock::now();
    if (now < next) {
      if (auto st = sc.connection().flush_writes(); !st)
        break;
      std::this_thread::sleep_until(next);
    } else if (now - next > interval * 64) {
      ++r.missed_sends;
    }
    next += duration_cast<steady_clock::duration>(interval);
    if (auto st = sc.publish_async("overloaded", {levee_message(body)}); !st) {
      r.status = "failed";
      r.why = "publish_async: " + st.to_string();
      return r;
    }
    ++r.offered;
  }
  if (auto st = sc.flush(seconds(60)); !st) {
    r.status = "failed";
    r.why = "flush: " + st.to_string();
  }
  r.seconds = seconds_since(t0);
  sc.on_acks(nullptr);
  r.rss_peak = proc_status_bytes(broker, "VmHWM:");
  return r;
}

/// Starts `levee node` with roles = broker (config in the temp dir, no rate limits, as
/// query_bench's nodes), runs the three scenarios, stops it. When the binary cannot run a
/// broker (before the broker role exists) every row is skipped with the node's own words.
levee_outcomes run_levee(const std::string& binary, const options& o, const std::string& body) {
  levee_outcomes r;
  auto skip_all = [&](const std::string& why) {
    r.sync_publish = r.async_publish = r.consume = unavailable("skipped", why);
    return r;
  };
  if (::access(binary.c_str(), X_OK) != 0)
    return skip_all(binary + " not found; pass --levee PATH");
  auto port = free_port();
  auto dir = temp_dir + "/broker";
  fs::create_directories(dir + "/data");
  std::ofstream(dir + "/broker.ini") << "[node]\n"
                                     << "roles = broker\n"
                                     << "[broker]\n"
                                     << "listen = 127.0.0.1:" << port << "\n"
                                     << "data_dir = " << dir << "/data\n"
                                     << "[net]\n"
                                     << "max_msgs_per_sec = 0\n"
                                     << "max_bytes_per_sec = 0\n";
  auto log = dir + "/broker.log";
  auto pid = spawn_program({binary, "node", "--config", dir + "/broker.ini"}, log);
  std::optional<int> code;
  if (!wait_for_port(port, pid, seconds(10), code)) {
    stop(pid);
    return skip_all(code ? "`levee node` cannot run a broker (exit code " + std::to_string(*code)
                             + "): " + last_line(log)
                         : "`levee node` (broker) did not listen within 10 s");
  }
  levee::client_options co;
  co.port = port;
  co.node_id = "stream-bench";
  levee::stream_client sc{co};
  if (auto st = sc.connect_with_backoff(seconds(5)); !st) {
    stop(pid);
    return skip_all("cannot connect to the broker: " + st.to_string());
  }
  r.sync_publish = levee_sync_publish(sc, o, body);
  r.async_publish = levee_async_publish(sc, o, body, "async", 64 * 1024);
  r.async_unbatched = levee_async_publish(sc, o, body, "async1", 0);
  r.consume = r.async_publish.ok()
                ? levee_consume(sc, o)
                : unavailable("skipped", "nothing stored: the async publish failed");
  r.refused_publish = levee_refused_publish(sc, o, body);
  r.overload = levee_overload(sc, o, body, pid);
  sc.connection().close();
  stop(pid);
  if (!r.sync_publish.ok() || !r.async_publish.ok() || !r.consume.ok())
    std::fprintf(stderr, "stream_bench: the broker's log: %s\n", log.c_str());
  return r;
}

// -- output -------------------------------------------------------------------------------

std::string human_rate(double per_s) {
  char buf[32];
  if (per_s >= 1e6)
    std::snprintf(buf, sizeof buf, "%.2fM", per_s / 1e6);
  else
    std::snprintf(buf, sizeof buf, "%.1fk", per_s / 1e3);
  return buf;
}

/// A throughput cell: "278.0k msgs/s  284 MB/s", or the status.
std::string rate_cell(const outcome& o) {
  if (!o.ok())
    return o.status;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s msgs/s %5.0f MB/s", human_rate(o.msgs_per_s).c_str(),
                o.mb_per_s);
  return buf;
}

std::string latency_cell(const outcome& o, double us) {
  if (!o.ok())
    return o.status;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f us", us);
  return buf;
}

std::string ratio_cell(bool have, double x) {
  if (!have)
    return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2fx", x);
  return buf;
}

struct results {
  jetstream_outcomes jetstream;
  levee_outcomes levee;
  floor_outcomes floor;
};

void print_table(const results& r, const options& o) {
  auto& js = r.jetstream;
  auto row = [](const char* name, const std::string& a, const std::string& b,
                const std::string& ratio, const char* target) {
    char line[256];
    std::snprintf(line, sizeof line, "  %-34s %-28s %-28s %-16s %s", name, a.c_str(), b.c_str(),
                  ratio.c_str(), target);
    std::string text = line;
    text.erase(text.find_last_not_of(' ') + 1);
    std::printf("%s\n", text.c_str());
  };
  std::printf("\n");
  row("", "JetStream", "Levee", "Levee/JetStream", "target");
  bool sync = js.sync_publish.ok() && r.levee.sync_publish.ok();
  row("sync publish with ack, p50", latency_cell(js.sync_publish, js.sync_publish.p50_us),
      latency_cell(r.levee.sync_publish, r.levee.sync_publish.p50_us),
      ratio_cell(sync, sync ? r.levee.sync_publish.p50_us / js.sync_publish.p50_us : 0), "<= 1x");
  row("sync publish with ack, p99", latency_cell(js.sync_publish, js.sync_publish.p99_us),
      latency_cell(r.levee.sync_publish, r.levee.sync_publish.p99_us),
      ratio_cell(sync, sync ? r.levee.sync_publish.p99_us / js.sync_publish.p99_us : 0), "-");
  bool async = js.async_publish.ok() && r.levee.async_publish.ok();
  row("async publish, <= 4096 un-acked", rate_cell(js.async_publish), rate_cell(r.levee.async_publish),
      ratio_cell(async, async ? r.levee.async_publish.msgs_per_s / js.async_publish.msgs_per_s : 0),
      ">= 2x");
  bool unbatched = js.async_publish.ok() && r.levee.async_unbatched.ok();
  row("  the same, a message a frame", rate_cell(js.async_publish),
      rate_cell(r.levee.async_unbatched),
      ratio_cell(unbatched,
                 unbatched ? r.levee.async_unbatched.msgs_per_s / js.async_publish.msgs_per_s : 0),
      "-");
  bool consume = js.consume.ok() && r.levee.consume.ok();
  auto consume_name = "consume " + human_rate(static_cast<double>(o.messages))
                      + " from earliest";
  row(consume_name.c_str(), rate_cell(js.consume), rate_cell(r.levee.consume),
      ratio_cell(consume, consume ? r.levee.consume.msgs_per_s / js.consume.msgs_per_s : 0),
      "-");

  auto& f = r.floor;
  std::printf("\nthe floor: the same %llu x 1 KiB in a Levee segment log (%.1f MiB in %zu "
              "segments, appended in %.2f s), page cache warm, fastest of %d\n",
              static_cast<unsigned long long>(o.messages),
              static_cast<double>(f.file_bytes) / (1 << 20), f.segments, f.append_seconds,
              floor_runs);
  auto floor_row = [&](const char* name, const outcome& x) {
    bool have = x.ok() && f.raw_read.ok();
    row(name, rate_cell(x), "", ratio_cell(have, have ? x.msgs_per_s / f.raw_read.msgs_per_s : 0),
        "");
  };
  row("", "", "", "vs floor", "");
  floor_row("raw read() of the segment files", f.raw_read);
  floor_row("segment_log visit()", f.visit);
  floor_row("segment_log read()", f.read);
  floor_row("JetStream ordered consumer", js.consume);
  floor_row("Levee consume", r.levee.consume);

  std::printf("\n");
  for (auto* x : {&js.sync_publish, &js.async_publish, &js.consume})
    if (!x->ok()) {
      std::printf("JetStream: %s: %s\n", x->status.c_str(), x->why.c_str());
      break;  // one reason is enough: they share it
    }
  for (auto* x : {&f.raw_read, &f.visit, &f.read})
    if (!x->ok())
      std::printf("floor: %s: %s\n", x->status.c_str(), x->why.c_str());
  auto& lv = r.levee;
  std::printf("\nthe limits on the publish path (Levee)\n");
  if (lv.refused_publish.ok() && lv.sync_publish.ok())
    std::printf("  a refused publish (message_too_large), p50 / p99: %.1f / %.1f us; an accepted "
                "one: %.1f / %.1f us (%.2fx)\n",
                lv.refused_publish.p50_us, lv.refused_publish.p99_us, lv.sync_publish.p50_us,
                lv.sync_publish.p99_us, lv.refused_publish.p50_us / lv.sync_publish.p50_us);
  else
    std::printf("  a refused publish: %s %s\n", lv.refused_publish.status.c_str(),
                lv.refused_publish.why.c_str());
  auto& ov = lv.overload;
  if (ov.ok())
    std::printf("  10x overload: %.0f msgs/s offered open loop for %.1f s to a stream whose "
                "leader admits %.0f msgs/s: %llu offered, %llu accepted (%.0f/s), %llu "
                "rate_limited, %llu other refusals, %llu sends missed; broker RSS %.1f MiB "
                "before, peak %.1f MiB\n",
                ov.offered_per_s, ov.seconds, ov.limit_per_s,
                static_cast<unsigned long long>(ov.offered),
                static_cast<unsigned long long>(ov.accepted), ov.accepted / ov.seconds,
                static_cast<unsigned long long>(ov.rate_limited),
                static_cast<unsigned long long>(ov.other_refusals),
                static_cast<unsigned long long>(ov.missed_sends), ov.rss_before / 1048576.0,
                ov.rss_peak / 1048576.0);
  else
    std::printf("  10x overload: %s %s\n", ov.status.c_str(), ov.why.c_str());
  for (auto* x : {&r.levee.sync_publish, &r.levee.async_publish, &r.levee.consume})
    if (!x->ok()) {
      std::printf("Levee: %s: %s\n", x->status.c_str(), x->why.c_str());
      break;
    }
}

void print_json(const results& r, const options& o) {
  auto& f = r.floor;
  nlohmann::ordered_json j{
    {"message_bytes", message_bytes},
    {"messages", o.messages},
    {"max_unacked", max_unacked},
    {"cpu", o.cpu},
    {"quick", o.quick},
    {"jetstream",
     {{"server", r.jetstream.server_version},
      {"sync_publish", to_json(r.jetstream.sync_publish)},
      {"async_publish", to_json(r.jetstream.async_publish)},
      {"consume", to_json(r.jetstream.consume)}}},
    {"levee",
     {{"sync_publish", to_json(r.levee.sync_publish)},
      {"async_publish", to_json(r.levee.async_publish)},
      {"async_publish_a_message_a_frame", to_json(r.levee.async_unbatched)},
      {"consume", to_json(r.levee.consume)},
      {"refused_publish", to_json(r.levee.refused_publish)},
      {"overload",
       {{"status", r.levee.overload.status},
        {"why", r.levee.overload.why},
        {"offered_per_s", r.levee.overload.offered_per_s},
        {"limit_per_s", r.levee.overload.limit_per_s},
        {"offered", r.levee.overload.offered},
        {"accepted", r.levee.overload.accepted},
        {"rate_limited", r.levee.overload.rate_limited},
        {"other_refusals", r.levee.overload.other_refusals},
        {"missed_sends", r.levee.overload.missed_sends},
        {"seconds", r.levee.overload.seconds},
        {"rss_before_bytes", r.levee.overload.rss_before},
        {"rss_peak_bytes", r.levee.overload.rss_peak}}}}},
    {"floor",
     {{"file_bytes", f.file_bytes},
      {"segments", f.segments},
      {"append_seconds", f.append_seconds},
      {"raw_read", to_json(f.raw_read)},
      {"visit", to_json(f.visit)},
      {"read", to_json(f.read)}}},
  };
  std::printf("%s\n", j.dump(2).c_str());
}

} // namespace

int main(int argc, char** argv) {
  options o;
  std::string levee_binary = default_levee_binary();
  bool messages_given = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    uint64_t n = 0;
    if (a == "--quick") {
      o.quick = true;
    } else if (a == "--levee" && i + 1 < argc) {
      levee_binary = argv[++i];
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "--cpu" && i + 1 < argc && parse_number(argv[i + 1], 0, n) && n < CPU_SETSIZE) {
      o.cpu = static_cast<int>(n);
      ++i;
    } else if (a == "--messages" && i + 1 < argc && parse_number(argv[i + 1], 1, n)) {
      o.messages = n;
      messages_given = true;
      ++i;
    } else {
      std::fprintf(stderr,
                   "usage: stream_bench [--quick] [--json] [--cpu N] [--messages N] "
                   "[--levee PATH]\n"
                   "  --quick       20,000 messages and 1,000 sync publishes: a smoke run\n"
                   "  --json        the results as one JSON object on stdout\n"
                   "  --cpu N       run the bench and nats-server on CPU N only\n"
                   "  --messages N  messages published async, stored and consumed "
                   "(default 1,000,000)\n"
                   "  --levee PATH  the levee binary (default: %s)\n",
                   levee_binary.c_str());
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  if (o.quick) {
    if (!messages_given)
      o.messages = 20'000;
    o.sync_messages = 1'000;
    o.warmup_messages = 100;
  }
  if (!guard_children("stream_bench", watchdog_seconds))
    return 1;
  // Inherited by nats-server and the broker.
  if (o.cpu >= 0 && !pin_to_cpu(o.cpu))
    return 2;
  if (!o.json) {
    std::printf("streams, %zu-byte messages, 127.0.0.1%s\n"
                "  JetStream: nats-server -js, one stream per scenario (file storage, R1); "
                "sync publish %d after %d warm-up; async publish %llu with at most %d "
                "un-acked; ordered consumer over the %llu stored, from the earliest\n"
                "  Levee:     the same through `levee node` (roles = broker) and "
                "levee::stream_client; streams R1, fsync none (acked once written, as JetStream's default)\n"
                "  floor:     the same messages in a segment log: raw read() of its files, "
                "visit(), read()\n",
                message_bytes,
                o.cpu >= 0 ? (", every process on CPU " + std::to_string(o.cpu)).c_str() : "",
                o.sync_messages, o.warmup_messages, static_cast<unsigned long long>(o.messages),
                max_unacked, static_cast<unsigned long long>(o.messages));
    std::fflush(stdout);
  }
  auto body = message_body();
  results r;
  r.jetstream = run_jetstream(o, body);
  r.levee = run_levee(levee_binary, o, body);
  r.floor = run_floor(o, body);
  if (o.json)
    print_json(r, o);
  else
    print_table(r, o);
  bool failed = false;
  for (auto* x : {&r.jetstream.sync_publish, &r.jetstream.async_publish, &r.jetstream.consume,
                  &r.levee.sync_publish, &r.levee.async_publish, &r.levee.consume,
                  &r.floor.raw_read, &r.floor.visit, &r.floor.read})
    failed |= x->status == "failed";
  return failed ? 1 : 0;
}
