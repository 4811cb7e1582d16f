// `levee stats` as people read it, rendered from a StatsReply's fields (apps/stats_text):
// the same lines the server wrote as prose before the reply carried fields.

#include <gtest/gtest.h>

#include <string>

#include "apps/stats_text.hpp"

namespace levee::apps {
namespace {

/// A reply with every part set to figures that differ from each other, so a field shown
/// in another's place shows.
wire::StatsReply full_reply() {
  wire::StatsReply r;
  r.set_version(7);
  auto& l = *r.mutable_listener();
  l.set_connections_open(2);
  l.set_satellite_connections(1);
  l.set_connections_accepted(31);
  l.set_connections_refused(3);
  l.set_frames_in(400);
  l.set_frames_out(500);
  l.set_requests_answered(60);
  l.set_requests_abandoned(1);
  l.set_credit_frames_in(12);
  l.set_input_paused_for_slow_reader(4);
  (*l.mutable_rejects_sent())["slow_consumer"] = 5;
  (*l.mutable_rejects_sent())["bad_request"] = 8;
  (*l.mutable_connections_closed())["slow_consumer"] = 2;
  auto& io = *r.mutable_io_loop();
  io.set_busy_poll_us(100);
  io.set_sleeps(9);
  io.set_empty_polls(1234);
  io.set_looked_ns(2'345'678);
  io.set_posted_rounds(321);
  io.set_longest_posted_run(4);
  auto& q = *r.mutable_queries();
  q.set_started(10);
  q.set_running(1);
  q.set_completed(6);
  q.set_failed(2);
  q.set_cancelled(1);
  q.set_refused(3);
  q.set_rows_returned(1000);
  q.set_bytes_returned(65536);
  q.set_partial(2);
  q.set_skipping_satellites(1);
  q.set_satellites_skipped(3);
  auto& d = *q.mutable_duration_us();
  for (uint64_t bound : {250, 2'500, 1'000'000})
    d.add_upper_bounds(bound);
  for (uint64_t count : {3, 0, 1, 5})
    d.add_counts(count);
  d.set_sum(3 * 100 + 900'000 + 5 * 2'000'000);
  auto& b = *r.mutable_node_budget();
  b.set_bytes_in_use(128);
  b.set_max_bytes(1 << 20);
  b.set_high_water_bytes(4096);
  b.set_refusals(0);
  auto& k = *r.add_kinds();
  k.set_kind("proxy");
  k.set_actors(3);
  k.set_accepted(70);
  k.set_processed(69);
  k.set_dropped_on_exit(0);
  (*k.mutable_rejected())["too_many_inflight"] = 4;
  (*k.mutable_rejected())["mailbox_full"] = 1;
  (*k.mutable_rejected_by_limit())["limits.proxy.max_inflight_per_requester"] = 4;
  (*k.mutable_rejected_by_limit())["limits.proxy.mailbox_capacity_bytes"] = 1;
  k.set_queued_messages(1);
  k.set_queued_bytes(88);
  k.set_max_actor_depth(5);
  k.set_max_actor_bytes(640);
  k.set_notices_sent(2);
  k.set_notices_coalesced(3);
  return r;
}

TEST(StatsText, ShowsEveryPartAsItReadsInTheReadme) {
  EXPECT_EQ(stats_text(full_reply()),
            "listener: 2 connections open (1 satellites), 31 accepted, 3 refused; frames in 400, out 500; "
            "requests answered 60, abandoned 1\n"
            "flow control: 12 credit frames in; input paused 4 times for slow readers; 5 answers "
            "or connections refused as slow_consumer\n"
            "io thread: looks 100 us for work before it sleeps (node.busy_poll_us); slept 9 "
            "times; looked 2.3 ms without work (1234 empty polls); ran 321 rounds of its "
            "actors (at most 4 in a row)\n"
            "rejects sent: slow_consumer 5, bad_request 8\n"  // by code number
            "connections closed: slow_consumer 2\n"
            "queries: 10 started, 1 running, 6 completed, 2 failed, 1 cancelled, 3 refused; "
            "1000 rows, 65536 bytes returned\n"
            "answers not whole: 2 cut at server.max_result_bytes; 1 fan-outs skipped 3 "
            "matching satellites that were not healthy\n"
            "query durations at the router: 3 <= 250 us, 1 <= 1 s, 5 > 1 s; mean 1.21 s\n"
            "node budget: 128 / 1048576 bytes in use (high water 4096, 0 refusals)\n"
            "kind proxy: 3 actors, accepted 70, processed 69, dropped on exit 0, rejected 5, "
            "queued 1 msgs / 88 bytes, max depth 5 msgs / 640 bytes, notices 2 sent / 3 "
            "coalesced\n"
            "  rejected mailbox_full: 1\n"
            "  rejected too_many_inflight: 4\n"
            "  rejected by limits.proxy.max_inflight_per_requester: 4\n"  // in the gate's order
            "  rejected by limits.proxy.mailbox_capacity_bytes: 1\n");
}

TEST(StatsText, ABrokerShowsItsStreamsAndRejectionsByLimit) {
  wire::StatsReply r;
  auto& b = *r.mutable_broker();
  b.set_streams(2);
  b.set_partitions(5);
  b.set_publishes(40);
  b.set_messages_stored(2400);
  b.set_duplicates(3);
  b.set_acks(2403);
  b.set_subscriptions(4);
  b.set_batches_sent(17);
  b.set_subscriptions_paced(9);
  b.set_unacked_refusals(1);
  (*b.mutable_rejections())["rate_limited"] = 6;
  (*b.mutable_rejections())["stream_full"] = 2;
  (*b.mutable_rejections_by_limit())["stream.retention_max_messages"] = 2;
  (*b.mutable_rejections_by_limit())["broker.publish_msgs_per_sec"] = 6;
  auto text = stats_text(r);
  EXPECT_NE(text.find("broker: 2 streams, 5 partitions; 40 publishes, 2400 messages stored, "
                      "3 duplicates, 2403 acks; 4 subscriptions (9 times paced), 17 batches sent; 1 ack = "
                      "none publishes refused\n"
                      "broker rejections: rate_limited 6, stream_full 2\n"
                      "broker rejections by limit: broker.publish_msgs_per_sec 6, "
                      "stream.retention_max_messages 2\n"),
            std::string::npos)
    << text;
  r.clear_broker();  // a server: no broker lines
  EXPECT_EQ(stats_text(r).find("broker"), std::string::npos) << stats_text(r);
}

TEST(StatsText, LeavesOutWhatDidNotHappenOrIsNotThere) {
  wire::StatsReply r;
  r.mutable_io_loop()->set_busy_poll_us(0);
  EXPECT_EQ(stats_text(r),
            "listener: 0 connections open (0 satellites), 0 accepted, 0 refused; frames in 0, out 0; "
            "requests answered 0, abandoned 0\n"
            "flow control: 0 credit frames in; input paused 0 times for slow readers; 0 answers "
            "or connections refused as slow_consumer\n"
            "io thread: sleeps as soon as nothing is ready (node.busy_poll_us = 0); ran 0 "
            "rounds of its actors (at most 0 in a row)\n"
            "queries: 0 started, 0 running, 0 completed, 0 failed, 0 cancelled, 0 refused; "
            "0 rows, 0 bytes returned\n"
            "node budget: 0 / 0 bytes in use (high water 0, 0 refusals)\n");
  r.clear_io_loop();  // a node that does not run the polling loop: no io line at all
  EXPECT_EQ(stats_text(r).find("io thread"), std::string::npos) << stats_text(r);
}

TEST(StatsText, ShowsACodeThisBuildDoesNotKnowAfterTheOthersAndMakesNamesPrintable) {
  wire::StatsReply r;
  (*r.mutable_listener()->mutable_rejects_sent())["from_the_future"] = 1;
  (*r.mutable_listener()->mutable_rejects_sent())["mailbox_full"] = 2;
  r.add_kinds()->set_kind("odd\x1b[2Jkind");
  auto text = stats_text(r);
  EXPECT_NE(text.find("rejects sent: mailbox_full 2, from_the_future 1\n"), std::string::npos)
    << text;
  EXPECT_NE(text.find("kind odd\\x1b[2Jkind: 0 actors"), std::string::npos) << text;
}

} // namespace
} // namespace levee::apps
