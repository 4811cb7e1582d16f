// `levee load`: offers a target a load and accounts for every send (load/README.md). Open
// loop by default: sends at intended times fixed in advance (load/schedule.hpp), latency
// from those times, so a target's stall shows in the percentiles; `--closed N` keeps N
// requests in flight instead (its latencies hide coordinated omission, and say so).
//
// Targets: any exposed actor, request/response over levee::client (`--target actor
// NAME`), stream publish to a broker over levee::stream_client (`--target publish
// SUBJECT`), a server's query path (`--target query 'TEXT'` or a weighted
// `--query-file`, a streamed request), or a consumer's read of a stream (`--target consume
// STREAM`, from the earliest or latest message or a group's cursor), or a limited actor in
// this process (`--target inprocess [KIND]`, apps/load_inprocess.hpp: the limits alone).
// One thread per connection, each with its own recorder, merged at the end.
//
// Before and after the run it reads the target's counters (its "stats" target) and, when
// the target runs on this machine, its process's CPU and memory; then checks that the
// target accounted for every request sent (load/target_side.hpp).
//
// `--ramp` runs one phase per step and finds the knee (load/ramp.hpp); `--html` writes the
// report as a page (load/html_report.hpp); `--scenario FILE` and `--check FILE` read the
// options from an INI file (load/scenario.hpp); `levee load compare A B` compares two
// --json results (load/compare.hpp).
//
// Exit codes: 0 done and every threshold held, 99 a threshold failed (k6's code), 2 a
// usage error or a target that cannot be reached, 3 an invalid run (the tool fell behind
// its own schedule past the bound, so the target was not offered the rate asked for), 4
// the target's counts do not match the tool's (a request lost or counted twice).

#include <atomic>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <boost/program_options.hpp>

#include "apps/cli_common.hpp"
#include "apps/cli_env.hpp"
#include "apps/load_inprocess.hpp"
#include "apps/subcommands.hpp"
#include "levee/client.hpp"
#include "levee/streams.hpp"
#include "limits/printable.hpp"
#include "load/compare.hpp"
#include "load/consumers.hpp"
#include "load/html_report.hpp"
#include "load/keys.hpp"
#include "load/live_latency.hpp"
#include "load/query_mix.hpp"
#include "load/ramp.hpp"
#include "load/results.hpp"
#include "load/scenario.hpp"
#include "load/schedule.hpp"
#include "load/target_side.hpp"
#include "load/thresholds.hpp"
#include "net/satellite.pb.h"
#include "net/streams.pb.h"
#include "query/query.hpp"

namespace levee::apps {

namespace {

namespace po = boost::program_options;
using namespace std::chrono;
using clock_type = steady_clock;

constexpr const char* sub = "load";

std::atomic<bool> interrupted{false};
extern "C" void on_interrupt(int) { interrupted.store(true); }

/// One answer: to which send, and how it ended.
struct completion {
  uint64_t id = 0;
  std::optional<rejection> refused;  // empty: accepted
  /// No answer of the target's: the connection it was sent on is gone (the client says so
  /// with a local unavailable naming no limit).
  bool connection_lost = false;
};

/// A local refusal that means the connection is gone, not that a limit refused.
bool means_connection_lost(const rejection& r) {
  return r.code == code::unavailable && r.limit.empty();
}

/// A connection to the target, driven by one thread. send() never waits for an answer;
/// poll() waits up to `wait` for answers and appends them.
class target_driver {
public:
  virtual ~target_driver() = default;
  virtual status connect(milliseconds bound) = 0;
  /// A local refusal (nothing sent), or nullopt with `id` set. `intended`: the send's
  /// intended time from the run's origin (a stamped publish carries it).
  virtual std::optional<rejection> send(uint64_t& id, nanoseconds intended) = 0;
  /// Appends answers; a lost connection is reported by setting `lost`.
  virtual void poll(std::vector<completion>& out, milliseconds wait, bool& lost) = 0;
  /// Adds the requests the driver made besides its sends (answered by the target too).
  virtual void side_requests(load::wire_accounting&) {}
};

/// Waits up to `wait` for answers on `c` (`buffer` is reused): the end or refusal of a send
/// completes it, `on_ok` seeing each successful end first; a streamed answer's batches are
/// only read; a local answer (nothing came, or the connection is gone) completes nothing
/// and sets `lost` when the connection is gone.
template <class OnOk>
void read_ends(client& c, std::vector<reply>& buffer, std::vector<completion>& out,
               milliseconds wait, bool& lost, OnOk on_ok) {
  buffer.clear();
  c.receive_ready(buffer, wait);
  for (auto& r : buffer) {
    if (r.request_id == 0) {
      lost = lost || (r.rejected && means_connection_lost(*r.rejected));
      continue;
    }
    if (r.batch)
      continue;
    if (r.ok())
      on_ok(r);
    out.push_back({r.request_id, r.ok() ? std::nullopt : r.rejected});
  }
}

/// Request/response to an exposed actor over levee::client; `streamed` for a target that
/// answers in batches and an end (a server's "query"): a send is answered by its end or
/// its refusal, and its batches are only read.
class actor_driver final : public target_driver {
public:
  actor_driver(client_options co, std::string target, std::string payload, bool streamed)
      : client_(std::move(co)), target_(std::move(target)), payload_(std::move(payload)),
        streamed_(streamed) {}
  /// A weighted mix of payloads (a --query-file's queries): each send picks one with
  /// `chooser`, and `sent` counts the sends of each.
  actor_driver(client_options co, std::string target, std::vector<std::string> payloads,
               load::query_chooser chooser, bool streamed)
      : client_(std::move(co)), target_(std::move(target)), streamed_(streamed),
        payloads_(std::move(payloads)), chooser_(std::move(chooser)), sent_(payloads_.size()) {}
  status connect(milliseconds bound) override { return client_.connect_with_backoff(bound); }
  std::optional<rejection> send(uint64_t& id, nanoseconds) override {
    const std::string* payload = &payload_;
    size_t k = 0;
    if (chooser_) {
      k = chooser_->next_index();
      payload = &payloads_[k];
    }
    auto refused = streamed_ ? client_.send_stream_request(target_, *payload, id)
                             : client_.send_request(target_, *payload, id);
    if (chooser_)
      sent_[k]++;  // a send, whether the client or the target refuses it
    return refused;
  }
  /// Sends of each payload of the mix, refused ones included (empty without one).
  const std::vector<uint64_t>& sent_by_payload() const noexcept { return sent_; }
  void poll(std::vector<completion>& out, milliseconds wait, bool& lost) override {
    read_ends(client_, replies_, out, wait, lost, [](const reply&) {});
  }
  /// One request and its answer, before the run: is there such a target?
  reply probe(milliseconds timeout) { return client_.request(target_, payload_, timeout); }

private:
  client client_;
  std::string target_;
  std::string payload_;
  bool streamed_;
  std::vector<std::string> payloads_;
  std::optional<load::query_chooser> chooser_;
  std::vector<uint64_t> sent_;
  std::vector<reply> replies_;
};

class publish_driver final : public target_driver {
public:
  /// `run_id` not 0: each body starts with the run's stamp (load/consumers.hpp), for the
  /// run's consumers.
  publish_driver(client_options co, std::string subject, size_t message_bytes, ack_mode ack,
                 milliseconds timeout, std::optional<load::key_chooser> keys, uint64_t run_id)
      : client_(std::move(co)), subject_(std::move(subject)), body_(message_bytes, 'x'),
        keys_(std::move(keys)), run_id_(run_id) {
    opts_.ack = ack;
    opts_.timeout = timeout;
    // One publish is one frame and one latency sample; batching would merge sends.
    client_.set_batch_bytes(0);
    client_.set_max_unacked(uint64_t{1} << 20);
    client_.on_acks([this](uint64_t id, result<std::vector<message_ack>> acks) {
      if (acks)
        done_.push_back({id, std::nullopt});
      else
        done_.push_back({id, acks.error().as_rejection()});
    });
  }
  status connect(milliseconds bound) override { return client_.connect_with_backoff(bound); }
  std::optional<rejection> send(uint64_t& id, nanoseconds intended) override {
    if (run_id_ != 0)
      load::stamp_body(body_, run_id_, intended);
    auto st = client_.publish_async(subject_, {out_message{keys_ ? keys_->next_key() : "", "", body_, {}}},
                                    opts_, &id);
    if (!st)
      return st.as_rejection();
    return std::nullopt;
  }
  void poll(std::vector<completion>& out, milliseconds wait, bool& lost) override {
    if (client_.unacked() == 0 && done_.empty())
      std::this_thread::sleep_for(wait);  // nothing can arrive: no publish is open
    else
      (void)client_.flush(wait);  // deadline_exceeded is the normal end of a wait here
    for (auto& c : done_) {
      // stream_client fails every open publish of a lost connection this way.
      c.connection_lost = c.refused && means_connection_lost(*c.refused);
      lost = lost || c.connection_lost;
      out.push_back(std::move(c));
    }
    done_.clear();
  }

private:
  stream_client client_;
  std::string subject_;
  std::string body_;
  publish_options opts_;
  std::optional<load::key_chooser> keys_;  // none: messages carry no key
  uint64_t run_id_;
  std::vector<completion> done_;
};


/// Where the consumers of one run read, shared by its connections: with --group, the
/// group's cursor when the run began (`first`), the next offset a read takes (`next`:
/// each read takes the following --read-messages offsets, so concurrent reads never
/// overlap) and the furthest end committed (`committed`; commits only move it forward).
struct consume_position {
  std::atomic<bool> known{false};
  uint64_t first = 0;
  std::atomic<uint64_t> next{0};
  std::atomic<uint64_t> committed{0};
  std::atomic<uint64_t> commits{0};
};

/// A consumer's read of partition 0, answered by its end: from the stream's first message
/// (earliest), from its end when the read is sent (latest: the read waits for messages
/// published after it), or, in a group, from the group's cursor, committing the read's end
/// when it is done (as `levee sub --group` does). The broker's stop is an absolute offset,
/// so a latest read first asks where the partition ends (a StreamInfoRequest on a second
/// connection), and a group's reads take their offsets from `consume_position`. Those
/// side requests are answered by the target too: they are counted as the tool's own.
class consume_driver final : public target_driver {
public:
  consume_driver(client_options co, std::string stream, uint64_t messages, bool latest,
                 std::string group, std::shared_ptr<consume_position> position,
                 milliseconds timeout)
      : client_(co), side_(co), stream_(std::move(stream)), messages_(messages), latest_(latest),
        group_(std::move(group)), position_(std::move(position)), timeout_(timeout) {}

