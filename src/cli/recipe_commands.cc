// Recipes (seed 003) from the command line: `berth recipes ls|show|construct|start|stop|
// destruct|reset|call|push-node|nodes`. Each command is one call of /api/v1/recipes or
// /api/v1/nodes; the daemon's messages are printed as they are (they name what failed).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <iostream>

#include "cli/command_util.h"
#include "cli/output.h"

namespace berth {
namespace json = boost::json;
namespace {

const char kRecipesHint[] = "'berth recipes ls' lists the recipes";

json::value CallRecipe(std::string_view method, const std::string& path,
                       const json::value* body = nullptr) {
  auto r = Client().Call(method, path, body);
  if (!r.ok()) {
    if (r.status().code() == StatusCode::kNotFound &&
        r.status().message().find("berth recipes ls") == std::string::npos) {
      Fail(Status(StatusCode::kNotFound, r.status().message() + "; " + kRecipesHint));
    }
    Fail(r.status());
  }
  return r->body;
}

std::string Rate(const json::value& v) {
  double r = v.is_number() ? v.to_number<double>() : 0;
  return r == 0 ? "0" : fmt::format("{:.1f}/s", r);
}

std::string NodeTypes(const json::value& recipe) {
  std::vector<std::string> types;
  for (const auto& n : Items(recipe, "nodes")) {
    types.push_back(Str(Field(n, "type")));
  }
  return types.empty() ? "-" : fmt::format("{}", fmt::join(types, " "));
}

std::string Describe(const json::value& v) {
  std::string out = fmt::format("Name:       {}\n", Str(Field(v, "name")));
  out += fmt::format("Project:    {}\n", Str(Field(v, "project")));
  out += fmt::format("URL:        /api/v1/recipes/{}/serve  (Neptune: /neptune/serve/{})\n",
                     Str(Field(v, "name")), Str(Field(v, "url")));
  out += fmt::format("State:      {} since {}\n", Str(Field(v, "state")), Str(Field(v, "since")));
  out += fmt::format("Message:    {}\n", OneLine(Str(Field(v, "message")), 200));
  if (Field(v, "dead_count").is_number() && Field(v, "dead_count").to_number<int64_t>() > 0) {
    out += fmt::format("Dead:       {} time(s)\n", Str(Field(v, "dead_count")));
  }
  out += fmt::format("Throughput: {}\n", Rate(Field(v, "throughput")));
  const json::value& handlers = Field(Field(v, "recipe"), "handlers");
  if (handlers.is_object()) {
    for (const auto& [method, chain] : handlers.get_object()) {
      std::vector<std::string> hs;
      if (chain.is_array()) {
        for (const auto& h : chain.get_array()) {
          hs.push_back(Str(h));
        }
      } else {
        hs.push_back(Str(chain));
      }
      out += fmt::format("Handlers:   {} -> {}\n", method, fmt::join(hs, " -> "));
    }
  }
  std::vector<std::vector<std::string>> rows;
  const json::value& args = Field(Field(v, "recipe"), "args");
  size_t i = 0;
  for (const auto& n : Items(v, "nodes")) {
    std::string a = "-";
    if (args.is_array() && i < args.get_array().size()) {
      a = OneLine(json::serialize(args.get_array()[i]), 40);
    } else if (args.is_object()) {
      a = OneLine(json::serialize(args), 40);
    }
    std::string pid = Str(Field(n, "pid"));
    rows.push_back({std::to_string(i), Str(Field(n, "name")), Str(Field(n, "type")),
                    Str(Field(n, "state")), pid == "0" ? "-" : pid, Str(Field(n, "restarts")),
                    OneLine(Str(Field(n, "last_exit")), 30), a});
    ++i;
  }
  out += "Nodes:\n" +
         FormatTable({"#", "NAME", "TYPE", "STATE", "PID", "RESTARTS", "LAST EXIT", "ARGS"}, rows);
  rows.clear();
  for (const auto& e : Items(v, "edges")) {
    rows.push_back({Str(Field(e, "source")), Str(Field(e, "sink")), Str(Field(e, "messages")),
                    Rate(Field(e, "per_second"))});
  }
  out += "Edges:\n" + FormatTable({"SOURCE", "SINK", "MESSAGES", "RATE"}, rows);
  const json::value& overrides = Field(v, "overrides");
  if (overrides.is_object() && !overrides.get_object().empty()) {
    out += fmt::format("Overrides of this run: {}\n", json::serialize(overrides));
  }
  return out;
}

// --set node.key=value -> {"node": {"add": {"key": value}}}; a value that parses as JSON is
// taken as JSON (numbers, true, objects), anything else as a string. --unset node.key removes.
json::object Overrides(const std::vector<std::string>& sets,
                       const std::vector<std::string>& unsets) {
  json::object out;
  auto split = [](const std::string& s, const char* flag) {
    size_t dot = s.find('.');
    if (dot == std::string::npos || dot == 0 || dot + 1 == s.size()) {
      Fail(Status::InvalidArgument(
          fmt::format("{} {}: name the node and the argument as NODE.KEY (e.g. {} ping.timeout{})",
                      flag, s, flag, std::string(flag) == "--set" ? "=500" : "")));
    }
    return std::pair{s.substr(0, dot), s.substr(dot + 1)};
  };
  for (const auto& s : sets) {
    size_t eq = s.find('=');
    if (eq == std::string::npos) {
      Fail(Status::InvalidArgument(fmt::format(
          "--set {}: give a value as NODE.KEY=VALUE (e.g. --set ping.timeout=500)", s)));
    }
    auto [node, key] = split(s.substr(0, eq), "--set");
    std::string text = s.substr(eq + 1);
    boost::system::error_code ec;
    json::value value = json::parse(text, ec);
    if (ec) {
      value = json::string(text);
    }
    json::value& n = out[node];
    if (!n.is_object()) {
      n = json::object{};
    }
    json::value& add = n.as_object()["add"];
    if (!add.is_object()) {
      add = json::object{};
    }
    add.as_object()[key] = value;
  }
  for (const auto& u : unsets) {
    auto [node, key] = split(u, "--unset");
    json::value& n = out[node];
    if (!n.is_object()) {
      n = json::object{};
    }
    json::value& remove = n.as_object()["remove"];
    if (!remove.is_object()) {
      remove = json::object{};
    }
    remove.as_object()[key] = nullptr;
  }
  return out;
}

}  // namespace

void AddRecipeCommands(CLI::App& app) {
  auto opts = std::make_shared<CommonOptions>();
  CLI::App* group = app.add_subcommand(
      "recipes", "Recipes: services made of a graph of nodes (one process each) over pub/sub");
  group->require_subcommand(1);
  group->footer(
      "A recipe file (JSON or YAML; Neptune's recipe JSON works as it is):\n"
      "  name: echo2            # under 12 characters\n"
      "  url: echo2\n"
      "  graph:\n"
      "    nodes: [passthrough, ping]\n"
      "    edges: [[passthrough, ping]]   # START -> first and last -> END are implicit\n"
      "  args: [{}, {}]\n"
      "  handlers: {get: ping, post: forward}\n\n"
      "Examples:\n"
      "  berth recipes construct echo2.yaml\n"
      "  berth recipes start echo2 --set ping.timeout=500\n"
      "  berth recipes call echo2 --data '{\"hello\": 1}'\n"
      "  berth recipes show echo2\n\n"
      "Built-in node types: ping, passthrough, merge, stream; push your own with 'berth recipes "
      "push-node TYPE DIR'.\nBuilt-in handlers: ping, forward, image (Neptune's "
      "handlers.ping_handler, handlers.json_handler, handlers.image_handler).");

  CLI::App* ls = group->add_subcommand("ls", "List the project's recipes and their state");
  AddCommon(ls, opts, true);
  ls->callback([opts] {
    json::value v = Call("GET", WithProject("/api/v1/recipes", *opts));
    std::vector<std::vector<std::string>> rows;
    for (const auto& r : Items(v, "recipes")) {
      rows.push_back({Str(Field(r, "name")), Str(Field(r, "url")), Str(Field(r, "state")),
                      NodeTypes(r), Rate(Field(r, "throughput")),
                      OneLine(Str(Field(r, "message")), 60)});
    }
    if (rows.empty() && opts->output == "table") {
      std::cout << "No recipes. Construct one with 'berth recipes construct FILE', or bring the "
                   "default ping back with 'berth recipes reset'.\n";
      return;
    }
    Print(*opts, v, FormatTable({"NAME", "URL", "STATE", "NODES", "THROUGHPUT", "MESSAGE"}, rows));
  });

  auto name = std::make_shared<std::string>();
  CLI::App* show = group->add_subcommand(
      "show", "Show a recipe: state and why, nodes (pid, restarts), edges with their throughput");
  show->add_option("name", *name, "Recipe name")->required();
  AddCommon(show, opts, true);
  show->callback([opts, name] {
    json::value v = CallRecipe("GET", WithProject("/api/v1/recipes/" + Escape(*name), *opts));
    Print(*opts, v, Describe(v));
  });

  auto file = std::make_shared<std::string>();
  CLI::App* construct = group->add_subcommand(
      "construct", "Construct a recipe from a file (JSON or YAML; Neptune's form works too)");
  construct->add_option("file", *file, "Recipe file")->required()->check(CLI::ExistingFile);
  AddCommon(construct, opts, true);
  construct->callback([opts, file] {
    json::value def = ReadJsonOrYamlFile(*file);
    auto r = Client().Call("POST", WithProject("/api/v1/recipes", *opts), &def);
    if (!r.ok()) {
      Fail(r.status().WithContext(*file));
    }
    std::string n = Str(Field(r->body, "name"));
    Print(*opts, r->body,
          fmt::format("recipe {} constructed ({} node(s)); start it: berth recipes start {}\n", n,
                      Items(r->body, "nodes").size(), n));
  });

  struct StartArgs {
    std::vector<std::string> sets;
    std::vector<std::string> unsets;
  };
  auto sa = std::make_shared<StartArgs>();
  CLI::App* start = group->add_subcommand(
      "start",
      "Start a recipe's nodes and wait until a heartbeat crossed the graph (or it is DEAD)");
  start->add_option("name", *name, "Recipe name")->required();
  start->add_option("--set", sa->sets,
                    "Override a node's argument for this run only: NODE.KEY=VALUE (VALUE is JSON "
                    "when it parses, else a string); repeatable");
  start->add_option("--unset", sa->unsets,
                    "Remove a node's argument for this run only: NODE.KEY; repeatable");
  AddCommon(start, opts, true);
  start->footer(
      "Examples:\n  berth recipes start ping\n"
      "  berth recipes start pipeline --set resize.width=224 --unset resize.crop");
  start->callback([opts, name, sa] {
    json::value body = json::object{{"overrides", Overrides(sa->sets, sa->unsets)}};
    json::value v = CallRecipe(
        "POST", WithProject("/api/v1/recipes/" + Escape(*name) + "/start", *opts), &body);
    Print(*opts, v,
          fmt::format("recipe {} is {}: {}\nCall it: berth recipes call {}\n", *name,
                      Str(Field(v, "state")), Str(Field(v, "message")), *name));
  });

  CLI::App* stop = group->add_subcommand("stop", "Stop every node of a recipe, at once");
  stop->add_option("name", *name, "Recipe name")->required();
  AddCommon(stop, opts, true);
  stop->callback([opts, name] {
    json::value v =
        CallRecipe("POST", WithProject("/api/v1/recipes/" + Escape(*name) + "/stop", *opts));
    Print(*opts, v, fmt::format("recipe {} is {}\n", *name, Str(Field(v, "state"))));
  });

  CLI::App* destruct = group->add_subcommand(
      "destruct",
      "Destroy a recipe (stopping it first); it stays gone until 'berth recipes reset'");
  destruct->add_option("name", *name, "Recipe name")->required();
  AddCommon(destruct, opts, true);
  destruct->callback([opts, name] {
    json::value v = CallRecipe("DELETE", WithProject("/api/v1/recipes/" + Escape(*name), *opts));
    Print(*opts, v, fmt::format("recipe {} destructed\n", *name));
  });

  CLI::App* reset = group->add_subcommand(
      "reset",
      "Destroy every recipe of the project and bring back the defaults (Neptune's --clean)");
  auto yes = std::make_shared<bool>(false);
  reset->add_flag("-y,--yes", *yes, "Do not ask");
  AddCommon(reset, opts, true);
  reset->callback([opts, yes] {
    if (!*yes) {
      std::cerr << "This destroys every recipe of the project and brings back the defaults. "
                   "Type 'yes' to go on: ";
      std::string answer;
      if (!std::getline(std::cin, answer) || answer != "yes") {
        Fail(Status::FailedPrecondition("nothing was changed (pass --yes to skip the question)"));
      }
    }
    json::value v = Call("POST", WithProject("/api/v1/recipes/reset", *opts));
    std::vector<std::string> names;
    for (const auto& r : Items(v, "recipes")) {
      names.push_back(Str(Field(r, "name")));
    }
    Print(*opts, v,
          fmt::format("recipes reset; the project has: {}\n",
                      names.empty() ? "-" : fmt::format("{}", fmt::join(names, ", "))));
  });

  struct CallArgs {
    std::string data;
    std::string method;
  };
  auto ca = std::make_shared<CallArgs>();
  CLI::App* call = group->add_subcommand(
      "call", "Send a request through a started recipe's handler chain and print its answer");
  call->add_option("name", *name, "Recipe name")->required();
  call->add_option("-d,--data", ca->data, "JSON body (sent with POST unless --method says)");
  call->add_option("-X,--method", ca->method, "GET, POST or PATCH (default: GET, POST with --data)")
      ->check(CLI::IsMember({"GET", "POST", "PATCH", "get", "post", "patch"}));
  AddCommon(call, opts, true);
  call->footer(
      "Examples:\n  berth recipes call ping\n"
      "  berth recipes call echo2 --data '{\"text\": \"hi\"}'");
  call->callback([opts, name, ca] {
    std::string method = ca->method.empty() ? (ca->data.empty() ? "GET" : "POST") : ca->method;
    for (char& c : method) {
      c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    json::value body;
    if (!ca->data.empty()) {
      boost::system::error_code ec;
      body = json::parse(ca->data, ec);
      if (ec) {
        Fail(Status::InvalidArgument(
            fmt::format("--data is not JSON ({}): {}", ec.message(), OneLine(ca->data, 80))));
      }
    }
    json::value v =
        CallRecipe(method, WithProject("/api/v1/recipes/" + Escape(*name) + "/serve", *opts),
                   ca->data.empty() ? nullptr : &body);
    std::cout << json::serialize(v) << "\n";
  });

  struct PushArgs {
    std::string type;
    std::string dir;
  };
  auto pa = std::make_shared<PushArgs>();
  CLI::App* push = group->add_subcommand(
      "push-node",
      "Push a folder as a node type: node.py (berth.node SDK) or a berth.yaml command");
  push->add_option("type", pa->type, "Node type name, as recipes name it")->required();
  push->add_option("dir", pa->dir, "Folder (or bundle tarball) with the node's program")
      ->required()
      ->check(CLI::ExistingPath);
  AddCommon(push, opts, true);
  push->footer(
      "A Python node (node.py):\n"
      "  from berth.node import Node\n"
      "  node = Node.from_environment()\n"
      "  node.run(lambda m: {**m.object(), \"seen\": True})\n");
  push->callback([opts, pa] {
    PushedBundle pushed =
        UploadBundle(WithProject("/api/v1/nodes/" + Escape(pa->type), *opts), pa->dir);
    Print(
        *opts, pushed.response,
        fmt::format("node type {} pushed ({})\n", pa->type, Str(Field(pushed.response, "digest"))));
  });

  auto hdir = std::make_shared<std::string>();
  CLI::App* push_handlers = group->add_subcommand(
      "push-handlers",
      "Push the project's Python handlers: handler module.function is function in module.py");
  push_handlers->add_option("dir", *hdir, "Folder (or bundle tarball) with the handler modules")
      ->required()
      ->check(CLI::ExistingPath);
  AddCommon(push_handlers, opts, true);
  push_handlers->footer(
      "A handler gets the request's data and the previous handler's result (None first):\n"
      "  # text.py, named text.upper in a recipe's handlers\n"
      "  def upper(request, previous):\n"
      "      return {\"text\": request.get(\"text\", \"\").upper()}\n"
      "Started recipes load the bundle when they start next.");
  push_handlers->callback([opts, hdir] {
    PushedBundle pushed = UploadBundle(WithProject("/api/v1/handlers", *opts), *hdir);
    Print(*opts, pushed.response,
          fmt::format("handlers pushed ({}); recipes load them when they start\n",
                      Str(Field(pushed.response, "digest"))));
  });

  CLI::App* nodes = group->add_subcommand("nodes", "List the node types: built-in and pushed");
  AddCommon(nodes, opts, true);
  nodes->callback([opts] {
    json::value v = Call("GET", WithProject("/api/v1/nodes", *opts));
    std::vector<std::vector<std::string>> rows;
    for (const auto& n : Items(v, "nodes")) {
      bool builtin = Field(n, "builtin").is_bool() && Field(n, "builtin").as_bool();
      rows.push_back({Str(Field(n, "name")), builtin ? "built-in" : "pushed",
                      builtin ? "-" : Str(Field(n, "digest")).substr(0, 19)});
    }
    Print(*opts, v, FormatTable({"TYPE", "KIND", "BUNDLE"}, rows));
  });
}

}  // namespace berth
