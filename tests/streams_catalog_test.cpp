// The stream catalog and stream config on real files (streams/stream_catalog,
// streams/stream_config): create, reopen, delete, damage that leaves the rest loading.

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "limits/clock.hpp"
#include "log_test_support.hpp"
#include "persistence/crc32c.hpp"
#include "streams/partition_choice.hpp"
#include "streams/stream_catalog.hpp"

namespace levee::streams {
namespace {

using persistence::files_with;
using persistence::temp_dir;
namespace fs = std::filesystem;

stream_config make_config(const std::string& name, const std::string& subject, uint64_t partitions = 1) {
  stream_config c;
  c.name = name;
  c.subject = subject;
  c.partitions = partitions;
  c.fsync = persistence::fsync_policy::none;
  c.max_segment_bytes = 4096;
  c.max_message_bytes = 1024;
  return c;
}

struct catalog_fixture : ::testing::Test {
  temp_dir dir;
  manual_clock clock;

  std::unique_ptr<stream_catalog> open_catalog(persistence::file_io* io = nullptr) {
    catalog_options o;
    o.data_dir = (dir.path / "data").string();
    o.clock = &clock;
    o.io = io;
    auto c = stream_catalog::open(o);
    EXPECT_TRUE(c.ok()) << c.error().to_string();
    return c.ok() ? std::move(*c) : nullptr;
  }

  /// Publishes `n` messages of ~100 bytes to partition `p` of `s`, one append each.
  static void publish(stream& s, uint32_t p, int n) {
    auto log = s.partition(p);
    ASSERT_TRUE(log.ok()) << log.error().to_string();
    uint64_t seed = 0x9E3779B97F4A7C15ull + p;
    for (int i = 0; i < n; ++i) {
      std::string body = "message " + std::to_string(i) + " ";
      while (body.size() < 100) {  // bytes LZ4 cannot shrink: segments fill predictably
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        body += static_cast<char>('!' + (seed >> 33) % 90);
      }
      message m;
      m.body = body;
      ASSERT_TRUE((*log)->append(m).ok());
    }
  }

  static size_t count(stream& s, uint32_t p) {
    auto log = s.partition(p);
    if (!log.ok())
      return 0;
    size_t n = 0;
    read_request req;
    for (;;) {
      auto r = (*log)->read(req);
      if (!r.ok() || r->messages.empty())
        return n;
      n += r->messages.size();
      req.from = r->next_offset;
    }
  }
};

TEST_F(catalog_fixture, CreatedStreamsLoadAgainAfterReopen) {
  auto a = make_config("orders", "orders.>", 3);
  a.on_full = on_full_policy::reject;
  a.retention_max_messages = 1000;
  a.retention_max_age_ms = 3'600'000;
  a.compact_by_key = true;
  a.dedupe_window_ms = 5000;
  a.limits["mailbox_capacity"] = 64;
  a.limits["rate_msgs_per_sec"] = 500;
  auto b = make_config("payments_eu", "payments.eu.*");
  {
    auto c = open_catalog();
    ASSERT_TRUE(c);
    auto sa = c->create(a);
    ASSERT_TRUE(sa.ok()) << sa.error().to_string();
    EXPECT_EQ((*sa)->partition_count(), 3u);
    ASSERT_TRUE(c->create(b).ok());
    publish(**sa, 2, 10);
    EXPECT_TRUE(c->problems().empty());
  }
  EXPECT_TRUE(fs::exists(dir.path / "data" / "orders" / "stream.conf"));
  EXPECT_FALSE(fs::exists(dir.path / "data" / "orders" / "stream.conf.tmp"));
  auto c = open_catalog();
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->problems().empty());
  auto list = c->list();
  ASSERT_EQ(list.size(), 2u);
  auto* sa = c->find("orders");
  ASSERT_NE(sa, nullptr);
  EXPECT_EQ(sa->config(), a);
  EXPECT_EQ(c->find("payments_eu")->config(), b);
  EXPECT_EQ(count(*sa, 2), 10u);
  EXPECT_EQ(count(*sa, 0), 0u);
  auto limits = effective_limits(sa->config(), actor_limits::defaults());
  EXPECT_EQ(limits.mailbox_capacity, 64u);
  EXPECT_EQ(limits.rate_msgs_per_sec, 500u);
  EXPECT_EQ(limits.mailbox_capacity_bytes, actor_limits::defaults().mailbox_capacity_bytes);
}

TEST_F(catalog_fixture, PublishesFindEveryMatchingStream) {
  auto c = open_catalog();
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->create(make_config("all_orders", "orders.>")).ok());
  ASSERT_TRUE(c->create(make_config("created", "orders.*.created")).ok());
  ASSERT_TRUE(c->create(make_config("eu", "orders.eu.*")).ok());
  ASSERT_TRUE(c->create(make_config("payments", "payments.>")).ok());
  std::vector<stream*> out;
  c->match(*subject::parse("orders.eu.created"), out);
  std::vector<std::string> names;
  for (auto* s : out)
    names.push_back(s->config().name);
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"all_orders", "created", "eu"}));
  c->match(*subject::parse("orders.us.created"), out);
  EXPECT_EQ(out.size(), 2u);
  c->match(*subject::parse("audit"), out);
  EXPECT_TRUE(out.empty());
  ASSERT_TRUE(c->remove("created").ok());
  c->match(*subject::parse("orders.us.created"), out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0]->config().name, "all_orders");
}

