#include "runtime/linux/shim.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "common/file_util.h"
#include "common/time.h"
#include "runtime/instance_spec.h"
#include "runtime/linux/cgroup.h"
#include "runtime/log_writer.h"

namespace berth {
namespace {

using Clock = std::chrono::steady_clock;

void SendHandshake(int& fd, const std::string& line) {
  if (fd < 0) {
    return;
  }
  std::string l = line + "\n";
  (void)!::write(fd, l.data(), l.size());
  ::close(fd);
  fd = -1;
}

// Runs in the forked child before exec: async-signal-safe calls only. Waits for the parent to
// put it into its cgroups (a byte on `go_fd`), then execs. On failure writes errno to
// `error_fd` (close-on-exec, so a successful exec closes it with nothing written).
[[noreturn]] void ChildExec(int go_fd, int error_fd, int out_fd, int err_fd, const char* cwd,
                            char* const* argv, char* const* envp) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  signal(SIGPIPE, SIG_DFL);
  setpgid(0, 0);
  char go = 0;
  while (read(go_fd, &go, 1) < 0 && errno == EINTR) {
  }
  int devnull = open("/dev/null", O_RDONLY);
  if (devnull >= 0) {
    dup2(devnull, 0);
  }
  dup2(out_fd, 1);
  dup2(err_fd, 2);
  int err = 0;
  if (chdir(cwd) != 0) {
    err = errno;
  } else {
    execvpe(argv[0], argv, envp);
    err = errno;
  }
  (void)!write(error_fd, &err, sizeof(err));
  _exit(127);
}

std::vector<char*> CStrings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) {
    out.push_back(s.data());
  }
  out.push_back(nullptr);
  return out;
}

class Shim {
 public:
  Shim(std::string dir, InstanceSpec spec, int handshake_fd)
      : dir_(std::move(dir)),
        spec_(std::move(spec)),
        handshake_fd_(handshake_fd),
        log_(dir_ + "/logs", LogRotation{spec_.log_max_bytes, spec_.log_keep}) {}

  int Run() {
    if (auto s = log_.Open(); !s.ok()) {
      SendHandshake(handshake_fd_, "error " + s.message());
      return 1;
    }
    auto cg = InstanceCgroup::Create(DetectCgroupLayout(), spec_.id);
    if (!cg.ok()) {
      return FailStart("cannot create cgroup: " + cg.status().message());
    }
    cgroup_ = *cg;
    if (spec_.memory_limit_bytes > 0) {
      if (auto s = cgroup_.SetMemoryLimit(spec_.memory_limit_bytes); !s.ok()) {
        log_.Note("memory limit not enforced: " + s.message());
      }
    }
    if (!Spawn()) {
      return 1;
    }
    Loop();
    Finish();
    return 0;
  }

 private:
  int FailStart(const std::string& why) {
    log_.Note(why);
    (void)log_.Flush();
    ExitRecord r;
    r.exit_code = 127;
    r.ended_at = NowUnixMillis();
    r.error = why;
    (void)WriteFileAtomic(dir_ + "/exit.json", ExitRecordToJson(r), 0644);
    SendHandshake(handshake_fd_, "error " + why);
    return 1;
  }

