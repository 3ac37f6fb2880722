// The SDK's internal error channel, a small copy of the platform's common/status.h: the SDK
// builds on its own, outside the platform's tree.
#pragma once

#include <string>
#include <utility>

namespace berth::sdk {

enum class StatusCode {
  kOk,
  kNotFound,         // 404
  kInvalidArgument,  // 422
  kUnavailable,
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status InvalidArgument(std::string m) {
    return {StatusCode::kInvalidArgument, std::move(m)};
  }
  static Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

}  // namespace berth::sdk
