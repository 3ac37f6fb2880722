#include "runtime/linux/cgroup.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <sstream>

#include "common/file_util.h"

namespace berth {
namespace {

bool IsWritableDir(const std::string& path) {
  return !path.empty() && ::access(path.c_str(), W_OK) == 0;
}

Status MakeDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoStatus("creating cgroup " + path, errno);
  }
  return Status::Ok();
}

std::vector<int> ReadPids(const std::string& file) {
  std::vector<int> pids;
  auto text = ReadFile(file);
  if (!text.ok()) {
    return pids;
  }
  std::istringstream in(*text);
  int pid = 0;
  while (in >> pid) {
    pids.push_back(pid);
  }
  return pids;
}

}  // namespace

std::map<std::string, std::string> ParseProcCgroup(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    size_t a = line.find(':');
    size_t b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) {
      continue;
    }
    std::string controllers = line.substr(a + 1, b - a - 1);
    std::string path = line.substr(b + 1);
    if (controllers.empty()) {
      out[""] = path;
      continue;
    }
    std::istringstream cs(controllers);
    std::string c;
    while (std::getline(cs, c, ',')) {
      out[c] = path;
    }
  }
  return out;
}

std::map<std::string, std::string> ParseCgroupMounts(const std::string& mountinfo) {
  std::map<std::string, std::string> out;
  std::istringstream in(mountinfo);
  std::string line;
  while (std::getline(in, line)) {
    // "<id> <parent> <maj:min> <root> <mount point> <opts> ... - <fstype> <source> <super opts>"
    size_t dash = line.find(" - ");
    if (dash == std::string::npos) {
      continue;
    }
    std::istringstream head(line.substr(0, dash));
    std::string id, parent, dev, root, mount_point;
    head >> id >> parent >> dev >> root >> mount_point;
    std::istringstream tail(line.substr(dash + 3));
    std::string fstype, source, super_opts;
    tail >> fstype >> source >> super_opts;
    if (fstype == "cgroup2") {
      out.emplace("cgroup2", mount_point);
    } else if (fstype == "cgroup") {
      std::istringstream opts(super_opts);
      std::string opt;
      while (std::getline(opts, opt, ',')) {
        if (opt == "memory" || opt == "pids") {
          out.emplace(opt, mount_point);
        }
      }
    }
  }
  return out;
}

int64_t ParseOomKillCount(const std::string& text) {
  std::istringstream in(text);
  std::string key;
  int64_t value = 0;
  while (in >> key >> value) {
    if (key == "oom_kill") {
      return value;
    }
  }
  return 0;
}

CgroupLayout DetectCgroupLayout() {
  CgroupLayout layout;
  auto self = ReadFile("/proc/self/cgroup");
  auto mounts = ReadFile("/proc/self/mountinfo");
  if (!self.ok() || !mounts.ok()) {
    return layout;
  }
  auto own = ParseProcCgroup(*self);
  auto where = ParseCgroupMounts(*mounts);
  if (auto v2 = where.find("cgroup2"); v2 != where.end()) {
    std::string own_path = own.count("") ? own[""] : "/";
    std::string base = v2->second + (own_path == "/" ? "" : own_path);
    if (IsWritableDir(base)) {
      layout.unified_parent = base + "/berth";
      auto controllers = ReadFile(base + "/cgroup.controllers");
      if (controllers.ok() && controllers->find("memory") != std::string::npos) {
        // The memory controller must be enabled for our subtree; this fails when the daemon's
        // own group holds processes (v2's no-internal-process rule), and then v2 memory is off.
        if (MakeDir(layout.unified_parent).ok() &&
            WriteFile(layout.unified_parent + "/cgroup.subtree_control", "+memory").ok()) {
          layout.memory_parent = layout.unified_parent;
          layout.memory_is_v2 = true;
        }
      }
    }
  }
  // The shim puts an instance with a pids-limit into a v1 pids group when the unified tree has
  // no pids controller; known here so that what a lost shim left is removed.
  if (auto v1 = where.find("pids"); v1 != where.end()) {
    std::string own_path = own.count("pids") ? own["pids"] : "/";
    std::string base = v1->second + (own_path == "/" ? "" : own_path);
    if (IsWritableDir(base)) {
      layout.pids_parent = base + "/berth";
    }
  }
  if (layout.memory_parent.empty()) {
    if (auto v1 = where.find("memory"); v1 != where.end()) {
      std::string own_path = own.count("memory") ? own["memory"] : "/";
      std::string base = v1->second + (own_path == "/" ? "" : own_path);
      if (IsWritableDir(base)) {
        layout.memory_parent = base + "/berth";
      }
    }
  }
  return layout;
}

