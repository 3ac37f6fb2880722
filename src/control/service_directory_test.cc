// The live discovery file: its text, what a change writes, and that a burst is one write.
#include "control/service_directory.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "common/file_util.h"

namespace berth {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

class ServiceDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/berth-directory-test-XXXXXX";
    root_ = mkdtemp(tmpl);
  }
  void TearDown() override { fs::remove_all(root_); }
  std::string FileOf(const std::string& project) {
    return ServicesFileOf(root_ + "/" + project + "/data");
  }
  std::string Read(const std::string& project) {
    auto text = ReadFile(FileOf(project));
    return text.ok() ? *text : "(none)";
  }
  std::function<std::string(const std::string&)> Counting() {
    return [this](const std::string& project) {
      ++writes_;
      return FileOf(project);
    };
  }

  std::string root_;
  std::atomic<int> writes_{0};
};

TEST(ServiceDirectoryFormat, NamesEachServiceAsItsEnvironmentVariables) {
  std::string text =
      ServiceDirectory::Format({{"my-redis", {"127.1.0.3", 6379}}, {"db", {"127.1.0.4", 5432}}});
  EXPECT_NE(text.find("\nBERTH_SERVICE_DB_HOST=127.1.0.4\nBERTH_SERVICE_DB_PORT=5432\n"
                      "BERTH_SERVICE_MY_REDIS_HOST=127.1.0.3\nBERTH_SERVICE_MY_REDIS_PORT=6379\n"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.rfind("# ", 0), 0u) << "starts with what the file is";
  EXPECT_EQ(ServiceEnvPrefix("my-redis"), "BERTH_SERVICE_MY_REDIS_");
}

TEST_F(ServiceDirectoryTest, FollowsReadinessPerProject) {
  ServiceDirectory dir(Counting(), 1h);  // only Flush writes
  dir.Set("a", "redis", ServiceAddress{"127.1.0.3", 6379});
  dir.Set("b", "web", ServiceAddress{"127.1.0.9", 8080});
  dir.Flush();
  EXPECT_NE(Read("a").find("BERTH_SERVICE_REDIS_HOST=127.1.0.3\n"), std::string::npos);
  EXPECT_EQ(Read("a").find("WEB"), std::string::npos) << "another project's service";
  EXPECT_NE(Read("b").find("BERTH_SERVICE_WEB_PORT=8080\n"), std::string::npos);
  EXPECT_EQ(writes_, 2);

  // The same address again changes nothing and writes nothing.
  dir.Set("a", "redis", ServiceAddress{"127.1.0.3", 6379});
  dir.Flush();
  EXPECT_EQ(writes_, 2);

  // Moved, then gone.
  dir.Set("a", "redis", ServiceAddress{"127.1.0.5", 6379});
  dir.Flush();
  EXPECT_NE(Read("a").find("BERTH_SERVICE_REDIS_HOST=127.1.0.5\n"), std::string::npos);
  dir.Set("a", "redis", std::nullopt);
  dir.Flush();
  EXPECT_EQ(Read("a").find("REDIS"), std::string::npos) << Read("a");
  dir.Set("a", "never-ready", std::nullopt);
  dir.Flush();
  EXPECT_EQ(writes_, 4);
}

TEST_F(ServiceDirectoryTest, ABurstOfChangesIsOneWriteOnItsThread) {
  {
    ServiceDirectory dir(Counting(), 200ms);
    for (int i = 0; i < 500; ++i) {
      dir.Set("p", "svc-" + std::to_string(i), ServiceAddress{"127.1.0.1", 8000 + i});
    }
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (writes_ == 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
    }
    EXPECT_EQ(writes_, 1);
    dir.Set("p", "late", ServiceAddress{"127.1.0.2", 9000});
  }  // the destructor writes what is pending
  EXPECT_EQ(writes_, 2);
  EXPECT_NE(Read("p").find("BERTH_SERVICE_SVC_499_PORT=8499\n"), std::string::npos);
  EXPECT_NE(Read("p").find("BERTH_SERVICE_LATE_HOST=127.1.0.2\n"), std::string::npos);
}

}  // namespace
}  // namespace berth
