// Benchmarks of the limits core and the CAF actor gate. Every figure that has a target is
// printed as a ratio against a baseline measured in the same run:
//
//   fire-and-forget and pipelined request/response, 1 KiB: limited actor vs plain CAF actor
//   cost of a refused send vs an accepted message
//   overload at 10x the service rate: goodput vs the unloaded rate; peak RSS vs budget
//
// Run: scripts/bench (or build/bench/limits_bench); figures go in bench/RESULTS.md.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <caf/all.hpp>

#include "actors/synthetic.hpp"
#include "levee/levee.hpp"
#include "limits/process_memory.hpp"

namespace {

using namespace std::chrono;
using go_atom = caf::atom_constant<caf::atom("go")>;
using levee::query_atom;
using levee::stop_atom;

constexpr size_t payload_bytes = 1024;

// Figures kept for the ratio table printed after all benchmarks ran.
std::map<std::string, double>& figures() {
  static std::map<std::string, double> f;
  return f;
}

// A count that a thread can wait on without spinning (a spinning waiter would steal one
// of the two cores from the actors being measured), with a bound.
struct completion {
  std::atomic<uint64_t> count{0};
  std::atomic<uint64_t> target{UINT64_MAX};
  std::mutex mtx;
  std::condition_variable cv;

  void add() {
    if (count.fetch_add(1, std::memory_order_acq_rel) + 1 == target.load(std::memory_order_acquire)) {
      std::lock_guard<std::mutex> guard{mtx};
      cv.notify_all();
    }
  }

