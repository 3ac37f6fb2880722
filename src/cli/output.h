// Output helpers for the CLI: aligned tables for people, indented JSON for scripts.
#pragma once

#include <boost/json/value.hpp>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/yaml_json.h"

namespace berth {

// Prints `rows` under `header` with columns padded to their widest cell.
std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows);

// Indented JSON, two spaces per level, keys in their stored order.
std::string PrettyJson(const boost::json::value& v);


}  // namespace berth
