// The polling I/O loop (net/multiplexer.hpp) under real connections on 127.0.0.1: it
// serves requests as CAF's loop does, looks for work for its window before it sleeps,
// sleeps when idle, and stops with its actor system.

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "actors/atoms.hpp"
#include "actors/io_loop.hpp"
#include "actors/caf_error.hpp"
#include "actors/limited_actor.hpp"
#include "actors/placement.hpp"
#include "levee/client.hpp"
#include "net/multiplexer.hpp"
#include "net/listener.hpp"
#include "tests/test_support.hpp"

namespace levee {
namespace {

using namespace std::chrono_literals;

struct IoLoop : ::testing::Test {
  std::unique_ptr<net::system_config> cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::unique_ptr<runtime> rt;
  std::shared_ptr<net::server_context> ctx;
  net::listener lst;
  caf::actor echo;

  void start(int64_t window_us) {
    cfg = std::make_unique<net::system_config>();
    cfg->load<caf::io::middleman, net::polling_multiplexer>();
    cfg->set(net::busy_poll_key, window_us);
    cfg->set("scheduler.max-threads", 2);
    add_error_category(*cfg);
    sys = std::make_unique<caf::actor_system>(*cfg);
    rt = std::make_unique<runtime>(limits_config{});
    ctx = std::make_shared<net::server_context>(net::listener_config{});
    // On the I/O thread itself: a request and its answer are turns of that loop.
    echo = spawn_limited_fun(*sys, *rt, "echo", io_thread_of(*sys),
                             [](limited_actor*) -> caf::behavior {
                               return {[](wire_request_atom, std::string& s) {
                                 return std::move(s);
                               }};
                             });
    ctx->expose("echo", echo);
    auto l = net::start_listener(*sys, ctx, "127.0.0.1", 0);
    ASSERT_TRUE(l.ok()) << l.error().to_string();
    lst = *l;
  }

  void TearDown() override {
    if (!sys)
      return;
    net::stop_listener(lst, *ctx);
    EXPECT_TRUE(test::wait_until([&] { return ctx->stats.connections_open.load() == 0; }));
    caf::anon_send_exit(echo, caf::exit_reason::user_shutdown);
    echo = nullptr;
    lst.acceptor = nullptr;
    sys.reset();  // joins the I/O thread: a loop that does not see the shutdown hangs here
  }

  net::io_loop_stats stats() {
    auto s = net::io_loop_stats_of(*sys);
    EXPECT_TRUE(s.has_value()) << "the middleman does not run a polling_multiplexer";
    return s.value_or(net::io_loop_stats{});
  }

  void round_trips(client& c, int n) {
    for (int i = 0; i < n; ++i) {
      auto payload = "ping " + std::to_string(i);
      auto r = c.request("echo", payload, 10s);
      ASSERT_TRUE(r.ok()) << (r.rejected ? r.rejected->to_string() : "no answer");
      ASSERT_EQ(*r.payload, payload);
    }
  }

