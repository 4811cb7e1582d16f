#include "streams/subject_index.hpp"

#include <algorithm>

namespace levee::streams {

struct subject_index::node {
  std::map<std::string, std::unique_ptr<node>, std::less<>> literal;  // by token
  std::unique_ptr<node> star;    // the `*` token
  std::vector<stream_id> here;   // patterns that end at this node
  std::vector<stream_id> tail;   // patterns whose next (last) token is `>`

  bool empty() const noexcept {
    return literal.empty() && !star && here.empty() && tail.empty();
  }
  size_t count() const noexcept {
    size_t n = 1;
    for (auto& [_, child] : literal)
      n += child->count();
    return n + (star ? star->count() : 0);
  }
};

subject_index::subject_index() : root_(std::make_unique<node>()) {}
subject_index::~subject_index() = default;
subject_index::subject_index(subject_index&&) noexcept = default;
subject_index& subject_index::operator=(subject_index&&) noexcept = default;

namespace {

bool insert_once(std::vector<stream_id>& ids, stream_id id) {
  auto at = std::lower_bound(ids.begin(), ids.end(), id);
  if (at != ids.end() && *at == id)
    return false;
  ids.insert(at, id);
  return true;
}

bool erase_one(std::vector<stream_id>& ids, stream_id id) {
  auto at = std::lower_bound(ids.begin(), ids.end(), id);
  if (at == ids.end() || *at != id)
    return false;
  ids.erase(at);
  return true;
}

} // namespace

void subject_index::add(const subject_pattern& pattern, stream_id id) {
  node* n = root_.get();
  for (size_t i = 0; i < pattern.size(); ++i) {
    auto t = pattern.token(i);
    if (t == ">") {  // always the last token
      bindings_ += insert_once(n->tail, id) ? 1 : 0;
      return;
    }
    std::unique_ptr<node>* next;
    if (t == "*") {
      next = &n->star;
    } else {
      auto at = n->literal.find(t);
      if (at == n->literal.end())
        at = n->literal.emplace(std::string{t}, nullptr).first;
      next = &at->second;
    }
    if (!*next)
      *next = std::make_unique<node>();
    n = next->get();
  }
  bindings_ += insert_once(n->here, id) ? 1 : 0;
}

bool subject_index::remove(const subject_pattern& pattern, stream_id id) {
  // The path from the root, to prune the nodes the removal leaves empty.
  std::vector<std::pair<node*, std::string_view>> path;
  node* n = root_.get();
  bool removed = false;
  for (size_t i = 0;; ++i) {
    if (i == pattern.size()) {
      removed = erase_one(n->here, id);
      break;
    }
    auto t = pattern.token(i);
    if (t == ">") {
      removed = erase_one(n->tail, id);
      break;
    }
    node* child = nullptr;
    if (t == "*") {
      child = n->star.get();
    } else if (auto at = n->literal.find(t); at != n->literal.end()) {
      child = at->second.get();
    }
    if (child == nullptr)
      return false;
    path.emplace_back(n, t);
    n = child;
  }
  if (!removed)
    return false;
  --bindings_;
  for (auto i = path.size(); i-- > 0;) {
    auto [parent, t] = path[i];
    node* child = t == "*" ? parent->star.get() : parent->literal.find(t)->second.get();
    if (!child->empty())
      break;
    if (t == "*")
      parent->star.reset();
    else
      parent->literal.erase(parent->literal.find(t));
  }
  return true;
}

void subject_index::collect(const node& n, const subject& s, size_t i,
                            std::vector<stream_id>& out, size_t& visited) const {
  ++visited;
  if (i == s.size()) {
    out.insert(out.end(), n.here.begin(), n.here.end());
    return;
  }
  out.insert(out.end(), n.tail.begin(), n.tail.end());  // `>` takes one or more tokens
  if (auto at = n.literal.find(s.token(i)); at != n.literal.end())
    collect(*at->second, s, i + 1, out, visited);
  if (n.star)
    collect(*n.star, s, i + 1, out, visited);
}

size_t subject_index::match(const subject& s, std::vector<stream_id>& out) const {
  out.clear();
  size_t visited = 0;
  collect(*root_, s, 0, out, visited);
  // A stream bound by two patterns that both match is found twice.
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return visited;
}

size_t subject_index::node_count() const noexcept {
  return root_->count();
}

} // namespace levee::streams
