// Runs N trivial tasks (`/bin/true`) three ways and prints the wall time of each, so that
// bench/tasks.sh can print the runtime's overhead per task against its floor:
//   spawn    posix_spawn + waitpid of the command, K at a time: the floor of any runner
//   runtime  berth's Supervisor::StartTask over the LinuxLauncher (own cgroup, shim, logs),
//            K at a time, each next task started when one ends
// Usage: task_bench BERTH_BINARY N K COMMAND...   (berth-shim must be beside BERTH_BINARY)
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "common/clock.h"
#include "runtime/linux/linux_launcher.h"
#include "runtime/supervisor.h"

extern char** environ;

namespace {

using Seconds = std::chrono::duration<double>;

double Spawn(int n, int k, std::vector<std::string> argv) {
  std::vector<char*> args;
  for (auto& a : argv) {
    args.push_back(a.data());
  }
  args.push_back(nullptr);
  auto t0 = std::chrono::steady_clock::now();
  int running = 0;
  for (int started = 0; started < n || running > 0;) {
    while (started < n && running < k) {
      pid_t pid = 0;
      if (posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), environ) != 0) {
        std::perror("posix_spawnp");
        std::exit(1);
      }
      ++started;
      ++running;
    }
    int status = 0;
    if (::wait(&status) > 0) {
      --running;
    }
  }
  return Seconds(std::chrono::steady_clock::now() - t0).count();
}

double Runtime(const std::string& berth, int n, int k, const std::vector<std::string>& argv) {
  // In $TMPDIR, as mktemp(1) and the other benches' scratch directories.
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                     "/berth-task-bench-XXXXXX";
  std::string dir = mkdtemp(tmpl.data());
  auto launcher = berth::MakeLinuxLauncher(berth);
  berth::RealClock clock;
  std::mutex mu;
  std::condition_variable cv;
  int ended = 0;
  int failed = 0;
  berth::SupervisorOptions o;
  o.instances_dir = dir;
  o.tick = std::chrono::milliseconds(250);
  berth::SupervisorHooks h;
  h.task_ended = [&](const berth::TaskStatus& t) {
    std::lock_guard lock(mu);
    ++ended;
    failed += t.state != berth::TaskState::kSucceeded;
    cv.notify_all();
  };
  double seconds = 0;
  {
    berth::Supervisor sup(*launcher, clock, o, h);
    sup.Start();
    auto t0 = std::chrono::steady_clock::now();
    int started = 0;
    std::unique_lock lock(mu);
    while (ended < n) {
      while (started < n && started - ended < k) {
        berth::TaskSpec t;
        t.id = "t-" + std::to_string(started);
        t.argv = argv;
        t.env = {"PATH=/usr/bin:/bin"};
        lock.unlock();
        if (auto s = sup.StartTask(t); !s.ok()) {
          std::fprintf(stderr, "StartTask: %s\n", s.message().c_str());
          std::exit(1);
        }
        lock.lock();
        ++started;
      }
      cv.wait(lock);
    }
    seconds = Seconds(std::chrono::steady_clock::now() - t0).count();
    sup.Shutdown();
  }
  std::filesystem::remove_all(dir);
  if (failed > 0) {
    std::fprintf(stderr, "%d of %d tasks failed\n", failed, n);
    std::exit(1);
  }
  return seconds;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: task_bench BERTH_BINARY N K COMMAND...\n");
    return 2;
  }
  std::string berth = argv[1];
  int n = std::atoi(argv[2]);
  int k = std::atoi(argv[3]);
  std::vector<std::string> command(argv + 4, argv + argc);
  double spawn = Spawn(n, k, command);
  double runtime = Runtime(berth, n, k, command);
  std::printf("spawn %.6f\nruntime %.6f\n", spawn, runtime);
  return 0;
}
