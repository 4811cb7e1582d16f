#pragma once
// `levee load --target publish SUBJECT --consumers N`: consumers reading the stream the run
// publishes to, in the same process, so one run measures both sides of a stream: the
// publishers' latency and acks (the run's own figures) and, here, what the consumers read
// and how long after its intended publish time each message was read (the end-to-end
// latency: publish, store, deliver), and how many accepted publishes each had not read
// when it stopped (its lag at the end).
//
// Each message the run publishes carries a stamp at the start of its body (`stamp_body`):
// the run's id and the message's intended send time, so a consumer counts only this run's
// messages (another producer's are counted apart as foreign) and measures each from the
// time it was meant to be sent (coordinated omission corrected, as the publishers' are).

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "load/latency_histogram.hpp"

namespace levee::load {

/// Bytes of the stamp: "ll1 " + 16 hex digits of the run id + " " + 16 of the intended
/// time in ns + " ". A --message-bytes below this cannot carry it.
constexpr size_t stamp_bytes = 4 + 16 + 1 + 16 + 1;

/// `body` (at least stamp_bytes long) with its first stamp_bytes replaced by the stamp.
void stamp_body(std::string& body, uint64_t run_id, std::chrono::nanoseconds intended);

struct stamp {
  uint64_t run_id = 0;
  std::chrono::nanoseconds intended{0};
};
/// The stamp at the start of `body`, or nullopt when it carries none.
std::optional<stamp> read_stamp(std::string_view body);

/// What one consumer (or, merged, all of them) saw.
struct consumer_figures {
  uint64_t read = 0;          // this run's messages read, meant after the warm-up
  uint64_t read_warmup = 0;   // this run's messages meant during the warm-up
  uint64_t foreign = 0;       // messages without this run's stamp (other producers)
  uint64_t subscriptions = 0; // subscribe requests sent (one a partition)
  uint64_t ended = 0;         // ... answered by their end (every message up to their stop)
  uint64_t given_up = 0;      // ... still open when the consumer stopped (unsubscribed)
  std::map<std::string, uint64_t> refused;  // ... refused or ended by an error, by code
  std::vector<std::string> errors;          // what went wrong, a line each (at most 8)
  latency_histogram end_to_end;             // intended publish time -> read

  /// Counts a message read at `now` (both from the run's origin): this run's, in or
  /// before the measured window, or foreign.
  void message(std::string_view body, uint64_t run_id, std::chrono::nanoseconds warmup,
               std::chrono::nanoseconds now);
  void merge(const consumer_figures& other);
};

/// Every consumer of a run, and what they were to read.
struct consumers_report {
  std::string stream;
  uint32_t partitions = 0;
  /// Each consumer's figures (`read` of each is compared with `accepted`).
  std::vector<consumer_figures> each;
  /// Publishes the run's publishers had acknowledged, measured window only: what every
  /// consumer should have read.
  uint64_t accepted = 0;

  consumer_figures all() const;
  /// The fewest messages a consumer read, and the most accepted publishes one had not read.
  uint64_t read_min() const;
  uint64_t unread_max() const;

  /// The summary's section: "consumers: ..." with the end-to-end percentiles.
  std::string text() const;
  /// `"consumers":{...}`'s object (load/README.md lists its keys).
  std::string json() const;
};

} // namespace levee::load
