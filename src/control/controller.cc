#include "control/controller.h"

#include "artifacts/bundle_manifest.h"
#include "artifacts/file_ops.h"
#include "control/resolver.h"
#include "runtime/linux/sandbox.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <cctype>
#include <boost/json.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/crypto.h"
#include "common/file_util.h"
#include "common/log.h"
#include "model/names.h"
#include "common/time.h"
#include "runtime/instance_http.h"
#include "runtime/log_writer.h"

extern char** environ;

namespace berth {
namespace {
namespace fs = std::filesystem;
namespace json = boost::json;


// A platform event's message without what changes from one occurrence to the next (instance
// ids, backoff times), so that repeats are one notification with a counter, not many.
std::string StableMessage(std::string msg) {
  for (size_t at = msg.find("i-"); at != std::string::npos; at = msg.find("i-", at + 1)) {
    size_t end = at + 2;
    while (end < msg.size() && std::isxdigit(static_cast<unsigned char>(msg[end]))) {
      ++end;
    }
    if (end - at == 14 && (at == 0 || msg[at - 1] == ' ')) {
      msg.replace(at, end - at, "an instance");
    }
  }
  for (std::string_view tail : {"; restarting in", "; backing off"}) {
    if (size_t at = msg.find(tail); at != std::string::npos) {
      msg.erase(at);
    }
  }
  return msg;
}


// Projects with more services than this get no BERTH_SERVICE_<NAME>_* variables (Resolve).
constexpr size_t kMaxPeerServices = 64;

uint64_t MachineMemoryMb() {
  auto text = ReadFile("/proc/meminfo");
  if (!text.ok()) {
    return 0;
  }
  std::istringstream in(*text);
  std::string key;
  uint64_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit) {
    if (key == "MemTotal:") {
      return kb / 1024;
    }
  }
  return 0;
}

// Runs a bundle's build `command` with /bin/sh in `cwd`, output appended to `log`, confined
// by `sandbox` (the project's, with the bundle writable: this is the one time it is written,
// before any instance shares it), with only `env` (never the daemon's own environment: its
// SMTP password, its tokens) and in a process group of its own that is killed after
// `timeout`, or as soon as `stopping` is set. What it writes goes to `log`, and to `progress`
// as it comes. Returns the exit status.
Result<int> RunBuild(const std::string& command, const std::string& cwd, const std::string& log,
                     const Sandbox& sandbox, std::vector<std::string> env,
                     std::chrono::seconds timeout, const Controller::BuildProgress& progress,
                     const std::atomic<bool>& stopping) {
  int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (out < 0) {
    return ErrnoStatus("opening the build log " + log, errno);
  }
  UniqueFd tail(progress ? ::open(log.c_str(), O_RDONLY | O_CLOEXEC) : -1);
  off_t read_to = tail.get() >= 0 ? ::lseek(tail.get(), 0, SEEK_END) : 0;
  // Hands what the build wrote since the last call to `progress`.
  auto forward = [&] {
    char buf[8192];
    ssize_t n = 0;
    while (tail.get() >= 0 && (n = ::pread(tail.get(), buf, sizeof(buf), read_to)) > 0) {
      read_to += n;
      progress(std::string_view(buf, static_cast<size_t>(n)));
    }
  };
  std::string sh = "/bin/sh";
  std::string c = "-c";
  std::string cmd = command;
  char* argv[] = {sh.data(), c.data(), cmd.data(), nullptr};
  std::vector<char*> envp;
  for (auto& e : env) {
    envp.push_back(e.data());
  }
  envp.push_back(nullptr);
  pid_t pid = 0;
  std::string failed = SpawnConfined(sandbox, cwd, argv, envp.data(), &pid, out);
  ::close(out);
  if (!failed.empty()) {
    return Status::FailedPrecondition("cannot start the build command: " + failed);
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (true) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno != EINTR)) {
      break;
    }
    forward();
    bool late = std::chrono::steady_clock::now() >= deadline;
    if (late || stopping.load()) {
      ::kill(-pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      forward();
      return late ? Status::FailedPrecondition(fmt::format(
                        "the build command ran longer than {} s and was killed", timeout.count()))
                  : Status::Unavailable("the build was stopped: the daemon is shutting down");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  forward();
  ::kill(-pid, SIGKILL);  // what it left running in the background goes with it
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

Controller::Controller(Store& store, Launcher& launcher, Clock& clock, ControllerOptions options)
    : store_(store),
      options_(std::move(options)),
      artifacts_(options_.data_dir + "/artifacts", UnpackLimits{}),
      directory_([data_dir = options_.data_dir](const std::string& project) {
        return ServicesFileOf(ProjectDirsOf(data_dir, project).data);
      }) {
  SupervisorOptions so;
  so.instances_dir = options_.data_dir + "/instances";
  SupervisorHooks hooks;
  hooks.event = [this](const ServiceKey& key, const std::string& kind, const std::string& msg,
                       const std::string& version) {
    // A service deleted meanwhile has nowhere to keep the event; that is fine.
    (void)store_.AddEvent(key.project, key.name, kind, msg);
    hub_.Publish(key.project, "service-event",
                 json::serialize(json::object{{"project", key.project},
                                              {"service", key.name},
                                              {"kind", kind},
                                              {"message", msg},
                                              {"time", FormatRfc3339Millis(NowUnixMillis())}}));
    // What an operator must hear of: the platform notifies, as services do.
    std::string severity = kind == "crash-looping" || kind == "oom-killed" ? "CRITICAL"
                           : kind == "rolled-back" || kind == "unhealthy"  ? "WARNING"
                                                                           : "";
    if (!severity.empty()) {
      NotificationRecord n;
      n.project = key.project;
      n.service = key.name;
      n.version = version;
      n.instance = "berth";
      n.severity = severity;
      n.message = kind + ": " + StableMessage(msg);
      if (auto r = Notify(n); !r.ok()) {
        LogWarn("cannot record notification", {{"service", key.name}, {"error", r.status().message()}});
      }
    }
  };
  hooks.rollout = [this](const ServiceKey& key, int active, int failed) {
    if (auto s = store_.SetRolloutResult(key.project, key.name, active, failed); !s.ok()) {
      LogWarn("cannot record rollout", {{"service", key.name}, {"error", s.message()}});
    }
  };
  RouteTable* routes = options_.routes;
  hooks.routes = [this, routes](const ServiceKey& key, const RouteUpdate& u) {
    // The live discovery file: the live revision's first ready instance, else any ready one.
    std::optional<ServiceAddress> address;
    for (const auto& e : u.ready) {
      if (u.removed) {
        break;
      }
      if (!address || e.revision == u.active_revision) {
        address = ServiceAddress{e.host, e.port};
        if (e.revision == u.active_revision) {
          break;
        }
      }
    }
    directory_.Set(key.project, key.name, address);
    if (routes != nullptr) {
      std::string prefix = DeploymentPath(key.project, key.name);
      if (u.removed || u.internal) {
        routes->Remove(prefix);
        return;
      }
      ServiceRoute r;
      r.project = key.project;
      r.name = key.name;
      r.prefix = prefix;
      r.strip = u.strip;
      r.public_access = u.public_access;
      r.active_revision = u.active_revision;
      r.versions.insert(u.versions.begin(), u.versions.end());
      r.mirrors = u.mirrors;
      r.fallback_revision = u.fallback_revision;
      for (const auto& e : u.ready) {
        r.upstreams.push_back({e.host, e.port, e.revision, "", nullptr});
      }
      routes->Update(std::move(r));
    }
  };
  if (routes != nullptr) {
    hooks.in_flight = [routes](const std::string& host, int port) {
      return routes->InFlight(host, port);
    };
  }
  hooks.task_ended = [this](const TaskStatus& t) {
    if (task_listener_) {
      task_listener_(t);
    }
  };
  supervisor_ = std::make_unique<Supervisor>(launcher, clock, so, std::move(hooks));
  // Nothing is uploading or ingesting before the API listens: what is there was left by a
  // crash (kill -9 during a push).
  size_t swept = RemoveEntriesOf(UploadDir()) + artifacts_.SweepTemporaries();
  if (swept > 0) {
    LogInfo("removed what interrupted uploads left behind", {{"entries", std::to_string(swept)}});
  }
  std::error_code ec;
  fs::create_directories(UploadDir(), ec);
}

Controller::~Controller() { Shutdown(); }

Status Controller::Start() {
  auto all = store_.ListAllServices();
  if (!all.ok()) {
    return all.status();
  }
  for (const auto& rec : *all) {
    auto desired = Desire(rec);
    if (!desired.ok()) {
      LogWarn("cannot resolve service", {{"service", rec.project + "-" + rec.name},
                                         {"error", desired.status().message()}});
      continue;
    }
    supervisor_->Apply(std::move(*desired));
  }
  supervisor_->Start();
  return Status::Ok();
}

void Controller::Shutdown() {
  stopping_ = true;
  {
    MutexLock lock(pushes_mu_);
    while (pushes_ > 0) {
      pushes_cv_.WaitFor(pushes_mu_, std::chrono::milliseconds(100), [this]() REQUIRES(
                                                                         pushes_mu_) {
        return pushes_ == 0;
      });
    }
  }
  if (supervisor_) {
    supervisor_->Shutdown();
  }
}

std::string Controller::ServiceDir(const std::string& project, const std::string& name) const {
  return fmt::format("{}/services/{}/{}", options_.data_dir, project, name);
}

Result<std::string> Controller::ServiceToken(const std::string& project,
                                             const std::string& name) {
  MutexLock lock(token_mu_);
  std::string dir = ServiceDir(project, name);
  std::string path = dir + "/token.json";
  if (auto text = ReadFile(path); text.ok()) {
    boost::system::error_code ec;
    auto v = json::parse(*text, ec);
    if (!ec && v.is_object() && v.get_object().contains("secret")) {
      return std::string(v.at("secret").as_string());
    }
  }
  auto t = GenerateToken();
  if (!t.ok()) {
    return t.status();
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (auto s = WriteFileAtomic(path, json::serialize(json::object{{"id", t->id},
                                                                  {"secret", t->secret}}),
                               0600);
      !s.ok()) {
    return s;
  }
  auto info = store_.CreateToken(t->id, t->hash, project,
                                 fmt::format("instance token of service {}", name));
  if (!info.ok()) {
    return info.status();
  }
  return t->secret;
}

Result<Sandbox> Controller::SandboxOf(const std::string& project) {
  if (!options_.confinement.enabled) {
    return Sandbox{};
  }
  auto p = store_.GetProject(project);
  if (!p.ok()) {
    return p.status();
  }
  return ProjectSandbox(options_.confinement, project, p->id);
}

Result<TaskContext> Controller::TaskContextOf(const std::string& project) {
  TaskContext c;
  // The project's tasks share one token, kept beside its directories (service names cannot
  // start with a dot, so ".tasks" is never a service's).
  auto token = ServiceToken(project, ".tasks");
  if (!token.ok()) {
    return token.status();
  }
  c.token = *token;
  c.berth_url = options_.berth_url;
  if (auto pe = store_.GetProjectEnv(project); pe.ok()) {
    c.project_env.insert(pe->begin(), pe->end());
  } else {
    return pe.status();
  }
  ProjectDirs dirs = ProjectDirsOf(options_.data_dir, project);
  c.data_dir = dirs.data;
  c.project_dir = dirs.project;
  for (const auto& dir : {c.data_dir, c.project_dir}) {
    std::error_code ec;
    fs::create_directories(dir, ec);
  }
  auto sandbox = SandboxOf(project);
  if (!sandbox.ok()) {
    return sandbox.status();
  }
  c.sandbox = std::move(*sandbox);
  c.sdk_python_dir = options_.sdk_python_dir;
  c.base_env["BERTH_SERVICES_FILE"] = ServicesFileOf(c.data_dir);
  for (const char* name : {"PATH", "HOME", "LANG"}) {
    if (const char* v = std::getenv(name)) {
      c.base_env[name] = v;
    }
  }
  if (c.base_env.count("PATH") == 0) {
    c.base_env["PATH"] = "/usr/local/bin:/usr/bin:/bin";
  }
  const char* pp = std::getenv("PYTHONPATH");
  std::string python_path = c.sdk_python_dir;
  if (pp && *pp) {
    python_path = python_path.empty() ? std::string(pp) : python_path + ":" + pp;
  }
  if (!python_path.empty()) {
    c.base_env["PYTHONPATH"] = python_path;
  }
  return c;
}

Result<RevisionSpec> Controller::Resolve(const ServiceRecord& rec, int revision,
                                         const std::string& definition_json,
                                         const std::string& version) {
  boost::system::error_code ec;
  auto parsed = json::parse(definition_json, ec);
  if (ec) {
    return Status::Internal(fmt::format("stored definition of revision {} is not JSON", revision));
  }
  auto def = ParseDefinition(parsed);
  if (!def.ok()) {
    return def.status().WithContext(fmt::format("stored definition of revision {}", revision));
  }
  // Gathers what the pure resolver needs; the rules are all in ResolveRevision.
  ResolveInputs in;
  in.project = rec.project;
  in.service = rec.name;
  in.revision = revision;
  in.version = version;
  in.def = *def;
  if (def->container_tag) {
    auto artifacts = store_.ListArtifacts(rec.project, rec.name);
    if (!artifacts.ok()) {
      return artifacts.status();
    }
    auto it = std::find_if(artifacts->begin(), artifacts->end(),
                           [&](const ArtifactRecord& a) { return a.tag == *def->container_tag; });
    if (it == artifacts->end()) {
      in.bundle_error = fmt::format(
          "artifact tag '{}' has not been pushed to service {}; push it with: berth push {} DIR "
          "--tag {}",
          *def->container_tag, rec.name, rec.name, *def->container_tag);
    } else {
      in.bundle_dir = artifacts_.UnpackedPath(it->digest);
      auto manifest = ReadBundleManifest(in.bundle_dir);
      if (!manifest.ok()) {
        in.bundle_error = manifest.status().message();
      } else {
        in.manifest = std::move(*manifest);
      }
    }
  }
  if (in.bundle_dir.empty()) {
    in.work_dir = ServiceDir(rec.project, rec.name) + "/work";
    std::error_code fec;
    fs::create_directories(in.work_dir, fec);
  }
  auto token = ServiceToken(rec.project, rec.name);
  if (!token.ok()) {
    return token.status();
  }
  in.token = *token;
  in.berth_url = options_.berth_url;
  if (auto pe = store_.GetProjectEnv(rec.project); pe.ok()) {
    in.project_env.insert(pe->begin(), pe->end());
  }
  for (const auto& name : def->inherited_environment) {
    if (const char* v = std::getenv(name.c_str())) {
      in.host_env[name] = v;
    }
  }
  for (const char* name : {"PATH", "PYTHONPATH"}) {
    if (const char* v = std::getenv(name)) {
      in.host_env[name] = v;
    }
  }
  ProjectDirs dirs = ProjectDirsOf(options_.data_dir, rec.project);
  in.data_dir = dirs.data;
  in.project_dir = dirs.project;
  in.home_dir = dirs.home;
  for (const auto& dir : {in.data_dir, in.project_dir}) {
    std::error_code mec;
    fs::create_directories(dir, mec);
  }
  in.can_mount = ::geteuid() == 0;
  auto sandbox = SandboxOf(rec.project);
  if (!sandbox.ok()) {
    return sandbox.status();
  }
  in.sandbox = std::move(*sandbox);
  if (!in.work_dir.empty() && in.sandbox.uid != 0) {
    if (auto s = GiveToUser(in.work_dir, in.sandbox.uid, in.sandbox.gid); !s.ok()) {
      return s;
    }
  }
  // Where the project's other services are now (seed 000's discovery, for programs that read
  // the environment). Like Kubernetes' service links, this grows with the project: past
  // kMaxPeerServices the variables are left out altogether (a partial set would mislead),
  // since N services x N variables is what made a 1,000-service project cost 100 MB of daemon
  // memory and seconds per deploy. Discovery then goes through the API (/api/v1/endpoints,
  // berth.get_service()).
  auto count = store_.CountServices(rec.project, static_cast<int64_t>(kMaxPeerServices) + 2);
  if (count.ok() && *count <= static_cast<int64_t>(kMaxPeerServices) + 1) {
    if (auto others = store_.ListServices(rec.project); others.ok()) {
      for (const auto& other : *others) {
        if (other.name == rec.name) {
          continue;
        }
        for (const auto& i : supervisor_->Status({rec.project, other.name}).instances) {
          if (i.state == InstanceState::kRunning) {
            in.peers.emplace_back(other.name, Endpoint{i.host, i.port, i.revision});
            break;
          }
        }
      }
    }
  }
  if (auto params = store_.ListParameters(rec.project, rec.name); params.ok()) {
    in.parameters = std::move(*params);
  }
  in.sdk_python_dir = options_.sdk_python_dir;
  return ResolveRevision(in);
}

Result<DesiredService> Controller::Desire(const ServiceRecord& rec) {
  DesiredService d;
  d.key = {rec.project, rec.name};
  d.running = rec.desired_running;
  // The store learns of a rollout from the supervisor's hook, a moment after the supervisor
  // knows it: a definition PUT in between must not find "nothing live" and switch at once,
  // with no revision to roll back to. The supervisor's own word wins when it has one.
  int active_revision = rec.active_revision;
  if (int live = supervisor_->Status(d.key).active_revision; live > 0) {
    active_revision = live;
  }
  d.active_revision = active_revision;
  d.failed_revision = rec.failed_revision;
  auto versions = store_.ListVersions(rec.project, rec.name);
  if (!versions.ok()) {
    return versions.status();
  }
  std::map<int, std::string> label;  // revision -> version
  for (const auto& v : *versions) {
    label[v.revision] = v.version;
  }
  // A service deployed as versions runs MAIN as its latest revision and the other versions as
  // shadows; a plain one runs its newest definition.
  int latest_revision = rec.revision;
  if (!versions->empty() || !rec.main_version.empty()) {
    latest_revision = 0;
    for (const auto& v : *versions) {
      if (v.version == rec.main_version) {
        latest_revision = v.revision;
      }
    }
  }
  std::optional<std::vector<Revision>> revs;
  auto definition_of = [&](int revision) -> Result<std::string> {
    if (revision == rec.revision) {
      return rec.definition_json;
    }
    if (!revs) {
      auto all = store_.ListRevisions(rec.project, rec.name);
      if (!all.ok()) {
        return all.status();
      }
      revs = std::move(*all);
    }
    for (const auto& r : *revs) {
      if (r.revision == revision) {
        return r.definition_json;
      }
    }
    return Status::NotFound(fmt::format("revision {} is not stored", revision));
  };
  auto resolve = [&](int revision) -> Result<RevisionSpec> {
    auto text = definition_of(revision);
    if (!text.ok()) {
      return text.status();
    }
    auto it = label.find(revision);
    return Resolve(rec, revision, *text, it == label.end() ? std::string() : it->second);
  };
  if (latest_revision > 0) {
    auto latest = resolve(latest_revision);
    if (!latest.ok()) {
      return latest.status();
    }
    d.latest = std::move(*latest);
  }
  if (active_revision > 0 && active_revision != latest_revision) {
    auto active = resolve(active_revision);
    if (active.ok()) {
      d.active = std::move(*active);
    } else if (active.status().code() != StatusCode::kNotFound) {
      return active.status();
    }
  }
  for (const auto& v : *versions) {
    if (v.revision == latest_revision) {
      continue;
    }
    auto shadow = resolve(v.revision);
    if (!shadow.ok()) {
      return shadow.status();
    }
    d.shadows.push_back(std::move(*shadow));
  }
  return d;
}

uint64_t ReservedMb(const Definition& def) {
  return def.memory_reservation_mb ? static_cast<uint64_t>(*def.memory_reservation_mb) *
                                         static_cast<uint64_t>(def.replicas)
                                   : 0;
}

Status CheckReservations(uint64_t capacity_mb, uint64_t reserved_by_others_mb,
                         const Definition& def) {
  if (!def.memory_reservation_mb || capacity_mb == 0) {
    return Status::Ok();
  }
  uint64_t wanted = ReservedMb(def);
  uint64_t reserved = reserved_by_others_mb;
  uint64_t left = capacity_mb > reserved ? capacity_mb - reserved : 0;
  if (wanted > left) {
    return Status::FailedPrecondition(fmt::format(
        "memory-reservation: {} replica(s) x {} MB = {} MB, but this machine has {} MB left "
        "({} MB in all, {} MB reserved by other services); lower the reservation or stop a "
        "service",
        def.replicas, *def.memory_reservation_mb, wanted, left, capacity_mb, reserved));
  }
  return Status::Ok();
}

uint64_t Controller::MemoryCapacityMb() const {
  return options_.memory_capacity_mb ? options_.memory_capacity_mb : MachineMemoryMb();
}

Store::AdmitFn Controller::Admission(const Definition& def) const {
  uint64_t capacity = MemoryCapacityMb();  // reads /proc/meminfo: once per write
  if (!def.memory_reservation_mb || capacity == 0) {
    return nullptr;  // nothing to check
  }
  return [capacity, def](uint64_t reserved_by_others_mb) {
    return CheckReservations(capacity, reserved_by_others_mb, def);
  };
}

Status Controller::Admit(const ServiceRecord& service, const Definition& def) {
  auto admit = Admission(def);
  if (!admit) {
    return Status::Ok();
  }
  auto others = store_.ReservedByOthers(service.project, service.name);
  if (!others.ok()) {
    return others.status();
  }
  return admit(*others);
}

Mutex& Controller::ServiceLock(const std::string& project, const std::string& name) {
  return service_locks_[std::hash<std::string>{}(project + "/" + name) % service_locks_.size()];
}

Status Controller::Refresh(const std::string& project, const std::string& name) {
  // From the store read to Apply, as one: a delete (Forget) between them would otherwise be
  // undone by an Apply of what was read before it, and two refreshes could apply out of order.
  MutexLock lock(ServiceLock(project, name));
  auto rec = store_.GetService(project, name);
  if (!rec.ok()) {
    return rec.status();
  }
  auto desired = Desire(*rec);
  if (!desired.ok()) {
    return desired.status();
  }
  supervisor_->Apply(std::move(*desired));
  return Status::Ok();
}

Status Controller::Forget(const std::string& project, const std::string& name) {
  MutexLock lock(ServiceLock(project, name));
  auto artifacts = store_.ListArtifacts(project, name);
  if (!artifacts.ok()) {
    return artifacts.status();
  }
  if (auto s = store_.DeleteService(project, name); !s.ok()) {
    return s;
  }
  supervisor_->Remove({project, name});
  std::string dir = ServiceDir(project, name);
  if (auto text = ReadFile(dir + "/token.json"); text.ok()) {
    boost::system::error_code ec;
    auto v = json::parse(*text, ec);
    if (!ec && v.is_object() && v.get_object().contains("id")) {
      (void)store_.RevokeToken(std::string(v.at("id").as_string()));
    }
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  for (const auto& a : *artifacts) {
    auto used = store_.DigestInUse(a.digest);
    if (used.ok() && !*used) {
      (void)artifacts_.Remove(a.digest);
    }
  }
  return Status::Ok();
}

Result<IngestedArtifact> Controller::IngestBundle(const std::string& upload_path,
                                                  const std::string& project,
                                                  const BuildProgress& progress) {
  auto ingested = artifacts_.Ingest(upload_path);
  if (!ingested.ok()) {
    return ingested.status();
  }
  std::string dir = artifacts_.UnpackedPath(ingested->digest);
  auto bundle = ReadBundleManifest(dir);
  if (!bundle.ok()) {
    (void)artifacts_.Remove(ingested->digest);
    return bundle.status();
  }
  if (!bundle->build.empty()) {
    std::string marker = dir + "/.berth-built";
    if (!fs::exists(marker)) {
      std::string log = dir + "/.berth-build.log";
      Sandbox sandbox;
      std::vector<std::string> env = {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8",
                                      "HOME=" + dir};
      if (!project.empty()) {
        auto box = SandboxOf(project);
        if (!box.ok()) {
          (void)artifacts_.Remove(ingested->digest);
          return box.status();
        }
        sandbox = std::move(*box);
        if (!sandbox.empty()) {
          sandbox.binds.push_back({dir, dir, true});
          env.back() = "HOME=" + ProjectDirsOf(options_.data_dir, project).home;
        }
        env.push_back("BERTH_PROJECT=" + project);
      }
      env.insert(env.end(), options_.build_env.begin(), options_.build_env.end());
      // The build writes as the project's user; what it made is the daemon's again afterwards
      // (instances see the bundle through a layer of their own, never to write it).
      bool lent = sandbox.uid != 0;
      if (lent) {
        if (auto s = GiveToUser(dir, sandbox.uid, sandbox.gid); !s.ok()) {
          (void)artifacts_.Remove(ingested->digest);
          return s;
        }
      }
      auto rc = RunBuild(bundle->build, dir, log, sandbox, env, options_.build_timeout, progress,
                         stopping_);
      if (lent) {
        (void)GiveToUser(dir, 0, 0);
      }
      if (!rc.ok() || *rc != 0) {
        auto out = ReadFile(log);
        std::string tail = out.ok() ? out->substr(out->size() > 2000 ? out->size() - 2000 : 0)
                                    : std::string();
        auto used = store_.DigestInUse(ingested->digest);
        if (used.ok() && !*used) {
          (void)artifacts_.Remove(ingested->digest);
        }
        return Status::InvalidArgument(fmt::format(
            "the bundle's build command failed ({}): {}\n{}",
            rc.ok() ? fmt::format("exit code {}", *rc) : rc.status().message(), bundle->build,
            tail));
      }
      (void)WriteFileAtomic(marker, "ok\n", 0644);
    }
  }
  return ingested;
}

std::string Controller::BundleDir(const std::string& digest) const {
  return artifacts_.UnpackedPath(digest);
}

void Controller::PushArtifactInBackground(std::string project, std::string name,
                                          std::string tag, std::string upload_path,
                                          BuildProgress progress,
                                          std::function<void(Result<ArtifactRecord>)> done) {
  {
    MutexLock lock(pushes_mu_);
    ++pushes_;
  }
  std::thread([this, project = std::move(project), name = std::move(name),
               tag = std::move(tag), upload_path = std::move(upload_path),
               progress = std::move(progress), done = std::move(done)] {
    Result<ArtifactRecord> rec =
        stopping_ ? Result<ArtifactRecord>(Status::Unavailable("the daemon is shutting down"))
                  : PushArtifact(project, name, tag, upload_path, progress);
    ::unlink(upload_path.c_str());  // when the push failed before it took the file
    done(std::move(rec));
    MutexLock lock(pushes_mu_);
    --pushes_;
    pushes_cv_.NotifyAll();
  }).detach();
}

Result<ArtifactRecord> Controller::PushArtifact(const std::string& project,
                                                const std::string& name, const std::string& tag,
                                                const std::string& upload_path,
                                                const BuildProgress& progress) {
  auto ingested = IngestBundle(upload_path, project, progress);
  if (!ingested.ok()) {
    return ingested.status();
  }
  auto rec = store_.PutArtifact(project, name, tag, ingested->digest,
                                static_cast<int64_t>(ingested->size_bytes));
  if (!rec.ok()) {
    return rec.status();
  }
  (void)store_.AddEvent(project, name, "artifact",
                        fmt::format("artifact {} pushed as tag '{}' ({} bytes)", ingested->digest,
                                    tag, ingested->size_bytes));
  // A definition may have been waiting for this tag.
  if (auto s = Refresh(project, name); !s.ok()) {
    LogWarn("cannot refresh service after push", {{"service", name}, {"error", s.message()}});
  }
  return rec;
}

json::object NotificationJson(const NotificationRecord& n) {
  boost::system::error_code ec;
  json::value emails = json::parse(n.emails_json, ec);
  if (ec || !emails.is_array()) {
    emails = json::array();
  }
  return {{"id", n.id},
          {"project", n.project},
          {"service", n.service},
          {"version", n.version},
          {"instance", n.instance},
          {"severity", n.severity},
          {"message", n.message},
          {"count", n.count},
          {"first_at", FormatRfc3339Millis(n.first_at)},
          {"last_at", FormatRfc3339Millis(n.last_at)},
          {"emails", std::move(emails)},
          {"timer", n.timer_s}};
}

Result<NotificationRecord> Controller::Notify(const NotificationRecord& n) {
  auto stored = store_.AddNotification(n);
  if (!stored.ok()) {
    return stored.status();
  }
  hub_.Publish(stored->project, "notification", json::serialize(NotificationJson(*stored)));
  LogInfo("notification", {{"project", stored->project},
                           {"service", stored->service},
                           {"severity", stored->severity},
                           {"count", std::to_string(stored->count)},
                           {"message", stored->message}});
  if (options_.on_notification) {
    options_.on_notification(*stored);
  }
  return stored;
}

Result<VersionRecord> Controller::DeployVersion(const std::string& project, const std::string& name,
                                                const std::string& version, const Definition& def) {
  auto v = store_.AddVersion(project, name, version, json::serialize(DefinitionToJson(def)),
                             ReservedMb(def));
  if (!v.ok()) {
    return v.status();
  }
  (void)store_.AddEvent(project, name, "version",
                        fmt::format("version {} deployed as revision {}", version, v->revision));
  if (auto s = Refresh(project, name); !s.ok()) {
    return s;
  }
  return v;
}

Status Controller::AssignMain(const std::string& project, const std::string& name,
                              const std::string& version) {
  if (auto s = store_.SetMainVersion(project, name, version); !s.ok()) {
    return s;
  }
  (void)store_.AddEvent(project, name, "assign", fmt::format("version {} is MAIN", version));
  return Refresh(project, name);
}

Status Controller::KillVersion(const std::string& project, const std::string& name,
                               const std::string& version) {
  if (auto s = store_.RemoveVersion(project, name, version); !s.ok()) {
    return s;
  }
  (void)store_.AddEvent(project, name, "kill", fmt::format("version {} killed", version));
  return Refresh(project, name);
}

namespace {

// Running instances of a service (every version), where the platform can reach the SDK.
std::vector<InstanceStatus> RunningInstances(const ServiceStatus& st) {
  std::vector<InstanceStatus> out;
  for (const auto& i : st.instances) {
    if (i.state == InstanceState::kRunning) {
      out.push_back(i);
    }
  }
  return out;
}

json::value ParseOrString(const std::string& body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec) {
    return json::object{{"error", json::object{{"code", "bad_gateway"}, {"message", body}}}};
  }
  return v;
}

}  // namespace

Result<Controller::ParameterReply> Controller::SetParameter(const std::string& project,
                                                            const std::string& name,
                                                            const std::string& parameter,
                                                            const json::value& value) {
  std::string path = DeploymentPath(project, name) + "/~parameters/" + parameter;
  std::string body = json::serialize(json::object{{"value", value}});
  auto running = RunningInstances(StatusOf(project, name));
  int applied = 0;
  std::vector<std::string> failed;
  for (const auto& inst : running) {
    auto reply = CallInstance(inst.host, inst.port, "POST", path, body,
                              std::chrono::milliseconds(5000));
    if (!reply.ok()) {
      failed.push_back(fmt::format("{} ({})", inst.id, reply.status().message()));
      continue;
    }
    if (reply->status >= 300) {
      boost::system::error_code ec;
      json::value answer = json::parse(reply->body, ec);
      if (applied == 0 && (ec || reply->status >= 500)) {
        // Not the SDK's refusal: a program without berth's parameters endpoint (or a broken
        // one). Say so, instead of relaying its error page with its status.
        return ParameterReply{
            502, json::object{{"error",
                               json::object{{"code", "bad_gateway"},
                                            {"message",
                                             fmt::format("{} does not take parameters: its "
                                                         "instance answered HTTP {} to POST {} "
                                                         "(parameters are the SDK's "
                                                         "add_parameter)",
                                                         name, reply->status, path)}}}}};
      }
      if (applied == 0) {
        // The service refused it (unknown parameter, wrong type): its answer is the answer.
        return ParameterReply{reply->status, std::move(answer)};
      }
      failed.push_back(fmt::format("{} (HTTP {})", inst.id, reply->status));
      continue;
    }
    ++applied;
  }
  if (!running.empty() && applied == 0) {
    return Status::Unavailable(fmt::format("no instance of {} took the parameter: {}", name,
                                           fmt::join(failed, "; ")));
  }
  if (auto s = store_.PutParameter(project, name, parameter, json::serialize(value)); !s.ok()) {
    return s;
  }
  (void)store_.AddEvent(project, name, "parameter",
                        fmt::format("parameter {} = {} ({} instance(s))", parameter,
                                    json::serialize(value), applied));
  // New instances and restarts start with the stored value.
  if (auto s = Refresh(project, name); !s.ok()) {
    return s;
  }
  json::object out{{"name", parameter}, {"value", value}, {"instances", applied},
                   {"stored", true}};
  if (!failed.empty()) {
    out["failed"] = json::value_from(failed);
  }
  return ParameterReply{200, std::move(out)};
}

Result<Controller::ParameterReply> Controller::GetParameters(const std::string& project,
                                                             const std::string& name,
                                                             const std::string& parameter) {
  auto stored = store_.ListParameters(project, name);
  if (!stored.ok()) {
    return stored.status();
  }
  std::map<std::string, json::value> stored_values;
  for (const auto& [k, v] : *stored) {
    boost::system::error_code ec;
    stored_values[k] = json::parse(v, ec);
  }
  std::string path = DeploymentPath(project, name) + "/~parameters";
  json::object params;
  bool asked = false;
  for (const auto& inst : RunningInstances(StatusOf(project, name))) {
    auto reply = CallInstance(inst.host, inst.port, "GET", path, "",
                              std::chrono::milliseconds(5000));
    if (!reply.ok() || reply->status != 200) {
      continue;
    }
    json::value v = ParseOrString(reply->body);
    if (v.is_object() && v.as_object().contains("parameters") &&
        v.at("parameters").is_object()) {
      params = v.at("parameters").as_object();
      asked = true;
      break;
    }
  }
  for (auto& [k, v] : params) {
    if (v.is_object()) {
      v.as_object()["stored"] = stored_values.count(std::string(k)) > 0;
    }
  }
  if (!asked) {
    for (const auto& [k, v] : stored_values) {
      params[k] = json::object{{"value", v}, {"stored", true}};
    }
  }
  if (parameter.empty()) {
    return ParameterReply{200, json::object{{"parameters", std::move(params)}}};
  }
  auto it = params.find(parameter);
  if (it == params.end()) {
    std::vector<std::string> known;
    for (const auto& [k, v] : params) {
      known.emplace_back(k);
    }
    return Status::NotFound(fmt::format(
        "{} has no parameter '{}'{}", name, parameter,
        known.empty() ? std::string(asked ? "" : " (no instance is running to ask)")
                      : fmt::format("; it has: {}", fmt::join(known, ", "))));
  }
  json::object one = it->value().is_object() ? it->value().as_object() : json::object{};
  one["name"] = parameter;
  return ParameterReply{200, std::move(one)};
}

ServiceStatus Controller::StatusOf(const std::string& project, const std::string& name) const {
  return supervisor_->Status({project, name});
}

Supervisor::Readiness Controller::ReadinessOf(const std::string& project,
                                              const std::string& name) const {
  return supervisor_->ReadinessOf({project, name});
}

std::vector<Endpoint> Controller::Ready(const std::string& project, const std::string& name,
                                        std::optional<int> revision) const {
  return supervisor_->Ready({project, name}, revision);
}

std::vector<LogLine> ReadLogLines(const std::string& dir, const std::string& instance,
                                  int revision, const LogQuery& query) {
  std::vector<LogLine> lines;
  for (auto& raw : ReadLogTail(dir + "/logs", query.tail)) {
    // "<time> <stream> <message>"
    size_t a = raw.find(' ');
    size_t b = a == std::string::npos ? a : raw.find(' ', a + 1);
    if (b == std::string::npos) {
      continue;
    }
    LogLine l{raw.substr(0, a), raw.substr(a + 1, b - a - 1), raw.substr(b + 1), instance,
              revision};
    if (!query.since.empty() && l.time <= query.since) {
      continue;
    }
    lines.push_back(std::move(l));
  }
  return lines;
}

std::vector<LogLine> Controller::Logs(const std::string& project, const std::string& name,
                                      const LogQuery& query) const {
  std::vector<LogLine> lines;
  for (const auto& [dir, revision] : supervisor_->InstanceDirs({project, name})) {
    std::string id = fs::path(dir).filename().string();
    if (!query.instance.empty() && query.instance != id) {
      continue;
    }
    if (query.revision && *query.revision != revision) {
      continue;
    }
    auto some = ReadLogLines(dir, id, revision, query);
    lines.insert(lines.end(), std::make_move_iterator(some.begin()),
                 std::make_move_iterator(some.end()));
  }
  std::stable_sort(lines.begin(), lines.end(),
                   [](const LogLine& x, const LogLine& y) { return x.time < y.time; });
  if (query.tail > 0 && lines.size() > query.tail) {
    lines.erase(lines.begin(), lines.end() - static_cast<std::ptrdiff_t>(query.tail));
  }
  return lines;
}

}  // namespace berth
