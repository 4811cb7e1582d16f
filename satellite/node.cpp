// A satellite's start and stop: opens the store, recovers the sources' positions, spawns
// the store, the sources and the agent (store.hpp, source.hpp, agent.hpp) and dials the
// server.

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>

#include <caf/all.hpp>

#include "actors/io_loop.hpp"
#include "base/host_port.hpp"
#include "limits/log.hpp"
#include "net/uplink.hpp"
#include "persistence/checkpoint.hpp"
#include "persistence/segment_log.hpp"
#include "persistence/source_positions.hpp"
#include "satellite/agent.hpp"
#include "satellite/satellite.hpp"
#include "satellite/source.hpp"
#include "satellite/store.hpp"

namespace levee::satellite {

using namespace std::chrono;

result<satellite_node> start_satellite(caf::actor_system& sys, runtime& rt,
                                       const satellite_config& cfg,
                                       const net::listener_config& net_cfg) {
  auto& opts = cfg.satellite;
  base::host_port server;
  std::string bad_server;
  if (!base::parse_host_port("satellite.server", opts.server, server, bad_server))
    return status::error(code::bad_request, bad_server);
  auto& [host, port] = server;
  persistence::log_options lo;
  lo.dir = opts.data_dir;
  lo.max_segment_bytes = opts.max_segment_bytes;
  lo.max_segment_age_ms = opts.max_segment_age_ms;
  lo.fsync = persistence::fsync_policy::none;  // the store syncs every fsync_interval_ms
  lo.limits.compress = false;
  lo.read_cache_bytes = opts.read_cache_bytes;
  uint64_t shown = 0;
  lo.on_progress = [&](uint64_t done, uint64_t total) {
    if (total >= (256ull << 20) && (done - shown >= (256ull << 20) || done == total)) {
      LEVEE_INFO("satellite", "recovering the store: %llu / %llu MiB",
                 static_cast<unsigned long long>(done >> 20),
                 static_cast<unsigned long long>(total >> 20));
      shown = done;
    }
  };
  persistence::recovery_report report;
  auto log = persistence::segment_log::open(lo, &report);
  if (!log)
    return status::error(log.error().code(), "cannot open the store in " + opts.data_dir + ": "
                                               + log.error().message());
  if (report.truncated_bytes > 0)
    LEVEE_WARN("satellite", "store recovery cut %llu bytes of a torn write in %s (%s)",
               static_cast<unsigned long long>(report.truncated_bytes),
               report.truncated_file.c_str(), report.truncated_reason.c_str());
  // Where each file_tail stood when the satellite stopped: the positions stored with the
  // events they cover, read from the hint file and the log after it (FORMAT.md "Source
  // positions").
  auto hint_path = (std::filesystem::path(opts.data_dir) / "source-positions").string();
  auto recovered = persistence::recover_positions(**log, hint_path);
  if (!recovered)
    return status::error(recovered.error().code(), "cannot open the store in " + opts.data_dir
                                                     + ": " + recovered.error().message());
  if (!recovered->whole_log_because.empty())
    LEVEE_WARN("satellite", "source positions: %s; read them from the whole "
                            "store instead (%llu found)",
               recovered->whole_log_because.c_str(),
               static_cast<unsigned long long>(recovered->headers_found));
  if (recovered->hint_behind_log_start)
    LEVEE_WARN("satellite", "source positions: the hint %s is older than the "
                            "store's first event; positions stored after it and removed by "
                            "retention are lost", hint_path.c_str());
  std::map<std::string, persistence::file_position> positions;  // of the sources configured
  satellite_node node;
  node.stats = std::make_shared<satellite_stats>();
  // Sources are made before anything starts, so a bad one (a socket path that is a file)
  // fails the start with its reason.
  std::vector<std::pair<std::unique_ptr<events::source>, const source_spec*>> made;
  for (auto& spec : cfg.sources) {
    std::unique_ptr<events::source> src;
    if (spec.type == "file_tail") {
      auto tail = std::make_unique<events::file_tail>(spec.file_tail, cfg.json);
      // With a stored position it carries on from there; start_at_end is for a first start.
      if (auto at = recovered->positions.find(spec.name); at != recovered->positions.end()) {
        LEVEE_INFO("satellite", "source %s: %s", spec.name.c_str(),
                   tail->resume(at->second).c_str());
        positions.insert(*at);
      }
      src = std::move(tail);
    } else if (spec.type == "unix_socket") {
      auto s = events::unix_socket_source::listen(spec.unix_socket, cfg.json,
                                                  "source." + spec.name);
      if (!s)
        return s.error();
      src = std::move(*s);
    } else if (spec.type == "proc") {
      src = std::make_unique<events::proc_metrics>(spec.proc);
    } else if (spec.type == "synthetic") {
      src = std::make_unique<events::synthetic>(spec.synthetic);
    } else {
      // A type the program registered (events/source_registry.hpp); config parsing
      // checked that it exists.
      auto type = events::find_source_type(spec.type);
      if (!type)
        return status::error(code::bad_request, "source." + spec.name + ".type = " + spec.type
                                                  + ": no such source type is registered");
      auto s = type->make(spec.custom);
      if (!s)
        return s.error();
      if (!*s)
        return status::error(code::bad_request, "source." + spec.name + ": the make function of "
                                               "source type '" + spec.type + "' returned no source");
      src = std::move(*s);
    }
    made.emplace_back(std::move(src), &spec);
  }
  // A hint that was not used (damaged, or ahead of the log) is replaced at once, over a
  // synced log, so that a later start cannot take its stale positions for good ones.
  if (!recovered->whole_log_because.empty()) {
    persistence::position_hint hint{(*log)->next_offset(), positions};
    auto synced = (*log)->sync();
    auto written = synced ? persistence::write_position_hint(hint_path, hint) : synced;
    if (!written)
      LEVEE_WARN("satellite", "cannot replace the position hint: %s",
                 written.to_string().c_str());
  }
  // Shared pointers: a function-based actor runs its function later, on its thread.
  std::shared_ptr<persistence::segment_log> shared_log{std::move(*log)};
  auto store_id = opts.id.empty() ? std::string{"unassigned"} : opts.id;
  auto where = cfg.store_on_multiplexer ? io_thread_of(sys) : placement::worker();
  node.store = spawn_store(sys, rt, where,
                           store_setup{shared_log, opts, store_id, node.stats, positions, hint_path});
  for (auto& [src, spec] : made) {
    auto interval = milliseconds(spec->poll_interval_ms != 0 ? spec->poll_interval_ms
                                                             : opts.poll_interval_ms);
    auto at = positions.find(spec->name);
    auto stored = at != positions.end() ? std::optional{at->second} : std::nullopt;
    node.sources.push_back(spawn_source(
      sys, rt,
      source_setup{std::move(src), node.store, interval, opts.poll_max_events, spec->name,
                   node.stats, stored}));
  }
  node.agent = spawn_agent(sys, rt, node.store, opts, node.stats);
  auto ctx = std::make_shared<net::server_context>(net_cfg);
  // The connection speaks to its targets untyped; the store's interface includes what it
  // says (actors/wire_target.hpp).
  ctx->expose("query", caf::actor_cast<caf::actor>(node.store));
  net::uplink_options uo;
  uo.host = host;
  uo.port = port;
  uo.token = net_cfg.token;
  uo.satellite = true;  // counted among the server's satellites, not in its reserve
  uo.connect_timeout = milliseconds(opts.connect_timeout_ms);
  uo.notify = caf::actor_cast<caf::actor>(node.agent);
  node.uplink = net::start_uplink(sys, ctx, uo);
  caf::anon_send(node.agent, uplink_atom::value, node.uplink);
  return node;
}

void stop_satellite(caf::actor_system& sys, satellite_node& node) {
  for (auto& s : node.sources)
    caf::anon_send(s, stop_atom::value);
  if (node.agent)
    caf::anon_send(node.agent, stop_atom::value);
  if (node.store) {
    caf::scoped_actor self{sys};
    self->request(node.store, seconds(30), stop_atom::value)
      .receive([](bool) {}, [](caf::error&) {});
  }
  if (node.uplink)
    caf::anon_send(node.uplink, stop_atom::value);
}

} // namespace levee::satellite
