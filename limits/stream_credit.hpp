#pragma once
// Credit for streamed answers (ARCHITECTURE.md "Flow control"): the consumer of a stream grants
// credit in batches and bytes, and the producer sends a batch only while it holds some.
// One rule everywhere a stream is paced — a query's rows, and later stream deliveries and
// replica fetches — on the wire (Request.credit_*, Credit frames: net/PROTOCOL.md) and
// between actors of one node (credit_atom).
//
// The rule: a batch may be sent while at least one batch and more than zero bytes of
// credit are left; sending it takes one batch and its size. The bytes may so go below zero
// by that one batch: a batch larger than the whole window still goes (alone) instead of
// stalling the stream forever, and the consumer's buffer is bounded by its window plus one
// batch (itself bounded by the frame size).
//
// Plain C++, no CAF: tested and reused by every hop.

#include <cstdint>
#include <limits>

namespace levee {

struct stream_credit {
  uint64_t batches = 0;
  int64_t bytes = 0;

  bool allows_batch() const noexcept { return batches > 0 && bytes > 0; }
  bool empty() const noexcept { return batches == 0 && bytes <= 0; }

  /// Takes one batch of `batch_bytes` (even one the credit does not allow: counted, so
  /// a producer that overran is paced again at once).
  void take(uint64_t batch_bytes) noexcept {
    if (batches > 0)
      --batches;
    bytes = sub_sat(bytes, batch_bytes);
  }

  /// Adds what a consumer granted (saturating: a hostile peer cannot overflow it).
  void add(uint64_t more_batches, uint64_t more_bytes) noexcept {
    batches = more_batches > max_batches - batches ? max_batches : batches + more_batches;
    bytes = add_sat(bytes, more_bytes);
  }

  static constexpr uint64_t max_batches = std::numeric_limits<uint32_t>::max();
  static constexpr int64_t max_bytes = std::numeric_limits<int64_t>::max() / 2;

private:
  static int64_t add_sat(int64_t a, uint64_t b) noexcept {
    auto room = static_cast<uint64_t>(max_bytes - a);
    return b >= room ? max_bytes : a + static_cast<int64_t>(b);
  }
  static int64_t sub_sat(int64_t a, uint64_t b) noexcept {
    auto room = static_cast<uint64_t>(a + max_bytes);
    return b >= room ? -max_bytes : a - static_cast<int64_t>(b);
  }
};

/// A hop between a consumer and a producer (a connection between its peer and the actor
/// that answers; a proxyer between its client and a satellite): the credit the consumer
/// granted and the hop has not passed on yet (`held`), and what it passed on and the
/// producer has not used yet (`lent`). The hop lends at most `cap` at a time, so what a
/// producer may put in the hop's buffers is bounded by the hop, whatever the consumer
/// grants; and it lends in chunks (once `lent` has fallen to half the cap), not a message
/// per batch.
class credit_relay {
public:
  /// The consumer granted more.
  void add(uint64_t batches, uint64_t bytes) noexcept { held_.add(batches, bytes); }

  /// A batch of `batch_bytes` came from the producer.
  void produced(uint64_t batch_bytes) noexcept { lent_.take(batch_bytes); }

  /// What to pass on to the producer now (empty: nothing), within `cap`; moved from held
  /// to lent. `force` lends even when lent is above half the cap (a first grant).
  stream_credit lend(stream_credit cap, bool force = false) noexcept {
    stream_credit out;
    auto low = lent_.batches <= cap.batches / 2 || lent_.bytes <= cap.bytes / 2;
    if (!force && !low)
      return out;
    uint64_t room_batches = cap.batches > lent_.batches ? cap.batches - lent_.batches : 0;
    // A producer that overdrew (negative lent bytes) gets its overdraft repaid on top: the
    // consumer granted those bytes (they are held), and lending less could leave it with
    // no bytes and no reason for another loan.
    int64_t room_bytes = cap.bytes > lent_.bytes ? cap.bytes - lent_.bytes : 0;
    // Each dimension on its own: a producer that still holds batches but no bytes (or
    // the reverse) needs only the other, and waiting for both would stall the stream.
    out.batches = held_.batches < room_batches ? held_.batches : room_batches;
    out.bytes = held_.bytes < room_bytes ? held_.bytes : room_bytes;
    if (out.bytes < 0)
      out.bytes = 0;
    if (out.batches == 0 && out.bytes == 0)
      return stream_credit{};
    held_.batches -= out.batches;
    held_.bytes -= out.bytes;
    lent_.add(out.batches, static_cast<uint64_t>(out.bytes));
    return out;
  }

  const stream_credit& held() const noexcept { return held_; }
  const stream_credit& lent() const noexcept { return lent_; }

private:
  stream_credit held_;
  stream_credit lent_;
};

} // namespace levee