TEST_F(catalog_fixture, CreateRefusesBadConfigsClearly) {
  auto c = open_catalog();
  ASSERT_TRUE(c);
  auto bad_name = c->create(make_config("orders/eu", "orders.>"));
  ASSERT_FALSE(bad_name.ok());
  EXPECT_EQ(bad_name.error().code(), code::bad_request);
  EXPECT_NE(bad_name.error().message().find("at position 6: a stream name is letters"),
            std::string::npos)
    << bad_name.error().message();
  auto bad_subject = c->create(make_config("orders", "orders..eu"));
  ASSERT_FALSE(bad_subject.ok());
  EXPECT_NE(bad_subject.error().message().find("subject 'orders..eu': at position 7: empty token"),
            std::string::npos)
    << bad_subject.error().message();
  auto big_segments = make_config("orders", "orders.>");
  big_segments.retention_max_bytes = 8192;
  big_segments.max_segment_bytes = 16384;
  auto refused = c->create(big_segments);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message().find("max_segment_bytes (16384) must be at most "
                                           "retention_max_bytes (8192)"),
            std::string::npos)
    << refused.error().message();
  auto unknown_limit = make_config("orders", "orders.>");
  unknown_limit.limits["mailbox_size"] = 3;
  auto r = c->create(unknown_limit);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("unknown limit 'mailbox_size'"), std::string::npos);
  auto zero = make_config("orders", "orders.>", 0);
  r = c->create(zero);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("partitions = 0: must be between 1 and 1024"),
            std::string::npos)
    << r.error().message();
  ASSERT_TRUE(c->create(make_config("orders", "orders.>")).ok());
  auto twice = c->create(make_config("orders", "other.>"));
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.error().code(), code::bad_request);
  EXPECT_NE(twice.error().message().find("stream 'orders' exists"), std::string::npos);
  EXPECT_EQ(c->list().size(), 1u);
  EXPECT_FALSE(fs::exists(dir.path / "data" / "orders.creating"));
}

