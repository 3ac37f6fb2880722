#include "api/http_types.h"

#include <fmt/format.h>

namespace berth {
namespace {
int HexValue(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

bool Decode(std::string_view in, bool plus_is_space, std::string& out) {
  out.clear();
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) {
        return false;
      }
      int hi = HexValue(in[i + 1]);
      int lo = HexValue(in[i + 2]);
      if (hi < 0 || lo < 0) {
        return false;
      }
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return true;
}
}  // namespace

std::string_view HttpRequest::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) {
      return v;
    }
  }
  return {};
}

bool HttpRequest::HasHeader(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) {
      return true;
    }
  }
  return false;
}

std::string_view HttpRequest::Query(std::string_view name) const {
  auto it = query.find(name);
  return it == query.end() ? std::string_view() : std::string_view(it->second);
}

Result<bool> HttpRequest::BoolQuery(std::string_view name) const {
  std::string_view v = Query(name);
  if (v.empty() || v == "false" || v == "0" || v == "no") {
    return false;
  }
  if (v == "true" || v == "1" || v == "yes") {
    return true;
  }
  return Status::InvalidArgument(fmt::format("{}={:?}: must be true or false (or 1, 0)", name,
                                             v.substr(0, 32)));
}

bool ParseTarget(std::string_view target, HttpRequest& req) {
  if (target.empty() || target[0] != '/') {
    return false;
  }
  size_t q = target.find('?');
  if (!Decode(target.substr(0, q), false, req.path)) {
    return false;
  }
  req.query.clear();
  if (q == std::string_view::npos) {
    return true;
  }
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (pair.empty()) {
      continue;
    }
    size_t eq = pair.find('=');
    std::string key;
    std::string value;
    if (!Decode(pair.substr(0, eq), true, key)) {
      return false;
    }
    if (eq != std::string_view::npos && !Decode(pair.substr(eq + 1), true, value)) {
      return false;
    }
    req.query[key] = std::move(value);
  }
  return true;
}

}  // namespace berth
