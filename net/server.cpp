#include "net/server.hpp"

#include <algorithm>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <optional>
#include <unordered_map>

#include <sys/socket.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <unistd.h>
#include <cstring>

#include <caf/defaults.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/all.hpp>
#include <caf/io/network/default_multiplexer.hpp>
#include <caf/io/network/scribe_impl.hpp>

#include "actors/atoms.hpp"
#include "actors/broker.hpp"
#include "actors/caf_error.hpp"
#include "actors/earliest_timer.hpp"
#include "actors/weak_timer.hpp"
#include "limits/printable.hpp"
#include "limits/stream_credit.hpp"
#include "limits/token_bucket.hpp"
#include "net/frame.hpp"
#include "net/reject_frame.hpp"

namespace levee::net {

server_context::server_context(listener_config cfg, const clock_source& clock)
  : log(clock, 1, 5), cfg_(std::move(cfg)), clock_(clock) {
}

void server_context::expose(const std::string& name, caf::actor target) {
  std::lock_guard<std::mutex> guard{targets_mtx_};
  targets_[name] = std::move(target);
}

caf::actor server_context::target(const std::string& name) const {
  std::lock_guard<std::mutex> guard{targets_mtx_};
  auto i = targets_.find(name);
  return i == targets_.end() ? caf::actor{} : i->second;
}

bool server_context::try_open_connection() noexcept {
  auto max = cfg_.limits.max_connections;
  auto cur = stats.connections_open.load();
  do {
    if (cur >= max)
      return false;
  } while (!stats.connections_open.compare_exchange_weak(cur, cur + 1));
  return true;
}

void server_context::connection_closed() noexcept {
  stats.connections_open.fetch_sub(1);
}

void server_context::add_connection(const caf::actor& conn) {
  std::lock_guard<std::mutex> guard{connections_mtx_};
  connections_[conn.id()] = conn;
}

void server_context::remove_connection(caf::actor_id id) {
  std::lock_guard<std::mutex> guard{connections_mtx_};
  connections_.erase(id);
  for (auto i = named_.begin(); i != named_.end();) {
    if (i->second.id() == id)
      i = named_.erase(i);
    else
      ++i;
  }
}

caf::actor server_context::connection_for(const std::string& node_id) const {
  std::lock_guard<std::mutex> guard{connections_mtx_};
  auto i = named_.find(node_id);
  return i == named_.end() ? caf::actor{} : i->second;
}

void server_context::name_connection(const std::string& node_id, const caf::actor& conn) {
  std::lock_guard<std::mutex> guard{connections_mtx_};
  named_[node_id] = conn;
}

caf::actor server_context::timer_relay(caf::actor_system& sys) {
  std::lock_guard<std::mutex> guard{connections_mtx_};
  auto relay = caf::actor_cast<caf::actor>(timer_relay_);
  if (!relay) {
    relay = spawn_timer_relay(sys.middleman(), [w = weak_from_this()](uint64_t id) {
      auto ctx = w.lock();
      return ctx ? ctx->connection_by_id(id) : caf::actor{};
    });
    timer_relay_ = relay.address();
  }
  return relay;
}

caf::actor server_context::connection_by_id(caf::actor_id id) const {
  std::lock_guard<std::mutex> guard{connections_mtx_};
  auto i = connections_.find(id);
  return i == connections_.end() ? caf::actor{} : i->second;
}

std::vector<caf::actor> server_context::connections() const {
  std::lock_guard<std::mutex> guard{connections_mtx_};
  std::vector<caf::actor> out;
  for (auto& [id, conn] : connections_)
    out.push_back(conn);
  return out;
}

namespace {

using namespace std::chrono;
using caf::io::connection_handle;
using caf::io::receive_policy;

constexpr int64_t ns_per_ms = 1'000'000;
/// Bytes asked of the socket per read, at most: one read serves many pipelined frames.
constexpr size_t read_chunk_bytes = 64 * 1024;
/// ... and at least. CAF's scribe zero-fills its read buffer back to the size asked for
/// after every read (it shrinks the buffer to what arrived), so asking 64 KiB for a
/// 100-byte request clears 64 KiB per read; the size asked follows what arrives instead
/// (adapt_read_size).
constexpr size_t min_read_bytes = 4 * 1024;
/// Reads well under the size asked, in a row, before it halves.
constexpr uint32_t small_reads_to_shrink = 16;
/// Reads of one socket event (CAF's middleman.max-consecutive-reads), for the bound on
/// what a paused connection may still read (connection_state::max_held_inbox).
size_t reads_per_event(caf::actor_system& sys) {
  return caf::get_or(sys.config(), "middleman.max-consecutive-reads",
                     caf::defaults::middleman::max_consecutive_reads);
}
/// A request whose actor has not answered this long after its deadline (or as long again
/// as the deadline, if that is longer) is given up on: its in-flight slot is freed.
constexpr uint64_t min_abandon_grace_ms = 1000;

struct connection_state {
  std::shared_ptr<server_context> ctx;
  connection_handle hdl;
  bool counted = false;          // holds one of net.max_connections
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
  bool halted = false;           // the socket is not being read (as asked of CAF)
  bool read_sync_pending = false;  // a sync_read_atom is on its way (sync_reading)
  /// What a paused connection may have read before the pause took effect: CAF stops
  /// reading a socket at the end of a multiplexer round, and reads up to
  /// max-consecutive-reads times per event until then (one round, plus the one before a
  /// deferred halt: sync_reading).
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
  milliseconds tick_interval{1000};  // how often the connection looks at its timeouts
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
  std::unordered_map<std::string, caf::actor> targets;  // looked up by this connection
  const char* name = "levee.connection";
};

/// What CAF 0.17 keeps to itself about its default scribe: the socket, and whether its
/// stream is writing (registered for writability, with bytes of ours not yet sent). The
/// scribe keeps its stream, and the stream its state, as protected members, which a
/// pointer to member reaches.
struct scribe_socket : caf::io::network::scribe_impl {
  static caf::io::network::stream_impl<caf::policy::tcp>* stream_of(caf::io::scribe& s) {
    auto* impl = dynamic_cast<caf::io::network::scribe_impl*>(&s);
    return impl == nullptr ? nullptr : &(impl->*(&scribe_socket::stream_));
  }
};
struct stream_state : caf::io::network::stream {
  static bool writing(caf::io::network::stream& s) {
    return (s.*(&stream_state::state_)).writing;
  }
};

/// A broker with a leaner write path than CAF 0.17's for its one connection:
///  - what it writes goes out once its mailbox is drained, not after every frame, so the
///    frames of messages that arrived together (a stream's last batch and its end,
///    answers to pipelined requests) leave in one send;
///  - it sends directly on the socket when CAF's stream is not writing. CAF's flush
///    registers for writability (epoll_ctl), waits a multiplexer round for it, sends, and
///    unregisters (epoll_ctl again): four system calls and a round per flush where one
///    send does. What the socket does not take at once goes CAF's way, and while CAF's
///    stream is writing everything after it does too, so the bytes keep their order.
///    Whether CAF is writing is read from its stream, never inferred: CAF also flushes by
///    itself (after every read handler, scribe::consume), so a flag of our own kept from
///    what we asked of it went stale, and a later frame overtook earlier ones.
std::atomic<uint64_t> connection_brokers_alive{0};

class direct_write_broker : public levee::broker {
public:
  explicit direct_write_broker(caf::actor_config& cfg) : levee::broker(cfg) {
    connection_brokers_alive.fetch_add(1);
  }
  ~direct_write_broker() override { connection_brokers_alive.fetch_sub(1); }

