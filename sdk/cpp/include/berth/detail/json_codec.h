// Reading entrypoint arguments from JSON and writing results to JSON text, by C++ type.
//
// ReadJson is strict in the way the Python SDK's type checks are: a string is not a number,
// 1.5 is not an integer, null is only an empty std::optional. Its errors name where inside
// the value the mismatch is ("[2]", ".key") so the caller can say "argument 'xs[2]': expected
// integer, got string".
//
// WriteJson appends JSON text directly to a string (no intermediate boost::json::value for
// the standard types) and writes doubles the way Python's json module does ("0.5", "3.0").
#pragma once

#include <boost/json/value.hpp>
#include <boost/json/value_from.hpp>
#include <boost/json/value_to.hpp>
#include <boost/system/system_error.hpp>
#include <charconv>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

#include "berth/detail/type_traits.h"

namespace berth::detail {

struct JsonError {
  std::string path;     // where in the value: "" (the value itself), "[2]", ".key", "[2].x"
  std::string message;  // what is wrong: "expected string, got number"
};

// "null", "boolean", "number", "string", "array" or "object".
std::string_view JsonKindName(const boost::json::value& v);
// Fills `error` with "expected <expected>, got <kind of v>" and returns false.
bool Mismatch(std::string_view expected, const boost::json::value& v, JsonError& error);
bool OutOfRange(const boost::json::value& v, JsonError& error);
void PrependIndex(JsonError& error, std::size_t index);
void PrependKey(JsonError& error, std::string_view key);

void AppendJsonString(std::string& out, std::string_view s);
void AppendJsonDouble(std::string& out, double d);
void AppendJsonValue(std::string& out, const boost::json::value& v);
void AppendJsonObject(std::string& out, const boost::json::object& o);
void AppendJsonArray(std::string& out, const boost::json::array& a);

// Reads `v` into `out`. Returns false with `error` filled when `v` does not have the shape of T.
// A std::string_view result points into `v` and lives only as long as it.
template <class T>
bool ReadJson(const boost::json::value& v, T& out, JsonError& error) {
  if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, std::string_view>) {
    if (!v.is_string()) {
      return Mismatch("string", v, error);
    }
    const boost::json::string& s = v.get_string();
    out = T(s.data(), s.size());
    return true;
  } else if constexpr (std::is_same_v<T, boost::json::string>) {
    if (!v.is_string()) {
      return Mismatch("string", v, error);
    }
    out = v.get_string();
    return true;
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_bool()) {
      return Mismatch("boolean", v, error);
    }
    out = v.get_bool();
    return true;
  } else if constexpr (kIsInteger<T>) {
    if (v.is_int64()) {
      if (!std::in_range<T>(v.get_int64())) {
        return OutOfRange(v, error);
      }
      out = static_cast<T>(v.get_int64());
      return true;
    }
    if (v.is_uint64()) {
      if (!std::in_range<T>(v.get_uint64())) {
        return OutOfRange(v, error);
      }
      out = static_cast<T>(v.get_uint64());
      return true;
    }
    return Mismatch("integer", v, error);
  } else if constexpr (std::is_floating_point_v<T>) {
    if (v.is_double()) {
      out = static_cast<T>(v.get_double());
    } else if (v.is_int64()) {
      out = static_cast<T>(v.get_int64());
    } else if (v.is_uint64()) {
      out = static_cast<T>(v.get_uint64());
    } else {
      return Mismatch("number", v, error);
    }
    return true;
  } else if constexpr (kIsOptional<T>) {
    if (v.is_null()) {
      out.reset();
      return true;
    }
    out.emplace();
    return ReadJson(v, *out, error);
  } else if constexpr (kIsVector<T>) {
    if (!v.is_array()) {
      return Mismatch("array", v, error);
    }
    const boost::json::array& a = v.get_array();
    out.clear();
    out.reserve(a.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      typename T::value_type item{};
      if (!ReadJson(a[i], item, error)) {
        PrependIndex(error, i);
        return false;
      }
      out.push_back(std::move(item));
    }
    return true;
  } else if constexpr (kIsStringMap<T>) {
    if (!v.is_object()) {
      return Mismatch("object", v, error);
    }
    out.clear();
    for (const auto& kv : v.get_object()) {
      typename T::mapped_type item{};
      if (!ReadJson(kv.value(), item, error)) {
        PrependKey(error, kv.key());
        return false;
      }
      out.emplace(std::string(kv.key()), std::move(item));
    }
    return true;
  } else if constexpr (std::is_same_v<T, boost::json::value>) {
    out = v;
    return true;
  } else if constexpr (std::is_same_v<T, boost::json::object>) {
    if (!v.is_object()) {
      return Mismatch("object", v, error);
    }
    out = v.get_object();
    return true;
  } else if constexpr (std::is_same_v<T, boost::json::array>) {
    if (!v.is_array()) {
      return Mismatch("array", v, error);
    }
    out = v.get_array();
    return true;
  } else {
    static_assert(boost::json::has_value_to<T>::value,
                  "berth: this argument type is not JSON-shaped; give it a Boost.JSON "
                  "conversion: T tag_invoke(boost::json::value_to_tag<T>, const "
                  "boost::json::value&) in T's namespace");
    // A user conversion reports a mismatch by throwing; that is its only channel.
    try {
      out = boost::json::value_to<T>(v);
      return true;
    } catch (const boost::system::system_error& e) {
      error.message = e.code().message();
    } catch (const std::exception& e) {
      error.message = e.what();
    }
    return false;
  }
}

