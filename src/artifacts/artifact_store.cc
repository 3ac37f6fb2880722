// Every step publishes with a rename, and every name is derived from the content, so concurrent
// ingests of the same archive race only to put identical things in the same place: whoever
// loses a rename drops its copy and carries on.
#include "artifacts/artifact_store.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <functional>
#include <memory>
#include <vector>

#include "artifacts/file_ops.h"
#include "common/file_util.h"

namespace berth {
namespace {

constexpr std::string_view kDigestPrefix = "sha256:";
constexpr size_t kChunkBytes = 1 << 20;

// The hex part of a well-formed digest, or empty. Also what keeps a digest from naming a path
// outside the store.
std::string_view HexOf(std::string_view digest) {
  if (digest.substr(0, kDigestPrefix.size()) != kDigestPrefix) {
    return {};
  }
  std::string_view hex = digest.substr(kDigestPrefix.size());
  if (hex.size() != 64) {
    return {};
  }
  for (char c : hex) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return {};
    }
  }
  return hex;
}

struct HashedFile {
  std::string hex;
  uint64_t size = 0;
  dev_t device = 0;
};

Result<HashedFile> HashFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  struct stat st;
  if (fd.get() < 0 && errno == ELOOP) {
    return Status::InvalidArgument("upload " + path + " is not a regular file");
  }
  if (fd.get() < 0 || ::fstat(fd.get(), &st) != 0) {
    return ErrnoStatus("reading upload " + path, errno);
  }
  if (!S_ISREG(st.st_mode)) {
    return Status::InvalidArgument("upload " + path + " is not a regular file");
  }
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return Status::Internal("hashing upload: cannot set up SHA-256");
  }
  HashedFile out;
  out.device = st.st_dev;
  std::vector<unsigned char> buf(kChunkBytes);
  for (;;) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return ErrnoStatus("reading upload " + path, errno);
    }
    if (n == 0) {
      break;
    }
    EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(n));
    out.size += static_cast<uint64_t>(n);
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned int i = 0; i < len; ++i) {
    out.hex += kHex[digest[i] >> 4];
    out.hex += kHex[digest[i] & 0xf];
  }
  return out;
}

Status WriteAll(int fd, const char* data, size_t size, const std::string& path) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return ErrnoStatus("writing " + path, errno);
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status CopyInto(const std::string& source, int out, const std::string& out_path) {
  UniqueFd in(::open(source.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.get() < 0) {
    return ErrnoStatus("reading " + source, errno);
  }
  std::vector<char> buf(kChunkBytes);
  for (;;) {
    ssize_t n = ::read(in.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return ErrnoStatus("reading " + source, errno);
    }
    if (n == 0) {
      return Status::Ok();
    }
    if (Status s = WriteAll(out, buf.data(), static_cast<size_t>(n), out_path); !s.ok()) {
      return s;
    }
  }
}

// Creates a new file named `prefix` plus six random characters, lets `fill` write it, and
// returns its path. The file is removed if `fill` fails.
Result<std::string> WriteTempFile(
    const std::string& prefix, const std::function<Status(int fd, const std::string& path)>& fill) {
  std::string path = prefix + "XXXXXX";
  UniqueFd fd(::mkstemp(path.data()));
  if (fd.get() < 0) {
    return ErrnoStatus("creating a temporary file " + path, errno);
  }
  if (Status s = fill(fd.get(), path); !s.ok()) {
    ::unlink(path.c_str());
    return s;
  }
  return path;
}

Result<UnpackStats> ReadMarker(const std::string& path) {
  Result<std::string> text = ReadFile(path);
  if (!text.ok()) {
    return text.status();
  }
  UnpackStats stats;
  if (std::sscanf(text->c_str(), "entries %" SCNu64 "\nbytes %" SCNu64, &stats.entries,
                  &stats.bytes) != 2) {
    return Status::Internal("malformed " + path);
  }
  return stats;
}

// Unlinks `path`; true if it existed.
Result<bool> UnlinkIfPresent(const std::string& path) {
  if (::unlink(path.c_str()) == 0) {
    return true;
  }
  if (errno == ENOENT) {
    return false;
  }
  return ErrnoStatus("removing " + path, errno);
}

}  // namespace

ArtifactStore::ArtifactStore(std::string root, UnpackLimits limits)
    : root_(std::move(root)), limits_(limits) {}

std::string ArtifactStore::Path(std::string_view dir, std::string_view hex) const {
  std::string p = root_;
  p += '/';
  p += dir;
  if (!hex.empty()) {
    p += '/';
    p += hex;
  }
  return p;
}

Status ArtifactStore::EnsureLayout() const {
  for (std::string_view dir : {"", "blobs", "unpacked", "ingested", "tmp"}) {
    std::string path = dir.empty() ? root_ : Path(dir, "");
    if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
      return ErrnoStatus("creating artifact store directory " + path, errno);
    }
  }
  return Status::Ok();
}

size_t ArtifactStore::SweepTemporaries() const { return RemoveEntriesOf(Path("tmp", "")); }

