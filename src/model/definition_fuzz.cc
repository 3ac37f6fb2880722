// libFuzzer target for what users write by hand: any bytes as a service definition (JSON or
// YAML), a template, and a project, service, session name or tag. Besides not crashing:
// - a definition that parses round-trips: ParseDefinition(DefinitionToJson(d)) is d;
// - a YAML document that converts converts to JSON that parses back;
// - a name the rules accept is one path segment: no '/', NUL or spaces, not '..'.
#include <cstddef>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <boost/json.hpp>

#include "model/definition.h"
#include "model/names.h"
#include "model/template.h"
#include "model/yaml_json.h"

namespace json = boost::json;

namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "definition_fuzz: %s\n", what);
    std::abort();
  }
}

void CheckDefinition(const json::value& v) {
  auto d = berth::ParseDefinition(v);
  if (!d.ok()) {
    Check(!d.status().message().empty(), "a refused definition without a reason");
    return;
  }
  json::object once = berth::DefinitionToJson(*d);
  auto again = berth::ParseDefinition(once);
  Check(again.ok(), "a definition's own JSON does not parse");
  Check(json::serialize(berth::DefinitionToJson(*again)) == json::serialize(once),
        "a definition does not round-trip");
}

// One URL path segment and one file name, as it is: no separator, NUL, space, query, fragment
// or escape, and not "." or "..".
bool PathSafe(std::string_view name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find_first_of(std::string_view("/\0 \t\r\n?#%", 10)) == std::string_view::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (!ec) {
    CheckDefinition(v);
  }
  auto yaml = berth::YamlToJson(text);
  if (yaml.ok()) {
    std::string serialized = json::serialize(*yaml);
    json::value back = json::parse(serialized, ec);
    // Parses back; not compared: Boost.JSON 1.74's parser does not round doubles exactly.
    Check(!ec, "YAML's JSON does not parse back");
    CheckDefinition(*yaml);
  }
  (void)berth::ParseTemplate("fuzz", text);
  std::string_view name(text.data(), std::min<size_t>(text.size(), 200));
  if (berth::ValidateProjectName(name).ok()) {
    Check(PathSafe(name), "a project name that is not safe in a path");
    Check(berth::ValidateServiceName(name, "svc").ok() || name.size() + 4 > 32,
          "a valid project cannot hold a short service");
  }
  if (berth::ValidateServiceName("p", name).ok()) {
    Check(PathSafe(name), "a service name that is not safe in a path");
    Check(berth::DeploymentPath("p", name) == "/p-" + std::string(name),
          "a deployment path that is not /<project>-<name>");
  }
  if (berth::ValidateSessionName(name).ok()) {
    Check(PathSafe(name) && name.front() != '.', "a session name that is not safe in a path");
  }
  if (berth::ValidateTag(name).ok()) {
    Check(PathSafe(name) && name.front() != '.' && name.front() != '-',
          "a tag that is not safe in a path");
  }
  return 0;
}
