#pragma once
// A CAF actor system per test plus a limited "svc" actor whose handler can be held on a
// latch, so the mailbox fills deterministically.

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include "actors/caf_error.hpp"
#include "actors/limited_actor.hpp"
#include "tests/test_support.hpp"

namespace levee::test {

inline std::unique_ptr<caf::actor_system_config> make_system_config() {
  auto cfg = std::make_unique<caf::actor_system_config>();
  // Held handlers block a worker; enough workers keep the rest of the system running.
  cfg->set("scheduler.max-threads", 4);
  levee::add_error_category(*cfg);
  return cfg;
}

/// Handles std::string (returns its size as a response to requests), and "hold" which
/// signals `entered`, then blocks the handler until `release` opens. Counts every handled
/// message.
class held_service : public limited_actor {
public:
  held_service(caf::actor_config& cfg, latch* release, event_counter* handled,
               event_counter* entered)
    : limited_actor(cfg), release_(release), handled_(handled), entered_(entered) {}

  caf::behavior make_behavior() override {
    return {
      [this](const std::string& payload) -> uint64_t {
        if (payload == "hold") {
          entered_->add();
          release_->wait();
        }
        handled_->add();
        return payload.size();
      },
    };
  }

private:
  latch* release_;
  event_counter* handled_;
  event_counter* entered_;
};

} // namespace levee::test
