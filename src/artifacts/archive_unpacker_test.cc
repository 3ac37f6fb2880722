#include "artifacts/archive_unpacker.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>

#include "artifacts/test_archives.h"
#include "common/file_util.h"

namespace berth {
namespace {

using testutil::Compression;
using testutil::Dir;
using testutil::File;
using testutil::Hardlink;
using testutil::Symlink;
using testutil::TempDir;
using testutil::TestEntry;

class UnpackerTest : public ::testing::Test {
 protected:
  std::string archive() const { return dir_ / "in.tar"; }
  std::string dest() const { return dir_ / "out"; }

  // Unpacks `entries` and expects a refusal naming `entry`, with nothing left behind.
  void ExpectRefused(const std::vector<TestEntry>& entries, const std::string& entry,
                     const std::string& rule, const UnpackLimits& limits = {}) {
    testutil::WriteArchive(archive(), entries);
    Result<UnpackStats> r = UnpackArchive(archive(), dest(), limits);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
    EXPECT_NE(r.status().message().find("'" + entry + "'"), std::string::npos)
        << r.status().message();
    EXPECT_NE(r.status().message().find(rule), std::string::npos) << r.status().message();
    ExpectNothingLeft();
  }

  void ExpectNothingLeft() {
    EXPECT_EQ(testutil::Names(dir_.path()), std::set<std::string>{"in.tar"});
  }

  TempDir dir_;
};

std::vector<TestEntry> GoodEntries() {
  return {Dir("app"),
          File("app/main.py", "print('hi')\n"),
          File("app/run.sh", "#!/bin/sh\n"),
          Symlink("app/current", "main.py"),
          Symlink("app/up", "../README"),
          File("README", "readme"),
          Hardlink("README.copy", "README"),
          Dir("empty")};
}

void ExpectGoodTree(const std::string& dest) {
  std::map<std::string, std::string> want = {
      {"app", "dir"},
      {"app/main.py", "file:print('hi')\n"},
      {"app/run.sh", "file:#!/bin/sh\n"},
      {"app/current", "link:main.py"},
      {"app/up", "link:../README"},
      {"README", "file:readme"},
      {"README.copy", "file:readme"},
      {"empty", "dir"},
  };
  EXPECT_EQ(testutil::Tree(dest), want);
}

TEST_F(UnpackerTest, UnpacksPlainGzipAndZstdTars) {
  for (Compression c : {Compression::kNone, Compression::kGzip, Compression::kZstd}) {
    SCOPED_TRACE(static_cast<int>(c));
    testutil::WriteArchive(archive(), GoodEntries(), c);
    Result<UnpackStats> r = UnpackArchive(archive(), dest());
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->entries, 8u);
    EXPECT_EQ(r->bytes, 12u + 10u + 6u);
    ExpectGoodTree(dest());
    EXPECT_EQ(testutil::Names(dir_.path()), (std::set<std::string>{"in.tar", "out"}));
    std::filesystem::remove_all(dest());
  }
}

TEST_F(UnpackerTest, NormalizesModes) {
  TestEntry script = File("run", "x");
  script.perm = 04775;  // setuid, group-writable
  TestEntry data = File("data", "y");
  data.perm = 0600;
  TestEntry locked = Dir("locked");
  locked.perm = 0500;
  testutil::WriteArchive(archive(), {script, data, locked, File("locked/f", "z")});
  ASSERT_TRUE(UnpackArchive(archive(), dest()).ok());
  auto mode = [&](const std::string& p) {
    struct stat st;
    EXPECT_EQ(::lstat((dest() + "/" + p).c_str(), &st), 0);
    return st.st_mode & 07777;
  };
  EXPECT_EQ(mode("run"), 0755u);
  EXPECT_EQ(mode("data"), 0644u);
  EXPECT_EQ(mode("locked"), 0755u);
  EXPECT_EQ(mode(""), 0755u);
}

TEST_F(UnpackerTest, AcceptsDotSlashNamesAndRepeatedDirectories) {
  testutil::WriteArchive(archive(), {Dir("./"), File("./a/b", "1"), Dir("./a/"), Dir("a")});
  Result<UnpackStats> r = UnpackArchive(archive(), dest());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(testutil::Tree(dest()),
            (std::map<std::string, std::string>{{"a", "dir"}, {"a/b", "file:1"}}));
}

TEST_F(UnpackerTest, RefusesAnArchiveOfNothing) {
  testutil::WriteArchive(archive(), {});
  Result<UnpackStats> r = UnpackArchive(archive(), dest());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("bundle has no entries"), std::string::npos)
      << r.status().message();
  ExpectNothingLeft();
  // Nor a bare run of zeros (what a tar's end looks like).
  ASSERT_TRUE(WriteFileAtomic(archive(), std::string(10240, '\0'), 0644).ok());
  EXPECT_EQ(UnpackArchive(archive(), dest()).status().code(), StatusCode::kInvalidArgument);
  ExpectNothingLeft();
}

