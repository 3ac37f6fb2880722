#include "cli/output.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>

namespace berth {

std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size());
  for (size_t i = 0; i < header.size(); ++i) {
    width[i] = header[i].size();
  }
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size() && i < width.size(); ++i) {
      width[i] = std::max(width[i], r[i].size());
    }
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t i = 0; i < cells.size() && i < width.size(); ++i) {
      out += cells[i];
      if (i + 1 < cells.size()) {
        out += std::string(width[i] - cells[i].size() + 2, ' ');
      }
    }
    return out + "\n";
  };
  std::string out = line(header);
  for (const auto& r : rows) {
    out += line(r);
  }
  return out;
}

namespace {
void Pretty(const boost::json::value& v, int indent, std::string& out) {
  std::string pad(static_cast<size_t>(indent) * 2, ' ');
  if (v.is_object()) {
    const auto& o = v.get_object();
    if (o.empty()) {
      out += "{}";
      return;
    }
    out += "{\n";
    size_t i = 0;
    for (const auto& kv : o) {
      out += pad + "  " + boost::json::serialize(boost::json::value(kv.key())) + ": ";
      Pretty(kv.value(), indent + 1, out);
      out += ++i < o.size() ? ",\n" : "\n";
    }
    out += pad + "}";
  } else if (v.is_array()) {
    const auto& a = v.get_array();
    if (a.empty()) {
      out += "[]";
      return;
    }
    out += "[\n";
    for (size_t i = 0; i < a.size(); ++i) {
      out += pad + "  ";
      Pretty(a[i], indent + 1, out);
      out += i + 1 < a.size() ? ",\n" : "\n";
    }
    out += pad + "]";
  } else {
    out += boost::json::serialize(v);
  }
}

boost::json::value ScalarToJson(const YAML::Node& n) {
  const std::string& s = n.Scalar();
  if (n.Tag() != "?") {  // quoted: always a string
    return boost::json::value(s);
  }
  if (s == "~" || s == "null" || s == "Null" || s == "NULL" || s.empty()) {
    return nullptr;
  }
  if (s == "true" || s == "True" || s == "TRUE") {
    return true;
  }
  if (s == "false" || s == "False" || s == "FALSE") {
    return false;
  }
  int64_t i = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), i);
  if (ec == std::errc() && p == s.data() + s.size()) {
    return i;
  }
  double d = 0;
  auto [pd, ecd] = std::from_chars(s.data(), s.data() + s.size(), d);
  if (ecd == std::errc() && pd == s.data() + s.size()) {
    return d;
  }
  return boost::json::value(s);
}

boost::json::value NodeToJson(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: {
      boost::json::object o;
      for (const auto& kv : n) {
        o[kv.first.as<std::string>()] = NodeToJson(kv.second);
      }
      return o;
    }
    case YAML::NodeType::Sequence: {
      boost::json::array a;
      for (const auto& item : n) {
        a.push_back(NodeToJson(item));
      }
      return a;
    }
    case YAML::NodeType::Scalar:
      return ScalarToJson(n);
    default:
      return nullptr;
  }
}
}  // namespace

std::string PrettyJson(const boost::json::value& v) {
  std::string out;
  Pretty(v, 0, out);
  return out + "\n";
}

Result<boost::json::value> YamlToJson(const std::string& text) {
  try {
    return NodeToJson(YAML::Load(text));
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(fmt::format("not valid YAML or JSON: {}", e.what()));
  }
}

}  // namespace berth
