#include "query/value_order.hpp"

#include <cmath>
#include <string>

namespace levee::query {
namespace {

using events::value;

template <class T>
ordering order_of(const T& a, const T& b) noexcept {
  return a < b ? ordering::less : (b < a ? ordering::greater : ordering::equal);
}

ordering compare_doubles(double a, double b) noexcept {
  if (std::isnan(a) || std::isnan(b))
    return ordering::unordered;
  return order_of(a, b);
}

// Exact: converting the integer to double would make 2^53 + 1 equal to 2^53.
ordering compare_int_double(int64_t i, double d) noexcept {
  if (std::isnan(d))
    return ordering::unordered;
  constexpr double two_63 = 9223372036854775808.0;
  if (d >= two_63)
    return ordering::less;
  if (d < -two_63)
    return ordering::greater;
  double whole = std::trunc(d);  // exact, and within int64 after the checks above
  auto t = static_cast<int64_t>(whole);
  if (i != t)
    return order_of(i, t);
  double fraction = d - whole;  // exact (Sterbenz): whole is 0 or within a factor 2 of d
  return fraction > 0 ? ordering::less : (fraction < 0 ? ordering::greater : ordering::equal);
}

ordering flip(ordering o) noexcept {
  switch (o) {
    case ordering::less: return ordering::greater;
    case ordering::greater: return ordering::less;
    default: return o;
  }
}

bool is_number(const value& v) noexcept {
  return std::holds_alternative<int64_t>(v) || std::holds_alternative<double>(v);
}

ordering compare_numbers(const value& a, const value& b) noexcept {
  if (auto ai = std::get_if<int64_t>(&a)) {
    if (auto bi = std::get_if<int64_t>(&b))
      return order_of(*ai, *bi);
    return compare_int_double(*ai, std::get<double>(b));
  }
  double ad = std::get<double>(a);
  if (auto bi = std::get_if<int64_t>(&b))
    return flip(compare_int_double(*bi, ad));
  return compare_doubles(ad, std::get<double>(b));
}

int kind_rank(const value& v) noexcept {
  switch (v.index()) {
    case 0: return 0;                   // null
    case 1: return 1;                   // bool
    case 2: case 3: return 2;           // number
    default: return 3;                  // string
  }
}

bool is_nan(const value& v) noexcept {
  auto d = std::get_if<double>(&v);
  return d && std::isnan(*d);
}

} // namespace

ordering compare_values(const value& a, const value& b) noexcept {
  if (is_number(a) && is_number(b))
    return compare_numbers(a, b);
  if (a.index() != b.index())
    return ordering::unordered;
  switch (a.index()) {
    case 0: return ordering::equal;
    case 1: return order_of(std::get<bool>(a), std::get<bool>(b));
    default: {
      int c = std::get<std::string>(a).compare(std::get<std::string>(b));
      return c < 0 ? ordering::less : (c > 0 ? ordering::greater : ordering::equal);
    }
  }
}

bool total_less(const value& a, const value& b) noexcept {
  int ra = kind_rank(a), rb = kind_rank(b);
  if (ra != rb)
    return ra < rb;
  if (ra == 2) {
    bool an = is_nan(a), bn = is_nan(b);
    if (an || bn)
      return !an && bn;
  }
  return compare_values(a, b) == ordering::less;
}

} // namespace levee::query
