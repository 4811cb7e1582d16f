// `levee demo`: the limits demonstration. One slow "service" actor (a fixed busy time per
// message) is offered several times what it can handle: flooder actors send events
// fire-and-forget at a paced rate, requester actors keep a window of requests in flight
// and honour retry_after_ms. Every message is accounted for at the end: offered ==
// accepted + rejected, processed == accepted, and every sender was told of every refusal.
// `levee load --target inprocess` (apps/load_inprocess.hpp) is the same actor as a load
// scenario: an open-loop schedule instead of these senders, and the load tool's report.

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/program_options.hpp>
#include <caf/all.hpp>

#include "actors/caf_error.hpp"
#include "actors/limited_actor.hpp"
#include "actors/synthetic.hpp"
#include "apps/cli_common.hpp"
#include "apps/subcommands.hpp"
#include "limits/config_file.hpp"
#include "limits/defaults.hpp"
#include "limits/process_memory.hpp"

namespace levee::apps {

namespace {

namespace po = boost::program_options;
using namespace std::chrono;

std::string with_commas(uint64_t n) {
  auto s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3)
    s.insert(static_cast<size_t>(i), ",");
  return s;
}

} // namespace

int run_demo(const std::vector<std::string>& args) {
  po::options_description opts{"levee demo: flood a slow limited actor past its bounds (levee load --scenario configs/load-inprocess.ini, i.e. --target inprocess, drives the same actor on an open-loop schedule, with percentiles, --json and --html)"};
  std::string config_path;
  std::vector<std::string> overrides;
  double seconds_to_run = 5;
  uint32_t flooders = 4, requesters = 2, window = 64;
  uint64_t service_us = 50, overload = 10;
  size_t payload_bytes = 1024;
  opts.add_options()
    ("help,h", "this text")
    ("config", po::value(&config_path), "INI file with [limits] sections (configs/demo.ini)")
    ("set", po::value(&overrides)->composing(),
     "override a config key, e.g. --set limits.service.mailbox_capacity=64")
    ("seconds", decimal_number("seconds", &seconds_to_run, 5, 0, 3600, "s"),
     "how long to flood, at most 3600 s")
    ("flooders", whole_number("flooders", &flooders, uint32_t{4}, 0, 1000, "actors"),
     "fire-and-forget sender actors, 0 to 1000")
    ("requesters", whole_number("requesters", &requesters, uint32_t{2}, 0, 1000, "actors"),
     "request/response sender actors, 0 to 1000")
    ("window", whole_number("window", &window, uint32_t{64}, 1, 1'000'000, "requests"),
     "requests each requester keeps in flight, 1 to 1000000")
    ("service-us", whole_number("service-us", &service_us, uint64_t{50}, 1, 1'000'000, "us"),
     "CPU time per message, 1 to 1000000 us")
    ("overload", whole_number("overload", &overload, uint64_t{10}, 1, 1000, "times"),
     "flooders offer this many times the service's rate, 1 to 1000")
    ("payload-bytes",
     whole_number("payload-bytes", &payload_bytes, size_t{1024}, 0,
                  defaults::max_message_bytes_ceiling, "bytes"),
     "bytes per message, up to the largest max_message_bytes allowed (1 GiB)");
  if (auto parsed = parse_args("demo", opts, args); parsed.exit_code)
    return *parsed.exit_code;

  flat_config flat;
  if (!config_path.empty()) {
    auto loaded = load_config_file(config_path);
    if (!loaded)
      return config_error("demo", loaded.error().message());
    flat = std::move(*loaded);
  }
  if (auto st = apply_overrides(flat, overrides); !st)
    return config_error("demo", st.message());
  auto limits = limits_from_config(flat);
  if (!limits)
    return config_error("demo", limits.error().message());

  caf::actor_system_config caf_cfg;
  add_error_category(caf_cfg);
  caf_cfg.set("logger.console", caf::atom("none"));
  caf::actor_system sys{caf_cfg};
  runtime rt{*limits};
  auto& svc_limits = limits->for_kind("service");
  auto svc = spawn_limited<busy_service>(sys, rt, "service", microseconds(service_us));

  const double service_rate = 1e6 / static_cast<double>(service_us);
  const uint64_t per_tick = flooders == 0 ? 0
    : std::max<uint64_t>(1, static_cast<uint64_t>(service_rate * static_cast<double>(overload)
                                                  / 100.0 / flooders));
  std::printf("levee demo: service handles ~%s msgs/s (%llu us each); mailbox %s msgs / %s "
              "bytes, max message %s bytes, node budget %s bytes\n",
              with_commas(static_cast<uint64_t>(service_rate)).c_str(),
              static_cast<unsigned long long>(service_us),
              with_commas(svc_limits.mailbox_capacity).c_str(),
              with_commas(svc_limits.mailbox_capacity_bytes).c_str(),
              with_commas(svc_limits.max_message_bytes).c_str(),
              with_commas(limits->memory_budget_bytes).c_str());
  std::printf("offering %s msgs/s fire-and-forget from %u flooders and %u requesters x %u in "
              "flight, %zu-byte payloads, for %.1f s\n",
              with_commas(per_tick * 100 * flooders).c_str(), flooders, requesters, window,
              payload_bytes, seconds_to_run);
  std::fflush(stdout);

  // Rejection log lines go to stderr at the configured rate; the rest are counted.
  std::vector<caf::actor> senders;
  for (uint32_t i = 0; i < flooders; ++i)
    senders.push_back(sys.spawn(paced_flooder, svc, per_tick, payload_bytes, milliseconds(10)));
  for (uint32_t i = 0; i < requesters; ++i)
    senders.push_back(sys.spawn(windowed_requester, svc, window, payload_bytes));

  auto start = steady_clock::now();
  auto deadline = start + duration_cast<steady_clock::duration>(duration<double>(seconds_to_run));
  auto stats = rt.stats_for("service");
  auto last = stats->snapshot();
  while (steady_clock::now() < deadline) {
    std::this_thread::sleep_until(std::min(deadline, steady_clock::now() + seconds(1)));
    auto now = stats->snapshot();
    auto elapsed = duration<double>(steady_clock::now() - start).count();
    std::printf("[%5.1f s] accepted %s  processed %s  rejected %s  queued %s  budget %s bytes\n",
                elapsed, with_commas(now.accepted - last.accepted).c_str(),
                with_commas(now.processed - last.processed).c_str(),
                with_commas(now.rejected_total() - last.rejected_total()).c_str(),
                with_commas(now.queued_messages).c_str(),
                with_commas(rt.budget().in_use()).c_str());
    std::fflush(stdout);
    last = now;
  }

  // Stop the senders, then collect what each offered and was told. Refusals are answered
  // synchronously inside send(), so once a sender has stopped sending, every answer it
  // will ever get for a refusal is already in its mailbox, ahead of the report request.
  uint64_t offered = 0, told = 0;
  {
    caf::scoped_actor self{sys};
    for (auto& s : senders)
      self->request(s, seconds(30), stop_atom::value)
        .receive([](stop_atom) {},
                 [&](caf::error& err) {
                   std::fprintf(stderr, "levee demo: a sender failed: %s\n",
                                sys.render(err).c_str());
                 });
    for (auto& s : senders)
      self->request(s, seconds(30), report_atom::value)
        .receive([&](const load_report& r) {
                   offered += r.first;
                   told += r.second;
                 },
                 [&](caf::error& err) {
                   std::fprintf(stderr, "levee demo: a sender failed: %s\n",
                                sys.render(err).c_str());
                 });
  }
  // Let the service drain what it accepted (bounded: at most mailbox_capacity messages).
  auto drain_deadline = steady_clock::now() + seconds(30);
  while (stats->snapshot().queued_messages > 0 && steady_clock::now() < drain_deadline)
    std::this_thread::sleep_for(milliseconds(5));
  // Requests still in flight when the senders stopped are answered after the stop; they
  // were offered and accepted, and are processed like any other.
  auto s = stats->snapshot();
  auto elapsed = duration<double>(steady_clock::now() - start).count();

  std::printf("\nafter %.1f s:\n", elapsed);
  std::printf("  offered     %14s messages\n", with_commas(offered).c_str());
  std::printf("  accepted    %14s\n", with_commas(s.accepted).c_str());
  std::printf("  processed   %14s  (%.0f msgs/s goodput)\n", with_commas(s.processed).c_str(),
              static_cast<double>(s.processed) / elapsed);
  std::printf("  rejected    %14s\n", with_commas(s.rejected_total()).c_str());
  for (size_t c = 1; c < s.rejected.size(); ++c)
    if (s.rejected[c] > 0)
      std::printf("    %-24s %12s\n", std::string{to_string(static_cast<code>(c))}.c_str(),
                  with_commas(s.rejected[c]).c_str());
  std::printf("  senders were told of %s refusals (%s notices, %s coalesced into them, "
              "and error responses)\n",
              with_commas(told).c_str(), with_commas(s.notices_sent).c_str(),
              with_commas(s.notices_coalesced).c_str());
  std::printf("  max mailbox depth %s msgs / %s bytes (bound %s / %s)\n",
              with_commas(s.max_actor_depth).c_str(), with_commas(s.max_actor_bytes).c_str(),
              with_commas(svc_limits.mailbox_capacity).c_str(),
              with_commas(svc_limits.mailbox_capacity_bytes).c_str());
  std::printf("  node budget high water %s of %s bytes\n",
              with_commas(rt.budget().high_water()).c_str(),
              with_commas(rt.budget().max()).c_str());
  std::printf("  peak RSS %.1f MiB\n", static_cast<double>(levee::peak_rss_bytes()) / (1 << 20));

  bool ok = offered == s.accepted + s.rejected_total() && s.processed == s.accepted
            && told == s.rejected_total() && s.max_actor_depth <= svc_limits.mailbox_capacity;
  if (ok)
    std::printf("every message accounted for: offered = accepted + rejected, processed = "
                "accepted, every refusal told to its sender\n");
  else
    std::fprintf(stderr, "levee demo: ACCOUNTING MISMATCH: offered %llu, accepted %llu, "
                         "rejected %llu, processed %llu, told %llu\n",
                 static_cast<unsigned long long>(offered),
                 static_cast<unsigned long long>(s.accepted),
                 static_cast<unsigned long long>(s.rejected_total()),
                 static_cast<unsigned long long>(s.processed),
                 static_cast<unsigned long long>(told));
  caf::anon_send_exit(svc, caf::exit_reason::user_shutdown);
  for (auto& sender : senders)
    caf::anon_send_exit(sender, caf::exit_reason::user_shutdown);
  return ok ? 0 : 1;
}

} // namespace levee::apps
