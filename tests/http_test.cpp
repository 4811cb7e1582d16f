// The HTTP listener (http/): the request parser on its own, the text format, and the
// server over real TCP on 127.0.0.1 (every refusal reproduced and counted, keep-alive,
// HEAD, the bound on connections). The node's /metrics families: metrics_text_test.cpp.

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "http/exposition.hpp"
#include "http/options.hpp"
#include "http/request_parser.hpp"
#include "http/server.hpp"
#include "tests/http_support.hpp"

namespace levee::http {
namespace {

using namespace std::chrono_literals;
using test::http_connection;
using test::metric_value;

constexpr uint64_t max_bytes = 8192;

// -- the parser ----------------------------------------------------------------------------

TEST(HttpParser, ParsesAGetWithHeadersAndQueryString) {
  std::string text = "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n";
  auto r = parse_request(text + "GET /next", max_bytes);
  ASSERT_EQ(r.state, parse_state::complete);
  EXPECT_EQ(r.req.method, "GET");
  EXPECT_EQ(r.req.path, "/metrics");
  EXPECT_TRUE(r.req.keep_alive);
  EXPECT_EQ(r.req.bytes, text.size());
}

TEST(HttpParser, AbsoluteFormTargetGivesItsPath) {
  auto r = parse_request("GET http://node:7480/readyz HTTP/1.1\r\n\r\n", max_bytes);
  ASSERT_EQ(r.state, parse_state::complete);
  EXPECT_EQ(r.req.path, "/readyz");
}

TEST(HttpParser, ConnectionCloseAndHttp10) {
  auto close = parse_request("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n", max_bytes);
  EXPECT_FALSE(close.req.keep_alive);
  auto old = parse_request("GET / HTTP/1.0\r\n\r\n", max_bytes);
  EXPECT_FALSE(old.req.keep_alive);
  auto kept = parse_request("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", max_bytes);
  EXPECT_TRUE(kept.req.keep_alive);
}

TEST(HttpParser, IncompleteUntilTheHeadEnds) {
  std::string whole = "GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n";
  for (size_t n = 0; n < whole.size(); ++n)
    EXPECT_EQ(parse_request(whole.substr(0, n), max_bytes).state, parse_state::incomplete) << n;
  EXPECT_EQ(parse_request(whole, max_bytes).state, parse_state::complete);
}

TEST(HttpParser, ABodyIsWaitedForAndCountedInTheRequest) {
  std::string req = "GET /healthz HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel";
  EXPECT_EQ(parse_request(req, max_bytes).state, parse_state::incomplete);
  auto r = parse_request(req + "loGET", max_bytes);
  ASSERT_EQ(r.state, parse_state::complete);
  EXPECT_EQ(r.req.bytes, req.size() + 2);
}

TEST(HttpParser, RequestLineOverTheBoundIs414) {
  std::string line = "GET /" + std::string(max_bytes, 'a');
  auto r = parse_request(std::string_view{line}.substr(0, max_bytes), max_bytes);
  ASSERT_EQ(r.state, parse_state::refused);
  EXPECT_EQ(r.why.status, 414);
  EXPECT_EQ(r.why.code, code::message_too_large);
  EXPECT_STREQ(r.why.limit, "http.max_request_bytes");
  EXPECT_EQ(r.why.max, max_bytes);
}

TEST(HttpParser, HeadersOverTheBoundAre431) {
  std::string req = "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(max_bytes, 'b');
  auto r = parse_request(std::string_view{req}.substr(0, max_bytes), max_bytes);
  ASSERT_EQ(r.state, parse_state::refused);
  EXPECT_EQ(r.why.status, 431);
  EXPECT_STREQ(r.why.limit, "http.max_request_bytes");
}

TEST(HttpParser, ABodyPastTheBoundIs413BeforeItIsRead) {
  std::string head = "GET /metrics HTTP/1.1\r\nContent-Length: 100000\r\n\r\n";
  auto r = parse_request(head, max_bytes);
  ASSERT_EQ(r.state, parse_state::refused);
  EXPECT_EQ(r.why.status, 413);
  EXPECT_EQ(r.why.observed, 100000u + head.size());
  EXPECT_EQ(r.why.max, max_bytes);
}

TEST(HttpParser, MalformedRequestsAre400WithNoLimit) {
  for (const char* bad : {"GET\r\n\r\n", "GET /a b HTTP/1.1\r\n\r\n", "GET / HTTP/2.0\r\n\r\n",
                          "G(T / HTTP/1.1\r\n\r\n", "GET / HTTP/1.1\n\n",
                          "GET / HTTP/1.1\r\nNoColon\r\n\r\n", "GET / HTTP/1.1\r\n folded: x\r\n\r\n",
                          "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
                          "GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
                          "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                          "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                          "GET / HTTP/1.1\r\nHost: a\nX: b\r\n"}) {
    auto r = parse_request(bad, max_bytes);
    ASSERT_EQ(r.state, parse_state::refused) << bad;
    EXPECT_EQ(r.why.status, 400) << bad;
    EXPECT_EQ(r.why.code, code::bad_request) << bad;
    EXPECT_EQ(r.why.limit, nullptr) << bad;
    EXPECT_FALSE(r.why.detail.empty()) << bad;
  }
}

// -- the text format -------------------------------------------------------------------------

TEST(HttpExposition, WritesHelpTypeAndEscapedLabels) {
  exposition e;
  e.family("levee_x_total", "counter", "A help\\text\nover lines.");
  e.sample("levee_x_total", {{"kind", "a\"b\\c\nd"}}, uint64_t{7});
  e.sample("levee_x_total", 0.25);
  EXPECT_EQ(e.text(), "# HELP levee_x_total A help\\\\text\\nover lines.\n"
                      "# TYPE levee_x_total counter\n"
                      "levee_x_total{kind=\"a\\\"b\\\\c\\nd\"} 7\n"
                      "levee_x_total 0.25\n");
  EXPECT_EQ(format_value(1.0 / 0.0), "+Inf");
  EXPECT_EQ(format_value(3.0), "3");
}

TEST(HttpExposition, ProcessFiguresAreThere) {
  exposition e;
  write_process_metrics(e);
  for (const char* name : {"process_cpu_seconds_total", "process_resident_memory_bytes",
                           "process_open_fds", "process_max_fds", "process_start_time_seconds"})
    EXPECT_NE(e.text().find(std::string{"# TYPE "} + name), std::string::npos) << name;
  EXPECT_GT(*metric_value(e.text(), "process_resident_memory_bytes"), 1e5);
}

// -- the config --------------------------------------------------------------------------------

TEST(HttpOptions, OffUnlessListenIsSetAndBadValuesNameTheKey) {
  auto none = http_from_config({});
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->enabled());
  EXPECT_EQ(none->max_connections, 16u);
  EXPECT_EQ(none->max_request_bytes, 8192u);
  EXPECT_EQ(none->request_timeout_ms, 10000u);
  EXPECT_FALSE(http_from_config({{"http.listen", "none"}})->enabled());
  auto set = http_from_config({{"http.listen", "127.0.0.1:0"}, {"http.request_timeout_ms", "2s"},
                               {"http.max_request_bytes", "4KiB"}});
  ASSERT_TRUE(set);
  EXPECT_EQ(set->request_timeout_ms, 2000u);
  EXPECT_EQ(set->max_request_bytes, 4096u);
  auto bad_address = http_from_config({{"http.listen", "7480"}});
  ASSERT_FALSE(bad_address);
  EXPECT_NE(bad_address.error().message().find("http.listen"), std::string::npos);
  auto zero = http_from_config({{"http.max_connections", "0"}});
  ASSERT_FALSE(zero);
  EXPECT_NE(zero.error().message().find("http.max_connections = 0: must be between 1"),
            std::string::npos);
  auto unknown = http_from_config({{"http.port", "1"}});
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message().find("unknown key 'http.port'"), std::string::npos);
}

