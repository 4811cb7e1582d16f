#include "tests/support/chaos.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <set>
#include <sstream>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/host_port.hpp"
#include "broker/cluster.pb.h"
#include "levee/client.hpp"
#include "levee/streams.hpp"
#include "streams/stream_catalog.hpp"

namespace levee::chaos {

using namespace std::chrono_literals;
using std::chrono::duration_cast;

namespace {

client_options options_for(const std::string& address, milliseconds connect_timeout) {
  client_options o;
  base::host_port hp;
  std::string error;
  if (base::parse_host_port("--broker", address, hp, error)) {
    o.host = hp.host;
    o.port = hp.port;
  }
  o.node_id = "levee-chaos";
  o.connect_timeout = connect_timeout;
  return o;
}

} // namespace

// -- tcp_proxy --------------------------------------------------------------------------

tcp_proxy::tcp_proxy(uint16_t target_port) : target_(target_port) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0
      || ::listen(listen_fd_, 64) != 0
      || ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0
      || ::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0)
    return;
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread{[this] { run(); }};
}

tcp_proxy::~tcp_proxy() {
  stop_ = true;
  if (wake_[1] >= 0) {
    char b = 0;
    (void)!::write(wake_[1], &b, 1);
  }
  if (thread_.joinable())
    thread_.join();
  for (int fd : {listen_fd_, wake_[0], wake_[1]})
    if (fd >= 0)
      ::close(fd);
}

void tcp_proxy::run() {
  // Pairs of (client side, target side); a pair closes when either side does.
  std::vector<std::pair<int, int>> pairs;
  auto close_pair = [](std::pair<int, int>& p) {
    ::close(p.first);
    ::close(p.second);
    p = {-1, -1};
  };
  char buf[65536];
  while (!stop_) {
    std::vector<pollfd> fds;
    fds.push_back({listen_fd_, POLLIN, 0});
    fds.push_back({wake_[0], POLLIN, 0});
    bool stalled = stalled_;
    for (auto& p : pairs) {
      // Stalled: nothing is read (the peers' writes fill the kernel's buffers and wait).
      short ev = stalled ? 0 : POLLIN;
      fds.push_back({p.first, ev, 0});
      fds.push_back({p.second, ev, 0});
    }
    // A stall is switched from another thread without a wake-up: look again soon.
    int n = ::poll(fds.data(), fds.size(), 50);
    if (n <= 0)
      continue;
    if (fds[0].revents & POLLIN) {
      int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) {
        int t = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = htons(target_);
        if (t >= 0 && ::connect(t, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
          pairs.emplace_back(c, t);
        } else {
          ::close(c);
          if (t >= 0)
            ::close(t);
        }
      }
    }
    for (size_t i = 0; i < pairs.size(); ++i) {
      auto& a = fds[2 + 2 * i];
      auto& b = fds[3 + 2 * i];
      auto relay = [&](int from, int to) {
        auto got = ::read(from, buf, sizeof buf);
        if (got <= 0)
          return false;
        // Blocking write: the peer reads, or the relay waits (as a slow link would).
        for (ssize_t off = 0; off < got;) {
          auto w = ::write(to, buf + off, static_cast<size_t>(got - off));
          if (w <= 0)
            return false;
          off += w;
        }
        return true;
      };
      bool ok = true;
      if (a.revents & (POLLIN | POLLHUP | POLLERR))
        ok = relay(pairs[i].first, pairs[i].second);
      if (ok && (b.revents & (POLLIN | POLLHUP | POLLERR)))
        ok = relay(pairs[i].second, pairs[i].first);
      if (!ok)
        close_pair(pairs[i]);
    }
    pairs.erase(std::remove_if(pairs.begin(), pairs.end(), [](auto& p) { return p.first < 0; }),
                pairs.end());
  }
  for (auto& p : pairs)
    close_pair(p);
}

// -- broker_cluster ---------------------------------------------------------------------

