// libFuzzer target for the frame codec and Envelope decoding. Any input must end in frames
// or a typed refusal — never a crash, a hang or an allocation past the limits — and every
// frame that decodes must encode and decode again to the same Envelope.
//
// Build and run: scripts/fuzz [seconds]

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "net/frame.hpp"

namespace {

levee::net::codec_limits fuzz_limits() {
  // Small limits so that the fuzzer reaches the limit checks with small inputs.
  return levee::net::codec_limits{4096, 16384, 256};
}

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "frame_fuzzer: %s\n", what);
  std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  // The first byte picks how the stream is cut into reads (1..256 bytes at a time), so
  // partial headers and bodies are exercised as a socket would deliver them.
  size_t chunk = static_cast<size_t>(data[0]) + 1;
  ++data;
  --size;
  levee::net::frame_reader reader{fuzz_limits()};
  size_t pos = 0;
  while (pos < size && !reader.error()) {
    auto n = std::min(chunk, size - pos);
    auto used = reader.feed(data + pos, n);
    if (used > n)
      fail("consumed more than it was given");
    pos += used;
    if (reader.frame_ready()) {
      auto env = reader.take();
      std::string again;
      if (!levee::net::encode_frame(env, levee::net::codec_limits{1u << 30, 1u << 30, 256}, again)) {
        levee::net::frame_reader check{levee::net::codec_limits{1u << 30, 1u << 30, 256}};
        auto consumed = check.feed(reinterpret_cast<const uint8_t*>(again.data()), again.size());
        if (consumed != again.size() || !check.frame_ready())
          fail("a decoded frame did not round-trip");
        auto back = check.take();
        if (back.SerializeAsString() != env.SerializeAsString())
          fail("round trip changed the Envelope");
      }
    } else if (used == 0 && !reader.error()) {
      fail("no progress without a frame or an error");
    }
  }
  if (reader.partial_bytes() > fuzz_limits().max_frame_bytes + levee::net::frame_header_bytes)
    fail("holds more than one frame's worth of bytes");
  return 0;
}
