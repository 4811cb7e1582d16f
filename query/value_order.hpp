#pragma once
// How event values compare (QUERY.md "Semantics"): integers and doubles numerically and
// exactly (no rounding of large integers through double), strings byte by byte, values of
// different kinds not at all.

#include "events/event.hpp"

namespace levee::query {

enum class ordering : uint8_t { less, equal, greater, unordered };

/// The order of two values of the same kind: null == null, false < true, numbers
/// numerically (int with double too), strings bytewise. Different kinds and NaN are
/// unordered.
ordering compare_values(const events::value& a, const events::value& b) noexcept;

/// A total order over all values, for sorting results: null < bools < numbers < strings,
/// NaN after every other number. Numerically equal int and double are equivalent.
bool total_less(const events::value& a, const events::value& b) noexcept;

} // namespace levee::query
