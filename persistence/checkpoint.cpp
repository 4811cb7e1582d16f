#include "persistence/checkpoint.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/codec.hpp"
#include "limits/defaults.hpp"
#include "persistence/crc32c.hpp"

namespace levee::persistence {

namespace {

constexpr uint32_t magic = 0x4B43564Cu;  // "LVCK" little-endian
constexpr uint32_t version = 1;
constexpr uint32_t kind_high_water = 1;
constexpr uint32_t kind_leader_epochs = 2;
constexpr uint32_t kind_position_hint = 3;
constexpr uint32_t max_entries = 1u << 20;

using base::get_u16_le;
using base::get_u32_le;
using base::get_u64_le;
using base::put_u16_le;
using base::put_u32_le;
using base::put_u64_le;

status io_error(const std::string& what, const std::string& path) {
  return status::error(code::storage_error, what + " " + path + ": " + std::strerror(errno));
}

status write_atomically(const std::string& path, const std::string& bytes) {
  auto tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return io_error("cannot create", tmp);
  size_t done = 0;
  while (done < bytes.size()) {
    auto n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      auto err = io_error("cannot write", tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return err;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    auto err = io_error("cannot sync", tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return err;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return io_error("cannot rename over", path);
  auto dir = std::filesystem::path(path).parent_path().string();
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return io_error("cannot open the directory of", path);
  auto ok = ::fsync(dfd) == 0;
  ::close(dfd);
  if (!ok)
    return io_error("cannot sync the directory of", path);
  return {};
}

std::string encode(uint32_t kind, const std::vector<epoch_entry>& entries) {
  std::string out;
  put_u32_le(out, magic);
  put_u32_le(out, version);
  put_u32_le(out, kind);
  put_u32_le(out, static_cast<uint32_t>(entries.size()));
  for (auto& [a, b] : entries) {
    put_u64_le(out, a);
    put_u64_le(out, b);
  }
  put_u32_le(out, crc32c(0, out.data(), out.size()));
  return out;
}

/// The file's bytes, at most `cap` + 1 of them (more means it is too big);
/// not_found when it does not exist.
result<std::string> read_capped(const std::string& path, size_t cap) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT)
      return status::error(code::not_found, "no checkpoint " + path + " yet");
    return io_error("cannot open", path);
  }
  std::string in;
  char buf[4096];
  for (;;) {
    auto n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      auto err = io_error("cannot read", path);
      ::close(fd);
      return err;
    }
    if (n == 0)
      break;
    in.append(buf, static_cast<size_t>(n));
    if (in.size() > cap)
      break;
  }
  ::close(fd);
  return in;
}

result<std::vector<epoch_entry>> decode(const std::string& path, uint32_t kind) {
  auto read = read_capped(path, 16 + static_cast<size_t>(max_entries) * 16 + 4);
  if (!read)
    return read.error();
  auto& in = *read;
  auto bad = [&](const std::string& why) {
    return status::error(code::storage_error, "corrupt checkpoint " + path + ": " + why);
  };
  if (in.size() < 20)
    return bad("shorter than its header");
  if (get_u32_le(in.data()) != magic || get_u32_le(in.data() + 4) != version
      || get_u32_le(in.data() + 8) != kind)
    return bad("not a version 1 checkpoint of this kind");
  auto count = get_u32_le(in.data() + 12);
  if (count > max_entries || in.size() != 16 + count * 16 + 4)
    return bad("its size does not match its entry count");
  if (crc32c(0, in.data(), in.size() - 4) != get_u32_le(in.data() + in.size() - 4))
    return bad("checksum mismatch");
  std::vector<epoch_entry> out;
  for (uint64_t i = 0; i < count; ++i)
    out.emplace_back(get_u64_le(in.data() + 16 + i * 16), get_u64_le(in.data() + 24 + i * 16));
  return out;
}

} // namespace

status write_high_water(const std::string& path, uint64_t high_water) {
  return write_atomically(path, encode(kind_high_water, {{high_water, 0}}));
}

