#include "runtime/supervisor.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <filesystem>
#include <system_error>

#include "common/crypto.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/thread.h"
#include "common/time.h"

namespace berth {
namespace {
namespace fs = std::filesystem;
namespace json = boost::json;
using TimePoint = Clock::TimePoint;
constexpr int kUnhealthyAfter = 3;
constexpr TimePoint kNever = TimePoint::max();

std::string DescribeExit(const ExitRecord& e) {
  if (e.oom_killed) {
    return "killed for exceeding its memory limit (OOM)";
  }
  if (!e.error.empty()) {
    return e.error;
  }
  if (e.signal != 0) {
    return fmt::format("killed by signal {}", e.signal);
  }
  return fmt::format("exited with code {}", e.exit_code);
}

StatusCodeSet CodesOf(const HealthCheck& check) {
  auto codes = StatusCodeSet::Parse(check.status_codes);
  return codes.ok() ? *codes : *StatusCodeSet::Parse("200-499");
}

std::chrono::milliseconds Backoff(const SupervisorOptions& o, int quick_crashes) {
  return std::min<std::chrono::milliseconds>(
      o.backoff_base * (1 << std::min(quick_crashes - 1, 16)), o.backoff_max);
}

}  // namespace

const char* InstanceStateName(InstanceState s) {
  switch (s) {
    case InstanceState::kStarting:
      return "starting";
    case InstanceState::kRunning:
      return "running";
    case InstanceState::kUnhealthy:
      return "unhealthy";
    case InstanceState::kStopping:
      return "stopping";
    case InstanceState::kExited:
      return "exited";
    case InstanceState::kOomKilled:
      return "oom-killed";
    case InstanceState::kCrashLooping:
      return "crash-looping";
  }
  return "unknown";
}

const char* TaskStateName(TaskState s) {
  switch (s) {
    case TaskState::kPending:
      return "pending";
    case TaskState::kRunning:
      return "running";
    case TaskState::kSucceeded:
      return "succeeded";
    case TaskState::kFailed:
      return "failed";
    case TaskState::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

std::string ExpandVariables(std::string_view text, const std::map<std::string, std::string>& env) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '$' && i + 1 < text.size() && text[i + 1] == '$') {
      out += '$';  // "$$" escapes a literal "$"
      ++i;
      continue;
    }
    if (text[i] == '$' && i + 1 < text.size() && text[i + 1] == '(') {
      size_t close = text.find(')', i + 2);
      if (close != std::string_view::npos) {
        auto it = env.find(std::string(text.substr(i + 2, close - i - 2)));
        if (it != env.end()) {
          out += it->second;
          i = close;
          continue;
        }
      }
    }
    out += text[i];
  }
  return out;
}

// Instances are shared with the health thread's probes in flight; they are erased from their
// service only by the loop (PruneDirs, removal), never while the loop is observing them.
struct Supervisor::Instance {
  // Ready, not leaving, and of the revision that takes the traffic.
  bool Serving(int active_revision) const {
    return live && ready && !stopping && revision == active_revision;
  }
  std::string id;
  std::string dir;
  int revision = 0;
  int slot = 0;
  std::string host;
  int port = 0;
  InstanceState state = InstanceState::kStarting;
  ShimRecord shim;
  bool live = true;
  bool launching = false;  // its start is queued or under way
  bool stopping = false;
  bool stop_sent = false;  // the shim was told to stop (after draining)
  int in_flight = 0;       // requests in flight while draining, as the gateway last said
  TimePoint drain_deadline;
  bool ready = false;
  bool probing = false;
  int probe_failures = 0;
  int probes = 0;  // health checks answered so far
  int restarts = 0;
  TimePoint launched;
  TimePoint next_probe;
  TimePoint next_full_probe;
  std::optional<ExitRecord> exit;
  std::string health;
  std::shared_ptr<const HealthProbe> probe;
};

struct Supervisor::Slot {
  int restarts = 0;
  int quick_crashes = 0;
  TimePoint next_start{};
  bool crash_looping = false;
};

struct Supervisor::Service {
  DesiredService desired;
  std::vector<std::shared_ptr<Instance>> instances;
  std::map<std::pair<int, int>, Slot> slots;  // (revision, slot)
  std::optional<TimePoint> rollout_started;
  int rollout_revision = 0;
  // After a rollout: the revision it replaced, kept running out of the route until the new
  // one has stayed healthy for its min-healthy-time (`settle_until`), so that a revision that
  // fails right after going live is rolled back to instances that still run. The supervisor's
  // own copy: the desired state stops carrying the old revision once the switch is stored.
  std::optional<RevisionSpec> settling_from;
  TimePoint settle_until{};
  // The address each slot last had, by version label ("" for a plain service) and slot: a
  // slot started again (stop / start, health replacement, a new revision once the old one is
  // gone) takes it back when it is free, so that a pasted internal address keeps working.
  std::map<std::pair<std::string, int>, std::string> slot_hosts;
  std::set<std::string> noted;   // one-time events already sent
  std::string published_routes;  // what PublishRoutes last sent, to send only changes
  TimePoint next_due = kNever;   // a timer of its (backoff, drain, deadline) runs out
};

struct Supervisor::TaskEntry {
  TaskSpec spec;
  TaskStatus status;
  uint64_t seq = 0;
  bool cancel_requested = false;
  bool launching = false;
  bool stop_sent = false;
  TimePoint next_full_probe{};
};

// What a pass decided to do once the lock is released, in order.
struct Supervisor::Effects {
  // One list keeps the hooks in the order they were decided.
  std::vector<std::function<void(const SupervisorHooks&)>> hooks;
  std::vector<std::string> stops;     // instance directories to signal
  std::vector<std::string> removals;  // directories to delete
};

struct Supervisor::StartJob {
  std::shared_ptr<Instance> inst;  // null for a task
  std::shared_ptr<TaskEntry> task;
  InstanceSpec spec;
  Result<ShimRecord> result = berth::Status::Internal("not started");
};

Supervisor::Supervisor(Launcher& launcher, Clock& clock, SupervisorOptions options,
                       SupervisorHooks hooks)
    : launcher_(launcher),
      clock_(clock),
      options_(std::move(options)),
      hooks_(std::move(hooks)),
      effects_(std::make_unique<Effects>()) {
  std::error_code ec;
  fs::create_directories(options_.instances_dir, ec);
  exits_watched_ = launcher_.WatchExits([this](const std::string& dir) { OnExit(dir); });
}

Supervisor::~Supervisor() {
  Shutdown();
  // Withdraws the listener; once this returns, no exit event calls into this object.
  launcher_.WatchExits({});
}

void Supervisor::Start() {
  std::vector<std::pair<std::string, ShimRecord>> watch;
  {
    MutexLock lock(mu_);
    Adopt(watch);
  }
  // Outside the lock: a launcher tells at once of an instance that ended meanwhile, and the
  // listener takes the lock.
  for (const auto& [dir, shim] : watch) {
    launcher_.Watch(dir, shim);
  }
  Flush();
  if (options_.threads) {
    loop_ = std::thread([this] {
      NameThisThread("berth-supervise");
      Loop();
    });
    health_ = std::thread([this] {
      NameThisThread("berth-health");
      HealthLoop();
    });
  }
}

void Supervisor::Shutdown() {
  {
    MutexLock lock(mu_);
    if (stop_) {
      return;
    }
    stop_ = true;
  }
  wake_.NotifyAll();
  if (loop_.joinable()) {
    loop_.join();
  }
  if (health_.joinable()) {
    health_.join();
  }
  Flush();  // what the last passes (or a cancel) decided is carried out, not dropped
}

void Supervisor::MarkDirty(Service& svc) {
  dirty_services_.insert(&svc);
  wakeup_ = true;
}

void Supervisor::OnExit(const std::string& dir) {
  {
    MutexLock lock(mu_);
    exited_dirs_.insert(dir);
    wakeup_ = true;
  }
  wake_.NotifyAll();
}

