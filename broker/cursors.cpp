// Consumer-group cursors in memory and their load from the internal stream (cursors.hpp).

#include "broker/cursors.hpp"

#include <charconv>

namespace levee::broker {

std::string cursor_table::key_of(std::string_view group, std::string_view stream,
                                 uint32_t partition) {
  std::string key{stream};
  key += '/';
  key += std::to_string(partition);
  key += '/';
  key += group;
  return key;
}

status cursor_table::check_group(std::string_view group) {
  if (group.empty())
    return status::error(code::bad_request, "a cursor needs a group; send its name in `group`");
  if (group.size() > max_group_bytes)
    return status::refused(rejection::of(code::bad_request)
                             .observed(group.size())
                             .max(max_group_bytes)
                             .detail("a group name of " + std::to_string(group.size())
                                     + " bytes; use at most "
                                     + std::to_string(max_group_bytes)));
  return {};
}

status cursor_table::check_room(const std::string& key) const {
  if (cursors_.count(key) != 0 || cursors_.size() < max_)
    return {};
  return status::refused(rejection::of(code::memory_budget_exhausted)
                           .limit("broker.max_cursors")
                           .observed(cursors_.size() + 1)
                           .max(max_)
                           .detail("the broker holds as many cursors as it may; commit to "
                                   "an existing cursor, or raise broker.max_cursors"));
}

std::optional<uint64_t> cursor_table::get(const std::string& key) const {
  auto it = cursors_.find(key);
  if (it == cursors_.end())
    return std::nullopt;
  return it->second;
}

std::vector<std::string> cursor_table::forget_stream(std::string_view stream) {
  std::string prefix{stream};
  prefix += '/';
  std::vector<std::string> keys;
  for (auto it = cursors_.lower_bound(prefix);
       it != cursors_.end() && it->first.compare(0, prefix.size(), prefix) == 0;) {
    keys.push_back(it->first);
    it = cursors_.erase(it);
  }
  return keys;
}

status cursor_table::load(const streams::partition_log& log) {
  streams::read_request req;
  req.from = log.start_offset();
  while (req.from < log.high_water()) {
    auto r = log.read(req);
    if (!r)
      return r.error();
    for (auto& m : r->messages) {
      if (m.body.empty()) {
        cursors_.erase(m.key);
        continue;
      }
      uint64_t offset = 0;
      auto [end, ec] = std::from_chars(m.body.data(), m.body.data() + m.body.size(), offset);
      if (ec != std::errc{} || end != m.body.data() + m.body.size())
        continue;  // not written by commit(): ignored, as a damaged line would be
      if (cursors_.count(m.key) == 0 && cursors_.size() >= max_) {
        ++dropped_;
        continue;
      }
      cursors_[m.key] = offset;
    }
    if (r->next_offset <= req.from)
      break;
    req.from = r->next_offset;
  }
  return {};
}

} // namespace levee::broker
