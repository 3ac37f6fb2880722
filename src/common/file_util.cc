#include "common/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <string>

namespace berth {

Result<std::string> ReadFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return ErrnoStatus("reading " + path, errno);
  }
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      Status s = ErrnoStatus("reading " + path, errno);
      ::close(fd);
      return s;
    }
    if (n == 0) {
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

namespace {
Status WriteAll(int fd, std::string_view content, const std::string& path) {
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return ErrnoStatus("writing " + path, errno);
    }
    off += static_cast<size_t>(n);
  }
  return Status::Ok();
}
}  // namespace

Status WriteFile(const std::string& path, std::string_view content) {
  int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) {
    return ErrnoStatus("opening " + path, errno);
  }
  Status s = WriteAll(fd, content, path);
  ::close(fd);
  return s;
}

Status WriteFileAtomic(const std::string& path, std::string_view content, mode_t mode,
                       Durability durability) {
  // A name of this call's own: two threads (or daemons) writing the same file at once must
  // not rename each other's half-written copy, or find it gone.
  static std::atomic<uint64_t> seq{0};
  std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." +
                    std::to_string(seq.fetch_add(1, std::memory_order_relaxed));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    return ErrnoStatus("creating " + tmp, errno);
  }
  ::fchmod(fd, mode);  // open's mode is narrowed by the umask
  Status s = WriteAll(fd, content, tmp);
  if (s.ok() && durability == Durability::kMachineCrash && ::fsync(fd) != 0) {
    s = ErrnoStatus("syncing " + tmp, errno);
  }
  ::close(fd);
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return ErrnoStatus("renaming " + tmp + " to " + path, errno);
  }
  return Status::Ok();
}

}  // namespace berth
