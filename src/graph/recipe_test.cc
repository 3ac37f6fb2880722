#include "graph/recipe.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace berth {
namespace {

namespace json = boost::json;
using Strings = std::vector<std::string>;

TEST(RecipeTest, DefaultPingHasImplicitEdges) {
  auto r = DefaultRecipes();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].name, "ping");
  ASSERT_EQ(r[0].edges.size(), 2u);
  EXPECT_EQ(r[0].edges[0].source, -1);
  EXPECT_EQ(r[0].edges[1].sink, -1);
}

// --- helpers ---

// Asserts that `status` is InvalidArgument and that its message holds every one of `parts`.
void ExpectInvalid(const Status& status, const Strings& parts) {
  ASSERT_FALSE(status.ok()) << "expected an error containing: " << parts.front();
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
  for (const std::string& part : parts) {
    EXPECT_NE(status.message().find(part), std::string::npos)
        << "message: " << status.message() << "\nlacks: " << part;
  }
}

json::value J(std::string_view text) { return json::parse(text); }
json::object O(std::string_view text) { return json::parse(text).as_object(); }

Recipe MustParseValue(const json::value& v) {
  Result<Recipe> r = ParseRecipe(v);
  EXPECT_TRUE(r.ok()) << r.status().ToString() << "\n" << json::serialize(v);
  return r.ok() ? *r : Recipe{};
}
Recipe MustParse(std::string_view text) { return MustParseValue(J(text)); }

void ExpectParseError(std::string_view text, const Strings& parts) {
  Result<Recipe> r = ParseRecipe(J(text));
  ASSERT_FALSE(r.ok()) << "parsed:\n" << text;
  ExpectInvalid(r.status(), parts);
}

// A recipe named "svc" with the given graph (and the rest of the object, if any).
std::string WithGraph(std::string_view nodes, std::string_view edges, std::string_view rest = "") {
  std::string s = R"({"name": "svc", "graph": {"nodes": )" + std::string(nodes) + R"(, "edges": )" +
                  std::string(edges) + "}";
  if (!rest.empty()) {
    s += ", " + std::string(rest);
  }
  return s + "}";
}

using Edge = std::tuple<int, int, std::string, bool>;  // source, sink, channel, implicit
std::vector<Edge> Edges(const Recipe& r) {
  std::vector<Edge> out;
  for (const auto& e : r.edges) {
    out.emplace_back(e.source, e.sink, e.channel, e.implicit);
  }
  return out;
}

Strings Names(const Recipe& r) {
  Strings out;
  for (const auto& n : r.nodes) {
    out.push_back(n.name);
  }
  return out;
}

Strings Types(const Recipe& r) {
  Strings out;
  for (const auto& n : r.nodes) {
    out.push_back(n.type);
  }
  return out;
}

std::vector<json::object> Args(const Recipe& r) {
  std::vector<json::object> out;
  for (const auto& n : r.nodes) {
    out.push_back(n.args);
  }
  return out;
}

std::vector<json::object> MustRunArgs(const Recipe& r, const json::object& overrides) {
  Result<std::vector<json::object>> a = RunArgs(r, overrides);
  EXPECT_TRUE(a.ok()) << a.status().ToString();
  return a.ok() ? *a : std::vector<json::object>{};
}

using Handlers = std::map<std::string, Strings>;

// The seed's coco shape: a frontend, then pre -> fpga -> post, post feeding back into fpga.
constexpr std::string_view kCoco = R"({"name": "coco", "url": "coco",
  "graph": {"nodes": ["image_frontend", "pre", "fpga", "post"],
            "edges": [[0, 1, null], [1, 2, null], [3, 2, null], [2, 3, null]]},
  "handlers": {"post": ["handlers.coco_handler"]}})";

// Neptune's cache form: tuples hinted, in the edges and in argument values.
constexpr std::string_view kNeptune = R"({"name": "resize", "url": "resize",
  "graph": {"nodes": ["decode", "resize"],
            "edges": [{"__tuple__": true, "items": [-1, 0, null]},
                      {"__tuple__": true, "items": [0, 1, null]},
                      {"__tuple__": true, "items": [1, -1, null]}]},
  "args": [{"size": {"__tuple__": true, "items": [640, 480]}, "mode": "rgb"},
           {"scale": {"__tuple__": true, "items": [0.5, {"__tuple__": true, "items": [1, 2]}]}}],
  "handlers": {"get": ["handlers.resize_handler"], "post": ["handlers.a", "handlers.b"]}})";

// --- Untuple ---

TEST(UntupleTest, ReplacesHintsEverywhere) {
  json::value v = J(R"({"a": {"__tuple__": true, "items": [1, {"__tuple__": true, "items": [2]}]},
                        "b": [{"__tuple__": true, "items": []}, 3],
                        "c": {"d": {"__tuple__": true, "items": ["x"]}}})");
  EXPECT_EQ(Untuple(v), J(R"({"a": [1, [2]], "b": [[], 3], "c": {"d": ["x"]}})"));
}

TEST(UntupleTest, LeavesLookalikesAlone) {
  // Not hints: __tuple__ false, not a boolean, or items that are not a list.
  json::value v = J(R"([{"__tuple__": false, "items": [1]}, {"__tuple__": 1, "items": [1]},
                        {"__tuple__": true, "items": 3}, {"__tuple__": true}])");
  EXPECT_EQ(Untuple(v), v);
}

// --- reading the berth form ---

