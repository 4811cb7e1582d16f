#include "events/codec.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "base/codec.hpp"

namespace levee::events {

namespace {

using base::put_varint;
using base::varint_size;

// Protobuf wire types (https://protobuf.dev/programming-guides/encoding/).
constexpr uint32_t wire_varint = 0;
constexpr uint32_t wire_fixed64 = 1;
constexpr uint32_t wire_length = 2;
constexpr uint32_t wire_fixed32 = 5;

constexpr uint32_t tag(uint32_t number, uint32_t wire) { return number << 3 | wire; }

// Event
constexpr uint32_t tag_timestamp = tag(1, wire_varint);
constexpr uint32_t tag_field = tag(2, wire_length);
// Field
constexpr uint32_t tag_name = tag(1, wire_length);
constexpr uint32_t tag_bool = tag(2, wire_varint);
constexpr uint32_t tag_int = tag(3, wire_varint);
constexpr uint32_t tag_double = tag(4, wire_fixed64);
constexpr uint32_t tag_string = tag(5, wire_length);

uint64_t zigzag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}

int64_t unzigzag(uint64_t v) {
  return static_cast<int64_t>((v >> 1) ^ (0 - (v & 1)));
}

uint64_t double_bits(double d) {
  uint64_t bits;
  std::memcpy(&bits, &d, sizeof bits);
  return bits;
}

double bits_double(uint64_t bits) {
  double d;
  std::memcpy(&d, &bits, sizeof d);
  return d;
}

/// The bytes of a Field message without its tag and length.
size_t field_body_size(const field& f) {
  size_t n = f.name.empty() ? 0 : 1 + varint_size(f.name.size()) + f.name.size();
  switch (f.val.index()) {
    case 1: return n + 2;                                                  // bool
    case 2: return n + 1 + varint_size(zigzag(std::get<int64_t>(f.val)));  // int
    case 3: return n + 9;                                                  // double
    case 4: {
      auto& s = std::get<std::string>(f.val);
      return n + 1 + varint_size(s.size()) + s.size();
    }
    default: return n;  // null: no member of the oneof
  }
}

/// A bounds-checked cursor over the input; every read says whether it fit.
class reader {
public:
  reader(const uint8_t* begin, const uint8_t* p, const uint8_t* end)
      : begin_(begin), p_(p), end_(end) {}

  bool done() const { return p_ >= end_; }
  const uint8_t* position() const { return p_; }
  size_t offset() const { return static_cast<size_t>(p_ - begin_); }

  /// Up to 10 bytes; bits above 64 are dropped, as protobuf's parser does.
  bool varint(uint64_t& v) { return base::get_varint(p_, end_, v); }

  bool fixed64(uint64_t& v) {
    if (end_ - p_ < 8)
      return false;
    v = base::get_u64_le(p_);
    p_ += 8;
    return true;
  }

  bool bytes(const char*& data, size_t& size) {
    uint64_t n;
    if (!varint(n) || n > static_cast<uint64_t>(end_ - p_))
      return false;
    data = reinterpret_cast<const char*>(p_);
    size = static_cast<size_t>(n);
    p_ += n;
    return true;
  }

  /// Skips one value of an unknown field.
  bool skip(uint32_t wire) {
    uint64_t v;
    const char* data;
    size_t size;
    switch (wire) {
      case wire_varint: return varint(v);
      case wire_fixed64: return fixed64(v);
      case wire_length: return bytes(data, size);
      case wire_fixed32:
        if (end_ - p_ < 4)
          return false;
        p_ += 4;
        return true;
      default: return false;  // groups (3, 4) are not used by proto3; 6 and 7 do not exist
    }
  }

private:
  const uint8_t* begin_;
  const uint8_t* p_;
  const uint8_t* end_;
};

status corrupt(size_t at, const char* what) {
  return status::error(code::storage_error,
                       "corrupt event encoding at byte " + std::to_string(at) + ": " + what);
}

/// Reads one tag; false with `why` set when it is not one.
bool read_tag(reader& in, uint32_t& t, const char*& why) {
  uint64_t v;
  if (!in.varint(v)) {
    why = "truncated tag";
    return false;
  }
  if (v > UINT32_MAX || (v >> 3) == 0) {
    why = "invalid field number";
    return false;
  }
  t = static_cast<uint32_t>(v);
  return true;
}

status decode_field(reader in, field& f) {
  f.name.clear();
  bool has_value = false;
  const char* why = nullptr;
  while (!in.done()) {
    size_t at = in.offset();
    uint32_t t;
    if (!read_tag(in, t, why))
      return corrupt(at, why);
    uint64_t v;
    const char* data;
    size_t size;
    switch (t) {
      case tag_name:
        if (!in.bytes(data, size))
          return corrupt(at, "field name runs past the end");
        f.name.assign(data, size);
        break;
      case tag_bool:
        if (!in.varint(v))
          return corrupt(at, "truncated bool");
        f.val = v != 0;
        has_value = true;
        break;
      case tag_int:
        if (!in.varint(v))
          return corrupt(at, "truncated integer");
        f.val = unzigzag(v);
        has_value = true;
        break;
      case tag_double:
        if (!in.fixed64(v))
          return corrupt(at, "truncated double");
        f.val = bits_double(v);
        has_value = true;
        break;
      case tag_string:
        if (!in.bytes(data, size))
          return corrupt(at, "string value runs past the end");
        // Assigning into the string already there keeps its capacity for the next event.
        if (auto* s = std::get_if<std::string>(&f.val))
          s->assign(data, size);
        else
          f.val.emplace<std::string>(data, size);
        has_value = true;
        break;
      default:
        if (!in.skip(t & 7))
          return corrupt(at, "unknown field with a truncated or invalid value");
    }
  }
  if (!has_value)
    f.val = std::monostate{};
  return {};
}

} // namespace

