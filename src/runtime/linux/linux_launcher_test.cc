// LinuxLauncher with real processes (ninja's subprocess_test style). The memory-limit test
// needs root and a memory cgroup and skips otherwise.
#include "runtime/linux/linux_launcher.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "runtime/linux/cgroup.h"
#include "runtime/log_writer.h"

namespace berth {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// kill(pid, 0) succeeds for zombies too; a process counts as alive only if it is not one.
bool Alive(int pid) {
  FILE* f = fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
  if (f == nullptr) {
    return false;
  }
  char state = 0;
  int ok = fscanf(f, "%*d (%*[^)]) %c", &state);
  fclose(f);
  return ok == 1 && state != 'Z';
}

class LinuxLauncherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/berth-launcher-test-XXXXXX";
    root_ = mkdtemp(tmpl);
    launcher_ = MakeLinuxLauncher(TEST_SHIM);
  }
  void TearDown() override {
    for (const auto& entry : fs::directory_iterator(root_)) {
      if (entry.is_directory()) {
        (void)launcher_->Stop(entry.path().string());
      }
    }
    for (const auto& entry : fs::directory_iterator(root_)) {
      if (entry.is_directory()) {
        WaitExit(entry.path().string());
      }
    }
    fs::remove_all(root_);
  }

  InstanceSpec Spec(std::vector<std::string> argv) {
    static int n = 0;
    InstanceSpec s;
    s.id = "test-" + std::to_string(getpid()) + "-" + std::to_string(++n);
    s.argv = std::move(argv);
    s.env = {"PATH=/usr/bin:/bin", "GREETING=hi"};
    s.cwd = root_;
    s.grace_seconds = 1;
    return s;
  }

  std::string Dir(const InstanceSpec& s) { return root_ + "/" + s.id; }

  // Polls until the instance has exited (deadline 10 s).
  InstanceProbe WaitExit(const std::string& dir) {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    InstanceProbe p;
    while (std::chrono::steady_clock::now() < deadline) {
      p = launcher_->Probe(dir);
      if (p.exit) {
        return p;
      }
      std::this_thread::sleep_for(10ms);
    }
    return p;
  }

  std::string root_;
  std::unique_ptr<Launcher> launcher_;
};

TEST_F(LinuxLauncherTest, RunsProgramWithEnvAndCapturesBothStreams) {
  auto spec = Spec({"sh", "-c", "echo out $GREETING; echo err >&2; exit 3"});
  auto rec = launcher_->Start(Dir(spec), spec);
  ASSERT_TRUE(rec.ok()) << rec.status().ToString();
  EXPECT_GT(rec->pid, 0);
  EXPECT_NE(rec->pid, rec->shim_pid);
  InstanceProbe p = WaitExit(Dir(spec));
  ASSERT_TRUE(p.exit.has_value());
  EXPECT_EQ(p.exit->exit_code, 3);
  EXPECT_FALSE(p.exit->oom_killed);
  EXPECT_FALSE(p.running);
  auto lines = ReadLogTail(Dir(spec) + "/logs", 0);
  std::string all;
  for (const auto& l : lines) {
    all += l + "\n";
  }
  EXPECT_NE(all.find(" stdout out hi\n"), std::string::npos) << all;
  EXPECT_NE(all.find(" stderr err\n"), std::string::npos) << all;
  EXPECT_NE(all.find(" berth exited with code 3\n"), std::string::npos) << all;
}

TEST_F(LinuxLauncherTest, ExecFailureIsReportedNotHidden) {
  auto spec = Spec({"/nonexistent/program"});
  auto rec = launcher_->Start(Dir(spec), spec);
  ASSERT_FALSE(rec.ok());
  EXPECT_EQ(rec.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(rec.status().message().find("No such file or directory"), std::string::npos)
      << rec.status().message();
  InstanceProbe p = launcher_->Probe(Dir(spec));
  ASSERT_TRUE(p.exit.has_value());
  EXPECT_EQ(p.exit->exit_code, 127);
}

TEST_F(LinuxLauncherTest, StopKillsTheWholeTreeAfterGrace) {
  // The shell ignores SIGTERM and has a background child: both must be gone after Stop.
  auto spec = Spec({"sh", "-c", "trap '' TERM; sleep 300 & echo $! > child.pid; wait"});
  spec.cwd = root_;
  auto rec = launcher_->Start(Dir(spec), spec);
  ASSERT_TRUE(rec.ok()) << rec.status().ToString();
  std::string pid_file = root_ + "/child.pid";
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!fs::exists(pid_file) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(fs::exists(pid_file));
  std::this_thread::sleep_for(50ms);
  int child = 0;
  FILE* f = fopen(pid_file.c_str(), "r");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(fscanf(f, "%d", &child), 1);
  fclose(f);
  EXPECT_TRUE(launcher_->Probe(Dir(spec)).running);
  ASSERT_TRUE(launcher_->Stop(Dir(spec)).ok());
  InstanceProbe p = WaitExit(Dir(spec));
  ASSERT_TRUE(p.exit.has_value());
  EXPECT_EQ(p.exit->signal, SIGKILL);
  EXPECT_FALSE(Alive(child)) << "background child " << child << " survived";
  EXPECT_FALSE(Alive(rec->pid));
}

TEST_F(LinuxLauncherTest, ShimKilledHardTakesTheTreeWithItOnNextProbe) {
  auto spec = Spec({"sleep", "300"});
  auto rec = launcher_->Start(Dir(spec), spec);
  ASSERT_TRUE(rec.ok()) << rec.status().ToString();
  ASSERT_EQ(::kill(rec->shim_pid, SIGKILL), 0);
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (Alive(rec->shim_pid) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  InstanceProbe p = launcher_->Probe(Dir(spec));
  ASSERT_TRUE(p.exit.has_value());
  EXPECT_FALSE(p.running);
  deadline = std::chrono::steady_clock::now() + 5s;
  while (Alive(rec->pid) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_FALSE(Alive(rec->pid));
}

TEST_F(LinuxLauncherTest, MemoryLimitKillsAndIsReportedAsOom) {
  if (geteuid() != 0 || DetectCgroupLayout().memory_parent.empty()) {
    GTEST_SKIP() << "needs root and a memory cgroup";
  }
  auto spec = Spec({"python3", "-c", "b = bytearray(200 * 1024 * 1024); print('survived')"});
  spec.memory_limit_bytes = 32 << 20;
  auto rec = launcher_->Start(Dir(spec), spec);
  ASSERT_TRUE(rec.ok()) << rec.status().ToString();
  InstanceProbe p = WaitExit(Dir(spec));
  ASSERT_TRUE(p.exit.has_value());
  EXPECT_TRUE(p.exit->oom_killed);
  EXPECT_EQ(p.exit->signal, SIGKILL);
}

}  // namespace
}  // namespace berth
