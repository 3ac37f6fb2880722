#include "model/names.h"

#include <fmt/format.h>

namespace berth {
namespace {
bool IsLower(char c) { return c >= 'a' && c <= 'z'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Names are echoed back in messages; keep them printable and short.
std::string Quote(std::string_view s) {
  std::string out = "'";
  for (char c : s.substr(0, 64)) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f) {
      out += fmt::format("\\x{:02x}", u);
    } else {
      out += c;
    }
  }
  if (s.size() > 64) {
    out += "...";
  }
  out += "'";
  return out;
}
}  // namespace

Status ValidateProjectName(std::string_view name) {
  if (name.empty()) {
    return Status::InvalidArgument("project name is empty; use lowercase letters, digits and '_'");
  }
  if (name.size() > kMaxProjectName) {
    return Status::InvalidArgument(fmt::format("project name {} is {} characters; at most {} allowed",
                                               Quote(name), name.size(), kMaxProjectName));
  }
  if (!IsLower(name[0])) {
    return Status::InvalidArgument(
        fmt::format("project name {} must begin with a lowercase letter", Quote(name)));
  }
  for (char c : name) {
    if (!IsLower(c) && !IsDigit(c) && c != '_') {
      return Status::InvalidArgument(fmt::format(
          "project name {} may contain only lowercase letters, digits and '_'", Quote(name)));
    }
  }
  return Status::Ok();
}

Status ValidateSessionName(std::string_view name) {
  constexpr std::string_view kRule =
      "a session's pipeline is named by 1-128 letters, digits, '-', '_' and '.', not starting "
      "with '.' (a pipeline name such as \"etl\", or an Orchest pipeline uuid)";
  bool ok = !name.empty() && name.size() <= kMaxSessionName && name[0] != '.';
  for (char c : name) {
    ok = ok && (IsLower(c) || IsDigit(c) || (c >= 'A' && c <= 'Z') || c == '-' || c == '_' ||
                c == '.');
  }
  if (!ok) {
    return Status::InvalidArgument(
        fmt::format("pipeline {}: {}", Quote(name.substr(0, kMaxSessionName)), kRule));
  }
  return Status::Ok();
}

Status ValidateServiceName(std::string_view project, std::string_view name) {
  if (name.empty()) {
    return Status::InvalidArgument(
        "service name is empty; use lowercase letters, digits and '-', starting with a letter");
  }
  if (!IsLower(name[0])) {
    return Status::InvalidArgument(
        fmt::format("service name {} must begin with a lowercase letter", Quote(name)));
  }
  for (char c : name) {
    if (!IsLower(c) && !IsDigit(c) && c != '-') {
      return Status::InvalidArgument(fmt::format(
          "service name {} may contain only lowercase letters (a-z), digits (0-9) and '-'",
          Quote(name)));
    }
  }
  if (name.back() == '-') {
    return Status::InvalidArgument(
        fmt::format("service name {} must end with a lowercase letter or digit, not '-'",
                    Quote(name)));
  }
  size_t qualified = project.size() + 1 + name.size();
  if (qualified > kMaxQualifiedServiceName) {
    return Status::InvalidArgument(fmt::format(
        "service name {} is too long: '{}-{}' is {} characters, at most {} allowed (the "
        "project name and '-' count)",
        Quote(name), project, name.substr(0, 64), qualified, kMaxQualifiedServiceName));
  }
  return Status::Ok();
}

std::string DeploymentPath(std::string_view project, std::string_view name) {
  return fmt::format("/{}-{}", project, name);
}

}  // namespace berth