TEST_F(catalog_fixture, DeleteRemovesTheStreamAndItsMessages) {
  auto c = open_catalog();
  ASSERT_TRUE(c);
  auto s = c->create(make_config("orders", "orders.>", 2));
  ASSERT_TRUE(s.ok());
  publish(**s, 0, 5);
  auto missing = c->remove("nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.code(), code::not_found);
  ASSERT_TRUE(c->remove("orders").ok());
  EXPECT_EQ(c->find("orders"), nullptr);
  EXPECT_FALSE(fs::exists(dir.path / "data" / "orders"));
  // The name is free again, and the new stream starts empty.
  auto again = c->create(make_config("orders", "orders.>", 2));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(count(**again, 0), 0u);
}

TEST_F(catalog_fixture, WhatACrashLeftHalfDoneIsRemovedOnOpen) {
  fs::create_directories(dir.path / "data" / "orders.creating" / "partition-0");
  fs::create_directories(dir.path / "data" / "old.deleting" / "partition-0");
  std::ofstream{dir.path / "data" / "README"} << "not a stream";  // files are not streams
  fs::create_directories(dir.path / "data" / "lost+found");
  fs::create_directories(dir.path / "data" / "orders.old");  // someone's copy: said, kept
  auto c = open_catalog();
  ASSERT_TRUE(c);
  ASSERT_EQ(c->problems().size(), 1u);
  EXPECT_EQ(c->problems()[0].path, (dir.path / "data" / "orders.old").string());
  EXPECT_NE(c->problems()[0].error.message().find("is not a stream's directory"), std::string::npos);
  EXPECT_TRUE(fs::exists(dir.path / "data" / "orders.old"));
  EXPECT_TRUE(c->list().empty());
  EXPECT_FALSE(fs::exists(dir.path / "data" / "orders.creating"));
  EXPECT_FALSE(fs::exists(dir.path / "data" / "old.deleting"));
}

TEST_F(catalog_fixture, TheCatalogFileIsWrittenAtomically) {
  // Every file operation in order: the catalog file goes to a temporary file, is synced,
  // renamed over its name and the directory synced, before the stream is renamed into place.
  struct recording_io : persistence::forwarding_io {
    std::vector<std::string> ops;
    std::string name(const std::string& path) { return fs::path(path).filename().string(); }
    int open(const std::string& path, bool create) override {
      int fd = real.open(path, create);
      if (name(path) == "stream.conf.tmp")
        conf_fd = fd;
      ops.push_back("open " + name(path));
      return fd;
    }
    int fdatasync(int fd) override {
      if (fd == conf_fd)
        ops.push_back("fdatasync stream.conf.tmp");
      return real.fdatasync(fd);
    }
    int rename(const std::string& from, const std::string& to) override {
      ops.push_back("rename " + name(from) + " " + name(to));
      return real.rename(from, to);
    }
    int sync_dir(const std::string& dir) override {
      ops.push_back("sync_dir " + name(dir));
      return real.sync_dir(dir);
    }
    int conf_fd = -1;
  } io;
  auto c = open_catalog(&io);
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->create(make_config("orders", "orders.>")).ok());
  std::vector<std::string> head(io.ops.begin(), io.ops.begin() + std::min<size_t>(io.ops.size(), 6));
  EXPECT_EQ(head, (std::vector<std::string>{"open stream.conf.tmp", "fdatasync stream.conf.tmp",
                                            "rename stream.conf.tmp stream.conf",
                                            "sync_dir orders.creating",
                                            "rename orders.creating orders", "sync_dir data"}));
}

TEST_F(catalog_fixture, CreateThatCannotWriteLeavesNothing) {
  struct failing_sync : persistence::forwarding_io {
    int fdatasync(int) override { return -EIO; }
  } io;
  auto c = open_catalog(&io);
  ASSERT_TRUE(c);
  auto r = c->create(make_config("orders", "orders.>"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), code::storage_error);
  EXPECT_NE(r.error().message().find("stream.conf"), std::string::npos) << r.error().message();
  EXPECT_EQ(c->find("orders"), nullptr);
  EXPECT_FALSE(fs::exists(dir.path / "data" / "orders"));
  EXPECT_FALSE(fs::exists(dir.path / "data" / "orders.creating"));
}

/// Creates streams a and b, publishes to both, closes the catalog.
void make_two_streams(catalog_fixture& f) {
  auto c = f.open_catalog();
  ASSERT_TRUE(c);
  auto a = c->create(make_config("a", "a.>", 2));
  auto b = c->create(make_config("b", "b.>"));
  ASSERT_TRUE(a.ok() && b.ok());
  catalog_fixture::publish(**a, 0, 100);  // several segments
  catalog_fixture::publish(**a, 1, 100);
  catalog_fixture::publish(**b, 0, 20);
}

