#pragma once
// Frames of the Levee wire protocol (PROTOCOL.md): `u32 big-endian length | u8 flags |
// body`, where the body is one protobuf Envelope, LZ4-compressed when flag bit 0 is set
// (then the body is `u32 big-endian decompressed size | LZ4 block`).
//
// The decoder checks the length against max_frame_bytes from the 5 header bytes alone,
// before any body buffer exists, so a 4 GiB length header costs nothing; the claimed
// decompressed size is checked before decompression, so a compression bomb costs nothing
// either. Every refusal is a typed `rejection`. Plain C++, no CAF: the connection actors
// in net/ drive it with receive_policy::exactly(header) then exactly(length).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "limits/rejection.hpp"
#include "net/levee.pb.h"

namespace levee::net {

constexpr size_t frame_header_bytes = 5;
constexpr uint8_t flag_lz4 = 0x01;
constexpr uint8_t known_flags = flag_lz4;
/// The protocol version this code speaks (Hello.protocol_version).
constexpr uint32_t protocol_version = 1;

struct codec_limits {
  /// Largest body accepted, compressed or not (`net.max_frame_bytes`).
  uint32_t max_frame_bytes;
  /// Largest body after decompression (`net.max_decompressed_bytes`).
  uint32_t max_decompressed_bytes;
  /// Bodies larger than this are sent LZ4-compressed when that makes them smaller.
  uint32_t compress_above_bytes;
};

/// Sensible limits for tests and tools; nodes take theirs from config.
codec_limits default_codec_limits();

/// The parsed header of a frame.
struct frame_header {
  uint32_t length = 0;
  uint8_t flags = 0;
};

/// Checks the 5 header bytes. `allowance` is the largest length accepted for this frame
/// (max_frame_bytes, or a permit's size). Refuses lengths above it (message_too_large),
/// empty frames and unknown flag bits (bad_request).
std::optional<rejection> check_header(const uint8_t* bytes, uint32_t allowance,
                                      frame_header& out) noexcept;

/// Decodes a body of `header.length` bytes into `out`: decompresses (bounded by
/// max_decompressed_bytes) and parses. Refusals: message_too_large (decompressed size),
/// bad_request (corrupt LZ4, invalid protobuf, empty or unknown message type).
std::optional<rejection> decode_body(const frame_header& header, const uint8_t* body,
                                     const codec_limits& limits, wire::Envelope& out);

/// Appends one frame carrying `env` to `out` for a peer whose limits (from its Hello) are
/// `peer`: LZ4-compressed above peer.compress_above_bytes when that shrinks the body and
/// the peer may decompress it. Refuses (message_too_large, nothing appended) a body above
/// peer.max_frame_bytes.
std::optional<rejection> encode_frame(const wire::Envelope& env, const codec_limits& peer,
                                      std::string& out);

/// The same, appending to a CAF write buffer directly.
std::optional<rejection> encode_frame(const wire::Envelope& env, const codec_limits& peer,
                                      std::vector<char>& out);

/// Incremental reader over a byte stream (the client library and the fuzzer feed it what
/// a socket returns). Holds at most one frame's body; allocates the body buffer only after
/// the header passed `check_header`.
class frame_reader {
public:
  explicit frame_reader(codec_limits limits) : limits_(limits) {}

  /// Allows the next frame to be up to `bytes` long (an overweight permit), once.
  void allow_next_frame(uint32_t bytes) noexcept { permit_bytes_ = bytes; }

  /// Consumes up to `n` bytes. Stops after one complete frame (`frame_ready()`), or when
  /// the input is used up, or at a refusal (`error()`; the stream cannot be resynchronised
  /// and the reader stays failed). Returns the bytes consumed.
  size_t feed(const uint8_t* data, size_t n);

  bool frame_ready() const noexcept { return ready_; }
  /// Takes the ready frame; the reader goes on with the next one.
  wire::Envelope take();

  const std::optional<rejection>& error() const noexcept { return error_; }
  /// Bytes of a frame read so far but not complete (what a slowloris peer holds open).
  size_t partial_bytes() const noexcept { return header_fill_ + body_fill_; }
  /// Wire size (header and body) of the frame last made ready.
  size_t last_frame_bytes() const noexcept { return last_frame_bytes_; }

private:
  codec_limits limits_;
  uint32_t permit_bytes_ = 0;
  uint8_t header_[frame_header_bytes] = {};
  size_t header_fill_ = 0;
  frame_header header_parsed_;
  std::string body_;
  size_t body_fill_ = 0;
  bool in_body_ = false;
  bool ready_ = false;
  size_t last_frame_bytes_ = 0;
  wire::Envelope frame_;
  std::optional<rejection> error_;
};

} // namespace levee::net
