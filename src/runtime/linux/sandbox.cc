// Linked into berth-shim as well: no fmt, no iostreams, no exceptions (CMakeLists.txt).
#include "runtime/linux/sandbox.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>

namespace berth {

SandboxPlan PlanSandbox(const Sandbox& sb, const std::string& layer_dir) {
  SandboxPlan plan;
  if (sb.empty()) {
    return plan;
  }
  auto& steps = plan.steps;
  steps.push_back({SandboxStep::kNamespace, "", "", -1, true});
  // Every source opened before anything is hidden; a bind refers to its open step's fd.
  std::vector<BindMount> binds = sb.binds;
  if (!sb.passwd.empty()) {
    binds.push_back({sb.passwd, "/etc/passwd", false});
  }
  if (!sb.group.empty()) {
    binds.push_back({sb.group, "/etc/group", false});
  }
  std::vector<int> source_of;
  for (const auto& b : binds) {
    source_of.push_back(static_cast<int>(plan.fds.size()));
    steps.push_back({SandboxStep::kOpen, b.source, "", source_of.back(), true});
    plan.fds.push_back(-1);
  }
  int layer_fd = -1;
  if (!layer_dir.empty() && std::any_of(binds.begin(), binds.end(),
                                        [](const BindMount& b) { return b.layered; })) {
    layer_fd = static_cast<int>(plan.fds.size());
    steps.push_back({SandboxStep::kOpen, layer_dir, "", layer_fd, true});
    plan.fds.push_back(-1);
  }
  plan.fd_paths.resize(plan.fds.size());
  // Empty directories mounted over the host's; the directories leading to a mount inside one
  // are made traversable, without showing what the host has there.
  std::vector<std::string> fresh;
  std::vector<std::string> made;
  auto way_to = [&](const std::string& target) {
    for (auto it = fresh.rbegin(); it != fresh.rend(); ++it) {  // the innermost, mounted last
      const std::string& root = *it;
      if (!target.starts_with(root + "/")) {
        continue;
      }
      for (size_t at = target.find('/', root.size() + 1); at != std::string::npos;
           at = target.find('/', at + 1)) {
        std::string dir = target.substr(0, at);
        if (std::find(made.begin(), made.end(), dir) == made.end()) {
          steps.push_back({SandboxStep::kDir, dir, "", -1, true});
          made.push_back(dir);
        }
      }
      return true;
    }
    return false;
  };
  if (sb.tmp_bytes > 0) {
    steps.push_back(
        {SandboxStep::kTmpfs, "/tmp", "mode=1777,size=" + std::to_string(sb.tmp_bytes), -1, true});
    fresh.push_back("/tmp");
  }
  for (const auto& dir : sb.hide) {
    if (way_to(dir)) {  // a hidden directory inside the private /tmp needs its mount point
      steps.push_back({SandboxStep::kDir, dir, "", -1, true});
    }
    // Only mount points go in it, made by root: 1 MiB is plenty and nobody else may write.
    steps.push_back({SandboxStep::kTmpfs, dir, "mode=0755,size=1048576", -1, true});
    fresh.push_back(dir);
  }
  for (size_t i = 0; i < binds.size(); ++i) {
    way_to(binds[i].target);
    if (binds[i].layered && layer_fd >= 0) {
      // "lowerdir=/proc/self/fd/N,upperdir=/proc/self/fd/M/upper,workdir=/proc/self/fd/M/work"
      steps.push_back({SandboxStep::kOverlay, binds[i].target, std::string(128, '\0'),
                       source_of[i], false, layer_fd});
    } else {
      steps.push_back({SandboxStep::kBind, binds[i].target, "", source_of[i],
                       binds[i].writable && !binds[i].layered});
    }
  }
  if (sb.uid != 0) {
    steps.push_back({SandboxStep::kUser, "", "", -1, true});
    plan.uid = sb.uid;
    plan.gid = sb.gid;
  }
  return plan;
}

Status PrepareLayer(const std::string& layer_dir, uint32_t uid, uint32_t gid) {
  for (const std::string& dir : {layer_dir, layer_dir + "/upper", layer_dir + "/work"}) {
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
      return Status::Internal("creating " + dir + ": " + std::strerror(errno));
    }
  }
  std::string upper = layer_dir + "/upper";
  if (::chown(upper.c_str(), uid, gid) != 0) {
    return Status::Internal("giving " + upper + " to uid " + std::to_string(uid) + ": " +
                            std::strerror(errno));
  }
  return Status::Ok();
}