void Supervisor::Apply(DesiredService desired) {
  {
    MutexLock lock(mu_);
    auto& svc = services_[desired.key];
    if (!svc) {
      svc = std::make_unique<Service>();
    } else if (svc->desired.active_revision != 0) {
      // The live and failed revisions are this supervisor's decisions; a desired state read
      // from the store before they were written there must not undo them (roll a failed
      // revision out again, or relaunch the one just replaced).
      desired.active_revision = svc->desired.active_revision;
      desired.failed_revision = std::max(desired.failed_revision, svc->desired.failed_revision);
      // Read before a rollback was stored, it lacks the revision rolled back to: keep ours.
      auto has = [&](const std::optional<RevisionSpec>& r) {
        return r && r->revision == desired.active_revision;
      };
      if (!has(desired.active) && !has(desired.latest) && has(svc->desired.active)) {
        desired.active = svc->desired.active;
      }
    }
    svc->desired = std::move(desired);
    MarkDirty(*svc);
  }
  wake_.NotifyAll();
}

void Supervisor::Remove(const ServiceKey& key) {
  {
    MutexLock lock(mu_);
    auto it = services_.find(key);
    if (it == services_.end()) {
      return;
    }
    effects_->hooks.push_back([key](const SupervisorHooks& h) {
      if (h.routes) {
        RouteUpdate gone;
        gone.removed = true;
        h.routes(key, gone);
      }
    });
    Service& svc = *it->second;
    svc.desired.running = false;
    for (auto& inst : svc.instances) {
      StopInstance(svc, *inst, "service deleted");
    }
    removed_.push_back(std::move(it->second));
    services_.erase(it);
    MarkDirty(*removed_.back());
  }
  Flush();
  wake_.NotifyAll();
}

void Supervisor::Loop() {
  while (true) {
    Step();
    MutexLock lock(mu_);
    if (stop_) {
      return;
    }
    wake_.WaitFor(mu_, options_.tick, [this]() REQUIRES(mu_) { return stop_ || wakeup_; });
    if (stop_) {
      return;
    }
  }
}

void Supervisor::Step() {
  ObservePass();
  std::vector<StartJob> starts;
  {
    MutexLock lock(mu_);
    wakeup_ = false;
    ReconcileAll();
    starts.swap(starts_);
  }
  Flush();
  if (!starts.empty()) {
    CarryOutStarts(std::move(starts));
    Flush();
  }
  if (!options_.threads) {
    HealthRound();
  }
}

// Exit events and periodic full probes, with the launcher called outside the lock.
void Supervisor::ObservePass() {
  struct Look {
    std::shared_ptr<Instance> inst;
    std::shared_ptr<TaskEntry> task;
    std::string dir;
    bool probe_due = false;    // ask the launcher what became of it
    bool poll_exit = false;    // exits are not watched: ask whether it ended, probe if so
    bool drain_check = false;  // ask the gateway how many requests are still on it
    std::string host;
    int port = 0;
    InstanceProbe probe;
    int in_flight = 0;
  };
  std::vector<Look> looks;
  {
    MutexLock lock(mu_);
    auto now = clock_.Now();
    std::set<std::string> exited;
    exited.swap(exited_dirs_);
    // A walk over every instance happens once per batch window (a tenth of the full-probe
    // period), taking every full probe due within it; between walks, only the instances with
    // an exit event or a drain under way are looked at.
    bool walk = !exits_watched_ || now >= next_observe_walk_;
    auto window =
        walk && exits_watched_ ? options_.full_probe_every / 10 : std::chrono::milliseconds(0);
    auto consider = [&](const std::shared_ptr<Instance>& inst) REQUIRES(mu_) {
      if (inst->live && inst->launching && exited.count(inst->dir) > 0) {
        exited_dirs_.insert(inst->dir);  // ended before its start was recorded: next pass
      }
      if (!inst->live || inst->launching) {
        return;
      }
      bool due = (walk && now + window >= inst->next_full_probe) || exited.count(inst->dir) > 0;
      bool poll = !due && !exits_watched_;
      bool drain = inst->stopping && !inst->stop_sent;
      if (due || poll || drain) {
        Look l;
        l.inst = inst;
        l.dir = inst->dir;
        l.probe_due = due;
        l.poll_exit = poll;
        l.drain_check = drain;
        l.host = inst->host;
        l.port = inst->port;
        looks.push_back(std::move(l));
        if (due) {
          inst->next_full_probe = now + options_.full_probe_every;
        }
      }
    };
    if (walk) {
      next_observe_walk_ = now + window;
      for (auto& [key, svc] : services_) {
        for (auto& inst : svc->instances) {
          consider(inst);
        }
      }
      for (auto& svc : removed_) {
        for (auto& inst : svc->instances) {
          consider(inst);
        }
      }
    } else {
      std::set<std::string> dirs = exited;
      dirs.insert(draining_dirs_.begin(), draining_dirs_.end());
      for (const auto& dir : dirs) {
        auto owner = by_dir_.find(dir);
        if (owner == by_dir_.end() || owner->second == nullptr) {
          continue;  // a task's (below), or gone
        }
        for (auto& inst : owner->second->instances) {
          if (inst->dir == dir) {
            consider(inst);
          }
        }
      }
    }
    draining_dirs_.clear();  // Drain lists the ones still waiting again
    for (auto& [key, task] : live_tasks_) {
      if (task->launching && exited.count(task->status.dir) > 0) {
        exited_dirs_.insert(task->status.dir);
      }
      if (task->status.state != TaskState::kRunning || task->launching) {
        continue;
      }
      // Besides exit events, a full look now and then: a task whose watch could not be set
      // up must not stay "running" forever.
      bool periodic = now >= task->next_full_probe;
      if (periodic) {
        task->next_full_probe = now + options_.full_probe_every;
      }
      bool due = periodic || exited.count(task->status.dir) > 0;
      if (due || !exits_watched_) {
        Look l;
        l.task = task;
        l.dir = task->status.dir;
        l.probe_due = due;
        l.poll_exit = !due;
        looks.push_back(std::move(l));
      }
    }
  }
  if (looks.empty()) {
    return;
  }
  // The launcher and the gateway are asked without the lock.
  for (auto& l : looks) {
    if (l.drain_check) {
      l.in_flight = hooks_.in_flight ? hooks_.in_flight(l.host, l.port) : 0;
    }
    if (l.poll_exit && launcher_.ExitRecorded(l.dir)) {
      l.probe_due = true;
    }
    if (l.probe_due) {
      l.probe = launcher_.Probe(l.dir);
    }
  }
  MutexLock lock(mu_);
  for (auto& l : looks) {
    if (l.task) {
      if (l.probe.exit) {
        RecordTaskExit(*l.task, *l.probe.exit);
      }
      continue;
    }
    Instance& inst = *l.inst;
    auto owner = by_dir_.find(l.dir);
    if (owner == by_dir_.end() || !inst.live) {
      continue;
    }
    Service& svc = *owner->second;
    if (l.drain_check) {
      inst.in_flight = l.in_flight;
      MarkDirty(svc);
    }
    if (!l.probe_due) {
      continue;
    }
    if (!l.probe.running && l.probe.exit) {
      RecordExit(svc, inst, *l.probe.exit);
      MarkDirty(svc);
    }
  }
}

