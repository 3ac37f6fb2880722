#include "model/definition.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>
#include <set>

#include "common/suggest.h"
#include "model/yaml_json.h"

namespace berth {
namespace json = boost::json;
namespace {

constexpr int64_t kMaxMemoryMb = 1 << 20;  // 1 TiB
constexpr int kMaxReplicas = 100;
constexpr int kMaxMinHealthyTime = 3600;  // seconds
constexpr int64_t kMaxPidsLimit = 4194304;  // the kernel's pid_max ceiling
constexpr size_t kMaxEnvVars = 1000;
constexpr size_t kMaxArgv = 1000;
constexpr size_t kMaxStringBytes = 64 * 1024;

Status FieldError(std::string_view field, std::string_view rule) {
  return Status::InvalidArgument(fmt::format("{}: {}", field, rule));
}


Result<int64_t> GetInt(const json::value& v, std::string_view field, int64_t lo, int64_t hi) {
  int64_t n = 0;
  if (v.is_int64()) {
    n = v.get_int64();
  } else if (v.is_uint64()) {
    n = v.get_uint64() > static_cast<uint64_t>(hi) ? hi + 1 : static_cast<int64_t>(v.get_uint64());
  } else {
    return FieldError(field, fmt::format("must be an integer, got {}", JsonKindName(v)));
  }
  if (n < lo || n > hi) {
    return FieldError(field, fmt::format("must be between {} and {}, got {}", lo, hi, n));
  }
  return n;
}

Result<std::string> GetString(const json::value& v, std::string_view field, bool allow_empty) {
  if (!v.is_string()) {
    return FieldError(field, fmt::format("must be a string, got {}", JsonKindName(v)));
  }
  const json::string& s = v.get_string();
  if (!allow_empty && s.empty()) {
    return FieldError(field, "must not be empty");
  }
  if (s.size() > kMaxStringBytes) {
    return FieldError(field, fmt::format("is {} bytes; at most {} allowed", s.size(),
                                         kMaxStringBytes));
  }
  // Every string ends up in a C string (argv, environment, paths), where a NUL would silently
  // cut it short.
  if (std::string_view(s).find('\0') != std::string_view::npos) {
    return FieldError(field, "contains a NUL character (\\u0000), which no program argument, "
                             "environment value or path can hold; remove it");
  }
  return std::string(s);
}

Result<std::vector<std::string>> GetStringList(const json::value& v, std::string_view field,
                                               bool allow_empty_items) {
  if (!v.is_array()) {
    return FieldError(field, fmt::format("must be a list of strings, got {}", JsonKindName(v)));
  }
  const json::array& a = v.get_array();
  if (a.size() > kMaxArgv) {
    return FieldError(field, fmt::format("has {} items; at most {} allowed", a.size(), kMaxArgv));
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < a.size(); ++i) {
    auto s = GetString(a[i], fmt::format("{}[{}]", field, i), allow_empty_items);
    if (!s.ok()) {
      return s.status();
    }
    out.push_back(std::move(*s));
  }
  return out;
}

bool IsEnvName(std::string_view s) {
  if (s.empty() || s.size() > 256 || (s[0] >= '0' && s[0] <= '9')) {
    return false;
  }
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// Docker's tag grammar: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
bool IsTag(std::string_view s) {
  if (s.empty() || s.size() > 128 || s[0] == '.' || s[0] == '-') {
    return false;
  }
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-';
  });
}

Result<std::string> GetEnum(const json::value& v, std::string_view field,
                            std::initializer_list<std::string_view> allowed) {
  auto s = GetString(v, field, false);
  if (!s.ok()) {
    return s.status();
  }
  for (auto a : allowed) {
    if (*s == a) {
      return s;
    }
  }
  return FieldError(field, fmt::format("must be one of {}, got '{}'",
                                       fmt::join(allowed, ", "), s->substr(0, 64)));
}

Status ParseEnvironment(const json::value& v, Definition& def) {
  if (!v.is_array()) {
    return FieldError("environment", fmt::format("must be a list of {{\"name\", \"value\"}} "
                                                 "objects, got {}",
                                                 JsonKindName(v)));
  }
  const json::array& a = v.get_array();
  if (a.size() > kMaxEnvVars) {
    return FieldError("environment",
                      fmt::format("has {} variables; at most {} allowed", a.size(), kMaxEnvVars));
  }
  std::set<std::string> seen;
  for (size_t i = 0; i < a.size(); ++i) {
    std::string field = fmt::format("environment[{}]", i);
    if (!a[i].is_object()) {
      return FieldError(field, fmt::format("must be an object {{\"name\": ..., \"value\": ...}}, "
                                           "got {}",
                                           JsonKindName(a[i])));
    }
    const json::object& o = a[i].get_object();
    for (const auto& kv : o) {
      if (kv.key() != "name" && kv.key() != "value") {
        return FieldError(field, fmt::format("unknown key '{}'; only 'name' and 'value' are "
                                             "allowed",
                                             std::string_view(kv.key()).substr(0, 64)));
      }
    }
    const json::value* name = o.if_contains("name");
    const json::value* value = o.if_contains("value");
    if (name == nullptr) {
      return FieldError(field + ".name", "is required");
    }
    if (value == nullptr) {
      return FieldError(field + ".value", "is required");
    }
    auto n = GetString(*name, field + ".name", false);
    if (!n.ok()) {
      return n.status();
    }
    if (!IsEnvName(*n)) {
      return FieldError(field + ".name",
                        fmt::format("'{}' is not a valid variable name (letters, digits and '_', "
                                    "not starting with a digit)",
                                    n->substr(0, 64)));
    }
    if (!seen.insert(*n).second) {
      return FieldError(field + ".name", fmt::format("'{}' is set twice", *n));
    }
    // Numbers and booleans are common in hand-written definitions; keep their text.
    std::string val;
    if (value->is_string()) {
      auto v = GetString(*value, field + ".value", true);
      if (!v.ok()) {
        return v.status();
      }
      val = std::move(*v);
    } else if (value->is_double()) {
      val = fmt::format("{}", value->get_double());  // shortest form: 1.5, not 1.5E0
    } else if (value->is_int64() || value->is_uint64() || value->is_bool()) {
      val = json::serialize(*value);
    } else {
      return FieldError(field + ".value",
                        fmt::format("must be a string, got {}", JsonKindName(*value)));
    }
    if (val.size() > kMaxStringBytes) {
      return FieldError(field + ".value", "is longer than 64 KiB");
    }
    def.environment.push_back({std::move(*n), std::move(val)});
  }
  return Status::Ok();
}

Status ParseHealthCheck(const json::value& v, HealthCheck& hc) {
  if (!v.is_object()) {
    return FieldError("health-check", fmt::format("must be an object with rel_path, "
                                                  "status_codes, interval; got {}",
                                                  JsonKindName(v)));
  }
  for (const auto& kv : v.get_object()) {
    std::string_view key = kv.key();
    std::string field = fmt::format("health-check.{}", key.substr(0, 64));
    if (key == "type") {
      auto s = GetEnum(kv.value(), field, {"http", "tcp", "exec"});
      if (!s.ok()) {
        return s.status();
      }
      hc.type = *s;
    } else if (key == "rel_path") {
      auto s = GetString(kv.value(), field, false);
      if (!s.ok()) {
        return s.status();
      }
      if ((*s)[0] != '/') {
        return FieldError(field, fmt::format("must start with '/', got '{}'", s->substr(0, 64)));
      }
      hc.rel_path = *s;
    } else if (key == "status_codes") {
      auto s = GetString(kv.value(), field, false);
      if (!s.ok()) {
        return s.status();
      }
      auto set = StatusCodeSet::Parse(*s);
      if (!set.ok()) {
        return set.status().WithContext(field);
      }
      hc.status_codes = *s;
    } else if (key == "interval") {
      auto n = GetInt(kv.value(), field, 1, 86400);
      if (!n.ok()) {
        return n.status();
      }
      hc.interval_s = static_cast<int>(*n);
    } else if (key == "timeout") {
      auto n = GetInt(kv.value(), field, 1, 3600);
      if (!n.ok()) {
        return n.status();
      }
      hc.timeout_s = static_cast<int>(*n);
    } else if (key == "command") {
      auto l = GetStringList(kv.value(), field, false);
      if (!l.ok()) {
        return l.status();
      }
      hc.command = *l;
    } else {
      return FieldError(field, "unknown key; known keys are type, rel_path, status_codes, "
                               "interval, timeout, command");
    }
  }
  if (hc.type == "exec" && hc.command.empty()) {
    return FieldError("health-check.command",
                      "an exec health check needs a command, e.g. [pg_isready, -h, $(HOST)]");
  }
  return Status::Ok();
}

Status ParseMounts(const json::value& v, Definition& def) {
  if (!v.is_array()) {
    return FieldError("mounts", fmt::format("must be a list of {{\"source\", \"target\"}} "
                                            "objects, got {}",
                                            JsonKindName(v)));
  }
  std::set<std::string> targets;
  const json::array& a = v.get_array();
  for (size_t i = 0; i < a.size(); ++i) {
    std::string field = fmt::format("mounts[{}]", i);
    if (!a[i].is_object()) {
      return FieldError(field, "must be an object {\"source\": \"data\"|\"project\", "
                               "\"target\": \"/path\"}");
    }
    Mount m;
    for (const auto& kv : a[i].get_object()) {
      std::string_view key = kv.key();
      if (key == "source") {
        auto s = GetEnum(kv.value(), field + ".source", {"data", "project"});
        if (!s.ok()) {
          return s.status();
        }
        m.source = *s;
      } else if (key == "target") {
        auto s = GetString(kv.value(), field + ".target", false);
        if (!s.ok()) {
          return s.status();
        }
        if ((*s)[0] != '/' || s->find("..") != std::string::npos) {
          return FieldError(field + ".target",
                            fmt::format("must be an absolute path without '..', got '{}'",
                                        s->substr(0, 64)));
        }
        if (s->find_first_not_of('/') == std::string::npos) {
          return FieldError(field + ".target",
                            "must not be '/': mounted there, the folder would hide the whole "
                            "filesystem; pick a directory such as /data");
        }
        m.target = *s;
      } else {
        return FieldError(field, fmt::format("unknown key '{}'; known keys are source, target",
                                             key.substr(0, 64)));
      }
    }
    if (m.source.empty()) {
      return FieldError(field + ".source", "is required (\"data\" or \"project\")");
    }
    if (m.target.empty()) {
      return FieldError(field + ".target", "is required (an absolute path)");
    }
    if (!targets.insert(m.target).second) {
      return FieldError(field + ".target", fmt::format("'{}' is mounted twice", m.target));
    }
    def.mounts.push_back(std::move(m));
  }
  return Status::Ok();
}

}  // namespace