  status connect(milliseconds bound) override {
    auto st = client_.connect_with_backoff(bound);
    if (!st || (!latest_ && group_.empty()))
      return st;
    if (st = side_.connect_with_backoff(bound); !st)
      return st;
    if (!group_.empty() && !position_->known.load()) {
      // Before the run (the target's counters are read after the connections): not counted.
      wire::BrokerCall call;
      auto& f = *call.mutable_fetch_cursor();
      f.set_group(group_);
      f.set_stream(stream_);
      f.set_partition(0);
      auto r = side_.request("broker", call.SerializeAsString(), timeout_);
      if (!r.ok())
        return status::error(r.rejected->code, "the cursor of group " + group_ + " could not be read: " + r.rejected->detail);
      wire::CursorAck ack;
      if (!ack.ParseFromString(*r.payload))
        return status::error(code::bad_request, "the broker's CursorAck does not parse (a broker of another version?)");
      position_->first = ack.found() ? ack.offset() : 0;
      position_->next = position_->first;
      position_->committed = position_->first;
      position_->known = true;
    }
    return st;
  }

  std::optional<rejection> send(uint64_t& id, nanoseconds) override {
    wire::BrokerCall call;
    auto& sub = *call.mutable_subscribe();
    sub.set_stream(stream_);
    sub.set_partition(0);
    uint64_t from = 0;
    if (latest_) {
      auto end = partition_end();
      if (!end)
        return end.error().as_rejection();
      from = *end;
    } else if (!group_.empty()) {
      from = position_->next.fetch_add(messages_);
    }
    if (latest_ || !group_.empty()) {
      sub.set_start(wire::START_OFFSET);
      sub.set_start_offset(from);
    } else {
      sub.set_start(wire::START_EARLIEST);
    }
    sub.set_stop_offset(from + messages_ - 1);
    return client_.send_stream_request("broker", call.SerializeAsString(), id);
  }

  void poll(std::vector<completion>& out, milliseconds wait, bool& lost) override {
    read_ends(client_, replies_, out, wait, lost, [this](const reply& r) {
      if (!group_.empty())
        commit(*r.payload);
    });
  }

  void side_requests(load::wire_accounting& w) override {
    w.own_requests += own_.own_requests;
    for (auto& [c, n] : own_.own_refused)
      w.own_refused[c] += n;
  }

private:
  /// Where partition 0 ends now (its high water): a latest read starts there.
  result<uint64_t> partition_end() {
    wire::BrokerCall call;
    call.mutable_stream_info()->set_name(stream_);
    auto r = side_.request("broker", call.SerializeAsString(), timeout_);
    if (!count_side(r))
      return status::refused(*r.rejected, "where stream " + stream_ + " ends could not be read: " + r.rejected->detail);
    wire::StreamInfo info;
    if (!info.ParseFromString(*r.payload) || info.partitions().empty())
      return status::error(code::bad_request, "the broker's StreamInfo of " + stream_ + " does not parse or has no partition");
    return info.partitions(0).high_water();
  }

  /// A read ended: the group continues after it (a commit never moves the cursor back).
  void commit(const std::string& summary) {
    wire::SubscribeEnd end;
    if (!end.ParseFromString(summary))
      return;
    auto next = end.next_offset();
    auto at = position_->committed.load();
    while (next > at && !position_->committed.compare_exchange_weak(at, next)) {
    }
    if (next <= at)
      return;
    wire::BrokerCall call;
    auto& c = *call.mutable_commit_cursor();
    c.set_group(group_);
    c.set_stream(stream_);
    c.set_partition(0);
    c.set_offset(next);
    auto r = side_.request("broker", call.SerializeAsString(), timeout_);
    if (count_side(r))
      position_->commits++;
    else
      std::fprintf(stderr, "levee load: group %s: the cursor was not committed at %llu: %s\n",
                   printable(group_).c_str(), static_cast<unsigned long long>(next),
                   printable(r.rejected->detail).c_str());
  }

  /// Counts a side request's answer as the tool's own; true when it was accepted.
  bool count_side(const reply& r) {
    if (r.ok()) {
      own_.own_requests++;
      return true;
    }
    if (!(r.rejected->code == code::unavailable && r.rejected->limit.empty()))
      own_.own_refused[std::string{to_string(r.rejected->code)}]++;
    return false;
  }

  client client_;
  client side_;
  std::string stream_;
  uint64_t messages_;
  bool latest_;
  std::string group_;
  std::shared_ptr<consume_position> position_;
  milliseconds timeout_;
  std::vector<reply> replies_;
  load::wire_accounting own_;
};

/// A limited actor in this process (apps/load_inprocess.hpp), through a relay actor of
/// the connection's own: nothing to connect, never lost; a refusal is the actor's
/// rejection as its gate made it.
class inprocess_driver final : public target_driver {
public:
  inprocess_driver(std::unique_ptr<inprocess_target::connection> c, std::string payload)
      : c_(std::move(c)), payload_(std::move(payload)) {}
  status connect(milliseconds) override { return {}; }
  std::optional<rejection> send(uint64_t& id, nanoseconds) override {
    id = c_->send(payload_);
    return std::nullopt;
  }
  void poll(std::vector<completion>& out, milliseconds wait, bool&) override {
    answers_.clear();
    c_->poll(answers_, wait);
    for (auto& a : answers_)
      out.push_back({a.id, std::move(a.refused)});
  }

private:
  std::unique_ptr<inprocess_target::connection> c_;
  std::string payload_;
  std::vector<inprocess_answer> answers_;
};

struct plan {
  bool closed_loop = false;
  std::optional<load::open_loop_schedule> schedule;
  uint64_t in_flight_per_connection = 1;
  uint64_t count = 0;                // closed loop with --count: sends in all (0: by time)
  nanoseconds send_until{0};         // closed loop by time: warm-up + duration
  nanoseconds warmup{0};
  nanoseconds max_lag{0};
  milliseconds timeout{5000};
  bool honour_retry_after = false;
  uint32_t connections = 1;
  clock_type::time_point origin;
  /// The schedule's start from `origin`: a ramp's step starts when the one before it ended,
  /// so that intended times (and the per-second series) run on from one step to the next.
  nanoseconds offset{0};
};

/// One consumer of `--consumers`, beside the run's publishers: a connection of its own and
/// a subscription to each partition of the stream from where it ended before the run (so
/// it reads what the run publishes). With one partition and a known number of sends, the
/// subscription stops at the run's last message, so the broker answers it with its end;
/// otherwise it is given up (unsubscribed) when the consumer is done. A consumer is done
/// when the publishers are and it has read as many of the run's messages as they had
/// acknowledged (with a stop, 200 ms later, for the end to come), or a timeout after they
/// were done.
class stream_consumer {
public:
  stream_consumer(const client_options& co, std::string stream)
      : client_(co), stream_(std::move(stream)) {}

  /// Before the run (the stream info request is not in the target's delta; each
  /// subscription is, answered when it ends). `sends`: the run's sends in all, 0 unknown.
  status start(milliseconds timeout, uint64_t sends, load::wire_accounting& wire) {
    if (auto st = client_.connect_with_backoff(seconds(3)); !st)
      return st;
    auto info = client_.get_stream_info(stream_, timeout);
    if (!info)
      return status::error(info.error().code(), "stream " + stream_ + ": " + info.error().message()
                                                  + "; create it, or give --consume-stream NAME");
    partitions_ = static_cast<uint32_t>(info->partitions.size());
    stops_ = partitions_ == 1 && sends > 0;
    for (auto& part : info->partitions) {
      subscribe_options o;
      o.stream = stream_;
      o.partition = part.partition;
      o.start = start_at::at_offset(part.high_water);
      if (stops_)
        o.stop_offset = part.high_water + sends - 1;
      auto id = client_.subscribe(o);
      if (!id)
        return id.error();
      subscriptions_.push_back(*id);
      figures_.subscriptions++;
      wire.sent++;
    }
    return {};
  }

  uint32_t partitions() const noexcept { return partitions_; }

  /// Reads until done (see the class); `published`: the publishers' acknowledged sends so
  /// far (warm-up included), `done`: set when they have all finished.
  void run(const plan& p, uint64_t run_id, const std::atomic<uint64_t>& published,
           const std::atomic<bool>& done, load::wire_accounting& wire) {
    std::vector<bool> open(subscriptions_.size(), true);
    auto wait = milliseconds(subscriptions_.size() == 1 ? 50 : 10);
    std::optional<clock_type::time_point> give_up_at;
    auto open_count = subscriptions_.size();
    while (open_count > 0 && !interrupted.load()) {
      for (size_t i = 0; i < subscriptions_.size(); ++i) {
        if (!open[i])
          continue;
        auto ev = client_.next(subscriptions_[i], wait);
        if (ev.batch) {
          auto now = clock_type::now() - p.origin;
          for (auto& m : ev.batch->messages)
            figures_.message(m.body, run_id, p.warmup, now);
        } else if (ev.end || (ev.error && ev.error->code != code::deadline_exceeded)) {
          open[i] = false;
          --open_count;
          if (ev.end) {
            figures_.ended++;
            wire.accepted++;
          } else if (means_connection_lost(*ev.error)) {
            wire.unanswered++;
            note("partition " + std::to_string(i) + ": the connection was lost");
          } else {
            auto c = std::string{to_string(ev.error->code)};
            figures_.refused[c]++;
            wire.refused_with(c);
            note("partition " + std::to_string(i) + ": " + ev.error->to_string());
          }
        }
      }
      if (done.load()) {
        auto now = clock_type::now();
        if (!give_up_at)
          give_up_at = now + p.timeout;
        bool read_all = figures_.read + figures_.read_warmup >= published.load();
        // With stops, the subscriptions' ends are the answers to wait for: they come right
        // after the last message, unless a publish was refused (then the stop is never
        // reached), so once all that was acknowledged is read they get a short grace.
        if (stops_ && read_all && !grace_given_) {
          give_up_at = std::min(*give_up_at, now + milliseconds(200));
          grace_given_ = true;
        }
        if (now >= *give_up_at || (!stops_ && read_all))
          break;
      }
    }
    for (size_t i = 0; i < subscriptions_.size(); ++i)
      if (open[i]) {
        (void)client_.unsubscribe(subscriptions_[i]);
        figures_.given_up++;
        wire.unanswered++;  // the broker may have counted it answered or not
      }
  }

