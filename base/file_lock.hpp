#pragma once
// An exclusive lock on a file (flock(2)) for as long as its holder lives: what keeps two
// processes from writing one log directory (persistence/segment_log, metadata/raft_node).
// flock, not fcntl locks: a process drops an fcntl lock when it closes any descriptor of
// the file, and both callers open files in the directory they lock. The kernel drops the
// lock when the holder exits, also by kill -9; the file stays and means nothing unheld.

#include <string>

namespace levee::base {

class file_lock {
public:
  file_lock() = default;
  file_lock(const file_lock&) = delete;
  file_lock& operator=(const file_lock&) = delete;
  file_lock(file_lock&& other) noexcept;
  file_lock& operator=(file_lock&& other) noexcept;
  ~file_lock();

  /// Creates `path` if missing and locks it without waiting: 0, or the errno that stopped
  /// it (EWOULDBLOCK: another open file description holds it, in this process or another).
  /// A lock already held by this object is let go first.
  int acquire(const std::string& path);

  bool held() const noexcept { return fd_ >= 0; }

private:
  void release() noexcept;
  int fd_ = -1;
};

} // namespace levee::base
