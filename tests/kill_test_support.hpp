#pragma once
// A writer process killed with SIGKILL wherever it is (tests of what a crash may lose):
// the child reports what it has done through a pipe, the parent reads some reports, kills
// it, and reads the reports sent before the kill.

#include <cstddef>
#include <functional>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace levee::test {

/// Forks; the child runs `child(report)` (which must not return: it loops until killed,
/// `_exit`ing non-zero on an error) where `report(r)` sends one `Report` to the parent, or
/// `_exit`s when it cannot. The parent passes `take` the first `wanted` reports, SIGKILLs
/// the child, then passes `take` the reports that were sent before the kill. True when
/// the child died of the kill (false: it ended on its own, or the fork failed).
template <class Report>
bool run_until_killed(const std::function<void(const std::function<void(const Report&)>&)>& child,
                      size_t wanted, const std::function<void(const Report&)>& take) {
  int fds[2];
  if (::pipe(fds) != 0)
    return false;
  auto pid = ::fork();
  if (pid < 0)
    return false;
  if (pid == 0) {
    ::close(fds[0]);
    child([&](const Report& r) {
      if (::write(fds[1], &r, sizeof r) != sizeof r)
        ::_exit(4);
    });
    ::_exit(5);
  }
  ::close(fds[1]);
  Report r{};
  for (size_t i = 0; i < wanted && ::read(fds[0], &r, sizeof r) == sizeof r; ++i)
    take(r);
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  while (::read(fds[0], &r, sizeof r) == sizeof r)  // reports sent before the kill
    take(r);
  ::close(fds[0]);
  return WIFSIGNALED(status);
}

} // namespace levee::test
