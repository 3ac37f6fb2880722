// Notifier delivers berth::notify's notifications to the platform from one background thread,
// so that the caller never waits for the network; each is tried three times. The queue is
// bounded: when the platform is slow or down, notifications are dropped with a warning
// instead of piling up.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "berth/notify.h"
#include "status.h"

namespace berth::sdk {

struct NotifierOptions {
  std::string url;  // BERTH_URL, "http://host[:port][/prefix]"; "" to only log
  std::string token;
  std::string service;
  std::string version;
  std::string instance;
  std::size_t capacity = 64;
  std::chrono::milliseconds timeout{5000};     // per notification
  std::chrono::milliseconds exit_grace{2000};  // for what is queued at destruction
  // Waits before the second and third attempts; a 4xx answer is not retried.
  std::vector<std::chrono::milliseconds> retry_backoff{std::chrono::milliseconds(500),
                                                       std::chrono::milliseconds(1000)};
};

struct Notification {
  std::string message;
  Severity severity = Severity::kInfo;
  std::vector<std::string> emails;
  int timer_s = 0;
};

// "INFO", "WARNING" or "CRITICAL".
std::string_view SeverityName(Severity severity);

class Notifier {
 public:
  explicit Notifier(NotifierOptions options);
  // Gives what is still queued `exit_grace` to go out, then joins the thread.
  ~Notifier();
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  // Queues `n` for delivery and returns at once; the thread starts with the first one. Returns
  // false, after logging a warning, when the queue is full or there is no URL to send to.
  // Thread-safe; never throws.
  bool Post(Notification n);

  // The JSON body POSTed for `n`.
  std::string Body(const Notification& n) const;

 private:
  void Loop();
  Status Send(const Notification& n, std::chrono::milliseconds timeout);

  const NotifierOptions options_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<Notification> queue_;                       // GUARDED_BY(mu_)
  bool stopping_ = false;                                // GUARDED_BY(mu_)
  std::chrono::steady_clock::time_point exit_deadline_;  // GUARDED_BY(mu_)
  std::thread thread_;                                   // started under mu_
};

// The process's Notifier, configured from BERTH_URL, BERTH_TOKEN, BERTH_SERVICE,
// BERTH_VERSION and BERTH_INSTANCE when first used.
Notifier& ProcessNotifier();

}  // namespace berth::sdk
