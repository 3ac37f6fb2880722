// RunEngine's policy over the real supervisor, FakeLauncher and an in-memory store: order of
// steps, failure and ABORTED descendants, cancel, concurrency, the queue's classes, what a
// step is given, and a daemon restart mid-run. No thread and no sleep: each Pump() is one pass
// of the supervisor and one of the engine.
#include "pipeline/run_engine.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <filesystem>
#include <fstream>

#include "common/fake_clock.h"
#include "common/file_util.h"
#include "runtime/fake_launcher.h"

namespace berth {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

PipelineStep Cmd(const std::string& name, std::vector<std::string> after = {}) {
  PipelineStep s;
  s.uuid = name;
  s.title = name;
  s.command = "true";
  s.kind = StepKind::kCommand;
  s.incoming = std::move(after);
  return s;
}

Pipeline Diamond() {
  Pipeline p;
  p.name = "diamond";
  p.uuid = "pu-1";
  p.steps = {Cmd("a"), Cmd("b", {"a"}), Cmd("c", {"a"}), Cmd("d", {"b", "c"})};
  return p;
}

class RunEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/berth-run-engine-test-XXXXXX";
    root_ = mkdtemp(tmpl);
    fs::create_directories(root_ + "/instances");
    fs::create_directories(root_ + "/project");
    auto s = OpenStore({"sqlite::memory:"});
    ASSERT_TRUE(s.ok());
    store_ = std::move(*s);
    ASSERT_TRUE(store_->CreateProject("p").ok());
    ASSERT_TRUE(store_->CreateProject("q").ok());
    Boot();
  }
  void TearDown() override {
    engine_.reset();
    sup_.reset();
    fs::remove_all(root_);
  }

  // A daemon start: a new supervisor (re-adopting tasks) and a new engine over the same store.
  void Boot(int concurrency = 2) {
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
    RunEngineOptions eo;
    eo.runs_dir = root_ + "/runs";
    eo.concurrency = concurrency;
    eo.threads = false;
    eo.publish = [this](const std::string&, const std::string& kind, const std::string&) {
      published_.push_back(kind);
    };
    engine_ = std::make_unique<RunEngine>(
        *store_, *sup_, clock_,
        [this](const std::string& project) -> Result<TaskContext> {
          TaskContext c;
          c.berth_url = "http://127.0.0.1:1";
          c.token = "tok-" + project;
          c.project_env = {{"FROM_PROJECT", "1"}, {"LAYER", "project"}};
          c.project_dir = root_ + "/project";
          c.base_env = {{"PATH", "/usr/bin:/bin"}};
          return c;
        },
        eo);
    ASSERT_TRUE(engine_->Start().ok());
  }

  void Pump(int times = 3) {
    for (int i = 0; i < times; ++i) {
      sup_->Step();
      engine_->Step();
    }
  }

  std::string Dir(const RunRecord& run, int position) {
    return root_ + "/instances/" + RunEngine::TaskId(run.id, position);
  }
  bool Started(const RunRecord& run, int position) {
    auto s = launcher_.started();
    return std::find(s.begin(), s.end(), Dir(run, position)) != s.end();
  }
  void Exit(const RunRecord& run, int position, int code) {
    launcher_.Exit(Dir(run, position), code);
    Pump();
  }
  RunRecord Get(const RunRecord& run) {
    auto r = store_->GetRun(run.id);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : RunRecord{};
  }
  std::string StepStatus(const RunRecord& run, const std::string& step) {
    for (const auto& s : Get(run).steps) {
      if (s.step == step) {
        return s.status;
      }
    }
    return "missing";
  }
  RunRecord Start(Pipeline p, RunType type = RunType::kFull, std::vector<std::string> sel = {},
                  std::string kind = "interactive", std::string project = "p") {
    RunRequest req;
    req.project = std::move(project);
    req.pipeline = std::move(p);
    req.type = type;
    req.selection = std::move(sel);
    req.kind = std::move(kind);
    auto r = engine_->StartRun(std::move(req));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    Pump();
    return r.ok() ? *r : RunRecord{};
  }

  std::string root_;
  FakeLauncher launcher_;
  FakeClock clock_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Supervisor> sup_;
  std::unique_ptr<RunEngine> engine_;
  std::vector<std::string> published_;
};

