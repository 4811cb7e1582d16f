// The satellite's store as one actor, in process and deterministic: CAF's test coordinator
// runs it step by step (no worker threads), CAF's test clock fires its ticks when told,
// and a manual clock is the time it reads (limits/clock.hpp). No processes, no sockets, no
// real time. Each test runs twice: the store on a worker (the coordinator's jobs), and
// placed on the I/O loop, here CAF's test multiplexer, whose jobs the test runs too. A driver actor stands where the connection stands: it sends what a
// connection sends (actors/wire_target.hpp) and records what comes back.

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <unistd.h>

#include <caf/all.hpp>

#include "actors/caf_error.hpp"
#include "events/codec.hpp"
#include "net/satellite.pb.h"
#include "satellite/store.hpp"
#include "tests/deterministic_system.hpp"

namespace levee::satellite {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

/// What the driver saw.
struct seen {
  std::vector<uint64_t> taken;              // answers to appends
  std::vector<std::string> batches;         // every batch, in order (alone or in the tail)
  size_t alone = 0;                         // of those, sent as wire_batch messages
  std::optional<std::string> summary;       // the stream's answer
  size_t tail = 0;                          // the batches that came with it
  std::optional<rejection> refused;         // or its refusal
};

/// Plays the connection: forwards what the test tells it to the store as its own
/// messages (so the store answers it), and records the answers and the batches.
caf::behavior driver(caf::event_based_actor* self, store_actor store, seen* out) {
  return {
    [=](append_atom, append_request& r) {
      self->request(store, caf::infinite, append_atom::value, std::move(r))
        .then([=](uint64_t n) { out->taken.push_back(n); },
              [=](caf::error& err) { ADD_FAILURE() << self->system().render(err); });
    },
    [=](wire_stream_atom, std::string& payload, uint64_t tag, uint64_t batches, uint64_t bytes) {
      self->request(store, caf::infinite, wire_stream_atom::value, std::move(payload), tag,
                    batches, bytes)
        .then(
          [=](stream_tail& tail, std::string& summary) {
            out->tail = tail.size();
            for (auto& part : tail)
              out->batches.push_back(std::move(part));
            out->summary = std::move(summary);
          },
              [=](caf::error& err) {
                out->refused = rejection_from(err);
                EXPECT_TRUE(out->refused.has_value()) << self->system().render(err);
              });
    },
    [=](wire_batch_atom, uint64_t, std::string& part) {
      EXPECT_FALSE(out->summary.has_value()) << "a batch after the end";
      ++out->alone;
      out->batches.push_back(std::move(part));
    },
    [=](credit_atom, uint64_t tag, uint64_t batches, uint64_t bytes) {
      self->send(store, credit_atom::value, tag, batches, bytes);
    },
    [=](cancel_atom, uint64_t tag) { self->send(store, cancel_atom::value, tag); },
  };
}

using test::accepts;

// The store takes what a connection sends and an append as a struct; the untyped append
// it took before (protobuf and encoded positions in strings) no longer compiles.
static_assert(accepts<store_actor, wire_stream_atom, std::string, uint64_t, uint64_t, uint64_t>);
static_assert(accepts<store_actor, credit_atom, uint64_t, uint64_t, uint64_t>);
static_assert(accepts<store_actor, cancel_atom, uint64_t>);
static_assert(accepts<store_actor, append_atom, append_request>);
static_assert(!accepts<store_actor, append_atom, std::vector<std::string>, std::vector<int64_t>,
                       std::string, std::string>);
static_assert(!accepts<store_actor, wire_request_atom, std::string>);

constexpr uint64_t tick_ms = 100;  // satellite.fsync_interval_ms: the store's tick

struct StoreActorTest : ::testing::TestWithParam<bool> {
  fs::path dir;
  test::deterministic_system t;
  manual_clock& clock = t.clock;
  std::shared_ptr<satellite_stats> stats = std::make_shared<satellite_stats>();
  store_actor store;
  caf::actor conn;
  seen out;

