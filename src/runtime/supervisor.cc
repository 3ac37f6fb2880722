#include "runtime/supervisor.h"

#include <fmt/format.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <filesystem>

#include "common/crypto.h"
#include "common/file_util.h"
#include "common/log.h"
#include "runtime/health_check.h"

namespace berth {
namespace {
namespace fs = std::filesystem;
namespace json = boost::json;
using SteadyClock = std::chrono::steady_clock;
constexpr int kUnhealthyAfter = 3;
// New instances are probed often so that a fast program is ready within milliseconds.
constexpr auto kStartupProbeEvery = std::chrono::milliseconds(5);

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
// True if nothing listens on host:port (a bind succeeds).
bool PortFree(const std::string& host, int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return true;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, host.c_str(), &addr.sin_addr);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return free;
}

}  // namespace

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

struct Supervisor::Instance {
  std::string id;
  std::string dir;
  int revision = 0;
  int slot = 0;
  std::string host;
  int port = 0;
  std::string state = "starting";
  ShimRecord shim;
  bool live = true;
  bool stopping = false;
  bool stop_sent = false;  // the shim was told to stop (after draining)
  SteadyClock::time_point drain_deadline;
  bool ready = false;
  bool probing = false;
  int probe_failures = 0;
  int restarts = 0;
  SteadyClock::time_point launched;
  SteadyClock::time_point next_probe;
  SteadyClock::time_point next_full_probe;
  std::optional<ExitRecord> exit;
  std::optional<uint64_t> rss;
  std::string health;
  HealthCheck check;
  std::shared_ptr<const StatusCodeSet> codes;
  std::string health_path;
};

struct Supervisor::Slot {
  int restarts = 0;
  int quick_crashes = 0;
  SteadyClock::time_point next_start{};
  bool crash_looping = false;
};

struct Supervisor::Service {
  DesiredService desired;
  std::vector<std::unique_ptr<Instance>> instances;
  std::map<std::pair<int, int>, Slot> slots;  // (revision, slot)
  std::optional<SteadyClock::time_point> rollout_started;
  int rollout_revision = 0;
  std::set<std::string> noted;  // one-time events already sent
  std::string published_routes;  // what PublishRoutes last sent, to send only changes
};

Supervisor::Supervisor(Launcher& launcher, SupervisorOptions options, SupervisorHooks hooks)
    : launcher_(launcher), options_(std::move(options)), hooks_(std::move(hooks)) {
  std::error_code ec;
  fs::create_directories(options_.instances_dir, ec);
}

Supervisor::~Supervisor() { Shutdown(); }

void Supervisor::Start() {
  {
    std::lock_guard lock(mu_);
    Adopt();
  }
  loop_ = std::thread([this] { Loop(); });
  health_ = std::thread([this] { HealthLoop(); });
}

void Supervisor::Shutdown() {
  {
    std::lock_guard lock(mu_);
    if (stop_) {
      return;
    }
    stop_ = true;
  }
  wake_.notify_all();
  if (loop_.joinable()) {
    loop_.join();
  }
  if (health_.joinable()) {
    health_.join();
  }
}

void Supervisor::Apply(DesiredService desired) {
  {
    std::lock_guard lock(mu_);
    auto& svc = services_[desired.key];
    if (!svc) {
      svc = std::make_unique<Service>();
    }
    svc->desired = std::move(desired);
    dirty_ = true;
  }
  wake_.notify_all();
}

void Supervisor::Remove(const ServiceKey& key) {
  {
    std::lock_guard lock(mu_);
    auto it = services_.find(key);
    if (it == services_.end()) {
      return;
    }
    if (hooks_.routes) {
      RouteUpdate gone;
      gone.removed = true;
      hooks_.routes(key, gone);
    }
    it->second->desired.running = false;
    removed_.push_back(std::move(it->second));
    services_.erase(it);
    dirty_ = true;
  }
  wake_.notify_all();
}

void Supervisor::Loop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    dirty_ = false;
    Tick();
    wake_.wait_for(lock, options_.tick, [this] { return stop_ || dirty_; });
  }
}

