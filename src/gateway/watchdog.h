// Timeouts without a timer per socket operation: arming an Asio timer costs syscalls on every
// read and write, which the proxy path cannot afford. An exchange registers one deadline
// (extended as it progresses), and a sweep every 250 ms cancels the sockets of exchanges past
// theirs; their pending operations then fail with operation_aborted. Cancelling runs on the
// socket's own executor, and only while the exchange is still registered. Thread-safe.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <list>
#include <memory>
#include <mutex>

#include "common/mutex.h"

namespace berth {

class Watchdog {
 public:
  struct Entry {
    std::chrono::steady_clock::time_point deadline;
    boost::asio::ip::tcp::socket* socket = nullptr;
    boost::asio::any_io_executor executor;
    std::shared_ptr<bool> active;  // cleared on the socket's executor when the watch ends
  };
  using Handle = std::list<Entry>::iterator;

  Handle Watch(boost::asio::ip::tcp::socket& socket, std::chrono::seconds timeout) {
    MutexLock lock(mu_);
    entries_.push_back({std::chrono::steady_clock::now() + timeout, &socket, socket.get_executor(),
                        std::make_shared<bool>(true)});
    return std::prev(entries_.end());
  }
  void Extend(Handle h, std::chrono::seconds timeout) {
    Until(h, std::chrono::steady_clock::now() + timeout);
  }
  void Until(Handle h, std::chrono::steady_clock::time_point deadline) {
    MutexLock lock(mu_);
    h->deadline = deadline;
  }
  // Called on the socket's executor.
  void Unwatch(Handle h) {
    MutexLock lock(mu_);
    *h->active = false;
    entries_.erase(h);
  }
  void Sweep() {
    auto now = std::chrono::steady_clock::now();
    MutexLock lock(mu_);
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (it->deadline > now) {
        ++it;
        continue;
      }
      boost::asio::post(it->executor, [socket = it->socket, active = it->active] {
        if (*active) {
          boost::system::error_code ignored;
          socket->cancel(ignored);
        }
      });
      it->deadline = std::chrono::steady_clock::time_point::max();
      ++it;
    }
  }

 private:
  Mutex mu_;
  std::list<Entry> entries_ GUARDED_BY(mu_);
};

// Unregisters a watch when the exchange ends, however it ends.
class WatchGuard {
 public:
  WatchGuard(Watchdog& w, boost::asio::ip::tcp::socket& s, std::chrono::seconds timeout)
      : w_(w), h_(w.Watch(s, timeout)) {}
  ~WatchGuard() { w_.Unwatch(h_); }
  WatchGuard(const WatchGuard&) = delete;
  WatchGuard& operator=(const WatchGuard&) = delete;
  void Extend(std::chrono::seconds timeout) { w_.Extend(h_, timeout); }
  void Until(std::chrono::steady_clock::time_point deadline) { w_.Until(h_, deadline); }
  // No deadline until the next Extend or Until (the connection is busy elsewhere).
  void Suspend() { w_.Until(h_, std::chrono::steady_clock::time_point::max()); }

 private:
  Watchdog& w_;
  Watchdog::Handle h_;
};

}  // namespace berth
