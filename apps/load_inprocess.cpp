#include "apps/load_inprocess.hpp"

#include <condition_variable>
#include <mutex>
#include <thread>

#include <caf/all.hpp>

#include "actors/caf_error.hpp"
#include "actors/limited_actor.hpp"
#include "actors/runtime.hpp"
#include "actors/synthetic.hpp"
#include "limits/config_file.hpp"

namespace levee::apps {

namespace {

using namespace std::chrono;

/// A send handed to a relay by a sending thread.
using relay_send_atom = caf::atom_constant<caf::atom("ld_send")>;

/// Answers of one connection, filled by its relay actor and taken by its sending thread.
struct answer_box {
  std::mutex m;
  std::condition_variable ready;
  std::vector<inprocess_answer> answers;

  void push(inprocess_answer a) {
    {
      std::lock_guard<std::mutex> lock{m};
      answers.push_back(std::move(a));
    }
    ready.notify_one();
  }
};

/// Forwards each send to `target` as a request (so the target sees one requester per
/// connection) and files its answer: the target's rejection as it made it, or, for a CAF
/// error that is no Levee rejection (the relay's own timeout), one saying so.
caf::behavior relay(caf::event_based_actor* self, caf::actor target,
                    std::shared_ptr<answer_box> box, milliseconds timeout) {
  return {
    [=](relay_send_atom, uint64_t id, const std::string& payload) {
      self->request(target, timeout, query_atom::value, payload)
        .then([=](uint64_t) { box->push({id, std::nullopt}); },
              [=](caf::error& err) {
                auto r = rejection_from(err);
                if (!r) {
                  r.emplace();
                  r->code = code::deadline_exceeded;
                  r->detail = "the in-process target did not answer: " + to_string(err);
                }
                box->push({id, std::move(r)});
              });
    },
  };
}

class relay_connection final : public inprocess_target::connection {
public:
  relay_connection(caf::actor_system& sys, const caf::actor& target, milliseconds timeout)
      : box_(std::make_shared<answer_box>()), relay_(sys.spawn(relay, target, box_, timeout)) {}
  ~relay_connection() override { caf::anon_send_exit(relay_, caf::exit_reason::user_shutdown); }

  uint64_t send(const std::string& payload) override {
    auto id = ++next_id_;
    caf::anon_send(relay_, relay_send_atom::value, id, payload);
    return id;
  }

  void poll(std::vector<inprocess_answer>& out, milliseconds wait) override {
    std::unique_lock<std::mutex> lock{box_->m};
    box_->ready.wait_for(lock, wait, [&] { return !box_->answers.empty(); });
    for (auto& a : box_->answers)
      out.push_back(std::move(a));
    box_->answers.clear();
  }

private:
  std::shared_ptr<answer_box> box_;
  caf::actor relay_;
  uint64_t next_id_ = 0;
};

} // namespace

result<limits_config> inprocess_limits(const std::string& config_path,
                                       const std::vector<std::string>& overrides) {
  flat_config flat;
  if (!config_path.empty()) {
    auto loaded = load_config_file(config_path);
    if (!loaded)
      return loaded.error();
    flat = std::move(*loaded);
  }
  if (auto st = apply_overrides(flat, overrides); !st)
    return st;
  return limits_from_config(flat);
}

/// Levee's errors rendered as rejections, CAF's console log off (as `levee demo`).
struct system_config : caf::actor_system_config {
  system_config() {
    levee::add_error_category(*this);
    set("logger.console", caf::atom("none"));
  }
};

struct inprocess_target::impl {
  impl(std::string k, limits_config l, microseconds service_time, milliseconds t)
      : kind(std::move(k)), limits(std::move(l)), rt(limits), sys(cfg), timeout(t) {
    stats = rt.stats_for(kind);
    actor = spawn_limited<busy_service>(sys, rt, kind, service_time);
  }
  ~impl() { caf::anon_send_exit(actor, caf::exit_reason::user_shutdown); }

  std::string kind;
  limits_config limits;
  // Destroyed after the actor system, which waits for its actors: the runtime must
  // outlive every limited actor.
  runtime rt;
  system_config cfg;
  caf::actor_system sys;
  // The relay gives up a second after the tool does: by then the tool has counted the
  // request a timeout, and a late answer is dropped.
  milliseconds timeout;
  std::shared_ptr<kind_stats> stats;
  caf::actor actor;
};

inprocess_target::inprocess_target(std::string kind, limits_config limits,
                                   microseconds service_time, milliseconds timeout)
    : impl_(std::make_unique<impl>(std::move(kind), std::move(limits), service_time, timeout)) {}

inprocess_target::~inprocess_target() = default;

std::unique_ptr<inprocess_target::connection> inprocess_target::connect() {
  return std::make_unique<relay_connection>(impl_->sys, impl_->actor, impl_->timeout + seconds(1));
}

load::target_counters inprocess_target::counters() const {
  auto s = impl_->stats->snapshot();
  auto prefix = "kinds." + impl_->kind + ".";
  load::target_counters out;
  out[prefix + "accepted"] = s.accepted;
  out[prefix + "processed"] = s.processed;
  out[prefix + "dropped_on_exit"] = s.dropped_on_exit;
  out[prefix + "notices_sent"] = s.notices_sent;
  for (size_t c = 1; c < s.rejected.size(); ++c)
    if (s.rejected[c] > 0)
      out[prefix + "rejected." + std::string{to_string(static_cast<code>(c))}] = s.rejected[c];
  out["node_budget.refusals"] = impl_->rt.budget().rejections();
  return out;
}

load::accounting_names inprocess_target::accounting_names() const {
  auto prefix = "kinds." + impl_->kind + ".";
  return {prefix + "processed", prefix + "rejected."};
}

void inprocess_target::wait_idle(milliseconds bound) const {
  auto until = steady_clock::now() + bound;
  for (;;) {
    auto s = impl_->stats->snapshot();
    if (s.accepted <= s.processed + s.dropped_on_exit || steady_clock::now() >= until)
      return;
    std::this_thread::sleep_for(milliseconds(1));
  }
}

const std::string& inprocess_target::kind() const noexcept { return impl_->kind; }

const actor_limits& inprocess_target::limits() const { return impl_->limits.for_kind(impl_->kind); }

uint64_t inprocess_target::memory_budget_bytes() const noexcept {
  return impl_->limits.memory_budget_bytes;
}

} // namespace levee::apps
