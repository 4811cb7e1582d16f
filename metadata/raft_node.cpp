#include "metadata/raft_node.hpp"

#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "base/codec.hpp"
#include "base/file_lock.hpp"
#include "base/host_port.hpp"

#include <uv.h>
// libraft 0.15's headers declare C functions without extern "C" of their own.
extern "C" {
#include <raft.h>
#include <raft/uv.h>
}

namespace levee::metadata {

namespace {

constexpr std::string_view queue_limit_key = "metadata.max_pending_commands";

// A request from another thread, waiting for the loop.
struct request {
  enum class type { propose, add, remove, transfer };
  type what = type::propose;
  command cmd;
  command_callback done;
  raft_member member;  // add: the new member; remove: its id
  change_callback change_done;
};

// libraft 0.15's uv backend mis-reads its own log after a restart when an entry's length
// is not a multiple of 8 bytes (canonical/raft issues 180, 189, 304: "entries batch N ...
// short read"): every entry goes out framed as [u32 LE length][Entry][zeros to 8 bytes].
constexpr size_t entry_alignment = 8;

std::string frame_entry(const std::string& entry) {
  std::string out;
  base::put_u32_le(out, static_cast<uint32_t>(entry.size()));
  out += entry;
  out.resize((out.size() + entry_alignment - 1) / entry_alignment * entry_alignment, '\0');
  return out;
}

std::optional<std::string_view> unframe_entry(const raft_buffer& buf) {
  if (buf.len < 4)
    return std::nullopt;
  uint32_t n = base::get_u32_le(buf.base);
  if (n > buf.len - 4)
    return std::nullopt;
  return std::string_view{static_cast<const char*>(buf.base) + 4, n};
}

rejection shutting_down() {
  return rejection::of(code::shutting_down)
      .detail("the metadata node is stopping; send the command to another broker")
      ;
}

std::string raft_error(int rv, const char* what) {
  return std::string{what} + ": " + raft_strerror(rv);
}

} // namespace

const char* to_string(member_role r) noexcept {
  switch (r) {
    case member_role::standby: return "standby";
    case member_role::spare: return "spare";
    case member_role::voter: break;
  }
  return "voter";
}

status check_raft_address(const std::string& address, const std::string& name) {
  base::host_port hp;
  std::string bad;
  in_addr ip{};
  if (!base::parse_host_port(name, address, hp, bad)
      || inet_pton(AF_INET, hp.host.c_str(), &ip) != 1)
    return status::error(code::bad_request,
                         name + " '" + address +
                             "' must be an IPv4 literal and a port from 1, like 10.0.0.5:7400 "
                             "(libraft 0.15 takes no host names and no IPv6)");
  return {};
}

status check_direct_io(const std::string& dir) {
  const std::string probe = dir + "/.levee-direct-io-probe";
  int fd = ::open(probe.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_DIRECT, 0600);
  int err = fd < 0 ? errno : 0;
  if (fd >= 0) {
    // Opening is not enough on some file systems: write one aligned block.
    void* block = nullptr;
    if (posix_memalign(&block, 4096, 4096) == 0) {
      std::memset(block, 0, 4096);
      errno = 0;
      if (::write(fd, block, 4096) != 4096)
        err = errno ? errno : EIO;
      std::free(block);
    }
    ::close(fd);
    ::unlink(probe.c_str());
  }
  if (err == EINVAL)
    return status::error(code::storage_error,
                         "metadata data dir '" + dir +
                             "' does not support O_DIRECT, which libraft needs (tmpfs before Linux 6.6 does "
                             "not); "
                             "put it on ext4 or xfs");
  if (err != 0)
    return status::error(code::storage_error, "metadata data dir '" + dir + "': cannot write a 4 KiB test file there (" +
                                                  std::strerror(err) +
                                                  "); check its permissions and free space");
  return {};
}

struct raft_node::impl {
  /// `<data_dir>/LOCK`, held for the node's life: two brokers given one metadata
  /// directory would both write libraft's files. First member, so it is let go last.
  base::file_lock lock;
  raft_node_options opt;
  callbacks cbs;

  // libuv and libraft objects: touched on the loop thread only (and by start() before the
  // thread exists).
  uv_loop_t loop{};
  uv_async_t wake{};
  uv_timer_t poll{};
  uv_check_t after_io{};
  raft_uv_transport transport{};
  raft_io io{};
  raft_fsm fsm{};
  struct raft r {};
  std::thread thread;

