// Unpacking of uploaded bundles: tar, tar.gz and tar.zst archives that come from users and are
// treated as hostile.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace berth {

struct UnpackLimits {
  uint64_t max_total_bytes = uint64_t{8} << 30;  // file data, summed over all entries
  uint64_t max_entries = 100'000;
  // Unpacked bytes per archive byte. Enforced only above `ratio_grace_bytes` of unpacked data,
  // so that small archives which compress well are accepted.
  uint64_t max_compression_ratio = 200;
  uint64_t ratio_grace_bytes = uint64_t{1} << 20;
};

struct UnpackStats {
  uint64_t entries = 0;  // archive entries read, including a "./" root entry if present
  uint64_t bytes = 0;    // file data written
};

// Extracts the archive at `archive_path` into the new directory `dest_dir`. The format is
// detected from the content: tar (any variant), optionally gzip- or zstd-compressed.
//
// All or nothing: extraction happens in a temporary sibling of `dest_dir`, which is renamed into
// place only on success and removed on failure, so on error nothing is left behind.
//
// Refused archives return InvalidArgument naming the entry and the rule ("bundle entry
// '../etc/passwd': paths with '..' are not allowed"): absolute paths, '..' components, entries
// written through a symlink or repeated, symlinks that are absolute or resolve outside the
// bundle, hardlinks to anything but an earlier file, devices, FIFOs and sockets, and archives
// that break `limits`. Other formats (zip, ...) and corrupt archives are InvalidArgument too.
//
// Files get mode 0755 if the archive gives them any execute bit and 0644 otherwise; directories
// get 0755. Owners, setuid/setgid bits, ACLs and xattrs are not restored; mtimes are.
//
// Other errors: AlreadyExists if `dest_dir` exists (also if it appears during extraction),
// NotFound if the archive or the parent of `dest_dir` is missing, Internal for I/O failures.
// Thread-safe: concurrent calls with different `dest_dir`s do not interfere.
Result<UnpackStats> UnpackArchive(const std::string& archive_path, const std::string& dest_dir,
                                  const UnpackLimits& limits = {});

}  // namespace berth
