#include "notify/curl_util.h"

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace berth::notify_internal {

CurlEasy NewCurlEasy() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      std::abort();
    }
  });
  CurlEasy h(curl_easy_init());
  if (h == nullptr) {
    std::abort();
  }
  return h;
}

void SlistAppend(CurlSlist& list, const std::string& item) {
  curl_slist* grown = curl_slist_append(list.get(), item.c_str());
  if (grown == nullptr) {
    std::abort();
  }
  (void)list.release();  // `grown` is the same list, extended (or a new one when it was empty)
  list.reset(grown);
}

std::string CurlErrorText(CURLcode code, const char* error_buffer) {
  if (error_buffer != nullptr && error_buffer[0] != '\0') {
    std::string text = error_buffer;
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
      text.pop_back();
    }
    return text;
  }
  return curl_easy_strerror(code);
}

std::string RedactUrl(std::string_view url) {
  size_t cut = url.find_first_of("?#");
  if (cut != std::string_view::npos) {
    url = url.substr(0, cut);
  }
  size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) {
    return std::string(url);
  }
  size_t host_start = scheme_end + 3;
  size_t authority_end = url.find('/', host_start);
  std::string_view authority = url.substr(
      host_start, authority_end == std::string_view::npos ? url.npos : authority_end - host_start);
  size_t at = authority.rfind('@');
  if (at == std::string_view::npos) {
    return std::string(url);
  }
  std::string out(url.substr(0, host_start));
  out += url.substr(host_start + at + 1);
  return out;
}

bool StartsWithNoCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) {
    return false;
  }
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) !=
        std::tolower(static_cast<unsigned char>(prefix[i]))) {
      return false;
    }
  }
  return true;
}

}  // namespace berth::notify_internal
