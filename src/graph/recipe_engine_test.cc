// RecipeEngine's policy over the real supervisor, FakeLauncher, FakeClock and an in-memory
// store: what a start spawns and gives each node (inputs in edge order, args with the run's
// overrides), why a start fails (a missing node type or handler, a node that exits, no
// heartbeat), stop and destruct, crash restarts with backoff, the Neptune cache, reset and a
// daemon restart. No thread and no sleep: each Pump() is one pass of the supervisor and one of
// the engine. Heartbeats need real nodes; tests/integration/test_recipes.py covers those.
#include "graph/recipe_engine.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>

#include "common/fake_clock.h"
#include "common/file_util.h"
#include "graph/node_io.h"
#include "graph/wire.h"
#include "runtime/fake_launcher.h"

namespace berth {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

class RecipeEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/berth-recipe-test-XXXXXX";
    root_ = mkdtemp(tmpl);
    fs::create_directories(root_ + "/instances");
    auto s = OpenStore({"sqlite::memory:"});
    ASSERT_TRUE(s.ok());
    store_ = std::move(*s);
    ASSERT_TRUE(store_->CreateProject("default").ok());
    ASSERT_TRUE(store_->CreateProject("other").ok());
    Boot();
  }
  void TearDown() override {
    engine_.reset();
    sup_.reset();
    fs::remove_all(root_);
  }

  // A daemon start: a new supervisor and a new engine over the same store and data dir.
  void Boot() {
    engine_.reset();
    sup_.reset();
    SupervisorOptions so;
    so.instances_dir = root_ + "/instances";
    so.threads = false;
    so.start_parallelism = 1;
    SupervisorHooks h;
    h.task_ended = [this](const TaskStatus& t) {
      if (engine_) {
        engine_->OnTaskEnded(t);
      }
    };
    sup_ = std::make_unique<Supervisor>(launcher_, clock_, so, h);
    sup_->Start();
    RecipeEngineOptions o;
    o.data_dir = root_;
    o.node_program = "/usr/lib/berth/berth-node";
    o.threads = false;
    o.context = [](const std::string& project) -> Result<TaskContext> {
      TaskContext c;
      c.berth_url = "http://127.0.0.1:1";
      c.token = "tok-" + project;
      c.base_env = {{"PATH", "/usr/bin:/bin"}};
      return c;
    };
    o.notify = [this](const NotificationRecord& n) { notes_.push_back(n); };
    o.unpacked_path = [this](const std::string& digest) { return root_ + "/bundles/" + digest; };
    engine_ = std::make_unique<RecipeEngine>(*store_, *sup_, clock_, o);
    ASSERT_TRUE(engine_->Start().ok());
  }

  void Pump(int times = 3) {
    for (int i = 0; i < times; ++i) {
      sup_->Step();
      engine_->Step();
    }
  }

  RecipeView Construct(const std::string& text, const std::string& project = "default") {
    auto r = engine_->Construct(project, json::parse(text));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : RecipeView{};
  }
  RecipeView Get(const std::string& name, const std::string& project = "default") {
    auto r = engine_->Get(project, name);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : RecipeView{};
  }
  RecipeView Start(const std::string& name, const std::string& overrides = "{}") {
    auto r = engine_->StartRecipe("default", name, json::parse(overrides).as_object());
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    Pump();
    return Get(name);
  }

  // The running node tasks' directories, in start order.
  std::vector<std::string> Running() {
    std::vector<std::string> out;
    for (const auto& d : launcher_.running()) {
      if (fs::path(d).filename().string().starts_with("node-")) {
        out.push_back(d);
      }
    }
    return out;
  }
  // BERTH_NODE of the node task in `dir`.
  json::object NodeConfig(const std::string& dir) {
    auto spec = launcher_.SpecOf(dir);
    EXPECT_TRUE(spec.has_value());
    for (const auto& e : spec ? spec->env : std::vector<std::string>{}) {
      if (e.starts_with(std::string(wire::kNodeEnv) + "=")) {
        return json::parse(e.substr(std::string(wire::kNodeEnv).size() + 1)).as_object();
      }
    }
    ADD_FAILURE() << "no BERTH_NODE in " << dir;
    return {};
  }
  // The running task of node `index` of a recipe.
  std::string NodeDir(const std::string& recipe, int index) {
    std::string prefix = "node-default-" + recipe + "-" + std::to_string(index) + "-";
    for (const auto& d : Running()) {
      if (fs::path(d).filename().string().starts_with(prefix)) {
        return d;
      }
    }
    return "";
  }

  std::string root_;
  FakeLauncher launcher_;
  FakeClock clock_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Supervisor> sup_;
  std::unique_ptr<RecipeEngine> engine_;
  std::vector<NotificationRecord> notes_;
};

