#include "daemon/daemon.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "api/api.h"
#include "api/auth.h"
#include "api/server.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/time.h"
#include "control/controller.h"
#include "control/project_ops.h"
#include "control/service_ops.h"
#include "gateway/gateway.h"
#include "graph/recipe_engine.h"
#include "model/names.h"
#include "notify/dispatcher.h"
#include "pipeline/jobs.h"
#include "pipeline/run_engine.h"
#include "runtime/linux/address_claim.h"
#include "runtime/linux/linux_launcher.h"
#include "store/store.h"

namespace berth {
namespace {

namespace fs = std::filesystem;

// Holds an exclusive lock on DIR/berth.lock for the daemon's life so that two daemons never
// share one store. The file names the holder's pid. A daemon killed a moment ago may hold the
// lock until the last of its threads is gone, after its main thread already shows as
// exited: a start waits up to kWait for it before it refuses.
class DataDirLock {
 public:
  static constexpr auto kWait = std::chrono::seconds(3);

  static Result<std::unique_ptr<DataDirLock>> Acquire(const std::string& dir) {
    std::string path = dir + "/berth.lock";
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
      return ErrnoStatus("opening " + path, errno);
    }
    auto deadline = std::chrono::steady_clock::now() + kWait;
    while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      if (errno == EINTR) {
        continue;
      }
      if (errno != EWOULDBLOCK || std::chrono::steady_clock::now() >= deadline) {
        int e = errno;
        auto holder = ReadFile(path);
        ::close(fd);
        if (e != EWOULDBLOCK) {
          return ErrnoStatus("locking " + path, e);
        }
        std::string pid =
            holder.ok() ? holder->substr(0, holder->find_first_not_of("0123456789")) : "";
        return Status::FailedPrecondition(fmt::format(
            "another berth daemon is already using data directory {}{}; stop it or pick "
            "another --data-dir",
            dir, pid.empty() ? "" : fmt::format(" (pid {}, which holds {})", pid, path)));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
      LogWarn("cannot write the daemon's pid into its lock file", {{"file", path}});
    }
    return std::unique_ptr<DataDirLock>(new DataDirLock(fd));
  }
  ~DataDirLock() { ::close(fd_); }

 private:
  explicit DataDirLock(int fd) : fd_(fd) {}
  int fd_;
};

// First start: the "default" project and an admin token, written once to DIR/admin.token.
// The token file is written before its hash is stored: a crash in between leaves no usable
// admin token in the store, so the next start makes a new one and overwrites the file.
Status Bootstrap(Store& store, const std::string& data_dir) {
  auto p = store.GetProject(kDefaultProject);
  if (!p.ok()) {
    if (p.status().code() != StatusCode::kNotFound) {
      return p.status();
    }
    auto created = store.CreateProject(kDefaultProject);
    if (!created.ok() && created.status().code() != StatusCode::kAlreadyExists) {
      return created.status();
    }
    LogInfo("created project", {{"project", std::string(kDefaultProject)}});
  }
  std::string token_path = data_dir + "/admin.token";
  auto admins = store.CountActiveAdminTokens();
  if (!admins.ok()) {
    return admins.status();
  }
  if (*admins > 0) {
    LogInfo("admin token", {{"file", token_path}});
    return Status::Ok();
  }
  auto token = GenerateToken();
  if (!token.ok()) {
    return token.status();
  }
  if (auto s = WriteFileAtomic(token_path, token->secret + "\n", 0600); !s.ok()) {
    return s;
  }
  auto info = store.CreateToken(token->id, token->hash, std::nullopt, "created at first start");
  if (!info.ok()) {
    return info.status();
  }
  // The secret stays out of the log: whoever reads the daemon's output (journald, a CI log)
  // is not therefore an administrator.
  LogInfo("created admin token; its secret is only in the file (mode 0600)",
          {{"id", token->id}, {"file", token_path}});
  return Status::Ok();
}

// Where the Python SDK lives: BERTH_SDK_PYTHON, else the source tree this binary was built
// from.
std::string SdkPythonDir() {
  if (const char* v = std::getenv("BERTH_SDK_PYTHON"); v && *v) {
    return v;
  }
  return BERTH_SDK_PYTHON_DIR;
}

Result<int> ParseThreads(std::string_view text, std::string_view source) {
  int n = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || ptr != text.data() + text.size() || n < 1 || n > 256) {
    return Status::InvalidArgument(
        fmt::format("threads from {}: '{}' is not a number between 1 and 256", source, text));
  }
  return n;
}

