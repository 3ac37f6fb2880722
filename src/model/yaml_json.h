// YAML documents (definitions, templates, berth.yaml) read as JSON, the model's one format.
#pragma once

#include <boost/json/value.hpp>
#include <string>

#include "common/status.h"

namespace berth {

// Converts YAML text to JSON: plain scalars become numbers, booleans or null where they read
// as such; quoted scalars stay strings. InvalidArgument with the line on a syntax error.
Result<boost::json::value> YamlToJson(const std::string& text);

}  // namespace berth
