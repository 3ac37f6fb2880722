#include "gateway/http_head.h"

#include <array>
#include <charconv>

namespace berth {
namespace {

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

// Without the optional whitespace (SP, HTAB) around it (RFC 9110 §5.6.3).
std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

// Calls `visit` with each item of a comma-separated list ("keep-alive, Upgrade"), trimmed, until
// it returns false (then false) or the list ends.
template <typename Visit>
bool EachListItem(std::string_view list, Visit visit) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    if (!visit(TrimOws(list.substr(0, comma)))) {
      return false;
    }
    if (comma == std::string_view::npos) {
      break;
    }
    list.remove_prefix(comma + 1);
  }
  return true;
}

bool ContainsToken(std::string_view list, std::string_view token) {  // case-insensitive
  return !EachListItem(list, [&](std::string_view item) { return !EqualsIgnoreCase(item, token); });
}

// RFC 9110 §5.6.2: the characters of a token (methods, field names).
constexpr std::array<bool, 256> kTokenChars = [] {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = t[c - 32] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}();

bool IsToken(std::string_view s) {
  if (s.empty()) {
    return false;
  }
  for (char c : s) {
    if (!kTokenChars[static_cast<unsigned char>(c)]) {
      return false;
    }
  }
  return true;
}

// A control character other than HTAB (CR, LF and NUL among them): never valid in a field
// value (RFC 9110 §5.5), a chunk extension or a trailer.
bool IsForbiddenControl(char c) {
  auto u = static_cast<unsigned char>(c);
  return (u < 0x20 && u != '\t') || u == 0x7f;
}

bool HasForbiddenControl(std::string_view s) {
  for (char c : s) {
    if (IsForbiddenControl(c)) {
      return true;
    }
  }
  return false;
}

// The request target: visible characters only (no controls, spaces or DEL).
bool IsValidTarget(std::string_view s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) {
      return false;
    }
  }
  return !s.empty();
}

ParseResult Invalid(MessageHead& head, std::string_view why) {
  head.error = why;
  return ParseResult::kInvalid;
}

// The next line at `pos`, without its CRLF (or bare LF, which RFC 9112 §2.2 lets a recipient
// accept); nullopt until it is complete. A CR anywhere else in it is left in, for the callers
// to refuse.
std::optional<std::string_view> NextLine(std::string_view data, size_t& pos) {
  size_t eol = data.find('\n', pos);
  if (eol == std::string_view::npos) {
    return std::nullopt;
  }
  std::string_view line = data.substr(pos, eol - pos);
  if (!line.empty() && line.back() == '\r') {
    line.remove_suffix(1);
  }
  pos = eol + 1;
  return line;
}

// Transfer-Encoding: `value` is one field line's list of codings. Requests may carry exactly one
// coding, chunked (nothing else is relayed, and anything else is how requests are smuggled);
// responses may carry others as long as chunked is the last.
ParseResult TakeTransferEncoding(std::string_view value, bool request, MessageHead& head) {
  if (value.empty()) {
    return Invalid(head, "an empty Transfer-Encoding");
  }
  std::string_view why;
  EachListItem(value, [&](std::string_view item) {
    if (head.chunked) {
      why = "a transfer coding after chunked";
    } else if (EqualsIgnoreCase(item, "chunked")) {
      head.chunked = true;
    } else if (request) {
      why = "a Transfer-Encoding other than chunked";
    } else if (!IsToken(item)) {
      why = "an invalid transfer coding";
    }
    return why.empty();
  });
  if (!why.empty()) {
    return Invalid(head, why);
  }
  if (!head.chunked) {
    return Invalid(head, "a Transfer-Encoding whose last coding is not chunked");
  }
  return ParseResult::kComplete;
}

