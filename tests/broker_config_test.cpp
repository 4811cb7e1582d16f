// The [broker] section: defaults, every key read, an unknown key and a missing data_dir
// refused naming the key, [stream] read beside it, and config_keys() listing them.

#include <gtest/gtest.h>

#include <algorithm>

#include "broker/node.hpp"

namespace levee::broker {
namespace {

TEST(BrokerConfig, ReadsEveryKeyAndPinsTheDefaults) {
  flat_config cfg{{"broker.data_dir", "/tmp/x"},
                  {"broker.listen", "127.0.0.1:0"},
                  {"broker.max_cursors", "10"},
                  {"broker.publish_msgs_per_sec", "100"},
                  {"stream.partitions", "4"}};
  auto o = broker_options_from_config(cfg);
  ASSERT_TRUE(o.ok()) << o.error().to_string();
  EXPECT_EQ(o->data_dir, "/tmp/x");
  EXPECT_EQ(o->listen, "127.0.0.1:0");
  EXPECT_EQ(o->limits.max_cursors, 10u);
  EXPECT_EQ(o->limits.publishers.msgs_per_sec, 100u);
  EXPECT_EQ(o->streams.defaults.partitions, 4u);
  EXPECT_EQ(o->limits.max_subscriptions_per_partition,
            defaults::broker_max_subscriptions_per_partition);
  EXPECT_EQ(o->limits.publishers.bytes_per_sec, 0u);  // off unless set
  EXPECT_EQ(o->limits.publishers.max_publishers, defaults::broker_max_publishers);
}

TEST(BrokerConfig, RefusesUnknownKeysAndAMissingDataDir) {
  auto unknown = broker_options_from_config({{"broker.data_dir", "/x"}, {"broker.max_curors", "1"}});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code(), code::bad_request);
  EXPECT_NE(unknown.error().message().find("max_curors"), std::string::npos);
  auto missing = broker_options_from_config({});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find("broker.data_dir"), std::string::npos);
  auto range = broker_options_from_config({{"broker.data_dir", "/x"}, {"broker.max_cursors", "0"}});
  ASSERT_FALSE(range.ok());
  EXPECT_NE(range.error().message().find("broker.max_cursors"), std::string::npos);
}

TEST(BrokerConfig, LimitsConsumerTakesOnlyRates) {
  auto rates = broker_options_from_config({{"broker.data_dir", "/x"},
                                           {"limits.consumer.rate_msgs_per_sec", "100"},
                                           {"limits.consumer.rate_burst_bytes", "1048576"}});
  EXPECT_TRUE(rates) << rates.error().to_string();
  auto actor_key = broker_options_from_config({{"broker.data_dir", "/x"},
                                               {"limits.consumer.mailbox_capacity", "10"}});
  ASSERT_FALSE(actor_key);
  EXPECT_NE(actor_key.error().message().find("limits.consumer.mailbox_capacity does not apply"),
            std::string::npos)
    << actor_key.error().to_string();
  EXPECT_NE(actor_key.error().message().find("rate_msgs_per_sec"), std::string::npos);
  // Not the actors' [limits.default]: a consumer's rates are only its own section's.
  auto with_default = broker_options_from_config({{"broker.data_dir", "/x"},
                                                  {"limits.default.rate_bytes_per_sec", "1MiB"},
                                                  {"limits.consumer.rate_msgs_per_sec", "100"}});
  ASSERT_TRUE(with_default) << with_default.error().to_string();
  EXPECT_EQ(with_default->limits.consumer.msgs_per_sec, 100u);
  EXPECT_EQ(with_default->limits.consumer.bytes_per_sec, 0u);
  EXPECT_EQ(rates->limits.consumer.burst_bytes, 1048576u);
}

TEST(BrokerConfig, ConfigKeysListEveryKey) {
  auto keys = config_keys();
  for (auto* k : {"broker.listen", "broker.data_dir", "broker.max_subscriptions_per_partition",
                  "broker.max_cursors", "broker.maintenance_interval_ms",
                  "broker.publish_msgs_per_sec", "broker.publish_bytes_per_sec",
                  "broker.max_publishers", "broker.publisher_idle_ms", "broker.id",
                  "broker.raft_listen", "broker.raft_members", "broker.advertise",
                  "broker.session_timeout_ms", "broker.raft_election_timeout_ms",
                  "metadata.max_pending_commands", "broker.join"})
    EXPECT_NE(std::find(keys.begin(), keys.end(), k), keys.end()) << k;
  for (auto* k : {"broker.replica_fetch_max_bytes", "broker.replica_fetch_max_wait_ms",
                  "broker.replica_max_lag_ms"})
    EXPECT_NE(std::find(keys.begin(), keys.end(), k), keys.end()) << k;
  EXPECT_EQ(keys.size(), 20u);
}

