// The query router and its proxyers as actors, in process and deterministic
// (deterministic_system.hpp): a fan-out to fake satellites that answer within the credit
// they are lent, a client's cancel reaching every satellite, the query deadline on the
// manual clock, and refusals that name a real config key or none. Each test runs with the
// router (and so its proxyers) on a worker and placed on the I/O loop. A driver actor
// stands where the client's connection stands; fake satellites stand where the
// satellites' connections stand (actors/wire_target.hpp's wire_stream_outlet).

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "events/codec.hpp"
#include "limits/stream_credit.hpp"
#include "net/satellite.pb.h"
#include "query/query.hpp"
#include "server/proxy.hpp"
#include "server/proxyer_protocol.hpp"
#include "tests/deterministic_system.hpp"

namespace levee::server {
namespace {

// The router takes what a connection sends; its proxyers take the query parsed, never
// its bytes again, and speak the connection's outgoing side to the satellites.
static_assert(test::accepts<router_actor, wire_stream_atom, std::string, uint64_t, uint64_t,
                            uint64_t>);
static_assert(test::accepts<router_actor, cancel_atom, uint64_t>);
static_assert(!test::accepts<router_actor, wire_request_atom, std::string>);
static_assert(test::accepts<proxyer_actor, run_query_atom, prepared_ptr, uint64_t, uint64_t,
                            uint64_t, uint64_t>);
static_assert(!test::accepts<proxyer_actor, run_query_atom, std::string, uint64_t, uint64_t,
                             uint64_t, uint64_t>);
static_assert(!test::accepts<proxyer_actor, wire_stream_atom, std::string, uint64_t, uint64_t,
                             uint64_t>);
static_assert(test::accepts<wire_stream_outlet, wire_stream_atom, std::string, std::string,
                            uint64_t, uint64_t, uint64_t>);

/// What a fake satellite saw and did.
struct satellite_seen {
  std::vector<std::string> targets;
  std::vector<wire::QueryRequest> requests;
  std::vector<uint64_t> cancelled;  // stream tags
  uint64_t batches_sent = 0;
  bool tail_last = false;  // send the last batch with the summary (stream_tail), as the store does
};

struct fake_stream {
  wire_stream_sink sink;
  caf::typed_response_promise<stream_tail, std::string> rp;
  stream_credit credit;
  int left = 0;  // batches still to send
};

struct fake_state {
  std::map<uint64_t, fake_stream> streams;  // by tag
};

using fake_self = caf::stateful_actor<fake_state, wire_stream_outlet::base>;

constexpr int rows_per_batch = 2;

/// A satellite's connection as the proxyer sees it: answers a query with `batches` result
/// batches of two rows, sent only within the credit it holds, then its summary (unless
/// `answers` is false: then it waits, like a satellite that hangs).
wire_stream_outlet::behavior_type fake_satellite(fake_self* self, std::string id, int batches,
                                                 bool answers, satellite_seen* out) {
  auto pump = [=](uint64_t tag) {
    auto i = self->state.streams.find(tag);
    if (i == self->state.streams.end())
      return;
    auto& s = i->second;
    stream_tail tail;
    while (s.left > 0 && s.credit.allows_batch()) {
      wire::ResultBatch b;
      b.set_satellite_id(id);
      for (int r = 0; r < rows_per_batch; ++r)
        b.add_events("row");
      auto part = b.SerializeAsString();
      s.credit.take(part.size());
      --s.left;
      ++out->batches_sent;
      if (s.left == 0 && answers && out->tail_last)
        tail.push_back(std::move(part));
      else
        self->send(s.sink, wire_batch_atom::value, tag, std::move(part));
    }
    if (s.left == 0 && answers) {
      wire::QueryStats summary;
      summary.set_events_scanned(static_cast<uint64_t>(batches * rows_per_batch));
      s.rp.deliver(std::move(tail), summary.SerializeAsString());
      self->state.streams.erase(i);
    }
  };
  return {
    [=](wire_stream_atom, const std::string& target, const std::string& payload, uint64_t tag,
        uint64_t credit_batches, uint64_t credit_bytes) -> caf::result<stream_tail, std::string> {
      out->targets.push_back(target);
      out->requests.emplace_back();
      EXPECT_TRUE(out->requests.back().ParseFromString(payload));
      auto& s = self->state.streams[tag];
      s.sink = caf::actor_cast<wire_stream_sink>(self->current_sender());
      s.rp = self->make_response_promise<stream_tail, std::string>();
      s.credit.add(credit_batches, credit_bytes);
      s.left = batches;
      auto rp = s.rp;
      pump(tag);
      return rp;
    },
    [=](credit_atom, uint64_t tag, uint64_t more_batches, uint64_t more_bytes) {
      if (auto i = self->state.streams.find(tag); i != self->state.streams.end()) {
        i->second.credit.add(more_batches, more_bytes);
        pump(tag);
      }
    },
    [=](cancel_atom, uint64_t tag) {
      out->cancelled.push_back(tag);
      if (auto i = self->state.streams.find(tag); i != self->state.streams.end()) {
        i->second.rp.deliver(to_error(rejection::of(code::cancelled).detail("cancelled")));
        self->state.streams.erase(i);
      }
    },
  };
}

/// A satellite's connection whose satellite refuses every query with `refusal`, as a
/// Reject from the satellite reaches the proxyer (the connection turns it into an error).
wire_stream_outlet::behavior_type refusing_satellite(wire_stream_outlet::pointer,
                                                     rejection refusal) {
  return {
    [=](wire_stream_atom, const std::string&, const std::string&, uint64_t, uint64_t,
        uint64_t) -> caf::result<stream_tail, std::string> { return to_error(refusal); },
    [=](credit_atom, uint64_t, uint64_t, uint64_t) {},
    [=](cancel_atom, uint64_t) {},
  };
}

/// A satellite's connection whose satellite answers a `count by n` with `groups` groups,
/// n = first .. first + groups - 1, each counted once, in one batch that comes with its
/// summary (stream_tail).
wire_stream_outlet::behavior_type counting_satellite(wire_stream_outlet::pointer,
                                                     int64_t first, int64_t groups) {
  return {
    [=](wire_stream_atom, const std::string&, const std::string&, uint64_t, uint64_t,
        uint64_t) -> caf::result<stream_tail, std::string> {
      wire::ResultBatch b;
      for (int64_t n = first; n < first + groups; ++n) {
        events::event key;
        key.fields.push_back(events::field{"n", events::value{n}});
        auto& row = *b.add_counts();
        events::encode(key, *row.mutable_key());
        row.set_count(1);
      }
      return {stream_tail{b.SerializeAsString()}, wire::QueryStats{}.SerializeAsString()};
    },
    [=](credit_atom, uint64_t, uint64_t, uint64_t) {},
    [=](cancel_atom, uint64_t) {},
  };
}

/// What the client's connection saw.
struct client_seen {
  std::vector<std::string> batches;  // every batch, in order (alone or in the tail)
  size_t alone = 0;                  // of those, sent as wire_batch messages
  size_t tail = 0;                   // that came with the summary
  std::optional<wire::QueryStats> summary;
  std::optional<rejection> refused;
};

/// Plays the client's connection: sends the router what a connection sends, takes the
/// batches, and sends credit where a connection does (the router until the proxyer sent
/// a batch, then the proxyer).
caf::behavior client(caf::event_based_actor* self, router_actor router, client_seen* out) {
  auto producer = std::make_shared<caf::actor>();
  return {
    [=](wire_stream_atom, std::string& payload, uint64_t rid, uint64_t batches, uint64_t bytes) {
      self->request(router, caf::infinite, wire_stream_atom::value, std::move(payload), rid,
                    batches, bytes)
        .then(
          [=](stream_tail& tail, std::string& bytes) {
            out->tail = tail.size();
            for (auto& part : tail)
              out->batches.push_back(std::move(part));
            out->summary.emplace();
            ASSERT_TRUE(out->summary->ParseFromString(bytes));
          },
          [=](caf::error& err) {
            out->refused = rejection_from(err);
            ASSERT_TRUE(out->refused.has_value()) << self->system().render(err);
          });
    },
    [=](wire_batch_atom, uint64_t, std::string& part) {
      EXPECT_FALSE(out->summary.has_value()) << "a batch after the end";
      *producer = caf::actor_cast<caf::actor>(self->current_sender());
      ++out->alone;
      out->batches.push_back(std::move(part));
    },
    [=](credit_atom, uint64_t rid, uint64_t batches, uint64_t bytes) {
      if (*producer)
        self->send(*producer, credit_atom::value, rid, batches, bytes);
      else
        self->send(router, credit_atom::value, rid, batches, bytes);
    },
    [=](cancel_atom, uint64_t rid) { self->send(router, cancel_atom::value, rid); },
  };
}

constexpr uint64_t deadline_ms = 1'000;  // server.query_deadline_ms here

struct RouterActorTest : ::testing::TestWithParam<bool> {
  test::deterministic_system t;
  server_options opts;
  std::shared_ptr<satellite_routes> routes = std::make_shared<satellite_routes>();
  std::shared_ptr<proxy_stats> stats = std::make_shared<proxy_stats>();
  router_actor router;
  caf::actor conn;
  client_seen out;
  std::vector<wire_stream_outlet> satellites;
  std::vector<std::unique_ptr<satellite_seen>> seen_by;