TEST_F(UnpackerTest, RefusesExistingDestination) {
  testutil::WriteArchive(archive(), GoodEntries());
  std::filesystem::create_directory(dest());
  EXPECT_EQ(UnpackArchive(archive(), dest()).status().code(), StatusCode::kAlreadyExists);
}

TEST_F(UnpackerTest, MissingArchiveIsNotFound) {
  EXPECT_EQ(UnpackArchive(dir_ / "nope.tar", dest()).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(testutil::Names(dir_.path()).empty());
}

TEST_F(UnpackerTest, RefusesAbsolutePath) {
  ExpectRefused({File("ok", "1"), File("/etc/cron.d/evil", "x")}, "/etc/cron.d/evil",
                "absolute paths are not allowed");
}

TEST_F(UnpackerTest, RefusesDotDot) {
  ExpectRefused({File("../x", "x")}, "../x", "paths with '..' are not allowed");
}

TEST_F(UnpackerTest, RefusesDotDotInTheMiddle) {
  ExpectRefused({Dir("a"), File("a/../../x", "x")}, "a/../../x", "paths with '..'");
}

TEST_F(UnpackerTest, RefusesAbsoluteSymlink) {
  ExpectRefused({Symlink("passwd", "/etc/passwd")}, "passwd", "is absolute");
}

TEST_F(UnpackerTest, RefusesSymlinkEscapingTheRoot) {
  ExpectRefused({Symlink("a", "../..")}, "a", "points outside the bundle");
}

TEST_F(UnpackerTest, RefusesNestedSymlinkEscapingTheRoot) {
  ExpectRefused({Dir("sub"), Symlink("sub/up", "../../etc")}, "sub/up", "points outside");
}

TEST_F(UnpackerTest, RefusesFileThroughAbsoluteDirectorySymlink) {
  ExpectRefused({Symlink("d", "/tmp"), File("d/x", "x")}, "d", "is absolute");
}

TEST_F(UnpackerTest, RefusesFileThroughAnySymlink) {
  ExpectRefused({Dir("sub"), Symlink("d", "sub"), File("d/x", "x")}, "d/x",
                "path goes through symlink 'd'");
}

TEST_F(UnpackerTest, RefusesSymlinkChainThatEscapesOnlyOnceComplete) {
  // When `c` arrives, a/b is nothing and a/b/.. is a; once a/b -> .. exists, c is the parent of
  // the root.
  ExpectRefused({Dir("a"), Symlink("c", "a/b/.."), Symlink("a/b", "..")}, "c", "points outside");
}

TEST_F(UnpackerTest, RefusesSymlinkReplacingADirectory) {
  ExpectRefused({File("a/f", "x"), Symlink("a", ".")}, "a", "appears twice");
}

TEST_F(UnpackerTest, RefusesHardlinkOutside) {
  ExpectRefused({Hardlink("h", "../../etc/passwd")}, "h", "hardlink target");
}

TEST_F(UnpackerTest, RefusesAbsoluteHardlink) {
  ExpectRefused({Hardlink("h", "/etc/passwd")}, "h", "is outside the bundle");
}

TEST_F(UnpackerTest, RefusesHardlinkToMissingEntry) {
  ExpectRefused({Hardlink("h", "missing")}, "h", "is not an earlier file");
}

TEST_F(UnpackerTest, RefusesHardlinkToSymlink) {
  ExpectRefused({Symlink("s", "x"), Hardlink("h", "s")}, "h", "is not an earlier file");
}

TEST_F(UnpackerTest, RefusesCharacterDevice) {
  ExpectRefused({File("ok", "1"), testutil::Entry("null", AE_IFCHR, 0666)}, "null",
                "device files are not allowed");
}

TEST_F(UnpackerTest, RefusesFifo) {
  ExpectRefused({testutil::Entry("pipe", AE_IFIFO, 0644)}, "pipe", "FIFOs are not allowed");
}

TEST_F(UnpackerTest, RefusesTooManyEntries) {
  std::vector<TestEntry> entries;
  for (int i = 0; i < 11; ++i) {
    entries.push_back(File("f" + std::to_string(i), "x"));
  }
  UnpackLimits limits;
  limits.max_entries = 10;
  ExpectRefused(entries, "f10", "more than 10 entries", limits);
}

TEST_F(UnpackerTest, RefusesTooManyBytes) {
  UnpackLimits limits;
  limits.max_total_bytes = 1000;
  ExpectRefused({File("a", std::string(600, 'a')), File("b", std::string(600, 'b'))}, "b",
                "exceeds the limit of 1000 bytes", limits);
}

TEST_F(UnpackerTest, RefusesGzipBombEarly) {
  TestEntry bomb = File("zeros", "");
  bomb.zero_bytes = uint64_t{200} << 20;
  testutil::WriteArchive(archive(), {File("ok", "1"), bomb}, Compression::kGzip);
  ASSERT_LT(std::filesystem::file_size(archive()), uint64_t{1} << 20);

  auto start = std::chrono::steady_clock::now();
  Result<UnpackStats> r = UnpackArchive(archive(), dest());
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("'zeros'"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("200 times the archive size"), std::string::npos);
  // Refused on the header: none of the 200 MB is inflated.
  EXPECT_LT(elapsed, std::chrono::milliseconds(500));
  ExpectNothingLeft();
}

TEST_F(UnpackerTest, RatioLimitSparesSmallArchives) {
  TestEntry zeros = File("zeros", "");
  zeros.zero_bytes = 512 << 10;  // compresses about 1000:1, but stays under the 1 MiB grace
  testutil::WriteArchive(archive(), {zeros}, Compression::kGzip);
  Result<UnpackStats> r = UnpackArchive(archive(), dest());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->bytes, 512u << 10);
}

TEST_F(UnpackerTest, RefusesZip) {
  testutil::WriteArchive(archive(), {File("a", "1")}, Compression::kNone, /*zip=*/true);
  Result<UnpackStats> r = UnpackArchive(archive(), dest());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("zip"), std::string::npos) << r.status().message();
  ExpectNothingLeft();
}

TEST_F(UnpackerTest, RefusesGarbage) {
  testutil::WriteFile(archive(), std::string(4096, 'g'));
  Result<UnpackStats> r = UnpackArchive(archive(), dest());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("not a tar"), std::string::npos) << r.status().message();
  ExpectNothingLeft();
}

TEST_F(UnpackerTest, RefusesTruncatedArchive) {
  testutil::WriteArchive(archive(), {File("big", std::string(100000, 'x'))}, Compression::kGzip);
  std::filesystem::resize_file(archive(), std::filesystem::file_size(archive()) / 2);
  Result<UnpackStats> r = UnpackArchive(archive(), dest());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
  ExpectNothingLeft();
}

}  // namespace
}  // namespace berth
