#pragma once
// Subjects and subject patterns (README.md "Subjects"): dot-separated tokens. A publish
// names a subject (`orders.eu.created`); a stream binds a pattern, where a token `*`
// matches any one token and a last token `>` matches one or more tokens
// (`orders.*.created`, `orders.>`).
//
// Text rules, the same for both: 1 to max_bytes bytes, 1 to max_tokens tokens, no empty
// token (no leading, trailing or doubled dot), each byte printable ASCII other than the
// space (0x21-0x7E). In a subject `*` and `>` are refused anywhere; in a pattern they must
// be whole tokens, and `>` only the last one. Bad text is a `bad_request` whose message
// starts with the 0-based byte position, as the query language's errors do:
// `at position 7: empty token (two dots in a row); ...`.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "limits/defaults.hpp"
#include "limits/status.hpp"

namespace levee::streams {

/// The bounds on a subject's text; config keys stream.max_subject_bytes and
/// stream.max_subject_tokens.
struct subject_limits {
  uint64_t max_bytes = defaults::stream_max_subject_bytes;
  uint64_t max_tokens = defaults::stream_max_subject_tokens;
};

/// Text split into tokens. The tokens are views into the object's own text, kept as
/// (position, length) so that copies and moves stay valid.
class token_list {
public:
  const std::string& text() const noexcept { return text_; }
  size_t size() const noexcept { return spans_.size(); }
  std::string_view token(size_t i) const noexcept {
    return std::string_view{text_}.substr(spans_[i].first, spans_[i].second);
  }

protected:
  std::string text_;
  std::vector<std::pair<uint32_t, uint32_t>> spans_;  // (position, length) of each token
  friend status split_tokens(std::string_view, bool, const subject_limits&, token_list&);
};

/// A subject a message is published to: no wildcards.
class subject : public token_list {
public:
  static result<subject> parse(std::string_view text, const subject_limits& limits = {});
};

/// A stream's subject pattern: literal tokens, `*` tokens, and at most a last `>`.
class subject_pattern : public token_list {
public:
  static result<subject_pattern> parse(std::string_view text,
                                       const subject_limits& limits = {});
  /// Whether the pattern's last token is `>`.
  bool has_tail() const noexcept { return size() > 0 && token(size() - 1) == ">"; }
  /// Whether `s` is one of the subjects the pattern stands for.
  bool matches(const subject& s) const noexcept;
};

/// Splits and checks `text` (a pattern when `pattern`): the rules at the top of this file.
status split_tokens(std::string_view text, bool pattern, const subject_limits& limits,
                    token_list& out);

} // namespace levee::streams