  void SetUp() override {
    opts.query_deadline_ms = deadline_ms;
    t.start();
  }

  /// `n` healthy satellites sat-0.. with `batches` each, and the router.
  void start(size_t n, int batches, bool answer) {
    std::vector<wire_stream_outlet> made;
    for (size_t i = 0; i < n; ++i) {
      seen_by.push_back(std::make_unique<satellite_seen>());
      made.push_back(t.sys->spawn(fake_satellite, "sat-" + std::to_string(i), batches, answer,
                                  seen_by.back().get()));
    }
    start_with(std::move(made));
  }

  /// These satellites (sat-0.., labelled zone=a, healthy), and the router.
  void start_with(std::vector<wire_stream_outlet> made) {
    for (size_t i = 0; i < made.size(); ++i) {
      satellites.push_back(made[i]);
      routes->put("sat-" + std::to_string(i), {{"zone", "a"}},
                  caf::actor_cast<caf::actor>(made[i]), satellite_health::healthy);
    }
    router = spawn_query_router(*t.sys, *t.rt, t.where(GetParam()), routes, opts, stats,
                                [](wire::StatsReply&) {});
    conn = t.sys->spawn(client, router, &out);
    t.run();
  }

  void TearDown() override {
    caf::anon_send_exit(router, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(conn, caf::exit_reason::user_shutdown);
    for (auto& s : satellites)
      caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
    router = nullptr;
    conn = nullptr;
    satellites.clear();
    t.stop();
  }

  /// A query over every satellite labelled zone=a, as request `rid` with `credit` batches.
  void query(uint64_t rid, uint64_t credit, uint32_t deadline = 0, std::string text = "") {
    wire::QueryRequest req;
    req.set_text(text);
    (*req.mutable_selector())["zone"] = "a";
    req.set_deadline_ms(deadline);
    send_query(req.SerializeAsString(), rid, credit);
  }

  void send_query(std::string payload, uint64_t rid, uint64_t credit) {
    caf::anon_send(conn, wire_stream_atom::value, std::move(payload), rid, credit,
                   uint64_t{1} << 20);
    t.run();
  }

  void grant(uint64_t rid, uint64_t batches) {
    caf::anon_send(conn, credit_atom::value, rid, batches, uint64_t{1} << 20);
    t.run();
  }

  void expect_placement() { EXPECT_EQ(t.placement_mismatch(GetParam()), ""); }
};

TEST_P(RouterActorTest, FansOutToEverySatelliteAndRelaysWithinTheClientsCredit) {
  start(3, 3, true);
  query(1, 4);
  // Every satellite was asked once, with the deadline and "now" the router filled in.
  for (auto& s : seen_by) {
    ASSERT_EQ(s->requests.size(), 1u);
    EXPECT_EQ(s->targets, std::vector<std::string>{"query"});
    EXPECT_EQ(s->requests[0].deadline_ms(), deadline_ms);
    EXPECT_EQ(s->requests[0].now_ms(), t.clock.wall_ms());
  }
  // The client holds credit for four batches: four left, the rest wait in the window.
  EXPECT_EQ(out.batches.size(), 4u);
  EXPECT_FALSE(out.summary.has_value());
  EXPECT_EQ(stats->running.load(), 1u);
  t.advance(7);
  grant(1, 10);
  ASSERT_EQ(out.batches.size(), 9u);
  ASSERT_TRUE(out.summary.has_value()) << (out.refused ? out.refused->to_string() : "");
  // What waited in the window when the satellites were done left with the end.
  EXPECT_EQ(out.alone, 4u);
  EXPECT_EQ(out.tail, 5u);
  EXPECT_EQ(out.summary->rows_returned(), 9u * rows_per_batch);
  EXPECT_EQ(out.summary->events_scanned(), 9u * rows_per_batch);
  EXPECT_EQ(out.summary->satellites(), 3u);
  // Its time is the manual clock's.
  EXPECT_EQ(out.summary->elapsed_us(), 7'000u);
  EXPECT_EQ(stats->durations.sum_us(), 7'000u);
  EXPECT_EQ(stats->completed.load(), 1u);
  EXPECT_EQ(stats->running.load(), 0u);
  std::map<std::string, int> by_satellite;
  for (auto& part : out.batches) {
    wire::ResultBatch b;
    ASSERT_TRUE(b.ParseFromString(part));
    ++by_satellite[b.satellite_id()];
  }
  EXPECT_EQ(by_satellite, (std::map<std::string, int>{{"sat-0", 3}, {"sat-1", 3}, {"sat-2", 3}}));
  expect_placement();
}

// A satellite that sends its last batch with its summary (as the store does when the scan
// ends within its credit): the query it ends answers the client in one message, the batch
// riding with the end; rows and order as if it had come alone.
TEST_P(RouterActorTest, ASatellitesLastBatchLeavesWithTheEndOfTheQueryItEnds) {
  start(1, 3, true);
  seen_by[0]->tail_last = true;
  query(1, 10);
  ASSERT_TRUE(out.summary.has_value()) << (out.refused ? out.refused->to_string() : "");
  EXPECT_EQ(out.batches.size(), 3u);
  EXPECT_EQ(out.alone, 2u);
  EXPECT_EQ(out.tail, 1u);
  EXPECT_EQ(out.summary->rows_returned(), 3u * rows_per_batch);
  EXPECT_EQ(stats->rows.load(), 3u * rows_per_batch);
  EXPECT_EQ(stats->completed.load(), 1u);
  expect_placement();
}

// The client's credit still decides: what it has not taken waits, and leaves with the end
// once it grants more.
TEST_P(RouterActorTest, BatchesThatCameWithTheEndWaitForTheClientsCredit) {
  start(1, 3, true);
  seen_by[0]->tail_last = true;
  query(1, 1);
  EXPECT_EQ(out.batches.size(), 1u);
  EXPECT_FALSE(out.summary.has_value());
  grant(1, 10);
  ASSERT_TRUE(out.summary.has_value()) << (out.refused ? out.refused->to_string() : "");
  EXPECT_EQ(out.batches.size(), 3u);
  EXPECT_EQ(out.alone, 1u);
  EXPECT_EQ(out.tail, 2u);
  expect_placement();
}

// In a fan-out, a satellite's last batch that came with its summary goes to the client at
// once: the query is not over while another satellite still scans.
TEST_P(RouterActorTest, AFanOutRelaysASatellitesLastBatchWithoutWaitingForTheOthers) {
  seen_by.push_back(std::make_unique<satellite_seen>());
  seen_by.push_back(std::make_unique<satellite_seen>());
  seen_by[0]->tail_last = true;
  std::vector<wire_stream_outlet> made;
  made.push_back(t.sys->spawn(fake_satellite, "sat-0", 2, true, seen_by[0].get()));
  // sat-1 sends nothing and does not answer: nothing of its own moves the outbox.
  made.push_back(t.sys->spawn(fake_satellite, "sat-1", 0, false, seen_by[1].get()));
  start_with(std::move(made));
  query(1, 10);
  EXPECT_FALSE(out.summary.has_value());
  EXPECT_EQ(out.batches.size(), 2u);
  EXPECT_EQ(out.alone, 2u);
  for (auto& part : out.batches) {
    wire::ResultBatch b;
    ASSERT_TRUE(b.ParseFromString(part));
    EXPECT_EQ(b.satellite_id(), "sat-0");
  }
  caf::anon_send(conn, cancel_atom::value, uint64_t{1});
  t.run();
  ASSERT_TRUE(out.refused.has_value());
  EXPECT_EQ(out.refused->code, code::cancelled);
  expect_placement();
}

// Issue 14: a fan-out to thousands of satellites, wider than the query's window (they take
// turns for credit), delivers every batch, and lending costs about one look per batch and
// per satellite, not a look at every satellite per batch (which made a fan-out to 10,000
// satellites take 1.7 s on the I/O thread).
TEST_P(RouterActorTest, AFanOutWiderThanTheWindowLendsInTurnAtACostFlatPerBatch) {
  constexpr size_t n = 2'000;
  constexpr int batches = 2;
  start(n, batches, true);
  query(1, 1u << 20);
  ASSERT_TRUE(out.summary.has_value()) << (out.refused ? out.refused->to_string() : "");
  EXPECT_EQ(out.batches.size(), n * batches);
  EXPECT_EQ(out.summary->satellites(), n);
  EXPECT_EQ(out.summary->rows_returned(), n * batches * rows_per_batch);
  for (auto& s : seen_by)
    ASSERT_EQ(s->batches_sent, batches);
  // Each satellite is looked at when it is asked and after each batch it sends.
  EXPECT_LE(stats->credit_looks.load(), 2 * n * (batches + 1)) << "lending scans the fan-out";
  expect_placement();
}

TEST_P(RouterActorTest, AClientCancelReachesEverySatellite) {
  start(3, 1, false);
  query(5, 10);
  ASSERT_EQ(out.batches.size(), 3u);
  ASSERT_FALSE(out.summary.has_value());
  caf::anon_send(conn, cancel_atom::value, uint64_t{5});
  t.run();
  ASSERT_TRUE(out.refused.has_value());
  EXPECT_EQ(out.refused->code, code::cancelled);
  EXPECT_EQ(out.refused->limit, "");  // no limit refused it
  for (auto& s : seen_by)
    EXPECT_EQ(s->cancelled.size(), 1u);
  EXPECT_EQ(stats->cancelled.load(), 1u);
  EXPECT_EQ(stats->running.load(), 0u);
  expect_placement();
}

TEST_P(RouterActorTest, AQueryEndsAtItsDeadlineOnTheManualClock) {
  start(2, 1, false);
  query(2, 10);
  ASSERT_EQ(out.batches.size(), 2u);
  t.advance(deadline_ms - 1);
  EXPECT_FALSE(out.refused.has_value()) << "ended before its deadline";
  t.advance(1);
  ASSERT_TRUE(out.refused.has_value());
  EXPECT_EQ(out.refused->code, code::deadline_exceeded);
  EXPECT_EQ(out.refused->limit, "server.query_deadline_ms");
  EXPECT_EQ(out.refused->max, deadline_ms);
  for (auto& s : seen_by)
    EXPECT_EQ(s->cancelled.size(), 1u);
  EXPECT_EQ(stats->failed.load(), 1u);
  EXPECT_EQ(stats->running.load(), 0u);
  expect_placement();
}

TEST_P(RouterActorTest, RefusalsNameTheKeyThatRefusedOrNone) {
  opts.max_queries = 1;
  start(1, 1, false);
  send_query("\xff not a query request", 1, 10);
  ASSERT_TRUE(out.refused.has_value());
  EXPECT_EQ(out.refused->code, code::bad_request);
  EXPECT_EQ(out.refused->limit, "");
  out.refused.reset();
  query(2, 10);
  ASSERT_FALSE(out.refused.has_value());
  query(3, 10);
  ASSERT_TRUE(out.refused.has_value());
  EXPECT_EQ(out.refused->code, code::too_many_inflight);
  EXPECT_EQ(out.refused->limit, "server.max_queries");
  EXPECT_EQ(out.refused->observed, 2u);
  EXPECT_EQ(out.refused->max, 1u);
  EXPECT_EQ(stats->refused.load(), 2u);
}

TEST_P(RouterActorTest, ASatellitesRefusalReachesTheClientWithEveryField) {
  // What a satellite's Reject says (here: its own bound on concurrent scans) reaches the
  // client field by field; only the detail gains the satellite's name.
  rejection said = rejection::of(code::too_many_inflight)
                     .limit("satellite.max_concurrent_queries")
                     .observed(9)
                     .max(8)
                     .retry_after_ms(50)
                     .detail("the satellite scans its maximum of queries");
  start_with({t.sys->spawn(refusing_satellite, said)});
  query(1, 10);
  ASSERT_TRUE(out.refused.has_value());
  EXPECT_EQ(out.refused->code, code::too_many_inflight);
  EXPECT_EQ(out.refused->limit, "satellite.max_concurrent_queries");
  EXPECT_EQ(out.refused->observed, 9u);
  EXPECT_EQ(out.refused->max, 8u);
  EXPECT_EQ(out.refused->retry_after_ms, 50u);
  EXPECT_EQ(out.refused->detail, "satellite 'sat-0': the satellite scans its maximum of queries");
  EXPECT_EQ(stats->failed.load(), 1u);
}

TEST_P(RouterActorTest, ASatelliteWhoseConnectionEndedIsNamedInWordsNotCafsError) {
  // The route still names a satellite whose connection has just ended (the registry hears
  // of it a moment later): CAF answers the proxyer's request request_receiver_down, and
  // the client is told unavailable, which satellite and what to do, not
  // "system_error(request_receiver_down)".
  auto gone = t.sys->spawn(refusing_satellite, rejection::of(code::unavailable));
  caf::anon_send_exit(gone, caf::exit_reason::user_shutdown);
  t.run();
  start_with({gone});
  query(1, 10);
  ASSERT_TRUE(out.refused.has_value());
  EXPECT_EQ(out.refused->code, code::unavailable);
  EXPECT_EQ(out.refused->detail.rfind("satellite 'sat-0': its connection closed", 0), 0u)
    << out.refused->detail;
  EXPECT_EQ(out.refused->detail.find("system_error"), std::string::npos) << out.refused->detail;
}

TEST_P(RouterActorTest, ACountMergedPastMaxGroupsIsRefusedWithObservedAndMax) {
  // Two satellites each within query.max_groups (10,000), together over it: the merge
  // refuses with the numbers as fields, not only in the text.
  start_with({t.sys->spawn(counting_satellite, 0, 6'000),
              t.sys->spawn(counting_satellite, 6'000, 6'000)});
  query(1, 10, 0, "count by n");
  ASSERT_TRUE(out.refused.has_value());
  EXPECT_EQ(out.refused->code, code::message_too_large);
  EXPECT_EQ(out.refused->limit, "");  // the query language's bound, no config key
  EXPECT_EQ(out.refused->observed, 12'000u);
  EXPECT_EQ(out.refused->max, query::defaults::max_groups);
  EXPECT_NE(out.refused->detail.find("query.max_groups"), std::string::npos)
    << out.refused->detail;
  expect_placement();
}

INSTANTIATE_TEST_SUITE_P(Placements, RouterActorTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "IoThread" : "Worker"; });

} // namespace
} // namespace levee::server