  // Shared with other threads, under `mu`.
  mutable std::mutex mu;
  std::deque<request> inbox;
  uint64_t pending = 0;  // commands queued, held or proposed: bounded by max_pending_commands
  bool stop_requested = false;
  metadata_state state;  // written on the loop thread under mu, copied by others
  std::deque<applied_entry> applied;
  bool resync = false;
  bool serving = false;
  raft_member known_leader;
  std::vector<member_info> known_members;  // libraft's configuration, by id
  uint64_t known_term = 0;  // libraft's current term as of the last role check
  status health;
  raft_node_stats counters;

  // Loop thread only.
  std::deque<request> held;  // commands that wait for this leader's barrier
  bool barrier_in_flight = false;
  uint64_t serving_term = 0;
  chain_hash proposed_head{};  // the chain head after every entry this leader proposed
  std::optional<apply_outcome> last_outcome;  // the state machine's answer, for apply_cb
  bool closing = false;
  struct raft_transfer transfer {};
  bool transfer_in_flight = false;

  struct proposal {
    struct raft_apply req{};
    impl* self = nullptr;
    command_callback done;
  };
  struct barrier_request {
    struct raft_barrier req {};
    impl* self = nullptr;
    uint64_t term = 0;
  };
  struct change {
    raft_change req{};
    impl* self = nullptr;
    raft_member member;
    bool assigning = false;
    bool cleaning_up = false;  // removing the spare of an add whose promotion failed
    status failure;            // the promotion's error, answered after the clean-up
    change_callback done;
  };

  // -- the state machine (libraft calls these on the loop thread) ------------------------

  static int fsm_apply(raft_fsm* f, const raft_buffer* buf, void** result) {
    auto* self = static_cast<impl*>(f->data);
    *result = nullptr;
    // The entry being applied is the one after the last applied (replicationApply in 0.15
    // moves last_applied after each entry).
    uint64_t index = raft_last_applied(&self->r) + 1;
    bool wake_owner = false;
    {
      std::lock_guard<std::mutex> guard{self->mu};
      if (!self->state.failure().ok()) {
        self->last_outcome.reset();
        return 0;  // stopped serving; keep Raft going so the group's majority is not hurt
      }
      auto framed = unframe_entry(*buf);
      if (!framed)
        self->state.stop(status::error(code::storage_error,
                                       "metadata entry at Raft index " + std::to_string(index) + " (" +
                                           std::to_string(buf->len) +
                                           " bytes) is not framed as raft_node writes entries; this node's "
                                           "log is damaged: stop it, move its metadata data dir aside and "
                                           "start it empty so that it rejoins from the leader's snapshot"));
      auto out = self->state.apply(framed ? *framed : std::string_view{});
      if (!out) {
        self->health = out.error();
        self->serving = false;
        self->last_outcome.reset();
        return 0;
      }
      ++self->counters.applied;
      self->last_outcome = out.value();
      if (self->applied.size() >= self->opt.max_applied_backlog) {
        self->applied.pop_front();
        self->resync = true;
        ++self->counters.applied_dropped;
      }
      wake_owner = self->applied.empty();
      self->applied.push_back(applied_entry{index, out.value()});
    }
    if (wake_owner && self->cbs.on_applied_ready)
      self->cbs.on_applied_ready();
    return 0;
  }

  static int fsm_snapshot(raft_fsm* f, raft_buffer* bufs[], unsigned* n_bufs) {
    auto* self = static_cast<impl*>(f->data);
    std::string bytes;
    {
      std::lock_guard<std::mutex> guard{self->mu};
      bytes = self->state.encode_snapshot();
      ++self->counters.snapshots_taken;
    }
    // libraft frees both with raft_free once the snapshot is stored (fsm version 1).
    auto* list = static_cast<raft_buffer*>(raft_malloc(sizeof(raft_buffer)));
    void* base = raft_malloc(bytes.empty() ? 1 : bytes.size());
    if (!list || !base) {
      raft_free(list);
      raft_free(base);
      return RAFT_NOMEM;
    }
    std::memcpy(base, bytes.data(), bytes.size());
    list[0].base = base;
    list[0].len = bytes.size();
    *bufs = list;
    *n_bufs = 1;
    return 0;
  }

