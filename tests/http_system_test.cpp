// The HTTP listener in real `levee node` processes on 127.0.0.1 (issue 18): a satellite's,
// a server's and a broker's /metrics move with their traffic; /readyz says why a node is
// not ready; every refusal (503, 414, 431, 413, 408, 400, 405, 404) is reproduced over
// real TCP and counted, while the node keeps serving its wire clients; and every metric
// the Grafana dashboard uses exists in a live node's /metrics.

#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/http_support.hpp"
#include "tests/process_support.hpp"

namespace levee {
namespace {

using namespace std::chrono;
using namespace std::chrono_literals;
using test::http_connection;
using test::ini;
using test::metric_value;

const std::string levee_binary = LEVEE_BINARY;
constexpr auto bound = 30s;

/// A `levee node` process with its HTTP listener on a free port (read from its output).
struct node {
  test::child_process proc;
  std::string stderr_path;
  uint16_t http_port = 0;
  uint16_t port = 0;  // the server's or broker's listener

  std::string stderr_text() const { return test::read_file(stderr_path); }
};

class HttpSystem : public ::testing::Test {
protected:
  void SetUp() override { ASSERT_TRUE(dir_.ok()); }

  /// Starts `levee node` on `config` (http.listen 127.0.0.1:0 added), waits for its
  /// metrics line and for `ready_line`; a listener's port is read from that line.
  std::unique_ptr<node> start(const std::string& name, ini config, const std::string& ready_line) {
    config.set("http", "listen", "127.0.0.1:0");
    auto n = std::make_unique<node>();
    auto path = dir_.file(name + ".ini");
    n->stderr_path = dir_.file(name + ".stderr");
    test::write_file(path, config.text());
    if (!n->proc.start({levee_binary, "node", "--config", path}, n->stderr_path)) {
      ADD_FAILURE() << "cannot start " << levee_binary;
      return nullptr;
    }
    auto metrics = n->proc.wait_for_line("metrics on http://127.0.0.1:", bound);
    if (!metrics) {
      ADD_FAILURE() << name << " printed no metrics line; stderr: " << n->stderr_text();
      return nullptr;
    }
    auto at = metrics->rfind(':');
    n->http_port = static_cast<uint16_t>(std::stoul(metrics->substr(at + 1)));
    auto line = n->proc.wait_for_line(ready_line, bound);
    if (!line) {
      ADD_FAILURE() << name << " did not start; stderr: " << n->stderr_text();
      return nullptr;
    }
    auto listening = line->find("listening on ");
    if (listening != std::string::npos) {
      auto colon = line->find(':', listening + 13);
      n->port = static_cast<uint16_t>(std::stoul(line->substr(colon + 1)));
    }
    return n;
  }

  ini server_config() {
    ini c;
    c.set("node", "roles", "server")
      .set("server", "listen", "127.0.0.1:0")
      .set("server", "heartbeat_interval_ms", "50");
    return c;
  }

  ini satellite_config(const std::string& id, const std::string& server, const std::string& file) {
    ini c;
    c.set("node", "roles", "satellite")
      .set("satellite", "id", id)
      .set("satellite", "server", server)
      .set("satellite", "data_dir", dir_.file(id + "-store"))
      .set("satellite", "poll_interval_ms", "10")
      .set("satellite", "heartbeat_interval_ms", "50")
      .set("source.app", "type", "file_tail")
      .set("source.app", "path", file)
      .set("source.app", "start_at_end", "false");
    return c;
  }

  /// Runs the levee CLI to its end: its exit code and stdout.
  std::pair<int, std::string> cli(const std::vector<std::string>& args) {
    test::child_process p;
    std::vector<std::string> argv{levee_binary};
    argv.insert(argv.end(), args.begin(), args.end());
    if (!p.start(argv, dir_.file("cli.stderr")))
      return {-1, ""};
    auto out = p.read_rest(bound);
    return {p.wait_exit(bound).value_or(-1), out};
  }

  /// The ports of a two-member metadata group on loopback.
  struct two_brokers {
    uint16_t raft[2] = {test::probe_free_port(), test::probe_free_port()};
    uint16_t client[2] = {test::probe_free_port(), test::probe_free_port()};
  };

