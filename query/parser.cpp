// The recursive-descent parser of QUERY.md's grammar. Each level of '(' or 'not' costs a
// few stack frames and is counted against max_depth before recursing; and/or chains are
// loops, so no other input deepens the recursion.

#include <algorithm>
#include <cstdio>

#include "base/time_text.hpp"
#include "query/lexer.hpp"
#include "query/query.hpp"
#include "query/time_text.hpp"

namespace levee::query {
namespace {

constexpr size_t max_quoted_bytes = 40;  // of a token echoed in an error message

// The token as an error message shows it: in quotes, cut short, control bytes escaped.
std::string quote(std::string_view source) {
  std::string out = "'";
  size_t n = std::min(source.size(), max_quoted_bytes);
  for (size_t i = 0; i < n; ++i) {
    auto u = static_cast<unsigned char>(source[i]);
    if (u < 0x20 || u >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    } else {
      out += source[i];
    }
  }
  if (source.size() > n)
    out += "...";
  out += "'";
  return out;
}

bool is_ordering(compare_op op) noexcept {
  return op == compare_op::lt || op == compare_op::le || op == compare_op::gt
         || op == compare_op::ge;
}

} // namespace

class parser {
public:
  parser(std::string_view text, const query_limits& limits)
      : text_(text), lexer_(text), limits_(limits),
        max_depth_(std::min(limits.max_depth, defaults::max_depth_ceiling)) {}

  result<query> run();

private:
  void advance() {
    previous_ = token_.source;
    token_ = lexer_.next();
  }
  bool at_keyword(keyword k) const noexcept {
    return token_.kind == token_kind::keyword && token_.word == k;
  }

  bool fail(size_t pos, std::string message) {
    error_ = status::error(code::bad_request,
                           "at position " + std::to_string(pos) + ": " + std::move(message));
    return false;
  }
  /// At the current token: its own message if the lexer refused it, else "expected ...".
  bool fail_expected(const std::string& what, bool say_after = true) {
    if (token_.kind == token_kind::bad)
      return fail(token_.pos, token_.text);
    std::string message = "expected " + what;
    if (say_after && !previous_.empty())
      message += " after " + quote(previous_);
    message += ", found ";
    message += token_.kind == token_kind::end ? std::string{"the end of the query"}
                                              : quote(token_.source);
    return fail(token_.pos, std::move(message));
  }
  bool fail_limit(size_t pos, const char* name, uint64_t observed, uint64_t max,
                  const char* why) {
    return fail(pos, std::string{"query."} + name + " observed " + std::to_string(observed)
                         + " > max " + std::to_string(max) + ": " + why);
  }

  bool parse_clause();
  bool parse_or(uint32_t& out);
  bool parse_and(uint32_t& out);
  bool parse_unary(uint32_t& out);
  bool parse_primary(uint32_t& out);
  bool parse_comparison(uint32_t& out);
  bool parse_field(field_name& out, const std::string& what);
  bool parse_field_list(std::vector<field_name>& out, const char* clause);
  bool parse_time(time_bound& out);
  bool check_time_range();

  // Appends `node` to a node list of kind `k`; a node of the same kind that a pair of
  // parentheses produced is merged in, so `a and (b and c)` is stored as `a and b and c`
  // and printing it back gives the same structure.
  void add_flat(std::vector<uint32_t>& list, uint32_t node, filter_node::kind k);
  uint32_t add_node(filter_node node) {
    q_.nodes_.push_back(node);
    return static_cast<uint32_t>(q_.nodes_.size() - 1);
  }

