// A clustered broker's stream table follows the applied metadata (README.md "Streams in
// the metadata", broker_state.hpp apply_metadata / check_leads).

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <caf/all.hpp>

#include "broker/broker_state.hpp"
#include "limits/log.hpp"

namespace levee::broker {

namespace {

/// Beside a copy's catalog file: the sequence of the metadata entry that created it, so
/// that a state older than the copy (the log replaying after a restart) is told from one
/// where the stream was deleted (or deleted and created again).
constexpr const char* created_at_file = "metadata.seq";

bool contains(const std::vector<uint64_t>& ids, uint64_t id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

/// Written to a temporary name and renamed, so a crash leaves the old file or the new.
bool write_created_at(const streams::stream& s, uint64_t seq) {
  namespace fs = std::filesystem;
  auto path = fs::path(s.directory()) / created_at_file;
  auto tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out{tmp, std::ios::trunc};
    out << seq << "\n";
    out.flush();
    if (!out)
      return false;
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  return !ec;
}

partition_role role_of(const broker_state& st, const metadata::metadata_state& m,
                       const metadata::stream_info& si, uint32_t p) {
  auto& part = si.partitions[p];
  partition_role r;
  r.self = st.setup.broker_id;
  r.leader = part.leader;
  if (auto b = m.brokers().find(part.leader); b != m.brokers().end())
    r.leader_address = b->second.address;
  r.leader_epoch = part.leader_epoch;
  r.partition_epoch = part.partition_epoch;
  r.replicas = part.replicas;
  r.isr = part.isr;
  r.min_insync_replicas = si.min_insync_replicas;
  return r;
}

bool same_role(const partition_role& a, const partition_role& b) {
  return a.self == b.self && a.leader == b.leader && a.leader_address == b.leader_address
         && a.leader_epoch == b.leader_epoch && a.partition_epoch == b.partition_epoch
         && a.replicas == b.replicas && a.isr == b.isr
         && a.min_insync_replicas == b.min_insync_replicas;
}

void reconcile(broker_self* self);

/// Deletes the local copy (its leaders stop first, as a DeleteStream's do), then looks at
/// the metadata again: a stream created anew under the name is made once this one is gone.
void delete_local(broker_self* self, const std::string& name) {
  auto& st = self->state;
  auto it = st.streams.find(name);
  it->second.deleting = true;
  ++st.deletes_running;
  std::printf("levee broker: stream %s: deleted in the metadata, deleting this broker's copy\n",
              name.c_str());
  std::fflush(stdout);
  stop_leaders(self, it->second, true, [self, name](bool) {
    auto& st = self->state;
    st.streams.erase(name);
    if (auto removed = st.setup.catalog->remove(name); !removed)
      LEVEE_ERROR("broker", "stream %s: deleting this broker's copy: %s",
                  name.c_str(), removed.to_string().c_str());
    forget_cursors(self, name);
    --st.deletes_running;
    count_streams(st);
    reconcile(self);
  });
}

void reconcile(broker_self* self) {
  auto& st = self->state;
  if (st.stopping || !st.meta)
    return;
  auto& m = *st.meta;
  const uint64_t me = st.setup.broker_id;
  // Copies the metadata no longer holds: deleted, or deleted and created again (a newer
  // created_at). A copy without its sidecar (made before this broker joined a cluster, or
  // a crash between the copy and its sidecar) is never deleted here: it stays dormant and
  // is said so once.
  std::vector<std::string> doomed;
  for (auto& [name, e] : st.streams) {
    if (is_internal_stream(name) || e.deleting || e.created_at == 0)
      continue;
    auto it = m.streams().find(name);
    bool gone = it == m.streams().end() ? m.applied_count() >= e.created_at
                                        : it->second.created_at > e.created_at;
    if (gone)
      doomed.push_back(name);
  }
  for (auto& name : doomed)
    delete_local(self, name);
  for (auto& [name, si] : m.streams()) {
    auto it = st.streams.find(name);
    if (it != st.streams.end() && it->second.deleting)
      continue;  // made once the old copy is gone (delete_local reconciles again)
    // A structured binding cannot be captured in C++17 (clang refuses it): a reference can.
    auto& info = si;
    auto replica_of = [&info, me](uint32_t p) {
      return p < info.partitions.size() && contains(info.partitions[p].replicas, me);
    };
    if (it == st.streams.end()) {
      // Every broker keeps a copy of every stream's catalog entry, so that its subject
      // index routes a publish (and answers not_leader with the leader's address); only
      // the partitions it is a replica of get a leader actor and are ever written.
      auto made = st.setup.catalog->create(si.config);
      if (!made) {
        LEVEE_ERROR("broker", "stream %s of the metadata: no local copy: %s",
                    name.c_str(), made.error().to_string().c_str());
        continue;
      }
      if (!write_created_at(**made, si.created_at))
        LEVEE_WARN("broker", "stream %s: cannot write %s in %s; after a restart "
                             "this copy stays dormant until its directory is removed",
                   name.c_str(), created_at_file, (*made)->directory().c_str());
      auto e = start_leaders(self, **made, replica_of);
      e.created_at = si.created_at;
      it = st.streams.emplace(name, std::move(e)).first;
    } else if (it->second.created_at != si.created_at) {
      // An older state than the copy (the log replaying after a restart), or a copy
      // without its sidecar: not served until the metadata catches up with it.
      if (it->second.in_metadata || it->second.created_at == 0)
        LEVEE_ERROR("broker", "stream %s: this broker's copy (created at entry "
                              "%llu) is not the metadata's (entry %llu): not served%s",
                    name.c_str(), static_cast<unsigned long long>(it->second.created_at),
                    static_cast<unsigned long long>(si.created_at),
                    it->second.created_at == 0
                       ? "; it predates the cluster: move its directory aside to take the "
                         "cluster's"
                       : " until the metadata catches up");
      it->second.in_metadata = false;
      continue;
    } else if (!it->second.in_metadata) {
      // A copy found at start (dormant): its replicas' leaders start now.
      auto created = it->second.created_at;
      auto e = start_leaders(self, *it->second.stream, replica_of);
      e.created_at = created;
      it->second = std::move(e);
    }
    auto& e = it->second;
    e.in_metadata = true;
    e.replication_factor = si.replication_factor;
    e.min_insync_replicas = si.min_insync_replicas;
    for (uint32_t p = 0; p < e.partitions.size() && p < si.partitions.size(); ++p) {
      auto role = role_of(st, m, si, p);
      auto& pe = e.partitions[p];
      if (pe.role && same_role(*pe.role, role))
        continue;
      pe.role = role;
      if (pe.leader)
        self->send(pe.leader, role_atom::value, role);
    }
  }
  count_streams(st);
}

} // namespace

uint64_t read_created_at(const streams::stream& s) {
  std::ifstream in{std::filesystem::path(s.directory()) / created_at_file};
  uint64_t seq = 0;
  if (!(in >> seq))
    return 0;
  return seq;
}

void apply_metadata(broker_self* self, metadata_view m) {
  self->state.meta = std::move(m);
  reconcile(self);
}

void apply_cursors(broker_self* self, const cursor_update& u) {
  auto& table = *self->state.cursors;
  auto& early = self->state.early_cursors;
  if (u.early) {
    for (auto& op : u.ops) {
      auto key = cursor_table::key_of(op.group, op.stream, op.partition);
      table.set(key, op.offset);
      early[key] = {op.sequence, op.offset};
    }
    return;
  }
  if (u.replace)
    table.clear();  // the local `__cursors` a broker alone kept is not the cluster's
  uint64_t through = 0;  // the entry this update brings the table to
  for (auto& op : u.ops) {
    through = std::max(through, op.sequence);
    if (op.group.empty()) {
      table.forget_stream(op.stream);
      continue;  // early commits of the stream after the delete are put back below
    }
    auto key = cursor_table::key_of(op.group, op.stream, op.partition);
    if (auto e = early.find(key); e != early.end() && e->second.first > op.sequence)
      continue;  // an older entry than the commit already answered
    table.set(key, op.offset);
  }
  // Early commits: applied here now (forgotten), or still ahead (kept in the table).
  for (auto it = early.begin(); it != early.end();) {
    if (it->second.first <= through) {
      it = early.erase(it);
    } else {
      table.set(it->first, it->second.second);
      ++it;
    }
  }
}

std::optional<rejection> check_leads(broker_self* self, const stream_entry& e, uint32_t p) {
  auto& st = self->state;
  auto& name = e.stream->config().name;
  if (!st.clustered() || is_internal_stream(name))
    return std::nullopt;
  const std::string which = name + "/" + std::to_string(p);
  if (!e.in_metadata || p >= e.partitions.size() || !e.partitions[p].role)
    return rejection(rejection::of(code::unavailable)
                       .retry_after_ms(100)
                       .detail("partition " + which + ": this broker has not applied its "
                               "metadata yet (it is starting, or replaying the log); retry"));
  auto& r = *e.partitions[p].role;
  if (r.leader == st.setup.broker_id)
    return std::nullopt;
  if (r.leader == 0)
    return rejection(rejection::of(code::not_leader)
                       .detail("partition " + which + " is offline: no member of its ISR "
                               + metadata::ids_text(r.isr) + " is alive, and no other replica may lead "
                               "(no unclean election); it leads again once one of them is back"));
  return rejection(rejection::of(code::not_leader)
                     .leader_hint(r.leader_address)
                     .detail("broker " + std::to_string(st.setup.broker_id) + " does not lead "
                             + which + "; broker " + std::to_string(r.leader) + " at "
                             + r.leader_address + " does (leader epoch "
                             + std::to_string(r.leader_epoch) + ")"));
}

} // namespace levee::broker
