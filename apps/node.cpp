// `levee node --config FILE`: runs the roles its file names ([node] roles = server,
// satellite, broker). `levee local`: the embedded default, a server and two satellites with sample
// data in one process, over the same code paths (the satellites dial the server over
// loopback TCP) and limits. Both stop on SIGINT/SIGTERM: stop accepting, end queries in
// flight with `shutting_down`, sync the stores, exit 0.

#include <algorithm>
#include <atomic>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "actors/caf_error.hpp"
#include "actors/runtime.hpp"
#include "apps/cli_common.hpp"
#include "apps/exit_codes.hpp"
#include "apps/node_http.hpp"
#include "apps/subcommands.hpp"
#include "base/host_port.hpp"
#include "broker/node.hpp"
#include "http/options.hpp"
#include "limits/config_file.hpp"
#include "limits/defaults.hpp"
#include "limits/limits_config.hpp"
#include "limits/log.hpp"
#include "levee/node.hpp"
#include "limits/printable.hpp"
#include "net/multiplexer.hpp"
#include "net/net_config.hpp"
#include "satellite/satellite.hpp"
#include "server/node.hpp"
#include "streams/stream_config.hpp"
#include "server/registry.hpp"

namespace levee::apps {

namespace {

namespace po = boost::program_options;
using namespace std::chrono;

/// Blocks SIGINT and SIGTERM in this thread and every thread started after it, so that
/// wait_for_signal() receives them instead of the default handler killing the process.
/// Every connection is a file descriptor. Raises the soft open-file limit to what
/// net.max_connections needs, with a margin for the node's other files (segment files,
/// sources, the I/O loop's own), up to the hard limit; says on stderr when the hard limit
/// is lower, since connections past it would fail to be accepted. The HTTP listener's
/// sockets count too: up to twice http.max_connections (the held ones and as many refused
/// extras lingering, http/README.md "Refusals").
void fit_open_file_limit(const char* sub, uint64_t max_connections,
                         const http::http_options& http) {
  constexpr uint64_t margin = 256;
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return;
  auto http_sockets = http.enabled() ? 2 * http.max_connections + 1 : 0;
  auto want = static_cast<rlim_t>(max_connections + http_sockets + margin);
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
    rlimit raised = rl;
    raised.rlim_cur = rl.rlim_max == RLIM_INFINITY ? want : std::min(want, rl.rlim_max);
    if (raised.rlim_cur > rl.rlim_cur && ::setrlimit(RLIMIT_NOFILE, &raised) == 0)
      rl = raised;
  }
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want)
    LEVEE_WARN(sub,
                 "net.max_connections = %llu (and any HTTP listener) "
                 "needs about %llu open files, "
                 "but this process may open %llu (its hard limit); connections past that "
                 "cannot be accepted: raise the hard limit (systemd LimitNOFILE=, ulimit -Hn) "
                 "or lower net.max_connections",
                 static_cast<unsigned long long>(max_connections),
                 static_cast<unsigned long long>(want),
                 static_cast<unsigned long long>(rl.rlim_cur));
}

/// SIGUSR1 too: a role that must stop the node (a satellite refused for good) raises it,
/// and the main thread stops the roles as for SIGTERM (node_stop below).
sigset_t block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

/// A role's request to stop the node with an exit code, from any thread: the flag first,
/// then SIGUSR1 to wake the main thread in wait_for_signal (kill(2) is safe anywhere, and
/// no actor thread calls exit).
struct node_stop {
  std::atomic<int> exit_code{-1};  // -1: no role asked
  std::mutex mtx;
  std::string why;                 // under mtx

  void request(int code, const std::string& reason) {
    {
      std::lock_guard<std::mutex> guard{mtx};
      why = reason;
    }
    int none = -1;
    if (exit_code.compare_exchange_strong(none, code))
      ::kill(::getpid(), SIGUSR1);
  }
};

/// SIGINT or SIGTERM; or SIGUSR1 once a role asked `stop` to stop the node. A SIGUSR1 from
/// outside without such a request is ignored.
int wait_for_signal(const sigset_t& set, const node_stop* stop = nullptr) {
  for (;;) {
    int sig = 0;
    sigwait(&set, &sig);
    if (sig != SIGUSR1 || (stop != nullptr && stop->exit_code.load() >= 0))
      return sig;
  }
}

