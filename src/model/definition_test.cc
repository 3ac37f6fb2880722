#include "model/definition.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "model/yaml_json.h"

namespace berth {
namespace {

namespace json = boost::json;

Result<Definition> Parse(std::string_view text) { return ParseDefinition(json::parse(text)); }

TEST(DefinitionTest, ParsesCloudFlowDefinitionAndFillsDefaults) {
  auto d = Parse(R"({"container-tag": "latest", "memory-reservation": 100,
                     "memory-limit": 150, "container-port": 80,
                     "environment": [{"name": "CONTEXT_ROOT", "value": "/p-s"}]})");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->container_tag, "latest");
  EXPECT_EQ(d->memory_reservation_mb, 100);
  EXPECT_EQ(d->memory_limit_mb, 150);
  EXPECT_EQ(d->container_port, 80);
  ASSERT_EQ(d->environment.size(), 1u);
  EXPECT_EQ(d->environment[0].value, "/p-s");
  EXPECT_EQ(d->replicas, 1);
  EXPECT_EQ(d->health_check.status_codes, "200-499");
  EXPECT_EQ(d->health_check.interval_s, 30);
  EXPECT_EQ(d->base_path, "preserve");
  EXPECT_EQ(d->auth, "token");
}

TEST(DefinitionTest, RoundTripsThroughJson) {
  auto d = Parse(R"({"command": ["python3", "-m", "http.server"], "replicas": 3,
                     "health-check": {"type": "tcp", "interval": 5},
                     "base-path": "strip", "auth": "public", "scope": ["jobs"],
                     "mounts": [{"source": "data", "target": "/data"}],
                     "inherited-environment": ["HOME"]})");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  auto again = ParseDefinition(DefinitionToJson(*d));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(*again, *d);
}

TEST(DefinitionTest, EveryInvalidFieldIsNamedInTheError) {
  struct Case {
    const char* json;
    const char* field;
  };
  for (const Case& c : std::vector<Case>{
           {R"({"container-tag": ""})", "container-tag"},
           {R"({"container-tag": "a b"})", "container-tag"},
           {R"({"container-tag": 5})", "container-tag"},
           {R"({"container-tag": "x", "memory-limit": "150"})", "memory-limit"},
           {R"({"container-tag": "x", "memory-limit": 0})", "memory-limit"},
           {R"({"container-tag": "x", "memory-reservation": 2.5})", "memory-reservation"},
           {R"({"container-tag": "x", "memory-reservation": 200, "memory-limit": 100})",
            "memory-limit"},
           {R"({"container-tag": "x", "container-port": 0})", "container-port"},
           {R"({"container-tag": "x", "container-port": 65536})", "container-port"},
           {R"({"container-tag": "x", "environment": {"A": "b"}})", "environment"},
           {R"({"container-tag": "x", "environment": [{"name": "1A", "value": "b"}]})",
            "environment[0].name"},
           {R"({"container-tag": "x", "environment": [{"name": "A"}]})", "environment[0].value"},
           {R"({"container-tag": "x", "environment": [{"name": "A", "value": "1"},
                                                       {"name": "A", "value": "2"}]})",
            "environment[1].name"},
           {R"({"container-tag": "x", "inherited-environment": ["A-B"]})",
            "inherited-environment[0]"},
           {R"({"command": "python3 app.py"})", "command"},
           {R"({"command": [""]})", "command[0]"},
           {R"({"container-tag": "x", "replicas": -1})", "replicas"},
           {R"({"container-tag": "x", "health-check": {"rel_path": "health"}})",
            "health-check.rel_path"},
           {R"({"container-tag": "x", "health-check": {"status_codes": "200-99"}})",
            "health-check.status_codes"},
           {R"({"container-tag": "x", "health-check": {"status_codes": "abc"}})",
            "health-check.status_codes"},
           {R"({"container-tag": "x", "health-check": {"interval": 0}})",
            "health-check.interval"},
           {R"({"container-tag": "x", "health-check": {"path": "/"}})", "health-check.path"},
           {R"({"container-tag": "x", "base-path": "keep"})", "base-path"},
           {R"({"container-tag": "x", "auth": "none"})", "auth"},
           {R"({"container-tag": "x", "scope": ["batch"]})", "scope[0]"},
           {R"({"container-tag": "x", "scope": []})", "scope"},
           {R"({"container-tag": "x", "mounts": [{"source": "home", "target": "/h"}]})",
            "mounts[0].source"},
           {R"({"container-tag": "x", "mounts": [{"source": "data", "target": "rel"}]})",
            "mounts[0].target"},
           {R"({"container-tag": "x", "mounts": [{"source": "data", "target": "/d"},
                                                  {"source": "project", "target": "/d"}]})",
            "mounts[1].target"},
           {R"({"container-tag": "x", "mounts": [{"source": "data", "target": "/"}]})",
            "mounts[0].target"},
           {R"({"container-tag": "x", "mounts": [{"source": "data", "target": "//"}]})",
            "mounts[0].target"},
           {R"({"command": ["sh", "-c", "echo a\u0000rm -rf x"]})", "command[2]"},
           {R"({"container-tag": "x", "environment": [{"name": "A", "value": "b\u0000c"}]})",
            "environment[0].value"},
           {R"({"container-tag": "x", "memory": 5})", "memory"},
           {R"({"memory-limit": 5})", "container-tag"},
       }) {
    auto d = Parse(c.json);
    ASSERT_FALSE(d.ok()) << c.json;
    EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(d.status().message().starts_with(std::string(c.field) + ":"))
        << c.json << " -> " << d.status().message();
  }
}

