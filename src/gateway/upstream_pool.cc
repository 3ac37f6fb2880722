#include "gateway/upstream_pool.h"

#include <sys/socket.h>

#include <cerrno>

namespace berth {

std::unique_ptr<UpstreamConn> UpstreamPool::TakeIdle(const std::string& key, bool verify) {
  MutexLock lock(mu_);
  auto it = idle_.find(key);
  while (it != idle_.end() && !it->second.empty()) {
    std::unique_ptr<UpstreamConn> conn = std::move(it->second.back());
    it->second.pop_back();
    if (!verify) {
      return conn;
    }
    char c;
    ssize_t n = ::recv(conn->stream.socket().native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return conn;  // open, and nothing unexpected waiting
    }
  }
  return nullptr;
}

void UpstreamPool::GiveBack(const std::string& key, std::unique_ptr<UpstreamConn> conn) {
  MutexLock lock(mu_);
  auto& idle = idle_[key];
  if (idle.size() < idle_per_instance_) {
    idle.push_back(std::move(conn));
  }
}

void UpstreamPool::Clear() {
  MutexLock lock(mu_);
  idle_.clear();
}

size_t UpstreamPool::IdleCount(const std::string& key) const {
  MutexLock lock(mu_);
  auto it = idle_.find(key);
  return it == idle_.end() ? 0 : it->second.size();
}

}  // namespace berth
