// Packing a local directory into a bundle: the client side of an upload.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "common/status.h"

namespace berth {

struct PackStats {
  uint64_t entries = 0;        // files, directories and symlinks written
  uint64_t bytes = 0;          // file data written, before compression
  uint64_t archive_bytes = 0;  // size of the archive
};

// Called with the file data written so far and the total to write.
using PackProgress = std::function<void(uint64_t bytes_done, uint64_t bytes_total)>;

// Writes the contents of `dir` to `out_path` as a gzip-compressed tar (pax restricted), with
// paths relative to `dir`, in sorted order, owned by uid/gid 0. `dir/.berthignore` (see
// IgnoreRules) selects what is left out; it is packed itself unless one of its own rules matches
// it. Non-ASCII names are stored as their bytes (pax hdrcharset=BINARY). Symlinks are stored as
// symlinks, never followed; devices, FIFOs and sockets are skipped. If `out_path` lies inside
// `dir` it is not packed into itself.
//
// `progress` (may be empty) is called once with 0 before any data, then after each chunk of file
// data; the total is the sum of the regular files' sizes, measured before writing.
//
// Errors: NotFound if `dir` is missing, InvalidArgument if it is not a directory,
// FailedPrecondition if a file shrank while being packed, and errno-based errors naming the path
// for I/O failures. On error `out_path` is removed if this call created it.
Result<PackStats> PackDirectory(const std::string& dir, const std::string& out_path,
                                const PackProgress& progress);

}  // namespace berth
