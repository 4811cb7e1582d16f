#include "levee/client.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>
#include <unordered_map>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "limits/clock.hpp"
#include "limits/token_bucket.hpp"
#include "net/frame.hpp"
#include "net/reject_frame.hpp"

namespace levee {

using namespace std::chrono;

namespace {

/// A refusal this side makes before anything is sent (not connected, a broken reply):
/// no limit refused, so it names none.
rejection local(code c, std::string detail) {
  return rejection::of(c).detail(std::move(detail));
}

/// How long one blocking recv() may wait (SO_RCVTIMEO) before the client looks at its
/// deadline again; see next_frame.
constexpr int64_t recv_slice_ms = 100;

int64_t remaining_ms(steady_clock::time_point deadline) {
  return std::max<int64_t>(0, duration_cast<milliseconds>(deadline - steady_clock::now()).count());
}

} // namespace

struct client::impl {
  client_options opts;
  int fd = -1;
  net::frame_reader reader;
  server_limits server;
  uint64_t next_request_id = 1;
  uint64_t inflight = 0;
  std::unique_ptr<token_bucket> msg_rate;
  std::unique_ptr<token_bucket> byte_rate;
  std::optional<rejection> last_reject;  // the last Reject that closed the connection
  uint32_t permit_bytes = 0;             // a granted permit, good for the next frame
  bool stream_next = false;              // the request being built is a streamed one
  /// coalesce_writes(): requests wait here until it holds coalesce_bytes, or until this
  /// side writes anything else or waits for an answer (so nothing waits for nothing).
  bool coalesce = false;
  std::string outbox;
  static constexpr size_t coalesce_bytes = 64 * 1024;
  /// Streamed requests in flight: what receive() has handed over since the last grant.
  struct stream_use {
    uint64_t batches = 0;
    uint64_t bytes = 0;
  };
  std::unordered_map<uint64_t, stream_use> streams;

  /// A batch of stream `id` was handed over: once half the window is used, it is granted
  /// again (a Credit frame).
  void consumed(uint64_t id, uint64_t bytes) {
    auto i = streams.find(id);
    if (i == streams.end())
      return;
    auto& use = i->second;
    ++use.batches;
    use.bytes += bytes;
    if (use.batches * 2 < opts.stream_credit_batches && use.bytes * 2 < opts.stream_credit_bytes)
      return;
    wire::Envelope env;
    env.set_request_id(id);
    env.mutable_credit()->set_batches(static_cast<uint32_t>(use.batches));
    env.mutable_credit()->set_bytes(use.bytes);
    use = stream_use{};
    // A Credit is a few bytes (never over a frame cap); if the write fails, the connection
    // is lost and the next receive() reports it.
    (void)send_envelope(env);
  }

  explicit impl(client_options o)
    : opts(std::move(o)), reader(codec()) {}

  net::codec_limits codec() const {
    return {opts.max_frame_bytes, opts.max_decompressed_bytes, opts.compress_above_bytes};
  }

  net::codec_limits peer() const {
    return {server.max_frame_bytes, server.max_decompressed_bytes, opts.compress_above_bytes};
  }

  void drop() noexcept {
    if (fd >= 0)
      ::close(fd);
    fd = -1;
    inflight = 0;
    permit_bytes = 0;
    outbox.clear();
    reader = net::frame_reader{codec()};
    pending_.clear();
    streams.clear();
  }

