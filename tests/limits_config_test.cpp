#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "limits/config_file.hpp"
#include "limits/defaults.hpp"
#include "limits/limits_config.hpp"

namespace levee {
namespace {

result<limits_config> parse(const std::string& text) {
  auto flat = parse_config_text(text, "test.ini");
  if (!flat)
    return flat.error();
  return limits_from_config(*flat);
}

// Pins every default: a change here must be deliberate (and documented in defaults.hpp).
TEST(LimitsConfig, DefaultsArePinned) {
  auto l = actor_limits::defaults();
  EXPECT_EQ(l.mailbox_capacity, 1024u);
  EXPECT_EQ(l.mailbox_capacity_bytes, 16u * 1024 * 1024);
  EXPECT_EQ(l.max_message_bytes, 1024u * 1024);
  EXPECT_EQ(l.rate_msgs_per_sec, 0u);
  EXPECT_EQ(l.rate_burst_msgs, 0u);
  EXPECT_EQ(l.rate_bytes_per_sec, 0u);
  EXPECT_EQ(l.rate_burst_bytes, 0u);
  EXPECT_EQ(l.max_inflight_per_requester, 64u);
  EXPECT_EQ(l.overload_retry_after_ms, 10u);
  limits_config cfg;
  EXPECT_EQ(cfg.memory_budget_bytes, 256u * 1024 * 1024);
  EXPECT_EQ(cfg.rejection_log_lines_per_sec, 5u);
  EXPECT_EQ(cfg.rejection_log_burst_lines, 20u);
  EXPECT_TRUE(validate(cfg).ok());
  auto empty = parse("");
  ASSERT_TRUE(empty.ok()) << empty.error().to_string();
  EXPECT_EQ(empty->default_limits, l);
}

TEST(LimitsConfig, KindsInheritFromDefaultSection) {
  auto cfg = parse("[limits]\nmemory_budget_bytes = 1GiB\n"
                   "[limits.default]\nmailbox_capacity = 500\nmax_message_bytes = 4KiB\n"
                   "[limits.satellite]\nmailbox_capacity = 50\n");
  ASSERT_TRUE(cfg.ok()) << cfg.error().to_string();
  EXPECT_EQ(cfg->memory_budget_bytes, 1024u * 1024 * 1024);
  EXPECT_EQ(cfg->default_limits.mailbox_capacity, 500u);
  auto& sat = cfg->for_kind("satellite");
  EXPECT_EQ(sat.mailbox_capacity, 50u);
  EXPECT_EQ(sat.max_message_bytes, 4096u);               // from [limits.default]
  EXPECT_EQ(sat.max_inflight_per_requester, 64u);         // from defaults.hpp
  EXPECT_EQ(cfg->for_kind("unknown").mailbox_capacity, 500u);
}

TEST(LimitsConfig, OtherSectionsAreLeftToTheirOwners) {
  auto cfg = parse("[server]\nlisten = 127.0.0.1:4222\n[limits.default]\nmailbox_capacity = 7\n");
  ASSERT_TRUE(cfg.ok()) << cfg.error().to_string();
  EXPECT_EQ(cfg->default_limits.mailbox_capacity, 7u);
}

struct bad_case {
  const char* text;
  const char* must_mention;
};

TEST(LimitsConfig, BadValuesAreRejectedNamingTheKeyAndValue) {
  const bad_case cases[] = {
    {"[limits.default]\nmailbox_capacity = 0\n", "limits.default.mailbox_capacity = 0"},
    {"[limits.svc]\nmailbox_capacity = lots\n", "limits.svc.mailbox_capacity = 'lots'"},
    {"[limits.svc]\nmailbox_capacity = -5\n", "limits.svc.mailbox_capacity = '-5'"},
    {"[limits.svc]\nmax_message_bytes = 4TB\n", "unknown suffix"},
    {"[limits.svc]\nmailbox_capcity = 5\n", "unknown key 'limits.svc.mailbox_capcity'"},
    {"[limits]\nmemory_budget = 5\n", "unknown key 'limits.memory_budget'"},
    {"[limits.Bad]\nmailbox_capacity = 5\n", "[limits.Bad]"},
    {"[limits.svc]\nmax_message_bytes = 2MiB\nmailbox_capacity_bytes = 1MiB\n",
     "limits.svc.mailbox_capacity_bytes = 1048576"},
    {"[limits.svc]\nrate_bytes_per_sec = 1000\n", "limits.svc.rate_burst_bytes"},
    {"[limits.svc]\nrate_burst_msgs = 10\n", "limits.svc.rate_burst_msgs = 10"},
    {"[limits]\nmemory_budget_bytes = 1KiB\n", "limits.memory_budget_bytes = 1024"},
    {"[limits.svc]\nmax_message_bytes = 99999999999999999999999\n", "too large"},
    {"[limits.svc]\nmailbox_capacity = 1\nmailbox_capacity = 2\n", "given twice"},
    {"[limits.svc\nmailbox_capacity = 1\n", "test.ini"},
  };
  for (auto& c : cases) {
    auto cfg = parse(c.text);
    ASSERT_FALSE(cfg.ok()) << c.text;
    EXPECT_EQ(cfg.error().code(), code::bad_request) << c.text;
    EXPECT_NE(cfg.error().message().find(c.must_mention), std::string::npos)
      << "error '" << cfg.error().message() << "' does not mention '" << c.must_mention << "'";
  }
}

TEST(LimitsConfig, QuantitiesAcceptBinarySuffixes) {
  EXPECT_EQ(*parse_quantity("k", "16MiB"), 16u * 1024 * 1024);
  EXPECT_EQ(*parse_quantity("k", " 3 KiB "), 3u * 1024);
  EXPECT_EQ(*parse_quantity("k", "2GiB"), 2ull * 1024 * 1024 * 1024);
  EXPECT_EQ(*parse_quantity("k", "42"), 42u);
  EXPECT_FALSE(parse_quantity("k", "").ok());
  EXPECT_FALSE(parse_quantity("k", "1.5MiB").ok());
}

TEST(LimitsConfig, DurationKeysTakeTimeUnits) {
  // A key ending in _ms is in ms; a time unit converts, as the query language writes them.
  EXPECT_EQ(*parse_quantity("broker.session_timeout_ms", "6000"), 6000u);
  EXPECT_EQ(*parse_quantity("broker.session_timeout_ms", "30s"), 30'000u);
  EXPECT_EQ(*parse_quantity("broker.session_timeout_ms", " 250ms "), 250u);
  EXPECT_EQ(*parse_quantity("stream.retention_max_age_ms", "7d"), 7ull * 86'400'000);
  EXPECT_EQ(*parse_quantity("stream.retention_max_age_ms", "5m"), 300'000u);
  EXPECT_EQ(*parse_quantity("stream.retention_max_age_ms", "2h"), 7'200'000u);
  EXPECT_EQ(*parse_quantity("x.poll_ms", "3000us"), 3u);
  // A _us key is in us.
  EXPECT_EQ(*parse_quantity("node.busy_poll_us", "1ms"), 1000u);
  EXPECT_EQ(*parse_quantity("node.busy_poll_us", "100"), 100u);

  auto error_of = [](const std::string& key, const std::string& text) {
    auto v = parse_quantity(key, text);
    EXPECT_FALSE(v.ok()) << key << " = " << text;
    return v.ok() ? std::string{} : v.error().message();
  };
  // A byte suffix on a duration says which units the key takes.
  auto e = error_of("broker.session_timeout_ms", "16MiB");
  EXPECT_NE(e.find("a duration takes a time unit: us, ms, s, m, h or d"), std::string::npos) << e;
  EXPECT_NE(e.find("broker.session_timeout_ms"), std::string::npos) << e;
  // Part of an ms is no whole number of ms.
  e = error_of("x.poll_ms", "1500us");
  EXPECT_NE(e.find("not a whole number of ms"), std::string::npos) << e;
  // A time unit on a size or a count says it is no duration.
  e = error_of("stream.max_message_bytes", "30s");
  EXPECT_NE(e.find("this key is not a duration"), std::string::npos) << e;
  // Overflow in any unit is refused, not wrapped.
  e = error_of("stream.retention_max_age_ms", "300000000000d");
  EXPECT_NE(e.find("too large"), std::string::npos) << e;
  EXPECT_FALSE(parse_quantity("x.poll_ms", "5 sec").ok());
  EXPECT_FALSE(parse_quantity("x.poll_ms", "-5s").ok());
}

TEST(LimitsConfig, OverridesWinOverTheFile) {
  auto flat = parse_config_text("[limits.svc]\nmailbox_capacity = 10\n", "t.ini");
  ASSERT_TRUE(flat.ok());
  ASSERT_TRUE(apply_overrides(*flat, {"limits.svc.mailbox_capacity=20"}).ok());
  auto cfg = limits_from_config(*flat);
  ASSERT_TRUE(cfg.ok());
  EXPECT_EQ(cfg->for_kind("svc").mailbox_capacity, 20u);
  EXPECT_FALSE(apply_overrides(*flat, {"no-equals-sign"}).ok());
}

TEST(LimitsConfig, MissingFileSaysWhichPath) {
  auto flat = load_config_file("/nonexistent/levee.ini");
  ASSERT_FALSE(flat.ok());
  EXPECT_EQ(flat.error().code(), code::not_found);
  EXPECT_NE(flat.error().message().find("/nonexistent/levee.ini"), std::string::npos);
}

TEST(LimitsConfig, AGarbageLineIsShownEscapedWithItsNumber) {
  using namespace std::string_literals;
  auto text = "[node]\nroles = server\n\x01\x02\xff\xfe\x1b[31mRED\0zero # a comment\n"s;
  auto flat = parse_config_text(text, "bad\x1b.ini");
  ASSERT_FALSE(flat.ok());
  EXPECT_EQ(flat.error().code(), code::bad_request);
  EXPECT_EQ(flat.error().message(),
            "bad\\x1b.ini line 3: not a setting: '\\x01\\x02\\xff\\xfe\\x1b[31mRED\\x00zero'; "
            "a line is [section], key = value or a # comment");
}

TEST(LimitsConfig, AGarbageKeyGivenTwiceIsShownEscaped) {
  auto flat = parse_config_text("[a]\n\x1b\xff = 1\n\x1b\xff = 2\n", "twice.ini");
  ASSERT_FALSE(flat.ok());
  EXPECT_EQ(flat.error().message(),
            "twice.ini: key 'a.\\x1b\\xff' is given twice; keep one of them");
}

TEST(LimitsConfig, ADirectoryIsAnErrorNamingThePath) {
  // A directory opens like a file and reads as nothing: it must not pass for an empty file.
  auto flat = load_config_file(LEVEE_CONFIGS_DIR);
  ASSERT_FALSE(flat.ok()) << "a directory was read as a config with " << flat->size() << " keys";
  EXPECT_EQ(flat.error().code(), code::bad_request);
  EXPECT_EQ(flat.error().message(),
            std::string{"config file '"} + LEVEE_CONFIGS_DIR
              + "' is a directory: give the path of an INI file (e.g. " + LEVEE_CONFIGS_DIR
              + "/server.ini)");
}

TEST(LimitsConfig, AFileThatCannotBeReadIsAnErrorNamingThePath) {
  // Opens, then every read fails (EIO: nothing is mapped at address 0), as root too.
  auto flat = load_config_file("/proc/self/mem");
  ASSERT_FALSE(flat.ok()) << "an unreadable file was read as a config with " << flat->size()
                          << " keys";
  EXPECT_EQ(flat.error().code(), code::storage_error);
  EXPECT_EQ(flat.error().message().find("cannot read config file '/proc/self/mem': "), 0u)
    << flat.error().message();
  EXPECT_NE(flat.error().message().find("; check the file"), std::string::npos)
    << flat.error().message();
}

TEST(LimitsConfig, AFileWithoutReadPermissionIsAnErrorNamingThePath) {
  auto path = std::filesystem::temp_directory_path()
              / ("levee-unreadable-" + std::to_string(::getpid()) + ".ini");
  { std::ofstream{path} << "[limits]\nmemory_budget_bytes = 1MiB\n"; }
  std::filesystem::permissions(path, std::filesystem::perms::none);
  bool readable_anyway = ::access(path.c_str(), R_OK) == 0;  // root reads it all the same
  auto flat = load_config_file(path.string());
  std::filesystem::remove(path);
  if (readable_anyway)
    GTEST_SKIP() << "this user reads files without read permission (root)";
  ASSERT_FALSE(flat.ok());
  EXPECT_EQ(flat.error().code(), code::permission_denied);
  EXPECT_EQ(flat.error().message(),
            "cannot open config file '" + path.string()
              + "': permission denied; make it readable by this user (chmod, chown) or run as "
                "one who may read it");
}

TEST(LimitsConfig, ADeviceIsNotAConfigFile) {
  // /dev/zero would be read forever.
  auto flat = load_config_file("/dev/zero");
  ASSERT_FALSE(flat.ok());
  EXPECT_EQ(flat.error().code(), code::bad_request);
  EXPECT_EQ(flat.error().message(),
            "config file '/dev/zero' is not a regular file (a device or a socket): give the "
            "path of an INI file");
}

TEST(LimitsConfig, EveryShippedConfigFileLoadsAndValidates) {
  int files = 0;
  for (auto& entry : std::filesystem::directory_iterator{LEVEE_CONFIGS_DIR}) {
    // load-*.ini are `levee load` scenarios, no node configs (levee load --check checks
    // them: tests/check_configs.sh).
    if (entry.path().extension() != ".ini" || entry.path().filename().string().rfind("load-", 0) == 0)
      continue;
    ++files;
    auto flat = load_config_file(entry.path().string());
    ASSERT_TRUE(flat.ok()) << flat.error().to_string();
    auto cfg = limits_from_config(*flat);
    EXPECT_TRUE(cfg.ok()) << entry.path() << ": " << cfg.error().to_string();
  }
  EXPECT_GE(files, 2);
}

} // namespace
} // namespace levee
