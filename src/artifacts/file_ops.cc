#include "artifacts/file_ops.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cerrno>
#include <filesystem>
#include <system_error>
#include <vector>

namespace berth {

Status RenameNoReplace(const std::string& from, const std::string& to) {
  std::string context = "renaming " + from + " to " + to;
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) {
    return Status::Ok();
  }
  int err = errno;
  if (err == EEXIST) {
    return Status::AlreadyExists(context + ": target exists");
  }
  if (err != EINVAL && err != ENOSYS) {
    return ErrnoStatus(context, err);
  }
  // The filesystem cannot do RENAME_NOREPLACE. Check first and accept the small race: every
  // caller writes identical content under a given name, so losing the race replaces like with like.
  struct stat st;
  if (::lstat(to.c_str(), &st) == 0) {
    return Status::AlreadyExists(context + ": target exists");
  }
  if (::rename(from.c_str(), to.c_str()) != 0) {
    err = errno;
    if (err == ENOTEMPTY || err == EEXIST) {
      return Status::AlreadyExists(context + ": target exists");
    }
    return ErrnoStatus(context, err);
  }
  return Status::Ok();
}

Status RemoveTree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) {
    return Status::Internal("removing " + path + ": " + ec.message());
  }
  return Status::Ok();
}

size_t RemoveEntriesOf(const std::string& dir) {
  std::error_code ec;
  size_t removed = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (RemoveTree(entry.path().string()).ok()) {
      ++removed;
    }
  }
  return removed;
}

Result<std::string> MakeTempDir(const std::string& prefix) {
  std::string tmpl = prefix + "XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) {
    return ErrnoStatus("creating a temporary directory " + tmpl, errno);
  }
  return std::string(buf.data());
}

}  // namespace berth
