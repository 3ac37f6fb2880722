// Launcher is the mechanism under the supervisor's policy: it starts an instance (a process
// tree in its own cgroups, owned by a shim that outlives the daemon), inspects it, probes its
// health, tells of its exit, stops it. All state lives in the instance directory, so a new
// Launcher (after a daemon restart) can inspect and stop instances an earlier one started.
// LinuxLauncher (linux/linux_launcher.h) is the real one; FakeLauncher (fake_launcher.h, in
// the runtime_testing library) records what it is asked and lets tests trigger exits, OOM
// kills and health answers.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "common/status.h"
#include "runtime/health_check.h"
#include "runtime/instance_spec.h"

namespace berth {

struct InstanceProbe {
  bool running = false;  // the program is alive (its shim is alive and has not recorded an exit)
  std::optional<ShimRecord> shim;
  std::optional<ExitRecord> exit;  // set once the program has ended
};

// What one health probe asks of a running instance.
struct HealthProbe {
  std::string host;
  int port = 0;
  HealthCheck check;
  StatusCodeSet codes;
  std::string path;  // request path, context root included when the service preserves it
  // An exec check runs as its instance does: in its sandbox, from its working directory.
  Sandbox sandbox;
  std::string cwd;
  // Until the instance first passes: an HTTP or TCP answer counts only if the listening
  // socket is a process of the instance's (another program may hold the address).
  bool check_listener = false;
};

class Launcher {
 public:
  // Called with an instance directory soon after that instance's program ended; from any
  // thread, never with a lock of the launcher's held.
  using ExitListener = std::function<void(const std::string& instance_dir)>;

  virtual ~Launcher() = default;
  // Creates `instance_dir` if needed (it must not hold an instance already), writes the spec
  // and starts the program.
  // Returns once it runs, with its pid; FailedPrecondition with the reason when it cannot
  // start (exec failure: the reason is also in the instance's log). Thread-safe: the
  // supervisor starts several instances at once.
  virtual Result<ShimRecord> Start(const std::string& instance_dir, const InstanceSpec& spec) = 0;
  // What is known of the instance now.
  virtual InstanceProbe Probe(const std::string& instance_dir) = 0;
  // The resident memory of a running program (its pid), read when a status asks for it: a
  // periodic read of every instance would cost more than the answers are worth.
  virtual std::optional<uint64_t> ResidentBytes(int pid) = 0;
  // True once the instance's exit is recorded: a cheap check, for launchers that cannot
  // tell of exits themselves.
  virtual bool ExitRecorded(const std::string& instance_dir) = 0;
  // Asks the shim to stop the tree (SIGTERM, grace, SIGKILL). Returns at once; Probe shows the
  // exit once it happened.
  virtual Status Stop(const std::string& instance_dir) = 0;
  // Whether an instance may be given host:port: nothing listens there and, where instances
  // claim their addresses across daemons, no other daemon's instance holds it. The supervisor
  // asks before it chooses an address.
  virtual bool AddressFree(const std::string& host, int port) = 0;
  // One health probe (HTTP, TCP or exec), blocking up to the check's timeout.
  virtual ProbeResult CheckHealth(const std::string& instance_dir, const HealthProbe& probe) = 0;
  // Exits as events: after this, `listener` hears of the end of every instance this launcher
  // started or was asked to Watch. Returns false if the launcher cannot (the supervisor then
  // polls ExitRecorded).
  virtual bool WatchExits(ExitListener listener) = 0;
  // Watches an instance an earlier launcher started (re-adoption). A no-op when exits are not
  // watched; the listener is called at once if the instance has already ended.
  virtual void Watch(const std::string& instance_dir, const ShimRecord& shim) = 0;
};

}  // namespace berth