  /// Broker `id` (1 or 2) of that group. It listens where it advertises: the other broker
  /// fetches its replicas and forwards its heartbeats there.
  ini clustered_broker(int id, const two_brokers& p) {
    auto members = "1=127.0.0.1:" + std::to_string(p.raft[0]) + ",2=127.0.0.1:" + std::to_string(p.raft[1]);
    auto address = "127.0.0.1:" + std::to_string(p.client[id - 1]);
    ini c;
    c.set("node", "roles", "broker")
      .set("broker", "listen", address)
      .set("broker", "advertise", address)
      .set("broker", "data_dir", dir_.file("broker-" + std::to_string(id)))
      .set("broker", "id", std::to_string(id))
      .set("broker", "raft_listen", "127.0.0.1:" + std::to_string(p.raft[id - 1]))
      .set("broker", "raft_members", members)
      .set("broker", "session_timeout_ms", "2000")
      .set("broker", "raft_election_timeout_ms", "200");
    return c;
  }

  test::temp_dir dir_{"levee-http-test"};
};

/// Scrapes until `series` satisfies `ok` (a short pause between looks, a deadline):
/// the last value seen.
std::optional<double> wait_for_metric(uint16_t port, const std::string& series,
                                      const std::function<bool(double)>& ok,
                                      milliseconds within = bound) {
  auto deadline = steady_clock::now() + within;
  std::optional<double> last;
  while (steady_clock::now() < deadline) {
    if (auto m = test::http_get(port, "/metrics"); m && m->status == 200) {
      last = metric_value(m->body, series);
      if (last && ok(*last))
        return last;
    }
    std::this_thread::sleep_for(20ms);  // a poll's pause, bounded by the deadline
  }
  return last;
}

/// Scrapes until `series` is `value`: the last value seen.
std::optional<double> wait_for_metric(uint16_t port, const std::string& series, double value) {
  return wait_for_metric(port, series, [value](double v) { return v == value; });
}

/// Asks /readyz until its answer satisfies `ok`: the last answer.
std::optional<test::http_answer> wait_for_readyz(
  uint16_t port, const std::function<bool(const test::http_answer&)>& ok) {
  auto deadline = steady_clock::now() + bound;
  std::optional<test::http_answer> last;
  while (steady_clock::now() < deadline) {
    last = test::http_get(port, "/readyz");
    if (last && ok(*last))
      return last;
    std::this_thread::sleep_for(20ms);  // a poll's pause, bounded by the deadline
  }
  return last;
}

/// Asks /readyz until its status is `status`.
std::optional<test::http_answer> wait_for_readyz(uint16_t port, int status) {
  return wait_for_readyz(port, [status](const test::http_answer& a) { return a.status == status; });
}

/// Asks /readyz until its body holds `text`.
std::optional<test::http_answer> wait_for_readyz(uint16_t port, const std::string& text) {
  return wait_for_readyz(port, [&](const test::http_answer& a) {
    return a.body.find(text) != std::string::npos;
  });
}

std::string lines(int from, int to) {
  std::string out;
  for (int i = from; i < to; ++i)
    out += R"({"ts":"2026-01-01T00:00:00Z","level":"INFO","msg":"line )" + std::to_string(i) + "\"}\n";
  return out;
}

TEST_F(HttpSystem, ServerAndSatelliteMetricsMoveWithTraffic) {
  auto srv = start("server", server_config(), "server listening on");
  ASSERT_TRUE(srv);
  auto server = "127.0.0.1:" + std::to_string(srv->port);
  auto file = dir_.file("app.jsonl");
  test::write_file(file, lines(0, 5));
  auto sat = start("satellite", satellite_config("a", server, file), "dialing");
  ASSERT_TRUE(sat);

  // The satellite's own figures: events stored from its file, registered, ready.
  const std::string stored = "levee_satellite_events_stored_total{satellite=\"a\"}";
  EXPECT_EQ(wait_for_metric(sat->http_port, stored, 5), 5);
  EXPECT_EQ(wait_for_metric(sat->http_port, "levee_satellite_registered{satellite=\"a\"}", 1), 1);
  auto ready = wait_for_readyz(sat->http_port, 200);
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200) << ready->body;
  std::ofstream{file, std::ios::app} << lines(5, 8);
  EXPECT_EQ(wait_for_metric(sat->http_port, stored, 8), 8);

