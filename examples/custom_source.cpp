// A node run from your own main(), with an event source and a role of your own: the same
// program as `levee node` (levee/node.hpp), which now also knows
//   - `type = counter` in a [source.<name>] section (levee/source.hpp): a source that emits
//     `total` events {"counter": <its name>, "n": 1..total}, at most `per_poll` a poll;
//   - the role `checker` ([checker] expect = N): once the node runs, it asks the node's
//     own server, over the wire as any client would, how many events the satellites
//     stored from counters, until the count is N; then it stops the node with exit 0
//     (or 1 when the count is not reached within [checker] within_ms).
//
//   custom_source                      writes a config (a server, a satellite with a
//                                      counter source, the checker) to a temporary
//                                      directory and runs it: exits 0 when the satellite
//                                      stored and answered every event
//   custom_source --config FILE [...]  runs your own file, as `levee node` would

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>

#include "levee/client.hpp"
#include "levee/node.hpp"
#include "levee/source.hpp"
#include "net/satellite.pb.h"  // QueryRequest and its answers (net/PROTOCOL.md)

namespace {

using namespace std::chrono_literals;

// --- the source ------------------------------------------------------------------------

class counter : public levee::event_source {
public:
  counter(std::string name, uint64_t per_poll, uint64_t total)
    : name_(std::move(name)), per_poll_(per_poll), total_(total) {}

  // Never blocks; returns at most max_events (the satellite's bound) and per_poll (ours).
  size_t poll(std::vector<levee::event>& out, size_t max_events, int64_t now_ms) override {
    size_t n = 0;
    while (n < max_events && n < per_poll_ && next_ <= total_) {
      levee::event e;
      e.timestamp_ms = now_ms;
      e.fields.push_back({"counter", name_});
      e.fields.push_back({"n", static_cast<int64_t>(next_++)});
      out.push_back(std::move(e));
      ++n;
    }
    stats_.events += n;
    return n;
  }

  std::string_view kind() const noexcept override { return "counter"; }

private:
  std::string name_;
  uint64_t per_poll_, total_;
  uint64_t next_ = 1;
};

// A key's value as a whole number from 1 to max; the error names the key and what it takes.
levee::result<uint64_t> number_key(const std::string& prefix, const std::string& key,
                                   const std::map<std::string, std::string>& keys,
                                   uint64_t fallback, uint64_t max) {
  auto i = keys.find(key);
  if (i == keys.end())
    return fallback;
  char* end = nullptr;
  auto v = std::strtoull(i->second.c_str(), &end, 10);
  if (i->second.empty() || *end != '\0' || v == 0 || v > max)
    return levee::status::error(levee::code::bad_request,
                                prefix + key + " = " + i->second + ": a whole number from 1 to "
                                  + std::to_string(max));
  return v;
}

levee::source_type counter_type() {
  auto read = [](const levee::source_settings& s, uint64_t& per_poll, uint64_t& total) {
    auto prefix = "source." + s.name + ".";
    auto p = number_key(prefix, "per_poll", s.keys, 100, 1'000'000);
    if (!p)
      return p.error();
    auto t = number_key(prefix, "total", s.keys, 1000, uint64_t{1} << 40);
    if (!t)
      return t.error();
    per_poll = *p;
    total = *t;
    return levee::status{};
  };
  levee::source_type t;
  t.name = "counter";
  t.keys = {"per_poll", "total"};
  t.check = [read](const levee::source_settings& s) {
    uint64_t per_poll = 0, total = 0;
    return read(s, per_poll, total);
  };
  t.make = [read](const levee::source_settings& s)
    -> levee::result<std::unique_ptr<levee::event_source>> {
    uint64_t per_poll = 0, total = 0;
    if (auto st = read(s, per_poll, total); !st)
      return st;
    return std::unique_ptr<levee::event_source>{new counter(s.name, per_poll, total)};
  };
  return t;
}

// --- the role ----------------------------------------------------------------------------

/// How many events from counters the server's satellites hold, by a count query.
levee::result<uint64_t> count_counter_events(levee::client& c) {
  levee::wire::QueryRequest q;
  q.set_text("where n >= 1 count");
  uint64_t id = 0;
  if (auto refused = c.send_stream_request("query", q.SerializeAsString(), id, 5000))
    return levee::status::error(refused->code, refused->to_string());
  uint64_t total = 0;
  for (;;) {
    auto r = c.receive(10s);
    if (r.rejected)
      return levee::status::error(r.rejected->code, r.rejected->to_string());
    if (r.end_of_stream)
      return total;
    levee::wire::ResultBatch batch;
    if (r.batch && batch.ParseFromString(*r.payload))
      for (auto& row : batch.counts())
        total += row.count();
  }
}

struct checker {
  uint64_t expect = 0;
  uint64_t within_ms = 0;
  std::thread thread;
  std::atomic<bool> stopping{false};

