// The chaos command (issue 16): a three-broker cluster of real `levee node` processes on
// 127.0.0.1, a stream of replication factor 3 and min ISR 2, a publisher sending numbered
// messages with ack = all, and N rounds of: kill -9 (or SIGSTOP) the partition's leader,
// time the first acknowledged publish after it, bring the broker back, wait until it is
// in the ISR again, and check every acknowledged message on the leader (exactly once, in
// order, at its offset). At the end every broker is stopped and each replica's files are
// checked the same way and against each other below the high-water mark.
//
// One line per round (acknowledged / lost / duplicated / time to new leader), then p50,
// p99 and max of the failover time; --json prints the same as one JSON document.
// Exit 0 when nothing acknowledged was lost or duplicated, 1 otherwise, 2 on bad usage.
//
//   bench/chaos [--kills N] [--pause] [--levee PATH] [--json]
//
// The harness is tests/support/chaos.hpp, which tests/failover_system_test.cpp runs five
// rounds of in CI. Progress goes to stderr.

#include <algorithm>
#include <atomic>
#include <csignal>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/bench_support.hpp"
#include "levee/client.hpp"
#include "levee/streams.hpp"
#include "tests/process_support.hpp"
#include "tests/support/chaos.hpp"

using namespace levee;
using namespace std::chrono;
using namespace std::chrono_literals;

namespace {

client_options options_for(const std::string& address) {
  client_options co;
  co.port = static_cast<uint16_t>(std::stoi(address.substr(address.find(':') + 1)));
  co.node_id = "levee-chaos";
  return co;
}

status create_stream(const chaos::broker_cluster& c, const std::string& name) {
  stream_spec spec;
  spec.name = name;
  spec.subject = name + ".>";
  spec.partitions = 1;
  spec.replication_factor = 3;
  spec.min_insync_replicas = 2;
  auto deadline = steady_clock::now() + 30s;
  status last = status::error(code::unavailable, "no broker answered");
  while (steady_clock::now() < deadline) {
    for (auto& address : c.addresses()) {
      stream_client sc{options_for(address)};
      if (!sc.connect().ok())
        continue;
      auto r = sc.create_stream(spec, 5s);
      if (r.ok())
        return {};
      last = r.error();
    }
    std::this_thread::sleep_for(100ms);
  }
  return last;
}

uint64_t leader_high_water(const chaos::broker_cluster& c, const std::string& name) {
  uint64_t hw = 0;
  for (auto& address : c.addresses()) {
    stream_client sc{options_for(address)};
    if (!sc.connect().ok())
      continue;
    auto info = sc.get_stream_info(name, 5s);
    if (info.ok() && !info->partitions.empty())
      hw = std::max(hw, info->partitions[0].high_water);
  }
  return hw;
}

} // namespace

/// Ctrl-C or SIGTERM: finish the round under way, then stop the brokers and report what
/// was done (a process killed mid-run would leave its brokers running).
std::atomic<bool> interrupted{false};

extern "C" void on_interrupt(int) { interrupted = true; }

