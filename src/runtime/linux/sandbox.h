// The mechanism behind a Sandbox (instance_spec.h), applied in the child between fork and
// exec, so that the process the shim forks is the program itself: its pid is the one berth
// records and signals, and no wrapper process stays beside it (what bubblewrap, which berth
// used first, costs per instance: one more process and two more execs per start).
//
// PlanSandbox, in the parent, turns a Sandbox into steps; EnterSandbox runs them in the child:
// a private mount namespace (a slave of the host's, so nothing mounted inside leaks out), the
// bind sources opened first (they may lie inside a directory about to be hidden), a private
// /tmp and an empty tmpfs over each hidden directory, the directories on the way to a bind
// inside them made 0755, the binds (read-only ones remounted so), /etc/passwd and /etc/group,
// and last the user: no capabilities left in any set, no groups, the uid:gid, no_new_privs.
// EnterSandbox makes raw system calls only: it is async-signal-safe and touches no other
// thread's state, so it may run in the child of a multi-threaded daemon too.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "runtime/instance_spec.h"

namespace berth {

struct SandboxStep {
  enum Kind { kNamespace, kOpen, kTmpfs, kDir, kBind, kOverlay, kUser };
  Kind kind;
  std::string path;  // kOpen: the source; kTmpfs, kDir, kBind, kOverlay: the target
  // kTmpfs: its mount options ("mode=1777,size=1048576"). kOverlay: room for its options,
  // written by EnterSandbox once the descriptors are known (a child may not allocate).
  std::string options;
  int source = -1;       // kOpen, kBind, kOverlay: the index of the source's descriptor in `fds`
  bool writable = true;  // kBind
  int layer = -1;        // kOverlay: the index of the layer directory's descriptor in `fds`
  bool operator==(const SandboxStep&) const = default;
};

struct SandboxPlan {
  std::vector<SandboxStep> steps;
  uint32_t uid = 0;  // kUser's
  uint32_t gid = 0;
  // Filled in by EnterSandbox, allocated here: a child of a threaded process may not allocate.
  std::vector<int> fds;                        // one per kOpen step
  std::vector<std::array<char, 32>> fd_paths;  // "/proc/self/fd/N", a bind's source
  bool empty() const { return steps.empty(); }
};

// The steps that apply `sandbox`; none for an empty one. `layer_dir`, when given, is where
// layered binds keep their writes (PrepareLayer makes it); without it they are read-only.
SandboxPlan PlanSandbox(const Sandbox& sandbox, const std::string& layer_dir = "");

// Makes `layer_dir` with the overlay's upper directory owned by `uid`:`gid` (the writes of the
// program) and its work directory (the kernel's, root's). Called by the shim, before forking.
Status PrepareLayer(const std::string& layer_dir, uint32_t uid, uint32_t gid);

// Runs the plan in a forked child before exec. Returns 0, or the errno of the step that
// failed, whose index is then in `*failed_step`.
int EnterSandbox(SandboxPlan& plan, int* failed_step);

// Why a forked child could not exec its program: the errno, and the sandbox step that
// failed (-1: none, chdir or exec did). The child writes it to a close-on-exec pipe.
struct ExecFailure {
  int error = 0;
  int sandbox_step = -1;
};

// Reads what the child wrote to the failure pipe's read end `fd`, and closes it: nullopt when
// the exec succeeded (the pipe closed with nothing written).
std::optional<ExecFailure> ReadExecFailure(int fd);

// "mounting /a at /b read-only: Permission denied", or only the error when no step failed.
std::string DescribeExecFailure(const SandboxPlan& plan, const ExecFailure& failure);

// Why a program that exists on the host may be missing in its sandbox, when `failure` is a
// "no such file" of `program` (an absolute path): the private /tmp or a hidden directory
// covers it. Empty otherwise.
std::string HiddenProgramHint(const Sandbox& sandbox, const std::string& program,
                              const ExecFailure& failure);

// Forks and runs `argv` confined by `sandbox` in `cwd`, in a process group of its own, stdin
// on /dev/null, stdout and stderr on `out_fd` (-1: /dev/null) and none of the caller's other
// descriptors: an exec health check of a confined instance, a bundle's build. Returns "" and
// the pid, or why it could not start.
std::string SpawnConfined(const Sandbox& sandbox, const std::string& cwd, char* const* argv,
                          char* const* envp, pid_t* pid, int out_fd = -1);

// Ok when this daemon may apply a non-empty sandbox (mounting and changing user need root);
// else FailedPrecondition saying so.
Status CheckSandboxSupport(const Sandbox& sandbox);

}  // namespace berth
