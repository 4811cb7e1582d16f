#include "server/routes.hpp"

#include "actors/caf_error.hpp"
#include "limits/rejection.hpp"
#include "net/satellite.pb.h"

namespace levee::server {

const char* name_of(satellite_health h) noexcept {
  switch (h) {
    case satellite_health::healthy: return "healthy";
    case satellite_health::unhealthy: return "unhealthy";
    default: return "disconnected";
  }
}

// A label's key in by_label_: the key's length first, so no (key, value) pair can spell
// another's (labels are any UTF-8, NUL included).
std::string satellite_routes::label_key(const std::string& k, const std::string& v) {
  std::string out = std::to_string(k.size());
  out.reserve(out.size() + 1 + k.size() + v.size());
  out += ':';
  out += k;
  out += v;
  return out;
}

void satellite_routes::index_labels(std::string_view id, const label_map& labels, bool add) {
  for (auto& [k, v] : labels) {
    auto key = label_key(k, v);
    if (add) {
      by_label_[key].insert(id);
    } else if (auto i = by_label_.find(key); i != by_label_.end()) {
      i->second.erase(id);
      if (i->second.empty())
        by_label_.erase(i);
    }
    work_.postings_written.fetch_add(1, std::memory_order_relaxed);
  }
}

void satellite_routes::index_state(std::string_view id, satellite_health h, bool add) {
  auto& p = by_state_[static_cast<size_t>(h)];
  if (add)
    p.insert(id);
  else
    p.erase(id);
  work_.postings_written.fetch_add(1, std::memory_order_relaxed);
}

void satellite_routes::put(const std::string& id, const label_map& labels,
                           caf::actor connection, satellite_health state) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto [it, added] = routes_.try_emplace(id);
  // The postings hold views of the map's key, which stays where it is until erased.
  std::string_view key = it->first;
  auto& r = it->second;
  bool relabel = added || r.labels != labels;
  if (added) {
    r.id = id;
  } else {
    index_state(key, r.state, false);
    if (relabel)
      index_labels(key, r.labels, false);
  }
  if (relabel) {
    r.labels = labels;
    index_labels(key, r.labels, true);
  }
  r.connection = std::move(connection);
  r.state = state;
  index_state(key, state, true);
  work_.routes_written.fetch_add(1, std::memory_order_relaxed);
}

void satellite_routes::set_state(const std::string& id, satellite_health state,
                                 caf::actor connection) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto it = routes_.find(id);
  if (it == routes_.end())
    return;
  auto& r = it->second;
  if (r.state != state) {
    index_state(it->first, r.state, false);
    index_state(it->first, state, true);
  }
  r.state = state;
  r.connection = std::move(connection);
  work_.routes_written.fetch_add(1, std::memory_order_relaxed);
}

void satellite_routes::erase(const std::string& id) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto it = routes_.find(id);
  if (it == routes_.end())
    return;
  index_labels(it->first, it->second.labels, false);
  index_state(it->first, it->second.state, false);
  routes_.erase(it);
  work_.routes_written.fetch_add(1, std::memory_order_relaxed);
}

std::optional<satellite_routes::route> satellite_routes::find(const std::string& id) const {
  std::lock_guard<std::mutex> guard{mtx_};
  auto it = routes_.find(id);
  if (it == routes_.end())
    return std::nullopt;
  return it->second;
}

size_t satellite_routes::size() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return routes_.size();
}

size_t satellite_routes::count(satellite_health h) const {
  std::lock_guard<std::mutex> guard{mtx_};
  return by_state_[static_cast<size_t>(h)].size();
}

std::optional<const satellite_routes::posting*>
satellite_routes::candidates(const label_map& selector, uint32_t states) const {
  const posting* best = nullptr;
  size_t best_size = routes_.size();
  for (auto& [k, v] : selector) {
    auto i = by_label_.find(label_key(k, v));
    if (i == by_label_.end())
      return std::nullopt;  // no satellite has this label
    if (i->second.size() <= best_size) {
      best = &i->second;
      best_size = i->second.size();
    }
  }
  for (uint32_t h = 0; h < 3; ++h)
    if (states == (1u << h) && by_state_[h].size() < best_size) {
      best = &by_state_[h];
      best_size = by_state_[h].size();
    }
  return best;
}

namespace {

bool has_labels(const label_map& labels, const label_map& selector) {
  for (auto& [k, v] : selector) {
    auto l = labels.find(k);
    if (l == labels.end() || l->second != v)
      return false;
  }
  return true;
}

} // namespace