namespace {

// "/proc/self/fd/<fd>" into `out`, without allocating.
void FdPath(int fd, std::array<char, 32>& out) {
  constexpr char kPrefix[] = "/proc/self/fd/";
  size_t n = sizeof(kPrefix) - 1;
  std::copy(kPrefix, kPrefix + n, out.begin());
  char digits[12];
  int k = 0;
  do {
    digits[k++] = static_cast<char>('0' + fd % 10);
    fd /= 10;
  } while (fd > 0);
  while (k > 0) {
    out[n++] = digits[--k];
  }
  out[n] = '\0';
}

// Appends `text` at `*at` in `out`, without allocating; false if it does not fit.
bool Append(std::string& out, size_t* at, const char* text) {
  for (; *text != '\0'; ++text) {
    if (*at + 1 >= out.size()) {
      return false;
    }
    out[(*at)++] = *text;
  }
  out[*at] = '\0';
  return true;
}

// A bind needs something to mount on: a directory for a directory, an empty file for a file.
int MakeMountPoint(const char* target, int source_fd) {
  struct stat st {};
  if (::stat(target, &st) == 0) {
    return 0;
  }
  if (errno != ENOENT) {
    return errno;
  }
  struct stat src {};
  if (::fstat(source_fd, &src) != 0) {
    return errno;
  }
  if (S_ISDIR(src.st_mode)) {
    return ::mkdir(target, 0755) == 0 || errno == EEXIST ? 0 : errno;
  }
  int fd = ::open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return errno;
  }
  ::close(fd);
  return 0;
}

