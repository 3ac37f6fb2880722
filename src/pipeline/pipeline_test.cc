#include "pipeline/pipeline.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>
#include <vector>

namespace berth {
namespace {

namespace json = boost::json;
using Strings = std::vector<std::string>;

// Asserts that `status` is InvalidArgument and that its message holds every one of `parts`.
void ExpectInvalid(const Status& status, const Strings& parts) {
  ASSERT_FALSE(status.ok()) << "expected an error containing: " << parts.front();
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
  for (const std::string& part : parts) {
    EXPECT_NE(status.message().find(part), std::string::npos)
        << "message: " << status.message() << "\nlacks: " << part;
  }
}

void ExpectParseError(std::string_view text, const Strings& parts) {
  Result<Pipeline> p = ParsePipeline(text);
  ASSERT_FALSE(p.ok()) << "parsed:\n" << text;
  ExpectInvalid(p.status(), parts);
}

Pipeline MustParse(std::string_view text,
                   const std::function<bool(std::string_view)>& has_program = {}) {
  Result<Pipeline> p = ParsePipeline(text, has_program);
  EXPECT_TRUE(p.ok()) << p.status().ToString() << "\n" << text;
  return p.ok() ? *p : Pipeline{};
}

PipelineStep CommandStep(std::string uuid, Strings incoming = {}) {
  PipelineStep s;
  s.uuid = uuid;
  s.title = uuid;
  s.command = "echo " + uuid;
  s.kind = StepKind::kCommand;
  s.incoming = std::move(incoming);
  return s;
}

// a -> b, a -> c, b -> d, c -> d, in the file order given by `order` (a permutation of "abcd").
Pipeline Diamond(std::string_view order = "abcd", Strings d_incoming = {"b", "c"}) {
  std::map<char, Strings> incoming = {{'a', {}}, {'b', {"a"}}, {'c', {"a"}}, {'d', d_incoming}};
  Pipeline p;
  p.name = "diamond";
  for (char c : order) {
    p.steps.push_back(CommandStep(std::string(1, c), incoming[c]));
  }
  return p;
}

Pipeline Chain() {
  Pipeline p;
  p.name = "chain";
  p.steps = {CommandStep("a"), CommandStep("b", {"a"}), CommandStep("c", {"b"})};
  return p;
}

RunPlan MustPlan(const Pipeline& p, RunType type, const Strings& selection = {},
                 bool include_selected = false) {
  Result<RunPlan> plan = PlanRun(p, type, selection, include_selected);
  EXPECT_TRUE(plan.ok()) << plan.status().ToString();
  return plan.ok() ? *plan : RunPlan{};
}

using Parents = std::map<std::string, Strings>;

// --- the berth form ---

constexpr std::string_view kBerthYaml = R"(
name: etl
parameters: {rate: 3}
env: {MODE: test, LEVEL: 2, DEBUG: true, RATIO: 1.5}
concurrency: 2
steps:
  - name: extract
    file: extract.py
    parameters: {n: 1}
  - name: clean.v2
    command: "python3 clean.py --fast"
    after: [extract]
    env: {K: v}
    memory-limit: 256Mi
  - name: report_1
    file: notebooks/report.ipynb
    after: [clean.v2, extract]
  - name: ship
    file: ship.sh
    after: report_1
)";

TEST(PipelineParseTest, ReadsBerthYaml) {
  Pipeline p = MustParse(kBerthYaml);
  EXPECT_EQ(p.name, "etl");
  EXPECT_EQ(p.uuid, "");
  EXPECT_EQ(p.parameters, (json::object{{"rate", 3}}));
  EXPECT_EQ(p.env, (std::map<std::string, std::string>{
                       {"MODE", "test"}, {"LEVEL", "2"}, {"DEBUG", "true"}, {"RATIO", "1.5"}}));
  EXPECT_EQ(p.concurrency, 2);
  ASSERT_EQ(p.steps.size(), 4u);

  const PipelineStep& extract = p.steps[0];
  EXPECT_EQ(extract.uuid, "extract");
  EXPECT_EQ(extract.title, "extract");
  EXPECT_EQ(extract.file_path, "extract.py");
  EXPECT_EQ(extract.command, "");
  EXPECT_EQ(extract.kind, StepKind::kPython);
  EXPECT_TRUE(extract.incoming.empty());
  EXPECT_EQ(extract.parameters, (json::object{{"n", 1}}));
  EXPECT_EQ(extract.memory_limit_bytes, 0u);

  const PipelineStep& clean = p.steps[1];
  EXPECT_EQ(clean.uuid, "clean.v2");
  EXPECT_EQ(clean.kind, StepKind::kCommand);
  EXPECT_EQ(clean.command, "python3 clean.py --fast");
  EXPECT_EQ(clean.file_path, "");
  EXPECT_EQ(clean.incoming, Strings{"extract"});
  EXPECT_EQ(clean.env, (std::map<std::string, std::string>{{"K", "v"}}));
  EXPECT_EQ(clean.memory_limit_bytes, 256u * 1024 * 1024);

  EXPECT_EQ(p.steps[2].kind, StepKind::kNotebook);
  EXPECT_EQ(p.steps[2].incoming, (Strings{"clean.v2", "extract"}));  // the order written
  EXPECT_EQ(p.steps[3].kind, StepKind::kShell);
  EXPECT_EQ(p.steps[3].incoming, Strings{"report_1"});  // `after: x` is a list of one
}

TEST(PipelineParseTest, ReadsBerthJson) {
  Pipeline p = MustParse(R"({"name": "etl", "uuid": "p-1", "concurrency": 0,
    "steps": [{"name": "a", "file": "a.py"},
              {"name": "b", "command": "make b", "after": ["a"], "memory-limit": "2Gi"}]})");
  EXPECT_EQ(p.name, "etl");
  EXPECT_EQ(p.uuid, "p-1");
  EXPECT_EQ(p.concurrency, 0);
  ASSERT_EQ(p.steps.size(), 2u);
  EXPECT_EQ(p.steps[1].uuid, "b");
  EXPECT_EQ(p.steps[1].incoming, Strings{"a"});
  EXPECT_EQ(p.steps[1].memory_limit_bytes, 2ull << 30);
  // The same pipeline in YAML reads the same.
  Pipeline y = MustParse(R"(
name: etl
uuid: p-1
concurrency: 0
steps:
  - {name: a, file: a.py}
  - {name: b, command: make b, after: [a], memory-limit: 2Gi}
)");
  EXPECT_EQ(y, p);
}

