// `levee cluster`: a broker's view of the metadata cluster (broker/cluster.proto
// ClusterInfo). Exit codes as the stream commands': 0 done, 1 refused (the Reject
// printed), 2 a usage error or a broker that cannot be reached.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "apps/cli_common.hpp"
#include "apps/cli_env.hpp"
#include "apps/subcommands.hpp"
#include "base/host_port.hpp"
#include "broker/cluster.pb.h"
#include "levee/client.hpp"
#include "limits/printable.hpp"

namespace levee::apps {

namespace {

namespace po = boost::program_options;

std::string ids(const google::protobuf::RepeatedField<uint64_t>& v) {
  std::string out = "[";
  for (int i = 0; i < v.size(); ++i)
    out += (i ? "," : "") + std::to_string(v.Get(i));
  return out + "]";
}

std::string cluster_text(const cluster::ClusterInfo& c) {
  if (!c.clustered())
    return "this broker runs alone: no metadata cluster (set broker.raft_listen, id and "
           "raft_members to form one)\n";
  std::string out;
  out += "broker " + std::to_string(c.broker_id()) + (c.serving_as_leader() ? " (metadata leader)" : "") + "\n";
  out += "metadata leader: " + (c.leader_id() ? "broker " + std::to_string(c.leader_id()) : std::string{"none known"});
  if (!c.leader_address().empty())
    out += " at " + printable(c.leader_address());
  out += "\nterm " + std::to_string(c.term()) + ", applied " + std::to_string(c.applied_index())
         + " entries, chain head " + printable(c.chain_head()) + "\n";
  if (!c.health().empty())
    out += "METADATA STOPPED: " + printable(c.health()) + "\n";
  out += "brokers:\n";
  for (auto& b : c.brokers()) {
    out += "  " + std::to_string(b.id()) + "  " + printable(b.address()) + "  " + printable(b.state());
    // Its role in the Raft group (voter, standby, spare); none: it is no member any more.
    out += "  " + (b.raft_role().empty() ? std::string{"not a Raft member"} : printable(b.raft_role()));
    if (b.last_seen_ms_ago() >= 0)
      out += "  seen " + std::to_string(b.last_seen_ms_ago()) + " ms ago";
    out += "\n";
  }
  // Members of the Raft group that no heartbeat registered yet: a broker being added.
  for (auto& m : c.members())
    if (!m.registered())
      out += "  " + std::to_string(m.id()) + "  (Raft " + printable(m.raft_address()) + ")  joining  "
             + printable(m.role()) + "\n";
  out += "streams:" + std::string{c.streams().empty() ? " none\n" : "\n"};
  for (auto& s : c.streams()) {
    out += "  " + printable(s.name()) + "  replication " + std::to_string(s.replication_factor())
           + ", min ISR " + std::to_string(s.min_insync_replicas()) + "\n";
    for (auto& p : s.partitions()) {
      out += "    partition " + std::to_string(p.partition()) + ": leader "
             + (p.leader() ? std::to_string(p.leader()) : std::string{"none (offline)"})
             + ", replicas " + ids(p.replicas()) + ", ISR " + ids(p.isr()) + ", leader epoch "
             + std::to_string(p.leader_epoch());
      if (p.progress_size() > 0) {
        out += ", HW " + std::to_string(p.leader_high_water()) + ", lag";
        for (auto& r : p.progress())
          out += " " + std::to_string(r.broker()) + ":"
                 + (r.known() ? std::to_string(r.lag()) : std::string{"?"});
      }
      out += "\n";
    }
  }
  return out;
}

/// The ClusterInfo of the broker at `address`, or nullopt (not reachable within a second).
std::optional<cluster::ClusterInfo> info_from(const std::string& address, const std::string& token) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos)
    return std::nullopt;
  client_options co;
  co.host = address.substr(0, colon);
  co.port = static_cast<uint16_t>(std::strtoul(address.c_str() + colon + 1, nullptr, 10));
  co.token = token;
  co.connect_timeout = std::chrono::seconds(1);
  client c{co};
  if (!c.connect().ok())
    return std::nullopt;
  cluster::ClusterCall call;
  call.mutable_info();
  auto r = c.request("cluster", call.SerializeAsString(), std::chrono::seconds(2));
  cluster::ClusterInfo out;
  if (!r.ok() || !out.ParseFromString(*r.payload))
    return std::nullopt;
  return out;
}