TEST(RecipeParseTest, ReadsBerthForm) {
  Recipe r = MustParse(R"({"name": "ping", "url": "pong",
      "graph": {"nodes": ["ping"], "edges": [[-1, 0, "in"], [0, -1, "out"]]},
      "args": [{"n": 1}],
      "handlers": {"get": ["handlers.ping_handler"]}})");
  EXPECT_EQ(r.name, "ping");
  EXPECT_EQ(r.url, "pong");
  EXPECT_EQ(Types(r), (Strings{"ping"}));
  EXPECT_EQ(Names(r), (Strings{"ping"}));
  EXPECT_EQ(Edges(r), (std::vector<Edge>{{-1, 0, "in", false}, {0, -1, "out", false}}));
  EXPECT_EQ(Args(r), (std::vector<json::object>{O(R"({"n": 1})")}));
  EXPECT_EQ(r.handlers, (Handlers{{"get", {"handlers.ping_handler"}}}));
}

TEST(RecipeParseTest, UrlDefaultsToName) {
  Recipe r = MustParse(R"({"name": "ping", "graph": {"nodes": ["ping"]}})");
  EXPECT_EQ(r.url, "ping");
  Recipe n = MustParse(R"({"name": "ping", "url": null, "graph": {"nodes": ["ping"]}})");
  EXPECT_EQ(n.url, "ping");
}

TEST(RecipeParseTest, NoArgsOrHandlersMeansEmpty) {
  Recipe r = MustParse(R"({"name": "ping", "graph": {"nodes": ["a", "b"], "edges": [[0, 1]]}})");
  EXPECT_EQ(Args(r), (std::vector<json::object>{{}, {}}));
  EXPECT_TRUE(r.handlers.empty());
}

// --- Neptune's form ---

TEST(RecipeParseTest, ReadsNeptuneTupleHintedEdges) {
  Recipe r = MustParse(kNeptune);
  EXPECT_EQ(r.name, "resize");
  EXPECT_EQ(Names(r), (Strings{"decode", "resize"}));
  EXPECT_EQ(Edges(r),
            (std::vector<Edge>{{-1, 0, "", false}, {0, 1, "", false}, {1, -1, "", false}}));
}

TEST(RecipeParseTest, ReadsEdgesListGivenAsTuple) {
  Recipe r = MustParse(
      WithGraph(R"(["a", "b"])",
                R"({"__tuple__": true, "items": [{"__tuple__": true, "items": [0, 1, "ch"]}]})"));
  EXPECT_EQ(Edges(r),
            (std::vector<Edge>{{-1, 0, "", true}, {0, 1, "ch", false}, {1, -1, "", true}}));
}

TEST(RecipeParseTest, ReadsNodesGivenAsTuple) {
  Recipe r = MustParse(WithGraph(R"({"__tuple__": true, "items": ["a", "b"]})", "[[0, 1]]"));
  EXPECT_EQ(Names(r), (Strings{"a", "b"}));
}

TEST(RecipeParseTest, KeepsTupleHintsInArgs) {
  Recipe r = MustParse(kNeptune);
  ASSERT_EQ(r.nodes.size(), 2u);
  EXPECT_EQ(r.nodes[0].args,
            O(R"({"size": {"__tuple__": true, "items": [640, 480]}, "mode": "rgb"})"));
  EXPECT_EQ(r.nodes[1].args, O(R"({"scale": {"__tuple__": true,
                            "items": [0.5, {"__tuple__": true, "items": [1, 2]}]}})"));
}

TEST(RecipeParseTest, ReadsArgsListGivenAsTuple) {
  Recipe r = MustParse(WithGraph(R"(["a", "b"])", "[[0, 1]]",
                                 R"("args": {"__tuple__": true, "items": [{"x": 1}, {"y": 2}]})"));
  EXPECT_EQ(Args(r), (std::vector<json::object>{O(R"({"x": 1})"), O(R"({"y": 2})")}));
}

// --- order and implicit edges ---

TEST(RecipeParseTest, KeepsNodeOrder) {
  Recipe r = MustParse(WithGraph(R"(["c", "a", "b"])", "[[0, 1], [1, 2]]"));
  EXPECT_EQ(Names(r), (Strings{"c", "a", "b"}));
}

TEST(RecipeParseTest, KeepsEdgeOrder) {
  Recipe r =
      MustParse(WithGraph(R"(["a", "b", "c"])", "[[1, -1], [-1, 0], [0, 2], [2, 1], [0, 1]]"));
  EXPECT_EQ(Edges(r), (std::vector<Edge>{{1, -1, "", false},
                                         {-1, 0, "", false},
                                         {0, 2, "", false},
                                         {2, 1, "", false},
                                         {0, 1, "", false}}));
}

TEST(RecipeParseTest, AddsImplicitEdgesWhenOmitted) {
  Recipe r = MustParse(WithGraph(R"(["a", "b", "c"])", "[[0, 1], [1, 2]]"));
  EXPECT_EQ(Edges(r),
            (std::vector<Edge>{
                {-1, 0, "", true}, {0, 1, "", false}, {1, 2, "", false}, {2, -1, "", true}}));
}

TEST(RecipeParseTest, AddsBothImplicitEdgesWithoutEdges) {
  Recipe missing = MustParse(R"({"name": "svc", "graph": {"nodes": ["a"]}})");
  EXPECT_EQ(Edges(missing), (std::vector<Edge>{{-1, 0, "", true}, {0, -1, "", true}}));
  Recipe null = MustParse(WithGraph(R"(["a"])", "null"));
  EXPECT_EQ(Edges(null), Edges(missing));
}

TEST(RecipeParseTest, NoImplicitEdgesWhenBothGiven) {
  Recipe r = MustParse(WithGraph(R"(["a", "b"])", "[[-1, 0], [0, 1], [1, -1]]"));
  EXPECT_EQ(Edges(r),
            (std::vector<Edge>{{-1, 0, "", false}, {0, 1, "", false}, {1, -1, "", false}}));
}

