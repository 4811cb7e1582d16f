#pragma once
// What the stream benches (stream_bench: one broker against one nats-server; and
// replication_bench: three brokers against a three-node JetStream cluster) measure alike:
// a scenario's outcome, progress on stderr, the 1 KiB body, the sync round-trip loop, and
// JetStream's sync and async publish through libnats. One copy, so both benches time the
// same loops.

#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#ifdef LEVEE_BENCH_NATS
#include <nats/nats.h>
#endif

#include <nlohmann/json.hpp>

#include "bench/bench_support.hpp"
#include "levee/streams.hpp"

namespace levee::bench {

inline constexpr size_t message_bytes = 1024;
inline constexpr int max_unacked = 4096;  // the async publish window, every system

/// One scenario's figures, or why it has none (`status` "skipped" or "failed", with `why`).
struct outcome {
  std::string status = "ok";
  std::string why;
  uint64_t messages = 0;
  double seconds = 0;
  double p50_us = 0;  // sync publish only
  double p99_us = 0;
  double msgs_per_s = 0;
  double mb_per_s = 0;  // message bytes

  bool ok() const { return status == "ok"; }
};

inline outcome unavailable(std::string status, std::string why) {
  outcome o;
  o.status = std::move(status);
  o.why = std::move(why);
  return o;
}

inline outcome rate(uint64_t messages, double seconds) {
  outcome o;
  o.messages = messages;
  o.seconds = seconds;
  o.msgs_per_s = static_cast<double>(messages) / seconds;
  o.mb_per_s = static_cast<double>(messages * message_bytes) / seconds / 1e6;
  return o;
}

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// "<bench>: <what>: <done> of <total>" on stderr about once a second, for long phases.
struct progress {
  const char* what;
  uint64_t total;
  std::chrono::steady_clock::time_point next =
    std::chrono::steady_clock::now() + std::chrono::seconds(1);

