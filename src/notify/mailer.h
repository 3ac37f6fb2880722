// Outgoing email over SMTP (libcurl): one plain-text UTF-8 message per call, no queueing.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/status.h"

namespace berth {

struct SmtpSettings {
  std::string url;                   // smtp://host:port or smtps://host:port (implicit TLS)
  std::string from;                  // envelope sender and From: header, "berth@example.com"
  std::string user;                  // SMTP AUTH, when set
  std::string password;              // never logged, never part of a Status message
  bool starttls = false;             // require STARTTLS on smtp://; fail rather than send in clear
  std::chrono::seconds timeout{10};  // whole exchange, connecting included

  // True once a server is configured (`url` set).
  bool enabled() const { return !url.empty(); }
};

struct Email {
  std::vector<std::string> to;  // bare addresses, "ops@example.com"
  std::string subject;          // UTF-8; control characters become spaces
  std::string body;             // UTF-8 plain text; any line endings
};

// Sends `email` to all of `email.to` in one SMTP transaction, as an RFC 5322 message with
// Date, From, To, Subject, Message-ID and a quoted-printable text/plain; charset=utf-8 body.
// Blocks for up to `settings.timeout`. Thread-safe: each call has its own connection.
// Returns InvalidArgument, before connecting, if the URL is not smtp:// or smtps://, there
// are no recipients, or an address (from or to) is not local@domain or holds whitespace,
// control characters or <>; the message names the address. Returns Unavailable when the
// server cannot be reached, TLS or AUTH fails, or the server refuses the mail:
// "sending email to a@b via smtp://host:25: <reason>".
Status SendEmail(const SmtpSettings& settings, const Email& email);

}  // namespace berth
