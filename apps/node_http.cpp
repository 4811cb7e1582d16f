// A node's HTTP listener joined to its roles (node_http.hpp).

#include "apps/node_http.hpp"

#include <atomic>
#include <chrono>

#include <caf/all.hpp>

#include "actors/atoms.hpp"
#include "actors/wire_target.hpp"
#include "apps/metrics_text.hpp"
#include "broker/cluster.pb.h"
#include "net/stats_reply.hpp"

namespace levee::apps {

namespace {

/// How often a clustered broker's readiness asks its controller for the metadata leader
/// (after each answer: one question at a time), and how long an answer may take: /readyz
/// reads the last answer, so a probe never waits on the controller.
constexpr auto leader_watch_interval = std::chrono::milliseconds{500};
constexpr auto leader_watch_timeout = std::chrono::seconds{2};

struct satellite_entry {
  std::string id;
  std::string server;
  std::shared_ptr<satellite::satellite_stats> stats;
};

/// What the controller said last, as /readyz words it: empty when a metadata leader is
/// known and the metadata is healthy, else why not.
struct leader_view {
  std::mutex mtx;
  std::string not_ready = "its controller has not answered yet";
};

} // namespace

struct node_http::roles_state {
  caf::actor_system* sys = nullptr;
  runtime* rt = nullptr;
  std::string roles;
  std::mutex mtx;  // guards everything below
  bool started = false;
  bool stopping = false;
  std::shared_ptr<server::server_node> server;
  std::shared_ptr<broker::broker_node> broker;
  std::shared_ptr<leader_view> leader;  // a clustered broker's
  std::vector<satellite_entry> satellites;

  void metrics(http::exposition& out) {
    node_metrics m;
    m.roles = roles;
    {
      std::lock_guard<std::mutex> guard{mtx};
      if (server) {
        wire::StatsReply reply;
        server::fill_server_stats(*server, *rt, reply);
        m.listeners.emplace_back("server", reply.listener());
        *m.stats.mutable_queries() = reply.queries();
        *m.stats.mutable_satellites() = reply.satellites();
      }
      if (broker) {
        wire::StatsReply reply;
        broker::fill_broker_node_stats(*broker, *rt, reply);
        m.listeners.emplace_back("broker", reply.listener());
        *m.stats.mutable_broker() = reply.broker();
      }
      for (auto& s : satellites) {
        auto& out = *m.stats.add_local_satellites();
        std::string id, error;
        {
          std::lock_guard<std::mutex> g{s.stats->mtx};
          id = s.stats->assigned_id;
          error = s.stats->last_error;
        }
        out.set_satellite_id(id.empty() ? s.id : id);
        out.set_last_error(error);
        out.set_registered(s.stats->registered.load());
        out.set_registrations(s.stats->registrations.load());
        out.set_events_stored(s.stats->events_stored.load());
        out.set_bad_lines(s.stats->bad_lines.load());
        out.set_store_refusals(s.stats->store_refusals.load());
        out.set_events_dropped(s.stats->events_dropped.load());
        out.set_queries(s.stats->queries.load());
        out.set_queries_refused(s.stats->queries_refused.load());
        out.set_queries_running(s.stats->queries_running.load());
      }
    }
    // Process-wide: one I/O loop and one runtime whatever the roles.
    net::fill_io_loop_stats(*sys, m.stats);
    net::fill_runtime_stats(rt->snapshot(), m.stats);
    write_node_metrics(m, out);
  }

