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
// line once the program runs ("ok <pid>") or could not start ("error <why>", then it is
// closed). After "ok" it stays open until the exit is recorded in DIR/exit.json and nothing
// of the instance is left: its close tells the launcher of the end. Returns the shim's exit
// code.
int RunShim(const std::string& instance_dir, int handshake_fd);

// The shims' spawner, `berth-shim spawner` (shim_main.cc): forks one shim per request read
// from `socket_fd` (a SOCK_SEQPACKET socket to the launcher; each message is an instance
// directory with the handshake pipe's write end attached), so that a start costs a fork of
// this small process rather than an exec of berth-shim. The shims it forks are what
// `berth-shim shim DIR` runs (own session, output in DIR/shim.log) and outlive it. Returns
// when the launcher's end closes.
int RunSpawner(int socket_fd);

}  // namespace berth
