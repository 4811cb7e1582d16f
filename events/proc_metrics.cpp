#include "events/proc_metrics.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <fcntl.h>
#include <unistd.h>

namespace levee::events {

namespace {

constexpr size_t max_proc_file_bytes = 64 * 1024;  // /proc/stat of a 1000-CPU host fits

void skip_spaces(std::string_view& s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
}

bool take_uint(std::string_view& s, uint64_t& v) {
  skip_spaces(s);
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc{})
    return false;
  s.remove_prefix(static_cast<size_t>(r.ptr - s.data()));
  return true;
}

/// strtod needs a terminated string; /proc/loadavg numbers are short.
bool take_double(std::string_view& s, double& v) {
  skip_spaces(s);
  char buf[32];
  size_t n = 0;
  while (n < s.size() && n + 1 < sizeof buf && s[n] != ' ' && s[n] != '\n')
    buf[n] = s[n], ++n;
  buf[n] = '\0';
  char* end = nullptr;
  v = std::strtod(buf, &end);
  if (n == 0 || end != buf + n)
    return false;
  s.remove_prefix(n);
  return true;
}

/// The value in kB of `key:` in /proc/meminfo.
bool meminfo_kb(std::string_view text, std::string_view key, uint64_t& kb) {
  size_t at = 0;
  while (at < text.size()) {
    size_t eol = text.find('\n', at);
    auto line = text.substr(at, eol == std::string_view::npos ? std::string_view::npos : eol - at);
    if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == ':') {
      line.remove_prefix(key.size() + 1);
      return take_uint(line, kb);
    }
    if (eol == std::string_view::npos)
      break;
    at = eol + 1;
  }
  return false;
}

} // namespace

status validate(const proc_metrics_config& config, const std::string& prefix) {
  if (config.interval_ms < defaults::proc_interval_ms_min
      || config.interval_ms > defaults::proc_interval_ms_ceiling)
    return status::error(code::bad_request,
                         prefix + ".interval_ms = " + std::to_string(config.interval_ms)
                           + ": must be between " + std::to_string(defaults::proc_interval_ms_min)
                           + " and " + std::to_string(defaults::proc_interval_ms_ceiling) + " ms");
  if (config.proc_dir.empty())
    return status::error(code::bad_request, prefix + ".proc_dir: must not be empty");
  if (config.host.size() > 255)
    return status::error(code::bad_request, prefix + ".host: longer than 255 bytes");
  return {};
}

proc_metrics::proc_metrics(proc_metrics_config config) : config_(std::move(config)) {
  host_ = config_.host;
  if (host_.empty()) {
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) == 0)
      host_ = name;
    else
      host_ = "unknown";
  }
}

bool proc_metrics::read_file(const char* name, std::string& text) {
  std::string path = config_.proc_dir + "/" + name;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    record_error(status::error(code::storage_error, "open " + path + ": " + errno_text(errno)));
    return false;
  }
  text.resize(max_proc_file_bytes);
  size_t size = 0;
  // /proc files are generated on read and may come in several pieces.
  while (size < text.size()) {
    ssize_t n = ::read(fd, text.data() + size, text.size() - size);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      record_error(status::error(code::storage_error, "read " + path + ": " + errno_text(err)));
      return false;
    }
    if (n == 0)
      break;
    size += static_cast<size_t>(n);
  }
  ::close(fd);
  text.resize(size);
  stats_.bytes_read += size;
  return true;
}

size_t proc_metrics::poll(std::vector<event>& out, size_t max_events, int64_t now_ms) {
  if (max_events == 0)
    return 0;
  event e;
  e.timestamp_ms = now_ms;
  e.fields.reserve(10);
  e.fields.push_back({"source", std::string{"proc"}});
  e.fields.push_back({"host", host_});

  // The first line: "cpu  user nice system idle iowait irq softirq steal guest guest_nice",
  // in clock ticks. guest time is already inside user, so it is not added again.
  if (read_file("stat", text_)) {
    std::string_view s{text_};
    uint64_t ticks[8] = {};
    bool ok = s.substr(0, 4) == "cpu ";
    if (ok) {
      s.remove_prefix(4);
      for (int i = 0; i < 4 && ok; ++i)  // the first four are in every kernel
        ok = take_uint(s, ticks[i]);
      for (int i = 4; i < 8 && ok; ++i)
        if (!take_uint(s, ticks[i]))
          break;
    }
    if (ok) {
      uint64_t total = 0;
      for (auto t : ticks)
        total += t;
      uint64_t idle = ticks[3] + ticks[4];
      // Counters only grow; a smaller total means a different sample base (a test
      // swapping files, a restored VM): start over from this sample.
      if (have_cpu_ && total >= prev_total_ && idle >= prev_idle_) {
        uint64_t d_total = total - prev_total_;
        uint64_t d_idle = idle - prev_idle_;
        if (d_total > 0)  // less than a tick since the last poll: keep the last value
          last_cpu_percent_ = 100.0 * static_cast<double>(d_total - std::min(d_idle, d_total))
                              / static_cast<double>(d_total);
      } else if (total > 0) {
        last_cpu_percent_ = 100.0 * static_cast<double>(total - std::min(idle, total))
                            / static_cast<double>(total);
      }
      prev_total_ = total;
      prev_idle_ = idle;
      have_cpu_ = true;
      e.fields.push_back({"cpu_percent", last_cpu_percent_});
    } else {
      record_error(status::error(code::storage_error,
                                 config_.proc_dir + "/stat: no parsable \"cpu\" line"));
    }
  }

  if (read_file("meminfo", text_)) {
    uint64_t total_kb = 0, available_kb = 0;
    if (meminfo_kb(text_, "MemTotal", total_kb) && meminfo_kb(text_, "MemAvailable", available_kb)
        && total_kb > 0) {
      e.fields.push_back({"mem_total_bytes", static_cast<int64_t>(total_kb * 1024)});
      e.fields.push_back({"mem_available_bytes", static_cast<int64_t>(available_kb * 1024)});
      e.fields.push_back(
        {"mem_used_percent", 100.0 * static_cast<double>(total_kb - std::min(available_kb, total_kb))
                               / static_cast<double>(total_kb)});
    } else {
      record_error(status::error(code::storage_error,
                                 config_.proc_dir + "/meminfo: no MemTotal or MemAvailable"));
    }
  }

  if (read_file("loadavg", text_)) {
    std::string_view s{text_};
    double load[3];
    if (take_double(s, load[0]) && take_double(s, load[1]) && take_double(s, load[2])) {
      e.fields.push_back({"load1", load[0]});
      e.fields.push_back({"load5", load[1]});
      e.fields.push_back({"load15", load[2]});
    } else {
      record_error(status::error(code::storage_error,
                                 config_.proc_dir + "/loadavg: not three load averages"));
    }
  }

  out.push_back(std::move(e));
  ++stats_.events;
  return 1;
}

} // namespace levee::events
