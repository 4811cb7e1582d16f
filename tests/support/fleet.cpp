// The fleet simulator (fleet.hpp): every satellite's connection on one epoll thread.

#include "tests/support/fleet.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <queue>
#include <random>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "events/codec.hpp"
#include "events/event.hpp"
#include "limits/error_code.hpp"
#include "net/frame.hpp"
#include "net/reject_frame.hpp"
#include "net/satellite.pb.h"

namespace levee::fleet {

using namespace std::chrono;
using clock_type = steady_clock;

namespace {

/// Satellites per source address (127.0.0.1, .2, ...): below the ~28,000 ephemeral ports
/// one source address has towards one server port.
constexpr size_t per_source_address = 20000;
constexpr size_t read_chunk = 64 * 1024;
constexpr int max_reads_per_event = 4;
constexpr size_t rtt_samples = 4096;
// A streamed request's default credit (PROTOCOL.md "Flow control: credit").
constexpr int64_t default_credit_batches = 16;
constexpr int64_t default_credit_bytes = 4 << 20;

enum class timer_kind : uint8_t { heartbeat, redial, reregister, dial_timeout };

struct timer {
  clock_type::time_point when;
  uint32_t index;
  timer_kind kind;
  uint64_t gen;
  bool operator>(const timer& o) const { return when > o.when; }
};

/// A streamed query waiting for credit before its one batch may go.
struct pending_query {
  uint64_t rid;
  int64_t credit_batches;
  int64_t credit_bytes;
  std::string batch;    // the serialized ResultBatch
  std::string summary;  // the serialized QueryStats
};

struct sat {
  int fd = -1;
  sat_state state = sat_state::idle;
  bool silent = false;
  bool killed = false;
  bool counted_connected = false;
  uint64_t conn_gen = 0;  // moves with every connection: timers of an older one are void
  uint64_t beat_gen = 0;  // moves with every registration: one heartbeat loop each
  std::unique_ptr<net::frame_reader> reader;
  std::string out;
  size_t out_pos = 0;
  bool want_out = false;
  net::codec_limits peer{};
  uint64_t next_rid = 1;
  uint64_t register_rid = 0;
  uint64_t beat_rid = 0;
  clock_type::time_point beat_sent;
  uint64_t sequence = 0;
  std::string id;  // as the server assigned it
  milliseconds interval{1000};
  milliseconds backoff{0};
  clock_type::time_point closed_by_server_at{};
  std::vector<pending_query> queries;
};

bool in_handshake(sat_state s) {
  return s == sat_state::dialing || s == sat_state::hello || s == sat_state::registering;
}

} // namespace

struct fleet::impl {
  fleet_options opts;
  mutable std::mutex mtx;
  mutable std::condition_variable changed;
  std::vector<sat> sats;
  std::priority_queue<timer, std::vector<timer>, std::greater<timer>> timers;
  fleet_stats st;
  std::vector<double> rtts;  // ring of the latest heartbeat round trips, ms
  size_t rtt_next = 0;
  size_t start_next = 0;     // the next satellite connect() starts
  size_t start_until = 0;
  size_t concurrency = 1;
  size_t handshakes = 0;     // satellites between dial and RegisterAck
  bool starting = false;     // in start_more()
  int ep = -1;
  int wake_fd = -1;
  std::atomic<bool> stopping{false};
  std::thread thread;
  std::string row;           // one encoded event, every answer's row
  std::string count_key;     // one encoded event without fields, a count answer's group
  std::mt19937_64 rng{42};
  char buf[read_chunk];

  explicit impl(fleet_options o) : opts(std::move(o)) {
    if (!opts.labels)
      opts.labels = [](size_t) { return std::map<std::string, std::string>{{"fleet", "sim"}}; };
    events::event e;
    e.timestamp_ms = 1;
    e.fields.push_back({"msg", std::string{"fleet"}});
    events::encode(e, row);
    events::encode(events::event{}, count_key);
    ep = ::epoll_create1(EPOLL_CLOEXEC);
    wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = UINT64_MAX;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, wake_fd, &ev);
    thread = std::thread([this] { run(); });
  }

