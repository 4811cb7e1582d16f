#pragma once
// Streams from C++ (net/streams.proto, streams/README.md): stream admin, publish (one
// message or a batch; synchronous, or asynchronous with a bounded window of un-acked
// messages) and subscriptions paced by credit, over one connection to a broker.
//
// The types here are plain C++ (no protobuf): net/stream_client.cpp converts them to and
// from the wire's messages (net/streams.proto).
//
// Blocking and single-threaded like levee::client, which it owns: one stream_client per
// thread. Answers are matched to their requests by id, so publishes, subscriptions and
// admin calls may be interleaved on one connection; a subscription's batches wait in the
// client (at most its credit window) until next() takes them. No CAF is linked.
//
//   levee::stream_client sc{{.host = "127.0.0.1", .port = 7400}};
//   if (auto st = sc.connect(); !st) ...
//   auto acks = sc.publish("orders.eu", {{"key", "", "body"}});
//   auto sub = sc.subscribe({"orders", 0, levee::start_at::earliest()});
//   auto ev = sc.next(*sub, std::chrono::seconds(1));

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "levee/client.hpp"

namespace levee::wire {
class BrokerCall;
} // namespace levee::wire

namespace levee {

/// What a stream does when a retention bound would be passed (streams/README.md).
enum class full_policy { broker_default, drop_oldest, reject };
/// When a publish is acknowledged (streams/README.md "fsync policies").
enum class fsync_mode { broker_default, none, interval, every_batch };

/// A stream's settings. For create_stream an absent value takes the broker's [stream]
/// default; stream_info answers with every value filled in.
struct stream_spec {
  std::string name;
  std::string subject;  // the pattern: '*' one token, '>' the tail
  std::optional<uint32_t> partitions;
  /// Copies of each partition on as many brokers (a cluster; a broker alone takes 1), and
  /// how many of them must hold a message before an ack = all publish is answered.
  std::optional<uint32_t> replication_factor;
  std::optional<uint32_t> min_insync_replicas;
  std::optional<uint64_t> retention_max_age_ms;    // 0 = none
  std::optional<uint64_t> retention_max_bytes;     // per partition
  std::optional<uint64_t> retention_max_messages;  // per partition, 0 = none
  full_policy on_full = full_policy::broker_default;
  std::optional<bool> compact_by_key;
  std::optional<uint64_t> max_message_bytes;
  std::optional<uint64_t> max_segment_bytes;
  std::optional<uint64_t> dedupe_window_ms;        // 0 = no deduplication
  std::optional<uint64_t> dedupe_max_entries;
  fsync_mode fsync = fsync_mode::broker_default;
  std::optional<uint64_t> fsync_interval_ms;
  std::map<std::string, uint64_t> limits;  // the leader's [limits.stream] overrides
};

struct partition_info {
  uint32_t partition = 0;
  uint64_t start_offset = 0;  // the first offset kept
  uint64_t next_offset = 0;   // the offset the next message gets
  uint64_t high_water = 0;    // consumers see offsets below this
  uint64_t size_bytes = 0;
  uint64_t appended = 0;
  uint64_t duplicates = 0;
  uint64_t rejected = 0;
  uint64_t dropped_messages = 0;
  uint64_t dropped_segments = 0;
  uint64_t compacted = 0;
  uint64_t subscribers = 0;
  std::string problem;        // non-empty: unavailable, and why
};

struct stream_info {
  stream_spec config;
  std::vector<partition_info> partitions;
};

struct stream_list {
  std::vector<stream_info> streams;
  std::vector<std::string> problems;  // streams of the data directory that did not load
};

enum class ack_mode { leader, none, all };

/// A message to publish.
struct out_message {
  std::string key;   // chooses the partition by hash (unless one is named)
  std::string id;    // deduplication: a repeat within the stream's window is not stored
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

struct publish_options {
  ack_mode ack = ack_mode::leader;
  std::optional<uint32_t> partition;
  std::optional<uint64_t> expected_last_offset;
  std::chrono::milliseconds timeout{5000};
};

/// One stored copy of a published message (one per message and matching stream).
struct message_ack {
  std::string stream;
  uint32_t partition = 0;
  uint64_t offset = 0;
  int64_t timestamp_ms = 0;  // 0 for a duplicate
  bool duplicate = false;
};

/// A message read from a stream.
struct message_in {
  uint64_t offset = 0;
  int64_t timestamp_ms = 0;  // when the partition stored it
  std::string key;
  std::string id;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

struct message_batch {
  std::string stream;
  uint32_t partition = 0;
  std::vector<message_in> messages;
  uint64_t next_offset = 0;  // where the subscription continues
  uint64_t skipped = 0;      // offsets retention removed before they were read
  uint64_t high_water = 0;
};

/// Where a subscription starts.
struct start_at {
  enum class kind { earliest, latest, new_only, offset, time, cursor };
  kind from = kind::earliest;
  uint64_t offset = 0;
  int64_t time_ms = 0;
  static start_at earliest() { return {}; }
  /// The last committed message.
  static start_at latest() { return {kind::latest, 0, 0}; }
  /// Only messages published from now on.
  static start_at new_only() { return {kind::new_only, 0, 0}; }
  static start_at at_offset(uint64_t n) { return {kind::offset, n, 0}; }
  /// The first message stored at or after `ms` (ms since the Unix epoch).
  static start_at at_time(int64_t ms) { return {kind::time, 0, ms}; }
  /// The group's committed cursor (subscribe_options::group); earliest when it has none.
  static start_at cursor() { return {kind::cursor, 0, 0}; }
};

struct subscribe_options {
  std::string stream;
  uint32_t partition = 0;
  start_at start;
  std::optional<uint64_t> stop_offset;   // inclusive
  std::optional<int64_t> stop_time_ms;
  std::string group;                     // with start_at::cursor()
  uint32_t max_batch_messages = 0;       // 0: the broker's default
  uint64_t max_batch_bytes = 0;
};

/// What next() returns: a batch, the end (stop position reached), or the error that
/// ended the subscription (a timeout is deadline_exceeded with the subscription alive).
struct subscription_event {
  std::optional<message_batch> batch;
  bool end = false;
  uint64_t next_offset = 0;  // with end: where a later subscription would continue
  std::optional<rejection> error;
};

class stream_client {
public:
  explicit stream_client(client_options opts);

