// A new broker's side of broker.join (controller.hpp join_cluster, README.md "Adding and
// removing brokers"): before it serves, it asks a running broker's "cluster" target to add
// it to the metadata's Raft group. Blocking, on the starting thread: the broker has no
// listener yet, and its raft_node (already running on its own thread) is what the leader
// catches up.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

#include "base/host_port.hpp"
#include "broker/cluster.pb.h"
#include "broker/controller.hpp"
#include "levee/client.hpp"
#include "limits/defaults.hpp"

namespace levee::broker {

namespace {

using namespace std::chrono;

// not_leader hints followed before giving up: two are enough (an election may move the
// leader once while the join travels); more means the brokers point at each other.
constexpr int max_hops = 4;

std::string what_to_write(const std::string& join) {
  return "broker.join = " + join + ": name the client address (broker.advertise, host:port) of a "
         "running broker of the cluster";
}

} // namespace

status join_cluster(const controller_options& opts) {
  const auto deadline = steady_clock::now() + milliseconds{defaults::broker_join_timeout_ms};
  auto left = [&] {
    return std::max(milliseconds{1}, duration_cast<milliseconds>(deadline - steady_clock::now()));
  };
  std::string target = opts.join;
  int hops = 0;
  cluster::ClusterCall call;
  call.mutable_join()->set_broker_id(opts.id);
  call.mutable_join()->set_raft_address(opts.raft_listen);
  call.mutable_join()->set_address(opts.advertise);
  const std::string payload = call.SerializeAsString();
  std::printf("levee broker: broker %llu (Raft %s) asks %s to add it to the metadata cluster\n",
              static_cast<unsigned long long>(opts.id), opts.raft_listen.c_str(), target.c_str());
  std::fflush(stdout);
  for (;;) {
    base::host_port hp;
    std::string bad;
    if (!base::parse_host_port("broker.join", target, hp, bad) || hp.port == 0)
      return status::error(code::bad_request, (bad.empty() ? "port 0" : bad) + "; " + what_to_write(target));
    client_options co;
    co.host = hp.host;
    co.port = hp.port;
    co.node_id = "levee-join";
    co.connect_timeout = milliseconds{1000};
    client c{co};
    // A few seconds for a broker that is starting too (scripts/cluster starts them together);
    // nothing listening there for longer is a wrong address.
    if (auto st = c.connect_with_backoff(std::min(milliseconds{5000}, left())); !st)
      return status::error(code::unavailable, "no broker answers at " + target + " (" + st.message() + "); "
                                                  + what_to_write(opts.join));
    auto r = c.request("cluster", payload, left());
    if (r.ok()) {
      cluster::JoinReply reply;
      if (!reply.ParseFromString(*r.payload))
        return status::error(code::bad_request,
                             "the broker at " + target + " answered the join with something that is not a "
                             "JoinReply; run one Levee version in the cluster");
      std::printf("levee broker: broker %llu joined the metadata cluster as a voter (added by broker %llu; "
                  "%u voters)\n",
                  static_cast<unsigned long long>(opts.id),
                  static_cast<unsigned long long>(reply.leader_id()), reply.voters());
      std::fflush(stdout);
      return {};
    }
    auto why = r.rejected.value_or(rejection::of(code::unavailable).detail("no answer"));
    if (why.code == code::not_leader && !why.leader_hint.empty() && hops < max_hops) {
      ++hops;
      target = why.leader_hint;
      continue;
    }
    bool retry = why.code == code::unavailable || why.code == code::not_leader;
    auto pause = milliseconds{std::clamp<uint64_t>(why.retry_after_ms, 50, 1000)};
    if (retry && steady_clock::now() + pause < deadline) {
      // A backoff the refusal asked for (an election, another membership change), not a
      // wait standing in for an event.
      std::this_thread::sleep_for(pause);
      continue;
    }
    return status::refused(why, "joining the metadata cluster through " + target + ": " + why.to_string());
  }
}

} // namespace levee::broker