  ~impl() {
    stopping.store(true);
    wake();
    thread.join();
    for (auto& s : sats)
      if (s.fd >= 0)
        ::close(s.fd);
    ::close(wake_fd);
    ::close(ep);
  }

  void wake() {
    uint64_t one = 1;
    (void)!::write(wake_fd, &one, sizeof one);
  }

  std::string id_of(size_t i) const { return opts.id_prefix + std::to_string(i); }

  void add_timer(size_t i, timer_kind k, clock_type::time_point when, uint64_t gen) {
    timers.push(timer{when, static_cast<uint32_t>(i), k, gen});
  }

  // -- state changes ---------------------------------------------------------------------

  void set_state(sat& s, sat_state next) {
    bool was = in_handshake(s.state), is = in_handshake(next);
    if (s.state == sat_state::registered && next != sat_state::registered)
      --st.registered;
    if (next == sat_state::registered && s.state != sat_state::registered)
      ++st.registered;
    s.state = next;
    if (was && !is) {
      --handshakes;
      start_more();
    } else if (!was && is) {
      ++handshakes;
    }
  }

  void start_more() {
    // A dial that fails at once frees its slot from inside this loop: the loop takes it,
    // rather than a call per failure nesting one inside the other (100,000 deep at EMFILE).
    if (starting)
      return;
    starting = true;
    while (handshakes < concurrency && start_next < start_until) {
      auto i = start_next++;
      if (sats[i].state == sat_state::idle)
        dial(i);
    }
    starting = false;
  }

  /// Closes satellite i's connection. `by_server`: the server closed it (or it failed);
  /// otherwise it was killed.
  void close_conn(size_t i, bool by_server, const char* why = nullptr) {
    auto& s = sats[i];
    if (s.fd >= 0) {
      ::close(s.fd);  // leaves the epoll set with it
      s.fd = -1;
    }
    bool was_connected = s.counted_connected;
    if (s.counted_connected) {
      --st.connected;
      s.counted_connected = false;
    }
    if (why != nullptr)
      st.last_error = id_of(i) + ": " + why;
    ++s.conn_gen;
    ++s.beat_gen;
    s.reader.reset();
    s.out.clear();
    s.out_pos = 0;
    s.want_out = false;
    s.queries.clear();
    if (by_server && !s.killed && was_connected) {
      ++st.closed_by_server;
      s.closed_by_server_at = clock_type::now();
    }
    if (s.killed || s.silent || !opts.redial_after_close) {
      set_state(s, sat_state::down);
      return;
    }
    set_state(s, sat_state::waiting);
    s.backoff = s.backoff.count() == 0 ? opts.backoff_initial
                                       : std::min(s.backoff * 2, opts.backoff_max);
    // Jitter: half to all of the backoff, so a restarted server is not hit in lockstep.
    auto wait = milliseconds(s.backoff.count() / 2
                             + static_cast<int64_t>(rng() % (s.backoff.count() / 2 + 1)));
    add_timer(i, timer_kind::redial, clock_type::now() + wait, s.conn_gen);
  }

  // -- dialing ---------------------------------------------------------------------------