  /// Connects (again): whatever the old connection had on its way (publishes not
  /// answered, subscriptions) is answered unavailable first, as it will never be.
  status connect();
  status connect_with_backoff(std::chrono::milliseconds total);
  client& connection() noexcept { return conn_; }

  // -- a cluster of brokers -------------------------------------------------------------
  /// A publish, subscription or cursor call sent to a broker that does not lead the partition is
  /// refused not_leader with the leader's address (net/levee.proto Reject.leader_hint):
  /// the client then moves its connection there and sends it again, within the call's
  /// deadline, at most this many times per call (default 3; 0: never, the refusal is the
  /// answer). Asynchronous publishes: the connection moves once every frame on its way to
  /// the old broker is answered; the frames sent before the connection's first answered
  /// publish (a client pointed at the wrong broker) go again there, in order; a later
  /// frame (a leader change mid-stream) keeps no copy, so its calls hear the refusal with
  /// the hint and publish again (with ids, a repeat is stored once). Moving the connection
  /// is a reconnect: subscriptions on the old one are answered unavailable.
  void set_max_redirects(uint32_t n) { max_redirects_ = n; }
  /// How many times calls of this client followed a hint.
  uint64_t redirects() const noexcept { return redirects_; }
  /// The broker the client is connected to (or will connect to) now, host:port.
  std::string broker_address() const { return opts_.host + ":" + std::to_string(opts_.port); }

  // -- admin ----------------------------------------------------------------------------
  result<stream_info> create_stream(const stream_spec& spec, std::chrono::milliseconds timeout);
  status delete_stream(const std::string& name, std::chrono::milliseconds timeout);
  result<stream_list> list_streams(std::chrono::milliseconds timeout);
  result<stream_info> get_stream_info(const std::string& name, std::chrono::milliseconds timeout);

  // -- publish --------------------------------------------------------------------------
  /// Publishes `messages` (one frame) and waits for the acks: one per message and
  /// matching stream; with ack_mode::none, an empty list once the broker took them.
  result<std::vector<message_ack>> publish(const std::string& subject,
                                           std::vector<out_message> messages,
                                           const publish_options& opts = {});

