#pragma once
// The tokens of the query language (QUERY.md "Tokens"). Internal to query/: the parser
// pulls one token at a time, so an error is reported at the first bad spot of the text,
// whichever of the lexer or the parser finds it.

#include <cstdint>
#include <string>
#include <string_view>

#include "query/query.hpp"

namespace levee::query {

enum class token_kind : uint8_t {
  end,
  name,         // a bare identifier that is not a keyword
  quoted_name,  // `any text`
  keyword,
  op,           // == != < <= > >= contains
  string,       // "text", decoded into `text`
  integer,
  decimal,
  duration,     // 15m, in `integer` as ms
  lparen,
  rparen,
  comma,
  bad,          // a lexical error; `text` holds the message
};

enum class keyword : uint8_t {
  none, where, and_, or_, not_, since, until, limit, fields, count, by, true_, false_, null, ts,
};

struct token {
  token_kind kind = token_kind::end;
  size_t pos = 0;            // byte offset of the token (of the error, for `bad`)
  std::string_view source;   // the token as written
  keyword word = keyword::none;
  compare_op op = compare_op::eq;
  int64_t integer = 0;
  double decimal = 0;
  std::string text;          // decoded string, quoted name, or the error of a `bad` token
};

/// The keyword a word spells (any case), or keyword::none. `contains` is an operator.
keyword keyword_of(std::string_view word) noexcept;

/// Whether the name can be written bare: an identifier that is no keyword and not `contains`.
bool is_bare_name(std::string_view name) noexcept;

class lexer {
public:
  /// `text` must outlive the lexer and its tokens.
  explicit lexer(std::string_view text) : text_(text) {}

  /// The next token; `end` forever once the text is used up.
  token next();

private:
  token lex_word(size_t start);
  token lex_number(size_t start);
  token lex_string(size_t start);
  token lex_quoted_name(size_t start);
  token bad(size_t pos, size_t end, std::string message);

  std::string_view text_;
  size_t pos_ = 0;
};

} // namespace levee::query
