#pragma once
// A node's log lines (README.md "log"): each one a UTC time with milliseconds, a level, the
// role that wrote it, the process id and the message, as text for people or one JSON
// object per line for a collector; `[log] level` and `[log] format` choose. Lines go to
// the sink of log_limiter.hpp (stderr unless a test installs another), one call per line,
// so lines written by different threads never interleave.
//
// Write through the macros: below the level a line costs one relaxed atomic load, and
// its arguments are not even evaluated.
//   LEVEE_WARN("broker", "stream %s: retention failed: %s", name.c_str(), why.c_str());

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "limits/config_file.hpp"
#include "limits/status.hpp"

namespace levee {

/// Ordered: a line is written when its level is at least the configured one.
enum class log_level : uint8_t { debug = 0, info = 1, warn = 2, error = 3 };

enum class log_format : uint8_t {
  text,  // `2026-12-06T02:34:02.123Z WARN  broker[4242] stream x: ...`
  json,  // `{"ts":"2026-12-06T02:34:02.123Z","level":"warn","role":"broker","pid":4242,"msg":"..."}`
};

/// [log]: `level` (default info) and `format` (default text).
struct log_options {
  log_level level = log_level::info;
  log_format format = log_format::text;
};

/// Reads [log]; an unknown key or value is a bad_request naming the key and the values it
/// takes.
result<log_options> log_from_config(const flat_config& cfg);

/// Every [log] key (`levee config-keys`).
std::vector<std::string> log_config_keys();

/// Applies `opts` to every line written from now on. Call at start-up, before the roles
/// start (the level is an atomic, so a later call is safe too, but lines already being
/// written keep the format they began with).
void configure_log(const log_options& opts) noexcept;

/// True when a line of `level` would be written: the one check a line below the level
/// costs.
bool log_enabled(log_level level) noexcept;

/// Formats and writes one line (no newline in `message`: one is added; control bytes in it
/// are escaped, so a line is always one line). Does not check the level.
void log_line(log_level level, std::string_view role, std::string_view message);

/// The same with a printf format. Does not check the level: use the macros.
void log_printf(log_level level, const char* role, const char* format, ...)
  __attribute__((format(printf, 3, 4)));

/// One line as `format` writes it, without the newline: what log_line() hands the sink.
/// Pure, for tests: `epoch_ms` is the time, `pid` the process id.
std::string format_log_line(log_format format, int64_t epoch_ms, log_level level,
                            std::string_view role, int64_t pid, std::string_view message);

/// "debug", "info", "warn", "error".
const char* to_string(log_level level) noexcept;

/// `text` as a JSON string body (no quotes): `"` `\` and control bytes escaped (\n, \t,
/// \u00XX, ...); bytes that are not UTF-8 are written as the text `\xNN`, so the result is
/// always valid JSON.
std::string json_escape(std::string_view text);

} // namespace levee

#define LEVEE_LOG(level, role, ...)                                                        \
  do {                                                                                     \
    if (::levee::log_enabled(level))                                                       \
      ::levee::log_printf(level, role, __VA_ARGS__);                                       \
  } while (0)
#define LEVEE_DEBUG(role, ...) LEVEE_LOG(::levee::log_level::debug, role, __VA_ARGS__)
#define LEVEE_INFO(role, ...) LEVEE_LOG(::levee::log_level::info, role, __VA_ARGS__)
#define LEVEE_WARN(role, ...) LEVEE_LOG(::levee::log_level::warn, role, __VA_ARGS__)
#define LEVEE_ERROR(role, ...) LEVEE_LOG(::levee::log_level::error, role, __VA_ARGS__)
