#include "runtime/linux/linux_launcher.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/file_util.h"
#include "common/log.h"
#include "common/mutex.h"
#include "common/thread.h"
#include "common/time.h"
#include "runtime/linux/address_claim.h"
#include "runtime/linux/cgroup.h"
#include "runtime/linux/listener.h"
#include "runtime/linux/process_identity.h"
#include "runtime/linux/sandbox.h"

namespace berth {
namespace {

// True if nothing listens on host:port (a bind succeeds).
bool PortFree(const std::string& host, int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return true;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, host.c_str(), &addr.sin_addr);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return free;
}

namespace fs = std::filesystem;

// True if the shim `rec` names is alive and is the shim of `instance_dir` (pids are reused):
// by its start time where the record has one, else by its command line, "<berth-shim>\0shim\0
// <dir>\0" (or "<berth>\0shim\0<dir>\0" for a shim an earlier berth started as `berth shim`).
bool IsShimOf(const ShimRecord& rec, const std::string& instance_dir) {
  if (rec.shim_pid <= 0 || ::kill(rec.shim_pid, 0) != 0) {
    return false;
  }
  if (rec.shim_start > 0) {
    auto start = ProcessStartTicks(rec.shim_pid);
    return start && static_cast<int64_t>(*start) == rec.shim_start;
  }
  auto cmdline = ReadFile(fmt::format("/proc/{}/cmdline", rec.shim_pid));
  if (!cmdline.ok()) {
    return false;
  }
  return cmdline->find(std::string("shim") + '\0' + instance_dir + '\0') != std::string::npos;
}

// True if `pid` runs in the cgroup named `id` (as instances do) or was started with
// BERTH_INSTANCE=`id` in its environment.
bool IsProgramOf(int pid, const std::string& id) {
  if (pid <= 0) {
    return false;
  }
  if (auto cg = ReadFile(fmt::format("/proc/{}/cgroup", pid)); cg.ok()) {
    if (cg->find("/" + id + "\n") != std::string::npos ||
        cg->find("/" + id + "/") != std::string::npos) {
      return true;
    }
  }
  auto env = ReadFile(fmt::format("/proc/{}/environ", pid));
  if (!env.ok()) {
    return false;
  }
  std::string vars = std::string(1, '\0') + *env;
  return vars.find(std::string("\0BERTH_INSTANCE=", 16) + id + '\0') != std::string::npos;
}

// /proc/PID/statm's resident pages, the same sum as status's VmRSS: status formats some fifty
// fields (signal and CPU masks among them) for the one wanted here, and at 10,000 instances
// the periodic full looks spent most of their time in it.
std::optional<uint64_t> RssOf(int pid) {
  auto statm = ReadFile(fmt::format("/proc/{}/statm", pid));
  if (!statm.ok()) {
    return std::nullopt;
  }
  size_t space = statm->find(' ');  // "size resident shared text lib data dt"
  if (space == std::string::npos) {
    return std::nullopt;
  }
  uint64_t pages = 0;
  auto [end, ec] = std::from_chars(statm->data() + space + 1, statm->data() + statm->size(), pages);
  if (ec != std::errc()) {
    return std::nullopt;
  }
  static const uint64_t page_size = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  return pages * page_size;
}

int PidfdOpen(int pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

// ExitWatcher tells of shims' ends, read by one thread from an epoll set: for a shim this
// launcher started, its handshake pipe, which the shim closes right after it recorded its
// program's exit (or the kernel closes when the shim is killed -9, and Probe then records the
// loss); for a shim adopted from an earlier daemon, its pidfd.
class ExitWatcher {
 public:
  ExitWatcher() = default;
  ~ExitWatcher() {
    if (thread_.joinable()) {
      uint64_t one = 1;
      (void)!::write(wake_fd_, &one, sizeof(one));
      thread_.join();
    }
    for (auto& [fd, watched] : watched_) {
      ::close(fd);
    }
    if (epoll_fd_ >= 0) {
      ::close(epoll_fd_);
    }
    if (wake_fd_ >= 0) {
      ::close(wake_fd_);
    }
  }

  // False when the kernel has no pidfds (before 5.3): the supervisor polls instead. An empty
  // listener ends the calls: once this returns, no call to the old one is under way.
  bool Begin(Launcher::ExitListener listener) {
    {
      MutexLock lock(call_mu_);
      if (thread_.joinable() || !listener) {
        listener_ = std::move(listener);
        return thread_.joinable();
      }
    }
    int probe = PidfdOpen(::getpid());
    if (probe < 0) {
      return false;
    }
    ::close(probe);
    // One descriptor per running instance: lift the soft limit to the hard one.
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
      rl.rlim_cur = rl.rlim_max;
      (void)::setrlimit(RLIMIT_NOFILE, &rl);
    }
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (epoll_fd_ < 0 || wake_fd_ < 0) {
      return false;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = wake_fd_;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
    {
      MutexLock lock(call_mu_);
      listener_ = std::move(listener);
    }
    thread_ = std::thread([this] {
      NameThisThread("berth-exits");
      Run();
    });
    return true;
  }

  // Watches `shim_pid`, the shim of `dir`. The listener hears at once of a shim already gone.
  void Add(const std::string& dir, int shim_pid) {
    if (epoll_fd_ < 0) {
      return;
    }
    int fd = PidfdOpen(shim_pid);
    if (fd < 0) {
      Tell(dir);
      return;
    }
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    AddFd(dir, fd, /*pipe=*/false);
  }

  // Watches the read end of the handshake pipe of the shim of `dir`, which the shim closes
  // once its end is recorded (shim.h); takes `fd`. False without a watcher (the caller still
  // owns `fd` then).
  bool AddPipe(const std::string& dir, int fd) {
    if (epoll_fd_ < 0) {
      return false;
    }
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    AddFd(dir, fd, /*pipe=*/true);
    return true;
  }

 private:
  void Tell(const std::string& dir) EXCLUDES(call_mu_) {
    MutexLock lock(call_mu_);
    if (listener_) {
      listener_(dir);
    }
  }

  void AddFd(const std::string& dir, int fd, bool pipe) {
    {
      MutexLock lock(mu_);
      watched_[fd] = {dir, pipe};
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      Drop(fd);
      Tell(dir);
    }
  }

  std::string Drop(int fd) EXCLUDES(mu_) {
    MutexLock lock(mu_);
    std::string dir;
    if (auto it = watched_.find(fd); it != watched_.end()) {
      dir = std::move(it->second.dir);
      watched_.erase(it);
    }
    ::close(fd);
    return dir;
  }

  // A pidfd is readable once its process has ended; a pipe at its end of file. What else a
  // pipe holds is read and dropped.
  bool Ended(int fd) EXCLUDES(mu_) {
    {
      MutexLock lock(mu_);
      auto it = watched_.find(fd);
      if (it == watched_.end() || !it->second.pipe) {
        return true;
      }
    }
    char buf[256];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof(buf))) > 0) {
    }
    return n == 0 || (errno != EAGAIN && errno != EINTR);
  }

  void Run() {
    epoll_event events[64];
    while (true) {
      int n = ::epoll_wait(epoll_fd_, events, 64, -1);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0) {
        LogError("waiting for instance exits failed", {{"error", std::strerror(errno)}});
        return;
      }
      for (int i = 0; i < n; ++i) {
        int fd = events[i].data.fd;
        if (fd == wake_fd_) {
          return;
        }
        if (!Ended(fd)) {
          continue;
        }
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
        std::string dir = Drop(fd);
        if (!dir.empty()) {
          Tell(dir);
        }
      }
    }
  }

  Mutex call_mu_;  // held while the listener is called, so that it can be withdrawn
  Launcher::ExitListener listener_ GUARDED_BY(call_mu_);
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  struct Watched {
    std::string dir;
    bool pipe = false;  // a handshake pipe, else a pidfd
  };
  Mutex mu_;
  std::unordered_map<int, Watched> watched_ GUARDED_BY(mu_);
  std::thread thread_;
};

