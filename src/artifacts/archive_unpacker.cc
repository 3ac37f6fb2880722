// Extraction is two layers of defence. BundleTree refuses hostile entries by looking at names
// only, before anything touches the disk; libarchive's write_disk then runs with its own
// SECURE_NODOTDOT and SECURE_SYMLINKS guards, checking the disk as it writes. Everything goes
// into a private staging directory that is renamed into place only once the whole archive has
// passed, so a refusal midway leaves nothing behind.
//
// libarchive resolves relative entry paths against the process's working directory, which is
// shared by all threads, so entries are rewritten to absolute paths under the staging directory.
// That rules out ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS (it refuses those rewritten paths);
// BundleTree refuses absolute names before the rewrite instead.
#include "artifacts/archive_unpacker.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <limits>
#include <memory>

#include "artifacts/bundle_tree.h"
#include "artifacts/file_ops.h"

namespace berth {
namespace {

struct ReadFree {
  void operator()(archive* a) const { archive_read_free(a); }
};
struct WriteFree {
  void operator()(archive* a) const { archive_write_free(a); }
};
using ArchiveReader = std::unique_ptr<archive, ReadFree>;
using DiskWriter = std::unique_ptr<archive, WriteFree>;

constexpr size_t kReadBlockBytes = 64 * 1024;
// libarchive's pseudo-errno values, from its private archive_private.h.
constexpr int kArchiveErrnoMisc = -1;
constexpr int kArchiveErrnoFileFormat = EILSEQ;

Status Refuse(std::string_view name, std::string_view rule) {
  std::string m = "bundle entry '";
  m += name;
  m += "': ";
  m += rule;
  return Status::InvalidArgument(std::move(m));
}

Result<EntryType> Classify(archive_entry* entry, std::string_view name) {
  if (archive_entry_hardlink(entry) != nullptr) {
    return EntryType::kHardlink;
  }
  switch (archive_entry_filetype(entry)) {
    case AE_IFREG:
      return EntryType::kFile;
    case AE_IFDIR:
      return EntryType::kDirectory;
    case AE_IFLNK:
      return EntryType::kSymlink;
    case AE_IFCHR:
    case AE_IFBLK:
      return Refuse(name, "device files are not allowed");
    case AE_IFIFO:
      return Refuse(name, "FIFOs are not allowed");
    case AE_IFSOCK:
      return Refuse(name, "sockets are not allowed");
    default:
      return Refuse(name, "entries of this type are not allowed");
  }
}

// Bundles run as a service's user: keep only "is it executable", never setuid/setgid/sticky,
// and keep directories writable by the owner so the tree can always be removed.
mode_t NormalizedPerm(EntryType type, mode_t perm) {
  if (type == EntryType::kDirectory || type == EntryType::kSymlink) {
    return 0755;
  }
  return (perm & 0111) != 0 ? 0755 : 0644;
}

// Tells whether holding some amount of unpacked data breaks the size or ratio limits.
class Budget {
 public:
  Budget(const UnpackLimits& limits, uint64_t archive_bytes) : limits_(limits) {
    if (__builtin_mul_overflow(archive_bytes, limits.max_compression_ratio, &ratio_bytes_)) {
      ratio_bytes_ = std::numeric_limits<uint64_t>::max();
    }
  }

  // The rule broken by `bytes` of unpacked data, or empty.
  std::string Check(uint64_t bytes) const {
    if (bytes > limits_.max_total_bytes) {
      return "unpacked size exceeds the limit of " + std::to_string(limits_.max_total_bytes) +
             " bytes";
    }
    if (bytes > limits_.ratio_grace_bytes && bytes > ratio_bytes_) {
      return "unpacked size exceeds " + std::to_string(limits_.max_compression_ratio) +
             " times the archive size (a decompression bomb?)";
    }
    return {};
  }

