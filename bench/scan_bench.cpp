// Satellite scan rate: a filter query over 1 M stored events (the synthetic generator's
// shape: level, user, msg, status, latency_ms), scanned in steps as the store does,
// against reading the same segment files with raw read() (the floor a scan cannot beat)
// and against reading the log's records without decoding or filtering them.
//   build-release/bench/scan_bench [events] [dir]

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include "events/codec.hpp"
#include "events/synthetic.hpp"
#include "persistence/segment_log.hpp"
#include "query/query.hpp"
#include "satellite/scan.hpp"

namespace {

using namespace std::chrono;
namespace fs = std::filesystem;
using namespace levee;

double seconds_since(steady_clock::time_point t0) {
  return duration<double>(steady_clock::now() - t0).count();
}

/// Reads every segment file once, 1 MiB at a time: the bytes a scan has to go through.
double raw_read_mb_s(const fs::path& dir, uint64_t& bytes) {
  std::vector<char> buf(1 << 20);
  bytes = 0;
  auto t0 = steady_clock::now();
  for (auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".log")
      continue;
    int fd = ::open(e.path().c_str(), O_RDONLY);
    ssize_t n;
    while ((n = ::read(fd, buf.data(), buf.size())) > 0)
      bytes += static_cast<uint64_t>(n);
    ::close(fd);
  }
  return static_cast<double>(bytes) / seconds_since(t0) / 1e6;
}

struct scan_figures {
  double events_per_s;
  double mb_per_s;
  uint64_t rows;
};

scan_figures scan(const persistence::segment_log& log, const std::string& text, uint64_t bytes) {
  auto q = query::parse(text);
  if (!q) {
    std::fprintf(stderr, "%s\n", q.error().to_string().c_str());
    std::exit(1);
  }
  satellite::scan_task task{*q, q->resolve_time(0), log.start_offset(), log.next_offset(),
                            {1000, 256 * 1024}, "bench"};
  uint64_t batches = 0;
  auto t0 = steady_clock::now();
  while (!task.done())
    if (!task.step(log, 1 << 20, [&](std::string&&) { ++batches; })) {
      std::fprintf(stderr, "scan failed\n");
      std::exit(1);
    }
  auto secs = seconds_since(t0);
  return {static_cast<double>(task.scanned()) / secs, static_cast<double>(bytes) / secs / 1e6,
          task.rows()};
}

} // namespace

int main(int argc, char** argv) {
  uint64_t count = argc > 1 ? std::stoull(argv[1]) : 1'000'000;
  fs::path dir = argc > 2 ? fs::path(argv[2]) : fs::temp_directory_path() / "levee-scan-bench";
  fs::remove_all(dir);
  persistence::log_options o;
  o.dir = dir.string();
  o.fsync = persistence::fsync_policy::none;
  o.limits.compress = false;  // as a satellite's store
  auto log = persistence::segment_log::open(o);
  if (!log)
    return 1;
  events::synthetic_config sc;
  sc.rate_per_sec = 1'000'000;
  sc.burst_events = 1'000'000;
  sc.msg_bytes = 100;
  events::synthetic gen{sc};
  std::vector<events::event> evs;
  std::vector<persistence::record> batch;
  int64_t now = 1'800'000'000'000;
  gen.poll(evs, 1, now);  // the first poll starts the generator's clock
  uint64_t made = 0;
  while (made < count) {
    evs.clear();
    now += 4;  // 4000 events a poll at 1 M/s
    gen.poll(evs, 4000, now);
    batch.clear();
    for (auto& e : evs) {
      if (made == count)
        break;
      batch.push_back(events::to_record(e));
      ++made;
    }
    if (!batch.empty() && !(*log)->append(batch))
      return 1;
  }
  if (auto st = (*log)->sync(); !st) {
    std::fprintf(stderr, "scan_bench: %s\n", st.to_string().c_str());
    return 1;
  }
  std::printf("satellite scan over %llu stored events (%.1f MiB in %zu segments), page cache warm\n",
              static_cast<unsigned long long>(made),
              static_cast<double>((*log)->size_bytes()) / (1 << 20), (*log)->segment_count());
  uint64_t bytes = 0;
  raw_read_mb_s(dir, bytes);  // warm
  auto raw = raw_read_mb_s(dir, bytes);
  std::printf("  raw read() of the segment files         %8.0f MB/s\n", raw);
  {
    auto t0 = steady_clock::now();
    uint64_t n = 0;
    for (uint64_t from = (*log)->start_offset(); from < (*log)->next_offset();) {
      auto recs = (*log)->read(from, 1 << 20);
      if (!recs || recs->empty())
        return 1;
      n += recs->size();
      from = recs->back().offset + 1;
    }
    auto secs = seconds_since(t0);
    std::printf("  log read, records only (no decode)      %8.0f MB/s  %10.0f events/s  (%.2fx raw)\n",
                static_cast<double>(bytes) / secs / 1e6, static_cast<double>(n) / secs,
                static_cast<double>(bytes) / secs / 1e6 / raw);
  }
  for (const char* text : {"where level == \"ERROR\" and latency_ms > 100",
                           "where user == \"user-00007\" and msg contains \"retry\"",
                           "count by level"}) {
    auto f = scan(**log, text, bytes);
    std::printf("  query: %-52s %8.0f MB/s  %10.0f events/s  (%.2fx raw), %llu rows\n", text,
                f.mb_per_s, f.events_per_s, f.mb_per_s / raw,
                static_cast<unsigned long long>(f.rows));
  }
  log->reset();
  fs::remove_all(dir);
  return 0;
}