  bool wait_for(uint64_t n, seconds bound = seconds(60)) {
    std::unique_lock<std::mutex> guard{mtx};
    target.store(n, std::memory_order_release);
    return cv.wait_for(guard, bound, [&] { return count.load(std::memory_order_acquire) >= n; });
  }
};

levee::limits_config roomy_limits() {
  // Bounds far above what a run queues, so that limited and plain do the same work and
  // the difference is the cost of the gate itself.
  levee::limits_config cfg;
  cfg.memory_budget_bytes = 4ull << 30;
  auto& l = cfg.default_limits;
  l.mailbox_capacity = 1u << 20;
  l.mailbox_capacity_bytes = 2ull << 30;
  l.max_message_bytes = 64 * 1024;
  l.max_inflight_per_requester = 1024;
  return cfg;
}

struct bench_env {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::unique_ptr<levee::runtime> rt;
  explicit bench_env(levee::limits_config limits) {
    levee::add_error_category(cfg);
    sys = std::make_unique<caf::actor_system>(cfg);
    rt = std::make_unique<levee::runtime>(std::move(limits));
  }
};

// -- sinks and echoes, plain and limited, with identical behaviors ----------------------

caf::behavior sink_behavior(completion* done) {
  return {
    [=](const std::string&) { done->add(); },
    [](query_atom, const std::string& s) { return s.size(); },
  };
}

class limited_sink : public levee::limited_actor {
public:
  limited_sink(caf::actor_config& cfg, completion* done) : limited(cfg), done_(done) {}
  caf::behavior make_behavior() override { return sink_behavior(done_); }

private:
  completion* done_;
};

caf::actor spawn_sink(bench_env& env, bool limited, completion* done) {
  if (limited)
    return levee::spawn_limited<limited_sink>(*env.sys, *env.rt, "sink", done);
  return env.sys->spawn([=](caf::event_based_actor*) { return sink_behavior(done); });
}

// -- limited vs plain, interleaved ------------------------------------------------------
//
// On two cores, run-to-run drift is larger than the difference being measured, so each
// comparison alternates batches to a plain and to a limited actor in one benchmark and
// reports the median of the per-round ratios, plus both rates.

caf::behavior driver(caf::event_based_actor* self, caf::actor target, completion* done) {
  auto payload = std::make_shared<std::string>(payload_bytes, 'r');
  auto remaining = std::make_shared<uint64_t>(0);
  auto issue = std::make_shared<std::function<void()>>();
  *issue = [=] {
    if (*remaining == 0)
      return;
    --*remaining;
    self->request(target, caf::infinite, query_atom::value, *payload)
      .then([=](uint64_t) {
        done->add();
        (*issue)();
      });
  };
  return {
    [=](go_atom, uint64_t n, uint32_t window) {
      *remaining = n;
      for (uint32_t i = 0; i < window; ++i)
        (*issue)();
    },
  };
}

double median(std::vector<double> xs) {
  std::sort(xs.begin(), xs.end());
  return xs.empty() ? 0.0 : xs[xs.size() / 2];
}

/// One side of a comparison: a target actor and a way to push one batch through it.
struct side {
  completion done;
  caf::actor target;
  caf::actor driver;  // pipelined only
  std::vector<double> rates;
};

template <class RunBatch>
void compare(benchmark::State& state, const char* name, RunBatch run_batch, side& plain,
             side& limited) {
  const uint64_t batch = 20000;
  std::vector<double> ratios;
  for (auto _ : state) {
    for (int round = 0; round < 31; ++round) {
      double rate[2];
      side* sides[2] = {&plain, &limited};
      // Alternate which side goes first, so neither always runs on a warmer machine.
      for (int k = 0; k < 2; ++k) {
        auto i = (round + k) % 2;
        auto start = steady_clock::now();
        if (!run_batch(*sides[i], batch))
          state.SkipWithError("a batch did not finish");
        rate[i] = static_cast<double>(batch) / duration<double>(steady_clock::now() - start).count();
        sides[i]->rates.push_back(rate[i]);
      }
      ratios.push_back(rate[1] / rate[0]);
    }
  }
  state.counters["plain_per_s"] = median(plain.rates);
  state.counters["limited_per_s"] = median(limited.rates);
  state.counters["ratio"] = median(ratios);
  figures()[std::string{name} + ".ratio"] = median(ratios);
  figures()[std::string{name} + ".plain"] = median(plain.rates);
  figures()[std::string{name} + ".limited"] = median(limited.rates);
}

void BM_FireAndForget_LimitedVsPlain(benchmark::State& state) {
  bench_env env{roomy_limits()};
  side plain, limited;
  plain.target = spawn_sink(env, false, &plain.done);
  limited.target = spawn_sink(env, true, &limited.done);
  std::string payload(payload_bytes, 'p');
  caf::scoped_actor self{*env.sys};
  compare(state, "fire_and_forget",
          [&](side& s, uint64_t batch) {
            auto target = s.done.count.load() + batch;
            for (uint64_t i = 0; i < batch; ++i)
              self->send(s.target, payload);
            return s.done.wait_for(target);
          },
          plain, limited);
  self->send_exit(plain.target, caf::exit_reason::user_shutdown);
  self->send_exit(limited.target, caf::exit_reason::user_shutdown);
}
BENCHMARK(BM_FireAndForget_LimitedVsPlain)->Iterations(1)->Unit(benchmark::kMillisecond);

void BM_Pipelined_LimitedVsPlain(benchmark::State& state) {
  const auto window = static_cast<uint32_t>(state.range(0));
  bench_env env{roomy_limits()};
  side plain, limited;
  completion unused_plain, unused_limited;
  plain.target = spawn_sink(env, false, &unused_plain);
  limited.target = spawn_sink(env, true, &unused_limited);
  plain.driver = env.sys->spawn(driver, plain.target, &plain.done);
  limited.driver = env.sys->spawn(driver, limited.target, &limited.done);
  compare(state, window == 64 ? "pipelined" : "pipelined256",
          [&](side& s, uint64_t batch) {
            auto target = s.done.count.load() + batch;
            caf::anon_send(s.driver, go_atom::value, batch, window);
            return s.done.wait_for(target);
          },
          plain, limited);
  for (auto* s : {&plain, &limited}) {
    caf::anon_send_exit(s->driver, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(s->target, caf::exit_reason::user_shutdown);
  }
}
BENCHMARK(BM_Pipelined_LimitedVsPlain)->Arg(64)->Arg(256)->Iterations(1)->Unit(benchmark::kMillisecond);

// -- the cost of a refusal ---------------------------------------------------------------

// A limited actor held in its handler, its mailbox full: every further send is refused.
class held_sink : public levee::limited_actor {
public:
  held_sink(caf::actor_config& cfg, std::atomic<bool>* release, completion* entered)
    : limited(cfg), release_(release), entered_(entered) {}
  caf::behavior make_behavior() override {
    return {[this](const std::string&) {
      entered_->add();
      while (!release_->load())
        std::this_thread::yield();
    }};
  }

private:
  std::atomic<bool>* release_;
  completion* entered_;
};

void rejected_send(benchmark::State& state, bool from_actor) {
  auto limits = roomy_limits();
  limits.default_limits.mailbox_capacity = 16;
  bench_env env{limits};
  std::atomic<bool> release{false};
  completion entered;
  auto held = levee::spawn_limited<held_sink>(*env.sys, *env.rt, "held", &release, &entered);
  caf::anon_send(held, std::string{"hold"});
  entered.wait_for(1);
  for (int i = 0; i < 15; ++i)  // with the one being handled: the mailbox is full
    caf::anon_send(held, std::string{"fill"});
  std::string payload(payload_bytes, 'x');
  caf::scoped_actor self{*env.sys};
  for (auto _ : state) {
    if (from_actor)
      self->send(held, payload);  // refused; folded into this sender's one notice
    else
      caf::anon_send(held, payload);
  }
  state.SetItemsProcessed(state.iterations());
  auto s = env.rt->stats_for("held")->snapshot();
  if (s.rejected_total() != static_cast<uint64_t>(state.iterations()))
    state.SkipWithError("not every send was refused");
  release = true;
  caf::anon_send_exit(held, caf::exit_reason::user_shutdown);
}

void BM_RejectedSend_Anonymous(benchmark::State& state) { rejected_send(state, false); }
void BM_RejectedSend_FromActor(benchmark::State& state) { rejected_send(state, true); }
BENCHMARK(BM_RejectedSend_Anonymous)->MinTime(1);
BENCHMARK(BM_RejectedSend_FromActor)->MinTime(1);

// -- overload: a 50 us service offered 10x its rate -------------------------------------

void BM_Overload10x(benchmark::State& state) {
  const microseconds work{50};
  auto limits = roomy_limits();
  limits.memory_budget_bytes = 8 << 20;
  limits.kinds.emplace("service", [] {
    auto l = levee::actor_limits::defaults();
    l.mailbox_capacity = 256;
    l.mailbox_capacity_bytes = 1 << 20;
    l.max_inflight_per_requester = 256;
    return l;
  }());
  bench_env env{limits};
  auto svc = levee::spawn_limited<levee::busy_service>(*env.sys, *env.rt, "service", work);
  auto stats = env.rt->stats_for("service");
  for (auto _ : state) {
    // Unloaded: a driver keeps 64 queries in flight — the service is always busy, nothing
    // is refused. Its rate is the service's capacity on this machine.
    completion done;
    auto drv = env.sys->spawn(driver, svc, &done);
    auto p0 = stats->snapshot().processed;
    auto t0 = steady_clock::now();
    caf::anon_send(drv, go_atom::value, uint64_t{40000}, uint32_t{64});
    std::this_thread::sleep_for(seconds(2));
    auto unloaded = static_cast<double>(stats->snapshot().processed - p0)
                    / duration<double>(steady_clock::now() - t0).count();
    caf::anon_send_exit(drv, caf::exit_reason::user_shutdown);
    while (stats->snapshot().queued_messages > 0)
      std::this_thread::sleep_for(milliseconds(1));

    // Overloaded: flooders offer 10x the nominal rate (1 / 50 us = 20k msgs/s) for 3 s.
    levee::reset_peak_rss();
    auto rss0 = levee::peak_rss_bytes();
    const int flooders = 4;
    const uint64_t per_tick = 10 * 20000 / 1000 / flooders;  // 1 ms ticks
    std::vector<caf::actor> fl;
    auto before = stats->snapshot();
    auto t1 = steady_clock::now();
    for (int i = 0; i < flooders; ++i)
      fl.push_back(env.sys->spawn(levee::paced_flooder, svc, per_tick, payload_bytes, milliseconds(1)));
    std::this_thread::sleep_for(seconds(3));
    auto after = stats->snapshot();
    auto secs = duration<double>(steady_clock::now() - t1).count();
    for (auto& f : fl)
      caf::anon_send(f, stop_atom::value);
    auto goodput = static_cast<double>(after.processed - before.processed) / secs;
    auto offered = static_cast<double>(after.accepted + after.rejected_total() - before.accepted
                                       - before.rejected_total())
                   / secs;
    auto rss_growth = static_cast<double>(levee::peak_rss_bytes() - rss0);
    state.counters["unloaded_per_s"] = unloaded;
    state.counters["offered_per_s"] = offered;
    state.counters["goodput_per_s"] = goodput;
    state.counters["goodput_ratio"] = goodput / unloaded;
    state.counters["peak_rss_growth_MiB"] = rss_growth / (1 << 20);
    state.counters["budget_MiB"] = static_cast<double>(limits.memory_budget_bytes) / (1 << 20);
    figures()["overload.unloaded"] = unloaded;
    figures()["overload.offered"] = offered;
    figures()["overload.goodput"] = goodput;
    figures()["overload.rss_growth"] = rss_growth;
    figures()["overload.budget"] = static_cast<double>(limits.memory_budget_bytes);
    figures()["overload.budget_high_water"] = static_cast<double>(env.rt->budget().high_water());
    for (auto& f : fl)
      caf::anon_send_exit(f, caf::exit_reason::user_shutdown);
  }
  caf::anon_send_exit(svc, caf::exit_reason::user_shutdown);
}
BENCHMARK(BM_Overload10x)->Iterations(1)->Unit(benchmark::kSecond);

// -- the plain C++ checks alone -----------------------------------------------------------

void BM_TokenBucket_TryAcquire(benchmark::State& state) {
  static levee::token_bucket bucket{levee::steady_clock_source::instance(), 1ull << 40, 1ull << 40};
  for (auto _ : state)
    benchmark::DoNotOptimize(bucket.try_acquire(1));
}
BENCHMARK(BM_TokenBucket_TryAcquire)->Threads(1)->Threads(2);

void BM_Gate_AdmitRelease(benchmark::State& state) {
  static levee::runtime rt{roomy_limits()};
  static auto g = rt.make_gate("gate");
  for (auto _ : state) {
    levee::gate_ticket t{payload_bytes, 0};
    auto v = g->admit(t);
    benchmark::DoNotOptimize(v);
    g->on_handling(t);
    g->on_handled(t);
  }
}
BENCHMARK(BM_Gate_AdmitRelease)->Threads(1)->Threads(2);

// -- ratio table -------------------------------------------------------------------------

class recording_reporter : public benchmark::ConsoleReporter {
public:
  recording_reporter() : ConsoleReporter(OO_Tabular) {}
  void ReportRuns(const std::vector<Run>& runs) override {
    for (auto& run : runs) {
      auto name = run.benchmark_name();
      if (auto it = run.counters.find("items_per_second"); it != run.counters.end())
        figures()[name + ".items_per_second"] = it->second;
      figures()[name + ".ns"] = run.GetAdjustedRealTime()
                                * (run.time_unit == benchmark::kMillisecond ? 1e6
                                   : run.time_unit == benchmark::kMicrosecond ? 1e3 : 1.0);
    }
    ConsoleReporter::ReportRuns(runs);
  }
};

double figure(const std::string& key) {
  auto it = figures().find(key);
  return it == figures().end() ? 0.0 : it->second;
}

void print_ratio(const char* what, double value, double baseline, const char* target) {
  if (value == 0 || baseline == 0)
    return;
  std::printf("  %-58s %8.2fx   (target %s)\n", what, value / baseline, target);
}

} // namespace

int main(int argc, char** argv) {
  levee::set_log_sink([](std::string_view) {});  // refusals are the point here
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv))
    return 1;
  recording_reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();

  std::printf("\nRatios (same run):\n");
  print_ratio("fire-and-forget 1 KiB, limited / plain throughput (median)",
              figure("fire_and_forget.ratio"), 1.0, ">= 0.9");
  print_ratio("pipelined request/response x64, limited / plain (median)",
              figure("pipelined.ratio"), 1.0, ">= 0.9");
  print_ratio("pipelined request/response x256, limited / plain (median)",
              figure("pipelined256.ratio"), 1.0, ">= 0.9");
  auto accepted_ns = 1e9 / figure("fire_and_forget.limited");
  print_ratio("refused anonymous send / accepted message (time)",
              figure("BM_RejectedSend_Anonymous/min_time:1.000.ns"), accepted_ns, "< 1");
  print_ratio("refused send from an actor / accepted message (time)",
              figure("BM_RejectedSend_FromActor/min_time:1.000.ns"), accepted_ns, "< 1");
  print_ratio("overload 10x: goodput / unloaded rate", figure("overload.goodput"),
              figure("overload.unloaded"), ">= 0.9");
  print_ratio("overload 10x: peak RSS growth / node budget", figure("overload.rss_growth"),
              figure("overload.budget"), "bounded, <= 1");
  std::printf("  overload: offered %.0f msgs/s, unloaded %.0f msgs/s, goodput %.0f msgs/s, "
              "budget high water %.0f bytes\n",
              figure("overload.offered"), figure("overload.unloaded"), figure("overload.goodput"),
              figure("overload.budget_high_water"));
  return 0;
}

namespace {
void BM_TicketOf(benchmark::State& state) {
  auto el = caf::make_mailbox_element(nullptr, caf::make_message_id(), {}, levee::query_atom::value,
                                      std::string(1024, 'x'));
  for (auto _ : state) {
    levee::gate_ticket t;
    auto gated = levee::detail::gated_ticket(*el, nullptr, t);
    benchmark::DoNotOptimize(gated);
    benchmark::DoNotOptimize(t);
  }
}
BENCHMARK(BM_TicketOf);  // what a limited actor computes per message, at enqueue and again at take-up
} // namespace
