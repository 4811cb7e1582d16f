// A connection's writing side: every frame against the write bound, the input paused
// while the peer is behind on reading, the credit of the peer's streams lent to their
// producers, and closing with a last Reject (net/connection.hpp).

#include <algorithm>

#include "actors/atoms.hpp"
#include "actors/caf_error.hpp"
#include "net/connection.hpp"
#include "net/reject_frame.hpp"

namespace levee::net {

using namespace std::chrono;

namespace {

/// How long a closing connection may take to hand its last bytes to the peer.
constexpr milliseconds close_grace{2000};

/// The most credit a connection lends the producer of one stream at a time.
stream_credit lend_cap(connection_broker* self) {
  return stream_credit{defaults::net_stream_lend_batches,
                       static_cast<int64_t>(std::max<uint64_t>(write_mark(self) / 4, 64 * 1024))};
}

} // namespace

/// Our requests still waiting for the peer get `unavailable`: the connection is gone (with
/// the reason this side closed it, if it did: a satellite closed for missed heartbeats
/// says so, naming server.disconnect_after). The targets of the peer's streams are told
/// to stop: nobody will read their batches.
void fail_outgoing(connection_broker* self) {
  auto& st = self->state;
  auto why = st.close_reason
               ? rejection::of(code::unavailable)
                   .limit(st.close_reason->limit)
                   .observed(st.close_reason->observed)
                   .max(st.close_reason->max)
                   .detail("this node closed the connection to the peer before it answered: "
                           + st.close_reason->detail)
               : rejection::of(code::unavailable)
                   .detail("the connection to the peer closed before it answered");
  for (auto& [id, rp] : st.outgoing)
    rp.deliver(to_error(why));
  st.outgoing.clear();
  st.outgoing_streams.clear();
  st.held.held = false;  // its stream has just failed
  for (auto& [tag, stream] : st.streams)
    if (stream.target)
      self->send(stream.target, cancel_atom::value, tag);
  st.streams.clear();
}

void close_connection(connection_broker* self) {
  auto& st = self->state;
  if (st.closed)
    return;
  fail_outgoing(self);
  st.closed = true;
  self->flush_now(st.hdl);
  self->close(st.hdl);  // graceful: what was written is still sent
  self->quit();  // the listener forgets the connection as it ends (connection())
}

void send_reject(connection_broker* self, uint64_t request_id, const rejection& r,
                 bool closing) {
  wire::Envelope env;
  env.set_request_id(request_id);
  *env.mutable_reject() = to_wire(r, closing);
  count_reject(self->state, r.code);
  write_frame(self, env);
}

void reject_and_close(connection_broker* self, uint64_t request_id, const rejection& r) {
  auto& st = self->state;
  if (st.closed || st.closing)
    return;
  st.ctx->stats.closes[static_cast<size_t>(r.code)].fetch_add(1);
  st.close_reason = r;
  send_reject(self, request_id, r, true);
  // Keep reading (and discarding) while the Reject drains: closing a socket with unread
  // input makes TCP reset the connection, and the peer would lose the Reject.
  st.closing = true;
  // Close once the Reject has left (data_transferred_msg says so), or after a grace
  // period if the peer does not read at all. The last bytes go CAF's way, not directly:
  // its write turns leave the connection reading (and discarding) the peer's input
  // until they are done, so the close finds no unread input to answer with a reset.
  self->flush_through_caf(st.hdl);
  later(self, close_grace, stop_atom::value);
  sync_reading(self);  // read (and discard) while the Reject drains, even if paused
}

bool write_batch(connection_broker* self, connection_state::incoming_stream& stream,
                 std::string part) {
  stream.credit.produced(part.size());
  wire::Envelope out;
  out.set_request_id(stream.rid);
  out.mutable_batch()->set_sequence(stream.batches++);
  out.mutable_batch()->set_payload(std::move(part));
  return write_frame(self, out);
}

/// Passes credit the peer granted for stream `tag` on to its producer, unless the peer is
/// behind on reading (then it waits for the drain: lend_withheld). `first` lends even if
/// the producer holds half its cap (the answer's first credit).
stream_credit lend(connection_broker* self, uint64_t tag,
                   connection_state::incoming_stream& stream, bool first) {
  auto& st = self->state;
  if (st.output_blocked || waiting_bytes(self) >= write_mark(self)) {
    if (!stream.credit.held().empty())
      st.lend_withheld = true;
    return {};
  }
  auto grant = stream.credit.lend(lend_cap(self), first);
  if (!grant.empty() && !first && stream.producer)
    self->send(stream.producer, credit_atom::value, tag, grant.batches,
               static_cast<uint64_t>(grant.bytes));
  return grant;
}

/// Says (once) that the peer took bytes, if anything waits for that: the input, or credit
/// held back. A message to self, not a call: this runs in CAF's write handler, where the
/// connection must not close or halt and trigger its socket.
void signal_drain(connection_broker* self) {
  auto& st = self->state;
  if (st.closed || st.drain_signalled || !(st.output_blocked || st.lend_withheld))
    return;
  st.drain_signalled = true;
  self->send(self, drained_atom::value);
}

/// Reads the socket, or stops reading it, as the connection's state wants (not while it
/// owes time for its rates, nor while its peer is behind on reading its answers; always
/// while closing). CAF 0.17.6 loses a halt and a trigger that come in one multiplexer
/// round (direct_write_broker::switch_reading): a change it cannot take now is made from
/// a message of a later round (sync_read_atom, through the timer relay, which always
/// arrives in a later round).
void sync_reading(connection_broker* self) {
  auto& st = self->state;
  if (st.closed)
    return;
  // A closing connection reads (and discards) until its last Reject has left: closing a
  // socket with unread input makes TCP reset it, and the peer would lose the Reject.
  bool want = st.closing || (!st.paused && !st.output_blocked);
  if (self->switch_reading(st.hdl, want))
    later(self, milliseconds(0), sync_read_atom::value);
}

/// The peer took bytes: input is taken again below half the write mark, and held credit
/// is lent.
void on_drained(connection_broker* self) {
  auto& st = self->state;
  st.drain_signalled = false;
  if (st.closed || st.closing)
    return;
  if (st.output_blocked && waiting_bytes(self) <= write_mark(self) / 2) {
    st.output_blocked = false;
    process_inbox(self);
    sync_reading(self);
  }
  if (st.lend_withheld && !st.output_blocked) {
    st.lend_withheld = false;
    for (auto& [tag, stream] : st.streams)
      lend(self, tag, stream);
  }
}

/// Writes one frame to the connection. Every frame counts against
/// net.max_write_buffer_bytes. An answer (Response, Batch, EndOfStream) that would take
/// what waits for the peer beyond it is not written: its request ends with a Reject
/// slow_consumer instead — the request, not the connection (false is returned). A frame
/// always goes when nothing waits, so a peer that reads is never refused for the size of
/// an answer it accepts. Control frames (Reject, Ping, Pong, Hello, Credit, Cancel) are
/// small and always go: their number is bounded, since the input that causes them stops
/// at the write mark. Above the mark, the connection blocks its input until the peer
/// reads (TCP pushes back on it).
bool write_frame(connection_broker* self, const wire::Envelope& env) {
  auto& st = self->state;
  if (st.closed || st.closing)
    return false;
  auto& limits = limits_of(self);
  auto waiting = waiting_bytes(self);
  auto body = env.body_case();
  bool answer = body == wire::Envelope::kResponse || body == wire::Envelope::kBatch
                || body == wire::Envelope::kEndOfStream;
  if (answer && waiting > 0) {
    auto size = frame_header_bytes + env.ByteSizeLong();  // before compression: at most
    if (waiting + size > limits.max_write_buffer_bytes) {
      send_reject(self, env.request_id(),
                  rejection::of(code::slow_consumer)
                    .limit("net.max_write_buffer_bytes")
                    .observed(waiting + size)
                    .max(limits.max_write_buffer_bytes)
                    .detail("the client does not read its answers; this answer of "
                            + std::to_string(size) + " bytes was dropped"));
      return false;
    }
  }
  if (waiting == 0)
    st.last_drain_ns = st.ctx->clock().now_ns();  // the stall clock starts with this frame
  // Encoded straight into the connection's write buffer.
  auto& buf = self->wr_buf(st.hdl);
  auto before = buf.size();
  if (auto err = encode_frame(env, st.peer, buf)) {
    // The answer is larger than the client accepts: tell it so instead.
    wire::Envelope refusal;
    refusal.set_request_id(env.request_id());
    err->limit = "client.max_frame_bytes";
    *refusal.mutable_reject() = to_wire(*err);
    count_reject(st, err->code);
    encode_frame(refusal, st.peer, buf);
  }
  auto written = buf.size() - before;
  self->flush_later(st.hdl);
  st.bytes_flushed += written;
  st.ctx->stats.frames_out.fetch_add(1);
  if (!st.output_blocked && waiting + written >= write_mark(self)) {
    st.output_blocked = true;
    st.ctx->stats.input_paused_for_slow_reader.fetch_add(1);
    sync_reading(self);
  }
  return true;
}

} // namespace levee::net