TEST_F(catalog_fixture, ADamagedCatalogFileLeavesThatStreamOutOnly) {
  make_two_streams(*this);
  auto file = dir.path / "data" / "a" / "stream.conf";
  {
    std::fstream f{file, std::ios::in | std::ios::out | std::ios::binary};
    f.seekp(200);
    f.put('#');  // one byte changed: the checksum no longer matches
  }
  auto c = open_catalog();
  ASSERT_TRUE(c);
  ASSERT_EQ(c->problems().size(), 1u);
  auto& p = c->problems()[0];
  EXPECT_EQ(p.stream, "a");
  EXPECT_FALSE(p.partition.has_value());
  EXPECT_EQ(p.path, file.string());
  EXPECT_EQ(p.error.code(), code::storage_error);
  EXPECT_NE(p.error.message().find(file.string() + " is damaged: its checksum is"), std::string::npos)
    << p.error.message();
  EXPECT_NE(p.error.message().find("restore the file from a backup, or delete the stream's directory"),
            std::string::npos);
  EXPECT_EQ(c->find("a"), nullptr);
  auto* b = c->find("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(count(*b, 0), 20u);
  // Its name is taken until someone decides; deleting it is one way.
  EXPECT_FALSE(c->create(make_config("a", "a.>")).ok());
  ASSERT_TRUE(c->remove("a").ok());
  EXPECT_TRUE(c->problems().empty());
  EXPECT_TRUE(c->create(make_config("a", "a.>")).ok());
}

TEST_F(catalog_fixture, ATruncatedCatalogFileSaysSo) {
  make_two_streams(*this);
  auto file = dir.path / "data" / "b" / "stream.conf";
  fs::resize_file(file, fs::file_size(file) / 2);
  auto c = open_catalog();
  ASSERT_TRUE(c);
  ASSERT_EQ(c->problems().size(), 1u);
  EXPECT_NE(c->problems()[0].error.message().find("it has no checksum line (cut short?)"),
            std::string::npos)
    << c->problems()[0].error.message();
  ASSERT_NE(c->find("a"), nullptr);
  EXPECT_EQ(count(*c->find("a"), 0), 100u);
  fs::remove(file);
  c.reset();  // its partitions' logs are locked while it is open
  c = open_catalog();
  ASSERT_EQ(c->problems().size(), 1u);
  EXPECT_NE(c->problems()[0].error.message().find("stream.conf is missing"), std::string::npos);
}

TEST_F(catalog_fixture, ATruncatedSegmentMakesOnePartitionUnavailableAndRepairable) {
  make_two_streams(*this);
  auto pdir = dir.path / "data" / "a" / "partition-1";
  auto segments = files_with(pdir, ".log");
  ASSERT_GE(segments.size(), 3u);
  // A closed segment cut short: its index no longer fits it, so opening reads it.
  fs::resize_file(segments[1], fs::file_size(segments[1]) - 30);
  auto c = open_catalog();
  ASSERT_TRUE(c);
  ASSERT_EQ(c->problems().size(), 1u);
  auto& p = c->problems()[0];
  EXPECT_EQ(p.stream, "a");
  ASSERT_TRUE(p.partition.has_value());
  EXPECT_EQ(*p.partition, 1u);
  EXPECT_EQ(p.path, pdir.string());
  EXPECT_EQ(p.error.code(), code::storage_error);
  EXPECT_NE(p.error.message().find(segments[1].string()), std::string::npos) << p.error.message();
  EXPECT_NE(p.error.message().find("repair the partition"), std::string::npos);
  auto* a = c->find("a");
  ASSERT_NE(a, nullptr);
  auto broken = a->partition(1);
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.error().code(), code::storage_error);
  EXPECT_EQ(count(*a, 0), 100u);  // the stream's other partition serves
  EXPECT_EQ(count(*c->find("b"), 0), 20u);  // and so do other streams

  auto repaired = c->repair_partition("a", 1);
  ASSERT_TRUE(repaired.ok()) << repaired.error().to_string();
  EXPECT_TRUE(repaired->repaired);
  EXPECT_GT(repaired->repaired_segments_removed, 0u);
  EXPECT_TRUE(c->problems().empty());
  auto kept = count(*a, 1);
  EXPECT_GT(kept, 0u);
  EXPECT_LT(kept, 100u);
  EXPECT_EQ((*a->partition(1))->next_offset(), kept);
  // Publishing goes on from the cut.
  publish(*a, 1, 1);
  EXPECT_EQ(count(*a, 1), kept + 1);
}

