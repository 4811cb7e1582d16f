// `levee cluster`: a broker's view of the metadata cluster (broker/cluster.proto
// ClusterInfo). Exit codes as the stream commands': 0 done, 1 refused (the Reject
// printed), 2 a usage error or a broker that cannot be reached.

#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "apps/cli_common.hpp"
#include "apps/cli_env.hpp"
#include "apps/subcommands.hpp"
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
    if (b.last_seen_ms_ago() >= 0)
      out += "  seen " + std::to_string(b.last_seen_ms_ago()) + " ms ago";
    out += "\n";
  }
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

} // namespace

int run_cluster(const std::vector<std::string>& args) {
  po::options_description opts{"levee cluster: the metadata cluster as a broker sees it"};
  std::string broker = default_broker_address();  // LEVEE_BROKER, else 127.0.0.1:7600
  std::string token;
  bool json = false;
  opts.add_options()
    ("broker", po::value(&broker)->default_value(broker), "the broker to ask, host:port")
    ("token", po::value(&token), "the broker's connection token (net.token), if it has one")
    ("json", po::bool_switch(&json), "print ClusterInfo (broker/cluster.proto) as one line of JSON")
    ("help,h", "this text");
  auto parsed = parse_args("cluster", opts, args, nullptr);
  if (parsed.exit_code)
    return *parsed.exit_code;
  auto address = address_option("cluster", "--broker", broker);
  if (!address)
    return 2;
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
