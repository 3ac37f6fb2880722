#include "cli/output.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <sstream>

namespace berth {
namespace {

TEST(OutputTest, TableAlignsColumns) {
  EXPECT_EQ(FormatTable({"NAME", "REV"}, {{"hello", "1"}, {"a", "12"}}),
            "NAME   REV\nhello  1\na      12\n");
}

TEST(OutputTest, YamlScalarsGetJsonTypesUnlessQuoted) {
  auto v = YamlToJson(
      "container-tag: latest\nmemory-limit: 150\nport: \"80\"\nflag: true\nnothing: ~\n"
      "environment:\n  - name: A\n    value: '1'\n");
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  const auto& o = v->as_object();
  EXPECT_EQ(o.at("container-tag"), "latest");
  EXPECT_EQ(o.at("memory-limit"), 150);
  EXPECT_EQ(o.at("port"), "80");
  EXPECT_EQ(o.at("flag"), true);
  EXPECT_TRUE(o.at("nothing").is_null());
  EXPECT_EQ(o.at("environment").as_array()[0].at("value"), "1");
}

TEST(OutputTest, JsonFilesParseAsYaml) {
  auto v = YamlToJson(R"({"container-tag": "v1", "replicas": 2})");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->as_object().at("replicas"), 2);
}

TEST(OutputTest, SyntaxErrorIsInvalidArgument) {
  auto v = YamlToJson("a: [1, 2\nb: c");
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), StatusCode::kInvalidArgument);
}

TEST(OutputTest, PrettyJsonIndents) {
  EXPECT_EQ(PrettyJson(boost::json::parse(R"({"a": [1], "b": {}})")),
            "{\n  \"a\": [\n    1\n  ],\n  \"b\": {}\n}\n");
}

TEST(OutputTest, SpinnerRedrawsOneLineOnATerminalAndErasesIt) {
  std::ostringstream out;
  {
    Spinner s(out, true, true);
    s.Show("revision 2: 0/1 instances ready; starting");
    s.Show("revision 2: 0/1 instances ready; starting");
    s.Show("revision 2: 0/1 instances ready; unhealthy (health check: 503)");
    std::string text = out.str();
    EXPECT_EQ(text.find('\n'), std::string::npos) << "one line, redrawn";
    EXPECT_EQ(text.rfind("\r\033[K⠹ revision 2: 0/1 instances ready; unhealthy (health check: 503) ("),
              text.rfind("\r\033[K"))
        << text;
    EXPECT_NE(text.find("\r\033[K⠋ revision 2"), std::string::npos) << text;
  }  // leaving the wait erases the line
  EXPECT_TRUE(out.str().ends_with("s)\r\033[K")) << out.str();
}

TEST(OutputTest, SpinnerPipedPrintsEachChangeOnceOrNothing) {
  std::ostringstream lines, quiet;
  Spinner a(lines, false, true), b(quiet, false, false);
  for (const char* t : {"building", "building", "starting 1/2", "starting 1/2"}) {
    a.Show(t);
    b.Show(t);
  }
  a.Clear();
  EXPECT_EQ(lines.str(), "building\nstarting 1/2\n");
  EXPECT_EQ(quiet.str(), "");
}

}  // namespace
}  // namespace berth
