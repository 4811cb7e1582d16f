#include "events/synthetic.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace levee::events {

namespace {

constexpr const char* words[] = {
  "request", "served", "from", "cache", "upstream", "timeout", "retry", "user", "session",
  "token", "refreshed", "query", "slow", "index", "scan", "batch", "flushed", "to", "disk",
  "connection", "reset", "by", "peer", "payment", "accepted", "order", "shipped", "queue",
  "depth", "rising", "healthy", "checkpoint", "written", "lease", "renewed", "shard"};

status range_error(const std::string& key, uint64_t v, uint64_t lo, uint64_t hi, const char* unit) {
  return status::error(code::bad_request, key + " = " + std::to_string(v) + ": must be between "
                                            + std::to_string(lo) + " and " + std::to_string(hi)
                                            + " " + unit);
}

} // namespace

status validate(const synthetic_config& config, const std::string& prefix) {
  if (config.rate_per_sec < 1 || config.rate_per_sec > defaults::synthetic_rate_per_sec_ceiling)
    return range_error(prefix + ".rate_per_sec", config.rate_per_sec, 1,
                       defaults::synthetic_rate_per_sec_ceiling, "events/s");
  if (config.burst_events > defaults::synthetic_rate_per_sec_ceiling)
    return range_error(prefix + ".burst_events", config.burst_events, 0,
                       defaults::synthetic_rate_per_sec_ceiling, "events");
  if (config.levels.empty() || config.levels.size() > defaults::synthetic_max_levels)
    return status::error(code::bad_request,
                         prefix + ".levels: must list between 1 and "
                           + std::to_string(defaults::synthetic_max_levels) + " levels");
  uint64_t total = 0;
  for (auto& l : config.levels) {
    if (l.name.empty() || l.name.size() > 64)
      return status::error(code::bad_request,
                           prefix + ".levels: a level name must have 1 to 64 bytes");
    total += l.weight;
  }
  if (total == 0)
    return status::error(code::bad_request, prefix + ".levels: the weights must not all be 0");
  if (config.users < 1 || config.users > defaults::synthetic_users_ceiling)
    return range_error(prefix + ".users", config.users, 1, defaults::synthetic_users_ceiling,
                       "users");
  if (config.msg_bytes > defaults::synthetic_msg_bytes_ceiling)
    return range_error(prefix + ".msg_bytes", config.msg_bytes, 0,
                       defaults::synthetic_msg_bytes_ceiling, "bytes");
  if (config.latency_mean_ms > defaults::synthetic_latency_mean_ms_ceiling)
    return range_error(prefix + ".latency_mean_ms", config.latency_mean_ms, 0,
                       defaults::synthetic_latency_mean_ms_ceiling, "ms");
  return {};
}

synthetic::synthetic(synthetic_config config)
    : config_(std::move(config)),
      burst_(config_.burst_events == 0 ? config_.rate_per_sec : config_.burst_events),
      state_(config_.seed) {
  for (auto& l : config_.levels)
    total_weight_ += l.weight;
  // msg is a window into this text: one random cut per event instead of msg_bytes draws.
  size_t size = std::max<size_t>(4096, 2 * config_.msg_bytes + 64);
  text_.reserve(size + 16);
  while (text_.size() < size) {
    text_ += words[next_random() % (sizeof words / sizeof words[0])];
    text_ += ' ';
  }
}

uint64_t synthetic::next_random() {
  // splitmix64: tiny, fast, and the same sequence on every platform (unlike the
  // distributions of <random>, which are implementation-defined).
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double synthetic::next_unit() {
  return static_cast<double>(next_random() >> 11) * (1.0 / 9007199254740992.0);  // 2^-53
}

void synthetic::make(event& e, int64_t ts) {
  e.timestamp_ms = ts;
  e.fields.clear();
  e.fields.reserve(6);

  const std::string* level = &config_.levels.back().name;
  uint64_t pick = next_random() % total_weight_;
  for (auto& l : config_.levels) {
    if (pick < l.weight) {
      level = &l.name;
      break;
    }
    pick -= l.weight;
  }

  char user[32];
  std::snprintf(user, sizeof user, "user-%05llu",
                static_cast<unsigned long long>(next_random() % config_.users));

  uint64_t r = next_random() % 10;
  int64_t status_code;
  if (*level == "INFO")
    status_code = r < 8 ? 200 : (r == 8 ? 201 : 204);
  else if (*level == "WARN")
    status_code = r < 5 ? 404 : (r < 8 ? 429 : 400);
  else
    status_code = r < 6 ? 500 : (r < 9 ? 503 : 502);

  double latency = -std::log(1.0 - next_unit()) * static_cast<double>(config_.latency_mean_ms);
  latency = std::round(latency * 1000.0) / 1000.0;

  size_t at = next_random() % (text_.size() - config_.msg_bytes + 1);

  e.fields.push_back({"seq", seq_++});
  e.fields.push_back({"level", *level});
  e.fields.push_back({"user", std::string{user}});
  e.fields.push_back({"status", status_code});
  e.fields.push_back({"latency_ms", latency});
  e.fields.push_back({"msg", text_.substr(at, config_.msg_bytes)});
}

size_t synthetic::poll(std::vector<event>& out, size_t max_events, int64_t now_ms) {
  if (!started_) {
    started_ = true;
    last_ms_ = now_ms;
    return 0;
  }
  int64_t from_ms = last_ms_;
  if (now_ms > last_ms_) {
    const uint64_t cap_milli = burst_ * 1000;
    // Time beyond what fills the burst changes nothing; capping it first keeps
    // elapsed * rate from overflowing after a very long pause.
    uint64_t elapsed = static_cast<uint64_t>(now_ms - last_ms_);
    elapsed = std::min(elapsed, cap_milli / config_.rate_per_sec + 1);
    credit_milli_ = std::min(credit_milli_ + elapsed * config_.rate_per_sec, cap_milli);
    last_ms_ = now_ms;
  }
  uint64_t n = std::min<uint64_t>(credit_milli_ / 1000, max_events);
  credit_milli_ -= n * 1000;
  out.reserve(out.size() + n);
  // Event i of n lands at from + span * (i + 1) / n, computed without overflowing.
  const uint64_t span = static_cast<uint64_t>(last_ms_ - from_ms);
  const uint64_t step = n == 0 ? 0 : span / n, rest = n == 0 ? 0 : span % n;
  for (uint64_t i = 0; i < n; ++i) {
    out.emplace_back();
    make(out.back(), from_ms + static_cast<int64_t>(step * (i + 1) + rest * (i + 1) / n));
  }
  stats_.events += n;
  return static_cast<size_t>(n);
}

} // namespace levee::events
