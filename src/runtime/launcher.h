// Launcher is the mechanism under the supervisor's policy: it starts an instance (a process
// tree in its own cgroups, owned by a shim that outlives the daemon), inspects it, stops it.
// All state lives in the instance directory, so a new Launcher (after a daemon restart) can
// inspect and stop instances an earlier one started.
#pragma once

#include <optional>
#include <string>

#include "common/status.h"
#include "runtime/instance_spec.h"

namespace berth {

struct InstanceProbe {
  bool running = false;  // the program is alive (its shim is alive and has not recorded an exit)
  std::optional<ShimRecord> shim;
  std::optional<ExitRecord> exit;  // set once the program has ended
  std::optional<uint64_t> rss_bytes;
};

class Launcher {
 public:
  virtual ~Launcher() = default;
  // Creates `instance_dir` if needed (it must not hold an instance already), writes the spec
  // and starts the program.
  // Returns once it runs, with its pid; FailedPrecondition with the reason when it cannot
  // start (exec failure: the reason is also in the instance's log).
  virtual Result<ShimRecord> Start(const std::string& instance_dir, const InstanceSpec& spec) = 0;
  // What is known of the instance now. Cheap: called by the supervisor on every tick.
  virtual InstanceProbe Probe(const std::string& instance_dir) = 0;
  // True once the instance's exit is recorded: a cheap check the supervisor makes often,
  // leaving full Probes for when something changed.
  virtual bool ExitRecorded(const std::string& instance_dir) = 0;
  // Asks the shim to stop the tree (SIGTERM, grace, SIGKILL). Returns at once; Probe shows the
  // exit once it happened.
  virtual Status Stop(const std::string& instance_dir) = 0;
};

}  // namespace berth