// -- the server over real TCP --------------------------------------------------------------

struct served {
  std::unique_ptr<server> srv;
  std::shared_ptr<std::atomic<bool>> ready = std::make_shared<std::atomic<bool>>(true);

  explicit served(http_options o = {}) {
    if (o.listen.empty())
      o.listen = "127.0.0.1:0";
    handlers h;
    h.metrics = [](exposition& e) { e.gauge("levee_test_figure", "A test's figure.", uint64_t{42}); };
    auto r = ready;
    h.ready = [r] { return readiness{r->load(), r->load() ? "" : "starting"}; };
    auto s = server::start(o, std::move(h));
    EXPECT_TRUE(s) << s.error().message();
    if (s)
      srv = std::move(*s);
  }
  uint16_t port() const { return srv->port(); }
  uint64_t refusals(int status) const {
    return srv->stats().refusals[refusal_index(status)].load();
  }
};

TEST(HttpServer, ServesMetricsHealthAndReadiness) {
  served s;
  auto m = test::http_get(s.port(), "/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 200);
  EXPECT_EQ(m->header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(metric_value(m->body, "levee_test_figure"), 42);
  // The scrape counts itself; the server's and the process's families follow the node's.
  EXPECT_EQ(metric_value(m->body, "levee_http_requests_total{path=\"/metrics\"}"), 1);
  EXPECT_NE(m->body.find("# TYPE process_cpu_seconds_total counter"), std::string::npos);
  auto h = test::http_get(s.port(), "/healthz");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  EXPECT_EQ(h->body, "ok\n");
  auto r = test::http_get(s.port(), "/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  s.ready->store(false);
  auto nr = test::http_get(s.port(), "/readyz");
  ASSERT_TRUE(nr);
  EXPECT_EQ(nr->status, 503);
  EXPECT_EQ(nr->body, "not ready: starting\n");
  EXPECT_EQ(nr->header("levee-rejection"), "");  // not a refusal: an answer
  EXPECT_EQ(s.srv->stats().not_ready.load(), 1u);
  EXPECT_EQ(s.srv->stats().ok.load(), 3u);
}

TEST(HttpServer, KeepAliveAnswersPipelinedRequestsInOrderAndHeadHasNoBody) {
  served s;
  http_connection c{s.port()};
  ASSERT_TRUE(c.send("GET /healthz HTTP/1.1\r\n\r\nHEAD /metrics HTTP/1.1\r\n\r\n"
                     "GET /readyz HTTP/1.1\r\n\r\n"));
  auto a = c.read_answer();
  ASSERT_TRUE(a);
  EXPECT_EQ(a->body, "ok\n");
  EXPECT_EQ(a->header("connection"), "keep-alive");
  auto b = c.read_answer(10s, /*head_only=*/true);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->status, 200);
  EXPECT_GT(std::stoul(b->header("content-length")), 100u);
  auto r = c.read_answer();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "ready\n");
}

/// The refusal's headers name its code and limit, and the body says what to do.
void expect_refusal(const std::optional<test::http_answer>& a, int status, const char* code,
                    const char* limit) {
  ASSERT_TRUE(a) << status;
  EXPECT_EQ(a->status, status);
  EXPECT_EQ(a->header("levee-rejection"), code);
  EXPECT_EQ(a->header("levee-limit"), limit);
  EXPECT_EQ(a->header("content-type"), "text/plain; charset=utf-8");
  EXPECT_GT(a->body.size(), 20u);
}

TEST(HttpServer, EveryRefusalIsTypedAndCounted) {
  http_options o;
  o.max_request_bytes = 2048;
  served s{o};
  {
    http_connection c{s.port()};
    c.send("GET /" + std::string(4000, 'u') + " HTTP/1.1\r\n\r\n");
    expect_refusal(c.read_answer(), 414, "message_too_large", "http.max_request_bytes");
    EXPECT_TRUE(c.closed_by_peer(5s));
  }
  {
    http_connection c{s.port()};
    c.send("GET /metrics HTTP/1.1\r\nX-Big: " + std::string(4000, 'h') + "\r\n\r\n");
    auto a = c.read_answer();
    expect_refusal(a, 431, "message_too_large", "http.max_request_bytes");
    EXPECT_EQ(a->header("levee-max"), "2048");
  }
  {
    http_connection c{s.port()};
    std::string head = "GET /metrics HTTP/1.1\r\nContent-Length: 10000\r\n\r\n";
    c.send(head);
    auto a = c.read_answer();
    expect_refusal(a, 413, "message_too_large", "http.max_request_bytes");
    EXPECT_EQ(a->header("levee-observed"), std::to_string(10000 + head.size()));
  }
  {
    http_connection c{s.port()};
    c.send("BREW /metrics HTTP/1.1\r\n\r\n");
    auto a = c.read_answer();
    expect_refusal(a, 405, "bad_request", "");
    EXPECT_EQ(a->header("allow"), "GET, HEAD");
    // A well-formed request refused leaves the connection open for the next.
    c.send("GET /nowhere HTTP/1.1\r\n\r\n");
    expect_refusal(c.read_answer(), 404, "not_found", "");
    c.send("GET /healthz HTTP/1.1\r\n\r\n");
    auto ok = c.read_answer();
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->status, 200);
  }
  {
    http_connection c{s.port()};
    c.send("GET /metrics HTTP/9\r\n\r\n");
    expect_refusal(c.read_answer(), 400, "bad_request", "");
  }
  for (int status : {400, 404, 405, 413, 414, 431})
    EXPECT_EQ(s.refusals(status), 1u) << status;
  auto m = test::http_get(s.port(), "/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(metric_value(m->body, "levee_http_refusals_total{status=\"431\",code=\"message_too_large\","
                                  "limit=\"http.max_request_bytes\"}"),
            1);
  EXPECT_EQ(metric_value(m->body, "levee_http_responses_total{status=\"404\"}"), 1);
}

