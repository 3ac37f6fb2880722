#include "artifacts/artifact_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <thread>

#include "artifacts/test_archives.h"

namespace berth {
namespace {

using testutil::Dir;
using testutil::File;
using testutil::Symlink;
using testutil::TempDir;

class ArtifactStoreTest : public ::testing::Test {
 protected:
  std::string root() const { return dir_ / "store"; }

  // Writes a fresh upload of a small good bundle and returns its path.
  std::string Upload(const std::string& name, const std::string& content = "v1") {
    std::string path = dir_ / name;
    testutil::WriteArchive(path, {Dir("app"), File("app/main.py", content)},
                           testutil::Compression::kGzip);
    return path;
  }

  TempDir dir_;
  ArtifactStore store_{root(), UnpackLimits{}};
};

// What a kill -9 mid-ingest leaves in tmp/ goes at the next start; what was stored stays.
TEST_F(ArtifactStoreTest, SweepingRemovesOnlyWhatInterruptedIngestsLeft) {
  Result<IngestedArtifact> a = store_.Ingest(Upload("up1"));
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  std::filesystem::create_directories(root() + "/tmp/abc.unpack.x1/app");
  testutil::WriteArchive(root() + "/tmp/abc.upload.x2", {File("half", "x")});
  EXPECT_EQ(store_.SweepTemporaries(), 2u);
  EXPECT_TRUE(testutil::Names(root() + "/tmp").empty());
  EXPECT_TRUE(std::filesystem::exists(store_.UnpackedPath(a->digest) + "/app/main.py"));
  EXPECT_EQ(store_.SweepTemporaries(), 0u);
}

TEST_F(ArtifactStoreTest, IngestsAndUnpacks) {
  std::string upload = Upload("up1");
  uint64_t size = std::filesystem::file_size(upload);
  Result<IngestedArtifact> a = store_.Ingest(upload);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->digest.substr(0, 7), "sha256:");
  EXPECT_EQ(a->digest.size(), 7u + 64u);
  EXPECT_EQ(a->size_bytes, size);
  EXPECT_EQ(a->entries, 2u);
  EXPECT_EQ(a->unpacked_bytes, 2u);
  EXPECT_FALSE(std::filesystem::exists(upload));  // moved, not copied
  EXPECT_EQ(store_.UnpackedPath(a->digest), root() + "/unpacked/" + a->digest.substr(7));
  EXPECT_EQ(testutil::Tree(store_.UnpackedPath(a->digest)),
            (std::map<std::string, std::string>{{"app", "dir"}, {"app/main.py", "file:v1"}}));
  EXPECT_EQ(std::filesystem::file_size(root() + "/blobs/" + a->digest.substr(7)), size);
  EXPECT_TRUE(testutil::Names(root() + "/tmp").empty());
}

TEST_F(ArtifactStoreTest, SameContentTwiceIsIdempotent) {
  std::string first_upload = Upload("up1");
  std::filesystem::copy_file(first_upload, dir_ / "up2");
  Result<IngestedArtifact> first = store_.Ingest(first_upload);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  Result<IngestedArtifact> second = store_.Ingest(dir_ / "up2");
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->digest, first->digest);
  EXPECT_EQ(second->size_bytes, first->size_bytes);
  EXPECT_EQ(second->entries, first->entries);
  EXPECT_EQ(second->unpacked_bytes, first->unpacked_bytes);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "up2"));
  EXPECT_EQ(testutil::Names(root() + "/blobs").size(), 1u);
  EXPECT_EQ(testutil::Names(root() + "/unpacked").size(), 1u);
  EXPECT_TRUE(testutil::Names(root() + "/tmp").empty());
}

TEST_F(ArtifactStoreTest, DifferentContentGetsDifferentDigests) {
  Result<IngestedArtifact> a = store_.Ingest(Upload("up1", "v1"));
  Result<IngestedArtifact> b = store_.Ingest(Upload("up2", "v2"));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->digest, b->digest);
  EXPECT_EQ(testutil::Tree(store_.UnpackedPath(b->digest))["app/main.py"], "file:v2");
}

