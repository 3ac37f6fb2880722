// SchemaOf<T>() is the JSON Schema (as used by OpenAPI 3.1) that the SDK publishes for an
// entrypoint argument or result of type T. It follows the same rules that validate requests:
//
//   std::string, std::string_view     {"type": "string"}
//   bool                              {"type": "boolean"}
//   int, int64_t, other integers      {"type": "integer"}
//   double, float                     {"type": "number"}
//   std::vector<T>                    {"type": "array", "items": SchemaOf<T>()}
//   std::optional<T>                  SchemaOf<T>() with "null" added to its type
//                                     ({"type": ["string", "null"]}), else
//                                     {"anyOf": [SchemaOf<T>(), {"type": "null"}]}
//   std::map<std::string, T>          {"type": "object", "additionalProperties": SchemaOf<T>()}
//   boost::json::value                {} (anything)
//   boost::json::object / array       {"type": "object"} / {"type": "array"}
//   void (a result only)              {"type": "null"}
//
// A user struct read and written through Boost.JSON's tag_invoke (value_to / value_from) is
// published as {"type": "object"} unless its namespace declares a schema for it:
//
//   boost::json::object tag_invoke(berth::schema_tag<Point>) {
//     return {{"type", "object"}, {"properties", {{"x", {{"type", "number"}}}}}};
//   }
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <concepts>
#include <type_traits>

#include "berth/detail/type_traits.h"

namespace berth {

// The tag a schema overload for T is selected by; see the file comment.
template <class T>
struct schema_tag {};

template <class T>
boost::json::object SchemaOf() {
  using U = std::remove_cvref_t<T>;
  if constexpr (requires {
                  { tag_invoke(schema_tag<U>{}) } -> std::convertible_to<boost::json::object>;
                }) {
    return tag_invoke(schema_tag<U>{});
  } else if constexpr (std::is_void_v<U>) {
    return {{"type", "null"}};
  } else if constexpr (detail::kIsString<U>) {
    return {{"type", "string"}};
  } else if constexpr (std::is_same_v<U, bool>) {
    return {{"type", "boolean"}};
  } else if constexpr (detail::kIsInteger<U>) {
    return {{"type", "integer"}};
  } else if constexpr (std::is_floating_point_v<U>) {
    return {{"type", "number"}};
  } else if constexpr (detail::kIsOptional<U>) {
    boost::json::object inner = SchemaOf<typename U::value_type>();
    if (inner.empty()) {
      return inner;  // anything, null included
    }
    if (auto* type = inner.if_contains("type"); type != nullptr && type->is_string()) {
      *type = boost::json::array{*type, "null"};
      return inner;
    }
    boost::json::object s;
    s["anyOf"] = {std::move(inner), boost::json::object{{"type", "null"}}};
    return s;
  } else if constexpr (detail::kIsVector<U>) {
    return {{"type", "array"}, {"items", SchemaOf<typename U::value_type>()}};
  } else if constexpr (detail::kIsStringMap<U>) {
    return {{"type", "object"}, {"additionalProperties", SchemaOf<typename U::mapped_type>()}};
  } else if constexpr (std::is_same_v<U, boost::json::value>) {
    return {};
  } else if constexpr (std::is_same_v<U, boost::json::array>) {
    return {{"type", "array"}};
  } else {
    return {{"type", "object"}};
  }
}

}  // namespace berth
