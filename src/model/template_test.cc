#include "model/template.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace berth {
namespace {

constexpr const char* kCustom = R"(
description: test
requires:
  - {program: sh, package: dash}
values:
  command: {required: true, description: the command}
  port: {default: "8080"}
  http: {default: "true"}
ports:
  - {port: "{{port}}", http: "{{http}}"}
definition:
  command: [/bin/sh, -c, "{{command}}"]
  container-port: "{{port}}"
  environment: [{name: X, value: "a{{port}}b"}]
)";

TEST(TemplateTest, FillsBlanksWithValuesAndDefaults) {
  auto t = ParseTemplate("custom", kCustom);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  auto r = RenderTemplate(*t, {{"command", "echo hi"}, {"port", "9000"}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->definition.at("container-port").as_int64(), 9000);
  EXPECT_EQ(r->definition.at("command").as_array()[2].as_string(), "echo hi");
  EXPECT_EQ(r->definition.at("environment").as_array()[0].at("value").as_string(), "a9000b");
  ASSERT_EQ(r->ports.size(), 1u);
  EXPECT_EQ(r->ports[0].port, 9000);
  EXPECT_TRUE(r->ports[0].http);
}

TEST(TemplateTest, RefusesUnknownAndMissingValues) {
  auto t = ParseTemplate("custom", kCustom);
  ASSERT_TRUE(t.ok());
  auto missing = RenderTemplate(*t, {});
  EXPECT_EQ(missing.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(missing.status().message().find("--set command="), std::string::npos);
  auto unknown = RenderTemplate(*t, {{"command", "x"}, {"colour", "red"}});
  EXPECT_NE(unknown.status().message().find("no value 'colour'"), std::string::npos);
  EXPECT_NE(unknown.status().message().find("command, port, http"), std::string::npos);
  auto bad_port = RenderTemplate(*t, {{"command", "x"}, {"port", "70000"}});
  EXPECT_EQ(bad_port.status().code(), StatusCode::kInvalidArgument);
}

TEST(TemplateTest, NamesWhatToInstall) {
  auto t = ParseTemplate("x", R"(
requires: [{program: no-such-program-berth, package: berth-tools}]
definition: {command: [no-such-program-berth]}
)");
  ASSERT_TRUE(t.ok());
  Status s = CheckRequirements(*t);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("apt-get install berth-tools"), std::string::npos) << s.message();
  auto ok = ParseTemplate("custom", kCustom);
  EXPECT_TRUE(CheckRequirements(*ok).ok());
}

TEST(TemplateTest, RefusesMalformedTemplates) {
  EXPECT_FALSE(ParseTemplate("x", "just text").ok());
  EXPECT_FALSE(ParseTemplate("x", "description: no definition").ok());
  EXPECT_FALSE(ParseTemplate("x", "definition: {}\nsurprise: 1").ok());
}

}  // namespace
}  // namespace berth
