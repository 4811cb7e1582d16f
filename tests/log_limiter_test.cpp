#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <unistd.h>

#include "limits/clock.hpp"
#include "limits/log_limiter.hpp"

namespace levee {
namespace {

TEST(LogLimiter, FloodIsRateLimitedAndSuppressedLinesAreCounted) {
  std::vector<std::string> lines;
  set_log_sink([&](std::string_view line) { lines.emplace_back(line); });
  manual_clock clock;
  log_limiter log{clock, 5, 2};
  rejection r = rejection::of(code::mailbox_full)
    .limit("limits.svc.mailbox_capacity")
    .observed(11)
    .max(10)
    .retry_after_ms(10)
    .detail("full");
  for (int i = 0; i < 1000; ++i)
    log.report("svc", r);
  ASSERT_EQ(lines.size(), 2u);
  // A warn line of role "limits" (limits/log.hpp) whose message is "<who>: <rejection>".
  auto tail = "limits[" + std::to_string(::getpid()) + "] svc: " + r.to_string();
  EXPECT_NE(lines[0].find(" WARN  "), std::string::npos) << lines[0];
  EXPECT_EQ(lines[0].substr(lines[0].size() - tail.size()), tail) << lines[0];
  EXPECT_EQ(log.suppressed_total(), 998u);
  clock.advance_ms(200);  // one more line's worth at 5 lines/s
  log.report("svc", r);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_NE(lines[2].find("(998 more rejections not logged)"), std::string::npos) << lines[2];
  EXPECT_NE(lines[2].find("observed 11 > max 10"), std::string::npos);
  set_log_sink([](std::string_view) {});
}

} // namespace
} // namespace levee