// "127.0.0.1:8080", "[::1]:8080", "localhost:8080": only this machine can connect.
bool ListensOnLoopbackOnly(const std::string& listen) {
  std::string host = listen.substr(0, listen.rfind(':'));
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return host == "localhost" || host == "::1" || host.starts_with("127.");
}

}  // namespace

Result<DaemonConfig> ResolveDaemonConfig(const DaemonFlags& flags) {
  DaemonConfig c;
  // Lowest precedence first: config file, then env, then flags.
  if (flags.config_file) {
    YAML::Node root;
    try {
      root = YAML::LoadFile(*flags.config_file);
    } catch (const YAML::Exception& e) {
      return Status::InvalidArgument(
          fmt::format("reading config file {}: {}", *flags.config_file, e.what()));
    }
    if (!root.IsMap() && !root.IsNull()) {
      return Status::InvalidArgument(fmt::format(
          "config file {}: must be a mapping of data-dir, listen, threads, public-url",
          *flags.config_file));
    }
    for (const auto& kv : root) {
      std::string key = kv.first.as<std::string>();
      std::string value = kv.second.IsScalar() ? kv.second.as<std::string>() : "";
      if (key == "data-dir") {
        c.data_dir = value;
      } else if (key == "listen") {
        c.listen = value;
      } else if (key == "threads") {
        auto n = ParseThreads(value, "config file " + *flags.config_file);
        if (!n.ok()) {
          return n.status();
        }
        c.threads = *n;
      } else if (key == "public-url") {
        c.public_url = value;
      } else if (key == "smtp" && kv.second.IsMap()) {
        for (const auto& sk : kv.second) {
          std::string k = sk.first.as<std::string>();
          std::string v = sk.second.as<std::string>();
          if (k == "url") {
            c.smtp_url = v;
          } else if (k == "from") {
            c.smtp_from = v;
          } else if (k == "user") {
            c.smtp_user = v;
          } else if (k == "password") {
            c.smtp_password = v;
          } else if (k == "starttls") {
            c.smtp_starttls = v == "true" || v == "yes" || v == "1";
          } else {
            return Status::InvalidArgument(fmt::format(
                "config file {}: unknown smtp key '{}'; known keys are url, from, user, "
                "password, starttls",
                *flags.config_file, k));
          }
        }
      } else if (key == "webhooks" && kv.second.IsSequence()) {
        for (const auto& w : kv.second) {
          c.webhooks.push_back(w.as<std::string>());
        }
      } else {
        return Status::InvalidArgument(fmt::format(
            "config file {}: unknown key '{}'; known keys are data-dir, listen, threads, "
            "public-url, smtp (a mapping), webhooks (a list)",
            *flags.config_file, key));
      }
    }
  }
  if (const char* v = std::getenv("BERTH_DATA_DIR"); v && *v) {
    c.data_dir = v;
  }
  if (const char* v = std::getenv("BERTH_LISTEN"); v && *v) {
    c.listen = v;
  }
  if (const char* v = std::getenv("BERTH_THREADS"); v && *v) {
    auto n = ParseThreads(v, "BERTH_THREADS");
    if (!n.ok()) {
      return n.status();
    }
    c.threads = *n;
  }
  if (const char* v = std::getenv("BERTH_PUBLIC_URL"); v && *v) {
    c.public_url = v;
  }
  for (auto [name, field] : {std::pair<const char*, std::string*>{"BERTH_SMTP_URL", &c.smtp_url},
                             {"BERTH_SMTP_FROM", &c.smtp_from},
                             {"BERTH_SMTP_USER", &c.smtp_user},
                             {"BERTH_SMTP_PASSWORD", &c.smtp_password}}) {
    if (const char* v = std::getenv(name); v && *v) {
      *field = v;
    }
  }
  if (flags.smtp_url) {
    c.smtp_url = *flags.smtp_url;
  }
  if (flags.smtp_from) {
    c.smtp_from = *flags.smtp_from;
  }
  c.webhooks.insert(c.webhooks.end(), flags.webhooks.begin(), flags.webhooks.end());
  if (!c.smtp_url.empty() && !c.smtp_url.starts_with("smtp://") &&
      !c.smtp_url.starts_with("smtps://")) {
    return Status::InvalidArgument(fmt::format(
        "smtp url '{}': must be smtp://HOST:PORT or smtps://HOST:PORT", c.smtp_url));
  }
  for (const auto& w : c.webhooks) {
    if (!w.starts_with("http://") && !w.starts_with("https://")) {
      return Status::InvalidArgument(
          fmt::format("webhook '{}': must be an http:// or https:// URL", w));
    }
  }
  if (flags.data_dir) {
    c.data_dir = *flags.data_dir;
  }
  if (flags.listen) {
    c.listen = *flags.listen;
  }
  if (flags.threads) {
    if (*flags.threads < 1 || *flags.threads > 256) {
      return Status::InvalidArgument(
          fmt::format("--threads {}: must be between 1 and 256", *flags.threads));
    }
    c.threads = *flags.threads;
  }
  if (flags.public_url) {
    c.public_url = *flags.public_url;
  }
  if (const char* v = std::getenv("BERTH_CONFINE"); v && *v != '\0') {
    std::string_view s(v);
    if (s != "0" && s != "1") {
      return Status::InvalidArgument(
          fmt::format("BERTH_CONFINE={:?}: must be 1 (confine programs, the default) or 0", s));
    }
    c.confine = s == "1";
  }
  if (flags.confine) {
    c.confine = *flags.confine;
  }
  if (flags.build_timeout_s) {
    if (*flags.build_timeout_s < 1 || *flags.build_timeout_s > 86400) {
      return Status::InvalidArgument(fmt::format(
          "--build-timeout {}: must be between 1 and 86400 seconds", *flags.build_timeout_s));
    }
    c.build_timeout_s = *flags.build_timeout_s;
  }
  if (c.data_dir.empty()) {
    return Status::InvalidArgument("data directory is empty; pass --data-dir DIR");
  }
  return c;
}

