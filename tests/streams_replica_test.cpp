// A partition's replica side on real segment files (streams/partition_log.hpp "Replicas"):
// byte-identical copies, leader epochs (Kafka's OffsetsForLeaderEpoch), truncation by
// epoch and re-append, the replicated high-water mark and its checkpoint, and the
// epochs file under kill -9.

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "kill_test_support.hpp"
#include "limits/clock.hpp"
#include "log_test_support.hpp"
#include "persistence/checkpoint.hpp"
#include "streams/partition_log.hpp"

namespace levee::streams {
namespace {

using persistence::temp_dir;
namespace fs = std::filesystem;

stream_config replica_stream() {
  stream_config c;
  c.name = "orders";
  c.subject = "orders.>";
  c.fsync = persistence::fsync_policy::none;
  c.max_segment_bytes = 4096;  // several segments: copies cross segment boundaries
  c.max_message_bytes = 1024;
  c.retention_max_bytes = 1 << 30;
  return c;
}

struct replica_fixture : ::testing::Test {
  temp_dir dir;
  manual_clock clock;

  std::unique_ptr<partition_log> open_log(const std::string& name) {
    partition_options o;
    o.dir = (dir.path / name).string();
    o.config = replica_stream();
    o.clock = &clock;
    auto p = partition_log::open(o);
    EXPECT_TRUE(p.ok()) << p.error().to_string();
    return p.ok() ? std::move(*p) : nullptr;
  }