// Spawns berth-shim with `args` in a new session with every signal at its default: stdin
// /dev/null, stdout and stderr appended to `output`, `fd3` as its fd 3 and nothing else.
// posix_spawn: vfork-like, no copy of the daemon's page tables, which grow with every instance.
Result<pid_t> SpawnShimProgram(const std::string& shim, const std::vector<std::string>& args,
                               const std::string& output, int fd3) {
  std::vector<std::string> strings = {shim};
  strings.insert(strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : strings) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDWR, 0);
  posix_spawn_file_actions_addopen(&fa, 1, output.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawn_file_actions_adddup2(&fa, fd3, 3);  // dup2 clears close-on-exec on the copy
  posix_spawn_file_actions_addclosefrom_np(&fa, 4);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigset_t all;
  sigfillset(&all);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t child = -1;
  int rc = posix_spawn(&child, argv[0], &fa, &attr, argv.data(), ::environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return ErrnoStatus("starting " + shim, rc);
  }
  return child;
}

// ShimSpawner keeps `berth-shim spawner` (shim.h) running beside the launcher and has it fork
// each instance's shim: a fork of that small process costs a fraction of an exec of
// berth-shim (its loading and relocation), which every task and every start paid. The
// spawner is the launcher's child; the shims it forks are not, and outlive both. When it
// cannot be used, Send says so and the launcher spawns berth-shim itself.
class ShimSpawner {
 public:
  explicit ShimSpawner(std::string shim) : shim_(std::move(shim)) {}
  ~ShimSpawner() {
    MutexLock lock(mu_);
    StopLocked();
  }

