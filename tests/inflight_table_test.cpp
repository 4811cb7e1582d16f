#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "limits/inflight_table.hpp"

namespace levee {
namespace {

TEST(InflightTable, BoundsEachRequesterSeparately) {
  inflight_table t;
  uint64_t observed = 0;
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(t.try_acquire(7, 3, observed));
  ASSERT_FALSE(t.try_acquire(7, 3, observed));
  EXPECT_EQ(observed, 4u);
  EXPECT_TRUE(t.try_acquire(8, 3, observed));  // another requester is unaffected
  t.release(7);
  EXPECT_TRUE(t.try_acquire(7, 3, observed));
  EXPECT_EQ(t.in_flight(7), 3u);
}

TEST(InflightTable, EntriesVanishWhenIdleAndCountsStayExact) {
  inflight_table t;
  std::vector<std::thread> threads;
  for (uint64_t r = 1; r <= 8; ++r)
    threads.emplace_back([&, r] {
      uint64_t observed = 0;
      for (int i = 0; i < 20000; ++i)
        if (t.try_acquire(r % 3 + 1, 1000000, observed))
          t.release(r % 3 + 1);
    });
  for (auto& th : threads)
    th.join();
  for (uint64_t r = 1; r <= 3; ++r)
    EXPECT_EQ(t.in_flight(r), 0u);
}

} // namespace
} // namespace levee

namespace levee {
namespace {

// More distinct requesters than the lock-free table holds: the overflow map takes the
// rest, and every bound stays exact.
TEST(InflightTable, ManyRequestersOverflowAndStayExact) {
  inflight_table t;
  uint64_t observed = 0;
  for (uint64_t r = 1; r <= 500; ++r) {
    ASSERT_TRUE(t.try_acquire(r, 2, observed)) << r;
    ASSERT_TRUE(t.try_acquire(r, 2, observed)) << r;
    ASSERT_FALSE(t.try_acquire(r, 2, observed)) << r;
    EXPECT_EQ(observed, 3u);
  }
  for (uint64_t r = 1; r <= 500; ++r) {
    EXPECT_EQ(t.in_flight(r), 2u) << r;
    t.release(r);
    t.release(r);
    EXPECT_EQ(t.in_flight(r), 0u) << r;
  }
  // All free again: the fast table is reusable.
  for (uint64_t r = 1000; r < 1010; ++r)
    EXPECT_TRUE(t.try_acquire(r, 1, observed));
}

// One requester per thread (as actors send), consumers releasing concurrently.
TEST(InflightTable, ConcurrentRequestersNeverExceedTheirBound) {
  inflight_table t;
  constexpr uint64_t max = 5;
  std::atomic<bool> over{false};
  std::vector<std::thread> threads;
  for (uint64_t r = 1; r <= 4; ++r)
    threads.emplace_back([&, r] {
      uint64_t observed = 0;
      uint64_t held = 0;
      for (int i = 0; i < 100000; ++i) {
        if (t.try_acquire(r, max, observed)) {
          if (++held > max)
            over = true;
        } else if (observed != max + 1) {
          over = true;
        }
        if (held > 0 && i % 3 == 0) {
          t.release(r);
          --held;
        }
      }
      while (held-- > 0)
        t.release(r);
    });
  for (auto& th : threads)
    th.join();
  EXPECT_FALSE(over.load());
  for (uint64_t r = 1; r <= 4; ++r)
    EXPECT_EQ(t.in_flight(r), 0u);
}

} // namespace
} // namespace levee