const char kDiamond[] = R"({"name": "diamond", "url": "dia",
  "graph": {"nodes": ["passthrough", "ping", "passthrough", "merge"],
            "edges": [[0, 1], [0, 2], [2, 3], [1, 3]]},
  "args": [{}, {"timeout": 100}, {}, {"keep": 1}],
  "handlers": {"get": "ping"}})";

TEST_F(RecipeEngineTest, AFreshDataDirHasTheDefaultPingRecipeStopped) {
  auto list = engine_->List("default");
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].record.name, "ping");
  EXPECT_EQ(list[0].record.url, "ping");
  EXPECT_EQ(list[0].state, RecipeState::kStopped);
  EXPECT_TRUE(engine_->List("other").empty());  // Neptune's defaults belong to `default`
  EXPECT_TRUE(fs::exists(root_ + "/neptune/recipes/recipe_ping.bak"));
}

TEST_F(RecipeEngineTest, AStartSpawnsEveryNodeWithItsInputsInEdgeOrderAndItsArgs) {
  Construct(kDiamond);
  RecipeView v = Start("diamond");
  EXPECT_EQ(v.state, RecipeState::kStarting) << v.message;
  ASSERT_EQ(Running().size(), 4u);
  json::object merge = NodeConfig(NodeDir("diamond", 3));
  EXPECT_EQ(merge.at("type").as_string(), "merge");
  EXPECT_EQ(merge.at("index").as_int64(), 3);
  // Inputs in the order the edges into merge were added: [2, 3] first, then [1, 3].
  const auto& inputs = merge.at("inputs").as_array();
  ASSERT_EQ(inputs.size(), 2u);
  EXPECT_TRUE(std::string(inputs[0].as_string()).ends_with("/2")) << inputs[0];
  EXPECT_TRUE(std::string(inputs[1].as_string()).ends_with("/1")) << inputs[1];
  EXPECT_EQ(merge.at("args").as_object().at("keep").as_int64(), 1);
  json::object first = NodeConfig(NodeDir("diamond", 0));
  ASSERT_EQ(first.at("inputs").as_array().size(), 1u);
  EXPECT_TRUE(std::string(first.at("inputs").as_array()[0].as_string()).ends_with("/start"));
  auto spec = launcher_.SpecOf(NodeDir("diamond", 1));
  ASSERT_TRUE(spec.has_value());
  EXPECT_EQ(spec->argv, (std::vector<std::string>{"/usr/lib/berth/berth-node", "ping"}));
}

TEST_F(RecipeEngineTest, OverridesChangeOneRunOnly) {
  Construct(kDiamond);
  Start("diamond", R"({"ping": {"add": {"timeout": 900, "extra": "x"}}})");
  json::object ping = NodeConfig(NodeDir("diamond", 1));
  EXPECT_EQ(ping.at("args").as_object().at("timeout").as_int64(), 900);
  EXPECT_EQ(ping.at("args").as_object().at("extra").as_string(), "x");
  ASSERT_TRUE(engine_->StopRecipe("default", "diamond").ok());
  Pump();
  EXPECT_TRUE(Running().empty());
  Start("diamond");
  ping = NodeConfig(NodeDir("diamond", 1));
  EXPECT_EQ(ping.at("args").as_object().at("timeout").as_int64(), 100);
  EXPECT_FALSE(ping.at("args").as_object().contains("extra"));
  // The stored recipe never changed.
  EXPECT_EQ(json::serialize(Get("diamond").recipe.nodes[1].args), R"({"timeout":100})");
}

TEST_F(RecipeEngineTest, AnOverrideOfAnUnknownNodeIsRefusedAndStartsNothing) {
  Construct(kDiamond);
  auto r = engine_->StartRecipe("default", "diamond",
                                json::parse(R"({"nosuch": {"add": {"a": 1}}})").as_object());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("nosuch"), std::string::npos) << r.status().message();
  Pump();
  EXPECT_TRUE(Running().empty());
  EXPECT_EQ(Get("diamond").state, RecipeState::kStopped);
}

