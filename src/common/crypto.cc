#include "common/crypto.h"

#include <openssl/sha.h>
#include <sys/random.h>

#include <cerrno>
#include <vector>

namespace berth {
namespace {
std::string ToHex(const unsigned char* data, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(n * 2, '\0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 0xf];
  }
  return out;
}
}  // namespace

Result<std::string> RandomHex(size_t n) {
  std::vector<unsigned char> buf(n);
  size_t filled = 0;
  while (filled < n) {
    ssize_t got = getrandom(buf.data() + filled, n - filled, 0);
    if (got < 0) {
      if (errno == EINTR) {
        continue;
      }
      return ErrnoStatus("reading random bytes", errno);
    }
    filled += static_cast<size_t>(got);
  }
  return ToHex(buf.data(), n);
}

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return ToHex(digest, sizeof(digest));
}

Result<NewToken> GenerateToken() {
  auto id = RandomHex(6);
  if (!id.ok()) {
    return id.status();
  }
  auto secret = RandomHex(32);
  if (!secret.ok()) {
    return secret.status();
  }
  NewToken t;
  t.id = "tk_" + *id;
  t.secret = "berth_" + *secret;
  t.hash = Sha256Hex(t.secret);
  return t;
}

}  // namespace berth