  static int fsm_restore(raft_fsm* f, raft_buffer* buf) {
    auto* self = static_cast<impl*>(f->data);
    std::lock_guard<std::mutex> guard{self->mu};
    status s = self->state.restore({static_cast<const char*>(buf->base), buf->len});
    if (!s.ok()) {
      self->health = s;
      self->serving = false;
      return RAFT_CORRUPT;
    }
    raft_free(buf->base);  // ours on success (raft.h: restore takes ownership)
    // A good snapshot replaces a state that had stopped (metadata_state::restore clears its
    // failure): the node may serve again once it leads or follows a leader's barrier.
    self->health = status{};
    ++self->counters.snapshots_restored;
    self->resync = true;  // the owner's copy predates the snapshot
    self->applied.clear();
    return 0;
  }

  // -- requests ---------------------------------------------------------------------------

  template <class T>
  T locked_copy(const T& field) const {
    std::lock_guard<std::mutex> guard{mu};
    return field;
  }

  // Any thread: queues a request for the loop, within max_pending_commands.
  status enqueue(request q) {
    std::lock_guard<std::mutex> guard{mu};
    if (stop_requested)
      return status::refused(shutting_down());
    if (pending >= opt.max_pending_commands) {
      ++counters.refused_queue_full;
      return status::refused(rejection::of(code::too_many_inflight)
                                 .limit(std::string{queue_limit_key})
                                 .observed(pending + 1)
                                 .max(opt.max_pending_commands)
                                 .retry_after_ms(opt.heartbeat_timeout_ms)
                                 .detail("the metadata node has as many commands pending as it allows; "
                                         "wait for answers before sending more"));
    }
    ++pending;
    inbox.push_back(std::move(q));
    uv_async_send(&wake);
    return {};
  }

  void finish_change(change_callback& done, const status& s) {
    {
      std::lock_guard<std::mutex> guard{mu};
      --pending;
    }
    if (done)
      done(s);
  }

  void finish(command_callback& done, command_outcome out) {
    {
      std::lock_guard<std::mutex> guard{mu};
      --pending;
    }
    if (done)
      done(out);
  }

  command_outcome not_leader_outcome() {
    command_outcome out;
    out.what = command_outcome::kind::not_leader;
    raft_id id = 0;
    const char* address = nullptr;
    raft_leader(&r, &id, &address);
    out.leader_id = id;
    out.leader_address = address ? address : "";
    out.refusal = rejection::of(code::not_leader)
                      .retry_after_ms(id ? 0 : opt.election_timeout_ms)
                      .detail(id ? "this metadata node is not the leader; send the command to node " +
                                       std::to_string(id) + " at " + out.leader_address
                                 : "the metadata group has no leader right now; retry after an election");
    return out;
  }

  static command_outcome refused(rejection why) {
    command_outcome out;
    out.what = command_outcome::kind::refused;
    out.refusal = std::move(why);
    return out;
  }

  // Every request not yet handed to libraft: the held ones first (they are older).
  std::deque<request> take_waiting() {
    std::deque<request> out;
    out.swap(held);
    std::lock_guard<std::mutex> guard{mu};
    for (auto& q : inbox)
      out.push_back(std::move(q));
    inbox.clear();
    return out;
  }

  void answer_all_stopping() {
    for (auto& q : take_waiting()) {
      if (q.what == request::type::propose)
        finish(q.done, refused(shutting_down()));
      else
        finish_change(q.change_done, status::refused(shutting_down()));
    }
  }

  void propose(request& q) {
    std::string bytes = encode_command(q.cmd);
    std::string entry = frame_entry(encode_entry(bytes, proposed_head));
    auto* p = new proposal;
    p->self = this;
    p->done = std::move(q.done);
    p->req.data = p;
    raft_buffer buf;
    buf.len = entry.size();
    buf.base = raft_malloc(entry.size());
    if (!buf.base) {
      finish(p->done, refused(rejection::of(code::memory_budget_exhausted)
                                  .detail("out of memory proposing a metadata command")));
      delete p;
      return;
    }
    std::memcpy(buf.base, entry.data(), entry.size());
    int rv = raft_apply(&r, &p->req, &buf, 1, &impl::apply_cb);
    if (rv != 0) {
      raft_free(buf.base);
      finish(p->done, rv == RAFT_NOTLEADER
                          ? not_leader_outcome()
                          : refused(rejection::of(code::unavailable)
                                        .retry_after_ms(opt.election_timeout_ms)
                                        .detail(raft_error(rv, "libraft refused the proposal"))));
      delete p;
      return;
    }
    proposed_head = next_chain_hash(proposed_head, bytes);
  }

