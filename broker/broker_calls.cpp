// The broker's calls that go to leaders: publish (routed to every matching stream),
// subscribe (handed to the partition's leader) and cursors (written to the internal
// stream) (broker_state.hpp).

#include <caf/all.hpp>

#include "actors/caf_error.hpp"
#include "broker/broker_state.hpp"
#include "broker/replica_calls.hpp"

namespace levee::broker {

namespace {

/// One leader's share of a publish: which messages of the request went into its batch.
struct publish_call {
  const std::string* stream;
  uint32_t partition;
  leader_actor leader;
  append_batch batch;
  std::vector<size_t> message_index;  // per message of the batch: its place in the request
};

/// The answer's acks, stream by stream in match order, each in publish order.
std::string build_acks(broker_self* self, const std::vector<publish_call>& calls,
                       const std::vector<append_acks>& acks) {
  wire::PublishAck answer;
  auto& stats = *self->state.setup.stats;
  const std::string* last_stream = nullptr;
  std::vector<std::pair<size_t, wire::MessageAck>> of_stream;  // (request index, ack)
  auto flush = [&] {
    std::sort(of_stream.begin(), of_stream.end(),
              [](auto& a, auto& b) { return a.first < b.first; });
    for (auto& [i, a] : of_stream)
      *answer.add_acks() = std::move(a);
    of_stream.clear();
  };
  for (size_t c = 0; c < calls.size(); ++c) {
    if (last_stream != nullptr && *last_stream != *calls[c].stream)
      flush();
    last_stream = calls[c].stream;
    for (size_t i = 0; i < acks[c].acks.size() && i < calls[c].message_index.size(); ++i) {
      auto& in = acks[c].acks[i];
      wire::MessageAck a;
      a.set_stream(*calls[c].stream);
      a.set_partition(calls[c].partition);
      a.set_offset(in.offset);
      a.set_timestamp_ms(in.timestamp_ms);
      a.set_duplicate(in.duplicate);
      (in.duplicate ? stats.duplicates : stats.messages_stored).fetch_add(1);
      of_stream.emplace_back(calls[c].message_index[i], std::move(a));
    }
  }
  flush();
  stats.acks.fetch_add(static_cast<uint64_t>(answer.acks_size()));
  return answer.SerializeAsString();
}

} // namespace

caf::result<std::string> publish(broker_self* self, wire::Publish& req) {
  auto& st = self->state;
  auto& catalog = *st.setup.catalog;
  st.setup.stats->publishes.fetch_add(1);
  auto subj = streams::subject::parse(req.subject(), st.setup.settings.subjects);
  if (!subj)
    return refuse(self, subj.error().as_rejection());
  if (req.messages_size() == 0)
    return refuse(self, code::bad_request, "a Publish with no messages; send at least one");
  std::vector<streams::stream*> matched;
  catalog.match(*subj, matched);
  std::vector<stream_entry*> targets;
  for (auto* s : matched)
    if (auto* e = find_stream(self, s->config().name))
      targets.push_back(e);
  if (targets.empty())
    return refuse(self, code::not_found,
                  "no stream's subject matches " + req.subject()
                    + "; create a stream that binds it, or publish to a subject one binds");
  if (req.has_expected_last_offset() && targets.size() > 1)
    return refuse(self, code::bad_request,
                  "expected_last_offset needs exactly one matching stream and "
                    + std::to_string(targets.size())
                    + " match; publish to a subject only one stream binds");
  // Each message's size as a stream counts it (streams::message_bytes: key, id, body and
  // headers), measured once: the publisher's byte rate and every stream's bound use it.
  std::vector<uint64_t> sizes;
  sizes.reserve(static_cast<size_t>(req.messages_size()));
  uint64_t bytes = 0;
  for (auto& m : req.messages()) {
    uint64_t n = m.key().size() + m.id().size() + m.body().size();
    for (auto& h : m.headers())
      n += h.name().size() + h.value().size();
    sizes.push_back(n);
    bytes += n;
  }
  auto sender = self->current_sender();
  if (auto limited = st.publishers->admit(sender ? sender->id() : 0,
                                          static_cast<uint64_t>(req.messages_size()), bytes))
    return refuse(self, *limited);
  std::optional<uint32_t> named;
  if (req.has_partition())
    named = req.partition();
  // Route first (partition choice, each message's size against its stream's bound), then
  // copy: nothing large is built for a publish that will be refused.
  std::vector<publish_call> calls;
  for (auto* e : targets) {
    auto& name = e->stream->config().name;
    std::map<uint32_t, size_t> call_of;  // partition -> index in calls
    for (int i = 0; i < req.messages_size(); ++i) {
      auto& m = req.messages(i);
      auto p = e->stream->choose_partition(named, m.key());
      if (!p)
        return refuse(self, p.error().as_rejection());
      // Clustered, a message with neither key nor partition may go to any partition:
      // one this broker leads, if there is one (the round robin goes on past the others),
      // rather than a redirect to another broker.
      for (uint32_t tries = 1; st.clustered() && !named && m.key().empty()
                               && check_leads(self, *e, *p) && tries < e->partitions.size();
           ++tries)
        p = e->stream->choose_partition(named, m.key());
      if (auto refused = check_leads(self, *e, *p))
        return refuse(self, *refused);
      auto& pe = e->partitions[*p];
      if (!pe.leader)
        return refuse(self, rejection::of(code::storage_error)
                              .detail("stream " + name + " partition " + std::to_string(*p)
                                      + " is unavailable: " + pe.problem));
      if (auto fits = pe.log->check_message_bytes(sizes[static_cast<size_t>(i)]); !fits)
        return refuse(self, fits.as_rejection());
      auto [at, added] = call_of.emplace(*p, calls.size());
      if (added) {
        calls.push_back(publish_call{&name, *p, pe.leader, {}, {}});
        if (req.ack() == wire::ACK_ALL)
          calls.back().batch.ack = ack_level::all;
        if (req.has_expected_last_offset())
          calls.back().batch.expected_last_offset = req.expected_last_offset();
      }
      calls[at->second].message_index.push_back(static_cast<size_t>(i));
    }
  }
  // The copies: the last stream's take the request's strings.
  for (size_t c = 0; c < calls.size(); ++c) {
    bool last = *calls[c].stream == *calls.back().stream;
    for (auto i : calls[c].message_index) {
      auto& m = *req.mutable_messages(static_cast<int>(i));
      owned_message out;
      out.key = last ? std::move(*m.mutable_key()) : m.key();
      out.id = last ? std::move(*m.mutable_id()) : m.id();
      out.body = last ? std::move(*m.mutable_body()) : m.body();
      for (auto& h : *m.mutable_headers())
        out.headers.emplace_back(last ? std::move(*h.mutable_name()) : h.name(),
                                 last ? std::move(*h.mutable_value()) : h.value());
      calls[c].batch.messages.push_back(std::move(out));
    }
  }
  if (req.ack() == wire::ACK_NONE) {
    // Answered now; a leader's refusal is counted and logged, never silent.
    for (auto& c : calls)
      self->request(c.leader, caf::infinite, append_atom::value, std::move(c.batch))
        .then([](append_acks&) {},
              [self, name = *c.stream](caf::error& err) {
                auto r = rejection_from(err).value_or(
                  rejection::of(code::unavailable).detail(self->system().render(err)));
                self->state.setup.stats->count(r);
                self->state.setup.stats->unacked_refusals.fetch_add(1);
                if (self->state.log->admit())
                  self->state.log->write("broker: publish (ack = none) to " + name, r);
              });
    return wire::PublishAck{}.SerializeAsString();
  }
  struct gather {
    std::vector<publish_call> calls;
    std::vector<append_acks> acks;
    size_t left = 0;
    bool answered = false;
  };
  auto g = std::make_shared<gather>();
  g->acks.resize(calls.size());
  g->left = calls.size();
  auto rp = self->make_response_promise<std::string>();
  for (size_t c = 0; c < calls.size(); ++c)
    self->request(calls[c].leader, caf::infinite, append_atom::value, std::move(calls[c].batch))
      .then(
        [self, g, rp, c](append_acks& acks) mutable {
          g->acks[c] = std::move(acks);
          if (--g->left == 0 && !g->answered)
            rp.deliver(build_acks(self, g->calls, g->acks));
        },
        [self, g, rp](caf::error& err) mutable {
          // The first refusal answers; other streams may have stored theirs (a retry with
          // ids is acknowledged as duplicates there).
          --g->left;
          if (g->answered)
            return;
          g->answered = true;
          auto r = rejection_from(err);
          rp.deliver(r ? refuse(self, *r) : err);
        });
  g->calls = std::move(calls);
  return rp;
}

caf::result<std::string> replica_call(broker_self* self, const wire::BrokerCall& call) {
  auto [stream, partition] = replica_call_partition(call);
  auto* e = find_stream(self, stream);
  if (e == nullptr)
    return refuse(self, code::not_found,
                  "no stream " + stream + " on this broker; the follower's metadata is ahead "
                  "of this broker's or the stream was deleted: refresh and retry");
  if (partition >= e->partitions.size())
    return refuse(self, code::not_found,
                  "stream " + stream + " has partitions 0 to "
                    + std::to_string(e->partitions.size() - 1));
  auto& pe = e->partitions[partition];
  if (!pe.leader) {
    if (auto refused = check_leads(self, *e, partition))
      return refuse(self, *refused);
    return refuse(self, code::storage_error,
                  "stream " + stream + " partition " + std::to_string(partition)
                    + " is unavailable here: " + pe.problem);
  }
  return forward_replica_call(self, pe.leader, call);
}

caf::result<stream_tail, std::string> subscribe(broker_self* self, const wire::Subscribe& req,
                                                uint64_t tag, uint64_t credit_batches,
                                                uint64_t credit_bytes) {
  auto& st = self->state;
  auto* e = find_stream(self, req.stream());
  if (e == nullptr)
    return refuse(self, code::not_found,
                  "no stream " + req.stream() + "; ListStreams lists them");
  if (req.partition() >= e->partitions.size())
    return refuse(self, code::not_found,
                  "stream " + req.stream() + " has partitions 0 to "
                    + std::to_string(e->partitions.size() - 1) + "; subscribe to one of them");
  if (auto refused = check_leads(self, *e, req.partition()))
    return refuse(self, *refused);
  auto& pe = e->partitions[req.partition()];
  if (!pe.leader)
    return refuse(self, code::storage_error,
                  "stream " + req.stream() + " partition " + std::to_string(req.partition())
                    + " is unavailable: " + pe.problem);
  subscription_request sub;
  sub.connection = caf::actor_cast<wire_stream_sink>(self->current_sender());
  sub.tag = tag;
  switch (req.start()) {
    case wire::START_LATEST: sub.start = streams::read_position::latest(); break;
    case wire::START_NEW: sub.start = streams::read_position::new_only(); break;
    case wire::START_OFFSET: sub.start = streams::read_position::at_offset(req.start_offset()); break;
    case wire::START_TIME: sub.start = streams::read_position::at_time(req.start_time_ms()); break;
    case wire::START_CURSOR: {
      if (auto ok = cursor_table::check_group(req.group()); !ok)
        return refuse(self, ok.as_rejection());
      auto at = st.cursors->get(cursor_table::key_of(req.group(), req.stream(), req.partition()));
      // A cursor behind what retention kept starts at the earliest kept message.
      if (at && *at >= pe.gauges->start_offset.load())
        sub.start = streams::read_position::at_offset(*at);
      else
        sub.start = streams::read_position::earliest();
      break;
    }
    default: sub.start = streams::read_position::earliest(); break;
  }
  if (req.has_stop_offset())
    sub.stop_offset = req.stop_offset();
  if (req.has_stop_time_ms())
    sub.stop_time_ms = req.stop_time_ms();
  auto& settings = st.setup.settings;
  sub.max_messages = req.max_batch_messages() != 0
                       ? std::min<uint64_t>(req.max_batch_messages(), settings.read_max_messages)
                       : settings.read_max_messages;
  sub.max_bytes = req.max_batch_bytes() != 0
                    ? std::min<uint64_t>(req.max_batch_bytes(), settings.read_max_bytes)
                    : settings.read_max_bytes;
  sub.credit_batches = credit_batches;
  sub.credit_bytes = credit_bytes;
  auto key = std::make_pair(caf::actor_cast<caf::actor_addr>(self->current_sender()), tag);
  if (st.subscriptions.count(key) != 0)
    return refuse(self, code::bad_request, "request " + std::to_string(tag)
                                             + " is already subscribed on this connection");
  st.subscriptions.emplace(key, pe.leader);
  auto rp = self->make_response_promise<stream_tail, std::string>();
  self->request(pe.leader, caf::infinite, subscribe_atom::value, std::move(sub))
    .then(
      [self, rp, key](std::string& summary) mutable {
        self->state.subscriptions.erase(key);
        // The leader sent every batch on its own (a subscription's end is rarely a batch's).
        rp.deliver(stream_tail{}, std::move(summary));
      },
      [self, rp, key](caf::error& err) mutable {
        self->state.subscriptions.erase(key);
        auto r = rejection_from(err);
        rp.deliver(r ? refuse(self, *r) : err);
      });
  return rp;
}

caf::result<std::string> commit_cursor(broker_self* self, const wire::CommitCursor& req) {
  auto& st = self->state;
  if (auto ok = cursor_table::check_group(req.group()); !ok)
    return refuse(self, ok.as_rejection());
  auto* e = find_stream(self, req.stream());
  if (e == nullptr)
    return refuse(self, code::not_found, "no stream " + req.stream() + "; ListStreams lists them");
  if (req.partition() >= e->partitions.size())
    return refuse(self, code::not_found,
                  "stream " + req.stream() + " has " + std::to_string(e->partitions.size())
                    + " partitions; commit a cursor of one of them");
  // Committed through the partition's leader: clustered, into the replicated metadata
  // (README.md "Cursors in the metadata"); alone, into this broker's `__cursors`.
  if (auto refused = check_leads(self, *e, req.partition()))
    return refuse(self, *refused);
  auto key = cursor_table::key_of(req.group(), req.stream(), req.partition());
  // The table mirrors the metadata's on a clustered broker: a commit it would refuse for
  // room costs no Raft entry (the state machine checks again, with this broker's bound).
  if (auto room = st.cursors->check_room(key); !room)
    return refuse(self, room.as_rejection());
  wire::CursorAck ack;
  ack.set_group(req.group());
  ack.set_stream(req.stream());
  ack.set_partition(req.partition());
  ack.set_offset(req.offset());
  ack.set_found(true);
  if (st.clustered()) {
    // At the leader epoch this broker leads by: a commit that applies after another
    // broker took over is refused not_leader with the new leader's address.
    auto& role = *e->partitions[req.partition()].role;
    metadata::commit_cursor cmd{{req.stream(), req.partition(), req.group()}, req.offset(),
                                st.setup.broker_id, role.leader_epoch,
                                st.setup.limits.max_cursors};
    return propose(self, cmd, [answer = ack.SerializeAsString()]() -> std::optional<std::string> {
      return answer;
    });
  }
  auto* internal = find_stream(self, std::string{cursor_stream_name}, true);
  if (internal == nullptr || !internal->partitions[0].leader)
    return refuse(self, code::unavailable, "the broker's cursor stream is unavailable");
  append_batch batch;
  batch.messages.push_back(owned_message{key, {}, std::to_string(req.offset()), {}});
  auto rp = self->make_response_promise<std::string>();
  self->request(internal->partitions[0].leader, caf::infinite, append_atom::value,
                std::move(batch))
    .then(
      [self, rp, key, offset = req.offset(), answer = ack.SerializeAsString()](append_acks&) mutable {
        // In memory only once stored: a fetch never sees a cursor a restart would lose.
        self->state.cursors->set(key, offset);
        rp.deliver(std::move(answer));
      },
      [self, rp](caf::error& err) mutable {
        auto r = rejection_from(err);
        rp.deliver(r ? refuse(self, *r) : err);
      });
  return rp;
}

caf::result<std::string> fetch_cursor(broker_self* self, const wire::FetchCursor& req) {
  if (auto ok = cursor_table::check_group(req.group()); !ok)
    return refuse(self, ok.as_rejection());
  auto* e = find_stream(self, req.stream());
  if (e == nullptr)
    return refuse(self, code::not_found, "no stream " + req.stream() + "; ListStreams lists them");
  if (req.partition() < e->partitions.size())
    if (auto refused = check_leads(self, *e, req.partition()))
      return refuse(self, *refused);
  auto at = self->state.cursors->get(cursor_table::key_of(req.group(), req.stream(),
                                                          req.partition()));
  wire::CursorAck ack;
  ack.set_group(req.group());
  ack.set_stream(req.stream());
  ack.set_partition(req.partition());
  ack.set_offset(at.value_or(0));
  ack.set_found(at.has_value());
  return ack.SerializeAsString();
}

} // namespace levee::broker
