#pragma once
// A broker node in a real CAF actor system (with the middleman: the node has its
// listener on 127.0.0.1, port 0) over a temporary data directory, driven the way a
// connection drives it: (wire_request_atom, BrokerCall bytes) from a scoped actor, and
// subscriptions from a sink actor that plays the connection's part (batches, credit,
// cancel). No sleeps: waits are bounded polls on what the sink recorded.

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <unistd.h>

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>

#include "actors/caf_error.hpp"
#include "broker/node.hpp"
#include "net/streams.pb.h"
#include "tests/test_support.hpp"

namespace levee::broker::test {

namespace fs = std::filesystem;
using levee::test::wait_until;

/// An answer: the payload or the refusal.
struct answer {
  std::optional<std::string> payload;
  std::optional<rejection> refused;
  template <class Message>
  Message as() const {
    Message m;
    EXPECT_TRUE(payload && m.ParseFromString(*payload))
      << (refused ? refused->to_string() : std::string{"no answer"});
    return m;
  }
};

/// What a subscription's sink saw.
struct sink_record {
  std::mutex mtx;
  std::vector<wire::MessageBatch> batches;
  std::optional<wire::SubscribeEnd> summary;
  std::optional<rejection> refused;

  size_t batch_count() {
    std::lock_guard<std::mutex> lock{mtx};
    return batches.size();
  }
  bool ended() {
    std::lock_guard<std::mutex> lock{mtx};
    return summary || refused;
  }
  std::vector<std::string> bodies() {
    std::lock_guard<std::mutex> lock{mtx};
    std::vector<std::string> out;
    for (auto& b : batches)
      for (auto& m : b.messages())
        out.push_back(m.body());
    return out;
  }
  std::vector<uint64_t> offsets() {
    std::lock_guard<std::mutex> lock{mtx};
    std::vector<uint64_t> out;
    for (auto& b : batches)
      for (auto& m : b.messages())
        out.push_back(m.offset());
    return out;
  }
};

/// Plays a connection carrying one subscription (tag 1): starts it, records what comes.
inline caf::behavior sink(caf::event_based_actor* self, caf::actor broker,
                          std::shared_ptr<sink_record> out) {
  return {
    [=](wire_stream_atom, std::string& payload, uint64_t batches, uint64_t bytes) {
      self->request(broker, caf::infinite, wire_stream_atom::value, std::move(payload),
                    uint64_t{1}, batches, bytes)
        .then(
          [=](stream_tail& tail, std::string& summary) {
            std::lock_guard<std::mutex> lock{out->mtx};
            for (auto& part : tail) {  // the last batches, when they come with the end
              out->batches.emplace_back();
              out->batches.back().ParseFromString(part);
            }
            out->summary.emplace();
            out->summary->ParseFromString(summary);
          },
          [=](caf::error& err) {
            std::lock_guard<std::mutex> lock{out->mtx};
            out->refused = rejection_from(err).value_or(rejection::of(code::unavailable));
          });
    },
    [=](wire_batch_atom, uint64_t, std::string& part) {
      std::lock_guard<std::mutex> lock{out->mtx};
      out->batches.emplace_back();
      out->batches.back().ParseFromString(part);
    },
    [=](credit_atom, uint64_t batches, uint64_t bytes) {
      self->send(caf::actor_cast<caf::actor>(broker), credit_atom::value, uint64_t{1}, batches,
                 bytes);
    },
    [=](cancel_atom) { self->send(broker, cancel_atom::value, uint64_t{1}); },
  };
}

struct BrokerFixture : ::testing::Test {
  fs::path dir;
  std::unique_ptr<caf::actor_system_config> cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::unique_ptr<runtime> rt;
  std::shared_ptr<broker_node> node;
  limits_config limits;
  broker_options opts;
  std::vector<caf::actor> sinks;

