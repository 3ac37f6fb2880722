// YAML documents (definitions, templates, berth.yaml) read as JSON, the model's one format.
#pragma once

#include <boost/json/value.hpp>
#include <string>
#include <string_view>

#include "common/status.h"

namespace berth {

// Converts YAML text to JSON: plain scalars become numbers, booleans or null where they read
// as such; quoted scalars stay strings. InvalidArgument with the line on a syntax error.
Result<boost::json::value> YamlToJson(const std::string& text);

// "a string", "an integer", "a list"...: how error messages name what was given instead.
std::string_view JsonKindName(const boost::json::value& v);

}  // namespace berth
