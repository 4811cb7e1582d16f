#pragma once
// Streams from C++ (net/streams.proto, streams/README.md): stream admin, publish (one
// message or a batch; synchronous, or asynchronous with a bounded window of un-acked
// messages) and subscriptions paced by credit, over one connection to a broker.
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
#include "net/streams.pb.h"

namespace levee {

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

/// Where a subscription starts.
struct start_at {
  wire::StartAt from = wire::START_EARLIEST;
  uint64_t offset = 0;
  int64_t time_ms = 0;
  static start_at earliest() { return {}; }
  static start_at latest() { return {wire::START_LATEST, 0, 0}; }
  static start_at new_only() { return {wire::START_NEW, 0, 0}; }
  static start_at at_offset(uint64_t n) { return {wire::START_OFFSET, n, 0}; }
  static start_at at_time(int64_t ms) { return {wire::START_TIME, 0, ms}; }
  /// The group's committed cursor (subscribe_options::group); earliest when it has none.
  static start_at cursor() { return {wire::START_CURSOR, 0, 0}; }
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
  std::optional<wire::MessageBatch> batch;
  bool end = false;
  uint64_t next_offset = 0;  // with end: where a later subscription would continue
  std::optional<rejection> error;
};

class stream_client {
public:
  explicit stream_client(client_options opts);

  status connect() { return conn_.connect(); }
  status connect_with_backoff(std::chrono::milliseconds total) {
    return conn_.connect_with_backoff(total);
  }
  client& connection() noexcept { return conn_; }

  // -- admin (answers are the wire's messages) ------------------------------------------
  result<wire::StreamInfo> create_stream(wire::CreateStream spec,
                                         std::chrono::milliseconds timeout);
  status delete_stream(const std::string& name, std::chrono::milliseconds timeout);
  result<wire::StreamList> list_streams(std::chrono::milliseconds timeout);
  result<wire::StreamInfo> stream_info(const std::string& name,
                                       std::chrono::milliseconds timeout);

  // -- publish --------------------------------------------------------------------------
  /// Publishes `messages` (one frame) and waits for the acks: one per message and
  /// matching stream; with ack_mode::none, an empty list once the broker took them.
  result<std::vector<message_ack>> publish(const std::string& subject,
                                           std::vector<out_message> messages,
                                           const publish_options& opts = {});

  /// Called with each asynchronous publish's outcome, in the order answers arrive.
  using ack_handler =
    std::function<void(uint64_t request_id, result<std::vector<message_ack>> acks)>;
  void on_acks(ack_handler h) { on_acks_ = std::move(h); }
  /// At most this many messages published asynchronously and not yet answered (and at
  /// most the broker's in-flight bound of frames): publish_async waits for answers first.
  void set_max_unacked(uint64_t n) { max_unacked_ = n == 0 ? 1 : n; }
  /// Sends without waiting for the acks (they go to the ack handler), after waiting while
  /// the window is full (up to opts.timeout: deadline_exceeded). Sets `request_id`.
  status publish_async(const std::string& subject, std::vector<out_message> messages,
                       const publish_options& opts = {}, uint64_t* request_id = nullptr);
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
  /// Sends `call` and waits for its answer's payload, routing other answers meanwhile.
  result<std::string> call(wire::BrokerCall& call, std::chrono::milliseconds timeout);
  /// Receives one answer (up to `timeout`) and files it: an async publish's to the
  /// handler, a subscription's into its queue; any other is returned. A local error
  /// (timeout: request_id 0) is returned too.
  std::optional<reply> pump(std::chrono::milliseconds timeout);
  void fail_everything(const rejection& why);

  client conn_;
  ack_handler on_acks_;
  uint64_t max_unacked_ = 4096;
  uint64_t unacked_messages_ = 0;
  std::map<uint64_t, uint64_t> async_;  // request id -> messages in it
  std::map<uint64_t, std::deque<reply>> subscriptions_;
};

/// The acks of a PublishAck payload.
result<std::vector<message_ack>> parse_acks(const std::string& payload);

} // namespace levee