  /// Every segment file of `name`, concatenated in offset order.
  std::string segment_bytes(const std::string& name) {
    std::vector<fs::path> files;
    for (auto& e : fs::directory_iterator(dir.path / name))
      if (e.path().extension() == ".log")
        files.push_back(e.path());
    std::sort(files.begin(), files.end());
    std::string all;
    for (auto& f : files) {
      std::ifstream in(f, std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      all += ss.str();
    }
    return all;
  }
};

void publish(partition_log& p, int from, int n, const std::string& tag = "m") {
  for (int i = from; i < from + n; ++i) {
    std::vector<message> batch;
    std::string body = tag + "-" + std::to_string(i) + std::string(static_cast<size_t>(i % 97), 'x');
    std::string id = tag + "-id-" + std::to_string(i);
    message m;
    m.body = body;
    m.id = id;
    m.key = "k" + std::to_string(i % 5);
    m.headers.emplace_back("h", "v" + std::to_string(i));
    batch.push_back(m);
    auto r = p.append(batch);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
  }
}

/// Copies `leader` into `follower` the way a fetch loop does, `max_bytes` at a time.
/// Returns the number of fetches.
int copy_all(const partition_log& leader, partition_log& follower, uint64_t max_bytes) {
  int fetches = 0;
  while (follower.next_offset() < leader.next_offset()) {
    std::string bytes;
    auto next = leader.read_copy(follower.next_offset(), max_bytes, bytes);
    EXPECT_TRUE(next.ok()) << next.error().to_string();
    if (!next.ok())
      return fetches;
    auto st = follower.append_copy(bytes);
    EXPECT_TRUE(st.ok()) << st.to_string();
    EXPECT_EQ(follower.next_offset(), *next);
    ++fetches;
    if (fetches > 100000)
      break;
  }
  return fetches;
}

std::vector<std::string> bodies(const partition_log& p) {
  read_request req;
  std::vector<std::string> out;
  for (;;) {
    auto r = p.read(req);
    EXPECT_TRUE(r.ok());
    if (!r.ok() || r->messages.empty())
      return out;
    for (auto& m : r->messages)
      out.push_back(std::to_string(m.offset) + ":" + m.id + ":" + m.body);
    req.from = r->next_offset;
  }
}

TEST_F(replica_fixture, FollowerCopyIsByteIdenticalAcrossSegmentsAndChunkSizes) {
  auto leader = open_log("leader");
  ASSERT_TRUE(leader->begin_epoch(1).ok());
  publish(*leader, 0, 300);
  for (uint64_t max_bytes : {1ull, 700ull, 512ull * 1024}) {
    auto name = "follower-" + std::to_string(max_bytes);
    auto follower = open_log(name);
    ASSERT_TRUE(follower->enable_replication().ok());
    auto fetches = copy_all(*leader, *follower, max_bytes);
    EXPECT_GT(fetches, 0);
    EXPECT_EQ(follower->next_offset(), 300u);
    EXPECT_EQ(segment_bytes(name), segment_bytes("leader")) << "max_bytes " << max_bytes;
    // Readers of the follower see only what its leader says is committed.
    EXPECT_EQ(follower->high_water(), 0u);
    follower->set_high_water(leader->high_water());
    EXPECT_EQ(bodies(*follower), bodies(*leader));
  }
}

TEST_F(replica_fixture, CopiedIdsAreDeduplicatedWhenTheFollowerLeadsNext) {
  auto leader = open_log("leader");
  publish(*leader, 0, 20);
  auto follower = open_log("follower");
  copy_all(*leader, *follower, 1 << 20);
  message again;
  again.body = "again";
  again.id = "m-id-7";
  auto ack = follower->append(again);
  ASSERT_TRUE(ack.ok()) << ack.error().to_string();
  EXPECT_TRUE(ack->duplicate);
  EXPECT_EQ(ack->offset, 7u);
}

TEST_F(replica_fixture, AppendCopyRefusesABatchNotAtItsEndAndDamagedBytes) {
  auto leader = open_log("leader");
  publish(*leader, 0, 10);
  auto follower = open_log("follower");
  std::string bytes;
  ASSERT_TRUE(leader->read_copy(5, 1 << 20, bytes).ok());
  auto st = follower->append_copy(bytes);
  EXPECT_EQ(st.code(), code::storage_error);
  EXPECT_NE(st.message().find("not at the log's end 0"), std::string::npos) << st.to_string();
  EXPECT_EQ(follower->next_offset(), 0u);
  bytes.clear();
  ASSERT_TRUE(leader->read_copy(0, 1 << 20, bytes).ok());
  bytes[bytes.size() - 3] ^= 0x5A;  // the last batch's payload
  st = follower->append_copy(bytes);
  EXPECT_EQ(st.code(), code::storage_error);
  // The batches before the damaged one were taken, nothing after.
  EXPECT_EQ(follower->next_offset(), 9u);
}

TEST_F(replica_fixture, EndOffsetForEpochHasKafkaSemantics) {
  auto p = open_log("p");
  EXPECT_TRUE(p->end_offset_for_epoch(1).undefined);  // no epochs yet
  ASSERT_TRUE(p->begin_epoch(2).ok());
  publish(*p, 0, 10);
  ASSERT_TRUE(p->begin_epoch(5).ok());
  publish(*p, 10, 5);
  ASSERT_TRUE(p->begin_epoch(7).ok());  // wrote nothing yet
  ASSERT_TRUE(p->begin_epoch(9).ok());  // replaces 7: it covered no offset
  publish(*p, 15, 3);
  EXPECT_EQ(p->leader_epochs(), (std::vector<persistence::epoch_entry>{{2, 0}, {5, 10}, {9, 15}}));
  auto check = [&](uint64_t asked, uint64_t epoch, uint64_t end) {
    auto r = p->end_offset_for_epoch(asked);
    EXPECT_FALSE(r.undefined) << asked;
    EXPECT_EQ(r.epoch, epoch) << asked;
    EXPECT_EQ(r.end_offset, end) << asked;
  };
  check(9, 9, 18);  // the latest: the log's end
  check(5, 5, 15);
  check(6, 5, 15);  // unknown here: the largest older one, ended where 9 began
  check(8, 5, 15);
  check(2, 2, 10);
  check(1, 1, 0);   // older than all: ended where the first began
  EXPECT_TRUE(p->end_offset_for_epoch(10).undefined);
  EXPECT_TRUE(p->begin_epoch(4).ok());  // older: nothing
  EXPECT_EQ(p->last_epoch(), 9u);
}

TEST_F(replica_fixture, DivergentTailIsTruncatedByEpochThenReappendedIdentically) {
  // Both had epoch 1's offsets 0..9. The old leader (now follower) wrote 10..14 in epoch 1
  // that nobody copied; the new leader started epoch 2 at 10 and wrote 10..19 of its own.
  auto old_leader = open_log("old");
  auto new_leader = open_log("new");
  ASSERT_TRUE(old_leader->begin_epoch(1).ok());
  publish(*old_leader, 0, 10, "common");
  copy_all(*old_leader, *new_leader, 1 << 20);
  ASSERT_TRUE(new_leader->note_epoch(1, 0).ok());
  ASSERT_TRUE(old_leader->enable_replication().ok());
  ASSERT_TRUE(new_leader->enable_replication().ok());
  old_leader->set_high_water(10);
  publish(*old_leader, 10, 5, "lost");  // above the high-water mark: never acknowledged
  ASSERT_TRUE(new_leader->begin_epoch(2).ok());
  publish(*new_leader, 10, 10, "new");

  // The follower asks for the end of its last epoch, truncates there, fetches.
  auto last = old_leader->last_epoch();
  ASSERT_EQ(last, 1u);
  auto end = new_leader->end_offset_for_epoch(*last);
  ASSERT_FALSE(end.undefined);
  EXPECT_EQ(end.epoch, 1u);
  EXPECT_EQ(end.end_offset, 10u);
  auto own = old_leader->end_offset_for_epoch(end.epoch);
  ASSERT_TRUE(old_leader->truncate_to(std::min(end.end_offset, own.end_offset)).ok());
  EXPECT_EQ(old_leader->next_offset(), 10u);
  EXPECT_EQ(old_leader->high_water(), 10u);
  for (auto& [epoch, start] : new_leader->leader_epochs())
    ASSERT_TRUE(old_leader->note_epoch(epoch, start).ok());
  copy_all(*new_leader, *old_leader, 300);
  EXPECT_EQ(segment_bytes("old"), segment_bytes("new"));
  EXPECT_EQ(old_leader->leader_epochs(), new_leader->leader_epochs());
  // The lost ids are forgotten with their messages: publishing one again stores it.
  message m;
  m.body = "x";
  m.id = "lost-id-12";
  auto ack = old_leader->append(m);
  ASSERT_TRUE(ack.ok());
  EXPECT_FALSE(ack->duplicate);
}

TEST_F(replica_fixture, AFetchInsideABatchGetsTheRestOfItReencodedFromThere) {
  auto leader = open_log("leader");
  std::vector<message> batch;
  std::vector<std::string> keep;
  for (int i = 0; i < 10; ++i)
    keep.push_back("b" + std::to_string(i));
  for (auto& b : keep) {
    message m;
    m.body = b;
    batch.push_back(m);
  }
  ASSERT_TRUE(leader->append(batch).ok());  // one batch, offsets 0..9
  std::string bytes;
  auto next = leader->read_copy(4, 1 << 20, bytes);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, 10u);
  auto follower = open_log("follower");
  ASSERT_TRUE(follower->truncate_to(0).ok());
  // A follower whose log ends at 4 (it cut the leader's batch there) takes the rest.
  std::string head;
  ASSERT_TRUE(leader->read_copy(0, 1 << 20, head).ok());
  ASSERT_TRUE(follower->append_copy(head).ok());
  ASSERT_TRUE(follower->truncate_to(4).ok());
  ASSERT_EQ(follower->next_offset(), 4u);
  ASSERT_TRUE(follower->append_copy(bytes).ok());
  ASSERT_TRUE(follower->enable_replication().ok());
  follower->set_high_water(10);
  EXPECT_EQ(bodies(*follower), bodies(*leader));
}

TEST_F(replica_fixture, EpochsAndHighWaterSurviveReopenAndTheMarkNeverLeadsTheCheckpoint) {
  {
    auto p = open_log("p");
    ASSERT_TRUE(p->enable_replication().ok());
    ASSERT_TRUE(p->begin_epoch(3).ok());
    publish(*p, 0, 20);
    p->set_high_water(12);
    ASSERT_TRUE(p->checkpoint_high_water().ok());
    p->set_high_water(18);  // not checkpointed: a crash now must not show 12..17
    EXPECT_EQ(p->high_water(), 18u);
  }
  auto p = open_log("p");
  EXPECT_TRUE(p->replicated());
  EXPECT_EQ(p->high_water(), 12u);
  EXPECT_EQ(p->leader_epochs(), (std::vector<persistence::epoch_entry>{{3, 0}}));
  p->set_high_water(5);  // never down
  EXPECT_EQ(p->high_water(), 12u);
  p->set_high_water(1000);  // never past the end
  EXPECT_EQ(p->high_water(), 20u);
  EXPECT_EQ(bodies(*p).size(), 20u);
}

TEST_F(replica_fixture, AnUnreplicatedPartitionKeepsItsOldHighWaterMark) {
  auto p = open_log("p");
  publish(*p, 0, 5);
  EXPECT_FALSE(p->replicated());
  EXPECT_EQ(p->high_water(), 5u);
  p->set_high_water(1);  // ignored until replication is on
  EXPECT_EQ(p->high_water(), 5u);
  EXPECT_FALSE(fs::exists(dir.path / "p" / "high-water"));
}

struct epoch_report {
  uint64_t epoch;
};

TEST_F(replica_fixture, EpochsFileIsWholeAfterKillNineMidWrite) {
  auto path = (dir.path / "p").string();
  for (int round = 0; round < 3; ++round) {
    uint64_t last_reported = 0;
    bool killed = test::run_until_killed<epoch_report>(
      [&](const std::function<void(const epoch_report&)>& report) {
        partition_options o;
        o.dir = path;
        o.config = replica_stream();
        auto p = partition_log::open(o);
        if (!p.ok())
          ::_exit(2);
        uint64_t e = (*p)->last_epoch().value_or(0);
        for (;;) {
          ++e;
          message m;
          std::string body = "e" + std::to_string(e);
          m.body = body;
          if (!(*p)->begin_epoch(e).ok() || !(*p)->append(m).ok())
            ::_exit(3);
          report(epoch_report{e});
        }
      },
      20, [&](const epoch_report& r) { last_reported = r.epoch; });
    ASSERT_TRUE(killed);
    auto epochs = persistence::read_leader_epochs(path + "/leader-epochs");
    ASSERT_TRUE(epochs.ok()) << epochs.error().to_string();
    auto p = open_log("p");
    ASSERT_TRUE(p);
    // Every epoch reported as begun is there (written before the report), in order, each
    // starting where the one message of the epoch before it ended.
    ASSERT_GE(p->last_epoch().value_or(0), last_reported);
    auto& list = p->leader_epochs();
    for (size_t i = 1; i < list.size(); ++i) {
      EXPECT_LT(list[i - 1].first, list[i].first);
      EXPECT_LE(list[i - 1].second, list[i].second);
    }
    EXPECT_LE(list.back().second, p->next_offset());
  }
}

} // namespace
} // namespace levee::streams