  // Hands the start of `instance_dir` to the spawner, whose shim answers on `handshake_fd`
  // (the caller keeps and closes its own copy). A spawner found dead is replaced once.
  bool Send(const std::string& instance_dir, int handshake_fd) EXCLUDES(mu_) {
    MutexLock lock(mu_);
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (fd_ < 0 && !StartLocked()) {
        return false;
      }
      iovec iov{const_cast<char*>(instance_dir.data()), instance_dir.size()};
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof(control);
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(c), &handshake_fd, sizeof(int));
      ssize_t n;
      do {
        n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
      } while (n < 0 && errno == EINTR);
      if (n == static_cast<ssize_t>(instance_dir.size())) {
        return true;
      }
      LogWarn("the shim spawner is gone; starting another",
              {{"error", std::strerror(n < 0 ? errno : EPIPE)}});
      StopLocked();
    }
    return false;
  }

 private:
  bool StartLocked() REQUIRES(mu_) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
      return false;
    }
    auto child = SpawnShimProgram(shim_, {"spawner"}, "/dev/null", sv[1]);
    ::close(sv[1]);
    if (!child.ok()) {
      ::close(sv[0]);
      LogWarn("cannot start the shim spawner; shims are spawned one by one",
              {{"error", child.status().message()}});
      return false;
    }
    fd_ = sv[0];
    pid_ = *child;
    return true;
  }

  // Closing its socket ends the spawner; its shims go on.
  void StopLocked() REQUIRES(mu_) {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
    if (pid_ > 0) {
      while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
      }
      pid_ = -1;
    }
  }

  const std::string shim_;
  Mutex mu_;
  int fd_ GUARDED_BY(mu_) = -1;  // our end of the spawner's socket
  pid_t pid_ GUARDED_BY(mu_) = -1;
};

class LinuxLauncher final : public Launcher {
 public:
  // The shims are berth-shim, installed beside berth: a small program of its own, since one
  // runs as long as each instance and its memory is paid per instance (shim_main.cc).
  LinuxLauncher(std::string berth_binary, std::string address_claims_dir)
      : shim_((fs::path(std::move(berth_binary)).parent_path() / "berth-shim").string()),
        claims_dir_(std::move(address_claims_dir)) {}

  bool AddressFree(const std::string& host, int port) override {
    return PortFree(host, port) &&
           (claims_dir_.empty() || !AddressClaimed(AddressClaimPath(claims_dir_, host, port)));
  }

  ProbeResult CheckHealth(const std::string& instance_dir, const HealthProbe& p) override {
    if (p.check.type == "exec") {
      if (p.sandbox.empty()) {
        return ProbeInstance(p.host, p.port, p.check, p.codes, p.path);
      }
      // In the instance's sandbox, as its user: a check sees what the program sees.
      auto spawn = [&p](char* const* argv, char* const* envp, pid_t* pid) {
        return SpawnConfined(p.sandbox, p.cwd, argv, envp, pid);
      };
      return ProbeInstance(p.host, p.port, p.check, p.codes, p.path, spawn);
    }
    ProbeResult r = ProbeInstance(p.host, p.port, p.check, p.codes, p.path);
    if (r.healthy && p.check_listener) {
      auto text = ReadFile(instance_dir + "/shim.json");
      auto shim = text.ok() ? ShimRecordFromJson(*text) : Result<ShimRecord>(text.status());
      if (shim.ok()) {
        if (std::string problem = ListenerOwnerProblem(p.host, p.port, shim->pid);
            !problem.empty()) {
          return {false, problem};
        }
      }
    }
    return r;
  }

  std::optional<uint64_t> ResidentBytes(int pid) override { return RssOf(pid); }

  bool WatchExits(ExitListener listener) override { return exits_.Begin(std::move(listener)); }

  void Watch(const std::string& instance_dir, const ShimRecord& shim) override {
    exits_.Add(instance_dir, shim.shim_pid);
  }

