#include "artifacts/bundle_tree.h"

#include <deque>

namespace berth {
namespace {

constexpr int kMaxSymlinkHops = 40;  // the kernel's own limit (MAXSYMLINKS)

Status Refuse(std::string_view raw_path, std::string_view rule) {
  std::string m = "bundle entry '";
  m += raw_path;
  m += "': ";
  m += rule;
  return Status::InvalidArgument(std::move(m));
}

// Components of `path`, without empty and "." ones. Keeps "..", for the caller to judge.
std::vector<std::string> Components(std::string_view path) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) {
      end = path.size();
    }
    std::string_view part = path.substr(start, end - start);
    if (!part.empty() && part != ".") {
      out.emplace_back(part);
    }
    start = end + 1;
  }
  return out;
}

std::string Join(const std::vector<std::string>& parts, size_t count) {
  std::string out;
  for (size_t i = 0; i < count; ++i) {
    if (i > 0) {
      out += '/';
    }
    out += parts[i];
  }
  return out;
}

// The rule a bundle-relative path breaks, or empty if it is acceptable.
std::string_view PathRule(std::string_view path, const std::vector<std::string>& parts) {
  if (!path.empty() && path.front() == '/') {
    return "absolute paths are not allowed";
  }
  for (const std::string& p : parts) {
    if (p == "..") {
      return "paths with '..' are not allowed";
    }
  }
  return {};
}

}  // namespace

Result<AdmittedEntry> BundleTree::Add(const BundleEntry& entry) {
  const std::string& raw = entry.path;
  if (raw.empty()) {
    return Refuse(raw, "empty paths are not allowed");
  }
  std::vector<std::string> parts = Components(raw);
  if (std::string_view rule = PathRule(raw, parts); !rule.empty()) {
    return Refuse(raw, rule);
  }
  if (parts.empty()) {
    if (entry.type != EntryType::kDirectory) {
      return Refuse(raw, "the bundle root must be a directory");
    }
    return AdmittedEntry{};
  }

  // Every parent must be a directory that no entry replaced, so nothing is written through a
  // symlink and libarchive never has to unlink anything.
  for (size_t i = 1; i < parts.size(); ++i) {
    auto it = nodes_.find(Join(parts, i));
    if (it == nodes_.end()) {
      continue;
    }
    if (it->second.type == EntryType::kSymlink) {
      return Refuse(raw, "path goes through symlink '" + it->second.raw_path + "'");
    }
    if (it->second.type != EntryType::kDirectory) {
      return Refuse(raw, "parent '" + it->second.raw_path + "' is not a directory");
    }
  }
  AdmittedEntry admitted{Join(parts, parts.size()), ""};
  if (auto it = nodes_.find(admitted.path); it != nodes_.end()) {
    // Repeating a directory is harmless (tar often lists "dir/" after "dir/file").
    if (!(it->second.type == EntryType::kDirectory && entry.type == EntryType::kDirectory)) {
      return Refuse(raw, "the path appears twice in the bundle");
    }
  }

  if (entry.type == EntryType::kSymlink) {
    const std::string& target = entry.link_target;
    if (target.empty()) {
      return Refuse(raw, "symlink has an empty target");
    }
    if (target.front() == '/') {
      return Refuse(raw, "symlink target '" + target + "' is absolute");
    }
    if (!StaysInside({parts.begin(), parts.end() - 1}, target)) {
      return Refuse(raw, "symlink target '" + target + "' points outside the bundle");
    }
  }
  if (entry.type == EntryType::kHardlink) {
    const std::string& target = entry.link_target;
    std::vector<std::string> target_parts = Components(target);
    if (!PathRule(target, target_parts).empty() || target_parts.empty()) {
      return Refuse(raw, "hardlink target '" + target + "' is outside the bundle");
    }
    admitted.hardlink_target = Join(target_parts, target_parts.size());
    auto it = nodes_.find(admitted.hardlink_target);
    if (it == nodes_.end() ||
        (it->second.type != EntryType::kFile && it->second.type != EntryType::kHardlink)) {
      return Refuse(raw, "hardlink target '" + target + "' is not an earlier file in the bundle");
    }
  }

  for (size_t i = 1; i < parts.size(); ++i) {
    nodes_.try_emplace(Join(parts, i), Node{EntryType::kDirectory, Join(parts, i), ""});
  }
  nodes_.insert_or_assign(admitted.path, Node{entry.type, raw, entry.link_target});
  if (entry.type == EntryType::kSymlink) {
    symlinks_.push_back(admitted.path);
  }
  return admitted;
}

Status BundleTree::CheckSymlinks() const {
  for (const std::string& path : symlinks_) {
    const Node& node = nodes_.at(path);
    std::vector<std::string> dir = Components(path);
    dir.pop_back();
    if (!StaysInside(std::move(dir), node.link_target)) {
      return Refuse(node.raw_path,
                    "symlink target '" + node.link_target + "' points outside the bundle");
    }
  }
  return Status::Ok();
}

bool BundleTree::StaysInside(std::vector<std::string> dir, std::string_view target) const {
  // `at` is where resolution stands; `pending` holds the components still to walk. Reaching a
  // recorded symlink splices its target into `pending`, as the kernel would.
  std::vector<std::string>& at = dir;
  std::vector<std::string> first = Components(target);
  std::deque<std::string> pending(first.begin(), first.end());
  int hops = 0;
  while (!pending.empty()) {
    std::string part = std::move(pending.front());
    pending.pop_front();
    if (part == "..") {
      if (at.empty()) {
        return false;
      }
      at.pop_back();
      continue;
    }
    at.push_back(std::move(part));
    auto it = nodes_.find(Join(at, at.size()));
    if (it == nodes_.end() || it->second.type != EntryType::kSymlink) {
      continue;
    }
    const std::string& link = it->second.link_target;
    if (++hops > kMaxSymlinkHops || link.empty() || link.front() == '/') {
      return false;
    }
    at.pop_back();
    std::vector<std::string> spliced = Components(link);
    pending.insert(pending.begin(), spliced.begin(), spliced.end());
  }
  return true;
}

}  // namespace berth
