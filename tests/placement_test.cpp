// The placement seam (actors/placement.hpp): an ordinary limited actor placed on the I/O
// thread runs on CAF's multiplexer thread, whoever wakes it; one on a worker does not;
// the gate refuses alike in both places; and an actor on the I/O thread that ends with
// messages still queued (its own delayed ones among them) is freed and lets the system
// stop.

#include <gtest/gtest.h>

#include <deque>
#include <functional>
#include <memory>
#include <thread>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "actors/broker.hpp"
#include "actors/io_loop.hpp"
#include "tests/actor_test_support.hpp"

namespace levee {
namespace {

using namespace std::chrono_literals;

/// (where_atom) -> uint64_t: a hash of the thread that handles it.
using where_atom = caf::atom_constant<caf::atom("where")>;
/// (relay_atom, target) -> uint64_t: asks `target` where_atom from a worker actor.
using relay_atom = caf::atom_constant<caf::atom("relay")>;
/// (later_atom) -> uint64_t: answers where its own delayed message was handled.
using later_atom = caf::atom_constant<caf::atom("later")>;

uint64_t this_thread_hash() {
  return std::hash<std::thread::id>{}(std::this_thread::get_id());
}

/// Says where it runs: at once, and from a message it sends itself through CAF's clock.
/// `Self` is a limited actor, or a placed one without limits.
template <class Self>
caf::behavior where_am_i(Self* self) {
  auto waiting = std::make_shared<std::deque<caf::response_promise>>();
  return {
    [](where_atom) { return this_thread_hash(); },
    [=](later_atom) {
      waiting->push_back(self->make_response_promise());
      self->delayed_send(self, 1ms, later_atom::value, true);
      return waiting->back();
    },
    [=](later_atom, bool) {
      waiting->front().deliver(this_thread_hash());
      waiting->pop_front();
    },
  };
}

struct PlacementTest : ::testing::TestWithParam<bool> {
  std::unique_ptr<caf::actor_system_config> cfg;
  std::unique_ptr<caf::actor_system> sys;
  manual_clock clock;
  std::unique_ptr<runtime> rt;
  test::latch release;
  test::event_counter handled;
  test::event_counter entered;

  void SetUp() override {
    set_log_sink([](std::string_view) {});
    cfg = test::make_system_config();
    cfg->load<caf::io::middleman>();
    sys = std::make_unique<caf::actor_system>(*cfg);
    auto svc = actor_limits::defaults();
    svc.mailbox_capacity = 4;
    limits_config lc;
    lc.default_limits = svc;
    lc.kinds.emplace("svc", svc);
    rt = std::make_unique<runtime>(lc, clock);
  }

  void TearDown() override {
    release.open();
    sys.reset();  // joins the multiplexer thread: an actor that kept it busy hangs here
  }

  bool on_io_thread() const { return GetParam(); }
  placement where() { return on_io_thread() ? io_thread_of(*sys) : placement::worker(); }

  /// The multiplexer thread, as a broker (which CAF always runs there) reports it.
  uint64_t multiplexer_thread() {
    auto b = sys->middleman().spawn_broker([](levee::broker*) -> caf::behavior {
      return {[](where_atom) { return this_thread_hash(); }};
    });
    auto id = ask<uint64_t>(b, where_atom::value);
    caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
    return id;
  }