  /// Called with each asynchronous publish's outcome, in the order answers arrive; the
  /// first argument is the id publish_async set. It runs when a call of this client is
  /// about to return, never in the middle of one, so it may call the client itself (a
  /// call's answer may then reach the handler as that call returns: `publish_id` is set
  /// before, the return value is not).
  using ack_handler =
    std::function<void(uint64_t publish_id, result<std::vector<message_ack>> acks)>;
  void on_acks(ack_handler h) { on_acks_ = std::move(h); }
  /// At most this many messages published asynchronously and not yet answered (and at
  /// most the broker's in-flight bound of frames): publish_async waits for answers first.
  void set_max_unacked(uint64_t n) { max_unacked_ = n == 0 ? 1 : n; }
  /// Batching of asynchronous publishes (what Kafka's producers do): calls with the same
  /// subject and options (and no expected_last_offset) that follow each other share one
  /// Publish frame of up to `bytes` of messages, which the broker stores with one append.
  /// A batch is stored or refused as a whole (a refusal reaches every call in it); each
  /// call still gets its own acks. Nothing waits for a batch to fill: it leaves when
  /// full, or when this client next waits, as coalesced writes do. 0 turns it off (one
  /// frame per call). Default 64 KiB, and at most set_batch_messages messages (512):
  /// a broker whose per-connection publish rate (broker.publish_msgs_per_sec,
  /// publish_bytes_per_sec) has a burst below a batch refuses it as larger than its burst,
  /// so keep batches below those bounds.
  void set_batch_bytes(uint64_t bytes) { batch_bytes_ = bytes; }
  void set_batch_messages(uint64_t n) { batch_messages_ = n == 0 ? 1 : n; }
  /// Sends without waiting for the acks (they go to the ack handler), after waiting while
  /// the window is full (up to opts.timeout: deadline_exceeded). Sets `publish_id`, the
  /// id the ack handler is called with. A refusal returned here means the call was not
  /// taken (the handler is not called for it); once taken, every outcome, a refusal to
  /// send its batch included, reaches the handler.
  /// Publishes are batched (set_batch_bytes) and written 64 KiB at a time
  /// (levee::client::coalesce_writes): what is held goes out when full and before any
  /// call of this client waits (flush(), next(), a synchronous call), so end a burst with
  /// flush().
  status publish_async(const std::string& subject, std::vector<out_message> messages,
                       const publish_options& opts = {}, uint64_t* publish_id = nullptr);
  /// Waits until every asynchronous publish is answered (deadline_exceeded otherwise).
  status flush(std::chrono::milliseconds timeout);
  uint64_t unacked() const noexcept { return unacked_messages_; }

  // -- subscribe ------------------------------------------------------------------------
  /// Starts a subscription; its id is what next() and unsubscribe() take.
  result<uint64_t> subscribe(const subscribe_options& opts);
  /// The subscription's next batch, its end, or its error; waits up to `timeout`. Taking
  /// a batch grants the broker more credit (levee::client's window).
  subscription_event next(uint64_t subscription, std::chrono::milliseconds timeout);
  /// Cancels it (batches on their way are discarded).
  status unsubscribe(uint64_t subscription);

  // -- cursors --------------------------------------------------------------------------
  status commit_cursor(const std::string& group, const std::string& stream, uint32_t partition,
                       uint64_t offset, std::chrono::milliseconds timeout);
  /// The group's next offset in that partition, or nullopt when it has none.
  result<std::optional<uint64_t>> fetch_cursor(const std::string& group,
                                               const std::string& stream, uint32_t partition,
                                               std::chrono::milliseconds timeout);

private:
  /// Moves the connection to the leader `r` names (not_leader with a hint), within
  /// `deadline`; false when `r` is no such refusal, `used` reached max_redirects, or the
  /// leader cannot be reached.
  bool follow_hint(const rejection& r, uint32_t& used, std::chrono::steady_clock::time_point deadline);
  /// Sends a Subscribe; its request id in `id`.
  std::optional<rejection> send_subscribe(const subscribe_options& opts, uint64_t& id);
  /// Sends `call` and waits for its answer's payload, routing other answers meanwhile.
  result<std::string> call(wire::BrokerCall& call, std::chrono::milliseconds timeout);
  /// call(), following a not_leader's hint to the leader (up to max_redirects) within
  /// `timeout`: publishes and cursor calls, which a cluster's partition leader answers.
  result<std::string> call_following(wire::BrokerCall& call, std::chrono::milliseconds timeout);
  /// Receives one answer (up to `timeout`) and files it: an async publish's to the
  /// handler, a subscription's into its queue; any other is returned. A local error
  /// (timeout: request_id 0) is returned too. It never sends the held batch: whoever
  /// waits calls send_held() first.
  std::optional<reply> pump(std::chrono::milliseconds timeout);
  /// Sends the held batch of asynchronous publishes as one frame. With `wait`, waits for
  /// a slot of the broker's in-flight bound until the batch's own deadline, and then
  /// refuses it (its calls hear the refusal through the ack handler, and it is returned);
  /// without, leaves it held while no slot is free.
  status send_held(bool wait);
  /// Receives answers while the broker's in-flight bound is full of this client's
  /// publishes, until `deadline`.
  void wait_for_slot(std::chrono::steady_clock::time_point deadline);
  bool frames_full() const;
  /// Before a new connection: what the old one had on its way is answered unavailable.
  void forget_connection();
  /// Hands the outcomes filed meanwhile to the ack handler, when the outermost call of
  /// this client returns (api_scope).
  void deliver_outcomes();
  /// set_batch_bytes within the broker's frame bound.
  uint64_t batch_limit() const;
  void fail_everything(const rejection& why);