TEST(RecipeParseTest, AddsOnlyTheMissingEndEdge) {
  Recipe r = MustParse(WithGraph(R"(["a", "b"])", "[[-1, 0], [0, 1]]"));
  EXPECT_EQ(Edges(r),
            (std::vector<Edge>{{-1, 0, "", false}, {0, 1, "", false}, {1, -1, "", true}}));
}

TEST(RecipeParseTest, AddsOnlyTheMissingStartEdge) {
  Recipe r = MustParse(WithGraph(R"(["a", "b"])", "[[0, 1], [1, -1]]"));
  EXPECT_EQ(Edges(r),
            (std::vector<Edge>{{-1, 0, "", true}, {0, 1, "", false}, {1, -1, "", false}}));
}

TEST(RecipeParseTest, StartEdgeIntoAnotherNodeCountsAsGiven) {
  // START feeds node 1 only; node 0 hangs off node 1. No second START edge is added.
  Recipe r = MustParse(WithGraph(R"(["a", "b"])", "[[-1, 1], [1, 0], [0, -1]]"));
  EXPECT_EQ(Edges(r),
            (std::vector<Edge>{{-1, 1, "", false}, {1, 0, "", false}, {0, -1, "", false}}));
}

TEST(RecipeParseTest, ImplicitEdgesNotAddedTwiceOnReparse) {
  Recipe r = MustParse(WithGraph(R"(["a", "b"])", "[[0, 1]]"));
  ASSERT_EQ(r.edges.size(), 3u);
  Recipe again = MustParseValue(json::value(RecipeToJson(r)));
  EXPECT_EQ(Edges(again), Edges(r));
  Recipe neptune = MustParseValue(json::value(RecipeToNeptune(r)));
  EXPECT_EQ(Edges(neptune), Edges(r));
}

// --- edges ---

TEST(RecipeParseTest, EdgesByNodeName) {
  Recipe r = MustParse(
      WithGraph(R"(["a", "b", "c"])", R"([[-1, "a"], ["a", "c"], ["c", "b"], ["b", -1]])"));
  EXPECT_EQ(Edges(r),
            (std::vector<Edge>{
                {-1, 0, "", false}, {0, 2, "", false}, {2, 1, "", false}, {1, -1, "", false}}));
}

TEST(RecipeParseTest, EdgesMixNamesAndIndexes) {
  Recipe r = MustParse(WithGraph(R"(["a", "b"])", R"([[0, "b"], ["b", -1]])"));
  EXPECT_EQ(Edges(r),
            (std::vector<Edge>{{-1, 0, "", true}, {0, 1, "", false}, {1, -1, "", false}}));
}

TEST(RecipeParseTest, NullEdgeEndIsTerminal) {
  Recipe r = MustParse(WithGraph(R"(["a"])", "[[null, 0], [0, null]]"));
  EXPECT_EQ(Edges(r), (std::vector<Edge>{{-1, 0, "", false}, {0, -1, "", false}}));
}

TEST(RecipeParseTest, ReadsEdgeObjects) {
  Recipe r =
      MustParse(WithGraph(R"(["a", "b"])", R"([{"source": 0, "sink": "b", "channel": "frames"}])"));
  EXPECT_EQ(Edges(r),
            (std::vector<Edge>{{-1, 0, "", true}, {0, 1, "frames", false}, {1, -1, "", true}}));
}

TEST(RecipeParseTest, KeepsChannels) {
  Recipe r = MustParse(
      WithGraph(R"(["a", "b"])", R"([[-1, 0, "in"], [0, 1, "mid"], [0, -1], [1, -1, "out"]])"));
  EXPECT_EQ(
      Edges(r),
      (std::vector<Edge>{
          {-1, 0, "in", false}, {0, 1, "mid", false}, {0, -1, "", false}, {1, -1, "out", false}}));
}

TEST(RecipeParseTest, SameChannelTwiceIsFine) {
  Recipe r = MustParse(WithGraph(R"(["a", "b"])", R"([[0, 1, "x"], [0, -1, "x"], [1, -1]])"));
  EXPECT_EQ(r.edges.size(), 4u);
}

// --- node names ---

TEST(RecipeParseTest, TypeUsedTwiceGetsNumberedName) {
  Recipe r =
      MustParse(WithGraph(R"(["ping", "pong", "ping", "ping"])", "[[0, 1], [1, 2], [2, 3]]"));
  EXPECT_EQ(Types(r), (Strings{"ping", "pong", "ping", "ping"}));
  EXPECT_EQ(Names(r), (Strings{"ping", "pong", "ping_2", "ping_3"}));
  EXPECT_EQ(NodeIndex(r, "ping_2"), 2);
  EXPECT_EQ(NodeIndex(r, "ping_3"), 3);
}

TEST(RecipeParseTest, EdgesNameNumberedNodes) {
  Recipe r = MustParse(WithGraph(R"(["ping", "ping"])", R"([["ping", "ping_2"]])"));
  EXPECT_EQ(Edges(r), (std::vector<Edge>{{-1, 0, "", true}, {0, 1, "", false}, {1, -1, "", true}}));
}

TEST(RecipeParseTest, ReadsExplicitlyNamedNodes) {
  Recipe r = MustParse(WithGraph(R"([{"type": "ping", "name": "first"}, "ping",
                                     {"type": "ping"}, {"type": "ping", "name": "last"}])",
                                 R"([["first", 1], [1, 2], [2, "last"]])"));
  EXPECT_EQ(Types(r), (Strings{"ping", "ping", "ping", "ping"}));
  // Only the nodes without a name take one from their type.
  EXPECT_EQ(Names(r), (Strings{"first", "ping", "ping_2", "last"}));
  EXPECT_EQ(Edges(r), (std::vector<Edge>{{-1, 0, "", true},
                                         {0, 1, "", false},
                                         {1, 2, "", false},
                                         {2, 3, "", false},
                                         {3, -1, "", true}}));
}