  void SetUp() override {
    dir = fs::temp_directory_path() / ("levee-store-actor-test-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    t.start();
    persistence::log_options lo;
    lo.dir = dir.string();
    lo.fsync = persistence::fsync_policy::none;
    lo.limits.compress = false;
    auto log = persistence::segment_log::open(lo);
    ASSERT_TRUE(log.ok()) << log.error().to_string();
    store_setup setup;
    setup.log = std::shared_ptr<persistence::segment_log>{std::move(*log)};
    setup.opts.data_dir = dir.string();
    setup.opts.fsync_interval_ms = tick_ms;
    setup.opts.retention_interval_ms = 3'600'000;
    setup.opts.scrub_bytes_per_sec = 0;
    setup.satellite_id = "sat-a";
    setup.stats = stats;
    setup.hint_path = (dir / "source-positions").string();
    setup.clock = &clock;
    store = spawn_store(*t.sys, *t.rt, t.where(GetParam()), std::move(setup));
    conn = t.sys->spawn(driver, store, &out);
    run();
  }

  void run() { t.run(); }

  /// Where the store's work ran: on the loop when placed there, never otherwise.
  void expect_placement() { EXPECT_EQ(t.placement_mismatch(GetParam()), ""); }

  void TearDown() override {
    caf::anon_send(store, stop_atom::value);
    caf::anon_send_exit(conn, caf::exit_reason::user_shutdown);
    run();
    store = nullptr;
    conn = nullptr;
    t.stop();
    fs::remove_all(dir);
  }

  /// Moves both clocks: the store's own and CAF's, which fires its due ticks.
  void advance(int64_t ms) { t.advance(ms); }

  void append(int events) {
    append_request r;
    for (int i = 0; i < events; ++i) {
      events::event e;
      e.timestamp_ms = clock.wall_ms();
      e.fields.push_back({"n", int64_t{i}});
      r.values.emplace_back();
      events::encode(e, r.values.back());
      r.timestamps.push_back(e.timestamp_ms);
    }
    r.source = "test";
    caf::anon_send(conn, append_atom::value, std::move(r));
    run();
  }

  /// A query for every event, two rows a batch, with `credit_batches` lent at first.
  void query(uint64_t tag, uint64_t credit_batches, uint32_t deadline_ms = 10'000) {
    wire::QueryRequest req;
    req.set_text("");
    req.set_batch_max_rows(2);
    req.set_deadline_ms(deadline_ms);
    caf::anon_send(conn, wire_stream_atom::value, req.SerializeAsString(), tag, credit_batches,
                   uint64_t{1} << 20);
    run();
  }

  void grant(uint64_t tag, uint64_t batches) {
    caf::anon_send(conn, credit_atom::value, tag, batches, uint64_t{1} << 20);
    run();
  }

  uint64_t rows_received() const {
    uint64_t rows = 0;
    for (auto& part : out.batches) {
      wire::ResultBatch b;
      EXPECT_TRUE(b.ParseFromString(part));
      EXPECT_EQ(b.satellite_id(), "sat-a");
      rows += static_cast<uint64_t>(b.events_size());
    }
    return rows;
  }
};

TEST_P(StoreActorTest, AnswersAQueryInBatchesWithinItsCredit) {
  append(10);
  ASSERT_EQ(out.taken, std::vector<uint64_t>{10});
  EXPECT_EQ(stats->events_stored.load(), 10u);
  query(1, 2);
  // Five batches are ready; two may go.
  EXPECT_EQ(out.batches.size(), 2u);
  EXPECT_FALSE(out.summary.has_value());
  EXPECT_EQ(stats->queries_running.load(), 1u);
  grant(1, 2);
  EXPECT_EQ(out.batches.size(), 4u);
  EXPECT_FALSE(out.summary.has_value());
  grant(1, 1);
  ASSERT_EQ(out.batches.size(), 5u);
  EXPECT_EQ(rows_received(), 10u);
  ASSERT_TRUE(out.summary.has_value()) << (out.refused ? out.refused->to_string() : "");
  // The scan was over when the last credit came: the last batch came with the end.
  EXPECT_EQ(out.alone, 4u);
  EXPECT_EQ(out.tail, 1u);
  wire::QueryStats summary;
  ASSERT_TRUE(summary.ParseFromString(*out.summary));
  EXPECT_EQ(summary.rows_returned(), 10u);
  EXPECT_EQ(summary.events_scanned(), 10u);
  EXPECT_EQ(stats->queries_running.load(), 0u);
  expect_placement();
}

// A scan that ends within its credit sends nothing on its own: its batches come in the
// answer, in order, so its reader hears of them and the end in one message.
TEST_P(StoreActorTest, AScanThatEndsWithinItsCreditSendsItsBatchesWithTheEnd) {
  append(10);
  query(2, 10);
  ASSERT_TRUE(out.summary.has_value()) << (out.refused ? out.refused->to_string() : "");
  EXPECT_EQ(out.alone, 0u);
  EXPECT_EQ(out.tail, 5u);
  EXPECT_EQ(rows_received(), 10u);
  int64_t next = 0;  // in the order they were stored
  for (auto& part : out.batches) {
    wire::ResultBatch b;
    ASSERT_TRUE(b.ParseFromString(part));
    for (auto& bytes : b.events()) {
      events::event e;
      ASSERT_TRUE(events::decode(bytes, e).ok());
      auto* n = e.find("n");
      ASSERT_NE(n, nullptr);
      EXPECT_EQ(*n, events::value{next++});
    }
  }
  EXPECT_EQ(next, 10);
  expect_placement();
}

// A query that waits for credit is not stepped: its deadline is looked at on the store's
// tick, against the store's clock. CAF's ticks alone end nothing; the clock passing the
// deadline does, at the next tick.
TEST_P(StoreActorTest, AParkedQueryEndsAtItsDeadlineOnTheStoresClock) {
  append(10);
  query(7, 1, 1'000);
  ASSERT_EQ(out.batches.size(), 1u);
  for (int i = 0; i < 20; ++i)  // two seconds of ticks on CAF's clock alone
    t.sched->advance_time(std::chrono::milliseconds(tick_ms)), run();
  EXPECT_FALSE(out.refused.has_value());
  EXPECT_EQ(stats->queries_running.load(), 1u);
  advance(900);
  EXPECT_FALSE(out.refused.has_value()) << "ended before its deadline";
  advance(200);
  ASSERT_TRUE(out.refused.has_value());
  EXPECT_EQ(out.refused->code, code::deadline_exceeded);
  EXPECT_EQ(out.refused->limit, "server.query_deadline_ms");
  EXPECT_FALSE(out.summary.has_value());
  EXPECT_EQ(out.batches.size(), 1u);
  EXPECT_EQ(stats->queries_running.load(), 0u);
  expect_placement();
}

TEST_P(StoreActorTest, ACancelEndsTheQueryWithCancelled) {
  append(10);
  query(3, 1);
  ASSERT_EQ(out.batches.size(), 1u);
  caf::anon_send(conn, cancel_atom::value, uint64_t{3});
  run();
  ASSERT_TRUE(out.refused.has_value());
  EXPECT_EQ(out.refused->code, code::cancelled);
  EXPECT_EQ(stats->queries_running.load(), 0u);
  // Credit for the ended query is ignored; nothing more is sent.
  grant(3, 10);
  EXPECT_EQ(out.batches.size(), 1u);
  expect_placement();
}

INSTANTIATE_TEST_SUITE_P(Placements, StoreActorTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "IoThread" : "Worker"; });

} // namespace
} // namespace levee::satellite
