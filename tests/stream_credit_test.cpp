// Credit for streamed answers (limits/stream_credit.hpp): the rule every hop applies.

#include <gtest/gtest.h>

#include "limits/stream_credit.hpp"

namespace levee {
namespace {

TEST(StreamCredit, ABatchNeedsOneBatchAndSomeBytesLeft) {
  stream_credit c;
  EXPECT_FALSE(c.allows_batch());
  c.add(2, 100);
  EXPECT_TRUE(c.allows_batch());
  c.take(60);
  EXPECT_TRUE(c.allows_batch());  // 1 batch, 40 bytes
  c.take(60);                     // the last batch may overdraw the bytes
  EXPECT_EQ(c.batches, 0u);
  EXPECT_EQ(c.bytes, -20);
  EXPECT_FALSE(c.allows_batch());
  c.add(1, 20);  // pays back the overdraft first: still no bytes
  EXPECT_FALSE(c.allows_batch());
  c.add(0, 1);
  EXPECT_TRUE(c.allows_batch());
}

TEST(StreamCredit, ABatchLargerThanTheWholeWindowStillGoesAlone) {
  stream_credit c;
  c.add(4, 1000);
  EXPECT_TRUE(c.allows_batch());
  c.take(1'000'000);
  EXPECT_FALSE(c.allows_batch());
}

TEST(StreamCredit, GrantsSaturateInsteadOfOverflowing) {
  stream_credit c;
  c.add(UINT64_MAX, UINT64_MAX);
  c.add(UINT64_MAX, UINT64_MAX);
  EXPECT_EQ(c.batches, stream_credit::max_batches);
  EXPECT_EQ(c.bytes, stream_credit::max_bytes);
  c.take(UINT64_MAX);
  EXPECT_EQ(c.bytes, -stream_credit::max_bytes);
  c.take(UINT64_MAX);
  EXPECT_EQ(c.bytes, -stream_credit::max_bytes);
}

TEST(CreditRelay, LendsNoMoreThanTheCapWhateverTheConsumerGrants) {
  credit_relay r;
  r.add(1'000'000, uint64_t{1} << 40);  // a consumer that grants everything
  auto first = r.lend(stream_credit{16, 1 << 20}, true);
  EXPECT_EQ(first.batches, 16u);
  EXPECT_EQ(first.bytes, 1 << 20);
  // Nothing more while the producer holds the whole cap.
  EXPECT_TRUE(r.lend(stream_credit{16, 1 << 20}).empty());
  for (int i = 0; i < 7; ++i)
    r.produced(1 << 16);
  EXPECT_TRUE(r.lend(stream_credit{16, 1 << 20}).empty());  // 9 batches lent: above half
  r.produced(1 << 16);                                     // 8 lent: half
  auto more = r.lend(stream_credit{16, 1 << 20});
  EXPECT_EQ(more.batches, 8u);
  EXPECT_EQ(more.bytes, (1 << 19));  // back up to the cap in bytes too
  EXPECT_EQ(r.lent().batches, 16u);
  EXPECT_EQ(r.lent().bytes, 1 << 20);
}

TEST(CreditRelay, LendsOnlyWhatTheConsumerGranted) {
  credit_relay r;
  EXPECT_TRUE(r.lend(stream_credit{16, 1 << 20}, true).empty());
  r.add(3, 5000);
  auto c = r.lend(stream_credit{16, 1 << 20}, true);
  EXPECT_EQ(c.batches, 3u);
  EXPECT_EQ(c.bytes, 5000);
  EXPECT_TRUE(r.held().empty());
  r.produced(4000);
  r.produced(4000);  // overdrew: lent bytes are -3000 now
  r.add(10, 10'000);
  auto d = r.lend(stream_credit{16, 1 << 20});
  EXPECT_EQ(d.batches, 10u);
  EXPECT_EQ(d.bytes, 10'000);
  EXPECT_EQ(r.lent().bytes, 7000);  // the overdraft is paid back from the new credit
  EXPECT_EQ(r.lent().batches, 11u);
}

// The stall a slow reader met: the consumer's 16 batches all lent with a quarter of its
// bytes; the producer spent the bytes on 6 large batches and held 10 batches but no bytes.
// The bytes still held must reach it without more batches.
TEST(CreditRelay, LendsBytesAloneWhenTheBatchesAreAllLent) {
  credit_relay r;
  r.add(16, 4 << 20);
  auto first = r.lend(stream_credit{16, 1 << 20}, true);
  EXPECT_EQ(first.batches, 16u);
  EXPECT_EQ(first.bytes, 1 << 20);
  for (int i = 0; i < 6; ++i)
    r.produced(200'000);
  EXPECT_FALSE(r.lent().allows_batch());
  EXPECT_EQ(r.lent().batches, 10u);
  auto more = r.lend(stream_credit{16, 1 << 20});
  EXPECT_EQ(more.batches, 0u);
  EXPECT_GT(more.bytes, 0);
  EXPECT_TRUE(r.lent().allows_batch());
}

// A batch far larger than the hop's cap leaves the producer deep in overdraft; the next
// grant repays it whole (the consumer granted those bytes), or the producer could never
// send again and no batch would come to trigger another loan.
TEST(CreditRelay, RepaysAnOverdraftLargerThanTheCap) {
  credit_relay r;
  r.add(16, 16 << 20);
  r.lend(stream_credit{16, 1 << 20}, true);
  r.produced(16 << 20);  // one 16 MiB batch: 15 MiB overdrawn
  EXPECT_FALSE(r.lent().allows_batch());
  r.add(1, 16 << 20);  // the consumer took it and grants as much again
  auto more = r.lend(stream_credit{16, 1 << 20});
  EXPECT_TRUE(r.lent().allows_batch()) << "lent " << r.lent().bytes << " after " << more.bytes;
}

} // namespace
} // namespace levee
