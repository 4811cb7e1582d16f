#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "limits/clock.hpp"
#include "limits/token_bucket.hpp"

namespace levee {
namespace {

TEST(TokenBucket, DisabledWhenRateIsZero) {
  manual_clock clock;
  token_bucket b{clock, 0, 0};
  EXPECT_FALSE(b.enabled());
  for (int i = 0; i < 100000; ++i)
    ASSERT_TRUE(b.try_acquire(1'000'000).allowed);
}

TEST(TokenBucket, BurstPassesAtOnceThenOneMore) {
  manual_clock clock;
  token_bucket b{clock, 100, 10};  // 100/s, burst 10
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE(b.try_acquire(1).allowed) << i;
  auto d = b.try_acquire(1);
  EXPECT_FALSE(d.allowed);
  EXPECT_FALSE(d.never);
  EXPECT_EQ(d.retry_after_ns, 10'000'000u);  // one token every 10 ms
  EXPECT_EQ(token_bucket::to_retry_ms(d.retry_after_ns), 10u);
  EXPECT_EQ(d.observed_units, 11u);
}

TEST(TokenBucket, RefillsAtTheRate) {
  manual_clock clock;
  token_bucket b{clock, 1000, 1};  // one per ms, no burst
  ASSERT_TRUE(b.try_acquire(1).allowed);
  ASSERT_FALSE(b.try_acquire(1).allowed);
  clock.advance_ns(999'999);
  ASSERT_FALSE(b.try_acquire(1).allowed);
  clock.advance_ns(1);
  ASSERT_TRUE(b.try_acquire(1).allowed);
  // Over one simulated second exactly 1000 pass when offered every 100 us.
  int passed = 0;
  for (int i = 0; i < 10000; ++i) {
    clock.advance_ns(100'000);
    passed += b.try_acquire(1).allowed ? 1 : 0;
  }
  EXPECT_EQ(passed, 1000);
}

TEST(TokenBucket, IdleTimeDoesNotAccumulateBeyondBurst) {
  manual_clock clock;
  token_bucket b{clock, 10, 5};
  clock.advance_ms(60'000);  // a minute idle
  int passed = 0;
  for (int i = 0; i < 100; ++i)
    passed += b.try_acquire(1).allowed ? 1 : 0;
  EXPECT_EQ(passed, 5);
}

TEST(TokenBucket, ByteCostsAndRetryAfterForLargeRequests) {
  manual_clock clock;
  token_bucket b{clock, 1'000'000, 100'000};  // 1 MB/s, 100 kB burst
  ASSERT_TRUE(b.try_acquire(100'000).allowed);
  auto d = b.try_acquire(50'000);
  ASSERT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after_ns, 50'000'000u);  // 50 kB at 1 MB/s
  clock.advance_ns(static_cast<int64_t>(d.retry_after_ns));
  EXPECT_TRUE(b.try_acquire(50'000).allowed);
}

TEST(TokenBucket, RequestAboveBurstCanNeverPass) {
  manual_clock clock;
  token_bucket b{clock, 1000, 100};
  auto d = b.try_acquire(101);
  EXPECT_FALSE(d.allowed);
  EXPECT_TRUE(d.never);
}

TEST(TokenBucket, ChargeGoesIntoDebtAndWaitSaysForHowLong) {
  manual_clock clock;
  token_bucket b{clock, 100, 10};  // 100/s, burst 10
  EXPECT_EQ(b.wait_ns(), 0u);
  b.charge(30);  // three times the burst, paid after the fact
  // 30 taken from a full bucket of 10: 20 owed plus the one asked for, at 10 ms each.
  EXPECT_EQ(b.wait_ns(), 210'000'000u);
  EXPECT_FALSE(b.try_acquire(1).allowed);
  clock.advance_ns(210'000'000 - 1);
  EXPECT_GT(b.wait_ns(), 0u);
  clock.advance_ns(1);
  EXPECT_EQ(b.wait_ns(), 0u);
  EXPECT_TRUE(b.try_acquire(1).allowed);
  EXPECT_EQ(b.available(), 0u);  // the one just taken
  clock.advance_ns(50'000'000);
  EXPECT_EQ(b.available(), 5u);
  clock.advance_ns(1'000'000'000);
  EXPECT_EQ(b.available(), 10u);  // never more than the burst
  token_bucket off{clock, 0, 0};
  off.charge(1'000'000);
  EXPECT_EQ(off.wait_ns(), 0u);
  EXPECT_EQ(off.available(), UINT64_MAX);
}

TEST(TokenBucket, RefundRestoresCapacity) {
  manual_clock clock;
  token_bucket b{clock, 100, 2};
  ASSERT_TRUE(b.try_acquire(1).allowed);
  ASSERT_TRUE(b.try_acquire(1).allowed);
  ASSERT_FALSE(b.try_acquire(1).allowed);
  b.refund(1);
  EXPECT_TRUE(b.try_acquire(1).allowed);
  EXPECT_FALSE(b.try_acquire(1).allowed);
}

TEST(TokenBucket, ReconfigureTakesEffectForTheNextRequest) {
  manual_clock clock;
  token_bucket b{clock, 10, 1};
  ASSERT_TRUE(b.try_acquire(1).allowed);
  ASSERT_FALSE(b.try_acquire(1).allowed);
  b.reconfigure(0, 0);
  EXPECT_TRUE(b.try_acquire(1).allowed);
  b.reconfigure(1000, 3);
  clock.advance_ms(10);
  int passed = 0;
  for (int i = 0; i < 10; ++i)
    passed += b.try_acquire(1).allowed ? 1 : 0;
  EXPECT_EQ(passed, 3);
}

// With time frozen, exactly `burst` acquisitions succeed however many threads race.
TEST(TokenBucket, ConcurrentSendersGetExactlyTheBurst) {
  manual_clock clock;
  constexpr int burst = 5000;
  token_bucket b{clock, 1, burst};
  std::atomic<int> passed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i)
        if (b.try_acquire(1).allowed)
          passed.fetch_add(1);
    });
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(passed.load(), burst);
}

} // namespace
} // namespace levee
