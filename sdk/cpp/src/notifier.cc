// The client side of the platform's notification API: a coroutine on a private io_context per
// notification, so that Beast's per-operation timeouts bound each attempt.
#include "notifier.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
// GCC 12 reports a false -Wmismatched-new-delete for Asio's coroutine frames in some builds
// (-O1 with sanitizers); the frame's operator new and delete do match.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include <cstdlib>
#include <exception>

#include "berth/detail/json_codec.h"
#include "berth/log.h"

namespace berth::sdk {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

struct Endpoint {
  std::string host;
  std::string port = "80";
  std::string base;  // the path before /api/v1/notifications, without a trailing '/'
};

// Accepts "http://host", "http://host:port" and either with a path prefix.
bool ParseUrl(std::string_view url, Endpoint& out, std::string& why) {
  constexpr std::string_view kScheme = "http://";
  if (!url.starts_with(kScheme)) {
    why = url.starts_with("https://")
              ? "BERTH_URL is https, which the C++ SDK's notifier does not speak"
              : "BERTH_URL '" + std::string(url) + "' is not an http:// URL";
    return false;
  }
  url.remove_prefix(kScheme.size());
  std::string_view authority = url.substr(0, url.find('/'));
  out.base = std::string(url.substr(authority.size()));
  while (!out.base.empty() && out.base.back() == '/') {
    out.base.pop_back();
  }
  size_t colon = authority.rfind(':');
  if (colon != std::string_view::npos && authority.find(']', colon) == std::string_view::npos) {
    out.port = std::string(authority.substr(colon + 1));
    authority = authority.substr(0, colon);
  }
  if (authority.size() >= 2 && authority.front() == '[' && authority.back() == ']') {
    authority = authority.substr(1, authority.size() - 2);
  }
  out.host = std::string(authority);
  if (out.host.empty()) {
    why = "BERTH_URL '" + std::string(url) + "' has no host";
    return false;
  }
  return true;
}

asio::awaitable<Status> PostOnce(Endpoint endpoint, std::string host_header, std::string token,
                                 std::string body, std::chrono::milliseconds timeout) {
  auto executor = co_await asio::this_coro::executor;
  tcp::resolver resolver(executor);
  auto [rec, results] = co_await resolver.async_resolve(endpoint.host, endpoint.port, kNoThrow);
  if (rec) {
    co_return Status::Unavailable("cannot resolve " + endpoint.host + ": " + rec.message());
  }
  beast::tcp_stream stream(executor);
  stream.expires_after(timeout);
  auto [cec, connected] = co_await stream.async_connect(results, kNoThrow);
  if (cec) {
    co_return Status::Unavailable("cannot connect to " + host_header + ": " + cec.message());
  }
  http::request<http::string_body> request{http::verb::post,
                                           endpoint.base + "/api/v1/notifications", 11};
  request.set(http::field::host, host_header);
  request.set(http::field::user_agent, "berth-sdk-cpp");
  request.set(http::field::content_type, "application/json");
  if (!token.empty()) {
    request.set(http::field::authorization, "Bearer " + token);
  }
  request.keep_alive(false);
  request.body() = std::move(body);
  request.prepare_payload();
  auto [wec, wn] = co_await http::async_write(stream, request, kNoThrow);
  if (wec) {
    co_return Status::Unavailable("sending to " + host_header + ": " + wec.message());
  }
  beast::flat_buffer buffer;
  http::response<http::string_body> response;
  auto [aec, an] = co_await http::async_read(stream, buffer, response, kNoThrow);
  if (aec) {
    co_return Status::Unavailable("reading the answer of " + host_header + ": " + aec.message());
  }
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  if (response.result_int() >= 300) {
    // A refusal (4xx) will not change on a retry; anything else might.
    std::string text = "the platform answered " + std::to_string(response.result_int()) + ": " +
                       response.body().substr(0, 200);
    bool refused = response.result_int() >= 400 && response.result_int() < 500;
    co_return refused ? Status::InvalidArgument(std::move(text))
                      : Status::Unavailable(std::move(text));
  }
  co_return Status::Ok();
}

}  // namespace

std::string_view SeverityName(Severity severity) {
  switch (severity) {
    case Severity::kInfo:
      return "INFO";
    case Severity::kWarning:
      return "WARNING";
    case Severity::kCritical:
      return "CRITICAL";
  }
  return "INFO";
}

Notifier::Notifier(NotifierOptions options) : options_(std::move(options)) {}