  status open_socket(steady_clock::time_point deadline) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    auto port = std::to_string(opts.port);
    if (int rc = ::getaddrinfo(opts.host.c_str(), port.c_str(), &hints, &res); rc != 0)
      return status::error(code::unavailable, "cannot resolve " + opts.host + ": "
                                                + ::gai_strerror(rc));
    std::string last_error = "no address";
    for (auto ai = res; ai != nullptr; ai = ai->ai_next) {
      int s = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
      if (s < 0)
        continue;
      ::fcntl(s, F_SETFL, ::fcntl(s, F_GETFL) | O_NONBLOCK);
      int rc = ::connect(s, ai->ai_addr, ai->ai_addrlen);
      if (rc != 0 && errno == EINPROGRESS) {
        pollfd p{s, POLLOUT, 0};
        auto ready = ::poll(&p, 1, static_cast<int>(remaining_ms(deadline)));
        if (ready == 1) {
          int err = 0;
          socklen_t len = sizeof err;
          ::getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len);
          rc = err == 0 ? 0 : -1;
          errno = err;
        } else {
          rc = -1;
          errno = ready == 0 ? ETIMEDOUT : errno;
        }
      }
      if (rc == 0) {
        ::fcntl(s, F_SETFL, ::fcntl(s, F_GETFL) & ~O_NONBLOCK);
        int one = 1;
        ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        timeval slice{0, static_cast<suseconds_t>(recv_slice_ms * 1000)};
        ::setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &slice, sizeof slice);
        fd = s;
        ::freeaddrinfo(res);
        return {};
      }
      last_error = std::strerror(errno);
      ::close(s);
    }
    ::freeaddrinfo(res);
    return status::error(code::unavailable, "cannot connect to " + opts.host + ":" + port + ": "
                                              + last_error + "; is the server running?");
  }

  /// Writes what coalescing held, then `bytes`: frames leave in the order they were made.
  status write_all(std::string_view bytes) {
    if (!outbox.empty()) {
      auto held = std::move(outbox);
      outbox.clear();
      if (auto st = write_raw(held); !st)
        return st;
    }
    return write_raw(bytes);
  }

  status write_raw(std::string_view bytes) {
    while (!bytes.empty()) {
      auto n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR)
          continue;
        auto why = std::string{std::strerror(errno)};
        drop();
        return status::error(code::unavailable, "connection lost while sending: " + why);
      }
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return {};
  }

  status send_envelope(const wire::Envelope& env) {
    std::string out;
    if (auto err = net::encode_frame(env, peer(), out))
      return status::error(err->code, err->to_string());
    return write_all(out);
  }

  /// Bytes received and not yet fed to the reader (a read may bring several frames).
  std::string pending_;

  void feed_pending() {
    size_t pos = 0;
    while (pos < pending_.size() && !reader.frame_ready() && !reader.error())
      pos += reader.feed(reinterpret_cast<const uint8_t*>(pending_.data()) + pos,
                         pending_.size() - pos);
    pending_.erase(0, pos);
  }

  /// The next frame from the server; nullopt and `st` on timeout, loss or a bad frame.
  std::optional<wire::Envelope> next_frame(steady_clock::time_point deadline, status& st) {
    char buf[64 * 1024];
    for (;;) {
      if (!reader.frame_ready() && !pending_.empty())
        feed_pending();
      if (reader.frame_ready())
        return reader.take();
      if (reader.error()) {
        st = status::error(reader.error()->code,
                           "bad frame from the server: " + reader.error()->to_string());
        drop();
        return std::nullopt;
      }
      if (fd < 0) {
        st = status::error(code::unavailable, "not connected");
        return std::nullopt;
      }
      if (!outbox.empty())  // about to wait: what coalescing held goes first
        if (auto w = write_all({}); !w) {
          st = w;
          return std::nullopt;
        }
      // Far from the deadline the client waits in recv() itself, which SO_RCVTIMEO ends
      // after recv_slice_ms to look at the deadline again: one system call per answer
      // where poll() and then recv() made two. Near it, poll() waits exactly.
      auto left = remaining_ms(deadline);
      if (left < recv_slice_ms) {
        pollfd p{fd, POLLIN, 0};
        auto rc = ::poll(&p, 1, static_cast<int>(left));
        if (rc == 0) {
          st = status::error(code::deadline_exceeded, "no answer from the server in time");
          return std::nullopt;
        }
        if (rc < 0 && errno == EINTR)
          continue;
      }
      auto n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) {
        if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
          continue;  // a signal, or a slice without data: the deadline is looked at again
        st = status::error(code::unavailable, n == 0 ? std::string{"the server closed the connection"}
                                                     : std::string{"connection lost: "}
                                                         + std::strerror(errno));
        drop();
        return std::nullopt;
      }
      pending_.append(buf, static_cast<size_t>(n));
    }
  }
};

client::client(client_options opts) : impl_(std::make_unique<impl>(std::move(opts))) {
}

client::~client() {
  if (impl_)
    impl_->drop();
}

client::client(client&&) noexcept = default;
client& client::operator=(client&&) noexcept = default;