// Parses the header fields after the first line; `pos` points at the first field line.
ParseResult ParseFields(std::string_view data, size_t pos, bool request, MessageHead& head) {
  int hosts = 0;
  bool transfer_encoding = false;
  while (true) {
    std::optional<std::string_view> next = NextLine(data, pos);
    if (!next) {
      return ParseResult::kIncomplete;
    }
    std::string_view line = *next;
    if (line.empty()) {
      head.head_bytes = pos;
      if (request && hosts > 1) {
        return Invalid(head, "more than one Host field");
      }
      if (request && hosts == 0 && head.version_minor == 1) {
        return Invalid(head, "an HTTP/1.1 request without a Host field");
      }
      if (head.chunked && head.content_length) {
        if (request) {
          return Invalid(head, "both Content-Length and Transfer-Encoding");
        }
        head.content_length.reset();  // RFC 9112 §6.3: Transfer-Encoding wins
      }
      return ParseResult::kComplete;
    }
    if (line.front() == ' ' || line.front() == '\t') {
      return Invalid(head, "a folded header line (obs-fold)");
    }
    if (line.find('\r') != std::string_view::npos) {
      return Invalid(head, "a bare CR (not followed by LF) in a header line");
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      return Invalid(head, "a header line without a colon");
    }
    std::string_view name = line.substr(0, colon);
    if (!IsToken(name)) {
      // Whitespace before the colon is a smuggling vector; so are controls in names.
      return Invalid(head, "an invalid header field name");
    }
    if (head.field_count == kMaxHeaderFields) {
      return ParseResult::kTooManyFields;
    }
    std::string_view value = TrimOws(line.substr(colon + 1));
    if (HasForbiddenControl(value)) {
      return Invalid(head, "a CR, LF, NUL or other control character in a header value");
    }
    head.fields[head.field_count++] = {name, value};
    switch (Lower(name[0])) {
      case 'c':
        if (EqualsIgnoreCase(name, "content-length")) {
          uint64_t n = 0;
          auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
          if (ec != std::errc() || p != value.data() + value.size() || value.empty()) {
            return Invalid(head, "a Content-Length that is not one decimal number");
          }
          if (head.content_length && *head.content_length != n) {
            return Invalid(head, "two different Content-Length values");
          }
          head.content_length = n;
        } else if (EqualsIgnoreCase(name, "connection")) {
          head.connection_close |= ContainsToken(value, "close");
          head.connection_upgrade |= ContainsToken(value, "upgrade");
          if (ContainsToken(value, "keep-alive")) {
            head.connection_close = false;
          }
        }
        break;
      case 'h':
        if (EqualsIgnoreCase(name, "host")) {
          ++hosts;
        }
        break;
      case 't':
        if (EqualsIgnoreCase(name, "transfer-encoding")) {
          if (request && transfer_encoding) {
            return Invalid(head, "more than one Transfer-Encoding field");
          }
          transfer_encoding = true;
          if (ParseResult r = TakeTransferEncoding(value, request, head);
              r != ParseResult::kComplete) {
            return r;
          }
        }
        break;
      case 'e':
        if (EqualsIgnoreCase(name, "expect") && EqualsIgnoreCase(value, "100-continue")) {
          head.expect_continue = true;
        }
        break;
      default:
        break;
    }
  }
}

bool ParseVersion(std::string_view v, MessageHead& head) {
  if (v == "HTTP/1.1") {
    head.version_minor = 1;
    return true;
  }
  if (v == "HTTP/1.0") {
    head.version_minor = 0;
    head.connection_close = true;
    return true;
  }
  return false;
}

void ResetHead(MessageHead& head) {
  head.field_count = 0;
  head.head_bytes = 0;
  head.status = 0;
  head.error = {};
  head.content_length.reset();
  head.chunked = head.connection_close = head.connection_upgrade = head.expect_continue = false;
}

}  // namespace

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) {
      return false;
    }
  }
  return true;
}

std::string_view MessageHead::Get(std::string_view name) const {
  for (size_t i = 0; i < field_count; ++i) {
    if (EqualsIgnoreCase(fields[i].name, name)) {
      return fields[i].value;
    }
  }
  return {};
}

ParseResult ParseRequestHead(std::string_view data, MessageHead& head) {
  ResetHead(head);
  size_t pos = 0;
  std::optional<std::string_view> next = NextLine(data, pos);
  if (!next) {
    return ParseResult::kIncomplete;
  }
  // request-line = method SP request-target SP HTTP-version, single spaces (RFC 9112 §3).
  std::string_view line = *next;
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) {
    return Invalid(head, "a request line that is not 'METHOD target HTTP/1.1'");
  }
  head.method = line.substr(0, sp1);
  head.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (!IsToken(head.method)) {
    return Invalid(head, "an invalid method");
  }
  if (!IsValidTarget(head.target)) {
    return Invalid(head, "a request target with a control character, a space or nothing");
  }
  if (!ParseVersion(line.substr(sp2 + 1), head)) {
    return Invalid(head, "an HTTP version other than HTTP/1.1 or HTTP/1.0");
  }
  bool http10 = head.version_minor == 0;
  ParseResult r = ParseFields(data, pos, true, head);
  if (r != ParseResult::kComplete) {
    return r;
  }
  if (http10 && EqualsIgnoreCase(head.Get("connection"), "keep-alive")) {
    head.connection_close = false;
  }
  return ParseResult::kComplete;
}

