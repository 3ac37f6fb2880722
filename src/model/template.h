// Service templates (seed 000's Redis, Postgres, Jupyter...): a definition with blanks
// ("{{name}}"), the programs it needs, and which of its ports are for browsers. Pure: parsing
// and rendering do no I/O except CheckRequirements, which looks for programs.
#pragma once

#include <boost/json/object.hpp>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"

namespace berth {

struct TemplateValue {
  std::string name;
  std::string default_value;
  std::string description;
  bool required = false;  // no default: must be given
};

struct TemplateRequirement {
  std::string program;  // a name on PATH, or an absolute path (glob patterns allowed)
  std::string package;  // what to install when it is missing
};

struct TemplatePort {
  int port = 0;
  bool http = false;  // reachable from a browser through the gateway; else internal only
};

struct Template {
  std::string name;
  std::string description;
  std::vector<TemplateRequirement> requirements;  // "requires:" in the file
  std::vector<TemplateValue> values;
  boost::json::value ports;       // as written, blanks included
  boost::json::object definition;  // as written, blanks included
};

// Parses a template file. InvalidArgument naming the file and what is wrong.
Result<Template> ParseTemplate(const std::string& name, const std::string& yaml_text);

struct RenderedTemplate {
  boost::json::object definition;  // ready for ParseDefinition
  std::vector<TemplatePort> ports;
};

// Fills the blanks with `values` (defaults for the rest). InvalidArgument for a value the
// template does not have (naming those it has), or a required value left out.
Result<RenderedTemplate> RenderTemplate(const Template& t,
                                        const std::map<std::string, std::string>& values);

// FailedPrecondition naming what to install when a program the template runs is missing.
Status CheckRequirements(const Template& t);

}  // namespace berth