/// The keys of [node], read here.
const char* const node_keys[] = {"node.roles", "node.busy_poll_us"};

/// Where `levee local` serves /metrics when its config does not say (http.listen = none:
/// nowhere). Beside the server's 7400 and the broker's 7600.
const char* const default_local_http_listen = "127.0.0.1:7480";

/// Every section of a node's file must be one someone reads: a typo is an error, not a
/// silently ignored setting.
/// The role (of `custom`) that reads `section`, or nullptr.
const role* custom_role_of(const std::string& section, const std::vector<role>& custom) {
  for (auto& r : custom)
    for (auto& s : r.sections)
      if (s == section)
        return &r;
  return nullptr;
}

status check_sections(const flat_config& cfg, const std::set<std::string>& roles,
                      const std::vector<role>& custom) {
  for (auto& [key, value] : cfg) {
    auto section = key.substr(0, key.rfind('.'));
    auto top = key.substr(0, key.find('.'));
    if (top == "limits" || top == "net" || section == "node" || section == "http"
        || section == "log")
      continue;
    if (auto* owner = custom_role_of(section, custom)) {
      if (roles.count(owner->name))
        continue;
      return status::error(code::bad_request,
                           "'" + key + "' configures the role " + owner->name
                             + ", which this node does not have; add it to node.roles or "
                               "remove the section");
    }
    if ((section == "server" && roles.count("server"))
        || ((section == "satellite" || section == "events" || top == "source")
            && roles.count("satellite"))
        || ((section == "broker" || section == "stream" || section == "metadata")
            && roles.count("broker")))
      continue;
    if (section == "server" || section == "satellite" || section == "events" || top == "source"
        || section == "broker" || section == "stream" || section == "metadata")
      return status::error(code::bad_request,
                           "'" + key + "' configures a role this node does not have; add it to "
                           "node.roles or remove the section");
    std::string own;
    for (auto& r : custom)
      for (auto& s : r.sections)
        own += ", [" + s + "]";
    return status::error(code::bad_request,
                         "unknown key '" + key + "'; sections are [node], [server], [satellite], "
                         "[events], [source.<name>], [broker], [stream], [metadata], [net], [http], "
                         "[log], [limits], [limits.<kind>]" + own);
  }
  for (auto& [key, value] : cfg) {
    if (key.rfind("node.", 0) != 0)
      continue;
    bool known = false;
    for (auto* k : node_keys)
      known = known || key == k;
    if (!known)
      return status::error(code::bad_request,
                           "unknown key '" + key + "'; [node] takes: roles, busy_poll_us");
  }
  return {};
}

/// node.busy_poll_us: how long the I/O thread looks for work before it sleeps.
result<uint64_t> busy_poll_from_config(const flat_config& cfg) {
  auto it = cfg.find("node.busy_poll_us");
  if (it == cfg.end())
    return defaults::node_busy_poll_us;
  auto& text = it->second;
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size() || text.empty()
      || v > defaults::node_busy_poll_us_ceiling)
    return status::error(code::bad_request,
                         "node.busy_poll_us = " + text + ": must be a whole number of "
                           "microseconds from 0 (sleep as soon as nothing is ready) to "
                           + std::to_string(defaults::node_busy_poll_us_ceiling));
  return v;
}

struct node_args {
  std::string config;
  std::vector<std::string> overrides;
};

/// `wakeup_slots`: net::wakeup_slots_needed for the node's bounds; check_wakeup_slots says
/// whether the I/O thread got them.
std::unique_ptr<caf::actor_system> make_system(net::system_config& cfg, uint64_t busy_poll_us,
                                               uint64_t wakeup_slots) {
  cfg.load<caf::io::middleman, net::polling_multiplexer>();
  cfg.set(net::busy_poll_key, static_cast<int64_t>(busy_poll_us));
  cfg.set(net::wakeup_slots_key, static_cast<int64_t>(wakeup_slots));
  add_error_category(cfg);
  cfg.set("logger.console", caf::atom("none"));
  // The query path runs on the multiplexer threads; workers carry sources and side
  // work. CAF's default idle workers poll with 50 us sleeps for ~25 ms after any work,
  // which on a small machine takes the CPU from the multiplexer: an idle worker here
  // polls briefly, then waits on its condition variable until work is enqueued.
  cfg.set("work-stealing.moderate-poll-attempts", 0);
  cfg.set("work-stealing.aggressive-poll-attempts", 10);
  // One read per readiness event: a connection reads up to 64 KiB at a time, and a second
  // read in the same turn almost always comes back empty (EAGAIN), a wasted system call
  // per frame on the query path. Epoll is level-triggered: what is left is read next turn.
  cfg.set("middleman.max-consecutive-reads", 1);
  return std::make_unique<caf::actor_system>(cfg);
}

