// ArtifactStore keeps uploaded bundles by content, each both as the original archive and
// unpacked, so that a service revision can name its code by digest.
//
// Layout under the root:
//   blobs/<hex>      the archive as uploaded
//   unpacked/<hex>/  its unpacked tree (see UnpackArchive for what is refused)
//   ingested/<hex>   "entries N\nbytes M\n"; written last, so it marks a complete artifact
//   tmp/             work in progress, renamed into place when done
// where <hex> is the lowercase hex SHA-256 of the archive.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "artifacts/archive_unpacker.h"
#include "common/status.h"

namespace berth {

struct IngestedArtifact {
  std::string digest;  // "sha256:<64 hex digits>"
  uint64_t size_bytes = 0;
  uint64_t unpacked_bytes = 0;
  uint64_t entries = 0;
};

// Safe to use from many threads: concurrent ingests, including of the same content, each see
// either a complete artifact or none. Remove must not race with an Ingest of the same digest.
class ArtifactStore {
 public:
  // Does no I/O; directories are created by the first Ingest.
  ArtifactStore(std::string root, UnpackLimits limits);

  // Hashes the archive at `upload_path`, moves it into the store (rename, or a copy when it is on
  // another filesystem) and unpacks it. The upload must not change meanwhile. Ingesting content
  // that is already stored returns the same artifact without unpacking again.
  //
  // Once the upload is in the store it is consumed, whatever the outcome. If the archive is
  // refused (InvalidArgument from UnpackArchive) nothing of it is kept. Other errors: NotFound if
  // the upload is missing, InvalidArgument if it is not a regular file, Internal on I/O failures.
  Result<IngestedArtifact> Ingest(const std::string& upload_path);

  // Where Ingest unpacked `digest`; empty if `digest` is not of the form "sha256:<hex>". Does not
  // check that the artifact exists.
  std::string UnpackedPath(std::string_view digest) const;

  // Deletes the artifact. NotFound if nothing of it was stored, InvalidArgument for a malformed
  // digest.
  Status Remove(std::string_view digest);

  // Removes what an ingest interrupted by a crash left in tmp/ (half-copied uploads, partly
  // unpacked trees) and returns how many entries went. Only at start-up, while no ingest runs.
  size_t SweepTemporaries() const;

 private:
  Status EnsureLayout() const;
  // Moves (or, across filesystems, copies) the upload to blobs/<hex> and consumes it. Returns
  // false if an identical blob was already there.
  Result<bool> PlaceBlob(const std::string& upload_path, const std::string& hex,
                         bool same_filesystem) const;
  Result<UnpackStats> Unpack(const std::string& hex) const;
  Status WriteIngestedMarker(const std::string& hex, const UnpackStats& stats) const;

  std::string Path(std::string_view dir, std::string_view hex) const;

  const std::string root_;
  const UnpackLimits limits_;
};

}  // namespace berth