broker_cluster::broker_cluster(cluster_options opts) : opts_(std::move(opts)) {
  std::string raft_members;
  for (int i = 1; i <= opts_.brokers; ++i) {
    member m;
    m.id = i;
    m.port = test::probe_free_port();
    m.raft_port = test::probe_free_port();
    raft_members += (raft_members.empty() ? "" : ",") + std::to_string(i) + "=127.0.0.1:"
                    + std::to_string(m.raft_port);
    if (opts_.proxies)
      m.proxy = std::make_unique<tcp_proxy>(m.port);
    members_.push_back(std::move(m));
  }
  for (auto& m : members_) {
    test::ini cfg;
    cfg.set("node", "roles", "broker")
      .set("broker", "listen", "127.0.0.1:" + std::to_string(m.port))
      .set("broker", "data_dir", data_dir(m.id))
      .set("broker", "id", std::to_string(m.id))
      .set("broker", "raft_listen", "127.0.0.1:" + std::to_string(m.raft_port))
      .set("broker", "raft_members", raft_members)
      .set("broker", "session_timeout_ms", std::to_string(opts_.session_timeout_ms))
      .set("broker", "raft_election_timeout_ms", std::to_string(opts_.election_timeout_ms));
    if (m.proxy)
      cfg.set("broker", "advertise", "127.0.0.1:" + std::to_string(m.proxy->port()));
    for (auto& [section, key, value] : opts_.extra)
      cfg.set(section, key, value);
    m.config = opts_.dir + "/broker-" + std::to_string(m.id) + ".ini";
    test::write_file(m.config, cfg.text());
  }
}

broker_cluster::~broker_cluster() = default;  // each child_process SIGKILLs and reaps

status broker_cluster::start(int id) {
  auto& m = members_.at(static_cast<size_t>(id - 1));
  m.proc = std::make_unique<test::child_process>();
  if (!m.proc->start({opts_.levee_binary, "node", "--config", m.config}, stderr_path(id)))
    return status::error(code::unavailable, "could not start " + opts_.levee_binary);
  if (!m.proc->wait_for_line("broker listening on", opts_.start_bound))
    return status::error(code::unavailable,
                         "broker " + std::to_string(id) + " did not listen within "
                           + std::to_string(opts_.start_bound.count()) + " ms; its stderr:\n"
                           + stderr_tail(id));
  return {};
}

status broker_cluster::start_all() {
  for (auto& m : members_)
    if (auto st = start(m.id); !st.ok())
      return st;
  return {};
}

void broker_cluster::kill(int id) {
  auto& m = members_.at(static_cast<size_t>(id - 1));
  if (m.proc)
    m.proc->kill_and_reap();
}

bool broker_cluster::pause(int id) {
  auto& m = members_.at(static_cast<size_t>(id - 1));
  return m.proc && m.proc->pause();
}

bool broker_cluster::resume(int id) {
  auto& m = members_.at(static_cast<size_t>(id - 1));
  return m.proc && m.proc->resume();
}

std::optional<int> broker_cluster::stop(int id, milliseconds bound) {
  auto& m = members_.at(static_cast<size_t>(id - 1));
  if (!m.proc || !m.proc->running())
    return std::nullopt;
  m.proc->signal(SIGTERM);
  auto code = m.proc->wait_exit(bound);
  if (!code) {
    // A broker that does not stop is a bug to find: its threads' stacks, when gdb is here.
    auto cmd = "gdb -p " + std::to_string(m.proc->pid())
               + " -batch -ex 'thread apply all bt 12' 2>/dev/null | grep -E '^(Thread|#)'";
    std::fprintf(stderr, "broker %d did not stop within %lld ms of SIGTERM; its threads:\n", id,
                 static_cast<long long>(bound.count()));
    std::fflush(stderr);
    if (std::system(cmd.c_str()) != 0)
      std::fprintf(stderr, "(no stacks: gdb is missing or could not attach)\n");
    m.proc->kill_and_reap();
  }
  return code;
}

bool broker_cluster::running(int id) const {
  auto& m = members_.at(static_cast<size_t>(id - 1));
  return m.proc && m.proc->running();
}

tcp_proxy* broker_cluster::proxy(int id) const {
  return members_.at(static_cast<size_t>(id - 1)).proxy.get();
}

std::string broker_cluster::address(int id) const {
  return "127.0.0.1:" + std::to_string(port(id));
}

uint16_t broker_cluster::port(int id) const { return members_.at(static_cast<size_t>(id - 1)).port; }

