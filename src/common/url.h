// Percent-encoding (RFC 3986 §2.1) for the URLs berth writes: a path segment or query value
// the CLI puts in an API path, the `next` of the gateway's login redirect.
#pragma once

#include <string>
#include <string_view>

namespace berth {

// `s` with every byte but the unreserved characters (letters, digits, - . _ ~) and those in
// `keep` written as %XX.
std::string PercentEncode(std::string_view s, std::string_view keep = {});

}  // namespace berth