  Result<ShimRecord> Start(const std::string& instance_dir,
                           const InstanceSpec& requested) override {
    InstanceSpec spec = requested;
    if (!claims_dir_.empty() && requested.port > 0 && requested.address_claim.empty()) {
      spec.address_claim = AddressClaimPath(claims_dir_, requested.host, requested.port);
    }
    if (::access(shim_.c_str(), X_OK) != 0) {
      return Status::FailedPrecondition(
          fmt::format("cannot run the instance shim {}: {} (berth-shim belongs beside berth)",
                      shim_, std::strerror(errno)));
    }
    if (auto s = CheckSandboxSupport(spec.sandbox); !s.ok()) {
      return s;
    }
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
    // The instance directory (spec with env secrets, logs) is the daemon's alone.
    fs::permissions(instance_dir, fs::perms::owner_all, ec);
    if (auto s = WriteFileAtomic(instance_dir + "/spec.json", InstanceSpecToJson(spec), 0600,
                                 Durability::kProcessCrash);
        !s.ok()) {
      return s;
    }
    int hs[2];
    if (pipe2(hs, O_CLOEXEC) != 0) {
      return ErrnoStatus("creating handshake pipe", errno);
    }
    std::string shim_log = instance_dir + "/shim.log";
    if (!spawner_.Send(instance_dir, hs[1])) {
      // No spawner: berth-shim itself, which forks once more and its first process exits, so
      // that the shim is re-parented away from the daemon.
      auto child = SpawnShimProgram(shim_, {"shim", instance_dir}, shim_log, hs[1]);
      if (!child.ok()) {
        ::close(hs[0]);
        ::close(hs[1]);
        return child.status();
      }
      int wstatus = 0;
      while (waitpid(*child, &wstatus, 0) < 0 && errno == EINTR) {
      }
    }
    ::close(hs[1]);
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
    while (!line.empty() && line.back() == '\n') {
      line.pop_back();
    }
    if (line.starts_with("ok ")) {
      auto text = ReadFile(instance_dir + "/shim.json");
      auto rec = text.ok() ? ShimRecordFromJson(*text) : Result<ShimRecord>(text.status());
      // The pipe stays open until the shim's end (shim.h): its close is the exit event.
      if (!rec.ok() || !exits_.AddPipe(instance_dir, hs[0])) {
        ::close(hs[0]);
      }
      return rec;
    }
    ::close(hs[0]);
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
    if (p.shim && IsShimOf(*p.shim, instance_dir)) {
      p.running = true;
      return p;
    }
    if (p.shim) {
      // The shim may have recorded the exit and quit since the first read: a record now is
      // the real end, not a loss.
      if (auto text = ReadFile(instance_dir + "/exit.json"); text.ok()) {
        if (auto rec = ExitRecordFromJson(*text); rec.ok()) {
          p.exit = *rec;
          return p;
        }
      }
      // The shim died without recording an exit (killed -9): the tree must not outlive it.
      auto spec_text = ReadFile(instance_dir + "/spec.json");
      if (spec_text.ok()) {
        if (auto spec = InstanceSpecFromJson(*spec_text); spec.ok()) {
          InstanceCgroup cg = InstanceCgroup::Attach(DetectCgroupLayout(), spec->id);
          cg.Signal(SIGKILL);
          // The program's process group too, but only while that pid is still this
          // instance's program: after a reboot or a long absence the number may be another's.
          if (IsProgramOf(p.shim->pid, spec->id)) {
            ::kill(-p.shim->pid, SIGKILL);
          }
          (void)cg.Remove();
        }
      }
      ExitRecord lost;
      lost.exit_code = -1;
      lost.signal = SIGKILL;
      lost.error = "the instance's shim disappeared; its processes were killed";
      lost.ended_at = NowUnixMillis();
      (void)WriteFileAtomic(instance_dir + "/exit.json", ExitRecordToJson(lost), 0644,
                            Durability::kProcessCrash);
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
  std::string shim_;        // path of berth-shim
  std::string claims_dir_;  // empty: no address claims
  ExitWatcher exits_;
  ShimSpawner spawner_{shim_};
};

}  // namespace

std::unique_ptr<Launcher> MakeLinuxLauncher(std::string berth_binary,
                                            std::string address_claims_dir) {
  return std::make_unique<LinuxLauncher>(std::move(berth_binary), std::move(address_claims_dir));
}

std::string SelfExecutable() {
  std::error_code ec;
  auto p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("berth") : p.string();
}

}  // namespace berth
