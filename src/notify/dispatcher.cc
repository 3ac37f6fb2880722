#include "notify/dispatcher.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <utility>

#include "common/log.h"
#include "notify/curl_util.h"
#include "notify/webhook.h"

namespace berth {
namespace {

// Suppression entries whose timer ran out are swept once the map grows past this.
constexpr size_t kQuietSweepSize = 1024;
constexpr size_t kSubjectMessageChars = 60;

// The first `n` code points of UTF-8 `s` (bytes, if it is not UTF-8).
std::string_view PrefixChars(std::string_view s, size_t n) {
  size_t chars = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    bool starts_char = (static_cast<unsigned char>(s[i]) & 0xC0) != 0x80;
    if (starts_char && chars++ == n) {
      return s.substr(0, i);
    }
  }
  return s;
}

std::string Subject(const NotificationMessage& n) {
  std::string where = n.project + "/" + n.service;
  if (!n.version.empty()) {
    where += " " + n.version;
  }
  return fmt::format("[berth] {} {}: {}", n.severity, where,
                     PrefixChars(n.message, kSubjectMessageChars));
}

std::string Body(const NotificationMessage& n) {
  std::string b = n.message + "\n\n";
  b += "Severity:   " + n.severity + "\n";
  b += "Project:    " + n.project + "\n";
  b += "Service:    " + n.service + "\n";
  if (!n.version.empty()) {
    b += "Version:    " + n.version + "\n";
  }
  b += fmt::format("Seen:       {} {}\n", n.count, n.count == 1 ? "time" : "times");
  b += "First seen: " + n.first_at + "\n";
  b += "Last seen:  " + n.last_at + "\n";
  b += fmt::format("\n-- berth notification #{}\n", n.id);
  return b;
}

std::string Json(const NotificationMessage& n) {
  boost::json::object o;
  o["id"] = n.id;
  o["project"] = n.project;
  o["service"] = n.service;
  o["version"] = n.version;
  o["severity"] = n.severity;
  o["message"] = n.message;
  o["count"] = n.count;
  o["first_at"] = n.first_at;
  o["last_at"] = n.last_at;
  return boost::json::serialize(o);
}

}  // namespace

Dispatcher::Dispatcher(DispatcherOptions options, Clock* clock)
    : options_(std::move(options)),
      own_clock_(clock == nullptr ? std::make_unique<RealClock>() : nullptr),
      clock_(clock == nullptr ? own_clock_.get() : clock),
      worker_([this](std::stop_token stop) { Run(stop); }) {}

Dispatcher::~Dispatcher() { Shutdown(); }

void Dispatcher::Deliver(NotificationMessage n) {
  int64_t dropped_id = 0;
  bool dropped = false;
  {
    std::lock_guard lock(mu_);
    if (stopped_) {
      return;
    }
    queue_.push_back(std::move(n));
    if (queue_.size() > std::max<size_t>(options_.max_queued, 1)) {
      dropped_id = queue_.front().id;
      dropped = true;
      queue_.pop_front();
    }
  }
  work_cv_.notify_one();
  if (dropped) {
    LogWarn(
        "notification queue full; dropped the oldest undelivered notification",
        {{"id", std::to_string(dropped_id)}, {"max_queued", std::to_string(options_.max_queued)}});
  }
}

void Dispatcher::Shutdown() {
  std::call_once(shutdown_once_, [this] {
    {
      std::lock_guard lock(mu_);
      stopped_ = true;
    }
    worker_.request_stop();
    worker_.join();
  });
}

void Dispatcher::Flush() {
  std::unique_lock lock(mu_);
  idle_cv_.wait(lock, [this] { return queue_.empty() && !busy_; });
}

void Dispatcher::Run(std::stop_token stop) {
  std::unique_lock lock(mu_);
  while (true) {
    work_cv_.wait(lock, stop, [this] { return !queue_.empty(); });
    if (stop.stop_requested()) {
      break;
    }
    NotificationMessage n = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    Process(n, stop);
    lock.lock();
    busy_ = false;
    if (queue_.empty()) {
      idle_cv_.notify_all();
    }
  }
  size_t discarded = queue_.size();
  queue_.clear();
  lock.unlock();
  idle_cv_.notify_all();
  if (discarded > 0) {
    LogWarn("notifier stopped with notifications undelivered",
            {{"discarded", std::to_string(discarded)}});
  }
}

void Dispatcher::Process(const NotificationMessage& n, std::stop_token stop) {
  if (!n.emails.empty()) {
    SendEmailFor(n);
  }
  if (!options_.webhooks.empty()) {
    std::string body = Json(n);
    for (const auto& url : options_.webhooks) {
      PostToWebhook(url, body, n.id, stop);
    }
  }
}

void Dispatcher::SendEmailFor(const NotificationMessage& n) {
  if (!options_.smtp.enabled()) {
    if (warned_no_smtp_.insert(n.id).second) {
      LogWarn(
          "notification has email recipients but no SMTP server is configured; "
          "configure smtp to send notification emails",
          {{"id", std::to_string(n.id)}, {"project", n.project}, {"service", n.service}});
    }
    return;
  }
  Clock::TimePoint now = clock_->Now();
  auto quiet = email_quiet_until_.find(n.id);
  if (quiet != email_quiet_until_.end() && now < quiet->second) {
    return;
  }
  Status s = SendEmail(options_.smtp, Email{n.emails, Subject(n), Body(n)});
  if (!s.ok()) {
    LogWarn("notification email not sent", {{"id", std::to_string(n.id)}, {"error", s.ToString()}});
    return;
  }
  if (n.timer_s > 0) {
    email_quiet_until_[n.id] = now + std::chrono::seconds(n.timer_s);
  } else if (quiet != email_quiet_until_.end()) {
    email_quiet_until_.erase(quiet);
  }
  if (email_quiet_until_.size() > kQuietSweepSize) {
    std::erase_if(email_quiet_until_, [now](const auto& entry) { return entry.second <= now; });
  }
}

void Dispatcher::PostToWebhook(const std::string& url, const std::string& body, int64_t id,
                               std::stop_token stop) {
  int attempts = std::max(options_.webhook_attempts, 1);
  std::chrono::milliseconds delay = options_.retry_base;
  for (int attempt = 1;; ++attempt) {
    Status s = PostJson(url, body, options_.timeout);
    if (s.ok()) {
      return;
    }
    // A malformed URL will not get better by waiting; neither will a shutdown.
    bool last = attempt >= attempts || s.code() == StatusCode::kInvalidArgument;
    if (!last) {
      clock_->SleepFor(delay, stop);
      delay *= 2;
    }
    if (last || stop.stop_requested()) {
      LogWarn(last ? "webhook delivery failed; giving up"
                   : "webhook delivery failed; not retrying during shutdown",
              {{"id", std::to_string(id)},
               {"url", notify_internal::RedactUrl(url)},
               {"attempts", std::to_string(attempt)},
               {"error", s.ToString()}});
      return;
    }
  }
}

}  // namespace berth