  void SetUp() override {
    dir = fs::temp_directory_path()
          / ("levee-broker-test-" + std::to_string(::getpid()) + "-"
             + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    opts.data_dir = dir.string();
    opts.listen = "127.0.0.1:0";
  }

  void start() {
    cfg = std::make_unique<caf::actor_system_config>();
    cfg->load<caf::io::middleman>();
    cfg->set("scheduler.max-threads", 4);
    add_error_category(*cfg);
    sys = std::make_unique<caf::actor_system>(*cfg);
    rt = std::make_unique<runtime>(limits);
    auto n = start_broker(*sys, *rt, opts, net::listener_config{});
    ASSERT_TRUE(n.ok()) << n.error().to_string();
    node = *n;
  }

  void stop() {
    for (auto& s : sinks)
      caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
    sinks.clear();
    if (node)
      stop_broker(*node);
    node = nullptr;
    sys = nullptr;  // waits for every actor
    rt = nullptr;
  }

  void restart() {
    stop();
    start();
  }

  void TearDown() override {
    stop();
    fs::remove_all(dir);
  }

  answer call(const wire::BrokerCall& c) {
    answer out;
    caf::scoped_actor self{*sys};
    self->request(node->broker, std::chrono::seconds(30), wire_request_atom::value,
                  c.SerializeAsString())
      .receive([&](std::string& payload) { out.payload = std::move(payload); },
               [&](caf::error& err) {
                 out.refused = rejection_from(err).value_or(rejection::of(code::unavailable));
               });
    return out;
  }

  answer raw_call(const std::string& payload) {
    answer out;
    caf::scoped_actor self{*sys};
    self->request(node->broker, std::chrono::seconds(30), wire_request_atom::value, payload)
      .receive([&](std::string& p) { out.payload = std::move(p); },
               [&](caf::error& err) {
                 out.refused = rejection_from(err).value_or(rejection::of(code::unavailable));
               });
    return out;
  }

  answer create(const std::string& name, const std::string& subject,
                std::function<void(wire::CreateStream&)> more = {}) {
    wire::BrokerCall c;
    auto& cs = *c.mutable_create_stream();
    cs.set_name(name);
    cs.set_subject(subject);
    if (more)
      more(cs);
    return call(c);
  }

  answer publish(const std::string& subject, const std::vector<std::string>& bodies,
                 std::function<void(wire::Publish&)> more = {}) {
    wire::BrokerCall c;
    auto& p = *c.mutable_publish();
    p.set_subject(subject);
    for (auto& b : bodies)
      p.add_messages()->set_body(b);
    if (more)
      more(p);
    return call(c);
  }

  wire::StreamInfo info(const std::string& name) {
    wire::BrokerCall c;
    c.mutable_stream_info()->set_name(name);
    return call(c).as<wire::StreamInfo>();
  }

  /// Starts a subscription with a first credit; the sink records what comes.
  std::pair<caf::actor, std::shared_ptr<sink_record>>
  subscribe(const wire::Subscribe& s, uint64_t batches = 1000, uint64_t bytes = 64u << 20) {
    auto rec = std::make_shared<sink_record>();
    auto a = sys->spawn(sink, caf::actor_cast<caf::actor>(node->broker), rec);
    sinks.push_back(a);
    wire::BrokerCall c;
    *c.mutable_subscribe() = s;
    caf::anon_send(a, wire_stream_atom::value, c.SerializeAsString(), batches, bytes);
    return {a, rec};
  }

  /// Subscribes and waits for the end: the refusal that ended it (nullopt: none, or it
  /// did not end in time, which the caller's expectation on the code then reports).
  std::optional<rejection> refusal_of(const wire::Subscribe& s) {
    auto rec = subscribe(s).second;
    if (!wait_until([&] { return rec->ended(); }))
      return std::nullopt;
    std::lock_guard<std::mutex> lock{rec->mtx};
    return rec->refused;
  }

  static wire::Subscribe from(const std::string& stream, wire::StartAt at = wire::START_EARLIEST) {
    wire::Subscribe s;
    s.set_stream(stream);
    s.set_start(at);
    return s;
  }
};

inline std::vector<std::string> numbered(const std::string& prefix, int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i)
    out.push_back(prefix + std::to_string(i));
  return out;
}

} // namespace levee::broker::test
