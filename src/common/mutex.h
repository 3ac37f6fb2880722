// Mutex and MutexLock: std::mutex with clang's thread-safety annotations, so that lock
// contracts (`GUARDED_BY(mu_)`, `REQUIRES(mu_)`, `EXCLUDES(mu_)`) are checked by the compiler
// (-Wthread-safety in the clang build) instead of written as comments. libstdc++'s own mutex
// carries no annotations, which is why this wrapper exists. Under g++ the macros expand to
// nothing.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define BERTH_TSA(x) __attribute__((x))
#else
#define BERTH_TSA(x)
#endif

#define CAPABILITY(x) BERTH_TSA(capability(x))
#define SCOPED_CAPABILITY BERTH_TSA(scoped_lockable)
#define GUARDED_BY(x) BERTH_TSA(guarded_by(x))
#define PT_GUARDED_BY(x) BERTH_TSA(pt_guarded_by(x))
#define ACQUIRED_BEFORE(...) BERTH_TSA(acquired_before(__VA_ARGS__))
#define REQUIRES(...) BERTH_TSA(requires_capability(__VA_ARGS__))
#define ACQUIRE(...) BERTH_TSA(acquire_capability(__VA_ARGS__))
#define RELEASE(...) BERTH_TSA(release_capability(__VA_ARGS__))
#define EXCLUDES(...) BERTH_TSA(locks_excluded(__VA_ARGS__))
#define RETURN_CAPABILITY(x) BERTH_TSA(lock_returned(x))
#define NO_THREAD_SAFETY_ANALYSIS BERTH_TSA(no_thread_safety_analysis)

namespace berth {

class CAPABILITY("mutex") Mutex {
 public:
  void Lock() ACQUIRE() { mu_.lock(); }
  void Unlock() RELEASE() { mu_.unlock(); }
  // For std::condition_variable_any, which locks and unlocks through these names.
  void lock() ACQUIRE() { mu_.lock(); }
  void unlock() RELEASE() { mu_.unlock(); }

 private:
  std::mutex mu_;
};

// Holds `mu` for its scope; Unlock/Lock let a scope step out of the lock for slow work.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) ACQUIRE(mu) : mu_(mu) { mu_.Lock(); }
  ~MutexLock() RELEASE() {
    if (held_) {
      mu_.Unlock();
    }
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  void Unlock() RELEASE() {
    held_ = false;
    mu_.Unlock();
  }
  void Lock() ACQUIRE() {
    mu_.Lock();
    held_ = true;
  }

 private:
  Mutex& mu_;
  bool held_ = true;
};

// A condition variable over Mutex. Wait* must be called with the mutex held (through a
// MutexLock); the analysis treats the mutex as held throughout, which it is on return.
class CondVar {
 public:
  void NotifyAll() { cv_.notify_all(); }
  void NotifyOne() { cv_.notify_one(); }
  template <class Pred>
  void WaitFor(Mutex& mu, std::chrono::steady_clock::duration d, Pred pred) REQUIRES(mu) {
    cv_.wait_for(mu, d, pred);
  }
  void WaitUntil(Mutex& mu, std::chrono::steady_clock::time_point t) REQUIRES(mu) {
    cv_.wait_until(mu, t);
  }

 private:
  std::condition_variable_any cv_;
};

}  // namespace berth