TEST(HttpServer, ASlowRequestIs408AndAnIdleKeepAliveIsClosedQuietly) {
  http_options o;
  o.request_timeout_ms = 300;
  served s{o};
  http_connection slow{s.port()};
  ASSERT_TRUE(slow.send("GET /metr"));
  auto a = slow.read_answer(10s);
  expect_refusal(a, 408, "deadline_exceeded", "http.request_timeout_ms");
  EXPECT_TRUE(slow.closed_by_peer(5s));
  http_connection silent{s.port()};  // never sends: its first request is late too
  expect_refusal(silent.read_answer(10s), 408, "deadline_exceeded", "http.request_timeout_ms");
  http_connection idle{s.port()};
  ASSERT_TRUE(idle.send("GET /healthz HTTP/1.1\r\n\r\n"));
  ASSERT_TRUE(idle.read_answer());
  EXPECT_TRUE(idle.closed_by_peer(10s));  // no answer, just closed
  EXPECT_EQ(s.refusals(408), 2u);
  // Counted just after the close the client saw: wait for it, with a bound.
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (s.srv->stats().idle_closed.load() == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  EXPECT_EQ(s.srv->stats().idle_closed.load(), 1u);
}

TEST(HttpServer, OneConnectionOverTheBoundIs503WithRetryAfterAndTheOthersStillWork) {
  http_options o;
  o.max_connections = 3;
  served s{o};
  std::vector<std::unique_ptr<http_connection>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(std::make_unique<http_connection>(s.port()));
    // Each answered once: accepted and holding its slot before the next connects.
    ASSERT_TRUE(held.back()->send("GET /healthz HTTP/1.1\r\n\r\n"));
    ASSERT_TRUE(held.back()->read_answer());
  }
  http_connection extra{s.port()};
  auto a = extra.read_answer();
  expect_refusal(a, 503, "too_many_connections", "http.max_connections");
  EXPECT_EQ(a->header("retry-after"), "1");
  EXPECT_EQ(a->header("levee-max"), "3");
  EXPECT_EQ(a->header("levee-observed"), "4");
  EXPECT_TRUE(extra.closed_by_peer(5s));
  // The held connections keep being served.
  ASSERT_TRUE(held[0]->send("GET /metrics HTTP/1.1\r\n\r\n"));
  auto m = held[0]->read_answer();
  ASSERT_TRUE(m);
  EXPECT_EQ(metric_value(m->body, "levee_http_refusals_total{status=\"503\",code=\"too_many_connections\","
                                  "limit=\"http.max_connections\"}"),
            1);
  EXPECT_EQ(metric_value(m->body, "levee_http_connections_open"), 3);
  // Once one closes, a new connection is served.
  held.pop_back();
  auto deadline = std::chrono::steady_clock::now() + 10s;
  std::optional<test::http_answer> later;
  while (std::chrono::steady_clock::now() < deadline) {
    later = test::http_get(s.port(), "/healthz");
    if (later && later->status == 200)
      break;
  }
  ASSERT_TRUE(later);
  EXPECT_EQ(later->status, 200);
}

