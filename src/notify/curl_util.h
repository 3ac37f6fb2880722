// Pieces shared by the libcurl users in notify (mailer.cc, webhook.cc). Not for other modules.
#pragma once

#include <curl/curl.h>

#include <memory>
#include <string>
#include <string_view>

namespace berth::notify_internal {

struct CurlEasyDeleter {
  void operator()(CURL* h) const { curl_easy_cleanup(h); }
};
using CurlEasy = std::unique_ptr<CURL, CurlEasyDeleter>;

struct CurlSlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using CurlSlist = std::unique_ptr<curl_slist, CurlSlistDeleter>;

// A fresh easy handle, with libcurl's global state initialized once per process. Aborts if
// libcurl cannot initialize (out of memory): there is nothing to continue with.
CurlEasy NewCurlEasy();

// Appends `item` to `list`; aborts on allocation failure.
void SlistAppend(CurlSlist& list, const std::string& item);

// "<error buffer or curl_easy_strerror(code)>", for Status messages.
std::string CurlErrorText(CURLcode code, const char* error_buffer);

// `url` without user:password@ and without its query string or fragment, which are where
// credentials and tokens usually hide, so it can go into logs and Status messages.
std::string RedactUrl(std::string_view url);

// True if `s` starts with `prefix`, ignoring ASCII case.
bool StartsWithNoCase(std::string_view s, std::string_view prefix);

}  // namespace berth::notify_internal
