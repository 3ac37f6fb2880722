#include "config.h"

#include <boost/json/parse.hpp>
#include <charconv>
#include <cstdlib>

#include "berth/log.h"

namespace berth::sdk {
namespace {

std::string Env(const char* name, const std::string& fallback = {}) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}

}  // namespace

Config ConfigFromEnvironment() {
  Config c;
  c.host = Env("HOST", c.host);
  c.port = Env("PORT", c.port);
  c.context_root = Env("CONTEXT_ROOT");
  while (!c.context_root.empty() && c.context_root.back() == '/') {
    c.context_root.pop_back();
  }
  if (!c.context_root.empty() && c.context_root.front() != '/') {
    c.context_root.insert(0, "/");
  }
  c.berth_url = Env("BERTH_URL");
  c.token = Env("BERTH_TOKEN");
  c.project = Env("BERTH_PROJECT");
  c.service = Env("BERTH_SERVICE", c.service);
  c.version = Env("BERTH_VERSION", c.version);
  c.instance = Env("BERTH_INSTANCE");
  if (std::string text = Env("BERTH_PARAMETERS"); !text.empty()) {
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(text, ec);
    if (ec || !v.is_object()) {
      log_warning("BERTH_PARAMETERS is not a JSON object (" +
                  (ec ? ec.message() : std::string("another JSON value")) +
                  "); the parameters keep their defaults");
    } else {
      c.parameters = std::move(v.get_object());
    }
  }
  if (std::string text = Env("BERTH_SDK_THREADS"); !text.empty()) {
    int n = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc() || ptr != text.data() + text.size() || n < 1 || n > 256) {
      c.error = "BERTH_SDK_THREADS must be a number from 1 to 256, not '" + text + "'";
    } else {
      c.threads = n;
    }
  }
  return c;
}

}  // namespace berth::sdk