int main(int argc, char** argv) {
  std::signal(SIGINT, on_interrupt);
  std::signal(SIGTERM, on_interrupt);
  int kills = 100;
  bool json = false;
  auto how = chaos::fault::kill;
  std::string levee_binary = bench::default_levee_binary();
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--kills" && i + 1 < argc) {
      kills = std::atoi(argv[++i]);
      if (kills < 1) {
        std::fprintf(stderr, "chaos: --kills takes a whole number of at least 1\n");
        return 2;
      }
    } else if (a == "--pause") {
      how = chaos::fault::pause;
    } else if (a == "--json") {
      json = true;
    } else if (a == "--levee" && i + 1 < argc) {
      levee_binary = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: chaos [--kills N] [--pause] [--levee PATH] [--json]\n"
                   "  --kills N     rounds (default 100)\n"
                   "  --pause       SIGSTOP the leader instead of kill -9 (SIGCONT after)\n"
                   "  --levee PATH  the levee binary (default: %s)\n"
                   "  --json        one JSON document on stdout\n",
                   levee_binary.c_str());
      return 2;
    }
  }
  test::temp_dir dir{"levee-chaos"};
  chaos::cluster_options co;
  co.levee_binary = levee_binary;
  co.dir = dir.path();
  chaos::broker_cluster cluster{co};
  if (auto st = cluster.start_all(); !st.ok()) {
    std::fprintf(stderr, "chaos: %s\n", st.message().c_str());
    return 1;
  }
  const std::string stream = "chaos";
  if (auto st = create_stream(cluster, stream); !st.ok()) {
    std::fprintf(stderr, "chaos: the stream could not be created: %s\n", st.message().c_str());
    return 1;
  }
  chaos::publisher_options po;
  po.addresses = cluster.addresses();
  po.subject = stream + ".events";
  chaos::publisher pub{po};
  pub.start();

  nlohmann::json rounds = nlohmann::json::array();
  std::vector<double> failover_ms;
  // Split by whether the victim also led the metadata group (a Raft election comes first).
  std::vector<double> failover_metadata_leader_ms, failover_other_ms;
  bool all_ok = true;
  if (!json)
    std::printf("%5s %6s %8s %6s %12s %6s %10s %12s %12s\n", "round", "victim", "metadata",
                "leader", "acknowledged", "lost", "duplicated", "failover_ms", "rejoin_ms");
  for (int round = 1; round <= kills && !interrupted; ++round) {
    chaos::round_options ro;
    ro.stream = stream;
    ro.how = how;
    auto r = chaos::run_round(cluster, pub, ro);
    all_ok = all_ok && r.ok();
    if (r.first_ack) {
      failover_ms.push_back(static_cast<double>(r.first_ack->count()));
      (r.victim_led_metadata ? failover_metadata_leader_ms : failover_other_ms)
        .push_back(static_cast<double>(r.first_ack->count()));
    }
    nlohmann::json j{{"round", round},
                     {"victim", r.victim},
                     {"victim_led_metadata", r.victim_led_metadata},
                     {"new_leader", r.new_leader},
                     {"old_epoch", r.old_epoch},
                     {"new_epoch", r.new_epoch},
                     {"acknowledged", r.check.acknowledged},
                     {"lost", r.check.lost},
                     {"duplicated", r.check.duplicated},
                     {"out_of_order", r.check.out_of_order},
                     {"failover_ms", r.first_ack ? r.first_ack->count() : -1},
                     {"new_leader_named_ms", r.new_view ? r.new_view->count() : -1},
                     {"rejoin_ms", r.rejoined ? r.rejoined->count() : -1},
                     {"errors", r.errors}};
    rounds.push_back(j);
    if (!json)
      std::printf("%5d %6d %8s %6d %12llu %6llu %10llu %12lld %12lld\n", round, r.victim,
                  r.victim_led_metadata ? "led" : "-", r.new_leader, static_cast<unsigned long long>(r.check.acknowledged),
                  static_cast<unsigned long long>(r.check.lost),
                  static_cast<unsigned long long>(r.check.duplicated),
                  static_cast<long long>(r.first_ack ? r.first_ack->count() : -1),
                  static_cast<long long>(r.rejoined ? r.rejoined->count() : -1));
    else  // the table is the progress; with --json, a line per round on stderr instead
      std::fprintf(stderr, "chaos: round %d/%d: broker %d lost, broker %d leads, first ack = all after %lld ms%s\n",
                   round, kills, r.victim, r.new_leader,
                   static_cast<long long>(r.first_ack ? r.first_ack->count() : -1),
                   r.ok() ? "" : " (FAILED: see below)");
    for (auto& e : r.errors)
      std::fprintf(stderr, "chaos: round %d: %s\n", round, e.c_str());
    if (!r.check.ok())
      std::fprintf(stderr, "chaos: round %d: %s\n", round, r.check.to_string().c_str());
    std::fflush(stdout);
  }
  if (interrupted)
    std::fprintf(stderr, "chaos: interrupted after %zu rounds; stopping the brokers\n", rounds.size());
  else
    pub.wait_more_acks(20, 45s);
  pub.stop();
  auto acked = pub.acked();

  // Every replica's files, with the brokers stopped.
  chaos::wait_for_leader(cluster, stream, 0, 0, 3, 60s);
  uint64_t hw = leader_high_water(cluster, stream);
  nlohmann::json replicas = nlohmann::json::array();
  std::vector<std::vector<chaos::read_message>> logs;
  for (int id = 1; id <= cluster.size(); ++id) {
    cluster.stop(id);
    auto log = chaos::read_from_files(cluster.data_dir(id), stream, 0);
    if (!log.ok()) {
      all_ok = false;
      replicas.push_back({{"broker", id}, {"error", log.error().message()}});
      logs.emplace_back();
      continue;
    }
    auto rep = chaos::check_acked(acked, *log);
    all_ok = all_ok && rep.ok();
    std::vector<std::string> diff;
    if (!logs.empty())
      diff = chaos::compare_replicas(logs.front(), *log, hw);
    all_ok = all_ok && diff.empty();
    replicas.push_back({{"broker", id},
                        {"messages", log->size()},
                        {"lost", rep.lost},
                        {"duplicated", rep.duplicated},
                        {"out_of_order", rep.out_of_order},
                        {"differs_from_broker_1_below_hw", diff}});
    logs.push_back(std::move(*log));
  }
  nlohmann::json summary{{"rounds", kills},
                         {"fault", how == chaos::fault::kill ? "kill -9" : "SIGSTOP"},
                         {"acknowledged", acked.size()},
                         {"high_water", hw},
                         {"failover_ms_p50", chaos::percentile(failover_ms, 50)},
                         {"failover_ms_p99", chaos::percentile(failover_ms, 99)},
                         {"failover_ms_max", chaos::percentile(failover_ms, 100)},
                         {"failover_ms_p50_victim_led_metadata",
                          chaos::percentile(failover_metadata_leader_ms, 50)},
                         {"rounds_victim_led_metadata", failover_metadata_leader_ms.size()},
                         {"failover_ms_p50_victim_did_not", chaos::percentile(failover_other_ms, 50)},
                         {"publisher_failures", pub.failures()},
                         {"replicas", replicas},
                         {"ok", all_ok}};
  if (json) {
    std::printf("%s\n", nlohmann::json{{"rounds", rounds}, {"summary", summary}}.dump(2).c_str());
  } else {
    std::printf("\n%d rounds (%s), %zu acknowledged; failover (loss -> first ack = all "
                "publish) p50 %.0f ms, p99 %.0f ms, max %.0f ms\n",
                kills, how == chaos::fault::kill ? "kill -9" : "SIGSTOP", acked.size(),
                chaos::percentile(failover_ms, 50), chaos::percentile(failover_ms, 99),
                chaos::percentile(failover_ms, 100));
    std::printf("failover p50 when the victim led the metadata group too: %.0f ms (%zu rounds); "
                "when it did not: %.0f ms (%zu rounds)\n",
                chaos::percentile(failover_metadata_leader_ms, 50),
                failover_metadata_leader_ms.size(), chaos::percentile(failover_other_ms, 50),
                failover_other_ms.size());
    for (auto& r : replicas)
      std::printf("replica %s\n", r.dump().c_str());
    std::printf("%s\n", all_ok ? "nothing acknowledged was lost or duplicated"
                               : "PROBLEMS: see above and stderr");
  }
  return all_ok ? 0 : 1;
}
