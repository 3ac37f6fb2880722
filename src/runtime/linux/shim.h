// The per-instance shim (the pattern of conmon / containerd-shim): a small process that
// outlives the daemon. It puts the program in its cgroups, runs it, owns its stdout/stderr
// pipes and log files, forwards a stop request (SIGTERM to the shim) to the whole process tree
// with a grace period, records the exit in DIR/exit.json, makes sure no process of the tree
// survives, and exits. Single-threaded: one poll loop over the two pipes and a signalfd.
// LinuxLauncher runs it as its own small program, `berth-shim shim DIR` (shim_main.cc).
#pragma once

#include <string>

namespace berth {

// Runs the shim for the instance in `instance_dir`. `handshake_fd`, if >= 0, receives one
// line once the program runs ("ok <pid>") or could not start ("error <why>"), then is closed.
// Returns the shim's exit code.
int RunShim(const std::string& instance_dir, int handshake_fd);

}  // namespace berth