Result<StatusCodeSet> StatusCodeSet::Parse(std::string_view text) {
  StatusCodeSet set;
  set.text_ = std::string(text);
  auto parse_code = [](std::string_view s, int& out) {
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && ptr == s.data() + s.size() && out >= 100 && out <= 599;
  };
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string_view item =
        text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    while (!item.empty() && item.front() == ' ') {
      item.remove_prefix(1);
    }
    while (!item.empty() && item.back() == ' ') {
      item.remove_suffix(1);
    }
    int lo = 0;
    int hi = 0;
    size_t dash = item.find('-');
    bool ok = dash == std::string_view::npos
                  ? parse_code(item, lo) && parse_code(item, hi)
                  : parse_code(item.substr(0, dash), lo) && parse_code(item.substr(dash + 1), hi);
    if (!ok || lo > hi) {
      return Status::InvalidArgument(fmt::format(
          "'{}' is not a status code (100-599) or a range like 200-299; write e.g. "
          "\"200-299,301\"",
          item.substr(0, 32)));
    }
    set.ranges_.emplace_back(lo, hi);
    if (comma == std::string_view::npos) {
      break;
    }
    start = comma + 1;
  }
  return set;
}

bool StatusCodeSet::Contains(int code) const {
  return std::any_of(ranges_.begin(), ranges_.end(),
                     [code](const auto& r) { return code >= r.first && code <= r.second; });
}

