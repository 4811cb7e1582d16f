#include "load/consumers.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "load/results.hpp"

namespace levee::load {

namespace {

constexpr std::string_view stamp_tag = "ll1 ";

void put_hex(char* at, uint64_t v) {
  static const char digits[] = "0123456789abcdef";
  for (int i = 15; i >= 0; --i) {
    at[i] = digits[v & 0xf];
    v >>= 4;
  }
}

std::optional<uint64_t> get_hex(std::string_view text) {
  uint64_t v = 0;
  for (char c : text) {
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0)
      return std::nullopt;
    v = v << 4 | static_cast<uint64_t>(d);
  }
  return v;
}

} // namespace

void stamp_body(std::string& body, uint64_t run_id, std::chrono::nanoseconds intended) {
  if (body.size() < stamp_bytes)
    body.resize(stamp_bytes, 'x');
  body.replace(0, stamp_tag.size(), stamp_tag);
  put_hex(&body[4], run_id);
  body[20] = ' ';
  put_hex(&body[21], static_cast<uint64_t>(std::max<int64_t>(0, intended.count())));
  body[37] = ' ';
}

std::optional<stamp> read_stamp(std::string_view body) {
  if (body.size() < stamp_bytes || body.substr(0, stamp_tag.size()) != stamp_tag || body[20] != ' '
      || body[37] != ' ')
    return std::nullopt;
  auto run = get_hex(body.substr(4, 16));
  auto at = get_hex(body.substr(21, 16));
  if (!run || !at)
    return std::nullopt;
  return stamp{*run, std::chrono::nanoseconds(static_cast<int64_t>(*at))};
}

void consumer_figures::message(std::string_view body, uint64_t run_id,
                               std::chrono::nanoseconds warmup, std::chrono::nanoseconds now) {
  auto s = read_stamp(body);
  if (!s || s->run_id != run_id) {
    ++foreign;
    return;
  }
  if (s->intended < warmup) {
    ++read_warmup;
    return;
  }
  ++read;
  end_to_end.record(static_cast<uint64_t>(std::max<int64_t>(0, (now - s->intended).count())));
}

void consumer_figures::merge(const consumer_figures& o) {
  read += o.read;
  read_warmup += o.read_warmup;
  foreign += o.foreign;
  subscriptions += o.subscriptions;
  ended += o.ended;
  given_up += o.given_up;
  for (auto& [c, n] : o.refused)
    refused[c] += n;
  for (auto& e : o.errors)
    if (errors.size() < 8)
      errors.push_back(e);
  end_to_end.merge(o.end_to_end);
}

consumer_figures consumers_report::all() const {
  consumer_figures out;
  for (auto& c : each)
    out.merge(c);
  return out;
}

uint64_t consumers_report::read_min() const {
  uint64_t out = each.empty() ? 0 : UINT64_MAX;
  for (auto& c : each)
    out = std::min(out, c.read);
  return out;
}

uint64_t consumers_report::unread_max() const {
  auto least = read_min();
  return accepted > least ? accepted - least : 0;
}

std::string consumers_report::text() const {
  auto a = all();
  std::string out;
  char line[512];
  auto add = [&](const char* fmt, auto... args) {
    std::snprintf(line, sizeof line, fmt, args...);
    out += line;
  };
  uint64_t read_max = 0;
  for (auto& c : each)
    read_max = std::max(read_max, c.read);
  add("\nconsumers: %zu on stream %s (%u partition%s), each from where it ended when the run "
      "began\n",
      each.size(), stream.c_str(), partitions, partitions == 1 ? "" : "s");
  add("  read by each  %" PRIu64 " to %" PRIu64 " of the %" PRIu64
      " publishes accepted; unread at the end: %" PRIu64 " at most\n",
      read_min(), read_max, accepted, unread_max());
  if (a.foreign > 0)
    add("  other producers' messages read: %" PRIu64 "\n", a.foreign);
  add("  subscriptions %" PRIu64 ": %" PRIu64 " ended, %" PRIu64 " given up when done",
      a.subscriptions, a.ended, a.given_up);
  for (auto& [c, n] : a.refused)
    add(", %" PRIu64 " %s", n, c.c_str());
  add("\n  %-14s", "end to end");
  for (auto& [name, p] : reported_percentiles())
    add(" %9s", duration_text(a.end_to_end.percentile(p)).c_str());
  add(" %9s\n", duration_text(a.end_to_end.max()).c_str());
  add("  (from each message's intended publish time to its read, of %" PRIu64 " reads)\n",
      a.end_to_end.count());
  for (auto& e : a.errors)
    add("  error: %s\n", e.c_str());
  return out;
}

std::string consumers_report::json() const {
  auto a = all();
  std::string read_each = "[";
  for (size_t i = 0; i < each.size(); ++i)
    read_each += (i ? "," : "") + std::to_string(each[i].read);
  read_each += "]";
  std::string errors = "[";
  for (size_t i = 0; i < a.errors.size(); ++i)
    errors += (i ? "," : "") + json_string(a.errors[i]);
  errors += "]";
  return "{\"count\":" + std::to_string(each.size()) + ",\"stream\":" + json_string(stream)
         + ",\"partitions\":" + std::to_string(partitions)
         + ",\"accepted_publishes\":" + std::to_string(accepted) + ",\"read\":" + read_each
         + ",\"read_min\":" + std::to_string(read_min())
         + ",\"unread_max\":" + std::to_string(unread_max())
         + ",\"read_warmup\":" + std::to_string(a.read_warmup)
         + ",\"foreign\":" + std::to_string(a.foreign)
         + ",\"subscriptions\":" + std::to_string(a.subscriptions)
         + ",\"ended\":" + std::to_string(a.ended) + ",\"given_up\":" + std::to_string(a.given_up)
         + ",\"refused\":" + counts_json(a.refused)
         + ",\"end_to_end\":" + histogram_json(a.end_to_end) + ",\"errors\":" + errors + "}";
}

} // namespace levee::load