  void dial(size_t i) {
    auto& s = sats[i];
    ++st.dials;
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      ++st.dial_failures;
      set_state(s, sat_state::dialing);
      close_conn(i, false, errno == EMFILE || errno == ENFILE
                             ? "socket: out of file descriptors (raise RLIMIT_NOFILE)"
                             : "socket failed");
      return;
    }
    if (i >= per_source_address) {
      // Another source address: each has its own ephemeral ports towards the server.
      int one = 1;
      ::setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
      sockaddr_in src{};
      src.sin_family = AF_INET;
      src.sin_addr.s_addr = htonl(INADDR_LOOPBACK + static_cast<uint32_t>(i / per_source_address));
      ::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src);
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(opts.port);
    ::inet_pton(AF_INET, opts.host.c_str(), &addr.sin_addr);
    s.fd = fd;
    ++s.conn_gen;
    set_state(s, sat_state::dialing);
    int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    if (rc != 0 && errno != EINPROGRESS) {
      ++st.dial_failures;
      close_conn(i, true, std::strerror(errno));
      return;
    }
    epoll_event ev{};
    ev.events = EPOLLOUT;
    ev.data.u64 = i;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    add_timer(i, timer_kind::dial_timeout, clock_type::now() + opts.connect_timeout, s.conn_gen);
  }

  void dialed(size_t i) {
    auto& s = sats[i];
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
      err = errno;
    if (err != 0) {
      ++st.dial_failures;
      close_conn(i, true, std::strerror(err));
      return;
    }
    int one = 1;
    ::setsockopt(s.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    s.counted_connected = true;
    ++st.connected;
    s.reader = std::make_unique<net::frame_reader>(net::default_codec_limits());
    s.peer = net::default_codec_limits();
    s.next_rid = 1;
    set_state(s, sat_state::hello);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    ::epoll_ctl(ep, EPOLL_CTL_MOD, s.fd, &ev);
    wire::Envelope env;
    auto& h = *env.mutable_hello();
    h.set_protocol_version(net::protocol_version);
    h.set_node_id(id_of(i));
    h.set_role(wire::ROLE_CLIENT);  // as an uplink's connection says it (fill_hello)
    h.set_token(opts.net_token);
    h.set_software("levee-fleet 0.1.0");
    auto limits = net::default_codec_limits();
    auto& l = *h.mutable_limits();
    l.set_max_frame_bytes(limits.max_frame_bytes);
    l.set_max_decompressed_bytes(limits.max_decompressed_bytes);
    l.set_max_inflight_requests(256);
    send(i, env);
  }

  // -- writing ---------------------------------------------------------------------------

  /// Queues one frame and writes what the socket takes. False if the satellite was closed
  /// (its write buffer would pass the bound, or the socket failed).
  bool send(size_t i, const wire::Envelope& env) {
    auto& s = sats[i];
    if (s.fd < 0)
      return false;
    if (s.out_pos > 0 && s.out_pos == s.out.size()) {
      s.out.clear();
      s.out_pos = 0;
    }
    if (auto err = net::encode_frame(env, s.peer, s.out)) {
      ++st.bad_frames;
      st.last_error = id_of(i) + ": cannot encode a frame: " + err->to_string();
      return true;
    }
    if (s.out.size() - s.out_pos > opts.max_write_buffer_bytes) {
      ++st.write_overflows;
      close_conn(i, true, "the server does not read: the simulator's write buffer is full");
      return false;
    }
    return flush(i);
  }

  bool flush(size_t i) {
    auto& s = sats[i];
    while (s.out_pos < s.out.size()) {
      auto n = ::send(s.fd, s.out.data() + s.out_pos, s.out.size() - s.out_pos, MSG_NOSIGNAL);
      if (n > 0) {
        s.out_pos += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!s.want_out) {
          s.want_out = true;
          epoll_event ev{};
          ev.events = EPOLLIN | EPOLLOUT;
          ev.data.u64 = i;
          ::epoll_ctl(ep, EPOLL_CTL_MOD, s.fd, &ev);
        }
        return true;
      }
      close_conn(i, true, "send failed: connection lost");
      return false;
    }
    s.out.clear();
    s.out_pos = 0;
    if (s.want_out) {
      s.want_out = false;
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = i;
      ::epoll_ctl(ep, EPOLL_CTL_MOD, s.fd, &ev);
    }
    return true;
  }

  bool send_request(size_t i, const char* target, std::string payload, uint64_t& rid) {
    auto& s = sats[i];
    wire::Envelope env;
    rid = s.next_rid++;
    env.set_request_id(rid);
    env.mutable_request()->set_target(target);
    env.mutable_request()->set_payload(std::move(payload));
    return send(i, env);
  }

  void send_reject(size_t i, uint64_t rid, const rejection& r) {
    wire::Envelope env;
    env.set_request_id(rid);
    *env.mutable_reject() = net::to_wire(r);
    send(i, env);
  }

  // -- the satellite's side of the protocol ----------------------------------------------

  void do_register(size_t i) {
    auto& s = sats[i];
    wire::Register reg;
    reg.set_satellite_id(id_of(i));
    reg.set_token(opts.satellite_token);
    for (auto& [k, v] : opts.labels(i))
      (*reg.mutable_labels())[k] = v;
    reg.mutable_store();
    reg.set_address("fleet-sim");
    set_state(s, sat_state::registering);
    send_request(i, "register", reg.SerializeAsString(), s.register_rid);
  }

  void heartbeat(size_t i) {
    auto& s = sats[i];
    if (s.state != sat_state::registered || s.silent)
      return;
    wire::Heartbeat hb;
    hb.set_satellite_id(s.id);
    hb.set_sequence(++s.sequence);
    hb.set_address("fleet-sim");
    hb.mutable_store();
    uint64_t rid = 0;
    auto gen = s.beat_gen;
    if (!send_request(i, "heartbeat", hb.SerializeAsString(), rid))
      return;
    ++st.heartbeats_sent;
    s.beat_rid = rid;
    s.beat_sent = clock_type::now();
    add_timer(i, timer_kind::heartbeat, s.beat_sent + s.interval, gen);
  }

  void on_register_ack(size_t i, const std::string& payload) {
    auto& s = sats[i];
    wire::RegisterAck ack;
    ack.ParseFromString(payload);
    s.id = ack.satellite_id();
    s.sequence = 0;
    s.backoff = milliseconds{0};
    s.interval = opts.heartbeat_interval.count() != 0
                   ? opts.heartbeat_interval
                   : milliseconds(std::max<uint32_t>(ack.heartbeat_interval_ms(), 10));
    ++st.registrations;
    set_state(s, sat_state::registered);
    ++s.beat_gen;
    heartbeat(i);  // at once, then every interval (satellite/agent.cpp)
  }

  void answer_query(size_t i, uint64_t rid, const wire::Request& req) {
    wire::QueryRequest q;
    if (!q.ParseFromString(req.payload())) {
      send_reject(i, rid, rejection::of(code::bad_request)
                            .detail("a QueryRequest that does not parse"));
      return;
    }
    std::string text = q.text();
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    wire::ResultBatch b;
    b.set_satellite_id(sats[i].id);
    if (text.find("count") != std::string::npos) {
      auto& row = *b.add_counts();
      row.set_key(count_key);
      row.set_count(1);
    } else {
      b.add_events(row);
    }
    wire::QueryStats qs;
    qs.set_events_scanned(1);
    qs.set_rows_returned(1);
    qs.set_bytes_returned(row.size());
    qs.set_satellites(1);
    pending_query p{rid,
                    req.credit_batches() != 0 ? int64_t{req.credit_batches()} : default_credit_batches,
                    req.credit_bytes() != 0 ? static_cast<int64_t>(req.credit_bytes())
                                            : default_credit_bytes,
                    b.SerializeAsString(), qs.SerializeAsString()};
    if (!try_answer(i, p))
      sats[i].queries.push_back(std::move(p));
  }

  /// Sends the query's batch and its end if its credit allows; false if it must wait.
  bool try_answer(size_t i, pending_query& p) {
    if (p.credit_batches < 1 || p.credit_bytes <= 0)
      return false;
    wire::Envelope batch;
    batch.set_request_id(p.rid);
    batch.mutable_batch()->set_sequence(0);
    batch.mutable_batch()->set_payload(std::move(p.batch));
    if (!send(i, batch))
      return true;
    wire::Envelope end;
    end.set_request_id(p.rid);
    end.mutable_end_of_stream()->set_batches(1);
    end.mutable_end_of_stream()->set_summary(std::move(p.summary));
    if (send(i, end))
      ++st.queries_answered;
    return true;
  }

  void on_reject(size_t i, const wire::Envelope& env) {
    auto& s = sats[i];
    auto r = net::from_wire(env.reject());
    ++st.rejects[static_cast<uint32_t>(r.code)];
    st.last_reject = id_of(i) + ": " + r.to_string();
    auto rid = env.request_id();
    if (rid == 0)
      return;  // about the connection: it closes after it (closing), read to the end
    if (s.state == sat_state::registering && rid == s.register_rid) {
      // Refused (the registry is full or busy, a live id): again after retry_after_ms,
      // or a second as the agent does.
      auto wait = milliseconds(r.retry_after_ms != 0 ? r.retry_after_ms : 1000);
      set_state(s, sat_state::waiting);
      add_timer(i, timer_kind::reregister, clock_type::now() + wait, s.conn_gen);
      return;
    }
    if (s.state == sat_state::registered && r.code == code::not_found)
      do_register(i);  // the server forgot us
  }

  void on_frame(size_t i, wire::Envelope& env) {
    auto& s = sats[i];
    if (s.state == sat_state::hello) {
      if (env.has_reject()) {
        on_reject(i, env);
        return;  // refused at the handshake: the server closes
      }
      if (!env.has_hello()) {
        ++st.bad_frames;
        close_conn(i, true, "the server's first frame is not a Hello");
        return;
      }
      auto& pl = env.hello().limits();
      if (pl.max_frame_bytes() != 0)
        s.peer.max_frame_bytes = pl.max_frame_bytes();
      s.peer.max_decompressed_bytes = pl.max_decompressed_bytes() != 0
                                        ? pl.max_decompressed_bytes()
                                        : s.peer.max_frame_bytes;
      do_register(i);
      return;
    }
    auto rid = env.request_id();
    switch (env.body_case()) {
      case wire::Envelope::kPing: {
        wire::Envelope out;
        out.set_request_id(rid);
        out.mutable_pong()->set_nonce(env.ping().nonce());
        send(i, out);
        return;
      }
      case wire::Envelope::kResponse:
        if (s.state == sat_state::registering && rid == s.register_rid) {
          on_register_ack(i, env.response().payload());
          return;
        }
        ++st.heartbeat_acks;
        if (rid == s.beat_rid && s.beat_rid != 0) {
          auto ms = duration<double, std::milli>(clock_type::now() - s.beat_sent).count();
          if (rtts.size() < rtt_samples)
            rtts.push_back(ms);
          else
            rtts[rtt_next++ % rtt_samples] = ms;
          s.beat_rid = 0;
        }
        return;
      case wire::Envelope::kReject:
        on_reject(i, env);
        return;
      case wire::Envelope::kRequest: {
        auto& req = env.request();
        if (req.target() == "query" && req.stream()) {
          answer_query(i, rid, req);
        } else {
          send_reject(i, rid, rejection::of(code::not_found)
                                .detail("no actor is exposed as '" + req.target().substr(0, 48)
                                        + "'"));
        }
        return;
      }
      case wire::Envelope::kCredit:
        for (auto q = s.queries.begin(); q != s.queries.end(); ++q)
          if (q->rid == rid) {
            q->credit_batches += env.credit().batches();
            q->credit_bytes += static_cast<int64_t>(env.credit().bytes());
            if (try_answer(i, *q) && sats[i].fd >= 0)
              sats[i].queries.erase(q);
            return;
          }
        return;
      case wire::Envelope::kCancel:
        for (auto q = s.queries.begin(); q != s.queries.end(); ++q)
          if (q->rid == rid) {
            s.queries.erase(q);
            ++st.queries_cancelled;
            send_reject(i, rid, rejection::of(code::cancelled)
                                  .detail("the query was cancelled"));
            return;
          }
        return;
      default:
        return;  // Pong, a late answer: nothing to do
    }
  }

  void on_readable(size_t i) {
    for (int n = 0; n < max_reads_per_event; ++n) {
      auto& s = sats[i];
      if (s.fd < 0)
        return;
      auto got = ::recv(s.fd, buf, sizeof buf, 0);
      if (got == 0) {
        close_conn(i, true);
        return;
      }
      if (got < 0) {
        if (errno == EINTR)
          continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
          return;
        close_conn(i, true, std::strerror(errno));
        return;
      }
      size_t pos = 0;
      while (pos < static_cast<size_t>(got)) {
        auto& sr = sats[i];
        if (sr.fd < 0 || !sr.reader)
          return;
        pos += sr.reader->feed(reinterpret_cast<const uint8_t*>(buf) + pos,
                               static_cast<size_t>(got) - pos);
        if (sr.reader->error()) {
          ++st.bad_frames;
          close_conn(i, true, ("bad frame from the server: " + sr.reader->error()->to_string()).c_str());
          return;
        }
        if (sr.reader->frame_ready()) {
          auto env = sr.reader->take();
          on_frame(i, env);
        }
      }
      if (static_cast<size_t>(got) < sizeof buf)
        return;
    }
  }

  // -- the loop --------------------------------------------------------------------------

  void on_timer(const timer& t) {
    auto& s = sats[t.index];
    switch (t.kind) {
      case timer_kind::heartbeat:
        if (t.gen == s.beat_gen)
          heartbeat(t.index);
        return;
      case timer_kind::redial:
        if (t.gen == s.conn_gen && s.state == sat_state::waiting && s.fd < 0)
          dial(t.index);
        return;
      case timer_kind::reregister:
        if (t.gen == s.conn_gen && s.state == sat_state::waiting && s.fd >= 0)
          do_register(t.index);
        return;
      case timer_kind::dial_timeout:
        if (t.gen == s.conn_gen && s.state == sat_state::dialing) {
          ++st.dial_failures;
          close_conn(t.index, true, "connect timed out");
        }
        return;
    }
  }

  void run() {
    std::vector<epoll_event> events(512);
    std::unique_lock<std::mutex> lock{mtx};
    while (!stopping.load()) {
      int timeout_ms = 1000;
      if (!timers.empty()) {
        auto left = duration_cast<microseconds>(timers.top().when - clock_type::now()).count();
        timeout_ms = static_cast<int>(std::clamp<int64_t>((left + 999) / 1000, 0, 1000));
      }
      lock.unlock();
      int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), timeout_ms);
      lock.lock();
      for (int k = 0; k < n; ++k) {
        auto i = events[k].data.u64;
        if (i == UINT64_MAX) {
          uint64_t v;
          (void)!::read(wake_fd, &v, sizeof v);
          continue;
        }
        auto& s = sats[i];
        if (s.fd < 0)
          continue;  // closed earlier in this round
        if (s.state == sat_state::dialing) {
          dialed(i);
          continue;
        }
        if ((events[k].events & EPOLLOUT) && s.want_out && !flush(i))
          continue;
        if (events[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
          on_readable(i);
      }
      auto now = clock_type::now();
      while (!timers.empty() && timers.top().when <= now) {
        auto t = timers.top();
        timers.pop();
        on_timer(t);
      }
      changed.notify_all();
    }
  }
};