 private:
  UnpackLimits limits_;
  uint64_t ratio_bytes_ = 0;
};

// libarchive reports malformed input with its own pseudo-errno values; anything else is a real
// I/O error on our side.
bool IsInputError(int err) {
  return err == 0 || err == kArchiveErrnoMisc || err == kArchiveErrnoFileFormat;
}

Status ReadFailure(archive* in, std::string_view context) {
  const char* msg = archive_error_string(in);
  std::string m(context);
  m += ": ";
  m += msg != nullptr ? msg : "unknown error";
  if (IsInputError(archive_errno(in))) {
    return Status::InvalidArgument(std::move(m));
  }
  return Status::Internal(std::move(m));
}

Status WriteFailure(archive* disk, std::string_view name) {
  const char* msg = archive_error_string(disk);
  std::string reason = msg != nullptr ? msg : "unknown error";
  if (archive_errno(disk) == kArchiveErrnoMisc) {
    return Refuse(name, "refused by the extractor: " + reason);  // a libarchive SECURE_* guard
  }
  return Status::Internal("writing bundle entry '" + std::string(name) + "': " + reason);
}

// Zip is the likeliest wrong upload; name it rather than report an unrecognized format.
bool LooksLikeZip(int fd) {
  char magic[4];
  if (::pread(fd, magic, sizeof(magic), 0) != 4) {
    return false;
  }
  std::string_view m(magic, sizeof(magic));
  return m == std::string_view("PK\x03\x04", 4) || m == std::string_view("PK\x05\x06", 4);
}

// One archive being extracted into `staging`.
class Extraction {
 public:
  Extraction(std::string staging, const UnpackLimits& limits, uint64_t archive_bytes)
      : staging_(std::move(staging)), limits_(limits), budget_(limits, archive_bytes) {}

  Result<UnpackStats> Run(int fd) {
    in_.reset(archive_read_new());
    disk_.reset(archive_write_disk_new());
    if (!in_ || !disk_) {
      return Status::Internal("unpacking bundle: out of memory");
    }
    // Only the decompressors we accept: support_filter_all would also enable filters that run
    // external programs (lrzip, lzop, grzip).
    archive_read_support_format_tar(in_.get());
    archive_read_support_filter_gzip(in_.get());
    archive_read_support_filter_zstd(in_.get());
    archive_write_disk_set_options(disk_.get(), ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM |
                                                    ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                                    ARCHIVE_EXTRACT_SECURE_SYMLINKS);
    if (archive_read_open_fd(in_.get(), fd, kReadBlockBytes) != ARCHIVE_OK) {
      return ReadFailure(in_.get(), "bundle is not a tar, tar.gz or tar.zst archive");
    }
    for (;;) {
      archive_entry* entry = nullptr;
      int r = archive_read_next_header(in_.get(), &entry);
      if (r == ARCHIVE_EOF) {
        break;
      }
      if (r < ARCHIVE_WARN) {
        return ReadFailure(in_.get(), stats_.entries == 0
                                          ? "bundle is not a tar, tar.gz or tar.zst archive"
                                          : "bundle is corrupt or truncated");
      }
      if (Status s = ExtractEntry(entry); !s.ok()) {
        return s;
      }
    }
    // libarchive reads a stream of zeros (a tar's end marker) as an archive of nothing.
    if (stats_.entries == 0) {
      return Status::InvalidArgument(
          "bundle has no entries: an empty archive is not a bundle; pack the service's folder "
          "(berth push, or tar -czf bundle.tar.gz -C FOLDER .)");
    }
    // Closing applies the directory modes and times that libarchive defers to the end.
    if (archive_write_close(disk_.get()) < ARCHIVE_WARN) {
      const char* msg = archive_error_string(disk_.get());
      return Status::Internal(std::string("finishing bundle extraction: ") +
                              (msg != nullptr ? msg : "unknown error"));
    }
    if (Status s = tree_.CheckSymlinks(); !s.ok()) {
      return s;
    }
    return stats_;
  }

 private:
  Status ExtractEntry(archive_entry* entry) {
    const char* raw_name = archive_entry_pathname(entry);
    std::string name = raw_name != nullptr ? raw_name : "";
    if (++stats_.entries > limits_.max_entries) {
      return Refuse(name,
                    "the bundle has more than " + std::to_string(limits_.max_entries) + " entries");
    }
    Result<EntryType> type = Classify(entry, name);
    if (!type.ok()) {
      return type.status();
    }
    const char* link = *type == EntryType::kHardlink  ? archive_entry_hardlink(entry)
                       : *type == EntryType::kSymlink ? archive_entry_symlink(entry)
                                                      : nullptr;
    Result<AdmittedEntry> admitted = tree_.Add({name, *type, link != nullptr ? link : ""});
    if (!admitted.ok()) {
      return admitted.status();
    }
    if (admitted->path.empty()) {
      return Status::Ok();  // "./": the staging directory already is the root
    }
    // Refuse on the declared size before reading any data, so a bomb costs nothing. Tar must
    // store all declared data, so this never refuses an archive that would have fit.
    uint64_t declared = static_cast<uint64_t>(std::max<la_int64_t>(archive_entry_size(entry), 0));
    if (std::string rule = budget_.Check(stats_.bytes + declared); !rule.empty()) {
      return Refuse(name, rule);
    }

    archive_entry_set_pathname(entry, (staging_ + "/" + admitted->path).c_str());
    if (*type == EntryType::kHardlink) {
      archive_entry_set_hardlink(entry, (staging_ + "/" + admitted->hardlink_target).c_str());
    }
    archive_entry_set_perm(entry, NormalizedPerm(*type, archive_entry_perm(entry)));
    if (archive_write_header(disk_.get(), entry) < ARCHIVE_WARN) {
      return WriteFailure(disk_.get(), name);
    }
    if (*type == EntryType::kFile || *type == EntryType::kHardlink) {
      if (Status s = CopyData(name); !s.ok()) {
        return s;
      }
    }
    if (archive_write_finish_entry(disk_.get()) < ARCHIVE_WARN) {
      return WriteFailure(disk_.get(), name);
    }
    return Status::Ok();
  }

