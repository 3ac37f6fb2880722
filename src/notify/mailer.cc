// The message is built whole in memory (notifications are small) and handed to libcurl
// through a read callback; libcurl does the SMTP dialogue, including dot-stuffing. Headers
// stay 7-bit: a non-ASCII or very long subject becomes RFC 2047 encoded words, and the body is
// quoted-printable, so no line exceeds SMTP's 998-octet limit whatever the message holds.
#include "notify/mailer.h"

#include <curl/curl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <ctime>
#include <string_view>

#include "common/crypto.h"
#include "notify/curl_util.h"

namespace berth {
namespace {

using notify_internal::CurlErrorText;
using notify_internal::CurlSlist;
using notify_internal::RedactUrl;
using notify_internal::SlistAppend;
using notify_internal::StartsWithNoCase;

bool ValidAddress(std::string_view a) {
  size_t at = a.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == a.size()) {
    return false;
  }
  for (char c : a) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '<' || c == '>' || c == ',') {
      return false;
    }
  }
  return true;
}

std::string Base64(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v = (static_cast<unsigned char>(in[i]) << 16) |
                 (static_cast<unsigned char>(in[i + 1]) << 8) |
                 static_cast<unsigned char>(in[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  size_t rest = in.size() - i;
  if (rest > 0) {
    uint32_t v = static_cast<unsigned char>(in[i]) << 16;
    if (rest == 2) {
      v |= static_cast<unsigned char>(in[i + 1]) << 8;
    }
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

bool IsUtf8Continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// The Subject value: as is when it is short printable ASCII, else folded RFC 2047 "B" words of
// at most 45 octets each (75 characters encoded), never splitting a UTF-8 sequence.
std::string EncodeSubject(std::string_view subject) {
  std::string clean(subject);
  bool ascii = true;
  for (char& c : clean) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      c = ' ';
    } else if (u >= 0x80) {
      ascii = false;
    }
  }
  if (ascii && clean.size() <= 900) {
    return clean;
  }
  std::string out;
  std::string_view rest = clean;
  while (!rest.empty()) {
    size_t n = std::min<size_t>(45, rest.size());
    while (n < rest.size() && n > 0 && IsUtf8Continuation(rest[n])) {
      --n;
    }
    if (n == 0) {  // not UTF-8 at all; cut anywhere rather than loop
      n = std::min<size_t>(45, rest.size());
    }
    if (!out.empty()) {
      out += "\r\n ";
    }
    out += "=?UTF-8?B?" + Base64(rest.substr(0, n)) + "?=";
    rest.remove_prefix(n);
  }
  return out;
}

// RFC 2045 quoted-printable with CRLF hard line breaks; input line endings may be LF, CRLF
// or CR.
std::string QuotedPrintable(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  size_t line_len = 0;
  auto put = [&](std::string_view token) {
    if (line_len + token.size() > 75) {
      out += "=\r\n";
      line_len = 0;
    }
    out += token;
    line_len += token.size();
  };
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\r' || c == '\n') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
        ++i;
      }
      out += "\r\n";
      line_len = 0;
      continue;
    }
    auto u = static_cast<unsigned char>(c);
    bool at_line_end = i + 1 == text.size() || text[i + 1] == '\r' || text[i + 1] == '\n';
    bool literal = (u >= 33 && u <= 126 && c != '=') || ((c == ' ' || c == '\t') && !at_line_end);
    if (literal) {
      put(std::string_view(&c, 1));
    } else {
      char escaped[3] = {'=', kHex[u >> 4], kHex[u & 15]};
      put(std::string_view(escaped, 3));
    }
  }
  return out;
}

// "Sat, 21 Nov 2026 07:40:00 +0000", independent of the C locale.
std::string RfcDate(std::time_t t) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{}, {:02d} {} {:04d} {:02d}:{:02d}:{:02d} +0000", kDays[tm.tm_wday],
                     tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                     tm.tm_sec);
}

