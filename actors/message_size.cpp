#include "actors/message_size.hpp"

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include <caf/type_nr.hpp>

#include "limits/log.hpp"

namespace levee {

namespace {

struct registered_type {
  const std::type_info* type;
  payload_size_fn fn;
};

constexpr size_t max_registered = 64;
std::array<registered_type, max_registered> registered{};
std::atomic<size_t> registered_count{0};
std::mutex registration_mtx;

uint64_t registered_size(const std::type_info* type, const void* element) noexcept {
  auto n = registered_count.load(std::memory_order_acquire);
  for (size_t i = 0; i < n; ++i)
    if (registered[i].type == type || *registered[i].type == *type)
      return registered[i].fn(element);
  return unregistered_element_bytes;
}

} // namespace

namespace detail {

void register_payload_size(const std::type_info& type, payload_size_fn fn) {
  std::lock_guard<std::mutex> guard{registration_mtx};
  auto n = registered_count.load(std::memory_order_relaxed);
  for (size_t i = 0; i < n; ++i)
    if (*registered[i].type == type) {
      registered[i].fn = fn;
      return;
    }
  if (n == max_registered) {
    LEVEE_ERROR("actors", "more than %zu payload types registered", max_registered);
    std::abort();
  }
  registered[n] = registered_type{&type, fn};
  registered_count.store(n + 1, std::memory_order_release);
}

} // namespace detail

uint64_t message_bytes(const caf::type_erased_tuple& content) noexcept {
  uint64_t total = 0;
  auto n = content.size();
  for (size_t i = 0; i < n; ++i) {
    auto rtti = content.type(i);
    auto element = content.get(i);
    switch (rtti.first) {
      case caf::type_nr<std::string>::value:
        total += static_cast<const std::string*>(element)->size();
        break;
      case caf::type_nr<std::vector<char>>::value:
        total += static_cast<const std::vector<char>*>(element)->size();
        break;
      case caf::type_nr<std::u16string>::value:
        total += static_cast<const std::u16string*>(element)->size() * 2;
        break;
      case caf::type_nr<std::u32string>::value:
        total += static_cast<const std::u32string*>(element)->size() * 4;
        break;
      case caf::type_nr<std::vector<std::string>>::value:
        for (auto& s : *static_cast<const std::vector<std::string>*>(element))
          total += s.size() + sizeof(std::string);
        break;
      case caf::type_nr<int8_t>::value:
      case caf::type_nr<uint8_t>::value:
      case caf::type_nr<bool>::value:
        total += 1;
        break;
      case caf::type_nr<int16_t>::value:
      case caf::type_nr<uint16_t>::value:
        total += 2;
        break;
      case caf::type_nr<int32_t>::value:
      case caf::type_nr<uint32_t>::value:
      case caf::type_nr<float>::value:
        total += 4;
        break;
      case caf::type_nr<caf::atom_value>::value:
      case caf::type_nr<int64_t>::value:
      case caf::type_nr<uint64_t>::value:
      case caf::type_nr<double>::value:
        total += 8;
        break;
      case 0:
        total += registered_size(rtti.second, element);
        break;
      default:
        total += unregistered_element_bytes;
    }
  }
  return total;
}

} // namespace levee