TEST_F(ArtifactStoreTest, ConcurrentIngestsOfTheSameContentAgree) {
  std::string first = Upload("up0");
  constexpr int kThreads = 6;
  for (int i = 1; i < kThreads; ++i) {
    std::filesystem::copy_file(first, dir_ / ("up" + std::to_string(i)));
  }
  std::vector<Result<IngestedArtifact>> results(kThreads, Status::Internal("not run"));
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] { results[i] = store_.Ingest(dir_ / ("up" + std::to_string(i))); });
  }
  for (std::thread& t : threads) {
    t.join();
  }
  for (const Result<IngestedArtifact>& r : results) {
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->digest, results[0]->digest);
    EXPECT_EQ(r->entries, 2u);
  }
  EXPECT_EQ(testutil::Tree(store_.UnpackedPath(results[0]->digest)),
            (std::map<std::string, std::string>{{"app", "dir"}, {"app/main.py", "file:v1"}}));
  EXPECT_EQ(testutil::Names(root() + "/blobs").size(), 1u);
  EXPECT_TRUE(testutil::Names(root() + "/tmp").empty());
}

TEST_F(ArtifactStoreTest, RefusedBundleLeavesNothing) {
  std::string upload = dir_ / "evil";
  testutil::WriteArchive(upload, {File("ok", "1"), Symlink("x", "/etc/passwd")});
  Result<IngestedArtifact> r = store_.Ingest(upload);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("'x'"), std::string::npos) << r.status().message();
  EXPECT_TRUE(testutil::Names(root() + "/blobs").empty());
  EXPECT_TRUE(testutil::Names(root() + "/unpacked").empty());
  EXPECT_TRUE(testutil::Names(root() + "/ingested").empty());
  EXPECT_TRUE(testutil::Names(root() + "/tmp").empty());
  EXPECT_FALSE(std::filesystem::exists(upload));
}

TEST_F(ArtifactStoreTest, RemoveDeletesEverything) {
  Result<IngestedArtifact> a = store_.Ingest(Upload("up1"));
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(store_.Remove(a->digest).ok());
  EXPECT_FALSE(std::filesystem::exists(store_.UnpackedPath(a->digest)));
  for (const char* dir : {"blobs", "unpacked", "ingested", "tmp"}) {
    EXPECT_TRUE(testutil::Names(root() + "/" + dir).empty()) << dir;
  }
  EXPECT_EQ(store_.Remove(a->digest).code(), StatusCode::kNotFound);
  // Ingesting it again after removal works from scratch.
  Result<IngestedArtifact> again = store_.Ingest(Upload("up2"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->digest, a->digest);
  EXPECT_TRUE(std::filesystem::exists(store_.UnpackedPath(a->digest) + "/app/main.py"));
}

TEST_F(ArtifactStoreTest, MalformedDigestsNameNoPath) {
  for (const std::string& d :
       std::vector<std::string>{"sha256:../../etc", "md5:abc", "", "sha256:" + std::string(64, 'A'),
                                "sha256:" + std::string(63, 'a')}) {
    EXPECT_EQ(store_.UnpackedPath(d), "") << d;
    EXPECT_EQ(store_.Remove(d).code(), StatusCode::kInvalidArgument) << d;
  }
}

TEST_F(ArtifactStoreTest, MissingUploadIsNotFound) {
  EXPECT_EQ(store_.Ingest(dir_ / "nope").status().code(), StatusCode::kNotFound);
}

TEST_F(ArtifactStoreTest, UploadSymlinkIsRefused) {
  std::string target = Upload("up1");
  std::filesystem::create_symlink(target, dir_ / "link");
  EXPECT_EQ(store_.Ingest(dir_ / "link").status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(std::filesystem::exists(target));
}

TEST_F(ArtifactStoreTest, CopiesUploadFromAnotherFilesystem) {
  struct stat shm, tmp;
  if (::stat("/dev/shm", &shm) != 0 || ::stat(dir_.path().c_str(), &tmp) != 0 ||
      shm.st_dev == tmp.st_dev) {
    GTEST_SKIP() << "needs /dev/shm on a different filesystem than /tmp";
  }
  std::string upload = "/dev/shm/berth-artifacts-test-upload-" + std::to_string(::getpid());
  std::filesystem::copy_file(Upload("up1"), upload);
  Result<IngestedArtifact> a = store_.Ingest(upload);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_FALSE(std::filesystem::exists(upload));
  EXPECT_TRUE(std::filesystem::exists(store_.UnpackedPath(a->digest) + "/app/main.py"));
  EXPECT_TRUE(testutil::Names(root() + "/tmp").empty());
}

}  // namespace
}  // namespace berth
