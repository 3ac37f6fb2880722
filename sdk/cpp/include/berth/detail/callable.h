// CallableTraits<F> names the result and argument types of a function pointer, a
// std::function or a lambda (through its operator()), so that Service::entrypoint can read
// each argument from JSON by the type the function declares. Generic lambdas (auto
// parameters) have no single signature and are refused at compile time.
#pragma once

#include <cstddef>
#include <tuple>
#include <type_traits>

namespace berth::detail {

template <class R, class... A>
struct Signature {
  using Result = R;
  using Args = std::tuple<A...>;  // as declared, references and const included
  static constexpr std::size_t kArity = sizeof...(A);
};

template <class F, class = void>
struct CallableTraits {
  static_assert(sizeof(F) == 0,
                "berth::Service::entrypoint needs a callable with one signature: a function, "
                "a std::function or a lambda whose parameters have concrete types (not auto)");
};

template <class R, class... A>
struct CallableTraits<R (*)(A...), void> : Signature<R, A...> {};
template <class R, class... A>
struct CallableTraits<R (*)(A...) noexcept, void> : Signature<R, A...> {};
template <class R, class... A>
struct CallableTraits<R(A...), void> : Signature<R, A...> {};
template <class R, class... A>
struct CallableTraits<R(A...) noexcept, void> : Signature<R, A...> {};

template <class C, class R, class... A>
struct CallableTraits<R (C::*)(A...), void> : Signature<R, A...> {};
template <class C, class R, class... A>
struct CallableTraits<R (C::*)(A...) const, void> : Signature<R, A...> {};
template <class C, class R, class... A>
struct CallableTraits<R (C::*)(A...) noexcept, void> : Signature<R, A...> {};
template <class C, class R, class... A>
struct CallableTraits<R (C::*)(A...) const noexcept, void> : Signature<R, A...> {};

// Lambdas and other function objects, std::function included.
template <class F>
struct CallableTraits<F, std::void_t<decltype(&F::operator())>>
    : CallableTraits<decltype(&F::operator())> {};

}  // namespace berth::detail
