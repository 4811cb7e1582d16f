#include "query/query.hpp"

#include <charconv>

#include "query/lexer.hpp"
#include "query/time_text.hpp"
#include "query/value_order.hpp"

namespace levee::query {
namespace {

// A missing field reads as null (QUERY.md "Semantics").
const events::value null_value{};

bool compare_matches(const comparison& c, const events::event& e) noexcept {
  events::value timestamp;
  const events::value* v = nullptr;
  if (c.field.is_timestamp) {
    timestamp = e.timestamp_ms;  // an int64 alternative: no allocation
    v = &timestamp;
  } else {
    v = e.find(c.field.name);
    if (v == nullptr)
      v = &null_value;
  }
  if (c.op == compare_op::contains) {
    auto text = std::get_if<std::string>(v);
    return text != nullptr && text->find(std::get<std::string>(c.literal)) != std::string::npos;
  }
  ordering o = compare_values(*v, c.literal);
  switch (c.op) {
    case compare_op::eq: return o == ordering::equal;
    case compare_op::ne: return o != ordering::equal;
    case compare_op::lt: return o == ordering::less;
    case compare_op::le: return o == ordering::less || o == ordering::equal;
    case compare_op::gt: return o == ordering::greater;
    case compare_op::ge: return o == ordering::greater || o == ordering::equal;
    default: return false;
  }
}

int64_t saturating_sub(int64_t a, int64_t b) noexcept {
  int64_t out = 0;
  if (__builtin_sub_overflow(a, b, &out))
    return b > 0 ? std::numeric_limits<int64_t>::min() : std::numeric_limits<int64_t>::max();
  return out;
}

void append_time(const time_bound& b, std::string& out) {
  out += b.k == time_bound::kind::ago ? format_duration(b.ms) : std::to_string(b.ms);
}

void append_list(const std::vector<field_name>& names, std::string& out) {
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0)
      out += ',';
    out += to_string(names[i]);
  }
}

} // namespace

bool operator==(const field_name& a, const field_name& b) {
  return a.is_timestamp == b.is_timestamp && a.name == b.name;
}
bool operator==(const time_bound& a, const time_bound& b) {
  return a.k == b.k && a.ms == b.ms;
}
bool operator==(const comparison& a, const comparison& b) {
  return a.field == b.field && a.op == b.op && a.literal == b.literal;
}
bool operator==(const filter_node& a, const filter_node& b) {
  return a.k == b.k && a.index == b.index && a.count == b.count;
}
bool operator==(const query& a, const query& b) {
  return a.nodes_ == b.nodes_ && a.children_ == b.children_ && a.comparisons_ == b.comparisons_
         && a.root_ == b.root_ && a.since_ == b.since_ && a.until_ == b.until_
         && a.limit_ == b.limit_ && a.fields_ == b.fields_ && a.is_count_ == b.is_count_
         && a.count_by_ == b.count_by_;
}

bool query::matches(const events::event& e) const noexcept {
  return nodes_.empty() || eval(root_, e);
}

bool query::eval(uint32_t index, const events::event& e) const noexcept {
  const filter_node& node = nodes_[index];
  switch (node.k) {
    case filter_node::kind::compare:
      return compare_matches(comparisons_[node.index], e);
    case filter_node::kind::all_of:
      for (uint32_t i = 0; i < node.count; ++i)
        if (!eval(children_[node.index + i], e))
          return false;
      return true;
    case filter_node::kind::any_of:
      for (uint32_t i = 0; i < node.count; ++i)
        if (eval(children_[node.index + i], e))
          return true;
      return false;
    case filter_node::kind::negate:
      return !eval(node.index, e);
  }
  return false;
}

time_range query::resolve_time(int64_t now_ms) const noexcept {
  time_range r;
  auto resolve = [now_ms](const time_bound& b, int64_t open) {
    switch (b.k) {
      case time_bound::kind::ago: return saturating_sub(now_ms, b.ms);
      case time_bound::kind::at: return b.ms;
      default: return open;
    }
  };
  r.since_ms = resolve(since_, std::numeric_limits<int64_t>::min());
  r.until_ms = resolve(until_, std::numeric_limits<int64_t>::max());
  return r;
}