void Supervisor::RecordExit(Service& svc, Instance& inst, const ExitRecord& exit) {
  auto now = clock_.Now();
  inst.live = false;
  inst.ready = false;
  inst.exit = exit;
  hosts_in_use_.erase(inst.host);
  // Remember that this exit was handled, so that a restarted daemon does not count it again.
  effects_->hooks.push_back([dir = inst.dir](const SupervisorHooks&) {
    (void)WriteFileAtomic(dir + "/exit.seen", "", 0644, Durability::kProcessCrash);
  });
  if (inst.stopping) {
    inst.state = InstanceState::kExited;
    return;
  }
  inst.state = exit.oom_killed ? InstanceState::kOomKilled : InstanceState::kExited;
  Slot& s = svc.slots[{inst.revision, inst.slot}];
  if (now - inst.launched >= options_.healthy_reset) {
    s.quick_crashes = 0;
    s.crash_looping = false;
  }
  s.quick_crashes++;
  s.restarts++;
  auto backoff = Backoff(options_, s.quick_crashes);
  s.next_start = now + backoff;
  Event(svc, exit.oom_killed ? "oom-killed" : "exited",
        fmt::format("instance {} of revision {} {}; restarting in {} ms", inst.id, inst.revision,
                    DescribeExit(exit), backoff.count()),
        inst.revision);
  if (s.quick_crashes >= options_.crash_loop_after) {
    inst.state = InstanceState::kCrashLooping;
    if (!s.crash_looping) {
      s.crash_looping = true;
      Event(svc, "crash-looping",
            fmt::format("revision {} slot {} crashed {} times in a row; backing off up to {} s",
                        inst.revision, inst.slot, s.quick_crashes, options_.backoff_max.count()),
            inst.revision);
    }
  }
}

void Supervisor::RecordTaskExit(TaskEntry& task, const ExitRecord& exit) {
  if (TaskEnded(task.status.state)) {
    return;
  }
  TaskStatus& st = task.status;
  st.ended_at = exit.ended_at;
  st.oom_killed = exit.oom_killed;
  st.signal = exit.signal;
  if (exit.exit_code >= 0) {
    st.exit_code = exit.exit_code;
  }
  if (task.cancel_requested) {
    st.state = TaskState::kCancelled;
    st.error = "cancelled";
  } else if (exit.exit_code == 0 && !exit.oom_killed && exit.error.empty()) {
    st.state = TaskState::kSucceeded;
  } else {
    st.state = TaskState::kFailed;
    st.error = DescribeExit(exit);
  }
  by_dir_.erase(st.dir);
  live_tasks_.erase({task.seq, task.spec.id});
  // Told first, then marked as told: a crash in between tells it again rather than never.
  effects_->hooks.push_back([status = st](const SupervisorHooks& h) {
    if (h.task_ended) {
      h.task_ended(status);
    }
    (void)WriteFileAtomic(status.dir + "/exit.seen", "", 0644, Durability::kProcessCrash);
  });
}

void Supervisor::ReconcileAll() {
  auto now = clock_.Now();
  // The services' timers are walked only once the earliest of them runs out.
  if (now >= earliest_due_) {
    earliest_due_ = kNever;
    for (auto& [key, svc] : services_) {
      if (now >= svc->next_due) {
        dirty_services_.insert(svc.get());
      } else {
        earliest_due_ = std::min(earliest_due_, svc->next_due);
      }
    }
  }
  // In the order of their keys, as a walk over all of them would take them.
  std::vector<Service*> dirty;
  for (Service* svc : dirty_services_) {
    auto it = services_.find(svc->desired.key);
    if (it != services_.end() && it->second.get() == svc) {  // not one being removed
      dirty.push_back(svc);
    }
  }
  dirty_services_.clear();
  std::sort(dirty.begin(), dirty.end(),
            [](const Service* a, const Service* b) { return a->desired.key < b->desired.key; });
  for (Service* svc : dirty) {
    svc->next_due = kNever;
    Reconcile(*svc);
    PublishRoutes(*svc);
    earliest_due_ = std::min(earliest_due_, svc->next_due);
  }
  for (auto it = removed_.begin(); it != removed_.end();) {
    Service& svc = **it;
    bool any_live = false;
    for (auto& inst : svc.instances) {
      if (inst->live) {
        any_live = true;
        StopInstance(svc, *inst, "service deleted");
      }
    }
    Drain(svc);
    if (any_live) {
      svc.next_due = now + options_.tick;
      ++it;
      continue;
    }
    for (auto& inst : svc.instances) {
      by_dir_.erase(inst->dir);
      effects_->removals.push_back(inst->dir);
    }
    it = removed_.erase(it);
  }
  // Tasks queued since the last pass start now, in the order they came.
  for (auto& [key, task] : live_tasks_) {
    if (task->status.state == TaskState::kPending && !task->launching) {
      task->launching = true;
      StartJob job;
      job.task = task;
      job.spec.id = task->spec.id;
      job.spec.argv = task->spec.argv;
      job.spec.env = task->spec.env;
      job.spec.cwd = task->spec.cwd;
      job.spec.memory_limit_bytes = task->spec.memory_limit_bytes;
      job.spec.grace_seconds = task->spec.grace_seconds;
      job.spec.sandbox = task->spec.sandbox;
      starts_.push_back(std::move(job));
    } else if (task->status.state == TaskState::kRunning && task->cancel_requested &&
               !task->stop_sent && !task->launching) {
      task->stop_sent = true;
      effects_->stops.push_back(task->status.dir);
    }
  }
}

const RevisionSpec* Supervisor::SpecOf(const Service& svc, int revision) {
  const RevisionSpec* spec = nullptr;
  // Pointers, not an initializer list: that would copy the specs into temporaries.
  for (const std::optional<RevisionSpec>* candidate :
       {&svc.desired.latest, &svc.desired.active, &svc.settling_from}) {
    if (*candidate && (*candidate)->revision == revision) {
      spec = &**candidate;
    }
  }
  for (const RevisionSpec& shadow : svc.desired.shadows) {
    if (shadow.revision == revision) {
      spec = &shadow;
    }
  }
  return spec;
}

void Supervisor::Event(const Service& svc, const std::string& kind, const std::string& message,
                       int revision) {
  std::string version;
  if (revision > 0) {
    const RevisionSpec* spec = SpecOf(svc, revision);
    version =
        spec != nullptr && !spec->version.empty() ? spec->version : std::to_string(revision);
  }
  effects_->hooks.push_back([key = svc.desired.key, kind, message,
                             version = std::move(version)](const SupervisorHooks& h) {
    LogInfo(message, {{"service", key.project + "-" + key.name}, {"event", kind}});
    if (h.event) {
      h.event(key, kind, message, version);
    }
  });
}

std::string Supervisor::AllocateHost(int port) {
  // 127.1.0.1 upwards; every address of 127/8 is local on Linux, none needs configuring.
  // Another daemon (or program) may hold an address at this port: probe before taking it.
  for (uint32_t tries = 0; tries < (254u << 16); ++tries) {
    uint32_t n = next_host_++ % (254u * 256u * 254u);
    uint32_t a = 1 + n / (256u * 254u);
    uint32_t b = (n / 254u) % 256u;
    uint32_t c = 1 + n % 254u;
    std::string host = fmt::format("127.{}.{}.{}", a, b, c);
    if (hosts_in_use_.count(host) == 0 && launcher_.AddressFree(host, port)) {
      hosts_in_use_.insert(host);
      return host;
    }
  }
  return "127.0.0.1";
}