/// Each partition's HW (its leader's) and every replica's lag behind the leader's log end,
/// from the answers of every alive broker (each knows only its own replicas' figures).
void fill_progress(cluster::ClusterInfo& info, const std::string& token) {
  std::map<uint64_t, cluster::ClusterInfo> answers;
  answers[info.broker_id()] = info;
  for (auto& b : info.brokers())
    if (b.id() != info.broker_id() && b.state() == "alive")
      if (auto other = info_from(b.address(), token))
        answers[b.id()] = *other;
  auto local = [&](uint64_t broker, const std::string& stream, uint32_t p)
    -> const cluster::ClusterPartition* {
    auto a = answers.find(broker);
    if (a == answers.end())
      return nullptr;
    for (auto& s : a->second.streams())
      if (s.name() == stream)
        for (auto& part : s.partitions())
          if (part.partition() == p && part.local_replica())
            return &part;
    return nullptr;
  };
  for (auto& s : *info.mutable_streams())
    for (auto& p : *s.mutable_partitions()) {
      auto* lead = p.leader() ? local(p.leader(), s.name(), p.partition()) : nullptr;
      if (lead)
        p.set_leader_high_water(lead->high_water());
      for (auto r : p.replicas()) {
        auto* mine = local(r, s.name(), p.partition());
        auto* g = p.add_progress();
        g->set_broker(r);
        g->set_known(mine != nullptr && lead != nullptr);
        if (mine) {
          g->set_log_end_offset(mine->log_end_offset());
          if (lead && lead->log_end_offset() > mine->log_end_offset())
            g->set_lag(lead->log_end_offset() - mine->log_end_offset());
        }
      }
    }
}

/// `levee cluster remove ID`: asks the broker, following the metadata leader's address
/// (not_leader with its hint) and retrying what says to (unavailable: an election, another
/// membership change) within ten seconds.
int remove_broker(base::host_port at, const std::string& token, uint64_t id, bool json) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  cluster::ClusterCall call;
  call.mutable_remove_broker()->set_broker_id(id);
  std::string where = at.host + ":" + std::to_string(at.port);
  for (int hops = 0;;) {
    client_options co;
    co.host = at.host;
    co.port = at.port;
    co.token = token;
    client c{co};
    if (auto st = c.connect_with_backoff(std::chrono::seconds(3)); !st) {
      std::fprintf(stderr, "levee cluster: cannot reach the broker at %s: %s; is a node with roles = broker "
                           "running there (or give --broker)?\n",
                   printable(where).c_str(), printable(st.message()).c_str());
      return 2;
    }
    auto r = c.request("cluster", call.SerializeAsString(), std::chrono::seconds(10));
    if (r.ok()) {
      cluster::RemoveBrokerReply reply;
      if (!reply.ParseFromString(*r.payload)) {
        std::fprintf(stderr, "levee cluster: an answer that does not parse as a RemoveBrokerReply\n");
        return 1;
      }
      if (json)
        std::printf("%s\n", message_json(reply).c_str());
      else
        std::printf("broker %llu removed from the cluster\n", static_cast<unsigned long long>(id));
      return 0;
    }
    auto why = r.rejected.value_or(rejection::of(code::unavailable).detail("no answer"));
    base::host_port hint;
    std::string bad;
    if (why.code == code::not_leader && hops < 4 && !why.leader_hint.empty()
        && base::parse_host_port("leader hint", why.leader_hint, hint, bad)) {
      ++hops;
      at = hint;
      where = why.leader_hint;
      std::fprintf(stderr, "levee cluster: following the metadata leader's address to %s\n",
                   printable(where).c_str());
      continue;
    }
    auto pause = std::chrono::milliseconds{std::clamp<uint64_t>(why.retry_after_ms, 50, 1000)};
    if ((why.code == code::unavailable || why.code == code::not_leader) && why.retry_after_ms > 0
        && std::chrono::steady_clock::now() + pause < deadline) {
      std::this_thread::sleep_for(pause);  // the backoff the refusal asked for
      continue;
    }
    std::fprintf(stderr, "levee cluster: %s\n", printable(why.to_string()).c_str());
    return why.code == code::unavailable ? 2 : 1;
  }
}

} // namespace

