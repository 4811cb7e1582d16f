// server/node.hpp: what a server says at start about its satellite token.

#include <gtest/gtest.h>

#include "server/node.hpp"

namespace levee::server {
namespace {

TEST(ServerToken, ThePlaceholderOnAnAddressOthersReachIsAnError) {
  for (auto* host : {"0.0.0.0", "10.1.2.3", "::", "server.example"}) {
    auto w = satellite_token_warning("change-me", host, std::string{host} + ":7400");
    ASSERT_TRUE(w) << host;
    EXPECT_EQ(w->level, log_level::error) << host;
    EXPECT_NE(w->text.find("set [server] satellite_token"), std::string::npos) << w->text;
    EXPECT_NE(w->text.find("'change-me'"), std::string::npos) << w->text;
  }
}

TEST(ServerToken, LoopbackAndAnOwnTokenStayQuiet) {
  for (auto* host : {"127.0.0.1", "127.1.2.3", "::1", "localhost"}) {
    EXPECT_FALSE(satellite_token_warning("change-me", host, "x")) << host;
    EXPECT_FALSE(satellite_token_warning("", host, "x")) << host;
  }
  EXPECT_FALSE(satellite_token_warning("a-secret-of-ours", "0.0.0.0", "0.0.0.0:7400"));
  EXPECT_FALSE(is_loopback_host("128.0.0.1"));
}

TEST(ServerToken, NoTokenOnAnAddressOthersReachIsAWarning) {
  auto w = satellite_token_warning("", "0.0.0.0", "0.0.0.0:7400");
  ASSERT_TRUE(w);
  EXPECT_EQ(w->level, log_level::warn);
  EXPECT_NE(w->text.find("server.satellite_token is empty on 0.0.0.0:7400"), std::string::npos);
}

} // namespace
} // namespace levee::server
