#include "metadata/metadata_state.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <tuple>

#include <memory>

#include <openssl/evp.h>

#include "metadata/metadata.pb.h"

namespace levee::metadata {

namespace {

constexpr std::string_view what_to_do_when_failed =
    "this node's metadata can no longer be trusted: stop it, move its metadata data dir "
    "aside and start it empty so that it rejoins from the leader's snapshot";

pb::BrokerState to_pb(broker_state s) {
  switch (s) {
    case broker_state::fenced: return pb::BROKER_FENCED;
    case broker_state::unreachable: return pb::BROKER_UNREACHABLE;
    case broker_state::alive: break;
  }
  return pb::BROKER_ALIVE;
}

broker_state from_pb(pb::BrokerState s) {
  switch (s) {
    case pb::BROKER_FENCED: return broker_state::fenced;
    case pb::BROKER_UNREACHABLE: return broker_state::unreachable;
    default: return broker_state::alive;
  }
}

void to_pb(const partition_info& p, pb::Partition& out) {
  for (uint64_t r : p.replicas)
    out.add_replicas(r);
  out.set_leader(p.leader);
  for (uint64_t r : p.isr)
    out.add_isr(r);
  out.set_leader_epoch(p.leader_epoch);
  out.set_partition_epoch(p.partition_epoch);
}

partition_info from_pb(const pb::Partition& p) {
  partition_info out;
  out.replicas.assign(p.replicas().begin(), p.replicas().end());
  out.leader = p.leader();
  out.isr.assign(p.isr().begin(), p.isr().end());
  out.leader_epoch = p.leader_epoch();
  out.partition_epoch = p.partition_epoch();
  return out;
}

bool contains(const std::vector<uint64_t>& ids, uint64_t id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

/// Partition `partition` of `stream`, or null with the not_found naming what is missing.
partition_info* find_partition(std::map<std::string, stream_info>& streams, const std::string& stream,
                               uint32_t partition, std::optional<rejection>& refusal) {
  auto s = streams.find(stream);
  if (s == streams.end()) {
    refusal = rejection::of(code::not_found).detail("no stream '" + stream + "'");
    return nullptr;
  }
  if (partition >= s->second.partitions.size()) {
    refusal = rejection::of(code::not_found)
        .detail("stream '" + stream + "' has no partition " + std::to_string(partition));
    return nullptr;
  }
  return &s->second.partitions[partition];
}

} // namespace

std::string ids_text(const std::vector<uint64_t>& ids) {
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i)
    out += (i ? "," : "") + std::to_string(ids[i]);
  return out + "]";
}

chain_hash next_chain_hash(const chain_hash& head, std::string_view command) {
  // OpenSSL's SHA-256 (Debian libssl-dev) rather than a hand-written one: the chain must
  // tell two histories apart, which a 32-bit checksum does only most of the time.
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx{EVP_MD_CTX_new(), &EVP_MD_CTX_free};
  chain_hash out{};
  unsigned int n = 0;
  bool ok = ctx && EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) == 1 &&
            EVP_DigestUpdate(ctx.get(), head.data(), head.size()) == 1 &&
            EVP_DigestUpdate(ctx.get(), command.data(), command.size()) == 1 &&
            EVP_DigestFinal_ex(ctx.get(), out.data(), &n) == 1 && n == out.size();
  if (!ok)
    std::abort();  // only out of memory gets here; a wrong hash would fork the state
  return out;
}

std::string short_hex(const chain_hash& h) {
  char text[17];
  for (int i = 0; i < 8; ++i)
    std::snprintf(text + 2 * i, 3, "%02x", h[static_cast<size_t>(i)]);
  return std::string(text, 16);
}

const char* to_string(broker_state s) noexcept {
  switch (s) {
    case broker_state::fenced: return "fenced";
    case broker_state::unreachable: return "unreachable";
    case broker_state::alive: break;
  }
  return "alive";
}

