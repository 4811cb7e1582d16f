// A broker node: config, start and stop (node.hpp).

#include "broker/node.hpp"

#include <caf/all.hpp>

#include "actors/limited_actor.hpp"
#include "base/host_port.hpp"
#include "limits/config_fields.hpp"
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

// Each table's keys are the other's extras, so read_fields refuses only unknown ones.
constexpr std::initializer_list<const char*> limit_extras = {
  "listen", "data_dir", "publish_msgs_per_sec", "publish_bytes_per_sec", "max_publishers",
  "publisher_idle_ms"};
constexpr std::initializer_list<const char*> publisher_extras = {
  "listen", "data_dir", "max_subscriptions_per_partition", "max_cursors",
  "maintenance_interval_ms"};

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
  net::fill_by_code(*out.mutable_rejections(), s.rejections);
  for (auto& [limit, n] : s.rejected_by_limit())
    (*out.mutable_rejections_by_limit())[limit] = n;
}

wire_request_target::behavior_type stats_target(limited<wire_request_target::base>* self,
                                                std::shared_ptr<net::server_context> ctx,
                                                runtime* rt,
                                                std::shared_ptr<broker_stats> stats) {
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
      net::fill_listener_stats(ctx->stats, *reply.mutable_listener());
      net::fill_io_loop_stats(self->system(), reply);
      net::fill_runtime_stats(rt->snapshot(), reply);
      fill_broker_stats(*stats, *reply.mutable_broker());
      return reply.SerializeAsString();
    },
  };
}

} // namespace

std::vector<std::string> config_keys() {
  std::vector<std::string> out;
  append_keys(out, "broker", limit_fields, {"listen", "data_dir"});
  append_keys(out, "broker", publisher_fields);
  return out;
}

result<broker_options> broker_options_from_config(const flat_config& cfg) {
  broker_options out;
  if (auto st = read_fields(out.limits, cfg, "broker", limit_fields, limit_extras); !st)
    return st;
  if (auto st = check_fields(out.limits, "broker", limit_fields); !st)
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
  // [limits.consumer] paces each subscription (broker/README.md "Limits"); a consumer is
  // not an actor, so an actor key there would be accepted and do nothing: refused.
  for (auto& [key, value] : cfg) {
    constexpr std::string_view section = "limits.consumer.";
    if (key.rfind(section, 0) != 0)
      continue;
    auto field = std::string_view{key}.substr(section.size());
    if (field != "rate_msgs_per_sec" && field != "rate_burst_msgs"
        && field != "rate_bytes_per_sec" && field != "rate_burst_bytes")
      return status::error(code::bad_request,
                           key + " does not apply: a consumer (a subscription) is not an "
                                 "actor, and only its delivery rates are bounded there; use "
                                 "rate_msgs_per_sec, rate_burst_msgs, rate_bytes_per_sec or "
                                 "rate_burst_bytes");
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
  streams::catalog_options co;
  co.data_dir = opts.data_dir;
  co.subjects = opts.streams.subjects;
  co.clock = &rt.clock();
  auto catalog = streams::stream_catalog::open(co);
  if (!catalog)
    return catalog.error();
  for (auto& p : (*catalog)->problems())
    std::fprintf(stderr, "levee broker: %s: %s\n", p.path.c_str(), p.error.to_string().c_str());
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
  auto b = spawn_broker(sys, rt, std::move(setup));
  if (!b)
    return b.error();
  node->broker = *b;
  node->ctx = std::make_shared<net::server_context>(net_cfg);
  // The connection speaks to its targets untyped (actors/wire_target.hpp).
  node->ctx->expose("broker", caf::actor_cast<caf::actor>(node->broker));
  // The target holds the context and the context the target: stop_broker ends the target,
  // and with it the cycle.
  node->stats_target = spawn_limited_fun(sys, rt, "broker", placement::worker(), stats_target,
                                         node->ctx, &rt, node->stats);
  node->ctx->expose("stats", caf::actor_cast<caf::actor>(node->stats_target));
  auto l = net::start_listener(sys, node->ctx, host, port);
  if (!l) {
    stop_broker(*node);
    return l.error();
  }
  node->listener = *l;
  return node;
}

void stop_broker(broker_node& node) {
  if (node.ctx && node.listener.acceptor)
    net::stop_listener(node.listener, *node.ctx);
  if (node.broker) {
    caf::scoped_actor self{node.broker->home_system()};
    self->request(node.broker, std::chrono::seconds(30), stop_atom::value)
      .receive([](bool) {},
               [&](caf::error& err) {
                 std::fprintf(stderr, "levee broker: stopping: %s\n",
                              self->system().render(err).c_str());
                 caf::anon_send_exit(node.broker, caf::exit_reason::user_shutdown);
               });
    node.broker = nullptr;
  }
  if (node.stats_target) {
    caf::anon_send_exit(node.stats_target, caf::exit_reason::user_shutdown);
    node.stats_target = nullptr;
  }
}

} // namespace levee::broker