TEST(PipelineParseTest, NullFieldsAreAbsent) {
  Pipeline p = MustParse(R"(
name: n
parameters:
steps:
  - name: a
    file: a.py
    after:
    env:
)");
  EXPECT_TRUE(p.parameters.empty());
  EXPECT_TRUE(p.steps[0].incoming.empty());
  EXPECT_TRUE(p.steps[0].env.empty());
}

TEST(PipelineParseTest, MemoryLimitUnits) {
  struct Case {
    const char* value;
    uint64_t bytes;
  };
  for (const Case& c : std::vector<Case>{{"4096Ki", 4096ull << 10},
                                         {"256Mi", 256ull << 20},
                                         {"2Gi", 2ull << 30},
                                         {"1Ti", 1ull << 40},
                                         {"1500k", 1'500'000},
                                         {"1500K", 1'500'000},
                                         {"3M", 3'000'000},
                                         {"2G", 2'000'000'000},
                                         {"\"3000000\"", 3'000'000},
                                         {"1048576", 1ull << 20},
                                         {"0", 0}}) {  // 0: no limit, as when left out
    SCOPED_TRACE(c.value);
    Pipeline p = MustParse(fmt::format("steps: [{{name: a, file: a.py, memory-limit: {}}}]",
                                       c.value));
    ASSERT_EQ(p.steps.size(), 1u);
    EXPECT_EQ(p.steps[0].memory_limit_bytes, c.bytes);
  }
}

// --- Orchest's form ---

constexpr std::string_view kOrchestJson = R"({
  "name": "etl",
  "uuid": "6b4d1a8e-pipe",
  "version": "1.0.0",
  "settings": {"auto_eviction": false, "data_passing_memory_size": "1GB"},
  "parameters": {"rate": 3},
  "services": {"redis": {"image": "redis", "scope": ["interactive"]}},
  "steps": {
    "3f2a-load": {
      "uuid": "3f2a-load",
      "title": "load",
      "file_path": "load.py",
      "incoming_connections": [],
      "parameters": {"path": "/data/x.csv"},
      "environment": "env-uuid-1",
      "kernel": {"display_name": "Python 3", "name": "python"},
      "meta_data": {"hidden": false, "position": [10, 20]}
    },
    "9c1e-train": {
      "uuid": "9c1e-train",
      "title": "train",
      "file_path": "train.ipynb",
      "incoming_connections": ["3f2a-load"],
      "parameters": {},
      "environment": "env-uuid-2",
      "kernel": {"name": "python"},
      "meta_data": {"position": [200, 20]}
    }
  }
})";

TEST(PipelineParseTest, ReadsOrchestJson) {
  Pipeline p = MustParse(kOrchestJson);
  EXPECT_EQ(p.name, "etl");
  EXPECT_EQ(p.uuid, "6b4d1a8e-pipe");
  EXPECT_EQ(p.parameters, (json::object{{"rate", 3}}));
  ASSERT_TRUE(p.services.contains("redis"));
  EXPECT_EQ(p.services.at("redis").at("image"), "redis");
  ASSERT_EQ(p.steps.size(), 2u);
  const PipelineStep& load = p.steps[0];
  EXPECT_EQ(load.uuid, "3f2a-load");
  EXPECT_EQ(load.title, "load");
  EXPECT_EQ(load.file_path, "load.py");
  EXPECT_EQ(load.kind, StepKind::kPython);
  EXPECT_EQ(load.environment, "env-uuid-1");
  EXPECT_EQ(load.kernel, "python");
  EXPECT_EQ(load.parameters, (json::object{{"path", "/data/x.csv"}}));
  const PipelineStep& train = p.steps[1];
  EXPECT_EQ(train.uuid, "9c1e-train");
  EXPECT_EQ(train.kind, StepKind::kNotebook);
  EXPECT_EQ(train.incoming, Strings{"3f2a-load"});
  EXPECT_EQ(train.environment, "env-uuid-2");
  EXPECT_EQ(p.Find("9c1e-train"), &p.steps[1]);
  EXPECT_EQ(p.Find("train"), nullptr);  // found by uuid, not title
}

TEST(PipelineParseTest, ReadsOrchest2020ImageAndKernelObjects) {
  Pipeline p = MustParse(R"({"name": "old", "uuid": "u", "steps": {
    "s1": {"uuid": "s1", "title": "prep", "file_path": "prep.R",
           "incoming_connections": [],
           "image": {"image_name": "orchest/r-notebook-runnable", "display_name": "R"},
           "kernel": {"name": "ir", "display_name": "R"},
           "experiment_json": "", "meta_data": {}},
    "s2": {"uuid": "s2", "title": "both", "file_path": "b.sh", "incoming_connections": ["s1"],
           "environment": "env-new", "image": {"image_name": "ignored/old"}}}})");
  ASSERT_EQ(p.steps.size(), 2u);
  EXPECT_EQ(p.steps[0].environment, "orchest/r-notebook-runnable");
  EXPECT_EQ(p.steps[0].kernel, "ir");
  EXPECT_EQ(p.steps[0].kind, StepKind::kR);
  // `environment` (newer) wins over `image` (2020) when a file has both.
  EXPECT_EQ(p.steps[1].environment, "env-new");
}

TEST(PipelineParseTest, OrchestStepWithoutUuidTakesItsKey) {
  Pipeline p = MustParse(R"({"name": "x", "steps": {
    "k1": {"title": "first", "file_path": "a.py"},
    "k2": {"file_path": "b.py", "incoming_connections": ["k1"]}}})");
  ASSERT_EQ(p.steps.size(), 2u);
  EXPECT_EQ(p.steps[0].uuid, "k1");
  EXPECT_EQ(p.steps[0].title, "first");
  EXPECT_EQ(p.steps[1].uuid, "k2");
  EXPECT_EQ(p.steps[1].title, "");
  EXPECT_EQ(p.steps[1].incoming, Strings{"k1"});
}

