// The one mapping from Status to HTTP. Native API errors have the shape
//   {"error": {"code": "not_found", "message": "service 'x' does not exist in project 'p'"}}
// and the servicectl dialect's {"Error": "..."}.
#pragma once

#include <boost/json/fwd.hpp>
#include <string_view>

#include "api/http_types.h"
#include "common/status.h"

namespace berth {

int HttpStatusFor(StatusCode code);

// A native error response for a non-OK status.
HttpResponse ErrorResponse(const Status& status);
// A native error response with an explicit HTTP status and code name.
HttpResponse ErrorResponse(int http_status, std::string_view code, std::string_view message);

// A JSON response with `body` serialised.
HttpResponse JsonResponse(int http_status, const boost::json::value& body);
// A text/plain (UTF-8) response: the Neptune dialect's answers and errors.
HttpResponse TextResponse(int http_status, std::string_view text);

// The code name used for listener-level rejections (413 -> "payload_too_large").
std::string_view CodeForHttpStatus(int http_status);

}  // namespace berth
