// Notifications, shown on the platform's dashboard and mailed to `emails`.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace berth {

enum class Severity {
  kInfo,      // "INFO"
  kWarning,   // "WARNING"
  kCritical,  // "CRITICAL"
};

// Queues a notification and returns at once: a background thread POSTs
//   {"message", "severity", "service", "version", "instance", "emails", "timer"}
// to $BERTH_URL/api/v1/notifications with "Authorization: Bearer $BERTH_TOKEN", trying three
// times. `timer_s` (the seconds during which the platform suppresses repeats) is passed
// through as "timer". The notification is also logged, "notification (WARNING): ...", at the
// matching level. Without $BERTH_URL only that line is written. Never blocks and never throws:
// when the queue (64 notifications) is full, or the platform cannot be reached, a warning is
// logged instead. Notifications still queued when the process exits get up to two seconds.
void notify(std::string_view message, Severity severity = Severity::kInfo,
            std::vector<std::string> emails = {}, int timer_s = 0);

}  // namespace berth
