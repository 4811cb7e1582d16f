// Requests both ways on one connection (net/connection.hpp): the peer's, bridged to the
// actors exposed by name (the in-flight bound, the connection's own deadlines, streamed
// answers paced by the peer's credit), and this side's own, sent to the peer with a
// promise its answer fulfils.

#include <algorithm>
#include <limits>
#include <string_view>

#include "actors/atoms.hpp"
#include "actors/caf_error.hpp"
#include "net/connection.hpp"
#include "net/reject_frame.hpp"

namespace levee::net {

using namespace std::chrono;

namespace {

/// A request whose actor has not answered this long after its deadline (or as long again
/// as the deadline, if that is longer) is given up on: its in-flight slot is freed.
constexpr uint64_t min_abandon_grace_ms = 1000;

/// How much later than its deadline a connection gives up on a streamed request whose
/// target enforces the deadline itself.
constexpr uint64_t stream_deadline_grace_ms = 1000;

/// What a refusal echoes of the peer's own input: at most this many bytes of it, so a
/// Reject stays small whatever the peer sent (a 900 KB target name is not sent back).
constexpr size_t max_echoed_bytes = 48;

/// `text` in quotes, cut to max_echoed_bytes (with its full length when cut).
std::string quoted_prefix(std::string_view text) {
  if (text.size() <= max_echoed_bytes)
    return "'" + std::string{text} + "'";
  return "'" + std::string{text.substr(0, max_echoed_bytes)} + "...' ("
         + std::to_string(text.size()) + " bytes)";
}

rejection rejection_of(const caf::error& err) {
  if (auto r = rejection_from(err))
    return *r;
  if (err == caf::sec::request_timeout)
    return rejection::of(code::deadline_exceeded)
             .limit("net.request_deadline_ms")
             .detail("the actor did not answer before the deadline");
  return rejection::of(code::unavailable)
           .detail("the actor behind this target failed or is gone: " + caf::to_string(err));
}

/// Arms the deadline timer for `deadline_ns` (unless it is armed for an earlier one) when
/// that is at most two ticks away; a later deadline is armed by the tick that comes near it
/// (on_tick). A timer waits in CAF's clock until it fires, answered request or not: timers
/// a whole deadline ahead (30 s by default) would pile up with the rate of requests, and a
/// timer every tick would wake the clock thread for nothing.
void arm_deadline(connection_broker* self, int64_t deadline_ns, int64_t now) {
  auto& st = self->state;
  if (deadline_ns > now + 2 * duration_cast<nanoseconds>(st.tick_interval).count())
    return;
  if (st.deadline_timer.arm(deadline_ns))
    delayed_send_by_id(self, st.timers, nanoseconds(std::max<int64_t>(deadline_ns - now, 0)),
                       timeout_atom::value, deadline_ns);
}

/// Takes the peer's request `rid` (sent to its actor as `tag`) out of the in-flight table
/// when its actor answers. False when the answer comes too late: the peer was already
/// told deadline_exceeded, or the request was given up on (and `rid` may be another
/// request by now).
bool settle_request(connection_state& st, uint64_t rid, uint64_t tag) {
  auto i = st.pending.find(rid);
  if (i == st.pending.end() || i->second.tag != tag)
    return false;
  bool in_time = !i->second.expired;
  st.pending.erase(i);
  return in_time;
}

} // namespace

/// Arms the deadline timer for the earliest deadline of the requests in flight, if near.
void arm_next_deadline(connection_broker* self, int64_t now) {
  auto& st = self->state;
  int64_t next = 0;
  for (auto& [rid, p] : st.pending) {
    auto at = p.expired ? p.abandon_ns : p.deadline_ns;
    next = next == 0 ? at : std::min(next, at);
  }
  if (next != 0)
    arm_deadline(self, next, now);
}

/// The armed timer fired: requests past their deadline are answered deadline_exceeded
/// (a stream's target is told to stop), and the timer is armed for the next deadline.
void expire_requests(connection_broker* self, int64_t armed_for) {
  auto& st = self->state;
  if (!st.deadline_timer.fire(armed_for))
    return;  // superseded by a timer for an earlier deadline
  if (st.closed || st.closing)
    return;
  auto now = st.ctx->clock().now_ns();
  int64_t next = 0;
  auto due = [&](int64_t at) { next = next == 0 ? at : std::min(next, at); };
  for (auto i = st.pending.begin(); i != st.pending.end();) {
    auto rid = i->first;
    auto& p = i->second;
    if (p.expired && p.abandon_ns <= now) {
      // Its actor has had the deadline and the grace: the slot goes back, and a late
      // answer is dropped (settle_request matches the tag, not only the peer's id).
      st.ctx->stats.requests_abandoned.fetch_add(1);
      if (st.ctx->log.admit())
        st.ctx->log.write("levee.connection",
                          rejection::of(code::deadline_exceeded)
                            .limit("net.request_deadline_ms")
                            .observed(static_cast<uint64_t>((now - p.started_ns) / ns_per_ms))
                            .max(p.deadline_ms)
                            .detail("actor '" + (p.target_name ? *p.target_name : std::string{})
                                    + "' never answered; its request's in-flight slot is freed"));
      i = st.pending.erase(i);
      continue;
    }
    if (p.expired) {
      due(p.abandon_ns);
    } else if (p.deadline_ns > now) {
      due(p.deadline_ns);
    } else {
      p.expired = true;
      due(p.abandon_ns);
      if (p.target) {
        st.streams.erase(p.tag);
        self->send(p.target, cancel_atom::value, p.tag);  // nobody reads the stream any more
      }
      send_reject(self, rid,
                  rejection::of(code::deadline_exceeded)
                    .limit("net.request_deadline_ms")
                    .observed(static_cast<uint64_t>((now - p.started_ns) / ns_per_ms))
                    .max(p.deadline_ms)
                    .detail("the actor did not answer before the deadline"));
    }
    ++i;
  }
  if (next != 0)
    arm_deadline(self, next, now);
}

void handle_broker_call(connection_broker* self, wire::Envelope& env) {
  // The typed stream requests (net/streams.proto) are Requests to the target "broker"
  // with a BrokerCall payload: the same in-flight bound, rates, deadlines and credit as
  // every request, one code path. The member moves into the call (no copy of a body).
  wire::BrokerCall call;
  uint32_t deadline_ms = 0;
  bool stream = false;
  uint32_t credit_batches = 0;
  uint64_t credit_bytes = 0;
  switch (env.body_case()) {
    case wire::Envelope::kCreateStream:
      deadline_ms = env.create_stream().deadline_ms();
      call.set_allocated_create_stream(env.release_create_stream());
      break;
    case wire::Envelope::kDeleteStream:
      deadline_ms = env.delete_stream().deadline_ms();
      call.set_allocated_delete_stream(env.release_delete_stream());
      break;
    case wire::Envelope::kListStreams:
      deadline_ms = env.list_streams().deadline_ms();
      call.set_allocated_list_streams(env.release_list_streams());
      break;
    case wire::Envelope::kStreamInfo:
      deadline_ms = env.stream_info().deadline_ms();
      call.set_allocated_stream_info(env.release_stream_info());
      break;
    case wire::Envelope::kPublish:
      deadline_ms = env.publish().deadline_ms();
      call.set_allocated_publish(env.release_publish());
      break;
    case wire::Envelope::kSubscribe:
      stream = true;
      credit_batches = env.subscribe().credit_batches();
      credit_bytes = env.subscribe().credit_bytes();
      call.set_allocated_subscribe(env.release_subscribe());
      break;
    case wire::Envelope::kCommitCursor:
      deadline_ms = env.commit_cursor().deadline_ms();
      call.set_allocated_commit_cursor(env.release_commit_cursor());
      break;
    case wire::Envelope::kFetchCursor:
      deadline_ms = env.fetch_cursor().deadline_ms();
      call.set_allocated_fetch_cursor(env.release_fetch_cursor());
      break;
    default:
      return;
  }
  auto& req = *env.mutable_request();
  req.set_target(std::string{broker_target});
  req.set_payload(call.SerializeAsString());
  req.set_deadline_ms(deadline_ms);
  req.set_stream(stream);
  req.set_credit_batches(credit_batches);
  req.set_credit_bytes(credit_bytes);
  // A subscription runs until its stop position or a Cancel: no deadline ends it (it
  // holds one of the connection's in-flight slots meanwhile).
  handle_request(self, env, stream);
}

void handle_request(connection_broker* self, wire::Envelope& env, bool no_deadline) {
  auto& st = self->state;
  auto& limits = limits_of(self);
  auto rid = env.request_id();
  auto& req = *env.mutable_request();
  if (st.pending.size() >= limits.max_inflight_requests) {
    send_reject(self, rid,
                rejection::of(code::too_many_inflight)
                  .limit("net.max_inflight_requests")
                  .observed(st.pending.size() + 1)
                  .max(limits.max_inflight_requests)
                  .retry_after_ms(10)
                  .detail("wait for answers before sending more requests"));
    return;
  }
  if (st.pending.count(rid) != 0) {
    send_reject(self, rid,
                rejection::of(code::bad_request)
                  .detail("request id " + std::to_string(rid)
                          + " is still in flight; give each request its own id"));
    return;
  }
  // Targets are looked up once per connection; the shared registry takes a lock.
  auto cached_at = st.targets.try_emplace(req.target()).first;
  auto& cached = cached_at->second;
  if (!cached)
    cached = st.ctx->target(req.target());
  auto target = cached;
  if (!target)
    st.targets.erase(cached_at);
  if (!target) {
    send_reject(self, rid,
                rejection::of(code::not_found)
                  .detail("no actor is exposed as " + quoted_prefix(req.target())));
    return;
  }
  uint64_t deadline = req.deadline_ms() != 0
                        ? std::min<uint64_t>(req.deadline_ms(), limits.request_deadline_ms)
                        : limits.request_deadline_ms;
  // A stream's target keeps its own deadline (a query's is server.query_deadline_ms, at
  // most this one) and names it; the connection's is the backstop, a second later.
  if (req.stream())
    deadline += stream_deadline_grace_ms;
  auto now = st.ctx->clock().now_ns();
  auto tag = ++st.next_tag;
  auto& p = st.pending[rid];
  p.started_ns = now;
  p.tag = tag;
  p.target_name = &cached_at->first;
  if (no_deadline) {
    p.deadline_ms = 0;
    p.deadline_ns = p.abandon_ns = std::numeric_limits<int64_t>::max();
  } else {
    p.deadline_ms = deadline;
    p.deadline_ns = now + static_cast<int64_t>(deadline) * ns_per_ms;
    p.abandon_ns = p.deadline_ns
                   + static_cast<int64_t>(std::max<uint64_t>(deadline, min_abandon_grace_ms)) * ns_per_ms;
    arm_deadline(self, p.deadline_ns, now);
  }
  if (req.stream()) {
    p.target = target;
    // Batches arrive as (wire_batch_atom, tag, part) before the answer: the actor sends
    // them to us in order, and CAF keeps one sender's messages in order.
    // The peer's credit (its defaults if it names none) is held here and lent to the
    // producer at most lend_cap at a time; the first loan goes with the request.
    auto& stream = st.streams[tag];
    stream.target = stream.producer = target;
    stream.rid = rid;
    stream.credit.add(req.credit_batches() != 0 ? req.credit_batches()
                                                : defaults::net_stream_credit_batches,
                      req.credit_bytes() != 0 ? req.credit_bytes()
                                              : defaults::net_stream_credit_bytes);
    auto first = lend(self, tag, stream, true);
    self->request(target, caf::infinite, wire_stream_atom::value,
                  std::move(*req.mutable_payload()), tag, first.batches,
                  static_cast<uint64_t>(first.bytes))
      .then(
        [=](stream_tail& tail, std::string& summary) {
          auto& s = self->state;
          if (!settle_request(s, rid, tag))
            return;
          auto& stream = s.streams[tag];
          // The batches that came with the end leave before it, as the others did.
          for (auto& part : tail) {
            if (!write_batch(self, stream, std::move(part))) {
              s.streams.erase(tag);  // refused: the Reject ends the stream, not its end
              return;
            }
          }
          wire::Envelope out;
          out.set_request_id(rid);
          out.mutable_end_of_stream()->set_batches(stream.batches);
          out.mutable_end_of_stream()->set_summary(std::move(summary));
          s.streams.erase(tag);
          s.ctx->stats.requests_answered.fetch_add(1);
          write_frame(self, out);
        },
        [=](caf::error& err) {
          auto& s = self->state;
          if (!settle_request(s, rid, tag))
            return;
          s.streams.erase(tag);
          send_reject(self, rid, rejection_of(err));
        });
    return;
  }
  self->request(target, caf::infinite, wire_request_atom::value,
                std::move(*req.mutable_payload()))
    .then(
      [=](std::string& answer) {
        auto& s = self->state;
        if (!settle_request(s, rid, tag))
          return;
        wire::Envelope out;
        out.set_request_id(rid);
        out.mutable_response()->set_payload(std::move(answer));
        s.ctx->stats.requests_answered.fetch_add(1);
        write_frame(self, out);
      },
      [=](caf::error& err) {
        if (settle_request(self->state, rid, tag))
          send_reject(self, rid, rejection_of(err));
      });
}

namespace {

/// Why a request of this side cannot go to the peer now, or nullopt if it can.
std::optional<rejection> outgoing_refusal(connection_broker* self) {
  auto& st = self->state;
  if (!st.hello_done || st.closing || st.closed)
    return rejection::of(code::unavailable).detail("the connection to the peer is not ready");
  if (st.peer_max_inflight != 0 && st.outgoing.size() >= st.peer_max_inflight)
    return rejection::of(code::too_many_inflight)
      .limit("net.max_inflight_requests")
      .observed(st.outgoing.size() + 1)
      .max(st.peer_max_inflight)
      .retry_after_ms(10)
      .detail("the peer allows no more requests in flight");
  if (auto waiting = waiting_bytes(self); waiting >= limits_of(self).max_write_buffer_bytes)
    return rejection::of(code::slow_consumer)
      .limit("net.max_write_buffer_bytes")
      .observed(waiting)
      .max(limits_of(self).max_write_buffer_bytes)
      .detail("the peer does not read what this node sends; the request was not sent");
  return std::nullopt;
}

/// A Request of this side to `target`, numbered in `env`.
wire::Request& new_request(connection_state& st, wire::Envelope& env, std::string target,
                           std::string payload) {
  env.set_request_id(st.next_request_id++);
  auto& req = *env.mutable_request();
  req.set_target(std::move(target));
  req.set_payload(std::move(payload));
  return req;
}

/// Writes request `env` (its id and body set) and keeps `rp` for the answer; a request
/// larger than the peer accepts is refused instead, nothing sent.
template <class Promise>
caf::error write_outgoing(connection_broker* self, wire::Envelope& env, Promise rp,
                          caf::actor sink, uint64_t tag) {
  auto& st = self->state;
  // Only a request that might be too large (compression could still bring it under) is
  // encoded to find out.
  if (frame_header_bytes + env.ByteSizeLong() > st.peer.max_frame_bytes) {
    std::string probe;
    if (auto err = encode_frame(env, st.peer, probe))
      return to_error(*err);
  }
  auto id = env.request_id();
  st.outgoing.emplace(id, std::move(rp));
  if (sink)
    st.outgoing_streams.emplace(id, connection_state::outgoing_stream{std::move(sink), tag});
  write_frame(self, env);
  return {};
}

} // namespace

/// Sends a request of this side to the peer; its answer (or Reject) fulfils the promise.
caf::result<std::string> send_outgoing(connection_broker* self, std::string target,
                                       std::string payload) {
  if (auto refused = outgoing_refusal(self))
    return to_error(*refused);
  wire::Envelope env;
  new_request(self->state, env, std::move(target), std::move(payload));
  auto rp = self->make_response_promise<std::string>();
  if (auto err = write_outgoing(self, env, rp, {}, 0))
    return err;
  return rp;
}

/// A streamed request of this side: its batches go to `sink` as (wire_batch_atom, tag,
/// part), and EndOfStream fulfils the promise with (stream_tail, summary): the tail is the
/// stream's last batch when it came in the same read as the end (connection_input.cpp
/// held_batch), so the sink hears of both in one message.
caf::result<stream_tail, std::string> send_outgoing_stream(connection_broker* self,
                                                          std::string target,
                                                          std::string payload, caf::actor sink,
                                                          uint64_t tag, stream_credit credit) {
  if (auto refused = outgoing_refusal(self))
    return to_error(*refused);
  wire::Envelope env;
  auto& req = new_request(self->state, env, std::move(target), std::move(payload));
  req.set_stream(true);
  req.set_credit_batches(static_cast<uint32_t>(
    std::min<uint64_t>(credit.batches, stream_credit::max_batches)));
  req.set_credit_bytes(static_cast<uint64_t>(std::max<int64_t>(credit.bytes, 0)));
  auto rp = self->make_response_promise<stream_tail, std::string>();
  if (auto err = write_outgoing(self, env, rp, std::move(sink), tag))
    return err;
  return rp;
}

} // namespace levee::net
