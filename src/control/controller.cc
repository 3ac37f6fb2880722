#include "control/controller.h"

#include <fmt/format.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/crypto.h"
#include "common/file_util.h"
#include "common/log.h"
#include "model/names.h"
#include "runtime/log_writer.h"

extern char** environ;

namespace berth {
namespace {
namespace fs = std::filesystem;
namespace json = boost::json;

// What a bundle's berth.yaml may say; the definition overrides each of these.
struct BundleDefaults {
  std::vector<std::string> command;
  std::optional<int> port;
  std::vector<std::pair<std::string, std::string>> env;
  std::optional<HealthCheck> health_check;
  std::string build;
};

Result<BundleDefaults> ReadBundleDefaults(const std::string& dir) {
  BundleDefaults b;
  std::string path = dir + "/berth.yaml";
  if (!fs::exists(path)) {
    return b;
  }
  try {
    YAML::Node root = YAML::LoadFile(path);
    if (!root.IsMap()) {
      return Status::InvalidArgument("berth.yaml: must be a mapping");
    }
    for (const auto& kv : root) {
      std::string key = kv.first.as<std::string>();
      const YAML::Node& v = kv.second;
      if (key == "command") {
        if (v.IsSequence()) {
          for (const auto& item : v) {
            b.command.push_back(item.as<std::string>());
          }
        } else {
          b.command = {"/bin/sh", "-c", v.as<std::string>()};
        }
      } else if (key == "port") {
        b.port = v.as<int>();
        if (*b.port < 1 || *b.port > 65535) {
          return Status::InvalidArgument("berth.yaml: port must be between 1 and 65535");
        }
      } else if (key == "env") {
        if (v.IsMap()) {
          for (const auto& e : v) {
            b.env.emplace_back(e.first.as<std::string>(), e.second.as<std::string>());
          }
        } else if (v.IsSequence()) {
          for (const auto& e : v) {
            b.env.emplace_back(e["name"].as<std::string>(), e["value"].as<std::string>());
          }
        } else {
          return Status::InvalidArgument("berth.yaml: env must be a mapping NAME: value");
        }
      } else if (key == "health-check") {
        HealthCheck hc;
        for (const auto& h : v) {
          std::string hk = h.first.as<std::string>();
          if (hk == "type") {
            hc.type = h.second.as<std::string>();
          } else if (hk == "rel_path") {
            hc.rel_path = h.second.as<std::string>();
          } else if (hk == "status_codes") {
            hc.status_codes = h.second.as<std::string>();
          } else if (hk == "interval") {
            hc.interval_s = h.second.as<int>();
          } else if (hk == "timeout") {
            hc.timeout_s = h.second.as<int>();
          }
        }
        b.health_check = hc;
      } else if (key == "build") {
        b.build = v.as<std::string>();
      } else {
        return Status::InvalidArgument(fmt::format(
            "berth.yaml: unknown key '{}'; known keys are command, port, env, health-check, build",
            key));
      }
    }
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(fmt::format("berth.yaml: {}", e.what()));
  }
  return b;
}

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

// Runs `command` with /bin/sh in `cwd`, output appended to `log`. Returns the exit status.
Result<int> RunBuild(const std::string& command, const std::string& cwd, const std::string& log) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0640);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawn_file_actions_addchdir_np(&fa, cwd.c_str());
  std::string sh = "/bin/sh";
  std::string c = "-c";
  std::string cmd = command;
  char* argv[] = {sh.data(), c.data(), cmd.data(), nullptr};
  // The daemon blocks SIGTERM/SIGINT; the build must not inherit that.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return ErrnoStatus("starting the build command", rc);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

Controller::Controller(Store& store, Launcher& launcher, ControllerOptions options)
    : store_(store),
      options_(std::move(options)),
      artifacts_(options_.data_dir + "/artifacts", UnpackLimits{}) {
  SupervisorOptions so;
  so.instances_dir = options_.data_dir + "/instances";
  SupervisorHooks hooks;
  hooks.event = [this](const ServiceKey& key, const std::string& kind, const std::string& msg) {
    // A service deleted meanwhile has nowhere to keep the event; that is fine.
    (void)store_.AddEvent(key.project, key.name, kind, msg);
  };
  hooks.rollout = [this](const ServiceKey& key, int active, int failed) {
    if (auto s = store_.SetRolloutResult(key.project, key.name, active, failed); !s.ok()) {
      LogWarn("cannot record rollout", {{"service", key.name}, {"error", s.message()}});
    }
  };
  if (RouteTable* routes = options_.routes) {
    hooks.routes = [routes](const ServiceKey& key, const RouteUpdate& u) {
      std::string prefix = DeploymentPath(key.project, key.name);
      if (u.removed) {
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
      for (const auto& e : u.ready) {
        r.upstreams.push_back({e.host, e.port, e.revision, "", nullptr});
      }
      routes->Update(std::move(r));
    };
    hooks.in_flight = [routes](const std::string& host, int port) {
      return routes->InFlight(host, port);
    };
  }
  supervisor_ = std::make_unique<Supervisor>(launcher, so, std::move(hooks));
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
  if (supervisor_) {
    supervisor_->Shutdown();
  }
}

std::string Controller::ServiceDir(const std::string& project, const std::string& name) const {
  return fmt::format("{}/services/{}/{}", options_.data_dir, project, name);
}

Result<std::string> Controller::ServiceToken(const std::string& project,
                                             const std::string& name) {
  std::lock_guard lock(token_mu_);
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

Result<RevisionSpec> Controller::Resolve(const ServiceRecord& rec, int revision,
                                         const std::string& definition_json) {
  boost::system::error_code ec;
  auto parsed = json::parse(definition_json, ec);
  if (ec) {
    return Status::Internal(fmt::format("stored definition of revision {} is not JSON", revision));
  }
  auto def = ParseDefinition(parsed);
  if (!def.ok()) {
    return def.status().WithContext(fmt::format("stored definition of revision {}", revision));
  }
  RevisionSpec spec;
  spec.revision = revision;
  spec.def = *def;
  BundleDefaults bundle;
  std::string context_root = DeploymentPath(rec.project, rec.name);
  if (def->container_tag) {
    auto artifacts = store_.ListArtifacts(rec.project, rec.name);
    if (!artifacts.ok()) {
      return artifacts.status();
    }
    auto it = std::find_if(artifacts->begin(), artifacts->end(),
                           [&](const ArtifactRecord& a) { return a.tag == *def->container_tag; });
    if (it == artifacts->end()) {
      spec.error = fmt::format(
          "artifact tag '{}' has not been pushed to service {}; push it with: berth push {} DIR "
          "--tag {}",
          *def->container_tag, rec.name, rec.name, *def->container_tag);
    } else {
      spec.cwd = artifacts_.UnpackedPath(it->digest);
      auto b = ReadBundleDefaults(spec.cwd);
      if (!b.ok()) {
        spec.error = b.status().message();
      } else {
        bundle = std::move(*b);
      }
    }
  }
  if (spec.cwd.empty()) {
    spec.cwd = ServiceDir(rec.project, rec.name) + "/work";
    std::error_code fec;
    fs::create_directories(spec.cwd, fec);
  }
  spec.argv = def->entrypoint;
  spec.argv.insert(spec.argv.end(), def->command.begin(), def->command.end());
  if (spec.argv.empty()) {
    spec.argv = bundle.command;
  }
  if (spec.argv.empty() && spec.error.empty()) {
    spec.error = "nothing to run: the definition has no command or entrypoint and the bundle "
                 "has no berth.yaml 'command'";
  }
  spec.port = def->container_port.value_or(bundle.port.value_or(8080));
  if (bundle.health_check && spec.def.health_check == HealthCheck{}) {
    spec.def.health_check = *bundle.health_check;
  }
  std::string rel = spec.def.health_check.rel_path;
  spec.health_path = spec.def.base_path == "strip" ? rel
                     : rel == "/"                  ? context_root + "/"
                                                   : context_root + rel;
  auto token = ServiceToken(rec.project, rec.name);
  if (!token.ok()) {
    return token.status();
  }
  std::map<std::string, std::string> env;
  for (const auto& name : def->inherited_environment) {
    if (const char* v = std::getenv(name.c_str())) {
      env[name] = v;
    }
  }
  env["PATH"] = std::getenv("PATH") ? std::getenv("PATH") : "/usr/local/bin:/usr/bin:/bin";
  env["CONTEXT_ROOT"] = context_root;
  env["BERTH_URL"] = options_.berth_url;
  env["BERTH_TOKEN"] = *token;
  env["BERTH_PROJECT"] = rec.project;
  env["BERTH_SERVICE"] = rec.name;
  env["BERTH_VERSION"] = std::to_string(revision);
  for (const auto& [k, v] : bundle.env) {
    env[k] = v;
  }
  for (const auto& e : def->environment) {
    env[e.name] = e.value;
  }
  // "$BASE_PATH_PREFIX" in env values and the command is the external base path (Orchest's
  // placeholder), for programs that must be told where they are served.
  auto expand_prefix = [&](std::string& text) {
    constexpr std::string_view kPlaceholder = "$BASE_PATH_PREFIX";
    for (size_t at = text.find(kPlaceholder); at != std::string::npos;
         at = text.find(kPlaceholder, at + context_root.size())) {
      text.replace(at, kPlaceholder.size(), context_root);
    }
  };
  env["BASE_PATH_PREFIX"] = context_root;
  for (auto& [k, v] : env) {
    expand_prefix(v);
    spec.env.push_back(k + "=" + v);
  }
  for (auto& arg : spec.argv) {
    expand_prefix(arg);
  }
  return spec;
}

Result<DesiredService> Controller::Desire(const ServiceRecord& rec) {
  DesiredService d;
  d.key = {rec.project, rec.name};
  d.running = rec.desired_running;
  d.active_revision = rec.active_revision;
  d.failed_revision = rec.failed_revision;
  if (rec.revision > 0) {
    auto latest = Resolve(rec, rec.revision, rec.definition_json);
    if (!latest.ok()) {
      return latest.status();
    }
    d.latest = std::move(*latest);
  }
  if (rec.active_revision > 0 && rec.active_revision != rec.revision) {
    auto revs = store_.ListRevisions(rec.project, rec.name);
    if (!revs.ok()) {
      return revs.status();
    }
    for (const auto& r : *revs) {
      if (r.revision == rec.active_revision) {
        auto active = Resolve(rec, r.revision, r.definition_json);
        if (!active.ok()) {
          return active.status();
        }
        d.active = std::move(*active);
      }
    }
  }
  return d;
}

Status Controller::Admit(const ServiceRecord& service, const Definition& def) {
  if (!def.memory_reservation_mb) {
    return Status::Ok();
  }
  uint64_t capacity = options_.memory_capacity_mb ? options_.memory_capacity_mb : MachineMemoryMb();
  if (capacity == 0) {
    return Status::Ok();
  }
  auto all = store_.ListAllServices();
  if (!all.ok()) {
    return all.status();
  }
  uint64_t reserved = 0;
  for (const auto& rec : *all) {
    if (!rec.desired_running || rec.revision == 0 ||
        (rec.project == service.project && rec.name == service.name)) {
      continue;
    }
    boost::system::error_code ec;
    auto v = json::parse(rec.definition_json, ec);
    if (ec) {
      continue;
    }
    if (auto other = ParseDefinition(v); other.ok() && other->memory_reservation_mb) {
      reserved += static_cast<uint64_t>(*other->memory_reservation_mb) *
                  static_cast<uint64_t>(other->replicas);
    }
  }
  uint64_t wanted =
      static_cast<uint64_t>(*def.memory_reservation_mb) * static_cast<uint64_t>(def.replicas);
  uint64_t left = capacity > reserved ? capacity - reserved : 0;
  if (wanted > left) {
    return Status::FailedPrecondition(fmt::format(
        "memory-reservation: {} replica(s) x {} MB = {} MB, but this machine has {} MB left "
        "({} MB in all, {} MB reserved by other services); lower the reservation or stop a "
        "service",
        def.replicas, *def.memory_reservation_mb, wanted, left, capacity, reserved));
  }
  return Status::Ok();
}

Status Controller::Refresh(const std::string& project, const std::string& name) {
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

Result<ArtifactRecord> Controller::PushArtifact(const std::string& project,
                                                const std::string& name, const std::string& tag,
                                                const std::string& upload_path) {
  auto ingested = artifacts_.Ingest(upload_path);
  if (!ingested.ok()) {
    return ingested.status();
  }
  std::string dir = artifacts_.UnpackedPath(ingested->digest);
  auto bundle = ReadBundleDefaults(dir);
  if (!bundle.ok()) {
    (void)artifacts_.Remove(ingested->digest);
    return bundle.status();
  }
  if (!bundle->build.empty()) {
    std::string marker = dir + "/.berth-built";
    if (!fs::exists(marker)) {
      std::string log = dir + "/.berth-build.log";
      auto rc = RunBuild(bundle->build, dir, log);
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

ServiceStatus Controller::StatusOf(const std::string& project, const std::string& name) const {
  return supervisor_->Status({project, name});
}

std::vector<Endpoint> Controller::Ready(const std::string& project, const std::string& name,
                                        std::optional<int> revision) const {
  return supervisor_->Ready({project, name}, revision);
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
    for (auto& raw : ReadLogTail(dir + "/logs", query.tail)) {
      // "<time> <stream> <message>"
      size_t a = raw.find(' ');
      size_t b = a == std::string::npos ? a : raw.find(' ', a + 1);
      if (b == std::string::npos) {
        continue;
      }
      LogLine l{raw.substr(0, a), raw.substr(a + 1, b - a - 1), raw.substr(b + 1), id, revision};
      if (!query.since.empty() && l.time <= query.since) {
        continue;
      }
      lines.push_back(std::move(l));
    }
  }
  std::stable_sort(lines.begin(), lines.end(),
                   [](const LogLine& x, const LogLine& y) { return x.time < y.time; });
  if (query.tail > 0 && lines.size() > query.tail) {
    lines.erase(lines.begin(), lines.end() - static_cast<std::ptrdiff_t>(query.tail));
  }
  return lines;
}

}  // namespace berth
