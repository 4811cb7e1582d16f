// limits/log.hpp: the text and JSON forms of a line, escaping, level filtering, [log] keys.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "limits/log.hpp"
#include "limits/log_limiter.hpp"

namespace levee {
namespace {

// 2026-12-06T02:34:02.123Z
constexpr int64_t some_ms = 1'796'524'442'123;

/// Captures every line while it lives; leaves the log at info/text and silent.
struct captured_log {
  std::vector<std::string> lines;
  explicit captured_log(log_options opts = {}) {
    configure_log(opts);
    set_log_sink([this](std::string_view line) { lines.emplace_back(line); });
  }
  ~captured_log() {
    configure_log({});
    set_log_sink([](std::string_view) {});
  }
};

TEST(Log, TextLineHasTimeLevelRolePidAndMessage) {
  EXPECT_EQ(format_log_line(log_format::text, some_ms, log_level::warn, "broker", 4242,
                            "stream x: sync failed"),
            "2026-12-06T02:34:02.123Z WARN  broker[4242] stream x: sync failed");
  // Milliseconds always written, so every time has the same width.
  EXPECT_EQ(format_log_line(log_format::text, 0, log_level::error, "net", 1, "m"),
            "1970-01-01T00:00:00.000Z ERROR net[1] m");
}

TEST(Log, TextLineEscapesControlBytesSoALineStaysOneLine) {
  auto line = format_log_line(log_format::text, some_ms, log_level::info, "satellite", 7,
                              "first\nsecond\x1b[31m");
  EXPECT_EQ(line.find('\n'), std::string::npos) << line;
  EXPECT_EQ(line.find('\x1b'), std::string::npos) << line;
  EXPECT_NE(line.find("first\\x0asecond\\x1b[31m"), std::string::npos) << line;
}

TEST(Log, JsonLineIsOneObjectWithEveryField) {
  auto line = format_log_line(log_format::json, some_ms, log_level::info, "server", 4242,
                              "listening on 127.0.0.1:7400");
  EXPECT_EQ(line, "{\"ts\":\"2026-12-06T02:34:02.123Z\",\"level\":\"info\",\"role\":\"server\","
                  "\"pid\":4242,\"msg\":\"listening on 127.0.0.1:7400\"}");
  auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j.size(), 5u);
  EXPECT_EQ(j.at("pid").get<int>(), 4242);
}

TEST(Log, JsonEscapesQuotesBackslashesNewlinesAndControlBytes) {
  std::string message = "say \"hi\"\\ now\nnext\tline\r\b\f\x01\x1f\x7f end";
  auto line = format_log_line(log_format::json, some_ms, log_level::error, "role \"q\"", 1,
                              message);
  EXPECT_EQ(line.find('\n'), std::string::npos) << line;
  auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j.at("msg").get<std::string>(), message);  // every byte comes back as it was
  EXPECT_EQ(j.at("role").get<std::string>(), "role \"q\"");
  EXPECT_EQ(json_escape("a\x01"), "a\\u0001");
}

TEST(Log, JsonShowsBytesThatAreNotUtf8AsText) {
  // A peer's bytes in a message: JSON may hold only UTF-8, so 0xFF becomes the text \xFF.
  auto line = format_log_line(log_format::json, some_ms, log_level::warn, "net", 1,
                              std::string{"caf\xC3\xA9 \xFF!"});
  auto j = nlohmann::json::parse(line);  // throws on invalid UTF-8
  EXPECT_EQ(j.at("msg").get<std::string>(), "caf\xC3\xA9 \\xff!");
}

TEST(Log, LinesBelowTheLevelAreNotWrittenNorTheirArgumentsEvaluated) {
  captured_log log{{log_level::warn, log_format::text}};
  int evaluated = 0;
  auto count = [&] { return ++evaluated; };
  LEVEE_DEBUG("test", "debug %d", count());
  LEVEE_INFO("test", "info %d", count());
  EXPECT_EQ(evaluated, 0);
  EXPECT_TRUE(log.lines.empty());
  LEVEE_WARN("test", "warn %d", count());
  LEVEE_ERROR("test", "error %d", count());
  ASSERT_EQ(log.lines.size(), 2u);
  EXPECT_NE(log.lines[0].find(" WARN  test["), std::string::npos) << log.lines[0];
  EXPECT_NE(log.lines[0].find("] warn 1"), std::string::npos) << log.lines[0];
  EXPECT_NE(log.lines[1].find(" ERROR test["), std::string::npos) << log.lines[1];
  EXPECT_TRUE(log_enabled(log_level::error));
  EXPECT_FALSE(log_enabled(log_level::info));
}

TEST(Log, AMessageLongerThanTheStackBufferIsWrittenWhole) {
  captured_log log{{log_level::debug, log_format::json}};
  std::string big(5000, 'x');
  LEVEE_DEBUG("test", "%s|%d", big.c_str(), 7);
  ASSERT_EQ(log.lines.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(log.lines[0]).at("msg").get<std::string>(), big + "|7");
}

TEST(Log, ConfigReadsLevelAndFormatAndNamesWhatToWriteInstead) {
  auto none = log_from_config({});
  ASSERT_TRUE(none) << none.error().to_string();
  EXPECT_EQ(none->level, log_level::info);
  EXPECT_EQ(none->format, log_format::text);
  auto set = log_from_config({{"log.level", "debug"}, {"log.format", "json"}});
  ASSERT_TRUE(set) << set.error().to_string();
  EXPECT_EQ(set->level, log_level::debug);
  EXPECT_EQ(set->format, log_format::json);
  auto bad_level = log_from_config({{"log.level", "verbose"}});
  ASSERT_FALSE(bad_level);
  EXPECT_EQ(bad_level.error().code(), code::bad_request);
  EXPECT_NE(bad_level.error().message().find("log.level = verbose: must be debug, info, warn or "
                                             "error"),
            std::string::npos)
    << bad_level.error().message();
  auto bad_format = log_from_config({{"log.format", "xml"}});
  ASSERT_FALSE(bad_format);
  EXPECT_NE(bad_format.error().message().find("log.format = xml: must be text"),
            std::string::npos)
    << bad_format.error().message();
  auto unknown = log_from_config({{"log.levle", "info"}});
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().message(), "unknown key 'log.levle'; known keys in [log]: level, format");
  // Every listed key is one the reader takes.
  for (auto& key : log_config_keys())
    EXPECT_TRUE(log_from_config({{key, key == "log.level" ? "warn" : "text"}})) << key;
  EXPECT_EQ(log_config_keys().size(), 2u);
}

TEST(Log, RejectionLinesAreWarnAndGoneAtLevelError) {
  captured_log log{{log_level::error, log_format::json}};
  manual_clock clock;
  log_limiter limiter{clock, 5, 2};
  rejection r = rejection::of(code::mailbox_full).limit("limits.svc.mailbox_capacity").observed(11).max(10);
  limiter.report("svc", r);
  EXPECT_TRUE(log.lines.empty());
  EXPECT_EQ(limiter.suppressed_total(), 0u);  // not written by choice, not suppressed
  configure_log({log_level::warn, log_format::json});
  limiter.report("svc", r);
  ASSERT_EQ(log.lines.size(), 1u);
  auto j = nlohmann::json::parse(log.lines[0]);
  EXPECT_EQ(j.at("level"), "warn");
  EXPECT_EQ(j.at("role"), "limits");
  EXPECT_EQ(j.at("msg").get<std::string>(), "svc: " + r.to_string());
}

} // namespace
} // namespace levee