std::string broker_cluster::data_dir(int id) const {
  return opts_.dir + "/broker-" + std::to_string(id);
}

std::string broker_cluster::stderr_path(int id) const {
  return opts_.dir + "/broker-" + std::to_string(id) + ".stderr";
}

std::vector<std::string> broker_cluster::addresses() const {
  std::vector<std::string> out;
  for (auto& m : members_)
    out.push_back(address(m.id));
  return out;
}

std::string broker_cluster::stderr_tail(int id, size_t lines) const {
  std::ifstream in{stderr_path(id)};
  std::deque<std::string> last;
  for (std::string line; std::getline(in, line);) {
    last.push_back(line);
    if (last.size() > lines)
      last.pop_front();
  }
  std::string out;
  for (auto& l : last)
    out += l + "\n";
  return out;
}

std::optional<cluster::ClusterInfo> broker_cluster::info(int id, milliseconds timeout) const {
  if (!running(id))
    return std::nullopt;
  client c{options_for(address(id), timeout)};
  if (!c.connect().ok())
    return std::nullopt;
  cluster::ClusterCall call;
  call.mutable_info();
  auto r = c.request("cluster", call.SerializeAsString(), timeout);
  cluster::ClusterInfo out;
  if (!r.ok() || !r.payload || !out.ParseFromString(*r.payload))
    return std::nullopt;
  return out;
}

// -- the partition's view ---------------------------------------------------------------

std::optional<partition_view> view_partition(const broker_cluster& c, const std::string& stream,
                                             uint32_t partition, milliseconds timeout) {
  std::optional<partition_view> newest;
  for (int id = 1; id <= c.size(); ++id) {
    auto i = c.info(id, timeout);
    // Only a broker that knows the metadata leader has a current view.
    if (!i || i->leader_id() == 0)
      continue;
    for (auto& s : i->streams()) {
      if (s.name() != stream)
        continue;
      for (auto& p : s.partitions()) {
        if (p.partition() != partition)
          continue;
        partition_view v;
        v.leader = static_cast<int>(p.leader());
        v.leader_epoch = p.leader_epoch();
        v.partition_epoch = p.partition_epoch();
        for (auto b : p.isr())
          v.isr.push_back(static_cast<int>(b));
        for (auto b : p.replicas())
          v.replicas.push_back(static_cast<int>(b));
        if (!newest || v.partition_epoch > newest->partition_epoch)
          newest = std::move(v);
      }
    }
  }
  return newest;
}

std::optional<partition_view> wait_for_leader(const broker_cluster& c, const std::string& stream,
                                              uint32_t partition, int not_this, size_t min_isr,
                                              milliseconds bound) {
  auto deadline = steady::now() + bound;
  while (steady::now() < deadline) {
    auto v = view_partition(c, stream, partition, 1000ms);
    if (v && v->leader != 0 && v->leader != not_this && v->isr.size() >= min_isr
        && c.running(v->leader))
      return v;
    std::this_thread::sleep_for(50ms);
  }
  return std::nullopt;
}

// -- publisher --------------------------------------------------------------------------

publisher::publisher(publisher_options opts) : opts_(std::move(opts)) {}

publisher::~publisher() { stop(); }

void publisher::start() {
  stop_ = false;
  thread_ = std::thread{[this] { run(); }};
}

void publisher::stop() {
  stop_ = true;
  if (thread_.joinable())
    thread_.join();
}

