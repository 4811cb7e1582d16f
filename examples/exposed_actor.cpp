// Your own actor, served over the wire: a limited actor that upper-cases text, exposed as
// "upper" on a listener with the connection limits of a node, and called through the C++
// client as any program (or `levee load --target actor upper`) would call it.
//
//   exposed_actor                 runs the calls below against itself and exits 0 when
//                                 each came back as promised
//   exposed_actor --serve [PORT]  serves until SIGINT/SIGTERM, printing the port first
//                                 (load it: levee load --target actor upper
//                                  --server 127.0.0.1:PORT --rate 500 --duration 5)
//
// The calls: an answer; text over the actor's max_message_bytes, refused by the actor's
// gate before the actor sees it; empty text, refused by the handler itself with a typed
// rejection of its own; a target nobody exposes, refused by the connection.

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cctype>
#include <string>

#include <caf/all.hpp>

#include "levee/client.hpp"
#include "levee/levee.hpp"
#include "levee/serve.hpp"

namespace {

using namespace std::chrono_literals;

// The wire's request signature (levee::wire_request_target): a handler that does not match
// what a connection sends is a compile error.
class upper : public levee::limited<levee::wire_request_target::base> {
public:
  using limited::limited;

  behavior_type make_behavior() override {
    return {[](levee::wire_request_atom, const std::string& text) -> caf::result<std::string> {
      if (text.empty())
        return levee::to_error(levee::rejection::of(levee::code::bad_request)
                                 .detail("empty text: send at least one character"));
      std::string out = text;
      for (auto& c : out)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      return out;
    }};
  }
};

// The node's limits: the actor kind "upper" takes at most 64 requests waiting and 256 bytes
// per request; a connection at most 8 requests in flight.
constexpr const char* node_ini = R"(
[limits]
memory_budget_bytes = 16MiB
[limits.upper]
mailbox_capacity = 64
max_message_bytes = 256
[net]
max_inflight_requests = 8
)";

std::string show(const levee::reply& r) {
  if (r.ok())
    return "answer '" + *r.payload + "'";
  return "refused: " + (r.rejected ? r.rejected->to_string() : std::string{"(nothing)"});
}

} // namespace

int main(int argc, char** argv) {
  bool serve = argc >= 2 && std::string{argv[1]} == "--serve";
  std::string listen = "127.0.0.1:0";
  if (serve && argc == 3)
    listen = std::string{"127.0.0.1:"} + argv[2];
  else if (argc != 1 && !(serve && argc == 2)) {
    std::fprintf(stderr, "usage: exposed_actor [--serve [PORT]]\n");
    return 2;
  }
  auto flat = levee::parse_config_text(node_ini, "example");
  auto limits = levee::limits_from_config(*flat);
  if (!limits) {
    std::fprintf(stderr, "exposed_actor: %s\n", limits.error().to_string().c_str());
    return 1;
  }
  // Block the stop signals before CAF starts its threads, so sigwait below gets them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  levee::system_config cfg;
  caf::actor_system sys{cfg};
  levee::runtime rt{*limits};
  auto actor = levee::spawn_limited<upper>(sys, rt, "upper");
  auto listener = levee::wire_listener::start(sys, listen, *flat);
  if (!listener) {
    std::fprintf(stderr, "exposed_actor: %s\n", listener.error().to_string().c_str());
    return 1;
  }
  auto& l = *listener.value();
  l.expose("upper", caf::actor_cast<caf::actor>(actor));
  std::printf("serving 'upper' on 127.0.0.1:%u\n", l.port());
  std::fflush(stdout);

  int rc = 0;
  if (serve) {
    int sig = 0;
    sigwait(&stop_signals, &sig);
  } else {
    levee::client_options opts;
    opts.port = l.port();
    levee::client c{opts};
    if (auto st = c.connect_with_backoff(5s); !st.ok()) {
      std::fprintf(stderr, "exposed_actor: %s\n", st.to_string().c_str());
      return 1;
    }
    auto hello = c.request("upper", "hello, levee", 5s);
    auto big = c.request("upper", std::string(1000, 'x'), 5s);
    auto empty = c.request("upper", "", 5s);
    auto nobody = c.request("lower", "hello", 5s);
    std::printf("hello: %s\n", show(hello).c_str());
    std::printf("1000 bytes: %s\n", show(big).c_str());
    std::printf("empty: %s\n", show(empty).c_str());
    std::printf("target 'lower': %s\n", show(nobody).c_str());
    bool as_promised = hello.ok() && *hello.payload == "HELLO, LEVEE" && big.rejected
                       && big.rejected->code == levee::code::message_too_large && empty.rejected
                       && empty.rejected->code == levee::code::bad_request && nobody.rejected
                       && nobody.rejected->code == levee::code::not_found;
    rc = as_promised ? 0 : 1;
  }
  auto counters = l.counters();
  std::printf("listener: %llu connections, %llu answered, %llu refused\n",
              static_cast<unsigned long long>(counters.connections_accepted),
              static_cast<unsigned long long>(counters.requests_answered),
              static_cast<unsigned long long>(counters.rejects_sent));
  std::printf("%s", rt.render_stats().c_str());
  l.stop();
  anon_send_exit(actor, caf::exit_reason::user_shutdown);
  return rc;
}