void Supervisor::Launch(Service& svc, const RevisionSpec& spec, int slot) {
  Slot& s = svc.slots[{spec.revision, slot}];
  auto hex = RandomHex(6);
  auto inst = std::make_shared<Instance>();
  inst->id = "i-" + (hex.ok() ? *hex : std::to_string(svc.instances.size()));
  inst->dir = options_.instances_dir + "/" + inst->id;
  inst->revision = spec.revision;
  inst->slot = slot;
  // A slot started again keeps its address when it is free, so that clients holding the
  // service's internal_hostname (seed 000) reconnect to it.
  std::string& sticky = svc.slot_hosts[{spec.version, slot}];
  if (!sticky.empty() && hosts_in_use_.count(sticky) == 0 &&
      launcher_.AddressFree(sticky, spec.port)) {
    inst->host = sticky;
    hosts_in_use_.insert(inst->host);
  } else {
    inst->host = AllocateHost(spec.port);
  }
  sticky = inst->host;
  inst->port = spec.port;
  inst->restarts = s.restarts;
  inst->launched = clock_.Now();
  inst->next_probe = inst->launched;
  inst->next_full_probe = inst->launched + options_.full_probe_every;
  inst->launching = true;
  auto probe = std::make_shared<HealthProbe>();
  probe->host = inst->host;
  probe->port = inst->port;
  probe->check = spec.def.health_check;
  probe->codes = CodesOf(spec.def.health_check);
  probe->path = spec.health_path;
  probe->sandbox = spec.sandbox;
  probe->cwd = spec.cwd;
  probe->check_listener = true;
  inst->probe = std::move(probe);

  StartJob job;
  job.inst = inst;
  InstanceSpec& is = job.spec;
  is.id = inst->id;
  is.argv = spec.argv;
  is.cwd = spec.cwd;
  is.sandbox = spec.sandbox;
  is.memory_limit_bytes =
      spec.def.memory_limit_mb ? static_cast<uint64_t>(*spec.def.memory_limit_mb) << 20 : 0;
  is.pids_limit = spec.def.pids_limit;
  is.host = inst->host;
  is.port = inst->port;
  // The instance learns where it lives; these win over anything of the same name.
  std::map<std::string, std::string> env;
  for (const auto& kv : spec.env) {
    size_t eq = kv.find('=');
    env[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
  }
  env["HOST"] = inst->host;
  env["PORT"] = std::to_string(inst->port);
  env["BERTH_INSTANCE"] = inst->id;
  for (const auto& [k, v] : env) {
    is.env.push_back(k + "=" + v);
  }
  for (auto& arg : is.argv) {
    arg = ExpandVariables(arg, env);
  }
  by_dir_[inst->dir] = &svc;
  svc.instances.push_back(inst);
  starts_.push_back(std::move(job));
}

// Launcher starts, several at once, without the lock; their results are recorded under it.
void Supervisor::CarryOutStarts(std::vector<StartJob> jobs) {
  std::vector<std::string> metas(jobs.size());
  {
    MutexLock lock(mu_);
    for (size_t i = 0; i < jobs.size(); ++i) {
      const StartJob& j = jobs[i];
      json::object meta;
      if (j.inst) {
        auto owner = by_dir_.find(j.inst->dir);
        if (owner == by_dir_.end()) {
          continue;
        }
        const ServiceKey& key = owner->second->desired.key;
        meta = {{"id", j.inst->id},     {"project", key.project},
                {"service", key.name},  {"revision", j.inst->revision},
                {"slot", j.inst->slot}, {"host", j.inst->host},
                {"port", j.inst->port}, {"restarts", j.inst->restarts}};
      } else {
        meta = {{"id", j.task->spec.id},
                {"kind", "task"},
                {"owner", j.task->spec.owner},
                {"seq", j.task->seq}};
      }
      metas[i] = json::serialize(meta);
    }
  }
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i = next++; i < jobs.size(); i = next++) {
      StartJob& j = jobs[i];
      std::string dir = options_.instances_dir + "/" + j.spec.id;
      if (metas[i].empty()) {
        j.result = berth::Status::FailedPrecondition("its service was removed");
        continue;
      }
      std::error_code ec;
      fs::create_directories(dir, ec);
      // meta.json first: a daemon that dies during Start still finds the instance on restart.
      (void)WriteFileAtomic(dir + "/meta.json", metas[i], 0644, Durability::kProcessCrash);
      j.result = launcher_.Start(dir, j.spec);
    }
  };
  size_t threads = std::min<size_t>(jobs.size(), std::max(1, options_.start_parallelism));
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) {
    try {
      pool.emplace_back(worker);
    } catch (const std::system_error& e) {
      // Out of threads or pids (a node full of instances): the starts go on in this thread.
      LogWarn("cannot start a thread for instance starts", {{"error", e.what()}});
      break;
    }
  }
  worker();
  for (auto& t : pool) {
    t.join();
  }

  MutexLock lock(mu_);
  auto now = clock_.Now();
  for (StartJob& j : jobs) {
    if (j.task) {
      TaskEntry& t = *j.task;
      t.launching = false;
      if (!j.result.ok()) {
        ExitRecord e;
        e.exit_code = 127;
        e.error = j.result.status().message();
        e.error = "could not start: " + e.error;
        e.ended_at = NowUnixMillis();
        t.status.state = TaskState::kRunning;  // so that RecordTaskExit ends it
        effects_->hooks.push_back([dir = t.status.dir, e](const SupervisorHooks&) {
          (void)WriteFileAtomic(dir + "/exit.json", ExitRecordToJson(e), 0644,
                                Durability::kProcessCrash);
        });
        RecordTaskExit(t, e);
        continue;
      }
      t.status.pid = j.result->pid;
      t.status.started_at = j.result->started_at;
      // Its end is an exit event; a full look only later, in case the event never comes.
      t.next_full_probe = now + options_.full_probe_every;
      if (t.status.state == TaskState::kPending) {
        t.status.state = TaskState::kRunning;
      }
      wakeup_ = true;  // a cancel that came during the start is carried out next pass
      continue;
    }
    Instance& inst = *j.inst;
    inst.launching = false;
    auto owner = by_dir_.find(inst.dir);
    if (owner == by_dir_.end()) {
      continue;
    }
    Service& svc = *owner->second;
    Slot& s = svc.slots[{inst.revision, inst.slot}];
    if (!j.result.ok()) {
      inst.live = false;
      inst.state = InstanceState::kExited;
      ExitRecord e;
      e.exit_code = 127;
      e.error = j.result.status().message();
      e.ended_at = NowUnixMillis();
      inst.exit = e;
      hosts_in_use_.erase(inst.host);
      // Recorded as an exit already handled, so that a restarted daemon neither counts it
      // again nor takes the directory for a live instance.
      effects_->hooks.push_back([dir = inst.dir, e](const SupervisorHooks&) {
        (void)WriteFileAtomic(dir + "/exit.json", ExitRecordToJson(e), 0644,
                              Durability::kProcessCrash);
        (void)WriteFileAtomic(dir + "/exit.seen", "", 0644, Durability::kProcessCrash);
      });
      s.restarts++;
      s.quick_crashes++;
      auto backoff = Backoff(options_, s.quick_crashes);
      s.next_start = now + backoff;
      if (s.quick_crashes >= options_.crash_loop_after) {
        s.crash_looping = true;
        inst.state = InstanceState::kCrashLooping;
      }
      Event(svc, "start-failed",
            fmt::format("instance {} of revision {} could not start: {}; retrying in {} ms",
                        inst.id, inst.revision, e.error, backoff.count()));
    } else {
      inst.shim = *j.result;
      Event(svc, "started",
            fmt::format("instance {} of revision {} started on {}:{} (pid {})", inst.id,
                        inst.revision, inst.host, inst.port, j.result->pid));
      QueueHealthCheck(j.inst);
      health_wakeup_ = true;  // the health thread probes new instances at once
      if (inst.stopping) {
        inst.drain_deadline = now;  // deleted while it started: stop it at once
      }
    }
    MarkDirty(svc);
  }
  wake_.NotifyAll();
}

void Supervisor::StopInstance(Service& svc, Instance& inst, const std::string& why) {
  if (!inst.live || inst.stopping) {
    return;
  }
  inst.stopping = true;
  inst.ready = false;
  inst.state = InstanceState::kStopping;
  inst.in_flight = -1;  // not yet asked
  draining_dirs_.insert(inst.dir);
  // The shim is told once the route without this instance is published and the requests
  // already on it are done (Drain).
  inst.drain_deadline = clock_.Now() + options_.drain_timeout;
  Event(svc, "stopping",
        fmt::format("stopping instance {} of revision {}: {}", inst.id, inst.revision, why));
  MarkDirty(svc);
}