bool operator==(const broker_info& a, const broker_info& b) {
  return a.id == b.id && a.address == b.address && a.state == b.state && a.epoch == b.epoch;
}
bool operator==(const partition_info& a, const partition_info& b) {
  return a.replicas == b.replicas && a.leader == b.leader && a.isr == b.isr &&
         a.leader_epoch == b.leader_epoch && a.partition_epoch == b.partition_epoch;
}
bool operator==(const stream_info& a, const stream_info& b) {
  return a.config == b.config && a.replication_factor == b.replication_factor &&
         a.min_insync_replicas == b.min_insync_replicas && a.partitions == b.partitions &&
         a.created_at == b.created_at;
}

bool operator<(const cursor_key& a, const cursor_key& b) {
  return std::tie(a.stream, a.partition, a.group) < std::tie(b.stream, b.partition, b.group);
}
bool operator==(const cursor_key& a, const cursor_key& b) {
  return a.stream == b.stream && a.partition == b.partition && a.group == b.group;
}

std::string encode_command(const command& c) {
  pb::Command out;
  std::visit(
      [&](const auto& cmd) {
        using T = std::decay_t<decltype(cmd)>;
        if constexpr (std::is_same_v<T, register_broker>) {
          auto* m = out.mutable_register_broker();
          m->set_id(cmd.id);
          m->set_address(cmd.address);
        } else if constexpr (std::is_same_v<T, create_stream>) {
          auto* m = out.mutable_create_stream();
          m->set_config_text(streams::encode_catalog_entry(cmd.config));
          m->set_replication_factor(cmd.replication_factor);
          m->set_min_insync_replicas(cmd.min_insync_replicas);
        } else if constexpr (std::is_same_v<T, delete_stream>) {
          out.mutable_delete_stream()->set_name(cmd.name);
        } else if constexpr (std::is_same_v<T, mark_broker>) {
          auto* m = out.mutable_mark_broker();
          m->set_id(cmd.id);
          m->set_expected_broker_epoch(cmd.expected_epoch);
          m->set_state(to_pb(cmd.state));
        } else if constexpr (std::is_same_v<T, commit_cursor>) {
          auto* m = out.mutable_commit_cursor();
          m->set_stream(cmd.key.stream);
          m->set_partition(cmd.key.partition);
          m->set_group(cmd.key.group);
          m->set_offset(cmd.offset);
          m->set_leader(cmd.leader);
          m->set_leader_epoch(cmd.leader_epoch);
          m->set_max_cursors(cmd.max_cursors);
        } else if constexpr (std::is_same_v<T, remove_broker>) {
          out.mutable_remove_broker()->set_id(cmd.id);
        } else {
          auto* m = out.mutable_change_partition();
          m->set_stream(cmd.stream);
          m->set_partition(cmd.partition);
          m->set_expected_partition_epoch(cmd.expected_partition_epoch);
          m->set_leader(cmd.leader);
          for (uint64_t r : cmd.isr)
            m->add_isr(r);
        }
      },
      c);
  return out.SerializeAsString();
}

std::string encode_entry(std::string_view command_bytes, const chain_hash& expected) {
  pb::Entry e;
  e.set_format_version(format_version);
  e.set_expected_hash(expected.data(), expected.size());
  e.set_command(command_bytes.data(), command_bytes.size());
  return e.SerializeAsString();
}

status metadata_state::fail(status s) {
  failure_ = std::move(s);
  return failure_;
}

