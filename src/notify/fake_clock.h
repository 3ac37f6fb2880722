// A Clock for tests: time stands still until Advance(), and SleepFor returns at once after
// moving time forward and recording how long it was asked to sleep. Thread-safe.
#pragma once

#include <chrono>
#include <mutex>
#include <stop_token>
#include <vector>

#include "notify/clock.h"

namespace berth {

class FakeClock final : public Clock {
 public:
  TimePoint Now() override {
    std::lock_guard lock(mu_);
    return now_;
  }

  void SleepFor(std::chrono::milliseconds duration, std::stop_token /*stop*/) override {
    std::lock_guard lock(mu_);
    sleeps_.push_back(duration);
    now_ += duration;
  }

  void Advance(std::chrono::steady_clock::duration d) {
    std::lock_guard lock(mu_);
    now_ += d;
  }

  // Every SleepFor duration so far, in call order.
  std::vector<std::chrono::milliseconds> sleeps() const {
    std::lock_guard lock(mu_);
    return sleeps_;
  }

 private:
  mutable std::mutex mu_;
  TimePoint now_{std::chrono::hours(1)};           // GUARDED_BY(mu_)
  std::vector<std::chrono::milliseconds> sleeps_;  // GUARDED_BY(mu_)
};

}  // namespace berth