caf::expected<std::vector<satellite_ref>>
satellite_routes::lookup(const wire::QueryRequest& q, skipped_satellites* skipped) const {
  std::vector<satellite_ref> out;
  std::lock_guard<std::mutex> guard{mtx_};
  if (!q.satellite_id().empty()) {
    work_.routes_examined.fetch_add(1, std::memory_order_relaxed);
    auto it = routes_.find(q.satellite_id());
    if (it == routes_.end())
      return to_error(rejection::of(code::not_found)
                        .detail("no satellite '" + q.satellite_id()
                                + "' is registered; `levee satellites` lists them"));
    if (!it->second.healthy())
      return to_error(rejection::of(code::unavailable)
                        .detail("satellite '" + q.satellite_id() + "' is "
                                + name_of(it->second.state)
                                + "; `levee satellites` shows when it last sent a heartbeat"));
    out.push_back(satellite_ref{it->first, it->second.connection});
    return out;
  }
  label_map selector(q.selector().begin(), q.selector().end());
  size_t matching = 0;
  skipped_satellites left_out;
  auto take = [&](const route& r) {
    if (!has_labels(r.labels, selector))
      return;
    ++matching;
    if (r.healthy()) {
      out.push_back(satellite_ref{r.id, r.connection});
      return;
    }
    if (left_out.listed.size() < skipped_satellites::max_listed)
      left_out.listed.emplace_back(r.id, r.state == satellite_health::healthy
                                           ? satellite_health::disconnected
                                           : r.state);
    ++left_out.total;
  };
  size_t examined = 0;
  if (auto from = candidates(selector, 0)) {
    if (*from == nullptr) {
      for (auto& [id, r] : routes_)
        take(r);
      examined = routes_.size();
    } else {
      for (auto id : **from)
        take(routes_.find(id)->second);
      examined = (*from)->size();
    }
  }
  work_.routes_examined.fetch_add(examined, std::memory_order_relaxed);
  if (matching == 0)
    return to_error(rejection::of(code::not_found)
                      .detail(q.selector().empty()
                                ? "no satellite is registered; start one pointed at this server"
                                : "no registered satellite has these labels; `levee "
                                  "satellites` lists them"));
  if (out.empty()) {
    // Named (a few), so the refusal says where to look.
    std::string named;
    for (size_t i = 0; i < left_out.listed.size() && i < 5; ++i)
      named += (i == 0 ? "" : ", ") + left_out.listed[i].first + " ("
               + name_of(left_out.listed[i].second) + ")";
    if (left_out.total > 5)
      named += ", ...";
    return to_error(rejection::of(code::unavailable)
                      .detail(std::to_string(matching)
                              + (matching == 1 ? " satellite matches" : " satellites match")
                              + ", none of them healthy: " + named
                              + "; `levee satellites` shows their state"));
  }
  if (skipped)
    *skipped = std::move(left_out);
  return out;
}

std::string satellite_routes::scan(const label_map& selector, uint32_t states,
                                   const std::string& after_id, size_t max_examined,
                                   const std::function<bool(const route&)>& visit) const {
  std::lock_guard<std::mutex> guard{mtx_};
  auto from = candidates(selector, states);
  if (!from)
    return {};
  size_t examined = 0;
  // Walks candidates [it, end) (ids, or map entries); returns where to continue.
  auto walk = [&](auto it, auto end, auto route_of) -> std::string {
    const std::string* last = &after_id;  // the last one looked at
    for (; it != end; ++it) {
      const route& r = route_of(it);
      if (examined == max_examined)
        return *last;  // enough looked at: the next page goes on after it
      ++examined;
      last = &r.id;
      bool match = (states == 0 || (states & state_bit(r.state)) != 0)
                   && has_labels(r.labels, selector);
      if (match && !visit(r))
        return std::next(it) == end ? std::string{} : r.id;  // full: continue after it
    }
    return {};
  };
  std::string out;
  if (*from == nullptr) {
    out = walk(routes_.upper_bound(after_id), routes_.end(),
               [](auto i) -> const route& { return i->second; });
  } else {
    auto& p = **from;
    out = walk(p.upper_bound(after_id), p.end(),
               [this](auto i) -> const route& { return routes_.find(*i)->second; });
  }
  work_.routes_examined.fetch_add(examined, std::memory_order_relaxed);
  return out;
}

} // namespace levee::server
