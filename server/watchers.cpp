#include "server/watchers.hpp"

#include <algorithm>

#include "limits/error_code.hpp"

namespace levee::server {

std::optional<rejection> watcher_set::refusal(uint64_t client) const {
  if (held_.size() >= bounds_.max_total)
    return rejection::of(code::too_many_inflight)
      .limit("server.max_list_watchers")
      .observed(held_.size() + 1)
      .max(bounds_.max_total)
      .retry_after_ms(1000)
      .detail("as many requests as allowed already wait for a change; ask without wait_ms, "
              "or later");
  auto i = per_client_.find(client);
  auto mine = i == per_client_.end() ? 0 : i->second;
  if (mine >= bounds_.max_per_client)
    return rejection::of(code::too_many_inflight)
      .limit("server.max_list_watchers_per_client")
      .observed(mine + 1)
      .max(bounds_.max_per_client)
      .retry_after_ms(1000)
      .detail("this connection already has as many requests waiting for a change as it may; "
              "wait for their answers");
  return std::nullopt;
}

void watcher_set::park(caf::response_promise answer, uint64_t client, uint64_t after_version,
                       uint32_t wait_ms, int64_t now_ns, std::string view) {
  ++per_client_[client];
  auto wait_ns = static_cast<int64_t>(std::min<uint64_t>(wait_ms, bounds_.max_wait_ms)) * 1'000'000;
  held_.push_back({std::move(answer), client, after_version, now_ns + wait_ns, std::move(view)});
}

void watcher_set::release(uint64_t client) {
  auto i = per_client_.find(client);
  if (i != per_client_.end() && --i->second == 0)
    per_client_.erase(i);
}

void watcher_set::answer_due(uint64_t version, int64_t now_ns, const view_render& render) {
  std::unordered_map<std::string, std::string> text;  // by view, rendered once each
  auto keep = held_.begin();
  for (auto& h : held_) {
    if (version != h.after_version || h.due_ns <= now_ns) {
      auto t = text.find(h.view);
      if (t == text.end())
        t = text.emplace(h.view, render(h.view)).first;
      h.answer.deliver(t->second);
      release(h.client);
    } else {
      *keep++ = std::move(h);
    }
  }
  held_.erase(keep, held_.end());
}

void watcher_set::answer_all(const std::function<std::string()>& render) {
  if (held_.empty())
    return;
  auto text = render();
  for (auto& h : held_)
    h.answer.deliver(text);
  held_.clear();
  per_client_.clear();
}

std::optional<int64_t> watcher_set::earliest_due() const noexcept {
  std::optional<int64_t> out;
  for (auto& h : held_)
    if (!out || h.due_ns < *out)
      out = h.due_ns;
  return out;
}

} // namespace levee::server
