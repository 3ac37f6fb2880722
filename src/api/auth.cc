#include "api/auth.h"

#include <fmt/format.h>

#include "common/crypto.h"

namespace berth {

Result<Principal> Authenticator::Authenticate(std::string_view token) {
  if (token.empty()) {
    return Status::Unauthenticated(
        "no token given; send 'Authorization: Bearer <token>' (see 'berth login')");
  }
  std::string hash = Sha256Hex(token);
  uint64_t generation = 0;
  uint64_t revocations = store_.TokenRevocations();
  {
    MutexLock lock(mu_);
    if (revocations != revocations_seen_) {  // revoked through any door: forget them all
      cache_.clear();
      ++generation_;
      revocations_seen_ = revocations;
    }
    auto it = cache_.find(hash);
    if (it != cache_.end()) {
      return it->second;
    }
    generation = generation_;
  }
  auto info = store_.FindTokenByHash(hash);
  if (!info.ok()) {
    if (info.status().code() == StatusCode::kNotFound) {
      return Status::Unauthenticated("the token is not valid");
    }
    return info.status().WithContext("checking token");
  }
  if (info->revoked_at) {
    return Status::Unauthenticated(fmt::format("token {} has been revoked", info->id));
  }
  Principal p{info->id, info->project};
  MutexLock lock(mu_);
  if (generation == generation_ && store_.TokenRevocations() == revocations) {
    cache_.emplace(std::move(hash), p);
  }
  return p;
}

void Authenticator::Invalidate() {
  MutexLock lock(mu_);
  cache_.clear();
  ++generation_;
}

Result<std::string> ResolveProject(const Principal& who, std::string_view requested) {
  if (who.admin()) {
    return requested.empty() ? std::string(kDefaultProject) : std::string(requested);
  }
  if (requested.empty() || requested == *who.project) {
    return *who.project;
  }
  return Status::PermissionDenied(fmt::format(
      "this token belongs to project '{}' and cannot act on project '{}'", *who.project,
      requested.substr(0, 64)));
}

std::string_view BearerToken(std::string_view header) {
  constexpr std::string_view kScheme = "Bearer ";
  if (header.size() <= kScheme.size()) {
    return {};
  }
  // The scheme is case-insensitive (RFC 7235).
  for (size_t i = 0; i < kScheme.size(); ++i) {
    char a = header[i];
    char b = kScheme[i];
    if ((a | 0x20) != (b | 0x20)) {
      return {};
    }
  }
  std::string_view t = header.substr(kScheme.size());
  while (!t.empty() && t.front() == ' ') {
    t.remove_prefix(1);
  }
  while (!t.empty() && t.back() == ' ') {
    t.remove_suffix(1);
  }
  return t;
}

}  // namespace berth