int RunDaemon(const DaemonConfig& config) {
  BlockShutdownSignals();
  std::error_code fec;
  fs::create_directories(config.data_dir, fec);
  if (fec) {
    LogError("cannot create data directory",
             {{"dir", config.data_dir}, {"error", fec.message()}});
    return 1;
  }
  std::string dir = fs::absolute(config.data_dir, fec).lexically_normal().string();
  while (dir.size() > 1 && dir.back() == '/') {
    dir.pop_back();
  }
  ::chmod(dir.c_str(), 0700);

  auto lock = DataDirLock::Acquire(dir);
  if (!lock.ok()) {
    LogError("cannot start", {{"error", lock.status().message()}});
    return 1;
  }
  auto store = OpenStore({"sqlite://" + dir + "/state.db"});
  if (!store.ok()) {
    LogError("cannot open store", {{"error", store.status().message()}});
    return 1;
  }
  if (auto s = Bootstrap(**store, dir); !s.ok()) {
    LogError("cannot initialise store", {{"error", s.message()}});
    return 1;
  }
  // Instances claim their addresses in a directory every daemon of the machine shares.
  auto launcher = MakeLinuxLauncher(SelfExecutable(), kAddressClaimsDir);
  // One authenticator for API and gateway, so that a revoked token stops working in both.
  // The gateway accepts tokens of the service's project, or admin tokens.
  Authenticator gateway_auth(**store);
  Gateway gateway(GatewayOptions{}, [&gateway_auth](std::string_view token)
                                        -> std::optional<std::string> {
    auto who = gateway_auth.Authenticate(token);
    if (!who.ok()) {
      return std::nullopt;
    }
    return who->project.value_or("");
  });
  DispatcherOptions dopts;
  dopts.smtp = {config.smtp_url, config.smtp_from, config.smtp_user, config.smtp_password,
                config.smtp_starttls};
  dopts.webhooks = config.webhooks;
  Dispatcher dispatcher(dopts);
  ControllerOptions copts;
  copts.data_dir = dir;
  // Decision 9: programs run as their project's user, unless this daemon cannot confine them.
  copts.confinement.data_dir = dir;
  copts.confinement.shared = {SdkPythonDir(),
                              std::filesystem::path(SelfExecutable()).parent_path().string()};
  // Bundles built with the C++ SDK find its CMake package (find_package(berth_sdk)): the one
  // setting builds get from the daemon, whose own environment they never see.
  const char* prefix = std::getenv("CMAKE_PREFIX_PATH");
  std::string cmake_prefix = prefix != nullptr ? prefix : BERTH_SDK_CMAKE_DIR;
  copts.build_env = {"CMAKE_PREFIX_PATH=" + cmake_prefix};
  for (size_t at = 0; at <= cmake_prefix.size();) {
    size_t colon = std::min(cmake_prefix.find(':', at), cmake_prefix.size());
    if (colon > at) {
      copts.confinement.shared.push_back(cmake_prefix.substr(at, colon - at));
    }
    at = colon + 1;
  }
  copts.confinement.shared.push_back(BERTH_SDK_CPP_SOURCE_DIR);  // its headers
  std::string unconfined_why = "turned off (--no-confine or BERTH_CONFINE=0)";
  copts.confinement.enabled = config.confine && ConfinementAvailable(&unconfined_why);
  copts.build_timeout = std::chrono::seconds(config.build_timeout_s);
  if (copts.confinement.enabled) {
    LogInfo("programs run as their project's user",
            {{"uids_from", std::to_string(copts.confinement.uid_base + 1)}});
  } else {
    LogWarn("programs run as the daemon's user, unconfined",
            {{"reason", unconfined_why}});
  }
  copts.routes = &gateway.routes();
  copts.sdk_python_dir = SdkPythonDir();
  copts.on_notification = [&dispatcher](const NotificationRecord& n) {
    NotificationMessage m;
    m.id = n.id;
    m.project = n.project;
    m.service = n.service;
    m.version = n.version;
    m.severity = n.severity;
    m.message = n.message;
    m.count = n.count;
    m.first_at = FormatRfc3339Millis(n.first_at);
    m.last_at = FormatRfc3339Millis(n.last_at);
    boost::system::error_code ec;
    auto emails = boost::json::parse(n.emails_json, ec);
    if (!ec && emails.is_array()) {
      for (const auto& e : emails.as_array()) {
        if (e.is_string()) {
          m.emails.emplace_back(e.as_string());
        }
      }
    }
    m.timer_s = n.timer_s;
    dispatcher.Deliver(std::move(m));
  };
  // The URL instances use to reach the API; fixed up below once the port is known.
  RealClock clock;
  Controller controller(**store, *launcher, clock, copts);
  // Pipeline runs: their steps are tasks of the controller's runtime.
  RunEngineOptions ropts;
  ropts.runs_dir = dir + "/runs";
  ropts.publish = [&controller](const std::string& project, const std::string& kind,
                                const std::string& data) {
    controller.Publish(project, kind, data);
  };
  // Services scoped to jobs (seed 000) run while the project has job runs.
  ServiceOps service_ops(**store, controller);
  ProjectOps project_ops(**store, controller, service_ops);
  ropts.job_services = [&project_ops](const std::string& project, bool running) {
    if (auto s = project_ops.SetJobServicesRunning(project, running); !s.ok()) {
      LogWarn("cannot change jobs-scoped services", {{"project", project}, {"error", s.message()}});
    }
  };
  ropts.job_services_ready = [&project_ops](const std::string& project) {
    return project_ops.JobServicesReady(project);
  };
  RunEngine runs(
      **store, controller.runtime(), clock,
      [&controller](const std::string& project) { return controller.TaskContextOf(project); },
      ropts);
  // Recipes: their nodes are tasks of the same runtime; berth-node sits beside berth.
  RecipeEngineOptions reopts;
  reopts.data_dir = dir;
  reopts.node_program =
      (std::filesystem::path(SelfExecutable()).parent_path() / "berth-node").string();
  reopts.context = [&controller](const std::string& project) {
    return controller.TaskContextOf(project);
  };
  reopts.publish = ropts.publish;
  reopts.notify = [&controller](const NotificationRecord& n) {
    if (auto r = controller.Notify(n); !r.ok()) {
      LogWarn("cannot store a recipe's notification", {{"error", r.status().message()}});
    }
  };
  reopts.unpacked_path = [&controller](const std::string& digest) {
    return controller.BundleDir(digest);
  };
  RecipeEngine recipes(**store, controller.runtime(), clock, reopts);
  controller.SetTaskListener([&runs, &recipes](const TaskStatus& t) {
    runs.OnTaskEnded(t);
    recipes.OnTaskEnded(t);
  });
  JobsOptions jopts;
  jopts.publish = ropts.publish;
  Jobs jobs(**store, runs, jopts);
  ApiOptions aopts{config.public_url};
  aopts.neptune_without_token = ListensOnLoopbackOnly(config.listen);
  auto api = MakeApiHandler(**store, aopts, controller, runs, jobs, recipes, &gateway,
                            &gateway_auth);
  ServerOptions sopts;
  sopts.listen = config.listen;
  sopts.threads = config.threads;
  sopts.max_body_bytes = config.max_body_bytes;
  auto server = HttpServer::Start(sopts, *api, &gateway);
  if (!server.ok()) {
    LogError("cannot start listener", {{"error", server.status().message()}});
    return 1;
  }
  std::string addr = (*server)->LocalAddress();
  std::string url = "http://" + addr;
  controller.SetBerthUrl(url);
  if (auto s = controller.Start(); !s.ok()) {
    LogError("cannot start the runtime", {{"error", s.message()}});
    (*server)->Stop();
    return 1;
  }
  // After the runtime re-adopted the steps still running, so that their results are known.
  if (auto s = runs.Start(); !s.ok()) {
    LogError("cannot resume pipeline runs", {{"error", s.message()}});
    (*server)->Stop();
    controller.Shutdown();
    return 1;
  }
  jobs.Start();
  if (auto s = recipes.Start(); !s.ok()) {
    LogError("cannot load recipes", {{"error", s.message()}});
    (*server)->Stop();
    jobs.Shutdown();
    runs.Shutdown();
    controller.Shutdown();
    return 1;
  }
  // Tools and tests find a daemon started on port 0 through this file.
  std::string info = fmt::format("{{\"pid\": {}, \"address\": \"{}\", \"url\": \"{}\"}}\n",
                                 ::getpid(), addr, url);
  if (auto s = WriteFileAtomic(dir + "/daemon.json", info, 0644); !s.ok()) {
    LogWarn("cannot write daemon.json", {{"error", s.message()}});
  }
  LogInfo("berth is listening", {{"url", url},
                                 {"data_dir", dir},
                                 {"threads", std::to_string(config.threads)},
                                 {"admin_token_file", dir + "/admin.token"}});
  (*server)->WaitForShutdownSignal();
  (*server)->Stop();
  gateway.Shutdown();
  server->reset();  // its io_context owns what the gateway and sessions still reference
  // Instances and steps keep running under their shims; the next daemon re-adopts them.
  jobs.Shutdown();
  recipes.Shutdown();
  runs.Shutdown();
  controller.Shutdown();
  dispatcher.Shutdown();
  ::unlink((dir + "/daemon.json").c_str());
  LogInfo("stopped");
  return 0;
}