  // The server's: the satellite healthy, then a query counted, timed and its rows.
  EXPECT_EQ(wait_for_metric(srv->http_port, "levee_satellites{state=\"healthy\"}", 1), 1);
  auto before = test::http_get(srv->http_port, "/metrics");
  ASSERT_TRUE(before);
  EXPECT_EQ(metric_value(before->body, "levee_queries_started_total"), 0);
  auto frames_before = metric_value(before->body, "levee_frames_received_total{listener=\"server\"}");
  ASSERT_TRUE(frames_before);
  auto [rc, out] = cli({"query", "--server", server, "--satellite", "a", "count by level"});
  ASSERT_EQ(rc, 0) << out;
  auto after = test::http_get(srv->http_port, "/metrics");
  ASSERT_TRUE(after);
  EXPECT_EQ(metric_value(after->body, "levee_queries_started_total"), 1);
  EXPECT_EQ(metric_value(after->body, "levee_queries_completed_total"), 1);
  // The router times a query when the proxyer's answer reaches it, which may be just
  // after the client has the end: a scrape reads counters as they are, so wait (bounded).
  EXPECT_EQ(wait_for_metric(srv->http_port, "levee_query_duration_seconds_count", 1), 1);
  EXPECT_EQ(metric_value(after->body, "levee_query_rows_returned_total"), 1);  // one group
  EXPECT_GT(*metric_value(after->body, "levee_frames_received_total{listener=\"server\"}"),
            *frames_before);
  EXPECT_EQ(metric_value(after->body, "levee_satellite_connections_open{listener=\"server\"}"), 1);
  EXPECT_EQ(wait_for_metric(sat->http_port, "levee_satellite_queries_total{satellite=\"a\"}", 1),
            1);
}

TEST_F(HttpSystem, BrokerMetricsMoveWithPublishes) {
  ini c;
  c.set("node", "roles", "broker")
    .set("broker", "listen", "127.0.0.1:0")
    .set("broker", "data_dir", dir_.file("broker"));
  auto brk = start("broker", c, "broker listening on");
  ASSERT_TRUE(brk);
  auto ready = wait_for_readyz(brk->http_port, 200);
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200) << ready->body;
  auto broker = "127.0.0.1:" + std::to_string(brk->port);
  auto [rc, out] = cli({"stream", "create", "events", "--subject", "ev.>", "--broker", broker});
  ASSERT_EQ(rc, 0) << out;
  for (int i = 0; i < 3; ++i) {
    auto [prc, pout] = cli({"pub", "ev.a", "hello", "--broker", broker});
    ASSERT_EQ(prc, 0) << pout;
  }
  auto m = test::http_get(brk->http_port, "/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(metric_value(m->body, "levee_broker_streams"), 1);
  EXPECT_EQ(metric_value(m->body, "levee_broker_publishes_total"), 3);
  EXPECT_EQ(metric_value(m->body, "levee_broker_messages_stored_total"), 3);
  EXPECT_EQ(metric_value(m->body, "levee_broker_acks_total"), 3);
  EXPECT_GE(*metric_value(m->body, "levee_connections_accepted_total{listener=\"broker\"}"), 4);
  EXPECT_EQ(metric_value(m->body, "levee_node_info{roles=\"broker\"}"), 1);
  EXPECT_EQ(metric_value(m->body, "levee_queries_started_total"), std::nullopt);  // no server
}

