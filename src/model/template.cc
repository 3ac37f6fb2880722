#include "model/template.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <glob.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <charconv>
#include <cstdlib>
#include <set>
#include <sstream>

#include "model/yaml_json.h"

namespace berth {
namespace json = boost::json;
namespace {

// Fields that are numbers or booleans once their blank is filled ("{{port}}" -> 8080).
const std::set<std::string, std::less<>> kNumberFields = {
    "container-port", "replicas", "port", "interval", "timeout", "memory-limit",
    "memory-reservation"};
const std::set<std::string, std::less<>> kBoolFields = {"http"};

std::string Fill(const std::string& text, const std::map<std::string, std::string>& values) {
  std::string out;
  size_t pos = 0;
  while (true) {
    size_t open = text.find("{{", pos);
    size_t close = open == std::string::npos ? open : text.find("}}", open);
    if (close == std::string::npos) {
      out.append(text, pos);
      return out;
    }
    std::string key = text.substr(open + 2, close - open - 2);
    auto it = values.find(key);
    out.append(text, pos, open - pos);
    out += it == values.end() ? text.substr(open, close + 2 - open) : it->second;
    pos = close + 2;
  }
}

json::value FillValue(const json::value& v, std::string_view field,
                      const std::map<std::string, std::string>& values) {
  if (v.is_string()) {
    std::string filled = Fill(std::string(v.as_string()), values);
    if (kNumberFields.count(field)) {
      int64_t n = 0;
      auto [p, ec] = std::from_chars(filled.data(), filled.data() + filled.size(), n);
      if (ec == std::errc() && p == filled.data() + filled.size()) {
        return n;
      }
    }
    if (kBoolFields.count(field) && (filled == "true" || filled == "false")) {
      return filled == "true";
    }
    return json::value(filled);
  }
  if (v.is_array()) {
    json::array a;
    for (const auto& item : v.as_array()) {
      a.push_back(FillValue(item, field, values));
    }
    return a;
  }
  if (v.is_object()) {
    json::object o;
    for (const auto& [k, item] : v.as_object()) {
      o[k] = FillValue(item, k, values);
    }
    return o;
  }
  return v;
}

std::string Text(const json::value& v) {
  if (v.is_string()) {
    return std::string(v.as_string());
  }
  return v.is_null() ? std::string() : json::serialize(v);
}

bool ProgramExists(const std::string& program) {
  if (program.find('/') != std::string::npos) {
    glob_t g{};
    bool found = ::glob(program.c_str(), 0, nullptr, &g) == 0 && g.gl_pathc > 0 &&
                 ::access(g.gl_pathv[0], X_OK) == 0;
    globfree(&g);
    return found;
  }
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (!dir.empty() && ::access((dir + "/" + program).c_str(), X_OK) == 0) {
      return true;
    }
  }
  return false;
}

}  // namespace

