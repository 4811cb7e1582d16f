#include "streams/subject.hpp"

#include <algorithm>
#include <cstdio>

namespace levee::streams {

namespace {

status fail(size_t pos, const std::string& message) {
  return status::error(code::bad_request, "at position " + std::to_string(pos) + ": " + message);
}

/// A limit of the text that was exceeded: bad_request that names the config key.
status over_limit(size_t pos, const char* key, uint64_t observed, uint64_t max,
                  const std::string& what_to_do) {
  auto r = rejection::of(code::bad_request).limit(key).observed(observed).max(max).detail(what_to_do);
  return status::refused(std::move(r), "at position " + std::to_string(pos) + ": " + key
                                         + " observed " + std::to_string(observed) + " > max "
                                         + std::to_string(max) + ": " + what_to_do);
}

std::string describe_byte(unsigned char c) {
  char hex[8];
  std::snprintf(hex, sizeof hex, "0x%02X", c);
  if (c == ' ')
    return std::string{"a space ("} + hex + ")";
  if (c == '\t' || c == '\n' || c == '\r')
    return std::string{"whitespace ("} + hex + ")";
  if (c < 0x20 || c == 0x7F)
    return std::string{"a control byte ("} + hex + ")";
  return std::string{"a byte outside ASCII ("} + hex + ")";
}

} // namespace

status split_tokens(std::string_view text, bool pattern, const subject_limits& limits,
                    token_list& out) {
  const char* what = pattern ? "a subject pattern" : "a subject";
  if (text.empty())
    return fail(0, std::string{what} + " is empty; write dot-separated tokens, e.g. "
                     + (pattern ? "orders.*.created or orders.>" : "orders.eu.created"));
  if (text.size() > limits.max_bytes)
    return over_limit(limits.max_bytes, "stream.max_subject_bytes", text.size(), limits.max_bytes,
                      std::string{"shorten "} + what);
  out.spans_.clear();
  size_t start = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i < text.size() && text[i] != '.') {
      auto c = static_cast<unsigned char>(text[i]);
      if (c <= 0x20 || c >= 0x7F)
        return fail(i, describe_byte(c) + " is not allowed; a token is printable ASCII other "
                                          "than the space and '.', e.g. orders.eu-west");
      continue;
    }
    // A token ends at i (a dot or the end).
    if (i == start) {
      if (i == 0)
        return fail(0, "empty token (the text starts with a dot); remove the leading dot");
      if (i == text.size())
        return fail(i - 1, "empty token (the text ends with a dot); remove the trailing dot");
      return fail(i, "empty token (two dots in a row); separate tokens by a single dot");
    }
    auto token = text.substr(start, i - start);
    for (size_t k = 0; k < token.size(); ++k) {
      char c = token[k];
      if (c != '*' && c != '>')
        continue;
      if (!pattern)
        return fail(start + k, std::string{"'"} + c + "' is a wildcard, which only a stream's "
                                 "subject pattern may use; publish to one subject, e.g. orders.eu");
      if (token.size() != 1)
        return fail(start + k, std::string{"'"} + c + "' must be a whole token (as in "
                                 + (c == '*' ? "orders.*.created" : "orders.>")
                                 + "), not part of one");
      if (c == '>' && i != text.size())
        return fail(start, "'>' matches the rest of the subject, so it must be the last token "
                           "(as in orders.>)");
    }
    if (out.spans_.size() == limits.max_tokens)
      return over_limit(start, "stream.max_subject_tokens",
                        1 + static_cast<uint64_t>(std::count(text.begin(), text.end(), '.')),
                        limits.max_tokens,
                        std::string{"use fewer tokens in "} + what);
    out.spans_.emplace_back(static_cast<uint32_t>(start), static_cast<uint32_t>(i - start));
    start = i + 1;
  }
  out.text_.assign(text);
  return {};
}

result<subject> subject::parse(std::string_view text, const subject_limits& limits) {
  subject s;
  if (auto st = split_tokens(text, false, limits, s); !st)
    return st;
  return s;
}

result<subject_pattern> subject_pattern::parse(std::string_view text,
                                               const subject_limits& limits) {
  subject_pattern p;
  if (auto st = split_tokens(text, true, limits, p); !st)
    return st;
  return p;
}

bool subject_pattern::matches(const subject& s) const noexcept {
  size_t n = size();
  for (size_t i = 0; i < n; ++i) {
    auto t = token(i);
    if (t == ">")
      return s.size() > i;  // one or more tokens left
    if (i >= s.size())
      return false;
    if (t != "*" && t != s.token(i))
      return false;
  }
  return s.size() == n;
}

} // namespace levee::streams
