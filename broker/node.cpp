// A broker node: config, start and stop (node.hpp).

#include "broker/node.hpp"

#include <caf/all.hpp>

#include <filesystem>

#include "actors/limited_actor.hpp"
#include "base/host_port.hpp"
#include "limits/config_fields.hpp"
#include "limits/log.hpp"
#include "metadata/raft_node.hpp"
#include "net/stats_reply.hpp"
#include "net/wire_text.hpp"

namespace levee::broker {

namespace {

using L = broker_limits;
const field_spec<L> limit_fields[] = {
  {"max_subscriptions_per_partition", &L::max_subscriptions_per_partition, 1, 1'000'000,
   "subscriptions"},
  {"max_cursors", &L::max_cursors, 1, 100'000'000, "cursors"},
  {"maintenance_interval_ms", &L::maintenance_interval_ms, 100, 86'400'000, "ms"},
};

// [limits.consumer]: read from its own keys, so that [limits.default] (actors' limits)
// is not a consumer's fallback.
using C = consumer_rates;
const field_spec<C> consumer_fields[] = {
  {"rate_msgs_per_sec", &C::msgs_per_sec, 0, 1ull << 40, "msgs/s"},
  {"rate_burst_msgs", &C::burst_msgs, 0, 1ull << 40, "messages"},
  {"rate_bytes_per_sec", &C::bytes_per_sec, 0, 1ull << 50, "bytes/s"},
  {"rate_burst_bytes", &C::burst_bytes, 0, 1ull << 50, "bytes"},
};

using P = publisher_limits;
const field_spec<P> publisher_fields[] = {
  {"publish_msgs_per_sec", &P::msgs_per_sec, 0, 1ull << 40, "msgs/s"},
  {"publish_bytes_per_sec", &P::bytes_per_sec, 0, 1ull << 50, "bytes/s"},
  {"max_publishers", &P::max_publishers, 1, 10'000'000, "publishers"},
  {"publisher_idle_ms", &P::idle_ms, 1000, 86'400'000, "ms"},
};

// Replication's bounds (README.md "Replicas").
using R = replication_limits;
const field_spec<R> replica_fields[] = {
  {"replica_fetch_max_bytes", &R::fetch_max_bytes, 4096, 1ull << 30, "bytes"},
  {"replica_fetch_max_wait_ms", &R::fetch_max_wait_ms, 0, 60'000, "ms"},
  {"replica_max_lag_ms", &R::max_lag_ms, 100, 3'600'000, "ms"},
};

// The metadata cluster's numbers (README.md "Controller"); the addresses are read by hand.
struct cluster_numbers {
  uint64_t id = 1;  // required when clustered (checked by key), so the default is only in range
  uint64_t session_timeout_ms = defaults::broker_session_timeout_ms;
  uint64_t raft_election_timeout_ms = defaults::broker_raft_election_timeout_ms;
};
using N = cluster_numbers;
const field_spec<N> cluster_fields[] = {
  {"id", &N::id, 1, 1'000'000, "(a broker id)"},
  {"session_timeout_ms", &N::session_timeout_ms, 200, 3'600'000, "ms"},
  {"raft_election_timeout_ms", &N::raft_election_timeout_ms, 100, 60'000, "ms"},
};

struct metadata_numbers {
  uint64_t max_pending_commands = defaults::metadata_max_pending_commands;
};
const field_spec<metadata_numbers> metadata_fields[] = {
  {"max_pending_commands", &metadata_numbers::max_pending_commands, 1, 1'000'000, "commands"},
};

// Each table's keys are the others' extras, so read_fields refuses only unknown ones.
#define LEVEE_BROKER_TEXT_KEYS "listen", "data_dir", "raft_listen", "raft_members", "advertise", "join"
#define LEVEE_BROKER_LIMIT_KEYS "max_subscriptions_per_partition", "max_cursors", "maintenance_interval_ms"
#define LEVEE_BROKER_PUBLISHER_KEYS \
  "publish_msgs_per_sec", "publish_bytes_per_sec", "max_publishers", "publisher_idle_ms"
#define LEVEE_BROKER_CLUSTER_KEYS "id", "session_timeout_ms", "raft_election_timeout_ms"
#define LEVEE_BROKER_REPLICA_KEYS \
  "replica_fetch_max_bytes", "replica_fetch_max_wait_ms", "replica_max_lag_ms"
constexpr std::initializer_list<const char*> limit_extras = {
  LEVEE_BROKER_TEXT_KEYS, LEVEE_BROKER_PUBLISHER_KEYS, LEVEE_BROKER_CLUSTER_KEYS,
  LEVEE_BROKER_REPLICA_KEYS};
constexpr std::initializer_list<const char*> publisher_extras = {
  LEVEE_BROKER_TEXT_KEYS, LEVEE_BROKER_LIMIT_KEYS, LEVEE_BROKER_CLUSTER_KEYS,
  LEVEE_BROKER_REPLICA_KEYS};
constexpr std::initializer_list<const char*> cluster_extras = {
  LEVEE_BROKER_TEXT_KEYS, LEVEE_BROKER_LIMIT_KEYS, LEVEE_BROKER_PUBLISHER_KEYS,
  LEVEE_BROKER_REPLICA_KEYS};
constexpr std::initializer_list<const char*> replica_extras = {
  LEVEE_BROKER_TEXT_KEYS, LEVEE_BROKER_LIMIT_KEYS, LEVEE_BROKER_PUBLISHER_KEYS,
  LEVEE_BROKER_CLUSTER_KEYS};

/// `levee stats` against a broker: its listener, I/O loop, node budget and actor kinds
/// (the leaders are kind "stream", the broker "broker"). A wait_ms is not held: the
/// answer is the figures now (the broker has no query watchers to wait on).
void fill_broker_stats(const broker_stats& s, wire::BrokerStats& out) {
  out.set_streams(s.streams.load());
  out.set_partitions(s.partitions.load());
  out.set_publishes(s.publishes.load());
  out.set_messages_stored(s.messages_stored.load());
  out.set_acks(s.acks.load());
  out.set_duplicates(s.duplicates.load());
  out.set_subscriptions(s.subscriptions.load());
  out.set_batches_sent(s.batches_sent.load());
  out.set_unacked_refusals(s.unacked_refusals.load());
  out.set_subscriptions_paced(s.subscriptions_paced.load());
  out.set_fetches_served(s.fetches_served.load());
  out.set_fetch_bytes_served(s.fetch_bytes_served.load());
  out.set_fetches_made(s.fetches_made.load());
  out.set_bytes_copied(s.bytes_copied.load());
  out.set_truncations(s.truncations.load());
  out.set_isr_shrinks(s.isr_shrinks.load());
  out.set_isr_expands(s.isr_expands.load());
  out.set_acks_waited(s.acks_waited.load());
  net::fill_by_code(*out.mutable_rejections(), s.rejections);
  for (auto& [limit, n] : s.rejected_by_limit())
    (*out.mutable_rejections_by_limit())[limit] = n;
}

/// Every local replica's gauges, read without a message to its actor (atomics).
void fill_partition_gauges(gauge_board& board, wire::BrokerStats& out) {
  std::lock_guard<std::mutex> guard{board.mu};
  for (auto& [key, g] : board.partitions) {
    auto* p = out.add_partition_gauges();
    p->set_stream(key.first);
    p->set_partition(key.second);
    p->set_start_offset(g->start_offset.load());
    p->set_log_end(g->next_offset.load());
    p->set_high_water(g->high_water.load());
    p->set_size_bytes(g->size_bytes.load());
    p->set_subscribers(g->subscribers.load());
    p->set_leading(g->leading.load());
    p->set_leader_epoch(g->leader_epoch.load());
    p->set_replicas(g->replicas.load());
    p->set_isr_size(g->isr_size.load());
    p->set_max_follower_lag(g->max_follower_lag.load());
  }
}

/// The whole StatsReply of a broker: `levee stats` and /metrics read the same.
void fill_reply(const net::server_context& ctx, caf::actor_system& sys, const runtime& rt,
                const broker_stats& stats, gauge_board* gauges, wire::StatsReply& reply) {
  net::fill_listener_stats(ctx.stats, *reply.mutable_listener());
  net::fill_io_loop_stats(sys, reply);
  net::fill_runtime_stats(rt.snapshot(), reply);
  fill_broker_stats(stats, *reply.mutable_broker());
  if (gauges)
    fill_partition_gauges(*gauges, *reply.mutable_broker());
}

wire_request_target::behavior_type stats_target(limited<wire_request_target::base>* self,
                                                std::shared_ptr<net::server_context> ctx,
                                                runtime* rt,
                                                std::shared_ptr<broker_stats> stats,
                                                std::shared_ptr<gauge_board> gauges) {
  return {
    [=](wire_request_atom, const std::string& payload) -> caf::result<std::string> {
      wire::StatsRequest req;
      if (auto refused = net::check_text_fields(*wire::StatsRequest::descriptor(), payload))
        return to_error(*refused);
      if (!req.ParseFromString(payload))
        return to_error(rejection::of(code::bad_request)
                          .detail("a StatsRequest that does not parse; send one built from "
                                  "net/satellite.proto"));
      wire::StatsReply reply;
      fill_reply(*ctx, self->system(), *rt, *stats, gauges.get(), reply);
      return reply.SerializeAsString();
    },
  };
}

/// broker.raft_members: "1=127.0.0.1:7701,2=127.0.0.1:7702": ids from 1, each once, IPv4
/// literals (libraft 0.15's transport takes no names).
result<std::vector<metadata::raft_member>> parse_members(const std::string& text) {
  const std::string what_to_write =
    "; write the initial members as id=IPv4:port separated by commas, e.g. "
    "broker.raft_members = 1=127.0.0.1:7701,2=127.0.0.1:7702,3=127.0.0.1:7703";
  std::vector<metadata::raft_member> out;
  size_t at = 0;
  while (at <= text.size()) {
    size_t comma = text.find(',', at);
    std::string item = text.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    at = comma == std::string::npos ? text.size() + 1 : comma + 1;
    auto eq = item.find('=');
    if (item.empty() || eq == std::string::npos)
      return status::error(code::bad_request,
                           "broker.raft_members: '" + item + "' is not id=address" + what_to_write);
    // Digits only: parse_quantity would take "1KiB" as 1024.
    auto id_text = item.substr(0, eq);
    auto id = id_text.find_first_not_of("0123456789") == std::string::npos
                ? parse_quantity("broker.raft_members", id_text)
                : result<uint64_t>{status::error(code::bad_request, "not a number")};
    if (!id || *id == 0)
      return status::error(code::bad_request, "broker.raft_members: '" + item.substr(0, eq)
                                                 + "' is not a broker id (1..)" + what_to_write);
    auto address = item.substr(eq + 1);
    if (auto st = metadata::check_raft_address(address, "broker.raft_members"); !st)
      return status::error(code::bad_request, st.message() + what_to_write);
    for (auto& m : out)
      if (m.id == *id)
        return status::error(code::bad_request, "broker.raft_members: id " + std::to_string(*id)
                                                   + " is listed twice" + what_to_write);
    out.push_back(metadata::raft_member{*id, address});
  }
  return out;
}

result<std::optional<controller_options>> cluster_options_from_config(const flat_config& cfg,
                                                                       const broker_options& b,
                                                                       const cluster_numbers& n,
                                                                       const metadata_numbers& meta) {
  auto get = [&](const char* key) -> std::optional<std::string> {
    auto i = cfg.find(std::string{"broker."} + key);
    return i == cfg.end() ? std::nullopt : std::optional<std::string>{i->second};
  };
  auto raft_listen = get("raft_listen");
  if (!raft_listen) {
    for (const char* key : {"id", "raft_members", "join"})
      if (get(key))
        return status::error(code::bad_request,
                             std::string{"broker."} + key + " is set but broker.raft_listen is not: "
                               "a broker joins a metadata cluster only with raft_listen (IPv4:port "
                               "for Raft); remove " + key + " to run the broker alone");
    return std::optional<controller_options>{};
  }
  controller_options o;
  if (!get("id"))
    return status::error(code::bad_request,
                         "broker.id is missing: a clustered broker (broker.raft_listen is set) "
                         "needs an id from 1, unique in the cluster");
  o.id = n.id;
  if (auto st = metadata::check_raft_address(*raft_listen, "broker.raft_listen"); !st)
    return st;
  o.raft_listen = *raft_listen;
  auto members = get("raft_members");
  // broker.join: a broker added to a running cluster (README.md "Adding and removing
  // brokers") names a running broker instead of the initial members; the two exclude each
  // other, so that a broker never bootstraps a second group by mistake.
  if (auto join = get("join")) {
    if (members)
      return status::error(code::bad_request,
                           "broker.join and broker.raft_members are both set: the first brokers "
                           "bootstrap with raft_members, a broker added later joins with join; "
                           "keep the one that fits this broker");
    base::host_port hp;
    std::string bad;
    if (!base::parse_host_port("broker.join", *join, hp, bad) || hp.port == 0)
      return status::error(code::bad_request,
                           "broker.join = '" + *join + "': write the client address (host:port, "
                           "its broker.advertise) of a running broker of the cluster");
    o.join = *join;
  } else if (!members || members->empty()) {
    return status::error(code::bad_request,
                         "broker.raft_members is missing: list the cluster's initial members as "
                         "id=IPv4:port, e.g. 1=127.0.0.1:7701,2=127.0.0.1:7702,3=127.0.0.1:7703; "
                         "or, to add this broker to a running cluster, set broker.join to a running "
                         "broker's client address");
  }
  auto parsed = o.join.empty() ? parse_members(*members)
                               : result<std::vector<metadata::raft_member>>{std::vector<metadata::raft_member>{}};
  if (!parsed)
    return parsed.error();
  o.members = std::move(*parsed);
  bool listed = false;
  for (auto& m : o.members)
    if (m.id == o.id) {
      listed = true;
      if (m.address != o.raft_listen)
        return status::error(code::bad_request,
                             "broker.raft_members lists broker " + std::to_string(o.id) + " at "
                               + m.address + " but broker.raft_listen is " + o.raft_listen
                               + "; make them the same");
    }
  if (!listed && o.join.empty())
    return status::error(code::bad_request,
                         "broker.raft_members does not list this broker (broker.id = "
                           + std::to_string(o.id) + "); add " + std::to_string(o.id) + "="
                           + o.raft_listen + " to bootstrap it with the others, or, to add it to a "
                           "running cluster, remove raft_members and set broker.join to a running "
                           "broker's client address");
  o.advertise = get("advertise").value_or(b.listen);
  base::host_port hp;
  std::string bad;
  if (!base::parse_host_port("broker.advertise", o.advertise, hp, bad) || hp.port == 0)
    return status::error(code::bad_request,
                         "broker.advertise = '" + o.advertise + "': write the host:port clients "
                         "reach this broker at (port not 0; set it when broker.listen's port is 0)");
  o.raft_dir = (std::filesystem::path(b.data_dir) / ".raft").string();
  o.session_timeout_ms = n.session_timeout_ms;
  o.election_timeout_ms = static_cast<unsigned>(n.raft_election_timeout_ms);
  o.max_pending_commands = meta.max_pending_commands;
  if (o.session_timeout_ms < 2 * n.raft_election_timeout_ms)
    return status::error(code::bad_request,
                         "broker.session_timeout_ms = " + std::to_string(o.session_timeout_ms)
                           + " is shorter than two raft_election_timeout_ms ("
                           + std::to_string(n.raft_election_timeout_ms)
                           + "): every metadata election would expire sessions; raise it");
  return std::optional<controller_options>{std::move(o)};
}

} // namespace

std::vector<std::string> config_keys() {
  std::vector<std::string> out;
  append_keys(out, "broker", limit_fields, {LEVEE_BROKER_TEXT_KEYS});
  append_keys(out, "broker", publisher_fields);
  append_keys(out, "broker", cluster_fields);
  append_keys(out, "broker", replica_fields);
  append_keys(out, "metadata", metadata_fields);
  return out;
}

result<broker_options> broker_options_from_config(const flat_config& cfg) {
  broker_options out;
  cluster_numbers numbers;
  metadata_numbers meta;
  if (auto st = read_fields(out.limits, cfg, "broker", limit_fields, limit_extras); !st)
    return st;
  if (auto st = check_fields(out.limits, "broker", limit_fields); !st)
    return st;
  if (auto st = read_fields(numbers, cfg, "broker", cluster_fields, cluster_extras); !st)
    return st;
  if (auto st = read_fields(meta, cfg, "metadata", metadata_fields); !st)
    return st;
  if (auto st = read_fields(out.limits.replication, cfg, "broker", replica_fields,
                            replica_extras); !st)
    return st;
  if (auto st = read_fields(out.limits.publishers, cfg, "broker", publisher_fields,
                            publisher_extras); !st)
    return st;
  if (auto st = check_fields(out.limits.publishers, "broker", publisher_fields); !st)
    return st;
  if (auto i = cfg.find("broker.listen"); i != cfg.end())
    out.listen = i->second;
  if (auto i = cfg.find("broker.data_dir"); i != cfg.end())
    out.data_dir = i->second;
  if (out.data_dir.empty())
    return status::error(code::bad_request,
                         "broker.data_dir is missing: name the directory that holds the "
                         "broker's streams");
  auto cluster = cluster_options_from_config(cfg, out, numbers, meta);
  if (!cluster)
    return cluster.error();
  out.cluster = std::move(*cluster);
  // [limits.consumer] paces each subscription (broker/README.md "Limits"); a consumer is
  // not an actor, so an actor key there (which [limits.*] sections take) is refused with
  // that reason before read_fields' plain "unknown key".
  for (auto& [key, value] : cfg) {
    constexpr std::string_view section = "limits.consumer.";
    if (key.rfind(section, 0) != 0)
      continue;
    auto field = std::string_view{key}.substr(section.size());
    std::string names;
    bool known = false;
    for (auto& f : consumer_fields) {
      known = known || field == f.name;
      names += (names.empty() ? "" : ", ") + std::string{f.name};
    }
    if (!known)
      return status::error(code::bad_request,
                           key + " does not apply: a consumer (a subscription) is not an "
                                 "actor, and only its delivery rates are bounded there; use "
                                 + names);
  }
  if (auto st = read_fields(out.limits.consumer, cfg, "limits.consumer", consumer_fields); !st)
    return st;
  auto settings = streams::stream_settings_from_config(cfg);
  if (!settings)
    return settings.error();
  out.streams = std::move(*settings);
  return out;
}

result<std::shared_ptr<broker_node>> start_broker(caf::actor_system& sys, runtime& rt,
                                                  const broker_options& opts,
                                                  const net::listener_config& net_cfg) {
  base::host_port listen;
  std::string bad_listen;
  if (!base::parse_host_port("broker.listen", opts.listen, listen, bad_listen,
                             base::port_zero::any_free_port))
    return status::error(code::bad_request, bad_listen);
  auto& [host, port] = listen;
  // A fetch answer travels in one frame of this listener (and of the follower's client).
  if (opts.limits.replication.fetch_max_bytes + 64 * 1024 > net_cfg.limits.max_frame_bytes)
    return status::error(code::bad_request,
                         "broker.replica_fetch_max_bytes = "
                           + std::to_string(opts.limits.replication.fetch_max_bytes)
                           + " does not fit a frame: net.max_frame_bytes is "
                           + std::to_string(net_cfg.limits.max_frame_bytes)
                           + " and a fetch answer needs up to 64 KiB more for its fields; "
                             "lower the first or raise the second");
  streams::catalog_options co;
  co.data_dir = opts.data_dir;
  co.subjects = opts.streams.subjects;
  co.clock = &rt.clock();
  auto catalog = streams::stream_catalog::open(co);
  if (!catalog)
    return catalog.error();
  for (auto& p : (*catalog)->problems())
    LEVEE_WARN("broker", "%s: %s", p.path.c_str(), p.error.to_string().c_str());
  auto node = std::make_shared<broker_node>();
  node->stats = std::make_shared<broker_stats>();
  node->catalog = std::shared_ptr<streams::stream_catalog>{std::move(*catalog)};
  broker_setup setup;
  setup.catalog = node->catalog;
  setup.settings = opts.streams;
  setup.limits = opts.limits;
  setup.stats = node->stats;
  setup.clock = &rt.clock();
  setup.connection_inflight = net_cfg.limits.max_inflight_requests;
  node->gauges = std::make_shared<gauge_board>();
  setup.gauges = node->gauges;
  if (opts.cluster) {
    // Raft starts before the broker (which takes its streams from the metadata) and the
    // listener: a bad raft_listen or data dir fails the start before clients connect.
    auto co = *opts.cluster;
    co.gauges = node->gauges;
    auto ctl = spawn_controller(sys, rt, std::move(co), &rt.clock());
    if (!ctl)
      return ctl.error();
    node->controller = *ctl;
    setup.controller = node->controller;
    setup.broker_id = opts.cluster->id;
  }
  auto b = spawn_broker(sys, rt, std::move(setup));
  if (!b) {
    stop_broker(*node);
    return b.error();
  }
  node->broker = *b;
  node->ctx = std::make_shared<net::server_context>(net_cfg);
  // The connection speaks to its targets untyped (actors/wire_target.hpp).
  node->ctx->expose("broker", caf::actor_cast<caf::actor>(node->broker));
  // The target holds the context and the context the target: stop_broker ends the target,
  // and with it the cycle.
  node->stats_target = spawn_limited_fun(sys, rt, "broker", placement::worker(), stats_target,
                                         node->ctx, &rt, node->stats, node->gauges);
  node->ctx->expose("stats", caf::actor_cast<caf::actor>(node->stats_target));
  if (opts.cluster) {
    node->ctx->expose("cluster", caf::actor_cast<caf::actor>(node->controller));
  } else {
    node->single_cluster_target = spawn_limited_fun(sys, rt, "broker", placement::worker(),
                                                    single_broker_cluster_target);
    node->ctx->expose("cluster", caf::actor_cast<caf::actor>(node->single_cluster_target));
  }
  auto l = net::start_listener(sys, node->ctx, host, port);
  if (!l) {
    stop_broker(*node);
    return l.error();
  }
  node->listener = *l;
  return node;
}

void fill_broker_node_stats(const broker_node& node, const runtime& rt, wire::StatsReply& out) {
  if (node.ctx && node.stats && node.stats_target)
    fill_reply(*node.ctx, node.stats_target->home_system(), rt, *node.stats, node.gauges.get(), out);
}

void stop_broker(broker_node& node) {
  if (node.ctx && node.listener.acceptor)
    net::stop_listener(node.listener, *node.ctx);
  if (node.broker) {
    caf::scoped_actor self{node.broker->home_system()};
    self->request(node.broker, std::chrono::seconds(30), stop_atom::value)
      .receive([](bool) {},
               [&](caf::error& err) {
                 LEVEE_ERROR("broker", "stopping: %s",
                             self->system().render(err).c_str());
                 caf::anon_send_exit(node.broker, caf::exit_reason::user_shutdown);
               });
    node.broker = nullptr;
  }
  if (node.stats_target) {
    caf::anon_send_exit(node.stats_target, caf::exit_reason::user_shutdown);
    node.stats_target = nullptr;
  }
  if (node.single_cluster_target) {
    caf::anon_send_exit(node.single_cluster_target, caf::exit_reason::user_shutdown);
    node.single_cluster_target = nullptr;
  }
  if (node.controller) {
    // Leaves the Raft group's loop and joins its thread before the node is gone.
    caf::scoped_actor self{node.controller->home_system()};
    self->request(node.controller, std::chrono::seconds(30), stop_atom::value)
      .receive([](bool) {},
               [&](caf::error&) { caf::anon_send_exit(node.controller, caf::exit_reason::user_shutdown); });
    node.controller = nullptr;
  }
}

} // namespace levee::broker