  // Streams the current entry's data, re-checking the budget as it grows in case the declared
  // size understated it.
  Status CopyData(std::string_view name) {
    for (;;) {
      const void* block = nullptr;
      size_t size = 0;
      la_int64_t offset = 0;
      int r = archive_read_data_block(in_.get(), &block, &size, &offset);
      if (r == ARCHIVE_EOF) {
        return Status::Ok();
      }
      if (r < ARCHIVE_WARN) {
        return ReadFailure(in_.get(), "bundle is corrupt or truncated");
      }
      stats_.bytes += size;
      if (std::string rule = budget_.Check(stats_.bytes); !rule.empty()) {
        return Refuse(name, rule);
      }
      if (archive_write_data_block(disk_.get(), block, size, offset) < ARCHIVE_WARN) {
        return WriteFailure(disk_.get(), name);
      }
    }
  }

  std::string staging_;
  UnpackLimits limits_;
  Budget budget_;
  BundleTree tree_;
  UnpackStats stats_;
  ArchiveReader in_;
  DiskWriter disk_;
};

struct Destination {
  std::string path;     // absolute, below a symlink-free parent
  std::string staging;  // prefix for the staging directory, a hidden sibling
};

Result<Destination> ResolveDestination(const std::string& dest_dir) {
  namespace fs = std::filesystem;
  fs::path p = fs::path(dest_dir).lexically_normal();
  if (!p.has_filename()) {
    p = p.parent_path();  // "out/" names "out"
  }
  std::string name = p.filename().string();
  if (name.empty() || name == "." || name == "..") {
    return Status::InvalidArgument("unpack destination '" + dest_dir +
                                   "' does not name a new directory");
  }
  std::string parent = p.has_parent_path() ? p.parent_path().string() : ".";
  // SECURE_SYMLINKS inspects every component of the paths we hand libarchive, so a symlink
  // above the destination (say /var/lib/berth -> /data/berth) would fail every entry.
  std::unique_ptr<char, decltype(&free)> real(::realpath(parent.c_str(), nullptr), &free);
  if (!real) {
    return ErrnoStatus("resolving unpack destination " + parent, errno);
  }
  std::string base(real.get());
  if (base != "/") {
    base += '/';
  }
  return Destination{base + name, base + "." + name + ".unpacking-"};
}

}  // namespace

Result<UnpackStats> UnpackArchive(const std::string& archive_path, const std::string& dest_dir,
                                  const UnpackLimits& limits) {
  Result<Destination> dest = ResolveDestination(dest_dir);
  if (!dest.ok()) {
    return dest.status();
  }
  struct stat st;
  if (::lstat(dest->path.c_str(), &st) == 0) {
    return Status::AlreadyExists("unpack destination " + dest->path + " already exists");
  }
  UniqueFd fd(::open(archive_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    return ErrnoStatus("opening bundle " + archive_path, errno);
  }
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return Status::InvalidArgument("bundle " + archive_path + " is not a regular file");
  }
  if (LooksLikeZip(fd.get())) {
    return Status::InvalidArgument(
        "bundle is a zip archive; only tar, tar.gz and tar.zst are accepted");
  }
  Result<std::string> staging = MakeTempDir(dest->staging);
  if (!staging.ok()) {
    return staging.status();
  }

  Result<UnpackStats> stats =
      Extraction(*staging, limits, static_cast<uint64_t>(st.st_size)).Run(fd.get());
  if (stats.ok() && ::chmod(staging->c_str(), 0755) != 0) {
    stats = ErrnoStatus("setting the mode of " + *staging, errno);
  }
  if (stats.ok()) {
    if (Status s = RenameNoReplace(*staging, dest->path); !s.ok()) {
      stats = s;
    }
  }
  if (!stats.ok()) {
    // Best effort: the original error matters more than a failure to clean up after it.
    (void)RemoveTree(*staging);
  }
  return stats;
}

}  // namespace berth