TEST(PipelineParseTest, OrchestFormInYamlAndKeepsFileOrder) {
  // Not alphabetical: the order of the file is the order of the steps.
  Pipeline p = MustParse(R"(
name: y
steps:
  zeta: {title: Z, file_path: z.py}
  alpha: {title: A, file_path: a.sh, incoming_connections: [zeta]}
)");
  ASSERT_EQ(p.steps.size(), 2u);
  EXPECT_EQ(p.steps[0].uuid, "zeta");
  EXPECT_EQ(p.steps[1].uuid, "alpha");
  EXPECT_EQ(p.steps[1].kind, StepKind::kShell);
}

TEST(PipelineParseTest, OrchestFormTakesBerthExtras) {
  Pipeline p = MustParse(R"({"name": "x", "env": {"A": "1"}, "concurrency": 3, "steps": {
    "s": {"uuid": "s", "title": "s", "file_path": "", "command": "make",
          "env": {"B": "2"}, "memory-limit": "64Mi"}}})");
  EXPECT_EQ(p.env.at("A"), "1");
  EXPECT_EQ(p.concurrency, 3);
  ASSERT_EQ(p.steps.size(), 1u);
  EXPECT_EQ(p.steps[0].kind, StepKind::kCommand);
  EXPECT_EQ(p.steps[0].command, "make");
  EXPECT_EQ(p.steps[0].env.at("B"), "2");
  EXPECT_EQ(p.steps[0].memory_limit_bytes, 64u << 20);
}

TEST(PipelineParseTest, EmptyServicesListOfOldOrchestIsNone) {
  Pipeline p = MustParse(R"({"name": "x", "services": [], "steps": {"s": {"file_path": "a.py"}}})");
  EXPECT_TRUE(p.services.empty());
}

// --- kinds and R ---

TEST(PipelineParseTest, KindFollowsTheFileExtension) {
  struct Case {
    const char* file;
    StepKind kind;
  };
  for (const Case& c : std::vector<Case>{{"a.py", StepKind::kPython},
                                         {"dir/b.sh", StepKind::kShell},
                                         {"c.ipynb", StepKind::kNotebook},
                                         {"d.R", StepKind::kR},
                                         {"e.r", StepKind::kR}}) {
    SCOPED_TRACE(c.file);
    Pipeline p = MustParse(fmt::format("steps: [{{name: s, file: \"{}\"}}]", c.file));
    ASSERT_EQ(p.steps.size(), 1u);
    EXPECT_EQ(p.steps[0].kind, c.kind);
    PipelineStep s;
    s.uuid = "s";
    s.file_path = c.file;
    Result<StepKind> k = StepKindOf(s);
    ASSERT_TRUE(k.ok()) << k.status().ToString();
    EXPECT_EQ(*k, c.kind);
  }
  PipelineStep cmd = CommandStep("x");
  ASSERT_TRUE(StepKindOf(cmd).ok());
  EXPECT_EQ(*StepKindOf(cmd), StepKind::kCommand);
}

TEST(PipelineParseTest, RStepNeedsRscript) {
  constexpr std::string_view kText = R"(
steps:
  - {name: prep, file: prep.py}
  - {name: model, file: model.R, after: [prep]}
  - {name: plot, file: plot.r, after: [model]}
)";
  Strings asked;
  auto with = [&](std::string_view prog) {
    asked.emplace_back(prog);
    return true;
  };
  Pipeline p = MustParse(kText, with);
  EXPECT_EQ(p.steps[1].kind, StepKind::kR);
  EXPECT_EQ(asked, Strings{"Rscript"});  // asked once, for Rscript only

  asked.clear();
  auto without = [&](std::string_view prog) {
    asked.emplace_back(prog);
    return prog != "Rscript";
  };
  Result<Pipeline> r = ParsePipeline(kText, without);
  ExpectInvalid(r.status(), {"step \"model\"", "R script", "Rscript is not installed",
                             "apt-get install r-base-core"});
  EXPECT_EQ(asked, Strings{"Rscript"});

  // No probe: every program is there.
  EXPECT_TRUE(ParsePipeline(kText).ok());
}

TEST(PipelineParseTest, RscriptIsNotAskedWithoutRSteps) {
  int calls = 0;
  auto probe = [&](std::string_view) {
    ++calls;
    return false;
  };
  Result<Pipeline> p = ParsePipeline("steps: [{name: a, file: a.py}, {name: b, command: ls}]",
                                     probe);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(calls, 0);
}

TEST(PipelineParseTest, RscriptErrorNamesTheOrchestStepByTitleAndUuid) {
  Result<Pipeline> r = ParsePipeline(
      R"({"name": "x", "steps": {"u-7": {"title": "fit", "file_path": "fit.R"}}})",
      [](std::string_view) { return false; });
  ExpectInvalid(r.status(), {"step \"fit (u-7)\"", "Rscript"});
}

// --- validation errors ---

TEST(PipelineValidateTest, UnknownParent) {
  ExpectParseError(R"({"name": "x", "steps": {
      "3f2a": {"title": "load", "file_path": "l.py", "incoming_connections": ["zzz"]}}})",
                   {"step \"load (3f2a)\": incoming_connections names \"zzz\", which is not a "
                    "step of this pipeline"});
  ExpectParseError("steps: [{name: a, file: a.py}, {name: b, file: b.py, after: [a, zzz]}]",
                   {"step \"b\": after names \"zzz\", which is not a step of this pipeline",
                    "name of one of its steps"});
}

TEST(PipelineValidateTest, UnknownParentThatIsATitleGetsAHint) {
  ExpectParseError(R"({"name": "x", "steps": {
      "u1": {"title": "load", "file_path": "l.py"},
      "u2": {"title": "train", "file_path": "t.py", "incoming_connections": ["load"]}}})",
                   {"step \"train (u2)\"", "names \"load\"", "titled \"load\" has uuid \"u1\""});
}

