// Dispatcher delivers stored notifications by email and webhook on its own thread, so that
// the code raising a notification never waits on a mail server or an HTTP receiver.
//  - Deliver() only queues. The queue holds at most `max_queued` notifications; when it is
//    over, the oldest queued one is dropped with a warning.
//  - One worker thread takes notifications in order. Per notification: one email to all of
//    its `emails` (if SMTP is configured and the notification's timer allows), then one POST
//    of it as JSON to every webhook, each retried with exponential backoff.
//  - Email suppression: after an email for notification id N is sent, none is sent for N
//    until `timer_s` seconds have passed (by the Clock). With timer_s 0 every occurrence is
//    emailed. A failed send does not start the timer.
//  - Failures never reach the caller; they are logged as warnings.
//  - Shutdown() lets the notification in progress finish (its sends run; backoff waits
//    end and no further retries start), discards the rest of the queue, and joins the
//    thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "notify/mailer.h"

namespace berth {

struct NotificationMessage {
  int64_t id = 0;
  std::string project;
  std::string service;
  std::string version;
  std::string severity;  // INFO WARNING CRITICAL
  std::string message;
  int64_t count = 1;                // times seen (deduplicated)
  std::string first_at;             // RFC 3339
  std::string last_at;              // RFC 3339
  std::vector<std::string> emails;  // recipients; empty: no email
  int timer_s = 0;  // at most one email per this many seconds for this notification id
};

struct DispatcherOptions {
  SmtpSettings smtp;                  // smtp.enabled() false: no email is sent
  std::vector<std::string> webhooks;  // http:// or https:// URLs, each gets every notification
  int webhook_attempts = 3;           // tries per webhook and notification, at least 1
  std::chrono::milliseconds retry_base{500};  // wait before the 2nd try; doubles after each
  std::chrono::seconds timeout{10};           // per webhook request
  size_t max_queued = 1000;  // notifications waiting; beyond this the oldest is dropped
};

// Thread-safe. Starts its worker thread in the constructor.
class Dispatcher {
 public:
  // `clock` is not owned and must outlive the Dispatcher; nullptr means a RealClock.
  explicit Dispatcher(DispatcherOptions options, Clock* clock = nullptr);
  ~Dispatcher();  // Shutdown()
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Queues `n` for delivery and returns at once. After Shutdown() it is ignored.
  void Deliver(NotificationMessage n);

  // Finishes the notification in progress, drops the queued ones, and stops the thread.
  // Idempotent; concurrent callers all return once the thread has stopped.
  void Shutdown();

  // For tests: blocks until the queue is empty and no delivery is in progress.
  void Flush();

 private:
  void Run(std::stop_token stop);
  void Process(const NotificationMessage& n, std::stop_token stop);
  void SendEmailFor(const NotificationMessage& n);
  void PostToWebhook(const std::string& url, const std::string& body, int64_t id,
                     std::stop_token stop);

  const DispatcherOptions options_;
  std::unique_ptr<Clock> own_clock_;  // set when no clock was given
  Clock* const clock_;

  std::mutex mu_;
  std::condition_variable_any work_cv_;    // queue_ gained an item, or stop was requested
  std::condition_variable idle_cv_;        // queue_ empty and !busy_
  std::deque<NotificationMessage> queue_;  // GUARDED_BY(mu_)
  bool busy_ = false;                      // GUARDED_BY(mu_): the worker is delivering one
  bool stopped_ = false;                   // GUARDED_BY(mu_): Shutdown() has begun

  // Worker thread only.
  std::map<int64_t, Clock::TimePoint> email_quiet_until_;
  std::set<int64_t> warned_no_smtp_;

  std::once_flag shutdown_once_;
  std::jthread worker_;  // last: starts after everything above is built
};

}  // namespace berth