void Supervisor::Tick() {
  for (auto& [key, svc] : services_) {
    Reconcile(*svc);
    PublishRoutes(*svc);
  }
  for (auto it = removed_.begin(); it != removed_.end();) {
    Service& svc = **it;
    Observe(svc);
    bool any_live = false;
    for (auto& inst : svc.instances) {
      if (inst->live) {
        any_live = true;
        if (!inst->stopping) {
          StopInstance(svc, *inst, "service deleted");
        }
      }
    }
    if (any_live) {
      ++it;
      continue;
    }
    for (auto& inst : svc.instances) {
      std::error_code ec;
      fs::remove_all(inst->dir, ec);
    }
    it = removed_.erase(it);
  }
}

void Supervisor::Event(const Service& svc, const std::string& kind, const std::string& message) {
  LogInfo(message, {{"service", svc.desired.key.project + "-" + svc.desired.key.name},
                    {"event", kind}});
  if (hooks_.event) {
    hooks_.event(svc.desired.key, kind, message);
  }
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
    if (hosts_in_use_.count(host) == 0 && PortFree(host, port)) {
      hosts_in_use_.insert(host);
      return host;
    }
  }
  return "127.0.0.1";
}

void Supervisor::Launch(Service& svc, const RevisionSpec& spec, int slot) {
  Slot& s = svc.slots[{spec.revision, slot}];
  auto hex = RandomHex(6);
  auto inst = std::make_unique<Instance>();
  inst->id = "i-" + (hex.ok() ? *hex : std::to_string(svc.instances.size()));
  inst->dir = options_.instances_dir + "/" + inst->id;
  inst->revision = spec.revision;
  inst->slot = slot;
  // A restarted slot keeps its address when it is free, so that clients holding the
  // service's internal_hostname (seed 000) reconnect to it.
  for (auto it = svc.instances.rbegin(); it != svc.instances.rend(); ++it) {
    const Instance& prev = **it;
    if (!prev.live && prev.slot == slot && prev.revision == spec.revision &&
        hosts_in_use_.count(prev.host) == 0 && PortFree(prev.host, spec.port)) {
      inst->host = prev.host;
      hosts_in_use_.insert(inst->host);
      break;
    }
  }
  if (inst->host.empty()) {
    inst->host = AllocateHost(spec.port);
  }
  inst->port = spec.port;
  inst->restarts = s.restarts;
  inst->launched = SteadyClock::now();
  inst->next_probe = inst->launched;
  inst->check = spec.def.health_check;
  auto codes = StatusCodeSet::Parse(spec.def.health_check.status_codes);
  inst->codes = std::make_shared<const StatusCodeSet>(
      codes.ok() ? *codes : *StatusCodeSet::Parse("200-499"));
  inst->health_path = spec.health_path;

  InstanceSpec is;
  is.id = inst->id;
  is.argv = spec.argv;
  is.cwd = spec.cwd;
  is.memory_limit_bytes =
      spec.def.memory_limit_mb ? static_cast<uint64_t>(*spec.def.memory_limit_mb) << 20 : 0;
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
  std::error_code ec;
  fs::create_directories(inst->dir, ec);
  json::object meta{{"id", inst->id},          {"project", svc.desired.key.project},
                    {"service", svc.desired.key.name}, {"revision", inst->revision},
                    {"slot", slot},            {"host", inst->host},
                    {"port", inst->port},      {"restarts", inst->restarts}};
  // meta.json first: a daemon that dies during Start still finds the instance on restart.
  (void)WriteFileAtomic(inst->dir + "/meta.json", json::serialize(meta), 0644);
  auto started = launcher_.Start(inst->dir, is);
  if (!started.ok()) {
    inst->live = false;
    inst->state = "exited";
    ExitRecord e;
    e.exit_code = 127;
    e.error = started.status().message();
    inst->exit = e;
    hosts_in_use_.erase(inst->host);
    s.restarts++;
    s.quick_crashes++;
    auto backoff = std::min<std::chrono::milliseconds>(
        options_.backoff_base * (1 << std::min(s.quick_crashes - 1, 16)), options_.backoff_max);
    s.next_start = SteadyClock::now() + backoff;
    if (s.quick_crashes >= options_.crash_loop_after) {
      s.crash_looping = true;
      inst->state = "crash-looping";
    }
    Event(svc, "start-failed",
          fmt::format("instance {} of revision {} could not start: {}; retrying in {} ms",
                      inst->id, spec.revision, e.error, backoff.count()));
  } else {
    inst->shim = *started;
    Event(svc, "started",
          fmt::format("instance {} of revision {} started on {}:{} (pid {})", inst->id,
                      spec.revision, inst->host, inst->port, started->pid));
    wake_.notify_all();  // the health thread probes new instances at once
  }
  svc.instances.push_back(std::move(inst));
}

