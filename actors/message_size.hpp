#pragma once
// The size of a message in bytes, known without serializing it: payload types carry their
// size. Strings and byte vectors count their length, scalars their sizeof, and a type
// registered with `register_payload_type<T>()` its `size_bytes()` (or sizeof(T) when it has
// none). Unregistered types count `unregistered_element_bytes` each.
//
// What is counted is payload only: CAF's envelope (~100 bytes per message) is bounded by
// the mailbox's message count, not by its byte bound.

#include <cstdint>
#include <typeinfo>

#include <caf/type_erased_tuple.hpp>

namespace levee {

/// Bytes counted for an element of a type Levee knows nothing about.
constexpr uint64_t unregistered_element_bytes = 16;

using payload_size_fn = uint64_t (*)(const void* element);

namespace detail {
void register_payload_size(const std::type_info& type, payload_size_fn fn);

template <class T, class = void>
struct has_size_bytes : std::false_type {};
template <class T>
struct has_size_bytes<T, std::void_t<decltype(std::declval<const T&>().size_bytes())>>
  : std::true_type {};

template <class T, class = void>
struct has_byte_size_long : std::false_type {};
template <class T>
struct has_byte_size_long<T, std::void_t<decltype(std::declval<const T&>().ByteSizeLong())>>
  : std::true_type {};
} // namespace detail

/// Makes messages carrying a `T` count `x.size_bytes()`, or for a protobuf message
/// `x.ByteSizeLong()` (its encoded size), or else sizeof(T), for it. Call at start-up,
/// before actors exchange `T`; at most 64 types.
template <class T>
void register_payload_type() {
  detail::register_payload_size(typeid(T), [](const void* p) -> uint64_t {
    if constexpr (detail::has_size_bytes<T>::value)
      return static_cast<uint64_t>(static_cast<const T*>(p)->size_bytes());
    else if constexpr (detail::has_byte_size_long<T>::value)
      return static_cast<uint64_t>(static_cast<const T*>(p)->ByteSizeLong());
    else
      return sizeof(T);
  });
}

/// Payload bytes of a message. O(elements); no allocation, no serialization.
uint64_t message_bytes(const caf::type_erased_tuple& content) noexcept;

} // namespace levee
