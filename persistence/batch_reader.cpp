#include "persistence/batch_reader.hpp"

#include <cstring>

#include "persistence/segment_log_internal.hpp"

namespace levee::persistence {

batch_check batch_reader::peek(batch_header& h, const uint8_t*& data, std::string& why,
                               int& io_err) {
  io_err = 0;
  for (;;) {
    auto have = buffered();
    auto at = reinterpret_cast<const uint8_t*>(buf_.data()) + (have > 0 ? pos_ - buf_start_ : 0);
    auto verdict = check_batch(at, have, max_batch_bytes_, h, why);
    if (verdict != batch_check::incomplete || pos_ + have >= file_size_) {
      data = at;
      return verdict;
    }
    // More of the file is there: read from here, at least the batch the header announces.
    uint64_t need = have < batch_header_bytes ? batch_header_bytes : h.length;
    if ((io_err = fill(std::max<uint64_t>(need, next_fill_))) != 0)
      return batch_check::incomplete;
    next_fill_ = std::min<uint64_t>(next_fill_ * 2, chunk_);
  }
}

status batch_reader::peek_valid(batch_header& h, const uint8_t*& data, const std::string& path,
                                const char* doing) {
  std::string why;
  int err = 0;
  auto verdict = peek(h, data, why, err);
  if (err != 0)
    return status::error(code::storage_error,
                         "cannot read " + path + ": " + std::strerror(-err));
  if (verdict != batch_check::ok)
    return status::error(code::storage_error,
                         "corrupt batch in " + path + " at byte " + std::to_string(pos_)
                           + doing + ": " + (why.empty() ? "incomplete batch" : why));
  return {};
}

bool batch_reader::zeros_to_end(int& io_err) {
  io_err = 0;
  while (pos_ < file_size_) {
    if (buffered() == 0 && (io_err = fill(chunk_)) != 0)
      return false;
    auto from = buf_.data() + (pos_ - buf_start_);
    auto n = buffered();
    if (!std::all_of(from, from + n, [](char c) { return c == 0; }))
      return false;
    pos_ += n;
  }
  return true;
}

int batch_reader::fill(uint64_t want) {
  auto n = static_cast<size_t>(std::min<uint64_t>(want, file_size_ - pos_));
  if (buf_.size() < n)
    buf_.resize(n);
  buf_start_ = pos_;
  buf_len_ = 0;
  if (auto err = detail::read_all_at(io_, fd_, pos_, buf_.data(), n); err != 0)
    return err;
  buf_len_ = n;
  return 0;
}

} // namespace levee::persistence
