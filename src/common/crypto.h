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

// A fresh API token: "berth_" + 64 hex characters (256 random bits), a public id
// ("tk_" + 12 hex) and the SHA-256 that is all the store keeps. The secret is shown once.
struct NewToken {
  std::string id;
  std::string secret;
  std::string hash;
};
Result<NewToken> GenerateToken();

}  // namespace berth
