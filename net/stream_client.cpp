// include/levee/streams.hpp: the typed stream requests over levee::client, with answers
// matched to their requests by id.

#include "levee/streams.hpp"

#include <algorithm>

#include "net/levee.pb.h"
#include "net/stream_message.hpp"
#include "net/streams.pb.h"

namespace levee {

using namespace std::chrono;

namespace {

rejection local(code c, std::string detail) {
  return rejection::of(c).detail(std::move(detail));
}

status as_status(const rejection& r) {
  return status::refused(r);
}

/// A wire answer's payload as `Message`, or bad_request (a broker that answered with
/// something else is not one this client speaks to).
template <class Message>
result<Message> parse_payload(const std::string& payload) {
  Message m;
  if (!m.ParseFromString(payload))
    return status::error(code::bad_request,
                         "the broker's " + Message::descriptor()->name()
                           + " does not parse; is this a Levee broker of this version?");
  return m;
}

/// A call's answer as `Message`: the call's refusal, or its payload parsed.
template <class Message>
result<Message> answer_as(result<std::string> payload) {
  if (!payload)
    return payload.error();
  return parse_payload<Message>(*payload);
}

wire::Ack to_wire(ack_mode a) {
  switch (a) {
    case ack_mode::none: return wire::ACK_NONE;
    case ack_mode::all: return wire::ACK_ALL;
    case ack_mode::leader: break;
  }
  return wire::ACK_LEADER;
}

wire::BrokerCall publish_call(const std::string& subject, std::vector<out_message>& messages,
                              const publish_options& opts) {
  wire::BrokerCall call;
  auto& p = *call.mutable_publish();
  p.set_subject(subject);
  p.set_ack(to_wire(opts.ack));
  if (opts.partition)
    p.set_partition(*opts.partition);
  if (opts.expected_last_offset)
    p.set_expected_last_offset(*opts.expected_last_offset);
  p.set_deadline_ms(static_cast<uint32_t>(opts.timeout.count()));
  p.mutable_messages()->Reserve(static_cast<int>(messages.size()));
  for (auto& m : messages) {
    net::move_message_fields(*p.add_messages(), m.key, m.id, m.body, m.headers);
  }
  return call;
}

wire::CreateStream to_wire(const stream_spec& s) {
  wire::CreateStream w;
  w.set_name(s.name);
  w.set_subject(s.subject);
  if (s.partitions)
    w.set_partitions(*s.partitions);
  if (s.replication_factor)
    w.set_replication_factor(*s.replication_factor);
  if (s.min_insync_replicas)
    w.set_min_insync_replicas(*s.min_insync_replicas);
  if (s.retention_max_age_ms)
    w.set_retention_max_age_ms(*s.retention_max_age_ms);
  if (s.retention_max_bytes)
    w.set_retention_max_bytes(*s.retention_max_bytes);
  if (s.retention_max_messages)
    w.set_retention_max_messages(*s.retention_max_messages);
  w.set_on_full(s.on_full == full_policy::reject        ? wire::ON_FULL_REJECT
                : s.on_full == full_policy::drop_oldest ? wire::ON_FULL_DROP_OLDEST
                                                        : wire::ON_FULL_DEFAULT);
  if (s.compact_by_key)
    w.set_compact_by_key(*s.compact_by_key);
  if (s.max_message_bytes)
    w.set_max_message_bytes(*s.max_message_bytes);
  if (s.max_segment_bytes)
    w.set_max_segment_bytes(*s.max_segment_bytes);
  if (s.dedupe_window_ms)
    w.set_dedupe_window_ms(*s.dedupe_window_ms);
  if (s.dedupe_max_entries)
    w.set_dedupe_max_entries(*s.dedupe_max_entries);
  switch (s.fsync) {
    case fsync_mode::none: w.set_fsync(wire::FSYNC_NONE); break;
    case fsync_mode::interval: w.set_fsync(wire::FSYNC_INTERVAL); break;
    case fsync_mode::every_batch: w.set_fsync(wire::FSYNC_EVERY_BATCH); break;
    case fsync_mode::broker_default: break;
  }
  if (s.fsync_interval_ms)
    w.set_fsync_interval_ms(*s.fsync_interval_ms);
  for (auto& [k, v] : s.limits)
    (*w.mutable_limits())[k] = v;
  return w;
}

stream_spec from_wire(const wire::CreateStream& w) {
  stream_spec s;
  s.name = w.name();
  s.subject = w.subject();
  if (w.has_partitions())
    s.partitions = w.partitions();
  // 0 is "not said" on the wire (a broker answers 1 and up).
  if (w.replication_factor() != 0)
    s.replication_factor = w.replication_factor();
  if (w.min_insync_replicas() != 0)
    s.min_insync_replicas = w.min_insync_replicas();
  if (w.has_retention_max_age_ms())
    s.retention_max_age_ms = w.retention_max_age_ms();
  if (w.has_retention_max_bytes())
    s.retention_max_bytes = w.retention_max_bytes();
  if (w.has_retention_max_messages())
    s.retention_max_messages = w.retention_max_messages();
  s.on_full = w.on_full() == wire::ON_FULL_REJECT        ? full_policy::reject
              : w.on_full() == wire::ON_FULL_DROP_OLDEST ? full_policy::drop_oldest
                                                         : full_policy::broker_default;
  if (w.has_compact_by_key())
    s.compact_by_key = w.compact_by_key();
  if (w.has_max_message_bytes())
    s.max_message_bytes = w.max_message_bytes();
  if (w.has_max_segment_bytes())
    s.max_segment_bytes = w.max_segment_bytes();
  if (w.has_dedupe_window_ms())
    s.dedupe_window_ms = w.dedupe_window_ms();
  if (w.has_dedupe_max_entries())
    s.dedupe_max_entries = w.dedupe_max_entries();
  switch (w.fsync()) {
    case wire::FSYNC_NONE: s.fsync = fsync_mode::none; break;
    case wire::FSYNC_INTERVAL: s.fsync = fsync_mode::interval; break;
    case wire::FSYNC_EVERY_BATCH: s.fsync = fsync_mode::every_batch; break;
    default: break;
  }
  if (w.has_fsync_interval_ms())
    s.fsync_interval_ms = w.fsync_interval_ms();
  for (auto& [k, v] : w.limits())
    s.limits[k] = v;
  return s;
}

stream_info from_wire(const wire::StreamInfo& w) {
  stream_info out;
  out.config = from_wire(w.config());
  for (auto& p : w.partitions())
    out.partitions.push_back(partition_info{
      p.partition(), p.start_offset(), p.next_offset(), p.high_water(), p.size_bytes(),
      p.appended(), p.duplicates(), p.rejected(), p.dropped_messages(), p.dropped_segments(),
      p.compacted(), p.subscribers(), p.problem()});
  return out;
}

std::vector<std::pair<std::string, std::string>> headers_of(
  google::protobuf::RepeatedPtrField<wire::Header>& hs) {
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(static_cast<size_t>(hs.size()));
  for (auto& h : hs)
    out.emplace_back(std::move(*h.mutable_name()), std::move(*h.mutable_value()));
  return out;
}

message_batch from_wire(wire::MessageBatch& w) {
  message_batch b;
  b.stream = std::move(*w.mutable_stream());
  b.partition = w.partition();
  b.next_offset = w.next_offset();
  b.skipped = w.skipped();
  b.high_water = w.high_water();
  b.messages.reserve(static_cast<size_t>(w.messages_size()));
  for (auto& m : *w.mutable_messages())
    b.messages.push_back(message_in{m.offset(), m.timestamp_ms(), std::move(*m.mutable_key()),
                                    std::move(*m.mutable_id()), std::move(*m.mutable_body()),
                                    headers_of(*m.mutable_headers())});
  return b;
}

wire::StartAt to_wire(start_at::kind k) {
  switch (k) {
    case start_at::kind::latest: return wire::START_LATEST;
    case start_at::kind::new_only: return wire::START_NEW;
    case start_at::kind::offset: return wire::START_OFFSET;
    case start_at::kind::time: return wire::START_TIME;
    case start_at::kind::cursor: return wire::START_CURSOR;
    case start_at::kind::earliest: break;
  }
  return wire::START_EARLIEST;
}

int64_t left_ms(steady_clock::time_point deadline) {
  return std::max<int64_t>(0, duration_cast<milliseconds>(deadline - steady_clock::now()).count());
}

} // namespace

namespace {

/// The acks of a PublishAck payload.
result<std::vector<message_ack>> parse_acks(const std::string& payload) {
  auto ack = parse_payload<wire::PublishAck>(payload);
  if (!ack)
    return ack.error();
  std::vector<message_ack> out;
  out.reserve(static_cast<size_t>(ack->acks_size()));
  for (auto& a : *ack->mutable_acks())
    out.push_back(message_ack{std::move(*a.mutable_stream()), a.partition(), a.offset(),
                              a.timestamp_ms(), a.duplicate()});
  return out;
}

} // namespace

stream_client::stream_client(client_options opts) : opts_(opts), conn_(std::move(opts)) {
}

bool stream_client::follow_hint(const rejection& r, uint32_t& used,
                                steady_clock::time_point deadline) {
  if (r.code != code::not_leader || r.leader_hint.empty() || used >= max_redirects_)
    return false;
  auto colon = r.leader_hint.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return false;
  unsigned long port = 0;
  for (size_t i = colon + 1; i < r.leader_hint.size(); ++i) {
    char ch = r.leader_hint[i];
    if (ch < '0' || ch > '9' || port > 65535)
      return false;
    port = port * 10 + static_cast<unsigned long>(ch - '0');
  }
  if (port == 0 || port > 65535)
    return false;
  ++used;
  ++redirects_;
  forget_connection();
  opts_.host = r.leader_hint.substr(0, colon);
  opts_.port = static_cast<uint16_t>(port);
  conn_ = client{opts_};
  return conn_.connect_with_backoff(milliseconds(std::max<int64_t>(1, left_ms(deadline)))).ok();
}

std::optional<reply> stream_client::pump(milliseconds timeout) {
  auto r = conn_.receive(timeout);
  if (r.request_id == 0) {
    if (r.rejected && r.rejected->code == code::unavailable)
      fail_everything(*r.rejected);  // the connection is gone: nothing more will come
    return r;
  }
  if (auto a = async_.find(r.request_id); a != async_.end()) {
    auto frame = std::move(a->second);
    async_.erase(a);
    if (r.ok()) {
      publish_answered_ = true;
      redirect_run_ = 0;
    } else if (r.rejected->code == code::not_leader && !r.rejected->leader_hint.empty()
               && redirect_run_ < max_redirects_) {
      // The connection moves to the leader once the frames before it are answered
      // (send_held); with its copy, this frame goes again there, else its calls hear the
      // refusal (a leader change mid-stream: they publish again, with ids).
      redirect_ = *r.rejected;
      if (frame.retry) {
        redirected_.push_back(std::move(*frame.retry));
        return std::nullopt;
      }
    }
    answer_publishes(frame.parts, r);
    return std::nullopt;
  }
  if (auto s = subscriptions_.find(r.request_id); s != subscriptions_.end()) {
    // At most the credit window of batches waits here: the broker sends no more until
    // next() takes them (levee::client grants credit as it receives).
    s->second.push_back(std::move(r));
    return std::nullopt;
  }
  return r;
}

void stream_client::answer_publishes(const std::vector<publish_part>& parts, const reply& r) {
  uint64_t total = 0;
  for (auto& p : parts)
    total += p.messages;
  unacked_messages_ -= std::min(unacked_messages_, total);
  if (!on_acks_)
    return;
  auto file = [&](uint64_t id, result<std::vector<message_ack>> acks) {
    outcomes_.push_back(publish_outcome{id, std::move(acks)});
  };
  auto fail_all = [&](const status& why) {
    for (auto& p : parts)
      file(p.id, why);
  };
  if (!r.ok())
    return fail_all(as_status(*r.rejected));
  auto acks = parse_acks(*r.payload);
  if (!acks)
    return fail_all(acks.error());
  if (acks->empty()) {  // ack = none: taken, nothing more to say
    for (auto& p : parts)
      file(p.id, std::vector<message_ack>{});
    return;
  }
  // The frame's acks are stream by stream, each stream's in publish order
  // (net/streams.proto PublishAck): k streams give k x total acks, and a call's share of
  // stream s is the run at s x total + (messages of the calls before it).
  if (total == 0 || acks->size() % total != 0)
    return fail_all(status::error(
      code::bad_request, "the broker answered " + std::to_string(acks->size())
                           + " acks for a frame of " + std::to_string(total)
                           + " messages; is this a Levee broker of this version?"));
  auto streams = acks->size() / total;
  uint64_t before = 0;
  for (auto& p : parts) {
    std::vector<message_ack> mine;
    mine.reserve(static_cast<size_t>(streams * p.messages));
    for (uint64_t s = 0; s < streams; ++s)
      for (uint64_t i = 0; i < p.messages; ++i)
        mine.push_back(std::move((*acks)[static_cast<size_t>(s * total + before + i)]));
    before += p.messages;
    file(p.id, std::move(mine));
  }
}

void stream_client::deliver_outcomes() {
  if (delivering_)
    return;  // a handler's own call of this client: the loop below goes on
  delivering_ = true;
  while (!outcomes_.empty() && on_acks_) {
    auto o = std::move(outcomes_.front());
    outcomes_.pop_front();
    on_acks_(o.id, std::move(o.acks));
  }
  outcomes_.clear();  // no handler any more: nobody to tell
  delivering_ = false;
}

void stream_client::forget_connection() {
  publish_answered_ = false;
  if (async_.empty() && !held_ && subscriptions_.empty() && redirected_.empty())
    return;
  fail_everything(rejection::of(code::unavailable)
                    .detail("the connection it was sent on was replaced by a new one; "
                            "publish again (with ids, a repeat is stored once)"));
}

status stream_client::connect() {
  api_scope scope{*this};
  forget_connection();
  return conn_.connect();
}

status stream_client::connect_with_backoff(milliseconds total) {
  api_scope scope{*this};
  forget_connection();
  return conn_.connect_with_backoff(total);
}

void stream_client::fail_everything(const rejection& why) {
  // Oldest first: the frames on their way, then the batch not sent yet.
  reply r;
  r.rejected = why;
  for (auto& [id, frame] : async_)
    answer_publishes(frame.parts, r);
  async_.clear();
  for (auto& b : redirected_)
    answer_publishes(b.parts, r);
  redirected_.clear();
  redirect_.reset();
  if (held_) {
    auto parts = std::move(held_->parts);
    held_.reset();
    answer_publishes(parts, r);
  }
  unacked_messages_ = 0;
  for (auto& [id, q] : subscriptions_) {
    reply r;
    r.request_id = id;
    r.rejected = why;
    q.push_back(std::move(r));
  }
}

result<std::string> stream_client::call(wire::BrokerCall& c, milliseconds timeout) {
  api_scope scope{*this};
  auto deadline = steady_clock::now() + timeout;
  if (!conn_.connected()) {
    forget_connection();
    if (auto st = conn_.connect_with_backoff(timeout); !st)
      return st;
  }
  // Held asynchronous publishes go first: a synchronous call after them is answered after
  // them, as if they had been sent when made. Their refusal is theirs (the handler's), not
  // this call's.
  (void) send_held(true);
  wait_for_slot(deadline);
  uint64_t id = 0;
  if (auto refused = conn_.send_call(c, id))
    return as_status(*refused);
  for (;;) {
    auto r = pump(milliseconds(left_ms(deadline)));
    if (!r)
      continue;
    if (r->request_id != id && r->request_id != 0)
      continue;  // an answer nobody waits for any more
    if (r->ok())
      return std::move(*r->payload);
    return as_status(*r->rejected);
  }
}

result<stream_info> stream_client::create_stream(const stream_spec& spec,
                                                 milliseconds timeout) {
  wire::BrokerCall c;
  *c.mutable_create_stream() = to_wire(spec);
  c.mutable_create_stream()->set_deadline_ms(static_cast<uint32_t>(timeout.count()));
  auto info = answer_as<wire::StreamInfo>(call(c, timeout));
  if (!info)
    return info.error();
  return from_wire(*info);
}

status stream_client::delete_stream(const std::string& name, milliseconds timeout) {
  wire::BrokerCall c;
  c.mutable_delete_stream()->set_name(name);
  c.mutable_delete_stream()->set_deadline_ms(static_cast<uint32_t>(timeout.count()));
  auto payload = call(c, timeout);
  if (!payload)
    return payload.error();
  return {};
}

result<stream_list> stream_client::list_streams(milliseconds timeout) {
  wire::BrokerCall c;
  c.mutable_list_streams()->set_deadline_ms(static_cast<uint32_t>(timeout.count()));
  auto list = answer_as<wire::StreamList>(call(c, timeout));
  if (!list)
    return list.error();
  stream_list out;
  for (auto& s : list->streams())
    out.streams.push_back(from_wire(s));
  for (auto& p : list->problems())
    out.problems.push_back(p);
  return out;
}

result<stream_info> stream_client::get_stream_info(const std::string& name,
                                                   milliseconds timeout) {
  wire::BrokerCall c;
  c.mutable_stream_info()->set_name(name);
  c.mutable_stream_info()->set_deadline_ms(static_cast<uint32_t>(timeout.count()));
  auto info = answer_as<wire::StreamInfo>(call(c, timeout));
  if (!info)
    return info.error();
  return from_wire(*info);
}

result<std::vector<message_ack>> stream_client::publish(const std::string& subject,
                                                        std::vector<out_message> messages,
                                                        const publish_options& opts) {
  auto c = publish_call(subject, messages, opts);
  auto payload = call_following(c, opts.timeout);
  if (!payload)
    return payload.error();
  return parse_acks(*payload);
}

result<std::string> stream_client::call_following(wire::BrokerCall& c, milliseconds timeout) {
  auto deadline = steady_clock::now() + timeout;
  uint32_t used = 0;
  for (;;) {
    // Sending moves the messages into the frame: a copy waits for a not_leader's hint
    // (a cluster's broker that does not lead the partition).
    std::optional<wire::BrokerCall> again;
    if (used < max_redirects_)
      again = c;
    auto payload = call(c, milliseconds(std::max<int64_t>(1, left_ms(deadline))));
    if (payload || !again || !follow_hint(payload.error().as_rejection(), used, deadline))
      return payload;
    c = std::move(*again);
  }
}

namespace {

/// A message's bytes as a batch bound counts them: its fields, and a generous share of
/// the Publish's framing (a message's tag and length, each field's, each header's).
uint64_t bytes_of(const out_message& m) {
  uint64_t n = 16 + m.key.size() + m.id.size() + m.body.size();
  for (auto& [name, value] : m.headers)
    n += 12 + name.size() + value.size();
  return n;
}

bool same_publish(const publish_options& a, const publish_options& b) {
  return a.ack == b.ack && a.partition == b.partition && a.timeout == b.timeout
         && !a.expected_last_offset && !b.expected_last_offset;
}

} // namespace

uint64_t stream_client::batch_limit() const {
  // A batch stays well inside the broker's frame bound (the Publish's framing and each
  // message's field tags come on top of the bytes counted).
  uint64_t frame = conn_.limits().max_frame_bytes;
  return frame == 0 ? batch_bytes_ : std::min<uint64_t>(batch_bytes_, frame / 4 * 3);
}

bool stream_client::frames_full() const {
  auto max = conn_.limits().max_inflight_requests;
  return max != 0 && conn_.in_flight() >= max;
}

void stream_client::wait_for_slot(steady_clock::time_point deadline) {
  while (frames_full() && !async_.empty()) {
    auto r = pump(milliseconds(left_ms(deadline)));
    if (r && r->request_id == 0 && r->rejected)
      return;  // the deadline, or the connection lost (fail_everything answered)
  }
}

void stream_client::follow_async_redirect() {
  auto why = *redirect_;
  auto batches = std::move(redirected_);
  redirected_.clear();
  redirect_.reset();
  // The batch not sent yet goes after them, on the new connection; neither is failed by
  // the move (the calls in them are still unacked).
  auto later = std::move(held_);
  held_.reset();
  auto unacked = unacked_messages_;
  uint32_t used = redirect_run_;
  bool moved = follow_hint(why, used,
                           batches.empty() ? steady_clock::now() + opts_.connect_timeout
                                           : batches.front().deadline);
  redirect_run_ = used;
  unacked_messages_ = unacked;
  if (!moved) {
    reply r;
    r.rejected = why;
    for (auto& b : batches)
      answer_publishes(b.parts, r);
  } else {
    for (auto& b : batches)
      (void) send_batch(std::move(b));
  }
  held_ = std::move(later);
}

status stream_client::send_held(bool wait) {
  // Frames a broker refused not_leader go to the leader once nothing more is on its way
  // to the old one (their answers would be lost with its connection).
  if (redirect_ && async_.empty())
    follow_async_redirect();
  if (!held_)
    return {};
  if (wait)
    wait_for_slot(held_->deadline);
  if (!held_)  // the connection was lost meanwhile: fail_everything answered the batch
    return status::refused(rejection::of(code::unavailable)
                             .detail("the connection to the broker was lost; reconnect"));
  if (!wait && frames_full())
    return {};  // held until a slot frees
  auto held = std::move(*held_);
  held_.reset();
  // Still full past the batch's deadline: levee::client refuses it (too_many_inflight,
  // net.max_inflight_requests) like any request over the bound.
  return send_batch(std::move(held));
}

status stream_client::send_batch(held_batch held) {
  // Until this connection's first publish is answered, the broker may not lead the
  // partition (a cluster): a copy waits to go again where its not_leader points. Later
  // frames keep none (a leader change mid-stream reaches the ack handler with the hint).
  std::optional<held_batch> retry;
  if (max_redirects_ > 0 && !publish_answered_)
    retry = held;
  auto c = publish_call(held.subject, held.messages, held.opts);
  uint64_t id = 0;
  // Asynchronous publishes leave in 64 KiB writes, not a system call each; whatever waits
  // for an answer (the window, flush, a synchronous call) writes what is held.
  conn_.coalesce_writes(true);
  auto refused = conn_.send_call(c, id);
  conn_.coalesce_writes(false);
  if (refused) {
    reply r;
    r.rejected = *refused;
    answer_publishes(held.parts, r);
    return as_status(*refused);
  }
  async_.emplace(id, async_frame{std::move(held.parts), std::move(retry)});
  return {};
}

status stream_client::publish_async(const std::string& subject,
                                    std::vector<out_message> messages,
                                    const publish_options& opts, uint64_t* publish_id) {
  api_scope scope{*this};
  auto deadline = steady_clock::now() + opts.timeout;
  if (!conn_.connected())
    return status::error(code::unavailable, "not connected; call connect() first");
  if (messages.empty())
    return status::error(code::bad_request, "a publish carries at least one message");
  uint64_t n = messages.size();
  uint64_t bytes = 0;
  for (auto& m : messages)
    bytes += bytes_of(m);
  // A held batch these messages cannot join leaves first. (The ack handler does not run
  // until this call returns, so nothing else changes the held batch meanwhile.)
  bool joins = held_ && held_->subject == subject && same_publish(held_->opts, opts)
               && held_->bytes + bytes <= batch_limit()
               && held_->messages.size() + n <= batch_messages_;
  if (held_ && !joins)
    if (auto st = send_held(true); !st)
      return st;
  // The window: wait for answers while it is full (a batch larger than the whole window
  // goes once the window is empty). Waiting sends what is held: its answers free room.
  while (unacked_messages_ + n > max_unacked_
         && (held_ || !async_.empty() || !redirected_.empty())) {
    if (held_ || async_.empty()) {  // async_ empty: what was redirected goes now
      if (auto st = send_held(true); !st)
        return st;
      continue;
    }
    auto r = pump(milliseconds(left_ms(deadline)));
    if (r && r->request_id == 0 && r->rejected)
      return as_status(*r->rejected);
  }
  uint64_t id = next_publish_id_++;
  if (!held_)
    held_ = held_batch{subject, opts, deadline, {}, 0, {}};
  held_->messages.reserve(held_->messages.size() + messages.size());
  for (auto& m : messages)
    held_->messages.push_back(std::move(m));
  held_->bytes += bytes;
  held_->parts.push_back(publish_part{id, n});
  unacked_messages_ += n;
  if (publish_id)
    *publish_id = id;
  // Full, or batching off: it leaves now (into the coalesced write buffer). A refusal
  // here reaches this call through the ack handler, like any answer.
  if (held_->bytes >= batch_limit() || held_->messages.size() >= batch_messages_)
    (void) send_held(true);
  return {};
}

status stream_client::flush(milliseconds timeout) {
  api_scope scope{*this};
  auto deadline = steady_clock::now() + timeout;
  if (auto st = send_held(true); !st)
    return st;
  while (!async_.empty() || !redirected_.empty()) {
    if (async_.empty()) {  // only redirected frames left: they go to the leader now
      (void) send_held(true);
      continue;
    }
    auto r = pump(milliseconds(left_ms(deadline)));
    if (r && r->request_id == 0 && r->rejected)
      return as_status(*r->rejected);
  }
  return {};
}

std::optional<rejection> stream_client::send_subscribe(const subscribe_options& opts,
                                                       uint64_t& id) {
  wire::BrokerCall c;
  auto& s = *c.mutable_subscribe();
  s.set_stream(opts.stream);
  s.set_partition(opts.partition);
  s.set_start(to_wire(opts.start.from));
  s.set_start_offset(opts.start.offset);
  s.set_start_time_ms(opts.start.time_ms);
  if (opts.stop_offset)
    s.set_stop_offset(*opts.stop_offset);
  if (opts.stop_time_ms)
    s.set_stop_time_ms(*opts.stop_time_ms);
  s.set_group(opts.group);
  s.set_max_batch_messages(opts.max_batch_messages);
  s.set_max_batch_bytes(opts.max_batch_bytes);
  if (auto refused = conn_.send_call(c, id))
    return refused;
  subscriptions_[id];
  return std::nullopt;
}

result<uint64_t> stream_client::subscribe(const subscribe_options& opts) {
  if (!conn_.connected())
    return status::error(code::unavailable, "not connected; call connect() first");
  // After the publishes made before it, as a synchronous call (their refusal reaches the
  // ack handler).
  api_scope scope{*this};
  (void) send_held(true);
  uint64_t id = 0;
  if (auto refused = send_subscribe(opts, id))
    return as_status(*refused);
  uint64_t sub = next_sub_id_++;
  sub_ids_[sub] = id;
  if (max_redirects_ > 0)
    unstarted_[sub] = opts;  // until its first batch: a not_leader may send it elsewhere
  return sub;
}

subscription_event stream_client::next(uint64_t subscription, milliseconds timeout) {
  subscription_event ev;
  auto deadline = steady_clock::now() + timeout;
  // Waiting below must not hold back asynchronous publishes (a subscriber may wait for
  // its own publishes): they go as soon as a slot of the in-flight bound is free, and
  // wait for one within their own timeout, not this call's.
  api_scope scope{*this};
  uint32_t used = 0;
  for (;;) {
    (void) send_held(false);
    auto rid = sub_ids_.find(subscription);
    auto s = rid == sub_ids_.end() ? subscriptions_.end() : subscriptions_.find(rid->second);
    if (s == subscriptions_.end()) {
      ev.error = local(code::not_found, "no subscription " + std::to_string(subscription)
                                          + " on this client (ended or never started)");
      return ev;
    }
    if (!s->second.empty()) {
      auto r = std::move(s->second.front());
      s->second.pop_front();
      if (r.batch) {
        unstarted_.erase(subscription);
        auto b = parse_payload<wire::MessageBatch>(*r.payload);
        if (!b)
          ev.error = b.error().as_rejection();
        else
          ev.batch = from_wire(*b);
        return ev;
      }
      subscriptions_.erase(s);
      auto start = unstarted_.find(subscription);
      if (start != unstarted_.end() && !r.ok()) {
        // Refused before its first batch by a broker that does not lead the partition:
        // sent again to the leader it names, under the same id.
        auto opts = start->second;
        uint64_t id = 0;
        if (follow_hint(*r.rejected, used, deadline) && !send_subscribe(opts, id)) {
          sub_ids_[subscription] = id;
          continue;
        }
      }
      unstarted_.erase(subscription);
      sub_ids_.erase(subscription);
      if (r.ok()) {
        ev.end = true;
        wire::SubscribeEnd end;
        if (end.ParseFromString(*r.payload))
          ev.next_offset = end.next_offset();
      } else {
        ev.error = std::move(r.rejected);
      }
      return ev;
    }
    auto r = pump(milliseconds(left_ms(deadline)));
    if (r && r->request_id == 0 && r->rejected) {
      if (r->rejected->code != code::unavailable) {
        ev.error = std::move(r->rejected);  // a timeout: the subscription stays
        return ev;
      }
      // Lost: fail_everything queued the error for every subscription; loop to take it.
    }
  }
}

status stream_client::unsubscribe(uint64_t subscription) {
  unstarted_.erase(subscription);
  auto rid = sub_ids_.find(subscription);
  uint64_t id = rid == sub_ids_.end() ? 0 : rid->second;
  if (rid != sub_ids_.end())
    sub_ids_.erase(rid);
  if (id == 0 || subscriptions_.erase(id) == 0)
    return status::error(code::not_found, "no subscription " + std::to_string(subscription)
                                            + " on this client");
  // Its batches still on their way, and its Reject cancelled, are answers nobody waits
  // for: pump() returns them to whoever calls, who drops them.
  return conn_.cancel(id);
}

status stream_client::commit_cursor(const std::string& group, const std::string& stream,
                                    uint32_t partition, uint64_t offset,
                                    milliseconds timeout) {
  wire::BrokerCall c;
  auto& cc = *c.mutable_commit_cursor();
  cc.set_group(group);
  cc.set_stream(stream);
  cc.set_partition(partition);
  cc.set_offset(offset);
  cc.set_deadline_ms(static_cast<uint32_t>(timeout.count()));
  auto payload = call_following(c, timeout);
  if (!payload)
    return payload.error();
  return {};
}

result<std::optional<uint64_t>> stream_client::fetch_cursor(const std::string& group,
                                                            const std::string& stream,
                                                            uint32_t partition,
                                                            milliseconds timeout) {
  wire::BrokerCall c;
  auto& fc = *c.mutable_fetch_cursor();
  fc.set_group(group);
  fc.set_stream(stream);
  fc.set_partition(partition);
  fc.set_deadline_ms(static_cast<uint32_t>(timeout.count()));
  auto ack = answer_as<wire::CursorAck>(call_following(c, timeout));
  if (!ack)
    return ack.error();
  if (!ack->found())
    return std::optional<uint64_t>{};
  return std::optional<uint64_t>{ack->offset()};
}

} // namespace levee