  static void apply_cb(struct raft_apply* req, int rv, void*) {
    std::unique_ptr<proposal> p{static_cast<proposal*>(req->data)};
    impl* self = p->self;
    command_outcome out;
    if (rv == 0 && self->last_outcome) {
      out.what = command_outcome::kind::applied;
      out.applied = *self->last_outcome;
    } else if (rv == 0) {
      std::lock_guard<std::mutex> guard{self->mu};
      out = refused(self->health.as_rejection());
    } else {
      // LEADERSHIPLOST, SHUTDOWN: the entry is in some logs and may still commit.
      out.what = command_outcome::kind::indeterminate;
      out.refusal = rejection::of(rv == RAFT_SHUTDOWN ? code::shutting_down : code::unavailable)
                        .retry_after_ms(self->opt.election_timeout_ms)
                        .detail(raft_error(rv, "the command may or may not have been applied") +
                                "; read the state and retry (commands are compare-and-set)");
    }
    self->finish(p->done, std::move(out));
  }

  void start_change(request& q) {
    auto* c = new change;
    c->self = this;
    c->member = q.member;
    c->done = std::move(q.change_done);
    c->req.data = c;
    int rv = q.what == request::type::add
                 ? raft_add(&r, &c->req, q.member.id, q.member.address.c_str(), &impl::change_cb)
                 : raft_remove(&r, &c->req, q.member.id, &impl::change_cb);
    if (rv != 0) {
      finish_change(c->done, change_refusal(rv, q.what == request::type::add, q.member));
      delete c;
    }
  }

  // Why libraft refused a membership change at once, as the typed refusal the asker reads.
  status change_refusal(int rv, bool adding, const raft_member& m) {
    const std::string who = "broker " + std::to_string(m.id);
    switch (rv) {
      case RAFT_NOTLEADER:
        return status::refused(not_leader_outcome().refusal);
      case RAFT_CANTCHANGE:
        // libraft 0.15 runs one configuration change at a time (an uncommitted one, or a
        // promotion's catch-up): the asker retries once it ended.
        return status::refused(rejection::of(code::unavailable)
                                   .retry_after_ms(opt.election_timeout_ms)
                                   .detail("another membership change of the metadata group is in "
                                           "progress (one at a time); retry once it ended"));
      case RAFT_DUPLICATEID:
        return status::refused(rejection::of(code::precondition_failed)
                                   .detail(who + " is a member of the metadata group already; give a new "
                                                 "broker an id no member has (`levee cluster` lists them)"));
      case RAFT_DUPLICATEADDRESS:
        return status::refused(rejection::of(code::precondition_failed)
                                   .detail("Raft address " + m.address + " is a member's already; give "
                                           "the new broker a broker.raft_listen of its own"));
      case RAFT_BADID:
        if (!adding)
          return status::refused(rejection::of(code::not_found)
                                     .detail(who + " is not a member of the metadata group; `levee "
                                                   "cluster` lists the members"));
        break;
      default:
        break;
    }
    return status::error(code::bad_request, raft_error(rv, "membership change refused"));
  }

