// LinuxLauncher starts each instance's shim as `<berth binary> shim DIR`, detached (double
// fork, own session) so that it survives the daemon.
#pragma once

#include <memory>
#include <string>

#include "runtime/launcher.h"

namespace berth {

// `berth_binary`: path of the berth executable (for `berth shim`).
std::unique_ptr<Launcher> MakeLinuxLauncher(std::string berth_binary);

// The running berth executable (/proc/self/exe resolved).
std::string SelfExecutable();

}  // namespace berth
