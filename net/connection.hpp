#pragma once
// One connection of the wire protocol, accepted or dialed: a broker on CAF's I/O thread
// that runs the connection gate (ARCHITECTURE.md "The three gates", 1). Internal to net/:
// the listener (net/listener.hpp) and the uplink (net/uplink.hpp) spawn it; nothing
// outside net/ includes this file. Its parts, one job each:
//   connection.cpp           setting up, the messages it handles, its timeouts (tick)
//   connection_input.cpp     reading: the frame reader, the rates, the handshake, dispatch
//   connection_requests.cpp  requests both ways: the peer's (in flight, deadlines,
//                            streams) and this side's (sent, answered, cancelled)
//   connection_output.cpp    writing: the write bound, credit lent to producers, pausing
//                            the input, closing
// and what it needs from CAF beyond its API in net/caf_io_shims.hpp.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include <caf/actor.hpp>
#include <caf/behavior.hpp>
#include <caf/io/connection_handle.hpp>
#include <caf/io/system_messages.hpp>
#include <caf/response_promise.hpp>
#include <caf/result.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/earliest_timer.hpp"
#include "actors/weak_timer.hpp"
#include "actors/wire_target.hpp"
#include "limits/defaults.hpp"
#include "limits/rejection.hpp"
#include "limits/stream_credit.hpp"
#include "limits/token_bucket.hpp"
#include "net/caf_io_shims.hpp"
#include "net/frame.hpp"
#include "net/listener.hpp"