  std::string_view text_;
  lexer lexer_;
  query_limits limits_;
  uint64_t max_depth_;
  token token_;
  std::string_view previous_;
  status error_;
  query q_;
  uint64_t depth_ = 0;
  uint64_t terms_ = 0;
  bool clause_seen_ = false;
  std::optional<size_t> where_pos_, since_pos_, until_pos_, limit_pos_, fields_pos_, count_pos_;
};

result<query> parser::run() {
  if (auto refused = check_text_bytes(text_.size(), limits_)) {
    // Where the text stops being allowed; the code and words of every other place that
    // checks the size.
    // Named like the language's other bounds (query.max_depth, ...); the rejection
    // itself names no config key, as no config sets it.
    return status::error(refused->code, "at position " + std::to_string(refused->max)
                                          + ": query.max_text_bytes observed "
                                          + std::to_string(refused->observed) + " > max "
                                          + std::to_string(refused->max) + ": "
                                          + refused->detail);
  }
  advance();
  previous_ = {};
  if (at_keyword(keyword::where)) {
    where_pos_ = token_.pos;
    advance();
    uint32_t root = 0;
    if (!parse_or(root))
      return error_;
    q_.root_ = root;
  }
  while (token_.kind != token_kind::end)
    if (!parse_clause())
      return error_;
  if (!check_time_range())
    return error_;
  return std::move(q_);
}

bool parser::parse_clause() {
  const char* clauses = "(since, until, limit, fields, count)";
  size_t pos = token_.pos;
  auto duplicate = [&](std::optional<size_t>& first, const char* name) {
    if (first)
      return fail(pos, std::string{"duplicate '"} + name + "' clause (the first is at position "
                           + std::to_string(*first) + ")");
    first = pos;
    clause_seen_ = true;
    return true;
  };
  auto not_a_clause = [&] {
    if (token_.kind == token_kind::rparen)
      return fail(pos, "')' without a matching '('");
    if (where_pos_ && !clause_seen_)
      return fail_expected(std::string{"'and', 'or', a clause "} + clauses + " or the end");
    if (!where_pos_ && !clause_seen_)
      return fail_expected(std::string{"'where' or a clause "} + clauses, false);
    return fail_expected(std::string{"a clause "} + clauses + " or the end");
  };
  if (token_.kind != token_kind::keyword)
    return not_a_clause();
  switch (token_.word) {
    case keyword::where:
      if (where_pos_)
        return fail(pos, "duplicate 'where' clause (the first is at position "
                             + std::to_string(*where_pos_) + ")");
      return fail(pos, "'where' must come before the other clauses");
    case keyword::since:
      if (!duplicate(since_pos_, "since"))
        return false;
      advance();
      return parse_time(q_.since_);
    case keyword::until:
      if (!duplicate(until_pos_, "until"))
        return false;
      advance();
      return parse_time(q_.until_);
    case keyword::limit: {
      if (!duplicate(limit_pos_, "limit"))
        return false;
      advance();
      if (token_.kind != token_kind::integer)
        return fail_expected("a whole number");
      if (token_.integer < 1)
        return fail(token_.pos, "limit must be at least 1, found " + quote(token_.source));
      auto n = static_cast<uint64_t>(token_.integer);
      if (n > limits_.max_limit)
        return fail_limit(token_.pos, "max_limit", n, limits_.max_limit, "limit is too large");
      q_.limit_ = n;
      advance();
      return true;
    }
    case keyword::fields:
      if (!duplicate(fields_pos_, "fields"))
        return false;
      if (count_pos_)
        return fail(pos, "'fields' and 'count' cannot be used together: a count returns "
                         "groups, not events");
      advance();
      return parse_field_list(q_.fields_, "fields");
    case keyword::count:
      if (!duplicate(count_pos_, "count"))
        return false;
      if (fields_pos_)
        return fail(pos, "'fields' and 'count' cannot be used together: a count returns "
                         "groups, not events");
      q_.is_count_ = true;
      advance();
      if (at_keyword(keyword::by)) {
        advance();
        return parse_field_list(q_.count_by_, "count by");
      }
      return true;
    default:
      return not_a_clause();
  }
}

bool parser::parse_or(uint32_t& out) {
  uint32_t first = 0;
  if (!parse_and(first))
    return false;
  if (!at_keyword(keyword::or_)) {
    out = first;
    return true;
  }
  std::vector<uint32_t> list;
  add_flat(list, first, filter_node::kind::any_of);
  while (at_keyword(keyword::or_)) {
    advance();
    uint32_t next = 0;
    if (!parse_and(next))
      return false;
    add_flat(list, next, filter_node::kind::any_of);
  }
  filter_node node{filter_node::kind::any_of, static_cast<uint32_t>(q_.children_.size()),
                   static_cast<uint32_t>(list.size())};
  q_.children_.insert(q_.children_.end(), list.begin(), list.end());
  out = add_node(node);
  return true;
}

bool parser::parse_and(uint32_t& out) {
  uint32_t first = 0;
  if (!parse_unary(first))
    return false;
  if (!at_keyword(keyword::and_)) {
    out = first;
    return true;
  }
  std::vector<uint32_t> list;
  add_flat(list, first, filter_node::kind::all_of);
  while (at_keyword(keyword::and_)) {
    advance();
    uint32_t next = 0;
    if (!parse_unary(next))
      return false;
    add_flat(list, next, filter_node::kind::all_of);
  }
  filter_node node{filter_node::kind::all_of, static_cast<uint32_t>(q_.children_.size()),
                   static_cast<uint32_t>(list.size())};
  q_.children_.insert(q_.children_.end(), list.begin(), list.end());
  out = add_node(node);
  return true;
}

void parser::add_flat(std::vector<uint32_t>& list, uint32_t node, filter_node::kind k) {
  const filter_node n = q_.nodes_[node];
  // Only the node just built can be merged: it is the last node and owns the last
  // children, so dropping it leaves no orphan behind.
  bool last = node + 1 == q_.nodes_.size() && n.index + n.count == q_.children_.size();
  if (n.k != k || !last) {
    list.push_back(node);
    return;
  }
  list.insert(list.end(), q_.children_.begin() + n.index, q_.children_.end());
  q_.children_.resize(n.index);
  q_.nodes_.pop_back();
}

bool parser::parse_unary(uint32_t& out) {
  if (!at_keyword(keyword::not_))
    return parse_primary(out);
  if (depth_ >= max_depth_)
    return fail_limit(token_.pos, "max_depth", depth_ + 1, max_depth_,
                      "parentheses and 'not' nest too deeply");
  ++depth_;
  advance();
  uint32_t child = 0;
  if (!parse_unary(child))
    return false;
  --depth_;
  out = add_node(filter_node{filter_node::kind::negate, child, 1});
  return true;
}

bool parser::parse_primary(uint32_t& out) {
  if (token_.kind != token_kind::lparen)
    return parse_comparison(out);
  size_t open = token_.pos;
  if (depth_ >= max_depth_)
    return fail_limit(open, "max_depth", depth_ + 1, max_depth_,
                      "parentheses and 'not' nest too deeply");
  ++depth_;
  advance();
  if (!parse_or(out))
    return false;
  if (token_.kind != token_kind::rparen)
    return fail_expected("'and', 'or' or ')' to close the '(' at position " + std::to_string(open),
                         false);
  advance();
  --depth_;
  return true;
}

bool parser::parse_field(field_name& out, const std::string& what) {
  switch (token_.kind) {
    case token_kind::name:
      out = field_name{std::string{token_.source}, false};
      break;
    case token_kind::quoted_name:
      out = field_name{token_.text, false};
      break;
    case token_kind::keyword:
      if (token_.word == keyword::ts) {
        out = field_name{"ts", true};
        break;
      }
      {
        std::string message = "expected " + what;
        if (!previous_.empty())
          message += " after " + quote(previous_);
        return fail(token_.pos, message + ", found the keyword " + quote(token_.source)
                                    + " (a field with that name is written in backquotes: `"
                                    + std::string{token_.source} + "`)");
      }
    default:
      return fail_expected(what);
  }
  advance();
  return true;
}

bool parser::parse_comparison(uint32_t& out) {
  size_t field_pos = token_.pos;
  comparison c;
  if (!parse_field(c.field, "a field name, '(' or 'not'"))
    return false;
  if (terms_ >= limits_.max_terms)
    return fail_limit(field_pos, "max_terms", terms_ + 1, limits_.max_terms,
                      "too many comparisons");
  if (token_.kind != token_kind::op)
    return fail_expected("an operator (==, !=, <, <=, >, >=, contains)");
  c.op = token_.op;
  size_t op_pos = token_.pos;
  advance();
  size_t value_pos = token_.pos;
  std::string_view value_source = token_.source;
  switch (token_.kind) {
    case token_kind::string: c.literal = token_.text; break;
    case token_kind::integer: c.literal = token_.integer; break;
    case token_kind::decimal: c.literal = token_.decimal; break;
    case token_kind::keyword:
      if (token_.word == keyword::true_)
        c.literal = true;
      else if (token_.word == keyword::false_)
        c.literal = false;
      else if (token_.word == keyword::null)
        c.literal = std::monostate{};
      else
        return fail_expected("a value");
      break;
    case token_kind::duration:
      return fail(value_pos, "a duration is only allowed after 'since' or 'until'; compare ts "
                             "with epoch ms or an RFC 3339 time");
    default:
      return fail_expected("a value");
  }
  if (c.field.is_timestamp) {
    if (c.op == compare_op::contains)
      return fail(op_pos, "'contains' does not apply to ts");
    if (auto text = std::get_if<std::string>(&c.literal)) {
      int64_t ms = 0;
      std::string why;
      if (!base::parse_rfc3339_ms(*text, ms, why))
        return fail(value_pos, quote(value_source) + " is not an RFC 3339 time: " + why);
      c.literal = ms;
    } else if (!std::holds_alternative<int64_t>(c.literal)
               && !std::holds_alternative<double>(c.literal)) {
      return fail(value_pos, "ts compares with epoch ms or an RFC 3339 time, found "
                                 + quote(value_source));
    }
  } else if (c.op == compare_op::contains && !std::holds_alternative<std::string>(c.literal)) {
    return fail(value_pos, "'contains' needs a string, found " + quote(value_source));
  } else if (is_ordering(c.op)
             && (std::holds_alternative<bool>(c.literal)
                 || std::holds_alternative<std::monostate>(c.literal))) {
    return fail(value_pos, "'" + std::string{to_string(c.op)}
                               + "' needs a number or a string, found " + quote(value_source));
  }
  advance();
  ++terms_;
  q_.comparisons_.push_back(std::move(c));
  out = add_node(filter_node{filter_node::kind::compare,
                             static_cast<uint32_t>(q_.comparisons_.size() - 1), 0});
  return true;
}

bool parser::parse_field_list(std::vector<field_name>& out, const char* clause) {
  for (;;) {
    size_t pos = token_.pos;
    field_name f;
    if (!parse_field(f, "a field name"))
      return false;
    if (std::find(out.begin(), out.end(), f) != out.end())
      return fail(pos, "field " + quote(to_string(f)) + " is listed twice in '" + clause + "'");
    if (out.size() >= limits_.max_fields)
      return fail_limit(pos, "max_fields", out.size() + 1, limits_.max_fields,
                        "too many field names in one list");
    out.push_back(std::move(f));
    if (token_.kind != token_kind::comma)
      return true;
    advance();
  }
}

bool parser::parse_time(time_bound& out) {
  switch (token_.kind) {
    case token_kind::duration:
      out = time_bound{time_bound::kind::ago, token_.integer};
      break;
    case token_kind::integer:
      // Negative is before 1970: an RFC 3339 time can be too, and prints back as epoch ms.
      out = time_bound{time_bound::kind::at, token_.integer};
      break;
    case token_kind::string: {
      int64_t ms = 0;
      std::string why;
      if (!base::parse_rfc3339_ms(token_.text, ms, why))
        return fail(token_.pos, quote(token_.source) + " is not an RFC 3339 time: " + why);
      out = time_bound{time_bound::kind::at, ms};
      break;
    }
    default:
      return fail_expected("a time (a duration like 15m, epoch ms, or an RFC 3339 time in quotes)");
  }
  advance();
  return true;
}

bool parser::check_time_range() {
  const time_bound& since = q_.since_;
  const time_bound& until = q_.until_;
  if (since.k == time_bound::kind::open || since.k != until.k)
    return true;  // a mix of relative and absolute ends is only known empty at run time
  bool empty = since.k == time_bound::kind::ago ? since.ms <= until.ms : since.ms >= until.ms;
  if (!empty)
    return true;
  return fail(std::max(*since_pos_, *until_pos_),
              "the time range is empty: 'since' must be before 'until'");
}

std::optional<rejection> check_text_bytes(uint64_t text_bytes, const query_limits& limits) {
  if (text_bytes <= limits.max_text_bytes)
    return std::nullopt;
  // No limit key: the cap is the query language's own (QUERY.md), not a config setting.
  return rejection::of(code::message_too_large)
           .observed(text_bytes)
           .max(limits.max_text_bytes)
           .detail("the query text is longer than a query may be; shorten the query (fewer or "
                   "shorter terms)");
}

result<query> parse(std::string_view text, const query_limits& limits) {
  return parser{text, limits}.run();
}

} // namespace levee::query
