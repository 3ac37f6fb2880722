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
  json::object o{{"id", s.id},
                 {"argv", json::value_from(s.argv)},
                 {"env", json::value_from(s.env)},
                 {"cwd", s.cwd},
                 {"memory_limit_bytes", s.memory_limit_bytes},
                 {"pids_limit", s.pids_limit},
                 {"address_claim", s.address_claim},
                 {"grace_seconds", s.grace_seconds},
                 {"log_max_bytes", s.log_max_bytes},
                 {"log_keep", s.log_keep}};
  if (!s.sandbox.empty()) {
    const Sandbox& sb = s.sandbox;
    json::array binds;
    for (const auto& b : sb.binds) {
      json::object bind{{"source", b.source}, {"target", b.target}, {"writable", b.writable}};
      if (b.layered) {
        bind["layered"] = true;
      }
      binds.push_back(std::move(bind));
    }
    o["sandbox"] = json::object{{"uid", sb.uid},
                                {"gid", sb.gid},
                                {"hide", json::value_from(sb.hide)},
                                {"binds", std::move(binds)},
                                {"tmp_bytes", sb.tmp_bytes},
                                {"passwd", sb.passwd},
                                {"group", sb.group}};
  }
  return json::serialize(o);
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
  s.pids_limit = Int(*o, "pids_limit");
  s.address_claim = Str(*o, "address_claim");
  s.grace_seconds = static_cast<int>(Int(*o, "grace_seconds"));
  s.log_max_bytes = static_cast<uint64_t>(Int(*o, "log_max_bytes"));
  s.log_keep = static_cast<int>(Int(*o, "log_keep"));
  if (const json::value* v = o->if_contains("sandbox"); v && v->is_object()) {
    const json::object& sb = v->get_object();
    s.sandbox.uid = static_cast<uint32_t>(Int(sb, "uid"));
    s.sandbox.gid = static_cast<uint32_t>(Int(sb, "gid"));
    s.sandbox.hide = Strings(sb, "hide");
    if (const json::value* bs = sb.if_contains("binds"); bs && bs->is_array()) {
      for (const auto& b : bs->get_array()) {
        if (b.is_object()) {
          auto flag = [&](std::string_view key) {
            const json::value* f = b.get_object().if_contains(key);
            return f != nullptr && f->is_bool() && f->get_bool();
          };
          s.sandbox.binds.push_back({Str(b.get_object(), "source"), Str(b.get_object(), "target"),
                                     flag("writable"), flag("layered")});
        }
      }
    }
    s.sandbox.tmp_bytes = static_cast<uint64_t>(Int(sb, "tmp_bytes"));
    s.sandbox.passwd = Str(sb, "passwd");
    s.sandbox.group = Str(sb, "group");
  }
  if (s.id.empty() || s.argv.empty()) {
    return Status::InvalidArgument("spec.json needs an id and a non-empty argv");
  }
  return s;
}

std::string ShimRecordToJson(const ShimRecord& r) {
  return json::serialize(json::object{{"shim_pid", r.shim_pid},
                                      {"pid", r.pid},
                                      {"started_at", r.started_at},
                                      {"shim_start", r.shim_start}});
}

Result<ShimRecord> ShimRecordFromJson(const std::string& text) {
  auto o = ParseObject(text, "shim.json");
  if (!o.ok()) {
    return o.status();
  }
  return ShimRecord{static_cast<int>(Int(*o, "shim_pid")), static_cast<int>(Int(*o, "pid")),
                    Int(*o, "started_at"), Int(*o, "shim_start")};
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
