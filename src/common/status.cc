#include "common/status.h"

#include <cstring>

namespace berth {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "ok";
    case StatusCode::kNotFound:
      return "not_found";
    case StatusCode::kAlreadyExists:
      return "already_exists";
    case StatusCode::kInvalidArgument:
      return "invalid_argument";
    case StatusCode::kFailedPrecondition:
      return "failed_precondition";
    case StatusCode::kUnauthenticated:
      return "unauthenticated";
    case StatusCode::kPermissionDenied:
      return "permission_denied";
    case StatusCode::kUnavailable:
      return "unavailable";
    case StatusCode::kInternal:
      return "internal";
  }
  return "unknown";
}

StatusCode StatusCodeFromName(std::string_view name) {
  for (int i = 0; i < static_cast<int>(StatusCode::kInternal); ++i) {
    if (StatusCodeName(static_cast<StatusCode>(i)) == name) {
      return static_cast<StatusCode>(i);
    }
  }
  return StatusCode::kInternal;
}

std::string Status::ToString() const {
  if (ok()) {
    return "ok";
  }
  std::string out(StatusCodeName(code_));
  out += ": ";
  out += message_;
  return out;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) {
    return *this;
  }
  std::string m(context);
  m += ": ";
  m += message_;
  return {code_, std::move(m)};
}

Status ErrnoStatus(std::string_view context, int err) {
  std::string m(context);
  m += ": ";
  m += std::strerror(err);
  StatusCode code = StatusCode::kInternal;
  if (err == ENOENT) {
    code = StatusCode::kNotFound;
  } else if (err == EEXIST) {
    code = StatusCode::kAlreadyExists;
  } else if (err == EACCES || err == EPERM) {
    code = StatusCode::kPermissionDenied;
  }
  return {code, std::move(m)};
}

}  // namespace berth
