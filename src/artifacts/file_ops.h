// Filesystem steps the artifacts module builds its all-or-nothing guarantees from: work happens
// in a fresh temporary directory, then one rename publishes it.
#pragma once

#include <unistd.h>

#include <string>

#include "common/status.h"

namespace berth {

// Owns a file descriptor and closes it when destroyed (negative means none).
class UniqueFd {
 public:
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};


// Renames `from` to `to` only if `to` does not exist, atomically where the filesystem supports
// renameat2(RENAME_NOREPLACE). Returns AlreadyExists when `to` exists (and leaves `from` alone),
// or an errno-based Status naming both paths (EXDEV when they are on different filesystems).
Status RenameNoReplace(const std::string& from, const std::string& to);

// Removes `path` and everything below it; symlinks are removed, never followed. A missing path
// is not an error.
Status RemoveTree(const std::string& path);

// Removes everything inside `dir` (not `dir` itself) and returns how many entries went; a
// missing `dir` has none. For sweeping what a crash left in a scratch directory.
size_t RemoveEntriesOf(const std::string& dir);

// Creates a new directory (mode 0700) named `prefix` followed by six random characters and
// returns its path. The parent of `prefix` must exist.
Result<std::string> MakeTempDir(const std::string& prefix);

}  // namespace berth