fleet::fleet(fleet_options opts) : impl_(std::make_unique<impl>(std::move(opts))) {}

fleet::~fleet() = default;

std::string fleet::raise_fd_limit(uint64_t fds) {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return std::string("getrlimit(RLIMIT_NOFILE): ") + std::strerror(errno);
  if (rl.rlim_cur >= fds)
    return {};
  auto wanted = rl;
  wanted.rlim_cur = std::min<rlim_t>(fds, rl.rlim_max);
  std::string hard_refused;
  if (rl.rlim_max < fds) {
    // Beyond the hard limit only a privileged process (CAP_SYS_RESOURCE) may go.
    rlimit up{fds, fds};
    if (::setrlimit(RLIMIT_NOFILE, &up) == 0)
      return {};
    hard_refused = std::string(" (raising it: ") + std::strerror(errno)
                   + ", this process lacks CAP_SYS_RESOURCE)";
  }
  if (::setrlimit(RLIMIT_NOFILE, &wanted) != 0)
    return std::string("setrlimit(RLIMIT_NOFILE): ") + std::strerror(errno);
  if (wanted.rlim_cur < fds)
    return "RLIMIT_NOFILE is " + std::to_string(wanted.rlim_cur) + " (its hard limit"
           + hard_refused + ") and " + std::to_string(fds)
           + " descriptors are needed: raise the hard limit (ulimit -Hn as root, limits.conf, "
           + "the container's nofile) or run with CAP_SYS_RESOURCE";
  return {};
}

