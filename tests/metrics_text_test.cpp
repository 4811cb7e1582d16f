// /metrics' families from a StatsReply (apps/metrics_text.hpp): the text format's rules
// (HELP and TYPE once per family, cumulative histogram buckets in seconds, labels), and
// the one table of http/METRICS.md held to what is rendered, both ways; the Grafana
// dashboard uses only documented names.

#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "actors/gate.hpp"
#include "actors/runtime.hpp"
#include "apps/metrics_text.hpp"
#include "http/server.hpp"
#include "net/stats_reply.hpp"
#include "tests/http_support.hpp"

namespace levee::apps {
namespace {

using test::metric_value;

std::string read(const std::string& path) {
  std::ifstream in{path};
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

/// A reply with every part set, as a node with every role fills it.
node_metrics every_part() {
  node_metrics m;
  m.roles = "server,broker,satellite";
  wire::ListenerStats l;
  l.set_connections_open(3);
  l.set_frames_in(10);
  (*l.mutable_rejects_sent())["rate_limited"] = 4;
  (*l.mutable_connections_closed())["slow_consumer"] = 1;
  m.listeners.emplace_back("server", l);
  m.listeners.emplace_back("broker", wire::ListenerStats{});
  auto& s = m.stats;
  s.mutable_io_loop()->set_busy_poll_us(100);
  s.mutable_io_loop()->set_looked_ns(1'500'000'000);
  s.mutable_io_loop()->set_posted_rounds(77);
  s.mutable_io_loop()->set_longest_posted_run(5);
  auto& q = *s.mutable_queries();
  q.set_started(5);
  q.set_partial(2);
  q.set_skipping_satellites(1);
  q.set_satellites_skipped(3);
  auto& d = *q.mutable_duration_us();
  for (uint64_t b : {1000, 10000, 100000})
    d.add_upper_bounds(b);
  for (uint64_t c : {1, 2, 0, 1})
    d.add_counts(c);
  d.set_sum(2'500'000);
  s.mutable_satellites()->set_healthy(2);
  s.mutable_satellites()->set_disconnected(1);
  auto& sat = *s.add_local_satellites();
  sat.set_satellite_id("a");
  sat.set_registered(true);
  sat.set_events_stored(99);
  auto& b = *s.mutable_broker();
  b.set_streams(1);
  (*b.mutable_rejections())["stream_full"] = 2;
  (*b.mutable_rejections_by_limit())["stream.max_bytes"] = 2;
  b.set_isr_shrinks(3);
  auto& p = *b.add_partition_gauges();
  p.set_stream("orders");
  p.set_partition(2);
  p.set_high_water(40);
  p.set_log_end(41);
  p.set_leading(true);
  p.set_replicas(3);
  p.set_isr_size(2);
  p.set_max_follower_lag(7);
  s.mutable_node_budget()->set_max_bytes(1024);
  auto& k = *s.add_kinds();
  k.set_kind("store");
  k.set_actors(2);
  (*k.mutable_rejected())["mailbox_full"] = 6;
  (*k.mutable_rejected_by_limit())["limits.store.mailbox_capacity"] = 6;
  return m;
}

TEST(MetricsText, RendersEachFigureWithItsLabels) {
  auto text = node_metrics_text(every_part());
  EXPECT_EQ(metric_value(text, "levee_node_info{roles=\"server,broker,satellite\"}"), 1);
  EXPECT_EQ(metric_value(text, "levee_connections_open{listener=\"server\"}"), 3);
  EXPECT_EQ(metric_value(text, "levee_connections_open{listener=\"broker\"}"), 0);
  EXPECT_EQ(metric_value(text, "levee_rejects_sent_total{listener=\"server\",code=\"rate_limited\"}"), 4);
  EXPECT_EQ(metric_value(text, "levee_io_loop_busy_poll_seconds"), 0.0001);
  EXPECT_EQ(metric_value(text, "levee_io_loop_looked_seconds_total"), 1.5);
  EXPECT_EQ(metric_value(text, "levee_io_loop_posted_rounds_total"), 77);
  EXPECT_EQ(metric_value(text, "levee_io_loop_longest_posted_run"), 5);
  EXPECT_EQ(metric_value(text, "levee_satellites{state=\"healthy\"}"), 2);
  EXPECT_EQ(metric_value(text, "levee_queries_partial_total"), 2);
  EXPECT_EQ(metric_value(text, "levee_queries_skipping_satellites_total"), 1);
  EXPECT_EQ(metric_value(text, "levee_query_satellites_skipped_total"), 3);
  EXPECT_EQ(metric_value(text, "levee_satellite_events_stored_total{satellite=\"a\"}"), 99);
  EXPECT_EQ(metric_value(text, "levee_satellite_registered{satellite=\"a\"}"), 1);
  EXPECT_EQ(metric_value(text, "levee_broker_rejections_by_limit_total{limit=\"stream.max_bytes\"}"), 2);
  EXPECT_EQ(metric_value(text, "levee_actor_rejections_total{kind=\"store\",code=\"mailbox_full\"}"), 6);
  EXPECT_EQ(metric_value(text, "levee_actor_rejections_by_limit_total{kind=\"store\",limit=\"limits.store.mailbox_capacity\"}"), 6);
  EXPECT_EQ(metric_value(text, "levee_broker_isr_shrinks_total"), 3);
  EXPECT_EQ(metric_value(text, "levee_partition_high_water_offset{stream=\"orders\",partition=\"2\"}"), 40);
  EXPECT_EQ(metric_value(text, "levee_partition_log_end_offset{stream=\"orders\",partition=\"2\"}"), 41);
  EXPECT_EQ(metric_value(text, "levee_partition_leader{stream=\"orders\",partition=\"2\"}"), 1);
  EXPECT_EQ(metric_value(text, "levee_partition_isr_size{stream=\"orders\",partition=\"2\"}"), 2);
  EXPECT_EQ(metric_value(text, "levee_partition_follower_lag_max_messages{stream=\"orders\",partition=\"2\"}"), 7);
  EXPECT_EQ(metric_value(text, "levee_actors{kind=\"store\"}"), 2);
}

TEST(MetricsText, HistogramBucketsAreCumulativeInSeconds) {
  auto text = node_metrics_text(every_part());
  EXPECT_NE(text.find("# TYPE levee_query_duration_seconds histogram\n"), std::string::npos);
  EXPECT_EQ(metric_value(text, "levee_query_duration_seconds_bucket{le=\"0.001\"}"), 1);
  EXPECT_EQ(metric_value(text, "levee_query_duration_seconds_bucket{le=\"0.01\"}"), 3);
  EXPECT_EQ(metric_value(text, "levee_query_duration_seconds_bucket{le=\"0.1\"}"), 3);
  EXPECT_EQ(metric_value(text, "levee_query_duration_seconds_bucket{le=\"+Inf\"}"), 4);
  EXPECT_EQ(metric_value(text, "levee_query_duration_seconds_count"), 4);
  EXPECT_EQ(metric_value(text, "levee_query_duration_seconds_sum"), 2.5);
}

TEST(MetricsText, PartsANodeDoesNotHaveAreLeftOut) {
  node_metrics m;
  m.roles = "satellite";
  auto text = node_metrics_text(m);
  EXPECT_EQ(text.find("levee_queries_started_total"), std::string::npos);
  EXPECT_EQ(text.find("levee_broker_"), std::string::npos);
  EXPECT_EQ(text.find("levee_connections_open"), std::string::npos);
  EXPECT_NE(text.find("levee_node_budget_used_bytes"), std::string::npos);
}

/// A real gate's refusals, through the runtime's snapshot and the node's StatsReply, to
/// /metrics: each by its kind and the limit that refused, the node budget's under its own
/// node-wide key; the {kind, code} family still sums both mailbox limits under one code.
TEST(MetricsText, ActorRejectionsAreCountedByKindAndLimit) {
  manual_clock clock;
  limits_config cfg;
  cfg.memory_budget_bytes = 700;
  auto svc = actor_limits::defaults();
  svc.mailbox_capacity = 2;
  svc.mailbox_capacity_bytes = 500;
  svc.max_message_bytes = 400;
  cfg.default_limits = svc;
  cfg.kinds.emplace("svc", svc);
  ASSERT_TRUE(validate(cfg).ok()) << validate(cfg).to_string();
  runtime rt{cfg, clock};
  auto full = rt.make_gate("svc");
  auto refuse = [](gate& g, uint64_t bytes) {
    auto v = g.admit(gate_ticket{bytes, 0});
    if (!v.accepted())
      g.record_rejection(v);
    return v.which;
  };
  ASSERT_EQ(refuse(*full, 300), gate_limit::none);
  EXPECT_EQ(refuse(*full, 300), gate_limit::mailbox_capacity_bytes);  // 600 > 500 bytes
  ASSERT_EQ(refuse(*full, 100), gate_limit::none);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(refuse(*full, 1), gate_limit::mailbox_capacity);  // 2 messages queued
  auto other = rt.make_gate("svc");
  EXPECT_EQ(refuse(*other, 400), gate_limit::memory_budget_bytes);  // 400 queued + 400 > 700
  node_metrics m;
  m.roles = "server";
  net::fill_runtime_stats(rt.snapshot(), m.stats);
  auto text = node_metrics_text(m);
  auto by_limit = [&](const std::string& limit) {
    return metric_value(text, "levee_actor_rejections_by_limit_total{kind=\"svc\",limit=\""
                                + limit + "\"}");
  };
  EXPECT_EQ(by_limit("limits.svc.mailbox_capacity"), 3);
  EXPECT_EQ(by_limit("limits.svc.mailbox_capacity_bytes"), 1);
  EXPECT_EQ(by_limit("limits.memory_budget_bytes"), 1);
  EXPECT_EQ(by_limit("limits.svc.rate_msgs_per_sec"), std::nullopt);  // never refused: no series
  EXPECT_EQ(metric_value(text, "levee_actor_rejections_total{kind=\"svc\",code=\"mailbox_full\"}"), 4);
  EXPECT_EQ(metric_value(text, "levee_actor_rejections_total{kind=\"svc\",code=\"memory_budget_exhausted\"}"), 1);
}

/// Every family of a full scrape: the node's, the HTTP server's, the process's.
std::string full_scrape() {
  http::exposition e;
  write_node_metrics(every_part(), e);
  http::http_stats hs;
  http::write_http_metrics(hs, http::http_options{}, e);
  http::write_process_metrics(e);
  return e.take();
}

std::set<std::string> families_of(const std::string& text) {
  std::set<std::string> out;
  std::regex type_line{"^# TYPE ([a-z_]+) ([a-z]+)$"};
  std::istringstream in{text};
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, type_line)) {
      EXPECT_TRUE(out.insert(m[1]).second) << "family written twice: " << m[1];
      if (m[2] == "counter") {
        EXPECT_EQ(m[1].str().substr(m[1].length() - 6), "_total") << m[1];
      }
    }
  }
  return out;
}

TEST(MetricsText, EveryFamilyHasHelpTypeAndOneName) {
  auto text = full_scrape();
  auto families = families_of(text);
  EXPECT_GT(families.size(), 60u);
  for (auto& f : families)
    EXPECT_NE(text.find("# HELP " + f + " "), std::string::npos) << f;
  // Every sample line belongs to a family announced before it.
  std::istringstream in{text};
  std::string line, current;
  while (std::getline(in, line)) {
    if (line.rfind("# TYPE ", 0) == 0)
      current = line.substr(7, line.find(' ', 7) - 7);
    if (line.empty() || line[0] == '#')
      continue;
    auto name = line.substr(0, line.find_first_of("{ "));
    EXPECT_EQ(name.rfind(current, 0), 0u) << line << " after family " << current;
  }
}

/// The names of METRICS.md's table: rows starting "| `name` |".
std::set<std::string> documented() {
  std::set<std::string> out;
  std::regex row{"^\\| `([a-z_]+)` \\|"};
  std::istringstream in{read(LEVEE_HTTP_DIR "/METRICS.md")};
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_search(line, m, row))
      out.insert(m[1]);
  }
  return out;
}

