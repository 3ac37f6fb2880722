#include "runtime/health_check.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdlib>

#include "runtime/instance_http.h"

namespace berth {

ProbeResult ProbeInstance(const std::string& host, int port, const HealthCheck& check,
                          const StatusCodeSet& codes, const std::string& path) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(check.timeout_s);
  auto s = ConnectInstance(host, port, deadline);
  if (!s.ok()) {
    return {false, s.status().message()};
  }
  if (check.type == "tcp") {
    return {true, "accepting connections"};
  }
  std::string req = fmt::format(
      "GET {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: berth-health-check\r\nConnection: close"
      "\r\n\r\n",
      path, host, port);
  if (auto st = SendAll(*s, req, deadline); !st.ok()) {
    return {false, st.message()};
  }
  std::string resp;
  auto has_status_line = [](const std::string& r) { return r.find("\r\n") != std::string::npos; };
  if (auto st = ReceiveUntil(*s, resp, deadline, 8192, has_status_line); !st.ok()) {
    return {false, st.message()};
  }
  if (!has_status_line(resp)) {
    return {false, "connection closed before a status line"};
  }
  // "HTTP/1.1 200 OK"
  size_t sp = resp.find(' ');
  int code = 0;
  if (sp != std::string::npos && resp.size() >= sp + 4) {
    code = std::atoi(resp.substr(sp + 1, 3).c_str());
  }
  if (code == 0) {
    return {false, "not an HTTP response"};
  }
  if (!codes.Contains(code)) {
    return {false, fmt::format("HTTP {} is not in {}", code, codes.text())};
  }
  return {true, fmt::format("HTTP {}", code)};
}

}  // namespace berth
