#include "events/line_reader.hpp"

#include <cstring>

namespace levee::events {

line_reader::line_reader(size_t max_line_bytes, size_t read_chunk_bytes)
    : max_line_bytes_(max_line_bytes), read_chunk_bytes_(read_chunk_bytes) {}

void line_reader::clear() {
  begin_ = scan_ = end_ = 0;
  skipping_ = silent_skip_ = false;
  skipped_ = 0;
  ended_ = false;
}

line_reader::item line_reader::next(std::string_view& line, uint64_t& length) {
  for (;;) {
    if (begin_ == end_) {
      begin_ = scan_ = end_ = 0;
      if (ended_ && skipping_ && !silent_skip_) {
        skipping_ = false;
        length = skipped_;
        return item::too_long;
      }
      return item::none;
    }
    const char* data = buf_.data();
    size_t from = begin_ + scan_;
    auto* nl = static_cast<const char*>(std::memchr(data + from, '\n', end_ - from));
    if (nl == nullptr) {
      if (skipping_) {
        skipped_ += end_ - begin_;
        begin_ = scan_ = end_ = 0;
        continue;
      }
      if (end_ - begin_ > max_line_bytes_) {
        // Over the bound before its newline: drop what we have and skip the rest.
        skipping_ = true;
        silent_skip_ = false;
        skipped_ = end_ - begin_;
        begin_ = scan_ = end_ = 0;
        continue;
      }
      if (ended_) {
        line = std::string_view{data + begin_, end_ - begin_};
        begin_ = end_;
        if (!line.empty() && line.back() == '\r')
          line.remove_suffix(1);
        return item::line;
      }
      scan_ = end_ - begin_;
      return item::none;
    }
    size_t stop = static_cast<size_t>(nl - data);
    size_t start = begin_;
    begin_ = stop + 1;
    scan_ = 0;
    if (skipping_) {
      skipping_ = false;
      if (silent_skip_)
        continue;
      length = skipped_ + (stop - start);
      return item::too_long;
    }
    line = std::string_view{data + start, stop - start};
    if (!line.empty() && line.back() == '\r')
      line.remove_suffix(1);
    if (line.size() > max_line_bytes_) {
      length = line.size();
      return item::too_long;
    }
    return item::line;
  }
}

char* line_reader::prepare(size_t& room) {
  if (begin_ > 0) {
    // Move the partial line to the front; lines before it have been handed out.
    std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  size_t want = end_ + read_chunk_bytes_;
  if (buf_.size() < want)
    buf_.resize(want);
  room = read_chunk_bytes_;
  return buf_.data() + end_;
}

void line_reader::commit(size_t written) { end_ += written; }

} // namespace levee::events
