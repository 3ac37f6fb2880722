#include "artifacts/bundle_packer.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <vector>

#include "artifacts/file_ops.h"
#include "common/file_util.h"
#include "artifacts/ignore_rules.h"

namespace berth {
namespace {

constexpr char kIgnoreFile[] = ".berthignore";
constexpr size_t kChunkBytes = 256 * 1024;

struct Item {
  std::string rel;          // relative to the packed directory
  struct stat st;           // from lstat
  std::string link_target;  // symlinks only
};

Result<std::string> RealPath(const std::string& path) {
  std::unique_ptr<char, decltype(&free)> real(::realpath(path.c_str(), nullptr), &free);
  if (!real) {
    return ErrnoStatus("resolving " + path, errno);
  }
  return std::string(real.get());
}

// Walks `root`/`rel` depth-first in name order, appending what is to be packed to `items`.
// Ignored directories are not entered: as in git, their contents cannot be re-included.
Status Collect(const std::string& root, const std::string& rel, const IgnoreRules& rules,
               const std::string& skip_path, std::vector<Item>* items) {
  std::string abs_dir = rel.empty() ? root : root + "/" + rel;
  struct CloseDir {
    void operator()(DIR* d) const { ::closedir(d); }
  };
  std::unique_ptr<DIR, CloseDir> d(::opendir(abs_dir.c_str()));
  if (!d) {
    return ErrnoStatus("listing " + abs_dir, errno);
  }
  std::vector<std::string> names;
  errno = 0;
  while (dirent* e = ::readdir(d.get())) {
    std::string_view name = e->d_name;
    if (name != "." && name != "..") {
      names.emplace_back(name);
    }
  }
  if (errno != 0) {
    return ErrnoStatus("listing " + abs_dir, errno);
  }
  std::sort(names.begin(), names.end());

  for (const std::string& name : names) {
    Item item;
    item.rel = rel.empty() ? name : rel + "/" + name;
    std::string abs = root + "/" + item.rel;
    if (::lstat(abs.c_str(), &item.st) != 0) {
      return ErrnoStatus("inspecting " + abs, errno);
    }
    bool is_dir = S_ISDIR(item.st.st_mode);
    if (abs == skip_path || rules.Matches(item.rel, is_dir)) {
      continue;
    }
    if (S_ISLNK(item.st.st_mode)) {
      std::vector<char> buf(static_cast<size_t>(item.st.st_size) + 1);
      ssize_t n = ::readlink(abs.c_str(), buf.data(), buf.size());
      if (n < 0) {
        return ErrnoStatus("reading symlink " + abs, errno);
      }
      item.link_target.assign(buf.data(), static_cast<size_t>(n));
    } else if (!is_dir && !S_ISREG(item.st.st_mode)) {
      continue;  // devices, FIFOs and sockets have no place in a bundle
    }
    std::string child = item.rel;  // not a reference into `items`, which the recursion grows
    items->push_back(std::move(item));
    if (is_dir) {
      if (Status s = Collect(root, child, rules, skip_path, items); !s.ok()) {
        return s;
      }
    }
  }
  return Status::Ok();
}

class Packer {
 public:
  Packer(std::string root, const PackProgress& progress, uint64_t total)
      : root_(std::move(root)), progress_(progress), total_(total) {}

  Status Write(const std::vector<Item>& items, const std::string& out_path) {
    std::unique_ptr<archive, decltype(&archive_write_free)> out(archive_write_new(),
                                                                &archive_write_free);
    a_ = out.get();
    archive_write_add_filter_gzip(a_);
    archive_write_set_format_pax_restricted(a_);
    // Non-ASCII names go in as the bytes on disk, marked hdrcharset=BINARY. By default libarchive
    // converts them from the locale to UTF-8, which fails under the "C" locale daemons run in.
    archive_write_set_format_option(a_, "pax", "hdrcharset", "BINARY");
    archive_write_set_bytes_in_last_block(a_, 1);  // no padding after the gzip stream
    if (archive_write_open_filename(a_, out_path.c_str()) != ARCHIVE_OK) {
      return Failure("creating " + out_path);
    }
    created_ = true;
    Report();
    for (const Item& item : items) {
      if (Status s = WriteItem(item); !s.ok()) {
        return s;
      }
    }
    if (archive_write_close(a_) != ARCHIVE_OK) {
      return Failure("finishing " + out_path);
    }
    return Status::Ok();
  }

  uint64_t done() const { return done_; }
  // Whether Write got as far as creating the output file.
  bool created() const { return created_; }

