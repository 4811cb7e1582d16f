#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "limits/bounded_counter.hpp"
#include "limits/node_budget.hpp"

namespace levee {
namespace {

TEST(BoundedCounter, AcceptsUpToTheBoundAndNotOneMore) {
  bounded_counter c{10};
  uint64_t observed = 0;
  ASSERT_TRUE(c.try_add(4, observed));
  ASSERT_TRUE(c.try_add(6, observed));
  EXPECT_EQ(c.value(), 10u);
  ASSERT_FALSE(c.try_add(1, observed));
  EXPECT_EQ(observed, 11u);
  c.sub(3);
  EXPECT_TRUE(c.try_add(3, observed));
  EXPECT_EQ(c.high_water(), 10u);
}

TEST(BoundedCounter, NeverExceedsTheBoundUnderConcurrency) {
  constexpr uint64_t max = 1000;
  bounded_counter c{max};
  std::atomic<uint64_t> added{0}, refused{0}, seen_over{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      uint64_t observed = 0;
      for (int i = 0; i < 50000; ++i) {
        if (c.try_add(3, observed)) {
          added.fetch_add(1);
          if (c.value() > max)
            seen_over.fetch_add(1);
          if (i % 2 == 0)
            c.sub(3);
        } else {
          refused.fetch_add(1);
        }
      }
    });
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(added + refused, 8u * 50000u);
  EXPECT_EQ(seen_over.load(), 0u);
  EXPECT_LE(c.high_water(), max);
  EXPECT_LE(c.value(), max);
}

TEST(NodeBudget, AccountingReturnsToZeroAfterConcurrentUse) {
  node_budget budget{64 * 1024};
  std::atomic<uint64_t> refusals{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      uint64_t observed = 0;
      for (int i = 0; i < 20000; ++i) {
        uint64_t n = 100 + static_cast<uint64_t>((i * 7 + t) % 900);
        if (budget.try_acquire(n, observed))
          budget.release(n);
        else
          refusals.fetch_add(1);
      }
    });
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(budget.in_use(), 0u);
  EXPECT_EQ(budget.rejections(), refusals.load());
  EXPECT_LE(budget.high_water(), 64u * 1024u);
}

TEST(NodeBudget, RefusalReportsWhatWouldHaveBeenInUse) {
  node_budget budget{1000};
  uint64_t observed = 0;
  ASSERT_TRUE(budget.try_acquire(900, observed));
  ASSERT_FALSE(budget.try_acquire(101, observed));
  EXPECT_EQ(observed, 1001u);
  EXPECT_EQ(budget.rejections(), 1u);
  budget.set_max(2000);
  EXPECT_TRUE(budget.try_acquire(101, observed));
}

} // namespace
} // namespace levee

#include "limits/mailbox_bound.hpp"

namespace levee {
namespace {

TEST(MailboxBound, MessagesAndBytesAreBoundedTogether) {
  mailbox_bound b{3, 100};
  uint64_t observed = 0;
  using R = mailbox_bound::result;
  ASSERT_EQ(b.try_add(60, observed), R::added);
  EXPECT_EQ(b.try_add(41, observed), R::too_many_bytes);
  EXPECT_EQ(observed, 101u);
  ASSERT_EQ(b.try_add(40, observed), R::added);
  ASSERT_EQ(b.try_add(0, observed), R::added);
  EXPECT_EQ(b.try_add(0, observed), R::too_many_messages);
  EXPECT_EQ(observed, 4u);
  b.remove(60);
  EXPECT_EQ(b.messages(), 2u);
  EXPECT_EQ(b.bytes(), 40u);
  EXPECT_EQ(b.messages_high_water(), 3u);
  EXPECT_EQ(b.bytes_high_water(), 100u);
}

TEST(MailboxBound, CloseTakesEverythingOutOnceAndRefusesAfter) {
  mailbox_bound b{10, 1000};
  uint64_t observed = 0, messages = 0, bytes = 0;
  b.try_add(7, observed);
  b.try_add(8, observed);
  b.close(messages, bytes);
  EXPECT_EQ(messages, 2u);
  EXPECT_EQ(bytes, 15u);
  EXPECT_TRUE(b.closed());
  EXPECT_EQ(b.try_add(1, observed), mailbox_bound::result::closed);
  EXPECT_EQ(b.would_fit(1, observed), mailbox_bound::result::closed);
  b.close(messages, bytes);
  EXPECT_EQ(messages, 0u);
}

// Senders add while the actor removes; nothing is ever seen above either bound.
TEST(MailboxBound, ExactUnderConcurrentSenders) {
  constexpr uint64_t max_messages = 64, max_bytes = 64 * 100;
  mailbox_bound b{max_messages, max_bytes};
  std::atomic<uint64_t> added{0}, refused{0};
  std::atomic<bool> stop{false};
  std::thread consumer([&] {
    uint64_t removed = 0;
    // Spins on purpose: it races the senders for as long as they send (their 200k adds
    // end it, not a wait for an event), and the machine's speed changes the interleavings
    // it sees, never the outcome.
    while (!stop.load() || removed < added.load()) {
      if (b.messages() > 0) {
        b.remove(100);
        ++removed;
      }
      if (b.messages() > max_messages || b.bytes() > max_bytes)
        ADD_FAILURE() << "over the bound";
    }
  });
  std::vector<std::thread> senders;
  for (int t = 0; t < 4; ++t)
    senders.emplace_back([&] {
      uint64_t observed = 0;
      for (int i = 0; i < 50000; ++i)
        (b.try_add(100, observed) == mailbox_bound::result::added ? added : refused)++;
    });
  for (auto& t : senders)
    t.join();
  stop = true;
  consumer.join();
  EXPECT_EQ(added + refused, 4u * 50000u);
  EXPECT_EQ(b.messages(), 0u);
  EXPECT_EQ(b.bytes(), 0u);
  EXPECT_LE(b.messages_high_water(), max_messages);
  EXPECT_LE(b.bytes_high_water(), max_bytes);
}

} // namespace
} // namespace levee
