#include "net/uplink.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <random>

#include <sys/socket.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <unistd.h>

#include <caf/event_based_actor.hpp>
#include <caf/io/all.hpp>

#include "actors/atoms.hpp"
#include "actors/caf_error.hpp"
#include "limits/log.hpp"
#include "limits/printable.hpp"
#include "net/connection.hpp"

namespace levee::net {

namespace {

using namespace std::chrono;

/// A name being resolved by glibc's getaddrinfo_a (its own thread): the uplink looks at
/// it like at a connect in progress and never waits for the resolver.
struct name_lookup {
  std::string host, port;
  addrinfo hints{};
  gaicb request{};

  name_lookup(std::string h, std::string p) : host(std::move(h)), port(std::move(p)) {
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    request.ar_name = host.c_str();
    request.ar_service = port.c_str();
    request.ar_request = &hints;
  }
  name_lookup(const name_lookup&) = delete;
  name_lookup& operator=(const name_lookup&) = delete;
  ~name_lookup() {
    if (request.ar_result != nullptr)
      ::freeaddrinfo(request.ar_result);
  }

  /// Ends the lookup (on stop, or when the uplink ends). One that glibc cannot cancel any
  /// more is still writing into this object: it is let go (a few hundred bytes, once per
  /// stop) rather than freed under the resolver.
  static void cancel(std::unique_ptr<name_lookup>& l) {
    if (l && ::gai_cancel(&l->request) == EAI_NOTCANCELED)
      l.release();
    l.reset();
  }
};

struct uplink_state {
  caf::actor link;
  bool connected = false;
  bool stopped = false;
  std::chrono::milliseconds backoff{50};
  /// The server's retry-after when it refused this node (too many connections): the next
  /// attempt waits at least this long. 0: none.
  std::chrono::milliseconds refused_retry_after{0};
  std::minstd_rand rng{std::random_device{}()};
  std::string last_error;
  // A connection attempt in progress: a non-blocking socket, looked at again after
  // dial_check (1 ms, doubling up to dial_check_max) without ever blocking the thread.
  int dialing_fd = -1;
  std::unique_ptr<name_lookup> lookup;  // a host name being resolved, the step before
  bool lookup_slow_reported = false;
  milliseconds dial_check{1};
  std::vector<std::pair<sockaddr_storage, socklen_t>> addrs;  // the server's, resolved
  size_t next_addr = 0;
  steady_clock::time_point dial_deadline;
  // What stderr was last told about a failure, so that a server that stays away is
  // reported once per reason and every report_every, not at every retry.
  std::string reported;
  steady_clock::time_point reported_at;
  const char* name = "levee.uplink";

