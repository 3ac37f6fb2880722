// The OpenAPI 3.1 document served at /openapi.json: one POST path per entrypoint with its
// argument and result schemas, the parameter and health endpoints, and the context root as
// the server URL.
#pragma once

#include <boost/json/object.hpp>

#include "config.h"
#include "parameter_store.h"
#include "router.h"

namespace berth::sdk {

boost::json::object BuildOpenApi(const Config& config, const EntrypointMap& entrypoints,
                                 const ParameterStore& parameters);

}  // namespace berth::sdk