TEST(PipelineValidateTest, CycleIsShownWithLabels) {
  ExpectParseError(R"(
steps:
  - {name: a, file: a.py, after: [c]}
  - {name: b, file: b.py, after: [a]}
  - {name: c, file: c.py, after: [b]}
)",
                   {"steps form a cycle: a -> b -> c -> a"});
  ExpectParseError(R"({"name": "x", "steps": {
      "u1": {"title": "load", "file_path": "l.py", "incoming_connections": ["u2"]},
      "u2": {"title": "train", "file_path": "t.py", "incoming_connections": ["u1"]}}})",
                   {"steps form a cycle: load (u1) -> train (u2) -> load (u1)"});
  ExpectParseError("steps: [{name: root, file: r.py}, {name: self, file: s.py, after: [self]}]",
                   {"steps form a cycle: self -> self"});
}

TEST(PipelineValidateTest, CycleBehindAnAcyclicPrefix) {
  // root -> x -> y -> z -> x: the cycle named leaves root out.
  ExpectParseError(R"(
steps:
  - {name: root, command: "true"}
  - {name: x, command: "true", after: [root, z]}
  - {name: y, command: "true", after: [x]}
  - {name: z, command: "true", after: [y]}
)",
                   {"steps form a cycle: x -> y -> z -> x"});
  Result<Pipeline> p = ParsePipeline(R"(
steps:
  - {name: root, command: "true"}
  - {name: x, command: "true", after: [root, z]}
  - {name: y, command: "true", after: [x]}
  - {name: z, command: "true", after: [y]}
)");
  EXPECT_EQ(p.status().message().find("root"), std::string::npos) << p.status().message();
}

TEST(PipelineValidateTest, DuplicateUuid) {
  ExpectParseError("steps: [{name: a, file: a.py}, {name: b, file: b.py}, {name: a, file: c.py}]",
                   {"duplicate step name \"a\"", "steps[0] and steps[2]", "its own name"});
  Pipeline p;
  p.steps = {CommandStep("x"), CommandStep("x")};
  ExpectInvalid(ValidatePipeline(p), {"duplicate step uuid \"x\"", "its own uuid"});
}

TEST(PipelineValidateTest, FileThatCannotBeRun) {
  ExpectParseError("steps: [{name: train, file: model.exe}]",
                   {"step \"train\": file \"model.exe\" cannot be run; steps run .py, .sh, "
                    ".ipynb or .R files, or a command"});
  ExpectParseError("steps: [{name: build, file: Makefile}]",
                   {"step \"build\": file \"Makefile\" cannot be run"});
  ExpectParseError(R"({"name": "x", "steps": {"u": {"title": "t", "file_path": "x.PY"}}})",
                   {"step \"t (u)\": file \"x.PY\" cannot be run"});
}

TEST(PipelineValidateTest, FileAndCommand) {
  ExpectParseError("steps: [{name: s, file: a.py, command: ls}]",
                   {"step \"s\"", "both file \"a.py\" and command \"ls\"", "give one of them"});
  ExpectParseError("steps: [{name: s}]", {"step \"s\"", "neither file nor command"});
  ExpectParseError("steps: [{name: s, command: \"  \"}]", {"step \"s\"", "neither"});
  ExpectParseError(R"({"name": "x", "steps": {"u": {"title": "t", "file_path": ""}}})",
                   {"step \"t (u)\"", "neither file_path nor command"});
}

TEST(PipelineValidateTest, AbsoluteFile) {
  ExpectParseError("steps: [{name: s, file: /etc/x.sh}]",
                   {"step \"s\"", "\"/etc/x.sh\"", "relative to the project directory"});
}

TEST(PipelineValidateTest, BerthStepNames) {
  ExpectParseError("steps: [{file: a.py}]", {"steps[0] has no name"});
  ExpectParseError("steps: [{name: ok, file: a.py}, {name: 'a b', file: b.py}]",
                   {"steps[1]", "name \"a b\" is not a plain name", "letters, digits"});
  ExpectParseError("steps: [{name: 'a/b', file: b.py}]", {"\"a/b\" is not a plain name"});
  ExpectParseError(fmt::format("steps: [{{name: {}, file: b.py}}]", std::string(65, 'n')),
                   {"is not a plain name", "1-64"});
  ExpectParseError("steps: [{name: 5, file: b.py}]", {"steps[0]: name must be a string"});
  EXPECT_TRUE(ParsePipeline(fmt::format("steps: [{{name: {}, file: b.py}}]",
                                        std::string(64, 'n')))
                  .ok());
}

TEST(PipelineValidateTest, UuidsThatCannotNameAStep) {
  ExpectParseError(R"({"name": "x", "steps": {"a/b": {"file_path": "a.py"}}})",
                   {"step \"a/b\"", "may not contain '/'"});
  ExpectParseError(R"({"name": "x", "steps": {"..": {"file_path": "a.py"}}})",
                   {"step \"..\""});
  ExpectParseError(R"({"name": "x", "steps": {"": {"file_path": "a.py"}}})",
                   {"steps[0] has an empty uuid"});
}

TEST(PipelineValidateTest, EmptyPipeline) {
  ExpectParseError("name: etl\nsteps: []", {"pipeline \"etl\" has no steps", "add at least one"});
  ExpectParseError(R"({"name": "etl", "steps": {}})", {"has no steps"});
  ExpectParseError("name: etl", {"has no steps"});
  ExpectInvalid(ValidatePipeline(Pipeline{}), {"has no steps"});
}

TEST(PipelineValidateTest, StepsOfTheWrongType) {
  ExpectParseError("name: etl\nsteps: a.py", {"steps must be a list", "or an object keyed by"});
  ExpectParseError("[1, 2]", {"a pipeline must be an object", "a list"});
  ExpectParseError("", {"a pipeline must be an object"});
  ExpectParseError("steps: [a.py]", {"steps[0] must be an object", "got a string"});
  ExpectParseError(R"({"steps": {"u": "a.py"}})", {"step \"u\": must be an object"});
}

