#include "notify/webhook.h"

#include <curl/curl.h>
#include <fmt/format.h>

#include "notify/curl_util.h"

namespace berth {
namespace {

using notify_internal::CurlErrorText;
using notify_internal::CurlSlist;
using notify_internal::RedactUrl;
using notify_internal::SlistAppend;
using notify_internal::StartsWithNoCase;

// Receivers' answers are not used; reading them keeps the connection orderly.
size_t DiscardBody(char* /*data*/, size_t size, size_t nmemb, void* /*userdata*/) {
  return size * nmemb;
}

}  // namespace

Status PostJson(const std::string& url, const std::string& json_body,
                std::chrono::seconds timeout) {
  if (!StartsWithNoCase(url, "http://") && !StartsWithNoCase(url, "https://")) {
    return Status::InvalidArgument(
        fmt::format("webhook url '{}' is not http:// or https://", RedactUrl(url)));
  }
  CurlSlist headers;
  SlistAppend(headers, "Content-Type: application/json");
  // Without this libcurl waits up to a second for "100 Continue" before larger bodies.
  SlistAppend(headers, "Expect:");
  char error[CURL_ERROR_SIZE] = {};

  notify_internal::CurlEasy h = notify_internal::NewCurlEasy();
  CURL* c = h.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count() * 1000));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout.count() * 1000));
  curl_easy_setopt(c, CURLOPT_USERAGENT, "berth");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, json_body.data());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(json_body.size()));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, DiscardBody);

  CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) {
    return Status::Unavailable(
        fmt::format("posting webhook to {}: {}", RedactUrl(url), CurlErrorText(rc, error)));
  }
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (status < 200 || status > 299) {
    return Status::Unavailable(
        fmt::format("posting webhook to {}: HTTP {}", RedactUrl(url), status));
  }
  return Status::Ok();
}

}  // namespace berth