  bool Spawn() {
    int out[2], err[2], go[2], exec_err[2];
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0 || pipe2(go, O_CLOEXEC) != 0 ||
        pipe2(exec_err, O_CLOEXEC) != 0) {
      FailStart(fmt::format("cannot create pipes: {}", std::strerror(errno)));
      return false;
    }
    std::vector<std::string> argv = spec_.argv;
    std::vector<std::string> env = spec_.env;
    std::vector<char*> cargv = CStrings(argv);
    std::vector<char*> cenv = CStrings(env);
    pid_t pid = fork();
    if (pid < 0) {
      FailStart(fmt::format("cannot fork: {}", std::strerror(errno)));
      return false;
    }
    if (pid == 0) {
      ChildExec(go[0], exec_err[1], out[1], err[1], spec_.cwd.c_str(), cargv.data(),
                cenv.data());
    }
    // A larger pipe lets a chatty program run ahead of the log writer instead of blocking.
    ::fcntl(out[0], F_SETPIPE_SZ, 1 << 20);
    ::fcntl(err[0], F_SETPIPE_SZ, 1 << 20);
    ::close(out[1]);
    ::close(err[1]);
    ::close(go[0]);
    ::close(exec_err[1]);
    pid_ = pid;
    if (auto s = cgroup_.AddProcess(pid); !s.ok()) {
      log_.Note("cannot add the process to its cgroup: " + s.message());
    }
    (void)!::write(go[1], "g", 1);
    ::close(go[1]);
    int child_errno = 0;
    ssize_t n;
    do {
      n = ::read(exec_err[0], &child_errno, sizeof(child_errno));
    } while (n < 0 && errno == EINTR);
    ::close(exec_err[0]);
    out_fd_ = out[0];
    err_fd_ = err[0];
    if (n > 0) {
      waitpid(pid, nullptr, 0);
      ::close(out_fd_);
      ::close(err_fd_);
      FailStart(fmt::format("cannot start {} in {}: {}", spec_.argv[0], spec_.cwd,
                            std::strerror(child_errno)));
      return false;
    }
    ShimRecord rec{static_cast<int>(getpid()), pid, NowUnixMillis()};
    if (auto s = WriteFileAtomic(dir_ + "/shim.json", ShimRecordToJson(rec), 0644); !s.ok()) {
      log_.Note("cannot record the shim: " + s.message());
    }
    SendHandshake(handshake_fd_, fmt::format("ok {}", pid));
    return true;
  }

  void Loop() {
    char buf[64 << 10];
    bool exited = false;
    std::optional<Clock::time_point> kill_at;  // set by a stop request
    std::optional<Clock::time_point> drain_until;  // after the program exited
    while (true) {
      pollfd fds[3] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}, {signal_fd_, POLLIN, 0}};
      int timeout_ms = -1;
      auto now = Clock::now();
      for (const auto& deadline : {kill_at, drain_until}) {
        if (deadline) {
          auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - now).count();
          int t = static_cast<int>(std::max<int64_t>(0, ms));
          timeout_ms = timeout_ms < 0 ? t : std::min(timeout_ms, t);
        }
      }
      int n = ::poll(fds, 3, timeout_ms);
      if (n < 0 && errno != EINTR) {
        break;
      }
      for (int i = 0; i < 2; ++i) {
        int& fd = i == 0 ? out_fd_ : err_fd_;
        if (fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP | POLLERR))) {
          ssize_t r = ::read(fd, buf, sizeof(buf));
          if (r > 0) {
            log_.Feed(i == 0 ? "stdout" : "stderr", std::string_view(buf, static_cast<size_t>(r)));
          } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
            ::close(fd);
            fd = -1;
          }
        }
      }
      (void)log_.Flush();
      if (fds[2].revents & POLLIN) {
        signalfd_siginfo si;
        while (::read(signal_fd_, &si, sizeof(si)) == sizeof(si)) {
          if ((si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) && !kill_at && !exited) {
            log_.Note(fmt::format("stopping: SIGTERM to the process tree, SIGKILL after {}s",
                                  spec_.grace_seconds));
            ::kill(-pid_, SIGTERM);
            cgroup_.Signal(SIGTERM);
            kill_at = Clock::now() + std::chrono::seconds(spec_.grace_seconds);
          }
        }
      }
      // As a subreaper the shim inherits orphaned descendants: reap them all, note the program.
      int status = 0;
      pid_t w;
      while ((w = waitpid(-1, &status, WNOHANG)) > 0) {
        if (w == pid_ && !exited) {
          exited = true;
          status_ = status;
          if (kill_at) {
            // Stopping: what the program runs behind it (a wrapper such as bwrap or sh exits
            // first) keeps the rest of the grace period to shut down cleanly; Finish kills
            // whatever is left.
            drain_until = *kill_at;
          } else {
            // The program is gone; what it left running dies with it, and its output gets a
            // moment to drain.
            KillTree();
            drain_until = Clock::now() + std::chrono::milliseconds(500);
          }
        }
      }
      now = Clock::now();
      if (kill_at && !exited && now >= *kill_at) {
        log_.Note("grace period over: SIGKILL");
        KillTree();
        kill_at.reset();
      }
      if (exited && ((out_fd_ < 0 && err_fd_ < 0) || (drain_until && now >= *drain_until))) {
        break;
      }
    }
  }

  void KillTree() {
    ::kill(-pid_, SIGKILL);
    cgroup_.Signal(SIGKILL);
  }

  void Finish() {
    for (int* fd : {&out_fd_, &err_fd_}) {
      if (*fd >= 0) {
        ::close(*fd);
        *fd = -1;
      }
    }
    // No orphan survives: the process group, then the cgroup until it is empty (bounded).
    ::kill(-pid_, SIGKILL);
    for (int i = 0; i < 200; ++i) {
      if (cgroup_.Processes().empty()) {
        break;
      }
      cgroup_.Signal(SIGKILL);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      while (waitpid(-1, nullptr, WNOHANG) > 0) {
      }
    }
    ExitRecord r;
    r.ended_at = NowUnixMillis();
    if (WIFEXITED(status_)) {
      r.exit_code = WEXITSTATUS(status_);
    } else if (WIFSIGNALED(status_)) {
      r.signal = WTERMSIG(status_);
    }
    r.oom_killed = cgroup_.OomKillCount() > 0;
    log_.FinishPartial();
    log_.Note(r.oom_killed ? "exited: killed by the kernel for exceeding its memory limit"
              : r.signal ? fmt::format("exited: killed by signal {} ({})", r.signal,
                                       strsignal(r.signal))
                         : fmt::format("exited with code {}", r.exit_code));
    (void)log_.Flush();
    (void)WriteFileAtomic(dir_ + "/exit.json", ExitRecordToJson(r), 0644);
    (void)cgroup_.Remove();
  }

 public:
  Status SetUpSignals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    signal(SIGPIPE, SIG_IGN);
    sigset_t wanted;
    sigemptyset(&wanted);
    sigaddset(&wanted, SIGTERM);
    sigaddset(&wanted, SIGINT);
    sigaddset(&wanted, SIGCHLD);
    signal_fd_ = signalfd(-1, &wanted, SFD_NONBLOCK | SFD_CLOEXEC);
    if (signal_fd_ < 0) {
      return ErrnoStatus("creating signalfd", errno);
    }
    return Status::Ok();
  }

 private:
  std::string dir_;
  InstanceSpec spec_;
  int handshake_fd_;
  LogWriter log_;
  InstanceCgroup cgroup_;
  pid_t pid_ = -1;
  int status_ = 0;
  int out_fd_ = -1;
  int err_fd_ = -1;
  int signal_fd_ = -1;
};

}  // namespace

int RunShim(const std::string& instance_dir, int handshake_fd) {
  auto text = ReadFile(instance_dir + "/spec.json");
  if (!text.ok()) {
    SendHandshake(handshake_fd, "error " + text.status().message());
    return 1;
  }
  auto spec = InstanceSpecFromJson(*text);
  if (!spec.ok()) {
    SendHandshake(handshake_fd, "error " + spec.status().message());
    return 1;
  }
  // The program must not inherit the handshake pipe: the launcher reads it to the end.
  if (handshake_fd >= 0) {
    ::fcntl(handshake_fd, F_SETFD, FD_CLOEXEC);
  }
  // Orphaned descendants of the program become the shim's children, so it can reap them and
  // nothing of the tree outlives the instance unnoticed.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  Shim shim(instance_dir, std::move(*spec), handshake_fd);
  if (auto s = shim.SetUpSignals(); !s.ok()) {
    SendHandshake(handshake_fd, "error " + s.message());
    return 1;
  }
  return shim.Run();
}

}  // namespace berth