TEST(MetricsText, MetricsMdDocumentsExactlyTheRenderedFamilies) {
  auto rendered = families_of(full_scrape());
  auto table = documented();
  for (auto& f : rendered)
    EXPECT_TRUE(table.count(f)) << f << " is rendered but not in http/METRICS.md";
  for (auto& f : table)
    EXPECT_TRUE(rendered.count(f)) << f << " is in http/METRICS.md but never rendered";
}

/// The metric names a Grafana dashboard's expressions use: levee_... and process_...
/// words, a histogram's series (_bucket, _sum, _count) named by their family.
std::set<std::string> dashboard_names(const std::string& json, const std::set<std::string>& table) {
  std::set<std::string> out;
  std::regex name{"\\b((levee|process)_[a-z_]+)"};
  for (std::sregex_iterator it{json.begin(), json.end(), name}, end; it != end; ++it) {
    auto n = (*it)[1].str();
    for (std::string suffix : {"_bucket", "_sum", "_count"})
      if (!table.count(n) && n.size() > suffix.size()
          && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0
          && table.count(n.substr(0, n.size() - suffix.size())))
        n.erase(n.size() - suffix.size());
    out.insert(n);
  }
  return out;
}

TEST(MetricsText, TheGrafanaDashboardUsesOnlyDocumentedMetrics) {
  auto json = read(LEVEE_CONFIGS_DIR "/grafana-levee.json");
  ASSERT_FALSE(json.empty());
  auto table = documented();
  auto names = dashboard_names(json, table);
  EXPECT_GT(names.size(), 15u);
  for (auto& n : names)
    EXPECT_TRUE(table.count(n)) << "the dashboard uses " << n << ", which http/METRICS.md does not list";
}

} // namespace
} // namespace levee::apps
