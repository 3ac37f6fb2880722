// The one door for service changes (ServiceOps over Controller), on the production path:
// SQLite :memory:, the real supervisor, a FakeLauncher. Admission is checked where it matters
// most: two concurrent definitions of which only one fits.
#include "control/service_ops.h"

#include "control/project_ops.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <thread>

#include "common/fake_clock.h"
#include "runtime/fake_launcher.h"

namespace berth {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

Definition Def(int64_t reservation_mb, int replicas = 1) {
  auto def = ParseDefinition(json::parse(
      fmt::format(R"({{"command": ["server"], "memory-reservation": {}, "replicas": {}}})",
                  reservation_mb, replicas)));
  EXPECT_TRUE(def.ok()) << def.status().message();
  return *def;
}

class ServiceOpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = OpenStore({"sqlite::memory:"});
    ASSERT_TRUE(s.ok());
    store_ = std::move(*s);
    ASSERT_TRUE(store_->CreateProject("p").ok());
    char tmpl[] = "/tmp/berth-ops-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
    ControllerOptions o;
    o.data_dir = dir_;
    o.memory_capacity_mb = 1000;
    controller_ = std::make_unique<Controller>(*store_, launcher_, clock_, o);
    ASSERT_TRUE(controller_->Start().ok());
    ops_ = std::make_unique<ServiceOps>(*store_, *controller_);
  }
  void TearDown() override {
    ops_.reset();
    controller_.reset();
    std::filesystem::remove_all(dir_);
  }
  // Polls (the supervisor runs on its own thread) until `pred` or 5 s.
  template <class Pred>
  bool Eventually(Pred pred) {
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) {
        return false;
      }
      std::this_thread::sleep_for(1ms);
    }
    return true;
  }
  int Revision(const std::string& name) {
    auto rec = store_->GetService("p", name);
    return rec.ok() ? rec->revision : -1;
  }

  std::unique_ptr<Store> store_;
  std::string dir_;
  FakeLauncher launcher_;
  FakeClock clock_;
  std::unique_ptr<Controller> controller_;
  std::unique_ptr<ServiceOps> ops_;
};