  /// Flushes `hdl` once the messages waiting now are handled.
  void flush_later(caf::io::connection_handle hdl) noexcept {
    flush_hdl_ = hdl;
    flush_pending_ = true;
  }

  /// Sends what was written to `hdl` now.
  void flush_now(caf::io::connection_handle hdl) {
    flush_pending_ = false;
    auto s = this->by_id(hdl);
    if (!s)
      return;
    auto& buf = s->wr_buf();
    if (buf.empty())
      return;
    if (stream_ == nullptr)
      stream_ = scribe_socket::stream_of(*s);
    if (stream_ != nullptr && !stream_state::writing(*stream_)) {
      auto n = ::send(stream_->fd(), buf.data(), buf.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        direct_bytes_ += static_cast<uint64_t>(n);
        if (static_cast<size_t>(n) == buf.size())
          buf.clear();
        else
          buf.erase(buf.begin(), buf.begin() + n);
      }
      // n < 0: the socket is full (EAGAIN) or failed; CAF's flush handles both, a
      // failure by closing the connection.
    }
    if (!buf.empty())
      this->flush(hdl);  // starts CAF's writing, or leaves the bytes queued behind it
  }

  /// Sends what was written to `hdl` CAF's way (data_transferred_msg reports it).
  void flush_through_caf(caf::io::connection_handle hdl) {
    flush_pending_ = false;
    this->flush(hdl);
  }

