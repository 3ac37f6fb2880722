// BundleTree is the unpacker's model of the tree an archive builds. Every entry is checked
// against it before libarchive writes anything, so a hostile archive is refused by rules that do
// not depend on the state of the disk: no absolute paths, no '..', nothing written through a
// symlink, no entry replacing another, symlinks and hardlinks that stay inside the bundle.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"

namespace berth {

enum class EntryType { kFile, kDirectory, kSymlink, kHardlink };

// One archive entry, with names exactly as the archive spells them.
struct BundleEntry {
  std::string path;
  EntryType type = EntryType::kFile;
  std::string link_target;  // the symlink's target, or the hardlink's target path
};

// Where an admitted entry goes, relative to the bundle root, '/'-separated and without '.'
// components. An empty `path` is the bundle root itself ("./"), which callers skip.
struct AdmittedEntry {
  std::string path;
  std::string hardlink_target;  // only for kHardlink
};

// Not thread-safe; one instance per archive.
class BundleTree {
 public:
  // Checks `entry` against the entries added so far and records it. Returns InvalidArgument
  // "bundle entry '<path>': <rule>" when the entry breaks a rule; the tree is then unchanged.
  Result<AdmittedEntry> Add(const BundleEntry& entry);

  // Re-resolves every symlink against the complete tree. A target that was harmless when its
  // link was added can escape once a later entry turns one of its components into a symlink
  // (`c -> a/b/..`, then `a/b -> ..`). Returns InvalidArgument naming the first such link.
  Status CheckSymlinks() const;

 private:
  struct Node {
    EntryType type;
    std::string raw_path;     // for messages
    std::string link_target;  // symlinks only
  };

  // Follows `target` from directory `dir` through the symlinks recorded so far; false if it
  // leaves the bundle or needs more than 40 hops.
  bool StaysInside(std::vector<std::string> dir, std::string_view target) const;

  // Keyed by normalized path. Directories implied by deeper entries are recorded too, so that a
  // later entry cannot replace them with a symlink.
  std::unordered_map<std::string, Node> nodes_;
  std::vector<std::string> symlinks_;  // normalized paths, in archive order
};

}  // namespace berth