TEST(RecipeParseTest, NodeIndexOfUnknownNameIsMinusOne) {
  Recipe r = MustParse(WithGraph(R"(["a", "b"])", "[[0, 1]]"));
  EXPECT_EQ(NodeIndex(r, "a"), 0);
  EXPECT_EQ(NodeIndex(r, "b"), 1);
  EXPECT_EQ(NodeIndex(r, "c"), -1);
  EXPECT_EQ(NodeIndex(r, ""), -1);
}

// --- inputs and outputs ---

TEST(RecipeGraphTest, CocoFpgaInputsKeepEdgeOrder) {
  Recipe r = MustParse(kCoco);  // the feedback edge post -> fpga passes validation
  EXPECT_EQ(Names(r), (Strings{"image_frontend", "pre", "fpga", "post"}));
  std::vector<std::vector<int>> in = NodeInputs(r);
  ASSERT_EQ(in.size(), 4u);
  EXPECT_EQ(in[0], (std::vector<int>{-1}));
  EXPECT_EQ(in[1], (std::vector<int>{0}));
  EXPECT_EQ(in[2], (std::vector<int>{1, 3}));  // pre first, then post
  EXPECT_EQ(in[3], (std::vector<int>{2}));
  EXPECT_EQ(EndSources(r), (std::vector<int>{3}));
}

TEST(RecipeGraphTest, InputOrderFollowsEdgesNotNodes) {
  Recipe r =
      MustParse(WithGraph(R"(["a", "b", "c"])", "[[-1, 0], [-1, 1], [1, 2], [0, 2], [2, -1]]"));
  EXPECT_EQ(NodeInputs(r)[2], (std::vector<int>{1, 0}));
}

TEST(RecipeGraphTest, FeedbackEdgeByNamePassesValidation) {
  Recipe r = MustParse(WithGraph(R"(["image_frontend", "pre", "fpga", "post"])",
                                 R"([["image_frontend", "pre"], ["pre", "fpga"],
                                     ["post", "fpga"], ["fpga", "post"]])"));
  EXPECT_EQ(NodeInputs(r)[2], (std::vector<int>{1, 3}));
}

TEST(RecipeGraphTest, EndSourcesInEdgeOrderOnce) {
  Recipe r = MustParse(
      WithGraph(R"(["a", "b", "c"])", "[[-1, 0], [0, 1], [0, 2], [2, -1], [1, -1], [2, -1]]"));
  EXPECT_EQ(EndSources(r), (std::vector<int>{2, 1}));
}

TEST(RecipeGraphTest, EndSourcesOfImplicitEdge) {
  Recipe r = MustParse(WithGraph(R"(["a", "b"])", "[[0, 1]]"));
  EXPECT_EQ(EndSources(r), (std::vector<int>{1}));
}

// --- args ---

TEST(RecipeArgsTest, OneObjectForAllNodes) {
  Recipe r = MustParse(WithGraph(R"(["a", "b"])", "[[0, 1]]", R"("args": {"n": 1, "s": "x"})"));
  EXPECT_EQ(Args(r),
            (std::vector<json::object>{O(R"({"n": 1, "s": "x"})"), O(R"({"n": 1, "s": "x"})")}));
}

TEST(RecipeArgsTest, OneObjectPerNode) {
  Recipe r = MustParse(
      WithGraph(R"(["a", "b", "c"])", "[[0, 1], [1, 2]]", R"("args": [{"n": 1}, null, {"m": 2}])"));
  EXPECT_EQ(Args(r), (std::vector<json::object>{O(R"({"n": 1})"), {}, O(R"({"m": 2})")}));
}

TEST(RecipeArgsTest, RunArgsWithoutOverridesUntuples) {
  Recipe r = MustParse(kNeptune);
  EXPECT_EQ(MustRunArgs(r, {}),
            (std::vector<json::object>{O(R"({"size": [640, 480], "mode": "rgb"})"),
                                       O(R"({"scale": [0.5, [1, 2]]})")}));
}

TEST(RecipeArgsTest, RunArgsAdds) {
  Recipe r = MustParse(kNeptune);
  auto a = MustRunArgs(r, O(R"({"decode": {"add": {"mode": "bgr", "q": 9,
                                  "box": {"__tuple__": true, "items": [1, 2]}}}})"));
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0], O(R"({"size": [640, 480], "mode": "bgr", "q": 9, "box": [1, 2]})"));
  EXPECT_EQ(a[1], O(R"({"scale": [0.5, [1, 2]]})"));
}

TEST(RecipeArgsTest, RunArgsRemovesByObject) {
  Recipe r = MustParse(kNeptune);
  auto a = MustRunArgs(r, O(R"({"decode": {"remove": {"size": null, "absent": 1}}})"));
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0], O(R"({"mode": "rgb"})"));
}

TEST(RecipeArgsTest, RunArgsRemovesByList) {
  Recipe r = MustParse(kNeptune);
  auto a = MustRunArgs(r, O(R"({"decode": {"remove": ["size", "mode", "absent"]},
                                "resize": {"remove": ["scale"]}})"));
  EXPECT_EQ(a, (std::vector<json::object>{{}, {}}));
}

TEST(RecipeArgsTest, RunArgsAddAndRemoveTogether) {
  Recipe r = MustParse(kNeptune);
  auto a = MustRunArgs(r, O(R"({"resize": {"remove": ["scale"], "add": {"w": 3}}})"));
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[1], O(R"({"w": 3})"));
}

TEST(RecipeArgsTest, RunArgsChangesOnlyTheNamedNode) {
  Recipe r = MustParse(WithGraph(R"(["a", "a"])", "[[0, 1]]", R"("args": {"n": 1})"));
  auto a = MustRunArgs(r, O(R"({"a_2": {"add": {"n": 2}}})"));
  EXPECT_EQ(a, (std::vector<json::object>{O(R"({"n": 1})"), O(R"({"n": 2})")}));
}