  /// Whether CAF's multiplexer has the socket registered for reading now: what epoll
  /// has, not what was asked in this round.
  bool read_registered(caf::io::connection_handle hdl) {
    auto s = this->by_id(hdl);
    if (!s)
      return false;
    if (stream_ == nullptr)
      stream_ = scribe_socket::stream_of(*s);
    return stream_ != nullptr && (stream_->eventbf() & caf::io::network::input_mask) != 0;
  }

  /// Bytes this broker sent itself (CAF reports the rest with data_transferred_msg).
  uint64_t direct_bytes() const noexcept { return direct_bytes_; }

  /// Called after a flush at the end of a message sent bytes directly (the connection
  /// looks whether its peer has room again: it must not wait for a data_transferred_msg,
  /// which direct sends do not produce).
  std::function<void()> on_direct_send;

  caf::invoke_message_result consume(caf::mailbox_element& x) override {
    bool transferred = x.content().match_elements<caf::io::data_transferred_msg>();
    auto result = levee::broker::consume(x);
    if (flush_pending_ && !transferred && this->mailbox().empty()) {
      auto before = direct_bytes_;
      flush_now(flush_hdl_);  // (not from inside CAF's write handler: next message)
      if (direct_bytes_ != before && on_direct_send)
        on_direct_send();
    }
    return result;
  }

private:
  caf::io::connection_handle flush_hdl_;
  caf::io::network::stream_impl<caf::policy::tcp>* stream_ = nullptr;
  uint64_t direct_bytes_ = 0;
  bool flush_pending_ = false;
};

using connection_broker = caf::stateful_actor<connection_state, direct_write_broker>;

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

const listener_limits& limits_of(connection_broker* self) {
  return self->state.ctx->config().limits;
}

/// Sends the connection `xs...` after `delay`, naming it by id (actors/weak_timer.hpp):
/// a connection that closes is destroyed at once, not when its last timer fires (its
/// requests' deadlines are 30 s away by default: at hundreds of connections a second,
/// the difference between nothing and tens of megabytes held).
template <class... Ts>
void later(connection_broker* self, milliseconds delay, Ts&&... xs) {
  delayed_send_by_id(self, self->state.timers, delay, std::forward<Ts>(xs)...);
}

void count_reject(connection_state& st, code c) {
  st.ctx->stats.rejects[static_cast<size_t>(c)].fetch_add(1);
}

/// Our requests still waiting for the peer get `unavailable`: the connection is gone (with
/// the reason this side closed it, if it did: a satellite closed for missed heartbeats
/// says so, naming server.disconnect_after). The targets of the peer's streams are told
/// to stop: nobody will read their batches.
void fail_outgoing(connection_broker* self) {
  auto& st = self->state;
  auto why = st.close_reason
               ? rejection{code::unavailable, st.close_reason->limit, st.close_reason->observed,
                           st.close_reason->max, 0,
                           "this node closed the connection to the peer before it answered: "
                             + st.close_reason->detail}
               : rejection{code::unavailable, "net.connection", 0, 0, 0,
                           "the connection to the peer closed before it answered"};
  for (auto& [id, rp] : st.outgoing)
    rp.deliver(to_error(why));
  st.outgoing.clear();
  st.outgoing_streams.clear();
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

bool write_frame(connection_broker* self, const wire::Envelope& env);

void send_reject(connection_broker* self, uint64_t request_id, const rejection& r,
                 bool closing = false) {
  wire::Envelope env;
  env.set_request_id(request_id);
  *env.mutable_reject() = to_wire(r, closing);
  count_reject(self->state, r.code);
  write_frame(self, env);
}

/// How long a closing connection may take to hand its last bytes to the peer.
constexpr milliseconds close_grace{2000};

/// How much later than its deadline a connection gives up on a streamed request whose
/// target enforces the deadline itself.
constexpr uint64_t stream_deadline_grace_ms = 1000;

void sync_reading(connection_broker* self);

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

/// Bytes of this connection the kernel took: sent directly, or reported by CAF.
uint64_t bytes_sent(connection_broker* self) {
  return self->state.bytes_written + self->direct_bytes();
}

/// Bytes written to the peer that it has not taken yet.
uint64_t waiting_bytes(connection_broker* self) {
  return self->state.bytes_flushed - bytes_sent(self);
}

/// The write mark: while more than this waits for the peer, the connection takes no new
/// input from it and lends its streams no credit (half of net.max_write_buffer_bytes).
uint64_t write_mark(connection_broker* self) {
  return limits_of(self).max_write_buffer_bytes / 2;
}

/// The most credit a connection lends the producer of one stream at a time.
stream_credit lend_cap(connection_broker* self) {
  return stream_credit{defaults::net_stream_lend_batches,
                       static_cast<int64_t>(std::max<uint64_t>(write_mark(self) / 4, 64 * 1024))};
}

/// Passes credit the peer granted for stream `tag` on to its producer, unless the peer is
/// behind on reading (then it waits for the drain: lend_withheld). `first` lends even if
/// the producer holds half its cap (the answer's first credit).
stream_credit lend(connection_broker* self, uint64_t tag,
                   connection_state::incoming_stream& stream, bool first = false) {
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

void process_inbox(connection_broker* self);

/// Reads the socket, or stops reading it, as the connection's state wants (not while it
/// owes time for its rates, nor while its peer is behind on reading its answers; always
/// while closing).
///
/// CAF 0.17.6 applies halt and trigger at the end of a multiplexer round, and the two do
/// not mix within one: a trigger after a halt in the same round does nothing (the stream
/// still counts as reading) and the halt then takes effect; a halt after a trigger cancels
/// the registration but leaves the stream believing it reads. Either way the socket is
/// never read again. So each is done only when the socket's applied registration says
/// the other is not pending (CAF's eventbf: what epoll has now); otherwise the change is
/// made from a message of a later round (sync_read_atom, through the timer relay, which
/// always arrives in a later round).
void sync_reading(connection_broker* self) {
  auto& st = self->state;
  if (st.closed)
    return;
  // A closing connection reads (and discards) until its last Reject has left: closing a
  // socket with unread input makes TCP reset it, and the peer would lose the Reject.
  bool want = st.closing || (!st.paused && !st.output_blocked);
  if (want != st.halted)
    return;  // already asked for
  if (self->read_registered(st.hdl) != want) {
    st.halted = !want;
    if (want)
      self->trigger(st.hdl);
    else
      self->halt(st.hdl);
  } else if (!st.read_sync_pending) {
    st.read_sync_pending = true;  // the opposite change is pending in this round
    later(self, milliseconds(0), sync_read_atom::value);
  }
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
                  rejection{code::slow_consumer, "net.max_write_buffer_bytes", waiting + size,
                            limits.max_write_buffer_bytes, 0,
                            "the client does not read its answers; this answer of "
                              + std::to_string(size) + " bytes was dropped"});
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
    return rejection{code::deadline_exceeded, "net.request_deadline_ms", 0, 0, 0,
                     "the actor did not answer before the deadline"};
  return rejection{code::unavailable, "net.target", 0, 0, 0,
                   "the actor behind this target failed or is gone: " + caf::to_string(err)};
}

void fill_hello(wire::Hello& out, const server_context& ctx, wire::Role role,
                const std::string& token);

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
                     rejection{code::bad_request, "net.handshake", 0, 0, 0,
                               "the first frame must be a Hello"});
    return;
  }
  auto& hello = env.hello();
  st.peer_node_id = hello.node_id();
  st.peer_max_inflight = hello.limits().max_inflight_requests();
  if (hello.protocol_version() != protocol_version) {
    reject_and_close(self, env.request_id(),
                     rejection{code::unsupported_version, "net.protocol_version",
                               hello.protocol_version(), protocol_version, 0,
                               "this server speaks protocol version 1"});
    return;
  }
  if (!st.dialed && !ctx.config().token.empty() && hello.token() != ctx.config().token) {
    reject_and_close(self, env.request_id(),
                     rejection{code::unauthenticated, "net.token", 0, 0, 0,
                               hello.token().empty()
                                 ? "this server requires a token; set the one its config names"
                                 : "wrong token"});
    return;
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
                          rejection{code::deadline_exceeded, "net.request_deadline_ms",
                                    static_cast<uint64_t>((now - p.started_ns) / ns_per_ms),
                                    p.deadline_ms, 0,
                                    "actor '" + (p.target_name ? *p.target_name : std::string{})
                                      + "' never answered; its request's in-flight slot is freed"});
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
                  rejection{code::deadline_exceeded, "net.request_deadline_ms",
                            static_cast<uint64_t>((now - p.started_ns) / ns_per_ms),
                            p.deadline_ms, 0, "the actor did not answer before the deadline"});
    }
    ++i;
  }
  if (next != 0)
    arm_deadline(self, next, now);
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

