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
enum class ParseResult { kComplete, kIncomplete, kInvalid, kTooManyFields };

// Parses a request head at the start of `data`. kIncomplete until the blank line is there.
ParseResult ParseRequestHead(std::string_view data, MessageHead& head);
ParseResult ParseResponseHead(std::string_view data, MessageHead& head);

bool EqualsIgnoreCase(std::string_view a, std::string_view b);

// Follows chunked transfer-coding over relayed bytes to find where the body ends, without
// changing them.
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