void Supervisor::StopInstance(Service& svc, Instance& inst, const std::string& why) {
  if (!inst.live || inst.stopping) {
    return;
  }
  inst.stopping = true;
  inst.ready = false;
  inst.state = "stopping";
  // The shim is told on a later tick, once the route without this instance is published and
  // the requests already on it are done (Observe).
  inst.drain_deadline = SteadyClock::now() + options_.drain_timeout;
  Event(svc, "stopping", fmt::format("stopping instance {} of revision {}: {}", inst.id,
                                     inst.revision, why));
}

void Supervisor::Observe(Service& svc) {
  auto now = SteadyClock::now();
  for (auto& inst : svc.instances) {
    if (!inst->live) {
      continue;
    }
    if (inst->stopping && !inst->stop_sent &&
        (now >= inst->drain_deadline || !hooks_.in_flight ||
         hooks_.in_flight(inst->host, inst->port) == 0)) {
      inst->stop_sent = true;
      if (auto s = launcher_.Stop(inst->dir); !s.ok()) {
        LogWarn("stopping instance failed", {{"instance", inst->id}, {"error", s.message()}});
      }
    }
    if (now < inst->next_full_probe && !launcher_.ExitRecorded(inst->dir)) {
      continue;
    }
    inst->next_full_probe = now + options_.full_probe_every;
    InstanceProbe p = launcher_.Probe(inst->dir);
    if (p.running) {
      inst->rss = p.rss_bytes;
      continue;
    }
    if (!p.exit) {
      continue;  // the shim is still writing its records
    }
    inst->live = false;
    inst->ready = false;
    inst->exit = p.exit;
    hosts_in_use_.erase(inst->host);
    // Remember that this exit was handled, so that a restarted daemon does not count it again.
    (void)WriteFileAtomic(inst->dir + "/exit.seen", "", 0644);
    if (inst->stopping) {
      inst->state = "exited";
      continue;
    }
    inst->state = p.exit->oom_killed ? "oom-killed" : "exited";
    Slot& s = svc.slots[{inst->revision, inst->slot}];
    if (now - inst->launched >= options_.healthy_reset) {
      s.quick_crashes = 0;
      s.crash_looping = false;
    }
    s.quick_crashes++;
    s.restarts++;
    auto backoff = std::min<std::chrono::milliseconds>(
        options_.backoff_base * (1 << std::min(s.quick_crashes - 1, 16)), options_.backoff_max);
    s.next_start = now + backoff;
    Event(svc, p.exit->oom_killed ? "oom-killed" : "exited",
          fmt::format("instance {} of revision {} {}; restarting in {} ms", inst->id,
                      inst->revision, DescribeExit(*p.exit), backoff.count()));
    if (s.quick_crashes >= options_.crash_loop_after) {
      inst->state = "crash-looping";
      if (!s.crash_looping) {
        s.crash_looping = true;
        Event(svc, "crash-looping",
              fmt::format("revision {} slot {} crashed {} times in a row; backing off up to {} s",
                          inst->revision, inst->slot, s.quick_crashes,
                          options_.backoff_max.count()));
      }
    }
  }
}

void Supervisor::RunRevision(Service& svc, const RevisionSpec& spec, bool allow_new) {
  auto now = SteadyClock::now();
  int replicas = spec.def.replicas;
  for (auto& inst : svc.instances) {
    if (inst->live && !inst->stopping && inst->revision == spec.revision) {
      if (inst->slot >= replicas) {
        StopInstance(svc, *inst, "replicas reduced");
      } else if (inst->state == "unhealthy") {
        Slot& s = svc.slots[{spec.revision, inst->slot}];
        s.restarts++;
        StopInstance(svc, *inst, "unhealthy: " + inst->health);
      } else if (!inst->ready && now - inst->launched > options_.rollout_deadline) {
        Slot& s = svc.slots[{spec.revision, inst->slot}];
        s.restarts++;
        s.quick_crashes++;
        s.next_start = now + options_.backoff_base;
        StopInstance(svc, *inst,
                     fmt::format("not healthy within {} s ({})",
                                 options_.rollout_deadline.count(), inst->health));
      }
    }
  }
  if (!allow_new || !spec.error.empty()) {
    return;
  }
  for (int slot = 0; slot < replicas; ++slot) {
    bool occupied = std::any_of(svc.instances.begin(), svc.instances.end(), [&](auto& i) {
      return i->live && !i->stopping && i->revision == spec.revision && i->slot == slot;
    });
    if (!occupied && now >= svc.slots[{spec.revision, slot}].next_start) {
      Launch(svc, spec, slot);
    }
  }
}

