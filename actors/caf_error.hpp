#pragma once
// Levee's error codes as CAF errors (category atom "levee"), and the round trip between a
// `rejection` and a `caf::error`: the context of the error carries
// (limit, observed, max, retry_after_ms, detail) so a requester gets every field back.

#include <optional>

#include <caf/actor_system_config.hpp>
#include <caf/error.hpp>

#include "limits/error_code.hpp"
#include "limits/rejection.hpp"

CAF_ERROR_CODE_ENUM(levee::code, "levee")

namespace levee {

/// The CAF category atom of Levee errors.
caf::atom_value error_category() noexcept;

/// A CAF error carrying every field of `r`.
caf::error to_error(const rejection& r);

/// The rejection inside `err`, if it is a Levee error made by `to_error`. A Levee error
/// without rejection fields (e.g. `caf::error{levee::code::not_found}`) yields a rejection
/// with only the code set.
std::optional<rejection> rejection_from(const caf::error& err);

/// Registers a renderer so that `system.render(err)` prints Levee errors as rejection lines.
void add_error_category(caf::actor_system_config& cfg);

} // namespace levee

namespace levee {
// CAF 0.17 renders enum values with an ADL `to_string`; error_code.hpp returns string_view.
inline std::string to_string_for_caf(code c) { return std::string{to_string(c)}; }
} // namespace levee