void Supervisor::Drain(Service& svc) {
  auto now = clock_.Now();
  for (auto& inst : svc.instances) {
    if (!inst->live || !inst->stopping || inst->stop_sent || inst->launching) {
      continue;
    }
    if (now >= inst->drain_deadline || !hooks_.in_flight || inst->in_flight == 0) {
      inst->stop_sent = true;
      effects_->stops.push_back(inst->dir);
    } else {
      draining_dirs_.insert(inst->dir);
      // Asked again on the next pass (ObservePass), until done or the deadline.
      svc.next_due = std::min(svc.next_due, std::min(now + options_.tick, inst->drain_deadline));
    }
  }
}

void Supervisor::RunRevision(Service& svc, const RevisionSpec& spec) {
  auto now = clock_.Now();
  int replicas = spec.def.replicas;
  for (auto& inst : svc.instances) {
    if (inst->live && !inst->stopping && inst->revision == spec.revision) {
      if (inst->slot >= replicas) {
        StopInstance(svc, *inst, "replicas reduced");
      } else if (inst->state == InstanceState::kUnhealthy) {
        Slot& s = svc.slots[{spec.revision, inst->slot}];
        s.restarts++;
        StopInstance(svc, *inst, "unhealthy: " + inst->health);
      } else if (!inst->ready && inst->probes > 0 &&
                 now - inst->launched > options_.rollout_deadline) {
        // Only once it was checked: an instance still waiting for its first probe (a health
        // round over thousands of re-adopted ones) has not failed anything.
        Slot& s = svc.slots[{spec.revision, inst->slot}];
        s.restarts++;
        s.quick_crashes++;
        s.next_start = now + options_.backoff_base;
        StopInstance(svc, *inst,
                     fmt::format("not healthy within {} s ({})", options_.rollout_deadline.count(),
                                 inst->health));
      } else if (!inst->ready) {
        svc.next_due = std::min(svc.next_due, inst->launched + options_.rollout_deadline +
                                                  std::chrono::milliseconds(1));
      }
    }
  }
  if (!spec.error.empty()) {
    return;
  }
  for (int slot = 0; slot < replicas; ++slot) {
    bool occupied = std::any_of(svc.instances.begin(), svc.instances.end(), [&](auto& i) {
      return i->live && !i->stopping && i->revision == spec.revision && i->slot == slot;
    });
    if (occupied) {
      continue;
    }
    TimePoint next_start = svc.slots[{spec.revision, slot}].next_start;
    if (now >= next_start) {
      Launch(svc, spec, slot);
    } else {
      svc.next_due = std::min(svc.next_due, next_start);
    }
  }
}

void Supervisor::Reconcile(Service& svc) {
  DesiredService& d = svc.desired;
  auto stop_all_but = [&](std::set<int> keep, const std::string& why) REQUIRES(mu_) {
    for (auto& inst : svc.instances) {
      if (inst->live && !keep.count(inst->revision)) {
        StopInstance(svc, *inst, why);
      }
    }
  };
  auto finish = [&]() REQUIRES(mu_) {
    Drain(svc);
    PruneDirs(svc);
  };
  if (!d.running) {
    stop_all_but({}, "service stopped");
    return finish();
  }
  const RevisionSpec* active = nullptr;
  if (d.active && d.active->revision == d.active_revision) {
    active = &*d.active;
  } else if (d.latest && d.latest->revision == d.active_revision) {
    active = &*d.latest;
  }
  const RevisionSpec* target = active;
  if (d.latest && d.latest->revision != d.failed_revision) {
    if (d.latest->error.empty()) {
      target = &*d.latest;
    } else if (svc.noted.insert(fmt::format("error-{}", d.latest->revision)).second) {
      Event(svc, "cannot-run",
            fmt::format("revision {} cannot run: {}", d.latest->revision, d.latest->error));
    }
  }
  if (target == nullptr) {
    stop_all_but({}, "nothing runnable");
    return finish();
  }
  // Shadows run whatever the live revision does; every "stop all but" below keeps them.
  std::set<int> shadow_revisions;
  for (const RevisionSpec& shadow : d.shadows) {
    if (shadow.revision == target->revision) {
      continue;
    }
    // Kept even while it is the live revision being replaced: after `assign`, the old MAIN
    // goes on running as a shadow instead of stopping and starting again.
    shadow_revisions.insert(shadow.revision);
    if (active && shadow.revision == active->revision) {
      continue;  // run below, as the live revision
    }
    if (shadow.error.empty()) {
      RunRevision(svc, shadow);
    } else if (svc.noted.insert(fmt::format("error-{}", shadow.revision)).second) {
      Event(svc, "cannot-run",
            fmt::format("version {} cannot run: {}", shadow.version, shadow.error));
    }
  }
  auto keeping = [&](std::set<int> keep) {
    keep.insert(shadow_revisions.begin(), shadow_revisions.end());
    return keep;
  };
  auto ready_count = [&](int revision) REQUIRES(mu_) {
    return static_cast<int>(std::count_if(svc.instances.begin(), svc.instances.end(), [&](auto& i) {
      return i->live && i->ready && !i->stopping && i->revision == revision &&
             i->slot < target->def.replicas;
    }));
  };
  auto rollout_news = [&]() REQUIRES(mu_) {
    effects_->hooks.push_back(
        [key = d.key, a = d.active_revision, f = d.failed_revision](const SupervisorHooks& h) {
          if (h.rollout) {
            h.rollout(key, a, f);
          }
        });
  };
  auto now = clock_.Now();
  if (active == nullptr || active == target) {
    if (svc.settling_from && (svc.settling_from->revision == target->revision ||
                              d.active_revision != target->revision)) {
      svc.settling_from.reset();  // nothing to settle: the live revision is not a new one
    }
    if (svc.settling_from) {
      // The new revision is live and the one it replaced still runs. Not all of its instances
      // ready (one crashed, failed its health checks or never came back) is a failure: traffic
      // goes back to the old revision at once and the new one is not retried.
      if (ready_count(target->revision) < target->def.replicas) {
        std::string why;
        for (auto& inst : svc.instances) {
          if (inst->revision == target->revision && !(inst->live && inst->ready)) {
            why = inst->exit ? DescribeExit(*inst->exit)
                  : !inst->health.empty() ? inst->health
                                          : std::string(InstanceStateName(inst->state));
          }
        }
        RevisionSpec previous = std::move(*svc.settling_from);
        svc.settling_from.reset();
        d.failed_revision = target->revision;
        d.active_revision = previous.revision;
        Event(svc, "rolled-back",
              fmt::format("rolled back revision {}: it failed within {} s of going live{}; "
                          "revision {} is live again",
                          target->revision, target->def.min_healthy_time_s,
                          why.empty() ? "" : " (" + why + ")", previous.revision),
              target->revision);
        d.active = std::move(previous);
        rollout_news();
        stop_all_but(keeping({d.active_revision}), "rolled back");
        RunRevision(svc, *d.active);
        return finish();
      }
      RunRevision(svc, *target);
      if (now < svc.settle_until) {
        stop_all_but(keeping({target->revision, svc.settling_from->revision}), "superseded");
        svc.next_due = std::min(svc.next_due, svc.settle_until);
        return finish();
      }
      Event(svc, "settled",
            fmt::format("revision {} stayed healthy for {} s; stopping revision {}",
                        target->revision, target->def.min_healthy_time_s,
                        svc.settling_from->revision));
      stop_all_but(keeping({target->revision}),
                   fmt::format("replaced by revision {}", target->revision));
      svc.settling_from.reset();
      return finish();
    }
    RunRevision(svc, *target);
    stop_all_but(keeping({target->revision}), fmt::format("revision {} is live", target->revision));
    if (d.active_revision != target->revision &&
        ready_count(target->revision) >= target->def.replicas) {
      d.active_revision = target->revision;
      Event(svc, "live", fmt::format("revision {} is live", target->revision));
      rollout_news();
    }
    return finish();
  }
  // A rollout from `active` to `target`: the old revision serves until the new one is ready.
  svc.settling_from.reset();  // an earlier rollout's old revision is superseded below
  if (!svc.rollout_started || svc.rollout_revision != target->revision) {
    svc.rollout_started = now;
    svc.rollout_revision = target->revision;
    Event(svc, "rollout",
          fmt::format("rolling out revision {} (revision {} stays live until "
                      "it is healthy)",
                      target->revision, active->revision));
  }
  RunRevision(svc, *active);
  RunRevision(svc, *target);
  stop_all_but(keeping({active->revision, target->revision}), "superseded");
  bool crash_looping = false;
  for (int slot = 0; slot < target->def.replicas; ++slot) {
    crash_looping |= svc.slots[{target->revision, slot}].quick_crashes >= 3;
  }
  if (ready_count(target->revision) >= target->def.replicas) {
    d.active_revision = target->revision;
    svc.rollout_started.reset();
    int settle_s = target->def.min_healthy_time_s;
    if (settle_s > 0) {
      Event(svc, "live",
            fmt::format("revision {} is live; revision {} keeps running until it has been "
                        "healthy for {} s",
                        target->revision, active->revision, settle_s));
      svc.settling_from = *active;
      svc.settle_until = now + std::chrono::seconds(settle_s);
      svc.next_due = std::min(svc.next_due, svc.settle_until);
    } else {
      Event(svc, "live",
            fmt::format("revision {} is live; stopping revision {}", target->revision,
                        active->revision));
      stop_all_but(keeping({target->revision}),
                   fmt::format("replaced by revision {}", target->revision));
    }
    rollout_news();
  } else if (crash_looping || now - *svc.rollout_started > options_.rollout_deadline) {
    std::string why = crash_looping ? "its instances keep crashing"
                                    : fmt::format("it was not healthy within {} s",
                                                  options_.rollout_deadline.count());
    std::string last;  // of the newest instance that said anything
    for (auto& inst : svc.instances) {
      if (inst->revision == target->revision && (inst->exit || !inst->health.empty())) {
        last = inst->exit ? DescribeExit(*inst->exit) : inst->health;
      }
    }
    if (!last.empty()) {
      why += fmt::format(" (last: {})", last);
    }
    d.failed_revision = target->revision;
    svc.rollout_started.reset();
    Event(svc, "rolled-back",
          fmt::format("rolled back revision {}: {}; revision {} stays live", target->revision, why,
                      active->revision),
          target->revision);
    rollout_news();
    stop_all_but(keeping({active->revision}), "rolled back");
  } else {
    svc.next_due = std::min(svc.next_due, *svc.rollout_started + options_.rollout_deadline +
                                              std::chrono::milliseconds(1));
  }
  finish();
}

