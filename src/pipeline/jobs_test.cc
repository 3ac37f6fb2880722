// Jobs over the run engine, the real supervisor, FakeLauncher and an in-memory store, with a
// fake wall clock: one-off jobs with parameter sets and their honest status, cron slots,
// slots missed while berth was down, pause / resume / cancel, snapshots, refused requests.
#include "pipeline/jobs.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>

#include "common/fake_clock.h"
#include "common/file_util.h"
#include "pipeline/cron.h"
#include "runtime/fake_launcher.h"

namespace berth {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

// 2026-12-02T10:00:00Z
constexpr int64_t kT0 = 1796205600;

class JobsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/berth-jobs-test-XXXXXX";
    root_ = mkdtemp(tmpl);
    fs::create_directories(root_ + "/instances");
    fs::create_directories(root_ + "/project");
    std::ofstream(root_ + "/project/data.txt") << "v1";
    auto s = OpenStore({"sqlite::memory:"});
    ASSERT_TRUE(s.ok());
    store_ = std::move(*s);
    ASSERT_TRUE(store_->CreateProject("p").ok());
    SupervisorOptions so;
    so.instances_dir = root_ + "/instances";
    so.threads = false;
    so.start_parallelism = 1;
    SupervisorHooks h;
    h.task_ended = [this](const TaskStatus& t) { engine_->OnTaskEnded(t); };
    sup_ = std::make_unique<Supervisor>(launcher_, clock_, so, h);
    sup_->Start();
    RunEngineOptions eo;
    eo.runs_dir = root_ + "/runs";
    eo.concurrency = 8;
    eo.threads = false;
    engine_ = std::make_unique<RunEngine>(
        *store_, *sup_, clock_,
        [this](const std::string&) -> Result<TaskContext> {
          TaskContext c;
          c.project_dir = root_ + "/project";
          return c;
        },
        eo);
    ASSERT_TRUE(engine_->Start().ok());
    JobsOptions jo;
    jo.threads = false;
    jo.now = [this] { return now_; };
    jobs_ = std::make_unique<Jobs>(*store_, *engine_, jo);
  }
  void TearDown() override {
    jobs_.reset();
    engine_.reset();
    sup_.reset();
    fs::remove_all(root_);
  }

  Pipeline TwoSteps() {
    Pipeline p;
    p.name = "etl";
    p.uuid = "pu";
    for (const char* name : {"a", "b"}) {
      PipelineStep s;
      s.uuid = s.title = name;
      s.command = "true";
      s.parameters = {{"rate", 1}};
      p.steps.push_back(s);
    }
    p.steps[1].incoming = {"a"};
    return p;
  }
  JobRequest Request(std::string schedule = "") {
    JobRequest r;
    r.project = "p";
    r.name = "nightly";
    r.pipeline = TwoSteps();
    r.schedule = std::move(schedule);
    return r;
  }
  void Pump() {
    for (int i = 0; i < 3; ++i) {
      sup_->Step();
      engine_->Step();
    }
  }
  std::vector<RunRecord> RunsOf(const std::string& job) {
    Store::RunFilter f;
    f.job = job;
    f.with_definition = true;
    auto r = store_->ListRuns(f);
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : std::vector<RunRecord>{};
  }
  // Ends every running step with `code`.
  void EndAll(int code) {
    for (const auto& dir : launcher_.running()) {
      launcher_.Exit(dir, code);
    }
    Pump();
  }

  std::string root_;
  int64_t now_ = kT0;
  FakeLauncher launcher_;
  FakeClock clock_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Supervisor> sup_;
  std::unique_ptr<RunEngine> engine_;
  std::unique_ptr<Jobs> jobs_;
};

TEST_F(JobsTest, AOneOffJobRunsOncePerParameterSetAndItsStatusIsHonest) {
  JobRequest r = Request();
  r.parameter_sets = {json::object{{"a", {{"rate", 2}}}},
                      json::object{{"a", {{"rate", 3}}}, {"pipeline_parameters", {{"x", 1}}}}};
  auto job = jobs_->Create(r);
  ASSERT_TRUE(job.ok()) << job.status().ToString();
  EXPECT_EQ(job->status, "PENDING");
  jobs_->Tick();
  Pump();
  auto runs = RunsOf(job->id);
  ASSERT_EQ(runs.size(), 2u);
  std::set<int64_t> rates;
  for (const auto& run : runs) {
    EXPECT_EQ(run.kind, "job");
    json::value def = json::parse(run.definition_json);
    rates.insert(def.at("steps").at("a").at("parameters").at("rate").as_int64());
  }
  EXPECT_EQ(rates, (std::set<int64_t>{2, 3}));
  EXPECT_EQ(store_->GetJob(job->id)->status, "STARTED");
  EndAll(0);  // both a's
  EndAll(0);  // one b succeeds...
  jobs_->Tick();
  EXPECT_EQ(store_->GetJob(job->id)->status, "SUCCESS");

  auto failing = jobs_->Create(Request());
  ASSERT_TRUE(failing.ok());
  jobs_->Tick();
  Pump();
  EndAll(4);
  jobs_->Tick();
  auto ended = store_->GetJob(failing->id);
  EXPECT_EQ(ended->status, "FAILURE");
  EXPECT_EQ(ended->message, "1 of 1 runs did not succeed");
}

