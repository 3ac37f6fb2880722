// What a daemon thread says about itself to the kernel: a name (shown by top -H, ps -L, perf
// and /proc/PID/task/TID/comm, so that an operator can tell which part uses the CPU) and, for
// threads doing bulk work, a lower priority, so that the threads answering reads are
// scheduled first when the cores are busy.
#pragma once

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace berth {

// Up to 15 characters are kept (the kernel's limit).
inline void NameThisThread(const std::string& name) {
  (void)::pthread_setname_np(::pthread_self(), name.substr(0, 15).c_str());
}

// Raises this thread's nice value by `delta` (Linux keeps one per thread). Processes this
// thread forks inherit it.
inline void LowerThisThreadPriority(int delta) {
  errno = 0;
  int now = ::getpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()));
  if (errno == 0) {
    (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), now + delta);
  }
}

}  // namespace berth
