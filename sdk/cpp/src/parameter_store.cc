#include "parameter_store.h"

#include <mutex>
#include <utility>

#include "berth/log.h"

namespace berth::sdk {
namespace {

std::optional<ParamType> TypeOf(const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::string:
      return ParamType::kString;
    case boost::json::kind::bool_:
      return ParamType::kBoolean;
    case boost::json::kind::int64:
    case boost::json::kind::uint64:
      return ParamType::kInteger;
    case boost::json::kind::double_:
      return ParamType::kNumber;
    case boost::json::kind::array:
      return ParamType::kArray;
    case boost::json::kind::object:
      return ParamType::kObject;
    case boost::json::kind::null:
      break;
  }
  return std::nullopt;
}

// JSON text of `v`, cut to 80 characters for a log line.
std::string Short(const boost::json::value& v) {
  std::string text;
  detail::AppendJsonValue(text, v);
  if (text.size() > 80) {
    text.resize(77);
    text += "...";
  }
  return text;
}

}  // namespace

std::string ParameterStore::UnknownLocked(std::string_view name) const {
  std::string known;
  for (const auto& [n, p] : params_) {
    known += known.empty() ? n : ", " + n;
  }
  return "unknown parameter '" + std::string(name) +
         "'; defined parameters: " + (known.empty() ? std::string("none") : known);
}

std::string_view ParamTypeName(ParamType type) {
  switch (type) {
    case ParamType::kString:
      return "string";
    case ParamType::kBoolean:
      return "boolean";
    case ParamType::kInteger:
      return "integer";
    case ParamType::kNumber:
      return "number";
    case ParamType::kArray:
      return "array";
    case ParamType::kObject:
      return "object";
  }
  return "string";
}

Status FitParameter(ParamType type, boost::json::value& value) {
  std::optional<ParamType> got = TypeOf(value);
  if (type == ParamType::kNumber && got == ParamType::kInteger) {
    value = value.to_number<double>();
    return Status::Ok();
  }
  if (got != type) {
    detail::JsonError error;
    detail::Mismatch(ParamTypeName(type), value, error);
    return Status::InvalidArgument(std::move(error.message));
  }
  return Status::Ok();
}

Status ParameterStore::Add(std::string name, boost::json::value default_value,
                           const boost::json::value* stored) {
  std::optional<ParamType> type = TypeOf(default_value);
  if (!type) {
    return Status::InvalidArgument("parameter '" + name +
                                   "': the default must not be null, its type is the default's");
  }
  boost::json::value value = default_value;
  if (stored != nullptr) {
    boost::json::value candidate = *stored;
    if (Status s = FitParameter(*type, candidate); s.ok()) {
      value = std::move(candidate);
    } else {
      log_warning("ignoring the stored value of parameter '" + name + "' from BERTH_PARAMETERS: " +
                  s.message() + "; using the default " + Short(default_value));
    }
  }
  std::unique_lock lock(mu_);
  if (params_.count(name) != 0) {
    return Status::InvalidArgument("parameter '" + name + "' is already defined");
  }
  params_.emplace(std::move(name), Parameter{*type, std::move(value), std::move(default_value)});
  return Status::Ok();
}

Status ParameterStore::Visit(std::string_view name, detail::ParameterVisitor visit,
                             void* context) const {
  std::shared_lock lock(mu_);
  auto it = params_.find(name);
  if (it == params_.end()) {
    return Status::NotFound(UnknownLocked(name));
  }
  detail::JsonError error;
  if (!visit(it->second.value, context, error)) {
    std::string message = "parameter '" + std::string(name) + "' (" +
                          std::string(ParamTypeName(it->second.type)) +
                          ") cannot be read as the requested type: ";
    if (!error.path.empty()) {
      message += "at " + error.path + ": ";
    }
    return Status::InvalidArgument(message + error.message);
  }
  return Status::Ok();
}

Status ParameterStore::Set(std::string_view name, boost::json::value value) {
  boost::json::value old;
  {
    std::unique_lock lock(mu_);
    auto it = params_.find(name);
    if (it == params_.end()) {
      return Status::NotFound(UnknownLocked(name));
    }
    if (Status s = FitParameter(it->second.type, value); !s.ok()) {
      return Status::InvalidArgument("parameter '" + std::string(name) + "': " + s.message());
    }
    old = std::exchange(it->second.value, value);
  }
  if (old != value) {
    log_info("parameter '" + std::string(name) + "' changed from " + Short(old) + " to " +
             Short(value));
  }
  return Status::Ok();
}

boost::json::object ParameterStore::List() const {
  boost::json::object out;
  std::shared_lock lock(mu_);
  for (const auto& [name, p] : params_) {
    out[name] = {{"value", p.value}, {"type", ParamTypeName(p.type)}, {"default", p.default_value}};
  }
  return out;
}

std::optional<boost::json::object> ParameterStore::Describe(std::string_view name) const {
  std::shared_lock lock(mu_);
  auto it = params_.find(name);
  if (it == params_.end()) {
    return std::nullopt;
  }
  return boost::json::object{
      {"name", name}, {"value", it->second.value}, {"type", ParamTypeName(it->second.type)}};
}

std::vector<std::pair<std::string, ParamType>> ParameterStore::Types() const {
  std::vector<std::pair<std::string, ParamType>> out;
  std::shared_lock lock(mu_);
  for (const auto& [name, p] : params_) {
    out.emplace_back(name, p.type);
  }
  return out;
}

std::string ParameterStore::Unknown(std::string_view name) const {
  std::shared_lock lock(mu_);
  return UnknownLocked(name);
}

}  // namespace berth::sdk