TEST_F(RunEngineTest, ADiamondRunsInOrderAndSucceeds) {
  RunRecord run = Start(Diamond());
  ASSERT_EQ(run.steps.size(), 4u);
  EXPECT_EQ(Get(run).status, kStarted);
  EXPECT_TRUE(Started(run, 0));
  EXPECT_FALSE(Started(run, 1));
  Exit(run, 0, 0);
  EXPECT_EQ(StepStatus(run, "a"), kSuccess);
  // b and c run side by side; d waits for both.
  EXPECT_TRUE(Started(run, 1));
  EXPECT_TRUE(Started(run, 2));
  EXPECT_FALSE(Started(run, 3));
  Exit(run, 1, 0);
  EXPECT_FALSE(Started(run, 3));
  Exit(run, 2, 0);
  EXPECT_TRUE(Started(run, 3));
  Exit(run, 3, 0);
  RunRecord done = Get(run);
  EXPECT_EQ(done.status, kSuccess);
  EXPECT_GT(done.finished_at, 0);
  for (const auto& s : done.steps) {
    EXPECT_EQ(s.status, kSuccess) << s.step;
    EXPECT_EQ(s.exit_code, 0);
  }
  EXPECT_EQ(launcher_.started().size(), 4u);
  EXPECT_NE(std::find(published_.begin(), published_.end(), "run"), published_.end());
}

TEST_F(RunEngineTest, AFailedStepAbortsItsDescendantsWhileOtherBranchesFinish) {
  Pipeline p;
  p.name = "branches";
  p.steps = {Cmd("a"), Cmd("b", {"a"}), Cmd("c", {"b"}), Cmd("x")};
  RunRecord run = Start(p);
  // a and x start first (plan order a, x, b, c or a, b...: find them by step).
  auto pos = [&](const std::string& step) {
    for (const auto& s : run.steps) {
      if (s.step == step) {
        return s.position;
      }
    }
    return -1;
  };
  ASSERT_TRUE(Started(run, pos("a")));
  ASSERT_TRUE(Started(run, pos("x")));
  Exit(run, pos("a"), 3);
  EXPECT_EQ(StepStatus(run, "a"), kFailure);
  EXPECT_EQ(StepStatus(run, "b"), kAborted);
  EXPECT_EQ(StepStatus(run, "c"), kAborted);
  EXPECT_EQ(Get(run).status, kStarted);  // x still runs
  Exit(run, pos("x"), 0);
  RunRecord done = Get(run);
  EXPECT_EQ(done.status, kFailure);
  EXPECT_NE(done.message.find("a"), std::string::npos);
  EXPECT_FALSE(Started(run, pos("b")));
  EXPECT_FALSE(Started(run, pos("c")));
  for (const auto& s : done.steps) {
    if (s.step == "a") {
      EXPECT_EQ(s.exit_code, 3);
      EXPECT_EQ(s.message, "exited with code 3");
    }
    if (s.step == "b") {
      EXPECT_NE(s.message.find("step a failed"), std::string::npos) << s.message;
    }
  }
}

