#include <gtest/gtest.h>

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
