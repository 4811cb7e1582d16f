#include "actors/caf_error.hpp"

#include <caf/message.hpp>

namespace levee {

caf::atom_value error_category() noexcept {
  return caf::atom("levee");
}

caf::error to_error(const rejection& r) {
  return caf::error{static_cast<uint8_t>(r.code), error_category(),
                    caf::make_message(r.limit, r.observed, r.max, r.retry_after_ms,
                                      r.detail, r.leader_hint)};
}

std::optional<rejection> rejection_from(const caf::error& err) {
  if (!err || err.category() != error_category())
    return std::nullopt;
  auto c = code_from_number(err.code());
  if (!c)
    return std::nullopt;
  rejection r;
  r.code = *c;
  auto& ctx = err.context();
  if (ctx.match_elements<std::string, uint64_t, uint64_t, uint64_t, std::string, std::string>()) {
    r.limit = ctx.get_as<std::string>(0);
    r.observed = ctx.get_as<uint64_t>(1);
    r.max = ctx.get_as<uint64_t>(2);
    r.retry_after_ms = ctx.get_as<uint64_t>(3);
    r.detail = ctx.get_as<std::string>(4);
    r.leader_hint = ctx.get_as<std::string>(5);
  }
  return r;
}

void add_error_category(caf::actor_system_config& cfg) {
  cfg.add_error_category(error_category(),
                         [](uint8_t code_number, caf::atom_value, const caf::message& ctx) {
                           caf::error err{code_number, error_category(), ctx};
                           if (auto r = rejection_from(err))
                             return "levee: " + r->to_string();
                           return std::string{"levee: unknown code "}
                                  + std::to_string(code_number);
                         });
}

} // namespace levee
