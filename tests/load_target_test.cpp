// The target's side of a load run (load/target_side.hpp): counter deltas, the accounting
// check in each of its outcomes, and the process found from a real listening socket of
// this test's own.

#include <string>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "load/target_side.hpp"

namespace levee::load {
namespace {

TEST(TargetSide, DeltasKeepWhatMovedAndNameWhatWentBack) {
  target_counters before{{"a", 5}, {"b", 7}, {"c", 9}};
  target_counters after{{"a", 5}, {"b", 10}, {"c", 2}, {"d", 4}};
  std::vector<std::string> went_back;
  auto d = counter_deltas(before, after, &went_back);
  EXPECT_EQ(d, (target_counters{{"b", 3}, {"d", 4}}));
  EXPECT_EQ(went_back, std::vector<std::string>{"c"});
}

/// 100 sent: 80 answered, 20 refused (rate_limited), and the tool's one stats request.
wire_accounting tool_of_100() {
  wire_accounting t;
  t.sent = 100;
  t.accepted = 80;
  for (int i = 0; i < 20; ++i)
    t.refused_with("rate_limited");
  t.own_requests = 1;
  return t;
}

TEST(TargetSide, AccountingHoldsWhenTheTargetCountedEveryRequestOnce) {
  auto tool = tool_of_100();
  target_counters delta{{"listener.requests_answered", 81},
                        {"listener.rejects_sent.rate_limited", 20},
                        {"listener.frames_in", 102}};
  auto c = check_accounting(tool, delta, false);
  EXPECT_TRUE(c.made);
  EXPECT_TRUE(c.held);
  EXPECT_TRUE(c.differences.empty());
}

TEST(TargetSide, AccountingNamesEachDifference) {
  auto tool = tool_of_100();
  // One request refused with another code than the tool read, and one answer missing.
  target_counters delta{{"listener.requests_answered", 80},
                        {"listener.rejects_sent.rate_limited", 19},
                        {"listener.rejects_sent.mailbox_full", 1}};
  auto c = check_accounting(tool, delta, false);
  EXPECT_FALSE(c.held);
  ASSERT_EQ(c.differences.size(), 3u);
  EXPECT_EQ(c.differences[0], "the target counted 79 answered, the tool 80: 1 the target did not count");
  EXPECT_NE(c.differences[1].find("1 refused with mailbox_full, the tool 0"), std::string::npos);
  EXPECT_NE(c.differences[1].find("--other-traffic"), std::string::npos);
  EXPECT_NE(c.differences[2].find("19 refused with rate_limited, the tool 20"), std::string::npos);
}

TEST(TargetSide, EachRequestTheToolGaveUpOnWidensTheCheckByOne) {
  auto tool = tool_of_100();
  tool.accepted = 78;
  tool.unanswered = 2;  // timed out: the target answered them late
  target_counters delta{{"listener.requests_answered", 81},
                        {"listener.rejects_sent.rate_limited", 20}};
  EXPECT_TRUE(check_accounting(tool, delta, false).held);
  delta["listener.requests_answered"] = 82;  // one more than could be
  auto c = check_accounting(tool, delta, false);
  EXPECT_FALSE(c.held);
  EXPECT_NE(c.differences[0].find("gave up on 2"), std::string::npos) << c.differences[0];
}

TEST(TargetSide, OtherTrafficNeedsOnlyAtLeastTheToolsCounts) {
  auto tool = tool_of_100();
  target_counters delta{{"listener.requests_answered", 500},
                        {"listener.rejects_sent.rate_limited", 40},
                        {"listener.rejects_sent.too_many_inflight", 3}};
  EXPECT_FALSE(check_accounting(tool, delta, false).held);
  EXPECT_TRUE(check_accounting(tool, delta, true).held);
  // Fewer than the tool saw is a mismatch however much else the target served.
  delta["listener.rejects_sent.rate_limited"] = 10;
  EXPECT_FALSE(check_accounting(tool, delta, true).held);
}

TEST(TargetSide, TheToolsOwnRefusedStatsRequestsAreNotCountedAgainstIt) {
  auto tool = tool_of_100();
  tool.own_refused["rate_limited"] = 2;
  target_counters delta{{"listener.requests_answered", 81},
                        {"listener.rejects_sent.rate_limited", 22}};
  EXPECT_TRUE(check_accounting(tool, delta, false).held);
}

TEST(TargetSide, TheProcessListeningOnAPortIsFoundAndSampled) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  std::string why;
  auto pid = find_listening_pid(ntohs(addr.sin_port), why);
  ::close(fd);
  ASSERT_TRUE(pid) << why;
  EXPECT_EQ(*pid, ::getpid());
  auto s = sample_process(*pid);
  ASSERT_TRUE(s);
  EXPECT_GT(s->rss_bytes, 0u);
  EXPECT_GE(s->peak_rss_bytes, s->rss_bytes);
  // Closed now: nothing listens there any more.
  EXPECT_FALSE(find_listening_pid(ntohs(addr.sin_port), why));
  EXPECT_NE(why.find("no socket listens"), std::string::npos);
}

TEST(TargetSide, LoopbackAndThisMachinesAddressesAreLocal) {
  EXPECT_TRUE(is_local_host("127.0.0.1"));
  EXPECT_TRUE(is_local_host("localhost"));
  EXPECT_TRUE(is_local_host("::1"));
  EXPECT_FALSE(is_local_host("192.0.2.1"));  // TEST-NET-1: no machine has it
}

} // namespace
} // namespace levee::load