Result<Template> ParseTemplate(const std::string& name, const std::string& yaml_text) {
  auto doc = YamlToJson(yaml_text);
  if (!doc.ok()) {
    return doc.status().WithContext("template " + name);
  }
  auto bad = [&](const std::string& what) {
    return Status::InvalidArgument(fmt::format("template {}: {}", name, what));
  };
  if (!doc->is_object()) {
    return bad("must be a mapping with description, requires, values, ports and definition");
  }
  Template t;
  t.name = name;
  for (const auto& [k, v] : doc->as_object()) {
    if (k == "description") {
      t.description = Text(v);
    } else if (k == "requires") {
      if (!v.is_array()) {
        return bad("requires: must be a list of {program, package}");
      }
      for (const auto& r : v.as_array()) {
        if (!r.is_object() || !r.as_object().contains("program")) {
          return bad("requires: each entry needs a program");
        }
        const json::value* pkg = r.as_object().if_contains("package");
        t.requirements.push_back({Text(r.at("program")), pkg ? Text(*pkg) : Text(r.at("program"))});
      }
    } else if (k == "values") {
      if (!v.is_object()) {
        return bad("values: must be a mapping of name: {default, description, required}");
      }
      for (const auto& [vk, vv] : v.as_object()) {
        TemplateValue tv;
        tv.name = vk;
        if (vv.is_object()) {
          const json::object& o = vv.as_object();
          if (const json::value* d = o.if_contains("default")) {
            tv.default_value = Text(*d);
          }
          if (const json::value* d = o.if_contains("description")) {
            tv.description = Text(*d);
          }
          const json::value* req = o.if_contains("required");
          tv.required = req && req->is_bool() && req->as_bool();
        } else {
          tv.default_value = Text(vv);
        }
        t.values.push_back(std::move(tv));
      }
    } else if (k == "ports") {
      t.ports = v;
    } else if (k == "definition") {
      if (!v.is_object()) {
        return bad("definition: must be a mapping");
      }
      t.definition = v.as_object();
    } else {
      return bad(fmt::format("unknown key '{}'", k));
    }
  }
  if (t.definition.empty()) {
    return bad("definition: missing");
  }
  return t;
}

Result<RenderedTemplate> RenderTemplate(const Template& t,
                                        const std::map<std::string, std::string>& values) {
  std::map<std::string, std::string> filled;
  std::vector<std::string> known;
  for (const auto& v : t.values) {
    known.push_back(v.name);
  }
  for (const auto& [k, v] : values) {
    if (std::find(known.begin(), known.end(), k) == known.end()) {
      return Status::InvalidArgument(fmt::format(
          "template {} has no value '{}'; {}", t.name, k,
          known.empty() ? std::string("it takes none")
                        : fmt::format("it takes: {}", fmt::join(known, ", "))));
    }
    if (v.find_first_of("\r\n") != std::string::npos && k != "command") {
      return Status::InvalidArgument(fmt::format("{}: must be one line", k));
    }
  }
  for (const auto& v : t.values) {
    auto it = values.find(v.name);
    if (it != values.end()) {
      filled[v.name] = it->second;
    } else if (v.required) {
      return Status::InvalidArgument(fmt::format(
          "template {} needs a value for '{}' ({}): pass --set {}=...", t.name, v.name,
          v.description, v.name));
    } else {
      filled[v.name] = v.default_value;
    }
  }
  RenderedTemplate r;
  r.definition = FillValue(t.definition, "", filled).as_object();
  if (t.ports.is_array()) {
    json::value ports = FillValue(t.ports, "", filled);
    for (const auto& p : ports.as_array()) {
      TemplatePort tp;
      if (p.is_object()) {
        const json::value* port = p.as_object().if_contains("port");
        const json::value* http = p.as_object().if_contains("http");
        if (port == nullptr || !port->is_int64() || port->as_int64() < 1 ||
            port->as_int64() > 65535) {
          return Status::InvalidArgument(fmt::format(
              "template {}: port must be a number between 1 and 65535, got {}", t.name,
              port ? json::serialize(*port) : std::string("none")));
        }
        tp.port = static_cast<int>(port->as_int64());
        tp.http = http != nullptr && http->is_bool() && http->as_bool();
        if (http != nullptr && !http->is_bool()) {
          return Status::InvalidArgument(
              fmt::format("template {}: http must be true or false, got {}", t.name,
                          json::serialize(*http)));
        }
      }
      r.ports.push_back(tp);
    }
  }
  return r;
}

Status CheckRequirements(const Template& t) {
  for (const auto& req : t.requirements) {
    if (!ProgramExists(req.program)) {
      bool debian = req.package.find(' ') == std::string::npos;
      return Status::FailedPrecondition(fmt::format(
          "template {} runs {}, which is not installed on this machine: install {}{}, then "
          "add it again",
          t.name, req.program, debian ? "it with apt-get install " : "", req.package));
    }
  }
  return Status::Ok();
}

}  // namespace berth
