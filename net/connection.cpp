// One connection's broker: its setup, the messages it handles (from CAF's I/O layer, the
// actors it bridges to, its own timers) and its timeouts (net/connection.hpp).

#include <algorithm>

#include "actors/atoms.hpp"
#include "actors/caf_error.hpp"
#include "net/connection.hpp"

namespace levee::net {

using namespace std::chrono;
using caf::io::receive_policy;

namespace {

/// Every tick_interval (from the listener's clock, for all its connections): the handshake, read, write-stall and idle timeouts (a Ping first),
/// a permit that expired unused, and the deadline timer for a deadline that came near.
void on_tick(connection_broker* self) {
  auto& st = self->state;
  if (st.closed || st.closing)
    return;
  auto& limits = limits_of(self);
  auto now = st.ctx->clock().now_ns();
  auto elapsed_ms = [&](int64_t since) { return static_cast<uint64_t>((now - since) / ns_per_ms); };
  if (!st.hello_done && elapsed_ms(st.opened_ns) > limits.handshake_timeout_ms) {
    reject_and_close(self, 0,
                     rejection::of(code::deadline_exceeded)
                       .limit("net.handshake_timeout_ms")
                       .observed(elapsed_ms(st.opened_ns))
                       .max(limits.handshake_timeout_ms)
                       .detail("no Hello in time"));
    return;
  }
  if (st.partial_since_ns != 0 && !st.paused
      && elapsed_ms(st.partial_since_ns) > limits.read_timeout_ms) {
    reject_and_close(self, 0,
                     rejection::of(code::deadline_exceeded)
                       .limit("net.read_timeout_ms")
                       .observed(elapsed_ms(st.partial_since_ns))
                       .max(limits.read_timeout_ms)
                       .detail("a frame started but did not complete in time"));
    return;
  }
  if (st.permit_expires_ns != 0 && now > st.permit_expires_ns) {
    st.reader->allow_next_frame(0);  // the permit expired unused
    st.permit_expires_ns = 0;
  }
  if (auto waiting = waiting_bytes(self);
      waiting > 0 && elapsed_ms(st.last_drain_ns) > limits.write_stall_timeout_ms) {
    reject_and_close(self, 0,
                     rejection::of(code::slow_consumer)
                       .limit("net.write_stall_timeout_ms")
                       .observed(elapsed_ms(st.last_drain_ns))
                       .max(limits.write_stall_timeout_ms)
                       .detail("the peer took none of the " + std::to_string(waiting)
                               + " bytes waiting for it in time; it does not read"));
    return;
  }
  if (st.hello_done && !st.paused && !st.output_blocked) {
    if (st.ping_outstanding && elapsed_ms(st.ping_sent_ns) > limits.idle_timeout_ms) {
      reject_and_close(self, 0,
                       rejection::of(code::deadline_exceeded)
                         .limit("net.idle_timeout_ms")
                         .observed(elapsed_ms(st.last_frame_ns))
                         .max(2 * limits.idle_timeout_ms)
                         .detail("no complete frame, not even a Pong, in time"));
      return;
    }
    if (!st.ping_outstanding && elapsed_ms(st.last_frame_ns) > limits.idle_timeout_ms) {
      st.ping_outstanding = true;
      st.ping_sent_ns = now;
      wire::Envelope ping;
      ping.mutable_ping()->set_nonce(st.next_nonce++);
      write_frame(self, ping);
    }
  }
  arm_next_deadline(self, now);
}

} // namespace

caf::behavior connection(connection_broker* self, caf::io::connection_handle hdl,
                         std::shared_ptr<server_context> ctx, conn_role role, caf::actor owner,
                         std::string token, bool as_satellite) {
  auto& st = self->state;
  st.ctx = ctx;
  st.timers = ctx->timer_relay(self->system());
  st.max_held_inbox = 2 * (reads_per_event(self->system()) + 1) * read_chunk_bytes;
  st.hdl = hdl;
  self->on_direct_send = [self] {
    self->state.last_drain_ns = self->state.ctx->clock().now_ns();
    signal_drain(self);
  };
  st.counted = role == conn_role::accepted;
  st.dialed = role == conn_role::dialed;
  st.owner = std::move(owner);
  st.token = std::move(token);
  st.as_satellite = as_satellite;
  auto& limits = ctx->config().limits;
  st.peer = limits.codec();
  st.msg_rate = std::make_unique<token_bucket>(ctx->clock(), limits.max_msgs_per_sec,
                                               limits.burst_msgs);
  st.byte_rate = std::make_unique<token_bucket>(ctx->clock(), limits.max_bytes_per_sec,
                                                limits.burst_bytes);
  st.opened_ns = st.last_frame_ns = ctx->clock().now_ns();
  st.reader = std::make_unique<frame_reader>(limits.codec());
  // Read whatever has arrived, up to read_size at a time (4 to 64 KiB, following what
  // arrives): one read serves many pipelined frames. The frame reader checks each header
  // before it buffers a body.
  self->configure_read(hdl, receive_policy::at_most(st.read_size));
  self->ack_writes(hdl, true);
  self->no_delay(hdl);
  if (role == conn_role::refused) {
    ctx->stats.connections_refused.fetch_add(1);
    reject_and_close(self, 0,
                     rejection::of(code::too_many_connections)
                       .limit("net.max_connections")
                       .observed(limits.max_connections + 1)
                       .max(limits.max_connections)
                       .retry_after_ms(1000)
                       .detail("this node serves its maximum number of connections; retry, "
                               "or raise net.max_connections on it"));
    return {};  // no behavior: the broker ends now, and CAF sends what was written
  }
  ctx->add_connection(caf::actor_cast<caf::actor>(self));  // also where its timers find it
  // The listener forgets the connection however it ends: closed, or failed (an error it
  // did not expect would otherwise leave it counted open and listed for good).
  self->attach_functor([ctx, counted = st.counted, slot = st.satellite_slot, id = self->id()] {
    if (counted)
      ctx->connection_closed();
    if (*slot)
      ctx->satellite_closed();
    ctx->remove_connection(id);
  });
  // An error message from an actor it talks to (e.g. a target that did not expect a
  // credit) is that actor's problem, not a reason to drop the peer.
  self->set_error_handler([](caf::error&) {});
  if (st.dialed) {
    wire::Envelope hello;
    fill_hello(*hello.mutable_hello(), *ctx,
               st.as_satellite ? wire::ROLE_SATELLITE : wire::ROLE_CLIENT, st.token);
    write_frame(self, hello);
    self->flush_now(hdl);
  } else {
    ctx->stats.connections_accepted.fetch_add(1);
  }
  // Ticks come from the listener's one clock (server_context::timer_relay), started above.
  st.tick_interval = tick_interval_of(limits);
  return {
    [=](const caf::io::new_data_msg& msg) { on_data(self, msg); },
    [=](const caf::io::data_transferred_msg& msg) {
      auto& s = self->state;
      s.bytes_written += msg.written;
      if (msg.written > 0) {
        s.last_drain_ns = s.ctx->clock().now_ns();
        signal_drain(self);
      }
      // The closing Reject has left: close, but from a message of our own. CAF calls this
      // handler from its write path without a reference to the broker, and closing drops
      // the last ones (the scribe's, the listener's): the broker would be destroyed under
      // CAF's feet. A message is handled with the multiplexer holding a reference.
      if (s.closing && bytes_sent(self) >= s.bytes_flushed)
        self->send(self, stop_atom::value);
    },
    [=](const caf::io::connection_closed_msg&) {
      auto& s = self->state;
      if (s.closed)
        return;
      fail_outgoing(self);  // the peer is gone: our requests get unavailable, its streams stop
      s.closed = true;
      self->quit();
    },
    [=](stop_atom) {
      if (self->state.closing) {
        close_connection(self);  // the grace period for the last bytes is over
        return;
      }
      reject_and_close(self, 0,
                       rejection::of(code::shutting_down)
                         .detail(self->state.dialed ? "this node is shutting down"
                                                            : "the server is shutting down"));
    },
    [=](stop_atom, uint32_t code_number, std::string& limit, std::string& detail) {
      // Closed by the node for a reason of its own (e.g. a satellite that missed its
      // heartbeats), told to the peer with that reason.
      auto c = code_from_number(code_number).value_or(code::unavailable);
      reject_and_close(self, 0, rejection::of(c)
                                  .limit(std::move(limit))
                                  .detail(std::move(detail)));
    },
    [=](resume_atom) {
      auto& s = self->state;
      if (s.closed || s.closing || !s.paused)
        return;
      s.paused = false;
      // Frames that arrived before the pause come first. Only if they leave the
      // connection unpaused is the socket read again: halting and triggering a socket
      // in one handler leaves CAF 0.17.6's multiplexer not reading it at all.
      process_inbox(self);
      sync_reading(self);
    },
    [=](sync_read_atom) {
      self->reading_synced();
      sync_reading(self);
    },
    [=](tick_atom) { on_tick(self); },
    [=](timeout_atom, int64_t armed_for) { expire_requests(self, armed_for); },
    [=](wire_request_atom, std::string& target,
        std::string& payload) -> caf::result<std::string> {
      return send_outgoing(self, std::move(target), std::move(payload));
    },
    [=](wire_stream_atom, std::string& target, std::string& payload, uint64_t tag,
        uint64_t credit_batches, uint64_t credit_bytes) -> caf::result<stream_tail, std::string> {
      auto sink = caf::actor_cast<caf::actor>(self->current_sender());
      stream_credit credit;
      credit.add(credit_batches, credit_bytes);
      return send_outgoing_stream(self, std::move(target), std::move(payload), std::move(sink),
                                  tag, credit);
    },
    [=](cancel_atom, uint64_t tag) {
      // The requester of one of our streams gives up: tell the peer, answer it now.
      auto& s = self->state;
      auto sender = self->current_sender();
      for (auto i = s.outgoing_streams.begin(); i != s.outgoing_streams.end(); ++i) {
        if (i->second.tag != tag || i->second.sink.address() != sender)
          continue;
        auto rid = i->first;
        s.outgoing_streams.erase(i);
        wire::Envelope env;
        env.set_request_id(rid);
        env.mutable_cancel();
        write_frame(self, env);
        if (auto o = s.outgoing.find(rid); o != s.outgoing.end()) {
          o->second.deliver(to_error(rejection::of(code::cancelled)
                                       .detail("the requester cancelled the stream")));
          s.outgoing.erase(o);
        }
        return;
      }
    },
    [=](wire_batch_atom, uint64_t tag, std::string& part) {
      auto& s = self->state;
      auto i = s.streams.find(tag);
      if (i == s.streams.end())
        return;  // the stream already ended or failed: a late batch is dropped
      auto& stream = i->second;
      if (auto sender = caf::actor_cast<caf::actor>(self->current_sender()))
        stream.producer = std::move(sender);  // credit goes to who sends the batches
      if (!write_batch(self, stream, std::move(part))) {
        // Refused for a peer that does not read (the Reject is on its way): the stream
        // ends here; its producer stops, and its late answer is dropped.
        if (auto p = s.pending.find(stream.rid); p != s.pending.end() && p->second.tag == tag)
          p->second.expired = true;
        self->send(stream.target, cancel_atom::value, tag);
        s.streams.erase(i);
        return;
      }
      lend(self, tag, stream);
    },
    [=](drained_atom) { on_drained(self); },
    [=](credit_atom, uint64_t tag, uint64_t batches, uint64_t bytes) {
      // The requester of one of our streams grants the peer more: a Credit frame.
      auto& s = self->state;
      auto sender = self->current_sender();
      for (auto& [rid, o] : s.outgoing_streams) {
        if (o.tag != tag || o.sink.address() != sender)
          continue;
        wire::Envelope env;
        env.set_request_id(rid);
        env.mutable_credit()->set_batches(static_cast<uint32_t>(
          std::min<uint64_t>(batches, stream_credit::max_batches)));
        env.mutable_credit()->set_bytes(bytes);
        write_frame(self, env);
        return;
      }
    },
  };
}

} // namespace levee::net