int Step(SandboxPlan& plan, SandboxStep& s) {
  switch (s.kind) {
    case SandboxStep::kNamespace:
      if (::unshare(CLONE_NEWNS) != 0) {
        return errno;
      }
      // A slave of the host's mounts: what is mounted here never shows outside.
      return ::mount("none", "/", nullptr, MS_REC | MS_SLAVE, nullptr) == 0 ? 0 : errno;
    case SandboxStep::kOpen: {
      int fd = ::open(s.path.c_str(), O_PATH | O_CLOEXEC);
      if (fd < 0) {
        return errno;
      }
      plan.fds[static_cast<size_t>(s.source)] = fd;
      FdPath(fd, plan.fd_paths[static_cast<size_t>(s.source)]);
      return 0;
    }
    case SandboxStep::kTmpfs:
      return ::mount("tmpfs", s.path.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, s.options.c_str()) == 0
                 ? 0
                 : errno;
    case SandboxStep::kDir:
      return ::mkdir(s.path.c_str(), 0755) == 0 || errno == EEXIST ? 0 : errno;
    case SandboxStep::kBind: {
      auto k = static_cast<size_t>(s.source);
      if (int e = MakeMountPoint(s.path.c_str(), plan.fds[k]); e != 0) {
        return e;
      }
      if (::mount(plan.fd_paths[k].data(), s.path.c_str(), nullptr, MS_BIND | MS_REC, nullptr) !=
          0) {
        return errno;
      }
      if (!s.writable &&
          ::mount(nullptr, s.path.c_str(), nullptr,
                  MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, nullptr) != 0) {
        return errno;
      }
      return 0;
    }
    case SandboxStep::kOverlay: {
      auto lower = static_cast<size_t>(s.source);
      auto layer = static_cast<size_t>(s.layer);
      if (int e = MakeMountPoint(s.path.c_str(), plan.fds[lower]); e != 0) {
        return e;
      }
      std::string& o = s.options;  // its room was allocated by PlanSandbox
      size_t n = 0;
      const char* layer_path = plan.fd_paths[layer].data();
      if (!Append(o, &n, "lowerdir=") || !Append(o, &n, plan.fd_paths[lower].data()) ||
          !Append(o, &n, ",upperdir=") || !Append(o, &n, layer_path) ||
          !Append(o, &n, "/upper,workdir=") || !Append(o, &n, layer_path) ||
          !Append(o, &n, "/work")) {
        return ENAMETOOLONG;
      }
      return ::mount("overlay", s.path.c_str(), "overlay", MS_NOSUID | MS_NODEV, o.c_str()) == 0
                 ? 0
                 : errno;
    }
    case SandboxStep::kUser: {
      // Capabilities first (dropping the bounding set needs CAP_SETPCAP), then groups, the
      // gid, the uid (which clears the permitted and effective sets), then the rest.
      for (int cap = 0; cap < 64; ++cap) {
        if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) {
          return errno;
        }
      }
      if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
        return errno;
      }
      // Raw calls: glibc's wrappers would change every thread of a threaded parent's image.
      if (::syscall(SYS_setgroups, 0, nullptr) != 0 ||
          ::syscall(SYS_setresgid, plan.gid, plan.gid, plan.gid) != 0 ||
          ::syscall(SYS_setresuid, plan.uid, plan.uid, plan.uid) != 0) {
        return errno;
      }
      __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
      __user_cap_data_struct none[2] = {};
      if (::syscall(SYS_capset, &header, none) != 0) {
        return errno;
      }
      return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 ? 0 : errno;
    }
  }
  return EINVAL;
}

}  // namespace

int EnterSandbox(SandboxPlan& plan, int* failed_step) {
  // The modes above are the ones meant, whatever the daemon's umask; the program gets it back.
  mode_t umask_before = ::umask(0);
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    if (int e = Step(plan, plan.steps[i]); e != 0) {
      *failed_step = static_cast<int>(i);
      return e;
    }
  }
  ::umask(umask_before);
  for (int fd : plan.fds) {
    ::close(fd);
  }
  return 0;
}

namespace {

std::string DescribeStep(const SandboxPlan& plan, int step) {
  if (step < 0 || static_cast<size_t>(step) >= plan.steps.size()) {
    return "confining it";
  }
  const SandboxStep& s = plan.steps[static_cast<size_t>(step)];
  switch (s.kind) {
    case SandboxStep::kNamespace:
      return "creating its mount namespace";
    case SandboxStep::kOpen:
      return "opening " + s.path + " to mount it";
    case SandboxStep::kTmpfs:
      return "mounting an empty tmpfs at " + s.path;
    case SandboxStep::kDir:
      return "creating the mount point " + s.path;
    case SandboxStep::kBind: {
      std::string source;
      for (const auto& o : plan.steps) {
        if (o.kind == SandboxStep::kOpen && o.source == s.source) {
          source = o.path;
        }
      }
      return "mounting " + source + " at " + s.path + (s.writable ? "" : " read-only");
    }
    case SandboxStep::kOverlay: {
      std::string source, layer;
      for (const auto& o : plan.steps) {
        if (o.kind == SandboxStep::kOpen && o.source == s.source) {
          source = o.path;
        } else if (o.kind == SandboxStep::kOpen && o.source == s.layer) {
          layer = o.path;
        }
      }
      return "mounting " + source + " at " + s.path + " with its writes in " + layer +
             " (overlayfs)";
    }
    case SandboxStep::kUser:
      return "becoming uid " + std::to_string(plan.uid) + " gid " + std::to_string(plan.gid);
  }
  return "confining it";
}

}  // namespace