  uplink_state() = default;
  uplink_state(const uplink_state&) = delete;
  uplink_state& operator=(const uplink_state&) = delete;
  ~uplink_state() {
    if (dialing_fd >= 0)
      ::close(dialing_fd);  // the uplink ended some other way than stop
    name_lookup::cancel(lookup);
  }
};

constexpr milliseconds dial_check_max{100};
constexpr seconds report_every{30};

/// The connection broker of a socket the uplink connected itself.
caf::behavior dialed_connection(connection_broker* self, caf::io::network::native_socket fd,
                                std::shared_ptr<server_context> ctx, caf::actor owner,
                                std::string token, bool as_satellite) {
  auto hdl = self->add_scribe(fd);  // the broker owns the socket from here
  return connection(self, hdl, std::move(ctx), conn_role::dialed, std::move(owner),
                    std::move(token), as_satellite);
}

using uplink_actor = caf::stateful_actor<uplink_state>;

void close_dialing(uplink_actor* self) {
  auto& s = self->state;
  if (s.dialing_fd >= 0)
    ::close(s.dialing_fd);
  s.dialing_fd = -1;
  name_lookup::cancel(s.lookup);
}

/// Why the server cannot be used: kept for requests' refusals and said on stderr once per
/// reason (again every report_every while it lasts); the uplink tries again with backoff.
void report(uplink_actor* self, const uplink_options& opts, std::string why) {
  auto& s = self->state;
  s.last_error = std::move(why);
  auto now = steady_clock::now();
  if (s.last_error != s.reported || now - s.reported_at >= report_every) {
    LEVEE_WARN("net", "%s; retrying with backoff (up to %lld ms)",
               printable(s.last_error).c_str(), static_cast<long long>(opts.backoff_max.count()));
    s.reported = s.last_error;
    s.reported_at = now;
  }
}

/// Schedules the next attempt: after half the backoff plus a random part of the other
/// half, so the nodes of a fleet that lost their server together (a restart) come back
/// spread out, not in lockstep; and not before a retry-after the server gave. The backoff
/// doubles up to backoff_max.
void retry_later(uplink_actor* self, const uplink_options& opts) {
  auto& s = self->state;
  auto half = s.backoff.count() / 2;
  auto wait = milliseconds(half + std::uniform_int_distribution<int64_t>(0, half)(s.rng));
  wait = std::max(wait, s.refused_retry_after);
  s.refused_retry_after = milliseconds{0};
  self->delayed_send(self, wait, connect_atom::value);
  s.backoff = std::min(s.backoff * 2, opts.backoff_max);
}

/// An attempt failed: reported, and tried again after the backoff.
void dial_failed(uplink_actor* self, const uplink_options& opts, const std::string& why) {
  close_dialing(self);
  report(self, opts, "cannot connect to " + opts.host + ":" + std::to_string(opts.port) + ": " + why);
  retry_later(self, opts);
}

/// Connected: the socket becomes a connection broker, which says hello.
void dialed(uplink_actor* self, std::shared_ptr<server_context> ctx, const uplink_options& opts,
            int fd) {
  auto& s = self->state;
  s.dialing_fd = -1;
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  s.link = self->system().middleman().spawn_broker(dialed_connection, fd, std::move(ctx),
                                                   caf::actor_cast<caf::actor>(self), opts.token,
                                                   opts.satellite);
  self->monitor(s.link);
}

/// The server's addresses, from a resolver's answer.
void take_addresses(uplink_state& s, const addrinfo* found) {
  s.addrs.clear();
  for (auto* a = found; a != nullptr; a = a->ai_next) {
    sockaddr_storage ss{};
    std::memcpy(&ss, a->ai_addr, a->ai_addrlen);
    s.addrs.emplace_back(ss, a->ai_addrlen);
  }
  s.next_addr = 0;
}

/// Starts a non-blocking connect to the next resolved address; fails over to the next on
/// an immediate error, and reports the last error when none is left.
void dial_next(uplink_actor* self, std::shared_ptr<server_context> ctx,
               const uplink_options& opts, std::string why) {
  auto& s = self->state;
  while (s.next_addr < s.addrs.size()) {
    auto& [addr, len] = s.addrs[s.next_addr++];
    int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      why = std::string("socket: ") + std::strerror(errno);
      continue;
    }
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), len) == 0) {
      dialed(self, ctx, opts, fd);
      return;
    }
    if (errno == EINPROGRESS) {
      s.dialing_fd = fd;
      s.dial_deadline = steady_clock::now() + opts.connect_timeout;
      s.dial_check = milliseconds{1};
      self->send(self, dialing_atom::value);
      return;
    }
    why = std::strerror(errno);
    ::close(fd);
  }
  dial_failed(self, opts, why);
}

