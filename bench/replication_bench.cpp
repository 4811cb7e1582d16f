// Replicated streams (issue 16): three Levee brokers against a three-node JetStream
// cluster, on this machine, in the same run, 1 KiB messages:
//
//   JetStream R3     three nats-server processes with JetStream on (file store, each its
//                    own store dir in the temp dir), clustered over routes on 127.0.0.1;
//                    one stream per scenario with Replicas = 3; the client on node 1.
//     sync publish     js_Publish, waiting for its ack (JetStream acks once a quorum of
//                      the stream's Raft group stored it): p50 / p99 of the round trip;
//     async publish    js_PublishAsync with at most 4096 un-acked, then
//                      js_PublishAsyncComplete: msgs/s from the first publish to the last ack.
//   Levee R3         three `levee node` brokers (roles = broker) forming the metadata's Raft
//                    group on 127.0.0.1; one stream per scenario with replication factor 3
//                    and min_insync_replicas 2, fsync none (as JetStream's default: acked
//                    once written to the OS on every ISR member); the client on broker 1
//                    (it follows not_leader hints to the partition's leader).
//     sync publish     publish with ack = all (answered once the high-water mark passed it,
//                      i.e. every ISR member has it): p50 / p99;
//     async publish    publish_async with ack = all and at most 4096 un-acked, batched as
//                      the client batches, then flush(): msgs/s.
//
// Run: build-release/bench/replication_bench [--quick] [--json] [--messages N]
// [--levee PATH]; figures in bench/RESULTS.md. Progress goes to stderr.

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "bench/bench_support.hpp"
#include "bench/publish_support.hpp"
#include "levee/streams.hpp"