/// An error when the I/O thread's wake-up pipe holds fewer actors than the node's bounds
/// allow (net/multiplexer.hpp): a node that could block on it is not started.
status check_wakeup_slots(caf::actor_system& sys, uint64_t needed, uint64_t max_connections) {
  auto io = net::io_loop_stats_of(sys);
  if (!io || io->wakeup_slots >= needed)
    return {};
  auto pipe_max = net::pipe_max_size();
  return status::error(
    code::too_many_connections,
    "net.max_connections = " + std::to_string(max_connections) + " needs room for "
      + std::to_string(needed) + " actors in the I/O thread's wake-up pipe (" + std::to_string(needed * 8)
      + " bytes), and the kernel gave " + std::to_string(io->wakeup_slots)
      + " (fs.pipe-max-size = " + std::to_string(pipe_max)
      + "): lower net.max_connections (or server.max_queries), or raise fs.pipe-max-size "
        "(sysctl -w fs.pipe-max-size=" + std::to_string(needed * 8) + ")");
}

} // namespace

int run_config_keys(const std::vector<std::string>& args) {
  if (!args.empty()) {
    bool help = args.size() == 1 && (args[0] == "--help" || args[0] == "-h");
    std::fputs("usage: levee config-keys\n  prints every key a node's config file may set, one "
               "a line; <kind> and <name> stand for any name\n",
               help ? stdout : stderr);
    return help ? 0 : 2;
  }
  // From the parsers' own tables, so the list cannot drift from what they accept.
  std::vector<std::string> keys{std::begin(node_keys), std::end(node_keys)};
  for (const auto& part : {limits_config_keys(), net::config_keys(), server::config_keys(),
                           satellite::config_keys(), streams::config_keys(),
                           broker::config_keys(), http::config_keys(), log_config_keys()})
    keys.insert(keys.end(), part.begin(), part.end());
  std::sort(keys.begin(), keys.end());
  for (auto& k : keys)
    std::printf("%s\n", k.c_str());
  return 0;
}

namespace {

/// What a role of the program's own sees of the node (include/levee/node.hpp).
class node_role_context : public role_context {
public:
  node_role_context(caf::actor_system& sys, levee::runtime& rt, const flat_config& cfg,
                    std::shared_ptr<node_stop> stop)
    : sys_(sys), rt_(rt), cfg_(cfg), stop_(std::move(stop)) {
  }

  caf::actor_system& system() override { return sys_; }
  levee::runtime& runtime() override { return rt_; }
  const flat_config& config() const override { return cfg_; }

  result<wire_listener*> serve(const std::string& listen) override {
    auto l = wire_listener::start(sys_, listen, cfg_);
    if (!l)
      return l.error();
    listeners_.push_back(std::move(*l));
    return listeners_.back().get();
  }

  uint16_t port_of(const std::string& role) const override {
    auto i = ports.find(role);
    return i == ports.end() ? 0 : i->second;
  }

  void stop_node(int exit_code, const std::string& why) override {
    stop_->request(exit_code, why);
  }

  /// Stops the program's own roles that started, newest first, then the listeners they
  /// served on (a role that failed to start may have opened one too).
  void stop_roles(const std::vector<const role*>& started) {
    for (auto i = started.rbegin(); i != started.rend(); ++i)
      if ((*i)->stop)
        (*i)->stop();
    listeners_.clear();  // each stops as it goes
  }