  client connect() {
    client_options o;
    o.port = lst.port;
    client c{o};
    EXPECT_TRUE(c.connect().ok());
    return c;
  }
};

TEST_F(IoLoop, AWindowOfZeroIsCafsOwnLoop) {
  start(0);
  auto c = connect();
  round_trips(c, 50);
  auto s = stats();
  EXPECT_EQ(s.window_us, 0u);
  EXPECT_EQ(s.empty_polls, 0u) << "a zero window must never poll";
  EXPECT_EQ(s.sleeps, 0u) << "CAF's loop sleeps in epoll_wait without counting";
}

TEST_F(IoLoop, LooksForWorkThenSleepsOnceIdle) {
  start(2000);
  auto c = connect();
  round_trips(c, 50);
  auto before = stats();
  EXPECT_EQ(before.window_us, 2000u);
  // Nothing more comes: within a window the loop gives up looking and sleeps in
  // epoll_wait, and stays asleep (the connection's next tick is a second away) -- a loop
  // that only counted its sleeps but kept polling would never be asleep for 50 ms.
  ASSERT_TRUE(test::wait_until([&] { return stats().asleep_ns >= 50'000'000; }, 10s))
    << "the I/O loop kept polling an idle node";
  auto idle = stats();
  EXPECT_GT(idle.sleeps, before.sleeps);
  EXPECT_GT(idle.empty_polls, before.empty_polls);
  EXPECT_GT(idle.looked_ns, 0u);
  // And it wakes for the next request as before.
  round_trips(c, 5);
}

TEST_F(IoLoop, RequestsWithinTheWindowNeedNoWakeUp) {
  start(5'000'000);  // 5 s: the requests below come far inside it
  auto c = connect();
  round_trips(c, 5);
  // Between requests the loop looks instead of sleeping.
  auto first = stats();
  ASSERT_TRUE(test::wait_until([&] { return stats().empty_polls > first.empty_polls; }, 10s));
  EXPECT_EQ(stats().asleep_ns, 0u);
  auto before = stats();
  round_trips(c, 200);
  auto after = stats();
  EXPECT_EQ(after.sleeps, before.sleeps) << "the loop slept between requests inside its window";
}

// A message from one actor of the loop to another is a round of the loop; CAF's own loop
// asked epoll for socket events (a system call) between every two rounds. The loop runs
// such rounds back to back: a chain of eight actors passes a message end to end in one
// run (seven rounds after the first actor, woken from outside).
TEST_F(IoLoop, AChainOfActorsOnTheLoopPassesAMessageWithoutLookingAtSocketsBetweenHops) {
  start(0);
  auto where = io_thread_of(*sys);
  std::promise<int> arrived;
  std::vector<caf::actor> chain;
  chain.push_back(spawn_placed_fun(*sys, where,
                                   [&arrived](placed<caf::event_based_actor>*) -> caf::behavior {
                                     return {[&arrived](int hops) { arrived.set_value(hops); }};
                                   }));
  for (int i = 0; i < 7; ++i) {
    auto next = chain.back();
    chain.push_back(spawn_placed_fun(*sys, where,
                                     [next](placed<caf::event_based_actor>* self) -> caf::behavior {
                                       return {[=](int hops) { self->send(next, hops + 1); }};
                                     }));
  }
  auto before = stats();
  caf::anon_send(chain.back(), 0);
  auto done = arrived.get_future();
  ASSERT_EQ(done.wait_for(30s), std::future_status::ready);
  EXPECT_EQ(done.get(), 7);
  // The loop counts a run once it ends, just after the last actor set the promise.
  EXPECT_TRUE(test::wait_until([&] { return stats().longest_posted_run >= 7; }, 10s))
    << "the hops were not run back to back: at most " << stats().longest_posted_run
    << " rounds in a run";
  EXPECT_GE(stats().posted_rounds - before.posted_rounds, 7u);
  for (auto& a : chain)
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
}

// Two actors of the loop that keep messaging each other never leave it without posted
// work; the loop still looks at its sockets every max_posted_rounds rounds, so the
// connections are served meanwhile.
TEST_F(IoLoop, ActorsThatNeverStopMessagingEachOtherDoNotStarveTheConnections) {
  start(0);
  auto where = io_thread_of(*sys);
  // Shared: the two may still play a volley after this test's body has returned.
  auto volleys = std::make_shared<std::atomic<uint64_t>>(0);
  auto player = [volleys](placed<caf::event_based_actor>* self) -> caf::behavior {
    return {[self, volleys](const caf::actor& other) {
      volleys->fetch_add(1);
      self->send(other, caf::actor_cast<caf::actor>(self));
    }};
  };
  auto a = spawn_placed_fun(*sys, where, player);
  auto b = spawn_placed_fun(*sys, where, player);
  caf::anon_send(a, b);
  ASSERT_TRUE(test::wait_until([&] { return volleys->load() > 1000; }, 30s));
  auto c = connect();
  round_trips(c, 20);  // answered while the two play on
  auto s = stats();
  EXPECT_EQ(s.longest_posted_run, net::polling_multiplexer::max_posted_rounds);
  EXPECT_GT(volleys->load(), 1000u);
  caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
}

// Issue 14: another thread wakes an actor of the loop by writing to the loop's wake-up
// pipe, and CAF's write blocks while the pipe is full; with Linux's default pipe (8,192
// pointers) a server of 10,000 connections deadlocked. Here the loop is kept busy while
// another thread wakes ten times that many of its actors, one message each: every one is
// a pointer in the pipe, and the waker must not block.
TEST(IoLoopWakeups, TenTimesAFleetOfActorsWokenWhileTheLoopIsBusyNeverBlockTheWaker) {
  constexpr int64_t actors = 100'000;
  net::system_config cfg;
  cfg.load<caf::io::middleman, net::polling_multiplexer>();
  cfg.set(net::wakeup_slots_key, net::wakeup_slots_needed(actors, 0));
  cfg.set("scheduler.max-threads", 2);
  caf::actor_system sys{cfg};
  auto io = net::io_loop_stats_of(sys);
  ASSERT_TRUE(io.has_value());
  ASSERT_GE(io->wakeup_slots, static_cast<uint64_t>(actors))
    << "the kernel did not size the wake-up pipe (fs.pipe-max-size?)";
  auto where = io_thread_of(sys);
  std::atomic<int64_t> handled{0};
  std::vector<caf::actor> many;
  many.reserve(actors);
  // Launched by their first message: until then nothing of them is in the pipe.
  for (int64_t i = 0; i < actors; ++i)
    many.push_back(spawn_placed_fun<caf::lazy_init>(
      sys, where, [&handled](placed<caf::event_based_actor>*) -> caf::behavior {
        return {[&handled](int) { handled.fetch_add(1); }};
      }));
  std::promise<void> entered, release;
  auto released = release.get_future().share();
  auto busy = spawn_placed_fun(sys, where,
                               [&entered, released](placed<caf::event_based_actor>*) -> caf::behavior {
                                 return {[&entered, released](tick_atom) {
                                   entered.set_value();
                                   released.wait();  // the loop does nothing else meanwhile
                                 }};
                               });
  caf::anon_send(busy, tick_atom::value);
  ASSERT_EQ(entered.get_future().wait_for(60s), std::future_status::ready);
  std::promise<void> all_sent;
  std::thread waker{[&] {
    for (auto& a : many)
      caf::anon_send(a, 1);
    all_sent.set_value();
  }};
  auto sent = all_sent.get_future().wait_for(60s);
  release.set_value();  // whatever happened: the loop drains the pipe and the waker ends
  waker.join();
  EXPECT_EQ(sent, std::future_status::ready)
    << "the waker blocked on the I/O thread's full wake-up pipe";
  EXPECT_TRUE(test::wait_until([&] { return handled.load() == actors; }, 60s))
    << handled.load() << " of " << actors << " woken actors ran";
  for (auto& a : many)
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(busy, caf::exit_reason::user_shutdown);
}

} // namespace
} // namespace levee
