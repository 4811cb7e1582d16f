// The Prometheus text format (exposition.hpp).

#include "http/exposition.hpp"

#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <sys/resource.h>
#include <unistd.h>

namespace levee::http {

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v))
    return "NaN";
  if (std::isinf(v))
    return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15)
    std::snprintf(buf, sizeof buf, "%.0f", v);
  else
    std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

void exposition::family(std::string_view name, std::string_view type, std::string_view help) {
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  // HELP text escapes backslash and newline only.
  for (char c : help) {
    if (c == '\\')
      out_ += "\\\\";
    else if (c == '\n')
      out_ += "\\n";
    else
      out_ += c;
  }
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type;
  out_ += '\n';
}

void exposition::labels(std::initializer_list<label> ls) {
  if (ls.size() == 0)
    return;
  out_ += '{';
  bool first = true;
  for (auto& [k, v] : ls) {
    if (!first)
      out_ += ',';
    first = false;
    out_ += k;
    out_ += "=\"";
    out_ += escape_label_value(v);
    out_ += '"';
  }
  out_ += '}';
}

void exposition::sample(std::string_view name, std::initializer_list<label> ls, double value) {
  out_ += name;
  labels(ls);
  out_ += ' ';
  out_ += format_value(value);
  out_ += '\n';
}

void exposition::sample(std::string_view name, std::initializer_list<label> ls, uint64_t value) {
  out_ += name;
  labels(ls);
  out_ += ' ';
  out_ += std::to_string(value);
  out_ += '\n';
}

void exposition::counter(std::string_view name, std::string_view help, uint64_t value) {
  family(name, "counter", help);
  sample(name, value);
}

void exposition::gauge(std::string_view name, std::string_view help, uint64_t value) {
  family(name, "gauge", help);
  sample(name, value);
}

void exposition::gauge(std::string_view name, std::string_view help, double value) {
  family(name, "gauge", help);
  sample(name, value);
}

void write_process_metrics(exposition& out) {
  // /proc/self/stat: fields after the command's closing parenthesis; utime and stime are
  // the 14th and 15th, starttime the 22nd, vsize the 23rd, rss (pages) the 24th.
  std::ifstream stat{"/proc/self/stat"};
  std::string text{std::istreambuf_iterator<char>{stat}, {}};
  auto close = text.rfind(')');
  if (close != std::string::npos) {
    std::istringstream in{text.substr(close + 2)};
    std::string field[22];
    for (auto& f : field)
      in >> f;
    // field[0] is the 3rd field (state): the n-th field is field[n - 3].
    double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
    double cpu = (std::strtod(field[11].c_str(), nullptr) + std::strtod(field[12].c_str(), nullptr))
                 / ticks;
    out.family("process_cpu_seconds_total", "counter",
               "CPU time the process used, user and system, in seconds.");
    out.sample("process_cpu_seconds_total", cpu);
    out.gauge("process_resident_memory_bytes", "Resident memory of the process, in bytes.",
              static_cast<uint64_t>(std::strtod(field[21].c_str(), nullptr) * page));
    out.gauge("process_virtual_memory_bytes", "Virtual memory of the process, in bytes.",
              static_cast<uint64_t>(std::strtoull(field[20].c_str(), nullptr, 10)));
    out.gauge("process_threads", "Threads of the process.",
              static_cast<uint64_t>(std::strtoull(field[17].c_str(), nullptr, 10)));
    // Start time: boot time (btime of /proc/stat) plus the start in ticks since boot.
    std::ifstream pstat{"/proc/stat"};
    std::string key;
    double btime = 0;
    while (pstat >> key)
      if (key == "btime") {
        pstat >> btime;
        break;
      }
    if (btime > 0)
      out.gauge("process_start_time_seconds",
                "Start time of the process since the Unix epoch, in seconds.",
                btime + std::strtod(field[19].c_str(), nullptr) / ticks);
  }
  std::error_code ec;
  uint64_t fds = 0;
  for (auto it = std::filesystem::directory_iterator{"/proc/self/fd", ec};
       !ec && it != std::filesystem::directory_iterator{}; it.increment(ec))
    ++fds;
  out.gauge("process_open_fds", "Open file descriptors of the process.", fds);
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
    out.gauge("process_max_fds", "The process's limit on open file descriptors.",
              static_cast<uint64_t>(rl.rlim_cur));
}

} // namespace levee::http
