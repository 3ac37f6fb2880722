// Config is what the platform tells a service through its environment (seed 001's contract,
// shared with the Python SDK).
#pragma once

#include <boost/json/object.hpp>
#include <string>

namespace berth::sdk {

struct Config {
  std::string host = "127.0.0.1";   // HOST
  std::string port = "8080";        // PORT
  std::string context_root;         // CONTEXT_ROOT without a trailing '/', e.g. "/default-hello"
  std::string berth_url;            // BERTH_URL, e.g. "http://127.0.0.1:8080"
  std::string token;                // BERTH_TOKEN
  std::string project;              // BERTH_PROJECT
  std::string service = "service";  // BERTH_SERVICE
  std::string version = "0";        // BERTH_VERSION
  std::string instance;             // BERTH_INSTANCE
  boost::json::object parameters;   // BERTH_PARAMETERS: stored values by name
  int threads = 2;                  // BERTH_SDK_THREADS
  std::string error;  // why the environment is unusable (a bad BERTH_SDK_THREADS), else ""
};

// Reads the environment. A BERTH_PARAMETERS that is not a JSON object is logged as a warning
// and ignored.
Config ConfigFromEnvironment();

}  // namespace berth::sdk