  levee::status check(const levee::flat_config& cfg) {
    std::map<std::string, std::string> keys;
    for (auto& [k, v] : cfg)
      if (k.rfind("checker.", 0) == 0) {
        auto key = k.substr(8);
        if (key != "expect" && key != "within_ms")
          return levee::status::error(levee::code::bad_request,
                                      "unknown key '" + k + "'; [checker] takes expect, within_ms");
        keys[key] = v;
      }
    auto e = number_key("checker.", "expect", keys, 1000, uint64_t{1} << 40);
    if (!e)
      return e.error();
    auto w = number_key("checker.", "within_ms", keys, 30'000, 3'600'000);
    if (!w)
      return w.error();
    expect = *e;
    within_ms = *w;
    return {};
  }

  levee::status start(levee::role_context& ctx) {
    auto port = ctx.port_of("server");
    if (port == 0)
      return levee::status::error(levee::code::bad_request,
                                  "the checker asks this node's server: add server to node.roles");
    // The role must return: the asking runs on a thread of its own.
    thread = std::thread{[this, port, &ctx] {
      levee::client_options opts;
      opts.port = port;
      opts.node_id = "checker";
      levee::client c{opts};
      auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(within_ms);
      uint64_t seen = 0;
      while (!stopping && std::chrono::steady_clock::now() < deadline) {
        if (c.connected() || c.connect_with_backoff(2s).ok()) {
          auto n = count_counter_events(c);
          if (n.ok())
            seen = *n;
          if (seen >= expect)
            break;
        }
        std::this_thread::sleep_for(100ms);  // poll with a pause, within the bound above
      }
      if (stopping)
        return;
      std::printf("checker: the satellites hold %llu events from counters (expected %llu)\n",
                  static_cast<unsigned long long>(seen), static_cast<unsigned long long>(expect));
      std::fflush(stdout);
      if (seen == expect)
        ctx.stop_node(0, "the checker counted every event");
      else
        ctx.stop_node(1, "the checker counted " + std::to_string(seen) + " events, expected "
                           + std::to_string(expect));
    }};
    return {};
  }

  void stop() {
    stopping = true;
    if (thread.joinable())
      thread.join();
  }
};

/// A port below the kernel's ephemeral range (so no client's source port takes it meanwhile)
/// that nothing listens on now.
uint16_t free_port() {
  std::random_device rd;
  std::mt19937 gen{rd()};
  std::uniform_int_distribution<int> pick{20000, 30000};
  for (int tries = 0; tries < 100; ++tries) {
    auto port = static_cast<uint16_t>(pick(gen));
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    if (free)
      return port;
  }
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  if (auto st = levee::register_source_type(counter_type()); !st) {
    std::fprintf(stderr, "custom_source: %s\n", st.to_string().c_str());
    return 1;
  }
  checker chk;
  levee::node_program node;
  auto added = node.add_role({"checker",
                              {"checker"},
                              [&](const levee::flat_config& cfg) { return chk.check(cfg); },
                              [&](levee::role_context& ctx) { return chk.start(ctx); },
                              [&] { chk.stop(); }});
  if (!added) {
    std::fprintf(stderr, "custom_source: %s\n", added.to_string().c_str());
    return 1;
  }
  if (argc > 1)
    return node.main(argc, argv);

  auto port = free_port();
  char tmpl[] = "/tmp/levee-custom-source-XXXXXX";
  if (port == 0 || ::mkdtemp(tmpl) == nullptr) {
    std::fprintf(stderr, "custom_source: no free port or temporary directory\n");
    return 1;
  }
  std::string dir = tmpl;
  auto address = "127.0.0.1:" + std::to_string(port);
  std::ofstream{dir + "/node.ini"} << "[node]\n"
                                   << "roles = server, satellite, checker\n"
                                   << "[server]\nlisten = " << address << "\n"
                                   << "satellite_token = example\n"
                                   << "[satellite]\nid = counting\nserver = " << address << "\n"
                                   << "satellite_token = example\n"
                                   << "data_dir = " << dir << "/data\n"
                                   << "[source.ticks]\ntype = counter\nper_poll = 50\n"
                                   << "total = 500\npoll_interval_ms = 20\n"
                                   << "[checker]\nexpect = 500\nwithin_ms = 30000\n"
                                   << "[http]\nlisten = none\n";
  auto rc = node.run({"--config", dir + "/node.ini"});
  std::filesystem::remove_all(dir);
  return rc;
}
