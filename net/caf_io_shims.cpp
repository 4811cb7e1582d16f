#include "net/caf_io_shims.hpp"

#include <atomic>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <caf/actor_system_config.hpp>
#include <caf/defaults.hpp>
#include <caf/io/network/default_multiplexer.hpp>
#include <caf/io/network/scribe_impl.hpp>

namespace levee::net {

namespace {

/// What CAF 0.17 keeps to itself about its default scribe: the socket, and whether its
/// stream is writing (registered for writability, with bytes of ours not yet sent). The
/// scribe keeps its stream, and the stream its state, as protected members, which a
/// pointer to member reaches.
struct scribe_socket : caf::io::network::scribe_impl {
  static caf::io::network::stream_impl<caf::policy::tcp>* stream_of(caf::io::scribe& s) {
    auto* impl = dynamic_cast<caf::io::network::scribe_impl*>(&s);
    return impl == nullptr ? nullptr : &(impl->*(&scribe_socket::stream_));
  }
};
struct stream_state : caf::io::network::stream {
  static bool writing(caf::io::network::stream& s) {
    return (s.*(&stream_state::state_)).writing;
  }
};

std::atomic<uint64_t> connection_brokers_alive{0};

} // namespace

direct_write_broker::direct_write_broker(caf::actor_config& cfg) : levee::broker(cfg) {
  connection_brokers_alive.fetch_add(1);
}

direct_write_broker::~direct_write_broker() {
  connection_brokers_alive.fetch_sub(1);
}

uint64_t direct_write_broker::alive() noexcept {
  return connection_brokers_alive.load();
}

void direct_write_broker::flush_now(caf::io::connection_handle hdl) {
  flush_pending_ = false;
  auto s = this->by_id(hdl);
  if (!s)
    return;
  auto& buf = s->wr_buf();
  if (buf.empty())
    return;
  if (stream_ == nullptr)
    stream_ = scribe_socket::stream_of(*s);
  if (stream_ != nullptr && !stream_state::writing(*stream_)) {
    auto n = ::send(stream_->fd(), buf.data(), buf.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      direct_bytes_ += static_cast<uint64_t>(n);
      if (static_cast<size_t>(n) == buf.size())
        buf.clear();
      else
        buf.erase(buf.begin(), buf.begin() + n);
    }
    // n < 0: the socket is full (EAGAIN) or failed; CAF's flush handles both, a
    // failure by closing the connection.
  }
  if (!buf.empty())
    this->flush(hdl);  // starts CAF's writing, or leaves the bytes queued behind it
}

void direct_write_broker::no_delay(caf::io::connection_handle hdl) {
  auto s = this->by_id(hdl);
  if (!s)
    return;
  if (stream_ == nullptr)
    stream_ = scribe_socket::stream_of(*s);
  if (stream_ == nullptr)
    return;
  int one = 1;
  ::setsockopt(stream_->fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

bool direct_write_broker::read_registered(caf::io::connection_handle hdl) {
  auto s = this->by_id(hdl);
  if (!s)
    return false;
  if (stream_ == nullptr)
    stream_ = scribe_socket::stream_of(*s);
  return stream_ != nullptr && (stream_->eventbf() & caf::io::network::input_mask) != 0;
}

bool direct_write_broker::switch_reading(caf::io::connection_handle hdl, bool want) {
  if (want != halted_)
    return false;  // already asked for
  if (read_registered(hdl) != want) {
    halted_ = !want;
    if (want)
      this->trigger(hdl);
    else
      this->halt(hdl);
    return false;
  }
  if (read_sync_pending_)
    return false;
  read_sync_pending_ = true;  // the opposite change is pending in this round
  return true;
}

caf::invoke_message_result direct_write_broker::consume(caf::mailbox_element& x) {
  bool transferred = x.content().match_elements<caf::io::data_transferred_msg>();
  auto result = levee::broker::consume(x);
  if (flush_pending_ && !transferred && this->mailbox().empty()) {
    auto before = direct_bytes_;
    flush_now(flush_hdl_);  // (not from inside CAF's write handler: next message)
    if (direct_bytes_ != before && on_direct_send)
      on_direct_send();
  }
  return result;
}

size_t reads_per_event(caf::actor_system& sys) {
  return caf::get_or(sys.config(), "middleman.max-consecutive-reads",
                     caf::defaults::middleman::max_consecutive_reads);
}

} // namespace levee::net
