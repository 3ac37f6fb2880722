#include "cli/command_util.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <iostream>

#include "cli/client_config.h"
#include "cli/output.h"
#include "common/file_util.h"
#include "common/url.h"
#include "model/yaml_json.h"

namespace berth {
namespace json = boost::json;

[[noreturn]] void Fail(const Status& s) {
  std::cerr << "berth: " << s.message() << "\n";
  throw CLI::RuntimeError(1);
}

void AddCommon(CLI::App* cmd, const std::shared_ptr<CommonOptions>& opts, bool project) {
  cmd->add_option("-o,--output", opts->output, "Output format: table or json")
      ->check(CLI::IsMember({"table", "json"}));
  if (project) {
    cmd->add_option("-p,--project", opts->project,
                    "Project to act on (admin tokens; default: the token's own, or 'default')");
  }
}

ApiClient Client() {
  auto config = LoadClientConfig();
  if (!config.ok()) {
    Fail(config.status());
  }
  return ApiClient(config->url, config->token);
}

json::value Call(std::string_view method, const std::string& path, const json::value* body) {
  auto r = Client().Call(method, path, body);
  if (!r.ok()) {
    Fail(r.status());
  }
  return r->body;
}

std::string WithProject(std::string path, const CommonOptions& opts) {
  if (!opts.project.empty()) {
    path += (path.find('?') == std::string::npos ? "?project=" : "&project=") + opts.project;
  }
  return path;
}

std::string Str(const json::value& v) {
  if (v.is_string()) {
    return std::string(v.get_string());
  }
  if (v.is_null()) {
    return "-";
  }
  return json::serialize(v);
}

const json::value& Field(const json::value& v, std::string_view key) {
  static const json::value kNull;
  if (!v.is_object()) {
    return kNull;
  }
  const json::value* f = v.get_object().if_contains(key);
  return f ? *f : kNull;
}

void Print(const CommonOptions& opts, const json::value& v, const std::string& table) {
  std::cout << (opts.output == "json" ? PrettyJson(v) : table);
}

std::function<bool(std::string_view)> JsonLines(JsonLineHandler on_line) {
  // The body arrives in pieces that need not end on a line: keep the tail for the next one.
  return [on_line = std::move(on_line), pending = std::string()](std::string_view data) mutable {
    pending.append(data);
    size_t nl;
    while ((nl = pending.find('\n')) != std::string::npos) {
      std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      boost::system::error_code ec;
      json::value l = json::parse(line, ec);
      if (!ec) {
        on_line(line, l);
      }
    }
    return true;
  };
}

void FollowJsonLines(const std::string& path, const JsonLineHandler& on_line) {
  if (Status s = Client().Stream(path, JsonLines(on_line)); !s.ok()) {
    Fail(s);
  }
}

std::string Escape(std::string_view s) { return PercentEncode(s); }

const json::array& Items(const json::value& v, std::string_view key) {
  static const json::array kEmpty;
  const json::value& f = Field(v, key);
  return f.is_array() ? f.get_array() : kEmpty;
}

std::string OneLine(std::string s, size_t max) {
  for (char& c : s) {
    if (c == '\n' || c == '\r' || c == '\t') {
      c = ' ';
    }
  }
  if (s.size() > max) {
    s = s.substr(0, max - 3) + "...";
  }
  return s.empty() ? "-" : s;
}

// A pipeline, recipe or definition file as JSON. JSON first, then YAML, as the daemon reads it: a JSON
// file that YAML would read differently (tabs) stays JSON. (The CLI posts JSON only.)
json::value ReadJsonOrYamlFile(const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) {
    Fail(text.status());
  }
  boost::system::error_code ec;
  json::value v = json::parse(*text, ec);
  if (!ec) {
    return v;
  }
  size_t first = text->find_first_not_of(" \t\r\n");
  if (first != std::string::npos && (*text)[first] == '{') {
    Fail(Status::InvalidArgument(fmt::format("{} is not valid JSON: {}", path, ec.message())));
  }
  auto yaml = YamlToJson(*text);
  if (!yaml.ok()) {
    Fail(yaml.status().WithContext(path));
  }
  return *yaml;
}

}  // namespace berth
