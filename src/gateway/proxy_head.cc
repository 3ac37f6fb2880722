#include "gateway/proxy_head.h"

#include <fmt/format.h>

#include "common/url.h"

namespace berth {

bool IsHopByHop(std::string_view name) {
  return EqualsIgnoreCase(name, "connection") || EqualsIgnoreCase(name, "keep-alive") ||
         EqualsIgnoreCase(name, "proxy-connection") || EqualsIgnoreCase(name, "te") ||
         EqualsIgnoreCase(name, "upgrade") || EqualsIgnoreCase(name, "proxy-authorization");
}

std::string_view RequestToken(const MessageHead& head) {
  std::string_view auth = head.Get("authorization");
  if (auth.size() > 7 && EqualsIgnoreCase(auth.substr(0, 7), "bearer ")) {
    return auth.substr(7);
  }
  return CookieToken(head.Get("cookie"));
}

std::string_view CookieToken(std::string_view cookies) {
  size_t at = cookies.find("berth_token=");
  if (at != std::string_view::npos &&
      (at == 0 || cookies[at - 1] == ' ' || cookies[at - 1] == ';')) {
    std::string_view v = cookies.substr(at + 12);
    return v.substr(0, v.find(';'));
  }
  return {};
}

std::string CookiesWithoutToken(std::string_view cookies) {
  std::string out;
  while (!cookies.empty()) {
    size_t semi = cookies.find(';');
    std::string_view c = cookies.substr(0, semi);
    while (!c.empty() && c.front() == ' ') {
      c.remove_prefix(1);
    }
    if (!c.empty() && !c.starts_with("berth_token=")) {
      if (!out.empty()) {
        out += "; ";
      }
      out += c;
    }
    if (semi == std::string_view::npos) {
      break;
    }
    cookies.remove_prefix(semi + 1);
  }
  return out;
}

std::string LoginRedirect(const MessageHead& head) {
  if ((head.method != "GET" && head.method != "HEAD") ||
      head.Get("accept").find("text/html") == std::string_view::npos) {
    return "";
  }
  return "/_berth/login?next=" + PercentEncode(head.target, "/");
}

bool IsUpgrade(const MessageHead& head) {
  return head.connection_upgrade && !head.Get("upgrade").empty();
}

std::string UpstreamRequestHead(const MessageHead& head, const RouteMatch& match,
                                std::string_view peer_ip) {
  const ServiceRoute& route = *match.route;
  std::string_view rest = head.target.substr(match.prefix_len);
  std::string out;
  out.reserve(head.head_bytes + 256);
  out.append(head.method).append(" ");
  if (route.strip) {
    // The instance sees paths from its own root.
    if (rest.empty() || rest[0] == '?') {
      out.append("/");
    }
    out.append(rest);
  } else if (match.pinned_revision) {
    out.append(route.prefix).append(rest);  // without the "@<revision>"
  } else {
    out.append(head.target);
  }
  out.append(" HTTP/1.1\r\n");
  std::string_view host = head.Get("host");
  bool has_host = false;
  for (size_t i = 0; i < head.field_count && !has_host; ++i) {
    has_host = EqualsIgnoreCase(head.fields[i].name, "host");
  }
  if (!has_host) {
    // HTTP/1.0 has no Host; the request goes on as HTTP/1.1, which must (RFC 9112 §3.2).
    out.append("Host: \r\n");
  }
  for (size_t i = 0; i < head.field_count; ++i) {
    const HeaderField& f = head.fields[i];
    if (IsHopByHop(f.name) || EqualsIgnoreCase(f.name, "expect") ||
        (f.name.size() > 12 && EqualsIgnoreCase(f.name.substr(0, 12), "x-forwarded-"))) {
      continue;
    }
    if (!route.public_access && EqualsIgnoreCase(f.name, "authorization")) {
      continue;  // berth's token is not the service's business
    }
    if (EqualsIgnoreCase(f.name, "cookie") &&
        f.value.find("berth_token=") != std::string_view::npos) {
      std::string rest_cookies = CookiesWithoutToken(f.value);
      if (!rest_cookies.empty()) {
        out.append("Cookie: ").append(rest_cookies).append("\r\n");
      }
      continue;
    }
    out.append(f.name).append(": ").append(f.value).append("\r\n");
  }
  out.append("X-Forwarded-For: ").append(peer_ip).append("\r\n");
  out.append("X-Forwarded-Proto: http\r\n");
  if (!host.empty()) {
    out.append("X-Forwarded-Host: ").append(host).append("\r\n");
  }
  out.append("X-Forwarded-Prefix: ").append(route.prefix).append("\r\n");
  if (IsUpgrade(head)) {
    out.append("Connection: Upgrade\r\nUpgrade: ").append(head.Get("upgrade")).append("\r\n");
  }
  out.append("\r\n");
  return out;
}

std::string ClientResponseHead(const MessageHead& resp, std::string_view raw, bool keep) {
  bool upgrade = resp.status == 101;
  std::string out;
  out.reserve(resp.head_bytes + 64);
  // The status line as it came, ended with CRLF whether it ended so or with a bare LF (which
  // the parser accepts from instances, RFC 9112 §2.2).
  std::string_view status_line = raw.substr(0, raw.find('\n'));
  if (status_line.ends_with('\r')) {
    status_line.remove_suffix(1);
  }
  out.append(status_line).append("\r\n");
  for (size_t i = 0; i < resp.field_count; ++i) {
    const HeaderField& f = resp.fields[i];
    if (IsHopByHop(f.name) && !upgrade) {
      continue;
    }
    out.append(f.name).append(": ").append(f.value).append("\r\n");
  }
  if (!keep && !upgrade) {
    out.append("Connection: close\r\n");
  }
  out.append("\r\n");
  return out;
}

namespace {

void AppendJsonString(std::string& out, std::string_view s) {
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<int>(c));
    } else {
      out += c;
    }
  }
}

}  // namespace

std::string ErrorResponse(int status, std::string_view reason, std::string_view code,
                          std::string_view message, bool keep_alive,
                          std::string_view extra_headers) {
  std::string body = R"({"error":{"code":")";
  AppendJsonString(body, code);
  body += R"(","message":")";
  AppendJsonString(body, message);
  body += "\"}}";
  return fmt::format(
      "HTTP/1.1 {} {}\r\nServer: berth\r\nContent-Type: application/json\r\nContent-Length: "
      "{}\r\n{}{}\r\n{}",
      status, reason, body.size(), keep_alive ? "" : "Connection: close\r\n", extra_headers, body);
}

}  // namespace berth