std::string MessageId(std::string_view from, std::time_t t) {
  static std::atomic<uint64_t> counter{0};
  std::string_view domain = from.substr(from.rfind('@') + 1);
  Result<std::string> random = RandomHex(8);
  std::string unique =
      random.ok() ? *random : fmt::format("{}.{}", getpid(), counter.fetch_add(1) + 1);
  return fmt::format("<{}.{}@{}>", t, unique, domain);
}

std::string BuildMessage(const SmtpSettings& settings, const Email& email) {
  std::time_t now = std::time(nullptr);
  std::string to;
  for (const auto& a : email.to) {
    if (!to.empty()) {
      to += ", ";
    }
    to += a;
  }
  std::string m;
  m += "Date: " + RfcDate(now) + "\r\n";
  m += "From: " + settings.from + "\r\n";
  m += "To: " + to + "\r\n";
  m += "Subject: " + EncodeSubject(email.subject) + "\r\n";
  m += "Message-ID: " + MessageId(settings.from, now) + "\r\n";
  m += "MIME-Version: 1.0\r\n";
  m += "Content-Type: text/plain; charset=utf-8\r\n";
  m += "Content-Transfer-Encoding: quoted-printable\r\n";
  m += "\r\n";
  m += QuotedPrintable(email.body);
  if (!m.ends_with("\r\n")) {
    m += "\r\n";
  }
  return m;
}

struct Upload {
  std::string_view data;
};

size_t ReadUpload(char* buffer, size_t size, size_t nitems, void* userdata) {
  auto* upload = static_cast<Upload*>(userdata);
  size_t n = std::min(size * nitems, upload->data.size());
  std::memcpy(buffer, upload->data.data(), n);
  upload->data.remove_prefix(n);
  return n;
}

}  // namespace

Status SendEmail(const SmtpSettings& settings, const Email& email) {
  if (!StartsWithNoCase(settings.url, "smtp://") && !StartsWithNoCase(settings.url, "smtps://")) {
    return Status::InvalidArgument(
        fmt::format("smtp url '{}' is not smtp://host:port or smtps://", RedactUrl(settings.url)));
  }
  if (!ValidAddress(settings.from)) {
    return Status::InvalidArgument(fmt::format("invalid sender address '{}'", settings.from));
  }
  if (email.to.empty()) {
    return Status::InvalidArgument("email has no recipients");
  }
  std::string to_list;
  for (const auto& a : email.to) {
    if (!ValidAddress(a)) {
      return Status::InvalidArgument(fmt::format("invalid email address '{}'", a));
    }
    to_list += to_list.empty() ? a : ", " + a;
  }

  std::string message = BuildMessage(settings, email);
  Upload upload{message};
  std::string mail_from = "<" + settings.from + ">";
  CurlSlist rcpt;
  for (const auto& a : email.to) {
    SlistAppend(rcpt, "<" + a + ">");
  }
  char error[CURL_ERROR_SIZE] = {};

  notify_internal::CurlEasy h = notify_internal::NewCurlEasy();
  CURL* c = h.get();
  curl_easy_setopt(c, CURLOPT_URL, settings.url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(settings.timeout.count() * 1000));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(settings.timeout.count() * 1000));
  curl_easy_setopt(c, CURLOPT_MAIL_FROM, mail_from.c_str());
  curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt.get());
  curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(message.size()));
  curl_easy_setopt(c, CURLOPT_READFUNCTION, ReadUpload);
  curl_easy_setopt(c, CURLOPT_READDATA, &upload);
  if (!settings.user.empty()) {
    curl_easy_setopt(c, CURLOPT_USERNAME, settings.user.c_str());
    curl_easy_setopt(c, CURLOPT_PASSWORD, settings.password.c_str());
  }
  if (settings.starttls) {
    curl_easy_setopt(c, CURLOPT_USE_SSL, static_cast<long>(CURLUSESSL_ALL));
  }

  CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) {
    return Status::Unavailable(fmt::format("sending email to {} via {}: {}", to_list,
                                           RedactUrl(settings.url), CurlErrorText(rc, error)));
  }
  return Status::Ok();
}

}  // namespace berth
