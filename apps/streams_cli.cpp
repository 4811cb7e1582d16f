// `levee stream create|delete|list|info`, `levee pub`, `levee sub`: clients of a broker
// (include/levee/streams.hpp). Exit codes as `levee query`'s: 0 done, 1 refused (the
// Reject printed), 2 a usage error or a broker that cannot be reached.

#include <cstdio>
#include <csignal>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "apps/cli_common.hpp"
#include "apps/cli_env.hpp"
#include "apps/subcommands.hpp"
#include "base/time_text.hpp"
#include "events/json.hpp"
#include "levee/streams.hpp"
#include "limits/printable.hpp"

namespace levee::apps {

namespace {

namespace po = boost::program_options;
using namespace std::chrono;

/// `text` as a JSON string, quotes included (any bytes: events/json.hpp escapes them).
std::string q(std::string_view text) {
  std::string out;
  events::append_json_string(out, text);
  return out;
}
constexpr milliseconds admin_timeout{10'000};

struct broker_args {
  std::string broker = default_broker_address();  // LEVEE_BROKER, else 127.0.0.1:7600
  std::string token;
  bool json = false;
};

void add_broker_options(po::options_description& opts, broker_args& a) {
  opts.add_options()
    ("broker", po::value(&a.broker)->default_value(a.broker), "the broker, host:port (LEVEE_BROKER)")
    ("token", po::value(&a.token), "the broker's connection token (net.token), if it has one")
    ("json", po::bool_switch(&a.json), "print JSON (one object per line) for scripts");
}

/// A connected stream client, or the exit code (2, the reason printed).
std::optional<stream_client> connect_broker(const char* sub, const broker_args& a, int& rc) {
  auto address = address_option(sub, "--broker", a.broker);
  if (!address) {
    rc = 2;
    return std::nullopt;
  }
  client_options co;
  co.host = address->host;
  co.port = address->port;
  co.token = a.token;
  stream_client sc{co};
  if (auto st = sc.connect_with_backoff(seconds(3)); !st) {
    std::fprintf(stderr,
                 "levee %s: cannot reach the broker at %s: %s; is a node with roles = broker "
                 "running there (or give --broker)?\n",
                 sub, printable(a.broker).c_str(), printable(st.message()).c_str());
    rc = 2;
    return std::nullopt;
  }
  return sc;
}

/// Prints a refusal and returns 1, or 2 when the broker went away.
int refused(const char* sub, const status& st) {
  std::fprintf(stderr, "levee %s: %s\n", sub, printable(st.as_rejection().to_string()).c_str());
  return st.code() == code::unavailable ? 2 : 1;
}

std::string partition_line(const partition_info& p) {
  std::string s = "  partition " + std::to_string(p.partition) + ": offsets "
                  + std::to_string(p.start_offset) + ".." + std::to_string(p.next_offset)
                  + ", committed below " + std::to_string(p.high_water) + ", "
                  + std::to_string(p.size_bytes) + " bytes, " + std::to_string(p.appended)
                  + " stored, " + std::to_string(p.duplicates) + " duplicates, "
                  + std::to_string(p.rejected) + " refused, " + std::to_string(p.dropped_messages)
                  + " dropped by retention, " + std::to_string(p.subscribers) + " subscribers";
  if (!p.problem.empty())
    s += "\n    UNAVAILABLE: " + printable(p.problem);
  return s + "\n";
}

const char* name_of(full_policy p) {
  return p == full_policy::reject ? "reject" : p == full_policy::drop_oldest ? "drop_oldest" : "default";
}

const char* name_of(fsync_mode f) {
  switch (f) {
    case fsync_mode::none: return "none";
    case fsync_mode::interval: return "interval";
    case fsync_mode::every_batch: return "every_batch";
    case fsync_mode::broker_default: break;
  }
  return "default";
}

/// A stream's settings and partitions as one JSON object (keys as net/streams.proto's).
std::string info_json(const stream_info& info) {
  auto& c = info.config;
  auto num = [](const std::optional<uint64_t>& v) { return v ? std::to_string(*v) : "null"; };
  std::string out = "{\"config\":{\"name\":" + q(c.name) + ",\"subject\":" + q(c.subject)
                    + ",\"partitions\":" + (c.partitions ? std::to_string(*c.partitions) : "null")
                    + ",\"retention_max_age_ms\":" + num(c.retention_max_age_ms)
                    + ",\"retention_max_bytes\":" + num(c.retention_max_bytes)
                    + ",\"retention_max_messages\":" + num(c.retention_max_messages)
                    + ",\"on_full\":\"" + name_of(c.on_full) + "\",\"compact_by_key\":"
                    + (c.compact_by_key && *c.compact_by_key ? "true" : "false")
                    + ",\"max_message_bytes\":" + num(c.max_message_bytes)
                    + ",\"max_segment_bytes\":" + num(c.max_segment_bytes)
                    + ",\"dedupe_window_ms\":" + num(c.dedupe_window_ms)
                    + ",\"dedupe_max_entries\":" + num(c.dedupe_max_entries) + ",\"fsync\":\""
                    + name_of(c.fsync) + "\",\"fsync_interval_ms\":" + num(c.fsync_interval_ms)
                    + ",\"limits\":{";
  bool first = true;
  for (auto& [k, v] : c.limits) {
    out += (first ? "" : ",") + q(k) + ":" + std::to_string(v);
    first = false;
  }
  out += "}},\"partitions\":[";
  first = true;
  for (auto& p : info.partitions) {
    out += std::string{first ? "" : ","} + "{\"partition\":" + std::to_string(p.partition)
           + ",\"start_offset\":" + std::to_string(p.start_offset) + ",\"next_offset\":"
           + std::to_string(p.next_offset) + ",\"high_water\":" + std::to_string(p.high_water)
           + ",\"size_bytes\":" + std::to_string(p.size_bytes) + ",\"appended\":"
           + std::to_string(p.appended) + ",\"duplicates\":" + std::to_string(p.duplicates)
           + ",\"rejected\":" + std::to_string(p.rejected) + ",\"dropped_messages\":"
           + std::to_string(p.dropped_messages) + ",\"dropped_segments\":"
           + std::to_string(p.dropped_segments) + ",\"compacted\":" + std::to_string(p.compacted)
           + ",\"subscribers\":" + std::to_string(p.subscribers) + ",\"problem\":"
           + q(p.problem) + "}";
    first = false;
  }
  return out + "]}";
}

void print_info(const stream_info& info, bool json) {
  if (json) {
    std::printf("%s\n", info_json(info).c_str());
    return;
  }
  auto& c = info.config;
  auto parts = c.partitions.value_or(static_cast<uint32_t>(info.partitions.size()));
  std::string line = printable(c.name) + "  subject " + printable(c.subject) + "  "
                     + std::to_string(parts) + (parts == 1 ? " partition" : " partitions");
  if (c.replication_factor && *c.replication_factor > 1)
    line += "  replicas " + std::to_string(*c.replication_factor) + ", min ISR "
            + std::to_string(c.min_insync_replicas.value_or(1));
  if (c.retention_max_age_ms && *c.retention_max_age_ms != 0)
    line += "  max age " + std::to_string(*c.retention_max_age_ms) + " ms";
  if (c.retention_max_bytes)
    line += "  max " + std::to_string(*c.retention_max_bytes) + " bytes/partition";
  if (c.retention_max_messages && *c.retention_max_messages != 0)
    line += "  max " + std::to_string(*c.retention_max_messages) + " messages/partition";
  line += std::string{"  on_full "} + name_of(c.on_full) + "  fsync " + name_of(c.fsync);
  if (c.compact_by_key && *c.compact_by_key)
    line += "  compacted by key";
  std::printf("%s\n", line.c_str());
  for (auto& p : info.partitions)
    std::fputs(partition_line(p).c_str(), stdout);
}

int run_stream_create(const std::vector<std::string>& args) {
  po::options_description opts{
    "levee stream create NAME --subject PATTERN [options]: a stream that stores every publish "
    "whose subject matches PATTERN ('*' one token, '>' the tail); settings not given take the "
    "broker's [stream] defaults"};
  broker_args a;
  std::string name, subject, on_full, fsync;
  uint32_t partitions = 0, replicas = 0, min_isr = 0;
  uint64_t max_age_ms = 0, max_bytes = 0, max_messages = 0, max_message_bytes = 0;
  uint64_t dedupe_window_ms = 0;
  bool compact = false;
  add_broker_options(opts, a);
  opts.add_options()
    ("help,h", "this text")
    ("name", po::value(&name), "the stream's name: 1 to 64 of A-Z a-z 0-9 _ -")
    ("subject", po::value(&subject), "the subject pattern it binds, e.g. orders.*.created")
    ("partitions", whole_number("partitions", &partitions, uint32_t{0}, 0, 1024, "partitions"),
     "partitions, 1 to 1024 (0: the broker's default)")
    ("replicas", whole_number("replicas", &replicas, uint32_t{0}, 0, 1024, "brokers"),
     "copies of each partition, on as many brokers of a cluster (0 or 1: one copy; a broker "
     "alone takes no more)")
    ("min-isr", whole_number("min-isr", &min_isr, uint32_t{0}, 0, 1024, "replicas"),
     "in-sync replicas an ack = all publish needs, 1 to --replicas (0: 1)")
    ("max-age-ms", whole_number("max-age-ms", &max_age_ms, uint64_t{0}, 0, UINT64_MAX, "ms"),
     "drop messages older than this (0: the default; set the default to keep them)")
    ("max-bytes", whole_number("max-bytes", &max_bytes, uint64_t{0}, 0, UINT64_MAX, "bytes"),
     "bytes kept per partition (0: the default)")
    ("max-messages", whole_number("max-messages", &max_messages, uint64_t{0}, 0, UINT64_MAX, "messages"),
     "messages kept per partition (0: the default)")
    ("on-full", po::value(&on_full), "drop_oldest or reject (when a bound is reached)")
    ("compact", po::bool_switch(&compact), "keep only the last message of each key (closed segments)")
    ("max-message-bytes", whole_number("max-message-bytes", &max_message_bytes, uint64_t{0}, 0,
                                       UINT64_MAX, "bytes"),
     "the largest message (0: the default)")
    ("dedupe-window-ms", whole_number("dedupe-window-ms", &dedupe_window_ms, uint64_t{0}, 0,
                                      UINT64_MAX, "ms"),
     "how long a message id is remembered (0: the default)")
    ("fsync", po::value(&fsync), "none, interval or every_batch (streams/README.md: what each promises)");
  po::positional_options_description pos;
  pos.add("name", 1);
  auto parsed = parse_args("stream create", opts, args, &pos);
  if (parsed.exit_code)
    return *parsed.exit_code;
  if (name.empty())
    return usage_error("stream create", "the stream's NAME is missing");
  if (subject.empty())
    return usage_error("stream create", "--subject is missing: the pattern the stream binds");
  stream_spec spec;
  spec.name = name;
  spec.subject = subject;
  auto given = [](auto v) { return v != 0 ? std::optional<decltype(v)>{v} : std::nullopt; };
  spec.partitions = given(partitions);
  spec.replication_factor = given(replicas);
  spec.min_insync_replicas = given(min_isr);
  spec.retention_max_age_ms = given(max_age_ms);
  spec.retention_max_bytes = given(max_bytes);
  spec.retention_max_messages = given(max_messages);
  spec.max_message_bytes = given(max_message_bytes);
  spec.dedupe_window_ms = given(dedupe_window_ms);
  if (compact)
    spec.compact_by_key = true;
  if (on_full == "reject")
    spec.on_full = full_policy::reject;
  else if (on_full == "drop_oldest")
    spec.on_full = full_policy::drop_oldest;
  else if (!on_full.empty())
    return usage_error("stream create", "--on-full " + on_full + ": drop_oldest or reject");
  if (fsync == "none")
    spec.fsync = fsync_mode::none;
  else if (fsync == "interval")
    spec.fsync = fsync_mode::interval;
  else if (fsync == "every_batch")
    spec.fsync = fsync_mode::every_batch;
  else if (!fsync.empty())
    return usage_error("stream create", "--fsync " + fsync + ": none, interval or every_batch");
  int rc = 0;
  auto sc = connect_broker("stream create", a, rc);
  if (!sc)
    return rc;
  auto info = sc->create_stream(spec, admin_timeout);
  if (!info)
    return refused("stream create", info.error());
  print_info(*info, a.json);
  return 0;
}

int run_stream_named(const char* sub, const std::vector<std::string>& args, bool remove) {
  po::options_description opts{remove ? "levee stream delete NAME: removes the stream and every "
                                        "message in it"
                                      : "levee stream info NAME: a stream's settings and partitions"};
  broker_args a;
  std::string name;
  add_broker_options(opts, a);
  opts.add_options()("help,h", "this text")("name", po::value(&name), "the stream");
  po::positional_options_description pos;
  pos.add("name", 1);
  auto parsed = parse_args(sub, opts, args, &pos);
  if (parsed.exit_code)
    return *parsed.exit_code;
  if (name.empty())
    return usage_error(sub, "the stream's NAME is missing");
  int rc = 0;
  auto sc = connect_broker(sub, a, rc);
  if (!sc)
    return rc;
  if (remove) {
    if (auto st = sc->delete_stream(name, admin_timeout); !st)
      return refused(sub, st);
    if (a.json)
      std::printf("{\"deleted\":%s}\n", q(name).c_str());
    else
      std::printf("deleted stream %s\n", printable(name).c_str());
    return 0;
  }
  auto info = sc->get_stream_info(name, admin_timeout);
  if (!info)
    return refused(sub, info.error());
  print_info(*info, a.json);
  return 0;
}

int run_stream_list(const std::vector<std::string>& args) {
  po::options_description opts{"levee stream list: every stream of the broker"};
  broker_args a;
  add_broker_options(opts, a);
  opts.add_options()("help,h", "this text");
  auto parsed = parse_args("stream list", opts, args);
  if (parsed.exit_code)
    return *parsed.exit_code;
  int rc = 0;
  auto sc = connect_broker("stream list", a, rc);
  if (!sc)
    return rc;
  auto list = sc->list_streams(admin_timeout);
  if (!list)
    return refused("stream list", list.error());
  if (a.json) {
    std::string out = "{\"streams\":[";
    for (size_t i = 0; i < list->streams.size(); ++i)
      out += (i == 0 ? "" : ",") + info_json(list->streams[i]);
    out += "],\"problems\":[";
    for (size_t i = 0; i < list->problems.size(); ++i)
      out += (i == 0 ? "" : ",") + q(list->problems[i]);
    std::printf("%s]}\n", out.c_str());
    return 0;
  }
  if (list->streams.empty())
    std::printf("no streams; create one with `levee stream create NAME --subject PATTERN`\n");
  for (auto& s : list->streams)
    print_info(s, false);
  for (auto& p : list->problems)
    std::printf("NOT LOADED: %s\n", printable(p).c_str());
  return 0;
}

} // namespace

int run_stream(const std::vector<std::string>& args) {
  const char* usage =
    "usage: levee stream create|delete|list|info [options]\n"
    "  create NAME --subject PATTERN   a stream bound to a subject pattern\n"
    "  delete NAME                     removes it and its messages\n"
    "  list                            every stream\n"
    "  info NAME                       settings and partitions\n"
    "`levee stream <command> --help` describes the options of each.\n";
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::fputs(usage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "create")
    return run_stream_create(rest);
  if (args[0] == "delete")
    return run_stream_named("stream delete", rest, true);
  if (args[0] == "info")
    return run_stream_named("stream info", rest, false);
  if (args[0] == "list")
    return run_stream_list(rest);
  std::fprintf(stderr, "levee stream: unknown command '%s'\n%s", printable(args[0]).c_str(), usage);
  return 2;
}

namespace {

/// `--ack` text as the mode.
std::optional<ack_mode> ack_of(const std::string& text) {
  if (text == "leader")
    return ack_mode::leader;
  if (text == "none")
    return ack_mode::none;
  if (text == "all")
    return ack_mode::all;
  return std::nullopt;
}

void print_acks(const std::vector<message_ack>& acks, bool json) {
  for (auto& k : acks) {
    if (json)
      std::printf("{\"stream\":%s,\"partition\":%u,\"offset\":%llu,\"timestamp_ms\":%lld,"
                  "\"duplicate\":%s}\n",
                  q(k.stream).c_str(), k.partition,
                  static_cast<unsigned long long>(k.offset),
                  static_cast<long long>(k.timestamp_ms), k.duplicate ? "true" : "false");
    else
      std::printf("%s %s/%u at offset %llu\n", k.duplicate ? "duplicate of" : "stored in",
                  printable(k.stream).c_str(), k.partition,
                  static_cast<unsigned long long>(k.offset));
  }
}

/// Lines of stdin are published this many at a time (one frame, one ack).
constexpr size_t stdin_batch_messages = 256;
constexpr size_t stdin_batch_bytes = 256 * 1024;

} // namespace

int run_pub(const std::vector<std::string>& args) {
  po::options_description opts{
    "levee pub SUBJECT [MESSAGE|-]: publish one message, or each line of stdin ('-' or no "
    "MESSAGE) as one message, to every stream whose pattern matches SUBJECT"};
  broker_args a;
  std::string subject, message, key, id, ack_text = "leader";
  const std::string unset{"\x01"};
  message = unset;
  uint32_t partition = UINT32_MAX;
  add_broker_options(opts, a);
  opts.add_options()
    ("help,h", "this text")
    ("subject", po::value(&subject), "the subject, e.g. orders.eu.created")
    ("message", po::value(&message), "the body; '-' or none: each line of stdin")
    ("key", po::value(&key), "the key (chooses the partition by hash)")
    ("id", po::value(&id),
     "a message id for deduplication; with stdin, line N gets ID-N, so publishing the same "
     "input again with the same --id stores nothing twice")
    ("partition", whole_number("partition", &partition, UINT32_MAX, 0, UINT32_MAX, "partition"),
     "name the partition instead of hashing the key (default: by the key's hash, or in turn)")
    ("ack", po::value(&ack_text)->default_value("leader"),
     "none (answered when taken), leader (when stored by the fsync policy) or all");
  po::positional_options_description pos;
  pos.add("subject", 1).add("message", 1);
  auto parsed = parse_args("pub", opts, args, &pos);
  if (parsed.exit_code)
    return *parsed.exit_code;
  if (subject.empty())
    return usage_error("pub", "the SUBJECT is missing");
  auto ack = ack_of(ack_text);
  if (!ack)
    return usage_error("pub", "--ack " + ack_text + ": none, leader or all");
  publish_options po;
  po.ack = *ack;
  if (partition != UINT32_MAX)
    po.partition = partition;
  int rc = 0;
  auto sc = connect_broker("pub", a, rc);
  if (!sc)
    return rc;
  if (message != unset && message != "-") {
    auto acks = sc->publish(subject, {out_message{key, id, message, {}}}, po);
    if (sc->redirects() > 0)  // a cluster's broker that does not lead the partition
      std::fprintf(stderr, "levee pub: followed the partition leader's address to %s\n",
                   printable(sc->broker_address()).c_str());
    if (!acks)
      return refused("pub", acks.error());
    print_acks(*acks, a.json);
    return 0;
  }
  std::vector<out_message> batch;
  size_t batch_bytes = 0;
  uint64_t line_no = 0, published = 0;
  auto flush = [&]() -> int {
    if (batch.empty())
      return 0;
    auto n = batch.size();
    auto acks = sc->publish(subject, std::move(batch), po);
    batch.clear();
    batch_bytes = 0;
    if (!acks) {
      std::fprintf(stderr, "levee pub: after %llu messages: ",
                   static_cast<unsigned long long>(published));
      return refused("pub", acks.error());
    }
    published += n;
    print_acks(*acks, a.json);
    return 0;
  };
  // A line is read into a buffer of the broker's largest frame, never further: input
  // without newlines cannot grow this process, and a line no frame could carry is an
  // error before anything of it is sent.
  size_t max_line = sc->connection().limits().max_frame_bytes;
  std::vector<char> buf(max_line + 1);  // getline stores at most size - 1 bytes
  for (;;) {
    std::cin.getline(buf.data(), static_cast<std::streamsize>(buf.size()));
    auto got = static_cast<size_t>(std::cin.gcount());
    if (std::cin.eof() && got == 0)
      break;
    if (std::cin.fail() && !std::cin.eof()) {
      std::fprintf(stderr,
                   "levee pub: line %llu is longer than the broker's largest frame (%zu bytes, "
                   "net.max_frame_bytes); split it (%llu messages were published before it)\n",
                   static_cast<unsigned long long>(line_no + 1), max_line,
                   static_cast<unsigned long long>(published));
      return 1;
    }
    ++line_no;
    std::string line(buf.data(), std::cin.eof() ? got : got - 1);  // without its newline
    if (!batch.empty() && batch_bytes + line.size() > stdin_batch_bytes)
      if (int r = flush(); r != 0)  // the frame stays within what the broker accepts
        return r;
    batch_bytes += line.size();
    batch.push_back(out_message{key, id.empty() ? std::string{} : id + "-" + std::to_string(line_no),
                                std::move(line), {}});
    if (batch.size() >= stdin_batch_messages || batch_bytes >= stdin_batch_bytes)
      if (int r = flush(); r != 0)
        return r;
    if (std::cin.eof())
      break;
  }
  if (int r = flush(); r != 0)
    return r;
  if (!a.json)
    std::fprintf(stderr, "levee pub: %llu messages published\n",
                 static_cast<unsigned long long>(published));
  return 0;
}

namespace {

/// `--from` text: earliest, latest, new, offset:N, time:RFC3339, cursor.
std::optional<start_at> start_of(const std::string& text, std::string& why) {
  if (text == "earliest")
    return start_at::earliest();
  if (text == "latest")
    return start_at::latest();
  if (text == "new")
    return start_at::new_only();
  if (text == "cursor")
    return start_at::cursor();
  if (text.rfind("offset:", 0) == 0) {
    try {
      return start_at::at_offset(whole_number_of("from", text.substr(7), 0, UINT64_MAX, "offset"));
    } catch (const std::invalid_argument& e) {
      why = e.what();
      return std::nullopt;
    }
  }
  if (text.rfind("time:", 0) == 0) {
    int64_t ms = 0;
    if (!base::parse_rfc3339_ms(text.substr(5), ms, why))
      return std::nullopt;
    return start_at::at_time(ms);
  }
  why = "--from " + text + ": earliest, latest, new, offset:N, time:2026-01-02T03:04:05Z or cursor";
  return std::nullopt;
}

void print_message(const message_batch& b, const message_in& m, bool json) {
  if (!json) {
    std::fwrite(m.body.data(), 1, m.body.size(), stdout);
    std::fputc('\n', stdout);
    return;
  }
  std::string out = "{\"stream\":" + q(b.stream) + ",\"partition\":" + std::to_string(b.partition)
                    + ",\"offset\":" + std::to_string(m.offset) + ",\"timestamp_ms\":"
                    + std::to_string(m.timestamp_ms) + ",\"key\":" + q(m.key) + ",\"id\":"
                    + q(m.id) + ",\"body\":" + q(m.body) + ",\"headers\":{";
  bool first = true;
  for (auto& [name, value] : m.headers) {
    out += (first ? "" : ",") + q(name) + ":" + q(value);
    first = false;
  }
  out += "}}\n";
  std::fputs(out.c_str(), stdout);
}

volatile std::sig_atomic_t interrupted = 0;

} // namespace

int run_sub(const std::vector<std::string>& args) {
  po::options_description opts{
    "levee sub STREAM [options]: print a stream's committed messages (bodies, one per line; "
    "--json: every field) from a start position; runs until --count or Ctrl-C"};
  broker_args a;
  std::string stream, from, group;
  uint32_t partition = 0;
  uint64_t count = 0;
  add_broker_options(opts, a);
  opts.add_options()
    ("help,h", "this text")
    ("stream", po::value(&stream), "the stream")
    ("partition", whole_number("partition", &partition, uint32_t{0}, 0, UINT32_MAX, "partition"),
     "the partition (default 0)")
    ("from", po::value(&from),
     "earliest (default), latest, new, offset:N, time:RFC3339, or cursor (the --group's)")
    ("count", whole_number("count", &count, uint64_t{0}, 0, UINT64_MAX, "messages"),
     "stop after this many messages (0: run until Ctrl-C)")
    ("group", po::value(&group),
     "a consumer group: starts at its cursor (unless --from says otherwise) and commits "
     "where it stopped, so the next `levee sub --group` continues there");
  po::positional_options_description pos;
  pos.add("stream", 1);
  auto parsed = parse_args("sub", opts, args, &pos);
  if (parsed.exit_code)
    return *parsed.exit_code;
  if (stream.empty())
    return usage_error("sub", "the STREAM is missing");
  if (from.empty())
    from = group.empty() ? "earliest" : "cursor";
  std::string why;
  auto start = start_of(from, why);
  if (!start)
    return usage_error("sub", why);
  if (start->from == start_at::kind::cursor && group.empty())
    return usage_error("sub", "--from cursor needs --group");
  int rc = 0;
  auto sc = connect_broker("sub", a, rc);
  if (!sc)
    return rc;
  subscribe_options so;
  so.stream = stream;
  so.partition = partition;
  so.start = *start;
  so.group = group;
  auto id = sc->subscribe(so);
  if (!id)
    return refused("sub", id.error());
  std::signal(SIGINT, [](int) { interrupted = 1; });
  std::signal(SIGTERM, [](int) { interrupted = 1; });
  uint64_t printed = 0;
  std::optional<uint64_t> next_offset;
  rc = 0;
  while (!interrupted && (count == 0 || printed < count)) {
    // Short waits, so Ctrl-C is seen promptly while the stream is quiet.
    auto ev = sc->next(*id, milliseconds(200));
    if (ev.error) {
      if (ev.error->code == code::deadline_exceeded)
        continue;
      std::fprintf(stderr, "levee sub: %s\n", printable(ev.error->to_string()).c_str());
      rc = ev.error->code == code::unavailable ? 2 : 1;
      break;
    }
    if (ev.end) {
      next_offset = ev.next_offset;
      break;
    }
    for (auto& m : ev.batch->messages) {
      print_message(*ev.batch, m, a.json);
      next_offset = m.offset + 1;
      if (++printed == count)
        break;
    }
    std::fflush(stdout);
  }
  (void)sc->unsubscribe(*id);
  if (!group.empty() && next_offset && rc != 2) {
    if (auto st = sc->commit_cursor(group, stream, partition, *next_offset, admin_timeout); !st)
      return refused("sub", st);
    if (!a.json)
      std::fprintf(stderr, "levee sub: group %s continues at offset %llu\n",
                   printable(group).c_str(), static_cast<unsigned long long>(*next_offset));
  }
  return rc;
}

int show_streams(const client_options& co, const std::string& address) {
  stream_client sc{co};
  if (auto st = sc.connect_with_backoff(seconds(10)); !st) {
    std::fprintf(stderr, "levee local: cannot reach the broker at %s: %s\n", address.c_str(),
                 printable(st.message()).c_str());
    return 1;
  }
  std::printf("\n$ levee stream create events --subject 'local.>' --broker %s\n",
              address.c_str());
  stream_spec spec;
  spec.name = "events";
  spec.subject = "local.>";
  auto info = sc.create_stream(spec, admin_timeout);
  if (!info && info.error().code() == code::bad_request)
    info = sc.get_stream_info("events", admin_timeout);  // a --data-dir that has it already
  if (!info)
    return refused("local", info.error());
  print_info(*info, false);
  const std::vector<std::string> lines = {
    R"({"level":"INFO","msg":"order created","order":1041})",
    R"({"level":"WARN","msg":"payment slow","order":1041,"ms":870})",
    R"({"level":"INFO","msg":"order shipped","order":1041})"};
  std::printf("\n$ levee pub local.orders --id demo --broker %s   # 3 lines on stdin\n",
              address.c_str());
  std::vector<out_message> batch;
  for (size_t i = 0; i < lines.size(); ++i)
    batch.push_back(out_message{"", "demo-" + std::to_string(i + 1), lines[i], {}});
  auto acks = sc.publish("local.orders", std::move(batch));
  if (!acks)
    return refused("local", acks.error());
  print_acks(*acks, false);
  std::printf("\n$ levee sub events --from earliest --count 3 --broker %s\n", address.c_str());
  std::fflush(stdout);
  subscribe_options so;
  so.stream = "events";
  so.start = start_at::earliest();
  auto id = sc.subscribe(so);
  if (!id)
    return refused("local", id.error());
  size_t shown = 0;
  auto deadline = steady_clock::now() + seconds(10);
  while (shown < lines.size() && steady_clock::now() < deadline) {
    auto ev = sc.next(*id, seconds(1));
    if (ev.error && ev.error->code == code::deadline_exceeded)
      continue;
    if (ev.error)
      return refused("local", status::refused(*ev.error));
    if (ev.end)
      break;
    for (auto& m : ev.batch->messages)
      if (shown++ < lines.size())
        print_message(*ev.batch, m, false);
  }
  (void)sc.unsubscribe(*id);
  std::fflush(stdout);
  return shown >= lines.size() ? 0 : 1;
}

} // namespace levee::apps
