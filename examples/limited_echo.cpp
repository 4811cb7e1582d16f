// Writing your own limited actor on Levee: limits from config, a refused request with its
// typed rejection, a flood answered by one coalesced notice, a live change, and stats.

#include <chrono>
#include <iostream>

#include <caf/all.hpp>

#include "levee/levee.hpp"

namespace {

using namespace std::chrono_literals;

// An echo service that takes a while per message, so its mailbox can fill.
class slow_echo : public levee::limited_actor {
public:
  using limited::limited;

  caf::behavior make_behavior() override {
    return {[](const std::string& s) {
      auto until = std::chrono::steady_clock::now() + 2ms;
      while (std::chrono::steady_clock::now() < until)
        ;
      return s;
    }};
  }
};

constexpr const char* node_ini = R"(
[limits]
memory_budget_bytes = 1MiB
[limits.echo]
mailbox_capacity = 8
max_message_bytes = 64
)";

} // namespace

int main() {
  auto flat = levee::parse_config_text(node_ini, "example");
  auto limits = levee::limits_from_config(*flat);
  if (!limits) {
    std::cerr << limits.error().to_string() << "\n";
    return 1;
  }
  caf::actor_system_config cfg;
  levee::add_error_category(cfg);
  caf::actor_system sys{cfg};
  levee::runtime rt{*limits};
  auto echo = levee::spawn_limited<slow_echo>(sys, rt, "echo");
  caf::scoped_actor self{sys};

  // 1. A request over the size cap is refused before it is queued.
  self->request(echo, 1s, std::string(100, 'x'))
    .receive([](const std::string&) { std::cout << "unexpected: accepted\n"; },
             [&](caf::error& err) {
               auto r = levee::rejection_from(err);
               std::cout << "refused: " << r->to_string() << "\n";
             });

  // 2. A fire-and-forget flood: the mailbox takes 8 (counting the one being handled); the
  //    sender learns of the rest through one coalesced notice.
  for (int i = 0; i < 100; ++i)
    self->send(echo, std::string{"ping"});
  uint64_t refused = 0;
  self->receive([&](levee::rejection_notice& n) {
    refused = n.take();
    std::cout << "notice: " << refused << " messages refused, first: " << n.first.to_string()
              << "\n";
  });

  // Drain the echoes of the accepted pings.
  for (uint64_t i = 0; i < 100 - refused; ++i)
    self->receive([](const std::string&) {});

  // 3. Live change: allow bigger messages from now on.
  if (auto st = levee::gate_of(echo)->set_max_message_bytes(128); !st)
    std::cerr << st.to_string() << "\n";
  self->request(echo, 5s, std::string(100, 'x'))
    .receive([](const std::string& s) { std::cout << "accepted " << s.size() << " bytes\n"; },
             [&](caf::error& err) { std::cout << "refused: " << sys.render(err) << "\n"; });

  std::cout << rt.render_stats();
  self->send_exit(echo, caf::exit_reason::user_shutdown);
  return refused > 0 ? 0 : 1;
}