TEST(CheckReservationsTest, ReplicasTimesReservationMustFitBesideTheOthers) {
  EXPECT_EQ(ReservedMb(Def(300, 2)), 600u);
  EXPECT_TRUE(CheckReservations(1000, 600, Def(400)).ok());
  auto refused = CheckReservations(1000, 600, Def(401));
  EXPECT_EQ(refused.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.message().find("400 MB left"), std::string::npos) << refused.message();
  EXPECT_NE(refused.message().find("600 MB reserved"), std::string::npos) << refused.message();
  EXPECT_EQ(CheckReservations(1000, 600, Def(200, 3)).code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(CheckReservations(0, 600, Def(5000)).ok()) << "unknown capacity";
  EXPECT_EQ(CheckReservations(1000, 1200, Def(1)).code(), StatusCode::kFailedPrecondition)
      << "over-reserved already: nothing is left";
}

// What the others reserve follows every change of what runs: definitions, versions, stop and
// start, deletes. Each step's figure is what an admission of a new service sees.
TEST_F(ServiceOpsTest, TheReservedTotalFollowsDefinitionsStopsAndDeletes) {
  auto others = [&](const std::string& name) { return *store_->ReservedByOthers("p", name); };
  ASSERT_TRUE(ops_->CreateDefined("p", "a", Def(300, 2), "added").ok());
  ASSERT_TRUE(ops_->CreateDefined("p", "b", Def(100), "added").ok());
  EXPECT_EQ(others("new"), 700u);
  EXPECT_EQ(others("a"), 100u) << "its own reservation is left out";
  ASSERT_TRUE(ops_->Define("p", "a", Def(50)).ok());  // a new revision replaces the old figure
  EXPECT_EQ(others("new"), 150u);
  ASSERT_TRUE(ops_->SetRunning("p", "a", false, "stopped by test").ok());
  EXPECT_EQ(others("new"), 100u);
  ASSERT_TRUE(ops_->SetRunning("p", "a", true, "started by test").ok());
  EXPECT_EQ(others("new"), 150u);
  ASSERT_TRUE(ops_->Create("p", "v").ok());
  ASSERT_TRUE(controller_->DeployVersion("p", "v", "1.0.0", Def(25, 2)).ok());
  EXPECT_EQ(others("new"), 200u);
  ASSERT_TRUE(ops_->Delete("p", "b").ok());
  EXPECT_EQ(others("new"), 100u);
}

TEST_F(ServiceOpsTest, DefineStoresARevisionAndRunsIt) {
  ASSERT_TRUE(ops_->Create("p", "web").ok());
  auto rec = ops_->Define("p", "web", Def(100, 2));
  ASSERT_TRUE(rec.ok()) << rec.status().message();
  EXPECT_EQ(rec->revision, 1);
  EXPECT_TRUE(Eventually([&] { return launcher_.running().size() == 2; }));
  EXPECT_TRUE(Eventually([&] { return controller_->StatusOf("p", "web").running == 2; }));
}

TEST_F(ServiceOpsTest, BadInputChangesNothing) {
  EXPECT_EQ(ops_->Create("p", "Bad_Name").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ops_->Create("nope", "web").status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(ops_->Create("p", "web").ok());
  EXPECT_EQ(ops_->Create("p", "web").status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(ops_->Define("p", "ghost", Def(1)).status().code(), StatusCode::kNotFound);
  auto too_big = ops_->Define("p", "web", Def(600, 2));
  EXPECT_EQ(too_big.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Revision("web"), 0) << "a refused definition was stored";
  EXPECT_TRUE(launcher_.started().empty());
  // A template-style add that does not fit leaves no empty service behind.
  EXPECT_EQ(ops_->CreateDefined("p", "big", Def(2000), "added").status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->GetService("p", "big").status().code(), StatusCode::kNotFound);
}

TEST_F(ServiceOpsTest, ConcurrentDefinitionsCannotBothPassAnAdmissionOnlyOneFits) {
  for (int round = 0; round < 20; ++round) {
    std::string a = fmt::format("a{}", round), b = fmt::format("b{}", round);
    ASSERT_TRUE(ops_->Create("p", a).ok());
    ASSERT_TRUE(ops_->Create("p", b).ok());
    std::atomic<int> ok{0};
    std::thread t1([&] { ok += ops_->Define("p", a, Def(600)).ok(); });
    std::thread t2([&] { ok += ops_->Define("p", b, Def(600)).ok(); });
    t1.join();
    t2.join();
    EXPECT_EQ(ok.load(), 1) << "round " << round;
    EXPECT_EQ((Revision(a) == 1) + (Revision(b) == 1), 1);
    ASSERT_TRUE(ops_->Delete("p", a).ok());
    ASSERT_TRUE(ops_->Delete("p", b).ok());
  }
}

TEST_F(ServiceOpsTest, SetRunningStopsAndStartsTheInstances) {
  ASSERT_TRUE(ops_->CreateDefined("p", "web", Def(10), "added").ok());
  ASSERT_TRUE(Eventually([&] { return launcher_.running().size() == 1; }));
  ASSERT_TRUE(ops_->SetRunning("p", "web", false, "stopped by test").ok());
  EXPECT_TRUE(Eventually([&] { return launcher_.running().empty(); }));
  EXPECT_FALSE(store_->GetService("p", "web")->desired_running);
  ASSERT_TRUE(ops_->SetRunning("p", "web", true, "started by test").ok());
  EXPECT_TRUE(Eventually([&] { return launcher_.running().size() == 1; }));
  auto events = store_->ListEvents("p", "web", 100);
  ASSERT_TRUE(events.ok());
  bool stop_event = false;
  for (const auto& e : *events) {
    stop_event |= e.kind == "stop" && e.message == "stopped by test";
  }
  EXPECT_TRUE(stop_event);
}

TEST_F(ServiceOpsTest, DeleteStopsTheInstancesAndForgetsTheService) {
  ASSERT_TRUE(ops_->CreateDefined("p", "web", Def(10), "added").ok());
  ASSERT_TRUE(Eventually([&] { return launcher_.running().size() == 1; }));
  auto gone = ops_->Delete("p", "web");
  ASSERT_TRUE(gone.ok());
  EXPECT_EQ(gone->name, "web");
  EXPECT_TRUE(Eventually([&] { return launcher_.running().empty(); }));
  EXPECT_EQ(store_->GetService("p", "web").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ops_->Delete("p", "web").status().code(), StatusCode::kNotFound);
}

TEST_F(ServiceOpsTest, AVersionedServiceRefusesAPlainDefinition) {
  ASSERT_TRUE(ops_->Create("p", "hello").ok());
  auto v = controller_->DeployVersion("p", "hello", "1.0.0", Def(1));
  ASSERT_TRUE(v.ok()) << v.status().message();
  auto refused = ops_->Define("p", "hello", Def(1));
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("immutable"), std::string::npos);
}

TEST_F(ServiceOpsTest, SessionsStartAndStopTheProjectsInteractiveServices) {
  ProjectOps projects(*store_, *controller_, *ops_);
  ASSERT_TRUE(ops_->CreateDefined("p", "redis", Def(10), "added").ok());
  auto jobs_only = Def(10);
  jobs_only.scope = {"jobs"};
  ASSERT_TRUE(ops_->CreateDefined("p", "batch", jobs_only, "added").ok());
  ASSERT_TRUE(ops_->SetRunning("p", "redis", false, "idle").ok());
  ASSERT_TRUE(Eventually([&] { return launcher_.running().size() == 1; }));  // batch only

  auto first = projects.StartSession("p", "etl");
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_TRUE(store_->GetService("p", "redis")->desired_running);
  EXPECT_EQ(projects.StartSession("p", "etl").status().code(), StatusCode::kAlreadyExists);
  ASSERT_TRUE(projects.StartSession("p", "train").ok());
  ASSERT_TRUE(Eventually([&] { return launcher_.running().size() == 2; }));

  // The services serve every session of the project: they stop with the last one.
  auto ended = projects.StopSession("p", "etl");
  ASSERT_TRUE(ended.ok());
  EXPECT_EQ(ended->state, "stopping");
  EXPECT_TRUE(store_->GetService("p", "redis")->desired_running);
  ASSERT_TRUE(projects.StopSession("p", "train").ok());
  EXPECT_FALSE(store_->GetService("p", "redis")->desired_running);
  EXPECT_TRUE(store_->GetService("p", "batch")->desired_running) << "not a session's service";
  EXPECT_EQ(projects.StopSession("p", "train").status().code(), StatusCode::kNotFound);
}

TEST_F(ServiceOpsTest, TheLastAdminTokenCannotBeRevoked) {
  ProjectOps projects(*store_, *controller_, *ops_);
  auto admin = projects.CreateToken(std::nullopt, "only admin");
  ASSERT_TRUE(admin.ok());
  EXPECT_EQ(admin->secret.empty(), false);
  EXPECT_EQ(projects.RevokeToken(admin->info).code(), StatusCode::kFailedPrecondition);
  auto second = projects.CreateToken(std::nullopt, "second");
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(projects.RevokeToken(admin->info).ok());
  EXPECT_EQ(projects.CreateProject("Bad Name").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace berth