void Supervisor::Reconcile(Service& svc) {
  Observe(svc);
  DesiredService& d = svc.desired;
  auto stop_all_but = [&](std::set<int> keep, const std::string& why) {
    for (auto& inst : svc.instances) {
      if (inst->live && !keep.count(inst->revision)) {
        StopInstance(svc, *inst, why);
      }
    }
  };
  if (!d.running) {
    stop_all_but({}, "service stopped");
    PruneDirs(svc);
    return;
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
    PruneDirs(svc);
    return;
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
      RunRevision(svc, shadow, true);
    } else if (svc.noted.insert(fmt::format("error-{}", shadow.revision)).second) {
      Event(svc, "cannot-run",
            fmt::format("version {} cannot run: {}", shadow.version, shadow.error));
    }
  }
  auto keeping = [&](std::set<int> keep) {
    keep.insert(shadow_revisions.begin(), shadow_revisions.end());
    return keep;
  };
  auto ready_count = [&](int revision) {
    return static_cast<int>(std::count_if(svc.instances.begin(), svc.instances.end(), [&](auto& i) {
      return i->live && i->ready && !i->stopping && i->revision == revision &&
             i->slot < target->def.replicas;
    }));
  };
  if (active == nullptr || active == target) {
    RunRevision(svc, *target, true);
    stop_all_but(keeping({target->revision}),
                 fmt::format("revision {} is live", target->revision));
    if (d.active_revision != target->revision && ready_count(target->revision) >= target->def.replicas) {
      d.active_revision = target->revision;
      Event(svc, "live", fmt::format("revision {} is live", target->revision));
      if (hooks_.rollout) {
        hooks_.rollout(d.key, d.active_revision, d.failed_revision);
      }
    }
    PruneDirs(svc);
    return;
  }
  // A rollout from `active` to `target`: the old revision serves until the new one is ready.
  auto now = SteadyClock::now();
  if (!svc.rollout_started || svc.rollout_revision != target->revision) {
    svc.rollout_started = now;
    svc.rollout_revision = target->revision;
    Event(svc, "rollout", fmt::format("rolling out revision {} (revision {} stays live until "
                                      "it is healthy)",
                                      target->revision, active->revision));
  }
  RunRevision(svc, *active, true);
  RunRevision(svc, *target, true);
  stop_all_but(keeping({active->revision, target->revision}), "superseded");
  bool crash_looping = false;
  for (int slot = 0; slot < target->def.replicas; ++slot) {
    crash_looping |= svc.slots[{target->revision, slot}].quick_crashes >= 3;
  }
  if (ready_count(target->revision) >= target->def.replicas) {
    d.active_revision = target->revision;
    svc.rollout_started.reset();
    Event(svc, "live", fmt::format("revision {} is live; stopping revision {}", target->revision,
                                   active->revision));
    if (hooks_.rollout) {
      hooks_.rollout(d.key, d.active_revision, d.failed_revision);
    }
    stop_all_but(keeping({target->revision}),
                 fmt::format("replaced by revision {}", target->revision));
  } else if (crash_looping || now - *svc.rollout_started > options_.rollout_deadline) {
    std::string why = crash_looping ? "its instances keep crashing"
                                    : fmt::format("it was not healthy within {} s",
                                                  options_.rollout_deadline.count());
    for (auto& inst : svc.instances) {
      if (inst->revision == target->revision && (inst->exit || !inst->health.empty())) {
        why += fmt::format(" (last: {})", inst->exit ? DescribeExit(*inst->exit) : inst->health);
      }
    }
    d.failed_revision = target->revision;
    svc.rollout_started.reset();
    Event(svc, "rolled-back", fmt::format("rolled back revision {}: {}; revision {} stays live",
                                          target->revision, why, active->revision));
    if (hooks_.rollout) {
      hooks_.rollout(d.key, d.active_revision, d.failed_revision);
    }
    stop_all_but(keeping({active->revision}), "rolled back");
  }
  PruneDirs(svc);
}