void client::coalesce_writes(bool on) {
  impl_->coalesce = on;
}

status client::flush_writes() {
  if (impl_->outbox.empty())
    return {};
  if (impl_->fd < 0)
    return status::error(code::unavailable, "not connected");
  return impl_->write_all({});
}

bool client::connected() const noexcept {
  return impl_->fd >= 0;
}

void client::close() noexcept {
  impl_->drop();
}

const server_limits& client::limits() const noexcept {
  return impl_->server;
}

uint64_t client::in_flight() const noexcept {
  return impl_->inflight;
}

status client::connect() {
  auto& d = *impl_;
  d.drop();
  d.pending_.clear();
  auto deadline = steady_clock::now() + d.opts.connect_timeout;
  if (auto st = d.open_socket(deadline); !st)
    return st;
  wire::Envelope hello;
  auto& h = *hello.mutable_hello();
  h.set_protocol_version(net::protocol_version);
  h.set_node_id(d.opts.node_id);
  h.set_role(d.opts.satellite ? wire::ROLE_SATELLITE : wire::ROLE_CLIENT);
  h.set_token(d.opts.token);
  h.set_software("levee-client 0.1.0");
  h.mutable_limits()->set_max_frame_bytes(d.opts.max_frame_bytes);
  h.mutable_limits()->set_max_decompressed_bytes(d.opts.max_decompressed_bytes);
  // Before the server's Hello, frames go out under the protocol's default limits.
  d.server.max_frame_bytes = net::default_codec_limits().max_frame_bytes;
  d.server.max_decompressed_bytes = net::default_codec_limits().max_decompressed_bytes;
  if (auto st = d.send_envelope(hello); !st)
    return st;
  status st;
  auto reply = d.next_frame(deadline, st);
  if (!reply) {
    d.drop();
    return st;
  }
  if (reply->has_reject()) {
    auto r = net::from_wire(reply->reject());
    d.drop();
    auto text = r.to_string();
    return status::refused(std::move(r), std::move(text));  // every field kept
  }
  if (!reply->has_hello()) {
    d.drop();
    return status::error(code::bad_request, "the server did not answer with a Hello");
  }
  auto& sh = reply->hello();
  auto& sl = sh.limits();
  d.server = server_limits{sl.max_frame_bytes(),      sl.max_decompressed_bytes(),
                           sl.max_msgs_per_sec(),     sl.max_bytes_per_sec(),
                           sl.max_inflight_requests(), sl.permit_ceiling_bytes(),
                           sl.idle_timeout_ms(),      sh.node_id()};
  if (d.server.max_frame_bytes == 0)
    d.server.max_frame_bytes = net::default_codec_limits().max_frame_bytes;
  if (d.server.max_decompressed_bytes == 0)
    d.server.max_decompressed_bytes = d.server.max_frame_bytes;
  auto& clock = steady_clock_source::instance();
  d.msg_rate = std::make_unique<token_bucket>(clock, d.server.max_msgs_per_sec, 0);
  d.byte_rate = std::make_unique<token_bucket>(clock, d.server.max_bytes_per_sec, 0);
  return {};
}

status client::connect_with_backoff(milliseconds total) {
  auto deadline = steady_clock::now() + total;
  auto wait = impl_->opts.backoff_initial;
  for (;;) {
    auto st = connect();
    if (st || st.code() == code::unauthenticated || st.code() == code::unsupported_version)
      return st;  // success, or a refusal that retrying cannot fix
    if (steady_clock::now() + wait >= deadline)
      return st;
    std::this_thread::sleep_for(wait);
    wait = std::min(wait * 2, impl_->opts.backoff_max);
  }
}

std::optional<rejection> client::send_stream_request(std::string_view target,
                                                     std::string payload, uint64_t& request_id,
                                                     uint32_t deadline_ms) {
  impl_->stream_next = true;
  auto r = send_request(target, std::move(payload), request_id, deadline_ms);
  impl_->stream_next = false;
  return r;
}

