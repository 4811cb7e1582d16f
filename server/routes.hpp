#pragma once
// Where queries may go (ARCHITECTURE.md "Satellites and the server"): the registry's index
// of its satellites (id, labels, state, connection), which proxyers read on demand. The
// registry writes it one satellite at a time as events happen (a registration, a state
// change, a forgotten satellite), so no event costs a copy of the whole fleet's routes;
// a label selector is answered from an index (label -> ids), not by a scan.
//
// One writer (the registry), many readers (the router's proxyers): every member function
// takes a mutex. The node places the registry and the router on the same I/O thread, so
// the mutex is never contended there (a few tens of ns); it keeps the index correct
// wherever a test or a later placement runs them.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/expected.hpp>

namespace levee::wire {
class QueryRequest;
}

namespace levee::server {

/// The registry's view of a satellite (SatelliteInfo.State on the wire).
enum class satellite_health : uint8_t { healthy = 0, unhealthy = 1, disconnected = 2 };

/// "healthy", "unhealthy", "disconnected".
const char* name_of(satellite_health h) noexcept;

/// A satellite a query may go to: its id and the connection it dialed.
struct satellite_ref {
  std::string id;
  caf::actor connection;
};

using label_map = std::map<std::string, std::string>;

/// The satellites a fan-out matched but did not ask because they were not healthy
/// (QueryStats.skipped): the first `max_listed` in id order, and how many in all.
struct skipped_satellites {
  static constexpr size_t max_listed = 64;  // a fleet-wide outage names 64, counts the rest
  std::vector<std::pair<std::string, satellite_health>> listed;
  size_t total = 0;
};

class satellite_routes {
public:
  struct route {
    std::string id;
    label_map labels;
    caf::actor connection;  // null when disconnected
    satellite_health state = satellite_health::disconnected;
    bool healthy() const noexcept { return state == satellite_health::healthy && connection; }
  };

  /// What the index did, so tests can hold each event's cost flat in the fleet's size
  /// (counted, not timed).
  struct work_counters {
    std::atomic<uint64_t> routes_written{0};     // routes stored or changed, one per write
    std::atomic<uint64_t> postings_written{0};   // label or state index entries added/removed
    std::atomic<uint64_t> routes_examined{0};    // routes a lookup or a scan looked at
    std::atomic<uint64_t> deadlines_examined{0}; // satellites the registry's health check looked at
  };

  /// A bit per satellite_health, for scan: 0 = any state.
  static constexpr uint32_t state_bit(satellite_health h) noexcept {
    return 1u << static_cast<uint32_t>(h);
  }

  // -- the registry's writes: O(labels x log N) each -------------------------------------

  /// Adds the satellite `id`, or replaces its labels, connection and state.
  void put(const std::string& id, const label_map& labels, caf::actor connection,
           satellite_health state);
  /// Changes the state and connection of a known satellite (nothing when unknown).
  void set_state(const std::string& id, satellite_health state, caf::actor connection);
  /// Forgets a satellite.
  void erase(const std::string& id);

  // -- reads ------------------------------------------------------------------------------

  /// A copy of one route, if known.
  std::optional<route> find(const std::string& id) const;
  size_t size() const;
  size_t count(satellite_health h) const;

  /// The satellites `q` goes to: the one its satellite_id names, or the healthy ones its
  /// selector matches (candidates from the smallest label posting, in id order). Errors
  /// carry the rejection, with no limit (none refused): not_found (no such id, nothing
  /// matches), unavailable (not healthy). `skipped`, when given, receives the matching
  /// satellites a selector left out for not being healthy (a healthy state with no
  /// connection counts as disconnected).
  caf::expected<std::vector<satellite_ref>> lookup(const wire::QueryRequest& q,
                                                   skipped_satellites* skipped = nullptr) const;

  /// Visits, in id order after `after_id`, the routes whose labels include `selector` and
  /// whose state is in `states` (state_bit()s; 0 = any), until `visit` returns false or
  /// `max_examined` routes were looked at. Candidates come from the smallest of: a
  /// selector label's posting, the one requested state's ids, all routes. Returns the id
  /// to continue after when it stopped before the end, empty when it reached the end.
  /// `visit` runs under the index's lock: it must not call back into the index.
  std::string scan(const label_map& selector, uint32_t states, const std::string& after_id,
                   size_t max_examined, const std::function<bool(const route&)>& visit) const;

  work_counters& work() const noexcept { return work_; }

private:
  using posting = std::set<std::string_view>;  // ids, views of routes_' keys

  static std::string label_key(const std::string& k, const std::string& v);
  void index_labels(std::string_view id, const label_map& labels, bool add);
  void index_state(std::string_view id, satellite_health h, bool add);
  /// The candidates for `selector` and `states`: a posting (nullptr: every route), or
  /// nullopt when some selector label has no satellite at all.
  std::optional<const posting*> candidates(const label_map& selector, uint32_t states) const;

  mutable std::mutex mtx_;
  std::map<std::string, route, std::less<>> routes_;
  std::unordered_map<std::string, posting> by_label_;
  posting by_state_[3];
  mutable work_counters work_;
};

} // namespace levee::server

// Only ever sent between actors of one process (connection handles are not serializable).
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<levee::server::satellite_ref>)