TEST_F(RecipeEngineTest, AMissingNodeTypeOrHandlerMakesTheStartDeadNamingItAndNotifies) {
  Construct(R"({"name": "fpga", "graph": {"nodes": ["ping", "fpga_resnet"], "edges": [[0, 1]]},
                "handlers": {"get": ["ping"], "post": ["nosuchthing"]}})");
  RecipeView v = Start("fpga");
  EXPECT_EQ(v.state, RecipeState::kDead);
  EXPECT_NE(v.message.find("fpga_resnet"), std::string::npos) << v.message;
  EXPECT_NE(v.message.find("nosuchthing"), std::string::npos) << v.message;
  EXPECT_TRUE(Running().empty()) << "nothing is spawned for a start that cannot succeed";
  ASSERT_EQ(notes_.size(), 1u);
  EXPECT_EQ(notes_[0].severity, "CRITICAL");
  EXPECT_NE(notes_[0].message.find("fpga_resnet"), std::string::npos);
  // DEAD for a reason that a restart cannot fix: not restarted by itself.
  clock_.Advance(10s);
  Pump();
  EXPECT_EQ(Get("fpga").state, RecipeState::kDead);
  EXPECT_TRUE(Running().empty());
}

TEST_F(RecipeEngineTest, ANodeThatExitsWhileStartingMakesTheStartDeadWithItsExit) {
  Construct(kDiamond);
  Start("diamond");
  launcher_.Exit(NodeDir("diamond", 2), 3);
  Pump();
  RecipeView v = Get("diamond");
  EXPECT_EQ(v.state, RecipeState::kDead);
  EXPECT_NE(v.message.find("node 2 (passthrough_2)"), std::string::npos) << v.message;
  EXPECT_NE(v.message.find("exited with code 3"), std::string::npos) << v.message;
  EXPECT_TRUE(Running().empty()) << "the other nodes are stopped with it";
}

TEST_F(RecipeEngineTest, NoHeartbeatWithinTheStartTimeoutIsDead) {
  Construct(kDiamond);
  Start("diamond");
  clock_.Advance(16s);
  Pump();
  RecipeView v = Get("diamond");
  EXPECT_EQ(v.state, RecipeState::kDead);
  EXPECT_NE(v.message.find("no heartbeat crossed the graph"), std::string::npos) << v.message;
  EXPECT_NE(v.message.find("START -> passthrough"), std::string::npos) << v.message;
  EXPECT_TRUE(Running().empty());
}

TEST_F(RecipeEngineTest, StartingTwiceIsRefusedAndStopStopsEveryNodeAtOnce) {
  Construct(kDiamond);
  Start("diamond");
  auto again = engine_->StartRecipe("default", "diamond", {});
  EXPECT_EQ(again.status().code(), StatusCode::kFailedPrecondition);
  auto stopped = engine_->StopRecipe("default", "diamond");
  ASSERT_TRUE(stopped.ok());
  EXPECT_EQ(stopped->state, RecipeState::kStopped);
  Pump();
  EXPECT_TRUE(Running().empty());
  auto rec = store_->GetRecipe("default", "diamond");
  ASSERT_TRUE(rec.ok());
  EXPECT_FALSE(rec->started);
}