TEST(PipelineValidateTest, Concurrency) {
  ExpectParseError("concurrency: -1\nsteps: [{name: a, file: a.py}]",
                   {"concurrency is -1", "0", "global limit"});
  ExpectParseError("concurrency: two\nsteps: [{name: a, file: a.py}]",
                   {"concurrency must be a whole number", "a string"});
  ExpectParseError("concurrency: 1.5\nsteps: [{name: a, file: a.py}]", {"concurrency"});
  ExpectParseError("concurrency: 99999999999\nsteps: [{name: a, file: a.py}]",
                   {"concurrency 99999999999 is out of range"});
  Pipeline p = Chain();
  p.concurrency = -3;
  ExpectInvalid(ValidatePipeline(p), {"concurrency is -3"});
}

TEST(PipelineValidateTest, FieldsOfTheWrongType) {
  struct Case {
    const char* text;
    Strings parts;
  };
  for (const Case& c : std::vector<Case>{
           {R"({"steps": {"u": {"title": "t", "file_path": 3}}})",
            {"step \"t (u)\": file_path must be a string, got an integer"}},
           {R"({"steps": {"u": {"title": 5, "file_path": "a.py"}}})",
            {"step \"u\": title must be a string"}},
           {R"({"steps": {"u": {"uuid": "u", "title": ["t"], "file_path": "a.py"}}})",
            {"step \"u\": title must be a string, got a list"}},
           {R"({"steps": {"u": {"uuid": 7, "file_path": "a.py"}}})",
            {"step \"u\": uuid must be a string"}},
           {R"({"steps": {"u": {"file_path": "a.py", "incoming_connections": "v"}}})",
            {"step \"u\": incoming_connections must be a list of step uuids, got a string"}},
           {R"({"steps": {"u": {"file_path": "a.py", "incoming_connections": [1]}}})",
            {"step \"u\": incoming_connections[0] must be a string"}},
           {R"({"steps": {"u": {"file_path": "a.py", "parameters": [1]}}})",
            {"step \"u\": parameters must be an object", "got a list"}},
           {R"({"steps": {"u": {"file_path": "a.py", "environment": {}}}})",
            {"step \"u\": environment must be a string"}},
           {R"({"steps": {"u": {"file_path": "a.py", "kernel": 3}}})",
            {"step \"u\": kernel must be an object with name"}},
           {R"({"steps": {"u": {"file_path": "a.py", "image": {"image_name": 3}}}})",
            {"step \"u\": image.image_name must be a string"}},
           {R"({"steps": {"u": {"file_path": "a.py", "command": ["ls"]}}})",
            {"step \"u\": command must be a string, got a list"}},
           {"name: [x]\nsteps: [{name: a, file: a.py}]", {"pipeline: name must be a string"}},
           {"uuid: 3\nsteps: [{name: a, file: a.py}]", {"pipeline: uuid must be a string"}},
           {"parameters: 3\nsteps: [{name: a, file: a.py}]",
            {"pipeline: parameters must be an object"}},
           {"services: x\nsteps: [{name: a, file: a.py}]", {"services must be an object"}},
           {"steps: [{name: a, file: a.py, after: [1]}]", {"step \"a\": after[0] must be a string"}},
           {"steps: [{name: a, file: a.py, after: {x: 1}}]",
            {"step \"a\": after must be a list of step names"}},
       }) {
    SCOPED_TRACE(c.text);
    ExpectParseError(c.text, c.parts);
  }
}

TEST(PipelineValidateTest, Env) {
  ExpectParseError("env: [A]\nsteps: [{name: a, file: a.py}]",
                   {"pipeline: env must be an object of variable names"});
  ExpectParseError("env: {1A: x}\nsteps: [{name: a, file: a.py}]",
                   {"pipeline: env: \"1A\" is not a variable name"});
  ExpectParseError("steps: [{name: a, file: a.py, env: {A-B: x}}]",
                   {"step \"a\": env: \"A-B\" is not a variable name"});
  ExpectParseError("steps: [{name: a, file: a.py, env: {A: [1]}}]",
                   {"step \"a\": env.A must be a string, got a list"});
}

TEST(PipelineValidateTest, MemoryLimit) {
  ExpectParseError("steps: [{name: a, file: a.py, memory-limit: 256MB}]",
                   {"step \"a\": memory-limit \"256MB\" is not a size", "256Mi"});
  ExpectParseError("steps: [{name: a, file: a.py, memory-limit: lots}]",
                   {"step \"a\": memory-limit \"lots\" is not a size"});
  ExpectParseError("steps: [{name: a, file: a.py, memory-limit: -5}]",
                   {"step \"a\": memory-limit -5 is not a size"});
  ExpectParseError("steps: [{name: a, file: a.py, memory-limit: 1.5Gi}]",
                   {"step \"a\": memory-limit \"1.5Gi\" is not a size"});
  // A bare number is bytes; a small one is a forgotten unit.
  ExpectParseError("steps: [{name: a, file: a.py, memory-limit: 256}]",
                   {"step \"a\": memory-limit is 256 bytes", "at least 1M", "did you mean 256Mi"});
  ExpectParseError("steps: [{name: a, file: a.py, memory-limit: 512Ki}]",
                   {"step \"a\": memory-limit is 524288 bytes", "at least 1M"});
  ExpectParseError("steps: [{name: a, file: a.py, memory-limit: 2Ti}]",
                   {"step \"a\": memory-limit is 2199023255552 bytes", "at most 1Ti"});
  ExpectParseError("steps: [{name: a, file: a.py, memory-limit: 99999999999999Ti}]",
                   {"step \"a\": memory-limit", "at most 1Ti"});
}

TEST(PipelineValidateTest, DuplicateParent) {
  ExpectParseError("steps: [{name: a, file: a.py}, {name: b, file: b.py, after: [a, a]}]",
                   {"step \"b\": after lists \"a\" twice"});
}

TEST(PipelineValidateTest, UnknownKeysOfBerthsForm) {
  ExpectParseError("steps: [{name: a, file: a.py, memory_limit: 1Gi}]",
                   {"step \"a\": unknown key \"memory_limit\"", "memory-limit"});
  ExpectParseError("nmae: x\nsteps: [{name: a, file: a.py}]",
                   {"pipeline: unknown key \"nmae\"", "name, uuid"});
}

TEST(PipelineValidateTest, OrchestKeyMustEqualUuid) {
  ExpectParseError(R"({"name": "x", "steps": {
      "k1": {"uuid": "k2", "title": "load", "file_path": "a.py"}}})",
                   {"step \"load (k1)\"", "uuid is \"k2\"", "key \"k1\"",
                    "make them the same"});
}