TEST_F(HttpSystem, ReadyzSaysWhyASatelliteIsNotReady) {
  // No server at that port yet: not registered.
  auto port = test::probe_free_port();
  auto server = "127.0.0.1:" + std::to_string(port);
  auto file = dir_.file("app.jsonl");
  test::write_file(file, lines(0, 1));
  auto sat = start("satellite", satellite_config("a", server, file), "dialing");
  ASSERT_TRUE(sat);
  auto not_ready = test::http_get(sat->http_port, "/readyz");
  ASSERT_TRUE(not_ready);
  EXPECT_EQ(not_ready->status, 503);
  EXPECT_EQ(not_ready->header("retry-after"), "1");
  EXPECT_NE(not_ready->body.find("satellite a: not registered with " + server), std::string::npos)
    << not_ready->body;
  auto live = test::http_get(sat->http_port, "/healthz");
  ASSERT_TRUE(live);
  EXPECT_EQ(live->status, 200);  // it serves: live, only not ready

  // A server with another token refuses it "do not retry": a satellite that can never
  // register does not stay up looking live (/healthz 200) to a supervisor; it exits 1,
  // saying what to fix.
  auto c = server_config();
  c.set("server", "listen", server).set("server", "satellite_token", "right");
  auto srv = start("server", c, "server listening on");
  ASSERT_TRUE(srv);
  EXPECT_EQ(sat->proc.wait_exit(bound), 1) << sat->stderr_text();
  EXPECT_NE(sat->stderr_text().find("satellite_token"), std::string::npos) << sat->stderr_text();
}

TEST_F(HttpSystem, AClusteredBrokerIsReadyOnceAMetadataLeaderIsKnown) {
  // Two members: one alone has no quorum, so no leader, so not ready.
  two_brokers ports;
  auto broker = [&](int id) { return clustered_broker(id, ports); };
  auto first = start("broker-1", broker(1), "broker listening on");
  ASSERT_TRUE(first);
  auto alone = wait_for_readyz(first->http_port, std::string{"metadata leader"});
  ASSERT_TRUE(alone);
  EXPECT_EQ(alone->status, 503);
  EXPECT_NE(alone->body.find("no metadata leader known yet"), std::string::npos) << alone->body;
  auto second = start("broker-2", broker(2), "broker listening on");
  ASSERT_TRUE(second);
  auto ready = wait_for_readyz(first->http_port, 200);
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200) << ready->body;
  ready = wait_for_readyz(second->http_port, 200);
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200) << ready->body;
}