namespace {

using namespace levee::bench;
using namespace std::chrono;
namespace fs = std::filesystem;

constexpr unsigned watchdog_seconds = 1800;  // the whole bench, whatever hangs
constexpr int nodes = 3;
constexpr auto cluster_ready_bound = seconds(60);  // a cluster forms and takes a stream

struct options {
  uint64_t messages = 200'000;  // async published
  int sync_messages = 5'000;    // timed sync publishes
  int warmup_messages = 300;    // sync publishes before them
  bool quick = false;
  bool json = false;
};

struct system_outcomes {
  outcome sync_publish, async_publish;
  std::string version;
};

/// Retries `attempt` (true when done; `why` says why not) with a 250 ms pause until it
/// succeeds or `bound` passes: a cluster that has just started elects its leaders first.
template <class F>
bool retry_until(milliseconds bound, std::string& why, F attempt) {
  auto deadline = steady_clock::now() + bound;
  while (!attempt(why)) {
    if (steady_clock::now() >= deadline)
      return false;
    std::this_thread::sleep_for(milliseconds(250));
  }
  return true;
}

// -- JetStream R3 -------------------------------------------------------------------------

/// Starts three clustered nats-servers (JetStream, file store); their pids and client
/// ports, or nothing with `why`.
std::optional<std::vector<std::pair<pid_t, uint16_t>>> start_jetstream_cluster(std::string& why) {
  std::vector<uint16_t> route_ports;
  for (int i = 0; i < nodes; ++i)
    route_ports.push_back(free_port());
  std::vector<std::pair<pid_t, uint16_t>> started;
  for (int i = 0; i < nodes; ++i) {
    std::string routes;
    for (int j = 0; j < nodes; ++j)
      if (j != i)
        routes += (routes.empty() ? "" : ",") + std::string{"nats://127.0.0.1:"}
                  + std::to_string(route_ports[static_cast<size_t>(j)]);
    auto name = "n" + std::to_string(i + 1);
    auto node = start_nats_server(
      {"-js", "-sd", temp_dir + "/jetstream-" + name, "-n", name, "--cluster_name",
       "levee-bench", "--cluster",
       "nats://127.0.0.1:" + std::to_string(route_ports[static_cast<size_t>(i)]), "--routes",
       routes},
      why, "nats-server-" + name + ".log");
    if (!node) {
      for (auto& [pid, port] : started)
        stop(pid);
      return std::nullopt;
    }
    started.push_back(*node);
  }
  return started;
}

system_outcomes run_jetstream(const options& o, const std::string& body) {
  system_outcomes r;
  std::string why;
  auto cluster = start_jetstream_cluster(why);
  if (!cluster) {
    r.sync_publish = r.async_publish = unavailable("skipped", why);
    return r;
  }
  r.version = nats_server_version(find_program("nats-server"));
  auto nc = nats_connect((*cluster)[0].second);
  jsCtx* js = nullptr;
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.PublishAsync.MaxPending = max_unacked;
  jo.PublishAsync.StallWait = 1000;  // ms a full window waits for acks before retrying
  jo.PublishAsync.ErrHandler = on_async_publish_error;
  natsStatus s = nc == nullptr ? NATS_CONNECTION_CLOSED : natsConnection_JetStream(&js, nc, &jo);
  if (s != NATS_OK) {
    r.sync_publish = r.async_publish =
      unavailable("failed", "no JetStream context: " + nats_error(s, static_cast<jsErrCode>(0)));
  } else {
    std::fprintf(stderr, "%s: waiting for the JetStream cluster to take an R3 stream\n",
                 bench_name);
    // Until the meta group has a leader and sees its peers, adding an R3 stream fails.
    if (!retry_until(cluster_ready_bound, why,
                     [&](std::string& w) { return add_stream(js, "SYNC", "sync", nodes, w); }))
      r.sync_publish = unavailable("failed", why);
    else
      r.sync_publish = jetstream_sync_publish(js, o.warmup_messages, o.sync_messages, "sync",
                                              body, "JetStream R3 sync publish");
    if (!retry_until(cluster_ready_bound, why,
                     [&](std::string& w) { return add_stream(js, "ASYNC", "async", nodes, w); }))
      r.async_publish = unavailable("failed", why);
    else
      r.async_publish = jetstream_async_publish(js, o.messages, "ASYNC", "async", body,
                                                "JetStream R3 async publish");
  }
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  nats_Close();
  for (auto& [pid, port] : *cluster)
    stop(pid);
  return r;
}

// -- Levee R3 -----------------------------------------------------------------------------

struct levee_cluster {
  std::vector<pid_t> pids;
  std::vector<uint16_t> ports;  // client listeners
  std::vector<std::string> logs;
};

/// Starts three clustered brokers (each its config, data dir and log in the temp dir).
std::optional<levee_cluster> start_levee_cluster(const std::string& binary, std::string& why) {
  levee_cluster c;
  std::vector<uint16_t> raft_ports;
  for (int i = 0; i < nodes; ++i) {
    c.ports.push_back(free_port());
    raft_ports.push_back(free_port());
  }
  std::string members;
  for (int i = 0; i < nodes; ++i)
    members += (i == 0 ? "" : ",") + std::to_string(i + 1) + "=127.0.0.1:"
               + std::to_string(raft_ports[static_cast<size_t>(i)]);
  for (int i = 0; i < nodes; ++i) {
    auto dir = temp_dir + "/broker-" + std::to_string(i + 1);
    fs::create_directories(dir + "/data");
    auto port = std::to_string(c.ports[static_cast<size_t>(i)]);
    std::ofstream(dir + "/broker.ini")
      << "[node]\nroles = broker\n"
      << "[broker]\n"
      << "listen = 127.0.0.1:" << port << "\n"
      << "advertise = 127.0.0.1:" << port << "\n"
      << "data_dir = " << dir << "/data\n"
      << "id = " << (i + 1) << "\n"
      << "raft_listen = 127.0.0.1:" << raft_ports[static_cast<size_t>(i)] << "\n"
      << "raft_members = " << members << "\n"
      << "[net]\nmax_msgs_per_sec = 0\nmax_bytes_per_sec = 0\n";
    c.logs.push_back(dir + "/broker.log");
    c.pids.push_back(spawn_program({binary, "node", "--config", dir + "/broker.ini"}, c.logs.back()));
  }
  for (int i = 0; i < nodes; ++i) {
    std::optional<int> code;
    auto at = static_cast<size_t>(i);
    if (!wait_for_port(c.ports[at], c.pids[at], seconds(10), code)) {
      why = "broker " + std::to_string(i + 1)
            + (code ? " exited (code " + std::to_string(*code) + "): " + last_line(c.logs[at])
                    : " did not listen within 10 s");
      for (auto pid : c.pids)
        stop(pid);
      return std::nullopt;
    }
  }
  return c;
}

system_outcomes run_levee(const std::string& binary, const options& o, const std::string& body) {
  system_outcomes r;
  std::string why;
  if (::access(binary.c_str(), X_OK) != 0) {
    r.sync_publish = r.async_publish = unavailable("skipped", binary + " not found; pass --levee PATH");
    return r;
  }
  auto cluster = start_levee_cluster(binary, why);
  if (!cluster) {
    r.sync_publish = r.async_publish = unavailable("failed", why);
    return r;
  }
  levee::client_options co;
  co.port = cluster->ports[0];
  co.node_id = "replication-bench";
  levee::stream_client sc{co};
  if (auto st = sc.connect_with_backoff(seconds(5)); !st) {
    r.sync_publish = r.async_publish = unavailable("failed", "cannot connect: " + st.to_string());
  } else {
    levee::publish_options all;  // ack = all: once every ISR member has it
    all.ack = levee::ack_mode::all;
    std::fprintf(stderr, "%s: waiting for the Levee cluster to take an R3 stream\n", bench_name);
    // Until the metadata has a leader and every broker registered, placement refuses R3.
    if (!retry_until(cluster_ready_bound, why,
                     [&](std::string& w) { return create_bench_stream(sc, "sync", "sync", nodes, w); }))
      r.sync_publish = unavailable("failed", why);
    else {
      r.sync_publish = sync_latencies(o.warmup_messages, o.sync_messages,
                                      "Levee R3 sync publish", [&]() -> std::string {
        auto acks = sc.publish("sync", {levee_message(body)}, all);
        if (!acks)
          return "publish: " + acks.error().to_string();
        return acks->size() == 1 ? "" : "publish: " + std::to_string(acks->size()) + " acks, not 1";
      });
    }
    if (!retry_until(cluster_ready_bound, why,
                     [&](std::string& w) { return create_bench_stream(sc, "async", "async", nodes, w); }))
      r.async_publish = unavailable("failed", why);
    else
      r.async_publish = levee_async_publish(sc, "async", all, body, o.messages,
                                            "Levee R3 async publish");
  }
  sc.connection().close();
  for (auto pid : cluster->pids)
    stop(pid);
  if (!r.sync_publish.ok() || !r.async_publish.ok())
    std::fprintf(stderr, "%s: the brokers' logs: %s/broker-*/broker.log\n", bench_name,
                 temp_dir.c_str());
  return r;
}

// -- output -------------------------------------------------------------------------------

std::string cell(const outcome& x, double value, const char* unit) {
  if (!x.ok())
    return x.status;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f %s", value, unit);
  return buf;
}

std::string ratio(const outcome& a, const outcome& b, double x) {
  if (!a.ok() || !b.ok())
    return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2fx", x);
  return buf;
}

void print_table(const system_outcomes& js, const system_outcomes& lv) {
  auto row = [](const char* name, const std::string& a, const std::string& b,
                const std::string& r, const char* target) {
    std::printf("  %-36s %-18s %-18s %-16s %s\n", name, a.c_str(), b.c_str(), r.c_str(), target);
  };
  std::printf("\n");
  row("", "JetStream R3", "Levee R3", "Levee/JetStream", "target");
  row("sync publish ack=all, p50", cell(js.sync_publish, js.sync_publish.p50_us, "us"),
      cell(lv.sync_publish, lv.sync_publish.p50_us, "us"),
      ratio(js.sync_publish, lv.sync_publish, lv.sync_publish.p50_us / js.sync_publish.p50_us), "-");
  row("sync publish ack=all, p99", cell(js.sync_publish, js.sync_publish.p99_us, "us"),
      cell(lv.sync_publish, lv.sync_publish.p99_us, "us"),
      ratio(js.sync_publish, lv.sync_publish, lv.sync_publish.p99_us / js.sync_publish.p99_us),
      "<= 1x");
  row("async publish, <= 4096 un-acked", cell(js.async_publish, js.async_publish.msgs_per_s / 1e3, "k/s"),
      cell(lv.async_publish, lv.async_publish.msgs_per_s / 1e3, "k/s"),
      ratio(js.async_publish, lv.async_publish,
            lv.async_publish.msgs_per_s / js.async_publish.msgs_per_s),
      ">= 3x");
  for (auto* x : {&js.sync_publish, &js.async_publish})
    if (!x->ok())
      std::printf("JetStream: %s: %s\n", x->status.c_str(), x->why.c_str());
  for (auto* x : {&lv.sync_publish, &lv.async_publish})
    if (!x->ok())
      std::printf("Levee: %s: %s\n", x->status.c_str(), x->why.c_str());
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
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "--levee" && i + 1 < argc) {
      levee_binary = argv[++i];
    } else if (a == "--messages" && i + 1 < argc && parse_number(argv[i + 1], 1, n)) {
      o.messages = n;
      messages_given = true;
      ++i;
    } else {
      std::fprintf(stderr,
                   "usage: replication_bench [--quick] [--json] [--messages N] [--levee PATH]\n"
                   "  --quick       10,000 messages and 500 sync publishes: a smoke run\n"
                   "  --json        the results as one JSON object on stdout\n"
                   "  --messages N  messages published async (default 200,000)\n"
                   "  --levee PATH  the levee binary (default: %s)\n",
                   levee_binary.c_str());
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  if (o.quick) {
    if (!messages_given)
      o.messages = 10'000;
    o.sync_messages = 500;
    o.warmup_messages = 50;
  }
  if (!guard_children("replication_bench", watchdog_seconds))
    return 1;
  if (!o.json) {
    std::printf("replicated streams, %zu-byte messages, three nodes each on 127.0.0.1\n"
                "  JetStream R3: three clustered nats-server -js, file store, Replicas = 3\n"
                "  Levee R3:     three brokers, replication factor 3, min ISR 2, fsync none, "
                "ack = all\n"
                "  sync publish %d after %d warm-up; async publish %llu with at most %d un-acked\n",
                message_bytes, o.sync_messages, o.warmup_messages,
                static_cast<unsigned long long>(o.messages), max_unacked);
    std::fflush(stdout);
  }
  auto body = message_body();
  auto js = run_jetstream(o, body);
  auto lv = run_levee(levee_binary, o, body);
  if (o.json) {
    nlohmann::ordered_json j{
      {"bench", "replication_bench"},
      {"messages", o.messages},
      {"jetstream", {{"server", js.version},
                     {"sync_publish", to_json(js.sync_publish)},
                     {"async_publish", to_json(js.async_publish)}}},
      {"levee", {{"sync_publish", to_json(lv.sync_publish)},
                 {"async_publish", to_json(lv.async_publish)}}}};
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    print_table(js, lv);
  }
  bool failed = false;
  for (auto* x : {&js.sync_publish, &js.async_publish, &lv.sync_publish, &lv.async_publish})
    failed |= x->status == "failed";
  return failed ? 1 : 0;
}
