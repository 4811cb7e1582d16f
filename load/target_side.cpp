#include "load/target_side.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <unistd.h>

#include "load/results.hpp"

namespace levee::load {

target_counters counter_deltas(const target_counters& before, const target_counters& after,
                               std::vector<std::string>* went_back) {
  target_counters out;
  for (auto& [name, value] : after) {
    auto it = before.find(name);
    uint64_t was = it == before.end() ? 0 : it->second;
    if (value < was) {
      if (went_back)
        went_back->push_back(name);
      continue;
    }
    if (value > was)
      out[name] = value - was;
  }
  return out;
}

bool is_local_host(const std::string& host) {
  if (host == "localhost" || host == "::1" || host == "::" || host == "0.0.0.0"
      || host.rfind("127.", 0) == 0)
    return true;
  // An address of one of this machine's interfaces, compared as text in its own family.
  ifaddrs* all = nullptr;
  if (::getifaddrs(&all) != 0)
    return false;
  bool found = false;
  for (auto* a = all; a && !found; a = a->ifa_next) {
    if (!a->ifa_addr)
      continue;
    char text[INET6_ADDRSTRLEN] = {};
    if (a->ifa_addr->sa_family == AF_INET)
      ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr, text, sizeof text);
    else if (a->ifa_addr->sa_family == AF_INET6)
      ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(a->ifa_addr)->sin6_addr, text, sizeof text);
    found = host == text;
  }
  ::freeifaddrs(all);
  return found;
}

namespace {

/// The inodes of the sockets listening on `port` in a /proc/net/tcp-style table.
void listening_inodes(const char* table, uint16_t port, std::set<std::string>& out) {
  std::ifstream in{table};
  std::string line;
  std::getline(in, line);  // the header
  while (std::getline(in, line)) {
    std::istringstream fields{line};
    std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
    fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >> timeout
      >> inode;
    auto colon = local.rfind(':');
    // State 0A is LISTEN (include/net/tcp_states.h).
    if (state != "0A" || colon == std::string::npos)
      continue;
    if (std::strtoul(local.c_str() + colon + 1, nullptr, 16) == port && inode != "0")
      out.insert(inode);
  }
}

/// "VmRSS:    1234 kB" -> bytes; 0 when the line is missing.
uint64_t status_kib(const std::string& status, const char* key) {
  auto at = status.find(key);
  if (at == std::string::npos)
    return 0;
  return std::strtoull(status.c_str() + at + std::strlen(key), nullptr, 10) * 1024;
}

std::string mib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return buf;
}

} // namespace

std::optional<int> find_listening_pid(uint16_t port, std::string& why) {
  namespace fs = std::filesystem;
  std::set<std::string> inodes;
  listening_inodes("/proc/net/tcp", port, inodes);
  listening_inodes("/proc/net/tcp6", port, inodes);
  if (inodes.empty()) {
    why = "no socket listens on port " + std::to_string(port) + " here";
    return std::nullopt;
  }
  std::error_code ec;
  for (auto& proc : fs::directory_iterator("/proc", ec)) {
    auto name = proc.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos)
      continue;
    std::error_code fd_ec;
    for (auto& fd : fs::directory_iterator(proc.path() / "fd", fd_ec)) {
      std::error_code link_ec;
      auto target = fs::read_symlink(fd.path(), link_ec).string();
      if (!link_ec && target.rfind("socket:[", 0) == 0
          && inodes.count(target.substr(8, target.size() - 9)) > 0)
        return std::stoi(name);
    }
  }
  why = "port " + std::to_string(port)
        + " listens, but its process is not one this user may look into (another user's?)";
  return std::nullopt;
}

