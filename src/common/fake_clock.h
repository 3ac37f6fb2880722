// A Clock for tests: time stands still until Advance(), and SleepFor returns at once after
// moving time forward and recording how long it was asked to sleep. Thread-safe.
#pragma once

#include <chrono>
#include <mutex>
#include <stop_token>
#include <vector>

#include "common/mutex.h"
#include "common/clock.h"

namespace berth {

class FakeClock final : public Clock {
 public:
  TimePoint Now() override {
    MutexLock lock(mu_);
    return now_;
  }

  void SleepFor(std::chrono::milliseconds duration, std::stop_token /*stop*/) override {
    MutexLock lock(mu_);
    sleeps_.push_back(duration);
    now_ += duration;
  }

  void Advance(std::chrono::steady_clock::duration d) {
    MutexLock lock(mu_);
    now_ += d;
  }

  // Every SleepFor duration so far, in call order.
  std::vector<std::chrono::milliseconds> sleeps() const {
    MutexLock lock(mu_);
    return sleeps_;
  }

 private:
  mutable Mutex mu_;
  TimePoint now_ GUARDED_BY(mu_){std::chrono::hours(1)};
  std::vector<std::chrono::milliseconds> sleeps_ GUARDED_BY(mu_);
};

}  // namespace berth
