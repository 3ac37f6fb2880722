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

// Writes `content` to `path` with `mode` atomically (temp file, fsync, rename): after a crash
// the file holds the old content or the new, never a part.
Status WriteFileAtomic(const std::string& path, std::string_view content, mode_t mode);

}  // namespace berth