TEST(PipelineValidateTest, NotJsonNorYaml) {
  ExpectParseError(R"({"name": "x", "steps": {"a": )", {"not valid JSON", "line 1"});
  ExpectParseError("name: x\nsteps: [a, b\n  c: d: e", {"not valid YAML"});
}

TEST(PipelineValidateTest, CodeBuiltPipelines) {
  Pipeline p = Diamond();
  EXPECT_TRUE(ValidatePipeline(p).ok()) << ValidatePipeline(p).ToString();

  Pipeline wrong_kind = Diamond();
  wrong_kind.steps[1].command.clear();
  wrong_kind.steps[1].file_path = "b.py";  // kind still kCommand
  ExpectInvalid(ValidatePipeline(wrong_kind),
                {"step \"b\"", "kind is command", "python", "StepKindOf"});

  Pipeline no_uuid = Diamond();
  no_uuid.steps[2].uuid.clear();
  ExpectInvalid(ValidatePipeline(no_uuid), {"steps[2] has an empty uuid"});

  Pipeline unknown = Diamond();
  unknown.steps[3].incoming.push_back("zzz");
  ExpectInvalid(ValidatePipeline(unknown),
                {"step \"d\": incoming_connections names \"zzz\", which is not a step"});

  Pipeline big = Chain();
  big.steps[0].memory_limit_bytes = 100;
  ExpectInvalid(ValidatePipeline(big), {"step \"a\": memory-limit is 100 bytes"});
}

TEST(PipelineValidateTest, LongChainIsFine) {
  Pipeline p;
  constexpr int kN = 20000;
  for (int i = 0; i < kN; ++i) {
    p.steps.push_back(CommandStep(fmt::format("s{}", i),
                                  i == 0 ? Strings{} : Strings{fmt::format("s{}", i - 1)}));
  }
  EXPECT_TRUE(ValidatePipeline(p).ok());
  RunPlan plan = MustPlan(p, RunType::kFull);
  ASSERT_EQ(plan.steps.size(), static_cast<size_t>(kN));
  EXPECT_EQ(plan.steps.front(), "s0");
  EXPECT_EQ(plan.steps.back(), fmt::format("s{}", kN - 1));
  p.steps[0].incoming = {fmt::format("s{}", kN - 1)};
  ExpectInvalid(ValidatePipeline(p), {"steps form a cycle: s0 -> s1 -> s2"});
}

// --- labels, names ---

TEST(PipelineTest, StepLabel) {
  PipelineStep s;
  s.uuid = "3f2a";
  EXPECT_EQ(StepLabel(s), "3f2a");
  s.title = "3f2a";
  EXPECT_EQ(StepLabel(s), "3f2a");
  s.title = "load";
  EXPECT_EQ(StepLabel(s), "load (3f2a)");
}

TEST(PipelineTest, Names) {
  EXPECT_STREQ(StepKindName(StepKind::kCommand), "command");
  EXPECT_STREQ(StepKindName(StepKind::kPython), "python");
  EXPECT_STREQ(StepKindName(StepKind::kShell), "shell");
  EXPECT_STREQ(StepKindName(StepKind::kNotebook), "notebook");
  EXPECT_STREQ(StepKindName(StepKind::kR), "r");
  EXPECT_STREQ(RunTypeName(RunType::kFull), "full");
  EXPECT_STREQ(RunTypeName(RunType::kSelection), "selection");
  EXPECT_STREQ(RunTypeName(RunType::kIncoming), "incoming");
}

TEST(PipelineTest, ParseRunType) {
  for (RunType t : {RunType::kFull, RunType::kSelection, RunType::kIncoming}) {
    Result<RunType> r = ParseRunType(RunTypeName(t));
    ASSERT_TRUE(r.ok()) << RunTypeName(t);
    EXPECT_EQ(*r, t);
  }
  Result<RunType> partial = ParseRunType("partial");
  ASSERT_TRUE(partial.ok());
  EXPECT_EQ(*partial, RunType::kSelection);
  for (std::string_view bad : {"", "Full", "all", "incoming "}) {
    SCOPED_TRACE(bad);
    Result<RunType> r = ParseRunType(bad);
    ASSERT_FALSE(r.ok());
    ExpectInvalid(r.status(), {"unknown run type", "full, selection or incoming"});
  }
}

// --- PipelineToJson ---

TEST(PipelineJsonTest, BerthFormRoundTrips) {
  Pipeline p = MustParse(kBerthYaml);
  json::object o = PipelineToJson(p);
  Result<Pipeline> again = PipelineFromJson(o);
  ASSERT_TRUE(again.ok()) << again.status().ToString() << "\n" << json::serialize(o);
  EXPECT_EQ(*again, p);
  // Spot checks of the parts that round-tripping alone would not show as lost.
  EXPECT_EQ(again->steps[1].command, "python3 clean.py --fast");
  EXPECT_EQ(again->steps[1].env.at("K"), "v");
  EXPECT_EQ(again->steps[1].memory_limit_bytes, 256u << 20);
  EXPECT_EQ(again->concurrency, 2);
  EXPECT_EQ(again->env.at("MODE"), "test");
}

TEST(PipelineJsonTest, OrchestFormRoundTrips) {
  Pipeline p = MustParse(kOrchestJson);
  Result<Pipeline> again = PipelineFromJson(PipelineToJson(p));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(*again, p);
}

TEST(PipelineJsonTest, CodeBuiltPipelineRoundTrips) {
  Pipeline p = Diamond("adcb", {"c", "b"});
  p.uuid = "pu";
  p.parameters["x"] = json::array{1, "two"};
  p.services["db"] = json::object{{"image", "postgres"}};
  p.concurrency = 7;
  p.env["GLOBAL"] = "1";
  p.steps[1].memory_limit_bytes = 3'000'000;  // no binary unit fits: written as bytes
  p.steps[2].memory_limit_bytes = 5ull << 30;
  p.steps[2].kernel = "python";
  p.steps[2].environment = "env-1";
  p.steps[3].title = "Bee";
  p.steps[3].command.clear();
  p.steps[3].file_path = "b.ipynb";
  p.steps[3].kind = StepKind::kNotebook;
  ASSERT_TRUE(ValidatePipeline(p).ok()) << ValidatePipeline(p).ToString();
  Result<Pipeline> again = PipelineFromJson(PipelineToJson(p));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(*again, p);
  // And through text, as a run's frozen pipeline.json is read back.
  Result<Pipeline> text = ParsePipeline(json::serialize(PipelineToJson(p)));
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  EXPECT_EQ(*text, p);
}

