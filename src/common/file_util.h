// Small file helpers with Status errors that name the path.
#pragma once

#include <string>
#include <string_view>
#include <sys/types.h>

#include "common/status.h"

namespace berth {

// The whole file. NotFound when it does not exist.
Result<std::string> ReadFile(const std::string& path);

// Writes (truncating) without fsync: for kernel files such as cgroup controls.
Status WriteFile(const std::string& path, std::string_view content);

// How far a write must survive: a crash of berth's own processes (the page cache keeps the
// file), or of the machine (fsync before the rename, which costs milliseconds).
enum class Durability { kProcessCrash, kMachineCrash };

// Writes `content` to `path` with `mode` atomically (temp file, rename): after a crash the
// file holds the old content or the new, never a part. Instance records (whose processes do
// not outlive the machine either) need only kProcessCrash; what a user stored, kMachineCrash.
Status WriteFileAtomic(const std::string& path, std::string_view content, mode_t mode,
                       Durability durability = Durability::kMachineCrash);

}  // namespace berth
