// A process is named by its pid and its start time: a pid alone may have been reused by the
// time a restarted daemon looks at it again (systemd and procps pair them the same way).
// Free of berth's libraries, as the shim links it (src/runtime/CMakeLists.txt).
#pragma once

#include <cstdint>
#include <optional>

namespace berth {

// When `pid` started, in clock ticks since boot (field 22 of /proc/PID/stat); nullopt when
// there is no such process.
std::optional<uint64_t> ProcessStartTicks(int pid);

}  // namespace berth