result<apply_outcome> metadata_state::apply(std::string_view entry) {
  if (!failure_.ok())
    return failure_;
  const uint64_t position = applied_ + 1;
  const std::string where = "metadata entry " + std::to_string(position);
  pb::Entry e;
  if (!e.ParseFromArray(entry.data(), static_cast<int>(entry.size())))
    return fail(status::error(code::storage_error,
                              where + " (" + std::to_string(entry.size()) +
                                  " bytes) does not parse as a metadata Entry; " +
                                  std::string{what_to_do_when_failed}));
  if (e.format_version() != format_version)
    return fail(status::error(code::unsupported_version,
                              where + " has format version " +
                                  std::to_string(e.format_version()) + ", this build reads " +
                                  std::to_string(format_version) +
                                  "; run the same Levee version on every broker of the cluster"));
  if (e.expected_hash().size() != head_.size())
    return fail(status::error(code::storage_error,
                              where + " carries a chain hash of " +
                                  std::to_string(e.expected_hash().size()) + " bytes, not " +
                                  std::to_string(head_.size()) + "; " +
                                  std::string{what_to_do_when_failed}));
  chain_hash expected;
  std::copy(e.expected_hash().begin(), e.expected_hash().end(), expected.begin());
  if (expected != head_)
    return fail(status::error(code::storage_error,
                              "metadata diverged at " + where + ": its proposer expected chain head " +
                                  short_hex(expected) + " but this node applied a sequence ending in " +
                                  short_hex(head_) + "; " + std::string{what_to_do_when_failed}));
  auto cmd = decode_command(e.command(), where);
  if (!cmd)
    return fail(cmd.error());
  applying_ = position;
  std::optional<rejection> refusal =
      std::visit([this](const auto& c) { return apply_command(c); }, cmd.value());
  head_ = next_chain_hash(head_, e.command());
  applied_ = position;
  return apply_outcome{position, std::move(cmd.value()), std::move(refusal)};
}

result<command> decode_command(const std::string& bytes, const std::string& where) {
  pb::Command c;
  if (!c.ParseFromString(bytes))
    return status::error(code::storage_error,
                         where + "'s command does not parse; " + std::string{what_to_do_when_failed});
  switch (c.kind_case()) {
    case pb::Command::kRegisterBroker:
      return command{register_broker{c.register_broker().id(), c.register_broker().address()}};
    case pb::Command::kCreateStream: {
      // The proposer validated the config; one that does not read back here was written by
      // a build with other stream rules, which the format version should have caught.
      auto config = streams::decode_catalog_entry(c.create_stream().config_text(), where);
      if (!config)
        return config.error();
      return command{create_stream{config.value(), c.create_stream().replication_factor(),
                                   c.create_stream().min_insync_replicas()}};
    }
    case pb::Command::kDeleteStream:
      return command{delete_stream{c.delete_stream().name()}};
    case pb::Command::kChangePartition: {
      const auto& m = c.change_partition();
      return command{change_partition{m.stream(), m.partition(), m.expected_partition_epoch(), m.leader(),
                                      {m.isr().begin(), m.isr().end()}}};
    }
    case pb::Command::kMarkBroker: {
      const auto& m = c.mark_broker();
      return command{mark_broker{m.id(), m.expected_broker_epoch(), from_pb(m.state())}};
    }
    case pb::Command::kCommitCursor: {
      const auto& m = c.commit_cursor();
      return command{commit_cursor{{m.stream(), m.partition(), m.group()}, m.offset(), m.leader(),
                                   m.leader_epoch(), m.max_cursors()}};
    }
    case pb::Command::kRemoveBroker:
      return command{remove_broker{c.remove_broker().id()}};
    case pb::Command::KIND_NOT_SET:
      break;
  }
  return status::error(code::unsupported_version,
                       where + " holds a command this build does not know (format version " +
                           std::to_string(format_version) +
                           "); run the same Levee version on every broker of the cluster");
}

std::optional<rejection> metadata_state::apply_command(const register_broker& c) {
  if (c.id == 0)
    return rejection::of(code::bad_request).detail("broker id 0 is reserved; give the broker an id from 1");
  if (removed_.count(c.id) != 0)
    return rejection(rejection::of(code::precondition_failed)
        .detail("broker " + std::to_string(c.id) + " was removed from the cluster and its id is not "
                "reused; give the broker a new broker.id and an empty data_dir, and join it again"));
  auto [it, added] = brokers_.try_emplace(c.id);
  auto& b = it->second;
  if (!added && b.address == c.address && b.state == broker_state::alive)
    return std::nullopt;  // a retry, or a heartbeat's register: nothing changes
  if (!added)
    ++b.epoch;  // a mark decided before this register must not apply after it
  b.id = c.id;
  b.address = c.address;  // a restarted broker may come back on another address
  b.state = broker_state::alive;
  return std::nullopt;
}

