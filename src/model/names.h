// Naming rules for projects and services (seed 002, CloudFlow's servicectl).
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace berth {

// Project names: 1–24 characters of lowercase letters, digits and '_', starting with a letter
// (CloudFlow's "experiment_2"). InvalidArgument says which rule was broken.
Status ValidateProjectName(std::string_view name);

// Service names: begin with a lowercase letter; only a-z, 0-9 and '-'; do not end with '-';
// "<project>-<name>" at most 32 characters. InvalidArgument says which rule was broken.
Status ValidateServiceName(std::string_view project, std::string_view name);

// Session names (the pipeline a session is for, seed 004): 1–128 letters, digits, '-', '_'
// and '.', not starting with '.': a name or an Orchest pipeline uuid, addressable in a URL
// path (/api/v1/sessions/<name>). InvalidArgument says which rule was broken.
Status ValidateSessionName(std::string_view name);
inline constexpr size_t kMaxSessionName = 128;

// The path a service is reachable under: "/<project>-<name>" (its CONTEXT_ROOT).
std::string DeploymentPath(std::string_view project, std::string_view name);

inline constexpr size_t kMaxQualifiedServiceName = 32;
inline constexpr size_t kMaxProjectName = 24;

}  // namespace berth
