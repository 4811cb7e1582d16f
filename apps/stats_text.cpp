#include "apps/stats_text.hpp"

#include <map>

#include <algorithm>
#include <cstdio>
#include <utility>
#include <vector>

#include "actors/runtime.hpp"
#include "limits/error_code.hpp"
#include "limits/printable.hpp"

namespace levee::apps {

namespace {

using code_counts = google::protobuf::Map<std::string, uint64_t>;

/// The entries of a map by code in code-number order (how people have read them so far);
/// a name this build does not know (a newer server's code) after them, by name.
std::vector<std::pair<std::string, uint64_t>> in_code_order(const code_counts& counts) {
  std::vector<std::pair<std::string, uint64_t>> out(counts.begin(), counts.end());
  auto rank = [](const std::string& name) {
    auto c = code_from_string(name);
    return c ? static_cast<int>(*c) : max_code_number + 1;
  };
  std::sort(out.begin(), out.end(), [&](auto& a, auto& b) {
    return std::make_pair(rank(a.first), a.first) < std::make_pair(rank(b.first), b.first);
  });
  return out;
}

uint64_t count_of(const code_counts& counts, code c) {
  auto i = counts.find(std::string{to_string(c)});
  return i == counts.end() ? 0 : i->second;
}

/// "<title>code n, code n\n", or nothing when no code counted.
std::string by_code_line(const char* title, const code_counts& counts) {
  std::string out;
  for (auto& [name, n] : in_code_order(counts))
    out += (out.empty() ? title : ", ") + printable(name) + " " + std::to_string(n);
  return out.empty() ? out : out + "\n";
}

/// The runtime's part of the reply as the runtime's own snapshot, so that a node's kinds
/// read the same in `levee stats` as in a program that prints its runtime's stats. A
/// code name or limit key this build does not know is left out of the kind's figures.
node_stats_snapshot runtime_snapshot_of(const wire::StatsReply& reply) {
  node_stats_snapshot s;
  s.budget_in_use = reply.node_budget().bytes_in_use();
  s.budget_max = reply.node_budget().max_bytes();
  s.budget_high_water = reply.node_budget().high_water_bytes();
  s.budget_rejections = reply.node_budget().refusals();
  for (auto& k : reply.kinds()) {
    kind_stats_snapshot kind;
    kind.kind = printable(k.kind());
    kind.actors = k.actors();
    kind.accepted = k.accepted();
    kind.processed = k.processed();
    kind.dropped_on_exit = k.dropped_on_exit();
    for (auto& [name, n] : k.rejected())
      if (auto c = code_from_string(name))
        kind.rejected[static_cast<size_t>(*c)] = n;
    for (size_t l = 1; l < kind.rejected_by_limit.size(); ++l) {
      auto i = k.rejected_by_limit().find(gate_limit_key(k.kind(), static_cast<gate_limit>(l)));
      if (i != k.rejected_by_limit().end())
        kind.rejected_by_limit[l] = i->second;
    }
    kind.queued_messages = k.queued_messages();
    kind.queued_bytes = k.queued_bytes();
    kind.max_actor_depth = k.max_actor_depth();
    kind.max_actor_bytes = k.max_actor_bytes();
    kind.notices_sent = k.notices_sent();
    kind.notices_coalesced = k.notices_coalesced();
    s.kinds.push_back(std::move(kind));
  }
  return s;
}

std::string io_loop_line(const wire::IoLoopStats& io) {
  char rounds[128];
  std::snprintf(rounds, sizeof rounds, "; ran %llu rounds of its actors (at most %llu in a row)\n",
                static_cast<unsigned long long>(io.posted_rounds()),
                static_cast<unsigned long long>(io.longest_posted_run()));
  if (io.busy_poll_us() == 0)
    return std::string{"io thread: sleeps as soon as nothing is ready (node.busy_poll_us = 0)"}
           + rounds;
  char line[256];
  std::snprintf(line, sizeof line,
                "io thread: looks %llu us for work before it sleeps (node.busy_poll_us); slept "
                "%llu times; looked %.1f ms without work (%llu empty polls)",
                static_cast<unsigned long long>(io.busy_poll_us()),
                static_cast<unsigned long long>(io.sleeps()),
                static_cast<double>(io.looked_ns()) / 1e6,
                static_cast<unsigned long long>(io.empty_polls()));
  return line + std::string{rounds};
}

/// A time in us as people read it: "250 us", "2.5 ms", "30 s".
std::string duration_label(double us) {
  char text[32];
  if (us < 1000)
    std::snprintf(text, sizeof text, "%.0f us", us);
  else if (us < 1'000'000)
    std::snprintf(text, sizeof text, "%.3g ms", us / 1e3);
  else
    std::snprintf(text, sizeof text, "%.3g s", us / 1e6);
  return text;
}

/// "query durations at the router: 3 <= 250 us, 1 > 30 s; mean 1.2 ms\n": the buckets
/// that counted, or nothing when no query ended yet.
std::string durations_line(const wire::Histogram& h) {
  std::string buckets;
  uint64_t count = 0;
  for (int i = 0; i < h.counts_size(); ++i) {
    if (h.counts(i) == 0)
      continue;
    count += h.counts(i);
    auto last = h.upper_bounds_size() - 1;
    auto bound = i <= last ? "<= " + duration_label(h.upper_bounds(i))
                 : last >= 0 ? "> " + duration_label(h.upper_bounds(last))
                             : std::string{"in all"};
    buckets += (buckets.empty() ? "" : ", ") + std::to_string(h.counts(i)) + " " + bound;
  }
  if (count == 0)
    return {};
  return "query durations at the router: " + buckets + "; mean "
         + duration_label(static_cast<double>(h.sum()) / static_cast<double>(count)) + "\n";
}

} // namespace

std::string stats_text(const wire::StatsReply& reply) {
  auto& n = reply.listener();
  auto num = [](uint64_t v) { return std::to_string(v); };
  std::string out;
  out += "listener: " + num(n.connections_open()) + " connections open ("
         + num(n.satellite_connections()) + " satellites), "
         + num(n.connections_accepted()) + " accepted, " + num(n.connections_refused())
         + " refused; frames in " + num(n.frames_in()) + ", out " + num(n.frames_out())
         + "; requests answered " + num(n.requests_answered()) + ", abandoned "
         + num(n.requests_abandoned()) + "\n";
  out += "flow control: " + num(n.credit_frames_in()) + " credit frames in; input paused "
         + num(n.input_paused_for_slow_reader()) + " times for slow readers; "
         + num(count_of(n.rejects_sent(), code::slow_consumer))
         + " answers or connections refused as slow_consumer\n";
  if (reply.has_io_loop())
    out += io_loop_line(reply.io_loop());
  out += by_code_line("rejects sent: ", n.rejects_sent());
  out += by_code_line("connections closed: ", n.connections_closed());
  auto& q = reply.queries();
  out += "queries: " + num(q.started()) + " started, " + num(q.running()) + " running, "
         + num(q.completed()) + " completed, " + num(q.failed()) + " failed, "
         + num(q.cancelled()) + " cancelled, " + num(q.refused()) + " refused; "
         + num(q.rows_returned()) + " rows, " + num(q.bytes_returned()) + " bytes returned\n";
  if (q.partial() > 0 || q.skipping_satellites() > 0)  // as the by-code lines: only when seen
    out += "answers not whole: " + num(q.partial()) + " cut at server.max_result_bytes; "
           + num(q.skipping_satellites()) + " fan-outs skipped " + num(q.satellites_skipped())
           + " matching satellites that were not healthy\n";
  out += durations_line(q.duration_us());
  if (reply.has_broker()) {
    auto& b = reply.broker();
    out += "broker: " + num(b.streams()) + " streams, " + num(b.partitions())
           + " partitions; " + num(b.publishes()) + " publishes, " + num(b.messages_stored())
           + " messages stored, " + num(b.duplicates()) + " duplicates, " + num(b.acks())
           + " acks; " + num(b.subscriptions()) + " subscriptions (" + num(b.subscriptions_paced())
           + " times paced), " + num(b.batches_sent()) + " batches sent; " + num(b.unacked_refusals()) + " ack = none publishes refused\n";
    out += by_code_line("broker rejections: ", b.rejections());
    std::string by_limit;
    for (auto& [limit, n] : std::map<std::string, uint64_t>{b.rejections_by_limit().begin(),
                                                           b.rejections_by_limit().end()})
      by_limit += (by_limit.empty() ? "broker rejections by limit: " : ", ") + printable(limit)
                  + " " + num(n);
    out += by_limit.empty() ? by_limit : by_limit + "\n";
  }
  out += render_stats(runtime_snapshot_of(reply));
  return out;
}

} // namespace levee::apps