void publisher::run() {
  size_t at = 0;  // which address
  std::unique_ptr<stream_client> c;
  uint64_t seq = 0;
  {
    std::lock_guard<std::mutex> g{mu_};
    seq = acked_.empty() ? 0 : acked_.back().seq + 1;
  }
  auto fail = [&](const std::string& code, const std::string& text) {
    {
      std::lock_guard<std::mutex> g{mu_};
      ++failures_[code];
      last_failure_ = text;
    }
    c.reset();
    at = (at + 1) % opts_.addresses.size();
    std::this_thread::sleep_for(opts_.retry_pause);
  };
  while (!stop_) {
    if (!c) {
      c = std::make_unique<stream_client>(options_for(opts_.addresses[at], opts_.attempt_timeout));
      if (auto st = c->connect(); !st.ok()) {
        fail("connect", st.message());
        continue;
      }
    }
    out_message m;
    m.id = "chaos-" + std::to_string(seq);
    m.body = std::to_string(seq);
    if (m.body.size() < opts_.body_bytes)
      m.body.append(opts_.body_bytes - m.body.size(), '.');
    publish_options po;
    po.ack = ack_mode::all;
    po.partition = opts_.partition;
    po.timeout = opts_.attempt_timeout;
    auto sent = steady::now();
    auto r = c->publish(opts_.subject, {std::move(m)}, po);
    if (!r.ok()) {
      fail(std::string{to_string(r.error().code())}, r.error().message());
      continue;
    }
    if (r->size() != 1) {
      fail("bad_answer", "an ack = all publish of one message was answered with "
                           + std::to_string(r->size()) + " acks");
      continue;
    }
    std::lock_guard<std::mutex> g{mu_};
    acked_.push_back({seq, r->front().offset, sent, steady::now()});
    ++seq;
  }
}

std::vector<acked_message> publisher::acked() const {
  std::lock_guard<std::mutex> g{mu_};
  return acked_;
}

uint64_t publisher::acked_count() const {
  std::lock_guard<std::mutex> g{mu_};
  return acked_.size();
}

std::optional<steady::time_point> publisher::first_ack_after(steady::time_point t,
                                                             milliseconds bound) const {
  auto deadline = steady::now() + bound;
  for (;;) {
    {
      std::lock_guard<std::mutex> g{mu_};
      auto it = std::find_if(acked_.rbegin(), acked_.rend(),
                             [&](const acked_message& a) { return a.sent < t; });
      // acked_ is in send order: the one after the last sent before t.
      auto first = it.base();
      if (first != acked_.end())
        return first->at;
    }
    if (steady::now() >= deadline)
      return std::nullopt;
    std::this_thread::sleep_for(10ms);
  }
}

