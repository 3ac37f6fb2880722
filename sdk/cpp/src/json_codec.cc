// The non-template half of berth/detail/json_codec.h: error texts and JSON text output.
#include "berth/detail/json_codec.h"

#include <charconv>
#include <cmath>

namespace berth::detail {

std::string_view JsonKindName(const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::null:
      return "null";
    case boost::json::kind::bool_:
      return "boolean";
    case boost::json::kind::int64:
    case boost::json::kind::uint64:
    case boost::json::kind::double_:
      return "number";  // JSON has one number type; "1.5 is not an integer" reads fine this way
    case boost::json::kind::string:
      return "string";
    case boost::json::kind::array:
      return "array";
    case boost::json::kind::object:
      return "object";
  }
  return "value";
}

bool Mismatch(std::string_view expected, const boost::json::value& v, JsonError& error) {
  error.message = "expected ";
  error.message += expected;
  error.message += ", got ";
  error.message += JsonKindName(v);
  return false;
}

bool OutOfRange(const boost::json::value& v, JsonError& error) {
  error.message = "integer out of range: ";
  AppendJsonValue(error.message, v);
  return false;
}

void PrependIndex(JsonError& error, std::size_t index) {
  error.path.insert(0, "[" + std::to_string(index) + "]");
}

void PrependKey(JsonError& error, std::string_view key) {
  std::string step = ".";
  step += key;
  error.path.insert(0, step);
}

std::string ArgumentError(std::string_view name, const JsonError& error) {
  std::string text = "argument '";
  text += name;
  text += error.path;
  text += "': ";
  text += error.message;
  return text;
}

void AppendJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.reserve(out.size() + s.size() + 2);
  out += '"';
  size_t run = 0;  // start of the pending run of characters that need no escape
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') {
      continue;
    }
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 0xf];
    }
  }
  out.append(s.data() + run, s.size() - run);
  out += '"';
}

void AppendJsonDouble(std::string& out, double d) {
  if (!std::isfinite(d)) {
    out += "null";  // JSON has no NaN or infinity
    return;
  }
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  std::string_view text(buf, static_cast<size_t>(r.ptr - buf));
  out += text;
  // Python writes 3.0 as "3.0", keeping it a float for the reader; to_chars writes "3".
  if (text.find_first_of(".e") == std::string_view::npos) {
    out += ".0";
  }
}

void AppendJsonObject(std::string& out, const boost::json::object& o) {
  out += '{';
  bool first = true;
  for (const auto& kv : o) {
    if (!first) {
      out += ',';
    }
    first = false;
    AppendJsonString(out, kv.key());
    out += ':';
    AppendJsonValue(out, kv.value());
  }
  out += '}';
}

void AppendJsonArray(std::string& out, const boost::json::array& a) {
  out += '[';
  bool first = true;
  for (const auto& item : a) {
    if (!first) {
      out += ',';
    }
    first = false;
    AppendJsonValue(out, item);
  }
  out += ']';
}

void AppendJsonValue(std::string& out, const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::null:
      out += "null";
      return;
    case boost::json::kind::bool_:
      out += v.get_bool() ? "true" : "false";
      return;
    case boost::json::kind::int64:
      WriteJson(out, v.get_int64());
      return;
    case boost::json::kind::uint64:
      WriteJson(out, v.get_uint64());
      return;
    case boost::json::kind::double_:
      AppendJsonDouble(out, v.get_double());
      return;
    case boost::json::kind::string:
      AppendJsonString(out, v.get_string());
      return;
    case boost::json::kind::array:
      AppendJsonArray(out, v.get_array());
      return;
    case boost::json::kind::object:
      AppendJsonObject(out, v.get_object());
      return;
  }
}

}  // namespace berth::detail