TEST(PipelineJsonTest, WritesOrchestsShape) {
  Pipeline p = MustParse(kBerthYaml);
  json::object o = PipelineToJson(p);
  // What Orchest's SDK reads without a default.
  EXPECT_EQ(o.at("name"), "etl");
  EXPECT_TRUE(o.at("uuid").is_string());
  EXPECT_TRUE(o.at("settings").is_object());
  EXPECT_EQ(o.at("concurrency"), 2);
  const json::object& steps = o.at("steps").as_object();
  ASSERT_EQ(steps.size(), 4u);
  EXPECT_EQ(steps.begin()->key(), "extract");  // file order kept
  const json::object& clean = steps.at("clean.v2").as_object();
  EXPECT_EQ(clean.at("uuid"), "clean.v2");
  EXPECT_EQ(clean.at("title"), "clean.v2");
  EXPECT_EQ(clean.at("file_path"), "");
  EXPECT_EQ(clean.at("command"), "python3 clean.py --fast");
  EXPECT_EQ(clean.at("incoming_connections"), (json::array{"extract"}));
  EXPECT_EQ(clean.at("memory-limit"), "256Mi");
  EXPECT_EQ(clean.at("env"), (json::object{{"K", "v"}}));
  const json::object& report = steps.at("report_1").as_object();
  EXPECT_EQ(report.at("incoming_connections"), (json::array{"clean.v2", "extract"}));
  EXPECT_FALSE(report.contains("command"));
  EXPECT_FALSE(report.contains("memory-limit"));

  Pipeline orchest = MustParse(kOrchestJson);
  json::object oo = PipelineToJson(orchest);
  const json::object& load = oo.at("steps").at("3f2a-load").as_object();
  EXPECT_EQ(load.at("kernel"), (json::object{{"name", "python"}}));
  EXPECT_EQ(load.at("environment"), "env-uuid-1");
  EXPECT_FALSE(oo.contains("concurrency"));
  EXPECT_FALSE(oo.contains("env"));
}

// --- PlanRun on a diamond: a -> b, a -> c, b -> d, c -> d ---

TEST(PlanRunTest, DiamondFull) {
  RunPlan plan = MustPlan(Diamond(), RunType::kFull);
  EXPECT_EQ(plan.steps, (Strings{"a", "b", "c", "d"}));
  EXPECT_EQ(plan.parents, (Parents{{"a", {}}, {"b", {"a"}}, {"c", {"a"}}, {"d", {"b", "c"}}}));
}

TEST(PlanRunTest, TiesGoInFileOrder) {
  // c is written before b: among ready steps, the one earlier in the file goes first.
  EXPECT_EQ(MustPlan(Diamond("acbd"), RunType::kFull).steps, (Strings{"a", "c", "b", "d"}));
  // A file not written in topological order is still planned topologically.
  EXPECT_EQ(MustPlan(Diamond("dbca"), RunType::kFull).steps, (Strings{"a", "b", "c", "d"}));
  EXPECT_EQ(MustPlan(Diamond("dcba"), RunType::kFull).steps, (Strings{"a", "c", "b", "d"}));
  // Independent steps: file order exactly.
  Pipeline flat;
  flat.steps = {CommandStep("z"), CommandStep("m"), CommandStep("a")};
  EXPECT_EQ(MustPlan(flat, RunType::kFull).steps, (Strings{"z", "m", "a"}));
}

TEST(PlanRunTest, ParentsKeepTheStepsIncomingOrder) {
  // d's inputs are (c, b): kept so, though b runs first.
  RunPlan plan = MustPlan(Diamond("abcd", {"c", "b"}), RunType::kFull);
  EXPECT_EQ(plan.steps, (Strings{"a", "b", "c", "d"}));
  EXPECT_EQ(plan.parents.at("d"), (Strings{"c", "b"}));
  RunPlan incoming = MustPlan(Diamond("abcd", {"c", "b"}), RunType::kIncoming, {"d"}, true);
  EXPECT_EQ(incoming.parents.at("d"), (Strings{"c", "b"}));
}

TEST(PlanRunTest, FullIgnoresTheSelection) {
  EXPECT_EQ(MustPlan(Diamond(), RunType::kFull, {"b"}).steps, (Strings{"a", "b", "c", "d"}));
}

TEST(PlanRunTest, DiamondSelectionKeepsOnlyEdgesBetweenSelectedSteps) {
  RunPlan plan = MustPlan(Diamond(), RunType::kSelection, {"d", "b"});
  EXPECT_EQ(plan.steps, (Strings{"b", "d"}));
  // b's parent a and d's parent c are not in the run: those edges are dropped.
  EXPECT_EQ(plan.parents, (Parents{{"b", {}}, {"d", {"b"}}}));

  RunPlan ends = MustPlan(Diamond(), RunType::kSelection, {"a", "d"});
  EXPECT_EQ(ends.steps, (Strings{"a", "d"}));
  EXPECT_EQ(ends.parents, (Parents{{"a", {}}, {"d", {}}}));  // no edge a -> d exists

  RunPlan one = MustPlan(Diamond(), RunType::kSelection, {"c"});
  EXPECT_EQ(one.steps, Strings{"c"});
  EXPECT_EQ(one.parents, (Parents{{"c", {}}}));
}