namespace levee::net {

constexpr int64_t ns_per_ms = 1'000'000;

/// The exposed name the typed stream requests (Envelope members 50-57) go to.
constexpr std::string_view broker_target = "broker";
/// Bytes asked of the socket per read, at most: one read serves many pipelined frames.
constexpr size_t read_chunk_bytes = 64 * 1024;
/// ... and at least. CAF's scribe zero-fills its read buffer back to the size asked for
/// after every read (it shrinks the buffer to what arrived), so asking 64 KiB for a
/// 100-byte request clears 64 KiB per read; the size asked follows what arrives instead
/// (adapt_read_size).
constexpr size_t min_read_bytes = 4 * 1024;
/// Reads well under the size asked, in a row, before it halves.
constexpr uint32_t small_reads_to_shrink = 16;

struct connection_state {
  std::shared_ptr<server_context> ctx;
  caf::io::connection_handle hdl;
  bool counted = false;          // holds one of net.max_connections
  /// Accepted: set when the peer's Hello said it is a satellite and it got one of the
  /// satellites' connections (net.max_connections - net.reserved_connections); shared
  /// with the functor that gives the place back when the connection ends.
  std::shared_ptr<bool> satellite_slot = std::make_shared<bool>(false);
  bool closed = false;
  bool closing = false;          // a closing Reject is on its way; close once it is sent
  std::unique_ptr<frame_reader> reader;  // checks each header before its body is buffered
  std::string inbox;             // bytes read and not yet fed to the reader
  int64_t partial_since_ns = 0;  // when the frame now in progress began; 0 = none
  bool hello_done = false;
  codec_limits peer;             // what the client accepts, from its Hello
  std::unique_ptr<token_bucket> msg_rate;
  std::unique_ptr<token_bucket> byte_rate;
  bool paused = false;           // not processing while the connection owes time
  size_t read_size = min_read_bytes;  // what the next read asks for (adapt_read_size)
  uint32_t small_reads = 0;      // reads under a quarter of read_size in a row
  /// What a paused connection may have read before the pause took effect: CAF stops
  /// reading a socket at the end of a multiplexer round, and reads up to
  /// max-consecutive-reads times per event until then (one round, plus the one before a
  /// deferred halt: switch_reading).
  size_t max_held_inbox = 0;
  /// Not processing the peer's input while more than the write mark waits for it to
  /// read (write_mark): a peer that sends and never reads cannot make this side buffer
  /// its answers without bound; TCP pushes back on it instead.
  bool output_blocked = false;
  bool drain_signalled = false;  // a drained_atom to self is on its way
  bool lend_withheld = false;    // a stream's credit waits for the peer to read
  int64_t last_drain_ns = 0;     // when the peer last took bytes, or none were waiting
  /// Why this side closes the connection (reject_and_close): what requests still waiting
  /// on the peer are told.
  std::optional<rejection> close_reason;
  /// The peer's requests in flight, by request id. Their deadlines are this connection's
  /// own: one timer armed for the earliest, instead of a CAF request timeout per request
  /// (CAF 0.17 hands every timeout set, and every one that later fires, to its clock
  /// thread: two wake-ups of another thread per request). A request past its deadline is
  /// answered deadline_exceeded at once and keeps its slot until its actor answers (the
  /// answer is then dropped): the in-flight bound counts work the node still does. An
  /// actor that has not answered by the deadline plus as long again (at least a second)
  /// is given up on (counted, logged): the slot is freed, so an actor that never answers
  /// cannot wedge the connection.
  struct pending_request {
    int64_t deadline_ns = 0;
    uint64_t deadline_ms = 0;
    int64_t started_ns = 0;
    int64_t abandon_ns = 0;
    uint64_t tag = 0;   // the request's id toward its actor (next_tag)
    caf::actor target;  // a stream's (none for a plain request): told (cancel_atom, tag)
                        // when its deadline passes
    const std::string* target_name = nullptr;  // a key of `targets`, for the log
    bool expired = false;
  };
  /// The id of the next request toward an actor. Unique on this connection, unlike the
  /// peer's request ids: an answer or a batch that comes after its request was given up
  /// cannot be taken for a later request that uses the same peer id.
  uint64_t next_tag = 0;
  std::unordered_map<uint64_t, pending_request> pending;
  earliest_timer deadline_timer;
  std::chrono::milliseconds tick_interval{1000};  // how often the connection looks at its timeouts
  caf::actor timers;  // every timer of the connection goes through it (weak_timer.hpp)
  uint64_t bytes_flushed = 0;    // handed to the socket
  uint64_t bytes_written = 0;    // taken by TCP as CAF reports it (data_transferred_msg);
                                 // the broker counts what it sent itself (bytes_sent)
  int64_t opened_ns = 0;
  int64_t last_frame_ns = 0;
  bool ping_outstanding = false;
  int64_t ping_sent_ns = 0;
  uint64_t next_nonce = 1;
  int64_t permit_expires_ns = 0;  // 0 = no permit granted
  uint64_t next_permit_id = 1;
  // Requests this side sends to the peer (an uplink's, or a server's to a satellite).
  bool dialed = false;           // this side connected out and sends the first Hello
  caf::actor owner;              // the uplink that dialed: told when the handshake is done
  std::string token;             // the credential a dialing side presents
  bool as_satellite = false;     // a dialing side that says ROLE_SATELLITE in its Hello
  std::string peer_node_id;
  uint32_t peer_max_inflight = 0;
  uint64_t next_request_id = 1;
  std::map<uint64_t, caf::response_promise> outgoing;
  struct incoming_stream {
    uint64_t batches = 0;  // sent so far
    caf::actor target;     // told (cancel_atom, tag) on Cancel or when the connection closes
    uint64_t rid = 0;      // the peer's request id
    /// Who sends the batches: the target, or the actor it handed the request to (the
    /// sender of the latest batch). Credit goes to it as (credit_atom, tag, batches, bytes).
    caf::actor producer;
    credit_relay credit;   // the peer's credit: held here, lent to the producer
  };
  std::map<uint64_t, incoming_stream> streams;  // the peer's streamed requests, by tag
  struct outgoing_stream {
    caf::actor sink;  // gets (wire_batch_atom, tag, part)
    uint64_t tag;
  };
  std::map<uint64_t, outgoing_stream> outgoing_streams;  // ours, by request id
  /// The latest Batch of one of our streams, held while the frames of the same read are
  /// handled: when its EndOfStream follows, the sink gets both in the one answer
  /// (stream_tail); any other frame, or the end of the read, sends it on first.
  struct held_batch {
    bool held = false;
    uint64_t rid = 0;
    std::string part;
  } held;
  std::unordered_map<std::string, caf::actor> targets;  // looked up by this connection
  const char* name = "levee.connection";
};

using connection_broker = caf::stateful_actor<connection_state, direct_write_broker>;

enum class conn_role { accepted, refused, dialed };

/// The behavior of the connection on `hdl`: accepted (holds one of net.max_connections),
/// refused (over the bound: sends the Reject and ends), or dialed by the uplink `owner`
/// (sends the first Hello, presenting `token` and, if `as_satellite`, the satellite role;
/// tells `owner` when the handshake is done).
caf::behavior connection(connection_broker* self, caf::io::connection_handle hdl,
                         std::shared_ptr<server_context> ctx, conn_role role, caf::actor owner,
                         std::string token, bool as_satellite);

// What the parts of a connection share (see the top of this file for which does what).

inline const listener_limits& limits_of(connection_broker* self) {
  return self->state.ctx->config().limits;
}

/// Sends the connection `xs...` after `delay`, naming it by id (actors/weak_timer.hpp):
/// a connection that closes is destroyed at once, not when its last timer fires (its
/// requests' deadlines are 30 s away by default: at hundreds of connections a second,
/// the difference between nothing and tens of megabytes held).
template <class... Ts>
void later(connection_broker* self, std::chrono::milliseconds delay, Ts&&... xs) {
  delayed_send_by_id(self, self->state.timers, delay, std::forward<Ts>(xs)...);
}

inline void count_reject(connection_state& st, code c) {
  st.ctx->stats.rejects[static_cast<size_t>(c)].fetch_add(1);
}

/// Bytes of this connection the kernel took: sent directly, or reported by CAF.
inline uint64_t bytes_sent(connection_broker* self) {
  return self->state.bytes_written + self->direct_bytes();
}

/// Bytes written to the peer that it has not taken yet.
inline uint64_t waiting_bytes(connection_broker* self) {
  return self->state.bytes_flushed - bytes_sent(self);
}

/// The write mark: while more than this waits for the peer, the connection takes no new
/// input from it and lends its streams no credit (half of net.max_write_buffer_bytes).
inline uint64_t write_mark(connection_broker* self) {
  return limits_of(self).max_write_buffer_bytes / 2;
}

// connection_output.cpp
bool write_frame(connection_broker* self, const wire::Envelope& env);
/// A Reject for `request_id`, counted by its code (`closing`: the connection ends after it).
void send_reject(connection_broker* self, uint64_t request_id, const rejection& r,
                 bool closing = false);
/// Tells the peer why this side closes, and closes once that Reject has left (or after a
/// grace period, if the peer does not read).
void reject_and_close(connection_broker* self, uint64_t request_id, const rejection& r);
/// Closes now (what was written is still sent); requests waiting on the peer fail.
void close_connection(connection_broker* self);
void fail_outgoing(connection_broker* self);
void sync_reading(connection_broker* self);
/// One batch of the peer's stream as a Batch frame, counted against the credit it holds;
/// false if refused (a peer that does not read: its Reject is on its way).
bool write_batch(connection_broker* self, connection_state::incoming_stream& stream,
                 std::string part);
stream_credit lend(connection_broker* self, uint64_t tag,
                   connection_state::incoming_stream& stream, bool first = false);
void signal_drain(connection_broker* self);
void on_drained(connection_broker* self);

// connection_input.cpp
/// Bytes CAF read from the socket.
void on_data(connection_broker* self, const caf::io::new_data_msg& msg);
void process_inbox(connection_broker* self);
/// This side's Hello: protocol version, node id, role, token, the limits it enforces.
void fill_hello(wire::Hello& out, const server_context& ctx, wire::Role role,
                const std::string& token);

// connection_requests.cpp
/// A Request from the peer, to the actor exposed under its target.
/// A Request from the peer; `no_deadline`: it runs until answered or cancelled (a
/// subscription).
void handle_request(connection_broker* self, wire::Envelope& env, bool no_deadline = false);
/// A typed stream request (net/streams.proto, Envelope members 50-57): a Request to
/// broker_target with a BrokerCall payload.
void handle_broker_call(connection_broker* self, wire::Envelope& env);
void arm_next_deadline(connection_broker* self, int64_t now);
void expire_requests(connection_broker* self, int64_t armed_for);
caf::result<std::string> send_outgoing(connection_broker* self, std::string target,
                                       std::string payload);
caf::result<stream_tail, std::string> send_outgoing_stream(connection_broker* self,
                                                          std::string target,
                                                          std::string payload, caf::actor sink,
                                                          uint64_t tag, stream_credit credit);

} // namespace levee::net
