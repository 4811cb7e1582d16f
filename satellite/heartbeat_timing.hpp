#pragma once
// When a satellite's agent sends its next heartbeat, and registers again after a refusal
// (satellite.heartbeat_jitter_pct). Pure functions of a uniform draw, so tests pin the
// bounds with a seeded generator and the agent uses a random one.
//
// A fleet that registered together (a server restart) would beat in lockstep: a burst of
// N beats every interval instead of N / interval a second. So the first beat after a
// registration comes at a random point of the first interval (the Register itself counts
// as a beat: the server saw the satellite then), and every later beat up to
// jitter_pct percent of the interval early. Only early: a beat is never later than the
// interval, so the server's count of missed intervals is what it was without jitter.

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace levee::satellite {

/// The wait before a heartbeat: `interval` for jitter_pct 0; otherwise, with `u` uniform
/// in [0, 1), interval * (1 - u) for the first beat after a registration, and
/// interval * (1 - u * jitter_pct / 100) for the others. Never below 1 ms.
inline std::chrono::milliseconds heartbeat_delay(std::chrono::milliseconds interval,
                                                 uint64_t jitter_pct, bool first, double u) {
  if (jitter_pct == 0)
    return interval;
  double early = first ? u : u * static_cast<double>(jitter_pct) / 100.0;
  auto ms = static_cast<int64_t>(static_cast<double>(interval.count()) * (1.0 - early));
  return std::chrono::milliseconds(std::max<int64_t>(ms, 1));
}

/// The wait before registering again after a refusal: the server's retry-after (1 s when
/// it gave none), made up to jitter_pct percent longer with `u` uniform in [0, 1), so a
/// refused fleet does not come back all at once.
inline std::chrono::milliseconds register_retry_delay(uint64_t retry_after_ms,
                                                      uint64_t jitter_pct, double u) {
  auto base = static_cast<double>(retry_after_ms > 0 ? retry_after_ms : 1000);
  return std::chrono::milliseconds(
    static_cast<int64_t>(base * (1.0 + u * static_cast<double>(jitter_pct) / 100.0)));
}

} // namespace levee::satellite
