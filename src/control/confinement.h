// Decision 9, the policy: every program a project runs (its services' instances, its pipeline
// steps, its recipe nodes) runs as the project's own unprivileged user, uid = uid_base +
// project id (ids are never reused), in a mount namespace where the daemon's data dir is an
// empty directory with only the project's own directories bound back into it: its /data, its
// project directory and its home. Another project's files, instance specs (env secrets),
// tokens and the admin token are not there to read; /tmp is private and bounded; /etc/passwd
// names the project's user, so that programs which look themselves up (PostgreSQL, ssh, git)
// work. The mechanism (namespaces entered between fork and exec) is the launcher's
// (runtime/linux/sandbox.h).
//
// Confinement needs a daemon running as root (to mount and to change user); without it
// programs run as the daemon's user, and the daemon says so once at start-up. A definition
// that needs root says `run-as-root: true`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "runtime/instance_spec.h"

namespace berth {

struct ConfinementOptions {
  bool enabled = false;  // see ConfinementAvailable
  std::string data_dir;  // the daemon's data dir, hidden from every program
  uint32_t uid_base = 2000000000;
  uint64_t tmp_bytes = uint64_t{512} << 20;  // the private /tmp; its pages count as memory
  // berth's own files that its programs use (the Python SDK, the directory of berth-node):
  // shown read-only where the private /tmp or the hidden data dir would hide them (a build
  // tree under /tmp).
  std::vector<std::string> shared;
};

// Whether this daemon can confine programs; when not, `why` says what is missing.
bool ConfinementAvailable(std::string* why);

// The project's user and group id.
uint32_t ProjectUid(const ConfinementOptions& o, int64_t project_id);
// The name of that user in the sandbox's /etc/passwd: "berth-<project>".
std::string ProjectUserName(const std::string& project);

// Where the project's directories are under the data dir: data, project, home (paths only;
// ProjectSandbox creates them).
struct ProjectDirs {
  std::string root;  // DATA/projects/<name>
  std::string data;
  std::string project;
  std::string home;
};
ProjectDirs ProjectDirsOf(const std::string& data_dir, const std::string& project);

// Prepares the project's user (directories owned by it, the sandbox's passwd and group files)
// and returns the sandbox every program of the project starts from. Empty when confinement is
// off. Callers add their own directories (a bundle, a run's copy, a recipe's channels) to
// `binds`.
Result<Sandbox> ProjectSandbox(const ConfinementOptions& o, const std::string& project,
                               int64_t project_id);

// Makes `dir` (created if missing) belong to uid:gid; its contents too when the directory
// itself did not (a directory made before confinement, or by the daemon).
Status GiveToUser(const std::string& dir, uint32_t uid, uint32_t gid);

}  // namespace berth
