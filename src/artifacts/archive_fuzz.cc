// libFuzzer target for the bundle unpacker, which reads archives from users: any bytes as an
// uploaded archive (tar, tar.gz, tar.zst), and as a berth.yaml bundle manifest. Besides not
// crashing, what the unpacker promises holds:
// - all or nothing: refused, it leaves nothing beside the destination; accepted, only it;
// - inside the bundle, only directories, regular files and symlinks that resolve inside it.
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "artifacts/archive_unpacker.h"
#include "artifacts/bundle_manifest.h"

namespace fs = std::filesystem;

namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "archive_fuzz: %s\n", what);
    std::abort();
  }
}

const fs::path& Root() {
  static const fs::path root = [] {
    char tmpl[] = "/tmp/berth-archive-fuzz-XXXXXX";
    Check(mkdtemp(tmpl) != nullptr, "mkdtemp");
    return fs::path(tmpl);
  }();
  return root;
}

size_t EntriesIn(const fs::path& dir) {
  return static_cast<size_t>(std::distance(fs::directory_iterator(dir), fs::directory_iterator{}));
}

void CheckBundle(const fs::path& dest) {
  fs::path real_dest = fs::canonical(dest);
  for (auto it = fs::recursive_directory_iterator(dest); it != fs::recursive_directory_iterator{};
       ++it) {
    fs::file_status st = it->symlink_status();
    if (fs::is_symlink(st)) {
      std::error_code ec;
      fs::path target = fs::weakly_canonical(it->path(), ec);
      Check(!ec, "a symlink that does not resolve");
      auto rel = target.lexically_relative(real_dest);
      Check(!rel.empty() && *rel.begin() != "..", "a symlink that resolves outside the bundle");
    } else {
      Check(fs::is_directory(st) || fs::is_regular_file(st), "an entry that is not a file");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  (void)berth::ParseBundleManifest(bytes);
  const fs::path& root = Root();
  fs::path archive = root / "upload";
  fs::path work = root / "work";
  fs::create_directories(work);
  {
    std::ofstream out(archive, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  fs::path dest = work / "bundle";
  berth::UnpackLimits limits;
  limits.max_total_bytes = 64 << 20;  // what a fuzz input may expand to
  limits.max_entries = 10'000;
  auto stats = berth::UnpackArchive(archive, dest, limits);
  if (stats.ok()) {
    Check(EntriesIn(work) == 1 && fs::is_directory(fs::symlink_status(dest)),
          "an accepted archive left something beside its bundle");
    CheckBundle(dest);
  } else {
    Check(EntriesIn(work) == 0, "a refused archive left something behind");
    Check(!stats.status().message().empty(), "a refused archive without a reason");
  }
  fs::remove_all(work);
  return 0;
}
