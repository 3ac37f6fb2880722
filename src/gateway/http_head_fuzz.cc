// libFuzzer target for the proxy path's parsers: any bytes as a request head, a response head
// and a chunked body. Besides not crashing:
// - a head that parses is one a strict peer reads the same way: rebuilt as the gateway
//   forwards it (CRLF line ends, "name: value"), it parses back to the same method, target,
//   fields and framing — nothing the gateway forwards can desynchronise an upstream;
// - no prefix of a complete head is kInvalid or kComplete (refusing early never refuses a head
//   that turns out valid);
// - the chunked tracker reaches the same end fed byte by byte as fed whole.
#include <cstddef>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "gateway/http_head.h"

namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "http_head_fuzz: %s\n", what);
    std::abort();
  }
}

bool Inside(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

std::string Rebuild(const berth::MessageHead& h, bool request) {
  std::string out;
  if (request) {
    out.append(h.method).append(" ").append(h.target);
    out.append(h.version_minor == 1 ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n");
  } else {
    out.append(h.version_minor == 1 ? "HTTP/1.1 " : "HTTP/1.0 ")
        .append(std::to_string(h.status))
        .append(" R\r\n");
  }
  for (size_t i = 0; i < h.field_count; ++i) {
    out.append(h.fields[i].name).append(": ").append(h.fields[i].value).append("\r\n");
  }
  return out.append("\r\n");
}

void CheckHead(std::string_view text, bool request) {
  auto parse = [request](std::string_view t, berth::MessageHead& h) {
    return request ? berth::ParseRequestHead(t, h) : berth::ParseResponseHead(t, h);
  };
  berth::MessageHead h;
  berth::ParseResult r = parse(text, h);
  if (r == berth::ParseResult::kInvalid) {
    Check(!h.error.empty(), "an invalid head without a reason");
  }
  if (r != berth::ParseResult::kComplete) {
    return;
  }
  Check(h.head_bytes > 0 && h.head_bytes <= text.size(), "head_bytes outside the input");
  Check(Inside(h.method, text) && Inside(h.target, text), "a view outside the input");
  for (size_t i = 0; i < h.field_count; ++i) {
    Check(Inside(h.fields[i].name, text) && Inside(h.fields[i].value, text),
          "a field outside the input");
  }
  std::string again = Rebuild(h, request);
  berth::MessageHead h2;
  Check(parse(again, h2) == berth::ParseResult::kComplete, "the forwarded head does not parse");
  Check(h2.head_bytes == again.size(), "the forwarded head ends elsewhere");
  Check(h2.method == h.method && h2.target == h.target && h2.status == h.status,
        "the forwarded start line reads differently");
  Check(h2.field_count == h.field_count, "the forwarded head has other fields");
  for (size_t i = 0; i < h.field_count; ++i) {
    Check(h2.fields[i].name == h.fields[i].name && h2.fields[i].value == h.fields[i].value,
          "a forwarded field reads differently");
  }
  Check(h2.content_length == h.content_length && h2.chunked == h.chunked &&
            h2.keep_alive() == h.keep_alive(),
        "the forwarded head frames differently");
  // Every proper prefix of the head is still incomplete.
  for (size_t k : {h.head_bytes - 1, h.head_bytes / 2, h.head_bytes / 3}) {
    berth::MessageHead p;
    Check(parse(text.substr(0, k), p) == berth::ParseResult::kIncomplete,
          "a prefix of a valid head is not incomplete");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  CheckHead(text, true);
  CheckHead(text, false);
  berth::ChunkedTracker whole;
  size_t used = whole.Feed(text);
  berth::ChunkedTracker bytes;
  size_t used_bytes = 0;
  for (size_t i = 0; i < text.size() && !bytes.done() && !bytes.invalid(); ++i) {
    used_bytes += bytes.Feed(text.substr(i, 1));
  }
  Check(whole.done() == bytes.done() && whole.invalid() == bytes.invalid(),
        "the chunked tracker ends differently fed byte by byte");
  Check(!whole.done() || used == used_bytes, "the chunked body ends at another byte");
  Check(used <= text.size(), "the chunked tracker consumed more than it was given");
  return 0;
}