std::optional<rejection> client::send_request(std::string_view target, std::string payload,
                                              uint64_t& request_id, uint32_t deadline_ms) {
  auto& d = *impl_;
  wire::Envelope env;
  auto& req = *env.mutable_request();
  req.set_target(std::string{target});
  req.set_payload(std::move(payload));
  req.set_deadline_ms(deadline_ms);
  req.set_stream(d.stream_next);
  if (d.stream_next) {
    req.set_credit_batches(std::max<uint32_t>(d.opts.stream_credit_batches, 1));
    req.set_credit_bytes(std::max<uint64_t>(d.opts.stream_credit_bytes, 1));
  }
  return send_one(env, request_id, d.stream_next);
}

std::optional<rejection> client::send_call(wire::BrokerCall& call, uint64_t& request_id) {
  auto& d = *impl_;
  wire::Envelope env;
  bool stream = false;
  switch (call.call_case()) {
    case wire::BrokerCall::kCreateStream:
      env.set_allocated_create_stream(call.release_create_stream());
      break;
    case wire::BrokerCall::kDeleteStream:
      env.set_allocated_delete_stream(call.release_delete_stream());
      break;
    case wire::BrokerCall::kListStreams:
      env.set_allocated_list_streams(call.release_list_streams());
      break;
    case wire::BrokerCall::kStreamInfo:
      env.set_allocated_stream_info(call.release_stream_info());
      break;
    case wire::BrokerCall::kPublish:
      env.set_allocated_publish(call.release_publish());
      break;
    case wire::BrokerCall::kSubscribe: {
      stream = true;
      auto* sub = call.release_subscribe();
      if (sub->credit_batches() == 0)
        sub->set_credit_batches(std::max<uint32_t>(d.opts.stream_credit_batches, 1));
      if (sub->credit_bytes() == 0)
        sub->set_credit_bytes(std::max<uint64_t>(d.opts.stream_credit_bytes, 1));
      env.set_allocated_subscribe(sub);
      break;
    }
    case wire::BrokerCall::kCommitCursor:
      env.set_allocated_commit_cursor(call.release_commit_cursor());
      break;
    case wire::BrokerCall::kFetchCursor:
      env.set_allocated_fetch_cursor(call.release_fetch_cursor());
      break;
    case wire::BrokerCall::kFetch:
    case wire::BrokerCall::kEpochEndOffset:
      return local(code::bad_request,
                   "replica fetches are sent between brokers, not by clients; read a stream "
                   "with a Subscribe");
    case wire::BrokerCall::CALL_NOT_SET:
      return local(code::bad_request, "an empty BrokerCall; set one of its calls");
  }
  return send_one(env, request_id, stream);
}

std::optional<rejection> client::send_one(wire::Envelope& env, uint64_t& request_id, bool stream) {
  auto& d = *impl_;
  if (d.fd < 0)
    return local(code::unavailable, "not connected; call connect() first");
  if (d.server.max_inflight_requests != 0 && d.inflight >= d.server.max_inflight_requests)
    return rejection::of(code::too_many_inflight)
             .limit("net.max_inflight_requests")
             .observed(d.inflight + 1)
             .max(d.server.max_inflight_requests)
             .detail("the server allows no more requests in flight; receive() answers first");
  env.set_request_id(d.next_request_id);
  std::string out;
  auto peer = d.peer();
  peer.max_frame_bytes = std::max(peer.max_frame_bytes, d.permit_bytes);
  if (auto err = net::encode_frame(env, peer, out))
    return err;  // above the server's max_frame_bytes: refused here, nothing sent
  d.permit_bytes = 0;  // the server takes a permit for the next frame, whatever its size
  // Pace to the advertised rates instead of earning a rate_limited.
  for (;;) {
    auto m = d.msg_rate->try_acquire(1);
    if (!m.allowed) {
      std::this_thread::sleep_for(nanoseconds(m.retry_after_ns));
      continue;
    }
    auto b = d.byte_rate->try_acquire(out.size());
    if (b.allowed || b.never)
      break;
    d.msg_rate->refund(1);
    std::this_thread::sleep_for(nanoseconds(b.retry_after_ns));
  }
  if (d.coalesce) {
    d.outbox += out;
    if (d.outbox.size() >= impl::coalesce_bytes)
      if (auto st = d.write_all({}); !st)
        return local(code::unavailable, st.message());
  } else if (auto st = d.write_all(out); !st) {
    return local(code::unavailable, st.message());
  }
  request_id = d.next_request_id++;
  ++d.inflight;
  if (stream)
    d.streams[request_id] = impl::stream_use{};
  return std::nullopt;
}

