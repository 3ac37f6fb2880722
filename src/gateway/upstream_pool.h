// Idle keep-alive connections to instances, by "host:port". An instance that restarts keeps
// its address, so a pooled connection may have been closed by the other end meanwhile: a
// taker that cannot resend its request (it has a body) asks for verified connections, which
// costs one non-blocking peek each; others retry on a fresh connection instead, which costs
// nothing while the pool is sound. Thread-safe.
#pragma once

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/mutex.h"

namespace berth {

struct UpstreamConn {
  explicit UpstreamConn(const boost::asio::any_io_executor& ex) : stream(ex) {}
  boost::beast::tcp_stream stream;
  boost::beast::flat_buffer buffer;  // bytes read from the instance, not yet relayed
};

class UpstreamPool {
 public:
  explicit UpstreamPool(size_t idle_per_instance) : idle_per_instance_(idle_per_instance) {}

  // A pooled connection to `key`, or null. With `verify`, connections the instance closed
  // (or that hold unexpected bytes) are dropped and the next one is tried.
  std::unique_ptr<UpstreamConn> TakeIdle(const std::string& key, bool verify);
  // Keeps `conn` for the next request to `key`, unless `key` already has enough idle ones.
  void GiveBack(const std::string& key, std::unique_ptr<UpstreamConn> conn);
  // Closes every idle connection (their sockets belong to an io_context about to go).
  void Clear();
  size_t IdleCount(const std::string& key) const;

 private:
  const size_t idle_per_instance_;
  mutable Mutex mu_;
  std::unordered_map<std::string, std::vector<std::unique_ptr<UpstreamConn>>> idle_ GUARDED_BY(mu_);
};

}  // namespace berth
