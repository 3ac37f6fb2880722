// LinuxLauncher starts each instance's shim (berth-shim, the small program built beside the
// berth binary) detached, in its own session, so that it survives the daemon: forked by its
// long-lived `berth-shim spawner`, or where that cannot be used spawned as `berth-shim shim
// DIR` (which forks once more). It hears of each shim's end through a pidfd.
#pragma once

#include <memory>
#include <string>

#include "runtime/launcher.h"

namespace berth {

// `berth_binary`: path of the berth executable; berth-shim is looked for beside it.
// `address_claims_dir`: where instances claim their addresses across daemons
// (address_claim.h); empty: no claims, an address is free when nothing listens there.
std::unique_ptr<Launcher> MakeLinuxLauncher(std::string berth_binary,
                                            std::string address_claims_dir = "");

// The running berth executable (/proc/self/exe resolved).
std::string SelfExecutable();

}  // namespace berth