TEST_F(RunEngineTest, CancelAbortsAtOnceStopsRunningStepsAndStartsNothing) {
  RunRecord run = Start(Diamond());
  ASSERT_TRUE(Started(run, 0));
  auto cancelled = engine_->CancelRun(run.id);
  ASSERT_TRUE(cancelled.ok()) << cancelled.status().ToString();
  EXPECT_EQ(cancelled->status, kAborted);
  RunRecord now = Get(run);  // at once, before the runtime's next pass
  EXPECT_EQ(now.status, kAborted);
  for (const auto& s : now.steps) {
    EXPECT_EQ(s.status, kAborted) << s.step;
  }
  Pump();
  auto stopped = launcher_.stopped();
  EXPECT_NE(std::find(stopped.begin(), stopped.end(), Dir(run, 0)), stopped.end());
  EXPECT_EQ(launcher_.started().size(), 1u);
  // The stopped task's exit cannot move an end state.
  EXPECT_EQ(Get(run).steps[0].status, kAborted);
  auto again = engine_->CancelRun(run.id);
  EXPECT_EQ(again.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(again.status().message().find("ended already"), std::string::npos);
  EXPECT_EQ(engine_->CancelRun("no-such-run").status().code(), StatusCode::kNotFound);
}

TEST_F(RunEngineTest, TheGlobalLimitHoldsAcrossRunsAndThePipelineLimitWithinOne) {
  Boot(/*concurrency=*/3);
  Pipeline wide;
  wide.name = "wide";
  wide.concurrency = 2;
  wide.steps = {Cmd("s1"), Cmd("s2"), Cmd("s3"), Cmd("s4")};
  RunRecord a = Start(wide);
  EXPECT_EQ(launcher_.running().size(), 2u);  // the pipeline's own limit
  RunRecord b = Start(wide);
  EXPECT_EQ(launcher_.running().size(), 3u);  // the global limit
  EXPECT_TRUE(Started(b, 0));
  EXPECT_FALSE(Started(b, 1));
  Exit(a, 0, 0);
  EXPECT_EQ(launcher_.running().size(), 3u);
}

TEST_F(RunEngineTest, InteractiveRunsGoBeforeQueuedJobRunsAndJobRunsSayWhyTheyWait) {
  Boot(/*concurrency=*/1);
  Pipeline one;
  one.name = "one";
  one.steps = {Cmd("only")};
  RunRecord first = Start(one, RunType::kFull, {}, "job");
  RunRecord job = Start(one, RunType::kFull, {}, "job");
  RunRecord interactive = Start(one, RunType::kFull, {}, "interactive");
  EXPECT_TRUE(Started(first, 0));
  EXPECT_FALSE(Started(job, 0));
  EXPECT_FALSE(Started(interactive, 0));
  std::string why = engine_->WaitReason(job.id);
  EXPECT_NE(why.find("1 of 1 steps are running"), std::string::npos) << why;
  EXPECT_NE(why.find("1 run ahead (1 interactive)"), std::string::npos) << why;
  EXPECT_EQ(engine_->WaitReason(first.id), "");
  Exit(first, 0, 0);
  EXPECT_TRUE(Started(interactive, 0));
  EXPECT_FALSE(Started(job, 0));
  // A job run that waited long enough counts as interactive: it is never starved.
  RunRecord later = Start(one, RunType::kFull, {}, "interactive");
  clock_.Advance(301s);
  Exit(interactive, 0, 0);
  EXPECT_TRUE(Started(job, 0));
  EXPECT_FALSE(Started(later, 0));
}

TEST_F(RunEngineTest, ProjectsShareTheSlotsFairly) {
  Boot(/*concurrency=*/2);
  Pipeline wide;
  wide.name = "wide";
  wide.steps = {Cmd("s1"), Cmd("s2"), Cmd("s3")};
  RunRecord p1 = Start(wide, RunType::kFull, {}, "interactive", "p");
  RunRecord q1 = Start(wide, RunType::kFull, {}, "interactive", "q");
  EXPECT_EQ(launcher_.running().size(), 2u);
  Exit(p1, 0, 0);
  Exit(p1, 1, 0);
  // Each time a slot frees, the project with fewer running steps gets it.
  EXPECT_TRUE(Started(q1, 0));
  EXPECT_TRUE(Started(q1, 1) || Started(p1, 2));
}

TEST_F(RunEngineTest, AStepGetsItsFrozenDefinitionItsInputsAndTheLayeredEnvironment) {
  Pipeline p = Diamond();
  p.env = {{"LAYER", "pipeline"}, {"FROM_PIPELINE", "1"}};
  p.steps[3].env = {{"LAYER", "step"}};
  p.steps[3].parameters = {{"rate", 3}};
  RunRecord run = Start(p);
  Exit(run, 0, 0);
  Exit(run, 1, 0);
  Exit(run, 2, 0);
  auto spec = launcher_.SpecOf(Dir(run, 3));
  ASSERT_TRUE(spec.has_value());
  std::map<std::string, std::string> env;
  for (const auto& kv : spec->env) {
    env[kv.substr(0, kv.find('='))] = kv.substr(kv.find('=') + 1);
  }
  EXPECT_EQ(spec->cwd, root_ + "/project");
  EXPECT_EQ(env["LAYER"], "step");
  EXPECT_EQ(env["FROM_PIPELINE"], "1");
  EXPECT_EQ(env["FROM_PROJECT"], "1");
  EXPECT_EQ(env["BERTH_RUN"], run.id);
  EXPECT_EQ(env["BERTH_STEP"], "d");
  EXPECT_EQ(env["ORCHEST_STEP_UUID"], "d");
  EXPECT_EQ(env["ORCHEST_PIPELINE_UUID"], "pu-1");
  EXPECT_EQ(env["ORCHEST_SESSION_TYPE"], "interactive");
  EXPECT_EQ(env["BERTH_TOKEN"], "tok-p");
  // The frozen definition carries the posted parameters.
  auto frozen = ReadFile(env["ORCHEST_PIPELINE_PATH"]);
  ASSERT_TRUE(frozen.ok());
  json::value v = json::parse(*frozen);
  EXPECT_EQ(v.at("steps").at("d").at("parameters").at("rate").as_int64(), 3);
  // Inputs in incoming order: b, then c, each this run's output directory.
  json::value inputs = json::parse(env["BERTH_STEP_INPUTS"]);
  ASSERT_EQ(inputs.as_array().size(), 2u);
  EXPECT_EQ(inputs.as_array()[0].at("step").as_string(), "b");
  EXPECT_EQ(inputs.as_array()[1].at("step").as_string(), "c");
  EXPECT_EQ(inputs.as_array()[0].at("dir").as_string(), env["BERTH_RUN_DIR"] + "/outputs/1");
  EXPECT_TRUE(fs::is_directory(env["BERTH_STEP_OUTPUT_DIR"]));
}

TEST_F(RunEngineTest, ASelectionRunReadsTheLatestOutputsOfParentsOutsideIt) {
  Boot(/*concurrency=*/4);
  RunRecord full = Start(Diamond());
  Exit(full, 0, 0);
  RunRecord sel = Start(Diamond(), RunType::kSelection, {"b"});
  ASSERT_EQ(sel.steps.size(), 1u);
  auto spec = launcher_.SpecOf(Dir(sel, 0));
  ASSERT_TRUE(spec.has_value());
  std::string inputs;
  for (const auto& kv : spec->env) {
    if (kv.rfind("BERTH_STEP_INPUTS=", 0) == 0) {
      inputs = kv.substr(18);
    }
  }
  json::value v = json::parse(inputs);
  EXPECT_EQ(v.as_array()[0].at("dir").as_string(),
            root_ + "/runs/" + full.id + "/outputs/0");
}

TEST_F(RunEngineTest, AStepWithVeryManyParentsGetsItsInputsInAFile) {
  Boot(/*concurrency=*/1000);
  Pipeline p;
  p.name = "fan-in";
  std::vector<std::string> parents;
  for (int i = 0; i < 600; ++i) {
    p.steps.push_back(Cmd(fmt::format("parent-with-a-long-name-{}", i)));
    parents.push_back(p.steps.back().uuid);
  }
  p.steps.push_back(Cmd("sink", parents));
  RunRecord run = Start(p);
  for (int i = 0; i < 600; ++i) {
    launcher_.Exit(Dir(run, i), 0);
  }
  Pump();
  auto spec = launcher_.SpecOf(Dir(run, 600));
  ASSERT_TRUE(spec.has_value());
  std::string inputs;
  for (const auto& kv : spec->env) {
    if (kv.rfind("BERTH_STEP_INPUTS=", 0) == 0) {
      inputs = kv.substr(18);
    }
  }
  ASSERT_EQ(inputs.substr(0, 1), "@");
  auto text = ReadFile(inputs.substr(1));
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(json::parse(*text).as_array().size(), 600u);
}

TEST_F(RunEngineTest, JobScopedServicesRunWhileTheProjectHasJobRunsAndStepsWaitForThem) {
  std::vector<std::pair<std::string, bool>> changes;
  bool ready = false;
  engine_.reset();
  sup_.reset();
  SupervisorOptions so;
  so.instances_dir = root_ + "/instances";
  so.threads = false;
  SupervisorHooks h;
  h.task_ended = [this](const TaskStatus& t) { engine_->OnTaskEnded(t); };
  sup_ = std::make_unique<Supervisor>(launcher_, clock_, so, h);
  sup_->Start();
  RunEngineOptions eo;
  eo.runs_dir = root_ + "/runs";
  eo.concurrency = 4;
  eo.threads = false;
  eo.job_services = [&](const std::string& project, bool running) {
    changes.emplace_back(project, running);
  };
  eo.job_services_ready = [&](const std::string&) { return ready; };
  engine_ = std::make_unique<RunEngine>(
      *store_, *sup_, clock_,
      [this](const std::string&) -> Result<TaskContext> {
        TaskContext c;
        c.project_dir = root_ + "/project";
        return c;
      },
      eo);
  ASSERT_TRUE(engine_->Start().ok());
  Pipeline one;
  one.name = "one";
  one.steps = {Cmd("only")};
  RunRecord a = Start(one, RunType::kFull, {}, "job");
  RunRecord b = Start(one, RunType::kFull, {}, "job");
  RunRecord i = Start(one, RunType::kFull, {}, "interactive");
  ASSERT_EQ(changes.size(), 1u);  // started once for both job runs
  EXPECT_EQ(changes[0], std::make_pair(std::string("p"), true));
  EXPECT_TRUE(Started(i, 0));  // interactive runs do not wait for them
  EXPECT_FALSE(Started(a, 0));
  EXPECT_EQ(engine_->WaitReason(a.id), "waiting for the project's jobs-scoped services to be ready");
  ready = true;
  Pump();
  EXPECT_TRUE(Started(a, 0));
  EXPECT_TRUE(Started(b, 0));
  Exit(a, 0, 0);
  EXPECT_EQ(changes.size(), 1u);  // b still runs
  Exit(b, 0, 0);
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[1], std::make_pair(std::string("p"), false));
  Exit(i, 0, 0);
}