TEST_F(JobsTest, AJobRunSeesASnapshotOfTheProjectTakenWhenTheRunIsCreated) {
  auto job = jobs_->Create(Request());
  ASSERT_TRUE(job.ok());
  jobs_->Tick();
  Pump();
  std::ofstream(root_ + "/project/data.txt") << "v2";
  auto runs = RunsOf(job->id);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_NE(runs[0].project_dir, root_ + "/project");
  EXPECT_EQ(*ReadFile(runs[0].project_dir + "/data.txt"), "v1");
  auto spec = launcher_.SpecOf(root_ + "/instances/" + RunEngine::TaskId(runs[0].id, 0));
  ASSERT_TRUE(spec.has_value());
  EXPECT_EQ(spec->cwd, runs[0].project_dir);
  EndAll(0);
  EndAll(0);
}

TEST_F(JobsTest, ACronJobFiresOnItsSlotsAndRunsAMissedSlotOnceSayingWhatWasSkipped) {
  auto job = jobs_->Create(Request("*/15 * * * *"));
  ASSERT_TRUE(job.ok()) << job.status().ToString();
  EXPECT_EQ(job->next_fire, kT0 + 15 * 60);
  jobs_->Tick();
  EXPECT_TRUE(RunsOf(job->id).empty());
  now_ = kT0 + 15 * 60;
  jobs_->Tick();
  EXPECT_EQ(RunsOf(job->id).size(), 1u);
  auto after = store_->GetJob(job->id);
  EXPECT_EQ(after->status, "STARTED");
  EXPECT_EQ(after->next_fire, kT0 + 30 * 60);
  // Down for an hour: four slots passed; one run, and the message says three were skipped.
  now_ = kT0 + 75 * 60 + 20;
  jobs_->Tick();
  EXPECT_EQ(RunsOf(job->id).size(), 2u);
  after = store_->GetJob(job->id);
  EXPECT_NE(after->message.find("3 scheduled runs were missed"), std::string::npos)
      << after->message;
  EXPECT_EQ(after->next_fire, kT0 + 90 * 60);
  Pump();
  EndAll(0);
  EndAll(0);
}

TEST_F(JobsTest, PauseResumeAndCancel) {
  auto job = jobs_->Create(Request("0 * * * *"));
  ASSERT_TRUE(job.ok());
  ASSERT_TRUE(jobs_->Pause("p", job->id).ok());
  now_ = kT0 + 3 * 3600;
  jobs_->Tick();
  EXPECT_TRUE(RunsOf(job->id).empty());
  auto resumed = jobs_->Resume("p", job->id);
  ASSERT_TRUE(resumed.ok());
  EXPECT_EQ(resumed->next_fire, kT0 + 4 * 3600);  // slots passed while paused are skipped
  EXPECT_EQ(jobs_->Resume("p", job->id).status().code(), StatusCode::kFailedPrecondition);
  now_ = kT0 + 4 * 3600;
  jobs_->Tick();
  Pump();
  ASSERT_EQ(RunsOf(job->id).size(), 1u);
  auto cancelled = jobs_->Cancel("p", job->id);
  ASSERT_TRUE(cancelled.ok());
  EXPECT_EQ(cancelled->status, "ABORTED");
  EXPECT_EQ(RunsOf(job->id)[0].status, "ABORTED");
  now_ = kT0 + 6 * 3600;
  jobs_->Tick();
  EXPECT_EQ(RunsOf(job->id).size(), 1u);
  EXPECT_EQ(jobs_->Cancel("p", job->id).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(jobs_->Get("other", job->id).status().code(), StatusCode::kNotFound);
  Pump();
}

TEST_F(JobsTest, BadJobsAreRefusedAndNothingIsStored) {
  JobRequest bad = Request("61 * * * *");
  auto r = jobs_->Create(bad);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("61"), std::string::npos) << r.status().message();
  bad = Request("0 3 * * *");
  bad.time_zone = "Mars/Base";
  EXPECT_EQ(jobs_->Create(bad).status().code(), StatusCode::kInvalidArgument);
  bad = Request();
  bad.parameter_sets = {json::object{{"zz", {{"rate", 1}}}}};
  r = jobs_->Create(bad);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("zz"), std::string::npos);
  bad = Request("0 3 * * *");
  bad.at = kT0 + 10;
  EXPECT_EQ(jobs_->Create(bad).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(store_->ListJobs("", false)->empty());
}

TEST(ParameterGridTest, BuildsTheCartesianProduct) {
  json::object grid{{"a", {{"rate", {1, 2}}, {"mode", {"x", "y", "z"}}}}};
  auto sets = ParameterGrid(grid);
  ASSERT_TRUE(sets.ok());
  ASSERT_EQ(sets->size(), 6u);
  std::set<std::string> seen;
  for (const auto& s : *sets) {
    seen.insert(json::serialize(s));
  }
  EXPECT_EQ(seen.size(), 6u);
  EXPECT_EQ(ParameterGrid({{"a", {{"rate", json::array{}}}}}).status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace berth
