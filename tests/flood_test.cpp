// Many concurrent senders — threads and actors — flood a slow limited actor.
// Checks: accepted + rejected == sent exactly; the actor processed exactly the accepted
// ones; the mailbox never held more than its capacity (the bound is exact); every refusal
// reached its sender through a notice; peak RSS stays bounded while ~1 GiB is offered.

#include "tests/actor_test_support.hpp"

#include <thread>
#include <vector>

#include <caf/all.hpp>

namespace levee {
namespace {

using test::event_counter;
using test::held_service;
using test::latch;

constexpr uint64_t payload_bytes = 1024;
constexpr int thread_senders = 6;
constexpr int actor_senders = 4;
constexpr uint64_t per_sender = 100'000;  // 10 senders x 100k x 1 KiB ~= 1 GiB offered

using go_atom = caf::atom_constant<caf::atom("go")>;

/// An actor that floods `target` on "go", then sums the notices it gets.
caf::behavior flooder(caf::event_based_actor* self, caf::actor target) {
  auto told = std::make_shared<uint64_t>(0);
  return {
    [=](go_atom go) {
      std::string payload(payload_bytes, 'a');
      for (uint64_t i = 0; i < per_sender; ++i)
        self->send(target, payload);
      return go;
    },
    [=](rejection_notice& n) { *told += n.take(); },
    [=](uint64_t) {},  // the service's answer to each accepted message
    [=](caf::get_atom) { return *told; },
  };
}

TEST(Flood, ThreadsAndActorsOverloadASlowActorWithinItsBounds) {
  set_log_sink([](std::string_view) {});
  auto cfg = test::make_system_config();
  caf::actor_system sys{*cfg};
  limits_config lc;
  lc.memory_budget_bytes = 64 * 1024 * 1024;
  auto svc_limits = actor_limits::defaults();
  svc_limits.mailbox_capacity = 2000;
  svc_limits.mailbox_capacity_bytes = 4 * 1024 * 1024;
  lc.kinds.emplace("svc", svc_limits);
  ASSERT_TRUE(validate(lc).ok());
  runtime rt{lc};
  latch release;
  event_counter handled;
  event_counter entered;
  auto svc = spawn_limited<held_service>(sys, rt, "svc", &release, &handled, &entered);
  caf::anon_send(svc, std::string{"hold"});  // the actor is busy until the flood is over
  ASSERT_TRUE(entered.wait_for_at_least(1));

  test::reset_peak_rss();
  auto rss_before = test::current_rss_bytes();

  std::vector<caf::actor> flooders;
  for (int i = 0; i < actor_senders; ++i)
    flooders.push_back(sys.spawn(flooder, svc));
  std::atomic<uint64_t> told_threads{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < thread_senders; ++t)
    threads.emplace_back([&] {
      caf::scoped_actor self{sys};
      std::string payload(payload_bytes, 't');
      for (uint64_t i = 0; i < per_sender; ++i)
        self->send(svc, payload);
      // Notices are enqueued synchronously by send(): whatever was refused is already
      // announced in this mailbox.
      uint64_t told = 0;
      bool more = true;
      while (more)
        self->receive([&](rejection_notice& n) { told += n.take(); },
                      caf::after(std::chrono::seconds(0)) >> [&] { more = false; });
      told_threads += told;
    });
  {
    caf::scoped_actor self{sys};
    for (auto& f : flooders)
      self->request(f, std::chrono::seconds(120), go_atom::value)
        .receive([](go_atom) {}, [](caf::error& e) { FAIL() << to_string(e); });
  }
  for (auto& t : threads)
    t.join();

  auto g = gate_of(svc);
  auto during = rt.stats_for("svc")->snapshot();
  const uint64_t sent = 1 + per_sender * (thread_senders + actor_senders);
  EXPECT_EQ(during.accepted + during.rejected_total(), sent);
  // The handler held its first message the whole time: exactly capacity were accepted.
  EXPECT_EQ(during.accepted, svc_limits.mailbox_capacity);
  EXPECT_EQ(g->depth_high_water(), svc_limits.mailbox_capacity);
  EXPECT_LE(g->bytes_high_water(), svc_limits.mailbox_capacity_bytes);
  EXPECT_LE(rt.budget().high_water(), lc.memory_budget_bytes);

  // Every refusal reached its sender, through one notice per read.
  uint64_t told_actors = 0;
  {
    caf::scoped_actor self{sys};
    for (auto& f : flooders)
      self->request(f, std::chrono::seconds(30), caf::get_atom::value)
        .receive([&](uint64_t n) { told_actors += n; },
                 [](caf::error& e) { FAIL() << to_string(e); });
  }
  EXPECT_EQ(told_threads.load() + told_actors, during.rejected_total());
  EXPECT_LE(during.notices_sent, during.rejected_total());

  release.open();
  ASSERT_TRUE(handled.wait_for_at_least(during.accepted));
  EXPECT_EQ(handled.value(), during.accepted);  // processed exactly the accepted ones

  auto peak_growth = test::peak_rss_bytes() - rss_before;
  std::printf("offered %.2f GiB, accepted %llu, rejected %llu, peak RSS growth %.1f MiB\n",
              static_cast<double>(sent * payload_bytes) / (1 << 30),
              static_cast<unsigned long long>(during.accepted),
              static_cast<unsigned long long>(during.rejected_total()),
              static_cast<double>(peak_growth) / (1 << 20));
  // Queued payload is bounded by 4 MiB; threads, stacks and allocator caches add some.
  EXPECT_LT(peak_growth, 96u * 1024 * 1024);

  caf::anon_send_exit(svc, caf::exit_reason::user_shutdown);
  for (auto& f : flooders)
    caf::anon_send_exit(f, caf::exit_reason::user_shutdown);
}

} // namespace
} // namespace levee