std::optional<process_sample> sample_process(int pid) {
  auto base = "/proc/" + std::to_string(pid);
  std::ifstream stat_file{base + "/stat"};
  std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
  // The command name (field 2) is in parentheses and may hold spaces: count from after it.
  auto close = stat.rfind(')');
  if (close == std::string::npos)
    return std::nullopt;
  std::istringstream fields{stat.substr(close + 1)};
  std::string field;
  uint64_t utime = 0, stime = 0;
  // After ')' come field 3 (state) onwards; utime and stime are fields 14 and 15.
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14)
      utime = std::strtoull(field.c_str(), nullptr, 10);
    if (i == 15)
      stime = std::strtoull(field.c_str(), nullptr, 10);
  }
  std::ifstream status_file{base + "/status"};
  std::string status((std::istreambuf_iterator<char>(status_file)), std::istreambuf_iterator<char>());
  process_sample s;
  auto ticks = static_cast<uint64_t>(::sysconf(_SC_CLK_TCK));
  s.cpu_ns = (utime + stime) * (1'000'000'000 / (ticks ? ticks : 100));
  s.rss_bytes = status_kib(status, "VmRSS:");
  s.peak_rss_bytes = status_kib(status, "VmHWM:");
  s.at = std::chrono::steady_clock::now();
  return s;
}

double process_figures::cpu_seconds() const noexcept {
  if (!known() || after->cpu_ns < before->cpu_ns)
    return 0;
  return static_cast<double>(after->cpu_ns - before->cpu_ns) / 1e9;
}

double process_figures::cpu_percent() const noexcept {
  if (!known())
    return 0;
  double wall = std::chrono::duration<double>(after->at - before->at).count();
  return wall > 0 ? 100.0 * cpu_seconds() / wall : 0;
}

void wire_accounting::refused_with(std::string_view code) {
  auto it = refused.find(code);
  if (it == refused.end())
    it = refused.emplace(std::string{code}, 0).first;
  ++it->second;
}

void wire_accounting::merge(const wire_accounting& o) {
  sent += o.sent;
  refused_locally += o.refused_locally;
  accepted += o.accepted;
  for (auto& [c, n] : o.refused)
    refused[c] += n;
  unanswered += o.unanswered;
  own_requests += o.own_requests;
  for (auto& [c, n] : o.own_refused)
    own_refused[c] += n;
}

accounting_check check_accounting(const wire_accounting& tool, const target_counters& delta,
                                  bool other_traffic, const accounting_names& names) {
  accounting_check out;
  out.made = true;
  auto get = [&](const std::string& name) {
    auto it = delta.find(name);
    return it == delta.end() ? uint64_t{0} : it->second;
  };
  uint64_t answered_raw = get(names.answered);
  uint64_t answered = answered_raw > tool.own_requests ? answered_raw - tool.own_requests : 0;
  std::map<std::string, uint64_t> target_refused;
  const std::string& prefix = names.refused_prefix;
  for (auto& [name, n] : delta)
    if (name.rfind(prefix, 0) == 0)
      target_refused[name.substr(prefix.size())] = n;
  for (auto& [c, n] : tool.own_refused)
    if (target_refused.count(c))
      target_refused[c] -= std::min(target_refused[c], n);
  uint64_t u = tool.unanswered;
  auto gave_up = u == 0 ? std::string{}
                        : " (the tool gave up on " + std::to_string(u)
                            + " it sent, so the target may have answered up to that many more)";
  auto more = other_traffic ? std::string{}
                            : "; did another client use the target meanwhile? Then pass "
                              "--other-traffic";
  // Each figure of the target lies in [tool's, tool's + unanswered]; with other traffic,
  // only at least the tool's.
  auto check = [&](const std::string& what, uint64_t target_n, uint64_t tool_n) {
    if (target_n < tool_n)
      out.differences.push_back("the target counted " + std::to_string(target_n) + " " + what
                                + ", the tool " + std::to_string(tool_n) + ": "
                                + std::to_string(tool_n - target_n) + " the target did not count");
    else if (!other_traffic && target_n > tool_n + u)
      out.differences.push_back("the target counted " + std::to_string(target_n) + " " + what
                                + ", the tool " + std::to_string(tool_n) + gave_up + more);
  };
  check("answered", answered, tool.accepted);
  std::set<std::string> codes;
  for (auto& [c, n] : target_refused)
    codes.insert(c);
  for (auto& [c, n] : tool.refused)
    codes.insert(c);
  for (auto& c : codes) {
    auto t = target_refused.count(c) ? target_refused.at(c) : 0;
    auto mine = tool.refused.count(c) ? tool.refused.at(c) : 0;
    check("refused with " + c, t, mine);
  }
  uint64_t target_total = answered;
  for (auto& [c, n] : target_refused)
    target_total += n;
  if (!other_traffic && target_total > tool.sent)
    out.differences.push_back("the target answered or refused " + std::to_string(target_total)
                              + " requests, more than the " + std::to_string(tool.sent)
                              + " the tool sent" + more);
  out.held = out.differences.empty();
  return out;
}