  static void change_cb(raft_change* req, int rv) {
    auto* c = static_cast<change*>(req->data);
    impl* self = c->self;
    bool leader = raft_state(&self->r) == RAFT_LEADER;
    if (c->cleaning_up) {
      self->finish_change(c->done, c->failure);
      delete c;
      return;
    }
    if (rv == 0 && !c->assigning && c->member.address.size() && leader) {
      // raft_add made it a spare; a voter counts in majorities once it caught up
      // (raft_assign runs libraft's catch-up rounds first).
      bool is_add = true;
      for (unsigned i = 0; i < self->r.configuration.n; ++i)
        if (self->r.configuration.servers[i].id == c->member.id && self->r.configuration.servers[i].role == RAFT_VOTER)
          is_add = false;
      if (is_add) {
        c->assigning = true;
        int again = raft_assign(&self->r, &c->req, c->member.id, RAFT_VOTER, &impl::change_cb);
        if (again == 0)
          return;
        rv = again;
      }
    }
    status result = rv == 0 ? status{}
                            : status::refused(rejection::of(code::unavailable)
                                                  .retry_after_ms(self->opt.election_timeout_ms)
                                                  .detail(raft_error(rv, "membership change failed") +
                                                          (c->assigning ? " while the new member caught up "
                                                                          "(is its Raft address " +
                                                                              c->member.address +
                                                                              " reachable from the leader?)"
                                                                        : std::string{})));
    if (rv != 0 && c->assigning && leader) {
      // The promotion failed (libraft gave up its catch-up rounds, or leadership moved):
      // take the spare out again, so a wrong address does not stay in the configuration.
      c->cleaning_up = true;
      c->failure = result;
      if (raft_remove(&self->r, &c->req, c->member.id, &impl::change_cb) == 0)
        return;
    }
    self->finish_change(c->done, result);
    delete c;
  }

  // The configuration as members(): copied under mu when it changed (ids and roles).
  void note_members() {
    const raft_configuration& conf = r.configuration;
    std::vector<member_info> now;
    for (unsigned i = 0; i < conf.n; ++i) {
      const auto& srv = conf.servers[i];
      member_role role = srv.role == RAFT_STANDBY ? member_role::standby
                         : srv.role == RAFT_SPARE ? member_role::spare
                                                  : member_role::voter;
      now.push_back(member_info{srv.id, srv.address ? srv.address : "", role});
    }
    std::sort(now.begin(), now.end(), [](const member_info& a, const member_info& b) { return a.id < b.id; });
    std::lock_guard<std::mutex> guard{mu};
    bool same = now.size() == known_members.size();
    for (size_t i = 0; same && i < now.size(); ++i)
      same = now[i].id == known_members[i].id && now[i].role == known_members[i].role &&
             now[i].address == known_members[i].address;
    if (!same)
      known_members = std::move(now);
  }

  void run_requests() {
    std::deque<request> batch = take_waiting();
    bool leader = raft_state(&r) == RAFT_LEADER;
    bool ready;
    status failed;
    {
      std::lock_guard<std::mutex> guard{mu};
      ready = serving;
      failed = health;
    }
    while (!batch.empty()) {
      request q = std::move(batch.front());
      batch.pop_front();
      if (!failed.ok()) {
        auto why = rejection(rejection::of(code::unavailable).detail(failed.message()));
        if (q.what == request::type::propose)
          finish(q.done, refused(why));
        else
          finish_change(q.change_done, status::refused(why));
      } else if (!leader) {
        if (q.what == request::type::propose)
          finish(q.done, not_leader_outcome());
        else
          finish_change(q.change_done, status::refused(not_leader_outcome().refusal));
      } else if (!ready) {
        held.push_back(std::move(q));  // until this leader's barrier commits
      } else if (q.what == request::type::propose) {
        propose(q);
      } else if (q.what == request::type::transfer) {
        start_transfer(q);
      } else {
        start_change(q);
      }
    }
  }

  // -- leadership -------------------------------------------------------------------------

  static void barrier_cb(struct raft_barrier* req, int rv) {
    std::unique_ptr<barrier_request> b{static_cast<barrier_request*>(req->data)};
    impl* self = b->self;
    self->barrier_in_flight = false;
    if (rv != 0 || raft_state(&self->r) != RAFT_LEADER || self->r.current_term != b->term)
      return;  // lost it meanwhile: the next poll starts over
    // Everything before the barrier is committed and applied now: proposals may start
    // from the applied chain head.
    {
      std::lock_guard<std::mutex> guard{self->mu};
      self->proposed_head = self->state.chain_head();
      self->serving = self->health.ok();
      self->serving_term = b->term;
      ++self->counters.barriers_committed;
    }
    self->run_requests();
  }