TEST(PlanRunTest, DiamondIncoming) {
  RunPlan plan = MustPlan(Diamond(), RunType::kIncoming, {"d"});
  EXPECT_EQ(plan.steps, (Strings{"a", "b", "c"}));
  EXPECT_EQ(plan.parents, (Parents{{"a", {}}, {"b", {"a"}}, {"c", {"a"}}}));

  RunPlan with = MustPlan(Diamond(), RunType::kIncoming, {"d"}, true);
  EXPECT_EQ(with.steps, (Strings{"a", "b", "c", "d"}));
  EXPECT_EQ(with.parents, (Parents{{"a", {}}, {"b", {"a"}}, {"c", {"a"}}, {"d", {"b", "c"}}}));

  RunPlan of_b = MustPlan(Diamond(), RunType::kIncoming, {"b"});
  EXPECT_EQ(of_b.steps, Strings{"a"});  // c is not an ancestor of b
  EXPECT_EQ(of_b.parents, (Parents{{"a", {}}}));

  RunPlan of_bc = MustPlan(Diamond(), RunType::kIncoming, {"b", "c"}, true);
  EXPECT_EQ(of_bc.steps, (Strings{"a", "b", "c"}));
  EXPECT_FALSE(of_bc.parents.contains("d"));
}

TEST(PlanRunTest, ChainRuns) {
  EXPECT_EQ(MustPlan(Chain(), RunType::kFull).steps, (Strings{"a", "b", "c"}));

  RunPlan sel = MustPlan(Chain(), RunType::kSelection, {"c", "a"});
  EXPECT_EQ(sel.steps, (Strings{"a", "c"}));
  EXPECT_EQ(sel.parents, (Parents{{"a", {}}, {"c", {}}}));  // b is out: a -> b -> c is cut

  RunPlan in = MustPlan(Chain(), RunType::kIncoming, {"c"});
  EXPECT_EQ(in.steps, (Strings{"a", "b"}));  // transitively, not only the direct parent
  EXPECT_EQ(in.parents, (Parents{{"a", {}}, {"b", {"a"}}}));

  // Orchest's edge case: selected steps are left out even when they are ancestors of others.
  RunPlan in_bc = MustPlan(Chain(), RunType::kIncoming, {"b", "c"});
  EXPECT_EQ(in_bc.steps, Strings{"a"});
  RunPlan in_bc_with = MustPlan(Chain(), RunType::kIncoming, {"b", "c"}, true);
  EXPECT_EQ(in_bc_with.steps, (Strings{"a", "b", "c"}));
  EXPECT_EQ(in_bc_with.parents, (Parents{{"a", {}}, {"b", {"a"}}, {"c", {"b"}}}));

  RunPlan in_a_with = MustPlan(Chain(), RunType::kIncoming, {"a"}, true);
  EXPECT_EQ(in_a_with.steps, Strings{"a"});
}

TEST(PlanRunTest, IncomingWithNothingToRun) {
  Result<RunPlan> r = PlanRun(Chain(), RunType::kIncoming, {"a"});
  ASSERT_FALSE(r.ok());
  ExpectInvalid(r.status(), {"nothing to run", "\"a\" has no incoming steps"});
  Result<RunPlan> all = PlanRun(Chain(), RunType::kIncoming, {"b", "a"});
  ASSERT_FALSE(all.ok());
  ExpectInvalid(all.status(), {"nothing to run", "\"b\", \"a\" have no incoming steps that are "
                                                 "not themselves selected"});
}

TEST(PlanRunTest, SelectionIsDeduplicated) {
  RunPlan plan = MustPlan(Diamond(), RunType::kSelection, {"b", "d", "b", "d"});
  EXPECT_EQ(plan.steps, (Strings{"b", "d"}));
  RunPlan in = MustPlan(Diamond(), RunType::kIncoming, {"d", "d"}, true);
  EXPECT_EQ(in.steps, (Strings{"a", "b", "c", "d"}));
}

TEST(PlanRunTest, UnknownSelectedStepsAreAllNamed) {
  for (RunType t : {RunType::kSelection, RunType::kIncoming}) {
    SCOPED_TRACE(RunTypeName(t));
    Result<RunPlan> r = PlanRun(Diamond(), t, {"x", "b", "y", "x"});
    ASSERT_FALSE(r.ok());
    ExpectInvalid(r.status(), {"does not have: \"x\", \"y\";"});
    EXPECT_EQ(r.status().message().find("\"b\""), std::string::npos) << r.status().message();
  }
}

TEST(PlanRunTest, EmptySelection) {
  for (RunType t : {RunType::kSelection, RunType::kIncoming}) {
    Result<RunPlan> r = PlanRun(Diamond(), t, {});
    ASSERT_FALSE(r.ok());
    ExpectInvalid(r.status(), {fmt::format("a {} run needs at least one selected step",
                                           RunTypeName(t))});
  }
}

TEST(PlanRunTest, RefusesABrokenGraph) {
  Pipeline cyclic = Diamond();
  cyclic.steps[0].incoming = {"d"};
  Result<RunPlan> r = PlanRun(cyclic, RunType::kFull, {});
  ASSERT_FALSE(r.ok());
  ExpectInvalid(r.status(), {"steps form a cycle: a -> b -> d -> a"});
  // Even a run that leaves the cycle out: the pipeline is broken.
  ExpectInvalid(PlanRun(cyclic, RunType::kSelection, {"b", "c"}).status(),
                {"steps form a cycle"});

  Pipeline unknown = Chain();
  unknown.steps[2].incoming.push_back("ghost");
  Result<RunPlan> u = PlanRun(unknown, RunType::kFull, {});
  ASSERT_FALSE(u.ok());
  ExpectInvalid(u.status(), {"step \"c\"", "\"ghost\", which is not a step"});

  Pipeline dup = Chain();
  dup.steps.push_back(CommandStep("a"));
  ExpectInvalid(PlanRun(dup, RunType::kFull, {}).status(), {"duplicate step uuid \"a\""});
}

TEST(PlanRunTest, PlansAParsedOrchestPipelineByUuid) {
  Pipeline p = MustParse(kOrchestJson);
  RunPlan plan = MustPlan(p, RunType::kIncoming, {"9c1e-train"});
  EXPECT_EQ(plan.steps, Strings{"3f2a-load"});
  Result<RunPlan> by_title = PlanRun(p, RunType::kSelection, {"train"});
  ASSERT_FALSE(by_title.ok());
  ExpectInvalid(by_title.status(), {"\"train\""});
}

}  // namespace
}  // namespace berth