Result<InstanceCgroup> InstanceCgroup::Create(const CgroupLayout& layout,
                                              const std::string& name) {
  InstanceCgroup cg;
  if (!layout.memory_parent.empty()) {
    if (auto s = MakeDir(layout.memory_parent); !s.ok()) {
      return s;
    }
    if (auto s = MakeDir(layout.memory_parent + "/" + name); !s.ok()) {
      return s;
    }
    cg.memory_dir_ = layout.memory_parent + "/" + name;
    cg.memory_is_v2_ = layout.memory_is_v2;
  }
  if (!layout.unified_parent.empty()) {
    if (layout.unified_parent == layout.memory_parent) {
      cg.unified_dir_ = cg.memory_dir_;
    } else if (MakeDir(layout.unified_parent).ok() &&
               MakeDir(layout.unified_parent + "/" + name).ok()) {
      cg.unified_dir_ = layout.unified_parent + "/" + name;
    }
  }
  return cg;
}

InstanceCgroup InstanceCgroup::Attach(const CgroupLayout& layout, const std::string& name) {
  InstanceCgroup cg;
  if (!layout.memory_parent.empty()) {
    cg.memory_dir_ = layout.memory_parent + "/" + name;
    cg.memory_is_v2_ = layout.memory_is_v2;
  }
  if (!layout.unified_parent.empty()) {
    cg.unified_dir_ = layout.unified_parent + "/" + name;
  }
  if (!layout.pids_parent.empty()) {
    cg.pids_dir_ = layout.pids_parent + "/" + name;
  }
  return cg;
}

Status InstanceCgroup::AddProcess(int pid) {
  std::string p = std::to_string(pid);
  if (!memory_dir_.empty()) {
    if (auto s = WriteFile(memory_dir_ + "/cgroup.procs", p); !s.ok()) {
      return s;
    }
  }
  if (!unified_dir_.empty() && unified_dir_ != memory_dir_) {
    if (auto s = WriteFile(unified_dir_ + "/cgroup.procs", p); !s.ok()) {
      return s;
    }
  }
  return Status::Ok();
}

Status InstanceCgroup::SetMemoryLimit(uint64_t bytes) {
  if (memory_dir_.empty()) {
    return Status::FailedPrecondition("no memory cgroup is available on this machine");
  }
  if (memory_is_v2_) {
    if (auto s = WriteFile(memory_dir_ + "/memory.max", bytes ? std::to_string(bytes) : "max");
        !s.ok()) {
      return s;
    }
    // Kill the whole instance on OOM rather than one random process of it.
    (void)WriteFile(memory_dir_ + "/memory.oom.group", "1");
    (void)WriteFile(memory_dir_ + "/memory.swap.max", "0");
    return Status::Ok();
  }
  std::string v = bytes ? std::to_string(bytes) : "-1";
  if (auto s = WriteFile(memory_dir_ + "/memory.limit_in_bytes", v); !s.ok()) {
    return s;
  }
  // Without this, swap would let the instance exceed its limit instead of being killed.
  (void)WriteFile(memory_dir_ + "/memory.memsw.limit_in_bytes", v);
  (void)WriteFile(memory_dir_ + "/memory.swappiness", "0");
  return Status::Ok();
}

int64_t InstanceCgroup::OomKillCount() const {
  if (memory_dir_.empty()) {
    return 0;
  }
  auto text = ReadFile(memory_dir_ + (memory_is_v2_ ? "/memory.events" : "/memory.oom_control"));
  return text.ok() ? ParseOomKillCount(*text) : 0;
}

std::optional<uint64_t> InstanceCgroup::MemoryUsage() const {
  if (memory_dir_.empty()) {
    return std::nullopt;
  }
  auto text =
      ReadFile(memory_dir_ + (memory_is_v2_ ? "/memory.current" : "/memory.usage_in_bytes"));
  if (!text.ok()) {
    return std::nullopt;
  }
  uint64_t v = 0;
  std::from_chars(text->data(), text->data() + text->size(), v);
  return v;
}

std::vector<int> InstanceCgroup::Processes() const {
  if (!unified_dir_.empty()) {
    return ReadPids(unified_dir_ + "/cgroup.procs");
  }
  if (!memory_dir_.empty()) {
    return ReadPids(memory_dir_ + "/cgroup.procs");
  }
  return {};
}

void InstanceCgroup::Signal(int sig) const {
  if (sig == SIGKILL && !unified_dir_.empty() &&
      WriteFile(unified_dir_ + "/cgroup.kill", "1").ok()) {
    return;
  }
  // Without cgroup.kill a fork between reading and signalling could escape; repeat until the
  // list is stable (the caller repeats SIGKILL until the group is empty).
  for (int pid : Processes()) {
    ::kill(pid, sig);
  }
}

Status InstanceCgroup::Remove() const {
  Status result;
  for (const std::string& dir : {unified_dir_, memory_dir_, pids_dir_}) {
    if (dir.empty()) {
      continue;
    }
    if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) {
      result = ErrnoStatus("removing cgroup " + dir, errno);
    }
  }
  return result;
}

}  // namespace berth