  const load::consumer_figures& figures() const noexcept { return figures_; }

private:
  void note(std::string what) {
    if (figures_.errors.size() < 8)
      figures_.errors.push_back(std::move(what));
  }

  stream_client client_;
  std::string stream_;
  uint32_t partitions_ = 0;
  bool stops_ = false;
  bool grace_given_ = false;
  std::vector<uint64_t> subscriptions_;
  load::consumer_figures figures_;
};

/// What the progress line reads while workers run: counts, and each connection's latencies
/// of the last second (load/live_latency.hpp: lock-free, 960 bytes a connection).
struct live_counts {
  explicit live_counts(uint32_t connections) : latency(connections) {}
  std::atomic<uint64_t> sent{0}, accepted{0}, rejected{0}, errors{0};
  std::vector<load::live_latency> latency;
};

/// A send waiting for its answer.
struct pending_send {
  nanoseconds intended, sent;
};

/// One connection's thread: sends on the plan, files each answer into `rec`.
class worker {
public:
  worker(const plan& p, uint32_t index, target_driver& d, load::recorder& rec,
         load::wire_accounting& wire, live_counts& live, std::atomic<uint64_t>& closed_sends)
      : p_(p), index_(index), d_(d), rec_(rec), wire_(wire), live_(live),
        closed_sends_(closed_sends) {}

  void run() {
    if (p_.closed_loop)
      run_closed();
    else
      run_open();
    // Whatever is still open after the last send had its timeout to answer.
    auto give_up = now() + p_.timeout;
    while (!pending_.empty() && now() < give_up && !interrupted.load())
      receive(std::min(duration_cast<milliseconds>(give_up - now()), milliseconds(100)));
    for (auto& [id, s] : pending_)
      rec_.timed_out(s.intended, s.sent);
    wire_.unanswered += pending_.size();
    pending_.clear();
    d_.side_requests(wire_);
  }

private:
  nanoseconds now() const { return clock_type::now() - p_.origin; }

  void send(nanoseconds intended) {
    if (p_.honour_retry_after && intended < hold_until_) {
      rec_.held_back(intended);
      return;
    }
    if (lost_) {
      // Reconnect at most every 200 ms; meanwhile sends fail as errors.
      if (now() - last_reconnect_ >= milliseconds(200)) {
        last_reconnect_ = now();
        lost_ = !d_.connect(milliseconds(0)).ok();
      }
      if (lost_) {
        rec_.failed(intended, now(), "unavailable: not connected (the target went away)");
        live_.errors++;
        return;
      }
    }
    auto sent = now();
    uint64_t id = 0;
    live_.sent++;
    if (auto local = d_.send(id, intended)) {
      wire_.refused_locally++;
      file(intended, sent, sent, *local, means_connection_lost(*local));
      return;
    }
    wire_.sent++;
    pending_[id] = {intended, sent};
  }

  /// Files a refusal: rejected by code and limit, or an error when the connection is gone.
  void file(nanoseconds intended, nanoseconds sent, nanoseconds done, const rejection& r,
            bool connection_lost) {
    if (connection_lost) {
      rec_.failed(intended, sent, "unavailable: " + printable(r.detail));
      live_.errors++;
      lost_ = true;
      return;
    }
    rec_.rejected(intended, sent, done, to_string(r.code), r.limit);
    live_.rejected++;
    // retry_after_ms comes from the target: held no longer than a send's timeout.
    if (r.retry_after_ms > 0)
      hold_until_ = std::max(
        hold_until_, done + std::min<nanoseconds>(milliseconds(r.retry_after_ms), p_.timeout));
  }

  /// Waits up to `wait` for answers and files them; expires sends past the timeout.
  void receive(milliseconds wait) {
    done_.clear();
    bool lost = false;
    d_.poll(done_, wait, lost);
    auto t = now();
    for (auto& c : done_) {
      auto it = pending_.find(c.id);
      if (it == pending_.end())
        continue;  // answered after its timeout: already counted
      if (c.refused) {
        // A connection that went away is no answer from the target (it may have taken
        // the request or not); any other refusal is the target's Reject.
        if (c.connection_lost)
          wire_.unanswered++;
        else
          wire_.refused_with(to_string(c.refused->code));
        file(it->second.intended, it->second.sent, t, *c.refused, c.connection_lost);
      } else {
        wire_.accepted++;
        rec_.accepted(it->second.intended, it->second.sent, t);
        live_.accepted++;
        live_.latency[index_].record(static_cast<uint64_t>(std::max<int64_t>(0, (t - it->second.intended).count())));
      }
      pending_.erase(it);
      if (p_.closed_loop)
        ++answered_;
    }
    if (lost) {
      // Nothing in flight will be answered on a connection that is gone.
      for (auto& [id, s] : pending_) {
        rec_.failed(s.intended, s.sent, "unavailable: the connection was lost");
        live_.errors++;
        if (p_.closed_loop)
          ++answered_;
      }
      wire_.unanswered += pending_.size();
      pending_.clear();
      lost_ = true;
    }
    // Ids grow with send time, so the oldest sends come first.
    while (!pending_.empty() && t - pending_.begin()->second.sent > p_.timeout) {
      rec_.timed_out(pending_.begin()->second.intended, pending_.begin()->second.sent);
      wire_.unanswered++;
      pending_.erase(pending_.begin());
      if (p_.closed_loop)
        ++answered_;
    }
  }

  void run_open() {
    auto& s = *p_.schedule;
    auto intended = [&](uint64_t n) { return p_.offset + s.intended(n); };
    for (uint64_t n = index_; n < s.total() && !interrupted.load();) {
      auto t = now();
      // Every send that is due goes now, however late: the rate is never lowered.
      while (n < s.total() && intended(n) <= t) {
        send(intended(n));
        n += p_.connections;
        t = now();
      }
      if (n >= s.total())
        break;
      auto wait = intended(n) - now();
      if (pending_.empty()) {
        // At most 100 ms at a time, so that Ctrl-C is seen within that however slow the rate.
        if (wait > nanoseconds(0))
          std::this_thread::sleep_for(std::min<nanoseconds>(wait, milliseconds(100)));
      } else {
        receive(std::clamp(duration_cast<milliseconds>(wait), milliseconds(0), milliseconds(100)));
      }
    }
  }

  void run_closed() {
    // The first send of each slot, then one more per answer, until the bound.
    auto more = [&] {
      if (interrupted.load())
        return false;
      if (p_.count > 0)  // --count counts the sends after the warm-up, in all connections
        return now() < p_.warmup || closed_sends_.fetch_add(1) < p_.count;
      return now() < p_.send_until;
    };
    uint64_t started = 0;
    while (started < p_.in_flight_per_connection && more()) {
      send(now());
      ++started;
    }
    while (!pending_.empty() || (lost_ && more())) {
      answered_ = 0;
      receive(milliseconds(100));
      for (uint64_t i = 0; i < answered_ && more(); ++i) {
        if (p_.honour_retry_after && now() < hold_until_)
          std::this_thread::sleep_for(hold_until_ - now());
        send(now());
      }
      if (lost_ && pending_.empty() && more())
        send(now());
    }
  }

