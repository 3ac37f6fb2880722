// Outgoing webhooks: one JSON POST per call, no retries (the dispatcher retries).
#pragma once

#include <chrono>
#include <string>

#include "common/status.h"

namespace berth {

// POSTs `json_body` to `url` with Content-Type: application/json and User-Agent: berth, and
// waits up to `timeout` for the whole exchange. Redirects are not followed. Thread-safe.
// Returns InvalidArgument if `url` is not http:// or https://, and Unavailable if the
// receiver cannot be reached, times out, or answers with a status outside 2xx
// ("posting webhook to http://host/path: HTTP 500"). Messages leave out any user:password@,
// query string and fragment of the URL.
Status PostJson(const std::string& url, const std::string& json_body, std::chrono::seconds timeout);

}  // namespace berth
