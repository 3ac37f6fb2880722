#include "runtime/instance_spec.h"

#include <boost/json.hpp>

namespace berth {
namespace json = boost::json;
namespace {

Result<json::object> ParseObject(const std::string& text, std::string_view what) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) {
    return Status::Internal(std::string(what) + " is not a JSON object");
  }
  return std::move(v.get_object());
}

int64_t Int(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) {
    return 0;
  }
  if (v->is_int64()) {
    return v->get_int64();
  }
  if (v->is_uint64()) {
    return static_cast<int64_t>(v->get_uint64());
  }
  return 0;
}

std::string Str(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

std::vector<std::string> Strings(const json::object& o, std::string_view key) {
  std::vector<std::string> out;
  if (const json::value* v = o.if_contains(key); v && v->is_array()) {
    for (const auto& item : v->get_array()) {
      if (item.is_string()) {
        out.emplace_back(item.get_string());
      }
    }
  }
  return out;
}

}  // namespace

std::string InstanceSpecToJson(const InstanceSpec& s) {
  return json::serialize(json::object{{"id", s.id},
                                      {"argv", json::value_from(s.argv)},
                                      {"env", json::value_from(s.env)},
                                      {"cwd", s.cwd},
                                      {"memory_limit_bytes", s.memory_limit_bytes},
                                      {"grace_seconds", s.grace_seconds},
                                      {"log_max_bytes", s.log_max_bytes},
                                      {"log_keep", s.log_keep}});
}

Result<InstanceSpec> InstanceSpecFromJson(const std::string& text) {
  auto o = ParseObject(text, "spec.json");
  if (!o.ok()) {
    return o.status();
  }
  InstanceSpec s;
  s.id = Str(*o, "id");
  s.argv = Strings(*o, "argv");
  s.env = Strings(*o, "env");
  s.cwd = Str(*o, "cwd");
  s.memory_limit_bytes = static_cast<uint64_t>(Int(*o, "memory_limit_bytes"));
  s.grace_seconds = static_cast<int>(Int(*o, "grace_seconds"));
  s.log_max_bytes = static_cast<uint64_t>(Int(*o, "log_max_bytes"));
  s.log_keep = static_cast<int>(Int(*o, "log_keep"));
  if (s.id.empty() || s.argv.empty()) {
    return Status::InvalidArgument("spec.json needs an id and a non-empty argv");
  }
  return s;
}

std::string ShimRecordToJson(const ShimRecord& r) {
  return json::serialize(
      json::object{{"shim_pid", r.shim_pid}, {"pid", r.pid}, {"started_at", r.started_at}});
}

Result<ShimRecord> ShimRecordFromJson(const std::string& text) {
  auto o = ParseObject(text, "shim.json");
  if (!o.ok()) {
    return o.status();
  }
  return ShimRecord{static_cast<int>(Int(*o, "shim_pid")), static_cast<int>(Int(*o, "pid")),
                    Int(*o, "started_at")};
}

std::string ExitRecordToJson(const ExitRecord& r) {
  return json::serialize(json::object{{"exit_code", r.exit_code},
                                      {"signal", r.signal},
                                      {"oom_killed", r.oom_killed},
                                      {"ended_at", r.ended_at},
                                      {"error", r.error}});
}

Result<ExitRecord> ExitRecordFromJson(const std::string& text) {
  auto o = ParseObject(text, "exit.json");
  if (!o.ok()) {
    return o.status();
  }
  ExitRecord r;
  r.exit_code = static_cast<int>(Int(*o, "exit_code"));
  r.signal = static_cast<int>(Int(*o, "signal"));
  const json::value* oom = o->if_contains("oom_killed");
  r.oom_killed = oom && oom->is_bool() && oom->get_bool();
  r.ended_at = Int(*o, "ended_at");
  r.error = Str(*o, "error");
  return r;
}

}  // namespace berth