std::optional<rejection> client::send_requests(std::string_view target,
                                               const std::vector<std::string>& payloads,
                                               std::vector<uint64_t>& request_ids,
                                               uint32_t deadline_ms) {
  auto& d = *impl_;
  if (d.fd < 0)
    return local(code::unavailable, "not connected; call connect() first");
  if (d.server.max_inflight_requests != 0
      && d.inflight + payloads.size() > d.server.max_inflight_requests)
    return rejection::of(code::too_many_inflight)
             .limit("net.max_inflight_requests")
             .observed(d.inflight + payloads.size())
             .max(d.server.max_inflight_requests)
             .detail("the server allows no more requests in flight; receive() answers first");
  std::string out;
  auto id = d.next_request_id;
  for (auto& payload : payloads) {
    wire::Envelope env;
    env.set_request_id(id++);
    auto& req = *env.mutable_request();
    req.set_target(std::string{target});
    req.set_payload(payload);
    req.set_deadline_ms(deadline_ms);
    if (auto err = net::encode_frame(env, d.peer(), out))
      return err;
  }
  for (;;) {  // pace the batch as a whole to the advertised rates
    auto m = d.msg_rate->try_acquire(payloads.size());
    if (!m.allowed && !m.never) {
      std::this_thread::sleep_for(nanoseconds(m.retry_after_ns));
      continue;
    }
    auto b = d.byte_rate->try_acquire(out.size());
    if (b.allowed || b.never)
      break;
    if (m.allowed)
      d.msg_rate->refund(payloads.size());
    std::this_thread::sleep_for(nanoseconds(b.retry_after_ns));
  }
  if (auto st = d.write_all(out); !st)
    return local(code::unavailable, st.message());
  for (size_t i = 0; i < payloads.size(); ++i)
    request_ids.push_back(d.next_request_id++);
  d.inflight += payloads.size();
  return std::nullopt;
}

size_t client::receive_ready(std::vector<reply>& out, milliseconds timeout) {
  auto& d = *impl_;
  size_t n = 0;
  out.push_back(receive(timeout));
  ++n;
  if (!out.back().ok() && out.back().request_id == 0)
    return n;  // a local timeout or a lost connection
  // Further answers already received: decode them without waiting for the socket.
  for (;;) {
    if (!d.reader.frame_ready() && !d.pending_.empty())
      d.feed_pending();
    if (!d.reader.frame_ready())
      return n;
    out.push_back(receive(milliseconds(0)));
    ++n;
  }
}

reply client::receive(milliseconds timeout) {
  auto& d = *impl_;
  auto deadline = steady_clock::now() + timeout;
  for (;;) {
    if (d.fd < 0)
      return reply{0, std::nullopt, local(code::unavailable, "not connected; call connect() first")};
    status st;
    auto env = d.next_frame(deadline, st);
    if (!env)
      return reply{0, std::nullopt, local(st.code(), st.message())};
    switch (env->body_case()) {
      case wire::Envelope::kResponse:
        d.inflight -= d.inflight > 0 ? 1 : 0;
        return reply{env->request_id(), std::move(*env->mutable_response()->mutable_payload()),
                     std::nullopt};
      case wire::Envelope::kBatch: {
        d.consumed(env->request_id(), env->batch().payload().size());
        reply r{env->request_id(), std::move(*env->mutable_batch()->mutable_payload()),
                std::nullopt};
        r.batch = true;
        r.sequence = env->batch().sequence();
        return r;
      }
      case wire::Envelope::kEndOfStream: {
        d.inflight -= d.inflight > 0 ? 1 : 0;
        d.streams.erase(env->request_id());
        reply r{env->request_id(),
                std::move(*env->mutable_end_of_stream()->mutable_summary()), std::nullopt};
        r.end_of_stream = true;
        r.sequence = env->end_of_stream().batches();
        return r;
      }
      case wire::Envelope::kReject: {
        auto r = net::from_wire(env->reject());
        if (env->reject().closing()) {
          d.last_reject = r;
          d.drop();
        } else if (env->request_id() != 0) {
          d.inflight -= d.inflight > 0 ? 1 : 0;
          d.streams.erase(env->request_id());
        }
        return reply{env->request_id(), std::nullopt, std::move(r)};
      }
      case wire::Envelope::kPing: {
        wire::Envelope pong;
        pong.mutable_pong()->set_nonce(env->ping().nonce());
        // If the write fails, the connection is lost: the read this loop does next says so.
        (void)d.send_envelope(pong);
        continue;
      }
      default:
        return reply{env->request_id(), std::nullopt,
                     local(code::bad_request, "unexpected message from the server")};
    }
  }
}

