// Randomness and hashing for tokens. Tokens are 256-bit random values shown
// once to the user; only their SHA-256 is ever stored.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace berth {

// `n` bytes from the kernel's CSPRNG (getrandom), hex-encoded (2n chars).
Result<std::string> RandomHex(size_t n);

// Lowercase hex SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);

}  // namespace berth