void AddServeCommand(CLI::App& app) {
  auto flags = std::make_shared<DaemonFlags>();
  CLI::App* serve = app.add_subcommand(
      "serve",
      "Run the berth daemon: the REST API, the servicectl dialect and the gateway");
  serve->add_option_function<std::string>(
      "--data-dir", [flags](const std::string& v) { flags->data_dir = v; },
      "Where berth keeps its store and admin token [env BERTH_DATA_DIR; default ./berth-data]");
  serve->add_option_function<std::string>(
      "--listen", [flags](const std::string& v) { flags->listen = v; },
      "Address to listen on, HOST:PORT; port 0 picks a free one [env BERTH_LISTEN; default "
      "127.0.0.1:8080]");
  serve->add_option_function<int>(
      "--threads", [flags](int v) { flags->threads = v; },
      "Worker threads of the listener [env BERTH_THREADS; default 2]");
  serve->add_option_function<std::string>(
      "--public-url", [flags](const std::string& v) { flags->public_url = v; },
      "URL users reach berth under, for deployment links [env BERTH_PUBLIC_URL]");
  serve->add_option_function<std::string>(
      "--config", [flags](const std::string& v) { flags->config_file = v; },
      "YAML file with data-dir, listen, threads, public-url (flags and env override it)");
  serve->add_option_function<std::string>(
      "--smtp-url", [flags](const std::string& v) { flags->smtp_url = v; },
      "Mail notifications through this server, smtp://HOST:PORT or smtps://HOST:PORT "
      "[env BERTH_SMTP_URL; BERTH_SMTP_USER, BERTH_SMTP_PASSWORD for login]");
  serve->add_option_function<std::string>(
      "--smtp-from", [flags](const std::string& v) { flags->smtp_from = v; },
      "Sender address of notification emails [env BERTH_SMTP_FROM; default berth@localhost]");
  serve->add_option_function<std::vector<std::string>>(
      "--webhook", [flags](const std::vector<std::string>& v) { flags->webhooks = v; },
      "POST every notification as JSON to this URL (repeatable; retried on failure)");
  serve->add_option_function<int>(
      "--build-timeout", [flags](int v) { flags->build_timeout_s = v; },
      "Seconds a bundle's build command may run before it is killed and the push refused "
      "[default 600]");
  serve->add_flag_function(
      "--confine", [flags](std::int64_t) { flags->confine = true; },
      "Run every program as its project's unprivileged user, with the data dir hidden and a "
      "private /tmp; the default when the daemon runs as root [env BERTH_CONFINE=1]");
  serve->add_flag_function(
      "--no-confine", [flags](std::int64_t) { flags->confine = false; },
      "Run programs as the daemon's user with its view of the filesystem: only where every "
      "project trusts every other [env BERTH_CONFINE=0]");
  serve->callback([flags] {
    auto config = ResolveDaemonConfig(*flags);
    if (!config.ok()) {
      LogError("bad configuration", {{"error", config.status().message()}});
      throw CLI::RuntimeError(2);
    }
    int rc = RunDaemon(*config);
    if (rc != 0) {
      throw CLI::RuntimeError(rc);
    }
  });
}

}  // namespace berth