std::string query::to_string() const {
  std::string out;
  auto clause = [&out](const char* keyword) {
    if (!out.empty())
      out += ' ';
    out += keyword;
  };
  if (has_filter()) {
    clause("where ");
    print(root_, out);
  }
  if (since_.k != time_bound::kind::open) {
    clause("since ");
    append_time(since_, out);
  }
  if (until_.k != time_bound::kind::open) {
    clause("until ");
    append_time(until_, out);
  }
  if (limit_) {
    clause("limit ");
    out += std::to_string(*limit_);
  }
  if (!fields_.empty()) {
    clause("fields ");
    append_list(fields_, out);
  }
  if (is_count_) {
    clause("count");
    if (!count_by_.empty()) {
      out += " by ";
      append_list(count_by_, out);
    }
  }
  return out;
}

void query::print(uint32_t index, std::string& out) const {
  const filter_node& node = nodes_[index];
  auto print_child = [&](uint32_t child, bool parenthesize) {
    if (parenthesize)
      out += '(';
    print(child, out);
    if (parenthesize)
      out += ')';
  };
  switch (node.k) {
    case filter_node::kind::compare: {
      const comparison& c = comparisons_[node.index];
      out += levee::query::to_string(c.field);
      out += ' ';
      out += levee::query::to_string(c.op);
      out += ' ';
      out += literal_to_string(c.literal);
      return;
    }
    case filter_node::kind::all_of:
    case filter_node::kind::any_of: {
      bool is_and = node.k == filter_node::kind::all_of;
      for (uint32_t i = 0; i < node.count; ++i) {
        if (i > 0)
          out += is_and ? " and " : " or ";
        uint32_t child = children_[node.index + i];
        // `and` binds tighter than `or`, so only an `or` inside an `and` needs them.
        print_child(child, is_and && nodes_[child].k == filter_node::kind::any_of);
      }
      return;
    }
    case filter_node::kind::negate: {
      out += "not ";
      auto k = nodes_[node.index].k;
      print_child(node.index, k == filter_node::kind::all_of || k == filter_node::kind::any_of);
      return;
    }
  }
}

std::string_view to_string(compare_op op) noexcept {
  switch (op) {
    case compare_op::eq: return "==";
    case compare_op::ne: return "!=";
    case compare_op::lt: return "<";
    case compare_op::le: return "<=";
    case compare_op::gt: return ">";
    case compare_op::ge: return ">=";
    case compare_op::contains: return "contains";
  }
  return "?";
}

std::string to_string(const field_name& f) {
  if (f.is_timestamp)
    return "ts";
  if (is_bare_name(f.name))
    return f.name;
  return "`" + f.name + "`";
}

std::string literal_to_string(const events::value& v) {
  switch (v.index()) {
    case 0: return "null";
    case 1: return std::get<bool>(v) ? "true" : "false";
    case 2: return std::to_string(std::get<int64_t>(v));
    case 3: {
      char buf[64];
      auto [end, ec] = std::to_chars(buf, buf + sizeof buf, std::get<double>(v));
      std::string out{buf, ec == std::errc{} ? end : buf};
      // A double must read back as a double, not as an integer.
      if (out.find_first_of(".eEn") == std::string::npos)
        out += ".0";
      return out;
    }
    default: {
      const auto& s = std::get<std::string>(v);
      std::string out = "\"";
      for (char c : s) {
        switch (c) {
          case '"': out += "\\\""; break;
          case '\\': out += "\\\\"; break;
          case '\n': out += "\\n"; break;
          case '\t': out += "\\t"; break;
          case '\r': out += "\\r"; break;
          default: out += c;
        }
      }
      out += '"';
      return out;
    }
  }
}

events::event project(const query& q, const events::event& e) {
  if (q.fields().empty())
    return e;
  events::event out;
  out.timestamp_ms = e.timestamp_ms;
  out.fields.reserve(q.fields().size());
  for (const field_name& f : q.fields()) {
    if (f.is_timestamp)
      continue;
    if (const events::value* v = e.find(f.name))
      out.fields.push_back(events::field{f.name, *v});
  }
  return out;
}

} // namespace levee::query
