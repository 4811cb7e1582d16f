#pragma once
// What a connection needs from CAF 0.17.6's I/O layer that CAF does not offer, in one
// place: a broker that writes to its socket directly when CAF's stream is not writing,
// and that stops or resumes reading its socket only when CAF will apply the change.
// Both read CAF's own state (the scribe's stream, the multiplexer's registration) through
// protected members; everything that does so is here and in caf_io_shims.cpp. The other
// workarounds: a broker's mailbox (actors/broker.hpp), timers (actors/weak_timer.hpp),
// the I/O loop (net/multiplexer.hpp).

#include <cstddef>
#include <cstdint>
#include <functional>

#include <caf/actor_system.hpp>
#include <caf/io/connection_handle.hpp>

#include "actors/broker.hpp"

namespace caf::io::network {
class stream;
} // namespace caf::io::network

namespace levee::net {

/// A broker with a leaner write path than CAF 0.17's for its one connection:
///  - what it writes goes out once its mailbox is drained, not after every frame, so the
///    frames of messages that arrived together (a stream's last batch and its end,
///    answers to pipelined requests) leave in one send;
///  - it sends directly on the socket when CAF's stream is not writing. CAF's flush
///    registers for writability (epoll_ctl), waits a multiplexer round for it, sends, and
///    unregisters (epoll_ctl again): four system calls and a round per flush where one
///    send does. What the socket does not take at once goes CAF's way, and while CAF's
///    stream is writing everything after it does too, so the bytes keep their order.
///    Whether CAF is writing is read from its stream, never inferred: CAF also flushes by
///    itself (after every read handler, scribe::consume), so a flag of our own kept from
///    what we asked of it went stale, and a later frame overtook earlier ones.
/// It also halts and resumes reading its socket the way CAF 0.17.6 can apply
/// (switch_reading).
class direct_write_broker : public levee::broker {
public:
  explicit direct_write_broker(caf::actor_config& cfg);
  ~direct_write_broker() override;

  /// Brokers of this class not yet destroyed (their memory not yet given back).
  static uint64_t alive() noexcept;

  /// Flushes `hdl` once the messages waiting now are handled.
  void flush_later(caf::io::connection_handle hdl) noexcept {
    flush_hdl_ = hdl;
    flush_pending_ = true;
  }

  /// Sends what was written to `hdl` now.
  void flush_now(caf::io::connection_handle hdl);

  /// Sends what was written to `hdl` CAF's way (data_transferred_msg reports it).
  void flush_through_caf(caf::io::connection_handle hdl) {
    flush_pending_ = false;
    this->flush(hdl);
  }

  /// Sends what is written to `hdl` at once (TCP_NODELAY), which CAF does not set on the
  /// sockets it accepts or dials (the client library and the uplink set it on theirs).
  /// Measured: in a traced query round trip, the server's send of the answer took a
  /// median 19 us to wake the waiting client without it, 8 us with it (bench/RESULTS.md,
  /// issue 13, session 18).
  void no_delay(caf::io::connection_handle hdl);

  /// Whether CAF's multiplexer has the socket registered for reading now: what epoll
  /// has, not what was asked in this round.
  bool read_registered(caf::io::connection_handle hdl);

  /// Reads `hdl` (`want`) or stops reading it, if that is not already asked for.
  ///
  /// CAF 0.17.6 applies halt and trigger at the end of a multiplexer round, and the two do
  /// not mix within one: a trigger after a halt in the same round does nothing (the stream
  /// still counts as reading) and the halt then takes effect; a halt after a trigger cancels
  /// the registration but leaves the stream believing it reads. Either way the socket is
  /// never read again. So each is done only when the socket's applied registration says
  /// the other is not pending (CAF's eventbf: what epoll has now); otherwise the change
  /// must be made from a message of a later round. Returns true when the caller must send
  /// itself such a message (it then calls reading_synced() and this again); at most one is
  /// asked for at a time.
  bool switch_reading(caf::io::connection_handle hdl, bool want);

  /// The message of a later round that switch_reading() asked for has arrived.
  void reading_synced() noexcept { read_sync_pending_ = false; }

  /// Bytes this broker sent itself (CAF reports the rest with data_transferred_msg).
  uint64_t direct_bytes() const noexcept { return direct_bytes_; }

  /// Called after a flush at the end of a message sent bytes directly (the connection
  /// looks whether its peer has room again: it must not wait for a data_transferred_msg,
  /// which direct sends do not produce).
  std::function<void()> on_direct_send;

  caf::invoke_message_result consume(caf::mailbox_element& x) override;

private:
  caf::io::connection_handle flush_hdl_;
  caf::io::network::stream* stream_ = nullptr;  // CAF's, found on first use
  uint64_t direct_bytes_ = 0;
  bool flush_pending_ = false;
  bool halted_ = false;             // the socket is not being read (as asked of CAF)
  bool read_sync_pending_ = false;  // a later round's message is on its way (switch_reading)
};

/// Reads of one socket event (CAF's middleman.max-consecutive-reads), for the bound on
/// what a paused connection may still read (connection_state::max_held_inbox).
size_t reads_per_event(caf::actor_system& sys);

} // namespace levee::net
