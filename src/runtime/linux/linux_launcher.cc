#include "runtime/linux/linux_launcher.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>

#include "common/file_util.h"
#include "common/time.h"
#include "runtime/linux/cgroup.h"

namespace berth {
namespace {

namespace fs = std::filesystem;

// True if `pid` is alive and is the shim of `instance_dir` (pids are reused).
bool IsShimOf(int pid, const std::string& instance_dir) {
  if (pid <= 0 || ::kill(pid, 0) != 0) {
    return false;
  }
  auto cmdline = ReadFile(fmt::format("/proc/{}/cmdline", pid));
  if (!cmdline.ok()) {
    return false;
  }
  // argv is NUL-separated: "<exe>\0shim\0<dir>\0".
  return cmdline->find(std::string("shim") + '\0' + instance_dir + '\0') != std::string::npos;
}

std::optional<uint64_t> RssOf(int pid) {
  auto status = ReadFile(fmt::format("/proc/{}/status", pid));
  if (!status.ok()) {
    return std::nullopt;
  }
  size_t at = status->find("VmRSS:");
  if (at == std::string::npos) {
    return std::nullopt;
  }
  at += 6;
  while (at < status->size() && ((*status)[at] == ' ' || (*status)[at] == '\t')) {
    ++at;
  }
  uint64_t kb = 0;
  std::from_chars(status->data() + at, status->data() + status->size(), kb);
  return kb * 1024;
}

class LinuxLauncher final : public Launcher {
 public:
  explicit LinuxLauncher(std::string binary) : binary_(std::move(binary)) {}

  Result<ShimRecord> Start(const std::string& instance_dir, const InstanceSpec& spec) override {
    std::error_code ec;
    if (fs::exists(instance_dir + "/spec.json")) {
      return Status::AlreadyExists(
          fmt::format("instance directory {} has been started before", instance_dir));
    }
    fs::create_directories(instance_dir + "/logs", ec);
    if (ec) {
      return Status::Internal(
          fmt::format("creating instance directory {}: {}", instance_dir, ec.message()));
    }
    if (auto s = WriteFileAtomic(instance_dir + "/spec.json", InstanceSpecToJson(spec), 0600);
        !s.ok()) {
      return s;
    }
    int hs[2];
    if (pipe2(hs, O_CLOEXEC) != 0) {
      return ErrnoStatus("creating handshake pipe", errno);
    }
    // Everything the child needs is prepared before fork: the daemon is multi-threaded, so
    // the child may only make async-signal-safe calls.
    std::string arg0 = binary_;
    std::string arg1 = "shim";
    std::string arg2 = instance_dir;
    char* argv[] = {arg0.data(), arg1.data(), arg2.data(), nullptr};
    std::string shim_log = instance_dir + "/shim.log";
    pid_t child = fork();
    if (child < 0) {
      int e = errno;
      ::close(hs[0]);
      ::close(hs[1]);
      return ErrnoStatus("forking the shim", e);
    }
    if (child == 0) {
      // Double fork: the shim is re-parented away from the daemon and never becomes its zombie.
      setsid();
      if (fork() != 0) {
        _exit(0);
      }
      int devnull = open("/dev/null", O_RDWR);
      int logfd = open(shim_log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      dup2(devnull, 0);
      dup2(logfd >= 0 ? logfd : devnull, 1);
      dup2(logfd >= 0 ? logfd : devnull, 2);
      dup2(hs[1], 3);  // dup2 clears close-on-exec on the copy
      close_range(4, ~0U, 0);
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      execv(argv[0], argv);
      _exit(127);
    }
    ::close(hs[1]);
    int wstatus = 0;
    while (waitpid(child, &wstatus, 0) < 0 && errno == EINTR) {
    }
    std::string line;
    char buf[512];
    pollfd pfd{hs[0], POLLIN, 0};
    // The shim answers once the program runs or failed; 30 s covers a loaded machine.
    while (line.find('\n') == std::string::npos && ::poll(&pfd, 1, 30000) > 0) {
      ssize_t n = ::read(hs[0], buf, sizeof(buf));
      if (n <= 0) {
        break;
      }
      line.append(buf, static_cast<size_t>(n));
    }
    ::close(hs[0]);
    while (!line.empty() && line.back() == '\n') {
      line.pop_back();
    }
    if (line.starts_with("ok ")) {
      auto rec = ReadFile(instance_dir + "/shim.json");
      if (!rec.ok()) {
        return rec.status();
      }
      return ShimRecordFromJson(*rec);
    }
    if (line.starts_with("error ")) {
      return Status::FailedPrecondition(line.substr(6));
    }
    auto shim_out = ReadFile(shim_log);
    return Status::Internal(fmt::format("the shim did not report back{}",
                                        shim_out.ok() && !shim_out->empty()
                                            ? ": " + shim_out->substr(0, 500)
                                            : std::string()));
  }

  InstanceProbe Probe(const std::string& instance_dir) override {
    InstanceProbe p;
    if (auto text = ReadFile(instance_dir + "/shim.json"); text.ok()) {
      if (auto rec = ShimRecordFromJson(*text); rec.ok()) {
        p.shim = *rec;
      }
    }
    if (auto text = ReadFile(instance_dir + "/exit.json"); text.ok()) {
      if (auto rec = ExitRecordFromJson(*text); rec.ok()) {
        p.exit = *rec;
      }
    }
    if (p.exit) {
      return p;
    }
    if (p.shim && IsShimOf(p.shim->shim_pid, instance_dir)) {
      p.running = true;
      p.rss_bytes = RssOf(p.shim->pid);
      return p;
    }
    if (p.shim) {
      // The shim died without recording an exit (killed -9): the tree must not outlive it.
      auto spec_text = ReadFile(instance_dir + "/spec.json");
      if (spec_text.ok()) {
        if (auto spec = InstanceSpecFromJson(*spec_text); spec.ok()) {
          InstanceCgroup cg = InstanceCgroup::Attach(DetectCgroupLayout(), spec->id);
          cg.Signal(SIGKILL);
          ::kill(-p.shim->pid, SIGKILL);
          (void)cg.Remove();
        }
      }
      ExitRecord lost;
      lost.exit_code = -1;
      lost.signal = SIGKILL;
      lost.error = "the instance's shim disappeared; its processes were killed";
      lost.ended_at = NowUnixMillis();
      (void)WriteFileAtomic(instance_dir + "/exit.json", ExitRecordToJson(lost), 0644);
      p.exit = lost;
    }
    return p;
  }

  bool ExitRecorded(const std::string& instance_dir) override {
    return ::access((instance_dir + "/exit.json").c_str(), F_OK) == 0;
  }

  Status Stop(const std::string& instance_dir) override {
    InstanceProbe p = Probe(instance_dir);
    if (!p.running) {
      return Status::Ok();
    }
    if (::kill(p.shim->shim_pid, SIGTERM) != 0 && errno != ESRCH) {
      return ErrnoStatus("signalling the shim", errno);
    }
    return Status::Ok();
  }

 private:
  std::string binary_;
};

}  // namespace

std::unique_ptr<Launcher> MakeLinuxLauncher(std::string berth_binary) {
  return std::make_unique<LinuxLauncher>(std::move(berth_binary));
}

std::string SelfExecutable() {
  std::error_code ec;
  auto p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("berth") : p.string();
}

}  // namespace berth
