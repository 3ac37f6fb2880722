// berth::Service turns C++ functions into a berth service, as the Python SDK does for Python
// ones: declare parameters and entrypoints, then run().
//
//   berth::Service svc;
//   svc.add_parameter("greeting_phrase", std::string("Hello"));
//   svc.entrypoint("hello", {"name"}, [&](std::string name) -> std::string {
//     return svc.get_parameter<std::string>("greeting_phrase") + " " + name;
//   });
//   return svc.run();
//
// Each entrypoint's argument types come from the function's signature; the JSON request is
// checked against them and the OpenAPI document describes them (see berth/schema.h for the
// types understood). The HTTP interface, relative to $CONTEXT_ROOT:
//
//   POST /<entrypoint>              {"name": "Ada"} -> 200 "Hello Ada"; 422 for a missing,
//                                   unknown or mistyped argument, 400 for malformed JSON, 500
//                                   with the exception's what() when the function throws
//   GET  /~parameters               {"parameters": {"greeting_phrase": {"value", "type",
//                                   "default"}}}
//   GET  /~parameters/<name>        {"name", "value", "type"}
//   POST /~parameters/<name>        {"value": v} or {"<name>": v} -> {"name", "value"}
//   GET  /~health                   {"status": "ok"}
//   GET  /openapi.json, GET /docs   OpenAPI 3.1 document and an offline page to try it out
//   GET  /                          {"service", "version", "entrypoints", "docs", "openapi"}
//
// Errors have the body {"error": {"code": "invalid_argument", "message": "..."}}, with the
// codes bad_request (400), not_found (404), method_not_allowed (405, with Allow),
// invalid_argument (422) and internal (500). Each request but health checks is logged,
// "POST /default-hello/hello 200 0.1 ms". The Python SDK answers the same way.
//
// The environment is read when the Service is constructed: HOST and PORT (default
// 127.0.0.1:8080), CONTEXT_ROOT, BERTH_SERVICE, BERTH_VERSION, BERTH_PARAMETERS (a JSON
// object of stored parameter values that replace the defaults), BERTH_SDK_THREADS (default 2).
//
// Thread-safety: declare entrypoints and parameters before run(). After that, get_parameter
// and set_parameter may be called from any thread, including from inside entrypoints, which
// are themselves called concurrently from the server's threads. The Service must outlive
// run().
#pragma once

#include <array>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/json/value_from.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "berth/detail/callable.h"
#include "berth/detail/json_codec.h"
#include "berth/log.h"
#include "berth/notify.h"
#include "berth/schema.h"