  /// One asynchronous publish call inside a frame: its id and how many messages.
  struct publish_part {
    uint64_t id = 0;
    uint64_t messages = 0;
  };
  /// Asynchronous publishes not sent yet (set_batch_bytes).
  struct held_batch {
    std::string subject;
    publish_options opts;
    std::chrono::steady_clock::time_point deadline;  // its first call's
    std::vector<out_message> messages;
    uint64_t bytes = 0;
    std::vector<publish_part> parts;
  };
  /// An asynchronous publish's outcome, waiting for the ack handler.
  struct publish_outcome {
    uint64_t id = 0;
    result<std::vector<message_ack>> acks;
  };
  /// Marks a public call: outcomes filed inside it reach the handler when the outermost
  /// one returns, so the handler never runs while a batch is half built.
  struct api_scope {
    explicit api_scope(stream_client& c) : c_(c) { ++c_.depth_; }
    ~api_scope() {
      if (--c_.depth_ == 0)
        c_.deliver_outcomes();
    }
    stream_client& c_;
  };
  /// Files a frame's answer: each publish call in it gets its share of the acks.
  void answer_publishes(const std::vector<publish_part>& parts, const reply& r);

  client_options opts_;  // where conn_ goes: a followed hint changes host and port
  client conn_;
  uint32_t max_redirects_ = 3;
  uint64_t redirects_ = 0;
  /// Subscriptions by the id subscribe() returned: the request id each has now (a hint
  /// may move it to another connection, where request ids start again), and its options
  /// until its first batch (to send it again to the leader a hint names).
  std::map<uint64_t, uint64_t> sub_ids_;
  std::map<uint64_t, subscribe_options> unstarted_;
  uint64_t next_sub_id_ = 1;
  ack_handler on_acks_;
  uint64_t max_unacked_ = 4096;
  uint64_t batch_bytes_ = 64 * 1024;
  uint64_t batch_messages_ = 512;
  int depth_ = 0;
  bool delivering_ = false;
  std::deque<publish_outcome> outcomes_;
  uint64_t unacked_messages_ = 0;
  uint64_t next_publish_id_ = 1;
  std::optional<held_batch> held_;
  /// An asynchronous frame on its way: its calls, and (until the connection's first
  /// answered publish) a copy of its batch, to send again to the leader a not_leader names.
  struct async_frame {
    std::vector<publish_part> parts;
    std::optional<held_batch> retry;
  };
  std::map<uint64_t, async_frame> async_;  // request id -> the frame
  /// Frames refused not_leader with a hint, waiting for the frames still on their way to
  /// the old broker; then the connection moves and they go again, in order.
  std::deque<held_batch> redirected_;
  std::optional<rejection> redirect_;  // the not_leader they were refused with
  uint32_t redirect_run_ = 0;          // hints followed since a publish was last answered
  bool publish_answered_ = false;      // on this connection: frames sent now keep no copy
  /// Moves the connection to redirect_'s leader and sends the redirected frames again once
  /// nothing is on its way to the old broker; answers them with the refusal when the hint
  /// cannot be followed.
  void follow_async_redirect();
  /// Sends `held` as one frame now (no waiting for a slot); a refusal reaches its calls.
  status send_batch(held_batch held);
  std::map<uint64_t, std::deque<reply>> subscriptions_;
};

} // namespace levee
