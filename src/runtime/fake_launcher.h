// FakeLauncher: a Launcher without processes, for testing the supervisor's policy (and what is
// built on it) in milliseconds. It records every start and stop; a test decides what happens
// next: an exit, an OOM kill, a health answer, a start that fails. Exits are told to the exit
// listener at once, as LinuxLauncher's pidfds do. Thread-safe.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/mutex.h"
#include "runtime/launcher.h"

namespace berth {

class FakeLauncher final : public Launcher {
 public:
  // Launcher.
  Result<ShimRecord> Start(const std::string& instance_dir, const InstanceSpec& spec) override;
  InstanceProbe Probe(const std::string& instance_dir) override;
  std::optional<uint64_t> ResidentBytes(int pid) override;  // 1 MiB for a running program
  bool ExitRecorded(const std::string& instance_dir) override;
  // Records the stop; with stop_exits (the default) the program ends at once, killed by
  // SIGTERM (exit code -1, signal 15).
  Status Stop(const std::string& instance_dir) override;
  // Free unless a test took it with TakeAddress (nothing is probed).
  bool AddressFree(const std::string& host, int port) override;
  ProbeResult CheckHealth(const std::string& instance_dir, const HealthProbe& probe) override;
  bool WatchExits(ExitListener listener) override;
  void Watch(const std::string& instance_dir, const ShimRecord& shim) override;

  // What a test makes happen.
  // The program of `instance_dir` exits with `code` (or is killed by `signal`).
  void Exit(const std::string& instance_dir, int code, int signal = 0);
  void OomKill(const std::string& instance_dir);
  // The shim vanishes without a record (kill -9 of the shim): Probe reports the loss.
  void LoseShim(const std::string& instance_dir);
  // Health answers: for one instance, or for every instance without its own answer.
  void SetHealth(const std::string& instance_dir, bool healthy, std::string detail = "");
  void SetDefaultHealth(bool healthy, std::string detail = "");
  // Something else (another daemon's instance, another program) holds host:port.
  void TakeAddress(const std::string& host, int port);
  // The next `n` starts fail with `why`.
  void FailStarts(int n, std::string why);
  // False: like a kernel without pidfds, exits are not told; the supervisor must poll
  // ExitRecorded. Set before the supervisor is made.
  void set_tells_exits(bool v);
  // While held, Start blocks (as a slow fork or shim handshake would) until released.
  void HoldStarts(bool hold);
  // Starts blocked by HoldStarts now.
  int starts_held() const;
  // False: Stop only records; the program runs on until the test calls Exit.
  void set_stop_exits(bool v);

  // What was asked.
  std::vector<std::string> started() const;  // instance dirs, in start order
  std::vector<std::string> stopped() const;  // instance dirs, in stop order
  std::vector<std::string> running() const;  // instance dirs whose program runs, sorted
  std::optional<InstanceSpec> SpecOf(const std::string& instance_dir) const;
  int health_checks() const;
  int probes() const;  // full looks (Probe) asked for

 private:
  struct Proc {
    InstanceSpec spec;
    ShimRecord shim;
    std::optional<ExitRecord> exit;
    bool lost = false;
  };
  void Ended(const std::string& instance_dir, ExitRecord e) EXCLUDES(mu_);
  // Calls the listener, holding call_mu_ so that WatchExits can withdraw it safely.
  void Tell(const std::string& instance_dir) EXCLUDES(mu_, call_mu_);

  mutable Mutex mu_;
  std::map<std::string, Proc> procs_ GUARDED_BY(mu_);
  std::vector<std::string> started_ GUARDED_BY(mu_);
  std::vector<std::string> stopped_ GUARDED_BY(mu_);
  std::map<std::string, ProbeResult> health_ GUARDED_BY(mu_);
  ProbeResult default_health_ GUARDED_BY(mu_){true, "HTTP 200"};
  int fail_starts_ GUARDED_BY(mu_) = 0;
  std::string fail_why_ GUARDED_BY(mu_);
  bool stop_exits_ GUARDED_BY(mu_) = true;
  std::set<std::string> taken_ GUARDED_BY(mu_);  // "host:port"
  int next_pid_ GUARDED_BY(mu_) = 1000;
  int health_checks_ GUARDED_BY(mu_) = 0;
  int probes_ GUARDED_BY(mu_) = 0;
  Mutex call_mu_;
  ExitListener listener_ GUARDED_BY(call_mu_);
  bool tells_exits_ GUARDED_BY(call_mu_) = true;
  bool hold_starts_ GUARDED_BY(mu_) = false;
  int starts_held_ GUARDED_BY(mu_) = 0;
  CondVar released_;
};

}  // namespace berth
