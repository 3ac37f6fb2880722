// The resolver turns a stored revision, with everything around it (the bundle's manifest, the
// project's environment, parameters, the project's running peers, the service's token and
// directories), into what the supervisor runs: argv, env, cwd, port, health path, or the
// reason it cannot run. A pure function: the controller gathers the inputs (store, artifact
// store, supervisor, the daemon's own environment) and calls it, so that every rule of
// precedence is tested without a store or a process.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "artifacts/bundle_manifest.h"
#include "model/definition.h"
#include "runtime/supervisor.h"

namespace berth {

struct ResolveInputs {
  std::string project;
  std::string service;
  int revision = 0;
  std::string version;  // the version label, or empty
  Definition def;
  // The unpacked bundle of def.container_tag, when it was pushed; empty otherwise.
  std::string bundle_dir;
  // Why the bundle cannot be used (tag never pushed, bad berth.yaml); empty when it can.
  std::string bundle_error;
  BundleManifest manifest;  // of the bundle; empty without one
  std::string work_dir;     // cwd of a service without a bundle
  std::string token;        // BERTH_TOKEN
  std::string berth_url;    // BERTH_URL
  std::map<std::string, std::string> project_env;
  // The daemon's own environment, for inherited names the project does not set, PATH and
  // PYTHONPATH.
  std::map<std::string, std::string> host_env;
  // Running peers of the project, by service name (BERTH_SERVICE_<NAME>_HOST / _PORT).
  std::vector<std::pair<std::string, Endpoint>> peers;
  // Stored runtime parameters: name -> JSON value text.
  std::vector<std::pair<std::string, std::string>> parameters;
  std::string data_dir;        // the project's /data
  std::string project_dir;     // the project directory
  std::string home_dir;        // the project user's home (HOME when confined)
  bool can_mount = false;      // the daemon may mount (root): definition mounts apply
  // The project's sandbox (confinement.h); empty when programs run unconfined. The resolver
  // adds the revision's own directories and mounts.
  Sandbox sandbox;
  std::string sdk_python_dir;  // put first on PYTHONPATH; empty: none
};

// What the launcher is to start for `in`. Never fails: what cannot run says why in `error`.
RevisionSpec ResolveRevision(const ResolveInputs& in);

}  // namespace berth
