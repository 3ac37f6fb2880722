// ScopedEnv gives a test the platform's environment variables unset, lets it set some, and
// puts everything back afterwards, so that tests do not see each other's (or the shell's).
#pragma once

#include <cstdlib>
#include <map>
#include <optional>
#include <string>

namespace berth::testing {

class ScopedEnv {
 public:
  ScopedEnv() {
    for (const char* name : {"HOST", "PORT", "CONTEXT_ROOT", "BERTH_URL", "BERTH_TOKEN",
                             "BERTH_PROJECT", "BERTH_SERVICE", "BERTH_VERSION", "BERTH_INSTANCE",
                             "BERTH_PARAMETERS", "BERTH_SDK_THREADS"}) {
      Save(name);
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() {
    for (const auto& [name, value] : saved_) {
      if (value) {
        ::setenv(name.c_str(), value->c_str(), 1);
      } else {
        ::unsetenv(name.c_str());
      }
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

  void Set(const std::string& name, const std::string& value) {
    Save(name);
    ::setenv(name.c_str(), value.c_str(), 1);
  }

 private:
  void Save(const std::string& name) {
    if (saved_.count(name) == 0) {
      const char* v = std::getenv(name.c_str());
      saved_[name] = v != nullptr ? std::optional<std::string>(v) : std::nullopt;
    }
  }

  std::map<std::string, std::optional<std::string>> saved_;
};

}  // namespace berth::testing