bool publisher::wait_more_acks(uint64_t n, milliseconds bound) const {
  auto target = acked_count() + n;
  auto deadline = steady::now() + bound;
  while (acked_count() < target) {
    if (steady::now() >= deadline)
      return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

std::map<std::string, uint64_t> publisher::failures() const {
  std::lock_guard<std::mutex> g{mu_};
  return failures_;
}

std::string publisher::last_failure() const {
  std::lock_guard<std::mutex> g{mu_};
  return last_failure_;
}

// -- checks -----------------------------------------------------------------------------

std::string check_report::to_string() const {
  std::string out = "acknowledged " + std::to_string(acknowledged) + ", lost "
                    + std::to_string(lost) + ", duplicated " + std::to_string(duplicated)
                    + ", out of order " + std::to_string(out_of_order) + ", moved "
                    + std::to_string(moved);
  for (auto& p : problems)
    out += "\n  " + p;
  return out;
}

check_report check_acked(const std::vector<acked_message>& acked,
                         const std::vector<read_message>& log) {
  check_report rep;
  rep.acknowledged = acked.size();
  // Where each chaos message id is in the log (offsets, in log order).
  std::map<std::string, std::vector<uint64_t>> where;
  for (auto& m : log)
    if (m.id.rfind("chaos-", 0) == 0)
      where[m.id].push_back(m.offset);
  auto note = [&](std::string text) {
    if (rep.problems.size() < 10)
      rep.problems.push_back(std::move(text));
  };
  std::optional<uint64_t> previous;  // the offset of the previous acknowledged message
  for (auto& a : acked) {
    auto id = "chaos-" + std::to_string(a.seq);
    auto it = where.find(id);
    if (it == where.end()) {
      ++rep.lost;
      note("message " + std::to_string(a.seq) + " (acknowledged at offset "
           + std::to_string(a.offset) + ") is not in the log");
      continue;
    }
    if (it->second.size() > 1) {
      ++rep.duplicated;
      note("message " + std::to_string(a.seq) + " is in the log "
           + std::to_string(it->second.size()) + " times");
    }
    auto off = it->second.front();
    if (off != a.offset) {
      ++rep.moved;
      note("message " + std::to_string(a.seq) + " was acknowledged at offset "
           + std::to_string(a.offset) + " but is at " + std::to_string(off));
    }
    if (previous && off <= *previous) {
      ++rep.out_of_order;
      note("message " + std::to_string(a.seq) + " is at offset " + std::to_string(off)
           + ", not after the message before it (" + std::to_string(*previous) + ")");
    }
    previous = off;
  }
  return rep;
}

result<std::vector<read_message>> read_from_leader(const std::vector<std::string>& addresses,
                                                   const std::string& stream, uint32_t partition,
                                                   uint64_t min_high_water, milliseconds bound) {
  auto deadline = steady::now() + bound;
  std::string last = "no broker was tried";
  for (size_t attempt = 0; steady::now() < deadline; ++attempt) {
    auto& address = addresses[attempt % addresses.size()];
    stream_client c{options_for(address, 1000ms)};
    if (auto st = c.connect(); !st.ok()) {
      last = address + ": " + st.message();
      std::this_thread::sleep_for(50ms);
      continue;
    }
    auto info = c.get_stream_info(stream, 2000ms);
    if (!info.ok() || partition >= info->partitions.size()) {
      last = address + ": " + (info.ok() ? "no such partition" : info.error().message());
      std::this_thread::sleep_for(50ms);
      continue;
    }
    auto hw = info->partitions[partition].high_water;
    if (hw < min_high_water) {
      last = address + ": its high-water mark " + std::to_string(hw) + " is below "
             + std::to_string(min_high_water) + " (not the leader, or one still catching up)";
      std::this_thread::sleep_for(50ms);
      continue;
    }
    std::vector<read_message> out;
    if (hw == 0)
      return out;
    subscribe_options so;
    so.stream = stream;
    so.partition = partition;
    so.start = start_at::earliest();
    so.stop_offset = hw - 1;
    auto sub = c.subscribe(so);
    if (!sub.ok()) {
      last = address + ": " + sub.error().message();
      std::this_thread::sleep_for(50ms);
      continue;
    }
    bool failed = false;
    while (!failed) {
      auto left = duration_cast<milliseconds>(deadline - steady::now());
      if (left.count() <= 0)
        return status::error(code::deadline_exceeded,
                             "reading " + stream + " from " + address + " did not finish");
      auto ev = c.next(*sub, left);
      if (ev.batch) {
        for (auto& m : ev.batch->messages)
          out.push_back({m.offset, m.id, m.body});
      } else if (ev.end) {
        return out;
      } else if (ev.error) {
        last = address + ": " + ev.error->to_string();
        failed = true;
      }
    }
    std::this_thread::sleep_for(50ms);
  }
  return status::error(code::unavailable, "could not read " + stream + " from any broker: " + last);
}

result<std::vector<read_message>> read_from_files(const std::string& data_dir,
                                                  const std::string& stream, uint32_t partition) {
  streams::catalog_options co;
  co.data_dir = data_dir;
  auto cat = streams::stream_catalog::open(co);
  if (!cat.ok())
    return cat.error();
  auto* s = (*cat)->find(stream);
  if (s == nullptr)
    return status::error(code::not_found, data_dir + " holds no stream " + stream);
  auto log = s->partition(partition);
  if (!log.ok())
    return log.error();
  // Everything the replica stored, not only below its checkpointed high-water mark: a
  // follower learns the mark one fetch after it stored the messages, so its checkpoint
  // may trail what the leader acknowledged (the leader's mark counted its copy).
  if (auto on = (*log)->enable_replication(); !on)
    return on;
  (*log)->set_high_water((*log)->next_offset());
  std::vector<read_message> out;
  streams::read_request req;
  req.from = (*log)->start_offset();
  while (req.from < (*log)->high_water()) {
    auto r = (*log)->read(req);
    if (!r.ok())
      return r.error();
    for (auto& m : r->messages)
      out.push_back({m.offset, m.id, m.body});
    if (r->next_offset <= req.from)
      break;
    req.from = r->next_offset;
  }
  return out;
}

std::vector<std::string> compare_replicas(const std::vector<read_message>& a,
                                          const std::vector<read_message>& b, uint64_t below) {
  std::vector<std::string> out;
  std::map<uint64_t, const read_message*> by_offset;
  for (auto& m : b)
    by_offset[m.offset] = &m;
  for (auto& m : a) {
    if (m.offset >= below)
      break;
    auto it = by_offset.find(m.offset);
    if (it == by_offset.end()) {
      out.push_back("offset " + std::to_string(m.offset) + " is on one replica only");
    } else if (it->second->id != m.id || it->second->body != m.body) {
      out.push_back("offset " + std::to_string(m.offset) + " differs: " + m.id + " vs "
                    + it->second->id);
    }
    if (out.size() >= 10)
      break;
  }
  return out;
}

round_result run_round(broker_cluster& c, const publisher& pub, const round_options& o) {
  round_result r;
  auto since = [](steady::time_point t) { return duration_cast<milliseconds>(steady::now() - t); };
  if (!pub.wait_more_acks(o.acks_before, o.new_leader_bound)) {
    r.errors.push_back("the publisher made no progress before the round; its last failure: "
                       + pub.last_failure());
    return r;
  }
  auto before = wait_for_leader(c, o.stream, o.partition, 0, o.replicas, o.rejoin_bound);
  if (!before) {
    r.errors.push_back("no leader with a full ISR before the round");
    return r;
  }
  r.victim = before->leader;
  r.old_epoch = before->leader_epoch;
  if (auto i = c.info(r.victim, milliseconds(1000)))
    r.victim_led_metadata = i->serving_as_leader();
  auto t0 = steady::now();
  if (o.how == fault::pause) {
    if (!c.pause(r.victim))
      r.errors.push_back("broker " + std::to_string(r.victim) + " could not be paused");
  } else {
    c.kill(r.victim);
  }
  auto first = pub.first_ack_after(t0, o.new_leader_bound);
  if (first)
    r.first_ack = duration_cast<milliseconds>(*first - t0);
  else
    r.errors.push_back("no ack = all publish succeeded within "
                       + std::to_string(o.new_leader_bound.count()) + " ms of losing broker "
                       + std::to_string(r.victim) + "; the publisher's last failure: "
                       + pub.last_failure());
  auto after = wait_for_leader(c, o.stream, o.partition, r.victim, 1, o.new_leader_bound);
  if (after) {
    r.new_view = since(t0);
    r.new_leader = after->leader;
    r.new_epoch = after->leader_epoch;
    if (r.new_epoch <= r.old_epoch)
      r.errors.push_back("the leader moved to broker " + std::to_string(r.new_leader)
                         + " but its epoch did not grow (" + std::to_string(r.old_epoch)
                         + " -> " + std::to_string(r.new_epoch) + ")");
  } else {
    r.errors.push_back("the metadata named no leader other than broker "
                       + std::to_string(r.victim));
  }
  auto t1 = steady::now();
  if (o.how == fault::pause) {
    if (!c.resume(r.victim))
      r.errors.push_back("broker " + std::to_string(r.victim) + " could not be resumed");
  } else if (auto st = c.start(r.victim); !st.ok()) {
    r.errors.push_back(st.message());
  }
  if (wait_for_leader(c, o.stream, o.partition, 0, o.replicas, o.rejoin_bound))
    r.rejoined = since(t1);
  else
    r.errors.push_back("broker " + std::to_string(r.victim) + " did not rejoin the ISR within "
                       + std::to_string(o.rejoin_bound.count()) + " ms; its stderr ends:\n"
                       + c.stderr_tail(r.victim));
  auto acked = pub.acked();
  uint64_t need_hw = acked.empty() ? 0 : acked.back().offset + 1;
  auto log = read_from_leader(c.addresses(), o.stream, o.partition, need_hw, o.rejoin_bound);
  if (!log.ok()) {
    r.errors.push_back(log.error().message());
    return r;
  }
  r.check = check_acked(acked, *log);
  return r;
}

double percentile(std::vector<double> values, double pct) {
  if (values.empty())
    return 0;
  std::sort(values.begin(), values.end());
  auto rank = static_cast<size_t>(std::ceil(pct / 100.0 * static_cast<double>(values.size())));
  return values[std::min(values.size() - 1, rank == 0 ? 0 : rank - 1)];
}

} // namespace levee::chaos
