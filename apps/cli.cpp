// `levee query`, `levee satellites`, `levee stats`: clients of a server.

#include <algorithm>
#include <cstdio>
#include <map>
#include <iostream>
#include <optional>
#include <thread>

#include <unistd.h>

#include <boost/program_options.hpp>

#include "apps/cli_common.hpp"
#include "apps/cli_env.hpp"
#include "apps/exit_codes.hpp"
#include "apps/stats_text.hpp"
#include "apps/subcommands.hpp"
#include "base/time_text.hpp"
#include "events/json.hpp"
#include "limits/printable.hpp"
#include "net/satellite.pb.h"

namespace levee::apps {

namespace {

namespace po = boost::program_options;
using namespace std::chrono;

struct server_args {
  std::string server = default_server();
  std::string token;
};

void add_server_options(po::options_description& opts, server_args& a) {
  opts.add_options()
    ("server", po::value(&a.server)->default_value(a.server),
     "the server, host:port (the default is LEVEE_SERVER when set, else 127.0.0.1:7400)")
    ("token", po::value(&a.token), "the server's connection token (net.token), if it has one");
}

std::optional<client_options> client_for(const char* sub, const server_args& a) {
  // A bad address from the environment is named as such: the command line has none.
  const char* env = std::getenv(server_env);
  bool from_env = env != nullptr && a.server == env;
  auto address = address_option(sub, from_env ? server_env : "--server", a.server);
  if (!address)
    return std::nullopt;
  client_options co;
  co.host = address->host;
  co.port = address->port;
  co.token = a.token;
  return co;
}

/// Parses `args` into `opts`' variables, then --server and --token (`a`, which `opts`
/// holds) into client options; nullopt with `*exit_code` set when the command is over
/// (--help printed, or a usage error).
std::optional<client_options> parse_client_args(const char* sub,
                                                const po::options_description& opts,
                                                const std::vector<std::string>& args,
                                                const server_args& a, int* exit_code) {
  auto parsed = parse_args(sub, opts, args);
  if (parsed.exit_code) {
    *exit_code = *parsed.exit_code;
    return std::nullopt;
  }
  auto co = client_for(sub, a);
  if (!co)
    *exit_code = 2;
  return co;
}

/// "cannot reach the server at HOST:PORT: why"; exit_code::unreachable.
int say_unreachable(const char* sub, const client_options& co, const status& st) {
  std::fprintf(stderr, "levee %s: cannot reach the server at %s:%u: %s (--server, LEVEE_SERVER)\n",
               sub, printable(co.host).c_str(), co.port, printable(st.message()).c_str());
  return exit_code::unreachable;
}

/// One unary request to the server into `*answer`; on failure prints why and returns the
/// exit code (unreachable, or refused), else 0.
int ask(const char* sub, const client_options& co, const char* target, std::string payload,
        std::string* answer) {
  client c{co};
  if (auto st = c.connect_with_backoff(seconds(3)); !st)
    return say_unreachable(sub, co, st);
  auto r = c.request(target, std::move(payload), seconds(10));
  if (!r.ok()) {
    std::fprintf(stderr, "levee %s: %s\n", sub, r.rejected->to_string().c_str());
    return exit_code::refused;
  }
  *answer = std::move(*r.payload);
  return exit_code::ok;
}

} // namespace

int run_query(const std::vector<std::string>& args) {
  po::options_description opts{
    "levee query [options] 'QUERY': run a query on satellites through the server\n"
    "  e.g. levee query --satellite a 'where level == \"ERROR\" since 15m limit 10'"};
  server_args a;
  const std::string unset{"\x01"};  // the text may be empty ('' = every event), not absent
  std::string text = unset, satellite, select;
  uint32_t deadline_ms = 0;  // QueryRequest.deadline_ms; the server caps it
  query_output how;
  add_server_options(opts, a);
  opts.add_options()
    ("help,h", "this text")
    ("satellite", po::value(&satellite), "one satellite, by id")
    ("select", po::value(&select), "every healthy satellite with these labels, e.g. env=prod,zone=a")
    ("deadline-ms", whole_number("deadline-ms", &deadline_ms, uint32_t{0}, 0, UINT32_MAX, "ms"),
     "give up after this long, 0 to 4294967295 ms (0: the server's default, which is also "
     "the most it allows)")
    ("json", po::bool_switch(&how.json),
     "everything on stdout as JSON lines: rows, count groups ({\"group\":{...},\"count\":N}) and, "
     "last, the summary ({\"partial\":...,\"reason\":...,\"rows\":N,\"skipped\":[...],"
     "\"stats\":{...}})")
    ("strict", po::bool_switch(&how.strict),
     "exit 6 when the query skipped matching satellites that were not healthy (without it: a "
     "warning on stderr); a partial result is exit 5 either way")
    ("query", po::value(&text), "the query text (query/QUERY.md)");
  po::positional_options_description pos;
  pos.add("query", 1);
  auto parsed = parse_args("query", opts, args, &pos);
  if (parsed.exit_code)
    return *parsed.exit_code;
  if (text == unset)
    return usage_error("query", "the query text is missing (give '' for every event)");
  auto co = client_for("query", a);
  if (!co)
    return 2;
  if (!satellite.empty() && !select.empty())
    return usage_error("query", "--satellite and --select exclude each other");
  // They travel as text (PROTOCOL.md "Text fields"), which the server would refuse.
  if (!is_valid_utf8(satellite))
    return usage_error("query", "--satellite " + satellite + ": must be UTF-8 text");
  if (!is_valid_utf8(select))
    return usage_error("query", "--select " + select + ": must be UTF-8 text");
  query_request q;
  q.text = text;
  q.satellite_id = satellite;
  q.deadline_ms = deadline_ms;
  for (auto& pair : split_list(select)) {
    auto eq = pair.find('=');
    if (eq == std::string::npos || eq == 0)
      return usage_error("query", "--select " + select + ": labels are name=value pairs");
    q.selector[pair.substr(0, eq)] = pair.substr(eq + 1);
  }
  return run_one_query(*co, q, std::cout, std::cerr, how);
}

namespace {

/// What a satellite's store scrub says of it: off, pending (no pass over its closed
/// segments completed yet), ok, or damaged.
const char* store_health(const wire::SatelliteInfo& s) {
  if (s.store_damaged())
    return "damaged";
  if (s.store().scrub_bytes_per_sec() == 0)
    return "off";
  return s.store().scrub_passes() == 0 ? "pending" : "ok";
}

/// The state's name, or its number from a server newer than this build.
std::string state_name(const wire::SatelliteInfo& s) {
  auto& name = wire::SatelliteInfo::State_Name(s.state());
  return name.empty() ? "state " + std::to_string(s.state()) : name;
}

/// The list as a table (and a line per satellite whose store is damaged, and how to get
/// the next page: `next` is the command line without --after), or with `json` as one
/// line of JSON (every field of SatelliteList, by its .proto name; next_after_id says
/// whether more follow).
int print_satellites(const std::string& answer, bool json, const std::string& next = {},
                     bool header = true) {
  wire::SatelliteList list;
  if (!list.ParseFromString(answer)) {
    std::fprintf(stderr, "levee satellites: an answer that does not parse\n");
    return 1;
  }
  if (json) {
    std::printf("%s\n", message_json(list).c_str());
    return 0;
  }
  if (header)
    std::printf("%-16s %-13s %10s %12s %9s %8s %6s %6s %-8s  %s\n", "ID", "STATE", "EVENTS",
                "BYTES", "LAST BEAT", "QUERIES", "LOAD", "CACHE", "STORE", "LABELS");
  for (auto& s : list.satellites()) {
    std::string labels;
    std::map<std::string, std::string> sorted(s.labels().begin(), s.labels().end());
    for (auto& [k, v] : sorted)
      labels += (labels.empty() ? "" : ",") + printable(k) + "=" + printable(v);
    // The share of batch reads the store's read cache served ("-" before any read).
    auto reads = s.store().read_cache_hits() + s.store().read_cache_misses();
    auto cache = reads == 0 ? std::string("-")
                            : std::to_string(s.store().read_cache_hits() * 100 / reads) + "%";
    // What satellites sent is UTF-8, checked; it may still hold control characters.
    std::printf("%-16s %-13s %10llu %12llu %7llums %8u %6.2f %6s %-8s  %s\n",
                printable(s.satellite_id()).c_str(), state_name(s).c_str(),
                static_cast<unsigned long long>(s.store().events()),
                static_cast<unsigned long long>(s.store().bytes()),
                static_cast<unsigned long long>(s.since_heartbeat_ms()), s.queries_running(),
                s.load(), cache.c_str(), store_health(s), labels.c_str());
  }
  if (list.satellites_size() == 0)
    std::printf(list.registered() == 0         ? "(no satellite has registered)\n"
                : list.next_after_id().empty() ? "(none matches)\n"
                                               : "(none on this page)\n");
  for (auto& s : list.satellites())
    if (s.store_damaged())
      std::printf("%s: store damaged: %llu segment%s; last found: %s\n",
                  printable(s.satellite_id()).c_str(),
                  static_cast<unsigned long long>(s.store().scrub_damaged_segments()),
                  s.store().scrub_damaged_segments() == 1 ? "" : "s",
                  printable(s.store().scrub_last_damage()).c_str());
  if (!list.next_after_id().empty() || list.registered() > static_cast<uint64_t>(list.satellites_size()))
    std::printf("-- %d listed; %llu registered: %llu healthy, %llu unhealthy, %llu disconnected\n",
                list.satellites_size(), static_cast<unsigned long long>(list.registered()),
                static_cast<unsigned long long>(list.healthy()),
                static_cast<unsigned long long>(list.unhealthy()),
                static_cast<unsigned long long>(list.disconnected()));
  if (!list.next_after_id().empty() && !next.empty())
    std::printf("-- more: %s --after '%s'  (or --all for every page)\n", next.c_str(),
                printable(list.next_after_id()).c_str());
  return 0;
}

/// `--state healthy,unhealthy` as SatelliteInfo states; nullopt (said) on an unknown one.
std::optional<std::vector<wire::SatelliteInfo::State>> parse_states(const std::string& text) {
  std::vector<wire::SatelliteInfo::State> out;
  for (auto& name : split_list(text)) {
    wire::SatelliteInfo::State st;
    if (!wire::SatelliteInfo::State_Parse(name, &st) || st == wire::SatelliteInfo::unknown) {
      usage_error("satellites", "--state " + name + ": one of healthy, unhealthy, disconnected");
      return std::nullopt;
    }
    out.push_back(st);
  }
  return out;
}

/// Each satellite's state, by id: what `--watch --state-changes` compares.
using state_map = std::map<std::string, wire::SatelliteInfo::State>;

/// `first` (a page the watch was answered with) and every page after it, as states by id;
/// 0, or the exit code after saying why.
int read_states(client& c, const wire::SatellitesRequest& base, const wire::SatelliteList& first,
                state_map& out) {
  out.clear();
  wire::SatelliteList list = first;
  for (;;) {
    for (auto& s : list.satellites())
      out[s.satellite_id()] = s.state();
    if (list.next_after_id().empty())
      return 0;
    wire::SatellitesRequest req = base;
    req.set_after_id(list.next_after_id());
    auto r = c.request("satellites", req.SerializeAsString(), seconds(10));
    if (!r.ok()) {
      std::fprintf(stderr, "levee satellites: %s\n", r.rejected->to_string().c_str());
      return exit_code::refused;
    }
    if (!list.ParseFromString(*r.payload)) {
      std::fprintf(stderr, "levee satellites: an answer that does not parse\n");
      return exit_code::refused;
    }
  }
}

/// One state change of one satellite: joined (not listed before), left (no longer
/// listed: the registry forgot it), or a new state.
struct state_change {
  std::string id;
  std::optional<wire::SatelliteInfo::State> before, after;  // nullopt: not listed
};

/// What changed from `before` to `after`, in id order; states alone (a heartbeat that moved
/// only counters changes nothing here). `wanted` (empty: all) keeps the changes into or
/// out of those states.
std::vector<state_change> changes_between(const state_map& before, const state_map& after,
                                          const std::vector<wire::SatelliteInfo::State>& wanted) {
  auto in_wanted = [&](const std::optional<wire::SatelliteInfo::State>& st) {
    return st && (wanted.empty() || std::find(wanted.begin(), wanted.end(), *st) != wanted.end());
  };
  std::vector<state_change> out;
  auto add = [&](const std::string& id, std::optional<wire::SatelliteInfo::State> b,
                 std::optional<wire::SatelliteInfo::State> a) {
    if (b != a && (in_wanted(b) || in_wanted(a)))
      out.push_back(state_change{id, b, a});
  };
  auto b = before.begin();
  auto a = after.begin();
  while (b != before.end() || a != after.end()) {
    if (a == after.end() || (b != before.end() && b->first < a->first)) {
      add(b->first, b->second, std::nullopt);
      ++b;
    } else if (b == before.end() || a->first < b->first) {
      add(a->first, std::nullopt, a->second);
      ++a;
    } else {
      add(a->first, b->second, a->second);
      ++a;
      ++b;
    }
  }
  return out;
}

std::string state_word(wire::SatelliteInfo::State st) {
  auto& name = wire::SatelliteInfo::State_Name(st);
  return name.empty() ? "state " + std::to_string(st) : name;
}

/// A change as one line: "TIME ID joined, healthy" / "TIME ID healthy -> disconnected" /
/// "TIME ID left (was disconnected)"; with `json` one object: {"time","satellite_id",
/// "change" (joined, state, left), "state", "previous" (null when not listed), "version"}.
void print_change(const state_change& c, uint64_t version, bool json) {
  auto now_ms = duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  auto time = base::format_rfc3339_ms(now_ms);
  const char* kind = !c.before ? "joined" : !c.after ? "left" : "state";
  if (json) {
    auto text_or_null = [](const std::optional<wire::SatelliteInfo::State>& st) {
      std::string out;
      if (st)
        events::append_json_string(out, state_word(*st));
      else
        out = "null";
      return out;
    };
    std::string line = "{\"time\":";
    events::append_json_string(line, time);
    line += ",\"satellite_id\":";
    events::append_json_string(line, c.id);
    line += std::string{",\"change\":\""} + kind + "\",\"state\":" + text_or_null(c.after)
            + ",\"previous\":" + text_or_null(c.before)
            + ",\"version\":" + std::to_string(version) + "}";
    std::printf("%s\n", line.c_str());
    return;
  }
  auto id = printable(c.id);
  if (!c.before)
    std::printf("%s %s joined, %s\n", time.c_str(), id.c_str(), state_word(*c.after).c_str());
  else if (!c.after)
    std::printf("%s %s left (was %s)\n", time.c_str(), id.c_str(), state_word(*c.before).c_str());
  else
    std::printf("%s %s %s -> %s\n", time.c_str(), id.c_str(), state_word(*c.before).c_str(),
                state_word(*c.after).c_str());
}

} // namespace

int run_satellites(const std::vector<std::string>& args) {
  po::options_description opts{"levee satellites: the satellites a server knows, and their state"};
  server_args a;
  bool watch = false;
  bool json = false;
  bool all = false;
  bool state_changes = false;
  uint64_t changes = 0;
  uint32_t limit = 0;
  std::string after, select, states_text;
  add_server_options(opts, a);
  opts.add_options()
    ("json", po::bool_switch(&json),
     "print the list as one line of JSON (with --watch: a line per change; with --all: a "
     "line per page)")
    ("select", po::value(&select),
     "only satellites with these labels, e.g. env=prod,zone=a (from the server's label index)")
    ("state", po::value(&states_text),
     "only satellites in these states: healthy, unhealthy, disconnected (comma-separated)")
    ("limit", whole_number("limit", &limit, uint32_t{0}, 0, 100'000, "satellites"),
     "at most this many per page (0: the server's page, server.max_list_page, also the most "
     "it sends)")
    ("after", po::value(&after),
     "the page after this satellite id (the id a page's last line names)")
    ("all", po::bool_switch(&all), "every page, one after another")
    ("watch", po::bool_switch(&watch),
     "print the (first) page again whenever the list changes (a registration, a heartbeat, "
     "a state change), until interrupted; the server holds each request until then. On a "
     "terminal the table is redrawn in place; otherwise each one is appended")
    ("state-changes", po::bool_switch(&state_changes),
     "with --watch: print only state changes, one line each (a satellite joined, changed "
     "state, or left the list), not the table; heartbeats that change no state print "
     "nothing. Reads every page at each change of the list")
    ("changes", whole_number("changes", &changes, uint64_t{0}, 0, UINT64_MAX, "changes"),
     "with --watch: stop after this many changes (tables after the first, or with "
     "--state-changes lines; 0: never)")
    ("help,h", "this text");
  int exit_code = 0;
  auto co = parse_client_args("satellites", opts, args, a, &exit_code);
  if (!co)
    return exit_code;
  if (watch && all)
    return usage_error("satellites", "--watch and --all exclude each other");
  if (state_changes && !watch)
    return usage_error("satellites", "--state-changes goes with --watch");
  // They travel as text (PROTOCOL.md "Text fields"), which the server would refuse.
  if (!is_valid_utf8(select))
    return usage_error("satellites", "--select " + select + ": must be UTF-8 text");
  if (!is_valid_utf8(after))
    return usage_error("satellites", "--after " + after + ": must be UTF-8 text");
  wire::SatellitesRequest base;
  base.set_limit(limit);
  base.set_after_id(after);
  // The command line of the next page, less its --after.
  std::string next = "levee satellites --server " + a.server;
  for (auto& pair : split_list(select)) {
    auto eq = pair.find('=');
    if (eq == std::string::npos || eq == 0)
      return usage_error("satellites", "--select " + select + ": labels are name=value pairs");
    (*base.mutable_selector())[pair.substr(0, eq)] = pair.substr(eq + 1);
  }
  auto states = parse_states(states_text);
  if (!states)
    return 2;
  // Watching changes, the list is read in every state and --state keeps the changes into
  // or out of those states: a filtered list would show a satellite leaving the filter as
  // leaving the registry.
  if (!state_changes)
    for (auto st : *states)
      base.add_states(st);
  if (!select.empty())
    next += " --select '" + printable(select) + "'";
  if (!states_text.empty())
    next += " --state " + printable(states_text);
  if (limit != 0)
    next += " --limit " + std::to_string(limit);
  if (json)
    next += " --json";
  if (!watch && !all) {
    std::string answer;
    if (int failed = ask("satellites", *co, "satellites", base.SerializeAsString(), &answer))
      return failed;
    return print_satellites(answer, json, next);
  }
  if (all) {
    client c{*co};
    if (auto st = c.connect_with_backoff(seconds(3)); !st)
      return say_unreachable("satellites", *co, st);
    bool first = true;
    for (auto req = base;; first = false) {
      auto r = c.request("satellites", req.SerializeAsString(), seconds(10));
      if (!r.ok()) {
        std::fprintf(stderr, "levee satellites: %s\n", r.rejected->to_string().c_str());
        return 1;
      }
      wire::SatelliteList list;
      if (!list.ParseFromString(*r.payload)) {
        std::fprintf(stderr, "levee satellites: an answer that does not parse\n");
        return 1;
      }
      print_satellites(*r.payload, json, {}, first);
      if (list.next_after_id().empty())
        return 0;
      req.set_after_id(list.next_after_id());
    }
  }
  client c{*co};
  if (auto st = c.connect_with_backoff(seconds(3)); !st)
    return say_unreachable("satellites", *co, st);
  std::optional<uint64_t> version;
  uint64_t printed = 0;
  // On a terminal a new table replaces the last (cursor home, clear the screen); into a
  // pipe or a file each is appended, so nothing is lost to a reader of the log.
  bool redraw = !json && ::isatty(STDOUT_FILENO) == 1;
  std::optional<state_map> known;  // --state-changes: the states last seen
  for (;;) {
    wire::SatellitesRequest req = base;
    if (version) {
      req.set_after_version(*version);
      req.set_wait_ms(10'000);  // the server's default server.max_list_wait_ms
    }
    auto r = c.request("satellites", req.SerializeAsString(), seconds(25));
    if (!r.ok()) {
      auto& why = *r.rejected;
      if (why.code == code::too_many_inflight && why.retry_after_ms > 0) {
        // Others wait for changes already: try again when a place may be free.
        std::fprintf(stderr, "levee satellites: %s\n", why.to_string().c_str());
        std::this_thread::sleep_for(milliseconds(why.retry_after_ms));
        continue;
      }
      std::fprintf(stderr, "levee satellites: %s\n", why.to_string().c_str());
      return 1;
    }
    wire::SatelliteList list;
    if (!list.ParseFromString(*r.payload)) {
      std::fprintf(stderr, "levee satellites: an answer that does not parse\n");
      return 1;
    }
    if (list.version() == 0) {
      std::fprintf(stderr, "levee satellites: this server's list has no version; --watch needs "
                           "a newer server\n");
      return 1;
    }
    if (version && list.version() == *version)
      continue;  // the wait ended with no change
    version = list.version();
    if (state_changes) {
      state_map now;
      if (int failed = read_states(c, base, list, now))
        return failed;
      if (!known) {
        std::fprintf(stderr, "levee satellites: watching %zu satellites for state changes\n",
                     now.size());
      } else {
        for (auto& change : changes_between(*known, now, *states)) {
          print_change(change, *version, json);
          if (changes != 0 && ++printed >= changes) {
            std::fflush(stdout);
            return 0;
          }
        }
        std::fflush(stdout);
      }
      known = std::move(now);
      continue;
    }
    if (!json) {
      if (redraw)
        std::printf("\x1b[H\x1b[2J");
      else if (printed > 0)
        std::printf("\n");
      std::printf("-- version %llu\n", static_cast<unsigned long long>(*version));
    }
    ++printed;
    print_satellites(*r.payload, json, next);
    std::fflush(stdout);
    if (changes != 0 && printed > changes)
      return 0;
  }
}

int run_stats(const std::vector<std::string>& args) {
  po::options_description opts{"levee stats: a server's limits, rejections and queries"};
  server_args a;
  bool json = false;
  add_server_options(opts, a);
  opts.add_options()
    ("json", po::bool_switch(&json),
     "print the stats as one line of JSON: every field of StatsReply (net/satellite.proto) "
     "by its name, counts by code as objects")
    ("help,h", "this text");
  int exit_code = 0;
  auto co = parse_client_args("stats", opts, args, a, &exit_code);
  if (!co)
    return exit_code;
  std::string answer;
  if (int failed = ask("stats", *co, "stats", wire::StatsRequest{}.SerializeAsString(), &answer))
    return failed;
  wire::StatsReply reply;
  if (!reply.ParseFromString(answer)) {
    std::fprintf(stderr, "levee stats: an answer that does not parse\n");
    return 1;
  }
  if (json)
    std::printf("%s\n", message_json(reply).c_str());
  else
    std::fputs(stats_text(reply).c_str(), stdout);
  return 0;
}

} // namespace levee::apps
