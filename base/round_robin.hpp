#pragma once
// Turns over the entries of an ordered map (round robin): the first entry after the last
// one served, wrapping around, that may go now. The store's queries and a stream
// leader's subscribers take turns this way, so one busy entry never starves the others.

#include <cstddef>
#include <optional>

namespace levee::base {

/// The first entry of `entries` after `last_turn` (from the start when none), wrapping
/// around, for which `may_go(value)` holds; entries.end() when none may.
template <class Map, class Pred>
typename Map::iterator next_turn(Map& entries, const std::optional<typename Map::key_type>& last_turn,
                                 Pred may_go) {
  auto it = last_turn ? entries.upper_bound(*last_turn) : entries.begin();
  for (size_t seen = 0; seen < entries.size(); ++seen, ++it) {
    if (it == entries.end())
      it = entries.begin();
    if (may_go(it->second))
      return it;
  }
  return entries.end();
}

} // namespace levee::base
