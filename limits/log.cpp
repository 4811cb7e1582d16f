#include "limits/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdarg>
#include <cstdio>

#include <unistd.h>

#include "base/time_text.hpp"
#include "limits/log_limiter.hpp"
#include "limits/printable.hpp"

namespace levee {

namespace {

std::atomic<uint8_t> current_level{static_cast<uint8_t>(log_level::info)};
std::atomic<uint8_t> current_format{static_cast<uint8_t>(log_format::text)};

const char* text_level(log_level level) noexcept {
  switch (level) {
    case log_level::debug: return "DEBUG";
    case log_level::info: return "INFO ";
    case log_level::warn: return "WARN ";
    case log_level::error: return "ERROR";
  }
  return "?    ";
}

} // namespace

const char* to_string(log_level level) noexcept {
  switch (level) {
    case log_level::debug: return "debug";
    case log_level::info: return "info";
    case log_level::warn: return "warn";
    case log_level::error: return "error";
  }
  return "?";
}

std::string json_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  while (!text.empty()) {
    auto valid = valid_utf8_prefix(text);
    for (unsigned char c : text.substr(0, valid)) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default:
          if (c < 0x20 || c == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
          } else {
            out += static_cast<char>(c);
          }
      }
    }
    text.remove_prefix(valid);
    if (!text.empty()) {  // a byte that starts no valid UTF-8 sequence: shown, not sent
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\\\x%02x", static_cast<unsigned char>(text[0]));
      out += buf;
      text.remove_prefix(1);
    }
  }
  return out;
}

std::string format_log_line(log_format format, int64_t epoch_ms, log_level level,
                            std::string_view role, int64_t pid, std::string_view message) {
  std::string out;
  out.reserve(message.size() + 64);
  if (format == log_format::json) {
    out += "{\"ts\":\"";
    out += base::format_rfc3339_ms(epoch_ms, true);
    out += "\",\"level\":\"";
    out += to_string(level);
    out += "\",\"role\":\"";
    out += json_escape(role);
    out += "\",\"pid\":";
    out += std::to_string(pid);
    out += ",\"msg\":\"";
    out += json_escape(message);
    out += "\"}";
    return out;
  }
  out += base::format_rfc3339_ms(epoch_ms, true);
  out += ' ';
  out += text_level(level);
  out += ' ';
  out += printable(role);
  out += '[';
  out += std::to_string(pid);
  out += "] ";
  out += printable(message);
  return out;
}

void configure_log(const log_options& opts) noexcept {
  current_format.store(static_cast<uint8_t>(opts.format), std::memory_order_relaxed);
  current_level.store(static_cast<uint8_t>(opts.level), std::memory_order_relaxed);
}

bool log_enabled(log_level level) noexcept {
  return static_cast<uint8_t>(level) >= current_level.load(std::memory_order_relaxed);
}

void log_line(log_level level, std::string_view role, std::string_view message) {
  static const int64_t pid = ::getpid();
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
               .count();
  auto format = static_cast<log_format>(current_format.load(std::memory_order_relaxed));
  write_log_line(format_log_line(format, now, level, role, pid, message));
}

void log_printf(log_level level, const char* role, const char* format, ...) {
  char small[512];
  va_list args;
  va_start(args, format);
  va_list again;
  va_copy(again, args);
  int n = std::vsnprintf(small, sizeof small, format, args);
  va_end(args);
  if (n < 0) {
    va_end(again);
    log_line(level, role, format);  // a bad format: the format itself says where
    return;
  }
  if (static_cast<size_t>(n) < sizeof small) {
    va_end(again);
    log_line(level, role, std::string_view{small, static_cast<size_t>(n)});
    return;
  }
  std::string big(static_cast<size_t>(n) + 1, '\0');
  std::vsnprintf(big.data(), big.size(), format, again);
  va_end(again);
  big.resize(static_cast<size_t>(n));
  log_line(level, role, big);
}

result<log_options> log_from_config(const flat_config& cfg) {
  log_options out;
  for (auto& [key, value] : cfg) {
    if (key.rfind("log.", 0) != 0)
      continue;
    if (key == "log.level") {
      if (value == "debug")
        out.level = log_level::debug;
      else if (value == "info")
        out.level = log_level::info;
      else if (value == "warn")
        out.level = log_level::warn;
      else if (value == "error")
        out.level = log_level::error;
      else
        return status::error(code::bad_request,
                             "log.level = " + printable(value)
                               + ": must be debug, info, warn or error (lines below it are "
                                 "not written; the default is info)");
    } else if (key == "log.format") {
      if (value == "text")
        out.format = log_format::text;
      else if (value == "json")
        out.format = log_format::json;
      else
        return status::error(code::bad_request,
                             "log.format = " + printable(value)
                               + ": must be text (for people, the default) or json (one "
                                 "object per line: ts, level, role, pid, msg)");
    } else {
      return status::error(code::bad_request, "unknown key '" + printable(key)
                                                + "'; known keys in [log]: level, format");
    }
  }
  return out;
}

std::vector<std::string> log_config_keys() {
  return {"log.format", "log.level"};
}

} // namespace levee