ParseResult ParseResponseHead(std::string_view data, MessageHead& head) {
  ResetHead(head);
  size_t pos = 0;
  std::optional<std::string_view> next = NextLine(data, pos);
  if (!next) {
    return ParseResult::kIncomplete;
  }
  std::string_view line = *next;
  if (line.size() < 12 || line[8] != ' ' || (line.size() > 12 && line[12] != ' ') ||
      HasForbiddenControl(line)) {
    return Invalid(head, "a status line that is not 'HTTP/1.1 NNN reason'");
  }
  int status = 0;
  auto [p, ec] = std::from_chars(line.data() + 9, line.data() + 12, status);
  if (ec != std::errc() || p != line.data() + 12 || status < 100) {
    return Invalid(head, "a status code that is not three digits");
  }
  head.status = status;
  if (!ParseVersion(line.substr(0, 8), head)) {
    return Invalid(head, "an HTTP version other than HTTP/1.1 or HTTP/1.0");
  }
  bool http10 = head.version_minor == 0;
  ParseResult r = ParseFields(data, pos, false, head);
  if (r != ParseResult::kComplete) {
    return r;
  }
  if (http10 && EqualsIgnoreCase(head.Get("connection"), "keep-alive")) {
    head.connection_close = false;
  }
  return ParseResult::kComplete;
}

size_t ChunkedTracker::Feed(std::string_view data) {
  size_t i = 0;
  while (i < data.size() && state_ != State::kDone && state_ != State::kInvalid) {
    char c = data[i];
    switch (state_) {
      case State::kSize: {
        int digit = (c >= '0' && c <= '9')   ? c - '0'
                    : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                    : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                             : -1;
        if (digit >= 0) {
          if (++size_digits_ > 15) {
            state_ = State::kInvalid;
            break;
          }
          remaining_ = remaining_ * 16 + static_cast<uint64_t>(digit);
        } else if (size_digits_ > 0 && c == ';') {
          state_ = State::kSizeExt;
        } else if (size_digits_ > 0 && (c == ' ' || c == '\t')) {
          state_ = State::kSizeBws;
        } else if (size_digits_ > 0 && c == '\r') {
          state_ = State::kSizeLf;
        } else {
          state_ = State::kInvalid;
        }
        ++i;
        break;
      }
      case State::kSizeBws:
        state_ = c == ';' ? State::kSizeExt : (c == ' ' || c == '\t') ? state_ : State::kInvalid;
        ++i;
        break;
      case State::kSizeExt:
        if (c == '\r') {
          state_ = State::kSizeLf;
        } else if (IsForbiddenControl(c)) {
          state_ = State::kInvalid;
        }
        ++i;
        break;
      case State::kSizeLf:
        if (c != '\n') {
          state_ = State::kInvalid;
          break;
        }
        ++i;
        state_ = remaining_ == 0 ? State::kTrailer : State::kData;
        break;
      case State::kData: {
        uint64_t take = std::min<uint64_t>(remaining_, data.size() - i);
        i += take;
        remaining_ -= take;
        if (remaining_ == 0) {
          state_ = State::kDataCr;
        }
        break;
      }
      case State::kDataCr:
        state_ = c == '\r' ? State::kDataLf : State::kInvalid;
        ++i;
        break;
      case State::kDataLf:
        if (c != '\n') {
          state_ = State::kInvalid;
          break;
        }
        ++i;
        state_ = State::kSize;
        size_digits_ = 0;
        remaining_ = 0;
        break;
      case State::kTrailer:  // start of a trailer line or the final CRLF
        state_ = c == '\r'                ? State::kTrailerLf
                 : IsForbiddenControl(c) ? State::kInvalid
                                         : State::kTrailerLine;
        ++i;
        break;
      case State::kTrailerLf:
        if (c != '\n') {
          state_ = State::kInvalid;
          break;
        }
        ++i;
        state_ = State::kDone;
        break;
      case State::kTrailerLine:
        if (c == '\r') {
          state_ = State::kTrailerLineLf;
        } else if (IsForbiddenControl(c)) {
          state_ = State::kInvalid;
        }
        ++i;
        break;
      case State::kTrailerLineLf:
        state_ = c == '\n' ? State::kTrailer : State::kInvalid;
        ++i;
        break;
      case State::kDone:
      case State::kInvalid:
        break;
    }
  }
  return i;
}

}  // namespace berth