TEST(RecipeArgsTest, RunArgsLeavesRecipeUnchanged) {
  Recipe r = MustParse(kNeptune);
  std::vector<json::object> before = Args(r);
  json::object neptune_before = RecipeToNeptune(r);
  auto a = MustRunArgs(r, O(R"({"decode": {"add": {"mode": "bgr"}, "remove": ["size"]}})"));
  EXPECT_EQ(a[0], O(R"({"mode": "bgr"})"));
  EXPECT_EQ(Args(r), before);
  EXPECT_EQ(RecipeToNeptune(r), neptune_before);
}

TEST(RecipeArgsTest, RunArgsRejectsUnknownNode) {
  Recipe r = MustParse(kNeptune);
  ExpectInvalid(RunArgs(r, O(R"({"encode": {"add": {}}})")).status(),
                {"node 'encode'", "decode, resize"});
}

TEST(RecipeArgsTest, RunArgsRejectsOverrideThatIsNotAnObject) {
  Recipe r = MustParse(kNeptune);
  ExpectInvalid(RunArgs(r, O(R"({"resize": ["add"]})")).status(),
                {"override of node 'resize'", "a list"});
}

TEST(RecipeArgsTest, RunArgsRejectsAddThatIsNotAnObject) {
  Recipe r = MustParse(kNeptune);
  ExpectInvalid(RunArgs(r, O(R"({"resize": {"add": [1]}})")).status(), {"'add' of node 'resize'"});
}

TEST(RecipeArgsTest, RunArgsRejectsRemoveOfWrongKind) {
  Recipe r = MustParse(kNeptune);
  ExpectInvalid(RunArgs(r, O(R"({"decode": {"remove": "size"}})")).status(),
                {"'remove' of node 'decode'"});
}

TEST(RecipeArgsTest, RunArgsRejectsUnknownOverrideKey) {
  Recipe r = MustParse(kNeptune);
  ExpectInvalid(RunArgs(r, O(R"({"decode": {"set": {"mode": "bgr"}}})")).status(),
                {"node 'decode'", "'set'"});
}

// --- writing: berth's form and Neptune's ---

// A recipe with every feature: numbered and named nodes, channels, implicit edges, tuples.
constexpr std::string_view kFull = R"({"name": "full", "url": "full-url",
  "graph": {"nodes": ["a", {"type": "b", "name": "bee"}, "a", {"type": "c"}],
            "edges": [[0, "bee", "frames"], [1, 2], ["a_2", 3, "x"], [3, 1], [3, -1]]},
  "args": [{"t": {"__tuple__": true, "items": [1, 2]}}, {"n": 1}, null, {"l": [3]}],
  "handlers": {"GET": "handlers.one", "post": ["handlers.a", "handlers.b"]}})";

void ExpectSameShape(const Recipe& a, const Recipe& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.url, b.url);
  EXPECT_EQ(Types(a), Types(b));
  EXPECT_EQ(Names(a), Names(b));
  EXPECT_EQ(Edges(a), Edges(b));
  EXPECT_EQ(a.handlers, b.handlers);
}

TEST(RecipeWriteTest, BerthFormRoundTrips) {
  Recipe r = MustParse(kFull);
  Recipe again = MustParseValue(json::value(RecipeToJson(r)));
  ExpectSameShape(again, r);
  EXPECT_EQ(MustRunArgs(again, {}), MustRunArgs(r, {}));
}

TEST(RecipeWriteTest, BerthFormLeavesOutImplicitEdgesAndTuples) {
  Recipe r = MustParse(kFull);
  ASSERT_TRUE(r.edges.front().implicit);
  json::object j = RecipeToJson(r);
  EXPECT_EQ(j.at("graph").at("edges"),
            J(R"([[0, 1, "frames"], [1, 2, null], [2, 3, "x"], [3, 1, null], [3, -1, null]])"));
  EXPECT_EQ(j.at("args"), J(R"([{"t": [1, 2]}, {"n": 1}, {}, {"l": [3]}])"));
  EXPECT_EQ(j.at("handlers"),
            J(R"({"get": ["handlers.one"], "post": ["handlers.a", "handlers.b"]})"));
  EXPECT_EQ(j.at("name"), "full");
  EXPECT_EQ(j.at("url"), "full-url");
}

TEST(RecipeWriteTest, WritesAutoNamedNodesAsTypes) {
  Recipe r = MustParse(kFull);
  EXPECT_EQ(RecipeToJson(r).at("graph").at("nodes"),
            J(R"(["a", {"type": "b", "name": "bee"}, "a", "c"])"));
}

TEST(RecipeWriteTest, NeptuneFormKeepsTupleHints) {
  Recipe r = MustParse(kFull);
  json::object j = RecipeToNeptune(r);
  EXPECT_EQ(j.at("graph").at("edges"), J(R"([
      {"__tuple__": true, "items": [0, 1, "frames"]},
      {"__tuple__": true, "items": [1, 2, null]},
      {"__tuple__": true, "items": [2, 3, "x"]},
      {"__tuple__": true, "items": [3, 1, null]},
      {"__tuple__": true, "items": [3, -1, null]}])"));
  EXPECT_EQ(j.at("args"),
            J(R"([{"t": {"__tuple__": true, "items": [1, 2]}}, {"n": 1}, {}, {"l": [3]}])"));
}

TEST(RecipeWriteTest, NeptuneFormLeavesOutImplicitEdges) {
  Recipe r = MustParse(WithGraph(R"(["a", "b"])", "[[0, 1]]"));
  ASSERT_EQ(r.edges.size(), 3u);
  EXPECT_EQ(RecipeToNeptune(r).at("graph").at("edges"),
            J(R"([{"__tuple__": true, "items": [0, 1, null]}])"));
}

