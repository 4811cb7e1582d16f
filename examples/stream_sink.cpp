// A sink of your own: a role that reads a stream as a consumer group and appends each
// message to a file, committing the group's cursor only after the file is synced, so a
// restart carries on where the last commit stood (at least once; with the offset in each
// line, a reader can drop the repeats a crash between write and commit would leave).
// It runs in a node of your own (levee/node.hpp) beside the built-in broker, with a
// second role, a feeder, that publishes numbered messages for it to read.
//
//   stream_sink                      runs a node twice on one data directory: the
//                                    feeder publishes 200 messages, the sink writes
//                                    them; then, restarted, 100 more. Exits 0 when the
//                                    file holds messages 1..300, each once, in order
//   stream_sink --config FILE [...]  runs your own file, as `levee node` would
//
// Config: [file_sink] stream, group, path, stop_after (optional: stop the node with exit 0
// once the file holds that many lines); [feeder] stream, first, count.

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "levee/node.hpp"
#include "levee/streams.hpp"

namespace {

using namespace std::chrono_literals;

/// The keys of `section` in `cfg` (without the prefix); an unknown key is an error.
levee::result<std::map<std::string, std::string>> section_keys(
  const levee::flat_config& cfg, const std::string& section, const std::set<std::string>& known) {
  std::map<std::string, std::string> out;
  auto prefix = section + ".";
  for (auto& [k, v] : cfg) {
    if (k.rfind(prefix, 0) != 0)
      continue;
    auto key = k.substr(prefix.size());
    if (!known.count(key)) {
      std::string list;
      for (auto& n : known)
        list += (list.empty() ? "" : ", ") + n;
      return levee::status::error(levee::code::bad_request,
                                  "unknown key '" + k + "'; [" + section + "] takes " + list);
    }
    out[key] = v;
  }
  return out;
}

uint64_t number_or(const std::map<std::string, std::string>& keys, const std::string& key,
                   uint64_t fallback) {
  auto i = keys.find(key);
  return i == keys.end() ? fallback : std::strtoull(i->second.c_str(), nullptr, 10);
}

std::string text_or(const std::map<std::string, std::string>& keys, const std::string& key,
                    const std::string& fallback) {
  auto i = keys.find(key);
  return i == keys.end() ? fallback : i->second;
}

levee::stream_client connect_to_broker(levee::role_context& ctx, const char* node_id) {
  levee::client_options opts;
  opts.port = ctx.port_of("broker");
  opts.node_id = node_id;
  return levee::stream_client{opts};
}

// --- the sink ----------------------------------------------------------------------------

struct file_sink {
  std::string stream = "events", group = "file-sink", path;
  uint64_t stop_after = 0;
  std::thread thread;
  std::atomic<bool> stopping{false};

  levee::status check(const levee::flat_config& cfg) {
    auto keys = section_keys(cfg, "file_sink", {"stream", "group", "path", "stop_after"});
    if (!keys)
      return keys.error();
    stream = text_or(*keys, "stream", stream);
    group = text_or(*keys, "group", group);
    path = text_or(*keys, "path", "");
    stop_after = number_or(*keys, "stop_after", 0);
    if (path.empty())
      return levee::status::error(levee::code::bad_request,
                                  "file_sink.path is missing: the file the sink appends to");
    return {};
  }

  static uint64_t lines_in(const std::string& path) {
    std::ifstream in{path};
    uint64_t n = 0;
    for (std::string line; std::getline(in, line);)
      ++n;
    return n;
  }

  levee::status start(levee::role_context& ctx) {
    if (ctx.port_of("broker") == 0)
      return levee::status::error(levee::code::bad_request,
                                  "the file sink reads this node's broker: add broker to node.roles");
    std::FILE* out = std::fopen(path.c_str(), "a");
    if (out == nullptr)
      return levee::status::error(levee::code::storage_error,
                                  "file_sink.path = " + path + ": " + std::strerror(errno)
                                    + "; give a file in a writable directory");
    thread = std::thread{[this, out, &ctx] {
      run(ctx, out);
      std::fclose(out);
    }};
    return {};
  }

  void run(levee::role_context& ctx, std::FILE* out) {
    auto sc = connect_to_broker(ctx, "file-sink");
    uint64_t written = lines_in(path);
    std::optional<uint64_t> sub;
    while (!stopping) {
      if (!sub) {
        // Until the stream exists (the feeder may not have created it yet).
        levee::subscribe_options opts;
        opts.stream = stream;
        opts.start = levee::start_at::cursor();
        opts.group = group;
        if (!sc.connection().connected() && !sc.connect().ok()) {
          std::this_thread::sleep_for(100ms);  // poll with a pause until the broker answers
          continue;
        }
        auto s = sc.subscribe(opts);
        if (!s.ok()) {
          std::this_thread::sleep_for(100ms);  // not there yet: poll with a pause
          continue;
        }
        sub = *s;
      }
      auto ev = sc.next(*sub, 200ms);
      if (ev.error && ev.error->code != levee::code::deadline_exceeded)
        sub.reset();  // the subscription ended: subscribe again from the cursor
      if (!ev.batch || ev.batch->messages.empty())
        continue;
      for (auto& m : ev.batch->messages)
        std::fprintf(out, "%llu\t%s\n", static_cast<unsigned long long>(m.offset), m.body.c_str());
      // The cursor moves only past what is on disk.
      if (std::fflush(out) != 0 || ::fsync(::fileno(out)) != 0) {
        ctx.stop_node(1, "file_sink: writing " + path + ": " + std::strerror(errno));
        return;
      }
      written += ev.batch->messages.size();
      auto st = sc.commit_cursor(group, stream, ev.batch->partition, ev.batch->next_offset, 5s);
      if (!st.ok())
        std::fprintf(stderr, "file_sink: commit: %s (the batch may be written again)\n",
                     st.to_string().c_str());
      if (stop_after != 0 && written >= stop_after) {
        std::printf("file_sink: %s holds %llu messages\n", path.c_str(),
                    static_cast<unsigned long long>(written));
        std::fflush(stdout);
        ctx.stop_node(0, "the file sink wrote what it was asked to");
        return;
      }
    }
  }

