#include "query/lexer.hpp"

#include <charconv>
#include <cstdio>

#include "query/time_text.hpp"

namespace levee::query {
namespace {

bool is_letter(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_digit(char c) noexcept {
  return c >= '0' && c <= '9';
}
bool is_name_start(char c) noexcept {
  return is_letter(c) || c == '_';
}
bool is_name_char(char c) noexcept {
  return is_letter(c) || is_digit(c) || c == '_' || c == '.' || c == '-';
}
bool is_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

char lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view word, std::string_view lower_keyword) noexcept {
  if (word.size() != lower_keyword.size())
    return false;
  for (size_t i = 0; i < word.size(); ++i)
    if (lower(word[i]) != lower_keyword[i])
      return false;
  return true;
}

std::string describe_byte(char c) {
  auto u = static_cast<unsigned char>(c);
  if (u >= 0x20 && u < 0x7f)
    return std::string{"character '"} + c + "'";
  char buf[16];
  std::snprintf(buf, sizeof buf, "byte 0x%02x", u);
  return buf;
}

} // namespace

keyword keyword_of(std::string_view w) noexcept {
  struct entry { std::string_view text; keyword word; };
  static constexpr entry table[] = {
      {"where", keyword::where}, {"and", keyword::and_},     {"or", keyword::or_},
      {"not", keyword::not_},    {"since", keyword::since},  {"until", keyword::until},
      {"limit", keyword::limit}, {"fields", keyword::fields}, {"count", keyword::count},
      {"by", keyword::by},       {"true", keyword::true_},   {"false", keyword::false_},
      {"null", keyword::null},   {"ts", keyword::ts},
  };
  if (w.size() < 2 || w.size() > 6)
    return keyword::none;
  for (auto& e : table)
    if (iequals(w, e.text))
      return e.word;
  return keyword::none;
}

bool is_bare_name(std::string_view name) noexcept {
  if (name.empty() || !is_name_start(name[0]))
    return false;
  for (char c : name)
    if (!is_name_char(c))
      return false;
  return keyword_of(name) == keyword::none && !iequals(name, "contains");
}

token lexer::bad(size_t pos, size_t end, std::string message) {
  token t;
  t.kind = token_kind::bad;
  t.pos = pos;
  t.source = text_.substr(pos, end > pos ? end - pos : 1);
  t.text = std::move(message);
  pos_ = end > pos_ ? end : pos_ + 1;
  return t;
}

token lexer::next() {
  while (pos_ < text_.size() && is_space(text_[pos_]))
    ++pos_;
  token t;
  t.pos = pos_;
  if (pos_ >= text_.size()) {
    t.kind = token_kind::end;
    return t;
  }
  size_t start = pos_;
  char c = text_[pos_];
  char following = pos_ + 1 < text_.size() ? text_[pos_ + 1] : '\0';
  auto single = [&](token_kind kind) {
    t.kind = kind;
    t.source = text_.substr(start, 1);
    ++pos_;
    return t;
  };
  auto oper = [&](compare_op op, size_t length) {
    t.kind = token_kind::op;
    t.op = op;
    t.source = text_.substr(start, length);
    pos_ += length;
    return t;
  };
  switch (c) {
    case '(': return single(token_kind::lparen);
    case ')': return single(token_kind::rparen);
    case ',': return single(token_kind::comma);
    case '=':
      if (following == '=')
        return oper(compare_op::eq, 2);
      return bad(start, start + 1, "unknown operator '=' (did you mean '=='?)");
    case '!':
      if (following == '=')
        return oper(compare_op::ne, 2);
      return bad(start, start + 1, "unknown operator '!' (use 'not' or '!=')");
    case '<':
      return following == '=' ? oper(compare_op::le, 2) : oper(compare_op::lt, 1);
    case '>':
      return following == '=' ? oper(compare_op::ge, 2) : oper(compare_op::gt, 1);
    case '"': return lex_string(start);
    case '`': return lex_quoted_name(start);
    default: break;
  }
  if (is_digit(c) || (c == '-' && is_digit(following)))
    return lex_number(start);
  if (is_name_start(c))
    return lex_word(start);
  return bad(start, start + 1, "unexpected " + describe_byte(c));
}

token lexer::lex_word(size_t start) {
  size_t end = start;
  while (end < text_.size() && is_name_char(text_[end]))
    ++end;
  pos_ = end;
  token t;
  t.pos = start;
  t.source = text_.substr(start, end - start);
  if (iequals(t.source, "contains")) {
    t.kind = token_kind::op;
    t.op = compare_op::contains;
    return t;
  }
  t.word = keyword_of(t.source);
  t.kind = t.word == keyword::none ? token_kind::name : token_kind::keyword;
  return t;
}

token lexer::lex_number(size_t start) {
  size_t end = start;
  bool negative = text_[end] == '-';
  if (negative)
    ++end;
  while (end < text_.size() && is_digit(text_[end]))
    ++end;
  bool whole = true;
  if (end < text_.size() && text_[end] == '.') {
    if (end + 1 >= text_.size() || !is_digit(text_[end + 1]))
      return bad(end, end + 1, "expected a digit after '.' in a number");
    whole = false;
    ++end;
    while (end < text_.size() && is_digit(text_[end]))
      ++end;
  }
  if (end < text_.size() && (text_[end] == 'e' || text_[end] == 'E')) {
    size_t exponent = end + 1;
    if (exponent < text_.size() && (text_[exponent] == '+' || text_[exponent] == '-'))
      ++exponent;
    if (exponent < text_.size() && is_digit(text_[exponent])) {
      whole = false;
      end = exponent;
      while (end < text_.size() && is_digit(text_[end]))
        ++end;
    }
  }
  std::string_view number = text_.substr(start, end - start);
  token t;
  t.pos = start;

  // A unit right after the digits makes a duration.
  size_t unit_end = end;
  while (unit_end < text_.size() && (is_name_start(text_[unit_end]) || is_digit(text_[unit_end])))
    ++unit_end;
  if (unit_end > end) {
    std::string_view unit = text_.substr(end, unit_end - end);
    int64_t unit_ms = duration_unit_ms(unit);
    if (unit_ms == 0)
      return bad(end, unit_end,
                 "unknown duration unit '" + std::string{unit} + "' (use ms, s, m, h or d)");
    if (negative)
      return bad(start, unit_end, "a duration cannot be negative");
    if (!whole)
      return bad(start, unit_end, "a duration needs a whole number of units");
    int64_t amount = 0;
    auto [p, ec] = std::from_chars(number.data(), number.data() + number.size(), amount);
    if (ec != std::errc{} || p != number.data() + number.size() || amount > INT64_MAX / unit_ms)
      return bad(start, unit_end, "duration out of range");
    pos_ = unit_end;
    t.kind = token_kind::duration;
    t.integer = amount * unit_ms;
    t.source = text_.substr(start, unit_end - start);
    return t;
  }

  pos_ = end;
  t.source = number;
  if (whole) {
    auto [p, ec] = std::from_chars(number.data(), number.data() + number.size(), t.integer);
    if (ec != std::errc{} || p != number.data() + number.size())
      return bad(start, end, "integer out of range (64 bits)");
    t.kind = token_kind::integer;
  } else {
    auto [p, ec] = std::from_chars(number.data(), number.data() + number.size(), t.decimal);
    if (ec != std::errc{} || p != number.data() + number.size())
      return bad(start, end, "number out of range");
    t.kind = token_kind::decimal;
  }
  return t;
}

token lexer::lex_string(size_t start) {
  std::string decoded;
  size_t i = start + 1;
  while (i < text_.size()) {
    char c = text_[i];
    if (c == '"') {
      pos_ = i + 1;
      token t;
      t.kind = token_kind::string;
      t.pos = start;
      t.source = text_.substr(start, pos_ - start);
      t.text = std::move(decoded);
      return t;
    }
    if (c == '\\') {
      if (i + 1 >= text_.size())
        break;
      switch (text_[i + 1]) {
        case '"': decoded += '"'; break;
        case '\\': decoded += '\\'; break;
        case 'n': decoded += '\n'; break;
        case 't': decoded += '\t'; break;
        case 'r': decoded += '\r'; break;
        default: {
          auto u = static_cast<unsigned char>(text_[i + 1]);
          std::string escape = u >= 0x20 && u < 0x7f ? std::string{"'\\"} + text_[i + 1] + "'"
                                                     : "'\\' before " + describe_byte(text_[i + 1]);
          return bad(i, i + 2, "unknown escape " + escape
                                   + " in a string (use \\\" \\\\ \\n \\t or \\r)");
        }
      }
      i += 2;
      continue;
    }
    decoded += c;
    ++i;
  }
  return bad(start, text_.size(), "unterminated string (no closing '\"')");
}

token lexer::lex_quoted_name(size_t start) {
  size_t close = text_.find('`', start + 1);
  if (close == std::string_view::npos)
    return bad(start, text_.size(), "unterminated field name (no closing '`')");
  if (close == start + 1)
    return bad(start, close + 1, "empty field name");
  pos_ = close + 1;
  token t;
  t.kind = token_kind::quoted_name;
  t.pos = start;
  t.source = text_.substr(start, pos_ - start);
  t.text = std::string{text_.substr(start + 1, close - start - 1)};
  return t;
}

} // namespace levee::query
