#pragma once
// Cuts a byte stream into lines with a bound on what it holds: a line longer than
// max_line_bytes is skipped up to its newline and reported with its length, never
// buffered whole. Shared by every reader of JSON lines.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace levee::events {

class line_reader {
public:
  /// Holds at most max_line_bytes + read_chunk_bytes bytes.
  line_reader(size_t max_line_bytes, size_t read_chunk_bytes);

  enum class item {
    none,      // no complete line: read more (or the stream is finished)
    line,      // `line` holds one line without its "\n" or "\r\n"
    too_long,  // a line of `length` bytes was over the bound and has been skipped
  };

  /// The next complete line. `line` stays valid until the next call to prepare() or clear().
  item next(std::string_view& line, uint64_t& length);

  /// Room for up to read_chunk_bytes at the end of the buffer; call commit() with what
  /// was written there. Never needs more room than the bound: a partial line over
  /// max_line_bytes has already been dropped.
  char* prepare(size_t& room);
  void commit(size_t written);

  /// The stream ended: next() will return an unterminated last line as a line.
  void end_of_stream() { ended_ = true; }
  bool ended() const noexcept { return ended_; }
  /// The stream ended and next() has nothing more to say.
  bool drained() const noexcept {
    return ended_ && begin_ == end_ && !(skipping_ && !silent_skip_);
  }

  /// Drops the rest of the current line silently, up to and including its newline (a
  /// reader that starts in the middle of a file does not see half a line).
  void skip_current_line() {
    skipping_ = true;
    silent_skip_ = true;
    skipped_ = 0;
  }

  /// Forgets everything buffered (the file was truncated or replaced).
  void clear();

  /// Bytes held (complete lines not yet taken and the partial last line).
  size_t buffered_bytes() const noexcept { return end_ - begin_; }

private:
  size_t max_line_bytes_;
  size_t read_chunk_bytes_;
  std::string buf_;
  size_t begin_ = 0;  // first byte not yet returned
  size_t scan_ = 0;   // bytes before this (from begin_) hold no newline
  size_t end_ = 0;    // end of valid data in buf_
  bool skipping_ = false;
  bool silent_skip_ = false;
  uint64_t skipped_ = 0;
  bool ended_ = false;
};

} // namespace levee::events
