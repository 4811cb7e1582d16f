// include/levee/serve.hpp: the public face of the listener (net/listener.hpp) for programs
// that serve their own actors. A thin layer: the same server_context, connection gate and
// limits a node's roles use, so an extension's actor is gated exactly as "query" is.

#include "levee/serve.hpp"

#include <caf/io/middleman.hpp>

#include "actors/caf_error.hpp"
#include "base/host_port.hpp"
#include "net/listener.hpp"
#include "net/multiplexer.hpp"
#include "net/net_config.hpp"

namespace levee {

system_config::system_config(uint64_t busy_poll_us) {
  net::add_loop_options(custom_options_, *this);
  load<caf::io::middleman, net::polling_multiplexer>();
  set(net::busy_poll_key, static_cast<int64_t>(busy_poll_us));
  levee::add_error_category(*this);
}

struct wire_listener::impl {
  std::shared_ptr<net::server_context> ctx;
  net::listener l;
  bool stopped = false;
};

wire_listener::wire_listener(std::unique_ptr<impl> p) : impl_(std::move(p)) {
}

wire_listener::~wire_listener() {
  stop();
}

result<std::unique_ptr<wire_listener>> wire_listener::start(caf::actor_system& sys,
                                                            const std::string& listen,
                                                            const flat_config& net_keys) {
  base::host_port at;
  std::string error;
  if (!base::parse_host_port("listen", listen, at, error, base::port_zero::any_free_port))
    return status::error(code::bad_request, error);
  if (!sys.has_middleman())
    return status::error(code::bad_request,
                         "the actor system has no I/O layer: build it from levee::system_config "
                         "(include/levee/serve.hpp)");
  flat_config net_only;
  for (auto& [key, value] : net_keys)
    if (key.rfind("net.", 0) == 0)
      net_only.emplace(key, value);
  auto cfg = net::listener_from_config(net_only);
  if (!cfg)
    return cfg.error();
  auto p = std::make_unique<impl>();
  p->ctx = std::make_shared<net::server_context>(*cfg);
  auto l = net::start_listener(sys, p->ctx, at.host, at.port);
  if (!l)
    return l.error();
  p->l = *l;
  return std::unique_ptr<wire_listener>{new wire_listener{std::move(p)}};
}

void wire_listener::expose(const std::string& name, caf::actor target) {
  impl_->ctx->expose(name, std::move(target));
}

uint16_t wire_listener::port() const noexcept {
  return impl_->l.port;
}

void wire_listener::stop() {
  if (!impl_ || impl_->stopped)
    return;
  impl_->stopped = true;
  net::stop_listener(impl_->l, *impl_->ctx);
}

listener_counters wire_listener::counters() const {
  auto& s = impl_->ctx->stats;
  listener_counters c;
  c.connections_accepted = s.connections_accepted.load();
  c.connections_refused = s.connections_refused.load();
  c.connections_open = s.connections_open.load();
  c.requests_answered = s.requests_answered.load();
  for (auto& n : s.rejects)
    c.rejects_sent += n.load();
  return c;
}

} // namespace levee