void Supervisor::PublishRoutes(Service& svc) {
  const DesiredService& d = svc.desired;
  RouteUpdate u;
  u.active_revision = d.active_revision;
  const RevisionSpec* spec = nullptr;
  for (const std::optional<RevisionSpec>* candidate : {&d.active, &d.latest}) {
    if (*candidate && (*candidate)->revision == d.active_revision) {
      spec = &**candidate;
    }
  }
  if (spec == nullptr && d.latest) {
    spec = &*d.latest;
  }
  if (spec != nullptr) {
    u.strip = spec->def.base_path == "strip";
    u.public_access = spec->def.auth == "public";
    u.internal = spec->def.expose == "internal";
  }
  for (const std::optional<RevisionSpec>* candidate : {&d.active, &d.latest}) {
    if (*candidate && !(*candidate)->version.empty()) {
      u.versions[(*candidate)->version] = (*candidate)->revision;
    }
  }
  for (const RevisionSpec& shadow : d.shadows) {
    if (!shadow.version.empty()) {
      u.versions[shadow.version] = shadow.revision;
    }
    if (shadow.def.mirror_traffic && shadow.revision != u.active_revision) {
      u.mirrors.push_back(shadow.revision);
    }
  }
  if (svc.settling_from && svc.settling_from->revision != u.active_revision) {
    u.fallback_revision = svc.settling_from->revision;
  }
  std::string sig = fmt::format("{}|{}|{}|{}|{}|", u.active_revision, u.fallback_revision,
                                u.strip, u.public_access, u.internal);
  for (const auto& [version, revision] : u.versions) {
    sig += fmt::format("{}={},", version, revision);
  }
  for (int m : u.mirrors) {
    sig += fmt::format("~{},", m);
  }
  for (const auto& inst : svc.instances) {
    if (inst->live && inst->ready && !inst->stopping) {
      u.ready.push_back({inst->host, inst->port, inst->revision});
      sig += fmt::format("{}:{}@{},", inst->host, inst->port, inst->revision);
    }
  }
  if (sig != svc.published_routes) {
    svc.published_routes = std::move(sig);
    effects_->hooks.push_back([key = d.key, u = std::move(u)](const SupervisorHooks& h) {
      if (h.routes) {
        h.routes(key, u);
      }
    });
  }
}

void Supervisor::PruneDirs(Service& svc) {
  int exited = 0;
  for (auto it = svc.instances.rbegin(); it != svc.instances.rend(); ++it) {
    if (!(*it)->live) {
      ++exited;
    }
  }
  for (auto it = svc.instances.begin();
       it != svc.instances.end() && exited > options_.exited_dirs_kept;) {
    if (!(*it)->live) {
      by_dir_.erase((*it)->dir);
      effects_->removals.push_back((*it)->dir);
      it = svc.instances.erase(it);
      --exited;
    } else {
      ++it;
    }
  }
}

void Supervisor::Flush() {
  MutexLock emit(emit_mu_);
  Effects fx;
  {
    MutexLock lock(mu_);
    std::swap(fx, *effects_);
  }
  for (auto& hook : fx.hooks) {
    hook(hooks_);
  }
  for (const auto& dir : fx.stops) {
    if (auto s = launcher_.Stop(dir); !s.ok()) {
      LogWarn("stopping instance failed", {{"dir", dir}, {"error", s.message()}});
    }
  }
  for (const auto& dir : fx.removals) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
}

void Supervisor::HealthLoop() {
  while (true) {
    TimePoint next = HealthRound();
    MutexLock lock(mu_);
    if (stop_) {
      return;
    }
    if (!health_wakeup_ && next > clock_.Now()) {
      // Sleep until the next probe is due; a started instance wakes this thread early.
      auto wait =
          std::min<Clock::TimePoint::duration>(next - clock_.Now(), std::chrono::milliseconds(500));
      wake_.WaitFor(mu_, wait, [this]() REQUIRES(mu_) { return stop_ || health_wakeup_; });
    }
    health_wakeup_ = false;
    if (stop_) {
      return;
    }
  }
}

