#include "runtime/log_writer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace berth {
namespace {

namespace fs = std::filesystem;

class LogWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/berth-log-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

TEST_F(LogWriterTest, WritesTimestampedLinesAndJoinsPartialOnes) {
  {
    LogWriter w(dir_, {});
    ASSERT_TRUE(w.Open().ok());
    w.Feed("stdout", "hello\nwor");
    w.Feed("stderr", "oops\n");
    w.Feed("stdout", "ld\nlast without newline");
    w.FinishPartial();
    ASSERT_TRUE(w.Flush().ok());
  }
  auto lines = ReadLogTail(dir_, 0);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_TRUE(lines[0].ends_with("Z stdout hello")) << lines[0];
  EXPECT_TRUE(lines[1].ends_with("Z stderr oops")) << lines[1];
  EXPECT_TRUE(lines[2].ends_with("Z stdout world")) << lines[2];
  EXPECT_TRUE(lines[3].ends_with("Z stdout last without newline")) << lines[3];
  // "2026-11-22T07:40:00.123456Z": fixed-width RFC 3339 with microseconds.
  EXPECT_EQ(lines[0][10], 'T');
  EXPECT_EQ(lines[0][26], 'Z');
}

TEST_F(LogWriterTest, RotatesBySizeAndKeepsTheNewest) {
  LogWriter w(dir_, LogRotation{1000, 2});
  ASSERT_TRUE(w.Open().ok());
  for (int i = 0; i < 200; ++i) {
    w.Feed("stdout", "line " + std::to_string(i) + " " + std::string(40, 'x') + "\n");
    ASSERT_TRUE(w.Flush().ok());
  }
  EXPECT_TRUE(fs::exists(dir_ + "/current.log.1"));
  EXPECT_TRUE(fs::exists(dir_ + "/current.log.2"));
  EXPECT_FALSE(fs::exists(dir_ + "/current.log.3"));
  for (const auto& entry : fs::directory_iterator(dir_)) {
    EXPECT_LE(fs::file_size(entry.path()), 1100u) << entry.path();
  }
  auto tail = ReadLogTail(dir_, 3, 2);
  ASSERT_EQ(tail.size(), 3u);
  EXPECT_NE(tail[2].find("line 199 "), std::string::npos) << tail[2];
  EXPECT_NE(tail[0].find("line 197 "), std::string::npos) << tail[0];
}

}  // namespace
}  // namespace berth
