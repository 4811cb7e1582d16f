#include <gtest/gtest.h>

#include "limits/error_code.hpp"
#include "limits/rejection.hpp"
#include "limits/status.hpp"

namespace levee {
namespace {

// The numbers are a public contract (wire, CAF errors, metrics): they never change.
TEST(ErrorCode, NumbersArePinnedForever) {
  const std::pair<code, unsigned> pinned[] = {
    {code::mailbox_full, 1},          {code::message_too_large, 2},
    {code::rate_limited, 3},          {code::too_many_inflight, 4},
    {code::memory_budget_exhausted, 5}, {code::slow_consumer, 6},
    {code::too_many_connections, 7},  {code::deadline_exceeded, 8},
    {code::cancelled, 9},             {code::not_leader, 10},
    {code::not_found, 11},            {code::unavailable, 12},
    {code::unauthenticated, 13},      {code::permission_denied, 14},
    {code::bad_request, 15},          {code::insufficient_replicas, 16},
    {code::shutting_down, 17},        {code::stream_full, 18},
    {code::storage_error, 19},        {code::unsupported_version, 20},
    {code::precondition_failed, 21},
  };
  for (auto [c, n] : pinned)
    EXPECT_EQ(static_cast<unsigned>(c), n) << to_string(c);
  EXPECT_EQ(max_code_number, 21);
}

TEST(ErrorCode, NamesRoundTrip) {
  for (uint32_t n = 1; n <= max_code_number; ++n) {
    auto c = code_from_number(n);
    ASSERT_TRUE(c.has_value());
    auto back = code_from_string(to_string(*c));
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, *c);
  }
  EXPECT_EQ(to_string(code::memory_budget_exhausted), "memory_budget_exhausted");
  EXPECT_FALSE(code_from_number(0).has_value());
  EXPECT_FALSE(code_from_number(22).has_value());
  EXPECT_FALSE(code_from_string("mailbox-full").has_value());
}

TEST(Rejection, RendersOneReadableLineWithObservedVsMax) {
  rejection r = rejection::of(code::mailbox_full)
    .limit("limits.service.mailbox_capacity")
    .observed(1025)
    .max(1024)
    .retry_after_ms(10)
    .detail("the mailbox is full");
  EXPECT_EQ(r.to_string(), "mailbox_full (1): limits.service.mailbox_capacity observed 1025 "
                           "> max 1024, retry after 10 ms: the mailbox is full");
  r.retry_after_ms = 0;
  EXPECT_NE(r.to_string().find("do not retry"), std::string::npos);
}

TEST(Rejection, ReadsWellWithoutALimit) {
  // The request itself was refused: no limit key, often no quantity.
  rejection bad = rejection::of(code::bad_request).detail("the first frame must be a Hello");
  EXPECT_EQ(bad.to_string(), "bad_request (15): do not retry: the first frame must be a Hello");
  rejection big = rejection::of(code::message_too_large).observed(5000).max(4096).detail("cut it");
  EXPECT_EQ(big.to_string(),
            "message_too_large (2): observed 5000 > max 4096, do not retry: cut it");
  rejection later = rejection::of(code::unavailable).retry_after_ms(50);
  EXPECT_EQ(later.to_string(), "unavailable (12): retry after 50 ms");
}

TEST(Status, OkIsDefaultAndErrorsCarryCodeAndMessage) {
  status ok;
  EXPECT_TRUE(ok.ok());
  auto err = status::error(code::bad_request, "limits.x = 0: bad");
  EXPECT_FALSE(err.ok());
  EXPECT_EQ(err.code(), code::bad_request);
  EXPECT_EQ(err.to_string(), "bad_request: limits.x = 0: bad");
  result<int> r = 5;
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(*r, 5);
  result<int> e = err;
  EXPECT_FALSE(e.ok());
  EXPECT_EQ(e.error().code(), code::bad_request);
}

} // namespace
} // namespace levee
