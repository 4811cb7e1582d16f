// A connection's reading side: what arrives goes through the frame reader (each header
// checked before its body is buffered) and the per-connection rates, then to its handler:
// the handshake, pings, permits, cancels, credit, and the requests and answers of
// connection_requests.cpp (net/connection.hpp).

#include <algorithm>

#include "actors/atoms.hpp"
#include "actors/caf_error.hpp"
#include "net/connection.hpp"
#include "net/reject_frame.hpp"

namespace levee::net {

using namespace std::chrono;
using caf::io::receive_policy;

namespace {

void handle_hello(connection_broker* self, const wire::Envelope& env) {
  auto& st = self->state;
  auto& ctx = *st.ctx;
  auto& limits = limits_of(self);
  if (st.dialed && env.has_reject()) {
    // The server refused us (credential, version, too many connections): tell the uplink.
    if (st.owner)
      self->send(st.owner, refused_atom::value, to_error(from_wire(env.reject())));
    close_connection(self);
    return;
  }
  if (!env.has_hello()) {
    reject_and_close(self, env.request_id(),
                     rejection::of(code::bad_request).detail("the first frame must be a Hello"));
    return;
  }
  auto& hello = env.hello();
  st.peer_node_id = hello.node_id();
  st.peer_max_inflight = hello.limits().max_inflight_requests();
  if (hello.protocol_version() != protocol_version) {
    reject_and_close(self, env.request_id(),
                     rejection::of(code::unsupported_version)
                       .observed(hello.protocol_version())
                       .max(protocol_version)
                       .detail("this server speaks protocol version 1; use a client that "
                               "does"));
    return;
  }
  if (!st.dialed && !ctx.config().token.empty() && hello.token() != ctx.config().token) {
    reject_and_close(self, env.request_id(),
                     rejection::of(code::unauthenticated)
                       .detail(hello.token().empty()
                                 ? "this server requires a token (its net.token); set the "
                                   "same token on this side"
                                 : "wrong token: set the one the server's net.token names"));
    return;
  }
  if (!st.dialed && hello.role() == wire::ROLE_SATELLITE && !*st.satellite_slot) {
    // Satellites may hold all connections but the reserve: a full fleet leaves the
    // operators and clients theirs (net.reserved_connections).
    if (!ctx.try_open_satellite()) {
      ctx.stats.connections_refused.fetch_add(1);
      auto max = ctx.max_satellite_connections();
      reject_and_close(
        self, env.request_id(),
        rejection::of(code::too_many_connections)
          .limit("net.max_connections")
          .observed(max + 1)
          .max(max)
          .retry_after_ms(5000)
          .detail("satellites hold all the connections this server gives them: "
                  + std::to_string(max) + " of its net.max_connections ("
                  + std::to_string(limits.max_connections) + "), "
                  + std::to_string(limits.reserved_connections)
                  + " being kept for operators and clients (net.reserved_connections); "
                    "raise net.max_connections (and server.max_satellites) on the server "
                    "for a larger fleet"));
      return;
    }
    *st.satellite_slot = true;
  }
  auto& pl = hello.limits();
  st.peer.max_frame_bytes = pl.max_frame_bytes() != 0 ? pl.max_frame_bytes()
                                                      : default_codec_limits().max_frame_bytes;
  st.peer.max_decompressed_bytes = pl.max_decompressed_bytes() != 0
                                     ? pl.max_decompressed_bytes()
                                     : st.peer.max_frame_bytes;
  st.peer.compress_above_bytes = static_cast<uint32_t>(limits.compress_above_bytes);
  st.hello_done = true;
  if (!st.peer_node_id.empty())
    ctx.name_connection(st.peer_node_id, caf::actor_cast<caf::actor>(self));
  if (st.dialed) {
    // The server's Hello answered ours: the uplink may send.
    if (st.owner)
      self->send(st.owner, connected_atom::value, st.peer_node_id);
    return;
  }
  wire::Envelope reply;
  reply.set_request_id(env.request_id());
  fill_hello(*reply.mutable_hello(), ctx, wire::ROLE_SERVER, "");
  write_frame(self, reply);
}

void handle_permit(connection_broker* self, const wire::Envelope& env) {
  auto& st = self->state;
  auto& limits = limits_of(self);
  auto wanted = env.permit_request().frame_bytes();
  if (limits.permit_ceiling_bytes == 0) {
    send_reject(self, env.request_id(),
                rejection::of(code::permission_denied)
                  .limit("net.permit_ceiling_bytes")
                  .observed(wanted)
                  .detail("this listener grants no overweight permits"));
    return;
  }
  if (wanted > limits.permit_ceiling_bytes) {
    send_reject(self, env.request_id(),
                rejection::of(code::message_too_large)
                  .limit("net.permit_ceiling_bytes")
                  .observed(wanted)
                  .max(limits.permit_ceiling_bytes)
                  .detail("no permit is granted above the ceiling"));
    return;
  }
  st.reader->allow_next_frame(wanted);
  st.permit_expires_ns = st.ctx->clock().now_ns()
                         + static_cast<int64_t>(limits.permit_ttl_ms) * ns_per_ms;
  wire::Envelope out;
  out.set_request_id(env.request_id());
  auto& grant = *out.mutable_permit_grant();
  grant.set_permit_id(st.next_permit_id++);
  grant.set_frame_bytes(wanted);
  grant.set_expires_in_ms(static_cast<uint32_t>(limits.permit_ttl_ms));
  write_frame(self, out);
}

/// Sends the held Batch on to its stream's sink (unless the stream ended meanwhile).
void release_held_batch(connection_broker* self) {
  auto& st = self->state;
  if (!st.held.held)
    return;
  st.held.held = false;
  auto i = st.outgoing_streams.find(st.held.rid);
  if (i != st.outgoing_streams.end())
    self->send(i->second.sink, wire_batch_atom::value, i->second.tag, std::move(st.held.part));
}

void handle_frame(connection_broker* self, wire::Envelope& env) {
  auto& st = self->state;
  if (st.held.held
      && !(env.body_case() == wire::Envelope::kEndOfStream && env.request_id() == st.held.rid))
    release_held_batch(self);  // in order: before whatever this frame sets off
  if (!st.hello_done) {
    handle_hello(self, env);
    return;
  }
  switch (env.body_case()) {
    case wire::Envelope::kPing: {
      wire::Envelope out;
      out.set_request_id(env.request_id());
      out.mutable_pong()->set_nonce(env.ping().nonce());
      write_frame(self, out);
      return;
    }
    case wire::Envelope::kPong:
      return;  // liveness is noted for every complete frame
    case wire::Envelope::kRequest:
      handle_request(self, env);
      return;
    case wire::Envelope::kPermitRequest:
      handle_permit(self, env);
      return;
    case wire::Envelope::kCreateStream:
    case wire::Envelope::kDeleteStream:
    case wire::Envelope::kListStreams:
    case wire::Envelope::kStreamInfo:
    case wire::Envelope::kPublish:
    case wire::Envelope::kSubscribe:
    case wire::Envelope::kCommitCursor:
    case wire::Envelope::kFetchCursor:
      handle_broker_call(self, env);
      return;
    case wire::Envelope::kCancel: {
      auto i = st.pending.find(env.request_id());
      if (i != st.pending.end() && i->second.target && !i->second.expired)
        self->send(i->second.target, cancel_atom::value, i->second.tag);
      return;  // the target ends the request (Reject cancelled); unknown ids are ignored
    }
    case wire::Envelope::kCredit: {
      // More credit for one of the peer's streams; unknown or finished ids are ignored.
      st.ctx->stats.credit_frames_in.fetch_add(1);
      auto i = st.pending.find(env.request_id());
      if (i == st.pending.end() || i->second.expired)
        return;
      auto stream = st.streams.find(i->second.tag);
      if (stream == st.streams.end())
        return;
      stream->second.credit.add(env.credit().batches(), env.credit().bytes());
      lend(self, stream->first, stream->second);
      return;
    }
    case wire::Envelope::kBatch: {
      // Held until the next frame or the end of this read (release_held_batch): a stream's
      // last batch and its end usually come in one read, and then go on as one message.
      if (st.outgoing_streams.count(env.request_id()) != 0) {
        st.held.held = true;
        st.held.rid = env.request_id();
        st.held.part = std::move(*env.mutable_batch()->mutable_payload());
      }
      return;  // a batch of a stream we cancelled or that failed: dropped
    }
    case wire::Envelope::kEndOfStream:
    case wire::Envelope::kResponse:
    case wire::Envelope::kReject: {
      auto i = st.outgoing.find(env.request_id());
      if (i == st.outgoing.end())
        return;  // an answer nobody waits for (its requester gave up): dropped, harmless
      if (env.has_response()) {
        i->second.deliver(std::move(*env.mutable_response()
                                       ->mutable_payload()));
      } else if (env.has_end_of_stream()) {
        stream_tail tail;
        if (st.held.held) {  // this stream's (handle_frame released any other)
          st.held.held = false;
          tail.push_back(std::move(st.held.part));
        }
        i->second.deliver(std::move(tail),
                          std::move(*env.mutable_end_of_stream()->mutable_summary()));
      } else
        i->second.deliver(to_error(from_wire(env.reject())));
      st.outgoing.erase(i);
      st.outgoing_streams.erase(env.request_id());
      return;
    }
    case wire::Envelope::kHello:
      reject_and_close(self, env.request_id(),
                       rejection::of(code::bad_request)
                         .detail("a second Hello on one connection"));
      return;
    default:
      send_reject(self, env.request_id(),
                  rejection::of(code::bad_request)
                    .detail("this message is not accepted from a client"));
  }
}

/// Applies the per-connection rates to one complete frame; on refusal answers with a
/// Reject (if `answer_refusal`) and stops reading until the connection owes no time.
/// Returns whether to handle the frame: a refused one is dropped, unless `must_handle`
/// (credit and cancels for requests already running: dropping one would stall or orphan
/// the request; the pause is their pushback).
bool admit_frame(connection_broker* self, uint64_t request_id, uint64_t frame_bytes,
                 bool answer_refusal, bool must_handle) {
  auto& st = self->state;
  auto& limits = limits_of(self);
  std::optional<rejection> refused;
  uint64_t retry_ns = 0;
  auto d = st.msg_rate->try_acquire(1);
  if (!d.allowed) {
    retry_ns = d.retry_after_ns;
    refused = rejection::of(code::rate_limited)
                .limit("net.max_msgs_per_sec")
                .observed(d.observed_units)
                .max(st.msg_rate->burst())
                .retry_after_ms(token_bucket::to_retry_ms(retry_ns))
                .detail("this connection may send " + std::to_string(limits.max_msgs_per_sec)
                        + " frames per second");
  } else if (auto b = st.byte_rate->try_acquire(frame_bytes); !b.allowed) {
    st.msg_rate->refund(1);
    retry_ns = b.retry_after_ns;
    refused = rejection::of(code::rate_limited)
                .limit("net.max_bytes_per_sec")
                .observed(b.observed_units)
                .max(st.byte_rate->burst())
                .retry_after_ms(token_bucket::to_retry_ms(retry_ns))
                .detail("this connection may send " + std::to_string(limits.max_bytes_per_sec)
                        + " bytes per second");
  }
  if (!refused)
    return true;
  if (answer_refusal && !must_handle)
    send_reject(self, request_id, *refused);
  // Backpressure through TCP: not reading makes the client's socket buffer fill up.
  st.paused = true;
  sync_reading(self);
  later(self, milliseconds(refused->retry_after_ms), resume_atom::value);
  return must_handle;
}

/// A read that filled what was asked doubles the next (up to read_chunk_bytes); a run of
/// small ones halves it (down to min_read_bytes).
void adapt_read_size(connection_broker* self, size_t got) {
  auto& st = self->state;
  auto next = st.read_size;
  if (got >= st.read_size) {
    next = std::min(st.read_size * 2, read_chunk_bytes);
    st.small_reads = 0;
  } else if (got < st.read_size / 4 && ++st.small_reads >= small_reads_to_shrink) {
    next = std::max(st.read_size / 2, min_read_bytes);
    st.small_reads = 0;
  } else if (got >= st.read_size / 4) {
    st.small_reads = 0;
  }
  if (next != st.read_size) {
    st.read_size = next;
    self->configure_read(st.hdl, receive_policy::at_most(next));
  }
}

} // namespace

void fill_hello(wire::Hello& out, const server_context& ctx, wire::Role role,
                const std::string& token) {
  auto& limits = ctx.config().limits;
  out.set_protocol_version(protocol_version);
  out.set_node_id(ctx.config().node_id);
  out.set_role(role);
  out.set_token(token);
  out.set_software("levee 0.1.0");
  auto& ol = *out.mutable_limits();
  ol.set_max_frame_bytes(static_cast<uint32_t>(limits.max_frame_bytes));
  ol.set_max_decompressed_bytes(static_cast<uint32_t>(limits.max_decompressed_bytes));
  ol.set_max_msgs_per_sec(limits.max_msgs_per_sec);
  ol.set_max_bytes_per_sec(limits.max_bytes_per_sec);
  ol.set_max_inflight_requests(static_cast<uint32_t>(limits.max_inflight_requests));
  ol.set_permit_ceiling_bytes(static_cast<uint32_t>(limits.permit_ceiling_bytes));
  ol.set_idle_timeout_ms(static_cast<uint32_t>(limits.idle_timeout_ms));
}

/// Feeds what was read to the frame reader and handles every complete frame, until the
/// bytes run out, the connection is paused by a rate refusal or blocked by a peer that
/// does not read its answers (the rest waits in the inbox: reading is halted, so the
/// inbox holds at most one read), or it closes.
void process_inbox(connection_broker* self) {
  auto& st = self->state;
  size_t pos = 0;
  while (!st.closed && !st.closing && !st.paused && !st.output_blocked
         && pos < st.inbox.size()) {
    pos += st.reader->feed(reinterpret_cast<const uint8_t*>(st.inbox.data()) + pos,
                           st.inbox.size() - pos);
    if (auto& err = st.reader->error()) {
      release_held_batch(self);  // it came whole, before the bad bytes
      reject_and_close(self, 0, *err);
      return;
    }
    if (!st.reader->frame_ready())
      continue;
    auto env = st.reader->take();
    auto now = st.ctx->clock().now_ns();
    st.last_frame_ns = now;
    st.ping_outstanding = false;
    st.permit_expires_ns = 0;  // a permit covers the next frame only
    st.ctx->stats.frames_in.fetch_add(1);
    // The rates bound what the peer starts. Answers to our own requests (we asked, and
    // bound how many we ask) pass: refusing one would drop rows or an end of stream.
    // Other frames that are not requests are paced like requests but never answered
    // with a Reject, whose request id would land in the peer's own id space.
    auto body = env.body_case();
    bool answer = body == wire::Envelope::kResponse || body == wire::Envelope::kBatch
                  || body == wire::Envelope::kEndOfStream || body == wire::Envelope::kReject
                  || body == wire::Envelope::kPong;
    bool ours = answer && st.outgoing.count(env.request_id()) != 0;
    bool must_handle = body == wire::Envelope::kCredit || body == wire::Envelope::kCancel;
    if (st.hello_done && !ours
        && !admit_frame(self, env.request_id(), st.reader->last_frame_bytes(), !answer,
                        must_handle))
      continue;  // refused and paused: the loop stops here
    handle_frame(self, env);
  }
  release_held_batch(self);  // nothing is held beyond the frames of one read
  st.inbox.erase(0, pos);
  // A frame in progress starts the read timeout (a slowloris holds one open).
  if (st.reader->partial_bytes() == 0)
    st.partial_since_ns = 0;
  else if (st.partial_since_ns == 0)
    st.partial_since_ns = st.ctx->clock().now_ns();
}

void on_data(connection_broker* self, const caf::io::new_data_msg& msg) {
  auto& st = self->state;
  if (st.closed || st.closing)
    return;
  adapt_read_size(self, msg.buf.size());
  st.inbox.append(msg.buf.data(), msg.buf.size());
  // Bytes only wait in the inbox while the connection is paused, and a paused socket is
  // not read; the reads of the round in which it paused may still arrive. More than that
  // is a peer the gate cannot hold back: refuse it rather than buffer without bound.
  if ((st.paused || st.output_blocked) && st.inbox.size() > st.max_held_inbox) {
    reject_and_close(self, 0,
                     rejection::of(code::rate_limited)
                       .limit(st.paused ? "net.max_msgs_per_sec" : "net.max_write_buffer_bytes")
                       .observed(st.inbox.size())
                       .max(st.max_held_inbox)
                       .detail("the connection kept sending while it was paused"));
    return;
  }
  process_inbox(self);
}

} // namespace levee::net
