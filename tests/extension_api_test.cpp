// The extension API's refusals and promises (include/levee/{serve,source,node}.hpp): what
// the examples cannot show by running to completion. Real listeners on loopback, real
// config parsing, a real node start with --check.

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

#include <gtest/gtest.h>

#include <caf/all.hpp>

#include "levee/client.hpp"
#include "levee/levee.hpp"
#include "levee/node.hpp"
#include "levee/serve.hpp"
#include "levee/source.hpp"
#include "satellite/satellite.hpp"

namespace levee {
namespace {

using namespace std::chrono_literals;

// --- serve.hpp -----------------------------------------------------------------------------

TEST(WireListener, RefusesABadAddressAndABadNetKeyNamingThem) {
  system_config cfg;
  caf::actor_system sys{cfg};
  auto bad_address = wire_listener::start(sys, "127.0.0.1");
  ASSERT_FALSE(bad_address.ok());
  EXPECT_EQ(bad_address.error().code(), code::bad_request);
  EXPECT_NE(bad_address.error().message().find("host:port"), std::string::npos)
    << bad_address.error().message();
  auto bad_key = wire_listener::start(sys, "127.0.0.1:0", {{"net.max_frame_bytes", "lots"}});
  ASSERT_FALSE(bad_key.ok());
  EXPECT_NE(bad_key.error().message().find("net.max_frame_bytes"), std::string::npos)
    << bad_key.error().message();
}

TEST(WireListener, SaysWhatToDoWithoutTheIoLayer) {
  caf::actor_system_config plain;
  caf::actor_system sys{plain};
  auto l = wire_listener::start(sys, "127.0.0.1:0");
  ASSERT_FALSE(l.ok());
  EXPECT_NE(l.error().message().find("levee::system_config"), std::string::npos)
    << l.error().message();
}

TEST(WireListener, EnforcesItsNetLimitsAndCountsWhatItRefused) {
  system_config cfg;
  caf::actor_system sys{cfg};
  runtime rt{limits_config{}};
  auto echo = sys.spawn([]() -> caf::behavior {
    return {[](wire_request_atom, const std::string& s) { return s; }};
  });
  auto l = wire_listener::start(sys, "127.0.0.1:0",
                                {{"net.max_connections", "1"}, {"net.reserved_connections", "0"},
                                 {"net.token", "secret"}, {"limits.x.mailbox_capacity", "1"}});
  ASSERT_TRUE(l.ok()) << l.error().to_string();
  (*l)->expose("echo", echo);
  ASSERT_NE((*l)->port(), 0);

  client_options opts;
  opts.port = (*l)->port();
  client wrong{[&] {
    auto o = opts;
    o.token = "guess";
    return o;
  }()};
  auto refused = wrong.connect();
  EXPECT_EQ(refused.code(), code::unauthenticated) << refused.to_string();

  opts.token = "secret";
  client c{opts};
  ASSERT_TRUE(c.connect().ok());
  auto r = c.request("echo", "hi", 5s);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r.payload, "hi");
  // One connection at most: a second one is refused with the limit's name.
  client second{opts};
  auto st = second.connect();
  EXPECT_EQ(st.code(), code::too_many_connections) << st.to_string();
  auto counters = (*l)->counters();
  EXPECT_GE(counters.connections_refused, 1u);
  EXPECT_GE(counters.requests_answered, 1u);
  (*l)->stop();
  (*l)->stop();  // idempotent
  anon_send_exit(echo, caf::exit_reason::user_shutdown);
}

// --- source.hpp ----------------------------------------------------------------------------

class one_shot : public event_source {
public:
  size_t poll(std::vector<event>& out, size_t max_events, int64_t now_ms) override {
    return 0;
  }
  std::string_view kind() const noexcept override { return "one_shot"; }
};

source_type type_named(std::string name, std::vector<std::string> keys = {}) {
  source_type t;
  t.name = std::move(name);
  t.keys = std::move(keys);
  t.make = [](const source_settings&) -> result<std::unique_ptr<event_source>> {
    return std::unique_ptr<event_source>{new one_shot};
  };
  return t;
}

TEST(SourceTypes, RegistrationRefusesWhatCouldNotWork) {
  EXPECT_EQ(register_source_type(type_named("file_tail")).code(), code::bad_request);
  EXPECT_EQ(register_source_type(type_named("")).code(), code::bad_request);
  EXPECT_EQ(register_source_type(type_named("has space")).code(), code::bad_request);
  EXPECT_EQ(register_source_type(type_named("keyed", {"type"})).code(), code::bad_request);
  auto no_make = type_named("no_make");
  no_make.make = nullptr;
  EXPECT_EQ(register_source_type(no_make).code(), code::bad_request);
  ASSERT_TRUE(register_source_type(type_named("twice")).ok());
  auto again = register_source_type(type_named("twice"));
  EXPECT_EQ(again.code(), code::bad_request);
  EXPECT_NE(again.message().find("registered already"), std::string::npos);
}

TEST(SourceTypes, ASatelliteConfigTakesARegisteredTypeWithItsKeysOnly) {
  auto t = type_named("gauge", {"every"});
  t.check = [](const source_settings& s) -> status {
    auto i = s.keys.find("every");
    if (i != s.keys.end() && i->second == "never")
      return status::error(code::bad_request, "source." + s.name + ".every = never: give a number");
    return {};
  };
  ASSERT_TRUE(register_source_type(t).ok());
  flat_config cfg{{"satellite.data_dir", "/tmp/x"},
                  {"source.g.type", "gauge"},
                  {"source.g.every", "5"},
                  {"source.g.poll_interval_ms", "50"}};
  auto ok = satellite::satellite_from_config(cfg);
  ASSERT_TRUE(ok.ok()) << ok.error().to_string();
  ASSERT_EQ(ok->sources.size(), 1u);
  EXPECT_EQ(ok->sources[0].type, "gauge");
  EXPECT_EQ(ok->sources[0].custom.name, "g");
  EXPECT_EQ(ok->sources[0].custom.keys.at("every"), "5");
  EXPECT_EQ(ok->sources[0].custom.keys.count("type"), 0u);
  EXPECT_EQ(ok->sources[0].poll_interval_ms, 50u);

  auto unknown = cfg;
  unknown["source.g.path"] = "/x";
  auto refused = satellite::satellite_from_config(unknown);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message().find("unknown key 'source.g.path'"), std::string::npos)
    << refused.error().message();

