// LinuxLauncher with real processes (ninja's subprocess_test style), under the real berth-shim.
// The memory-limit and cgroup tests need root and cgroups and skip otherwise.
#include "runtime/linux/linux_launcher.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "common/file_util.h"
#include "runtime/linux/address_claim.h"
#include "runtime/linux/cgroup.h"
#include "runtime/linux/process_identity.h"
#include "runtime/linux/sandbox.h"
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
    launcher_ = MakeLinuxLauncher(TEST_BERTH_BINARY);
  }
  void TearDown() override {
    for (const auto& entry : fs::directory_iterator(root_)) {
      if (entry.is_directory()) {
        (void)launcher_->Stop(entry.path().string());
      }
    }
    for (const auto& entry : fs::directory_iterator(root_)) {
      if (fs::exists(entry.path() / "spec.json")) {  // an instance, not a test's own directory
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

  // The instance's log so far, one line each.
  std::string Log(const InstanceSpec& s) {
    std::string all;
    for (const auto& l : ReadLogTail(Dir(s) + "/logs", 0)) {
      all += l + "\n";
    }
    return all;
  }

  std::string root_;
  std::unique_ptr<Launcher> launcher_;
};

// The "<field>: <n> kB" lines of /proc/<pid>/smaps_rollup; empty if it cannot be read.
std::map<std::string, long> SmapsRollup(int pid) {
  std::map<std::string, long> kb;
  auto text = ReadFile("/proc/" + std::to_string(pid) + "/smaps_rollup");
  if (!text.ok()) {
    return kb;
  }
  for (size_t at = 0; at < text->size();) {
    size_t end = std::min(text->find('\n', at), text->size());
    std::string_view line(text->data() + at, end - at);
    at = end + 1;
    size_t colon = line.find(':');
    size_t digits = line.find_first_of("0123456789", colon);
    long n = 0;
    if (colon != std::string_view::npos && digits != std::string_view::npos &&
        std::from_chars(line.data() + digits, line.data() + line.size(), n).ec == std::errc()) {
      kb[std::string(line.substr(0, colon))] = n;
    }
  }
  return kb;
}

// Hex of `s`'s bytes, as `od -An -tx1 | tr -d ' \n'` prints them.
std::string Hex(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    char b[3];
    std::snprintf(b, sizeof(b), "%02x", c);
    out += b;
  }
  return out;
}

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
  InstanceProbe running = launcher_->Probe(Dir(spec));
  EXPECT_TRUE(running.running);
  // Its resident memory, as the kernel's status file says it (VmRSS), within a few pages.
  auto rss = launcher_->ResidentBytes(running.shim->pid);
  ASSERT_TRUE(rss.has_value());
  auto status = ReadFile("/proc/" + std::to_string(running.shim->pid) + "/status");
  ASSERT_TRUE(status.ok());
  long vm_rss_kb = std::atol(status->c_str() + status->find("VmRSS:") + 6);
  EXPECT_GT(vm_rss_kb, 0);
  EXPECT_NEAR(static_cast<double>(*rss), vm_rss_kb * 1024.0, 64 * 1024.0);
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

// Exit events: of a shim this launcher started, once its exit is recorded (the listener may
// read exit.json at once); of a shim killed -9; and of a shim adopted by another launcher, as
// a restarted daemon adopts them.
class ExitEvents {
 public:
  Launcher::ExitListener Listener() {
    return [this](const std::string& dir) {
      std::lock_guard lock(mu_);
      heard_.push_back({dir, fs::exists(dir + "/exit.json")});
      cv_.notify_all();
    };
  }
  // Whether `dir`'s end was heard within 10 s, and whether its exit was recorded by then.
  std::pair<bool, bool> Await(const std::string& dir) {
    std::unique_lock lock(mu_);
    bool found = false;
    bool recorded = false;
    cv_.wait_for(lock, 10s, [&] {
      for (const auto& [d, r] : heard_) {
        if (d == dir) {
          found = true;
          recorded = r;
        }
      }
      return found;
    });
    return {found, recorded};
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<std::string, bool>> heard_;
};

TEST_F(LinuxLauncherTest, TheEndOfEveryShimIsHeardOf) {
  ExitEvents events;
  ASSERT_TRUE(launcher_->WatchExits(events.Listener()));
  auto quick = Spec({"sh", "-c", "exit 3"});
  ASSERT_TRUE(launcher_->Start(Dir(quick), quick).ok());
  auto [heard, recorded] = events.Await(Dir(quick));
  EXPECT_TRUE(heard);
  EXPECT_TRUE(recorded) << "the event came before exit.json";
  EXPECT_EQ(launcher_->Probe(Dir(quick)).exit->exit_code, 3);

  auto killed = Spec({"sleep", "300"});
  auto rec = launcher_->Start(Dir(killed), killed);
  ASSERT_TRUE(rec.ok()) << rec.status().ToString();
  ASSERT_EQ(::kill(rec->shim_pid, SIGKILL), 0);
  EXPECT_TRUE(events.Await(Dir(killed)).first);

  // Another launcher adopts a running shim (by its pidfd) and hears of its end.
  auto adopted = Spec({"sleep", "300"});
  auto rec2 = launcher_->Start(Dir(adopted), adopted);
  ASSERT_TRUE(rec2.ok()) << rec2.status().ToString();
  auto other = MakeLinuxLauncher(TEST_BERTH_BINARY);
  ExitEvents other_events;
  ASSERT_TRUE(other->WatchExits(other_events.Listener()));
  other->Watch(Dir(adopted), *rec2);
  ASSERT_TRUE(other->Probe(Dir(adopted)).running);
  ASSERT_TRUE(other->Stop(Dir(adopted)).ok());
  EXPECT_TRUE(other_events.Await(Dir(adopted)).first);
  other->WatchExits({});
  launcher_->WatchExits({});
}

// The pids of the `berth-shim spawner` children of this process.
std::vector<int> Spawners() {
  std::vector<int> found;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    int pid = 0;
    std::string name = entry.path().filename().string();
    if (std::from_chars(name.data(), name.data() + name.size(), pid).ec != std::errc()) {
      continue;
    }
    auto cmdline = ReadFile(entry.path().string() + "/cmdline");
    auto stat = ReadFile(entry.path().string() + "/stat");
    if (!cmdline.ok() || !stat.ok() ||
        cmdline->find(std::string("berth-shim") + '\0' + "spawner" + '\0') == std::string::npos) {
      continue;
    }
    int ppid = 0;
    char state = 0;
    if (std::sscanf(stat->c_str() + stat->rfind(')') + 1, " %c %d", &state, &ppid) == 2 &&
        ppid == getpid() && state != 'Z') {
      found.push_back(pid);
    }
  }
  return found;
}

TEST_F(LinuxLauncherTest, ShimsAreForkedByOneSpawnerAndADeadSpawnerIsReplaced) {
  auto first = Spec({"true"});
  ASSERT_TRUE(launcher_->Start(Dir(first), first).ok());
  std::vector<int> spawners = Spawners();
  ASSERT_EQ(spawners.size(), 1u) << "one spawner for the launcher";
  auto second = Spec({"true"});
  ASSERT_TRUE(launcher_->Start(Dir(second), second).ok());
  EXPECT_EQ(Spawners(), spawners) << "the same spawner serves every start";

  ASSERT_EQ(::kill(spawners[0], SIGKILL), 0);
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (Alive(spawners[0]) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  // The shim it had forked ahead serves one more start; then another spawner takes over.
  for (int i = 0; i < 3; ++i) {
    auto spec = Spec({"sh", "-c", "echo run " + std::to_string(i)});
    auto rec = launcher_->Start(Dir(spec), spec);
    ASSERT_TRUE(rec.ok()) << i << ": " << rec.status().ToString();
    InstanceProbe p = WaitExit(Dir(spec));
    ASSERT_TRUE(p.exit.has_value());
    EXPECT_EQ(p.exit->exit_code, 0);
    EXPECT_NE(Log(spec).find("stdout run " + std::to_string(i)), std::string::npos) << Log(spec);
  }
  std::vector<int> now = Spawners();
  ASSERT_EQ(now.size(), 1u);
  EXPECT_NE(now[0], spawners[0]);
}

// A shim is named by its pid and start time: a record whose start time is not the live
// process's (its pid reused by another process) is a lost shim, and its tree is killed.
TEST_F(LinuxLauncherTest, AShimIsRecognisedByItsStartTimeNotItsPidAlone) {
  auto spec = Spec({"sleep", "300"});
  auto rec = launcher_->Start(Dir(spec), spec);
  ASSERT_TRUE(rec.ok()) << rec.status().ToString();
  auto start = ProcessStartTicks(rec->shim_pid);
  ASSERT_TRUE(start.has_value());
  EXPECT_EQ(rec->shim_start, static_cast<int64_t>(*start));
  ASSERT_TRUE(launcher_->Probe(Dir(spec)).running);

  ShimRecord other = *rec;
  other.shim_start += 1;
  ASSERT_TRUE(WriteFileAtomic(Dir(spec) + "/shim.json", ShimRecordToJson(other), 0644,
                              Durability::kProcessCrash)
                  .ok());
  InstanceProbe p = launcher_->Probe(Dir(spec));
  EXPECT_FALSE(p.running);
  ASSERT_TRUE(p.exit.has_value());
  EXPECT_NE(p.exit->error.find("disappeared"), std::string::npos) << p.exit->error;
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (Alive(rec->pid) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_FALSE(Alive(rec->pid)) << "the program of a lost shim is killed";
}

// A program that the host has but its sandbox hides fails with a "no such file" that names
// why: the private /tmp, or a hidden directory.
TEST_F(LinuxLauncherTest, AProgramTheSandboxHidesIsExplained) {
  std::string program = root_ + "/tool";
  ASSERT_TRUE(WriteFileAtomic(program, "#!/bin/sh\n", 0755, Durability::kProcessCrash).ok());
  ExecFailure missing{ENOENT, -1};
  Sandbox sb;
  sb.tmp_bytes = 1 << 20;
  EXPECT_NE(HiddenProgramHint(sb, program, missing).find("private /tmp"), std::string::npos);
  sb.binds.push_back({root_, root_, false});
  EXPECT_EQ(HiddenProgramHint(sb, program, missing), "") << "a bound directory is visible";
  Sandbox hidden;
  hidden.hide = {root_};
  EXPECT_NE(HiddenProgramHint(hidden, program, missing).find(root_ + " is hidden"),
            std::string::npos);
  EXPECT_EQ(HiddenProgramHint(sb, program, ExecFailure{EACCES, -1}), "");
  EXPECT_EQ(HiddenProgramHint(Sandbox{}, program, missing), "");
  EXPECT_EQ(HiddenProgramHint(hidden, root_ + "/absent", missing), "")
      << "a program the host lacks is simply missing";
}

TEST(ProcessStartTicksTest, ReadsTheStartTimeEvenWhenTheNameHoldsSpacesAndParentheses) {
  auto before = ProcessStartTicks(getpid());
  ASSERT_TRUE(before.has_value());
  char name[16] = {};
  ASSERT_EQ(::prctl(PR_GET_NAME, name), 0);
  ASSERT_EQ(::prctl(PR_SET_NAME, "a) b (c 1 2"), 0);
  auto odd = ProcessStartTicks(getpid());
  ASSERT_EQ(::prctl(PR_SET_NAME, name), 0);
  EXPECT_EQ(odd, before);
  EXPECT_FALSE(ProcessStartTicks(0).has_value());
  EXPECT_FALSE(ProcessStartTicks(std::numeric_limits<int>::max()).has_value());
}

TEST_F(LinuxLauncherTest, MissingShimIsReportedWithItsPath) {
  auto launcher = MakeLinuxLauncher(root_ + "/bin/berth");
  auto spec = Spec({"true"});
  auto rec = launcher->Start(Dir(spec), spec);
  ASSERT_FALSE(rec.ok());
  EXPECT_EQ(rec.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(rec.status().message().find(root_ + "/bin/berth-shim"), std::string::npos)
      << rec.status().message();
  EXPECT_FALSE(fs::exists(Dir(spec)));
}

// The shim reads spec.json and writes shim.json and exit.json with its own small JSON code, not
// instance_spec.cc's: what JSON escapes must come through, and its records must be byte for
// byte what instance_spec.cc writes.
TEST_F(LinuxLauncherTest, ShimSpeaksTheDaemonsJson) {
  std::string odd = "q\"uo\\te/ tab\t nl\n ctl\x01\x1f del\x7f \u00e9 \U0001f600";
  auto spec =
      Spec({"sh", "-c", "printf '[%s][%s]' \"$1\" \"$ODD\" | od -An -tx1 | tr -d ' \\n'; echo",
            "sh", odd});
  spec.env.push_back("ODD=" + odd);
  auto rec = launcher_->Start(Dir(spec), spec);
  ASSERT_TRUE(rec.ok()) << rec.status().ToString();
  InstanceProbe p = WaitExit(Dir(spec));
  ASSERT_TRUE(p.exit.has_value());
  EXPECT_EQ(p.exit->exit_code, 0);
  EXPECT_NE(Log(spec).find(" stdout " + Hex("[" + odd + "][" + odd + "]") + "\n"),
            std::string::npos)
      << Log(spec);
  EXPECT_EQ(ReadFile(Dir(spec) + "/shim.json").value(), ShimRecordToJson(*rec));
  EXPECT_EQ(ReadFile(Dir(spec) + "/exit.json").value(), ExitRecordToJson(*p.exit));

  // An error names the program: its characters come back through exit.json.
  auto bad = Spec({"/nonexistent/" + odd});
  ASSERT_FALSE(launcher_->Start(Dir(bad), bad).ok());
  p = launcher_->Probe(Dir(bad));
  ASSERT_TRUE(p.exit.has_value());
  EXPECT_NE(p.exit->error.find("/nonexistent/" + odd), std::string::npos) << p.exit->error;
  EXPECT_EQ(ReadFile(Dir(bad) + "/exit.json").value(), ExitRecordToJson(*p.exit));
}

// The shim has its own copy of the cgroup layout logic; the daemon's (cgroup.cc) must find the
// same groups, since it kills through them what a shim killed -9 left behind.
TEST_F(LinuxLauncherTest, ShimUsesTheCgroupsTheDaemonAttachesTo) {
  CgroupLayout layout = DetectCgroupLayout();
  if (geteuid() != 0 || (layout.memory_parent.empty() && layout.unified_parent.empty())) {
    GTEST_SKIP() << "needs root and a writable cgroup tree";
  }
  auto spec = Spec({"sleep", "300"});
  // With a limit: a v1 memory hierarchy is used only where a limit needs it.
  spec.memory_limit_bytes = 64 << 20;
  auto rec = launcher_->Start(Dir(spec), spec);
  ASSERT_TRUE(rec.ok()) << rec.status().ToString();
  std::vector<int> pids = InstanceCgroup::Attach(layout, spec.id).Processes();
  EXPECT_NE(std::find(pids.begin(), pids.end(), rec->pid), pids.end());
  if (!layout.memory_parent.empty()) {
    auto procs = ReadFile(layout.memory_parent + "/" + spec.id + "/cgroup.procs");
    ASSERT_TRUE(procs.ok()) << procs.status().ToString();
    EXPECT_NE(("\n" + *procs).find("\n" + std::to_string(rec->pid) + "\n"), std::string::npos)
        << *procs;
  }
}

#if defined(__SANITIZE_ADDRESS__)
#define SHIM_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SHIM_SANITIZED 1
#endif
#endif

// A shim runs for the whole life of every instance, so its memory is paid per instance: the
// berth binary as the shim cost ~2 MB of private memory each; berth-shim stays within what
// conmon costs.
TEST_F(LinuxLauncherTest, ShimStaysSmall) {
#ifdef SHIM_SANITIZED
  GTEST_SKIP() << "a sanitized shim carries the sanitizer's runtime";
#endif
  // The program ends as `sleep 1000`, after output on both streams: the logging path counts.
  auto spec = Spec({"sh", "-c", "echo started; echo warned >&2; exec sleep 1000"});
  auto rec = launcher_->Start(Dir(spec), spec);
  ASSERT_TRUE(rec.ok()) << rec.status().ToString();
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (Log(spec).find(" stderr warned\n") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_NE(Log(spec).find(" stdout started\n"), std::string::npos) << Log(spec);
  std::map<std::string, long> kb = SmapsRollup(rec->shim_pid);
  if (kb.empty()) {
    GTEST_SKIP() << "cannot read /proc/" << rec->shim_pid << "/smaps_rollup";
  }
  long private_kb = kb["Private_Dirty"] + kb["Private_Clean"];
  std::printf("berth-shim: private %ld kB (dirty %ld, clean %ld), PSS %ld kB, RSS %ld kB\n",
              private_kb, kb["Private_Dirty"], kb["Private_Clean"], kb["Pss"], kb["Rss"]);
  RecordProperty("shim_private_kb", static_cast<int>(private_kb));
  RecordProperty("shim_pss_kb", static_cast<int>(kb["Pss"]));
  EXPECT_LE(private_kb, 256);
  ASSERT_TRUE(launcher_->Stop(Dir(spec)).ok());
  InstanceProbe p = WaitExit(Dir(spec));
  ASSERT_TRUE(p.exit.has_value());
  EXPECT_EQ(p.exit->signal, SIGTERM);
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

TEST_F(LinuxLauncherTest, PidsLimitStopsAForkBombAndIsReported) {
  if (geteuid() != 0) {
    GTEST_SKIP() << "needs root for cgroups";
  }
  auto spec = Spec({"python3", "-c",
                    "import subprocess\n"
                    "ok = 0\n"
                    "for i in range(40):\n"
                    "    try:\n"
                    "        subprocess.Popen(['sleep', '30']); ok += 1\n"
                    "    except OSError:\n"
                    "        pass\n"
                    "print('started', ok, flush=True)\n"});
  spec.pids_limit = 10;
  auto rec = launcher_->Start(Dir(spec), spec);
  ASSERT_TRUE(rec.ok()) << rec.status().ToString();
  InstanceProbe p = WaitExit(Dir(spec));
  ASSERT_TRUE(p.exit.has_value());
  std::string all = Log(spec);
  if (all.find("pids limit not enforced") != std::string::npos) {
    GTEST_SKIP() << "no pids cgroup on this machine: " << all;
  }
  size_t at = all.find("started ");
  ASSERT_NE(at, std::string::npos) << all;
  int started = std::atoi(all.c_str() + at + 8);
  EXPECT_GT(started, 0) << all;
  EXPECT_LT(started, 10) << "the limit of 10 (python included) let more through:\n" << all;
  EXPECT_NE(all.find("its pids-limit of 10 refused"), std::string::npos) << all;
  EXPECT_EQ(p.exit->exit_code, 0);
}

TEST(AddressClaimTest, OneHolderAtATimeUntilItCloses) {
  char tmpl[] = "/tmp/berth-claims-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string dir = std::string(tmpl) + "/claims";
  std::string path = AddressClaimPath(dir, "127.1.0.9", 8080);
  EXPECT_EQ(path, dir + "/127.1.0.9:8080");
  EXPECT_FALSE(AddressClaimed(path)) << "nobody took it yet";
  int first = ClaimAddress(path);
  ASSERT_GE(first, 0) << std::strerror(errno);
  EXPECT_TRUE(AddressClaimed(path));
  EXPECT_EQ(ClaimAddress(path), -1);
  EXPECT_EQ(errno, EWOULDBLOCK);
  struct stat st {};
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 01777u) << "every daemon's shims claim here";
  ::close(first);  // the holder is gone (a shim's exit, kill -9 included)
  EXPECT_FALSE(AddressClaimed(path));
  int again = ClaimAddress(path);
  EXPECT_GE(again, 0);
  // Released, the claim leaves no file behind (one per address ever used piled up before).
  ReleaseAddress(path, again);
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(AddressClaimed(path));
  int third = ClaimAddress(path);
  ASSERT_GE(third, 0);
  EXPECT_TRUE(AddressClaimed(path));
  ReleaseAddress(path, third);
  fs::remove_all(tmpl);
}

TEST_F(LinuxLauncherTest, AShimThatEndsReleasesItsAddressClaimAndItsFile) {
  std::string path = AddressClaimPath(root_ + "/claims", "127.1.0.9", 8080);
  auto spec = Spec({"sh", "-c", "exit 0"});
  spec.address_claim = path;
  ASSERT_TRUE(launcher_->Start(Dir(spec), spec).ok());
  InstanceProbe p = WaitExit(Dir(spec));
  ASSERT_TRUE(p.exit.has_value());
  for (int i = 0; i < 200 && fs::exists(path); ++i) {  // the shim exits just after exit.json
    ::usleep(10000);
  }
  EXPECT_FALSE(fs::exists(path));
}

TEST_F(LinuxLauncherTest, AnInstanceWhoseAddressIsClaimedDoesNotStart) {
  std::string path = AddressClaimPath(root_ + "/claims", "127.1.0.9", 8080);
  int held = ClaimAddress(path);
  ASSERT_GE(held, 0);
  auto spec = Spec({"sleep", "30"});
  spec.address_claim = path;
  auto rec = launcher_->Start(Dir(spec), spec);
  ::close(held);
  ASSERT_FALSE(rec.ok());
  EXPECT_NE(rec.status().message().find("taken by another berth daemon's instance"),
            std::string::npos)
      << rec.status().message();
  // Free, the claim is the shim's while it runs, and not the program's after.
  auto spec2 = Spec({"sleep", "30"});
  spec2.address_claim = path;
  auto rec2 = launcher_->Start(Dir(spec2), spec2);
  ASSERT_TRUE(rec2.ok()) << rec2.status().ToString();
  EXPECT_TRUE(AddressClaimed(path));
  ::kill(rec2->shim_pid, SIGKILL);
  for (int i = 0; i < 200 && AddressClaimed(path); ++i) {
    ::usleep(10000);
  }
  ::kill(rec2->pid, SIGKILL);
  EXPECT_FALSE(AddressClaimed(path)) << "the program (still running) kept its shim's claim";
}

// A launcher given a claims directory claims each instance's address for as long as it runs,
// and reports an address free only when nothing listens there and nobody claims it. Its
// addresses are far above those daemons hand out (from 127.1.0.1 up): a daemon running beside
// the tests does not hold them.
TEST_F(LinuxLauncherTest, ALauncherWithAClaimsDirectoryClaimsTheAddressOfEachInstance) {
  std::string claims = root_ + "/claims";
  auto launcher = MakeLinuxLauncher(TEST_BERTH_BINARY, claims);
  EXPECT_TRUE(launcher->AddressFree("127.200.0.9", 8080));
  auto spec = Spec({"sleep", "30"});
  spec.host = "127.200.0.9";
  spec.port = 8080;
  auto rec = launcher->Start(Dir(spec), spec);
  ASSERT_TRUE(rec.ok()) << rec.status().ToString();
  std::string path = AddressClaimPath(claims, "127.200.0.9", 8080);
  EXPECT_TRUE(AddressClaimed(path));
  EXPECT_FALSE(launcher->AddressFree("127.200.0.9", 8080)) << "claimed, though nothing listens";
  EXPECT_TRUE(launcher->AddressFree("127.200.0.10", 8080));
  // Without a claims directory only a listener makes an address taken.
  EXPECT_TRUE(launcher_->AddressFree("127.200.0.9", 8080));
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(8080);
  ::inet_pton(AF_INET, "127.200.0.11", &addr.sin_addr);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  EXPECT_FALSE(launcher_->AddressFree("127.200.0.11", 8080));
  ::close(fd);
  ASSERT_TRUE(launcher->Stop(Dir(spec)).ok());
  WaitExit(Dir(spec));
  for (int i = 0; i < 200 && AddressClaimed(path); ++i) {
    ::usleep(10000);
  }
  EXPECT_TRUE(launcher->AddressFree("127.200.0.9", 8080)) << "the claim outlived its instance";
}

TEST(PlanSandboxTest, EmptyIsNothingAndAFullOneMountsInOrder) {
  EXPECT_TRUE(PlanSandbox(Sandbox{}).empty());
  Sandbox sb;
  sb.uid = 2000000005;
  sb.gid = 2000000006;
  sb.tmp_bytes = 1 << 20;
  sb.hide = {"/var/berth"};
  sb.binds = {{"/var/berth/projects/p/data", "/var/berth/projects/p/data", true},
              {"/var/berth/artifacts/ab", "/var/berth/artifacts/ab", false},
              {"/var/berth/projects/p/data", "/data", true}};
  sb.passwd = "/var/berth/projects/p/etc/passwd";
  using S = SandboxStep;
  std::vector<SandboxStep> want = {
      {S::kNamespace, "", "", -1, true},
      // every source opened while it is still visible
      {S::kOpen, "/var/berth/projects/p/data", "", 0, true},
      {S::kOpen, "/var/berth/artifacts/ab", "", 1, true},
      {S::kOpen, "/var/berth/projects/p/data", "", 2, true},
      {S::kOpen, "/var/berth/projects/p/etc/passwd", "", 3, true},
      // a private, world-writable /tmp of its size, then the hidden data dir
      {S::kTmpfs, "/tmp", "mode=1777,size=1048576", -1, true},
      {S::kTmpfs, "/var/berth", "mode=0755,size=1048576", -1, true},
      // the way to each bind inside it made, once
      {S::kDir, "/var/berth/projects", "", -1, true},
      {S::kDir, "/var/berth/projects/p", "", -1, true},
      {S::kBind, "/var/berth/projects/p/data", "", 0, true},
      {S::kDir, "/var/berth/artifacts", "", -1, true},
      {S::kBind, "/var/berth/artifacts/ab", "", 1, false},
      {S::kBind, "/data", "", 2, true},
      {S::kBind, "/etc/passwd", "", 3, false},
      {S::kUser, "", "", -1, true}};
  SandboxPlan plan = PlanSandbox(sb);
  EXPECT_EQ(plan.steps, want);
  EXPECT_EQ(plan.uid, 2000000005u);
  EXPECT_EQ(plan.gid, 2000000006u);
  EXPECT_EQ(plan.fds.size(), 4u);
  EXPECT_EQ(DescribeExecFailure(plan, {EACCES, 11}),
            "mounting /var/berth/artifacts/ab at /var/berth/artifacts/ab read-only: " +
                std::string(std::strerror(EACCES)));
  EXPECT_EQ(DescribeExecFailure(plan, {ENOENT, -1}), std::strerror(ENOENT));
  sb.uid = 0;  // binds without a user change
  EXPECT_NE(PlanSandbox(sb).steps.back().kind, SandboxStep::kUser);
  // A hidden directory inside the private /tmp gets its mount point there.
  Sandbox in_tmp;
  in_tmp.tmp_bytes = 1 << 20;
  in_tmp.hide = {"/tmp/t/data"};
  std::vector<SandboxStep> want_in_tmp = {{S::kNamespace, "", "", -1, true},
                                          {S::kTmpfs, "/tmp", "mode=1777,size=1048576", -1, true},
                                          {S::kDir, "/tmp/t", "", -1, true},
                                          {S::kDir, "/tmp/t/data", "", -1, true},
                                          {S::kTmpfs, "/tmp/t/data", "mode=0755,size=1048576", -1,
                                           true}};
  EXPECT_EQ(PlanSandbox(in_tmp).steps, want_in_tmp);
}

TEST(PlanSandboxTest, ALayeredBindIsAnOverlayWithALayerAndReadOnlyWithout) {
  Sandbox sb;
  sb.uid = sb.gid = 2000000005;
  sb.binds = {{"/var/berth/artifacts/ab", "/var/berth/artifacts/ab", false, true}};
  using S = SandboxStep;
  SandboxPlan layered = PlanSandbox(sb, "/var/berth/instances/i-1/layer");
  ASSERT_EQ(layered.steps.size(), 5u);
  EXPECT_EQ(layered.steps[1], (S{S::kOpen, "/var/berth/artifacts/ab", "", 0, true}));
  EXPECT_EQ(layered.steps[2], (S{S::kOpen, "/var/berth/instances/i-1/layer", "", 1, true}));
  EXPECT_EQ(layered.steps[3].kind, S::kOverlay);
  EXPECT_EQ(layered.steps[3].path, "/var/berth/artifacts/ab");
  EXPECT_EQ(layered.steps[3].source, 0);
  EXPECT_EQ(layered.steps[3].layer, 1);
  EXPECT_EQ(DescribeExecFailure(layered, {EINVAL, 3}),
            "mounting /var/berth/artifacts/ab at /var/berth/artifacts/ab with its writes in "
            "/var/berth/instances/i-1/layer (overlayfs): " +
                std::string(std::strerror(EINVAL)));
  SandboxPlan plain = PlanSandbox(sb);  // an exec health check: no layer of its own
  ASSERT_EQ(plain.steps.size(), 4u);
  EXPECT_EQ(plain.steps[2], (S{S::kBind, "/var/berth/artifacts/ab", "", 0, false}));
}

// A confined program writes into its bundle as it would into a container's filesystem: the
// writes land in its instance's layer; the bundle, shared with every other instance, is not
// changed.
TEST_F(LinuxLauncherTest, AConfinedProgramWritesIntoItsBundleThroughALayerOfItsOwn) {
  if (geteuid() != 0) {
    GTEST_SKIP() << "needs root";
  }
  std::string bundle = root_ + "/artifacts/ab";
  fs::create_directories(bundle);
  ASSERT_TRUE(WriteFileAtomic(bundle + "/app.conf.in", "x\n", 0644, Durability::kProcessCrash)
                  .ok());
  auto spec = Spec({"sh", "-c",
                    "sed s/x/y/ app.conf.in > app.conf && cat app.conf && rm app.conf.in && "
                    "mkdir -p cache && echo c > cache/f && ls"});
  spec.cwd = bundle;
  spec.sandbox.uid = spec.sandbox.gid = 2000000005;
  spec.sandbox.hide = {root_ + "/artifacts"};
  spec.sandbox.binds = {{bundle, bundle, false, true}};
  spec.sandbox.tmp_bytes = 1 << 20;  // as every instance has (the way to its bundle is made)
  auto rec = launcher_->Start(Dir(spec), spec);
  ASSERT_TRUE(rec.ok()) << rec.status().ToString();
  InstanceProbe p = WaitExit(Dir(spec));
  ASSERT_TRUE(p.exit.has_value());
  std::string log = Log(spec);
  ASSERT_EQ(p.exit->exit_code, 0) << log;
  EXPECT_NE(log.find(" stdout y\n"), std::string::npos) << log;
  EXPECT_EQ(log.find(" stdout app.conf.in\n"), std::string::npos) << "deleted in its view" << log;
  // The bundle is as it was pushed; the instance's writes are in its layer, as its user.
  EXPECT_TRUE(fs::exists(bundle + "/app.conf.in"));
  EXPECT_FALSE(fs::exists(bundle + "/app.conf"));
  EXPECT_FALSE(fs::exists(bundle + "/cache"));
  auto written = ReadFile(Dir(spec) + "/layer/upper/app.conf");
  ASSERT_TRUE(written.ok()) << written.status().ToString();
  EXPECT_EQ(*written, "y\n");
  struct stat st {};
  ASSERT_EQ(::stat((Dir(spec) + "/layer/upper/cache/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 2000000005u);
}

// Decision 9 end to end: the program runs as the sandbox's user, does not see the hidden
// directory's files (a secret beside its own), writes its own directory and a private /tmp,
// and finds itself in /etc/passwd.
TEST_F(LinuxLauncherTest, ASandboxedProgramRunsAsItsUserAndSeesOnlyItsOwnFiles) {
  if (geteuid() != 0) {
    GTEST_SKIP() << "needs root";
  }
  std::string hidden = root_ + "/data";
  std::string own = hidden + "/projects/p/data";
  fs::create_directories(own);
  ASSERT_TRUE(
      WriteFileAtomic(hidden + "/admin.token", "secret\n", 0644, Durability::kProcessCrash).ok());
  ASSERT_EQ(::chown(own.c_str(), 2000000005, 2000000005), 0);
  ASSERT_TRUE(WriteFileAtomic(root_ + "/host-only", "x\n", 0644, Durability::kProcessCrash).ok());
  ASSERT_TRUE(WriteFileAtomic(root_ + "/passwd",
                              "root:x:0:0::/root:/bin/sh\n"
                              "berth-p:x:2000000005:2000000005::/:/bin/sh\n",
                              0644, Durability::kProcessCrash)
                  .ok());
  auto spec = Spec({"sh", "-c",
                    "id -un; cat " + hidden + "/admin.token || echo no-token; echo mine > " + own +
                        "/f && echo wrote-own; echo t > /tmp/t && echo wrote-tmp; echo pid=$$; "
                        "ls " + root_});
  spec.cwd = own;
  spec.sandbox.uid = spec.sandbox.gid = 2000000005;
  spec.sandbox.hide = {hidden};
  spec.sandbox.binds = {{own, own, true}};
  spec.sandbox.tmp_bytes = 1 << 20;
  spec.sandbox.passwd = root_ + "/passwd";
  auto rec = launcher_->Start(Dir(spec), spec);
  ASSERT_TRUE(rec.ok()) << rec.status().ToString();
  InstanceProbe p = WaitExit(Dir(spec));
  ASSERT_TRUE(p.exit.has_value());
  std::string log = Log(spec);
  EXPECT_EQ(p.exit->exit_code, 0) << log;
  EXPECT_NE(log.find(" stdout berth-p\n"), std::string::npos) << log;
  EXPECT_EQ(log.find("secret"), std::string::npos) << log;
  EXPECT_NE(log.find(" stdout no-token\n"), std::string::npos) << log;
  EXPECT_NE(log.find(" stdout wrote-own\n"), std::string::npos) << log;
  EXPECT_NE(log.find(" stdout wrote-tmp\n"), std::string::npos) << log;
  // What the shim forked is the program itself, no wrapper: its pid is the one recorded.
  EXPECT_NE(log.find(" stdout pid=" + std::to_string(rec->pid) + "\n"), std::string::npos) << log;
  // The host's /tmp (where this test's own directory is) is not the program's: of it, only
  // the way to its own directory shows.
  EXPECT_EQ(log.find("host-only"), std::string::npos) << log;
  EXPECT_NE(log.find(" stdout data\n"), std::string::npos) << log;
  auto written = ReadFile(own + "/f");
  ASSERT_TRUE(written.ok());
  EXPECT_EQ(*written, "mine\n");
  struct stat st {};
  ASSERT_EQ(::stat((own + "/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 2000000005u);
  // The instance directory (spec with env secrets, logs) is the daemon's alone.
  ASSERT_EQ(::stat(Dir(spec).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  // An exec health check runs in the same sandbox, as the same user.
  HealthProbe probe;
  probe.host = "127.0.0.1";
  probe.check.type = "exec";
  probe.check.command = {"sh", "-c",
                         "test \"$(id -u)\" = 2000000005 && test -e " + own + "/f && ! test -e " +
                             hidden + "/admin.token"};
  probe.sandbox = spec.sandbox;
  probe.cwd = own;
  ProbeResult confined = launcher_->CheckHealth(Dir(spec), probe);
  EXPECT_TRUE(confined.healthy) << confined.detail;
  probe.sandbox = {};
  EXPECT_FALSE(launcher_->CheckHealth(Dir(spec), probe).healthy) << "unconfined: root, token seen";
  // A sandbox that cannot be entered says which step failed.
  probe.sandbox = spec.sandbox;
  probe.sandbox.binds = {{root_ + "/no-such-dir", own, true}};
  ProbeResult broken = launcher_->CheckHealth(Dir(spec), probe);
  EXPECT_FALSE(broken.healthy);
  EXPECT_NE(broken.detail.find("opening " + root_ + "/no-such-dir to mount it"), std::string::npos)
      << broken.detail;
}

}  // namespace
}  // namespace berth
