#include "runtime/linux/address_claim.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace berth {

std::string AddressClaimPath(const std::string& dir, const std::string& host, int port) {
  return dir + "/" + host + ":" + std::to_string(port);
}

int ClaimAddress(const std::string& path) {
  std::string dir = path.substr(0, path.rfind('/'));
  if (::mkdir(dir.c_str(), 01777) == 0) {
    ::chmod(dir.c_str(), 01777);  // whatever the umask: every daemon's shims write here
  }
  for (int attempt = 0; attempt < 8; ++attempt) {
    // Read-only is enough to lock, and works on a file another user's shim made.
    int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      return -1;
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int e = errno;
      ::close(fd);
      errno = e;
      return -1;
    }
    // Locked what the path still names? A shim that released the claim unlinked it between
    // our open and our lock: this lock is on a file nobody else will open. Again.
    struct stat held {}, named {};
    if (::fstat(fd, &held) == 0 && ::stat(path.c_str(), &named) == 0 &&
        held.st_ino == named.st_ino && held.st_dev == named.st_dev) {
      return fd;
    }
    ::close(fd);
  }
  errno = EAGAIN;
  return -1;
}

void ReleaseAddress(const std::string& path, int fd) {
  if (fd < 0) {
    return;
  }
  // Unlinked while still locked, so that no claimer can lock the file in between and keep it.
  ::unlink(path.c_str());
  ::close(fd);
}

bool AddressClaimed(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return false;
  }
  bool held = ::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);  // releases the probe's own lock, if it got one
  return held;
}

}  // namespace berth
