#include "cli/cli.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "cli/api_client.h"
#include "cli/client_config.h"
#include "cli/command_util.h"
#include "cli/output.h"

namespace berth {
namespace json = boost::json;
namespace {

void AddLogin(CLI::App& app) {
  struct Args {
    std::string url;
    std::string token;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "login", "Save the daemon's URL and a token for later commands (checked first)");
  cmd->add_option("url", a->url, "berth URL, e.g. http://127.0.0.1:8080")->required();
  cmd->add_option("--token", a->token,
                  "API token (the admin token is in DATA_DIR/admin.token)")
      ->required();
  cmd->callback([a] {
    std::string url = a->url;
    while (url.size() > 7 && url.back() == '/') {
      url.pop_back();
    }
    auto who = ApiClient(url, a->token).Call("GET", "/api/v1/whoami");
    if (!who.ok()) {
      Fail(who.status().WithContext("checking the token"));
    }
    if (auto s = SaveClientConfig({url, a->token}); !s.ok()) {
      Fail(s);
    }
    const json::value& project = Field(who->body, "project");
    std::cout << fmt::format("Logged in to {} as {} ({}); saved to {}\n", url,
                             Str(Field(who->body, "token_id")),
                             project.is_null() ? "admin" : "project " + Str(project),
                             ClientConfigPath());
  });
}

void AddProjects(CLI::App& app) {
  CLI::App* group = app.add_subcommand("projects", "List and create projects");
  group->require_subcommand(1);
  auto opts = std::make_shared<CommonOptions>();

  CLI::App* ls = group->add_subcommand("ls", "List projects");
  AddCommon(ls, opts, false);
  ls->callback([opts] {
    json::value v = Call("GET", "/api/v1/projects");
    std::vector<std::vector<std::string>> rows;
    for (const auto& p : Field(v, "projects").as_array()) {
      rows.push_back({Str(Field(p, "name")), Str(Field(p, "created_at"))});
    }
    Print(*opts, v, FormatTable({"NAME", "CREATED"}, rows));
  });

  auto name = std::make_shared<std::string>();
  CLI::App* create = group->add_subcommand("create", "Create a project (admin token)");
  create->add_option("name", *name, "Project name: lowercase letters, digits and '_'")
      ->required();
  AddCommon(create, opts, false);
  create->callback([opts, name] {
    json::value body = json::object{{"name", *name}};
    json::value v = Call("POST", "/api/v1/projects", &body);
    Print(*opts, v, fmt::format("Created project {}\n", Str(Field(v, "name"))));
  });
}

void AddTokens(CLI::App& app) {
  CLI::App* group = app.add_subcommand("tokens", "Create, list and revoke API tokens");
  group->require_subcommand(1);
  auto opts = std::make_shared<CommonOptions>();

  struct CreateArgs {
    bool admin = false;
    std::string description;
  };
  auto ca = std::make_shared<CreateArgs>();
  CLI::App* create = group->add_subcommand(
      "create", "Create a token for a project (or --admin); the secret is shown once");
  create->add_flag("--admin", ca->admin, "Create an admin token (admin tokens only)");
  create->add_option("-d,--description", ca->description, "What the token is for");
  AddCommon(create, opts, true);
  create->callback([opts, ca] {
    json::object body;
    if (ca->admin) {
      body["admin"] = true;
    }
    if (!opts->project.empty()) {
      body["project"] = opts->project;
    }
    if (!ca->description.empty()) {
      body["description"] = ca->description;
    }
    json::value b = body;
    json::value v = Call("POST", "/api/v1/tokens", &b);
    const json::value& project = Field(v, "project");
    Print(*opts, v,
          fmt::format("Created token {} for {}.\nSave it now; berth keeps only its hash:\n{}\n",
                      Str(Field(v, "id")),
                      project.is_null() ? "admin" : "project " + Str(project),
                      Str(Field(v, "token"))));
  });

  CLI::App* ls = group->add_subcommand("ls", "List tokens (ids, never secrets)");
  AddCommon(ls, opts, true);
  ls->callback([opts] {
    json::value v = Call("GET", WithProject("/api/v1/tokens", *opts));
    std::vector<std::vector<std::string>> rows;
    for (const auto& t : Field(v, "tokens").as_array()) {
      rows.push_back({Str(Field(t, "id")),
                      Field(t, "admin").as_bool() ? "(admin)" : Str(Field(t, "project")),
                      Field(t, "revoked").as_bool() ? "revoked" : "active",
                      Str(Field(t, "created_at")), Str(Field(t, "description"))});
    }
    Print(*opts, v, FormatTable({"ID", "PROJECT", "STATE", "CREATED", "DESCRIPTION"}, rows));
  });

  auto id = std::make_shared<std::string>();
  CLI::App* revoke = group->add_subcommand("revoke", "Revoke a token by id");
  revoke->add_option("id", *id, "Token id, e.g. tk_1a2b3c4d5e6f")->required();
  AddCommon(revoke, opts, false);
  revoke->callback([opts, id] {
    json::value v = Call("DELETE", "/api/v1/tokens/" + *id);
    Print(*opts, v, fmt::format("Revoked token {}\n", *id));
  });
}

std::string ReadFileOrFail(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    Fail(Status::NotFound(fmt::format("cannot read definition file '{}'", path)));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string DescribeService(const json::value& s) {
  std::string out;
  out += fmt::format("Name:      {}\n", Str(Field(s, "name")));
  out += fmt::format("Project:   {}\n", Str(Field(s, "project")));
  out += fmt::format("URL:       {}\n", Str(Field(s, "url")));
  out += fmt::format("Revision:  {}\n", Str(Field(s, "revision")));
  out += fmt::format("Created:   {}\n", Str(Field(s, "created_at")));
  out += fmt::format("Updated:   {}\n", Str(Field(s, "updated_at")));
  const json::value& def = Field(s, "definition");
  if (def.is_null()) {
    out += "Definition: none yet (berth services update NAME -f definition.yaml)\n";
  } else {
    out += "Definition:\n" + PrettyJson(def);
  }
  return out;
}

CLI::App* AddServices(CLI::App& app) {
  CLI::App* group = app.add_subcommand("services", "Register, define and remove services");
  group->require_subcommand(1);
  auto opts = std::make_shared<CommonOptions>();
  auto name = std::make_shared<std::string>();

  CLI::App* ls = group->add_subcommand(
      "ls", "List every service: MAIN NAME VERSION STATUS RUNNING (the same as 'berth ls')");
  AddCommon(ls, opts, true);
  ls->callback([opts] { PrintServiceList(*opts); });

  CLI::App* create = group->add_subcommand("create", "Register a new, empty service");
  create->add_option("name", *name, "Service name: a-z, 0-9, '-'")->required();
  AddCommon(create, opts, true);
  create->callback([opts, name] {
    json::value body = json::object{{"name", *name}};
    json::value v = Call("POST", WithProject("/api/v1/services", *opts), &body);
    Print(*opts, v,
          fmt::format("Created service {} at {}\nNext: berth services update {}{} -f "
                      "definition.yaml\n",
                      Str(Field(v, "name")), Str(Field(v, "url")), *name,
                      opts->project.empty() ? "" : " -p " + opts->project));
  });

  CLI::App* show = group->add_subcommand(
      "show", "Show a service: definition, instances and recent events");
  show->add_option("name", *name, "Service name")->required();
  AddCommon(show, opts, true);
  show->callback([opts, name] {
    json::value v = Call("GET", WithProject("/api/v1/services/" + *name, *opts));
    json::value st = Call("GET", WithProject("/api/v1/services/" + *name + "/status", *opts));
    if (opts->output == "json") {
      v.as_object()["status"] = st;
    }
    Print(*opts, v, DescribeService(v) + DescribeStatus(st));
  });

  auto file = std::make_shared<std::string>();
  auto detach = std::make_shared<bool>(false);
  auto timeout_s = std::make_shared<int>(120);
  CLI::App* update = group->add_subcommand(
      "update",
      "Store a new definition revision from a YAML or JSON file and wait until it is live");
  update->add_option("name", *name, "Service name")->required();
  update->add_option("-f,--file", *file, "Definition file (YAML or JSON; '-' for stdin)")
      ->required();
  update->add_flag("-d,--detach", *detach, "Return once the revision is stored");
  update->add_option("--timeout", *timeout_s, "Seconds to wait for it to go live (default 120)");
  update->footer(
      "Without --detach it shows the rollout until the new revision is live, and exits 1 with\n"
      "the reason when the revision cannot run or is rolled back (the old one keeps serving).");
  AddCommon(update, opts, true);
  update->callback([opts, name, file, detach, timeout_s] {
    std::string text;
    if (*file == "-") {
      std::stringstream ss;
      ss << std::cin.rdbuf();
      text = ss.str();
    } else {
      text = ReadFileOrFail(*file);
    }
    auto def = YamlToJson(text);
    if (!def.ok()) {
      Fail(def.status().WithContext(*file));
    }
    json::value v = Call("PUT", WithProject("/api/v1/services/" + *name, *opts), &*def);
    if (!*detach) {
      WaitForRollout(*name, static_cast<int>(Field(v, "revision").to_number<int64_t>()), *opts,
                     *timeout_s);
    }
    Print(*opts, v,
          fmt::format("Service {} is at revision {}\n", *name, Str(Field(v, "revision"))));
  });

  CLI::App* rm = group->add_subcommand("rm", "Delete a service and its revisions");
  rm->alias("delete");
  rm->add_option("name", *name, "Service name")->required();
  AddCommon(rm, opts, true);
  rm->callback([opts, name] {
    json::value v = Call("DELETE", WithProject("/api/v1/services/" + *name, *opts));
    Print(*opts, v, fmt::format("Deleted service {}\n", *name));
  });
  return group;
}

}  // namespace

void AddClientCommands(CLI::App& app) {
  AddLogin(app);
  AddProjects(app);
  AddTokens(app);
  CLI::App* services = AddServices(app);
  AddRuntimeCommands(app, *services);
  AddVersionCommands(app);
  AddOrchestCommands(app);
  AddPipelineCommands(app);
  AddRecipeCommands(app);
}

}  // namespace berth