TEST(HttpServer, AnAnswerNotTakenIsClosedAndCounted) {
  // An answer larger than what the kernel's buffers hold, to a client that reads nothing:
  // the server writes what it can, waits request_timeout_ms, then closes.
  http_options o;
  o.listen = "127.0.0.1:0";
  o.request_timeout_ms = 300;
  handlers h;
  h.metrics = [](exposition& e) {
    e.family("levee_big", "gauge", "A large answer.");
    for (uint64_t i = 0; i < 1'000'000; ++i)
      e.sample("levee_big", {{"i", std::to_string(i)}}, i);
  };
  auto s = server::start(o, std::move(h));
  ASSERT_TRUE(s);
  http_connection c{(*s)->port()};
  ASSERT_TRUE(c.send("GET /metrics HTTP/1.1\r\n\r\n"));
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while ((*s)->stats().write_stalls.load() == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);  // a poll's pause, bounded by the deadline
  EXPECT_EQ((*s)->stats().write_stalls.load(), 1u);
  EXPECT_EQ((*s)->stats().connections_open.load(), 0u);
  EXPECT_TRUE(c.closed_by_peer(30s));
}

TEST(HttpServer, ABusyPortIsAClearError) {
  served first;
  http_options o;
  o.listen = "127.0.0.1:" + std::to_string(first.port());
  auto second = server::start(o, {});
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().message().find("cannot listen"), std::string::npos);
}

} // namespace
} // namespace levee::http