TEST_F(catalog_fixture, ACorruptedBatchBeforeTheTailIsReportedNotDropped) {
  make_two_streams(*this);
  auto pdir = dir.path / "data" / "b" / "partition-0";
  auto segments = files_with(pdir, ".log");
  ASSERT_EQ(segments.size(), 1u);  // 20 messages: one segment, read whole on open
  {
    std::fstream f{segments[0], std::ios::in | std::ios::out | std::ios::binary};
    f.seekp(60);  // inside the first batch's payload
    char c = 0;
    f.seekg(60);
    f.get(c);
    f.seekp(60);
    f.put(static_cast<char>(c ^ 0x40));
  }
  auto c = open_catalog();
  ASSERT_TRUE(c);
  ASSERT_EQ(c->problems().size(), 1u);
  EXPECT_EQ(c->problems()[0].stream, "b");
  EXPECT_NE(c->problems()[0].error.message().find(segments[0].string()), std::string::npos)
    << c->problems()[0].error.message();
  EXPECT_EQ(count(*c->find("a"), 0), 100u);
  EXPECT_EQ(count(*c->find("a"), 1), 100u);
  EXPECT_FALSE(c->find("b")->partition(0).ok());
}

TEST_F(catalog_fixture, AMissingPartitionDirectoryIsReported) {
  make_two_streams(*this);
  fs::remove_all(dir.path / "data" / "a" / "partition-0");
  auto c = open_catalog();
  ASSERT_TRUE(c);
  ASSERT_EQ(c->problems().size(), 1u);
  EXPECT_NE(c->problems()[0].error.message().find("is missing: restore it from a backup, or "
                                                  "repair the partition to start it empty"),
            std::string::npos)
    << c->problems()[0].error.message();
  EXPECT_EQ(count(*c->find("a"), 1), 100u);
  ASSERT_TRUE(c->repair_partition("a", 0).ok());
  EXPECT_EQ(count(*c->find("a"), 0), 0u);
  EXPECT_TRUE(c->find("a")->partition(0).ok());
}

TEST_F(catalog_fixture, DedupeWindowSurvivesAReopenOfTheCatalog) {
  {
    auto c = open_catalog();
    auto s = c->create(make_config("orders", "orders.>"));
    ASSERT_TRUE(s.ok());
    message m;
    m.body = "first";
    m.id = "order-17";
    auto ack = (*(*s)->partition(0))->append(m);
    ASSERT_TRUE(ack.ok());
  }
  auto c = open_catalog();
  message m;
  m.body = "retried after the restart";
  m.id = "order-17";
  auto ack = (*c->find("orders")->partition(0))->append(m);
  ASSERT_TRUE(ack.ok());
  EXPECT_TRUE(ack->duplicate);
  EXPECT_EQ(ack->offset, 0u);
}

TEST_F(catalog_fixture, StreamChoosesPartitions) {
  auto c = open_catalog();
  auto s = c->create(make_config("orders", "orders.>", 4));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*(*s)->choose_partition(std::nullopt, "customer-9"), partition_for_key("customer-9", 4));
  EXPECT_EQ(*(*s)->choose_partition(2u, ""), 2u);
  EXPECT_EQ(*(*s)->choose_partition(std::nullopt, ""), 0u);
  EXPECT_EQ(*(*s)->choose_partition(std::nullopt, ""), 1u);
  auto out = (*s)->choose_partition(9u, "");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code(), code::not_found);
  EXPECT_FALSE((*s)->partition(4).ok());
}

// -- config ------------------------------------------------------------------------------

TEST(StreamConfig, CatalogEntryRoundTripsAndRefusesOtherFormats) {
  auto cfg = make_config("orders", "orders.*.created", 8);
  cfg.fsync = persistence::fsync_policy::interval;
  cfg.limits["rate_bytes_per_sec"] = 1 << 20;
  cfg.limits["rate_burst_bytes"] = 1 << 21;
  auto text = encode_catalog_entry(cfg);
  auto back = decode_catalog_entry(text, "x/stream.conf");
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_EQ(*back, cfg);

  auto newer = text;
  auto at = newer.find("format = 1");
  newer.replace(at, 10, "format = 2");
  // Re-sum the lines, so only the format is wrong.
  newer = newer.substr(0, newer.rfind("\nchecksum = ") + 1);
  char sum[16];
  std::snprintf(sum, sizeof sum, "%08x", persistence::crc32c(0, newer.data(), newer.size()));
  newer += std::string{"checksum = "} + sum + "\n";
  auto refused = decode_catalog_entry(newer, "x/stream.conf");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), code::unsupported_version);
  EXPECT_NE(refused.error().message().find("format 2 is not one this broker reads"),
            std::string::npos)
    << refused.error().message();
}

