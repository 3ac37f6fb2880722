// A minimal HTTP/1.1 message-head parser for the proxy path: it parses in place (string_views
// into the read buffer), allocates nothing, and extracts only what routing and framing need.
// Bodies are relayed as bytes; only chunked framing is tracked (ChunkedTracker).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace berth {

struct HeaderField {
  std::string_view name;
  std::string_view value;
};

inline constexpr size_t kMaxHeaderFields = 100;

struct MessageHead {
  // Request line or status line parts.
  std::string_view method;  // requests
  std::string_view target;  // requests
  int status = 0;           // responses
  int version_minor = 1;    // HTTP/1.x
  std::array<HeaderField, kMaxHeaderFields> fields;
  size_t field_count = 0;
  size_t head_bytes = 0;  // through the blank line
  // Why the head is kInvalid, for the 400's message ("an invalid header field name").
  std::string_view error;

  // Framing, from the fields.
  std::optional<uint64_t> content_length;
  bool chunked = false;
  bool connection_close = false;
  bool connection_upgrade = false;
  bool expect_continue = false;

  bool keep_alive() const { return version_minor >= 1 ? !connection_close : false; }
  // The first field named `name` (case-insensitive), or empty.
  std::string_view Get(std::string_view name) const;
};

// kTooManyFields: the head is well formed so far but has more than kMaxHeaderFields fields.
// kInvalid as soon as a complete line is malformed, without waiting for the rest: what RFC 9110
// §5.5 and RFC 9112 refuse (CR, LF, NUL or controls in values, invalid names or targets,
// obs-fold, Transfer-Encoding other than a final chunked, two framings, conflicting lengths,
// duplicate or, in HTTP/1.1 requests, missing Host) is never forwarded.
enum class ParseResult { kComplete, kIncomplete, kInvalid, kTooManyFields };

// Parses a request head at the start of `data`. kIncomplete until the blank line is there.
ParseResult ParseRequestHead(std::string_view data, MessageHead& head);
ParseResult ParseResponseHead(std::string_view data, MessageHead& head);

bool EqualsIgnoreCase(std::string_view a, std::string_view b);

// Follows chunked transfer-coding over relayed bytes to find where the body ends, without
// changing them. Strict: hex sizes of at most 15 digits, CRLF line ends, no controls in
// extensions or trailers; anything else is invalid() (and the connection is closed).
class ChunkedTracker {
 public:
  // Consumes up to data.size() bytes; returns how many belong to the body (all of them
  // unless the body ended inside `data`). invalid() after a framing error.
  size_t Feed(std::string_view data);
  bool done() const { return state_ == State::kDone; }
  bool invalid() const { return state_ == State::kInvalid; }

 private:
  enum class State {
    kSize,
    kSizeBws,  // whitespace after the size, before ';'
    kSizeExt,
    kSizeLf,
    kData,
    kDataCr,
    kDataLf,
    kTrailer,
    kTrailerLf,
    kTrailerLine,
    kTrailerLineLf,
    kDone,
    kInvalid
  };
  State state_ = State::kSize;
  uint64_t remaining_ = 0;
  int size_digits_ = 0;
};

}  // namespace berth
