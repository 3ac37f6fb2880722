#include "common/clock.h"

#include <condition_variable>
#include <mutex>

namespace berth {

Clock::TimePoint RealClock::Now() { return std::chrono::steady_clock::now(); }

void RealClock::SleepFor(std::chrono::milliseconds duration, std::stop_token stop) {
  // Nothing ever notifies this condition variable: the wait ends at the deadline or when the
  // stop token fires, which condition_variable_any observes by itself.
  std::mutex mu;
  std::condition_variable_any cv;
  std::unique_lock lock(mu);
  cv.wait_for(lock, stop, duration, [] { return false; });
}

}  // namespace berth