int run_cluster(const std::vector<std::string>& args) {
  po::options_description opts{
    "levee cluster [remove ID]: the metadata cluster as a broker sees it; `remove ID` takes a "
    "broker out of the cluster (refused while it is a replica of any partition)"};
  std::string broker = default_broker_address();  // LEVEE_BROKER, else 127.0.0.1:7600
  std::string token;
  std::string action;
  std::string id_text;
  bool json = false;
  opts.add_options()
    ("broker", po::value(&broker)->default_value(broker), "the broker to ask, host:port")
    ("token", po::value(&token), "the broker's connection token (net.token), if it has one")
    ("json", po::bool_switch(&json), "print ClusterInfo (broker/cluster.proto) as one line of JSON")
    ("action", po::value(&action), "remove: take the broker ID out of the cluster")
    ("id", po::value(&id_text), "the broker id to remove")
    ("help,h", "this text");
  po::positional_options_description pos;
  pos.add("action", 1).add("id", 1);
  auto parsed = parse_args("cluster", opts, args, &pos);
  if (parsed.exit_code)
    return *parsed.exit_code;
  if (!action.empty() && action != "remove")
    return usage_error("cluster", "'" + action + "' is no cluster action: `levee cluster` shows the "
                                  "cluster, `levee cluster remove ID` removes a broker");
  if (action.empty() && !id_text.empty())
    return usage_error("cluster", "a broker id without an action; write `levee cluster remove ID`");
  auto address = address_option("cluster", "--broker", broker);
  if (!address)
    return 2;
  if (action == "remove") {
    if (id_text.empty() || id_text.size() > 7 || id_text.find_first_not_of("0123456789") != std::string::npos
        || std::strtoull(id_text.c_str(), nullptr, 10) == 0)
      return usage_error("cluster", "remove takes the id of a broker (1..), as `levee cluster` lists them; "
                                    "got '" + id_text + "'");
    return remove_broker(*address, token, std::strtoull(id_text.c_str(), nullptr, 10), json);
  }
  client_options co;
  co.host = address->host;
  co.port = address->port;
  co.token = token;
  client c{co};
  if (auto st = c.connect_with_backoff(std::chrono::seconds(3)); !st) {
    std::fprintf(stderr,
                 "levee cluster: cannot reach the broker at %s: %s; is a node with roles = broker "
                 "running there (or give --broker)?\n",
                 printable(broker).c_str(), printable(st.message()).c_str());
    return 2;
  }
  cluster::ClusterCall call;
  call.mutable_info();
  auto r = c.request("cluster", call.SerializeAsString(), std::chrono::seconds(10));
  if (!r.ok()) {
    auto why = r.rejected.value_or(rejection::of(code::unavailable).detail("no answer"));
    std::fprintf(stderr, "levee cluster: %s\n", printable(why.to_string()).c_str());
    return why.code == code::unavailable ? 2 : 1;
  }
  cluster::ClusterInfo info;
  if (!info.ParseFromString(*r.payload)) {
    std::fprintf(stderr, "levee cluster: an answer that does not parse as a ClusterInfo\n");
    return 1;
  }
  if (info.clustered())
    fill_progress(info, token);
  if (json)
    std::printf("%s\n", message_json(info).c_str());
  else
    std::fputs(cluster_text(info).c_str(), stdout);
  return 0;
}

} // namespace levee::apps