std::string DescribeExecFailure(const SandboxPlan& plan, const ExecFailure& failure) {
  std::string error = std::strerror(failure.error);
  return failure.sandbox_step < 0 ? error : DescribeStep(plan, failure.sandbox_step) + ": " + error;
}

namespace {

// True if `path` is `dir` or inside it.
bool Under(const std::string& path, const std::string& dir) {
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
                         (dir.back() == '/' || path[dir.size()] == '/'));
}

}  // namespace

std::string HiddenProgramHint(const Sandbox& sandbox, const std::string& program,
                              const ExecFailure& failure) {
  // Only for a program the host has: a missing program or working directory is no riddle.
  if (failure.error != ENOENT || failure.sandbox_step >= 0 || program.empty() ||
      program[0] != '/' || ::access(program.c_str(), X_OK) != 0) {
    return "";
  }
  for (const BindMount& b : sandbox.binds) {
    if (Under(program, b.target)) {
      return "";
    }
  }
  if (sandbox.tmp_bytes > 0 && Under(program, "/tmp")) {
    return "; instances have a private /tmp, so the host's " + program +
           " is not visible to them: put the program in the service's bundle or outside /tmp";
  }
  for (const std::string& hidden : sandbox.hide) {
    if (Under(program, hidden)) {
      return "; " + hidden + " is hidden from instances, so " + program +
             " is not visible to them: put the program in the service's bundle";
    }
  }
  return "";
}

std::optional<ExecFailure> ReadExecFailure(int fd) {
  ExecFailure f;
  ssize_t n;
  do {
    n = ::read(fd, &f, sizeof(f));
  } while (n < 0 && errno == EINTR);
  ::close(fd);
  return n > 0 ? std::optional<ExecFailure>(f) : std::nullopt;
}

std::string SpawnConfined(const Sandbox& sandbox, const std::string& cwd, char* const* argv,
                          char* const* envp, pid_t* pid, int out_fd) {
  SandboxPlan plan = PlanSandbox(sandbox);
  int failure_pipe[2];
  if (::pipe2(failure_pipe, O_CLOEXEC) != 0) {
    return std::string("cannot create a pipe: ") + std::strerror(errno);
  }
  pid_t child = ::fork();
  if (child < 0) {
    int e = errno;
    ::close(failure_pipe[0]);
    ::close(failure_pipe[1]);
    return std::string("cannot fork: ") + std::strerror(e);
  }
  if (child == 0) {  // async-signal-safe calls only from here
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    ::setpgid(0, 0);
    int devnull = ::open("/dev/null", O_RDWR);
    for (int fd = 0; fd < 3; ++fd) {
      ::dup2(fd > 0 && out_fd >= 0 ? out_fd : devnull, fd);
    }
    // The failure pipe at 3 (close-on-exec), every other descriptor of the daemon closed.
    int report = failure_pipe[1] == 3 ? 3 : ::dup3(failure_pipe[1], 3, O_CLOEXEC);
    ::closefrom(4);
    ExecFailure f;
    if (f.error = EnterSandbox(plan, &f.sandbox_step); f.error == 0) {
      if (::chdir(cwd.c_str()) != 0) {
        f.error = errno;
      } else {
        ::execvpe(argv[0], argv, envp);
        f.error = errno;
      }
    }
    (void)!::write(report, &f, sizeof(f));
    ::_exit(127);
  }
  ::close(failure_pipe[1]);
  if (auto f = ReadExecFailure(failure_pipe[0])) {
    ::waitpid(child, nullptr, 0);
    return DescribeExecFailure(plan, *f);
  }
  *pid = child;
  return "";
}

Status CheckSandboxSupport(const Sandbox& sb) {
  if (sb.empty() || ::geteuid() == 0) {
    return Status::Ok();
  }
  return Status::FailedPrecondition(
      "confining a program needs a daemon running as root: it mounts the program's view of the "
      "filesystem and changes its user (run berth serve as root, or without --confine)");
}

}  // namespace berth