  const plan& p_;
  uint32_t index_;
  target_driver& d_;
  load::recorder& rec_;
  load::wire_accounting& wire_;
  live_counts& live_;
  std::atomic<uint64_t>& closed_sends_;
  std::map<uint64_t, pending_send> pending_;
  std::vector<completion> done_;
  nanoseconds hold_until_{0};
  nanoseconds last_reconnect_{0};
  bool lost_ = false;
  uint64_t answered_ = 0;
};

/// "100:5,200:5" (rate per second : seconds, ...) as steps.
std::optional<std::vector<load::rate_step>> parse_steps(const std::string& text, std::string& why) {
  std::vector<load::rate_step> steps;
  for (auto& part : split_list(text)) {
    auto colon = part.find(':');
    char* rate_end = nullptr;
    char* end = nullptr;
    double rate = colon == std::string::npos ? 0 : std::strtod(part.c_str(), &rate_end);
    double seconds = colon == std::string::npos ? 0 : std::strtod(part.c_str() + colon + 1, &end);
    // Both halves whole and finite ("nan" passes every comparison below, "100abc" stops
    // strtod early).
    if (colon == std::string::npos || rate_end != part.c_str() + colon || *end != '\0'
        || !std::isfinite(rate) || !std::isfinite(seconds) || rate <= 0 || rate > 100000
        || seconds <= 0 || seconds > 86400) {
      why = "--steps " + part + ": each step is RATE:SECONDS with a rate above 0 (per second) and "
            "seconds above 0, e.g. --steps 1000:10,2000:10";
      return std::nullopt;
    }
    steps.push_back({rate, duration_cast<nanoseconds>(duration<double>(seconds))});
  }
  if (steps.empty()) {
    why = "--steps is empty; give RATE:SECONDS,..., e.g. --steps 1000:10,2000:10";
    return std::nullopt;
  }
  return steps;
}

/// The live line, once a second: "  3.0s / 10.0s (7.0s left)  step 2/5 at 200/s  sent 612
/// (201/s)  p99 1.2ms  accepted ...". The p99 is of the sends accepted since the line
/// before, from their intended send times ("p99 -" when none was). `phase` is empty
/// outside a ramp; `sent_before` is the sent count of the line before (for the rate of
/// the last second), updated here.
void progress_line(live_counts& live, double elapsed, double total, const std::string& phase,
                   uint64_t& sent_before) {
  auto sent = live.sent.load();
  load::live_latency::counts last_second{};
  for (auto& l : live.latency)
    l.take(last_second);
  char p99[32] = "-";
  if (load::live_latency::total(last_second) > 0)
    std::snprintf(p99, sizeof p99, "%.1fms",
                  static_cast<double>(load::live_latency::percentile(last_second, 99)) / 1e6);
  std::fprintf(stderr,
               "\r  %6.1fs / %.1fs (%.1fs left)  %ssent %llu (%llu/s)  p99 %s  accepted %llu  "
               "rejected %llu  errors %llu   ",
               elapsed, total, std::max(0.0, total - elapsed), phase.c_str(),
               static_cast<unsigned long long>(sent),
               static_cast<unsigned long long>(sent - std::min(sent, sent_before)), p99,
               static_cast<unsigned long long>(live.accepted.load()),
               static_cast<unsigned long long>(live.rejected.load()),
               static_cast<unsigned long long>(live.errors.load()));
  std::fflush(stderr);
  sent_before = sent;
}

/// A QueryRequest of `text` with the send's timeout as its deadline (the server enforces
/// and names it).
std::string query_payload(const std::string& text, uint64_t timeout_ms) {
  wire::QueryRequest req;
  req.set_text(text);
  req.set_deadline_ms(static_cast<uint32_t>(std::min<uint64_t>(timeout_ms, UINT32_MAX)));
  return req.SerializeAsString();
}

/// A StatsReply's counters by name (load/target_side.hpp): the listener's, the query
/// router's, the node budget's refusals, each actor kind's and the broker's. Gauges and
/// high waters are left out: only what grows has a meaningful difference.
load::target_counters counters_of(const wire::StatsReply& r) {
  load::target_counters out;
  auto by_code = [&](const std::string& prefix, const auto& map) {
    for (auto& [name, n] : map)
      out[prefix + name] = n;
  };
  auto& l = r.listener();
  out["listener.connections_accepted"] = l.connections_accepted();
  out["listener.connections_refused"] = l.connections_refused();
  out["listener.frames_in"] = l.frames_in();
  out["listener.frames_out"] = l.frames_out();
  out["listener.requests_answered"] = l.requests_answered();
  out["listener.requests_abandoned"] = l.requests_abandoned();
  out["listener.credit_frames_in"] = l.credit_frames_in();
  out["listener.input_paused_for_slow_reader"] = l.input_paused_for_slow_reader();
  by_code(load::rejects_sent_prefix, l.rejects_sent());
  by_code("listener.connections_closed.", l.connections_closed());
  auto& q = r.queries();
  out["queries.started"] = q.started();
  out["queries.completed"] = q.completed();
  out["queries.failed"] = q.failed();
  out["queries.cancelled"] = q.cancelled();
  out["queries.refused"] = q.refused();
  out["queries.rows_returned"] = q.rows_returned();
  out["node_budget.refusals"] = r.node_budget().refusals();
  for (auto& k : r.kinds()) {
    auto prefix = "kinds." + k.kind() + ".";
    out[prefix + "accepted"] = k.accepted();
    out[prefix + "processed"] = k.processed();
    out[prefix + "dropped_on_exit"] = k.dropped_on_exit();
    out[prefix + "notices_sent"] = k.notices_sent();
    by_code(prefix + "rejected.", k.rejected());
  }
  if (r.has_broker()) {
    auto& b = r.broker();
    out["broker.publishes"] = b.publishes();
    out["broker.messages_stored"] = b.messages_stored();
    out["broker.acks"] = b.acks();
    out["broker.duplicates"] = b.duplicates();
    out["broker.subscriptions"] = b.subscriptions();
    out["broker.batches_sent"] = b.batches_sent();
    out["broker.unacked_refusals"] = b.unacked_refusals();
    out["broker.subscriptions_paced"] = b.subscriptions_paced();
    by_code("broker.rejections.", b.rejections());
    by_code("broker.rejections_by_limit.", b.rejections_by_limit());
  }
  return out;
}

/// The target's counters, asked of its "stats" target on `c` (a connection of its own, so
/// the load's connections keep their in-flight bounds). A refusal is tried again after its
/// retry_after_ms, three tries in all; each refused try is counted in `refused` by code
/// (the target counts it too). nullopt with `why` when it cannot be read.
std::optional<load::target_counters> read_counters(client& c, milliseconds timeout,
                                                   std::map<std::string, uint64_t, std::less<>>& refused_tries,
                                                   std::string& why) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto r = c.request("stats", wire::StatsRequest{}.SerializeAsString(), timeout);
    if (r.ok()) {
      wire::StatsReply reply;
      if (!reply.ParseFromString(*r.payload)) {
        why = "its stats answer does not parse (a Levee node of another version?)";
        return std::nullopt;
      }
      return counters_of(reply);
    }
    auto& refused = *r.rejected;
    why = "its stats request was refused: " + std::string{to_string(refused.code)} + " "
          + printable(refused.detail);
    if (refused.code == code::unavailable && refused.limit.empty())
      return std::nullopt;  // no answer of the target's: the connection is gone
    refused_tries[std::string{to_string(refused.code)}]++;
    if (refused.retry_after_ms == 0)
      return std::nullopt;
    std::this_thread::sleep_for(std::min<milliseconds>(milliseconds(refused.retry_after_ms), timeout));
  }
  return std::nullopt;
}

/// The target's process: found from its listening port when it runs here.
load::process_figures find_target_process(const base::host_port& address) {
  load::process_figures out;
  if (!load::is_local_host(address.host)) {
    out.status = "not local (" + printable(address.host) + " is not an address of this machine)";
    return out;
  }
  std::string why;
  auto pid = load::find_listening_pid(address.port, why);
  if (!pid) {
    out.status = "not found: " + why;
    return out;
  }
  out.pid = *pid;
  out.status = "pid " + std::to_string(*pid);
  return out;
}

} // namespace

/// How far load_main goes: all the way, or only through parsing the options (a scenario
/// line's value), or through checking them together (a whole scenario).
enum class stop_at { run, options, validation };