TEST(StreamConfig, SettingsFromConfigWithDefaultsAndErrors) {
  auto none = stream_settings_from_config({});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->defaults.retention_max_bytes, defaults::stream_retention_max_bytes);
  EXPECT_EQ(none->defaults.dedupe_window_ms, 120'000u);
  EXPECT_EQ(none->subjects.max_bytes, 256u);
  EXPECT_EQ(none->defaults.on_full, on_full_policy::drop_oldest);

  flat_config cfg{{"stream.partitions", "4"},
                  {"stream.on_full", "reject"},
                  {"stream.fsync", "interval"},
                  {"stream.compact_by_key", "true"},
                  {"stream.retention_max_bytes", "64MiB"},
                  {"stream.max_subject_tokens", "8"},
                  {"server.max_queries", "9"}};  // other sections are not looked at
  auto s = stream_settings_from_config(cfg);
  ASSERT_TRUE(s.ok()) << s.error().to_string();
  EXPECT_EQ(s->defaults.partitions, 4u);
  EXPECT_EQ(s->defaults.on_full, on_full_policy::reject);
  EXPECT_EQ(s->defaults.fsync, persistence::fsync_policy::interval);
  EXPECT_TRUE(s->defaults.compact_by_key);
  EXPECT_EQ(s->defaults.retention_max_bytes, 64u << 20);
  EXPECT_EQ(s->subjects.max_tokens, 8u);

  auto unknown = stream_settings_from_config({{"stream.max_age", "5"}});
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message().find("unknown key 'stream.max_age'; known keys in [stream]: "),
            std::string::npos);
  EXPECT_NE(unknown.error().message().find("retention_max_age_ms"), std::string::npos);
  auto range = stream_settings_from_config({{"stream.partitions", "5000"}});
  ASSERT_FALSE(range.ok());
  EXPECT_NE(range.error().message().find("stream.partitions = 5000: must be between 1 and 1024"),
            std::string::npos)
    << range.error().message();
  auto policy = stream_settings_from_config({{"stream.on_full", "block"}});
  ASSERT_FALSE(policy.ok());
  EXPECT_EQ(policy.error().message(), "stream.on_full = block: must be drop_oldest or reject");
  auto rule = stream_settings_from_config({{"stream.retention_max_bytes", "8192"}});
  ASSERT_FALSE(rule.ok());
  EXPECT_NE(rule.error().message().find("stream.max_segment_bytes"), std::string::npos);

  // Every listed key is one the reader takes.
  for (auto& key : config_keys()) {
    std::string value = key == "stream.on_full"                ? "reject"
                        : key == "stream.fsync"                ? "none"
                        : key == "stream.compact_by_key"       ? "false"
                        : key == "stream.max_subject_tokens"   ? "8"
                        : key == "stream.partitions"           ? "4"
                        : key == "stream.retention_max_bytes"  ? "1GiB"
                        : key == "stream.replication_factor"   ? "3"
                        : key == "stream.min_insync_replicas"  ? "1"
                                                               : "4096";
    auto one = stream_settings_from_config({{key, value}});
    EXPECT_TRUE(one.ok()) << key << ": " << one.error().to_string();
  }
}

TEST(StreamConfig, DefaultsArePinned) {
  EXPECT_EQ(defaults::stream_partitions, 1u);
  EXPECT_EQ(defaults::stream_max_message_bytes, 1u << 20);
  EXPECT_EQ(defaults::stream_retention_max_bytes, 1u << 30);
  EXPECT_EQ(defaults::stream_max_segment_bytes, 16u << 20);
  EXPECT_EQ(defaults::stream_dedupe_window_ms, 120'000u);
  EXPECT_EQ(defaults::stream_dedupe_max_entries, 100'000u);
  EXPECT_EQ(defaults::stream_max_message_id_bytes, 128u);
  EXPECT_EQ(defaults::stream_max_subject_bytes, 256u);
  EXPECT_EQ(defaults::stream_max_subject_tokens, 16u);
  stream_config fresh;
  fresh.name = "s";
  fresh.subject = "s";
  EXPECT_TRUE(validate(fresh).ok()) << validate(fresh).to_string();
}

} // namespace
} // namespace levee::streams
