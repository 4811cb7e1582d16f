// The router's query durations (server/duration_histogram.hpp): each value in the bucket
// its bound names, the edges included, and the sum of them all.

#include <gtest/gtest.h>

#include "server/duration_histogram.hpp"

namespace levee::server {
namespace {

using h = duration_histogram;

TEST(DurationHistogram, CountsAValueInTheFirstBucketWhoseBoundItDoesNotExceed) {
  duration_histogram d;
  d.observe(0);
  d.observe(100);  // a bound belongs to its own bucket
  d.observe(101);
  d.observe(1'000);
  d.observe(1'001);
  EXPECT_EQ(d.count(0), 2u);
  EXPECT_EQ(d.count(1), 1u);  // (100, 250]
  EXPECT_EQ(d.count(3), 1u);  // (500, 1000]
  EXPECT_EQ(d.count(4), 1u);  // (1000, 2500]
  EXPECT_EQ(d.sum_us(), 0u + 100 + 101 + 1'000 + 1'001);
}

TEST(DurationHistogram, CountsWhatIsAboveEveryBoundInTheLastBucket) {
  duration_histogram d;
  d.observe(h::bounds_us.back());
  d.observe(h::bounds_us.back() + 1);
  d.observe(UINT64_MAX / 2);
  EXPECT_EQ(d.count(h::buckets - 2), 1u);
  EXPECT_EQ(d.count(h::buckets - 1), 2u);
  uint64_t total = 0;
  for (size_t i = 0; i < h::buckets; ++i)
    total += d.count(i);
  EXPECT_EQ(total, 3u);
}

TEST(DurationHistogram, BoundsAscend) {
  for (size_t i = 1; i < h::bounds_us.size(); ++i)
    EXPECT_LT(h::bounds_us[i - 1], h::bounds_us[i]) << i;
}

} // namespace
} // namespace levee::server
