#include "runtime/linux/sandbox.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>

namespace berth {

std::vector<std::string> SandboxArgv(const Sandbox& sb, const std::string& cwd,
                                     const std::vector<std::string>& argv) {
  if (sb.empty()) {
    return argv;
  }
  std::vector<std::string> a = {kBubblewrapPath, "--dev-bind", "/", "/"};
  // Empty directories mounted over the host's: their own mode, else bwrap's 0755 / 0700.
  std::vector<std::string> fresh;
  if (sb.tmp_bytes > 0) {
    a.insert(a.end(),
             {"--perms", "1777", "--size", std::to_string(sb.tmp_bytes), "--tmpfs", "/tmp"});
    fresh.push_back("/tmp");
  }
  for (const auto& dir : sb.hide) {
    a.insert(a.end(), {"--perms", "0755", "--tmpfs", dir});
    fresh.push_back(dir);
  }
  // The directories leading to a bind inside a fresh one are made traversable (bwrap would
  // make them 0700, root's), without showing what the host has there.
  std::vector<std::string> made;
  for (const auto& b : sb.binds) {
    for (const auto& root : fresh) {
      if (!b.target.starts_with(root + "/")) {
        continue;
      }
      for (size_t at = b.target.find('/', root.size() + 1); at != std::string::npos;
           at = b.target.find('/', at + 1)) {
        std::string dir = b.target.substr(0, at);
        if (std::find(made.begin(), made.end(), dir) == made.end()) {
          a.insert(a.end(), {"--perms", "0755", "--dir", dir});
          made.push_back(dir);
        }
      }
    }
    a.insert(a.end(), {b.writable ? "--bind" : "--ro-bind", b.source, b.target});
  }
  if (!sb.passwd.empty()) {
    a.insert(a.end(), {"--ro-bind", sb.passwd, "/etc/passwd"});
  }
  if (!sb.group.empty()) {
    a.insert(a.end(), {"--ro-bind", sb.group, "/etc/group"});
  }
  if (!cwd.empty()) {
    a.insert(a.end(), {"--chdir", cwd});
  }
  a.push_back("--");
  if (sb.uid != 0) {
    a.insert(a.end(),
             {kSetprivPath, fmt::format("--reuid={}", sb.uid), fmt::format("--regid={}", sb.gid),
              "--clear-groups", "--no-new-privs", "--bounding-set=-all", "--inh-caps=-all", "--"});
  }
  a.insert(a.end(), argv.begin(), argv.end());
  return a;
}

Status CheckSandboxSupport(const Sandbox& sb) {
  if (sb.empty()) {
    return Status::Ok();
  }
  if (::access(kBubblewrapPath, X_OK) != 0) {
    return Status::FailedPrecondition(
        fmt::format("{} is missing: confined programs need bubblewrap (apt-get install bubblewrap)",
                    kBubblewrapPath));
  }
  if (sb.uid != 0) {
    if (::access(kSetprivPath, X_OK) != 0) {
      return Status::FailedPrecondition(fmt::format(
          "{} is missing: programs run as their project's user need setpriv (apt-get install "
          "util-linux)",
          kSetprivPath));
    }
    if (::geteuid() != 0) {
      return Status::FailedPrecondition(
          fmt::format("running a program as uid {} needs a daemon running as root", sb.uid));
    }
  }
  return Status::Ok();
}

}  // namespace berth