TEST_F(HttpSystem, AReplicatedPartitionShowsItsIsrAndOffsetsOnBothBrokers) {
  two_brokers ports;
  auto broker = [&](int id) { return clustered_broker(id, ports); };
  auto first = start("broker-1", broker(1), "broker listening on");
  ASSERT_TRUE(first);
  auto second = start("broker-2", broker(2), "broker listening on");
  ASSERT_TRUE(second);
  for (auto* n : {&*first, &*second}) {
    auto ready = wait_for_readyz(n->http_port, 200);
    ASSERT_TRUE(ready);
    ASSERT_EQ(ready->status, 200) << ready->body;
  }
  auto address = "127.0.0.1:" + std::to_string(ports.client[0]);
  // Both brokers registered in the metadata before an R2 stream can be placed.
  auto deadline = steady_clock::now() + bound;
  std::pair<int, std::string> made{-1, ""};
  while (steady_clock::now() < deadline) {
    made = cli({"stream", "create", "r", "--subject", "r.>", "--replicas", "2", "--min-isr", "2",
                "--broker", address});
    if (made.first == 0)
      break;
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(made.first, 0) << made.second << test::read_file(dir_.file("cli.stderr"));
  const std::string labels = "{stream=\"r\",partition=\"0\"}";
  // Three ack = all publishes: acknowledged once both replicas have them.
  for (int i = 0; i < 3; ++i) {
    auto [rc, out] = cli({"pub", "r.x", "m" + std::to_string(i), "--ack", "all", "--broker", address});
    ASSERT_EQ(rc, 0) << out << test::read_file(dir_.file("cli.stderr"));
  }
  double leaders = 0;
  for (auto* n : {&*first, &*second}) {
    EXPECT_EQ(wait_for_metric(n->http_port, "levee_partition_replicas" + labels, 2), 2);
    EXPECT_EQ(wait_for_metric(n->http_port, "levee_partition_isr_size" + labels, 2), 2);
    // The follower's copy reaches the leader's end; its mark follows on its next fetch.
    EXPECT_EQ(wait_for_metric(n->http_port, "levee_partition_log_end_offset" + labels, 3), 3);
    EXPECT_EQ(wait_for_metric(n->http_port, "levee_partition_high_water_offset" + labels, 3), 3);
    EXPECT_GE(*wait_for_metric(n->http_port, "levee_partition_leader_epoch" + labels, 1), 1);
    auto m = test::http_get(n->http_port, "/metrics");
    ASSERT_TRUE(m);
    auto leads = metric_value(m->body, "levee_partition_leader" + labels);
    ASSERT_TRUE(leads);
    leaders += *leads;
    if (*leads == 1) {
      EXPECT_EQ(wait_for_metric(n->http_port, "levee_partition_follower_lag_max_messages" + labels, 0), 0);
      EXPECT_GE(metric_value(m->body, "levee_broker_fetches_served_total"), 1);
    } else {
      EXPECT_GE(metric_value(m->body, "levee_broker_fetches_applied_total"), 1);
      EXPECT_GE(metric_value(m->body, "levee_broker_copied_bytes_total"), 1);
    }
  }
  EXPECT_EQ(leaders, 1) << "exactly one broker's replica leads";
}

TEST_F(HttpSystem, EveryRefusalOverRealTcpIsCountedAndTheNodeKeepsServing) {
  auto c = server_config();
  c.set("http", "max_connections", "4")
    .set("http", "max_request_bytes", "2KiB")
    .set("http", "request_timeout_ms", "2s");  // longer than the held ones wait here
  auto srv = start("server", c, "server listening on");
  ASSERT_TRUE(srv);
  auto port = srv->http_port;
  auto server = "127.0.0.1:" + std::to_string(srv->port);
  auto refusal = [](const std::optional<test::http_answer>& a, int status, const std::string& code,
                    const std::string& limit) {
    ASSERT_TRUE(a) << "no answer, expected " << status;
    EXPECT_EQ(a->status, status) << a->body;
    EXPECT_EQ(a->header("levee-rejection"), code) << status;
    EXPECT_EQ(a->header("levee-limit"), limit) << status;
    EXPECT_FALSE(a->body.empty()) << status;
  };
  {
    // max_connections held (each answered once, so accepted), then one more: 503.
    std::vector<std::unique_ptr<http_connection>> held;
    for (int i = 0; i < 4; ++i) {
      held.push_back(std::make_unique<http_connection>(port));
      ASSERT_TRUE(held.back()->send("GET /healthz HTTP/1.1\r\n\r\n"));
      ASSERT_TRUE(held.back()->read_answer());
    }
    http_connection extra{port};
    auto a = extra.read_answer();
    refusal(a, 503, "too_many_connections", "http.max_connections");
    EXPECT_EQ(a->header("retry-after"), "1");
    // Meanwhile the held HTTP connections are served, and the node's wire clients.
    ASSERT_TRUE(held[0]->send("GET /readyz HTTP/1.1\r\n\r\n"));
    auto ok = held[0]->read_answer();
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->status, 200);
    auto [rc, out] = cli({"stats", "--server", server, "--json"});
    EXPECT_EQ(rc, 0) << out;
  }
  // Each of the others on a connection of its own (the held ones are closed now; a slot
  // frees when the server reads their EOF, so each waits for its answer).
  auto ask = [&](const std::string& bytes) {
    auto deadline = steady_clock::now() + bound;
    for (;;) {
      http_connection h{port};
      h.send(bytes);
      auto a = h.read_answer();
      if (!a || a->status != 503 || steady_clock::now() > deadline)
        return a;
    }
  };
  refusal(ask("GET /" + std::string(3000, 'u') + " HTTP/1.1\r\n\r\n"), 414, "message_too_large",
          "http.max_request_bytes");
  refusal(ask("GET /metrics HTTP/1.1\r\nCookie: " + std::string(3000, 'c') + "\r\n\r\n"), 431,
          "message_too_large", "http.max_request_bytes");
  refusal(ask("GET /metrics HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n"), 413,
          "message_too_large", "http.max_request_bytes");
  refusal(ask("GET /metrics HTTP/1.1 extra\r\n\r\n"), 400, "bad_request", "");
  refusal(ask("DELETE /metrics HTTP/1.1\r\n\r\n"), 405, "bad_request", "");
  refusal(ask("GET /admin HTTP/1.1\r\n\r\n"), 404, "not_found", "");
  {
    // Slowloris: a request that never ends, a byte at a time.
    http_connection slow{port};
    ASSERT_TRUE(slow.send("GET /metrics HTTP/1.1\r\n"));
    ASSERT_TRUE(slow.send("X-A: 1\r\n"));
    refusal(slow.read_answer(bound), 408, "deadline_exceeded", "http.request_timeout_ms");
  }
  auto m = test::http_get(port, "/metrics");
  for (int tries = 0; m && m->status == 503 && tries < 100; ++tries)
    m = test::http_get(port, "/metrics");
  ASSERT_TRUE(m);
  ASSERT_EQ(m->status, 200);
  auto counted = [&](const std::string& status, const std::string& code, const std::string& limit) {
    return metric_value(m->body, "levee_http_refusals_total{status=\"" + status + "\",code=\"" + code
                                   + "\",limit=\"" + limit + "\"}");
  };
  EXPECT_GE(counted("503", "too_many_connections", "http.max_connections"), 1);
  EXPECT_EQ(counted("414", "message_too_large", "http.max_request_bytes"), 1);
  EXPECT_EQ(counted("431", "message_too_large", "http.max_request_bytes"), 1);
  EXPECT_EQ(counted("413", "message_too_large", "http.max_request_bytes"), 1);
  EXPECT_EQ(counted("408", "deadline_exceeded", "http.request_timeout_ms"), 1);
  EXPECT_EQ(counted("400", "bad_request", ""), 1);
  EXPECT_EQ(counted("405", "bad_request", ""), 1);
  EXPECT_EQ(counted("404", "not_found", ""), 1);
  // And the wire side never noticed: its listener refused nothing.
  EXPECT_EQ(metric_value(m->body, "levee_connections_refused_total{listener=\"server\"}"), 0);
}

