#pragma once
// Hand-built protobuf bytes for what a careful sender would never produce (a `string` field
// that is not UTF-8: protobuf's own serializer complains on stderr about such a field), and
// a capture of protobuf's log lines, for tests that must see none on the receiving side.

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <google/protobuf/stubs/logging.h>

namespace levee::test {

inline std::string varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
  return out;
}

/// Field `number` holding a whole number.
inline std::string number_field(int number, uint64_t v) {
  return varint(static_cast<uint64_t>(number) << 3) + varint(v);
}

/// Field `number` holding `bytes` (a string, bytes, a message or a map entry: all the same
/// on the wire).
inline std::string bytes_field(int number, std::string_view bytes) {
  return varint((static_cast<uint64_t>(number) << 3) | 2) + varint(bytes.size())
         + std::string{bytes};
}

/// One entry of a map field `number`.
inline std::string map_entry(int number, std::string_view key, std::string_view value) {
  return bytes_field(number, bytes_field(1, key) + bytes_field(2, value));
}

/// A frame around an Envelope's bytes (uncompressed).
inline std::string frame_around(const std::string& envelope) {
  auto n = static_cast<uint32_t>(envelope.size());
  std::string out{static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                  static_cast<char>(n >> 8), static_cast<char>(n), '\0'};
  return out + envelope;
}

/// While it lives, what protobuf would log (on stderr) is kept here instead.
class protobuf_log_capture {
public:
  protobuf_log_capture() {
    clear();
    previous_ = google::protobuf::SetLogHandler(&record);
  }
  ~protobuf_log_capture() { google::protobuf::SetLogHandler(previous_); }
  protobuf_log_capture(const protobuf_log_capture&) = delete;
  protobuf_log_capture& operator=(const protobuf_log_capture&) = delete;

  static std::vector<std::string> lines() {
    std::lock_guard<std::mutex> guard{mtx()};
    return kept();
  }
  static void clear() {
    std::lock_guard<std::mutex> guard{mtx()};
    kept().clear();
  }

private:
  static std::mutex& mtx() {
    static std::mutex m;
    return m;
  }
  static std::vector<std::string>& kept() {
    static std::vector<std::string> v;
    return v;
  }
  static void record(google::protobuf::LogLevel, const char* file, int line,
                     const std::string& message) {
    std::lock_guard<std::mutex> guard{mtx()};
    kept().push_back(std::string{file} + ":" + std::to_string(line) + ": " + message);
  }
  google::protobuf::LogHandler* previous_;
};

} // namespace levee::test