result<uint64_t> read_high_water(const std::string& path) {
  auto entries = decode(path, kind_high_water);
  if (!entries)
    return entries.error();
  if (entries->size() != 1)
    return status::error(code::storage_error, "corrupt checkpoint " + path
                                                + ": a high-water mark has one entry");
  return entries->front().first;
}

status write_leader_epochs(const std::string& path, const std::vector<epoch_entry>& epochs) {
  if (epochs.size() > max_entries)
    return status::error(code::bad_request, "too many leader epochs for one checkpoint");
  return write_atomically(path, encode(kind_leader_epochs, epochs));
}

result<std::vector<epoch_entry>> read_leader_epochs(const std::string& path) {
  return decode(path, kind_leader_epochs);
}

} // namespace levee::persistence

namespace levee::persistence {

// Kind 3, the source-position hint (FORMAT.md "Source positions"): after the common
// header (magic, version, kind, entry count n) the log offset it covers (u64), then n
// entries of a u16 name length, the name and an encoded file_position; the CRC32C last.

status write_position_hint(const std::string& path, const position_hint& hint) {
  std::string out;
  put_u32_le(out, magic);
  put_u32_le(out, version);
  put_u32_le(out, kind_position_hint);
  put_u32_le(out, static_cast<uint32_t>(hint.positions.size()));
  put_u64_le(out, hint.log_offset);
  for (auto& [name, pos] : hint.positions) {
    if (name.size() > 0xFFFF)
      return status::error(code::bad_request, "a source name of " + std::to_string(name.size())
                                                + " bytes cannot be in a position hint");
    put_u16_le(out, static_cast<uint16_t>(name.size()));
    out += name;
    out += encode_file_position(pos);
  }
  put_u32_le(out, crc32c(0, out.data(), out.size()));
  if (out.size() > defaults::log_position_hint_max_bytes)
    return status::error(code::bad_request,
                         "a position hint of " + std::to_string(out.size())
                           + " bytes is over log_position_hint_max_bytes "
                           + std::to_string(defaults::log_position_hint_max_bytes));
  return write_atomically(path, out);
}

result<position_hint> read_position_hint(const std::string& path) {
  auto read = read_capped(path, defaults::log_position_hint_max_bytes);
  if (!read)
    return read.error();
  auto& in = *read;
  auto bad = [&](const std::string& why) {
    return status::error(code::storage_error, "corrupt position hint " + path + ": " + why);
  };
  if (in.size() > defaults::log_position_hint_max_bytes)
    return bad("over log_position_hint_max_bytes "
               + std::to_string(defaults::log_position_hint_max_bytes));
  if (in.size() < 28)
    return bad("shorter than its header");
  if (crc32c(0, in.data(), in.size() - 4) != get_u32_le(in.data() + in.size() - 4))
    return bad("checksum mismatch");
  if (get_u32_le(in.data()) != magic || get_u32_le(in.data() + 4) != version
      || get_u32_le(in.data() + 8) != kind_position_hint)
    return bad("not a version 1 position hint");
  auto count = get_u32_le(in.data() + 12);
  position_hint hint;
  hint.log_offset = get_u64_le(in.data() + 16);
  size_t at = 24;
  auto end = in.size() - 4;
  for (uint64_t i = 0; i < count; ++i) {
    if (end - at < 2)
      return bad("its entries end early");
    auto len = static_cast<size_t>(get_u16_le(in.data() + at));
    at += 2;
    if (end - at < len + file_position_bytes)
      return bad("its entries end early");
    auto name = in.substr(at, len);
    at += len;
    file_position pos;
    if (!decode_file_position(std::string_view{in}.substr(at, file_position_bytes), pos))
      return bad("the position of '" + name + "' does not decode");
    at += file_position_bytes;
    hint.positions[name] = pos;
  }
  if (at != end)
    return bad("its size does not match its entry count");
  return hint;
}

} // namespace levee::persistence
