#pragma once
// The subject index: which streams store a message published to a subject. A token trie
// of the streams' patterns (as nats-server's sublist): a publish walks one branch per
// token of its subject, plus the `*` branch and the `>` entries of each node it passes,
// so its cost grows with the subject's tokens and the patterns that match, not with the
// number of streams. Patterns may overlap: every stream whose pattern matches is found,
// each once. Not thread-safe: its owner (the broker's stream table) serializes use.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "streams/subject.hpp"

namespace levee::streams {

using stream_id = uint64_t;

class subject_index {
public:
  subject_index();
  ~subject_index();
  subject_index(subject_index&&) noexcept;
  subject_index& operator=(subject_index&&) noexcept;

  /// Binds `id` to `pattern`. Adding the same (pattern, id) twice keeps one binding.
  void add(const subject_pattern& pattern, stream_id id);
  /// Unbinds `id` from `pattern`; false when it was not bound. Nodes left empty go.
  bool remove(const subject_pattern& pattern, stream_id id);

  /// Puts in `out` every stream bound to a pattern that matches `s`, each once, in
  /// increasing id order (`out` is cleared first). Returns the trie nodes it visited: at
  /// most one per token and branch that can match, whatever the number of streams.
  size_t match(const subject& s, std::vector<stream_id>& out) const;

  /// (pattern, id) bindings held.
  size_t size() const noexcept { return bindings_; }
  /// Trie nodes held (tests: removal frees what it can).
  size_t node_count() const noexcept;

private:
  struct node;
  void collect(const node& n, const subject& s, size_t i, std::vector<stream_id>& out,
               size_t& visited) const;
  std::unique_ptr<node> root_;
  size_t bindings_ = 0;
};

} // namespace levee::streams