TEST(RecipeWriteTest, NeptuneFormRoundTrips) {
  Recipe r = MustParse(kFull);
  Recipe again = MustParseValue(json::value(RecipeToNeptune(r)));
  ExpectSameShape(again, r);
  EXPECT_EQ(Args(again), Args(r));  // tuple hints and all
}

TEST(RecipeWriteTest, NeptuneInputRoundTripsThroughNeptuneForm) {
  Recipe r = MustParse(kNeptune);
  json::object j = RecipeToNeptune(r);
  Recipe again = MustParseValue(json::value(j));
  ExpectSameShape(again, r);
  EXPECT_EQ(Args(again), Args(r));
  EXPECT_EQ(RecipeToNeptune(again), j);
}

TEST(RecipeWriteTest, RoundTripKeepsExplicitNamesThatLookNumbered) {
  // Named nodes do not take a number, so "a_2" here is a name of its own choosing.
  Recipe r = MustParse(WithGraph(R"([{"type": "a", "name": "z"}, {"type": "a", "name": "a_2"}])",
                                 R"([["z", "a_2"]])"));
  EXPECT_EQ(Names(r), (Strings{"z", "a_2"}));
  EXPECT_EQ(Names(MustParseValue(json::value(RecipeToJson(r)))), (Strings{"z", "a_2"}));
  EXPECT_EQ(Names(MustParseValue(json::value(RecipeToNeptune(r)))), (Strings{"z", "a_2"}));
}

TEST(RecipeWriteTest, RoundTripAfterNamedNodeOfSameType) {
  Recipe r = MustParse(WithGraph(R"([{"type": "a", "name": "x"}, "a", "a"])", "[[0, 1], [1, 2]]"));
  EXPECT_EQ(Names(r), (Strings{"x", "a", "a_2"}));
  json::object j = RecipeToJson(r);
  EXPECT_EQ(j.at("graph").at("nodes"), J(R"([{"type": "a", "name": "x"}, "a", "a"])"));
  EXPECT_EQ(Names(MustParseValue(json::value(j))), Names(r));
}

TEST(RecipeWriteTest, DefaultRecipesRoundTrip) {
  for (const Recipe& r : DefaultRecipes()) {
    ExpectSameShape(MustParseValue(json::value(RecipeToJson(r))), r);
    ExpectSameShape(MustParseValue(json::value(RecipeToNeptune(r))), r);
  }
}

// --- handlers ---

TEST(RecipeHandlersTest, ChainAsString) {
  Recipe r = MustParse(WithGraph(R"(["a"])", "[]", R"("handlers": {"get": "ping"})"));
  EXPECT_EQ(r.handlers, (Handlers{{"get", {"ping"}}}));
}

TEST(RecipeHandlersTest, ChainAsListKeepsOrder) {
  Recipe r =
      MustParse(WithGraph(R"(["a"])", "[]", R"("handlers": {"patch": ["h.z", "h.a", "h.m"]})"));
  EXPECT_EQ(r.handlers, (Handlers{{"patch", {"h.z", "h.a", "h.m"}}}));
}

TEST(RecipeHandlersTest, MethodNamesAreCaseInsensitive) {
  Recipe r = MustParse(
      WithGraph(R"(["a"])", "[]", R"("handlers": {"GET": "g", "Post": ["p"], "pAtCh": "x"})"));
  EXPECT_EQ(r.handlers, (Handlers{{"get", {"g"}}, {"post", {"p"}}, {"patch", {"x"}}}));
}

TEST(RecipeHandlersTest, NullChainIsLeftOut) {
  Recipe r = MustParse(WithGraph(R"(["a"])", "[]", R"("handlers": {"get": "g", "post": null})"));
  EXPECT_EQ(r.handlers, (Handlers{{"get", {"g"}}}));
}

TEST(RecipeHandlersTest, ChainGivenAsTuple) {
  Recipe r = MustParse(WithGraph(
      R"(["a"])", "[]", R"("handlers": {"get": {"__tuple__": true, "items": ["a", "b"]}})"));
  EXPECT_EQ(r.handlers, (Handlers{{"get", {"a", "b"}}}));
}

// --- errors ---

TEST(RecipeErrorTest, NotAnObject) {
  ExpectParseError(R"(["ping"])", {"a recipe is a JSON object", "a list"});
}

TEST(RecipeErrorTest, MissingName) {
  ExpectParseError(R"({"graph": {"nodes": ["a"]}})", {"'name' is missing"});
}

TEST(RecipeErrorTest, EmptyName) {
  ExpectParseError(R"({"name": "", "graph": {"nodes": ["a"]}})", {"'name' is missing"});
}

TEST(RecipeErrorTest, NameNotAString) {
  ExpectParseError(R"({"name": 7, "graph": {"nodes": ["a"]}})",
                   {"'name' must be a string", "an integer"});
}

TEST(RecipeErrorTest, NameOfTwelveCharacters) {
  ExpectParseError(R"({"name": "abcdefghijkl", "graph": {"nodes": ["a"]}})",
                   {"name 'abcdefghijkl'", "12 characters", "under 12"});
}

TEST(RecipeErrorTest, NameOfElevenCharactersIsFine) {
  Recipe r = MustParse(R"({"name": "abcdefghijk", "graph": {"nodes": ["a"]}})");
  EXPECT_EQ(r.name, "abcdefghijk");
  EXPECT_EQ(r.url, "abcdefghijk");
}

TEST(RecipeErrorTest, NameWithBadCharacters) {
  ExpectParseError(R"({"name": "pi ng", "graph": {"nodes": ["a"]}})",
                   {"name 'pi ng'", "only letters, digits, '_' and '-'"});
  ExpectParseError(R"({"name": "a/b", "graph": {"nodes": ["a"]}})", {"name 'a/b'"});
  ExpectParseError(R"({"name": "a.b", "graph": {"nodes": ["a"]}})", {"name 'a.b'"});
}

