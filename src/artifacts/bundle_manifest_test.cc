// berth.yaml parsing, on text: every key, both command forms, and the errors.
#include "artifacts/bundle_manifest.h"

#include <gtest/gtest.h>

namespace berth {
namespace {

TEST(BundleManifestTest, ReadsEveryKey) {
  auto m = ParseBundleManifest(R"(
command: [python3, app.py]
port: 9000
env: {GREETING: hi}
health-check: {type: tcp, rel_path: /ready, status_codes: "200", interval: 5, timeout: 2}
build: make
)");
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->command, (std::vector<std::string>{"python3", "app.py"}));
  EXPECT_EQ(m->port, 9000);
  ASSERT_EQ(m->env.size(), 1u);
  EXPECT_EQ(m->env[0], (std::pair<std::string, std::string>{"GREETING", "hi"}));
  ASSERT_TRUE(m->health_check.has_value());
  EXPECT_EQ(m->health_check->type, "tcp");
  EXPECT_EQ(m->health_check->rel_path, "/ready");
  EXPECT_EQ(m->health_check->interval_s, 5);
  EXPECT_EQ(m->health_check->timeout_s, 2);
  EXPECT_EQ(m->build, "make");
}

TEST(BundleManifestTest, AStringCommandRunsWithTheShellAndEnvMayBeAList) {
  auto m = ParseBundleManifest(
      "command: python3 -m http.server $PORT\n"
      "env: [{name: A, value: '1'}]\n");
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->command,
            (std::vector<std::string>{"/bin/sh", "-c", "python3 -m http.server $PORT"}));
  EXPECT_EQ(m->env[0].first, "A");
  EXPECT_FALSE(m->port.has_value());
}

TEST(BundleManifestTest, RefusesWhatItDoesNotKnowNamingIt) {
  auto unknown = ParseBundleManifest("comand: x\n");
  EXPECT_EQ(unknown.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("unknown key 'comand'"), std::string::npos);
  EXPECT_EQ(ParseBundleManifest("port: 70000\n").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseBundleManifest("- a\n- b\n").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseBundleManifest("command: [unclosed\n").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseBundleManifest("env: 3\n").status().code(), StatusCode::kInvalidArgument);
}

TEST(BundleManifestTest, ABundleWithoutOneHasAnEmptyManifest) {
  auto m = ReadBundleManifest("/nonexistent-berth-bundle");
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(m->command.empty());
}

}  // namespace
}  // namespace berth