  void stop() {
    stopping = true;
    if (thread.joinable())
      thread.join();
  }
};

// --- the feeder --------------------------------------------------------------------------

struct feeder {
  std::string stream = "events";
  uint64_t first = 1, count = 100;
  std::thread thread;

  levee::status check(const levee::flat_config& cfg) {
    auto keys = section_keys(cfg, "feeder", {"stream", "first", "count"});
    if (!keys)
      return keys.error();
    stream = text_or(*keys, "stream", stream);
    first = number_or(*keys, "first", first);
    count = number_or(*keys, "count", count);
    return {};
  }

  levee::status start(levee::role_context& ctx) {
    thread = std::thread{[this, &ctx] {
      auto sc = connect_to_broker(ctx, "feeder");
      if (auto st = sc.connect_with_backoff(5s); !st.ok()) {
        ctx.stop_node(1, "feeder: " + st.to_string());
        return;
      }
      levee::stream_spec spec;
      spec.name = stream;
      spec.subject = stream;
      spec.partitions = 1;
      (void)sc.create_stream(spec, 5s);  // already there after a restart: fine
      for (uint64_t n = first; n < first + count; ++n) {
        // The id makes a repeat (a publish retried after a lost ack) stored once.
        auto acks = sc.publish(stream, {{"", "m" + std::to_string(n), std::to_string(n), {}}});
        if (!acks.ok()) {
          ctx.stop_node(1, "feeder: publish " + std::to_string(n) + ": " + acks.error().to_string());
          return;
        }
      }
    }};
    return {};
  }

  void stop() {
    if (thread.joinable())
      thread.join();
  }
};

/// Messages 1..n, each once, in order, in the sink's file (its lines: offset, tab, body).
bool holds_exactly(const std::string& path, uint64_t n) {
  std::ifstream in{path};
  uint64_t expect = 1;
  for (std::string line; std::getline(in, line); ++expect) {
    auto tab = line.find('\t');
    if (tab == std::string::npos || line.substr(tab + 1) != std::to_string(expect))
      return false;
  }
  return expect == n + 1;
}

int run_node(file_sink& sink, feeder& feed, const std::vector<std::string>& args) {
  levee::node_program node;
  for (auto st : {node.add_role({"file_sink", {"file_sink"},
                                 [&](const levee::flat_config& c) { return sink.check(c); },
                                 [&](levee::role_context& ctx) { return sink.start(ctx); },
                                 [&] { sink.stop(); }}),
                  node.add_role({"feeder", {"feeder"},
                                 [&](const levee::flat_config& c) { return feed.check(c); },
                                 [&](levee::role_context& ctx) { return feed.start(ctx); },
                                 [&] { feed.stop(); }})})
    if (!st) {
      std::fprintf(stderr, "stream_sink: %s\n", st.to_string().c_str());
      return 1;
    }
  return node.run(args);
}

} // namespace

int main(int argc, char** argv) {
  if (argc > 1) {
    file_sink sink;
    feeder feed;
    return run_node(sink, feed, std::vector<std::string>(argv + 1, argv + argc));
  }
  char tmpl[] = "/tmp/levee-stream-sink-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    std::fprintf(stderr, "stream_sink: no temporary directory: %s\n", std::strerror(errno));
    return 1;
  }
  std::string dir = tmpl;
  int rc = 0;
  // The same data directory and file twice: the second run starts where the cursor stood.
  for (auto [first, count] : {std::pair<uint64_t, uint64_t>{1, 200}, {201, 100}}) {
    std::ofstream{dir + "/node.ini", std::ios::trunc}
      << "[node]\nroles = broker, feeder, file_sink\n"
      << "[broker]\nlisten = 127.0.0.1:0\ndata_dir = " << dir << "/data\n"
      << "[feeder]\nstream = events\nfirst = " << first << "\ncount = " << count << "\n"
      << "[file_sink]\nstream = events\ngroup = file-sink\npath = " << dir << "/out.tsv\n"
      << "stop_after = " << first + count - 1 << "\n"
      << "[http]\nlisten = none\n";
    file_sink sink;
    feeder feed;
    rc = run_node(sink, feed, {"--config", dir + "/node.ini"});
    if (rc != 0)
      break;
  }
  if (rc == 0) {
    bool exact = holds_exactly(dir + "/out.tsv", 300);
    std::printf("stream_sink: %s\n", exact ? "the file holds messages 1..300, each once, in order"
                                           : "the file does not hold messages 1..300 once each");
    rc = exact ? 0 : 1;
  }
  std::filesystem::remove_all(dir);
  return rc;
}
