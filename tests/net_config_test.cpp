#include <gtest/gtest.h>

#include <filesystem>

#include "limits/config_file.hpp"
#include "limits/defaults.hpp"
#include "net/net_config.hpp"

namespace levee::net {
namespace {

result<listener_config> parse(const std::string& text) {
  auto flat = parse_config_text(text, "net.ini");
  if (!flat)
    return flat.error();
  return listener_from_config(*flat);
}

// Pins every [net] default: a change must be deliberate (and explained in defaults.hpp).
TEST(NetConfig, DefaultsArePinned) {
  auto l = listener_limits::defaults();
  EXPECT_EQ(l.max_frame_bytes, 1u << 20);
  EXPECT_EQ(l.max_decompressed_bytes, 4u << 20);
  EXPECT_EQ(l.compress_above_bytes, 4096u);
  EXPECT_EQ(l.max_msgs_per_sec, 20'000u);
  EXPECT_EQ(l.burst_msgs, 0u);
  EXPECT_EQ(l.max_bytes_per_sec, 64u << 20);
  EXPECT_EQ(l.burst_bytes, 0u);
  EXPECT_EQ(l.max_inflight_requests, 256u);
  EXPECT_EQ(l.max_write_buffer_bytes, 8u << 20);
  EXPECT_EQ(l.max_connections, 4160u);
  EXPECT_EQ(l.reserved_connections, 64u);
  EXPECT_EQ(l.handshake_timeout_ms, 5'000u);
  EXPECT_EQ(l.idle_timeout_ms, 30'000u);
  EXPECT_EQ(l.read_timeout_ms, 10'000u);
  EXPECT_EQ(l.permit_ceiling_bytes, 16u << 20);
  EXPECT_EQ(l.permit_ttl_ms, 10'000u);
  EXPECT_EQ(l.request_deadline_ms, 30'000u);
  EXPECT_TRUE(validate(l).ok());
  auto empty = parse("");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->token.empty());
}

TEST(NetConfig, ReadsKeysTokenAndNodeId) {
  auto cfg = parse("[net]\nmax_frame_bytes = 64KiB\nmax_connections = 10\n"
                   "reserved_connections = 2\ntoken = s3cret\n"
                   "node_id = server-1\n[limits.default]\nmailbox_capacity = 5\n");
  ASSERT_TRUE(cfg.ok()) << cfg.error().to_string();
  EXPECT_EQ(cfg->limits.max_frame_bytes, 64u * 1024);
  EXPECT_EQ(cfg->limits.max_connections, 10u);
  EXPECT_EQ(cfg->limits.reserved_connections, 2u);
  EXPECT_EQ(cfg->token, "s3cret");
  EXPECT_EQ(cfg->node_id, "server-1");
}

TEST(NetConfig, BadValuesAreRejectedNamingTheKey) {
  const std::pair<const char*, const char*> cases[] = {
    {"[net]\nmax_frame_bytes = 10\n", "net.max_frame_bytes = 10: must be between 64"},
    {"[net]\nmax_conections = 5\n", "unknown key 'net.max_conections'"},
    {"[net]\nmax_connections = many\n", "net.max_connections = 'many'"},
    {"[net]\nmax_frame_bytes = 8MiB\n", "net.max_decompressed_bytes = 4194304: must be at least"},
    {"[net]\npermit_ceiling_bytes = 1KiB\n", "net.permit_ceiling_bytes = 1024"},
    {"[net]\nmax_bytes_per_sec = 1000\n", "net.burst_bytes"},
    // The reserve kept for operators and clients must leave satellites a connection.
    {"[net]\nmax_connections = 100\nreserved_connections = 100\n",
     "net.reserved_connections = 100: must be below net.max_connections (100)"},
    {"[net]\nmax_connections = 16\n", "net.reserved_connections = 64: must be below"},
  };
  for (auto& [text, mention] : cases) {
    auto cfg = parse(text);
    ASSERT_FALSE(cfg.ok()) << text;
    EXPECT_EQ(cfg.error().code(), code::bad_request);
    EXPECT_NE(cfg.error().message().find(mention), std::string::npos)
      << "'" << cfg.error().message() << "' does not mention '" << mention << "'";
  }
}

TEST(NetConfig, EveryShippedConfigFileHasAValidNetSection) {
  for (auto& entry : std::filesystem::directory_iterator{LEVEE_CONFIGS_DIR}) {
    // load-*.ini are `levee load` scenarios, no node configs (levee load --check checks
    // them: tests/check_configs.sh).
    if (entry.path().extension() != ".ini" || entry.path().filename().string().rfind("load-", 0) == 0)
      continue;
    auto flat = load_config_file(entry.path().string());
    ASSERT_TRUE(flat.ok());
    auto cfg = listener_from_config(*flat);
    EXPECT_TRUE(cfg.ok()) << entry.path() << ": " << cfg.error().to_string();
  }
}

} // namespace
} // namespace levee::net