std::string target_side::text() const {
  std::string out = "\ntarget:\n";
  char line[512];
  auto add = [&](const char* fmt, auto... args) {
    if constexpr (sizeof...(args) == 0) {
      out += fmt;  // no conversions: the text as it is
    } else {
      std::snprintf(line, sizeof line, fmt, args...);
      out += line;
    }
  };
  if (process.known()) {
    auto& b = *process.before;
    auto& a = *process.after;
    add("  process %s: cpu %.2f s (%.1f%% of a core), rss %s -> %s, peak %s\n",
        process.status.c_str(), process.cpu_seconds(), process.cpu_percent(),
        mib(b.rss_bytes).c_str(), mib(a.rss_bytes).c_str(), mib(a.peak_rss_bytes).c_str());
  } else {
    add("  process: %s\n", process.status.c_str());
  }
  if (stats_status != "read") {
    add("  counters: %s\n", stats_status.c_str());
    return out;
  }
  add("  counters that moved during the run (stats before and after):\n");
  for (auto& [name, n] : delta)
    add("    %-56s %+12" PRId64 "\n", name.c_str(), static_cast<int64_t>(n));
  uint64_t refused = 0;
  for (auto& [c, n] : tool.refused)
    refused += n;
  add("  the tool: %" PRIu64 " sent, %" PRIu64 " answered, %" PRIu64 " refused, %" PRIu64
      " unanswered (timed out or lost), %" PRIu64 " refused by the client itself (not sent); "
      "%" PRIu64 " stats request of its own\n",
      tool.sent, tool.accepted, refused, tool.unanswered, tool.refused_locally, tool.own_requests);
  if (accounting.held)
    add("  accounting: HELD: every request sent is counted on the target%s\n",
        other_traffic ? " (at least; --other-traffic)" : "");
  else
    add("  accounting: MISMATCH:\n");
  for (auto& d : accounting.differences)
    out += "    " + d + "\n";
  return out;
}

std::string target_side::json() const {
  auto counts = [](const auto& m) {
    std::string o = "{";
    for (auto& [k, v] : m)
      o += (o.size() > 1 ? "," : "") + json_string(k) + ":" + std::to_string(v);
    return o + "}";
  };
  std::string out = "{\"stats\":" + json_string(stats_status) + ",\"delta\":" + counts(delta)
                    + ",\"process\":{\"status\":" + json_string(process.status)
                    + ",\"pid\":" + std::to_string(process.pid);
  if (process.known())
    out += ",\"cpu_seconds\":" + fixed_number(process.cpu_seconds())
           + ",\"cpu_percent\":" + fixed_number(process.cpu_percent())
           + ",\"rss_before_bytes\":" + std::to_string(process.before->rss_bytes)
           + ",\"rss_after_bytes\":" + std::to_string(process.after->rss_bytes)
           + ",\"peak_rss_bytes\":" + std::to_string(process.after->peak_rss_bytes);
  out += "},\"tool\":{\"sent\":" + std::to_string(tool.sent)
         + ",\"refused_locally\":" + std::to_string(tool.refused_locally)
         + ",\"accepted\":" + std::to_string(tool.accepted) + ",\"refused\":" + counts(tool.refused)
         + ",\"unanswered\":" + std::to_string(tool.unanswered)
         + ",\"own_requests\":" + std::to_string(tool.own_requests) + "}"
         + ",\"accounting\":{\"checked\":" + (accounting.made ? "true" : "false")
         + ",\"held\":" + (accounting.held ? "true" : "false")
         + ",\"other_traffic\":" + (other_traffic ? "true" : "false") + ",\"differences\":[";
  for (size_t i = 0; i < accounting.differences.size(); ++i)
    out += (i ? "," : "") + json_string(accounting.differences[i]);
  return out + "]}}";
}

} // namespace levee::load
