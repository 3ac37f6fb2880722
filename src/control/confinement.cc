#include "control/confinement.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <system_error>

#include "common/file_util.h"
#include "runtime/linux/sandbox.h"

namespace berth {

namespace fs = std::filesystem;

bool ConfinementAvailable(std::string* why) {
  Sandbox probe;
  probe.uid = 1;
  Status s = CheckSandboxSupport(probe);
  if (!s.ok() && why) {
    *why = s.message();
  }
  return s.ok();
}

uint32_t ProjectUid(const ConfinementOptions& o, int64_t project_id) {
  return o.uid_base + static_cast<uint32_t>(project_id);
}

std::string ProjectUserName(const std::string& project) { return "berth-" + project; }

ProjectDirs ProjectDirsOf(const std::string& data_dir, const std::string& project) {
  ProjectDirs d;
  d.root = fmt::format("{}/projects/{}", data_dir, project);
  d.data = d.root + "/data";
  d.project = d.root + "/project";
  d.home = d.root + "/home";
  return d;
}

Status GiveToUser(const std::string& dir, uint32_t uid, uint32_t gid) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    return Status::Internal(fmt::format("{}: {}", dir, std::strerror(errno)));
  }
  if (st.st_uid == uid && st.st_gid == gid) {
    return Status::Ok();
  }
  // Contents first, the directory last: an interrupted pass is done again next time.
  for (auto it =
           fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    (void)::lchown(it->path().c_str(), uid, gid);
  }
  if (::lchown(dir.c_str(), uid, gid) != 0) {
    return Status::Internal(fmt::format("giving {} to uid {}: {}", dir, uid, std::strerror(errno)));
  }
  return Status::Ok();
}

namespace {

// The host's file with the project's entry added, rewritten only when it changed.
Status WriteAccountFile(const std::string& host, const std::string& path,
                        const std::string& entry) {
  auto base = ReadFile(host);
  std::string text = base.ok() ? *base : std::string();
  if (!text.empty() && text.back() != '\n') {
    text += '\n';
  }
  text += entry + "\n";
  if (auto now = ReadFile(path); now.ok() && *now == text) {
    return Status::Ok();
  }
  return WriteFileAtomic(path, text, 0644, Durability::kProcessCrash);
}

}  // namespace

Result<Sandbox> ProjectSandbox(const ConfinementOptions& o, const std::string& project,
                               int64_t project_id) {
  if (!o.enabled) {
    return Sandbox{};
  }
  ProjectDirs d = ProjectDirsOf(o.data_dir, project);
  Sandbox sb;
  sb.uid = ProjectUid(o, project_id);
  sb.gid = sb.uid;
  for (const auto& dir : {d.data, d.project, d.home}) {
    if (auto s = GiveToUser(dir, sb.uid, sb.gid); !s.ok()) {
      return s;
    }
    sb.binds.push_back({dir, dir, true});
  }
  std::string etc = d.root + "/etc";
  std::error_code ec;
  fs::create_directories(etc, ec);
  std::string user = ProjectUserName(project);
  if (auto s = WriteAccountFile("/etc/passwd", etc + "/passwd",
                                fmt::format("{}:x:{}:{}:berth project {}:{}:/bin/sh", user, sb.uid,
                                            sb.gid, project, d.home));
      !s.ok()) {
    return s;
  }
  if (auto s =
          WriteAccountFile("/etc/group", etc + "/group", fmt::format("{}:x:{}:", user, sb.gid));
      !s.ok()) {
    return s;
  }
  sb.passwd = etc + "/passwd";
  sb.group = etc + "/group";
  sb.hide = {o.data_dir};
  sb.tmp_bytes = o.tmp_bytes;
  for (const auto& path : o.shared) {
    bool hidden = (o.tmp_bytes > 0 && path.starts_with("/tmp/")) ||
                  path.starts_with(o.data_dir + "/");
    if (hidden && fs::exists(path, ec)) {
      sb.binds.push_back({path, path, false});
    }
  }
  return sb;
}

}  // namespace berth
