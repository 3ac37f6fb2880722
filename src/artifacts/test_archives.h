// Test-only helpers: build archives with libarchive's writer (which writes whatever it is
// given, hostile names included) and inspect directories.
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace berth::testutil {

namespace fs = std::filesystem;

struct TestEntry {
  std::string path;
  unsigned type = AE_IFREG;  // AE_IFREG, AE_IFDIR, AE_IFLNK, AE_IFCHR, AE_IFIFO
  std::string data;          // file content
  std::string symlink;       // symlink target
  std::string hardlink;      // when set, the entry is a hardlink to this path
  unsigned perm = 0644;
  uint64_t zero_bytes = 0;  // appended zeros, for large files that compress well
};

enum class Compression { kNone, kGzip, kZstd };

inline TestEntry Entry(std::string path, unsigned type, unsigned perm) {
  TestEntry t;
  t.path = std::move(path);
  t.type = type;
  t.perm = perm;
  return t;
}
inline TestEntry File(std::string path, std::string data) {
  TestEntry t = Entry(std::move(path), AE_IFREG, 0644);
  t.data = std::move(data);
  return t;
}
inline TestEntry Dir(std::string path) { return Entry(std::move(path), AE_IFDIR, 0755); }
inline TestEntry Symlink(std::string path, std::string target) {
  TestEntry t = Entry(std::move(path), AE_IFLNK, 0777);
  t.symlink = std::move(target);
  return t;
}
inline TestEntry Hardlink(std::string path, std::string target) {
  TestEntry t = Entry(std::move(path), AE_IFREG, 0644);
  t.hardlink = std::move(target);
  return t;
}

// Writes `entries` as a pax tar (or zip), optionally compressed.
inline void WriteArchive(const std::string& out, const std::vector<TestEntry>& entries,
                         Compression compression = Compression::kNone, bool zip = false) {
  std::unique_ptr<archive, decltype(&archive_write_free)> a(archive_write_new(),
                                                            &archive_write_free);
  if (zip) {
    ASSERT_EQ(archive_write_set_format_zip(a.get()), ARCHIVE_OK);
  } else {
    ASSERT_EQ(archive_write_set_format_pax_restricted(a.get()), ARCHIVE_OK);
  }
  if (compression == Compression::kGzip) {
    ASSERT_EQ(archive_write_add_filter_gzip(a.get()), ARCHIVE_OK);
  } else if (compression == Compression::kZstd) {
    ASSERT_EQ(archive_write_add_filter_zstd(a.get()), ARCHIVE_OK);
  }
  ASSERT_EQ(archive_write_open_filename(a.get(), out.c_str()), ARCHIVE_OK)
      << archive_error_string(a.get());
  for (const TestEntry& t : entries) {
    std::unique_ptr<archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(),
                                                                    &archive_entry_free);
    archive_entry_set_pathname(e.get(), t.path.c_str());
    archive_entry_set_filetype(e.get(), t.type);
    archive_entry_set_perm(e.get(), t.perm);
    archive_entry_set_mtime(e.get(), 1'700'000'000, 0);
    if (!t.symlink.empty()) {
      archive_entry_set_symlink(e.get(), t.symlink.c_str());
    }
    if (!t.hardlink.empty()) {
      archive_entry_set_hardlink(e.get(), t.hardlink.c_str());
    }
    if (t.type == AE_IFCHR) {
      archive_entry_set_rdev(e.get(), makedev(1, 3));
    }
    uint64_t size = t.type == AE_IFREG && t.hardlink.empty() ? t.data.size() + t.zero_bytes : 0;
    archive_entry_set_size(e.get(), static_cast<la_int64_t>(size));
    ASSERT_EQ(archive_write_header(a.get(), e.get()), ARCHIVE_OK) << archive_error_string(a.get());
    if (size == 0) {
      continue;
    }
    archive_write_data(a.get(), t.data.data(), t.data.size());
    std::string zeros(1 << 20, '\0');
    for (uint64_t left = t.zero_bytes; left > 0;) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(left, zeros.size()));
      ASSERT_EQ(archive_write_data(a.get(), zeros.data(), n), static_cast<la_ssize_t>(n));
      left -= n;
    }
  }
  ASSERT_EQ(archive_write_close(a.get()), ARCHIVE_OK) << archive_error_string(a.get());
}

// A fresh directory under /tmp, removed with everything in it at the end of the test.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/berth-artifacts-test-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// The names directly inside `dir`.
inline std::set<std::string> Names(const std::string& dir) {
  std::set<std::string> out;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    out.insert(e.path().filename().string());
  }
  return out;
}

// Everything below `dir`: relative path -> "dir", "link:<target>" or "file:<content>".
inline std::map<std::string, std::string> Tree(const std::string& dir) {
  std::map<std::string, std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); it != fs::end(it); it.increment(ec)) {
    std::string rel = it->path().lexically_relative(dir).string();
    if (it->is_symlink()) {
      out[rel] = "link:" + fs::read_symlink(it->path()).string();
    } else if (it->is_directory()) {
      out[rel] = "dir";
    } else {
      std::ifstream in(it->path(), std::ios::binary);
      out[rel] = "file:" + std::string(std::istreambuf_iterator<char>(in), {});
    }
  }
  return out;
}

inline void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
}

}  // namespace berth::testutil
