// The pure resolver: precedence of environments, paths, ports, errors, the sandbox. No store,
// no process.
#include "control/resolver.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace berth {
namespace {

ResolveInputs Inputs() {
  ResolveInputs in;
  in.project = "p";
  in.service = "web";
  in.revision = 3;
  in.def.command = {"server", "--base", "$BASE_PATH_PREFIX"};
  in.work_dir = "/data/services/p/web/work";
  in.token = "tok";
  in.berth_url = "http://127.0.0.1:8080";
  in.data_dir = "/data/projects/p/data";
  in.project_dir = "/data/projects/p/project";
  in.host_env = {{"PATH", "/usr/bin:/bin"}};
  return in;
}

std::string Env(const RevisionSpec& spec, const std::string& name) {
  for (const auto& kv : spec.env) {
    if (kv.rfind(name + "=", 0) == 0) {
      return kv.substr(name.size() + 1);
    }
  }
  return "<unset>";
}

TEST(ResolverTest, TellsTheInstanceWhereItLivesAndExpandsTheBasePath) {
  RevisionSpec spec = ResolveRevision(Inputs());
  EXPECT_TRUE(spec.error.empty());
  EXPECT_EQ(spec.revision, 3);
  EXPECT_EQ(spec.argv, (std::vector<std::string>{"server", "--base", "/p-web"}));
  EXPECT_EQ(spec.cwd, "/data/services/p/web/work");
  EXPECT_EQ(spec.port, 8080);
  EXPECT_EQ(spec.health_path, "/p-web/");
  EXPECT_EQ(Env(spec, "CONTEXT_ROOT"), "/p-web");
  EXPECT_EQ(Env(spec, "BERTH_TOKEN"), "tok");
  EXPECT_EQ(Env(spec, "BERTH_VERSION"), "3");
  EXPECT_EQ(Env(spec, "BERTH_DATA"), "/data/projects/p/data");
  EXPECT_EQ(Env(spec, "BERTH_SERVICES_FILE"), "/data/projects/p/data/.berth/services.env");
  EXPECT_EQ(Env(spec, "PATH"), "/usr/bin:/bin");
  EXPECT_TRUE(std::is_sorted(spec.env.begin(), spec.env.end()));
}

TEST(ResolverTest, DefinitionBeatsBundleBeatsProjectBeatsDaemonEnvironment) {
  ResolveInputs in = Inputs();
  in.def.inherited_environment = {"A", "B", "C"};
  in.project_env = {{"A", "project"}, {"B", "project"}};
  in.host_env["A"] = "daemon";
  in.host_env["C"] = "daemon";
  in.manifest.env = {{"B", "bundle"}};
  in.def.environment = {{"B", "definition"}};
  RevisionSpec spec = ResolveRevision(in);
  EXPECT_EQ(Env(spec, "A"), "project");
  EXPECT_EQ(Env(spec, "B"), "definition");
  EXPECT_EQ(Env(spec, "C"), "daemon");
  in.def.environment.clear();
  EXPECT_EQ(Env(ResolveRevision(in), "B"), "bundle");
  // A daemon variable that is not inherited stays out.
  in.host_env["SECRET"] = "x";
  EXPECT_EQ(Env(ResolveRevision(in), "SECRET"), "<unset>");
}

TEST(ResolverTest, TheBundleFillsWhatTheDefinitionLeavesOut) {
  ResolveInputs in = Inputs();
  in.def.command.clear();
  in.bundle_dir = "/data/artifacts/unpacked/abc";
  in.manifest.command = {"/bin/sh", "-c", "exec app"};
  in.manifest.port = 9000;
  HealthCheck hc;
  hc.rel_path = "/ready";
  in.manifest.health_check = hc;
  RevisionSpec spec = ResolveRevision(in);
  EXPECT_EQ(spec.argv, in.manifest.command);
  EXPECT_EQ(spec.cwd, "/data/artifacts/unpacked/abc");
  EXPECT_EQ(spec.port, 9000);
  EXPECT_EQ(spec.health_path, "/p-web/ready");
  in.def.container_port = 7000;
  in.def.base_path = "strip";
  spec = ResolveRevision(in);
  EXPECT_EQ(spec.port, 7000);
  EXPECT_EQ(spec.health_path, "/ready") << "a stripping service is probed without its prefix";
}

TEST(ResolverTest, WhatCannotRunSaysWhy) {
  ResolveInputs in = Inputs();
  in.def.command.clear();
  EXPECT_NE(ResolveRevision(in).error.find("nothing to run"), std::string::npos);
  in.bundle_error = "artifact tag 'v1' has not been pushed";
  EXPECT_EQ(ResolveRevision(in).error, "artifact tag 'v1' has not been pushed");
}

TEST(ResolverTest, PeersParametersAndVersions) {
  ResolveInputs in = Inputs();
  in.peers = {{"my-redis", Endpoint{"127.0.3.7", 6379, 1}}};
  in.parameters = {{"greeting", "\"hi\""}, {"n", "3"}};
  in.version = "1.2.0";
  in.sdk_python_dir = "/sdk";
  in.host_env["PYTHONPATH"] = "/mine";
  RevisionSpec spec = ResolveRevision(in);
  EXPECT_EQ(Env(spec, "BERTH_SERVICE_MY_REDIS_HOST"), "127.0.3.7");
  EXPECT_EQ(Env(spec, "BERTH_SERVICE_MY_REDIS_PORT"), "6379");
  EXPECT_EQ(Env(spec, "BERTH_PARAMETERS"), R"({"greeting":"hi","n":3})");
  EXPECT_EQ(Env(spec, "BERTH_VERSION"), "1.2.0");
  EXPECT_EQ(Env(spec, "PYTHONPATH"), "/sdk:/mine");
}

TEST(ResolverTest, MountsAreSandboxBindsWhenTheDaemonMayMount) {
  ResolveInputs in = Inputs();
  in.def.mounts = {{"data", "/data"}, {"project", "/project"}};
  RevisionSpec without = ResolveRevision(in);
  EXPECT_TRUE(without.sandbox.empty()) << "no sandbox where the daemon may not mount";
  EXPECT_EQ(Env(without, "BERTH_DATA"), "/data/projects/p/data");
  in.can_mount = true;
  RevisionSpec spec = ResolveRevision(in);
  EXPECT_EQ(spec.argv, (std::vector<std::string>{"server", "--base", "/p-web"}));
  EXPECT_EQ(spec.sandbox.uid, 0u) << "unconfined: the daemon's user";
  EXPECT_EQ(spec.sandbox.binds,
            (std::vector<BindMount>{{"/data/projects/p/data", "/data", true},
                                    {"/data/projects/p/project", "/project", true}}));
  EXPECT_EQ(Env(spec, "BERTH_DATA"), "/data");
  EXPECT_EQ(Env(spec, "BERTH_SERVICES_FILE"), "/data/.berth/services.env")
      << "where the program sees its data folder";
  EXPECT_EQ(Env(spec, "BERTH_PROJECT_DIR"), "/project");
}

Sandbox ProjectBox() {
  Sandbox sb;
  sb.uid = sb.gid = 2000000002;
  sb.hide = {"/data"};
  sb.binds = {{"/data/projects/p/data", "/data/projects/p/data", true}};
  sb.tmp_bytes = 1 << 20;
  return sb;
}

TEST(ResolverTest, AConfinedRevisionGetsItsWorkDirectoryHomeAndMounts) {
  ResolveInputs in = Inputs();
  in.sandbox = ProjectBox();
  in.home_dir = "/data/projects/p/home";
  in.def.mounts = {{"data", "/mnt/d"}};
  RevisionSpec spec = ResolveRevision(in);
  EXPECT_EQ(spec.sandbox.uid, 2000000002u);
  EXPECT_EQ(spec.sandbox.hide, (std::vector<std::string>{"/data"}));
  EXPECT_EQ(
      spec.sandbox.binds,
      (std::vector<BindMount>{{"/data/projects/p/data", "/data/projects/p/data", true},
                              {"/data/services/p/web/work", "/data/services/p/web/work", true},
                              {"/data/projects/p/data", "/mnt/d", true}}));
  EXPECT_EQ(Env(spec, "HOME"), "/data/projects/p/home");
  EXPECT_EQ(Env(spec, "BERTH_DATA"), "/mnt/d");
  EXPECT_EQ(spec.argv, (std::vector<std::string>{"server", "--base", "/p-web"}));
}

TEST(ResolverTest, ABundleIsLayeredAndRunAsRootKeepsRoot) {
  ResolveInputs in = Inputs();
  in.sandbox = ProjectBox();
  in.bundle_dir = "/data/artifacts/unpacked/ab12";
  in.def.run_as_root = true;
  RevisionSpec spec = ResolveRevision(in);
  EXPECT_EQ(spec.cwd, "/data/artifacts/unpacked/ab12");
  ASSERT_EQ(spec.sandbox.binds.size(), 2u);
  // Never written (every instance of this content shares it): each writes to its own layer.
  EXPECT_EQ(spec.sandbox.binds[1], (BindMount{"/data/artifacts/unpacked/ab12",
                                              "/data/artifacts/unpacked/ab12", false, true}));
  EXPECT_EQ(spec.sandbox.uid, 0u) << "the definition asked for root";
  EXPECT_EQ(spec.sandbox.hide, (std::vector<std::string>{"/data"}));
}

}  // namespace
}  // namespace berth