  template <class T, class Dest, class... Ts>
  T ask(const Dest& dest, Ts&&... xs) {
    caf::scoped_actor self{*sys};
    T out{};
    self->request(dest, 30s, std::forward<Ts>(xs)...)
      .receive([&](T& x) { out = x; },
               [&](caf::error& err) { ADD_FAILURE() << sys->render(err); });
    return out;
  }
};

// Woken by a thread outside CAF (a scoped actor), by a worker actor and by CAF's clock: on
// the I/O thread the handler always runs on the multiplexer thread; on a worker never.
// Alike for a limited actor and a placed one without limits (a proxyer, say).
TEST_P(PlacementTest, RunsWhereItWasPlacedWhoeverWakesIt) {
  auto mux = multiplexer_thread();
  auto limited = spawn_limited_fun(*sys, *rt, "svc", where(), where_am_i<limited_actor>);
  EXPECT_EQ(gate_of(limited)->kind(), "svc");
  auto unlimited = spawn_placed_fun(*sys, where(), where_am_i<placed<caf::event_based_actor>>);
  EXPECT_EQ(gate_of(unlimited), nullptr);
  auto relay = sys->spawn([](caf::event_based_actor* self) -> caf::behavior {
    return {[=](relay_atom, const caf::actor& target) {
      return self->delegate(target, where_atom::value);
    }};
  });
  auto relay_from_worker = sys->spawn([](caf::event_based_actor* self) -> caf::behavior {
    return {[=](relay_atom, const caf::actor& target) -> caf::result<uint64_t> {
      auto rp = self->make_response_promise<uint64_t>();
      self->request(target, 30s, where_atom::value)
        .then([=](uint64_t id) mutable { rp.deliver(id); },
              [=](caf::error& err) mutable { rp.deliver(std::move(err)); });
      return rp;
    }};
  });
  for (auto& a : {limited, unlimited}) {
    for (int i = 0; i < 20; ++i) {
      std::vector<uint64_t> seen{ask<uint64_t>(a, where_atom::value),
                                 ask<uint64_t>(relay, relay_atom::value, a),
                                 ask<uint64_t>(relay_from_worker, relay_atom::value, a),
                                 ask<uint64_t>(a, later_atom::value)};
      for (auto id : seen) {
        ASSERT_NE(id, 0u);
        if (on_io_thread())
          ASSERT_EQ(id, mux) << "round " << i;
        else
          ASSERT_NE(id, mux) << "round " << i;
      }
    }
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  }
  caf::anon_send_exit(relay, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(relay_from_worker, caf::exit_reason::user_shutdown);
}

// The gate runs in the sender's enqueue wherever the actor runs: a full mailbox refuses
// the next request with mailbox_full, even while the actor holds the I/O thread.
TEST_P(PlacementTest, TheGateRefusesAsOnAWorker) {
  auto svc = spawn_limited<test::held_service>(*sys, *rt, "svc", where(), &release, &handled,
                                               &entered);
  caf::anon_send(svc, std::string{"hold"});
  ASSERT_TRUE(entered.wait_for_at_least(1));
  for (int i = 0; i < 3; ++i)
    caf::anon_send(svc, std::string(10, 'x'));
  caf::scoped_actor self{*sys};
  std::optional<rejection> refused;
  self->request(svc, 30s, std::string{"one too many"})
    .receive([](uint64_t) { ADD_FAILURE() << "a request beyond the mailbox bound was taken"; },
             [&](caf::error& err) { refused = rejection_from(err); });
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->code, code::mailbox_full);
  EXPECT_EQ(refused->observed, 5u);
  EXPECT_EQ(refused->max, 4u);
  release.open();
  ASSERT_TRUE(handled.wait_for_at_least(4));
  // The bound is free again once the queue is handled.
  EXPECT_EQ(ask<uint64_t>(svc, std::string{"abc"}), 3u);
  EXPECT_EQ(gate_of(svc)->stats().rejected(code::mailbox_full), 1u);
  caf::anon_send_exit(svc, caf::exit_reason::user_shutdown);
}

/// Holds `alive` as long as the actor exists. "hold, then end" blocks its handler until
/// `release` opens, then ends the actor; where_atom also sends itself a message 5 ms later.
class mortal : public limited_actor {
public:
  mortal(caf::actor_config& cfg, test::latch* release, test::event_counter* entered,
         std::shared_ptr<int> alive)
    : limited_actor(cfg), release_(release), entered_(entered), alive_(std::move(alive)) {}

  caf::behavior make_behavior() override {
    return {
      [this](const std::string& s) -> uint64_t {
        if (s == "hold, then end") {
          entered_->add();
          release_->wait();
          quit(caf::exit_reason::user_shutdown);
        }
        return s.size();
      },
      [this](where_atom) {
        delayed_send(this, 5ms, std::string{"tick"});
        return this_thread_hash();
      },
    };
  }

private:
  test::latch* release_;
  test::event_counter* entered_;
  std::shared_ptr<int> alive_;
};

// Ending while requests, plain messages and its own delayed message are queued (CAF's
// clock holds that one and delivers it after the end): the requests are answered with
// request_receiver_down, the actor's memory is freed, and the system stops without
// waiting. A broker's open mailbox once kept such an actor alive for good
// (actors/broker.hpp); a placed actor closes it as every scheduled actor does.
TEST_P(PlacementTest, EndsWithMessagesQueuedAndFreesItself) {
  auto alive = std::make_shared<int>(0);
  auto svc = spawn_limited<mortal>(*sys, *rt, "svc", where(), &release, &entered, alive);
  ask<uint64_t>(svc, where_atom::value);  // arms its delayed tick
  caf::anon_send(svc, std::string{"hold, then end"});
  ASSERT_TRUE(entered.wait_for_at_least(1));
  caf::scoped_actor self{*sys};
  auto queued = self->request(svc, 30s, std::string{"queued"});  // answered on exit, below
  caf::anon_send(svc, std::string{"queued too"});
  auto addr = svc.address();
  svc = nullptr;
  release.open();
  bool bounced = false;
  queued.receive([](uint64_t) { ADD_FAILURE() << "a request queued behind the kill was handled"; },
                 [&](caf::error& err) { bounced = err == caf::sec::request_receiver_down; });
  EXPECT_TRUE(bounced);
  EXPECT_TRUE(test::wait_until([&] { return alive.use_count() == 1; }))
    << "the ended actor's memory is still held (by its own queued messages?)";
  EXPECT_EQ(gate_of(caf::actor_cast<caf::actor>(addr)), nullptr);
}

INSTANTIATE_TEST_SUITE_P(Placements, PlacementTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "IoThread" : "Worker"; });

} // namespace
} // namespace levee
