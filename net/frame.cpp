#include "net/frame.hpp"

#include <cstring>

#include <lz4.h>

#include <algorithm>
#include <cstdio>

#include "limits/printable.hpp"

namespace levee::net {

namespace {

uint32_t read_u32_be(const uint8_t* p) noexcept {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

/// A frame that is wrong in itself: no limit refused it, so it names none.
rejection bad_frame(std::string detail) {
  return rejection::of(code::bad_request).detail(std::move(detail));
}

} // namespace

codec_limits default_codec_limits() {
  // 1 MiB frames (NATS' max_payload), 4 MiB after decompression, compress above 4 KiB.
  return codec_limits{1 << 20, 4 << 20, 4096};
}

std::optional<rejection> check_header(const uint8_t* bytes, uint32_t allowance,
                                      frame_header& out) noexcept {
  out.length = read_u32_be(bytes);
  out.flags = bytes[4];
  if (out.length > allowance)
    return rejection::of(code::message_too_large)
             .limit("net.max_frame_bytes")
             .observed(out.length)
             .max(allowance)
             .detail("the frame is larger than this side accepts; ask for a permit or split it");
  if (out.length == 0)
    return bad_frame("an empty frame carries no message");
  if ((out.flags & ~known_flags) != 0)
    return bad_frame("unknown frame flags " + std::to_string(out.flags)
                     + "; only bit 0 (LZ4) is defined in protocol version 1");
  return std::nullopt;
}

std::optional<rejection> decode_body(const frame_header& header, const uint8_t* body,
                                     const codec_limits& limits, wire::Envelope& out) {
  const uint8_t* data = body;
  size_t size = header.length;
  std::string inflated;
  if (header.flags & flag_lz4) {
    if (size < 4)
      return bad_frame("a compressed body is shorter than its 4-byte size prefix");
    auto claimed = read_u32_be(body);
    if (claimed > limits.max_decompressed_bytes)
      return rejection::of(code::message_too_large)
               .limit("net.max_decompressed_bytes")
               .observed(claimed)
               .max(limits.max_decompressed_bytes)
               .detail("the body would decompress to more than this side accepts");
    inflated.resize(claimed);
    auto n = LZ4_decompress_safe(reinterpret_cast<const char*>(body + 4), inflated.data(),
                                 static_cast<int>(size - 4), static_cast<int>(claimed));
    if (n < 0 || static_cast<uint32_t>(n) != claimed)
      return bad_frame("the LZ4 body is corrupt or does not match its size prefix");
    data = reinterpret_cast<const uint8_t*>(inflated.data());
    size = inflated.size();
  }
  if (!out.ParseFromArray(data, static_cast<int>(size)))
    return bad_frame("the body is not a valid protobuf Envelope");
  // Text fields are `bytes` on the wire, so no byte makes the Envelope unparseable; a node
  // id must be text all the same (it names the connection, people read it).
  if (out.has_hello()) {
    auto& id = out.hello().node_id();
    if (auto valid = valid_utf8_prefix(id); valid != id.size()) {
      char byte[8];
      std::snprintf(byte, sizeof byte, "0x%02x",
                    static_cast<unsigned>(static_cast<uint8_t>(id[valid])));
      return bad_frame(std::string{"Hello.node_id is not valid UTF-8: byte "} + byte
                       + " at offset " + std::to_string(valid)
                       + " of it; a node id is text: set it (net.node_id, "
                         "client_options::node_id) to UTF-8");
    }
  }
  if (out.body_case() == wire::Envelope::BODY_NOT_SET) {
    auto& unknown = out.GetReflection()->GetUnknownFields(out);
    if (unknown.field_count() > 0)
      return bad_frame("unknown message type (Envelope field "
                       + std::to_string(unknown.field(0).number())
                       + "); this side speaks protocol version 1");
    return bad_frame("the Envelope carries no message");
  }
  return std::nullopt;
}

namespace {

template <class Buffer>
void put_header(Buffer& out, size_t at, uint32_t length, uint8_t flags) {
  out[at] = static_cast<char>(length >> 24);
  out[at + 1] = static_cast<char>(length >> 16);
  out[at + 2] = static_cast<char>(length >> 8);
  out[at + 3] = static_cast<char>(length);
  out[at + 4] = static_cast<char>(flags);
}

template <class Buffer>
std::optional<rejection> encode_into(const wire::Envelope& env, const codec_limits& peer,
                                     Buffer& out) {
  auto plain_size = env.ByteSizeLong();
  // Compress only what the peer may decompress, and only when it shrinks the body.
  if (plain_size > peer.compress_above_bytes && plain_size <= peer.max_decompressed_bytes) {
    std::string plain;
    env.SerializeToString(&plain);
    auto bound = LZ4_compressBound(static_cast<int>(plain.size()));
    std::string compressed(4 + static_cast<size_t>(bound), '\0');
    auto n = LZ4_compress_default(plain.data(), compressed.data() + 4,
                                  static_cast<int>(plain.size()), bound);
    if (n > 0 && static_cast<size_t>(n) + 4 < plain.size()) {
      compressed.resize(4 + static_cast<size_t>(n));
      auto size = static_cast<uint32_t>(plain.size());
      compressed[0] = static_cast<char>(size >> 24);
      compressed[1] = static_cast<char>(size >> 16);
      compressed[2] = static_cast<char>(size >> 8);
      compressed[3] = static_cast<char>(size);
      if (compressed.size() > peer.max_frame_bytes)
        return rejection::of(code::message_too_large)
                 .limit("net.max_frame_bytes")
                 .observed(compressed.size())
                 .max(peer.max_frame_bytes)
                 .detail("the message is larger than the peer accepts");
      auto at = out.size();
      out.resize(at + frame_header_bytes + compressed.size());
      put_header(out, at, static_cast<uint32_t>(compressed.size()), flag_lz4);
      std::memcpy(&out[at + frame_header_bytes], compressed.data(), compressed.size());
      return std::nullopt;
    }
  }
  if (plain_size > peer.max_frame_bytes)
    return rejection::of(code::message_too_large)
             .limit("net.max_frame_bytes")
             .observed(plain_size)
             .max(peer.max_frame_bytes)
             .detail("the message is larger than the peer accepts");
  // The common case: serialize straight into the output, no intermediate copy.
  auto at = out.size();
  out.resize(at + frame_header_bytes + plain_size);
  put_header(out, at, static_cast<uint32_t>(plain_size), 0);
  env.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(&out[at + frame_header_bytes]));
  return std::nullopt;
}

} // namespace

std::optional<rejection> encode_frame(const wire::Envelope& env, const codec_limits& peer,
                                      std::string& out) {
  return encode_into(env, peer, out);
}

std::optional<rejection> encode_frame(const wire::Envelope& env, const codec_limits& peer,
                                      std::vector<char>& out) {
  return encode_into(env, peer, out);
}

size_t frame_reader::feed(const uint8_t* data, size_t n) {
  size_t used = 0;
  while (used < n && !ready_ && !error_) {
    if (!in_body_) {
      auto take = std::min(n - used, frame_header_bytes - header_fill_);
      std::memcpy(header_ + header_fill_, data + used, take);
      header_fill_ += take;
      used += take;
      if (header_fill_ < frame_header_bytes)
        break;
      auto allowance = std::max(limits_.max_frame_bytes, permit_bytes_);
      permit_bytes_ = 0;  // a permit is good for one frame
      if (auto err = check_header(header_, allowance, header_parsed_)) {
        error_ = std::move(err);
        break;
      }
      body_.resize(header_parsed_.length);  // only now, after the length passed its check
      body_fill_ = 0;
      in_body_ = true;
      continue;
    }
    auto take = std::min(n - used, body_.size() - body_fill_);
    std::memcpy(body_.data() + body_fill_, data + used, take);
    body_fill_ += take;
    used += take;
    if (body_fill_ < body_.size())
      break;
    frame_.Clear();
    if (auto err = decode_body(header_parsed_, reinterpret_cast<const uint8_t*>(body_.data()),
                               limits_, frame_)) {
      error_ = std::move(err);
      break;
    }
    ready_ = true;
    last_frame_bytes_ = frame_header_bytes + body_.size();
    in_body_ = false;
    header_fill_ = 0;
    body_fill_ = 0;
    // Give a large body's memory back instead of keeping the peak for the connection.
    if (body_.capacity() > 64 * 1024)
      std::string{}.swap(body_);
  }
  return used;
}

wire::Envelope frame_reader::take() {
  ready_ = false;
  wire::Envelope out;
  out.Swap(&frame_);
  return out;
}

} // namespace levee::net