Notifier::~Notifier() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    exit_deadline_ = std::chrono::steady_clock::now() + options_.exit_grace;
  }
  wake_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
}

bool Notifier::Post(Notification n) {
  if (options_.url.empty()) {
    return false;
  }
  std::lock_guard lock(mu_);
  if (queue_.size() >= options_.capacity) {
    log_warning("notification dropped, " + std::to_string(queue_.size()) +
                " are still waiting to be sent: " + n.message);
    return false;
  }
  queue_.push_back(std::move(n));
  if (!thread_.joinable()) {
    try {
      thread_ = std::thread([this] { Loop(); });
    } catch (const std::system_error& e) {
      queue_.pop_back();
      log_warning(std::string("notification dropped, no thread to send it: ") + e.what());
      return false;
    }
  }
  wake_.notify_one();
  return true;
}

std::string Notifier::Body(const Notification& n) const {
  std::string body = R"({"message":)";
  detail::WriteJson(body, n.message);
  body += R"(,"severity":)";
  detail::WriteJson(body, SeverityName(n.severity));
  body += R"(,"service":)";
  detail::WriteJson(body, options_.service);
  body += R"(,"version":)";
  detail::WriteJson(body, options_.version);
  body += R"(,"instance":)";
  detail::WriteJson(body, options_.instance);
  body += R"(,"emails":)";
  detail::WriteJson(body, n.emails);
  body += R"(,"timer":)";
  detail::WriteJson(body, n.timer_s);
  body += '}';
  return body;
}

void Notifier::Loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) {
      return;
    }
    auto timeout = options_.timeout;
    if (stopping_) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          exit_deadline_ - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        log_warning("exiting with " + std::to_string(queue_.size()) + " notifications not sent");
        return;
      }
      timeout = std::min(timeout, left);
    }
    Notification n = std::move(queue_.front());
    queue_.pop_front();
    Status s;
    for (size_t attempt = 0;; ++attempt) {
      lock.unlock();
      s = Send(n, timeout);
      lock.lock();
      if (s.ok() || s.code() == StatusCode::kInvalidArgument || stopping_ ||
          attempt == options_.retry_backoff.size()) {
        break;
      }
      // Waits before the next attempt, unless the process is exiting.
      if (wake_.wait_for(lock, options_.retry_backoff[attempt], [this] { return stopping_; })) {
        break;
      }
    }
    if (!s.ok()) {
      log_warning("notification not delivered (" + s.message() + "): " + n.message);
    }
  }
}

Status Notifier::Send(const Notification& n, std::chrono::milliseconds timeout) {
  Endpoint endpoint;
  std::string why;
  if (!ParseUrl(options_.url, endpoint, why)) {
    return Status::Unavailable(why);
  }
  std::string host_header = endpoint.host + (endpoint.port == "80" ? "" : ":" + endpoint.port);
  Status result = Status::Unavailable("the request did not finish");
  try {
    asio::io_context ioc;
    asio::co_spawn(ioc, PostOnce(endpoint, host_header, options_.token, Body(n), timeout),
                   [&result](const std::exception_ptr& e, Status s) {
                     if (!e) {
                       result = std::move(s);
                     }
                   });
    ioc.run();
  } catch (const std::exception& e) {
    result = Status::Unavailable(e.what());
  }
  return result;
}

Notifier& ProcessNotifier() {
  static Notifier notifier([] {
    auto env = [](const char* name) {
      const char* v = std::getenv(name);
      return std::string(v != nullptr ? v : "");
    };
    NotifierOptions o;
    o.url = env("BERTH_URL");
    o.token = env("BERTH_TOKEN");
    o.service = env("BERTH_SERVICE");
    o.version = env("BERTH_VERSION");
    o.instance = env("BERTH_INSTANCE");
    return o;
  }());
  return notifier;
}

}  // namespace berth::sdk

namespace berth {

void notify(std::string_view message, Severity severity, std::vector<std::string> emails,
            int timer_s) {
  std::string line = "notification (";
  line += sdk::SeverityName(severity);
  line += "): ";
  line += message;
  switch (severity) {
    case Severity::kInfo:
      log_info(line);
      break;
    case Severity::kWarning:
      log_warning(line);
      break;
    case Severity::kCritical:
      log_error(line);
      break;
  }
  try {
    sdk::ProcessNotifier().Post(
        sdk::Notification{std::string(message), severity, std::move(emails), timer_s});
  } catch (const std::exception& e) {
    log_warning(std::string("notification dropped: ") + e.what());
  }
}

}  // namespace berth
