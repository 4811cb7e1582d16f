// A node's HTTP listener joined to its roles (apps/node_http.hpp), in process over real TCP:
// /readyz through a node's life (starting, a satellite not yet registered and why, ready,
// stopping) and /metrics showing the roles it was told of, then only the process's once
// the roles stop. The same in real processes: http_system_test.cpp.

#include <gtest/gtest.h>

#include <caf/all.hpp>

#include "apps/node_http.hpp"
#include "tests/http_support.hpp"

namespace levee::apps {
namespace {

using test::metric_value;

TEST(NodeHttp, ReadyzFollowsTheNodesLifeAndMetricsItsRoles) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  runtime rt{limits_config{}};
  http::http_options opts;
  opts.listen = "127.0.0.1:0";
  auto web = node_http::start(opts, sys, rt, "satellite");
  ASSERT_TRUE(web) << web.error().message();
  auto port = (*web)->port();
  ASSERT_NE(port, 0);

  auto ready = test::http_get(port, "/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 503);
  EXPECT_EQ(ready->body, "not ready: starting\n");
  EXPECT_EQ(test::http_get(port, "/healthz")->status, 200);  // live while it starts

  auto stats = std::make_shared<satellite::satellite_stats>();
  stats->events_stored = 12;
  (*web)->add_satellite("a", "10.0.0.5:7400", stats);
  (*web)->started();
  ready = test::http_get(port, "/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 503);
  EXPECT_EQ(ready->body, "not ready: satellite a: not registered with 10.0.0.5:7400 yet\n");
  {
    std::lock_guard<std::mutex> guard{stats->mtx};
    stats->last_error = "unauthenticated (13): wrong satellite token";
  }
  ready = test::http_get(port, "/readyz");
  ASSERT_TRUE(ready);
  EXPECT_NE(ready->body.find("last refusal: unauthenticated (13): wrong satellite token"),
            std::string::npos)
    << ready->body;
  stats->registered = true;
  ready = test::http_get(port, "/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200);

  auto m = test::http_get(port, "/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(metric_value(m->body, "levee_node_info{roles=\"satellite\"}"), 1);
  EXPECT_EQ(metric_value(m->body, "levee_satellite_events_stored_total{satellite=\"a\"}"), 12);
  EXPECT_EQ(metric_value(m->body, "levee_satellite_registered{satellite=\"a\"}"), 1);
  EXPECT_NE(m->body.find("# TYPE levee_node_budget_used_bytes gauge"), std::string::npos);

  (*web)->stopping();
  ready = test::http_get(port, "/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 503);
  EXPECT_EQ(ready->body, "not ready: stopping\n");
  m = test::http_get(port, "/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 200);
  EXPECT_EQ(m->body.find("levee_satellite_events_stored_total"), std::string::npos);
  EXPECT_NE(m->body.find("process_cpu_seconds_total"), std::string::npos);
}

TEST(NodeHttp, WithoutListenNothingIsServed) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  runtime rt{limits_config{}};
  auto web = node_http::start(http::http_options{}, sys, rt, "server");
  ASSERT_TRUE(web);
  EXPECT_EQ((*web)->port(), 0);
  (*web)->started();  // and the calls do nothing
  (*web)->stopping();
}

} // namespace
} // namespace levee::apps