Clock::TimePoint Supervisor::HealthRound() {
  struct Job {
    std::shared_ptr<Instance> inst;
    std::shared_ptr<const HealthProbe> probe;
    ProbeResult result;
  };
  std::vector<Job> jobs;
  TimePoint next = kNever;
  {
    MutexLock lock(mu_);
    auto now = clock_.Now();
    // Ready instances (probed every few seconds) are probed up to a batching window early,
    // so that 10,000 of them cost a few rounds a second, not one round per probe.
    std::vector<HealthDue> not_yet;
    while (!health_queue_.empty() &&
           health_queue_.front().at <= now + options_.health_batch_window) {
      std::pop_heap(health_queue_.begin(), health_queue_.end(), std::greater<>{});
      HealthDue due = std::move(health_queue_.back());
      health_queue_.pop_back();
      auto inst = due.inst.lock();
      if (!inst || due.at != inst->next_probe) {
        continue;  // gone, or queued again for another time
      }
      if (!inst->live || inst->stopping || inst->probing || inst->launching ||
          inst->shim.pid == 0 || !inst->probe) {
        continue;  // stopped for good, or queued again once its probe or start is over
      }
      if (now >= inst->next_probe || inst->ready) {
        inst->probing = true;
        jobs.push_back({inst, inst->probe, {}});
      } else {
        not_yet.push_back(std::move(due));
      }
    }
    for (auto& due : not_yet) {
      health_queue_.push_back(std::move(due));
      std::push_heap(health_queue_.begin(), health_queue_.end(), std::greater<>{});
    }
    if (!health_queue_.empty()) {
      next = health_queue_.front().at;
    }
  }
  if (jobs.empty()) {
    return next;
  }
  for (auto& job : jobs) {
    job.result = launcher_.CheckHealth(job.inst->dir, *job.probe);
  }
  {
    MutexLock lock(mu_);
    auto now = clock_.Now();
    for (auto& job : jobs) {
      Instance& inst = *job.inst;
      inst.probing = false;
      auto owner = by_dir_.find(inst.dir);
      if (owner == by_dir_.end()) {
        continue;
      }
      Service& svc = *owner->second;
      bool was_ready = inst.ready;
      inst.probes++;
      inst.health = job.result.detail;
      if (job.result.healthy) {
        inst.probe_failures = 0;
        if (!inst.ready && inst.live && !inst.stopping) {
          inst.ready = true;
          inst.state = InstanceState::kRunning;
          if (inst.probe->check_listener) {  // proven once: later probes only ask for health
            auto later = std::make_shared<HealthProbe>(*inst.probe);
            later->check_listener = false;
            inst.probe = std::move(later);
          }
          Event(svc, "ready",
                fmt::format("instance {} of revision {} is healthy ({})", inst.id, inst.revision,
                            job.result.detail));
        }
      } else if (inst.ready && ++inst.probe_failures >= kUnhealthyAfter && !inst.stopping) {
        inst.ready = false;
        inst.state = InstanceState::kUnhealthy;
        Event(svc, "unhealthy",
              fmt::format("instance {} failed {} health checks: {}", inst.id, inst.probe_failures,
                          job.result.detail),
              inst.revision);
      }
      if (inst.ready != was_ready) {
        MarkDirty(svc);  // readiness changes what Reconcile may do
      }
      inst.next_probe = inst.ready ? now + std::chrono::seconds(inst.probe->check.interval_s)
                                   : now + options_.startup_probe_every;
      QueueHealthCheck(job.inst);
      next = std::min(next, inst.next_probe);
    }
  }
  wake_.NotifyAll();
  Flush();
  return next;
}

void Supervisor::QueueHealthCheck(const std::shared_ptr<Instance>& inst) {
  health_queue_.push_back({inst->next_probe, inst});
  std::push_heap(health_queue_.begin(), health_queue_.end(), std::greater<>{});
}

void Supervisor::Adopt(std::vector<std::pair<std::string, ShimRecord>>& watch) {
  std::error_code ec;
  std::vector<std::shared_ptr<TaskEntry>> adopted_tasks;
  int swept = 0;
  for (const auto& entry : fs::directory_iterator(options_.instances_dir, ec)) {
    std::string dir = entry.path().string();
    if (dir.find(".forgotten-") != std::string::npos) {
      std::error_code rec;
      fs::remove_all(dir, rec);  // a ForgetTask a crash interrupted
      continue;
    }
    auto text = ReadFile(dir + "/meta.json");
    boost::system::error_code jec;
    json::value meta = text.ok() ? json::parse(*text, jec) : json::value();
    if (!text.ok() || jec || !meta.is_object()) {
      // An instance's directory made by a start that a kill -9 of the daemon cut short before
      // its record was written (meta.json is written whole or not at all): nothing was started
      // in it, unless a shim says otherwise.
      if (entry.path().filename().string().starts_with("i-") && entry.is_directory(ec) &&
          !launcher_.Probe(dir).running) {
        std::error_code rec;
        fs::remove_all(dir, rec);
        ++swept;
      }
      continue;
    }
    const json::object& m = meta.get_object();
    auto str = [&](const char* k) {
      const json::value* v = m.if_contains(k);
      return v && v->is_string() ? std::string(v->get_string()) : std::string();
    };
    auto num = [&](const char* k) {
      const json::value* v = m.if_contains(k);
      return v && v->is_int64() ? v->get_int64() : int64_t{0};
    };
    InstanceProbe p = launcher_.Probe(dir);
    if (str("kind") == "task") {
      auto task = std::make_shared<TaskEntry>();
      task->spec.id = str("id");
      task->spec.owner = str("owner");
      task->seq = static_cast<uint64_t>(num("seq"));
      task->status.id = task->spec.id;
      task->status.owner = task->spec.owner;
      task->status.dir = dir;
      if (p.shim) {
        task->status.pid = p.shim->pid;
        task->status.started_at = p.shim->started_at;
      }
      task->status.state = TaskState::kRunning;
      if (p.running) {
        by_dir_[dir] = nullptr;
        watch.emplace_back(dir, *p.shim);
      } else {
        ExitRecord e;
        if (p.exit) {
          e = *p.exit;
        } else {
          e.error = "its shim was gone when the daemon restarted";
        }
        bool reported = fs::exists(dir + "/exit.seen");
        RecordTaskExit(*task, e);
        if (reported) {
          // Already told before the restart: history, not news.
          effects_->hooks.pop_back();
        }
      }
      adopted_tasks.push_back(task);
      continue;
    }
    ServiceKey key{str("project"), str("service")};
    auto inst = std::make_shared<Instance>();
    inst->id = str("id");
    inst->dir = dir;
    inst->revision = static_cast<int>(num("revision"));
    inst->slot = static_cast<int>(num("slot"));
    inst->host = str("host");
    inst->port = static_cast<int>(num("port"));
    inst->restarts = static_cast<int>(num("restarts"));
    inst->launched = clock_.Now();
    inst->next_probe = inst->launched;
    inst->next_full_probe = inst->launched;
    if (p.shim) {
      inst->shim = *p.shim;
    }
    if (!p.running && fs::exists(dir + "/exit.seen")) {
      // An exit an earlier daemon already handled: history, kept for its logs.
      inst->live = false;
      inst->exit = p.exit;
      inst->state =
          p.exit && p.exit->oom_killed ? InstanceState::kOomKilled : InstanceState::kExited;
    }
    auto it = services_.find(key);
    if (it == services_.end()) {
      // Its service is gone: stop it and drop its directory once it exited.
      auto orphan = std::make_unique<Service>();
      orphan->desired.key = key;
      orphan->desired.running = false;
      inst->live = p.running;
      if (p.running) {
        watch.emplace_back(dir, *p.shim);
      }
      by_dir_[dir] = orphan.get();
      orphan->instances.push_back(std::move(inst));
      removed_.push_back(std::move(orphan));
      continue;
    }
    Service& svc = *it->second;
    const RevisionSpec* spec = SpecOf(svc, inst->revision);
    auto probe = std::make_shared<HealthProbe>();
    probe->host = inst->host;
    probe->port = inst->port;
    if (spec != nullptr) {
      probe->check = spec->def.health_check;
      probe->path = spec->health_path;
    }
    probe->codes = CodesOf(probe->check);
    inst->probe = std::move(probe);
    svc.slots[{inst->revision, inst->slot}].restarts = inst->restarts;
    if (inst->live) {
      svc.slot_hosts[{spec != nullptr ? spec->version : std::string(), inst->slot}] = inst->host;
    }
    if (p.running) {
      hosts_in_use_.insert(inst->host);
      QueueHealthCheck(inst);
      watch.emplace_back(dir, *p.shim);
      Event(svc, "adopted",
            fmt::format("re-adopted running instance {} of revision {} (pid {})", inst->id,
                        inst->revision, inst->shim.pid));
    } else if (inst->live) {
      // Died while the daemon was away: the first pass counts it as a crash and restarts it.
      hosts_in_use_.insert(inst->host);
      exited_dirs_.insert(dir);
    }
    by_dir_[dir] = &svc;
    svc.instances.push_back(std::move(inst));
    MarkDirty(svc);
  }
  std::sort(adopted_tasks.begin(), adopted_tasks.end(),
            [](const auto& a, const auto& b) { return a->seq < b->seq; });
  for (auto& task : adopted_tasks) {
    task_seq_ = std::max(task_seq_, task->seq);
    tasks_[task->spec.id] = task;
    if (!TaskEnded(task->status.state)) {
      live_tasks_[{task->seq, task->spec.id}] = task;
    }
  }
  next_host_ = static_cast<uint32_t>(hosts_in_use_.size());
  if (swept > 0) {
    LogInfo("removed instance directories an interrupted start left",
            {{"count", std::to_string(swept)}});
  }
}