  http::readiness ready() {
    std::lock_guard<std::mutex> guard{mtx};
    if (stopping)
      return {false, "stopping"};
    if (!started)
      return {false, "starting"};
    if (server && server->listener.port == 0)
      return {false, "server: its listener is not up"};
    if (broker && broker->listener.port == 0)
      return {false, "broker: its listener is not up"};
    if (leader) {
      std::lock_guard<std::mutex> g{leader->mtx};
      if (!leader->not_ready.empty())
        return {false, "broker: " + leader->not_ready};
    }
    for (auto& s : satellites) {
      if (s.stats->registered.load())
        continue;
      std::string error;
      {
        std::lock_guard<std::mutex> g{s.stats->mtx};
        error = s.stats->last_error;
      }
      return {false, "satellite " + (s.id.empty() ? std::string{"(to be assigned)"} : s.id)
                       + ": not registered with " + s.server
                       + (error.empty() ? std::string{" yet"} : "; last refusal: " + error)};
    }
    return {true, {}};
  }
};

namespace {

using leader_watch_actor = caf::typed_actor<caf::reacts_to<tick_atom>>;

/// Asks the controller for ClusterInfo every leader_watch_interval and keeps the answer.
leader_watch_actor::behavior_type leader_watch(leader_watch_actor::pointer self,
                                               wire_request_target controller,
                                               std::shared_ptr<leader_view> view) {
  self->send(self, tick_atom::value);
  auto keep = [view](std::string why) {
    std::lock_guard<std::mutex> guard{view->mtx};
    view->not_ready = std::move(why);
  };
  return {
    [=](tick_atom) {
      cluster::ClusterCall call;
      call.mutable_info();
      self->request(controller, leader_watch_timeout, wire_request_atom::value,
                    call.SerializeAsString())
        .then(
          [=](const std::string& bytes) {
            cluster::ClusterInfo info;
            if (!info.ParseFromString(bytes))
              keep("its controller's ClusterInfo did not parse");
            else if (!info.health().empty())
              keep("the metadata stopped serving: " + info.health());
            else if (info.leader_id() == 0)
              keep("no metadata leader known yet (an election is under way, or too few of "
                   "broker.raft_members are up)");
            else
              keep({});
            self->delayed_send(self, leader_watch_interval, tick_atom::value);
          },
          [=](const caf::error&) {
            keep("its controller did not answer within 2 s");
            self->delayed_send(self, leader_watch_interval, tick_atom::value);
          });
    },
  };
}

} // namespace

result<std::unique_ptr<node_http>> node_http::start(const http::http_options& opts,
                                                    caf::actor_system& sys, runtime& rt,
                                                    std::string roles) {
  std::unique_ptr<node_http> out{new node_http};
  out->state_ = std::make_shared<roles_state>();
  out->state_->sys = &sys;
  out->state_->rt = &rt;
  out->state_->roles = std::move(roles);
  if (!opts.enabled())
    return out;
  http::handlers h;
  auto st = out->state_;
  h.metrics = [st](http::exposition& e) { st->metrics(e); };
  h.ready = [st] { return st->ready(); };
  auto s = http::server::start(opts, std::move(h));
  if (!s)
    return s.error();
  out->server_ = std::move(*s);
  return out;
}

node_http::~node_http() {
  if (server_)
    server_->stop();
  if (leader_watch_)
    caf::anon_send_exit(leader_watch_, caf::exit_reason::user_shutdown);
}

void node_http::add_server(std::shared_ptr<server::server_node> node) {
  std::lock_guard<std::mutex> guard{state_->mtx};
  state_->server = std::move(node);
}

void node_http::add_broker(std::shared_ptr<broker::broker_node> node, bool clustered) {
  std::shared_ptr<leader_view> view;
  if (clustered && server_ && node->controller) {
    view = std::make_shared<leader_view>();
    leader_watch_ = caf::actor_cast<caf::actor>(state_->sys->spawn(
      leader_watch, caf::actor_cast<wire_request_target>(node->controller), view));
  }
  std::lock_guard<std::mutex> guard{state_->mtx};
  state_->broker = std::move(node);
  state_->leader = view;
}

void node_http::add_satellite(std::string id, std::string server,
                              std::shared_ptr<satellite::satellite_stats> stats) {
  std::lock_guard<std::mutex> guard{state_->mtx};
  state_->satellites.push_back({std::move(id), std::move(server), std::move(stats)});
}

void node_http::started() {
  std::lock_guard<std::mutex> guard{state_->mtx};
  state_->started = true;
}

void node_http::stopping() {
  if (leader_watch_) {
    caf::anon_send_exit(leader_watch_, caf::exit_reason::user_shutdown);
    leader_watch_ = nullptr;
  }
  std::lock_guard<std::mutex> guard{state_->mtx};
  state_->stopping = true;
  state_->server.reset();
  state_->broker.reset();
  state_->leader.reset();
  state_->satellites.clear();
}

} // namespace levee::apps
