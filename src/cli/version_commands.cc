// The seed 001 workflow: `berth init`, `deploy NAME VERSION DIR`, `ls`, `assign`, `kill`, plus
// runtime parameters and notifications.
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "cli/command_util.h"
#include "cli/output.h"
#include "common/embedded.h"
#include "common/file_util.h"

namespace berth {
namespace json = boost::json;
namespace fs = std::filesystem;
namespace {

// "running (since 2020-11-23 10:29:01)", as seed 001 prints it.
std::string RunningText(const json::value& v) {
  std::string state = Str(Field(v, "state"));
  const json::value& since = Field(v, "since");
  if (state == "running" && since.is_string()) {
    std::string t(since.as_string());
    if (t.size() >= 19) {
      t = t.substr(0, 10) + " " + t.substr(11, 8);
    }
    return fmt::format("Running (since {})", t);
  }
  return fmt::format("{}/{} ready", Str(Field(v, "ready")), Str(Field(v, "desired")));
}

// MAIN NAME VERSION STATUS RUNNING for `names` (every versioned service when empty).
std::string VersionTable(const std::vector<json::value>& services) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& svc : services) {
    for (const auto& v : Field(svc, "versions").as_array()) {
      rows.push_back({Field(v, "main").as_bool() ? "*" : "", Str(Field(svc, "name")),
                      Str(Field(v, "version")), Str(Field(v, "state")), RunningText(v)});
    }
  }
  if (rows.empty()) {
    return "No versions deployed yet: berth deploy NAME VERSION DIR\n";
  }
  return FormatTable({"MAIN", "NAME", "VERSION", "STATUS", "RUNNING"}, rows);
}

json::value Versions(const std::string& name, const CommonOptions& opts) {
  return Call("GET", WithProject(fmt::format("/api/v1/services/{}/versions", name), opts));
}

// Since when a plain service is as its status word says: while running, the start of its
// live revision's oldest running instance; otherwise its newest event (what changed it).
json::value PlainSince(const json::value& st, const std::string& word) {
  std::string since;
  if (word == "running") {
    for (const auto& i : Field(st, "instances").as_array()) {
      std::string at = Str(Field(i, "started_at"));
      if (Str(Field(i, "state")) == "running" && !Field(i, "started_at").is_null() &&
          Field(i, "revision") == Field(st, "active_revision") && (since.empty() || at < since)) {
        since = at;
      }
    }
  } else if (const auto& events = Field(st, "events").as_array(); !events.empty()) {
    since = Str(Field(events[0], "time"));
  }
  return since.empty() ? json::value(nullptr) : json::value(since);
}

}  // namespace

void PrintServiceList(const CommonOptions& opts) {
  json::value list = Call("GET", WithProject("/api/v1/services", opts));
  std::vector<std::vector<std::string>> rows;
  for (auto& entry : list.as_object()["services"].as_array()) {
    json::object& svc = entry.as_object();
    std::string name = Str(Field(entry, "name"));
    std::string main = Str(Field(entry, "main_version"));
    if (!main.empty() && main != "-") {
      json::value versions = Versions(name, opts);
      for (const auto& v : Field(versions, "versions").as_array()) {
        rows.push_back({Field(v, "main").as_bool() ? "*" : "", name, Str(Field(v, "version")),
                        Str(Field(v, "state")), RunningText(v)});
        if (Field(v, "main").as_bool()) {
          svc["status"] = Field(v, "state");
          svc["ready"] = Field(v, "ready");
          svc["desired"] = Field(v, "desired");
          svc["since"] = Field(v, "since");
        }
      }
      svc["versions"] = Field(versions, "versions");
      continue;
    }
    json::value st =
        Call("GET", WithProject(fmt::format("/api/v1/services/{}/status", name), opts));
    std::string word = StatusWord(st);
    svc["status"] = word;
    svc["ready"] = Field(st, "running");
    svc["desired"] = Field(st, "desired");
    svc["since"] = PlainSince(st, word);
    int64_t revision = Field(entry, "revision").to_number<int64_t>();
    // A long reason belongs in `services show`; the table keeps its start.
    std::string shown = word.size() > 48 ? word.substr(0, 45) + "..." : word;
    json::value v = json::object{{"state", shown}, {"since", svc["since"]},
                                 {"ready", svc["ready"]}, {"desired", svc["desired"]}};
    rows.push_back({"", name, revision > 0 ? fmt::format("rev {}", revision) : "-", shown,
                    RunningText(v)});
  }
  if (rows.empty() && opts.output == "table") {
    std::cout << fmt::format("No services in project {}. Deploy one with 'berth deploy NAME "
                             "VERSION DIR', or create one with 'berth services create NAME'.\n",
                             Str(Field(list, "project")));
    return;
  }
  Print(opts, list, FormatTable({"MAIN", "NAME", "VERSION", "STATUS", "RUNNING"}, rows));
}

