// Seed 000's workflow: `berth template ls`, `berth add TEMPLATE`, and sessions.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>

#include "cli/command_util.h"
#include "cli/output.h"

namespace berth {
namespace json = boost::json;
namespace {

void AddTemplates(CLI::App& app, const std::shared_ptr<CommonOptions>& opts) {
  CLI::App* group = app.add_subcommand("template", "Service templates: Redis, Postgres, Jupyter...");
  group->require_subcommand(1);
  CLI::App* ls = group->add_subcommand("ls", "Templates, whether their program is installed, their values");
  AddCommon(ls, opts, false);
  ls->callback([opts] {
    json::value v = Call("GET", "/api/v1/templates");
    std::vector<std::vector<std::string>> rows;
    for (const auto& t : Field(v, "templates").as_array()) {
      std::string values;
      for (const auto& val : Field(t, "values").as_array()) {
        values += (values.empty() ? "" : " ") + Str(Field(val, "name")) +
                  (Field(val, "required").as_bool() ? "(required)"
                                                    : "=" + Str(Field(val, "default")));
      }
      rows.push_back({Str(Field(t, "name")), Field(t, "installed").as_bool() ? "yes" : "no",
                      values.empty() ? "-" : values, Str(Field(t, "description"))});
    }
    Print(*opts, v, FormatTable({"TEMPLATE", "INSTALLED", "VALUES", "DESCRIPTION"}, rows));
  });

  struct Args {
    std::string template_name;
    std::string name;
    std::vector<std::string> sets;
  };
  auto a = std::make_shared<Args>();
  CLI::App* add = app.add_subcommand("add", "Add a service from a template and start it");
  add->add_option("template", a->template_name, "Template (berth template ls)")->required();
  add->add_option("--name", a->name, "Service name (default: the template's)");
  add->add_option("--set", a->sets, "A template value, key=value (repeatable)");
  AddCommon(add, opts, true);
  add->callback([opts, a] {
    json::object values;
    for (const auto& kv : a->sets) {
      size_t eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) {
        Fail(Status::InvalidArgument(fmt::format("--set {}: write it as key=value", kv)));
      }
      values[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    json::value body = json::object{{"values", values}};
    if (!a->name.empty()) {
      body.as_object()["name"] = a->name;
    }
    json::value v = Call(
        "POST", WithProject(fmt::format("/api/v1/templates/{}/services", a->template_name), *opts),
        &body);
    std::string how = Field(v, "url").is_string()
                          ? "open " + Str(Field(v, "url")) + " in a browser"
                          : "reach it from steps at its internal_hostname (berth.get_service(\"" +
                                Str(Field(v, "name")) + "\"))";
    Print(*opts, v,
          fmt::format("Added {} from template {}; {}\n", Str(Field(v, "name")),
                      a->template_name, how));
  });
}

void AddSessions(CLI::App& app, const std::shared_ptr<CommonOptions>& opts) {
  CLI::App* group = app.add_subcommand(
      "sessions", "Sessions: a project's interactive services running for a pipeline");
  group->require_subcommand(1);
  auto pipeline = std::make_shared<std::string>();
  auto describe = [](const json::value& s) {
    std::string out = fmt::format("Session {}: {}\n", Str(Field(s, "pipeline")), Str(Field(s, "state")));
    for (const auto& svc : Field(s, "services").as_array()) {
      out += fmt::format("  {:<24} {}{}\n", Str(Field(svc, "name")), Str(Field(svc, "state")),
                         Field(svc, "reason").is_string() ? " — " + Str(Field(svc, "reason")) : "");
    }
    return out;
  };
  CLI::App* start = group->add_subcommand("start", "Start the project's interactive services");
  start->add_option("pipeline", *pipeline, "Pipeline the session is for")->required();
  AddCommon(start, opts, true);
  start->callback([opts, pipeline, describe] {
    json::value body{{"pipeline", *pipeline}};
    json::value v = Call("POST", WithProject("/api/v1/sessions", *opts), &body);
    Print(*opts, v, describe(v));
  });
  CLI::App* stop = group->add_subcommand("stop", "Stop a session's services (their /data stays)");
  stop->add_option("pipeline", *pipeline, "Pipeline")->required();
  AddCommon(stop, opts, true);
  stop->callback([opts, pipeline, describe] {
    json::value v = Call("DELETE", WithProject("/api/v1/sessions/" + *pipeline, *opts));
    Print(*opts, v, describe(v));
  });
  CLI::App* ls = group->add_subcommand("ls", "Sessions and their services");
  AddCommon(ls, opts, true);
  ls->callback([opts, describe] {
    json::value v = Call("GET", WithProject("/api/v1/sessions", *opts));
    std::string text;
    for (const auto& s : Field(v, "sessions").as_array()) {
      text += describe(s);
    }
    Print(*opts, v, text.empty() ? "No sessions\n" : text);
  });
}

}  // namespace

void AddOrchestCommands(CLI::App& app) {
  auto opts = std::make_shared<CommonOptions>();
  AddTemplates(app, opts);
  AddSessions(app, opts);
}

}  // namespace berth