std::optional<rejection> metadata_state::apply_command(const mark_broker& c) {
  auto b = brokers_.find(c.id);
  if (b == brokers_.end())
    return rejection(rejection::of(code::not_found).detail("no broker " + std::to_string(c.id) + " to mark"));
  if (c.expected_epoch != b->second.epoch)
    return rejection(rejection::of(code::precondition_failed)
        .observed(c.expected_epoch)
        .max(b->second.epoch)
        .detail("broker " + std::to_string(c.id) + " is at epoch " + std::to_string(b->second.epoch) +
                ", the mark was decided at epoch " + std::to_string(c.expected_epoch) +
                "; read the broker again and decide anew"));
  if (b->second.state == c.state)
    return std::nullopt;
  b->second.state = c.state;
  ++b->second.epoch;
  return std::nullopt;
}

// -- membership (README.md "Membership") ------------------------------------------------

std::vector<std::string> partitions_replicated_on(const metadata_state& state, uint64_t id) {
  std::vector<std::string> out;
  for (const auto& [name, s] : state.streams())
    for (size_t i = 0; i < s.partitions.size(); ++i)
      if (contains(s.partitions[i].replicas, id))
        out.push_back(name + "/" + std::to_string(i));
  return out;
}

std::optional<rejection> metadata_state::apply_command(const remove_broker& c) {
  if (brokers_.find(c.id) == brokers_.end())
    return rejection(rejection::of(code::not_found)
        .detail("no broker " + std::to_string(c.id) + " in the metadata to remove; `levee cluster` lists them"));
  auto held = partitions_replicated_on(*this, c.id);
  if (!held.empty()) {
    std::string which;
    for (size_t i = 0; i < held.size() && i < 5; ++i)
      which += (i ? ", " : "") + held[i];
    if (held.size() > 5)
      which += " and " + std::to_string(held.size() - 5) + " more";
    // observed: the partitions it holds; max: 0, what a removal needs.
    return rejection(rejection::of(code::precondition_failed)
        .observed(held.size())
        .max(0)
        .detail("broker " + std::to_string(c.id) + " is a replica of " + std::to_string(held.size()) +
                " partition(s) (" + which + "); removing it would leave them with fewer replicas: "
                "delete those streams (or create them anew elsewhere) first, then remove it"));
  }
  brokers_.erase(c.id);
  removed_.insert(c.id);
  return std::nullopt;
}

std::optional<rejection> metadata_state::apply_command(const create_stream& c) {
  const auto& name = c.config.name;
  if (c.min_insync_replicas < 1 || c.min_insync_replicas > c.replication_factor)
    return rejection(rejection::of(code::bad_request)
        .detail("stream '" + name + "': min_insync_replicas " + std::to_string(c.min_insync_replicas) +
                " must be between 1 and its replication_factor " + std::to_string(c.replication_factor)));
  auto existing = streams_.find(name);
  if (existing != streams_.end()) {
    const auto& s = existing->second;
    if (s.config == c.config && s.replication_factor == c.replication_factor &&
        s.min_insync_replicas == c.min_insync_replicas)
      return std::nullopt;  // the same create applied again (a retry): nothing to do
    return rejection(rejection::of(code::precondition_failed)
        .detail("stream '" + name + "' exists with other settings; delete it first or pick another name")
        );
  }
  auto placed = place_partitions(brokers_, streams_, static_cast<uint32_t>(c.config.partitions),
                                 c.replication_factor);
  if (!placed)
    return placed.error().as_rejection();
  stream_info s;
  s.config = c.config;
  s.replication_factor = c.replication_factor;
  s.min_insync_replicas = c.min_insync_replicas;
  s.partitions = std::move(placed.value());
  s.created_at = applying_;
  streams_.emplace(name, std::move(s));
  return std::nullopt;
}

std::optional<rejection> metadata_state::apply_command(const delete_stream& c) {
  if (streams_.erase(c.name) == 0)
    return rejection(rejection::of(code::not_found).detail("no stream '" + c.name + "' to delete"));
  forget_cursors(c.name);  // a stream created again under the name starts without them
  return std::nullopt;
}

