// Traits that sort the argument and result types the SDK understands: the JSON-shaped
// standard types it reads and writes itself, and everything else, which goes through
// Boost.JSON's value_to / value_from (user structs with tag_invoke overloads).
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/string.hpp>
#include <boost/json/value.hpp>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

namespace berth::detail {

template <class T>
struct IsOptionalT : std::false_type {};
template <class T>
struct IsOptionalT<std::optional<T>> : std::true_type {};
template <class T>
inline constexpr bool kIsOptional = IsOptionalT<T>::value;

template <class T>
struct IsVectorT : std::false_type {};
template <class T, class A>
struct IsVectorT<std::vector<T, A>> : std::true_type {};
template <class T>
inline constexpr bool kIsVector = IsVectorT<T>::value;

// std::map and std::unordered_map keyed by std::string: JSON objects with values of one type.
template <class T>
struct IsStringMapT : std::false_type {};
template <class V, class C, class A>
struct IsStringMapT<std::map<std::string, V, C, A>> : std::true_type {};
template <class V, class H, class E, class A>
struct IsStringMapT<std::unordered_map<std::string, V, H, E, A>> : std::true_type {};
template <class T>
inline constexpr bool kIsStringMap = IsStringMapT<T>::value;

template <class T>
inline constexpr bool kIsString =
    std::is_same_v<T, std::string> || std::is_same_v<T, std::string_view> ||
    std::is_same_v<T, boost::json::string>;

template <class T>
inline constexpr bool kIsInteger =
    std::is_integral_v<T> && !std::is_same_v<T, bool> && !std::is_same_v<T, char> &&
    !std::is_same_v<T, char8_t> && !std::is_same_v<T, char16_t> && !std::is_same_v<T, char32_t> &&
    !std::is_same_v<T, wchar_t>;

}  // namespace berth::detail
