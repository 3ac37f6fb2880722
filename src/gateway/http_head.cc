#include "gateway/http_head.h"

#include <charconv>

namespace berth {
namespace {

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

bool ContainsToken(std::string_view list, std::string_view token) {
  // Comma-separated, case-insensitive: "keep-alive, Upgrade".
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) {
      item.remove_prefix(1);
    }
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) {
      item.remove_suffix(1);
    }
    if (EqualsIgnoreCase(item, token)) {
      return true;
    }
    if (comma == std::string_view::npos) {
      break;
    }
    list.remove_prefix(comma + 1);
  }
  return false;
}

// Parses the header fields after the first line; `pos` points at the first field line.
ParseResult ParseFields(std::string_view data, size_t pos, MessageHead& head) {
  head.field_count = 0;
  head.content_length.reset();
  head.chunked = head.connection_close = head.connection_upgrade = head.expect_continue = false;
  while (true) {
    size_t eol = data.find('\n', pos);
    if (eol == std::string_view::npos) {
      return ParseResult::kIncomplete;
    }
    std::string_view line = data.substr(pos, eol - pos);
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    pos = eol + 1;
    if (line.empty()) {
      head.head_bytes = pos;
      return ParseResult::kComplete;
    }
    if (line.front() == ' ' || line.front() == '\t') {
      return ParseResult::kInvalid;  // obsolete line folding
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      return ParseResult::kInvalid;
    }
    if (head.field_count == kMaxHeaderFields) {
      return ParseResult::kTooManyFields;
    }
    std::string_view name = line.substr(0, colon);
    if (name.back() == ' ' || name.back() == '\t') {
      return ParseResult::kInvalid;  // whitespace before the colon is a smuggling vector
    }
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
      value.remove_prefix(1);
    }
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) {
      value.remove_suffix(1);
    }
    head.fields[head.field_count++] = {name, value};
    switch (Lower(name[0])) {
      case 'c':
        if (EqualsIgnoreCase(name, "content-length")) {
          uint64_t n = 0;
          auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
          if (ec != std::errc() || p != value.data() + value.size() ||
              (head.content_length && *head.content_length != n)) {
            return ParseResult::kInvalid;
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
      case 't':
        if (EqualsIgnoreCase(name, "transfer-encoding")) {
          if (!ContainsToken(value, "chunked")) {
            return ParseResult::kInvalid;  // other codings are not relayed
          }
          head.chunked = true;
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
  size_t eol = data.find('\n');
  if (eol == std::string_view::npos) {
    return ParseResult::kIncomplete;
  }
  std::string_view line = data.substr(0, eol);
  if (!line.empty() && line.back() == '\r') {
    line.remove_suffix(1);
  }
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp1 == 0 || sp2 == sp1 + 1) {
    return ParseResult::kInvalid;
  }
  head.method = line.substr(0, sp1);
  head.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  bool http10 = false;
  ParseResult r = ParseFields(data, eol + 1, head);
  if (r != ParseResult::kComplete) {
    return r;
  }
  if (!ParseVersion(line.substr(sp2 + 1), head)) {
    return ParseResult::kInvalid;
  }
  (void)http10;
  if (head.version_minor == 0 && head.Get("connection").empty() == false &&
      EqualsIgnoreCase(head.Get("connection"), "keep-alive")) {
    head.connection_close = false;
  }
  if (head.chunked && head.content_length) {
    return ParseResult::kInvalid;  // both framings: refuse (request smuggling)
  }
  return ParseResult::kComplete;
}

ParseResult ParseResponseHead(std::string_view data, MessageHead& head) {
  size_t eol = data.find('\n');
  if (eol == std::string_view::npos) {
    return ParseResult::kIncomplete;
  }
  std::string_view line = data.substr(0, eol);
  if (!line.empty() && line.back() == '\r') {
    line.remove_suffix(1);
  }
  if (line.size() < 12 || line[8] != ' ') {
    return ParseResult::kInvalid;
  }
  int status = 0;
  auto [p, ec] = std::from_chars(line.data() + 9, line.data() + 12, status);
  if (ec != std::errc() || p != line.data() + 12 || status < 100) {
    return ParseResult::kInvalid;
  }
  head.status = status;
  ParseResult r = ParseFields(data, eol + 1, head);
  if (r != ParseResult::kComplete) {
    return r;
  }
  if (!ParseVersion(line.substr(0, 8), head)) {
    return ParseResult::kInvalid;
  }
  if (head.version_minor == 0 && EqualsIgnoreCase(head.Get("connection"), "keep-alive")) {
    head.connection_close = false;
  }
  if (head.chunked) {
    head.content_length.reset();  // RFC 9112: Transfer-Encoding wins
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
        } else if (size_digits_ > 0 && (c == ';' || c == ' ' || c == '\t')) {
          state_ = State::kSizeExt;
        } else if (size_digits_ > 0 && c == '\r') {
          state_ = State::kSizeLf;
        } else {
          state_ = State::kInvalid;
        }
        ++i;
        break;
      }
      case State::kSizeExt:
        if (c == '\r') {
          state_ = State::kSizeLf;
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
        state_ = c == '\r' ? State::kTrailerLf : State::kTrailerLine;
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
