#include "api/errors.h"

#include <boost/json.hpp>

namespace berth {

int HttpStatusFor(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kAlreadyExists:
      return 409;
    case StatusCode::kInvalidArgument:
      return 400;
    case StatusCode::kFailedPrecondition:
      return 409;
    case StatusCode::kUnauthenticated:
      return 401;
    case StatusCode::kPermissionDenied:
      return 403;
    case StatusCode::kUnavailable:
      return 503;
    case StatusCode::kInternal:
      return 500;
  }
  return 500;
}

std::string_view CodeForHttpStatus(int http_status) {
  switch (http_status) {
    case 400:
      return "bad_request";
    case 404:
      return "not_found";
    case 405:
      return "method_not_allowed";
    case 408:
      return "request_timeout";
    case 413:
      return "payload_too_large";
    case 415:
      return "unsupported_media_type";
    case 431:
      return "headers_too_large";
    default:
      return http_status >= 500 ? "internal" : "bad_request";
  }
}

HttpResponse JsonResponse(int http_status, const boost::json::value& body) {
  HttpResponse r;
  r.status = http_status;
  r.body = boost::json::serialize(body);
  return r;
}

HttpResponse TextResponse(int http_status, std::string_view text) {
  HttpResponse r;
  r.status = http_status;
  r.content_type = "text/plain; charset=utf-8";
  r.body = std::string(text);
  return r;
}

HttpResponse ErrorResponse(int http_status, std::string_view code, std::string_view message) {
  return JsonResponse(http_status,
                      boost::json::object{{"error", {{"code", code}, {"message", message}}}});
}

HttpResponse ErrorResponse(const Status& status) {
  return ErrorResponse(HttpStatusFor(status.code()), StatusCodeName(status.code()),
                       status.message());
}

}  // namespace berth