void Supervisor::PublishRoutes(Service& svc) {
  if (!hooks_.routes) {
    return;
  }
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
  std::string sig =
      fmt::format("{}|{}|{}|{}|", u.active_revision, u.strip, u.public_access, u.internal);
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
    svc.published_routes = sig;
    hooks_.routes(d.key, u);
  }
}

void Supervisor::PruneDirs(Service& svc) {
  int exited = 0;
  for (auto it = svc.instances.rbegin(); it != svc.instances.rend(); ++it) {
    if (!(*it)->live) {
      ++exited;
    }
  }
  for (auto it = svc.instances.begin(); it != svc.instances.end() &&
                                       exited > options_.exited_dirs_kept;) {
    if (!(*it)->live) {
      std::error_code ec;
      fs::remove_all((*it)->dir, ec);
      it = svc.instances.erase(it);
      --exited;
    } else {
      ++it;
    }
  }
}

void Supervisor::HealthLoop() {
  struct Job {
    std::string id;
    std::string host;
    int port;
    HealthCheck check;
    std::shared_ptr<const StatusCodeSet> codes;
    std::string path;
    ProbeResult result;
  };
  std::unique_lock lock(mu_);
  while (!stop_) {
    std::vector<Job> jobs;
    auto now = SteadyClock::now();
    for (auto& [key, svc] : services_) {
      for (auto& inst : svc->instances) {
        if (inst->live && !inst->stopping && !inst->probing && now >= inst->next_probe &&
            inst->shim.pid != 0) {
          inst->probing = true;
          jobs.push_back({inst->id, inst->host, inst->port, inst->check, inst->codes,
                          inst->health_path, {}});
        }
      }
    }
    lock.unlock();
    for (auto& job : jobs) {
      job.result = ProbeInstance(job.host, job.port, job.check, *job.codes, job.path);
    }
    lock.lock();
    now = SteadyClock::now();
    for (auto& job : jobs) {
      for (auto& [key, svc] : services_) {
        for (auto& inst : svc->instances) {
          if (inst->id != job.id) {
            continue;
          }
          inst->probing = false;
          inst->health = job.result.detail;
          if (job.result.healthy) {
            inst->probe_failures = 0;
            if (!inst->ready && inst->live && !inst->stopping) {
              inst->ready = true;
              inst->state = "running";
              Event(*svc, "ready", fmt::format("instance {} of revision {} is healthy ({})",
                                               inst->id, inst->revision, job.result.detail));
            }
          } else if (inst->ready && ++inst->probe_failures >= kUnhealthyAfter &&
                     !inst->stopping) {
            inst->ready = false;
            inst->state = "unhealthy";
            Event(*svc, "unhealthy",
                  fmt::format("instance {} failed {} health checks: {}", inst->id,
                              inst->probe_failures, job.result.detail));
          }
          inst->next_probe = inst->ready ? now + std::chrono::seconds(inst->check.interval_s)
                                         : now + kStartupProbeEvery;
        }
      }
    }
    if (!jobs.empty()) {
      dirty_ = true;  // readiness changed what Reconcile may do
      wake_.notify_all();
      continue;
    }
    // Sleep until the next probe is due; Apply and Launch wake this thread early.
    auto next = now + std::chrono::milliseconds(500);
    for (auto& [key, svc] : services_) {
      for (auto& inst : svc->instances) {
        if (inst->live && !inst->stopping && !inst->probing && inst->shim.pid != 0) {
          next = std::min(next, inst->next_probe);
        }
      }
    }
    if (next > now) {
      wake_.wait_until(lock, next);
    }
  }
}

