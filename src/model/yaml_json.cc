#include "model/yaml_json.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <boost/json.hpp>
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>

namespace berth {
namespace {

// The length of the well-formed UTF-8 character at s[i] (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF), or 0.
size_t Utf8Length(std::string_view s, size_t i) {
  auto c = static_cast<unsigned char>(s[i]);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
  if (n == 0 || i + n > s.size()) {
    return 0;
  }
  uint32_t cp = n == 1 ? c : c & (0x7f >> n);
  for (size_t k = 1; k < n; ++k) {
    auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc >> 6) != 0x2) {
      return 0;
    }
    cp = (cp << 6) | (cc & 0x3f);
  }
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
    return 0;
  }
  return n;
}

// The offset of the first byte that is not part of well-formed UTF-8 or is a control
// character YAML does not allow (all of C0 but tab, LF and CR; DEL), or npos. yaml-cpp passes
// other bytes through, and takes text that starts with NULs for UTF-16/32, which it turns into
// bytes JSON cannot carry.
size_t FirstInvalidYamlByte(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n = Utf8Length(s, i);
    if (n == 0 || (c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f) {
      return i;
    }
    i += n;
  }
  return std::string_view::npos;
}

// yaml-cpp writes the escapes "\_", "\N" and "\xNN" (U+00A0, U+0085, U+00NN) as single
// Latin-1 bytes; in text that was UTF-8, any byte that is not part of a UTF-8 character came
// from one of them, and is written as the character it stands for.
std::string RepairEscapes(const std::string& s) {
  size_t i = 0;
  for (size_t n; i < s.size() && (n = Utf8Length(s, i)) > 0;) {
    i += n;
  }
  if (i == s.size()) {
    return s;
  }
  std::string out;
  out.reserve(s.size() + 8);
  for (size_t i = 0; i < s.size();) {
    if (size_t n = Utf8Length(s, i); n > 0) {
      out.append(s, i, n);
      i += n;
    } else {
      auto b = static_cast<unsigned char>(s[i++]);
      out += static_cast<char>(0xc0 | (b >> 6));
      out += static_cast<char>(0x80 | (b & 0x3f));
    }
  }
  return out;
}

boost::json::value ScalarToJson(const YAML::Node& n) {
  const std::string s = RepairEscapes(n.Scalar());
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
  // "inf" and "nan" parse as doubles, but JSON has no such numbers: they stay text.
  if (ecd == std::errc() && pd == s.data() + s.size() && std::isfinite(d)) {
    return d;
  }
  return boost::json::value(s);
}

boost::json::value NodeToJson(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: {
      boost::json::object o;
      for (const auto& kv : n) {
        o[RepairEscapes(kv.first.as<std::string>())] = NodeToJson(kv.second);
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

Result<boost::json::value> YamlToJson(const std::string& text) {
  if (size_t bad = FirstInvalidYamlByte(text); bad != std::string_view::npos) {
    size_t line = 1 + static_cast<size_t>(std::count(text.begin(), text.begin() + bad, '\n'));
    auto c = static_cast<unsigned char>(text[bad]);
    return Status::InvalidArgument(
        c < 0x80 ? fmt::format("not YAML text: byte {} (line {}) is the control character "
                               "0x{:02x}; only tab, LF and CR are allowed",
                               bad + 1, line, c)
                 : fmt::format("not UTF-8 text: byte {} (line {}) is not part of a UTF-8 "
                               "character; save the file as UTF-8",
                               bad + 1, line));
  }
  try {
    return NodeToJson(YAML::Load(text));
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(fmt::format("not valid YAML or JSON: {}", e.what()));
  }
}

std::string_view JsonKindName(const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::null:
      return "null";
    case boost::json::kind::bool_:
      return "a boolean";
    case boost::json::kind::int64:
    case boost::json::kind::uint64:
      return "an integer";
    case boost::json::kind::double_:
      return "a number with a fraction";
    case boost::json::kind::string:
      return "a string";
    case boost::json::kind::array:
      return "a list";
    case boost::json::kind::object:
      return "an object";
  }
  return "a value";
}

}  // namespace berth
