#pragma once
// Text from outside (a config line, a command-line value, a peer's field) as it may be shown
// on a terminal or in a log line, and the UTF-8 check that decides what is text. Plain C++.

#include <cstddef>
#include <string>
#include <string_view>

namespace levee {

/// Bytes of the longest prefix of `text` that is valid UTF-8 (RFC 3629: shortest forms
/// only, no surrogates, nothing above U+10FFFF); text.size() when all of it is. The same
/// rule protobuf applies to its `string` fields.
size_t valid_utf8_prefix(std::string_view text) noexcept;

inline bool is_valid_utf8(std::string_view text) noexcept {
  return valid_utf8_prefix(text) == text.size();
}

/// `text` with every byte a terminal could take for a command, or that is no text at all,
/// written as \xNN: control bytes (NUL, ESC, newlines, tabs...), DEL, C1 controls (U+0080 to
/// U+009F) and bytes that are not valid UTF-8. Printable ASCII and other valid UTF-8 stay
/// as they are, so a path or a value in any language reads as itself.
std::string printable(std::string_view text);

} // namespace levee