ServiceStatus Supervisor::Status(const ServiceKey& key) const {
  ServiceStatus st = Snapshot(key);
  // Memory is read now, outside the lock, and only for the instances asked about.
  for (InstanceStatus& is : st.instances) {
    if (is.pid > 0 && !is.exit_code && !is.signal) {
      is.rss_bytes = launcher_.ResidentBytes(is.pid);
    }
  }
  return st;
}

Supervisor::Readiness Supervisor::ReadinessOf(const ServiceKey& key) const {
  MutexLock lock(mu_);
  Readiness r;
  auto it = services_.find(key);
  if (it == services_.end()) {
    return r;
  }
  return ReadinessLocked(*it->second);
}

Supervisor::Readiness Supervisor::ReadinessLocked(const Service& svc) const {
  Readiness r;
  if (svc.desired.running && svc.desired.latest) {
    r.desired = svc.desired.latest->def.replicas;
  }
  for (const auto& inst : svc.instances) {
    r.running += inst->Serving(svc.desired.active_revision);
  }
  return r;
}

ServiceStatus Supervisor::Snapshot(const ServiceKey& key) const {
  MutexLock lock(mu_);
  ServiceStatus st;
  auto it = services_.find(key);
  if (it == services_.end()) {
    return st;
  }
  const Service& svc = *it->second;
  const DesiredService& d = svc.desired;
  st.active_revision = d.active_revision;
  st.target_revision = svc.rollout_started ? svc.rollout_revision : d.active_revision;
  Readiness r = ReadinessLocked(svc);
  st.desired = r.desired;
  st.running = r.running;
  // Live instances first, then exits, newest first.
  std::vector<const Instance*> order;
  for (const auto& inst : svc.instances) {
    order.push_back(inst.get());
  }
  std::stable_sort(order.begin(), order.end(),
                   [](const Instance* a, const Instance* b) { return a->live > b->live; });
  for (const Instance* inst : order) {
    InstanceStatus is;
    is.id = inst->id;
    is.revision = inst->revision;
    is.slot = inst->slot;
    is.state = inst->state;
    is.pid = inst->shim.pid;
    is.host = inst->host;
    is.port = inst->port;
    is.started_at = inst->shim.started_at;
    is.restarts = inst->restarts;
    is.health = inst->health;
    if (inst->exit) {
      is.exit_code = inst->exit->exit_code;
      if (inst->exit->signal) {
        is.signal = inst->exit->signal;
      }
    }
    st.instances.push_back(std::move(is));
  }
  return st;
}

std::vector<Endpoint> Supervisor::Ready(const ServiceKey& key, std::optional<int> revision) const {
  MutexLock lock(mu_);
  std::vector<Endpoint> out;
  auto it = services_.find(key);
  if (it == services_.end()) {
    return out;
  }
  int want = revision ? *revision : it->second->desired.active_revision;
  for (const auto& inst : it->second->instances) {
    if (inst->Serving(want)) {
      out.push_back({inst->host, inst->port, inst->revision});
    }
  }
  return out;
}

std::vector<std::pair<std::string, int>> Supervisor::InstanceDirs(const ServiceKey& key) const {
  MutexLock lock(mu_);
  std::vector<std::pair<std::string, int>> out;
  auto it = services_.find(key);
  if (it == services_.end()) {
    return out;
  }
  for (const auto& inst : it->second->instances) {
    out.emplace_back(inst->dir, inst->revision);
  }
  return out;
}

Status Supervisor::StartTask(TaskSpec spec) {
  if (spec.argv.empty() || spec.argv[0].empty()) {
    return berth::Status::InvalidArgument("a task needs a command (argv is empty)");
  }
  if (spec.id.empty() || spec.id.size() > 128 ||
      spec.id.find_first_not_of(
          "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") !=
          std::string::npos ||
      spec.id[0] == '.') {
    return berth::Status::InvalidArgument(fmt::format(
        "task id {:?} must be 1-128 letters, digits, '-', '_' or '.', not starting with '.'",
        spec.id));
  }
  {
    MutexLock lock(mu_);
    std::string dir = options_.instances_dir + "/" + spec.id;
    if (tasks_.count(spec.id) > 0 || by_dir_.count(dir) > 0) {
      return berth::Status::AlreadyExists(fmt::format("task {} exists already", spec.id));
    }
    auto task = std::make_shared<TaskEntry>();
    task->seq = ++task_seq_;
    task->status.id = spec.id;
    task->status.owner = spec.owner;
    task->status.dir = dir;
    task->spec = std::move(spec);
    by_dir_[dir] = nullptr;
    live_tasks_[{task->seq, task->spec.id}] = task;
    tasks_[task->spec.id] = std::move(task);
    wakeup_ = true;
  }
  wake_.NotifyAll();
  return berth::Status::Ok();
}

Status Supervisor::CancelTask(const std::string& id) {
  {
    MutexLock lock(mu_);
    auto it = tasks_.find(id);
    if (it == tasks_.end()) {
      return berth::Status::NotFound(fmt::format("no task {}", id));
    }
    TaskEntry& t = *it->second;
    if (TaskEnded(t.status.state) || t.cancel_requested) {
      return berth::Status::Ok();
    }
    t.cancel_requested = true;
    if (t.status.state == TaskState::kPending && !t.launching) {
      ExitRecord e;
      e.error = "cancelled before it started";
      t.status.state = TaskState::kRunning;
      RecordTaskExit(t, e);
    }
    wakeup_ = true;
  }
  wake_.NotifyAll();
  Flush();  // a pending task's end is told now, not on the next pass
  return berth::Status::Ok();
}

std::optional<TaskStatus> Supervisor::Task(const std::string& id) const {
  MutexLock lock(mu_);
  auto it = tasks_.find(id);
  if (it == tasks_.end()) {
    return std::nullopt;
  }
  return it->second->status;
}

std::vector<TaskStatus> Supervisor::Tasks(const std::string& owner) const {
  MutexLock lock(mu_);
  std::vector<std::pair<uint64_t, TaskStatus>> found;
  for (const auto& [id, t] : tasks_) {
    if (owner.empty() || t->spec.owner == owner) {
      found.emplace_back(t->seq, t->status);
    }
  }
  std::sort(found.begin(), found.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<TaskStatus> out;
  for (auto& [seq, st] : found) {
    out.push_back(std::move(st));
  }
  return out;
}

Status Supervisor::ForgetTask(const std::string& id) {
  std::string dir;
  {
    MutexLock lock(mu_);
    auto it = tasks_.find(id);
    if (it == tasks_.end()) {
      return berth::Status::NotFound(fmt::format("no task {}", id));
    }
    if (!TaskEnded(it->second->status.state)) {
      return berth::Status::FailedPrecondition(fmt::format(
          "task {} is {}; cancel it first", id, TaskStateName(it->second->status.state)));
    }
    // Renamed away under the lock (fast), removed after it: a new task of the same id gets a
    // fresh directory that the removal cannot touch.
    std::string from = it->second->status.dir;
    dir = fmt::format("{}.forgotten-{}", from, it->second->seq);
    std::error_code rec;
    fs::rename(from, dir, rec);
    if (rec) {
      dir.clear();
    }
    by_dir_.erase(from);
    tasks_.erase(it);
  }
  std::error_code ec;
  if (!dir.empty()) {
    fs::remove_all(dir, ec);
  }
  return berth::Status::Ok();
}

}  // namespace berth
