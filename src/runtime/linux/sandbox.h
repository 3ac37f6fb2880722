// The mechanism behind a Sandbox (instance_spec.h): the argv that runs a program confined,
// with Debian's bubblewrap for the mount namespace and util-linux's setpriv for the user.
// bwrap runs as the daemon's user (root) so that it may mount; setpriv, already inside the
// namespace, drops to the sandbox's uid:gid with no groups, no capabilities (bounding set
// cleared) and no_new_privs, then execs the program. Two small execs (≈ 5 ms together on
// this 2-core machine) are the price of confinement per start.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "runtime/instance_spec.h"

namespace berth {

inline constexpr const char* kBubblewrapPath = "/usr/bin/bwrap";
inline constexpr const char* kSetprivPath = "/usr/bin/setpriv";

// The command that runs `argv` in `sandbox` with `cwd` as its working directory: `argv` itself
// for an empty sandbox, else bwrap's and setpriv's arguments before it. Mounts in this order:
// the host's root, the private /tmp, the hidden directories, the binds, /etc/passwd and
// /etc/group, so that a bind under a hidden directory (or under /tmp) shows through it.
std::vector<std::string> SandboxArgv(const Sandbox& sandbox, const std::string& cwd,
                                     const std::vector<std::string>& argv);

// Ok when the tools a non-empty sandbox needs are here and the daemon may use them (root, for
// a uid); else FailedPrecondition saying what is missing.
Status CheckSandboxSupport(const Sandbox& sandbox);

}  // namespace berth