  auto checked = cfg;
  checked["source.g.every"] = "never";
  auto bad = satellite::satellite_from_config(checked);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("every = never"), std::string::npos);

  auto no_such = cfg;
  no_such["source.g.type"] = "gauges";
  auto missing = satellite::satellite_from_config(no_such);
  ASSERT_FALSE(missing.ok());
  // The message lists what exists, the registered types too.
  EXPECT_NE(missing.error().message().find("gauge"), std::string::npos)
    << missing.error().message();
}

// --- node.hpp ------------------------------------------------------------------------------

role role_named(std::string name, std::vector<std::string> sections = {}) {
  role r;
  r.name = std::move(name);
  r.sections = std::move(sections);
  r.start = [](role_context&) { return status{}; };
  return r;
}

TEST(NodeProgram, AddRoleRefusesWhatCouldNotWork) {
  node_program node;
  EXPECT_EQ(node.add_role(role_named("server")).code(), code::bad_request);
  EXPECT_EQ(node.add_role(role_named("")).code(), code::bad_request);
  EXPECT_EQ(node.add_role(role_named("a b")).code(), code::bad_request);
  EXPECT_EQ(node.add_role(role_named("mine", {"net"})).code(), code::bad_request);
  EXPECT_EQ(node.add_role(role_named("mine", {"source.x"})).code(), code::bad_request);
  auto no_start = role_named("idle");
  no_start.start = nullptr;
  EXPECT_EQ(node.add_role(no_start).code(), code::bad_request);
  ASSERT_TRUE(node.add_role(role_named("mine", {"mine"})).ok());
  EXPECT_EQ(node.add_role(role_named("mine")).code(), code::bad_request);
  EXPECT_EQ(node.add_role(role_named("other", {"mine"})).code(), code::bad_request);
}

class NodeProgramCheck : public ::testing::Test {
protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path()
           / ("levee-node-program-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  /// Runs `--config <file with text> --check` and returns the exit code.
  int check(node_program& node, const std::string& text) {
    auto path = (dir_ / "node.ini").string();
    std::ofstream{path, std::ios::trunc} << text;
    return node.run({"--config", path, "--check"});
  }

  std::filesystem::path dir_;
};

TEST_F(NodeProgramCheck, OwnRolesAndTheirSectionsAreCheckedLikeBuiltInOnes) {
  node_program node;
  int checked = 0;
  auto mine = role_named("mine", {"mine"});
  mine.check = [&](const flat_config& cfg) -> status {
    ++checked;
    if (cfg.count("mine.size") && cfg.at("mine.size") == "huge")
      return status::error(code::bad_request, "mine.size = huge: give bytes");
    return {};
  };
  bool started = false;
  mine.start = [&](role_context&) {
    started = true;
    return status{};
  };
  ASSERT_TRUE(node.add_role(mine).ok());

  EXPECT_EQ(check(node, "[node]\nroles = mine\n[mine]\nsize = 10\n"), 0);
  EXPECT_EQ(checked, 1);
  EXPECT_EQ(check(node, "[node]\nroles = mine\n[mine]\nsize = huge\n"), 2);
  // Its section without the role in node.roles is an error, as for built-in roles.
  EXPECT_EQ(check(node, "[node]\nroles = server\n[mine]\nsize = 10\n"), 2);
  // An unknown role, and a section nobody reads.
  EXPECT_EQ(check(node, "[node]\nroles = yours\n"), 2);
  EXPECT_EQ(check(node, "[node]\nroles = mine\n[yours]\nx = 1\n"), 2);
  // --check starts nothing.
  EXPECT_FALSE(started);
}

// A role that cannot start stops the node's start: those started stop again (newest
// first), and the program exits 1 with the error.
TEST_F(NodeProgramCheck, ARoleThatCannotStartStopsTheOnesStartedAndExitsOne) {
  node_program node;
  std::vector<std::string> events;
  auto first = role_named("first");
  first.start = [&](role_context& ctx) -> status {
    events.push_back("first started");
    // What a role gets: the node's config, and no server here.
    EXPECT_EQ(ctx.config().at("node.roles"), "first, second");
    EXPECT_EQ(ctx.port_of("server"), 0);
    auto l = ctx.serve("127.0.0.1:0");
    EXPECT_TRUE(l.ok());
    return {};
  };
  first.stop = [&] { events.push_back("first stopped"); };
  auto second = role_named("second");
  second.start = [&](role_context&) -> status {
    events.push_back("second refused");
    return status::error(code::unavailable, "no device; plug it in");
  };
  second.stop = [&] { events.push_back("second stopped"); };
  ASSERT_TRUE(node.add_role(first).ok());
  ASSERT_TRUE(node.add_role(second).ok());
  auto path = (dir_ / "node.ini").string();
  std::ofstream{path, std::ios::trunc} << "[node]\nroles = first, second\n";
  EXPECT_EQ(node.run({"--config", path}), 1);
  EXPECT_EQ(events, (std::vector<std::string>{"first started", "second refused", "first stopped"}));
}

} // namespace
} // namespace levee
