#include "router.h"

#include <cxxabi.h>

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <cstdlib>
#include <exception>
#include <typeinfo>

#include "berth/log.h"
#include "docs_page.h"
#include "openapi.h"

namespace berth::sdk {
namespace {

constexpr std::string_view kJson = "application/json";
constexpr std::string_view kHtml = "text/html; charset=utf-8";

bool IsGet(std::string_view method) { return method == "GET" || method == "HEAD"; }

bool IsBlank(std::string_view body) {
  return body.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

// Percent-decodes `path` into `out`; an invalid escape stays as it is (as Python's unquote).
void Unescape(std::string_view path, std::string& out) {
  out.clear();
  for (size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '%' && i + 2 < path.size() && HexDigit(path[i + 1]) >= 0 &&
        HexDigit(path[i + 2]) >= 0) {
      out += static_cast<char>(HexDigit(path[i + 1]) * 16 + HexDigit(path[i + 2]));
      i += 2;
    } else {
      out += path[i];
    }
  }
}

// The route path: the target without its query, percent-decoded, without the context root
// when it starts with it (the platform forwards requests with the root, or strips it), and
// without trailing slashes. `decoded` holds the text when decoding was needed.
std::string_view RoutePath(std::string_view target, std::string_view context_root,
                           std::string& decoded) {
  std::string_view path = target.substr(0, target.find('?'));
  if (path.find('%') != std::string_view::npos) {
    Unescape(path, decoded);
    path = decoded;
  }
  if (!context_root.empty() && path.starts_with(context_root) &&
      (path.size() == context_root.size() || path[context_root.size()] == '/')) {
    path.remove_prefix(context_root.size());
  }
  while (path.size() > 1 && path.back() == '/') {
    path.remove_suffix(1);
  }
  return path.empty() ? std::string_view("/") : path;
}

void JsonReply(const boost::json::value& v, Reply& reply) {
  reply.content_type = kJson;
  detail::AppendJsonValue(reply.body, v);
}

// `allow` is static text: "POST", "GET, HEAD" or "GET, POST, HEAD".
void MethodNotAllowed(std::string_view allow, std::string_view method, std::string_view path,
                      Reply& reply) {
  std::string message(method);
  message += " is not allowed on ";
  message += path;
  message += "; use ";
  message += allow;
  ErrorReply(405, "method_not_allowed", message, reply);
  reply.allow = allow;
}

// Parses `body` into `out`; answers 400 and returns false when it is not JSON.
bool ParseBody(std::string_view body, boost::json::storage_ptr storage, boost::json::value& out,
               Reply& reply) {
  boost::system::error_code ec;
  out = boost::json::parse(body, ec, std::move(storage));
  if (ec) {
    ErrorReply(400, "bad_request", "the request body is not valid JSON: " + ec.message(), reply);
    return false;
  }
  return true;
}

// "std::runtime_error" for the exception `e`.
std::string TypeName(const std::exception& e) {
  int status = 0;
  char* name = abi::__cxa_demangle(typeid(e).name(), nullptr, nullptr, &status);
  std::string out = status == 0 && name != nullptr ? name : typeid(e).name();
  std::free(name);
  return out;
}

}  // namespace

void ErrorReply(int status, std::string_view code, std::string_view message, Reply& reply) {
  reply.status = status;
  reply.content_type = kJson;
  reply.body.clear();
  reply.body += R"({"error":{"code":)";
  detail::AppendJsonString(reply.body, code);
  reply.body += R"(,"message":)";
  detail::AppendJsonString(reply.body, message);
  reply.body += "}}";
}

void Router::Handle(std::string_view method, std::string_view target, std::string_view body,
                    Reply& reply) const {
  reply.Reset();
  std::string decoded;
  std::string_view path = RoutePath(target, config_.context_root, decoded);
  if (path.size() > 1 && path[1] != '~' && path != "/openapi.json" && path != "/docs") {
    auto it = entrypoints_.find(path.substr(1));
    if (it == entrypoints_.end()) {
      NotFound(path, reply);
    } else if (method != "POST") {
      MethodNotAllowed("POST", method, path, reply);
    } else {
      CallEntrypoint(it->second, body, reply);
    }
    return;
  }
  if (path == "/~health") {
    reply.quiet = true;
    if (!IsGet(method)) {
      MethodNotAllowed("GET, HEAD", method, path, reply);
      return;
    }
    reply.content_type = kJson;
    reply.body = R"({"status":"ok"})";
    return;
  }
  if (path == "/~parameters") {
    if (!IsGet(method)) {
      MethodNotAllowed("GET, HEAD", method, path, reply);
      return;
    }
    boost::json::object all;
    all["parameters"] = parameters_.List();
    JsonReply(all, reply);
    return;
  }
  if (path.starts_with("/~parameters/")) {
    HandleParameter(method, path, path.substr(std::string_view("/~parameters/").size()), body,
                    reply);
    return;
  }
  if (!IsGet(method) && (path == "/openapi.json" || path == "/docs" || path == "/")) {
    MethodNotAllowed("GET, HEAD", method, path, reply);
    return;
  }
  if (path == "/openapi.json") {
    JsonReply(BuildOpenApi(config_, entrypoints_, parameters_), reply);
  } else if (path == "/docs") {
    reply.content_type = kHtml;
    reply.body = DocsPage();
  } else if (path == "/") {
    JsonReply(Index(), reply);
  } else {
    NotFound(path, reply);
  }
}

void Router::CallEntrypoint(const detail::EntrypointSpec& entrypoint, std::string_view body,
                            Reply& reply) const {
  // The arguments live only for this call: they go into a stack buffer, which small requests
  // never outgrow, instead of the heap.
  alignas(std::max_align_t) unsigned char buffer[4096];
  boost::json::monotonic_resource arena(buffer, sizeof buffer);
  boost::json::value args;
  if (IsBlank(body)) {
    args.emplace_object();
  } else if (!ParseBody(body, &arena, args, reply)) {
    return;
  }
  if (!args.is_object()) {
    ErrorReply(422, "invalid_argument",
               "the request body must be a JSON object of named arguments, got " +
                   std::string(detail::JsonKindName(args)),
               reply);
    return;
  }
  const boost::json::object& named = args.get_object();
  for (const auto& kv : named) {
    bool known = false;
    for (const auto& arg : entrypoint.args) {
      known = known || arg.name == kv.key();
    }
    if (!known) {
      std::string message = "argument '" + std::string(kv.key()) + "': unknown argument for " +
                            entrypoint.name + "; accepted: ";
      for (size_t i = 0; i < entrypoint.args.size(); ++i) {
        message += (i == 0 ? "" : ", ") + entrypoint.args[i].name;
      }
      if (entrypoint.args.empty()) {
        message += "none";
      }
      ErrorReply(422, "invalid_argument", message, reply);
      return;
    }
  }
  reply.content_type = kJson;
  int status = 500;
  std::string failure;
  try {
    status = entrypoint.invoke(named, reply.body);
  } catch (const std::exception& e) {
    failure = "entrypoint '" + entrypoint.name + "' raised " + TypeName(e) + ": " + e.what();
  } catch (...) {
    failure = "entrypoint '" + entrypoint.name +
              "' raised an exception that is not a "
              "std::exception";
  }
  if (status == 422) {
    std::string message = std::move(reply.body);
    ErrorReply(422, "invalid_argument", message, reply);
  } else if (status != 200) {
    log_error(failure);
    ErrorReply(500, "internal", failure, reply);
  }
}

void Router::HandleParameter(std::string_view method, std::string_view path, std::string_view name,
                             std::string_view body, Reply& reply) const {
  bool get = IsGet(method);
  if (!get && method != "POST") {
    MethodNotAllowed("GET, POST, HEAD", method, path, reply);
    return;
  }
  std::optional<boost::json::object> described = parameters_.Describe(name);
  if (!described) {
    ErrorReply(404, "not_found", parameters_.Unknown(name), reply);
    return;
  }
  if (get) {
    JsonReply(*described, reply);
    return;
  }
  if (IsBlank(body)) {
    ErrorReply(400, "bad_request", "the request has no body; send a JSON object", reply);
    return;
  }
  boost::json::value parsed;
  if (!ParseBody(body, {}, parsed, reply)) {
    return;
  }
  boost::json::value* value = nullptr;
  if (parsed.is_object() && parsed.get_object().size() == 1) {
    value = parsed.get_object().if_contains("value");
    if (value == nullptr) {
      value = parsed.get_object().if_contains(name);
    }
  }
  if (value == nullptr) {
    std::string n(name);
    ErrorReply(422, "invalid_argument",
               "the body to change parameter '" + n + "' must be {\"value\": <new value>} or {\"" +
                   n + "\": <new value>}",
               reply);
    return;
  }
  if (Status s = parameters_.Set(name, std::move(*value)); !s.ok()) {
    bool missing = s.code() == StatusCode::kNotFound;
    ErrorReply(missing ? 404 : 422, missing ? "not_found" : "invalid_argument", s.message(), reply);
    return;
  }
  described = parameters_.Describe(name);
  JsonReply(boost::json::object{{"name", name}, {"value", (*described)["value"]}}, reply);
}

boost::json::object Router::Index() const {
  boost::json::array entrypoints;
  for (const auto& [name, spec] : entrypoints_) {
    entrypoints.emplace_back("POST " + config_.context_root + "/" + name);
  }
  return {{"service", config_.service},
          {"version", config_.version},
          {"entrypoints", std::move(entrypoints)},
          {"docs", config_.context_root + "/docs"},
          {"openapi", config_.context_root + "/openapi.json"}};
}

void Router::NotFound(std::string_view path, Reply& reply) const {
  std::string message = "no entrypoint at '" + std::string(path) + "' (under context root " +
                        (config_.context_root.empty() ? "/" : config_.context_root) + "); ";
  if (entrypoints_.empty()) {
    message += "this service has no entrypoints yet";
  } else {
    message += "entrypoints: ";
    bool first = true;
    for (const auto& [name, spec] : entrypoints_) {
      message += first ? "POST /" : ", POST /";
      message += name;
      first = false;
    }
    message += " (documented at " + config_.context_root + "/docs)";
  }
  ErrorReply(404, "not_found", message, reply);
}

}  // namespace berth::sdk