namespace {

bool Confirm(const std::string& question, bool yes) {
  if (yes) {
    return true;
  }
  if (!isatty(0)) {
    Fail(Status::FailedPrecondition(question + " — not asked without a terminal; pass --yes"));
  }
  std::cerr << question << " [y/N] " << std::flush;
  std::string answer;
  std::getline(std::cin, answer);
  return answer == "y" || answer == "Y" || answer == "yes";
}

void AddInit(CLI::App& app) {
  struct Args {
    std::string dir;
    std::string lang = "python";
    bool force = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* init = app.add_subcommand(
      "init", "Write a working hello service to DIR: code, berth.yaml, README and a test");
  init->add_option("dir", a->dir, "Folder to create")->required();
  init->add_option("--lang", a->lang, "python (default) or cpp")
      ->check(CLI::IsMember({"python", "cpp"}));
  init->add_flag("--force", a->force, "Write into a folder that is not empty");
  init->callback([a] {
    std::error_code ec;
    if (fs::exists(a->dir) && !fs::is_empty(a->dir, ec) && !a->force) {
      Fail(Status::AlreadyExists(fmt::format(
          "{} exists and is not empty; pick a new folder or pass --force", a->dir)));
    }
    const auto& files =
        a->lang == "cpp" ? embedded::cpp_scaffold() : embedded::python_scaffold();
    if (files.empty()) {
      Fail(Status::Internal("this berth was built without the " + a->lang + " scaffold"));
    }
    // The service is named after its folder, as `berth deploy NAME` will name it.
    std::string name = fs::path(a->dir).lexically_normal().filename().string();
    if (name.empty() || name == ".") {
      name = fs::path(a->dir).lexically_normal().parent_path().filename().string();
    }
    if (name.empty() || name == "." || name == "..") {
      name = "hello";
    }
    for (const auto& f : files) {
      fs::path p = fs::path(a->dir) / f.path;
      fs::create_directories(p.parent_path(), ec);
      std::string content(f.content);
      if (f.path == "README.md") {
        // Its commands and addresses name this service.
        for (size_t at; (at = content.find("@SERVICE@")) != std::string::npos;) {
          content.replace(at, 9, name);
        }
      }
      std::ofstream out(p, std::ios::binary);
      out.write(content.data(), static_cast<std::streamsize>(content.size()));
      if (!out) {
        Fail(Status::Internal(fmt::format("writing {}", p.string())));
      }
      std::cout << "  wrote " << p.string() << "\n";
    }
    std::cout << fmt::format(
        "A {} service is in {}. Deploy it:\n  berth deploy {} 1.0.0 {}\nthen call it:\n"
        "  curl -H \"Authorization: Bearer $TOKEN\" -d '{{\"name\": \"Ada\"}}' "
        "\"$BERTH_URL/default-{}/hello\"\n",
        a->lang == "cpp" ? "C++" : "Python", a->dir, name, a->dir, name);
  });
}

void AddDeploy(CLI::App& app, const std::shared_ptr<CommonOptions>& opts) {
  struct Args {
    std::string name;
    std::string version;
    std::string source;
    std::string file;
    bool no_wait = false;
    bool mirror = false;
    int timeout_s = 120;
  };
  auto a = std::make_shared<Args>();
  CLI::App* deploy = app.add_subcommand(
      "deploy",
      "Pack, push and run an immutable VERSION of a service; the first version becomes MAIN, "
      "later ones run beside it until `berth assign`");
  deploy->add_option("name", a->name, "Service name (created when missing)")->required();
  deploy->add_option("version", a->version, "Version, e.g. 1.0.0")->required();
  deploy->add_option("source", a->source, "Folder or bundle (tar, tar.gz, tar.zst)")->required();
  deploy->add_option("-f,--file", a->file,
                     "Definition overrides (YAML or JSON): replicas, env, memory-limit...");
  deploy->add_flag("--no-wait", a->no_wait, "Return once stored, without waiting until it runs");
  deploy->add_flag("--mirror", a->mirror,
                   "As a shadow, get a copy of MAIN's requests (answers discarded)");
  deploy->add_option("--timeout", a->timeout_s, "Seconds to wait for it to run (default 120)");
  AddCommon(deploy, opts, true);
  deploy->callback([opts, a] {
    json::object body{{"version", a->version}};
    if (!a->file.empty()) {
      auto text = ReadFile(a->file);
      if (!text.ok()) {
        Fail(text.status());
      }
      auto def = YamlToJson(*text);
      if (!def.ok()) {
        Fail(def.status().WithContext(a->file));
      }
      body["definition"] = *def;
    }
    if (a->mirror) {
      if (!body.contains("definition") || !body["definition"].is_object()) {
        body["definition"] = json::object{};
      }
      body["definition"].as_object()["mirror-traffic"] = true;
    }
    ApiClient client = Client();
    std::string service_path = WithProject(fmt::format("/api/v1/services/{}", a->name), *opts);
    auto existing = client.Call("GET", service_path);
    bool created = false;
    if (!existing.ok()) {
      if (existing.status().code() != StatusCode::kNotFound) {
        Fail(existing.status());
      }
      json::value create{{"name", a->name}};
      Call("POST", WithProject("/api/v1/services", *opts), &create);
      created = true;
    }
    bool human = opts->output != "json";
    if (human) {
      std::cerr << "Deploying service...\n";
    }
    json::value v;
    try {
      PushBundle(a->name, a->source, a->version, *opts);
      json::value b = body;
      v = Call("POST", WithProject(fmt::format("/api/v1/services/{}/versions", a->name), *opts),
               &b);
    } catch (const CLI::RuntimeError&) {
      if (created) {  // a failed first deploy leaves no empty service behind
        (void)client.Call("DELETE", service_path);
      }
      throw;
    }
    if (!a->no_wait) {
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(a->timeout_s);
      std::string path =
          WithProject(fmt::format("/api/v1/services/{}/versions/{}", a->name, a->version), *opts);
      int revision = static_cast<int>(Field(v, "revision").to_number<int64_t>());
      std::string status_path =
          WithProject(fmt::format("/api/v1/services/{}/status", a->name), *opts);
      Spinner progress(std::cerr, human && isatty(2) != 0, false);
      while (Str(Field(v, "state")) != "running") {
        progress.Show(fmt::format("version {}: {}, {}", a->version, Str(Field(v, "state")),
                                  RunningText(v)));
        // What the daemon already knows (nothing to run, a rollback) is said at once.
        if (std::string why = RevisionFailure(Call("GET", status_path), revision, a->version);
            !why.empty()) {
          Fail(Status::FailedPrecondition(why + LastLogLines(a->name, revision, *opts)));
        }
        std::string state = Str(Field(v, "state"));
        if (state == "crash-looping" || std::chrono::steady_clock::now() > deadline) {
          Fail(Status::Unavailable(fmt::format(
              "version {} of {} is {} ({}); see why with: berth logs {} {}", a->version, a->name,
              state, RunningText(v), a->name, a->version)));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
        v = Call("GET", path);
      }
    }
    if (human) {
      std::cerr << "Service deployed successfully\n";
    }
    Print(*opts, v, VersionTable({Versions(a->name, *opts)}));
  });
}

void AddLs(CLI::App& app, const std::shared_ptr<CommonOptions>& opts) {
  auto name = std::make_shared<std::string>();
  CLI::App* ls = app.add_subcommand(
      "ls", "List every service (as 'services ls'), or a service's versions: MAIN NAME VERSION "
            "STATUS RUNNING");
  ls->add_option("name", *name, "Only this service's versions");
  AddCommon(ls, opts, true);
  ls->callback([opts, name] {
    if (name->empty()) {
      PrintServiceList(*opts);
      return;
    }
    json::value versions = Versions(*name, *opts);
    Print(*opts, json::object{{"services", json::array{versions}}}, VersionTable({versions}));
  });
}

void AddAssignAndKill(CLI::App& app, const std::shared_ptr<CommonOptions>& opts) {
  struct Args {
    std::string name;
    std::string version;
    bool all = false;
    bool yes = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* assign = app.add_subcommand(
      "assign", "Make VERSION the MAIN version: the gateway moves traffic to it atomically");
  assign->add_option("name", a->name, "Service name")->required();
  assign->add_option("version", a->version, "Version to make MAIN")->required();
  AddCommon(assign, opts, true);
  assign->callback([opts, a] {
    json::value v = Call(
        "POST",
        WithProject(fmt::format("/api/v1/services/{}/versions/{}/assign", a->name, a->version),
                    *opts));
    Print(*opts, v,
          fmt::format("{} {} is MAIN (was {})\n", a->name, a->version,
                      Str(Field(v, "previous_main"))) +
              VersionTable({Versions(a->name, *opts)}));
  });

  CLI::App* kill = app.add_subcommand(
      "kill", "Stop and remove a version (asks first); MAIN only once no shadow runs, or --all");
  kill->add_option("name", a->name, "Service name")->required();
  kill->add_option("version", a->version, "Version to kill (default: the only one)");
  kill->add_flag("--all", a->all, "Kill every version and delete the service");
  kill->add_flag("-y,--yes", a->yes, "Do not ask");
  AddCommon(kill, opts, true);
  kill->callback([opts, a] {
    json::value versions = Versions(a->name, *opts);
    const auto& list = Field(versions, "versions").as_array();
    if (a->all) {
      if (!Confirm(fmt::format("Kill all {} version(s) of {} and delete the service?",
                               list.size(), a->name),
                   a->yes)) {
        Fail(Status::FailedPrecondition("nothing killed"));
      }
      json::value v = Call("DELETE", WithProject("/api/v1/services/" + a->name, *opts));
      Print(*opts, v, fmt::format("Killed every version of {}; the service is deleted\n", a->name));
      return;
    }
    std::string version = a->version;
    if (version.empty()) {
      if (list.size() != 1) {
        Fail(Status::InvalidArgument(fmt::format(
            "{} has {} versions: name the one to kill, or pass --all", a->name, list.size())));
      }
      version = Str(Field(list[0], "version"));
    }
    if (!Confirm(fmt::format("Kill version {} of {}?", version, a->name), a->yes)) {
      Fail(Status::FailedPrecondition("nothing killed"));
    }
    json::value v = Call(
        "DELETE",
        WithProject(fmt::format("/api/v1/services/{}/versions/{}", a->name, version), *opts));
    Print(*opts, v, fmt::format("Killed {} {}\n", a->name, version));
  });
}

void AddParams(CLI::App& app, const std::shared_ptr<CommonOptions>& opts) {
  CLI::App* params = app.add_subcommand("params", "Show and change a service's runtime parameters");
  params->require_subcommand(1);
  struct Args {
    std::string name;
    std::string param;
    std::string value;
  };
  auto a = std::make_shared<Args>();
  CLI::App* ls = params->add_subcommand("ls", "Parameters with their values and types");
  ls->add_option("name", a->name, "Service name")->required();
  AddCommon(ls, opts, true);
  ls->callback([opts, a] {
    json::value v =
        Call("GET", WithProject(fmt::format("/api/v1/services/{}/parameters", a->name), *opts));
    std::vector<std::vector<std::string>> rows;
    for (const auto& [k, p] : Field(v, "parameters").as_object()) {
      rows.push_back({std::string(k), json::serialize(Field(p, "value")), Str(Field(p, "type")),
                      Field(p, "stored").is_bool() && Field(p, "stored").as_bool() ? "yes" : "no"});
    }
    Print(*opts, v, FormatTable({"NAME", "VALUE", "TYPE", "STORED"}, rows));
  });
  CLI::App* set = params->add_subcommand(
      "set", "Set a parameter on every running instance and keep it for restarts");
  set->add_option("name", a->name, "Service name")->required();
  set->add_option("parameter", a->param, "Parameter name")->required();
  set->add_option("value", a->value, "New value: JSON (3, true, [1,2]) or else a string")
      ->required();
  AddCommon(set, opts, true);
  set->callback([opts, a] {
    boost::system::error_code ec;
    json::value value = json::parse(a->value, ec);
    if (ec) {
      value = json::string(a->value);
    }
    json::value body{{"value", value}};
    json::value v = Call(
        "POST",
        WithProject(fmt::format("/api/v1/services/{}/parameters/{}", a->name, a->param), *opts),
        &body);
    Print(*opts, v,
          fmt::format("{} = {} on {} instance(s)\n", a->param, json::serialize(Field(v, "value")),
                      Str(Field(v, "instances"))));
  });
}

void AddNotifications(CLI::App& app, const std::shared_ptr<CommonOptions>& opts) {
  CLI::App* group = app.add_subcommand("notifications", "Notifications raised by services");
  group->require_subcommand(1);
  auto filter = std::make_shared<std::string>();
  CLI::App* ls = group->add_subcommand("ls", "Notifications, the most recent first");
  ls->add_option("--service", *filter, "Only this service's");
  AddCommon(ls, opts, true);
  ls->callback([opts, filter] {
    std::string path = "/api/v1/notifications";
    if (!filter->empty()) {
      path += "?service=" + *filter;
    }
    json::value v = Call("GET", WithProject(path, *opts));
    std::vector<std::vector<std::string>> rows;
    for (const auto& n : Field(v, "notifications").as_array()) {
      rows.push_back({Str(Field(n, "id")), Str(Field(n, "severity")), Str(Field(n, "service")),
                      Str(Field(n, "version")), Str(Field(n, "count")), Str(Field(n, "last_at")),
                      Str(Field(n, "message"))});
    }
    Print(*opts, v,
          rows.empty() ? "No notifications\n"
                       : FormatTable({"ID", "SEVERITY", "SERVICE", "VERSION", "COUNT", "LAST",
                                      "MESSAGE"},
                                     rows));
  });
  auto id = std::make_shared<std::string>();
  CLI::App* rm = group->add_subcommand("rm", "Delete a notification (or all with --all)");
  rm->add_option("id", *id, "Notification id");
  auto all = std::make_shared<bool>(false);
  rm->add_flag("--all", *all, "Delete every notification of the project");
  AddCommon(rm, opts, true);
  rm->callback([opts, id, all] {
    if (id->empty() && !*all) {
      Fail(Status::InvalidArgument("name a notification id, or pass --all"));
    }
    json::value v = Call("DELETE", WithProject(*all ? std::string("/api/v1/notifications")
                                                    : "/api/v1/notifications/" + *id,
                                               *opts));
    Print(*opts, v, *all ? "Deleted every notification\n" : "Deleted notification " + *id + "\n");
  });
}

}  // namespace

void AddVersionCommands(CLI::App& app) {
  auto opts = std::make_shared<CommonOptions>();
  AddInit(app);
  AddDeploy(app, opts);
  AddLs(app, opts);
  AddAssignAndKill(app, opts);
  AddParams(app, opts);
  AddNotifications(app, opts);
}

}  // namespace berth