TEST_F(HttpSystem, EveryMetricOfTheGrafanaDashboardIsInALiveNodesMetrics) {
  test::child_process local;
  ASSERT_TRUE(local.start({levee_binary, "local", "--set", "server.listen=127.0.0.1:0", "--set",
                           "broker.listen=127.0.0.1:0", "--set", "http.listen=127.0.0.1:0",
                           "--data-dir", dir_.file("local")},
                          dir_.file("local.stderr")));
  auto metrics = local.wait_for_line("metrics on http://127.0.0.1:", bound);
  ASSERT_TRUE(metrics) << test::read_file(dir_.file("local.stderr"));
  auto at = metrics->find("http://127.0.0.1:") + 17;
  auto port = static_cast<uint16_t>(std::stoul(metrics->substr(at)));
  ASSERT_TRUE(local.wait_for_line("levee local: running", bound))
    << test::read_file(dir_.file("local.stderr"));
  auto m = test::http_get(port, "/metrics");
  ASSERT_TRUE(m);
  ASSERT_EQ(m->status, 200);
  std::ifstream in{LEVEE_CONFIGS_DIR "/grafana-levee.json"};
  std::string json{std::istreambuf_iterator<char>{in}, {}};
  std::regex name{"\\b((levee|process)_[a-z_]+)"};
  std::set<std::string> names;
  for (std::sregex_iterator it{json.begin(), json.end(), name}, end; it != end; ++it)
    names.insert((*it)[1]);
  ASSERT_GT(names.size(), 15u);
  for (auto n : names) {
    // A histogram's series live under its family's TYPE line.
    for (std::string suffix : {"_bucket", "_sum", "_count"})
      if (m->body.find("# TYPE " + n + " ") == std::string::npos && n.size() > suffix.size()
          && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0)
        n.erase(n.size() - suffix.size());
    EXPECT_NE(m->body.find("# TYPE " + n + " "), std::string::npos)
      << "the dashboard uses " << n << ", which a live levee local does not serve";
  }
  local.signal(SIGTERM);
  EXPECT_EQ(local.wait_exit(bound), 0);
}

} // namespace
} // namespace levee