// -- cursors (README.md "Cursors") ---------------------------------------------------------

void metadata_state::forget_cursors(const std::string& stream) {
  for (auto it = cursors_.lower_bound(cursor_key{stream, 0, {}});
       it != cursors_.end() && it->first.stream == stream;)
    it = cursors_.erase(it);
}

std::optional<rejection> metadata_state::apply_command(const commit_cursor& c) {
  const auto& k = c.key;
  const std::string which = k.stream + "/" + std::to_string(k.partition);
  std::optional<rejection> refusal;
  const auto* found = find_partition(streams_, k.stream, k.partition, refusal);
  if (found == nullptr)
    return refusal;
  if (k.group.empty() || k.group.size() > max_cursor_group_bytes)
    return rejection(rejection::of(code::bad_request)
        .observed(k.group.size())
        .max(max_cursor_group_bytes)
        .detail("a cursor's group name must have 1 to " + std::to_string(max_cursor_group_bytes) + " bytes"));
  const auto& p = *found;
  if (c.leader != p.leader || c.leader_epoch != p.leader_epoch) {
    // Decided by a leader that has been replaced since (or by one at an older epoch): the
    // new leader may have answered newer commits of the group already.
    auto r = rejection::of(code::not_leader)
        .detail("broker " + std::to_string(c.leader) + " committed at leader epoch " +
                std::to_string(c.leader_epoch) + " of " + which + ", which " +
                (p.leader == 0 ? std::string{"is offline now"}
                               : "broker " + std::to_string(p.leader) + " leads now at epoch " +
                                     std::to_string(p.leader_epoch)) +
                "; commit at the leader");
    if (auto b = brokers_.find(p.leader); p.leader != 0 && b != brokers_.end())
      r.leader_hint(b->second.address);
    return rejection(r);
  }
  auto at = cursors_.find(k);
  if (at != cursors_.end()) {
    at->second = c.offset;
    return std::nullopt;
  }
  if (cursors_.size() >= c.max_cursors)
    return rejection(rejection::of(code::memory_budget_exhausted)
        .limit("broker.max_cursors")
        .observed(cursors_.size() + 1)
        .max(c.max_cursors)
        .detail("the cluster holds as many cursors as it may; commit to an existing cursor, "
                "or raise broker.max_cursors"));
  cursors_.emplace(k, c.offset);
  return std::nullopt;
}

metadata_state metadata_state::copy_without_cursors() {
  // Moved out for the copy and back: the copy is O(brokers + streams), whatever the
  // number of cursors, and every other member is copied as the class defines it.
  struct put_back {
    metadata_state& s;
    std::map<cursor_key, uint64_t> cursors;
    ~put_back() { s.cursors_ = std::move(cursors); }
  } guard{*this, std::move(cursors_)};
  cursors_.clear();
  return *this;
}

std::optional<rejection> metadata_state::apply_command(const change_partition& c) {
  std::optional<rejection> refusal;
  auto* found = find_partition(streams_, c.stream, c.partition, refusal);
  if (found == nullptr)
    return refusal;
  auto& p = *found;
  const std::string which = c.stream + "/" + std::to_string(c.partition);
  if (c.expected_partition_epoch != p.partition_epoch)
    return rejection(rejection::of(code::precondition_failed)
        .observed(c.expected_partition_epoch)
        .max(p.partition_epoch)
        .detail("partition " + which + " is at epoch " + std::to_string(p.partition_epoch) +
                ", the change was decided at epoch " + std::to_string(c.expected_partition_epoch) +
                "; read the partition again and decide anew")
        );
  // Leader 0 is offline (failover_changes): the ISR stays, naming who may lead again.
  if (c.isr.empty() || (c.leader != 0 && !contains(c.isr, c.leader)))
    return rejection(rejection::of(code::bad_request)
        .detail("partition " + which + ": the leader " + std::to_string(c.leader) +
                " must be in the ISR " + ids_text(c.isr)));
  for (size_t i = 0; i < c.isr.size(); ++i)
    if (std::find(c.isr.begin(), c.isr.begin() + static_cast<std::ptrdiff_t>(i), c.isr[i])
        != c.isr.begin() + static_cast<std::ptrdiff_t>(i))
      return rejection(rejection::of(code::bad_request)
          .detail("partition " + which + ": broker " + std::to_string(c.isr[i]) +
                  " is listed twice in the ISR " + ids_text(c.isr) + "; list each once"));
  for (uint64_t r : c.isr)
    if (!contains(p.replicas, r))
      return rejection(rejection::of(code::bad_request)
          .detail("partition " + which + ": ISR member " + std::to_string(r) +
                  " is not one of its replicas " + ids_text(p.replicas)));
  if (c.leader != p.leader)
    ++p.leader_epoch;
  p.leader = c.leader;
  p.isr = c.isr;
  ++p.partition_epoch;
  return std::nullopt;
}