  void watch_role() {
    bool leader = raft_state(&r) == RAFT_LEADER;
    raft_id id = 0;
    const char* address = nullptr;
    raft_leader(&r, &id, &address);
    note_members();
    {
      std::lock_guard<std::mutex> guard{mu};
      known_leader = raft_member{id, address ? address : ""};
      known_term = r.current_term;
      if (!leader || r.current_term != serving_term)
        serving = false;
    }
    bool ready;
    bool failed;
    {
      std::lock_guard<std::mutex> guard{mu};
      ready = serving;
      failed = !health.ok();
    }
    // A node that stopped serving metadata hands leadership to a voter that can serve
    // (once per leadership), and commits no barrier: it would never serve anyway.
    if (leader && failed && !transfer_in_flight) {
      transfer.data = this;
      if (raft_transfer(&r, &transfer, 0, &impl::transfer_cb) == 0)
        transfer_in_flight = true;
    }
    if (leader && !ready && !failed && !barrier_in_flight) {
      // libraft 0.15 appends no entry of its own when elected and may commit an older
      // term's entry by counting replicas (Raft paper 5.4.2): commit one in this term
      // before acting on anything.
      auto* b = new barrier_request;
      b->self = this;
      b->term = r.current_term;
      b->req.data = b;
      if (raft_barrier(&r, &b->req, &impl::barrier_cb) == 0)
        barrier_in_flight = true;
      else
        delete b;
    }
    run_requests();
  }

  // transfer_leadership(): hands leadership to the most up-to-date voter (raft_transfer with
  // id 0); answered once libraft accepted to try, the move itself shows in leader().
  void start_transfer(request& q) {
    int rv = transfer_in_flight ? 0 : RAFT_NOTFOUND;
    if (!transfer_in_flight) {
      transfer.data = this;
      rv = raft_transfer(&r, &transfer, 0, &impl::transfer_cb);
      transfer_in_flight = rv == 0;
    }
    finish_change(q.change_done,
                  rv == 0 ? status{}
                          : status::refused(rejection::of(code::unavailable)
                                                .retry_after_ms(opt.election_timeout_ms)
                                                .detail(raft_error(rv, "handing the metadata leadership over") +
                                                        "; is another voter up?")));
  }

  static void transfer_cb(struct raft_transfer* req) {
    static_cast<impl*>(req->data)->transfer_in_flight = false;  // the next poll tries again if needed
  }

  static void on_poll(uv_timer_t* t) { static_cast<impl*>(t->data)->watch_role(); }
  // After every batch of I/O callbacks (an election won is one): the barrier goes out in
  // the same loop iteration as the win, before any follower can answer this leader.
  static void on_after_io(uv_check_t* c) {
    auto* self = static_cast<impl*>(c->data);
    if (!self->closing)
      self->watch_role();
  }

  static void on_wake(uv_async_t* a) {
    auto* self = static_cast<impl*>(a->data);
    bool stopping;
    {
      std::lock_guard<std::mutex> guard{self->mu};
      stopping = self->stop_requested;
    }
    if (stopping)
      self->begin_close();
    else
      self->run_requests();
  }

  void begin_close() {
    if (closing)
      return;
    closing = true;
    {
      std::lock_guard<std::mutex> guard{mu};
      serving = false;
    }
    answer_all_stopping();
    uv_timer_stop(&poll);
    uv_check_stop(&after_io);
    raft_close(&r, &impl::raft_closed);
  }

  static void raft_closed(struct raft* r) {
    auto* self = static_cast<impl*>(r->data);
    raft_uv_close(&self->io);
    raft_uv_tcp_close(&self->transport);
    uv_close(reinterpret_cast<uv_handle_t*>(&self->poll), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&self->after_io), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&self->wake), nullptr);
  }

  void run_loop() {
    uv_run(&loop, UV_RUN_DEFAULT);
    // The loop ends once every handle is closed; a close callback libraft left can still
    // be pending, so run until uv_loop_close agrees.
    while (uv_loop_close(&loop) == UV_EBUSY)
      uv_run(&loop, UV_RUN_NOWAIT);
  }

  // Tears down what start() made when it fails before the thread runs.
  void abandon_after_init() {
    raft_close(&r, &impl::raft_closed);
    run_loop();
  }
};