reply client::request(std::string_view target, std::string payload, milliseconds timeout) {
  auto deadline = steady_clock::now() + timeout;
  if (!connected()) {
    if (auto st = connect_with_backoff(timeout); !st)
      return reply{0, std::nullopt, local(st.code(), st.message())};
  }
  uint64_t id = 0;
  if (auto refused = send_request(target, std::move(payload), id,
                                  static_cast<uint32_t>(timeout.count())))
    return reply{0, std::nullopt, std::move(refused)};
  for (;;) {
    auto r = receive(milliseconds(remaining_ms(deadline)));
    if (r.request_id == id || r.request_id == 0)
      return r;  // ours, or a local error (timeout, connection lost)
  }
}

std::optional<rejection> client::request_permit(uint32_t frame_bytes, milliseconds timeout) {
  auto& d = *impl_;
  if (d.fd < 0)
    return local(code::unavailable, "not connected; call connect() first");
  wire::Envelope env;
  auto id = d.next_request_id++;
  env.set_request_id(id);
  env.mutable_permit_request()->set_frame_bytes(frame_bytes);
  if (auto st = d.send_envelope(env); !st)
    return local(st.code(), st.message());
  auto deadline = steady_clock::now() + timeout;
  for (;;) {
    status st;
    auto reply_env = d.next_frame(deadline, st);
    if (!reply_env)
      return local(st.code(), st.message());
    if (reply_env->request_id() != id)
      continue;
    if (reply_env->has_reject())
      return net::from_wire(reply_env->reject());
    if (reply_env->has_permit_grant()) {
      d.permit_bytes = frame_bytes;
      return std::nullopt;
    }
  }
}

result<microseconds> client::ping(milliseconds timeout) {
  auto& d = *impl_;
  if (d.fd < 0)
    return status::error(code::unavailable, "not connected");
  wire::Envelope env;
  auto id = d.next_request_id++;
  env.set_request_id(id);
  env.mutable_ping()->set_nonce(id);
  auto start = steady_clock::now();
  if (auto st = d.send_envelope(env); !st)
    return st;
  auto deadline = start + timeout;
  for (;;) {
    status st;
    auto reply_env = d.next_frame(deadline, st);
    if (!reply_env)
      return st;
    if (reply_env->has_pong() && reply_env->pong().nonce() == id)
      return duration_cast<microseconds>(steady_clock::now() - start);
    if (reply_env->has_reject() && reply_env->reject().closing()) {
      auto r = net::from_wire(reply_env->reject());
      auto text = r.to_string();
      return status::refused(std::move(r), std::move(text));
    }
  }
}

status client::cancel(uint64_t request_id) {
  auto& d = *impl_;
  if (d.fd < 0)
    return status::error(code::unavailable, "not connected");
  wire::Envelope env;
  env.set_request_id(request_id);
  env.mutable_cancel();
  std::string out;
  if (auto err = net::encode_frame(env, d.peer(), out))
    return status::error(err->code, err->detail);
  return d.write_all(out);
}

status client::send_raw(std::string_view bytes) {
  if (impl_->fd < 0)
    return status::error(code::unavailable, "not connected");
  return impl_->write_all(bytes);
}

std::optional<rejection> client::wait_for_close(milliseconds timeout) {
  auto& d = *impl_;
  auto deadline = steady_clock::now() + timeout;
  std::optional<rejection> last;
  while (d.fd >= 0) {
    status st;
    auto env = d.next_frame(deadline, st);
    if (!env) {
      if (st.code() == code::deadline_exceeded)
        return local(code::deadline_exceeded, "the server did not close the connection in time");
      break;
    }
    if (env->has_reject())
      last = net::from_wire(env->reject());
  }
  return last ? last : d.last_reject;
}

} // namespace levee
