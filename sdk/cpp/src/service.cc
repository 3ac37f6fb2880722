#include "berth/service.h"

#include <iostream>

#include "config.h"
#include "http_server.h"
#include "parameter_store.h"
#include "router.h"

namespace berth {
namespace {

// Entrypoint and parameter names become URL path segments; keep them plain.
bool IsPlainName(std::string_view name) {
  if (name.empty()) {
    return false;
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.';
    if (!ok) {
      return false;
    }
  }
  return true;
}

void Throw(const sdk::Status& s) {
  if (s.code() == sdk::StatusCode::kNotFound) {
    throw std::out_of_range(s.message());
  }
  throw std::invalid_argument(s.message());
}

}  // namespace

struct Service::State {
  sdk::Config config = sdk::ConfigFromEnvironment();
  sdk::EntrypointMap entrypoints;
  sdk::ParameterStore parameters;
  std::vector<std::string> errors;  // invalid declarations, reported by run()
  sdk::ServerControl control;
  sdk::Router router{config, entrypoints, parameters};
};

Service::Service() : state_(std::make_unique<State>()) {}

Service::~Service() = default;

void Service::AddEntrypoint(detail::EntrypointSpec spec) {
  if (!IsPlainName(spec.name) || spec.name == "openapi.json" || spec.name == "docs") {
    state_->errors.push_back("entrypoint '" + spec.name +
                             "': a name is letters, digits, '_', '-' and '.', and not "
                             "'docs' or 'openapi.json'");
    return;
  }
  for (size_t i = 0; i < spec.args.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (spec.args[i].name == spec.args[j].name) {
        state_->errors.push_back("entrypoint '" + spec.name + "': argument '" + spec.args[i].name +
                                 "' is named twice");
        return;
      }
    }
    if (spec.args[i].name.empty()) {
      state_->errors.push_back("entrypoint '" + spec.name + "': an argument name is empty");
      return;
    }
  }
  std::string name = spec.name;
  if (state_->entrypoints.count(name) != 0) {
    state_->errors.push_back("entrypoint '" + name + "' is declared twice");
    return;
  }
  state_->entrypoints.emplace(std::move(name), std::move(spec));
}

void Service::AddParameter(std::string name, boost::json::value default_value) {
  if (!IsPlainName(name)) {
    state_->errors.push_back("parameter '" + name +
                             "': a name is letters, digits, '_', '-' and '.'");
    return;
  }
  const boost::json::value* stored = state_->config.parameters.if_contains(name);
  if (sdk::Status s = state_->parameters.Add(std::move(name), std::move(default_value), stored);
      !s.ok()) {
    state_->errors.push_back(s.message());
  }
}

void Service::ReadParameter(std::string_view name, detail::ParameterVisitor visit,
                            void* context) const {
  if (sdk::Status s = state_->parameters.Visit(name, visit, context); !s.ok()) {
    Throw(s);
  }
}

void Service::SetParameter(std::string_view name, boost::json::value value) {
  if (sdk::Status s = state_->parameters.Set(name, std::move(value)); !s.ok()) {
    Throw(s);
  }
}

int Service::run() {
  const sdk::Config& config = state_->config;
  std::vector<std::string> errors = state_->errors;
  if (!config.error.empty()) {
    errors.push_back(config.error);
  }
  if (!errors.empty()) {
    for (const auto& e : errors) {
      std::cerr << "berth: " << e << "\n";
    }
    return 1;
  }
  for (const auto& kv : config.parameters) {
    if (!state_->parameters.Describe(kv.key())) {
      log_warning("BERTH_PARAMETERS: '" + std::string(kv.key()) +
                  "' is not a parameter of this service; ignored");
    }
  }
  sdk::ServerOptions options;
  options.host = config.host;
  options.port = config.port;
  options.threads = config.threads;
  options.context_root = config.context_root;
  if (sdk::Status s = sdk::Serve(state_->router, options, state_->control); !s.ok()) {
    std::cerr << "berth: " << s.message() << "\n";
    return 1;
  }
  return 0;
}

void Service::stop() { state_->control.RequestStop(); }

std::uint16_t Service::port() const { return state_->control.port(); }

Response Service::handle(std::string_view method, std::string_view target, std::string_view body) {
  sdk::Reply reply;
  state_->router.Handle(method, target, body, reply);
  Response response;
  response.status = reply.status;
  response.body = std::move(reply.body);
  response.content_type = std::string(reply.content_type);
  if (!reply.allow.empty()) {
    response.headers.emplace_back("Allow", std::string(reply.allow));
  }
  return response;
}

}  // namespace berth