 private:
  Status WriteItem(const Item& item) {
    std::unique_ptr<archive_entry, decltype(&archive_entry_free)> entry(archive_entry_new(),
                                                                        &archive_entry_free);
    archive_entry* e = entry.get();
    archive_entry_set_pathname(e, item.rel.c_str());
    archive_entry_set_perm(e, item.st.st_mode & 0777);
    archive_entry_set_mtime(e, item.st.st_mtim.tv_sec, item.st.st_mtim.tv_nsec);
    if (S_ISDIR(item.st.st_mode)) {
      archive_entry_set_filetype(e, AE_IFDIR);
    } else if (S_ISLNK(item.st.st_mode)) {
      archive_entry_set_filetype(e, AE_IFLNK);
      archive_entry_set_symlink(e, item.link_target.c_str());
    } else {
      archive_entry_set_filetype(e, AE_IFREG);
      archive_entry_set_size(e, item.st.st_size);
    }
    if (archive_write_header(a_, e) != ARCHIVE_OK) {
      return Failure("adding " + item.rel);
    }
    if (S_ISREG(item.st.st_mode)) {
      return WriteData(item);
    }
    return Status::Ok();
  }

  Status WriteData(const Item& item) {
    std::string abs = root_ + "/" + item.rel;
    UniqueFd fd(::open(abs.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (fd.get() < 0) {
      return ErrnoStatus("reading " + abs, errno);
    }
    // Exactly the size in the header: a tar entry cannot grow, and a shrunk one would be padded.
    uint64_t left = static_cast<uint64_t>(item.st.st_size);
    std::vector<char> buf(kChunkBytes);
    while (left > 0) {
      ssize_t n = ::read(fd.get(), buf.data(), std::min<uint64_t>(left, buf.size()));
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0) {
        return ErrnoStatus("reading " + abs, errno);
      }
      if (n == 0) {
        return Status::FailedPrecondition(abs + " shrank while it was being packed");
      }
      if (archive_write_data(a_, buf.data(), static_cast<size_t>(n)) != n) {
        return Failure("writing " + item.rel);
      }
      left -= static_cast<uint64_t>(n);
      done_ += static_cast<uint64_t>(n);
      Report();
    }
    return Status::Ok();
  }

  void Report() const {
    if (progress_) {
      progress_(done_, total_);
    }
  }

  Status Failure(const std::string& context) const {
    const char* msg = archive_error_string(a_);
    return Status::Internal("packing " + root_ + ": " + context + ": " +
                            (msg != nullptr ? msg : "unknown error"));
  }

  std::string root_;
  const PackProgress& progress_;
  uint64_t total_;
  uint64_t done_ = 0;
  bool created_ = false;
  archive* a_ = nullptr;
};

}  // namespace

Result<PackStats> PackDirectory(const std::string& dir, const std::string& out_path,
                                const PackProgress& progress) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) {
    return ErrnoStatus("packing " + dir, errno);
  }
  if (!S_ISDIR(st.st_mode)) {
    return Status::InvalidArgument("packing " + dir + ": not a directory");
  }
  Result<std::string> root = RealPath(dir);
  if (!root.ok()) {
    return root.status();
  }

  IgnoreRules rules;
  std::string ignore_path = *root + "/" + kIgnoreFile;
  if (::lstat(ignore_path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
    Result<std::string> text = ReadFile(ignore_path);
    if (!text.ok()) {
      return text.status();
    }
    rules = IgnoreRules::Parse(*text);
  }

  // The archive's own path, so that packing into the directory being packed works.
  std::string out_abs;
  size_t slash = out_path.rfind('/');
  Result<std::string> out_dir =
      RealPath(slash == std::string::npos ? "." : out_path.substr(0, slash + 1));
  if (out_dir.ok()) {
    out_abs = *out_dir + "/" + out_path.substr(slash == std::string::npos ? 0 : slash + 1);
  }

  std::vector<Item> items;
  if (Status s = Collect(*root, "", rules, out_abs, &items); !s.ok()) {
    return s;
  }
  uint64_t total = 0;
  for (const Item& item : items) {
    if (S_ISREG(item.st.st_mode)) {
      total += static_cast<uint64_t>(item.st.st_size);
    }
  }

  Packer packer(*root, progress, total);
  if (Status s = packer.Write(items, out_path); !s.ok()) {
    if (packer.created()) {
      ::unlink(out_path.c_str());
    }
    return s;
  }
  PackStats stats;
  stats.entries = items.size();
  stats.bytes = packer.done();
  if (::stat(out_path.c_str(), &st) == 0) {
    stats.archive_bytes = static_cast<uint64_t>(st.st_size);
  }
  return stats;
}

}  // namespace berth