void Supervisor::Adopt() {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(options_.instances_dir, ec)) {
    std::string dir = entry.path().string();
    auto text = ReadFile(dir + "/meta.json");
    if (!text.ok()) {
      continue;
    }
    boost::system::error_code jec;
    json::value meta = json::parse(*text, jec);
    if (jec || !meta.is_object()) {
      continue;
    }
    const json::object& m = meta.get_object();
    auto str = [&](const char* k) {
      const json::value* v = m.if_contains(k);
      return v && v->is_string() ? std::string(v->get_string()) : std::string();
    };
    auto num = [&](const char* k) {
      const json::value* v = m.if_contains(k);
      return v && v->is_int64() ? static_cast<int>(v->get_int64()) : 0;
    };
    ServiceKey key{str("project"), str("service")};
    auto inst = std::make_unique<Instance>();
    inst->id = str("id");
    inst->dir = dir;
    inst->revision = num("revision");
    inst->slot = num("slot");
    inst->host = str("host");
    inst->port = num("port");
    inst->restarts = num("restarts");
    inst->launched = SteadyClock::now();
    inst->next_probe = inst->launched;
    auto it = services_.find(key);
    InstanceProbe p = launcher_.Probe(dir);
    if (p.shim) {
      inst->shim = *p.shim;
    }
    if (!p.running && fs::exists(dir + "/exit.seen")) {
      // An exit an earlier daemon already handled: history, kept for its logs.
      inst->live = false;
      inst->exit = p.exit;
      inst->state = p.exit && p.exit->oom_killed ? "oom-killed" : "exited";
    }
    if (it == services_.end()) {
      // Its service is gone: stop it and drop its directory once it exited.
      auto orphan = std::make_unique<Service>();
      orphan->desired.key = key;
      orphan->desired.running = false;
      inst->live = p.running;
      orphan->instances.push_back(std::move(inst));
      removed_.push_back(std::move(orphan));
      continue;
    }
    Service& svc = *it->second;
    const RevisionSpec* spec = nullptr;
    // Pointers, not an initializer list: that would copy the specs into temporaries.
    for (const std::optional<RevisionSpec>* candidate :
         {&svc.desired.latest, &svc.desired.active}) {
      if (*candidate && (*candidate)->revision == inst->revision) {
        spec = &**candidate;
      }
    }
    for (const RevisionSpec& shadow : svc.desired.shadows) {
      if (shadow.revision == inst->revision) {
        spec = &shadow;
      }
    }
    if (spec != nullptr) {
      inst->check = spec->def.health_check;
      inst->health_path = spec->health_path;
    }
    auto codes = StatusCodeSet::Parse(inst->check.status_codes);
    inst->codes = std::make_shared<const StatusCodeSet>(
        codes.ok() ? *codes : *StatusCodeSet::Parse("200-499"));
    svc.slots[{inst->revision, inst->slot}].restarts = inst->restarts;
    if (p.running) {
      hosts_in_use_.insert(inst->host);
      Event(svc, "adopted", fmt::format("re-adopted running instance {} of revision {} (pid {})",
                                        inst->id, inst->revision, inst->shim.pid));
    } else if (inst->live) {
      // Died while the daemon was away: Observe counts it as a crash and restarts the slot.
      hosts_in_use_.insert(inst->host);
    }
    svc.instances.push_back(std::move(inst));
  }
  next_host_ = static_cast<uint32_t>(hosts_in_use_.size());
}

ServiceStatus Supervisor::Status(const ServiceKey& key) const {
  std::lock_guard lock(mu_);
  ServiceStatus st;
  auto it = services_.find(key);
  if (it == services_.end()) {
    return st;
  }
  const Service& svc = *it->second;
  const DesiredService& d = svc.desired;
  st.active_revision = d.active_revision;
  st.target_revision = svc.rollout_started ? svc.rollout_revision : d.active_revision;
  if (d.running && d.latest) {
    st.desired = d.latest->def.replicas;
  }
  for (const auto& inst : svc.instances) {
    if (inst->live && inst->ready && !inst->stopping && inst->revision == d.active_revision) {
      st.running++;
    }
  }
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
    is.rss_bytes = inst->rss;
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
  std::lock_guard lock(mu_);
  std::vector<Endpoint> out;
  auto it = services_.find(key);
  if (it == services_.end()) {
    return out;
  }
  int want = revision ? *revision : it->second->desired.active_revision;
  for (const auto& inst : it->second->instances) {
    if (inst->live && inst->ready && !inst->stopping && inst->revision == want) {
      out.push_back({inst->host, inst->port, inst->revision});
    }
  }
  return out;
}

std::vector<std::pair<std::string, int>> Supervisor::InstanceDirs(const ServiceKey& key) const {
  std::lock_guard lock(mu_);
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

}  // namespace berth
