// Time as a seam: the supervisor times backoff, drains and rollouts, and the dispatcher its
// email suppression timers and webhook retries, through a Clock, so tests can drive them with
// FakeClock (fake_clock.h) instead of sleeping.
#pragma once

#include <chrono>
#include <stop_token>

namespace berth {

class Clock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  virtual ~Clock() = default;

  // Monotonic time; only differences between two calls mean anything.
  virtual TimePoint Now() = 0;

  // Blocks for `duration`, or until `stop` is requested, whichever comes first.
  virtual void SleepFor(std::chrono::milliseconds duration, std::stop_token stop) = 0;
};

// std::chrono::steady_clock, and real sleeps that a stop request cuts short. Thread-safe.
class RealClock final : public Clock {
 public:
  TimePoint Now() override;
  void SleepFor(std::chrono::milliseconds duration, std::stop_token stop) override;
};

}  // namespace berth
