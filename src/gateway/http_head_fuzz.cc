// libFuzzer target for the proxy path's parsers: any bytes as a request head, a response head
// and a chunked body. Besides not crashing:
// - a head that parses is one a strict peer reads the same way: rebuilt (CRLF line ends,
//   "name: value"), it parses back to the same method, target, fields and framing;
// - what the gateway really forwards (UpstreamRequestHead, ClientResponseHead) parses back
//   whole, with the same start line and framing — nothing it forwards can desynchronise an
//   upstream or a client;
// - no prefix of a complete head is kInvalid or kComplete (refusing early never refuses a head
//   that turns out valid);
// - the chunked tracker reaches the same end fed byte by byte as fed whole.
#include <cstddef>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/http_head.h"
#include "gateway/proxy_head.h"
#include "gateway/route_table.h"

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

// What the gateway sends on: to an instance (a route that passes the path as it is, and one
// that strips a prefix) or back to a client (keeping the connection or not).
void CheckForwarded(std::string_view text, const berth::MessageHead& h, bool request) {
  std::vector<std::string> sent;
  if (request) {
    auto route = std::make_shared<berth::ServiceRoute>();
    route->prefix = "/p-s";
    berth::RouteMatch match;
    match.route = route;
    sent.push_back(berth::UpstreamRequestHead(h, match, "127.0.0.1"));
    route->strip = true;
    match.prefix_len = h.target.find_first_of("/?", 1);
    if (match.prefix_len == std::string_view::npos) {
      match.prefix_len = h.target.size();
    }
    sent.push_back(berth::UpstreamRequestHead(h, match, "127.0.0.1"));
  } else {
    std::string_view raw = text.substr(0, h.head_bytes);
    sent.push_back(berth::ClientResponseHead(h, raw, true));
    sent.push_back(berth::ClientResponseHead(h, raw, false));
  }
  for (size_t k = 0; k < sent.size(); ++k) {
    berth::MessageHead f;
    berth::ParseResult r =
        request ? berth::ParseRequestHead(sent[k], f) : berth::ParseResponseHead(sent[k], f);
    if (r == berth::ParseResult::kTooManyFields && h.field_count + 5 > berth::kMaxHeaderFields) {
      continue;  // the X-Forwarded-* fields took it over the parser's limit: still one head
    }
    Check(r == berth::ParseResult::kComplete, "the gateway forwards a head that does not parse");
    Check(f.head_bytes == sent[k].size(), "the gateway forwards a head that ends elsewhere");
    Check(f.content_length == h.content_length && f.chunked == h.chunked,
          "the gateway forwards a head that frames differently");
    if (request) {
      Check(f.method == h.method, "the gateway forwards another method");
      Check(k == 1 || f.target == h.target, "the gateway forwards another target");
      Check(f.Get("host") == h.Get("host"), "the gateway forwards another host");
    } else {
      Check(f.status == h.status, "the gateway forwards another status");
      Check(k == 0 || !f.keep_alive() || f.status == 101,
            "the gateway keeps a client connection it closes");
    }
  }
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
  CheckForwarded(text, h, request);
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