  std::map<std::string, uint16_t> ports;  // of the built-in roles

private:
  caf::actor_system& sys_;
  levee::runtime& rt_;
  const flat_config& cfg_;
  std::shared_ptr<node_stop> stop_;
  std::vector<std::unique_ptr<wire_listener>> listeners_;
};

} // namespace

int run_node(const std::vector<std::string>& args) {
  return run_node_with(args, {});
}

int run_node_with(const std::vector<std::string>& args, const std::vector<role>& custom) {
  po::options_description opts{"levee node --config FILE: run the roles the file names"};
  node_args a;
  bool check = false;
  opts.add_options()
    ("help,h", "this text")
    ("config", po::value(&a.config), "INI file (configs/server.ini, configs/satellite-a.ini, ...)")
    ("check", po::bool_switch(&check), "validate the config and exit (0: valid)")
    ("set", po::value(&a.overrides)->composing(),
     "override a key of the file, e.g. --set server.listen=127.0.0.1:7500");
  auto parsed = parse_args("node", opts, args);
  if (parsed.exit_code)
    return *parsed.exit_code;
  if (a.config.empty())
    return usage_error("node", "--config FILE is required");
  auto flat = load_config_with_overrides("node", a.config, a.overrides);
  if (!flat)
    return 2;
  std::set<std::string> roles;
  auto r = flat->find("node.roles");
  if (r == flat->end())
    return config_error("node", "node.roles is missing: server, satellite, broker, or several");
  std::string role_names = "server, satellite, broker";
  for (auto& c : custom)
    role_names += ", " + c.name;
  for (auto& role : split_list(r->second)) {
    bool own = std::any_of(custom.begin(), custom.end(),
                           [&](const levee::role& c) { return c.name == role; });
    if (role != "server" && role != "satellite" && role != "broker" && !own)
      return config_error("node", "node.roles = " + r->second + ": roles are " + role_names);
    roles.insert(role);
  }
  if (roles.empty())
    return config_error("node", "node.roles is empty: " + role_names + ", or several");
  if (auto st = check_sections(*flat, roles, custom); !st)
    return config_error("node", st.message());
  for (auto& c : custom)
    if (roles.count(c.name) && c.check)
      if (auto st = c.check(*flat); !st)
        return config_error("node", st.message());
  auto log_opts = log_from_config(*flat);
  if (!log_opts)
    return config_error("node", log_opts.error().message());
  auto limits = limits_from_config(*flat);
  if (!limits)
    return config_error("node", limits.error().message());
  auto busy_poll = busy_poll_from_config(*flat);
  if (!busy_poll)
    return config_error("node", busy_poll.error().message());
  auto net_cfg = net::listener_from_config(*flat);
  if (!net_cfg)
    return config_error("node", net_cfg.error().message());
  auto http_opts = http::http_from_config(*flat);
  if (!http_opts)
    return config_error("node", http_opts.error().message());
  server::server_options server_opts;
  if (roles.count("server")) {
    auto s = server::server_from_config(*flat);
    if (!s)
      return config_error("node", s.error().message());
    server_opts = *s;
    if (auto st = server::check_with_listener(server_opts, net_cfg->limits.request_deadline_ms); !st)
      return config_error("node", st.message());
  }
  satellite::satellite_config sat_cfg;
  if (roles.count("satellite")) {
    auto s = satellite::satellite_from_config(*flat);
    if (!s)
      return config_error("node", s.error().message());
    sat_cfg = *s;
    // A satellite-only node's multiplexer serves its one connection: the store can sit
    // there. Next to a server it would stall the server's connections with disk work.
    sat_cfg.store_on_multiplexer = roles.count("server") == 0;
  }
  broker::broker_options broker_opts;
  if (roles.count("broker")) {
    auto b = broker::broker_options_from_config(*flat);
    if (!b)
      return config_error("node", b.error().message());
    broker_opts = *b;
  }
  if (check) {
    std::printf("levee node: %s is valid (roles: %s)\n", printable(a.config).c_str(),
                printable(r->second).c_str());
    return 0;
  }

  configure_log(*log_opts);
  auto signals = block_stop_signals();
  net::system_config caf_cfg;
  auto slots = net::wakeup_slots_needed(net_cfg->limits.max_connections,
                                        roles.count("server") ? server_opts.max_queries : 0);
  auto sys = make_system(caf_cfg, *busy_poll, slots);
  if (auto st = check_wakeup_slots(*sys, slots, net_cfg->limits.max_connections); !st)
    return config_error("node", st.message());
  runtime rt{*limits};
  // Before the roles: /readyz answers "starting" while they start.
  auto web = node_http::start(*http_opts, *sys, rt, r->second);
  if (!web) {
    LEVEE_ERROR("node", "%s", printable(web.error().to_string()).c_str());
    return 1;
  }
  if ((*web)->port() != 0) {
    auto host = http_opts->listen.substr(0, http_opts->listen.rfind(':'));
    std::printf("levee node: metrics on http://%s:%u/metrics\n", printable(host).c_str(),
                (*web)->port());
  }
  std::shared_ptr<server::server_node> srv;
  if (roles.count("server")) {
    fit_open_file_limit("node", net_cfg->limits.max_connections, *http_opts);
    auto share = net_cfg->limits.max_connections - net_cfg->limits.reserved_connections;
    if (server_opts.max_satellites > share)  // legal: the registry also keeps disconnected ones
      LEVEE_INFO("node",
                   "server.max_satellites = %llu, but satellites may hold "
                   "only %llu connections (net.max_connections - net.reserved_connections); "
                   "raise net.max_connections for a fleet that large",
                   static_cast<unsigned long long>(server_opts.max_satellites),
                   static_cast<unsigned long long>(share));
    auto s = server::start_server(*sys, rt, server_opts, *net_cfg);
    if (!s) {
      LEVEE_ERROR("node", "%s", printable(s.error().to_string()).c_str());
      return 1;
    }
    srv = *s;
    (*web)->add_server(srv);
    auto host = server_opts.listen.substr(0, server_opts.listen.rfind(':'));
    std::printf("levee node: server listening on %s:%u\n", printable(host).c_str(),
                srv->listener.port);
  }
  std::optional<satellite::satellite_node> sat;
  // Outlives the roles: the agent may call it until stop_satellite returns.
  auto stop = std::make_shared<node_stop>();
  if (roles.count("satellite")) {
    sat_cfg.satellite.on_refused_for_good = [stop](const std::string& why) {
      stop->request(exit_code::refused, "the server refused this satellite for good: " + why);
    };
    auto s = satellite::start_satellite(*sys, rt, sat_cfg, *net_cfg);
    if (!s) {
      LEVEE_ERROR("node", "%s", printable(s.error().to_string()).c_str());
      if (srv)
        server::stop_server(*srv);
      return 1;
    }
    sat = std::move(*s);
    (*web)->add_satellite(sat_cfg.satellite.id, sat_cfg.satellite.server, sat->stats);
    std::printf("levee node: satellite '%s' dialing %s with %zu sources\n",
                sat_cfg.satellite.id.empty() ? "(assigned)"
                                             : printable(sat_cfg.satellite.id).c_str(),
                printable(sat_cfg.satellite.server).c_str(), sat_cfg.sources.size());
  }
  std::shared_ptr<broker::broker_node> brk;
  if (roles.count("broker")) {
    if (!roles.count("server"))
      fit_open_file_limit("node", net_cfg->limits.max_connections, *http_opts);
    auto b = broker::start_broker(*sys, rt, broker_opts, *net_cfg);
    if (!b) {
      LEVEE_ERROR("node", "%s", printable(b.error().to_string()).c_str());
      if (sat)
        satellite::stop_satellite(*sys, *sat);
      if (srv)
        server::stop_server(*srv);
      return 1;
    }
    brk = *b;
    (*web)->add_broker(brk, broker_opts.cluster.has_value());
    auto host = broker_opts.listen.substr(0, broker_opts.listen.rfind(':'));
    std::printf("levee node: broker listening on %s:%u, streams in %s\n",
                printable(host).c_str(), brk->listener.port,
                printable(broker_opts.data_dir).c_str());
  }
  // The program's own roles (include/levee/node.hpp), after the built-in ones.
  node_role_context own{*sys, rt, *flat, stop};
  if (srv)
    own.ports["server"] = srv->listener.port;
  if (brk)
    own.ports["broker"] = brk->listener.port;
  std::vector<const role*> started;
  // Every role, the program's first (newest first), then the built-in ones.
  auto stop_roles = [&] {
    own.stop_roles(started);
    if (brk)
      broker::stop_broker(*brk);
    if (srv)
      server::stop_server(*srv);
    if (sat)
      satellite::stop_satellite(*sys, *sat);
  };
  for (auto& c : custom) {
    if (!roles.count(c.name))
      continue;
    auto st = c.start(own);
    if (!st) {
      LEVEE_ERROR("node", "role %s did not start: %s", printable(c.name).c_str(),
                  printable(st.to_string()).c_str());
      stop_roles();
      return 1;
    }
    started.push_back(&c);
    std::printf("levee node: role %s started\n", printable(c.name).c_str());
  }
  (*web)->started();
  std::fflush(stdout);
  auto sig = wait_for_signal(signals, stop.get());
  int rc = exit_code::ok;
  if (sig == SIGUSR1) {
    rc = stop->exit_code.load();
    std::lock_guard<std::mutex> guard{stop->mtx};
    // A role that asked to stop with 0 finished its work; anything else is a failure.
    LEVEE_LOG(rc == exit_code::ok ? log_level::info : log_level::error, "node",
              "stopping (exit %d): %s", rc, stop->why.c_str());
    std::printf("levee node: stopping (exit %d)\n", rc);
  } else {
    std::printf("levee node: %s: stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
  }
  std::fflush(stdout);
  (*web)->stopping();
  stop_roles();
  std::printf("levee node: stopped\n");
  std::fflush(stdout);
  return rc;
}

int run_local(const std::vector<std::string>& args) {
  po::options_description opts{
    "levee local: a server, two satellites with sample data and a broker in one process"};
  node_args a;
  std::string data_dir, query_text;
  bool exit_after = false, check = false;
  uint64_t rate = 200;
  opts.add_options()
    ("help,h", "this text")
    ("check", po::bool_switch(&check), "validate the config and exit (0: valid)")
    ("config", po::value(&a.config), "INI file with [server], [broker], [stream], [net], [http] (default: listen = 127.0.0.1:7480), [limits] (configs/local.ini)")
    ("set", po::value(&a.overrides)->composing(), "override a key, e.g. --set server.listen=127.0.0.1:0")
    ("data-dir", po::value(&data_dir), "where the satellites keep their stores and the broker its streams (default: a new temporary directory)")
    ("rate", whole_number("rate", &rate, uint64_t{200}, 1, 1'000'000, "events/s"),
     "sample events per second per satellite, 1 to 1000000")
    ("query", po::value(&query_text)->default_value("count by level"),
     "the query shown once the satellites have data")
    ("exit-after-query", po::bool_switch(&exit_after), "exit after showing the query's answer");
  auto parsed = parse_args("local", opts, args);
  if (parsed.exit_code)
    return *parsed.exit_code;
  flat_config flat;
  if (!a.config.empty()) {
    auto f = load_config_with_overrides("local", a.config, a.overrides);
    if (!f)
      return 2;
    flat = std::move(*f);
  } else if (auto st = apply_overrides(flat, a.overrides); !st) {
    return config_error("local", st.message());
  }
  if (auto st = check_sections(flat, {"server", "broker"}, {}); !st)
    return config_error("local", st.message());
  auto log_opts = log_from_config(flat);
  if (!log_opts)
    return config_error("local", log_opts.error().message());
  auto limits = limits_from_config(flat);
  if (!limits)
    return config_error("local", limits.error().message());
  auto busy_poll = busy_poll_from_config(flat);
  if (!busy_poll)
    return config_error("local", busy_poll.error().message());
  auto net_cfg = net::listener_from_config(flat);
  if (!net_cfg)
    return config_error("local", net_cfg.error().message());
  auto server_opts = server::server_from_config(flat);
  if (!server_opts)
    return config_error("local", server_opts.error().message());
  if (auto st = server::check_with_listener(*server_opts, net_cfg->limits.request_deadline_ms); !st)
    return config_error("local", st.message());
  // The broker keeps its streams in <data dir>/broker unless the file says where (the
  // placeholder is replaced once the data directory exists).
  bool broker_dir_given = flat.count("broker.data_dir") != 0;
  if (!broker_dir_given)
    flat["broker.data_dir"] = "broker";
  auto broker_opts = broker::broker_options_from_config(flat);
  if (!broker_opts)
    return config_error("local", broker_opts.error().message());
  // `levee local` serves /metrics unless told otherwise (http.listen = none).
  if (!flat.count("http.listen"))
    flat["http.listen"] = default_local_http_listen;
  auto http_opts = http::http_from_config(flat);
  if (!http_opts)
    return config_error("local", http_opts.error().message());
  if (check) {
    std::printf("levee local: %s is valid\n",
                a.config.empty() ? "the built-in config" : printable(a.config).c_str());
    return 0;
  }
  bool temp_data = data_dir.empty();
  if (temp_data) {
    char tmpl[] = "/tmp/levee-local-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr)
      return config_error("local", "cannot create a temporary data directory in /tmp");
    data_dir = tmpl;
  }

  configure_log(*log_opts);
  auto signals = block_stop_signals();
  net::system_config caf_cfg;
  auto slots = net::wakeup_slots_needed(net_cfg->limits.max_connections, server_opts->max_queries);
  auto sys = make_system(caf_cfg, *busy_poll, slots);
  if (auto st = check_wakeup_slots(*sys, slots, net_cfg->limits.max_connections); !st)
    return config_error("local", st.message());
  runtime rt{*limits};
  fit_open_file_limit("local", net_cfg->limits.max_connections, *http_opts);
  auto web = node_http::start(*http_opts, *sys, rt, "server,broker,satellite");
  if (!web) {
    LEVEE_ERROR("local", "%s (--set http.listen=none runs without it)",
                printable(web.error().to_string()).c_str());
    return 1;
  }
  auto srv = server::start_server(*sys, rt, *server_opts, *net_cfg);
  if (!srv) {
    LEVEE_ERROR("local", "%s", printable(srv.error().to_string()).c_str());
    return 1;
  }
  auto host = server_opts->listen.substr(0, server_opts->listen.rfind(':'));
  auto address = host + ":" + std::to_string((*srv)->listener.port);
  (*web)->add_server(*srv);
  std::printf("levee local: server listening on %s; satellites keep their data in %s\n",
              printable(address).c_str(), printable(data_dir).c_str());
  std::string metrics_address;
  if ((*web)->port() != 0) {
    metrics_address = http_opts->listen.substr(0, http_opts->listen.rfind(':')) + ":"
                      + std::to_string((*web)->port());
    std::printf("levee local: metrics on http://%s/metrics (also /healthz, /readyz)\n",
                printable(metrics_address).c_str());
  }
  if (!broker_dir_given)
    broker_opts->data_dir = (std::filesystem::path(data_dir) / "broker").string();
  auto brk = broker::start_broker(*sys, rt, *broker_opts, *net_cfg);
  if (!brk) {
    LEVEE_ERROR("local", "broker: %s", printable(brk.error().to_string()).c_str());
    server::stop_server(**srv);
    return 1;
  }
  (*web)->add_broker(*brk, broker_opts->cluster.has_value());
  auto broker_host = broker_opts->listen.substr(0, broker_opts->listen.rfind(':'));
  auto broker_address = broker_host + ":" + std::to_string((*brk)->listener.port);
  std::printf("levee local: broker listening on %s; streams in %s\n",
              printable(broker_address).c_str(), printable(broker_opts->data_dir).c_str());
  std::vector<satellite::satellite_node> sats;
  for (auto id : {"a", "b"}) {
    satellite::satellite_config sc;
    sc.satellite.id = id;
    sc.satellite.server = address;
    sc.satellite.satellite_token = server_opts->satellite_token;
    sc.satellite.labels = {{"env", "local"}, {"zone", id}};
    sc.satellite.data_dir = (std::filesystem::path(data_dir) / id).string();
    satellite::source_spec gen;
    gen.name = "sample";
    gen.type = "synthetic";
    gen.synthetic.rate_per_sec = rate;
    gen.synthetic.seed = id[0] == 'a' ? 1 : 2;
    sc.sources.push_back(gen);
    auto s = satellite::start_satellite(*sys, rt, sc, *net_cfg);
    if (!s) {
      LEVEE_ERROR("local", "satellite %s: %s", id,
                  printable(s.error().to_string()).c_str());
      broker::stop_broker(**brk);
      server::stop_server(**srv);
      return 1;
    }
    (*web)->add_satellite(id, address, s->stats);
    sats.push_back(std::move(*s));
  }
  (*web)->started();
  std::fflush(stdout);
  // Show a query answered over the real client path, once both satellites have data.
  base::host_port server;
  std::string unused;
  base::parse_host_port("server.listen", address, server, unused);  // start_server took it
  client_options co;
  co.host = server.host;
  co.port = server.port;
  co.token = net_cfg->token;
  int rc = 0;
  if (!wait_for_satellites(co, {"a", "b"}, 200, seconds(30))) {
    LEVEE_ERROR("local", "the satellites did not register with data within 30 s");
    rc = 1;
  } else {
    std::printf("\n$ levee query --server %s --select env=local '%s'\n", address.c_str(),
                query_text.c_str());
    std::fflush(stdout);
    query_request q;
    q.text = query_text;
    q.selector = {{"env", "local"}};
    rc = run_one_query(co, q, std::cout, std::cerr);
    if (rc == 0) {
      client_options bo = co;
      bo.host = broker_host;
      bo.port = (*brk)->listener.port;
      rc = show_streams(bo, broker_address);
    }
    std::printf("\nlevee local: running; try `levee query --server %s --satellite a "
                "'where level == \"ERROR\" limit 5 fields ts,user,msg'`, `levee satellites "
                "--server %s`, `levee stats --server %s`, `levee pub local.x hello --broker %s`, "
                "`levee sub events --broker %s`%s%s%s; Ctrl-C stops\n",
                address.c_str(), address.c_str(), address.c_str(), broker_address.c_str(),
                broker_address.c_str(), metrics_address.empty() ? "" : ", `curl http://",
                metrics_address.c_str(), metrics_address.empty() ? "" : "/metrics`");
    std::fflush(stdout);
  }
  if (!exit_after && rc == 0) {
    auto sig = wait_for_signal(signals);
    std::printf("levee local: %s: stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
  }
  (*web)->stopping();
  broker::stop_broker(**brk);
  server::stop_server(**srv);
  for (auto& s : sats)
    satellite::stop_satellite(*sys, s);
  if (temp_data)
    std::filesystem::remove_all(data_dir);
  std::printf("levee local: stopped\n");
  std::fflush(stdout);
  return rc;
}

} // namespace levee::apps

namespace levee {

struct node_program::impl {
  std::vector<role> roles;
};

node_program::node_program() : impl_(std::make_unique<impl>()) {
}

node_program::~node_program() = default;

status node_program::add_role(role r) {
  auto bad = [&](const std::string& why) {
    return status::error(code::bad_request, "role '" + r.name + "': " + why);
  };
  bool well_formed = !r.name.empty() && std::all_of(r.name.begin(), r.name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
  if (!well_formed)
    return bad("a role name is letters, digits, _ and -; pick another");
  if (r.name == "server" || r.name == "satellite" || r.name == "broker")
    return bad("is built in; name yours differently");
  if (!r.start)
    return bad("has no start function; give one that spawns its actors and returns");
  static const std::set<std::string> builtin_sections{
    "node", "server", "satellite", "events", "broker", "stream", "metadata", "net", "http",
    "log", "limits"};
  for (auto& section : r.sections) {
    auto top = section.substr(0, section.find('.'));
    if (section.empty() || builtin_sections.count(section) || builtin_sections.count(top)
        || top == "source")
      return bad("section [" + section + "] is the node's own; read a section named after "
                 "your role");
  }
  for (auto& other : impl_->roles) {
    if (other.name == r.name)
      return bad("was added already");
    for (auto& s : other.sections)
      if (std::find(r.sections.begin(), r.sections.end(), s) != r.sections.end())
        return bad("section [" + s + "] is read by role " + other.name + " already");
  }
  impl_->roles.push_back(std::move(r));
  return {};
}

int node_program::main(int argc, char** argv) {
  return run(std::vector<std::string>(argv + std::min(argc, 1), argv + argc));
}

int node_program::run(const std::vector<std::string>& args) {
  return apps::run_node_with(args, impl_->roles);
}

} // namespace levee