void handle_request(connection_broker* self, wire::Envelope& env) {
  auto& st = self->state;
  auto& limits = limits_of(self);
  auto rid = env.request_id();
  auto& req = *env.mutable_request();
  if (st.pending.size() >= limits.max_inflight_requests) {
    send_reject(self, rid,
                rejection{code::too_many_inflight, "net.max_inflight_requests",
                          st.pending.size() + 1, limits.max_inflight_requests, 10,
                          "wait for answers before sending more requests"});
    return;
  }
  if (st.pending.count(rid) != 0) {
    send_reject(self, rid,
                rejection{code::bad_request, "net.request_id", rid, 0, 0,
                          "request id " + std::to_string(rid)
                            + " is still in flight; give each request its own id"});
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
                rejection{code::not_found, "net.target", 0, 0, 0,
                          "no actor is exposed as " + quoted_prefix(req.target())});
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
  p.deadline_ms = deadline;
  p.deadline_ns = now + static_cast<int64_t>(deadline) * ns_per_ms;
  p.abandon_ns = p.deadline_ns
                 + static_cast<int64_t>(std::max<uint64_t>(deadline, min_abandon_grace_ms)) * ns_per_ms;
  p.tag = tag;
  p.target_name = &cached_at->first;
  arm_deadline(self, p.deadline_ns, now);
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
        [=](std::string& summary) {
          auto& s = self->state;
          if (!settle_request(s, rid, tag))
            return;
          wire::Envelope out;
          out.set_request_id(rid);
          out.mutable_end_of_stream()->set_batches(s.streams[tag].batches);
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

void handle_permit(connection_broker* self, const wire::Envelope& env) {
  auto& st = self->state;
  auto& limits = limits_of(self);
  auto wanted = env.permit_request().frame_bytes();
  if (limits.permit_ceiling_bytes == 0) {
    send_reject(self, env.request_id(),
                rejection{code::permission_denied, "net.permit_ceiling_bytes", wanted, 0, 0,
                          "this listener grants no overweight permits"});
    return;
  }
  if (wanted > limits.permit_ceiling_bytes) {
    send_reject(self, env.request_id(),
                rejection{code::message_too_large, "net.permit_ceiling_bytes", wanted,
                          limits.permit_ceiling_bytes, 0,
                          "no permit is granted above the ceiling"});
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

void handle_frame(connection_broker* self, wire::Envelope& env) {
  auto& st = self->state;
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
      auto i = st.outgoing_streams.find(env.request_id());
      if (i != st.outgoing_streams.end())
        self->send(i->second.sink, wire_batch_atom::value, i->second.tag,
                   std::move(*env.mutable_batch()->mutable_payload()));
      return;  // a batch of a stream we cancelled or that failed: dropped
    }
    case wire::Envelope::kEndOfStream:
    case wire::Envelope::kResponse:
    case wire::Envelope::kReject: {
      auto i = st.outgoing.find(env.request_id());
      if (i == st.outgoing.end())
        return;  // an answer nobody waits for (its requester gave up): dropped, harmless
      if (env.has_response())
        i->second.deliver(std::move(*env.mutable_response()
                                       ->mutable_payload()));
      else if (env.has_end_of_stream())
        i->second.deliver(std::move(*env.mutable_end_of_stream()->mutable_summary()));
      else
        i->second.deliver(to_error(from_wire(env.reject())));
      st.outgoing.erase(i);
      st.outgoing_streams.erase(env.request_id());
      return;
    }
    case wire::Envelope::kHello:
      reject_and_close(self, env.request_id(),
                       rejection{code::bad_request, "net.handshake", 0, 0, 0,
                                 "a second Hello on one connection"});
      return;
    default:
      send_reject(self, env.request_id(),
                  rejection{code::bad_request, "net.frame", 0, 0, 0,
                            "this message is not accepted from a client"});
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
    refused = rejection{code::rate_limited, "net.max_msgs_per_sec", d.observed_units,
                        st.msg_rate->burst(), token_bucket::to_retry_ms(retry_ns),
                        "this connection may send " + std::to_string(limits.max_msgs_per_sec)
                          + " frames per second"};
  } else if (auto b = st.byte_rate->try_acquire(frame_bytes); !b.allowed) {
    st.msg_rate->refund(1);
    retry_ns = b.retry_after_ns;
    refused = rejection{code::rate_limited, "net.max_bytes_per_sec", b.observed_units,
                        st.byte_rate->burst(), token_bucket::to_retry_ms(retry_ns),
                        "this connection may send " + std::to_string(limits.max_bytes_per_sec)
                          + " bytes per second"};
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
  st.inbox.erase(0, pos);
  // A frame in progress starts the read timeout (a slowloris holds one open).
  if (st.reader->partial_bytes() == 0)
    st.partial_since_ns = 0;
  else if (st.partial_since_ns == 0)
    st.partial_since_ns = st.ctx->clock().now_ns();
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
                     rejection{code::rate_limited,
                               st.paused ? "net.max_msgs_per_sec" : "net.max_write_buffer_bytes",
                               st.inbox.size(), st.max_held_inbox, 0,
                               "the connection kept sending while it was paused"});
    return;
  }
  process_inbox(self);
}

void on_tick(connection_broker* self) {
  auto& st = self->state;
  if (st.closed || st.closing)
    return;
  auto& limits = limits_of(self);
  auto now = st.ctx->clock().now_ns();
  auto elapsed_ms = [&](int64_t since) { return static_cast<uint64_t>((now - since) / ns_per_ms); };
  if (!st.hello_done && elapsed_ms(st.opened_ns) > limits.handshake_timeout_ms) {
    reject_and_close(self, 0,
                     rejection{code::deadline_exceeded, "net.handshake_timeout_ms",
                               elapsed_ms(st.opened_ns), limits.handshake_timeout_ms, 0,
                               "no Hello in time"});
    return;
  }
  if (st.partial_since_ns != 0 && !st.paused
      && elapsed_ms(st.partial_since_ns) > limits.read_timeout_ms) {
    reject_and_close(self, 0,
                     rejection{code::deadline_exceeded, "net.read_timeout_ms",
                               elapsed_ms(st.partial_since_ns), limits.read_timeout_ms, 0,
                               "a frame started but did not complete in time"});
    return;
  }
  if (st.permit_expires_ns != 0 && now > st.permit_expires_ns) {
    st.reader->allow_next_frame(0);  // the permit expired unused
    st.permit_expires_ns = 0;
  }
  if (auto waiting = waiting_bytes(self);
      waiting > 0 && elapsed_ms(st.last_drain_ns) > limits.write_stall_timeout_ms) {
    reject_and_close(self, 0,
                     rejection{code::slow_consumer, "net.write_stall_timeout_ms",
                               elapsed_ms(st.last_drain_ns), limits.write_stall_timeout_ms, 0,
                               "the peer took none of the " + std::to_string(waiting)
                                 + " bytes waiting for it in time; it does not read"});
    return;
  }
  if (st.hello_done && !st.paused && !st.output_blocked) {
    if (st.ping_outstanding && elapsed_ms(st.ping_sent_ns) > limits.idle_timeout_ms) {
      reject_and_close(self, 0,
                       rejection{code::deadline_exceeded, "net.idle_timeout_ms",
                                 elapsed_ms(st.last_frame_ns), 2 * limits.idle_timeout_ms, 0,
                                 "no complete frame, not even a Pong, in time"});
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
  later(self, st.tick_interval, tick_atom::value);
}

enum class conn_role { accepted, refused, dialed };

/// Sends a request of this side to the peer; its answer (or Reject) fulfils the promise.
/// With a sink, the request is streamed: its batches go to the sink as
/// (wire_batch_atom, tag, part) and EndOfStream's summary fulfils the promise.
caf::result<std::string> send_outgoing(connection_broker* self, std::string target,
                                       std::string payload, caf::actor sink = {},
                                       uint64_t tag = 0, stream_credit credit = {}) {
  auto& st = self->state;
  if (!st.hello_done || st.closing || st.closed)
    return to_error(rejection{code::unavailable, "net.connection", 0, 0, 0,
                              "the connection to the peer is not ready"});
  if (st.peer_max_inflight != 0 && st.outgoing.size() >= st.peer_max_inflight)
    return to_error(rejection{code::too_many_inflight, "net.max_inflight_requests",
                              st.outgoing.size() + 1, st.peer_max_inflight, 10,
                              "the peer allows no more requests in flight"});
  if (auto waiting = waiting_bytes(self); waiting >= limits_of(self).max_write_buffer_bytes)
    return to_error(rejection{code::slow_consumer, "net.max_write_buffer_bytes", waiting,
                              limits_of(self).max_write_buffer_bytes, 0,
                              "the peer does not read what this node sends; the request was "
                              "not sent"});
  wire::Envelope env;
  auto id = st.next_request_id++;
  env.set_request_id(id);
  auto& req = *env.mutable_request();
  req.set_target(std::move(target));
  req.set_payload(std::move(payload));
  req.set_stream(static_cast<bool>(sink));
  if (sink) {
    req.set_credit_batches(static_cast<uint32_t>(
      std::min<uint64_t>(credit.batches, stream_credit::max_batches)));
    req.set_credit_bytes(static_cast<uint64_t>(std::max<int64_t>(credit.bytes, 0)));
  }
  // Larger than the peer accepts: refused here, nothing sent. Only a request that might
  // be (compression could still bring it under) is encoded to find out.
  if (frame_header_bytes + env.ByteSizeLong() > st.peer.max_frame_bytes) {
    std::string probe;
    if (auto err = encode_frame(env, st.peer, probe))
      return to_error(*err);
  }
  auto rp = self->make_response_promise<std::string>();
  st.outgoing.emplace(id, rp);
  if (sink)
    st.outgoing_streams.emplace(id, connection_state::outgoing_stream{std::move(sink), tag});
  write_frame(self, env);
  return rp;
}

caf::behavior connection(connection_broker* self, connection_handle hdl,
                         std::shared_ptr<server_context> ctx, conn_role role, caf::actor owner,
                         std::string token) {
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
  if (role == conn_role::refused) {
    ctx->stats.connections_refused.fetch_add(1);
    reject_and_close(self, 0,
                     rejection{code::too_many_connections, "net.max_connections",
                               limits.max_connections + 1, limits.max_connections, 1000,
                               "this node serves its maximum number of connections"});
    return {};  // no behavior: the broker ends now, and CAF sends what was written
  }
  ctx->add_connection(caf::actor_cast<caf::actor>(self));  // also where its timers find it
  // The listener forgets the connection however it ends: closed, or failed (an error it
  // did not expect would otherwise leave it counted open and listed for good).
  self->attach_functor([ctx, counted = st.counted, id = self->id()] {
    if (counted)
      ctx->connection_closed();
    ctx->remove_connection(id);
  });
  // An error message from an actor it talks to (e.g. a target that did not expect a
  // credit) is that actor's problem, not a reason to drop the peer.
  self->set_error_handler([](caf::error&) {});
  if (st.dialed) {
    wire::Envelope hello;
    fill_hello(*hello.mutable_hello(), *ctx, wire::ROLE_CLIENT, st.token);
    write_frame(self, hello);
    self->flush_now(hdl);
  } else {
    ctx->stats.connections_accepted.fetch_add(1);
  }
  auto shortest = std::min({limits.handshake_timeout_ms, limits.idle_timeout_ms,
                            limits.read_timeout_ms, limits.write_stall_timeout_ms});
  st.tick_interval = milliseconds(std::clamp<uint64_t>(shortest / 4, 5, 1000));
  later(self, st.tick_interval, tick_atom::value);
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
                       rejection{code::shutting_down, "net.listener", 0, 0, 0,
                                 self->state.dialed ? "this node is shutting down"
                                                    : "the server is shutting down"});
    },
    [=](stop_atom, uint32_t code_number, std::string& limit, std::string& detail) {
      // Closed by the node for a reason of its own (e.g. a satellite that missed its
      // heartbeats), told to the peer with that reason.
      auto c = code_from_number(code_number).value_or(code::unavailable);
      reject_and_close(self, 0, rejection{c, std::move(limit), 0, 0, 0, std::move(detail)});
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
      self->state.read_sync_pending = false;
      sync_reading(self);
    },
    [=](tick_atom) { on_tick(self); },
    [=](timeout_atom, int64_t armed_for) { expire_requests(self, armed_for); },
    [=](wire_request_atom, std::string& target,
        std::string& payload) -> caf::result<std::string> {
      return send_outgoing(self, std::move(target), std::move(payload));
    },
    [=](wire_stream_atom, std::string& target, std::string& payload, uint64_t tag,
        uint64_t credit_batches, uint64_t credit_bytes) -> caf::result<std::string> {
      auto sink = caf::actor_cast<caf::actor>(self->current_sender());
      stream_credit credit;
      credit.add(credit_batches, credit_bytes);
      return send_outgoing(self, std::move(target), std::move(payload), std::move(sink), tag,
                           credit);
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
          o->second.deliver(to_error(rejection{code::cancelled, "net.request", 0, 0, 0,
                                               "the requester cancelled the stream"}));
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
      stream.credit.produced(part.size());
      wire::Envelope out;
      out.set_request_id(stream.rid);
      out.mutable_batch()->set_sequence(stream.batches++);
      out.mutable_batch()->set_payload(std::move(part));
      if (!write_frame(self, out)) {
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

/// The connection broker of a socket the uplink connected itself.
caf::behavior dialed_connection(connection_broker* self, caf::io::network::native_socket fd,
                                std::shared_ptr<server_context> ctx, caf::actor owner,
                                std::string token) {
  auto hdl = self->add_scribe(fd);  // the broker owns the socket from here
  return connection(self, hdl, std::move(ctx), conn_role::dialed, std::move(owner),
                    std::move(token));
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
    std::fprintf(stderr, "levee: %s; retrying with backoff (up to %lld ms)\n",
                 printable(s.last_error).c_str(), static_cast<long long>(opts.backoff_max.count()));
    s.reported = s.last_error;
    s.reported_at = now;
  }
}

/// An attempt failed: reported, and tried again after the backoff.
void dial_failed(uplink_actor* self, const uplink_options& opts, const std::string& why) {
  auto& s = self->state;
  close_dialing(self);
  report(self, opts, "cannot connect to " + opts.host + ":" + std::to_string(opts.port) + ": " + why);
  self->delayed_send(self, s.backoff, connect_atom::value);
  s.backoff = std::min(s.backoff * 2, opts.backoff_max);
}

/// Connected: the socket becomes a connection broker, which says hello.
void dialed(uplink_actor* self, std::shared_ptr<server_context> ctx, const uplink_options& opts,
            int fd) {
  auto& s = self->state;
  s.dialing_fd = -1;
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  s.link = self->system().middleman().spawn_broker(dialed_connection, fd, std::move(ctx),
                                                   caf::actor_cast<caf::actor>(self), opts.token);
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
    self->delayed_send(self, s.backoff, connect_atom::value);
    s.backoff = std::min(s.backoff * 2, opts.backoff_max);
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
        std::fprintf(stderr, "levee: connected to %s:%u again\n", printable(opts.host).c_str(),
                     static_cast<unsigned>(opts.port));
        s.reported.clear();
      }
      if (opts.notify)
        self->send(opts.notify, connected_atom::value, peer);
    },
    [=](refused_atom, const caf::error& why) {
      // The connection ends after this; the down handler tries again.
      auto r = rejection_from(why);
      report(self, opts,
             "the server at " + opts.host + ":" + std::to_string(opts.port)
               + " refused this node: " + (r ? r->to_string() : self->system().render(why)));
    },
    [=](wire_request_atom, std::string& target,
        std::string& payload) -> caf::result<std::string> {
      auto& s = self->state;
      if (!s.connected || !s.link)
        return to_error(rejection{code::unavailable, "net.uplink", 0, 0, 0,
                                  "not connected to the server"
                                    + (s.last_error.empty() ? std::string{}
                                                            : " (last error: " + s.last_error + ")")});
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

caf::behavior acceptor(levee::broker* self, std::shared_ptr<server_context> ctx,
                       std::string host, uint16_t port,
                       std::shared_ptr<std::promise<result<uint16_t>>> bound) {
  auto res = self->add_tcp_doorman(port, host.c_str(), true);
  if (!res) {
    bound->set_value(status::error(code::unavailable,
                                   "cannot listen on " + host + ":" + std::to_string(port) + ": "
                                     + self->system().render(res.error())
                                     + "; is the port in use?"));
    self->quit();
    return {};
  }
  bound->set_value(res->second);
  return {
    [=](const caf::io::new_connection_msg& msg) {
      // A refused connection still gets a broker: it sends the Reject and closes.
      auto role = ctx->try_open_connection() ? conn_role::accepted : conn_role::refused;
      self->fork(connection, msg.handle, ctx, role, caf::actor{}, std::string{});
    },
    [=](const caf::io::acceptor_closed_msg&) { self->quit(); },
  };
}

} // namespace

uint64_t connection_actors_alive() noexcept {
  return connection_brokers_alive.load();
}

caf::actor start_uplink(caf::actor_system& sys, std::shared_ptr<server_context> ctx,
                        uplink_options opts) {
  return sys.spawn(uplink, std::move(ctx), std::move(opts));
}

void stop_listener(const listener& l, server_context& ctx) {
  if (l.acceptor)
    caf::anon_send_exit(l.acceptor, caf::exit_reason::user_shutdown);
  for (auto& conn : ctx.connections())
    caf::anon_send(conn, stop_atom::value);
}

result<listener> start_listener(caf::actor_system& sys, std::shared_ptr<server_context> ctx,
                                const std::string& host, uint16_t port) {
  if (auto st = validate(ctx->config().limits); !st)
    return st;
  auto bound = std::make_shared<std::promise<result<uint16_t>>>();
  auto done = bound->get_future();
  auto acc = sys.middleman().spawn_broker(acceptor, ctx, host, port, bound);
  if (done.wait_for(seconds(30)) != std::future_status::ready)
    return status::error(code::unavailable, "the listener did not start within 30 s");
  auto r = done.get();
  if (!r)
    return r.error();
  return listener{acc, *r};
}

} // namespace levee::net