Status ValidateTag(std::string_view tag) {
  if (!IsTag(tag)) {
    return Status::InvalidArgument(fmt::format(
        "tag '{}' is not valid: use letters, digits, '_', '.', '-' (at most 128, not starting "
        "with '.' or '-')",
        tag.substr(0, 64)));
  }
  return Status::Ok();
}

const std::vector<std::string>& DefinitionKeys() {
  static const std::vector<std::string> keys = {
      "container-tag", "memory-reservation", "memory-limit",  "container-port",
      "environment",   "inherited-environment", "command",     "entrypoint",
      "replicas",      "health-check",       "base-path",     "auth",
      "scope",         "mounts",             "expose",        "mirror-traffic",
      "run-as-root",   "min-healthy-time",   "pids-limit"};
  return keys;
}

Result<Definition> ParseDefinition(const json::value& v) {
  if (!v.is_object()) {
    return Status::InvalidArgument(
        fmt::format("definition must be a JSON object, got {}", JsonKindName(v)));
  }
  Definition def;
  for (const auto& kv : v.get_object()) {
    std::string_view key = kv.key();
    const json::value& val = kv.value();
    if (val.is_null() && std::find(DefinitionKeys().begin(), DefinitionKeys().end(), key) !=
                             DefinitionKeys().end()) {
      continue;  // null means "not set": the default applies
    }
    Status s;
    if (key == "container-tag") {
      auto t = GetString(val, key, false);
      if (!t.ok()) {
        return t.status();
      }
      if (!IsTag(*t)) {
        return FieldError(key, fmt::format("'{}' is not a valid tag (letters, digits, '_', '.', "
                                           "'-'; at most 128; not starting with '.' or '-')",
                                           t->substr(0, 64)));
      }
      def.container_tag = *t;
    } else if (key == "memory-reservation" || key == "memory-limit") {
      auto n = GetInt(val, key, 1, kMaxMemoryMb);
      if (!n.ok()) {
        return n.status();
      }
      (key == "memory-limit" ? def.memory_limit_mb : def.memory_reservation_mb) = *n;
    } else if (key == "container-port") {
      auto n = GetInt(val, key, 1, 65535);
      if (!n.ok()) {
        return n.status();
      }
      def.container_port = static_cast<int>(*n);
    } else if (key == "environment") {
      s = ParseEnvironment(val, def);
    } else if (key == "inherited-environment") {
      auto l = GetStringList(val, key, false);
      if (!l.ok()) {
        return l.status();
      }
      for (size_t i = 0; i < l->size(); ++i) {
        if (!IsEnvName((*l)[i])) {
          return FieldError(fmt::format("inherited-environment[{}]", i),
                            fmt::format("'{}' is not a valid variable name",
                                        (*l)[i].substr(0, 64)));
        }
      }
      def.inherited_environment = std::move(*l);
    } else if (key == "command" || key == "entrypoint") {
      auto l = GetStringList(val, key, true);
      if (!l.ok()) {
        return l.status();
      }
      if (!l->empty() && (*l)[0].empty()) {
        return FieldError(fmt::format("{}[0]", key), "the program name must not be empty");
      }
      (key == "command" ? def.command : def.entrypoint) = std::move(*l);
    } else if (key == "replicas") {
      auto n = GetInt(val, key, 0, kMaxReplicas);
      if (!n.ok()) {
        return n.status();
      }
      def.replicas = static_cast<int>(*n);
    } else if (key == "pids-limit") {
      auto n = GetInt(val, key, 0, kMaxPidsLimit);
      if (!n.ok()) {
        return n.status();
      }
      def.pids_limit = *n;
    } else if (key == "min-healthy-time") {
      auto n = GetInt(val, key, 0, kMaxMinHealthyTime);
      if (!n.ok()) {
        return n.status();
      }
      def.min_healthy_time_s = static_cast<int>(*n);
    } else if (key == "health-check") {
      s = ParseHealthCheck(val, def.health_check);
    } else if (key == "base-path") {
      auto e = GetEnum(val, key, {"preserve", "strip"});
      if (!e.ok()) {
        return e.status();
      }
      def.base_path = *e;
    } else if (key == "auth") {
      auto e = GetEnum(val, key, {"token", "public"});
      if (!e.ok()) {
        return e.status();
      }
      def.auth = *e;
    } else if (key == "mirror-traffic") {
      if (!val.is_bool()) {
        return FieldError(key, "must be true or false");
      }
      def.mirror_traffic = val.as_bool();
    } else if (key == "run-as-root") {
      if (!val.is_bool()) {
        return FieldError(key, "must be true or false");
      }
      def.run_as_root = val.as_bool();
    } else if (key == "expose") {
      auto e = GetEnum(val, key, {"http", "internal"});
      if (!e.ok()) {
        return e.status();
      }
      def.expose = *e;
    } else if (key == "scope") {
      auto l = GetStringList(val, key, false);
      if (!l.ok()) {
        return l.status();
      }
      if (l->empty()) {
        return FieldError(key, "must name at least one of interactive, jobs");
      }
      for (size_t i = 0; i < l->size(); ++i) {
        if ((*l)[i] != "interactive" && (*l)[i] != "jobs") {
          return FieldError(fmt::format("scope[{}]", i),
                            fmt::format("must be 'interactive' or 'jobs', got '{}'",
                                        (*l)[i].substr(0, 64)));
        }
      }
      def.scope = std::move(*l);
    } else if (key == "mounts") {
      s = ParseMounts(val, def);
    } else {
      return Status::InvalidArgument(fmt::format(
          "{}: unknown field{}; known fields are {}", key.substr(0, 64),
          DidYouMean(key, DefinitionKeys()), fmt::join(DefinitionKeys(), ", ")));
    }
    if (!s.ok()) {
      return s;
    }
  }
  if (def.memory_limit_mb && def.memory_reservation_mb &&
      *def.memory_limit_mb < *def.memory_reservation_mb) {
    return FieldError("memory-limit", fmt::format("must be >= memory-reservation ({} < {})",
                                                  *def.memory_limit_mb,
                                                  *def.memory_reservation_mb));
  }
  if (!def.container_tag && def.command.empty() && def.entrypoint.empty()) {
    return Status::InvalidArgument(
        "container-tag: required unless command or entrypoint is given (there must be "
        "something to run)");
  }
  return def;
}