TEST(RecipeErrorTest, NameWithDashAndUnderscoreIsFine) {
  EXPECT_EQ(MustParse(R"({"name": "a-B_9", "graph": {"nodes": ["a"]}})").name, "a-B_9");
}

TEST(RecipeErrorTest, UrlTooLong) {
  ExpectParseError(R"({"name": "ok", "url": "abcdefghijklm", "graph": {"nodes": ["a"]}})",
                   {"url 'abcdefghijklm'", "13 characters"});
}

TEST(RecipeErrorTest, UrlWithBadCharacters) {
  ExpectParseError(R"({"name": "ok", "url": "a/b", "graph": {"nodes": ["a"]}})", {"url 'a/b'"});
}

TEST(RecipeErrorTest, MissingGraph) {
  ExpectParseError(R"({"name": "ok"})", {"needs a 'graph' object"});
}

TEST(RecipeErrorTest, GraphNotAnObject) {
  ExpectParseError(R"({"name": "ok", "graph": ["a"]})", {"needs a 'graph' object"});
}

TEST(RecipeErrorTest, EmptyNodes) {
  ExpectParseError(WithGraph("[]", "[]"), {"graph needs 'nodes'"});
}

TEST(RecipeErrorTest, MissingNodes) {
  ExpectParseError(R"({"name": "ok", "graph": {"edges": []}})", {"graph needs 'nodes'"});
}

TEST(RecipeErrorTest, NodeOfWrongKind) {
  ExpectParseError(WithGraph(R"(["a", 3])", "[]"), {"node 1 must be a node type", "an integer"});
  ExpectParseError(WithGraph(R"([{"name": "x"}])", "[]"), {"node 0 must be a node type"});
}

TEST(RecipeErrorTest, NodeWithEmptyType) {
  ExpectParseError(WithGraph(R"(["a", ""])", "[]"), {"node 1 has an empty type"});
}

TEST(RecipeErrorTest, EdgeToMissingNodeIndex) {
  ExpectParseError(WithGraph(R"(["a", "b"])", "[[0, 1], [1, 5]]"),
                   {"edge 1 names node 5 as its sink", "2 nodes"});
}

TEST(RecipeErrorTest, EdgeFromMissingNodeIndex) {
  ExpectParseError(WithGraph(R"(["a"])", "[[-2, 0]]"),
                   {"edge 0 names node -2 as its source", "1 node", "-1 is START"});
}

TEST(RecipeErrorTest, EdgeToHugeNodeIndex) {
  // Beyond int64: must not wrap around to -1 (END).
  ExpectParseError(WithGraph(R"(["a"])", "[[0, 18446744073709551615]]"),
                   {"edge 0 names node", "as its sink"});
}

TEST(RecipeErrorTest, EdgeToMissingNodeName) {
  ExpectParseError(WithGraph(R"(["a", "b"])", R"([["a", "c"]])"),
                   {"edge 0 names 'c' as its sink", "no node has that name"});
}

TEST(RecipeErrorTest, EdgeByTypeOfRenamedNode) {
  // A named node is not found by its type.
  ExpectParseError(WithGraph(R"([{"type": "a", "name": "x"}])", R"([["a", -1]])"),
                   {"edge 0 names 'a' as its source"});
}

TEST(RecipeErrorTest, EdgeOfWrongShape) {
  ExpectParseError(WithGraph(R"(["a"])", "[[0]]"), {"edge 0 must be [source, sink]"});
  ExpectParseError(WithGraph(R"(["a"])", "[[0, -1, null, 1]]"), {"edge 0 must be [source, sink]"});
  ExpectParseError(WithGraph(R"(["a"])", R"(["a"])"), {"edge 0 must be [source, sink]"});
}

TEST(RecipeErrorTest, EdgesNotAList) {
  ExpectParseError(WithGraph(R"(["a"])", R"("a")"), {"'edges' must be a list", "a string"});
}

TEST(RecipeErrorTest, EdgeEndOfWrongKind) {
  ExpectParseError(WithGraph(R"(["a"])", "[[0, true]]"),
                   {"edge 0: the sink must be a node index or name", "a boolean"});
}

TEST(RecipeErrorTest, EdgeChannelNotAString) {
  ExpectParseError(WithGraph(R"(["a"])", "[[0, -1, 4]]"),
                   {"edge 0: the channel must be a string", "an integer"});
}

TEST(RecipeErrorTest, StartToEndEdge) {
  ExpectParseError(WithGraph(R"(["a"])", "[[-1, 0], [-1, -1]]"),
                   {"edge 1 goes from START straight to END"});
}

TEST(RecipeErrorTest, TwoChannelsForOneSource) {
  ExpectParseError(WithGraph(R"(["a", "b"])", R"([[0, 1, "x"], [0, -1, "y"], [1, -1]])"),
                   {"a publishes on channels 'x' and 'y'", "exactly one channel"});
}

TEST(RecipeErrorTest, TwoChannelsForStart) {
  ExpectParseError(WithGraph(R"(["a", "b"])", R"([[-1, 0, "x"], [-1, 1, "y"], [0, 1]])"),
                   {"START publishes on channels 'x' and 'y'"});
}

TEST(RecipeErrorTest, NodeWithoutPathFromStart) {
  ExpectParseError(WithGraph(R"(["a", "b"])", "[[0, -1], [1, -1]]"),
                   {"node 1 (b) has no path from START"});
}

TEST(RecipeErrorTest, NodeOnlyFedByItselfHasNoPathFromStart) {
  ExpectParseError(WithGraph(R"(["a", "loop"])", "[[0, -1], [1, 1], [1, 0]]"),
                   {"node 1 (loop) has no path from START"});
}