raft_node::raft_node(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

raft_node::~raft_node() {
  stop();
}

result<std::unique_ptr<raft_node>> raft_node::start(raft_node_options options, callbacks cbs) {
  if (options.id == 0)
    return status::error(code::bad_request, "metadata node id 0 is reserved; give each broker an id from 1");
  if (status s = check_raft_address(options.address, "metadata raft address"); !s.ok())
    return s;
  for (const auto& m : options.initial_members) {
    if (m.id == 0)
      return status::error(code::bad_request, "initial member id 0 is reserved; number members from 1");
    if (status s = check_raft_address(m.address, "initial member " + std::to_string(m.id) + "'s address");
        !s.ok())
      return s;
  }
  if (options.max_pending_commands == 0 || options.max_applied_backlog == 0)
    return status::error(code::bad_request,
                         "metadata.max_pending_commands and the applied backlog must be at least 1");
  if (options.data_dir.empty())
    return status::error(code::bad_request, "metadata data dir is empty; name a directory on ext4 or xfs");
  if (::mkdir(options.data_dir.c_str(), 0700) != 0 && errno != EEXIST)
    return status::error(code::storage_error, "cannot create metadata data dir '" + options.data_dir +
                                                  "': " + std::strerror(errno) +
                                                  "; create it or pick a writable path");
  if (status s = check_direct_io(options.data_dir); !s.ok())
    return s;

  auto p = std::make_unique<impl>();
  impl& n = *p;
  // Before libraft reads or writes anything there (the segment log does the same).
  auto lock_path = options.data_dir + "/LOCK";
  if (int err = n.lock.acquire(lock_path); err != 0)
    return status::error(code::storage_error,
                         err == EWOULDBLOCK
                           ? "metadata data dir '" + options.data_dir
                               + "' is in use by another process (or already in this one): two "
                                 "brokers were given the same data directory; stop the other "
                                 "one or give each its own"
                           : "cannot lock '" + lock_path + "': " + std::strerror(err));
  n.opt = std::move(options);
  n.cbs = std::move(cbs);
  if (int rv = uv_loop_init(&n.loop); rv != 0)
    return status::error(code::unavailable, std::string{"uv_loop_init: "} + uv_strerror(rv));
  uv_async_init(&n.loop, &n.wake, &impl::on_wake);
  n.wake.data = &n;
  uv_timer_init(&n.loop, &n.poll);
  n.poll.data = &n;
  uv_check_init(&n.loop, &n.after_io);
  n.after_io.data = &n;
  auto close_handles = [&n] {
    uv_close(reinterpret_cast<uv_handle_t*>(&n.poll), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&n.after_io), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&n.wake), nullptr);
    n.run_loop();
  };
  if (int rv = raft_uv_tcp_init(&n.transport, &n.loop); rv != 0) {
    close_handles();
    return status::error(code::unavailable, raft_error(rv, "libraft's TCP transport"));
  }
  if (int rv = raft_uv_init(&n.io, &n.loop, n.opt.data_dir.c_str(), &n.transport); rv != 0) {
    std::string why = n.io.errmsg;
    raft_uv_tcp_close(&n.transport);
    close_handles();
    return status::error(code::storage_error, "metadata data dir '" + n.opt.data_dir + "': " + why);
  }
  n.fsm.version = 1;
  n.fsm.data = &n;
  n.fsm.apply = &impl::fsm_apply;
  n.fsm.snapshot = &impl::fsm_snapshot;
  n.fsm.restore = &impl::fsm_restore;
  if (int rv = raft_init(&n.r, &n.io, &n.fsm, n.opt.id, n.opt.address.c_str()); rv != 0) {
    std::string why = raft_error(rv, "raft_init");
    raft_uv_close(&n.io);
    raft_uv_tcp_close(&n.transport);
    close_handles();
    return status::error(code::unavailable, why);
  }
  n.r.data = &n;
  raft_set_election_timeout(&n.r, n.opt.election_timeout_ms);
  raft_set_heartbeat_timeout(&n.r, n.opt.heartbeat_timeout_ms);
  raft_set_snapshot_threshold(&n.r, n.opt.snapshot_threshold);
  raft_set_snapshot_trailing(&n.r, n.opt.snapshot_trailing);

  bool listed = false;
  for (const auto& m : n.opt.initial_members)
    listed = listed || m.id == n.opt.id;
  if (listed) {
    raft_configuration conf;
    raft_configuration_init(&conf);
    int rv = 0;
    for (const auto& m : n.opt.initial_members)
      if (rv == 0)
        rv = raft_configuration_add(&conf, m.id, m.address.c_str(), RAFT_VOTER);
    if (rv == 0)
      rv = raft_bootstrap(&n.r, &conf);
    raft_configuration_close(&conf);
    // CANTBOOTSTRAP: the data dir holds a group already; this start rejoins with it.
    if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) {
      std::string why = raft_error(rv, "bootstrapping the metadata group") + " (" + raft_errmsg(&n.r) + ")";
      n.abandon_after_init();
      return status::error(code::storage_error, why + " in '" + n.opt.data_dir + "'");
    }
  }
  if (int rv = raft_start(&n.r); rv != 0) {
    std::string why = raft_error(rv, "starting the metadata node") + " (" + raft_errmsg(&n.r) + ")";
    n.abandon_after_init();
    return status::error(rv == RAFT_CORRUPT ? code::storage_error : code::unavailable,
                         why + "; data dir '" + n.opt.data_dir + "', address " + n.opt.address);
  }
  n.note_members();  // what the data dir holds, before the owner first asks
  uv_timer_start(&n.poll, &impl::on_poll, n.opt.role_poll_ms, n.opt.role_poll_ms);
  uv_check_start(&n.after_io, &impl::on_after_io);
  n.thread = std::thread{[&n] {
    // A write to a peer that went away raises SIGPIPE in the writing thread, and libuv
    // does not ask for MSG_NOSIGNAL: block it here, so the write fails with EPIPE and
    // libraft reconnects, without changing the process's signal handling.
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
    n.run_loop();
  }};
  return std::unique_ptr<raft_node>{new raft_node{std::move(p)}};
}