std::vector<change_partition> failover_changes(const metadata_state& state) {
  auto alive = [&](uint64_t id) {
    auto b = state.brokers().find(id);
    return b != state.brokers().end() && b->second.state == broker_state::alive;
  };
  std::vector<change_partition> out;
  for (const auto& [name, s] : state.streams())
    for (size_t i = 0; i < s.partitions.size(); ++i) {
      const auto& p = s.partitions[i];
      std::vector<uint64_t> isr;
      for (uint64_t r : p.isr)
        if (alive(r))
          isr.push_back(r);
      uint64_t leader = p.leader;
      if (leader == 0 || !alive(leader)) {
        leader = 0;
        for (uint64_t r : p.replicas)  // replica order: the preferred leader first
          if (leader == 0 && contains(isr, r))
            leader = r;
      }
      if (leader == 0) {
        if (p.leader == 0)
          continue;  // offline already: waits for an ISR member to come back
        isr = p.isr;  // offline: the ISR names who may lead again
      }
      if (leader == p.leader && isr == p.isr)
        continue;
      out.push_back(change_partition{name, static_cast<uint32_t>(i), p.partition_epoch, leader,
                                     std::move(isr)});
    }
  return out;
}

result<std::vector<partition_info>> place_partitions(const std::map<uint64_t, broker_info>& brokers,
                                                     const std::map<std::string, stream_info>& streams,
                                                     uint32_t partitions,
                                                     uint32_t replication_factor) {
  struct load {
    uint64_t id;
    uint64_t replicas = 0;
    uint64_t leaders = 0;
  };
  std::vector<load> alive;
  for (const auto& [id, b] : brokers)
    if (b.state == broker_state::alive)
      alive.push_back(load{id});
  if (replication_factor < 1 || alive.size() < replication_factor)
    return status::refused(
        rejection::of(code::insufficient_replicas)
            .observed(alive.size())
            .max(replication_factor)
            .detail("a replication factor of " + std::to_string(replication_factor) + " needs as many alive brokers; " +
                    std::to_string(alive.size()) + " are registered: start more brokers or lower the factor"));
  auto find = [&](uint64_t id) -> load* {
    for (auto& l : alive)
      if (l.id == id)
        return &l;
    return nullptr;
  };
  for (const auto& [name, s] : streams)
    for (const auto& p : s.partitions) {
      for (uint64_t r : p.replicas)
        if (auto* l = find(r))
          ++l->replicas;
      if (auto* l = find(p.leader))
        ++l->leaders;
    }
  std::vector<partition_info> out;
  for (uint32_t n = 0; n < partitions; ++n) {
    std::sort(alive.begin(), alive.end(), [](const load& a, const load& b) {
      return std::tie(a.replicas, a.leaders, a.id) < std::tie(b.replicas, b.leaders, b.id);
    });
    std::vector<load*> chosen;
    for (uint32_t i = 0; i < replication_factor; ++i)
      chosen.push_back(&alive[i]);
    std::stable_sort(chosen.begin(), chosen.end(), [](const load* a, const load* b) {
      return std::tie(a->leaders, a->id) < std::tie(b->leaders, b->id);
    });
    partition_info p;
    for (auto* l : chosen) {
      p.replicas.push_back(l->id);
      ++l->replicas;
    }
    ++chosen.front()->leaders;
    p.leader = p.replicas.front();
    p.isr = p.replicas;
    out.push_back(std::move(p));
  }
  return out;
}

