#include "runtime/fake_launcher.h"

#include <fmt/format.h>
#include <signal.h>

#include <algorithm>

#include "common/time.h"

namespace berth {

Result<ShimRecord> FakeLauncher::Start(const std::string& instance_dir, const InstanceSpec& spec) {
  MutexLock lock(mu_);
  if (hold_starts_) {
    ++starts_held_;
    while (hold_starts_) {
      released_.WaitFor(mu_, std::chrono::milliseconds(100),
                        [this]() REQUIRES(mu_) { return !hold_starts_; });
    }
    --starts_held_;
  }
  // A directory may be used again once its program ended (its records were removed).
  if (auto it = procs_.find(instance_dir);
      it != procs_.end() && !it->second.exit && !it->second.lost) {
    return Status::AlreadyExists(
        fmt::format("instance directory {} has been started before", instance_dir));
  }
  if (fail_starts_ > 0) {
    --fail_starts_;
    return Status::FailedPrecondition(fail_why_);
  }
  Proc p;
  p.spec = spec;
  p.shim.pid = next_pid_++;
  p.shim.shim_pid = next_pid_++;
  p.shim.started_at = NowUnixMillis();
  ShimRecord rec = p.shim;
  procs_[instance_dir] = std::move(p);
  started_.push_back(instance_dir);
  return rec;
}

InstanceProbe FakeLauncher::Probe(const std::string& instance_dir) {
  MutexLock lock(mu_);
  probes_++;
  InstanceProbe probe;
  auto it = procs_.find(instance_dir);
  if (it == procs_.end()) {
    return probe;
  }
  Proc& p = it->second;
  probe.shim = p.shim;
  if (p.lost && !p.exit) {
    ExitRecord lost;
    lost.signal = SIGKILL;
    lost.error = "the instance's shim disappeared; its processes were killed";
    p.exit = lost;
  }
  probe.exit = p.exit;
  probe.running = !p.exit;
  return probe;
}

std::optional<uint64_t> FakeLauncher::ResidentBytes(int pid) {
  MutexLock lock(mu_);
  for (const auto& [dir, p] : procs_) {
    if (p.shim.pid == pid && !p.exit && !p.lost) {
      return uint64_t{1} << 20;
    }
  }
  return std::nullopt;
}

bool FakeLauncher::ExitRecorded(const std::string& instance_dir) {
  MutexLock lock(mu_);
  auto it = procs_.find(instance_dir);
  return it != procs_.end() && (it->second.exit || it->second.lost);
}

Status FakeLauncher::Stop(const std::string& instance_dir) {
  bool exits = false;
  {
    MutexLock lock(mu_);
    auto it = procs_.find(instance_dir);
    if (it == procs_.end() || it->second.exit) {
      return Status::Ok();
    }
    stopped_.push_back(instance_dir);
    exits = stop_exits_;
  }
  if (exits) {
    ExitRecord e;
    e.signal = SIGTERM;
    Ended(instance_dir, e);
  }
  return Status::Ok();
}

bool FakeLauncher::AddressFree(const std::string& host, int port) {
  MutexLock lock(mu_);
  return taken_.count(host + ":" + std::to_string(port)) == 0;
}

void FakeLauncher::TakeAddress(const std::string& host, int port) {
  MutexLock lock(mu_);
  taken_.insert(host + ":" + std::to_string(port));
}

ProbeResult FakeLauncher::CheckHealth(const std::string& instance_dir, const HealthProbe&) {
  MutexLock lock(mu_);
  ++health_checks_;
  auto it = health_.find(instance_dir);
  return it != health_.end() ? it->second : default_health_;
}

bool FakeLauncher::WatchExits(ExitListener listener) {
  MutexLock lock(call_mu_);  // once this returns, no call to the old listener is under way
  listener_ = std::move(listener);
  return tells_exits_;
}

void FakeLauncher::set_tells_exits(bool v) {
  MutexLock lock(call_mu_);
  tells_exits_ = v;
}

void FakeLauncher::Tell(const std::string& instance_dir) {
  MutexLock lock(call_mu_);
  if (listener_ && tells_exits_) {
    listener_(instance_dir);
  }
}

void FakeLauncher::Watch(const std::string& instance_dir, const ShimRecord&) {
  bool ended = false;
  {
    MutexLock lock(mu_);
    auto it = procs_.find(instance_dir);
    ended = it == procs_.end() || it->second.exit || it->second.lost;
  }
  if (ended) {
    Tell(instance_dir);
  }
}

void FakeLauncher::Ended(const std::string& instance_dir, ExitRecord e) {
  {
    MutexLock lock(mu_);
    auto it = procs_.find(instance_dir);
    if (it == procs_.end() || it->second.exit) {
      return;
    }
    e.ended_at = NowUnixMillis();
    it->second.exit = e;
  }
  Tell(instance_dir);
}

void FakeLauncher::Exit(const std::string& instance_dir, int code, int signal) {
  ExitRecord e;
  e.exit_code = signal != 0 ? -1 : code;
  e.signal = signal;
  Ended(instance_dir, e);
}

void FakeLauncher::OomKill(const std::string& instance_dir) {
  ExitRecord e;
  e.signal = SIGKILL;
  e.oom_killed = true;
  Ended(instance_dir, e);
}

void FakeLauncher::LoseShim(const std::string& instance_dir) {
  {
    MutexLock lock(mu_);
    auto it = procs_.find(instance_dir);
    if (it == procs_.end()) {
      return;
    }
    it->second.lost = true;
  }
  Tell(instance_dir);
}

void FakeLauncher::SetHealth(const std::string& instance_dir, bool healthy, std::string detail) {
  MutexLock lock(mu_);
  health_[instance_dir] = {healthy, detail.empty() ? (healthy ? "HTTP 200" : "HTTP 503") : detail};
}

void FakeLauncher::SetDefaultHealth(bool healthy, std::string detail) {
  MutexLock lock(mu_);
  default_health_ = {healthy, detail.empty() ? (healthy ? "HTTP 200" : "HTTP 503") : detail};
}

void FakeLauncher::FailStarts(int n, std::string why) {
  MutexLock lock(mu_);
  fail_starts_ = n;
  fail_why_ = std::move(why);
}

void FakeLauncher::HoldStarts(bool hold) {
  {
    MutexLock lock(mu_);
    hold_starts_ = hold;
  }
  released_.NotifyAll();
}

int FakeLauncher::starts_held() const {
  MutexLock lock(mu_);
  return starts_held_;
}

void FakeLauncher::set_stop_exits(bool v) {
  MutexLock lock(mu_);
  stop_exits_ = v;
}

std::vector<std::string> FakeLauncher::started() const {
  MutexLock lock(mu_);
  return started_;
}

std::vector<std::string> FakeLauncher::stopped() const {
  MutexLock lock(mu_);
  return stopped_;
}

std::vector<std::string> FakeLauncher::running() const {
  MutexLock lock(mu_);
  std::vector<std::string> out;
  for (const auto& [dir, p] : procs_) {
    if (!p.exit && !p.lost) {
      out.push_back(dir);
    }
  }
  return out;
}

std::optional<InstanceSpec> FakeLauncher::SpecOf(const std::string& instance_dir) const {
  MutexLock lock(mu_);
  auto it = procs_.find(instance_dir);
  if (it == procs_.end()) {
    return std::nullopt;
  }
  return it->second.spec;
}

int FakeLauncher::health_checks() const {
  MutexLock lock(mu_);
  return health_checks_;
}

int FakeLauncher::probes() const {
  MutexLock lock(mu_);
  return probes_;
}

}  // namespace berth