TEST(DefinitionTest, AnUnknownFieldSuggestsTheNearestKnownOne) {
  auto typo = Parse(R"({"memory-limt": 150})");
  ASSERT_FALSE(typo.ok());
  EXPECT_NE(typo.status().message().find(
                "memory-limt: unknown field; did you mean 'memory-limit'?; known fields are "),
            std::string::npos)
      << typo.status().message();
  auto far = Parse(R"({"colour": "red"})");
  ASSERT_FALSE(far.ok());
  EXPECT_NE(far.status().message().find("colour: unknown field; known fields are "),
            std::string::npos)
      << far.status().message();
}

TEST(DefinitionTest, NonObjectIsRejected) {
  auto d = Parse("[1, 2]");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("must be a JSON object"), std::string::npos);
}

TEST(DefinitionTest, NullMeansDefault) {
  auto d = Parse(R"({"container-tag": "x", "replicas": null, "container-port": null})");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->replicas, 1);
  EXPECT_FALSE(d->container_port.has_value());
}

TEST(StatusCodeSetTest, ParsesRangesAndSingles) {
  auto s = StatusCodeSet::Parse("200-299, 301");
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->Contains(200));
  EXPECT_TRUE(s->Contains(299));
  EXPECT_TRUE(s->Contains(301));
  EXPECT_FALSE(s->Contains(300));
  EXPECT_FALSE(s->Contains(404));
  EXPECT_FALSE(StatusCodeSet::Parse("").ok());
  EXPECT_FALSE(StatusCodeSet::Parse("200,").ok());
  EXPECT_FALSE(StatusCodeSet::Parse("99").ok());
  EXPECT_FALSE(StatusCodeSet::Parse("600").ok());
}

// Found by definition_fuzz: "inf" and "NAN" parsed as doubles, which JSON cannot hold (the
// serialized text did not parse back). They are text, as YAML 1.2's core schema reads them.
TEST(YamlToJsonTest, InfinityAndNanAreTextNotNumbers) {
  auto r = YamlToJson("a: inf\nb: NAN\nc: -Infinity\nd: 1.5\ne: 1e3\n");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(json::serialize(*r), R"({"a":"inf","b":"NAN","c":"-Infinity","d":1.5E0,"e":1E3})");
  EXPECT_TRUE(json::parse(json::serialize(*r)).is_object());
}

// Found by definition_fuzz: bytes that are not UTF-8, and NULs that yaml-cpp takes for UTF-32,
// went into JSON that could not be read back.
TEST(YamlToJsonTest, RefusesTextThatIsNotUtf8) {
  for (std::string bad : {"port: 80\n\x9e\x8a: public\n", "a: \xc0\xaf\n", "a: \xed\xa0\x80\n",
                          "a: \xf4\x90\x80\x80\n", "a: \xe2\x82\n"}) {
    auto r = YamlToJson(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("not UTF-8"), std::string::npos) << r.status().message();
  }
  for (std::string bad : {std::string("\0\0\0\x1e-a", 6), std::string("a: b\0c", 6),
                          std::string("a: \x01\n")}) {
    auto r = YamlToJson(bad);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("control character"), std::string::npos)
        << r.status().message();
  }
  auto r = YamlToJson("port: 80\n\x9e: x\n");
  EXPECT_NE(r.status().message().find("line 2"), std::string::npos) << r.status().message();
  // yaml-cpp writes these escapes as Latin-1 bytes (found by dialect_fuzz): they are
  // characters in the JSON.
  auto escapes = YamlToJson("\"a\\_b\": \"\\N\\xe9\"\n");
  ASSERT_TRUE(escapes.ok()) << escapes.status().ToString();
  EXPECT_EQ(json::serialize(*escapes), "{\"a\xc2\xa0\x62\":\"\xc2\x85\xc3\xa9\"}");
  auto ok = YamlToJson("greeting: \"caf\xc3\xa9 \xf0\x9f\x9a\xa2\"\n");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->at("greeting").as_string(), "caf\xc3\xa9 \xf0\x9f\x9a\xa2");
}

}  // namespace
}  // namespace berth