  void at(uint64_t done) {
    if (std::chrono::steady_clock::now() < next)
      return;
    next = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    std::fprintf(stderr, "%s: %s: %llu of %llu\n", bench_name, what,
                 static_cast<unsigned long long>(done), static_cast<unsigned long long>(total));
  }
};

/// The message body every system stores: 1 KiB of random letters (incompressible enough
/// that neither side gains from compressing it; the floor's log has LZ4 off anyway).
inline std::string message_body() {
  std::mt19937 rng(15);
  std::string body(message_bytes, ' ');
  for (auto& ch : body)
    ch = static_cast<char>('a' + rng() % 26);
  return body;
}

/// Sync publish, any system: `publish_one()` publishes one message and waits for its ack
/// (an empty string) or says what failed. `warmup` first, then p50 / p99 of `count`
/// round trips.
template <class F>
outcome sync_latencies(int warmup, int count, const char* what, F publish_one) {
  using namespace std::chrono;
  std::vector<double> rtts;
  rtts.reserve(static_cast<size_t>(count));
  progress p{what, static_cast<uint64_t>(warmup + count)};
  for (int i = 0; i < warmup + count; ++i) {
    auto t0 = steady_clock::now();
    auto failure = publish_one();
    auto us = duration<double, std::micro>(steady_clock::now() - t0).count();
    if (!failure.empty())
      return unavailable("failed", failure);
    if (i >= warmup)
      rtts.push_back(us);
    p.at(static_cast<uint64_t>(i));
  }
  outcome r;
  r.messages = rtts.size();
  r.p50_us = percentile(rtts, 0.5);
  r.p99_us = percentile(rtts, 0.99);
  return r;
}

#ifdef LEVEE_BENCH_NATS

inline std::string nats_error(natsStatus s, jsErrCode code) {
  std::string text = natsStatus_GetText(s);
  if (const char* last = nats_GetLastError(nullptr); last != nullptr && *last != '\0')
    text += std::string{": "} + last;
  if (code != 0)
    text += " (JetStream error " + std::to_string(static_cast<int>(code)) + ")";
  return text;
}

/// A stream `name` binding `subject`: file storage, `replicas` copies, no other limits.
inline bool add_stream(jsCtx* js, const char* name, const char* subject, int replicas,
                       std::string& why) {
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = name;
  const char* subjects[] = {subject};
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Storage = js_FileStorage;
  cfg.Replicas = replicas;
  jsStreamInfo* si = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  auto s = js_AddStream(&si, js, &cfg, nullptr, &code);
  jsStreamInfo_Destroy(si);
  if (s != NATS_OK)
    why = std::string{"cannot create stream "} + name + ": " + nats_error(s, code);
  return s == NATS_OK;
}

/// js_Publish of one message to `subject`, waiting for its ack, timed by sync_latencies.
inline outcome jetstream_sync_publish(jsCtx* js, int warmup, int count, const char* subject,
                                      const std::string& body, const char* what) {
  return sync_latencies(warmup, count, what, [&]() -> std::string {
    jsPubAck* ack = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    auto s = js_Publish(&ack, js, subject, body.data(), static_cast<int>(body.size()), nullptr,
                        &code);
    jsPubAck_Destroy(ack);
    return s == NATS_OK ? "" : "js_Publish: " + nats_error(s, code);
  });
}

/// Counted by the library's thread for every async publish that failed (no ack, or a
/// negative one); read after js_PublishAsyncComplete. Set the context's
/// PublishAsync.ErrHandler to on_async_publish_error.
inline std::atomic<uint64_t> async_publish_errors{0};

extern "C" inline void on_async_publish_error(jsCtx*, jsPubAckErr*, void*) {
  async_publish_errors.fetch_add(1);
}

/// `messages` js_PublishAsync to `subject` (the context's window bounds the un-acked),
/// then js_PublishAsyncComplete; checks that stream `stream` holds them all.
inline outcome jetstream_async_publish(jsCtx* js, uint64_t messages, const char* stream,
                                       const char* subject, const std::string& body,
                                       const char* what) {
  async_publish_errors = 0;
  progress p{what, messages};
  auto t0 = std::chrono::steady_clock::now();
  for (uint64_t i = 0; i < messages; ++i) {
    natsStatus s;
    // With a full window the call waits (StallWait) for acks; NATS_TIMEOUT only says that
    // wait ended first, so the same message is published again.
    while ((s = js_PublishAsync(js, subject, body.data(), static_cast<int>(body.size()),
                                nullptr))
           == NATS_TIMEOUT)
      ;
    if (s != NATS_OK)
      return unavailable("failed", "js_PublishAsync: " + nats_error(s, static_cast<jsErrCode>(0)));
    p.at(i);
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = 120'000;  // ms for the last acks; far beyond any run
  if (auto s = js_PublishAsyncComplete(js, &po); s != NATS_OK)
    return unavailable("failed",
                       "js_PublishAsyncComplete: " + nats_error(s, static_cast<jsErrCode>(0)));
  auto secs = seconds_since(t0);
  if (auto errors = async_publish_errors.load(); errors > 0)
    return unavailable("failed", std::to_string(errors) + " async publishes failed (see the "
                                   "nats-server logs in " + temp_dir + ")");
  jsStreamInfo* si = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  auto s = js_GetStreamInfo(&si, js, stream, nullptr, &code);
  uint64_t stored = s == NATS_OK ? si->State.Msgs : 0;
  jsStreamInfo_Destroy(si);
  if (stored != messages)
    return unavailable("failed", std::string{"stream "} + stream + " holds "
                                   + std::to_string(stored) + " of " + std::to_string(messages)
                                   + " messages published"
                                   + (s != NATS_OK ? ": " + nats_error(s, code) : ""));
  return rate(messages, secs);
}

/// The first line `program --version` prints.
inline std::string nats_server_version(const std::string& program) {
  std::string out;
  if (FILE* f = ::popen((program + " --version 2>&1").c_str(), "r")) {
    char buf[128];
    while (std::fgets(buf, sizeof buf, f) != nullptr)
      out += buf;
    ::pclose(f);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r'))
    out.pop_back();
  return out;
}

#endif  // LEVEE_BENCH_NATS

/// Levee's side of the same loops. A stream `name` binding `subject`, one partition,
/// keeping every message (1 M x 1 KiB is more than the 1 GiB a partition keeps by
/// default), `replicas` copies (min ISR 2 when more than one), fsync none: acknowledged
/// once written to the OS and readable at once, which is what JetStream's file store
/// promises by default (an ack after the write, an fsync every 2 min). Levee's `interval`
/// would not compare: its consumers see only what the last interval's fsync made durable.
inline bool create_bench_stream(levee::stream_client& sc, const char* name, const char* subject,
                                uint32_t replicas, std::string& why) {
  levee::stream_spec spec;
  spec.name = name;
  spec.subject = subject;
  spec.partitions = 1;
  spec.replication_factor = replicas;
  spec.min_insync_replicas = replicas > 1 ? 2 : 1;
  spec.fsync = levee::fsync_mode::none;
  spec.retention_max_bytes = uint64_t{4} << 30;
  auto info = sc.create_stream(spec, std::chrono::seconds(10));
  if (!info)
    why = std::string{"cannot create stream "} + name + ": " + info.error().to_string();
  return info.ok();
}

inline levee::out_message levee_message(const std::string& body) {
  levee::out_message m;
  m.body = body;
  return m;
}

/// `messages` publish_async of `body` to `subject` with `po`, at most max_unacked
/// un-acked, then flush; every ack counted, so a lost or refused one fails the scenario.
inline outcome levee_async_publish(levee::stream_client& sc, const char* subject,
                                   const levee::publish_options& po, const std::string& body,
                                   uint64_t messages, const char* what) {
  uint64_t acked = 0, failed = 0;
  std::string first_error;
  sc.on_acks([&](uint64_t, levee::result<std::vector<levee::message_ack>> acks) {
    if (acks)
      acked += acks->size();
    else if (failed++ == 0)
      first_error = acks.error().to_string();
  });
  sc.set_max_unacked(max_unacked);
  progress p{what, messages};
  auto t0 = std::chrono::steady_clock::now();
  for (uint64_t i = 0; i < messages; ++i) {
    if (auto st = sc.publish_async(subject, {levee_message(body)}, po); !st)
      return unavailable("failed", "publish_async: " + st.to_string());
    p.at(i);
  }
  if (auto st = sc.flush(std::chrono::seconds(120)); !st)
    return unavailable("failed", "flush: " + st.to_string());
  auto secs = seconds_since(t0);
  sc.on_acks(nullptr);
  if (failed > 0)
    return unavailable("failed", std::to_string(failed) + " async publishes failed, the first: "
                                   + first_error);
  if (acked != messages)
    return unavailable("failed", std::to_string(acked) + " acks for " + std::to_string(messages)
                                   + " messages");
  return rate(messages, secs);
}

/// An outcome for --json: the figures, or the status and why.
inline nlohmann::ordered_json to_json(const outcome& o) {
  nlohmann::ordered_json j{{"status", o.status}};
  if (!o.ok()) {
    j["why"] = o.why;
    return j;
  }
  j["messages"] = o.messages;
  if (o.p50_us > 0) {
    j["p50_us"] = o.p50_us;
    j["p99_us"] = o.p99_us;
  } else {
    j["seconds"] = o.seconds;
    j["msgs_per_s"] = o.msgs_per_s;
    j["mb_per_s"] = o.mb_per_s;
  }
  return j;
}

} // namespace levee::bench