std::string fleet::id_of(size_t i) const { return impl_->id_of(i); }

void fleet::connect(size_t n, size_t concurrency) {
  auto& m = *impl_;
  {
    std::lock_guard<std::mutex> guard{m.mtx};
    if (m.sats.size() < n)
      m.sats.resize(n);
    m.start_until = std::max(m.start_until, n);
    m.concurrency = std::max<size_t>(concurrency, 1);
    m.start_more();
  }
  m.wake();
}

void fleet::kill(const std::vector<size_t>& which) {
  auto& m = *impl_;
  {
    std::lock_guard<std::mutex> guard{m.mtx};
    for (auto i : which) {
      if (i >= m.sats.size())
        continue;
      m.sats[i].killed = true;
      if (m.sats[i].state != sat_state::idle && m.sats[i].state != sat_state::down)
        m.close_conn(i, false);
      else
        m.sats[i].state = sat_state::down;
    }
  }
  m.wake();
}

void fleet::silence(const std::vector<size_t>& which) {
  auto& m = *impl_;
  std::lock_guard<std::mutex> guard{m.mtx};
  for (auto i : which)
    if (i < m.sats.size())
      m.sats[i].silent = true;  // its next heartbeat timer finds it so
}

fleet_stats fleet::stats() const {
  auto& m = *impl_;
  std::lock_guard<std::mutex> guard{m.mtx};
  auto out = m.st;
  if (!m.rtts.empty()) {
    auto sorted = m.rtts;
    std::sort(sorted.begin(), sorted.end());
    out.heartbeat_rtt_p50_ms = sorted[sorted.size() / 2];
    out.heartbeat_rtt_p99_ms = sorted[(sorted.size() - 1) * 99 / 100];
    out.heartbeat_rtt_max_ms = sorted.back();
  }
  return out;
}

sat_state fleet::state_of(size_t i) const {
  auto& m = *impl_;
  std::lock_guard<std::mutex> guard{m.mtx};
  return i < m.sats.size() ? m.sats[i].state : sat_state::idle;
}

steady_clock::time_point fleet::closed_by_server_at(size_t i) const {
  auto& m = *impl_;
  std::lock_guard<std::mutex> guard{m.mtx};
  return i < m.sats.size() ? m.sats[i].closed_by_server_at : steady_clock::time_point{};
}

bool fleet::wait_registered(size_t n, milliseconds bound) const {
  return wait_for([n](const fleet_stats& s) { return s.registered >= n; }, bound);
}

bool fleet::wait_for(const std::function<bool(const fleet_stats&)>& pred,
                     milliseconds bound) const {
  auto& m = *impl_;
  auto deadline = steady_clock::now() + bound;
  std::unique_lock<std::mutex> lock{m.mtx};
  while (!pred(m.st))
    if (m.changed.wait_until(lock, deadline) == std::cv_status::timeout)
      return pred(m.st);
  return true;
}

} // namespace levee::fleet