TEST_F(RunEngineTest, BadRequestsAreRefusedAndStoreNothing) {
  Pipeline p = Diamond();
  p.steps[0].command.clear();
  p.steps[0].file_path = "missing.py";
  p.steps[0].kind = StepKind::kPython;
  RunRequest req;
  req.project = "p";
  req.pipeline = p;
  auto r = engine_->StartRun(req);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("missing.py"), std::string::npos);
  req.pipeline = Diamond();
  req.type = RunType::kSelection;
  req.selection = {"zzz"};
  EXPECT_EQ(engine_->StartRun(req).status().code(), StatusCode::kInvalidArgument);
  req.selection = {"a"};
  req.project_dir = root_ + "/not-there";
  EXPECT_EQ(engine_->StartRun(req).status().code(), StatusCode::kInvalidArgument);
  auto all = store_->ListRuns({});
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->empty());
  EXPECT_TRUE(launcher_.started().empty());
}

TEST_F(RunEngineTest, AStepThatCannotStartFailsWithTheReason) {
  launcher_.FailStarts(1, "exec failed: no such file");
  Pipeline p;
  p.name = "one";
  p.steps = {Cmd("only")};
  RunRecord run = Start(p);
  Pump();
  RunRecord done = Get(run);
  EXPECT_EQ(done.status, kFailure);
  EXPECT_NE(done.steps[0].message.find("exec failed"), std::string::npos) << done.steps[0].message;
}

TEST_F(RunEngineTest, ADaemonRestartMidRunLosesNothingAndTheRunCompletes) {
  Pipeline chain;
  chain.name = "chain";
  chain.steps = {Cmd("a"), Cmd("b", {"a"}), Cmd("c", {"b"})};
  RunRecord run = Start(chain);
  ASSERT_TRUE(Started(run, 0));
  // The daemon dies; a ends while it is down.
  engine_.reset();
  sup_.reset();
  launcher_.Exit(Dir(run, 0), 0);
  Boot();
  Pump();
  EXPECT_EQ(StepStatus(run, "a"), kSuccess);
  EXPECT_TRUE(Started(run, 1));
  // Dies again while b runs; b is re-adopted, not started twice.
  engine_.reset();
  sup_.reset();
  Boot();
  Pump();
  EXPECT_EQ(StepStatus(run, "b"), kStarted);
  Exit(run, 1, 0);
  Exit(run, 2, 0);
  EXPECT_EQ(Get(run).status, kSuccess);
  auto starts = launcher_.started();
  EXPECT_EQ(std::count(starts.begin(), starts.end(), Dir(run, 1)), 1);
  EXPECT_EQ(starts.size(), 3u);
}

}  // namespace
}  // namespace berth