void raft_node::stop() {
  if (!impl_ || !impl_->thread.joinable())
    return;
  {
    std::lock_guard<std::mutex> guard{impl_->mu};
    impl_->stop_requested = true;
  }
  uv_async_send(&impl_->wake);
  impl_->thread.join();
}

status raft_node::submit(command cmd, command_callback done) {
  if (const auto* create = std::get_if<create_stream>(&cmd)) {
    // Checked before proposing: a config that every node would refuse to read must not
    // reach the log.
    if (status s = streams::validate(create->config); !s.ok())
      return s;
  }
  request q;
  q.what = request::type::propose;
  q.cmd = std::move(cmd);
  q.done = std::move(done);
  return impl_->enqueue(std::move(q));
}

status raft_node::add_member(raft_member member, change_callback done) {
  if (status s = check_raft_address(member.address, "new member's address"); !s.ok())
    return s;
  request q;
  q.what = request::type::add;
  q.member = std::move(member);
  q.change_done = std::move(done);
  return impl_->enqueue(std::move(q));
}

status raft_node::remove_member(uint64_t id, change_callback done) {
  request q;
  q.what = request::type::remove;
  q.member.id = id;
  q.change_done = std::move(done);
  return impl_->enqueue(std::move(q));
}

status raft_node::transfer_leadership(change_callback done) {
  request q;
  q.what = request::type::transfer;
  q.change_done = std::move(done);
  return impl_->enqueue(std::move(q));
}

applied_batch raft_node::drain_applied() {
  applied_batch out;
  std::lock_guard<std::mutex> guard{impl_->mu};
  out.entries.assign(std::make_move_iterator(impl_->applied.begin()),
                     std::make_move_iterator(impl_->applied.end()));
  impl_->applied.clear();
  out.resync = impl_->resync;
  impl_->resync = false;
  return out;
}

metadata_state raft_node::state_copy() const {
  return impl_->locked_copy(impl_->state);
}

metadata_state raft_node::state_copy_without_cursors() const {
  std::lock_guard<std::mutex> guard{impl_->mu};
  return impl_->state.copy_without_cursors();
}

bool raft_node::serving_as_leader() const {
  return impl_->locked_copy(impl_->serving);
}

raft_member raft_node::leader() const {
  return impl_->locked_copy(impl_->known_leader);
}

std::vector<member_info> raft_node::members() const {
  return impl_->locked_copy(impl_->known_members);
}

uint64_t raft_node::term() const {
  return impl_->locked_copy(impl_->known_term);
}

status raft_node::health() const {
  return impl_->locked_copy(impl_->health);
}

raft_node_stats raft_node::stats() const {
  return impl_->locked_copy(impl_->counters);
}

uint64_t raft_node::id() const noexcept {
  return impl_->opt.id;
}

} // namespace levee::metadata