caf::behavior uplink(uplink_actor* self, std::shared_ptr<server_context> ctx,
                     uplink_options opts) {
  auto& st = self->state;
  st.backoff = opts.backoff_initial;
  self->set_down_handler([=](caf::down_msg& msg) {
    auto& s = self->state;
    if (msg.source != s.link)
      return;
    s.link = nullptr;
    s.connected = false;
    retry_later(self, opts);
  });
  self->send(self, connect_atom::value);
  return {
    [=](connect_atom) {
      auto& s = self->state;
      if (s.link || s.stopped || s.dialing_fd >= 0 || s.lookup)
        return;
      // Not CAF's spawn_client: its connect blocks until the OS gives up (~2 min when the
      // server's host drops SYNs), and needed a thread of its own (a detached actor, which
      // the actor system waits for at shutdown: with a retry's delayed message still in
      // CAF's clock it never finished, and the node hung after "stopped"). A numeric
      // address is taken at once; a name goes to glibc's asynchronous resolver, looked at
      // like a connect in progress, so a slow DNS server holds neither a worker nor stop.
      auto port = std::to_string(opts.port);
      addrinfo hints{};
      hints.ai_family = AF_UNSPEC;
      hints.ai_socktype = SOCK_STREAM;
      hints.ai_flags = AI_NUMERICHOST;
      addrinfo* found = nullptr;
      if (::getaddrinfo(opts.host.c_str(), port.c_str(), &hints, &found) == 0) {
        take_addresses(s, found);
        ::freeaddrinfo(found);
        dial_next(self, ctx, opts, "no address");
        return;
      }
      auto lookup = std::make_unique<name_lookup>(opts.host, port);
      gaicb* batch[] = {&lookup->request};
      if (int rc = ::getaddrinfo_a(GAI_NOWAIT, batch, 1, nullptr); rc != 0) {
        name_lookup::cancel(lookup);  // EAI_AGAIN may leave it queued all the same
        dial_failed(self, opts, std::string("cannot resolve the host: ") + ::gai_strerror(rc));
        return;
      }
      s.lookup = std::move(lookup);
      s.lookup_slow_reported = false;
      s.dial_deadline = steady_clock::now() + opts.connect_timeout;
      s.dial_check = milliseconds{1};
      self->delayed_send(self, s.dial_check, dialing_atom::value);
    },
    [=](dialing_atom) {
      auto& s = self->state;
      if (s.stopped)
        return;
      if (s.lookup) {
        auto& request = s.lookup->request;
        // Done only once glibc says so under its lock (gai_cancel: EAI_ALLDONE); a lookup is
        // never dropped for being slow (a retry would start the resolver's waits again and
        // could never finish), only said to be slow, once.
        if (::gai_error(&request) == EAI_INPROGRESS || ::gai_cancel(&request) == EAI_NOTCANCELED) {
          if (!s.lookup_slow_reported && steady_clock::now() >= s.dial_deadline) {
            report(self, opts,
                   "cannot connect to " + opts.host + ":" + std::to_string(opts.port)
                     + ": resolving the host takes longer than "
                     + std::to_string(opts.connect_timeout.count())
                     + " ms (still waiting; is a DNS server reachable?)");
            s.lookup_slow_reported = true;
          }
          self->delayed_send(self, s.dial_check, dialing_atom::value);
          s.dial_check = std::min(s.dial_check * 2, dial_check_max);
          return;
        }
        if (int rc = ::gai_error(&request); rc != 0) {
          dial_failed(self, opts, std::string("cannot resolve the host: ") + ::gai_strerror(rc));
          return;
        }
        take_addresses(s, request.ar_result);
        s.lookup.reset();
        dial_next(self, ctx, opts, "no address");
        return;
      }
      if (s.dialing_fd < 0)
        return;
      pollfd p{s.dialing_fd, POLLOUT, 0};
      int n = ::poll(&p, 1, 0);  // never blocks: the uplink shares a worker
      if (n > 0) {
        int err = 0;
        socklen_t len = sizeof err;
        if (::getsockopt(s.dialing_fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
          err = errno;
        if (err == 0) {
          dialed(self, ctx, opts, s.dialing_fd);
          return;
        }
        close_dialing(self);
        dial_next(self, ctx, opts, std::strerror(err));
        return;
      }
      if (n < 0 && errno != EINTR) {
        auto why = std::string("poll: ") + std::strerror(errno);
        close_dialing(self);
        dial_next(self, ctx, opts, why);
        return;
      }
      if (steady_clock::now() >= s.dial_deadline) {
        close_dialing(self);
        dial_next(self, ctx, opts,
                  "no answer within " + std::to_string(opts.connect_timeout.count())
                    + " ms (is the server up and the port open?)");
        return;
      }
      self->delayed_send(self, s.dial_check, dialing_atom::value);
      s.dial_check = std::min(s.dial_check * 2, dial_check_max);
    },
    [=](connected_atom, const std::string& peer) {
      auto& s = self->state;
      s.connected = true;
      s.backoff = opts.backoff_initial;
      if (!s.reported.empty()) {
        LEVEE_INFO("net", "connected to %s:%u again", printable(opts.host).c_str(),
                   static_cast<unsigned>(opts.port));
        s.reported.clear();
      }
      if (opts.notify)
        self->send(opts.notify, connected_atom::value, peer);
    },
    [=](refused_atom, const caf::error& why) {
      // The connection ends after this; the down handler tries again.
      auto r = rejection_from(why);
      if (r && r->retry_after_ms > 0)  // with a little more, so a refused fleet spreads out
        self->state.refused_retry_after =
          milliseconds(r->retry_after_ms
                       + std::uniform_int_distribution<uint64_t>(0, r->retry_after_ms / 4)(
                         self->state.rng));
      report(self, opts,
             "the server at " + opts.host + ":" + std::to_string(opts.port)
               + " refused this node: " + (r ? r->to_string() : self->system().render(why)));
    },
    [=](wire_request_atom, std::string& target,
        std::string& payload) -> caf::result<std::string> {
      auto& s = self->state;
      if (!s.connected || !s.link)
        return to_error(rejection::of(code::unavailable)
                          .detail("not connected to the server"
                                  + (s.last_error.empty()
                                       ? std::string{}
                                       : " (last error: " + s.last_error + ")")));
      self->delegate(s.link, wire_request_atom::value, std::move(target), std::move(payload));
      return caf::delegated<std::string>{};
    },
    [=](caf::get_atom) { return self->state.connected; },
    [=](stop_atom) {
      auto& s = self->state;
      s.stopped = true;
      close_dialing(self);
      if (s.link)
        self->send(s.link, stop_atom::value);
      self->quit();
    },
  };
}

} // namespace

caf::actor start_uplink(caf::actor_system& sys, std::shared_ptr<server_context> ctx,
                        uplink_options opts) {
  return sys.spawn(uplink, std::move(ctx), std::move(opts));
}

} // namespace levee::net
