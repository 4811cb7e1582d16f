#pragma once
// The notice a limited actor sends back to an actor whose fire-and-forget message it
// refused. Notices are bounded: per (limited actor, sender) at most ONE notice is on its
// way at any time; further rejections are folded into its tally, and `take()` by the
// sender reads the count and re-arms. A sender that floods therefore receives at most one
// notice per notice it reads, however fast it sends, and every rejection is counted in
// exactly one `take()`.
//
// Handle it in the sender's behavior:
//   [=](levee::rejection_notice& n) { auto refused = n.take(); ... n.first ... }

#include <atomic>
#include <cstdint>
#include <memory>

#include <caf/allowed_unsafe_message_type.hpp>

#include "limits/rejection.hpp"

namespace levee {

struct notice_tally {
  std::atomic<uint64_t> count{0};
  std::atomic<bool> outstanding{false};
};

class rejection_notice {
public:
  rejection_notice() = default;
  rejection_notice(rejection first, std::shared_ptr<notice_tally> tally)
    : first(std::move(first)), tally_(std::move(tally)) {}

  /// The rejection that caused this notice to be sent.
  rejection first;

  /// The number of rejections this notice stands for (the first one and all folded in
  /// since), and re-arms so that the next rejection sends a new notice. Call once.
  uint64_t take() noexcept {
    if (!tally_)
      return 0;
    // Order matters: clear `outstanding` before reading the count, so an increment made
    // after the read always sees `outstanding == false` and sends a new notice.
    tally_->outstanding.store(false, std::memory_order_seq_cst);
    return tally_->count.exchange(0, std::memory_order_seq_cst);
  }

private:
  std::shared_ptr<notice_tally> tally_;
};

} // namespace levee

// A notice holds a shared tally and only ever travels between actors of one process.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(levee::rejection_notice)
