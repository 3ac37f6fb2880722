// Authenticator turns a bearer token into the Principal acting on the API. Tokens are
// "berth_" + 64 hex characters (256 random bits); the store keeps only their SHA-256.
// Known hashes are cached in memory, dropped whenever the store has revoked a token
// (Store::TokenRevocations), whichever part revoked it.
// Thread-safe.
#pragma once

#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/mutex.h"
#include "common/crypto.h"
#include "common/status.h"
#include "store/store.h"

namespace berth {

struct Principal {
  std::string token_id;
  std::optional<std::string> project;  // nullopt: admin
  bool admin() const { return !project.has_value(); }
};

inline constexpr std::string_view kDefaultProject = "default";

class Authenticator {
 public:
  explicit Authenticator(Store& store) : store_(store) {}

  // Unauthenticated when `token` is empty, unknown or revoked.
  Result<Principal> Authenticate(std::string_view token);
  // Drops cached tokens; call after revoking one.
  void Invalidate();

 private:
  Store& store_;
  Mutex mu_;
  std::unordered_map<std::string, Principal> cache_ GUARDED_BY(mu_);  // by token hash
  // Bumped by Invalidate: a lookup that raced with a revocation must not refill the cache.
  uint64_t generation_ GUARDED_BY(mu_) = 0;
  uint64_t revocations_seen_ GUARDED_BY(mu_) = 0;
};

// The project a request acts on: `requested` if given, else the token's own project (admin:
// "default"). PermissionDenied when a project token names another project.
Result<std::string> ResolveProject(const Principal& who, std::string_view requested);

// The token from "Authorization: Bearer <t>", or "" when absent or of another scheme.
std::string_view BearerToken(std::string_view authorization_header);

}  // namespace berth