namespace berth {

// One HTTP answer of Service::handle.
struct Response {
  int status = 0;
  std::string body;
  std::string content_type;                                  // "application/json", ...
  std::vector<std::pair<std::string, std::string>> headers;  // e.g. {"Allow", "POST"}
};

namespace detail {

struct ArgSpec {
  std::string name;
  boost::json::object schema;
  bool required = true;
};

// Reads the named arguments from `args`, calls the function and appends its JSON result to
// `out`, returning 200. A missing or mistyped argument returns 422 with the message ("argument
// 'name': expected string, got number") in `out` instead. Exceptions of the function pass
// through.
using Invoker = std::function<int(const boost::json::object& args, std::string& out)>;

struct EntrypointSpec {
  std::string name;
  std::vector<ArgSpec> args;
  boost::json::object result_schema;
  Invoker invoke;
};

std::string ArgumentError(std::string_view name, const JsonError& error);

template <class T>
bool ReadArg(const boost::json::object& args, std::string_view name, T& out, std::string& message) {
  const boost::json::value* v = args.if_contains(name);
  if (v == nullptr) {
    if constexpr (kIsOptional<T>) {
      out.reset();
      return true;
    } else {
      message = ArgumentError(name, JsonError{"", "missing"});
      return false;
    }
  }
  JsonError error;
  if (ReadJson(*v, out, error)) {
    return true;
  }
  message = ArgumentError(name, error);
  return false;
}

// Hands a stored argument to a parameter declared as A: by lvalue for `T&`, else moved.
template <class A>
decltype(auto) PassArg(std::remove_cvref_t<A>& stored) {
  if constexpr (std::is_lvalue_reference_v<A> && !std::is_const_v<std::remove_reference_t<A>>) {
    return (stored);
  } else {
    return std::move(stored);
  }
}

template <class F, class... A, std::size_t... I>
Invoker MakeInvoker(F fn, std::array<std::string, sizeof...(A)> names, std::tuple<A...>*,
                    std::index_sequence<I...>) {
  return [fn = std::move(fn), names = std::move(names)](const boost::json::object& args,
                                                        std::string& out) mutable -> int {
    std::tuple<std::remove_cvref_t<A>...> values;
    if (!(ReadArg(args, names[I], std::get<I>(values), out) && ...)) {
      return 422;
    }
    using R = std::invoke_result_t<F&, A...>;
    if constexpr (std::is_void_v<R>) {
      std::invoke(fn, PassArg<A>(std::get<I>(values))...);
      out += "null";
    } else {
      WriteJson(out, std::invoke(fn, PassArg<A>(std::get<I>(values))...));
    }
    return 200;
  };
}

template <class... A, std::size_t... I>
std::vector<ArgSpec> MakeArgSpecs(
    [[maybe_unused]] const std::array<std::string, sizeof...(A)>& names, std::tuple<A...>*,
    std::index_sequence<I...>) {
  return {ArgSpec{names[I], SchemaOf<std::remove_cvref_t<A>>(),
                  !kIsOptional<std::remove_cvref_t<A>>}...};
}

// Called with a parameter's value under the parameter lock.
using ParameterVisitor = bool (*)(const boost::json::value& value, void* context, JsonError& error);

}  // namespace detail

class Service {
 public:
  // Reads the environment (see the file comment). A malformed BERTH_PARAMETERS is logged as a
  // warning and ignored.
  Service();
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Serves `fn` at POST /<name>. `arg_names` names the function's parameters in order, and
  // must have one name per parameter (checked at compile time); the types come from the
  // signature. Parameters declared std::optional<T> may be left out of a request. `fn` is
  // copied and called concurrently from the server's threads. A std::string_view parameter
  // points into the request and is valid only during the call. Argument types must be
  // default-constructible.
  //
  // An invalid name (empty, not [A-Za-z0-9_.-]+, or taken) makes run() fail at startup.
  template <std::size_t N, class F>
  void entrypoint(std::string name, const char* const (&arg_names)[N], F&& fn) {
    using Traits = detail::CallableTraits<std::decay_t<F>>;
    static_assert(Traits::kArity == N,
                  "berth::Service::entrypoint: give exactly one name per parameter of the "
                  "function, in order");
    std::array<std::string, N> names;
    for (std::size_t i = 0; i < N; ++i) {
      names[i] = arg_names[i];
    }
    Register(std::move(name), std::move(names), std::forward<F>(fn));
  }

  // An entrypoint without arguments: POST /<name> with an empty body or {}.
  template <class F>
  void entrypoint(std::string name, F&& fn) {
    using Traits = detail::CallableTraits<std::decay_t<F>>;
    static_assert(Traits::kArity == 0,
                  "berth::Service::entrypoint: name the function's parameters: "
                  "entrypoint(\"name\", {\"a\", \"b\"}, fn)");
    Register(std::move(name), std::array<std::string, 0>{}, std::forward<F>(fn));
  }