flat_config clustered(std::initializer_list<std::pair<const std::string, std::string>> more) {
  flat_config cfg{{"broker.data_dir", "/x"},
                  {"broker.listen", "127.0.0.1:7601"},
                  {"broker.id", "1"},
                  {"broker.raft_listen", "127.0.0.1:7701"},
                  {"broker.raft_members", "1=127.0.0.1:7701,2=127.0.0.1:7702"}};
  for (auto& [k, v] : more)
    cfg[k] = v;
  return cfg;
}

TEST(BrokerConfig, ClusterKeysAreReadAndAloneWithoutRaftListen) {
  auto alone = broker_options_from_config({{"broker.data_dir", "/x"}});
  ASSERT_TRUE(alone) << alone.error().to_string();
  EXPECT_FALSE(alone->cluster);
  auto c = broker_options_from_config(clustered({{"metadata.max_pending_commands", "64"}}));
  ASSERT_TRUE(c) << c.error().to_string();
  ASSERT_TRUE(c->cluster);
  EXPECT_EQ(c->cluster->id, 1u);
  EXPECT_EQ(c->cluster->members.size(), 2u);
  EXPECT_EQ(c->cluster->members[1].address, "127.0.0.1:7702");
  EXPECT_EQ(c->cluster->advertise, "127.0.0.1:7601") << "advertise defaults to listen";
  EXPECT_EQ(c->cluster->raft_dir, "/x/.raft");
  EXPECT_EQ(c->cluster->session_timeout_ms, 6000u);
  EXPECT_EQ(c->cluster->max_pending_commands, 64u);
}

TEST(BrokerConfig, BadClusterValuesNameTheKeyAndWhatToWrite) {
  auto says = [](const flat_config& cfg, const std::string& key, const std::string& hint) {
    auto r = broker_options_from_config(cfg);
    ASSERT_FALSE(r) << key;
    EXPECT_NE(r.error().message().find(key), std::string::npos) << r.error().message();
    EXPECT_NE(r.error().message().find(hint), std::string::npos) << r.error().message();
  };
  says(clustered({{"broker.raft_members", "1=localhost:7701"}}), "broker.raft_members", "IPv4");
  says(clustered({{"broker.raft_members", "1=127.0.0.1:7701,1=127.0.0.1:7702"}}),
       "broker.raft_members", "twice");
  says(clustered({{"broker.raft_members", "x=127.0.0.1:7701"}}), "broker.raft_members", "id=IPv4:port");
  says(clustered({{"broker.raft_members", "2=127.0.0.1:7702"}}), "broker.raft_members", "add 1=");
  says(clustered({{"broker.raft_listen", "127.0.0.1:0"}}), "broker.raft_listen", "IPv4");
  says(clustered({{"broker.id", "0"}}), "broker.id", "between 1");
  says(clustered({{"broker.session_timeout_ms", "1000"}}), "broker.session_timeout_ms", "raise it");
  says(clustered({{"broker.listen", "127.0.0.1:0"}}), "broker.advertise", "port not 0");
  says({{"broker.data_dir", "/x"}, {"broker.id", "2"}}, "broker.id", "raft_listen");
  flat_config no_id = clustered({});
  no_id.erase("broker.id");
  says(no_id, "broker.id", "needs an id");
  says(clustered({{"broker.join", "127.0.0.1:7601"}}), "broker.join and broker.raft_members", "keep the one");
  flat_config joining = clustered({{"broker.join", "nowhere"}});
  joining.erase("broker.raft_members");
  says(joining, "broker.join", "client address");
  says({{"broker.data_dir", "/x"}, {"broker.join", "127.0.0.1:7601"}}, "broker.join", "raft_listen");
}

TEST(BrokerConfig, AJoiningBrokerNamesARunningBrokerInsteadOfTheInitialMembers) {
  flat_config cfg = clustered({{"broker.id", "4"}, {"broker.raft_listen", "127.0.0.1:7704"},
                               {"broker.join", "127.0.0.1:7601"}});
  cfg.erase("broker.raft_members");
  auto c = broker_options_from_config(cfg);
  ASSERT_TRUE(c) << c.error().to_string();
  ASSERT_TRUE(c->cluster);
  EXPECT_EQ(c->cluster->join, "127.0.0.1:7601");
  EXPECT_TRUE(c->cluster->members.empty()) << "a joining broker bootstraps nothing";
  EXPECT_EQ(c->cluster->id, 4u);
}

} // namespace
} // namespace levee::broker
