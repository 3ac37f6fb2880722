// What the launcher hands to an instance's shim, and what the shim leaves behind. All of it
// lives in the instance directory, so a restarted daemon can find every instance again:
//   spec.json   InstanceSpec, written by the launcher before the shim starts
//   shim.json   ShimRecord, written by the shim once the program runs
//   exit.json   ExitRecord, written by the shim when the program has ended
//   logs/       LogWriter's files
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace berth {

// How a program is confined (decision 9), applied by the launcher. With a uid the program runs
// as uid:gid, without supplementary groups, capabilities or new privileges (setuid binaries do
// not raise it). In its mount namespace each `hide` directory is replaced by an empty one (the
// daemon's data dir), `binds` are mounted at their targets after that (the program's own
// directories), /tmp is private when tmp_bytes is set, and `passwd` / `group` name files shown
// at /etc/passwd and /etc/group (so that programs can look their user up). An empty sandbox:
// the program runs as the daemon's user, with the daemon's view of the filesystem.
struct BindMount {
  std::string source;
  std::string target;
  bool writable = true;
  // A read-only source (a bundle, shared by every revision and instance pushed with the same
  // content) that the program may still write to: an overlay whose writes go to a layer of
  // its own instance (PlanSandbox's `layer_dir`), as a container's do. Without a layer
  // directory (an exec health check), a read-only bind.
  bool layered = false;
  bool operator==(const BindMount&) const = default;
};

struct Sandbox {
  uint32_t uid = 0;  // 0: keep the daemon's user
  uint32_t gid = 0;
  std::vector<std::string> hide;
  std::vector<BindMount> binds;
  uint64_t tmp_bytes = 0;  // 0: the host's /tmp
  std::string passwd;
  std::string group;
  bool empty() const { return uid == 0 && hide.empty() && binds.empty() && tmp_bytes == 0; }
  bool operator==(const Sandbox&) const = default;
};

struct InstanceSpec {
  std::string id;  // unique, also the cgroup name: "i-<hex>"
  std::vector<std::string> argv;
  std::vector<std::string> env;  // "NAME=value"
  std::string cwd;
  uint64_t memory_limit_bytes = 0;  // 0: none
  int64_t pids_limit = 0;           // processes and threads in its cgroup; 0: none
  // The address it is given (also in its env as HOST and PORT); port 0: none (a task).
  std::string host;
  int port = 0;
  // The lock file of host:port, held by the shim while it runs (address_claim.h): set by a
  // launcher that claims addresses across daemons; empty: no claim.
  std::string address_claim;
  int grace_seconds = 10;  // SIGTERM to SIGKILL
  uint64_t log_max_bytes = 10 << 20;
  int log_keep = 5;
  // Applied by the shim between fork and exec (runtime/linux/sandbox.h).
  Sandbox sandbox;
};

struct ShimRecord {
  int shim_pid = 0;
  int pid = 0;
  int64_t started_at = 0;  // unix millis
  // When the shim started (ProcessStartTicks): with shim_pid, names the shim across pid reuse.
  // 0 in the records of older shims, which are recognised by their command line instead.
  int64_t shim_start = 0;
};

struct ExitRecord {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  bool oom_killed = false;
  int64_t ended_at = 0;
  std::string error;  // e.g. why exec failed
};

std::string InstanceSpecToJson(const InstanceSpec& spec);
Result<InstanceSpec> InstanceSpecFromJson(const std::string& text);
std::string ShimRecordToJson(const ShimRecord& r);
Result<ShimRecord> ShimRecordFromJson(const std::string& text);
std::string ExitRecordToJson(const ExitRecord& r);
Result<ExitRecord> ExitRecordFromJson(const std::string& text);

}  // namespace berth