void encode(const event& e, std::string& out) {
  size_t total = 1 + varint_size(static_cast<uint64_t>(e.timestamp_ms));
  for (auto& f : e.fields) {
    size_t body = field_body_size(f);
    total += 1 + varint_size(body) + body;
  }
  out.reserve(out.size() + total);

  // proto3 leaves out a scalar that equals its default; doing the same keeps the bytes
  // identical to protobuf's.
  if (e.timestamp_ms != 0) {
    out += static_cast<char>(tag_timestamp);
    put_varint(out, static_cast<uint64_t>(e.timestamp_ms));
  }
  for (auto& f : e.fields) {
    out += static_cast<char>(tag_field);
    put_varint(out, field_body_size(f));
    if (!f.name.empty()) {
      out += static_cast<char>(tag_name);
      put_varint(out, f.name.size());
      out += f.name;
    }
    // Members of a oneof are written even when they hold their default (false, 0, "").
    switch (f.val.index()) {
      case 1:
        out += static_cast<char>(tag_bool);
        out += static_cast<char>(std::get<bool>(f.val) ? 1 : 0);
        break;
      case 2:
        out += static_cast<char>(tag_int);
        put_varint(out, zigzag(std::get<int64_t>(f.val)));
        break;
      case 3:
        out += static_cast<char>(tag_double);
        base::put_u64_le(out, double_bits(std::get<double>(f.val)));
        break;
      case 4: {
        auto& s = std::get<std::string>(f.val);
        out += static_cast<char>(tag_string);
        put_varint(out, s.size());
        out += s;
        break;
      }
      default: break;
    }
  }
}

namespace {

/// The name of an encoded field as decode_field() reads it (the last name entry; empty
/// when there is none), without its value; false when the field's encoding is broken.
bool field_name_of(reader in, std::string_view& name) {
  name = {};
  const char* why = nullptr;
  while (!in.done()) {
    uint32_t t;
    if (!read_tag(in, t, why))
      return false;
    if (t == tag_name) {
      const char* data;
      size_t size;
      if (!in.bytes(data, size))
        return false;
      name = std::string_view(data, size);
    } else if (!in.skip(t & 7)) {
      return false;
    }
  }
  return true;
}

status decode_impl(std::string_view bytes, event& out, const std::vector<std::string>* names) {
  auto* begin = reinterpret_cast<const uint8_t*>(bytes.data());
  auto* end = begin + bytes.size();
  reader in{begin, begin, end};
  out.timestamp_ms = 0;
  size_t used = 0;
  const char* why = nullptr;
  // The wanted names not read yet, one bit each (up to 64 names; more read to the end).
  bool early_stop = names != nullptr && !names->empty() && names->size() <= 64;
  uint64_t missing = early_stop ? (names->size() == 64 ? ~uint64_t{0}
                                                       : (uint64_t{1} << names->size()) - 1)
                                : 0;
  while (!in.done()) {
    size_t at = in.offset();
    uint32_t t;
    if (!read_tag(in, t, why)) {
      out.fields.resize(used);
      return corrupt(at, why);
    }
    uint64_t v;
    const char* data;
    size_t size;
    if (t == tag_timestamp) {
      if (!in.varint(v)) {
        out.fields.resize(used);
        return corrupt(at, "truncated timestamp");
      }
      out.timestamp_ms = static_cast<int64_t>(v);
    } else if (t == tag_field) {
      if (!in.bytes(data, size)) {
        out.fields.resize(used);
        return corrupt(at, "field runs past the end");
      }
      auto* sub = reinterpret_cast<const uint8_t*>(data);
      if (names != nullptr) {
        std::string_view name;
        if (!field_name_of(reader{begin, sub, sub + size}, name)) {
          out.fields.resize(used);
          return corrupt(at, "field with a truncated or invalid entry");
        }
        auto wanted = std::find(names->begin(), names->end(), name);
        if (wanted == names->end())
          continue;
        if (early_stop)
          missing &= ~(uint64_t{1} << (wanted - names->begin()));
      }
      if (used == out.fields.size())
        out.fields.emplace_back();
      if (auto st = decode_field(reader{begin, sub, sub + size}, out.fields[used]); !st) {
        out.fields.resize(used);
        return st;
      }
      ++used;
      // Names are unique in an event and the timestamp comes before the fields (EVENTS.md):
      // with every wanted field read, the rest of the event has nothing for this read.
      if (early_stop && missing == 0)
        break;
    } else if (!in.skip(t & 7)) {
      out.fields.resize(used);
      return corrupt(at, "unknown field with a truncated or invalid value");
    }
  }
  out.fields.resize(used);
  return {};
}

} // namespace

status decode(std::string_view bytes, event& out) {
  return decode_impl(bytes, out, nullptr);
}

status decode_only(std::string_view bytes, event& out, const std::vector<std::string>& names) {
  return decode_impl(bytes, out, &names);
}

persistence::record to_record(const event& e) {
  persistence::record r;
  r.timestamp_ms = e.timestamp_ms;
  encode(e, r.value);
  return r;
}

status from_record(const persistence::record& r, event& out) {
  if (auto st = decode(r.value, out); !st)
    return st;
  if (out.timestamp_ms != r.timestamp_ms)
    return status::error(code::storage_error,
                         "corrupt event record: value's timestamp " + std::to_string(out.timestamp_ms)
                           + " differs from the record's " + std::to_string(r.timestamp_ms));
  return {};
}

} // namespace levee::events