std::string metadata_state::encode_snapshot() const {
  pb::Snapshot s;
  s.set_format_version(format_version);
  s.set_chain_head(head_.data(), head_.size());
  s.set_applied_count(applied_);
  for (const auto& [id, b] : brokers_) {
    auto* m = s.add_brokers();
    m->set_id(b.id);
    m->set_address(b.address);
    m->set_state(to_pb(b.state));
    m->set_broker_epoch(b.epoch);
  }
  for (uint64_t id : removed_)
    s.add_removed_brokers(id);
  for (const auto& [name, st] : streams_) {
    auto* m = s.add_streams();
    m->set_config_text(streams::encode_catalog_entry(st.config));
    m->set_replication_factor(st.replication_factor);
    m->set_min_insync_replicas(st.min_insync_replicas);
    m->set_created_at(st.created_at);
    for (const auto& p : st.partitions)
      to_pb(p, *m->add_partitions());
  }
  for (const auto& [k, offset] : cursors_) {
    auto* m = s.add_cursors();
    m->set_stream(k.stream);
    m->set_partition(k.partition);
    m->set_group(k.group);
    m->set_offset(offset);
  }
  return s.SerializeAsString();
}

status metadata_state::restore(std::string_view snapshot) {
  const std::string what = "metadata snapshot (" + std::to_string(snapshot.size()) + " bytes)";
  pb::Snapshot s;
  if (!s.ParseFromArray(snapshot.data(), static_cast<int>(snapshot.size())))
    return status::error(code::storage_error,
                         what + " does not parse; " + std::string{what_to_do_when_failed});
  if (s.format_version() != format_version)
    return status::error(code::unsupported_version,
                         what + " has format version " + std::to_string(s.format_version()) +
                             ", this build reads " + std::to_string(format_version) +
                             "; run the same Levee version on every broker of the cluster");
  if (s.chain_head().size() != head_.size())
    return status::error(code::storage_error, what + " has a chain head of " +
                                                  std::to_string(s.chain_head().size()) + " bytes; " +
                                                  std::string{what_to_do_when_failed});
  std::map<uint64_t, broker_info> brokers;
  for (const auto& b : s.brokers())
    brokers[b.id()] = broker_info{b.id(), b.address(), from_pb(b.state()), b.broker_epoch()};
  std::map<std::string, stream_info> streams;
  for (const auto& m : s.streams()) {
    auto config = streams::decode_catalog_entry(m.config_text(), what);
    if (!config)
      return config.error();
    stream_info st;
    st.config = config.value();
    st.replication_factor = m.replication_factor();
    st.min_insync_replicas = m.min_insync_replicas();
    st.created_at = m.created_at();
    for (const auto& p : m.partitions())
      st.partitions.push_back(from_pb(p));
    auto name = st.config.name;
    if (!streams.emplace(name, std::move(st)).second)
      return status::error(code::storage_error,
                           "the metadata snapshot holds stream " + name + " twice; it is damaged: "
                           "move this node's metadata data dir aside so that it rejoins from "
                           "the leader");
  }
  std::map<cursor_key, uint64_t> cursors;
  for (const auto& m : s.cursors())
    cursors[cursor_key{m.stream(), m.partition(), m.group()}] = m.offset();
  brokers_ = std::move(brokers);
  streams_ = std::move(streams);
  cursors_ = std::move(cursors);
  removed_ = std::set<uint64_t>(s.removed_brokers().begin(), s.removed_brokers().end());
  std::copy(s.chain_head().begin(), s.chain_head().end(), head_.begin());
  applied_ = s.applied_count();
  failure_ = status{};
  return status{};
}

} // namespace levee::metadata
