// The C++ client as a program that only talks to Levee uses it: linked with levee_client
// alone (no CAF: tests/check_client_links_no_caf.sh checks this binary), against a real
// `levee node` process on 127.0.0.1. The handshake carries the server's limits, requests
// to its exposed actors are answered, refusals are typed (from the server, and local ones
// for what the server advertised it would refuse).

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

#include "levee/client.hpp"
#include "net/satellite.pb.h"
#include "tests/process_support.hpp"

namespace levee {
namespace {

using namespace std::chrono_literals;

const std::string levee_binary = LEVEE_BINARY;

/// The bound on every wait: far above what a loaded 2-core machine needs, so it only
/// matters when something is broken.
constexpr std::chrono::milliseconds bound = 15s;

/// What the server is configured to advertise, so the client's view can be checked.
constexpr uint32_t server_max_frame_bytes = 64 * 1024;
constexpr uint32_t server_max_inflight = 8;
const std::string server_node_id = "client-test-server";

class ClientLibraryTest : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_TRUE(dir_.ok()) << "cannot create a temporary directory in /tmp";
    test::ini config;
    config.set("node", "roles", "server")
      .set("server", "listen", "127.0.0.1:0")
      .set("net", "node_id", server_node_id)
      .set("net", "max_frame_bytes", std::to_string(server_max_frame_bytes))
      .set("net", "max_inflight_requests", std::to_string(server_max_inflight));
    auto config_path = dir_.file("server.ini");
    stderr_path_ = dir_.file("server.stderr");
    test::write_file(config_path, config.text());
    ASSERT_TRUE(server_.start({levee_binary, "node", "--config", config_path}, stderr_path_))
      << "cannot start " << levee_binary;
    auto line = server_.wait_for_line("server listening on", bound);
    ASSERT_TRUE(line) << "the server did not start; stderr: " << test::read_file(stderr_path_);
    port_ = static_cast<uint16_t>(std::stoul(line->substr(line->rfind(':') + 1)));
  }

  client connected() {
    client_options o;
    o.port = port_;
    o.node_id = "client-library-test";
    client c{o};
    auto st = c.connect_with_backoff(bound);
    EXPECT_TRUE(st.ok()) << st.message() << "; server stderr: " << test::read_file(stderr_path_);
    return c;
  }

  test::temp_dir dir_{"levee-client-test"};
  test::child_process server_;
  std::string stderr_path_;
  uint16_t port_ = 0;
};

TEST_F(ClientLibraryTest, HandshakeCarriesTheServersLimits) {
  auto c = connected();
  ASSERT_TRUE(c.connected());
  EXPECT_EQ(c.limits().node_id, server_node_id);
  EXPECT_EQ(c.limits().max_frame_bytes, server_max_frame_bytes);
  EXPECT_EQ(c.limits().max_inflight_requests, server_max_inflight);
  auto rtt = c.ping(bound);
  EXPECT_TRUE(rtt.ok()) << rtt.error().to_string();
}

TEST_F(ClientLibraryTest, RequestToAnExposedActorIsAnswered) {
  auto c = connected();
  auto r = c.request("satellites", wire::SatellitesRequest{}.SerializeAsString(), bound);
  ASSERT_TRUE(r.ok()) << (r.rejected ? r.rejected->to_string() : "no answer");
  wire::SatelliteList list;
  ASSERT_TRUE(list.ParseFromString(*r.payload));
  EXPECT_EQ(list.satellites_size(), 0);  // none has registered with this server
}

TEST_F(ClientLibraryTest, UnknownTargetIsRefusedWithItsCode) {
  auto c = connected();
  auto r = c.request("no-such-actor", "", bound);
  ASSERT_TRUE(r.rejected);
  EXPECT_EQ(r.rejected->code, code::not_found);
  EXPECT_EQ(r.rejected->limit, "");
  EXPECT_TRUE(c.connected());  // a refused request leaves the connection up
}

TEST_F(ClientLibraryTest, FrameAboveTheAdvertisedMaximumIsRefusedWithoutSending) {
  auto c = connected();
  uint64_t id = 0;
  // Random-looking bytes do not compress under the limit: the frame stays too large.
  std::string payload(server_max_frame_bytes + 1024, '\0');
  uint32_t x = 12345;
  for (auto& ch : payload) {
    x = x * 1103515245 + 12345;
    ch = static_cast<char>(x >> 24);
  }
  auto refused = c.send_request("satellites", std::move(payload), id);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->code, code::message_too_large);
  EXPECT_EQ(c.in_flight(), 0u);  // nothing was sent
  auto r = c.request("satellites", wire::SatellitesRequest{}.SerializeAsString(), bound);
  EXPECT_TRUE(r.ok()) << (r.rejected ? r.rejected->to_string() : "no answer");
}

// The client waits for an answer in recv() itself, in slices of 100 ms (SO_RCVTIMEO),
// looking at its deadline between slices: an answer that comes several slices later is
// still received, and a wait with nothing to receive ends at its deadline, not before.
TEST_F(ClientLibraryTest, AnAnswerSeveralReceiveSlicesLateArrivesAndAnEmptyWaitEndsAtItsDeadline) {
  auto c = connected();
  auto first = c.request("satellites", wire::SatellitesRequest{}.SerializeAsString(), bound);
  ASSERT_TRUE(first.ok()) << (first.rejected ? first.rejected->to_string() : "no answer");
  wire::SatelliteList list;
  ASSERT_TRUE(list.ParseFromString(*first.payload));
  // Held by the server until the list changes (it will not: no satellite registers) or
  // 450 ms pass.
  wire::SatellitesRequest held;
  held.set_after_version(list.version());
  held.set_wait_ms(450);
  auto started = std::chrono::steady_clock::now();
  auto r = c.request("satellites", held.SerializeAsString(), bound);
  auto took = std::chrono::steady_clock::now() - started;
  ASSERT_TRUE(r.ok()) << (r.rejected ? r.rejected->to_string() : "no answer");
  EXPECT_GE(took, 400ms) << "the server did not hold the request: the test proves nothing";
  // Nothing is on its way: the wait ends with the client's own deadline_exceeded.
  started = std::chrono::steady_clock::now();
  auto none = c.receive(250ms);
  took = std::chrono::steady_clock::now() - started;
  ASSERT_TRUE(none.rejected);
  EXPECT_EQ(none.rejected->code, code::deadline_exceeded);
  EXPECT_GE(took, 249ms);
  EXPECT_LT(took, bound);
  EXPECT_TRUE(c.connected());
}

} // namespace
} // namespace levee