/// `levee load ARGS`. With `error`, a usage error is stored there instead of printed (the
/// caller says where the arguments came from).
int load_main(const std::vector<std::string>& args, std::string* error, stop_at stop) {
  auto usage = [&](const std::string& what) {
    if (!error)
      return usage_error(sub, what);
    *error = what;
    return 2;
  };
  po::options_description opts{
    "levee load --target actor NAME | publish SUBJECT | query 'TEXT' | consume STREAM | "
    "inprocess [KIND] [options]: offer a target a "
    "load (open loop at --rate by default) and account for every send: accepted, rejected by "
    "code and limit, errors, timeouts, latency percentiles from the intended send times.\n"
    "Exit codes: 0 ok, 99 a --threshold failed, 2 usage error or unreachable target, 3 invalid "
    "run (the tool fell behind its schedule), 4 the target's counts differ from the tool's.\n"
    "levee load compare A.json B.json [--json]: two runs' --json results side by side"};
  std::vector<std::string> target;
  std::string server, token, ack = "leader", retry_after = "ignore", steps_text, ramp_text, html_path;
  std::string key_distribution_text = "uniform";
  uint64_t keys = 0;
  double rate = 0, duration_s = 10, warmup_s = 0, max_lag_ms = 50, max_late_percent = 1;
  load::knee_bounds knee;
  uint64_t closed = 0, count = 0, payload_bytes = 0, message_bytes = 100, timeout_ms = 5000;
  uint64_t read_messages = 100, service_us = 50;
  std::string config_path, consume_stream;
  std::vector<std::string> overrides;
  uint32_t consumers = 0;
  std::string from = "earliest", group, query_file;
  uint32_t connections = 1;
  bool json = false, progress = false, quiet = false, other_traffic = false;
  std::vector<std::string> threshold_texts;
  opts.add_options()
    ("help,h", "this text")
    ("target", po::value(&target)->multitoken(),
     "actor NAME (request/response to an exposed target), publish SUBJECT (stream publish), "
     "query 'TEXT' (a server's query path to its satellites; answered when its last batch came) "
     "or consume STREAM (a subscription reading --read-messages of partition 0: --from, --group) "
     "or inprocess [KIND] (a limited actor of KIND, default service, in this process: the "
     "limits alone, no network; --config, --set, --service-us)")
    ("consumers", whole_number("consumers", &consumers, uint32_t{0}, 0, 64, "consumers"),
     "publish: also run this many consumers in this process, each reading the stream from "
     "where it ended when the run began, and report what they read and how long after its "
     "intended publish time (end to end) and how many acknowledged publishes each had not "
     "read at the end (default 0)")
    ("consume-stream", po::value(&consume_stream),
     "publish with --consumers: the stream they read (default: the subject up to its first "
     "dot, t for t.x)")
    ("config", po::value(&config_path),
     "inprocess: an INI file whose [limits], [limits.default] and [limits.KIND] give the "
     "actor's limits (e.g. configs/demo.ini; without it, the defaults)")
    ("set", po::value(&overrides)->composing(),
     "inprocess: override a limit, repeatable, e.g. --set limits.service.mailbox_capacity=64")
    ("service-us", whole_number("service-us", &service_us, uint64_t{50}, 1, 1'000'000, "us"),
     "inprocess: CPU time the actor spends on each request (default 50, about 20,000/s)")
    ("server", po::value(&server),
     "host:port of the node (default 127.0.0.1:7400 for actor, 127.0.0.1:7600 for publish)")
    ("token", po::value(&token), "the node's connection token (net.token), if it has one")
    ("rate", decimal_number("rate", &rate, 1000, 0, 100000, "per second"),
     "open loop: sends per second, in all connections together (the default mode: 1000)")
    ("steps", po::value(&steps_text), "open loop, stepped: RATE:SECONDS,... e.g. 1000:10,2000:10")
    ("ramp", po::value(&ramp_text),
     "open loop, find the knee: START:STEP:MAX[:SECONDS] (per second; 5 s a step), e.g. "
     "100:100:1000; stops at the first step past the --knee-* bounds")
    ("knee-p99-ms", decimal_number("knee-p99-ms", &knee.max_p99_ms, 100, -1, 3'600'000, "ms"),
     "ramp: a step whose p99 latency (from intended send times) is above this is past the knee "
     "(default 100; 0: not checked)")
    ("knee-refused-percent",
     decimal_number("knee-refused-percent", &knee.max_not_accepted_percent, 1, -1, 100, "%"),
     "ramp: a step with more of its sends not accepted (refused, errors, timeouts, held back) "
     "is past the knee (default 1; 0: not checked)")
    ("knee-goodput-gain",
     decimal_number("knee-goodput-gain", &knee.min_goodput_gain, 0.5, -1, 1, ""),
     "ramp: a step whose goodput rose by less than this share of the rate added is past the "
     "knee (default 0.5; 0: not checked)")
    ("closed", whole_number("closed", &closed, uint64_t{0}, 0, 1'000'000, "requests"),
     "closed loop: keep this many requests in flight in all (latency then hides coordinated omission)")
    ("duration", decimal_number("duration", &duration_s, 10, 0, 86400, "s"),
     "seconds measured, after the warm-up (default 10)")
    ("count", whole_number("count", &count, uint64_t{0}, 0, UINT64_MAX, "sends"),
     "measured sends instead of --duration")
    ("warmup", decimal_number("warmup", &warmup_s, 0, -1, 3600, "s"),
     "seconds sent first and left out of the results (default 0)")
    ("connections", whole_number("connections", &connections, uint32_t{1}, 1, 1024, "connections"),
     "connections, each with its own thread (default 1)")
    ("payload-bytes", whole_number("payload-bytes", &payload_bytes, uint64_t{0}, 0, 64u << 20, "bytes"),
     "actor: bytes of each request's payload (default 0)")
    ("message-bytes", whole_number("message-bytes", &message_bytes, uint64_t{100}, 0, 64u << 20, "bytes"),
     "publish: bytes of each message's body (default 100)")
    ("ack", po::value(&ack)->default_value("leader"),
     "publish: none (no answer), leader (stored by the leader) or all (every in-sync replica "
     "has it; a stream below its min ISR refuses with insufficient_replicas)")
    ("keys", whole_number("keys", &keys, uint64_t{0}, 0, load::key_chooser::max_keys, "keys"),
     "publish: messages carry one of this many keys (k0, k1, ...), which pick the partition "
     "by hash (default 0: no key)")
    ("key-distribution", po::value(&key_distribution_text)->default_value("uniform"),
     "publish with --keys: uniform, or zipf (key i drawn in proportion to 1/(i+1): a few hot "
     "keys and a long tail)")
    ("read-messages", whole_number("read-messages", &read_messages, uint64_t{100}, 1, 1'000'000, "messages"),
     "consume: messages each send reads from partition 0 (default 100; the stream must hold "
     "them, or the read waits for them until its timeout)")
    ("query-file", po::value(&query_file),
     "query (with --target query alone): a file of weighted queries, one a line, WEIGHT then a "
     "tab or spaces then the query text (e.g. 3<TAB>count by level); blank lines and # "
     "comments skipped; each send picks one by weight")
    ("from", po::value(&from)->default_value("earliest"),
     "consume: earliest (each read from the stream's first message) or latest (each read from "
     "the stream's end when it is sent: it waits for messages published after it, so a "
     "publisher must be running, e.g. a second levee load --target publish)")
    ("group", po::value(&group),
     "consume: a consumer group: each read starts where the group's cursor is (the first "
     "message when it has none; concurrent reads take the following offsets) and commits its "
     "end, as levee sub --group does")
    ("retry-after", po::value(&retry_after)->default_value("ignore"),
     "honour (hold sends back until a refusal's retry_after_ms has passed: counted as held back) "
     "or ignore (send on schedule, as an abusive client would)")
    ("timeout-ms", whole_number("timeout-ms", &timeout_ms, uint64_t{5000}, 1, 3'600'000, "ms"),
     "a send not answered within this is a timeout (default 5000)")
    ("max-lag-ms", decimal_number("max-lag-ms", &max_lag_ms, 50, 0, 60'000, "ms"),
     "a send made more than this after its intended time is late (default 50)")
    ("max-late-percent", decimal_number("max-late-percent", &max_late_percent, 1, -1, 100, "%"),
     "the run is invalid (exit 3) when more than this share of sends was late (default 1)")
    ("threshold", po::value(&threshold_texts)->composing(),
     "a pass/fail condition, repeatable: latency.p99<2ms, goodput>=9000/s, "
     "rejected{code=rate_limited}.rate>0 (exit 99 when one fails)")
    ("other-traffic", po::bool_switch(&other_traffic),
     "the target serves other clients too: its counts need only be at least the tool's (without "
     "it, any difference is exit 4)")
    ("json", po::bool_switch(&json), "print the results as one line of JSON")
    ("html", po::value(&html_path),
     "also write the report to this file as one self-contained HTML page with SVG plots")
    ("progress", po::bool_switch(&progress),
     "print the progress line (sent, the last second's p99, accepted, rejected, errors) on "
     "stderr each second even when it is not a terminal (CI logs)")
    ("quiet", po::bool_switch(&quiet), "no progress line, even on a terminal")
    ("scenario", po::value<std::string>(),
     "read the options from this INI file (configs/load-*.ini); options on the command line "
     "win over the file's (thresholds add up)")
    ("check", po::value<std::string>(),
     "check a scenario file and say what is wrong (line, key, what to write); runs nothing");
  po::variables_map vm;
  if (auto parsed = parse_args(sub, opts, args, nullptr, &vm, error); parsed.exit_code)
    return *parsed.exit_code;
  if (stop == stop_at::options)
    return 0;
  // Given on the command line (most options have a default, so vm.count() is always 1).
  auto given = [&](const char* name) { return vm.count(name) > 0 && !vm[name].defaulted(); };

  // -- what to drive, and how ----------------------------------------------------------
  bool mix = given("query-file");
  if (mix && target.size() == 1 && target[0] == "query")
    target.push_back(query_file);  // the run's target, as the report shows it
  else if (mix && !(target.size() == 2 && target[0] == "query"))
    return usage("--query-file is for --target query: give --target query --query-file PATH");
  else if (mix)
    return usage("--target query '" + target[1] + "' and --query-file give the queries twice: "
                 "give one (--target query --query-file PATH)");
  bool inprocess = !target.empty() && target[0] == "inprocess";
  if (inprocess && target.size() == 1)
    target.push_back("service");  // the kind `levee demo` floods
  if (target.size() != 2
      || (target[0] != "actor" && target[0] != "publish" && target[0] != "query" && target[0] != "consume"
          && !inprocess))
    return usage("give --target actor NAME (an exposed actor, e.g. stats), --target publish "
                 "SUBJECT (a broker's stream subject), --target query 'TEXT' (a server's "
                 "query path, the text quoted as one argument; or --target query --query-file "
                 "PATH for a weighted mix), --target consume STREAM (a "
                 "broker's stream, read by consumers) or --target inprocess [KIND] (a limited "
                 "actor in this process)");
  bool consume = target[0] == "consume";
  bool publish = target[0] == "publish";
  if ((given("read-messages") || given("from") || given("group")) && !consume)
    return usage("--read-messages, --from and --group are for --target consume STREAM");
  if (from != "earliest" && from != "latest")
    return usage("--from " + from + ": must be earliest or latest");
  if (given("group") && from == "latest")
    return usage("--group reads from the group's cursor; --from latest reads from the stream's "
                 "end: give one");
  if (given("group") && (group.empty() || group.size() > 255))
    return usage("--group '" + group + "': give a name of 1 to 255 bytes, e.g. --group load");
  if (consume && (given("payload-bytes") || given("message-bytes") || given("ack")))
    return usage("--target consume reads: --payload-bytes, --message-bytes and --ack are for "
                 "other targets; give --read-messages N");
  if ((given("config") || given("set") || given("service-us")) && !inprocess)
    return usage("--config, --set and --service-us are for --target inprocess [KIND]");
  std::optional<limits_config> local_limits;
  if (inprocess) {
    if (given("server") || given("token"))
      return usage("--target inprocess runs the actor in this process: leave out --server and --token");
    auto& kind = target[1];
    if (kind.empty() || kind.size() > 64
        || kind.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_-") != std::string::npos)
      return usage("--target inprocess " + kind + ": an actor kind is 1-64 characters of a-z, "
                   "0-9, _ and -, e.g. service");
    auto l = inprocess_limits(config_path, overrides);
    if (!l)
      return usage((config_path.empty() ? std::string{} : "--config " + config_path + ": ")
                   + l.error().message());
    local_limits = std::move(*l);
  }
  bool query_path = target[0] == "query";
  std::vector<load::weighted_query> queries;
  if (mix) {
    // Every query is parsed before the run: a bad one would be a bad_request each send.
    std::ifstream in{query_file, std::ios::binary};
    if (!in)
      return usage("--query-file " + query_file + ": cannot read it (" + std::strerror(errno)
                   + "); give a file of lines WEIGHT QUERY, e.g. configs/load-queries.txt");
    std::ostringstream content;
    content << in.rdbuf();
    auto parsed = load::parse_query_mix(content.str(), query_file, [](const std::string& text) {
      auto q = query::parse(text);
      return q ? std::nullopt : std::optional<std::string>{q.error().message()};
    });
    if (!parsed)
      return usage("--query-file " + parsed.error().message());
    queries = std::move(*parsed);
  }
  if (query_path) {
    // Every send would be the same bad_request: say so before the run, as the server would.
    if (auto q = query::parse(target[1]); !mix && !q)
      return usage("--target query '" + target[1] + "': " + q.error().message());
    if (given("payload-bytes"))
      return usage("--payload-bytes is for --target actor; a query's size is its text");
  }
  if (given("rate") + given("steps") + given("ramp") + (closed > 0 ? 1 : 0) > 1)
    return usage("--rate, --steps, --ramp and --closed exclude each other: give one");
  if (given("count") && (given("duration") || given("steps") || given("ramp")))
    return usage("--count and --duration (or --steps, --ramp) exclude each other: give one");
  if (given("ramp") && given("duration"))
    return usage("--ramp gives each step's seconds (START:STEP:MAX:SECONDS); leave out --duration");
  for (auto* k : {"knee-p99-ms", "knee-refused-percent", "knee-goodput-gain"})
    if (given(k) && !given("ramp"))
      return usage(std::string{"--"} + k + " is for --ramp; add --ramp START:STEP:MAX");
  if (given("count") && count == 0)
    return usage("--count 0: give at least 1 send");
  if (ack != "none" && ack != "leader" && ack != "all")
    return usage("--ack " + ack + ": must be none, leader or all");
  auto key_distribution = load::parse_key_distribution(key_distribution_text);
  if (!key_distribution)
    return usage("--key-distribution " + key_distribution_text + ": must be uniform or zipf");
  if ((given("keys") || given("key-distribution")) && !publish)
    return usage("--keys and --key-distribution are for --target publish SUBJECT");
  if (given("key-distribution") && keys == 0)
    return usage("--key-distribution needs --keys N (N of at least 1)");
  if (retry_after != "honour" && retry_after != "ignore")
    return usage("--retry-after " + retry_after + ": must be honour or ignore");
  if (!publish && given("message-bytes"))
    return usage("--message-bytes is for --target publish; use --payload-bytes");
  if (publish && given("payload-bytes"))
    return usage("--payload-bytes is for --target actor; use --message-bytes");
  if (quiet && progress)
    return usage("--quiet and --progress exclude each other: give one");
  if ((given("consumers") || given("consume-stream")) && !publish)
    return usage("--consumers and --consume-stream are for --target publish SUBJECT");
  if (given("consume-stream") && consumers == 0)
    return usage("--consume-stream needs --consumers N (N of at least 1)");
  if (consumers > 0) {
    if (closed > 0 || given("ramp"))
      return usage("--consumers run beside an open-loop run (--rate or --steps, with --duration "
                   "or --count); leave out --closed and --ramp");
    if (message_bytes < load::stamp_bytes)
      return usage("--message-bytes " + std::to_string(message_bytes) + ": with --consumers each "
                   "message carries a stamp of " + std::to_string(load::stamp_bytes)
                   + " bytes (the run and its intended time); give --message-bytes "
                   + std::to_string(load::stamp_bytes) + " or more");
    if (consume_stream.empty())
      consume_stream = target[1].substr(0, target[1].find('.'));
  }
  std::string steps_shown;  // the steps as the report shows them (the warm-up's included)
  std::optional<load::ramp_result> ramp;
  std::vector<load::threshold> thresholds;
  for (auto& text : threshold_texts) {
    auto t = load::parse_threshold(text);
    if (!t)
      return usage(t.error().message());
    thresholds.push_back(*t);
  }
  if (!html_path.empty() && stop == stop_at::run && !std::ofstream{html_path, std::ios::app})
    return usage("--html " + html_path + ": cannot write there (" + std::strerror(errno)
                              + "); give a path in a directory you may write");
  base::host_port address;
  if (inprocess) {
    server = "in process";
  } else {
    if (server.empty())
      server = publish || consume ? default_broker_address() : default_server();  // LEVEE_BROKER/SERVER
    if (std::string why; !base::parse_host_port("--server", server, address, why))
      return usage(why);
  }

  plan p;
  p.closed_loop = closed > 0;
  p.connections = connections;
  p.warmup = duration_cast<nanoseconds>(duration<double>(warmup_s));
  p.max_lag = duration_cast<nanoseconds>(duration<double>(max_lag_ms / 1e3));
  p.timeout = milliseconds(timeout_ms);
  p.honour_retry_after = retry_after == "honour";
  if (p.closed_loop) {
    if (closed < connections)
      return usage("--closed " + std::to_string(closed) + " is below --connections "
                                + std::to_string(connections) + ": each connection keeps at least one in flight");
    p.in_flight_per_connection = closed / connections;
    p.count = count;
    p.send_until = p.warmup + duration_cast<nanoseconds>(duration<double>(duration_s));
  } else if (given("ramp")) {
    auto spec = load::parse_ramp(ramp_text);
    if (!spec)
      return usage(spec.error().message());
    ramp.emplace();
    ramp->spec = *spec;
    ramp->bounds = knee;
    rate = spec->start;
    char text[128];
    std::snprintf(text, sizeof text, "ramp %g/s to %g/s by %g/s, %g s a step", spec->start,
                  spec->max, spec->step, spec->step_seconds);
    steps_shown = text;
  } else if (given("steps")) {
    std::string why;
    auto steps = parse_steps(steps_text, why);
    if (!steps)
      return usage(why);
    if (p.warmup > nanoseconds(0))
      steps->insert(steps->begin(), load::rate_step{steps->front().rate_per_second, p.warmup});
    rate = steps->front().rate_per_second;
    for (auto& step : *steps) {
      char text[64];
      std::snprintf(text, sizeof text, "%s%g/s for %g s", steps_shown.empty() ? "" : ", ",
                    step.rate_per_second, duration<double>(step.duration).count());
      steps_shown += text;
    }
    p.schedule.emplace(std::move(*steps));
  } else {
    if (count > 0) {
      if (static_cast<double>(count) / rate + warmup_s > 86400)
        return usage("--count " + std::to_string(count) + " at --rate " + std::to_string(rate)
                     + " takes more than a day; lower the count or raise the rate");
      uint64_t warm = static_cast<uint64_t>(rate * warmup_s);
      p.schedule = load::open_loop_schedule::of_count(rate, warm + count);
    } else {
      p.schedule.emplace(std::vector<load::rate_step>{
        {rate, p.warmup + duration_cast<nanoseconds>(duration<double>(duration_s))}});
    }
  }

  if (stop == stop_at::validation)
    return 0;

  // -- connect every connection first: an unreachable target is exit 2 -----------------
  client_options co;
  co.host = address.host;
  co.port = address.port;
  co.token = token;
  co.node_id = "levee-load";
  // Each of the run's messages carries it when consumers read them: another run's (or
  // another producer's) messages are then told apart.
  uint64_t run_id = 0;
  if (consumers > 0) {
    std::random_device entropy;
    run_id = (uint64_t{entropy()} << 32 | entropy()) | 1;
  }
  // Declared before the drivers, so that it outlives their relays.
  std::unique_ptr<inprocess_target> local_target;
  if (inprocess)
    local_target = std::make_unique<inprocess_target>(target[1], std::move(*local_limits),
                                                      microseconds(service_us), milliseconds(timeout_ms));
  std::vector<std::unique_ptr<target_driver>> drivers;
  auto position = std::make_shared<consume_position>();
  for (uint32_t i = 0; i < connections; ++i) {
    std::unique_ptr<target_driver> d;
    if (inprocess)
      d = std::make_unique<inprocess_driver>(local_target->connect(), std::string(payload_bytes, 'x'));
    else if (publish)
      d = std::make_unique<publish_driver>(
        co, target[1], message_bytes,
        ack == "none" ? ack_mode::none : ack == "all" ? ack_mode::all : ack_mode::leader,
        milliseconds(timeout_ms),
        keys == 0 ? std::nullopt
                  : std::optional<load::key_chooser>{std::in_place, keys, *key_distribution, 1 + i},
        run_id);
    else if (consume)
      d = std::make_unique<consume_driver>(co, target[1], read_messages, from == "latest", group,
                                           position, milliseconds(timeout_ms));
    else if (query_path && mix) {
      std::vector<std::string> payloads;
      for (auto& q : queries)
        payloads.push_back(query_payload(q.text, timeout_ms));
      d = std::make_unique<actor_driver>(co, "query", std::move(payloads),
                                         load::query_chooser{queries, 1 + i}, true);
    } else if (query_path)
      d = std::make_unique<actor_driver>(co, "query", query_payload(target[1], timeout_ms), true);
    else
      d = std::make_unique<actor_driver>(co, target[1], std::string(payload_bytes, 'x'), false);
    if (auto st = d->connect(seconds(3)); !st) {
      std::fprintf(stderr,
                   "levee load: cannot reach %s: %s; is a node with roles = %s running there "
                   "(levee node --config configs/%s.ini), or give --server HOST:PORT\n",
                   printable(server).c_str(), printable(st.message()).c_str(),
                   publish || consume ? "broker" : "server", publish || consume ? "broker" : "server");
      return 2;
    }
    drivers.push_back(std::move(d));
  }
  if (target[0] == "actor") {
    // A name no actor has would make every send a not_found: say so before the run.
    auto r = static_cast<actor_driver&>(*drivers.front()).probe(p.timeout);
    if (r.rejected && r.rejected->code == code::not_found && r.rejected->limit.empty()) {
      std::fprintf(stderr, "levee load: %s has no target '%s' (%s); give the name of an exposed "
                           "actor (a server exposes query, stats, satellites)\n",
                   printable(server).c_str(), printable(target[1]).c_str(),
                   printable(r.rejected->detail).c_str());
      return 2;
    }
  }

  // -- consumers beside the publishers: subscribed before the run --------------------------
  std::vector<std::unique_ptr<stream_consumer>> consumer_list;
  std::vector<load::wire_accounting> consumer_wire(consumers);
  for (uint32_t i = 0; i < consumers; ++i) {
    consumer_list.push_back(std::make_unique<stream_consumer>(co, consume_stream));
    if (auto st = consumer_list.back()->start(p.timeout, p.schedule->total(), consumer_wire[i]); !st) {
      std::fprintf(stderr, "levee load: consumer %u on %s: %s\n", i + 1, printable(server).c_str(),
                   printable(st.message()).c_str());
      return 2;
    }
  }

  // -- the target's side before: its counters, its process ------------------------------
  load::target_side side;
  side.other_traffic = other_traffic;
  client stats_connection{co};
  std::optional<load::target_counters> before;
  if (inprocess) {
    // The tool's own process: its CPU and memory include the tool's.
    side.process.pid = static_cast<int>(::getpid());
    side.process.status = "in process (pid " + std::to_string(side.process.pid) + ", the tool's own)";
    before = local_target->counters();
  } else {
    side.process = find_target_process(address);
    if (auto st = stats_connection.connect_with_backoff(seconds(3)); !st) {
      side.stats_status = "not read: " + printable(st.message());
    } else {
      // Refusals of this read came before the first figures were taken: not in the delta.
      std::map<std::string, uint64_t, std::less<>> before_the_figures;
      before = read_counters(stats_connection, p.timeout, before_the_figures, side.stats_status);
      // Closed until the run ends: left idle through a long run, the target would close it
      // at its net.idle_timeout_ms (a Reject the tool did not send a request for, and no
      // counters after the run: bench/RESULTS.md, a 2-minute ramp lost them so).
      stats_connection.close();
    }
  }
  if (side.process.pid != 0)
    side.process.before = load::sample_process(side.process.pid);

  // -- run: one phase, or one per step of a ramp -------------------------------------------
  interrupted.store(false);
  auto old_int = std::signal(SIGINT, on_interrupt);
  std::vector<load::wire_accounting> wire(connections);
  live_counts live{connections};
  std::atomic<uint64_t> closed_sends{0};
  bool tty = progress || (::isatty(STDERR_FILENO) == 1 && !json && !quiet);
  double planned = p.closed_loop ? duration<double>(p.send_until).count()
                   : ramp        ? warmup_s + ramp->spec.step_seconds
                                               * static_cast<double>(ramp->spec.rates().size())
                                 : duration<double>(p.schedule->span()).count();
  auto next_progress = clock_type::now() + seconds(1);
  uint64_t sent_at_last_line = 0;
  p.origin = clock_type::now();
  // Runs the plan on every connection, a thread each, to its end; the counts merged.
  auto run_phase = [&](const std::string& phase) {
    std::vector<load::recorder> recorders(connections, load::recorder{p.warmup, p.max_lag});
    std::vector<std::thread> threads;
    std::atomic<uint32_t> running{connections};
    for (uint32_t i = 0; i < connections; ++i)
      threads.emplace_back([&, i] {
        worker{p, i, *drivers[i], recorders[i], wire[i], live, closed_sends}.run();
        running--;
      });
    while (running.load() > 0) {
      // The progress line once a second; otherwise only wait for the threads.
      std::this_thread::sleep_for(milliseconds(50));
      if (tty && clock_type::now() >= next_progress) {
        progress_line(live, duration<double>(clock_type::now() - p.origin).count(), planned, phase,
                      sent_at_last_line);
        next_progress += seconds(1);
      }
    }
    for (auto& t : threads)
      t.join();
    load::recorder merged{p.warmup, p.max_lag};
    for (auto& r : recorders)
      merged.merge(r);
    return merged;
  };
  load::run_result result{{}, load::recorder{p.warmup, p.max_lag}};
  auto& s = result.settings;
  s.target_kind = target[0];
  s.target = target[1];
  s.server = server;
  s.closed_loop = p.closed_loop;
  s.rate_per_second = p.closed_loop ? 0 : rate;
  s.steps = steps_shown;
  s.in_flight = p.closed_loop ? p.in_flight_per_connection * connections : 0;
  s.connections = connections;
  s.payload_bytes = publish ? message_bytes : payload_bytes;
  s.ack = publish ? ack : "";
  s.retry_after = retry_after;
  s.warmup_seconds = warmup_s;
  s.max_lag_ms = max_lag_ms;
  s.max_late_percent = max_late_percent;
  if (!ramp) {
    // Consumers read while the publishers send, and on until they have read what was
    // acknowledged (or a timeout after the publishers were done).
    std::atomic<bool> publishing_done{false};
    std::vector<std::thread> consumer_threads;
    for (uint32_t i = 0; i < consumers; ++i)
      consumer_threads.emplace_back([&, i] {
        consumer_list[i]->run(p, run_id, live.accepted, publishing_done, consumer_wire[i]);
      });
    result.counts = run_phase("");
    publishing_done = true;
    for (auto& t : consumer_threads)
      t.join();
    auto sending_ended = clock_type::now();
    if (p.closed_loop || interrupted.load())
      // Closed loop (and a run cut short) lasted as long as it took, timeouts of the last
      // sends aside: close enough for rates, and never longer than the sends took.
      s.measured_seconds = std::max(0.0, duration<double>(sending_ended - p.origin).count() - warmup_s);
    else
      s.measured_seconds = std::max(0.0, duration<double>(p.schedule->span()).count() - warmup_s);
  } else {
    // Each step is a phase of its own: it ends when its sends are answered (or timed out),
    // so its figures are its own, and the next starts then. The warm-up goes first, at
    // the first step's rate.
    auto rates = ramp->spec.rates();
    auto step_span = duration_cast<nanoseconds>(duration<double>(ramp->spec.step_seconds));
    for (size_t i = 0; i < rates.size() && !interrupted.load(); ++i) {
      std::vector<load::rate_step> steps;
      if (i == 0 && p.warmup > nanoseconds(0))
        steps.push_back({rates[0], p.warmup});
      steps.push_back({rates[i], step_span});
      p.schedule.emplace(std::move(steps));
      p.offset = i == 0 ? nanoseconds(0) : clock_type::now() - p.origin;
      char phase[64];
      std::snprintf(phase, sizeof phase, "step %zu/%zu at %g/s  ", i + 1, rates.size(), rates[i]);
      load::run_result step{s, run_phase(phase)};
      step.settings.rate_per_second = rates[i];
      step.settings.steps.clear();
      step.settings.measured_seconds = ramp->spec.step_seconds;
      if (interrupted.load())  // cut short: as long as it lasted
        step.settings.measured_seconds = std::clamp(
          duration<double>(clock_type::now() - p.origin - p.offset).count() - (i == 0 ? warmup_s : 0),
          0.0, ramp->spec.step_seconds);
      result.counts.merge(step.counts);
      s.measured_seconds += step.settings.measured_seconds;
      if (!ramp->add(rates[i], step))
        break;  // past the knee: the steps above it would only add refusals
    }
  }
  std::signal(SIGINT, old_int);
  if (tty)
    std::fputs("\n", stderr);

  // -- the target's side after, and its accounting ---------------------------------------
  if (side.process.pid != 0)
    side.process.after = load::sample_process(side.process.pid);
  if (side.process.pid != 0 && !side.process.known())
    side.process.status += " (gone before the run ended)";
  for (auto& w : wire)
    side.tool.merge(w);
  for (auto& w : consumer_wire)
    side.tool.merge(w);
  std::optional<load::consumers_report> consumed;
  if (consumers > 0) {
    consumed.emplace();
    consumed->stream = consume_stream;
    consumed->partitions = consumer_list.front()->partitions();
    consumed->accepted = result.counts.accepted_count();
    for (auto& c : consumer_list)
      consumed->each.push_back(c->figures());
  }
  if (before) {
    // The target counted the first stats request by now (answered after its figures were
    // taken), and the refused tries of this one (before its figures are taken).
    std::string why;
    std::optional<load::target_counters> after;
    if (inprocess) {
      local_target->wait_idle(seconds(5));
      after = local_target->counters();
    } else {
      side.tool.own_requests += 1;
      if (auto st = stats_connection.connect_with_backoff(seconds(3)); !st)
        why = "its stats connection could not be opened again: " + printable(st.message());
      else
        after = read_counters(stats_connection, p.timeout, side.tool.own_refused, why);
    }
    if (after) {
      std::vector<std::string> went_back;
      side.before = std::move(*before);
      side.after = std::move(*after);
      side.delta = load::counter_deltas(side.before, side.after, &went_back);
      if (went_back.empty()) {
        side.stats_status = "read";
        side.accounting = load::check_accounting(
          side.tool, side.delta, other_traffic,
          inprocess ? local_target->accounting_names() : load::accounting_names{});
      } else {
        side.stats_status = "not compared: " + went_back.front()
                            + " went back during the run (the target restarted?)";
      }
    } else {
      side.stats_status = "not read after the run: " + why;
    }
  }

  // Sends of the mix's query k, in all connections.
  auto sent_of = [&](size_t k) {
    uint64_t n = 0;
    for (auto& d : drivers)
      if (auto* a = dynamic_cast<actor_driver*>(d.get()); a && k < a->sent_by_payload().size())
        n += a->sent_by_payload()[k];
    return n;
  };
  std::vector<load::threshold_outcome> outcomes;
  for (auto& t : thresholds)
    outcomes.push_back(load::evaluate(t, result));
  if (json) {
    auto out = result.json();
    out.pop_back();
    out += ",\"thresholds\":[";
    for (size_t i = 0; i < outcomes.size(); ++i)
      out += std::string{i ? "," : ""} + "{\"threshold\":" + load::json_string(thresholds[i].text)
             + ",\"held\":" + (outcomes[i].held ? "true" : "false")
             + ",\"observed\":" + std::to_string(outcomes[i].observed) + "}";
    out += "],\"target_side\":" + side.json();
    if (mix) {
      out += ",\"queries\":[";
      for (size_t k = 0; k < queries.size(); ++k)
        out += std::string{k ? "," : ""} + "{\"line\":" + std::to_string(queries[k].line)
               + ",\"weight\":" + std::to_string(queries[k].weight) + ",\"text\":"
               + load::json_string(queries[k].text) + ",\"sent\":" + std::to_string(sent_of(k)) + "}";
      out += "]";
    }
    if (consume)
      out += ",\"consume\":{\"from\":" + load::json_string(group.empty() ? from : "cursor")
             + ",\"read_messages\":" + std::to_string(read_messages) + ",\"group\":"
             + (group.empty() ? std::string{"null"} : load::json_string(group))
             + (group.empty() ? std::string{}
                              : ",\"first_offset\":" + std::to_string(position->first)
                                  + ",\"committed_offset\":" + std::to_string(position->committed.load())
                                  + ",\"commits\":" + std::to_string(position->commits.load()))
             + "}";
    if (consumed)
      out += ",\"consumers\":" + consumed->json();
    if (inprocess) {
      auto& l = local_target->limits();
      auto n = [](uint64_t v) { return std::to_string(v); };
      out += ",\"inprocess\":{\"kind\":" + load::json_string(target[1]) + ",\"service_us\":"
             + n(service_us) + ",\"config\":"
             + (config_path.empty() ? std::string{"null"} : load::json_string(config_path))
             + ",\"limits\":{\"mailbox_capacity\":" + n(l.mailbox_capacity)
             + ",\"mailbox_capacity_bytes\":" + n(l.mailbox_capacity_bytes)
             + ",\"max_message_bytes\":" + n(l.max_message_bytes)
             + ",\"rate_msgs_per_sec\":" + n(l.rate_msgs_per_sec)
             + ",\"rate_burst_msgs\":" + n(l.rate_burst_msgs)
             + ",\"rate_bytes_per_sec\":" + n(l.rate_bytes_per_sec)
             + ",\"max_inflight_per_requester\":" + n(l.max_inflight_per_requester)
             + ",\"memory_budget_bytes\":" + n(local_target->memory_budget_bytes()) + "}}";
    }
    if (ramp)
      out += ",\"ramp\":" + ramp->json();
    out += "}";
    std::printf("%s\n", out.c_str());
  } else {
    std::fputs(result.text().c_str(), stdout);
    if (ramp)
      std::fputs(ramp->text().c_str(), stdout);
    std::fputs(side.text().c_str(), stdout);
    if (consumed)
      std::fputs(consumed->text().c_str(), stdout);
    if (mix) {
      std::puts("\nqueries (weight, sends, text):");
      for (size_t k = 0; k < queries.size(); ++k)
        std::printf("  %7llu %9llu  %s\n", static_cast<unsigned long long>(queries[k].weight),
                    static_cast<unsigned long long>(sent_of(k)), printable(queries[k].text).c_str());
    }
    if (inprocess) {
      auto& l = local_target->limits();
      std::printf("\nin-process actor of kind %s (%llu us a request): mailbox %llu msgs / %llu "
                  "bytes, max message %llu bytes, rate %llu msgs/s (burst %llu; 0: unlimited), "
                  "%llu in flight a connection, node budget %llu bytes\n",
                  target[1].c_str(), static_cast<unsigned long long>(service_us),
                  static_cast<unsigned long long>(l.mailbox_capacity),
                  static_cast<unsigned long long>(l.mailbox_capacity_bytes),
                  static_cast<unsigned long long>(l.max_message_bytes),
                  static_cast<unsigned long long>(l.rate_msgs_per_sec),
                  static_cast<unsigned long long>(l.rate_burst_msgs),
                  static_cast<unsigned long long>(l.max_inflight_per_requester),
                  static_cast<unsigned long long>(local_target->memory_budget_bytes()));
    }
    if (consume && !group.empty())
      std::printf("\ngroup %s: read from offset %llu, continues at %llu (%llu commits)\n",
                  printable(group).c_str(), static_cast<unsigned long long>(position->first),
                  static_cast<unsigned long long>(position->committed.load()),
                  static_cast<unsigned long long>(position->commits.load()));
    if (!outcomes.empty())
      std::puts("\nthresholds:");
    for (auto& o : outcomes)
      std::printf("  %s\n", o.line.c_str());
  }
  std::fflush(stdout);
  if (!html_path.empty()) {
    load::report_parts parts;
    parts.result = &result;
    parts.side = &side;
    parts.ramp = ramp ? &*ramp : nullptr;
    parts.consumers = consumed ? &*consumed : nullptr;
    for (auto& o : outcomes)
      parts.threshold_lines.push_back(o.line);
    std::ofstream file{html_path, std::ios::binary | std::ios::trunc};
    file << load::html_report(parts);
    file.close();
    if (!file) {
      std::fprintf(stderr, "levee load: cannot write the report to %s: %s; give --html a path "
                           "in a directory you may write\n",
                   printable(html_path).c_str(), std::strerror(errno));
      return 2;
    }
  }
  if (!result.valid())
    return 3;
  if (!side.accounting.held)
    return 4;
  for (auto& o : outcomes)
    if (!o.held)
      return 99;
  return 0;
}

namespace {

/// The text of the file at `path`, or nullopt with the error printed.
std::optional<std::string> read_text(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  if (!in) {
    std::fprintf(stderr, "levee load compare: cannot read %s: %s; give the files written by "
                         "levee load ... --json > FILE\n",
                 printable(path).c_str(), std::strerror(errno));
    return std::nullopt;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

int run_compare(const std::vector<std::string>& args) {
  std::vector<std::string> files;
  bool json = false;
  for (auto& a : args) {
    if (a == "--json")
      json = true;
    else if (a == "--help" || a == "-h") {
      std::puts("levee load compare A.json B.json [--json]: two `levee load --json` results side "
                "by side: every figure of both, B - A and the change in %, and the settings in "
                "which the runs differ");
      return 0;
    } else if (!a.empty() && a[0] == '-')
      return usage_error("load compare", "unknown option " + a + " (only --json)");
    else
      files.push_back(a);
  }
  if (files.size() != 2)
    return usage_error("load compare", "give two files: levee load compare A.json B.json");
  auto a = read_text(files[0]);
  auto b = a ? read_text(files[1]) : std::nullopt;
  if (!a || !b)
    return 2;
  auto c = load::compare_results(*a, files[0], *b, files[1]);
  if (!c)
    return config_error("load compare", c.error().message());
  std::fputs(json ? (c->json() + "\n").c_str() : c->text().c_str(), stdout);
  return 0;
}

/// The arguments a scenario file stands for, each line's value checked by the option
/// parser; nullopt when the file or a line is wrong (every wrong line in `errors`).
std::optional<std::pair<load::scenario, std::vector<std::string>>>
scenario_arguments(const std::string& path, std::vector<std::string>& errors) {
  auto sc = load::read_scenario(path);
  if (!sc) {
    errors.push_back(sc.error().message());
    return std::nullopt;
  }
  std::vector<std::string> all;
  for (auto& e : sc->entries) {
    auto a = load::arguments_of(e);
    std::string why;
    if (load_main(a, &why, stop_at::options) != 0)
      errors.push_back(load::entry_error(*sc, e, why));
    all.insert(all.end(), a.begin(), a.end());
  }
  if (!errors.empty())
    return std::nullopt;
  return std::make_pair(std::move(*sc), std::move(all));
}

/// An error of the options taken together, at the line of the first key it names.
std::string scenario_error(const load::scenario& sc, const std::string& why) {
  for (auto& e : sc.entries) {
    auto option = load::option_of(e.key);
    for (auto at = why.find(option); at != std::string::npos; at = why.find(option, at + 1)) {
      auto end = at + option.size();
      // "--rate" in "--rate 0: ..." but not in "--rate-x".
      if (end == why.size() || why[end] == ' ' || why[end] == ',' || why[end] == ':' || why[end] == ';')
        return load::entry_error(sc, e, why, false);
    }
  }
  return sc.origin + ": " + why + " (in a scenario, each option is a key under [load]: "
         "target = actor stats)";
}

/// `--NAME VALUE` or `--NAME=VALUE` taken out of `args`; "" when absent.
std::optional<std::string> take_option(std::vector<std::string>& args, const std::string& name,
                                       std::string& error) {
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == name) {
      if (i + 1 >= args.size()) {
        error = name + " needs a file";
        return std::nullopt;
      }
      auto v = args[i + 1];
      args.erase(args.begin() + static_cast<std::ptrdiff_t>(i), args.begin() + static_cast<std::ptrdiff_t>(i) + 2);
      return v;
    }
    if (args[i].rfind(name + "=", 0) == 0) {
      auto v = args[i].substr(name.size() + 1);
      args.erase(args.begin() + static_cast<std::ptrdiff_t>(i));
      return v;
    }
  }
  return std::nullopt;
}

} // namespace

int run_load(const std::vector<std::string>& given_args) {
  if (!given_args.empty() && given_args[0] == "compare")
    return run_compare({given_args.begin() + 1, given_args.end()});
  auto args = given_args;
  std::string error;
  auto check = take_option(args, "--check", error);
  auto scenario_path = error.empty() ? take_option(args, "--scenario", error) : std::nullopt;
  if (!error.empty())
    return usage_error(sub, error);
  if (check) {
    if (!args.empty() || scenario_path)
      return usage_error(sub, "--check FILE takes nothing else: it checks the file alone");
    std::vector<std::string> errors;
    auto sc = scenario_arguments(*check, errors);
    std::string why;
    if (sc && load_main(sc->second, &why, stop_at::validation) != 0)
      errors.push_back(scenario_error(sc->first, why));
    for (auto& e : errors)
      std::fprintf(stderr, "levee load --check: %s\n", printable(e).c_str());
    if (!errors.empty())
      return 2;
    std::string line;
    for (auto& a : sc->second)
      line += " " + a;
    std::printf("%s: a valid scenario: levee load%s\n", printable(*check).c_str(), printable(line).c_str());
    return 0;
  }
  if (scenario_path) {
    std::vector<std::string> errors;
    auto sc = scenario_arguments(*scenario_path, errors);
    for (auto& e : errors)
      std::fprintf(stderr, "levee load: %s\n", printable(e).c_str());
    if (!sc)
      return 2;
    // The command line wins over the file: a key the command line gives is left out of the
    // file's arguments (thresholds add up).
    std::set<std::string> on_command_line;
    for (auto& a : args)
      if (a.rfind("--", 0) == 0)
        on_command_line.insert(a.substr(0, a.find('=')));
    std::vector<std::string> merged;
    for (auto& e : sc->first.entries)
      if (e.key == "threshold" || !on_command_line.count(load::option_of(e.key))) {
        auto a = load::arguments_of(e);
        merged.insert(merged.end(), a.begin(), a.end());
      }
    merged.insert(merged.end(), args.begin(), args.end());
    std::string why;
    if (load_main(merged, &why, stop_at::validation) != 0) {
      std::fprintf(stderr, "levee load: %s\n", printable(scenario_error(sc->first, why)).c_str());
      return 2;
    }
    return load_main(merged, nullptr, stop_at::run);
  }
  return load_main(args, nullptr, stop_at::run);
}

} // namespace levee::apps