Result<IngestedArtifact> ArtifactStore::Ingest(const std::string& upload_path) {
  if (Status s = EnsureLayout(); !s.ok()) {
    return s;
  }
  Result<HashedFile> hashed = HashFile(upload_path);
  if (!hashed.ok()) {
    return hashed.status();
  }
  const std::string& hex = hashed->hex;
  struct stat blobs;
  if (::stat(Path("blobs", "").c_str(), &blobs) != 0) {
    return ErrnoStatus("inspecting " + Path("blobs", ""), errno);
  }
  Result<bool> created = PlaceBlob(upload_path, hex, hashed->device == blobs.st_dev);
  if (!created.ok()) {
    return created.status();
  }

  IngestedArtifact artifact;
  artifact.digest = std::string(kDigestPrefix) + hex;
  artifact.size_bytes = hashed->size;
  Result<UnpackStats> stats = ReadMarker(Path("ingested", hex));
  if (!stats.ok()) {
    stats = Unpack(hex);
    if (!stats.ok()) {
      // A refused archive is refused for its content, so no ingest of it can succeed: drop the
      // blob even if another ingest placed it. After other failures keep a blob this call did
      // not create, as a concurrent ingest may be reading it.
      if (*created || stats.status().code() == StatusCode::kInvalidArgument) {
        ::unlink(Path("blobs", hex).c_str());
      }
      return stats.status();
    }
    if (Status s = WriteIngestedMarker(hex, *stats); !s.ok()) {
      return s;
    }
  }
  artifact.unpacked_bytes = stats->bytes;
  artifact.entries = stats->entries;
  return artifact;
}

Result<bool> ArtifactStore::PlaceBlob(const std::string& upload_path, const std::string& hex,
                                      bool same_filesystem) const {
  std::string source = upload_path;
  if (!same_filesystem) {
    // A rename cannot cross filesystems: copy into tmp/, beside blobs/, and rename the copy.
    Result<std::string> copy = WriteTempFile(
        Path("tmp", hex) + ".upload.",
        [&](int fd, const std::string& path) { return CopyInto(upload_path, fd, path); });
    if (!copy.ok()) {
      return copy.status();
    }
    source = *copy;
  }
  Status s = RenameNoReplace(source, Path("blobs", hex));
  bool existed = s.code() == StatusCode::kAlreadyExists;
  if (!s.ok() && !existed) {
    if (source != upload_path) {
      ::unlink(source.c_str());
    }
    return s;
  }
  // An existing blob holds the same bytes, so ours is dropped. Either way the upload is consumed.
  if (existed) {
    ::unlink(source.c_str());
  }
  if (source != upload_path) {
    ::unlink(upload_path.c_str());
  }
  return !existed;
}

Result<UnpackStats> ArtifactStore::Unpack(const std::string& hex) const {
  Result<std::string> work = MakeTempDir(Path("tmp", hex) + ".unpack.");
  if (!work.ok()) {
    return work.status();
  }
  std::string tree = *work + "/tree";
  Result<UnpackStats> stats = UnpackArchive(Path("blobs", hex), tree, limits_);
  if (stats.ok()) {
    // AlreadyExists: another ingest of the same content (perhaps an interrupted one) got there
    // first, with an identical tree.
    Status s = RenameNoReplace(tree, Path("unpacked", hex));
    if (!s.ok() && s.code() != StatusCode::kAlreadyExists) {
      stats = s;
    }
  }
  (void)RemoveTree(*work);
  return stats;
}

Status ArtifactStore::WriteIngestedMarker(const std::string& hex, const UnpackStats& stats) const {
  std::string content =
      "entries " + std::to_string(stats.entries) + "\nbytes " + std::to_string(stats.bytes) + "\n";
  Result<std::string> tmp =
      WriteTempFile(Path("tmp", hex) + ".marker.", [&](int fd, const std::string& path) {
        return WriteAll(fd, content.data(), content.size(), path);
      });
  if (!tmp.ok()) {
    return tmp.status();
  }
  // A plain rename: a concurrent ingest may have written the same marker already.
  std::string marker = Path("ingested", hex);
  if (::rename(tmp->c_str(), marker.c_str()) != 0) {
    Status s = ErrnoStatus("renaming " + *tmp + " to " + marker, errno);
    ::unlink(tmp->c_str());
    return s;
  }
  return Status::Ok();
}

std::string ArtifactStore::UnpackedPath(std::string_view digest) const {
  std::string_view hex = HexOf(digest);
  return hex.empty() ? std::string() : Path("unpacked", hex);
}

Status ArtifactStore::Remove(std::string_view digest) {
  std::string_view hex = HexOf(digest);
  if (hex.empty()) {
    return Status::InvalidArgument("malformed artifact digest '" + std::string(digest) +
                                   "': want sha256:<64 lowercase hex digits>");
  }
  // The marker goes first, so that an artifact is never reported complete while its parts go.
  Result<bool> had_marker = UnlinkIfPresent(Path("ingested", hex));
  if (!had_marker.ok()) {
    return had_marker.status();
  }
  bool found = *had_marker;
  std::string tree = Path("unpacked", hex);
  struct stat st;
  if (::lstat(tree.c_str(), &st) == 0) {
    found = true;
    // Move the tree aside before deleting it, so a half-deleted tree is never at its name.
    Result<std::string> work = MakeTempDir(Path("tmp", hex) + ".remove.");
    if (!work.ok()) {
      return work.status();
    }
    if (::rename(tree.c_str(), (*work + "/tree").c_str()) != 0) {
      Status s = ErrnoStatus("moving " + tree + " aside", errno);
      (void)RemoveTree(*work);
      return s;
    }
    if (Status s = RemoveTree(*work); !s.ok()) {
      return s;
    }
  }
  Result<bool> had_blob = UnlinkIfPresent(Path("blobs", hex));
  if (!had_blob.ok()) {
    return had_blob.status();
  }
  if (!found && !*had_blob) {
    return Status::NotFound("artifact " + std::string(digest) + " does not exist");
  }
  return Status::Ok();
}

}  // namespace berth