TEST_F(RecipeEngineTest, DestructStopsTheNodesRemovesTheCacheAndTheNameIsFreeAtOnce) {
  Construct(kDiamond);
  Start("diamond");
  ASSERT_TRUE(fs::exists(root_ + "/neptune/recipes/recipe_diamond.bak"));
  ASSERT_TRUE(engine_->Destruct("default", "diamond").ok());
  Pump();
  EXPECT_TRUE(Running().empty());
  EXPECT_FALSE(fs::exists(root_ + "/neptune/recipes/recipe_diamond.bak"));
  EXPECT_EQ(engine_->Get("default", "diamond").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(engine_->Destruct("default", "diamond").code(), StatusCode::kNotFound);
  Construct(kDiamond);
  EXPECT_EQ(Get("diamond").state, RecipeState::kStopped);
}

TEST_F(RecipeEngineTest, ATakenNameOrUrlIsInvalidAndNamesIt) {
  Construct(kDiamond);
  auto same = engine_->Construct("default", json::parse(kDiamond));
  EXPECT_EQ(same.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(same.status().message().find("diamond"), std::string::npos);
  auto url = engine_->Construct(
      "default", json::parse(R"({"name": "other", "url": "dia", "graph": {"nodes": ["ping"]}})"));
  EXPECT_EQ(url.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(url.status().message().find("dia"), std::string::npos) << url.status().message();
  // Another project may use both.
  EXPECT_TRUE(engine_->Construct("other", json::parse(kDiamond)).ok());
}

// The test plays the node itself with the C++ node SDK over the real channels: heartbeats
// cross the graph, so the recipe gets STARTED without a process.
TEST_F(RecipeEngineTest, AHeartbeatAtEndStartsItAndANodeCrashIsRestartedWithBackoffAndCounted) {
  Construct(R"({"name": "solo", "graph": {"nodes": ["ping"]}, "handlers": {"get": "ping"}})");
  Start("solo");
  std::string dir = NodeDir("solo", 0);
  ASSERT_FALSE(dir.empty());
  auto cfg = ParseNodeConfig(json::serialize(NodeConfig(dir)));
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  auto io = NodeIo::FromConfig(*cfg);
  ASSERT_TRUE(io.ok()) << io.status().ToString();
  for (int i = 0; i < 200 && Get("solo").state != RecipeState::kStarted; ++i) {
    clock_.Advance(20ms);  // the next starting heartbeat is due
    Pump(1);
    (*io)->Idle(5ms);  // forwards what arrived
    Pump(1);
  }
  ASSERT_EQ(Get("solo").state, RecipeState::kStarted) << Get("solo").message;

  // A request goes through the graph: the "node" answers it.
  std::optional<ServeAnswer> answer;
  engine_->Serve("default", "solo", ServeRequest{"GET", json::object{}},
                 [&](ServeAnswer a) { answer = std::move(a); });
  auto m = (*io)->Get(0, 2000ms);
  ASSERT_TRUE(m.has_value());
  (*io)->Put(*m, R"({"answered": true})");
  for (int i = 0; i < 200 && !answer; ++i) {
    Pump(1);
    usleep(1000);
  }
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->status, 200);
  EXPECT_EQ(answer->body, R"({"answered":true})");

  // The node is killed: restarted after the backoff, counted, the recipe stays STARTED.
  io->reset();
  launcher_.Exit(dir, -1, 9);
  Pump();
  RecipeView v = Get("solo");
  EXPECT_EQ(v.state, RecipeState::kStarted);
  ASSERT_EQ(v.nodes.size(), 1u);
  EXPECT_EQ(v.nodes[0].restarts, 1);
  EXPECT_EQ(v.nodes[0].last_exit, "killed by signal 9");
  EXPECT_EQ(v.nodes[0].state, "restarting");
  EXPECT_TRUE(NodeDir("solo", 0).empty()) << "not before its backoff";
  clock_.Advance(300ms);
  Pump();
  std::string again = NodeDir("solo", 0);
  EXPECT_FALSE(again.empty());
  EXPECT_NE(again, dir);
  EXPECT_EQ(Get("solo").nodes[0].state, "running");

  // No heartbeat reaches END for 5 s (the node is gone): DEAD, notified, started again.
  clock_.Advance(6s);
  Pump();
  v = Get("solo");
  EXPECT_EQ(v.state, RecipeState::kDead);
  EXPECT_NE(v.message.find("no heartbeat reached END for 5 s"), std::string::npos) << v.message;
  ASSERT_FALSE(notes_.empty());
  EXPECT_NE(notes_.back().message.find("solo is DEAD"), std::string::npos);
  clock_.Advance(2s);
  Pump();
  EXPECT_EQ(Get("solo").state, RecipeState::kStarting) << Get("solo").message;
}

TEST_F(RecipeEngineTest, StartedRecipesStartAgainAfterADaemonRestartWithTheirOverrides) {
  Construct(kDiamond);
  Start("diamond", R"({"merge": {"add": {"keep": 7}}})");
  Construct(R"({"name": "idle", "graph": {"nodes": ["ping"]}})");
  Boot();
  Pump();
  EXPECT_EQ(Get("diamond").state, RecipeState::kStarting);
  EXPECT_EQ(Get("idle").state, RecipeState::kStopped);
  std::string merge = NodeDir("diamond", 3);
  ASSERT_FALSE(merge.empty()) << "the started recipe's nodes run again";
  EXPECT_EQ(NodeConfig(merge).at("args").as_object().at("keep").as_int64(), 7);
  // The earlier daemon's node tasks were cancelled, not left beside the new ones.
  EXPECT_EQ(Running().size(), 4u);
}

TEST_F(RecipeEngineTest, HandWrittenNeptuneCacheFilesAreExactlyTheDefaultProjectsRecipes) {
  engine_.reset();
  fs::remove_all(root_ + "/neptune/recipes");
  fs::create_directories(root_ + "/neptune/recipes");
  std::ofstream(root_ + "/neptune/recipes/recipe_mine.bak")
      << R"({"name": "mine", "url": "mine", "graph": {"nodes": ["passthrough", "ping"],
            "edges": [{"__tuple__": true, "items": [0, 1, null]}]},
            "args": [{"path": {"__tuple__": true, "items": ["a", "b"]}}, {}],
            "handlers": {"get": ["handlers.ping_handler"]}})";
  Boot();
  auto list = engine_->List("default");
  ASSERT_EQ(list.size(), 1u) << "the default ping is not brought back beside them";
  EXPECT_EQ(list[0].record.name, "mine");
  EXPECT_EQ(list[0].recipe.nodes.size(), 2u);
}