json::object DefinitionToJson(const Definition& def) {
  json::object o;
  o["container-tag"] = def.container_tag ? json::value(*def.container_tag) : json::value(nullptr);
  o["memory-reservation"] =
      def.memory_reservation_mb ? json::value(*def.memory_reservation_mb) : json::value(nullptr);
  o["memory-limit"] =
      def.memory_limit_mb ? json::value(*def.memory_limit_mb) : json::value(nullptr);
  o["container-port"] =
      def.container_port ? json::value(*def.container_port) : json::value(nullptr);
  json::array env;
  for (const auto& e : def.environment) {
    env.push_back(json::object{{"name", e.name}, {"value", e.value}});
  }
  o["environment"] = std::move(env);
  o["inherited-environment"] = json::value_from(def.inherited_environment);
  o["command"] = json::value_from(def.command);
  o["entrypoint"] = json::value_from(def.entrypoint);
  o["replicas"] = def.replicas;
  o["min-healthy-time"] = def.min_healthy_time_s;
  o["pids-limit"] = def.pids_limit;
  json::object hc{{"type", def.health_check.type},
                  {"rel_path", def.health_check.rel_path},
                  {"status_codes", def.health_check.status_codes},
                  {"interval", def.health_check.interval_s},
                  {"timeout", def.health_check.timeout_s}};
  if (!def.health_check.command.empty()) {
    hc["command"] = json::value_from(def.health_check.command);
  }
  o["health-check"] = std::move(hc);
  o["base-path"] = def.base_path;
  o["auth"] = def.auth;
  o["expose"] = def.expose;
  o["mirror-traffic"] = def.mirror_traffic;
  o["scope"] = json::value_from(def.scope);
  json::array mounts;
  for (const auto& m : def.mounts) {
    mounts.push_back(json::object{{"source", m.source}, {"target", m.target}});
  }
  o["mounts"] = std::move(mounts);
  o["run-as-root"] = def.run_as_root;
  return o;
}

}  // namespace berth