  // Declares a parameter that can be read and changed at run time, over HTTP included. Its
  // type ("string", "boolean", "integer", "number", "array" or "object") is the default's.
  // A value stored by the platform in $BERTH_PARAMETERS replaces the default when its type
  // fits, else a warning is logged. A taken name or a null default makes run() fail at startup.
  void add_parameter(std::string name, std::string default_value) {
    AddParameter(std::move(name), boost::json::value(std::string_view(default_value)));
  }
  void add_parameter(std::string name, const char* default_value) {
    AddParameter(std::move(name), boost::json::value(std::string_view(default_value)));
  }
  void add_parameter(std::string name, bool default_value) {
    AddParameter(std::move(name), boost::json::value(default_value));
  }
  void add_parameter(std::string name, int default_value) {
    AddParameter(std::move(name), boost::json::value(static_cast<std::int64_t>(default_value)));
  }
  void add_parameter(std::string name, std::int64_t default_value) {
    AddParameter(std::move(name), boost::json::value(default_value));
  }
  void add_parameter(std::string name, double default_value) {
    AddParameter(std::move(name), boost::json::value(default_value));
  }
  void add_parameter(std::string name, boost::json::value default_value) {
    AddParameter(std::move(name), std::move(default_value));
  }

  // The current value of a parameter, read as T by the rules of entrypoint arguments (an
  // "integer" parameter reads as int64_t, int or double; a "number" as double). Throws
  // std::out_of_range when no parameter is called `name` and std::invalid_argument when T
  // cannot hold its value; inside an entrypoint either becomes a 500 answer.
  template <class T>
  T get_parameter(std::string_view name) const {
    static_assert(!std::is_same_v<T, std::string_view>,
                  "get_parameter<std::string_view> would point into a value that may change; "
                  "use std::string");
    T out{};
    ReadParameter(
        name,
        [](const boost::json::value& v, void* context, detail::JsonError& error) {
          return detail::ReadJson(v, *static_cast<T*>(context), error);
        },
        &out);
    return out;
  }

  // Changes a parameter, as POST /~parameters/<name> does. Throws std::out_of_range when no
  // parameter is called `name` and std::invalid_argument when the value's type does not fit.
  template <class T>
  void set_parameter(std::string_view name, const T& value) {
    SetParameter(name, boost::json::value_from(value));
  }
  void set_parameter(std::string_view name, const char* value) {
    SetParameter(name, boost::json::value(std::string_view(value)));
  }

  // Serves HTTP on $HOST:$PORT until SIGTERM or SIGINT (or stop()), then lets requests in
  // flight finish and returns 0. Returns 1, with the reason on stderr, when a declaration was
  // invalid or the address cannot be bound. PORT=0 binds a free port; see port().
  int run();
  // Makes run() return as after SIGTERM. Safe from any thread, also before run() is serving.
  void stop();
  // The bound port while run() is serving, else 0.
  std::uint16_t port() const;

  // Answers one request as the server would, without a socket: for tests. `target` may carry
  // the context root and a query string.
  Response handle(std::string_view method, std::string_view target, std::string_view body);

 private:
  struct State;

  template <std::size_t N, class F>
  void Register(std::string name, std::array<std::string, N> names, F&& fn) {
    using Fn = std::decay_t<F>;
    using Traits = detail::CallableTraits<Fn>;
    using Args = typename Traits::Args;
    using Result = std::remove_cvref_t<typename Traits::Result>;
    detail::EntrypointSpec spec;
    spec.name = std::move(name);
    spec.args =
        detail::MakeArgSpecs(names, static_cast<Args*>(nullptr), std::make_index_sequence<N>{});
    spec.result_schema = SchemaOf<Result>();
    spec.invoke = detail::MakeInvoker(Fn(std::forward<F>(fn)), std::move(names),
                                      static_cast<Args*>(nullptr), std::make_index_sequence<N>{});
    AddEntrypoint(std::move(spec));
  }

  void AddEntrypoint(detail::EntrypointSpec spec);
  void AddParameter(std::string name, boost::json::value default_value);
  void ReadParameter(std::string_view name, detail::ParameterVisitor visit, void* context) const;
  void SetParameter(std::string_view name, boost::json::value value);

  std::unique_ptr<State> state_;
};

}  // namespace berth