TEST_F(RecipeEngineTest, ADestroyedDefaultStaysDestroyedUntilReset) {
  ASSERT_TRUE(engine_->Destruct("default", "ping").ok());
  Boot();
  EXPECT_TRUE(engine_->List("default").empty());
  Construct(kDiamond);
  ASSERT_TRUE(engine_->Reset("default").ok());
  auto list = engine_->List("default");
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].record.name, "ping");
  EXPECT_TRUE(fs::exists(root_ + "/neptune/recipes/recipe_ping.bak"));
  EXPECT_FALSE(fs::exists(root_ + "/neptune/recipes/recipe_diamond.bak"));
}

TEST_F(RecipeEngineTest, ServingAStoppedRecipeAnswersAtOnceThatItIsNotActive) {
  std::optional<ServeAnswer> answer;
  engine_->Serve("default", "ping", ServeRequest{"GET", json::object{}},
                 [&](ServeAnswer a) { answer = std::move(a); });
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->status, 500);
  EXPECT_EQ(answer->body, "ping is not active");
  answer.reset();
  engine_->Serve("default", "ping", ServeRequest{"PATCH", json::object{}},
                 [&](ServeAnswer a) { answer = std::move(a); });
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->status, 405);
  answer.reset();
  engine_->Serve("default", "nope", ServeRequest{"GET", json::object{}},
                 [&](ServeAnswer a) { answer = std::move(a); });
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->status, 404);
}

TEST_F(RecipeEngineTest, PushedNodeTypesRunTheirBundleAndBuiltInNamesAreRefused) {
  EXPECT_EQ(engine_->PutNodeType("default", "ping", "sha256:aa").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(engine_->PutNodeType("default", "bad name", "sha256:aa").status().code(),
            StatusCode::kInvalidArgument);
  fs::create_directories(root_ + "/bundles/sha256:aa");
  std::ofstream(root_ + "/bundles/sha256:aa/node.py") << "print('hi')\n";
  ASSERT_TRUE(engine_->PutNodeType("default", "scale", "sha256:aa").ok());
  Construct(R"({"name": "scaled", "graph": {"nodes": ["scale"]}})");
  RecipeView v = Start("scaled");
  EXPECT_EQ(v.state, RecipeState::kStarting) << v.message;
  auto spec = launcher_.SpecOf(NodeDir("scaled", 0));
  ASSERT_TRUE(spec.has_value());
  EXPECT_EQ(spec->argv, (std::vector<std::string>{"/usr/bin/python3", "node.py"}));
  EXPECT_EQ(spec->cwd, root_ + "/bundles/sha256:aa");
}

// A node started by hand reads its BERTH_NODE with the recipe's rule for the common arguments.
TEST(NodeConfigTest, CommonArgumentsAreCheckedAndNormalised) {
  auto config = [](std::string_view args) {
    return ParseNodeConfig(
        R"({"recipe": "r", "name": "n", "type": "ping", "inputs": [], "output": "ipc:///x",
            "args": )" +
        std::string(args) + "}");
  };
  auto ok = config(R"({"timeout": -7, "processes": 3})");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->timeout_ms, -1);
  EXPECT_EQ(ok->processes, 3);
  auto huge = config(R"({"timeout": 1.5e95})");
  EXPECT_EQ(huge.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(huge.status().message().find("'timeout'"), std::string::npos);
  EXPECT_EQ(config(R"({"processes": 300})").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace berth
