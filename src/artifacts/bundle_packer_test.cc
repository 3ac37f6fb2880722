#include "artifacts/bundle_packer.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "artifacts/archive_unpacker.h"
#include "artifacts/test_archives.h"

namespace berth {
namespace {

namespace fs = std::filesystem;
using testutil::TempDir;
using testutil::WriteFile;

class BundlePackerTest : public ::testing::Test {
 protected:
  void SetUp() override { fs::create_directory(src()); }

  std::string src() const { return dir_ / "src"; }
  std::string Src(const std::string& rel) const { return src() + "/" + rel; }

  // Packs src() and unpacks the result; returns the unpacked tree.
  std::map<std::string, std::string> RoundTrip() {
    Result<PackStats> packed = PackDirectory(src(), dir_ / "bundle.tar.gz", nullptr);
    EXPECT_TRUE(packed.ok()) << packed.status().ToString();
    Result<UnpackStats> unpacked = UnpackArchive(dir_ / "bundle.tar.gz", dir_ / "out");
    EXPECT_TRUE(unpacked.ok()) << unpacked.status().ToString();
    if (packed.ok() && unpacked.ok()) {
      EXPECT_EQ(unpacked->entries, packed->entries);
      EXPECT_EQ(unpacked->bytes, packed->bytes);
    }
    return testutil::Tree(dir_ / "out");
  }

  TempDir dir_;
};

TEST_F(BundlePackerTest, RoundTripKeepsTheTreeMinusIgnoredFiles) {
  fs::create_directories(Src("app/lib"));
  fs::create_directories(Src("app/__pycache__"));
  fs::create_directories(Src("data/raw"));
  fs::create_directories(Src("empty"));
  WriteFile(Src(".berthignore"),
            "# build output\n__pycache__/\n*.pyc\n/data/raw/\n!important.pyc\nlogs/*\n"
            "!logs/keep.txt\n");
  WriteFile(Src("app/main.py"), "print('hi')\n");
  WriteFile(Src("app/lib/util.py"), "x = 1\n");
  WriteFile(Src("app/lib/util.pyc"), "bytecode");
  WriteFile(Src("app/important.pyc"), "kept");
  WriteFile(Src("app/__pycache__/main.cpython-311.pyc"), "bytecode");
  WriteFile(Src("data/raw/huge.bin"), "raw");
  WriteFile(Src("data/small.csv"), "a,b\n");
  fs::create_directories(Src("logs"));
  WriteFile(Src("logs/keep.txt"), "keep");
  WriteFile(Src("logs/drop.txt"), "drop");
  fs::create_symlink("app/main.py", Src("entry"));
  fs::create_symlink("lib", Src("app/lib-link"));

  std::map<std::string, std::string> want = {
      {".berthignore",
       "file:# build output\n__pycache__/\n*.pyc\n/data/raw/\n!important.pyc\n"
       "logs/*\n!logs/keep.txt\n"},
      {"app", "dir"},
      {"app/main.py", "file:print('hi')\n"},
      {"app/lib", "dir"},
      {"app/lib/util.py", "file:x = 1\n"},
      {"app/important.pyc", "file:kept"},
      {"app/lib-link", "link:lib"},
      {"data", "dir"},
      {"data/small.csv", "file:a,b\n"},
      {"empty", "dir"},
      {"entry", "link:app/main.py"},
      {"logs", "dir"},
      {"logs/keep.txt", "file:keep"},
  };
  EXPECT_EQ(RoundTrip(), want);
}

TEST_F(BundlePackerTest, KeepsExecutableBit) {
  WriteFile(Src("run.sh"), "#!/bin/sh\n");
  fs::permissions(Src("run.sh"), fs::perms(0755));
  RoundTrip();
  struct stat st;
  ASSERT_EQ(::stat((dir_ / "out/run.sh").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755u);
}

TEST_F(BundlePackerTest, KeepsNonAsciiNames) {
  WriteFile(Src("données.csv"), "x");
  fs::create_symlink("données.csv", Src("lien"));
  EXPECT_EQ(RoundTrip(), (std::map<std::string, std::string>{{"données.csv", "file:x"},
                                                             {"lien", "link:données.csv"}}));
}

TEST_F(BundlePackerTest, SkipsSpecialFiles) {
  WriteFile(Src("a"), "1");
  ASSERT_EQ(::mkfifo(Src("pipe").c_str(), 0644), 0);
  EXPECT_EQ(RoundTrip(), (std::map<std::string, std::string>{{"a", "file:1"}}));
}

TEST_F(BundlePackerTest, ReportsProgressUpToTheTotal) {
  WriteFile(Src("big"), std::string(600 * 1024, 'b'));
  WriteFile(Src("small"), "s");
  std::vector<std::pair<uint64_t, uint64_t>> calls;
  Result<PackStats> r = PackDirectory(src(), dir_ / "b.tgz", [&](uint64_t done, uint64_t total) {
    calls.emplace_back(done, total);
  });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const uint64_t total = 600 * 1024 + 1;
  EXPECT_EQ(r->bytes, total);
  EXPECT_EQ(r->entries, 2u);
  EXPECT_EQ(r->archive_bytes, fs::file_size(dir_ / "b.tgz"));
  ASSERT_GE(calls.size(), 3u);
  EXPECT_EQ(calls.front(), std::make_pair(uint64_t{0}, total));
  EXPECT_EQ(calls.back(), std::make_pair(total, total));
  for (size_t i = 1; i < calls.size(); ++i) {
    EXPECT_GE(calls[i].first, calls[i - 1].first);
    EXPECT_EQ(calls[i].second, total);
  }
}

TEST_F(BundlePackerTest, DoesNotPackItsOwnOutput) {
  WriteFile(Src("a"), "1");
  Result<PackStats> r = PackDirectory(src(), Src("bundle.tar.gz"), nullptr);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->entries, 1u);
}

TEST_F(BundlePackerTest, MissingDirectoryIsNotFound) {
  Result<PackStats> r = PackDirectory(dir_ / "nope", dir_ / "b.tgz", nullptr);
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(fs::exists(dir_ / "b.tgz"));
}

TEST_F(BundlePackerTest, UnwritableOutputIsAnErrorAndLeavesNothing) {
  WriteFile(Src("a"), "1");
  Result<PackStats> r = PackDirectory(src(), dir_ / "no/such/dir/b.tgz", nullptr);
  EXPECT_FALSE(r.ok());
}

}  // namespace
}  // namespace berth
