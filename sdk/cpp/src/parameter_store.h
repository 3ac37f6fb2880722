// ParameterStore holds a service's run-time parameters: named values whose type is fixed by
// their default. Reads take a shared lock, so entrypoints reading parameters on every request
// do not contend with each other; a change takes the lock exclusively.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <map>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "berth/service.h"
#include "status.h"

namespace berth::sdk {

enum class ParamType { kString, kBoolean, kInteger, kNumber, kArray, kObject };

// "string", "boolean", "integer", "number", "array", "object": the JSON Schema type names.
std::string_view ParamTypeName(ParamType type);

// Checks that `value` fits `type` ("number" takes integers too, and turns them into doubles).
// InvalidArgument "expected integer, got string" otherwise.
Status FitParameter(ParamType type, boost::json::value& value);

class ParameterStore {
 public:
  // Declares a parameter whose type is the default's. Its value is `stored` (the platform's,
  // from BERTH_PARAMETERS) when given and of that type; a stored value of another type is
  // logged as a warning and the default used. InvalidArgument for a taken name or a null
  // default.
  Status Add(std::string name, boost::json::value default_value,
             const boost::json::value* stored = nullptr);

  // Calls `visit` on the current value under the shared lock. NotFound for an unknown name;
  // InvalidArgument "parameter 'x': expected ..." when `visit` refuses the value.
  Status Visit(std::string_view name, detail::ParameterVisitor visit, void* context) const;

  // Replaces the value, and logs the change. NotFound for an unknown name; InvalidArgument
  // when the type differs.
  Status Set(std::string_view name, boost::json::value value);

  // {"greeting_phrase": {"value": "Hello", "type": "string", "default": "Hello"}, ...}
  boost::json::object List() const;
  // {"name", "value", "type"}, or nullopt for an unknown name.
  std::optional<boost::json::object> Describe(std::string_view name) const;
  // Names and types, in name order.
  std::vector<std::pair<std::string, ParamType>> Types() const;
  // "unknown parameter 'x'; defined parameters: a, b": the message of NotFound.
  std::string Unknown(std::string_view name) const;

 private:
  struct Parameter {
    ParamType type;
    boost::json::value value;
    boost::json::value default_value;
  };

  std::string UnknownLocked(std::string_view name) const;  // Unknown, with mu_ held

  mutable std::shared_mutex mu_;
  std::map<std::string, Parameter, std::less<>> params_;  // GUARDED_BY(mu_)
};

}  // namespace berth::sdk