// Appends `x` as JSON text to `out`.
template <class T>
void WriteJson(std::string& out, const T& x) {
  using U = std::remove_cvref_t<T>;
  if constexpr (kIsString<U>) {
    AppendJsonString(out, std::string_view(x.data(), x.size()));
  } else if constexpr (std::is_same_v<U, const char*> || std::is_same_v<U, char*>) {
    AppendJsonString(out, x);
  } else if constexpr (std::is_same_v<U, bool>) {
    out += x ? "true" : "false";
  } else if constexpr (kIsInteger<U>) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, x);
    out.append(buf, r.ptr);
  } else if constexpr (std::is_floating_point_v<U>) {
    AppendJsonDouble(out, static_cast<double>(x));
  } else if constexpr (kIsOptional<U>) {
    if (x) {
      WriteJson(out, *x);
    } else {
      out += "null";
    }
  } else if constexpr (kIsVector<U>) {
    out += '[';
    bool first = true;
    for (const auto& item : x) {
      if (!first) {
        out += ',';
      }
      first = false;
      WriteJson(out, static_cast<const typename U::value_type&>(item));
    }
    out += ']';
  } else if constexpr (kIsStringMap<U>) {
    out += '{';
    bool first = true;
    for (const auto& [key, item] : x) {
      if (!first) {
        out += ',';
      }
      first = false;
      AppendJsonString(out, key);
      out += ':';
      WriteJson(out, item);
    }
    out += '}';
  } else if constexpr (std::is_same_v<U, boost::json::value>) {
    AppendJsonValue(out, x);
  } else if constexpr (std::is_same_v<U, boost::json::object>) {
    AppendJsonObject(out, x);
  } else if constexpr (std::is_same_v<U, boost::json::array>) {
    AppendJsonArray(out, x);
  } else if constexpr (std::is_same_v<U, std::nullptr_t>) {
    out += "null";
  } else {
    static_assert(boost::json::has_value_from<U>::value,
                  "berth: this result type is not JSON-shaped; give it a Boost.JSON "
                  "conversion: void tag_invoke(boost::json::value_from_tag, "
                  "boost::json::value&, const T&) in T's namespace");
    AppendJsonValue(out, boost::json::value_from(x));
  }
}

}  // namespace berth::detail