TEST(RecipeErrorTest, NodeWithoutPathToEnd) {
  ExpectParseError(WithGraph(R"(["a", "b"])", "[[-1, 0], [0, 1], [0, -1]]"),
                   {"node 1 (b) has no path to END"});
}

TEST(RecipeErrorTest, NodesAreNotChainedImplicitly) {
  // Only START -> first and last -> END are implied; the nodes between need edges.
  ExpectParseError(WithGraph(R"(["a", "b"])", "[]"), {"node 0 (a) has no path to END"});
}

TEST(RecipeErrorTest, DuplicateExplicitNodeNames) {
  ExpectParseError(
      WithGraph(R"([{"type": "a", "name": "x"}, {"type": "b", "name": "x"}])", "[[0, 1]]"),
      {"two nodes are named 'x'"});
}

TEST(RecipeErrorTest, ExplicitNameClashingWithTypeName) {
  ExpectParseError(WithGraph(R"(["a", {"type": "b", "name": "a"}])", "[[0, 1]]"),
                   {"two nodes are named 'a'"});
}

TEST(RecipeErrorTest, ArgsListOfWrongLength) {
  ExpectParseError(WithGraph(R"(["a", "b"])", "[[0, 1]]", R"("args": [{}])"),
                   {"'args' has 1 entries for 2 nodes"});
  ExpectParseError(WithGraph(R"(["a"])", "[]", R"("args": [{}, {}])"),
                   {"'args' has 2 entries for 1 nodes"});
}

TEST(RecipeErrorTest, ArgNotAnObject) {
  ExpectParseError(WithGraph(R"(["a", "b"])", "[[0, 1]]", R"("args": [{}, [1]])"),
                   {"args of node 1 (b) must be an object", "a list"});
}

TEST(RecipeErrorTest, ArgsOfWrongKind) {
  ExpectParseError(WithGraph(R"(["a"])", "[]", R"("args": "n=1")"),
                   {"'args' must be a list of objects or one object", "a string"});
}

TEST(RecipeErrorTest, MethodDelete) {
  ExpectParseError(WithGraph(R"(["a"])", "[]", R"("handlers": {"delete": "h"})"),
                   {"handlers for 'delete'", "only get, post and patch"});
}

TEST(RecipeErrorTest, MethodErrorNamesMethodAsGiven) {
  ExpectParseError(WithGraph(R"(["a"])", "[]", R"("handlers": {"PUT": "h"})"),
                   {"handlers for 'PUT'"});
}

TEST(RecipeErrorTest, EmptyHandlerChain) {
  ExpectParseError(WithGraph(R"(["a"])", "[]", R"("handlers": {"get": []})"),
                   {"handlers for 'get' is an empty list"});
}

TEST(RecipeErrorTest, EmptyHandlerNameAsString) {
  ExpectParseError(WithGraph(R"(["a"])", "[]", R"("handlers": {"Post": ""})"),
                   {"handlers for 'post'", "empty"});
}

TEST(RecipeErrorTest, HandlerChainWithEmptyOrNonStringName) {
  ExpectParseError(WithGraph(R"(["a"])", "[]", R"("handlers": {"get": ["h", ""]})"),
                   {"handlers for 'get' must be names of handlers"});
  ExpectParseError(WithGraph(R"(["a"])", "[]", R"("handlers": {"get": ["h", 1]})"),
                   {"handlers for 'get' must be names of handlers"});
}

TEST(RecipeErrorTest, HandlerChainOfWrongKind) {
  ExpectParseError(WithGraph(R"(["a"])", "[]", R"("handlers": {"get": 1})"),
                   {"handlers for 'get' must be a handler name or a list", "an integer"});
}

TEST(RecipeErrorTest, HandlersNotAnObject) {
  ExpectParseError(WithGraph(R"(["a"])", "[]", R"("handlers": ["get"])"),
                   {"'handlers' must be an object keyed by method", "a list"});
}

// timeout and processes are every node's arguments: a value no node can use is refused where
// the recipe names it, at construct or in a start's overrides, naming the node.
TEST(RecipeErrorTest, TimeoutOutOfRange) {
  ExpectParseError(WithGraph(R"(["a"])", "[]", R"("args": {"timeout": 1e95})"),
                   {"node 'a'", "args 'timeout' must be a number of milliseconds"});
  ExpectParseError(WithGraph(R"(["a", "b"])", "[[0, 1]]", R"("args": [{}, {"timeout": "5"}])"),
                   {"node 'b'", "'timeout'"});
}

TEST(RecipeErrorTest, ProcessesOutOfRange) {
  ExpectParseError(WithGraph(R"(["a"])", "[]", R"("args": {"processes": 257})"),
                   {"node 'a'", "args 'processes' must be a number from 0 to 256"});
  ExpectParseError(WithGraph(R"(["a"])", "[]", R"("args": {"processes": -1})"), {"'processes'"});
}

TEST(RecipeArgsTest, CommonArgsInRangeAreKept) {
  Recipe r = MustParse(WithGraph(R"(["a"])", "[]", R"("args": {"timeout": -5, "processes": 256})"));
  EXPECT_EQ(Args(r), (std::vector<json::object>{O(R"({"timeout": -5, "processes": 256})")}));
}

TEST(RecipeArgsTest, RunArgsRejectsOverriddenTimeoutOutOfRange) {
  Recipe r = MustParse(kNeptune);
  ExpectInvalid(RunArgs(r, O(R"({"resize": {"add": {"timeout": 3e9}}})")).status(),
                {"node 'resize'", "'timeout'"});
  ExpectInvalid(RunArgs(r, O(R"({"decode": {"add": {"processes": 0.5e3}}})")).status(),
                {"node 'decode'", "'processes'"});
}

}  // namespace
}  // namespace berth
