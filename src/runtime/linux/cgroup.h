// Cgroups for instances. Machines differ: pure cgroup v2, v1, or a hybrid where the memory
// controller is on v1 and a controller-less v2 tree sits at /sys/fs/cgroup/unified. berth
// detects the layout instead of assuming one:
//  - memory limit and OOM accounting: v2 if its tree has the memory controller, else v1;
//  - tracking and killing the whole process tree: the v2 tree (cgroup.kill) when present,
//    else the memory cgroup's member list.
// Instance cgroups nest under the daemon's own cgroup: <hierarchy>/<own path>/berth/<name>.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace berth {

struct CgroupLayout {
  // Directory under which instance groups with a memory controller are made; empty if none.
  std::string memory_parent;
  bool memory_is_v2 = false;
  // Directory under which instance groups in the v2 tree are made (for cgroup.kill); empty if
  // there is no writable v2 tree.
  std::string unified_parent;
  // A v1 pids hierarchy's directory for instance groups (instances with a pids-limit on a
  // machine whose unified tree lacks the pids controller); empty if none.
  std::string pids_parent;
};

// Pure parsers, tested on canned text.
// /proc/self/cgroup -> {"memory": "/a/b", "": "/"} (v2 entry under the empty key).
std::map<std::string, std::string> ParseProcCgroup(const std::string& text);
// /proc/self/mountinfo -> {"memory": "/sys/fs/cgroup/memory", "cgroup2": "/sys/fs/cgroup/unified"}
std::map<std::string, std::string> ParseCgroupMounts(const std::string& mountinfo);
// The oom_kill counter from v1 memory.oom_control or v2 memory.events; 0 if absent.
int64_t ParseOomKillCount(const std::string& text);

// Reads /proc and /sys to find where berth may create instance cgroups.
CgroupLayout DetectCgroupLayout();

// One instance's cgroups. Not thread-safe; owned by the instance's shim.
class InstanceCgroup {
 public:
  // Creates the groups (missing hierarchies are skipped: the instance then runs without that
  // feature, which DetectCgroupLayout's caller logs once).
  static Result<InstanceCgroup> Create(const CgroupLayout& layout, const std::string& name);
  // Reattaches to existing groups of `name` (after a restart) without creating them.
  static InstanceCgroup Attach(const CgroupLayout& layout, const std::string& name);

  Status AddProcess(int pid);
  // Hard limit; the kernel OOM-kills inside the group above it. 0 removes the limit.
  Status SetMemoryLimit(uint64_t bytes);
  bool has_memory() const { return !memory_dir_.empty(); }
  int64_t OomKillCount() const;
  std::optional<uint64_t> MemoryUsage() const;
  // Pids in the group (from the tree used for killing).
  std::vector<int> Processes() const;
  // Sends `sig` to every process in the group; SIGKILL uses cgroup.kill where available.
  void Signal(int sig) const;
  // Removes the (empty) groups; a group with members is left and reported.
  Status Remove() const;

 private:
  std::string memory_dir_;
  bool memory_is_v2_ = false;
  std::string unified_dir_;
  std::string pids_dir_;  // Attach only: removed with the others
};

}  // namespace berth
