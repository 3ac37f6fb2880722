// The document has the Python SDK's shape (operation ids, tags, descriptions), so that a
// client or a docs page sees no difference between the two.
#include "openapi.h"

#include <string>

namespace berth::sdk {
namespace {

namespace json = boost::json;

json::object JsonContent(json::value schema) {
  return {{"application/json", {{"schema", std::move(schema)}}}};
}

json::object ErrorResponse(std::string_view description) {
  return {{"description", description},
          {"content", JsonContent(json::object{{"$ref", "#/components/schemas/Error"}})}};
}

json::object Const(std::string_view value) { return {{"const", value}}; }

json::object EntrypointOperation(const detail::EntrypointSpec& entrypoint) {
  json::object properties;
  json::array required;
  for (const auto& arg : entrypoint.args) {
    properties[arg.name] = arg.schema;
    if (arg.required) {
      required.emplace_back(arg.name);
    }
  }
  // An entrypoint whose arguments are all optional may be called without a body.
  bool body_required = !required.empty();
  json::object body{{"type", "object"}, {"properties", std::move(properties)}};
  if (body_required) {
    body["required"] = std::move(required);
  }
  body["additionalProperties"] = false;
  return {
      {"operationId", entrypoint.name},
      {"summary", entrypoint.name},
      {"tags", {"entrypoints"}},
      {"requestBody", {{"required", body_required}, {"content", JsonContent(std::move(body))}}},
      {"responses",
       {{"200",
         {{"description", "The function's return value"},
          {"content", JsonContent(entrypoint.result_schema)}}},
        {"400", ErrorResponse("The body is not valid JSON")},
        {"422", ErrorResponse("An argument is missing, unknown or of the wrong type")},
        {"500", ErrorResponse("The function raised an exception")}}},
  };
}

json::object ParameterPath(const std::string& name, std::string_view type) {
  json::object value{{"type", type}};
  std::string shown = name + " (" + std::string(type) + ")";
  json::object current{
      {"type", "object"},
      {"properties", {{"name", Const(name)}, {"value", value}, {"type", Const(type)}}}};
  json::array alternatives;
  for (const std::string& key : {std::string("value"), name}) {
    alternatives.push_back(json::object{{"type", "object"},
                                        {"required", json::array{json::value(key)}},
                                        {"properties", {{key, value}}},
                                        {"additionalProperties", false}});
  }
  json::object changed{{"type", "object"},
                       {"properties", {{"name", Const(name)}, {"value", value}}}};
  json::object get{
      {"operationId", "berth_get_parameter_" + name},
      {"tags", {"parameters"}},
      {"summary", "Read parameter " + shown},
      {"responses",
       {{"200", {{"description", "The current value"}, {"content", JsonContent(current)}}},
        {"404", ErrorResponse("No such parameter")}}},
  };
  json::object post{
      {"operationId", "berth_set_parameter_" + name},
      {"tags", {"parameters"}},
      {"summary", "Change parameter " + shown},
      {"requestBody",
       {{"required", true},
        {"content", JsonContent(json::object{{"anyOf", std::move(alternatives)}})}}},
      {"responses",
       {{"200", {{"description", "The new value"}, {"content", JsonContent(changed)}}},
        {"404", ErrorResponse("No such parameter")},
        {"422", ErrorResponse("The value is not of the parameter's type")}}},
  };
  return {{"get", std::move(get)}, {"post", std::move(post)}};
}

}  // namespace

json::object BuildOpenApi(const Config& config, const EntrypointMap& entrypoints,
                          const ParameterStore& parameters) {
  json::object paths;
  for (const auto& [name, entrypoint] : entrypoints) {
    paths["/" + name] = {{"post", EntrypointOperation(entrypoint)}};
  }

  json::object listed;
  std::vector<std::pair<std::string, ParamType>> types = parameters.Types();
  for (const auto& [name, type] : types) {
    json::object value{{"type", ParamTypeName(type)}};
    listed[name] = {{"type", "object"},
                    {"properties",
                     {{"value", value}, {"type", Const(ParamTypeName(type))}, {"default", value}}}};
  }
  json::object listing{
      {"type", "object"},
      {"properties", {{"parameters", {{"type", "object"}, {"properties", std::move(listed)}}}}}};
  paths["/~parameters"] = {{"get",
                            {{"operationId", "berth_list_parameters"},
                             {"summary", "List the runtime parameters"},
                             {"tags", {"parameters"}},
                             {"responses",
                              {{"200",
                                {{"description", "Every parameter's value, type and default"},
                                 {"content", JsonContent(std::move(listing))}}}}}}}};
  for (const auto& [name, type] : types) {
    paths["/~parameters/" + name] = ParameterPath(name, ParamTypeName(type));
  }

  json::object status{{"type", "object"}, {"properties", {{"status", Const("ok")}}}};
  paths["/~health"] = {{"get",
                        {{"operationId", "berth_health"},
                         {"summary", "Liveness check"},
                         {"tags", {"berth"}},
                         {"responses",
                          {{"200",
                            {{"description", "The service is up"},
                             {"content", JsonContent(std::move(status))}}}}}}}};

  json::object error{
      {"type", "object"},
      {"required", {"error"}},
      {"properties",
       {{"error",
         {{"type", "object"},
          {"required", {"code", "message"}},
          {"properties", {{"code", {{"type", "string"}}}, {"message", {{"type", "string"}}}}}}}}}};
  return {
      {"openapi", "3.1.0"},
      {"info", {{"title", config.service}, {"version", config.version}}},
      {"servers", {{{"url", config.context_root.empty() ? "/" : config.context_root}}}},
      {"paths", std::move(paths)},
      {"components", {{"schemas", {{"Error", std::move(error)}}}}},
  };
}

}  // namespace berth::sdk
