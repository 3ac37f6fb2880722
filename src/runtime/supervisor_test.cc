// The supervisor's policy over FakeLauncher and FakeClock: restart backoff, crash-looping, OOM,
// health replacement, rollout, automatic rollback, drain, removal, re-adoption and tasks, each
// driven step by step with no thread and no sleep. Instance directories live in a temporary
// directory because the supervisor keeps its records there (meta.json, exit.seen).
#include "runtime/supervisor.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <thread>

#include "common/fake_clock.h"
#include "runtime/fake_launcher.h"

namespace berth {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const ServiceKey kKey{"p", "web"};

class SupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/berth-supervisor-test-XXXXXX";
    root_ = mkdtemp(tmpl);
  }
  void TearDown() override {
    sup_.reset();
    fs::remove_all(root_);
  }

  // A new supervisor (a daemon start) over the same launcher and directory.
  void Boot(std::optional<DesiredService> desired = std::nullopt) {
    sup_.reset();
    SupervisorOptions o;
    o.instances_dir = root_;
    o.threads = false;
    o.start_parallelism = 1;
    o.full_probe_every = 60s;
    SupervisorHooks h;
    h.event = [this](const ServiceKey&, const std::string& kind, const std::string& message,
                     const std::string& version) {
      events_.push_back(kind);
      messages_.push_back(message);
      versions_.push_back(version);
    };
    h.rollout = [this](const ServiceKey&, int active, int failed) {
      rollouts_.emplace_back(active, failed);
    };
    h.routes = [this](const ServiceKey&, const RouteUpdate& u) { routes_.push_back(u); };
    h.in_flight = [this](const std::string&, int) { return in_flight_.load(); };
    h.task_ended = [this](const TaskStatus& t) { ended_.push_back(t); };
    sup_ = std::make_unique<Supervisor>(launcher_, clock_, o, h);
    if (desired) {
      sup_->Apply(*desired);
    }
    sup_->Start();
  }

  static RevisionSpec Rev(int revision, int replicas = 1) {
    RevisionSpec r;
    r.revision = revision;
    r.def.replicas = replicas;
    r.def.command = {"server"};
    r.argv = {"server", "--port", "$(PORT)"};
    r.env = {"A=1"};
    r.cwd = "/";
    r.port = 8080;
    r.health_path = "/p-web/";
    return r;
  }
  static DesiredService Want(RevisionSpec latest, int active_revision = 0) {
    DesiredService d;
    d.key = kKey;
    d.latest = std::move(latest);
    d.active_revision = active_revision;
    return d;
  }

  void Step(int n = 1) {
    for (int i = 0; i < n; ++i) {
      sup_->Step();
    }
  }
  ServiceStatus St() { return sup_->Status(kKey); }
  // The directory of the live instance of `revision` in `slot`, or "".
  std::string Dir(int revision, int slot = 0) {
    for (const auto& i : St().instances) {
      if (i.revision == revision && i.slot == slot &&
          (i.state == InstanceState::kStarting || i.state == InstanceState::kRunning ||
           i.state == InstanceState::kUnhealthy || i.state == InstanceState::kStopping)) {
        return root_ + "/" + i.id;
      }
    }
    return "";
  }
  int Count(const std::string& kind) {
    return static_cast<int>(std::count(events_.begin(), events_.end(), kind));
  }
  size_t Starts() { return launcher_.started().size(); }
  std::string SwitchToRevision2(int min_healthy_time_s);
  // Brings revision 1 with `replicas` instances up and live.
  void Live(int replicas = 1) {
    Boot(Want(Rev(1, replicas)));
    Step(2);
    ASSERT_EQ(St().active_revision, 1);
    ASSERT_EQ(St().running, replicas);
  }

  std::string root_;
  FakeLauncher launcher_;
  FakeClock clock_;
  std::unique_ptr<Supervisor> sup_;
  std::vector<std::string> events_;
  std::vector<std::string> messages_;
  std::vector<std::string> versions_;  // per event: the version it concerns, or empty
  std::vector<std::pair<int, int>> rollouts_;
  std::vector<RouteUpdate> routes_;
  std::vector<TaskStatus> ended_;
  std::atomic<int> in_flight_{0};
};

TEST_F(SupervisorTest, StartsReplicasOnTheirOwnAddressesAndGoesLiveWhenHealthy) {
  Boot(Want(Rev(1, 2)));
  Step();
  ASSERT_EQ(Starts(), 2u);
  auto st = St();
  EXPECT_EQ(st.desired, 2);
  // Started and probed in the same pass: ready, but the revision goes live on the next one.
  EXPECT_EQ(st.active_revision, 0);
  Step();
  st = St();
  EXPECT_EQ(st.active_revision, 1);
  EXPECT_EQ(st.running, 2);
  ASSERT_EQ(st.instances.size(), 2u);
  EXPECT_NE(st.instances[0].host, st.instances[1].host);
  for (const auto& i : st.instances) {
    EXPECT_EQ(i.state, InstanceState::kRunning);
    EXPECT_EQ(i.port, 8080);
  }
  ASSERT_EQ(rollouts_.size(), 1u);
  EXPECT_EQ(rollouts_[0], std::make_pair(1, 0));
  ASSERT_FALSE(routes_.empty());
  EXPECT_EQ(routes_.back().ready.size(), 2u);
  EXPECT_EQ(routes_.back().active_revision, 1);
  // The instance learns where it lives, and $(PORT) is expanded in its command.
  auto spec = launcher_.SpecOf(launcher_.started()[0]);
  ASSERT_TRUE(spec.has_value());
  EXPECT_EQ(spec->argv, (std::vector<std::string>{"server", "--port", "8080"}));
  auto has = [&](const std::string& kv) {
    return std::find(spec->env.begin(), spec->env.end(), kv) != spec->env.end();
  };
  EXPECT_TRUE(has("PORT=8080"));
  EXPECT_TRUE(has("A=1"));
  EXPECT_TRUE(has("HOST=" + st.instances[0].host) || has("HOST=" + st.instances[1].host));
}

TEST_F(SupervisorTest, StaysStartingWhileHealthChecksFail) {
  launcher_.SetDefaultHealth(false, "HTTP 503");
  Boot(Want(Rev(1)));
  Step(3);
  auto st = St();
  EXPECT_EQ(st.active_revision, 0);
  EXPECT_EQ(st.running, 0);
  ASSERT_EQ(st.instances.size(), 1u);
  EXPECT_EQ(st.instances[0].state, InstanceState::kStarting);
  EXPECT_EQ(st.instances[0].health, "HTTP 503");
  EXPECT_TRUE(routes_.empty() || routes_.back().ready.empty());
}

TEST_F(SupervisorTest, RestartsACrashedInstanceWithDoublingBackoff) {
  Live();
  std::string dir = Dir(1);
  launcher_.Exit(dir, 3);
  Step();
  auto st = St();
  EXPECT_EQ(st.running, 0);
  EXPECT_EQ(st.instances[0].state, InstanceState::kExited);
  EXPECT_EQ(st.instances[0].exit_code, 3);
  EXPECT_EQ(Count("exited"), 1);
  EXPECT_TRUE(routes_.back().ready.empty());  // no route to a dead instance
  EXPECT_EQ(Starts(), 1u);
  clock_.Advance(249ms);
  Step();
  EXPECT_EQ(Starts(), 1u) << "restarted before its 250 ms backoff";
  clock_.Advance(1ms);
  Step();
  ASSERT_EQ(Starts(), 2u);
  EXPECT_EQ(St().instances[0].restarts, 1);
  // The slot keeps its address, so clients holding it reconnect.
  EXPECT_EQ(St().instances[0].host, st.instances[0].host);

  // A second quick crash doubles the wait.
  launcher_.Exit(Dir(1), 1);
  Step();
  clock_.Advance(499ms);
  Step();
  EXPECT_EQ(Starts(), 2u);
  clock_.Advance(1ms);
  Step();
  EXPECT_EQ(Starts(), 3u);
}

TEST_F(SupervisorTest, FiveQuickCrashesAreCrashLoopingAndBackoffIsCapped) {
  Live();
  auto wait = 250ms;
  for (int crash = 1; crash <= 5; ++crash) {
    launcher_.Exit(Dir(1), 1);
    Step();
    clock_.Advance(wait);
    Step();
    wait *= 2;
  }
  EXPECT_EQ(Count("crash-looping"), 1);
  // Unlabelled, the revision is its version: what the platform's notification carries.
  auto looping_at = std::find(events_.begin(), events_.end(), "crash-looping") - events_.begin();
  EXPECT_EQ(versions_[looping_at], "1");
  EXPECT_EQ(Starts(), 6u);
  // Crash-looping is reported once, and the waits keep doubling up to 30 s.
  for (int crash = 6; crash <= 12; ++crash) {
    launcher_.Exit(Dir(1), 1);
    Step();
    clock_.Advance(30s);
    Step();
  }
  EXPECT_EQ(Count("crash-looping"), 1);
  launcher_.Exit(Dir(1), 1);
  Step();
  auto st = St();
  bool looping = std::any_of(st.instances.begin(), st.instances.end(),
                             [](const auto& i) { return i.state == InstanceState::kCrashLooping; });
  EXPECT_TRUE(looping);
  clock_.Advance(29999ms);
  size_t before = Starts();
  Step();
  EXPECT_EQ(Starts(), before) << "backoff is capped at 30 s, not shorter";
  clock_.Advance(1ms);
  Step();
  EXPECT_EQ(Starts(), before + 1);
}

TEST_F(SupervisorTest, BackoffResetsAfterThirtySecondsOfRunning) {
  Live();
  for (int crash = 0; crash < 3; ++crash) {
    launcher_.Exit(Dir(1), 1);
    Step();
    clock_.Advance(10s);
    Step();
  }
  // Ran long enough: the next crash waits the base 250 ms again.
  clock_.Advance(30s);
  launcher_.Exit(Dir(1), 1);
  Step();
  size_t before = Starts();
  clock_.Advance(250ms);
  Step();
  EXPECT_EQ(Starts(), before + 1);
}

TEST_F(SupervisorTest, OomKillIsReportedAndRestarted) {
  Live();
  launcher_.OomKill(Dir(1));
  Step();
  EXPECT_EQ(St().instances[0].state, InstanceState::kOomKilled);
  EXPECT_EQ(Count("oom-killed"), 1);
  EXPECT_NE(messages_.back().find("memory limit"), std::string::npos);
  clock_.Advance(250ms);
  Step();
  EXPECT_EQ(Starts(), 2u);
}

TEST_F(SupervisorTest, AShimKilledWithoutARecordCountsAsACrash) {
  Live();
  launcher_.LoseShim(Dir(1));
  Step();
  EXPECT_EQ(Count("exited"), 1);
  EXPECT_NE(messages_.back().find("shim disappeared"), std::string::npos);
}

TEST_F(SupervisorTest, ThreeFailedHealthChecksReplaceARunningInstance) {
  Live();
  std::string dir = Dir(1);
  launcher_.SetHealth(dir, false, "HTTP 500");
  for (int i = 0; i < 2; ++i) {
    clock_.Advance(30s);
    Step();
  }
  EXPECT_EQ(St().instances[0].state, InstanceState::kRunning) << "two failures are tolerated";
  clock_.Advance(30s);
  Step();
  EXPECT_EQ(Count("unhealthy"), 1);
  // Out of the route at once, stopped, and a new instance takes the slot.
  Step(2);
  EXPECT_EQ(launcher_.stopped(), std::vector<std::string>{dir});
  EXPECT_EQ(Starts(), 2u);
  EXPECT_EQ(St().running, 1);
}

TEST_F(SupervisorTest, ANewRevisionTakesOverOnceHealthy) {
  Live(2);
  std::vector<std::string> old = {Dir(1, 0), Dir(1, 1)};
  auto want = Want(Rev(2, 2), 1);
  want.active = Rev(1, 2);
  launcher_.SetDefaultHealth(false);
  sup_->Apply(want);
  Step();
  EXPECT_EQ(Count("rollout"), 1);
  EXPECT_EQ(Starts(), 4u);
  EXPECT_EQ(St().active_revision, 1) << "the old revision serves until the new is ready";
  EXPECT_EQ(St().target_revision, 2);
  EXPECT_TRUE(launcher_.stopped().empty());
  launcher_.SetDefaultHealth(true);
  clock_.Advance(5ms);  // the next startup probe
  Step(2);
  auto st = St();
  EXPECT_EQ(st.active_revision, 2);
  EXPECT_EQ(rollouts_.back(), std::make_pair(2, 0));
  // The old revision keeps running, out of the route, for the new one's min-healthy-time.
  Step();
  EXPECT_TRUE(launcher_.stopped().empty());
  EXPECT_EQ(routes_.back().active_revision, 2);
  clock_.Advance(9s);
  Step();
  EXPECT_TRUE(launcher_.stopped().empty());
  clock_.Advance(1s);
  Step(2);
  EXPECT_EQ(Count("settled"), 1);
  EXPECT_EQ(routes_.back().fallback_revision, 0);
  auto stopped = launcher_.stopped();
  std::sort(stopped.begin(), stopped.end());
  std::sort(old.begin(), old.end());
  EXPECT_EQ(stopped, old);
  for (const auto& e : routes_.back().ready) {
    EXPECT_EQ(e.revision, 2);
  }
}

// Rolls revision 2 out over a live revision 1 and switches to it; returns revision 1's dir.
std::string SupervisorTest::SwitchToRevision2(int min_healthy_time_s) {
  Live();
  std::string old = Dir(1);
  auto want = Want(Rev(2), 1);
  want.latest->def.min_healthy_time_s = min_healthy_time_s;
  want.latest->def.health_check.interval_s = 1;
  want.active = Rev(1);
  sup_->Apply(want);
  Step(2);
  EXPECT_EQ(St().active_revision, 2);
  return old;
}

TEST_F(SupervisorTest, ARevisionCrashingAfterGoingLiveIsRolledBackToTheStillRunningOldOne) {
  std::string old = SwitchToRevision2(10);
  EXPECT_EQ(routes_.back().fallback_revision, 1) << "the gateway may retry on the old revision";
  size_t starts = Starts();
  clock_.Advance(3s);
  launcher_.Exit(Dir(2), 1);  // passed its first health check, crashes 3 s later
  Step();
  EXPECT_EQ(St().active_revision, 1);
  EXPECT_EQ(rollouts_.back(), std::make_pair(1, 2));
  EXPECT_EQ(Count("rolled-back"), 1);
  EXPECT_EQ(Dir(1), old) << "traffic went back to the instance that never stopped";
  EXPECT_EQ(routes_.back().active_revision, 1);
  EXPECT_EQ(routes_.back().fallback_revision, 0);
  ASSERT_FALSE(routes_.back().ready.empty());
  EXPECT_EQ(routes_.back().ready[0].revision, 1);
  Step(3);
  clock_.Advance(60s);
  Step(3);
  EXPECT_EQ(Starts(), starts) << "the failed revision was retried, or the old one restarted";
  EXPECT_EQ(St().active_revision, 1);
}

TEST_F(SupervisorTest, ARevisionTurningUnhealthyAfterGoingLiveIsRolledBack) {
  std::string old = SwitchToRevision2(10);
  launcher_.SetHealth(Dir(2), false, "HTTP 500");
  for (int i = 0; i < 5 && St().active_revision == 2; ++i) {  // 3 failed checks, 1 s apart
    clock_.Advance(1s);
    Step();
  }
  EXPECT_EQ(St().active_revision, 1);
  EXPECT_EQ(Count("rolled-back"), 1);
  EXPECT_EQ(Dir(1), old);
}

TEST_F(SupervisorTest, WithoutAMinHealthyTimeTheOldRevisionStopsAtTheSwitch) {
  std::string old = SwitchToRevision2(0);
  Step();
  EXPECT_EQ(launcher_.stopped(), std::vector<std::string>{old});
  EXPECT_EQ(Count("settled"), 0);
}

TEST_F(SupervisorTest, AStaleDesiredStateAfterASettlingRollbackKeepsTheOldRevision) {
  SwitchToRevision2(10);
  // What the controller read after the switch was stored: revision 2 live, no other.
  auto stale = Want(Rev(2), 2);
  launcher_.Exit(Dir(2), 1);
  Step();
  ASSERT_EQ(St().active_revision, 1);
  sup_->Apply(stale);
  Step(3);
  EXPECT_EQ(St().active_revision, 1);
  EXPECT_EQ(St().running, 1) << "the revision rolled back to was stopped";
}

TEST_F(SupervisorTest, ANewerRevisionDuringTheSettlingTimeReplacesBoth) {
  std::string old = SwitchToRevision2(10);
  auto want = Want(Rev(3), 2);
  want.active = Rev(2);
  sup_->Apply(want);
  Step(2);
  EXPECT_EQ(St().active_revision, 3);
  auto stopped = launcher_.stopped();
  EXPECT_NE(std::find(stopped.begin(), stopped.end(), old), stopped.end())
      << "revision 1 kept running after revision 3 went out";
}

TEST_F(SupervisorTest, ARevisionNeverHealthyIsRolledBackAfterTheDeadline) {
  Live();
  auto want = Want(Rev(2), 1);
  want.active = Rev(1);
  launcher_.SetHealth(Dir(1), true);
  launcher_.SetDefaultHealth(false, "HTTP 503");
  sup_->Apply(want);
  Step();
  std::string fresh = Dir(2);
  Step();
  clock_.Advance(59s);
  Step();
  EXPECT_EQ(Count("rolled-back"), 0);
  clock_.Advance(2s);
  Step();
  ASSERT_EQ(Count("rolled-back"), 1);
  EXPECT_NE(messages_[events_.size() - 1].find("not healthy within 60 s"), std::string::npos)
      << messages_.back();
  EXPECT_EQ(rollouts_.back(), std::make_pair(1, 2));
  Step();
  EXPECT_EQ(St().active_revision, 1);
  EXPECT_EQ(St().running, 1);
  EXPECT_NE(std::find(launcher_.stopped().begin(), launcher_.stopped().end(), fresh),
            launcher_.stopped().end());
  // The failed revision is not tried again.
  size_t before = Starts();
  clock_.Advance(120s);
  Step(3);
  EXPECT_EQ(Starts(), before);
}

TEST_F(SupervisorTest, ARevisionThatKeepsCrashingIsRolledBack) {
  Live();
  auto want = Want(Rev(2), 1);
  want.active = Rev(1);
  sup_->Apply(want);
  launcher_.SetDefaultHealth(false);
  Step();
  for (int crash = 0; crash < 3; ++crash) {
    launcher_.Exit(Dir(2), 2);
    Step();
    clock_.Advance(2s);
    Step();
  }
  EXPECT_EQ(Count("rolled-back"), 1);
  EXPECT_NE(messages_.back().find("keep crashing"), std::string::npos);
  EXPECT_EQ(St().active_revision, 1);
}

TEST_F(SupervisorTest, AStoppingInstanceDrainsItsRequestsFirst) {
  Live();
  std::string dir = Dir(1);
  in_flight_ = 2;
  sup_->Apply(Want(Rev(1, 0), 1));  // scaled to zero
  Step(2);
  EXPECT_TRUE(launcher_.stopped().empty()) << "stopped with requests in flight";
  EXPECT_TRUE(routes_.back().ready.empty()) << "still routed while draining";
  in_flight_ = 0;
  Step();
  EXPECT_EQ(launcher_.stopped(), std::vector<std::string>{dir});
  Step();
  EXPECT_EQ(Count("exited"), 0) << "a stop is not a crash";

  // Requests that never end are cut at the drain deadline.
  sup_->Apply(Want(Rev(1), 1));
  Step(2);
  dir = Dir(1);
  ASSERT_FALSE(dir.empty());
  in_flight_ = 1;
  sup_->Apply(Want(Rev(1, 0), 1));
  Step();
  auto stops_of = [&] {
    auto stopped = launcher_.stopped();
    return std::count(stopped.begin(), stopped.end(), dir);
  };
  clock_.Advance(29s);
  Step();
  EXPECT_EQ(stops_of(), 0);
  clock_.Advance(1s);
  Step();
  EXPECT_EQ(stops_of(), 1);
}

TEST_F(SupervisorTest, RemoveUnroutesAtOnceAndDeletesDirectoriesOnceExited) {
  Live();
  std::string dir = Dir(1);
  launcher_.set_stop_exits(false);
  sup_->Remove(kKey);
  ASSERT_FALSE(routes_.empty());
  EXPECT_TRUE(routes_.back().removed) << "the route goes before Remove returns";
  Step();
  EXPECT_EQ(launcher_.stopped(), std::vector<std::string>{dir});
  EXPECT_TRUE(fs::exists(dir)) << "kept until its program exited";
  launcher_.Exit(dir, 0, SIGTERM);
  Step();
  EXPECT_FALSE(fs::exists(dir));
  EXPECT_EQ(St().instances.size(), 0u);
}

// What an idle pass costs must not grow with the number of instances: between exit events,
// passes look at no instance, every instance gets one full look per full-probe period (taken
// in batches) and one health check per interval, and an exit is still seen on the next pass.
TEST_F(SupervisorTest, IdlePassesLookAtNoInstanceAndEachIsLookedAtOncePerPeriod) {
  Live(20);
  int probes = launcher_.probes();
  int checks = launcher_.health_checks();
  for (int i = 0; i < 100; ++i) {  // 25 s: before any full look or health check is due
    clock_.Advance(250ms);
    Step();
  }
  EXPECT_EQ(launcher_.probes(), probes);
  EXPECT_EQ(launcher_.health_checks(), checks);
  for (int i = 0; i < 160; ++i) {  // to 65 s: each full look once, each 30 s check twice
    clock_.Advance(250ms);
    Step();
  }
  EXPECT_EQ(launcher_.probes() - probes, 20);
  EXPECT_EQ(launcher_.health_checks() - checks, 40);
  std::string dir = Dir(1, 7);
  launcher_.Exit(dir, 3);
  Step();
  EXPECT_EQ(Count("exited"), 1);
  EXPECT_EQ(launcher_.probes() - probes, 21) << "the exited instance alone is looked at";
}

// Memory is read when a status asks, for that service's running instances only.
TEST_F(SupervisorTest, StatusReadsTheMemoryOfItsRunningInstances) {
  Live(2);
  for (const auto& i : St().instances) {
    EXPECT_EQ(i.rss_bytes, uint64_t{1} << 20) << i.id;
  }
  launcher_.Exit(Dir(1, 1), 3);
  Step();
  int with_memory = 0;
  for (const auto& i : St().instances) {
    if (i.exit_code) {
      EXPECT_FALSE(i.rss_bytes.has_value()) << "an exited instance has no memory: " << i.id;
    } else {
      with_memory += i.rss_bytes.has_value();
    }
  }
  EXPECT_GE(with_memory, 1);
}

TEST_F(SupervisorTest, AFailedStartIsRetriedWithBackoff) {
  launcher_.FailStarts(1, "exec: no such file");
  Boot(Want(Rev(1)));
  Step();
  EXPECT_EQ(Count("start-failed"), 1);
  EXPECT_NE(messages_.back().find("no such file"), std::string::npos);
  EXPECT_EQ(St().instances[0].state, InstanceState::kExited);
  clock_.Advance(250ms);
  Step(2);
  EXPECT_EQ(St().running, 1);
}

TEST_F(SupervisorTest, ARevisionThatCannotRunSaysWhyOnce) {
  auto r = Rev(1);
  r.error = "artifact tag v1 was never pushed";
  Boot(Want(r));
  Step(3);
  EXPECT_EQ(Count("cannot-run"), 1);
  EXPECT_EQ(Starts(), 0u);
}

TEST_F(SupervisorTest, ARestartedSupervisorReadoptsWithoutRestarting) {
  Live(2);
  auto before = launcher_.running();
  // The daemon goes away; its instances run on.
  Boot(Want(Rev(1, 2), 1));
  EXPECT_EQ(Count("adopted"), 2);
  Step(2);
  EXPECT_EQ(launcher_.running(), before);
  EXPECT_EQ(Starts(), 2u) << "an adopted instance was started again";
  EXPECT_TRUE(launcher_.stopped().empty());
  EXPECT_EQ(St().running, 2);
  EXPECT_EQ(routes_.back().ready.size(), 2u);
}

TEST_F(SupervisorTest, AnInstanceThatDiedWhileTheDaemonWasDownIsRestarted) {
  Live();
  std::string dir = Dir(1);
  sup_.reset();
  launcher_.Exit(dir, 9);
  Boot(Want(Rev(1), 1));
  Step();
  EXPECT_EQ(Count("exited"), 1);
  clock_.Advance(250ms);
  Step(2);
  EXPECT_EQ(Starts(), 2u);
  EXPECT_EQ(St().running, 1);
  // Its exit is counted once, not again by the next daemon.
  events_.clear();
  Boot(Want(Rev(1), 1));
  Step();
  EXPECT_EQ(Count("exited"), 0);
}

TEST_F(SupervisorTest, StatusAnswersWhileStartsAreUnderWay) {
  launcher_.HoldStarts(true);
  Boot(Want(Rev(1, 3)));
  std::thread pass([this] { sup_->Step(); });
  while (launcher_.starts_held() == 0) {
    std::this_thread::yield();
  }
  // The pass is inside Launcher::Start: the model's lock must be free.
  auto st = St();
  EXPECT_EQ(st.instances.size(), 3u);
  EXPECT_EQ(st.instances[0].state, InstanceState::kStarting);
  sup_->Apply(Want(Rev(1, 3)));
  launcher_.HoldStarts(false);
  pass.join();
  EXPECT_EQ(Starts(), 3u);
}

TEST_F(SupervisorTest, ShadowsRunBesideMainAndSurviveAnAssign) {
  auto want = Want(Rev(1), 0);
  want.latest->version = "v1";
  auto shadow = Rev(2);
  shadow.version = "v2";
  want.shadows = {shadow};
  Boot(want);
  Step(2);
  EXPECT_EQ(Starts(), 2u);
  EXPECT_EQ(St().active_revision, 1);
  EXPECT_EQ(routes_.back().versions.at("v2"), 2);
  std::string v2 = Dir(2);
  // Assign v2: it becomes MAIN without a restart, v1 runs on as a shadow.
  DesiredService assign = Want(shadow, 1);
  assign.active = want.latest;
  assign.shadows = {*want.latest};
  sup_->Apply(assign);
  Step(2);
  EXPECT_EQ(St().active_revision, 2);
  EXPECT_EQ(Dir(2), v2);
  EXPECT_TRUE(launcher_.stopped().empty());
  EXPECT_EQ(Starts(), 2u);
  // An event about the shadow names its label.
  launcher_.OomKill(Dir(1));
  Step();
  ASSERT_EQ(events_.back(), "oom-killed");
  EXPECT_EQ(versions_.back(), "v1");
}

TEST_F(SupervisorTest, AStartCutShortByAKillIsSweptAndAnAdoptedInstanceKept) {
  Live();
  std::string live = Dir(1);
  // What a kill -9 between making an instance's directory and writing its record leaves.
  fs::create_directories(root_ + "/i-half");
  sup_.reset();
  Boot(Want(Rev(1)));
  Step();
  EXPECT_FALSE(fs::exists(root_ + "/i-half"));
  EXPECT_TRUE(fs::exists(live)) << "the running instance's directory was swept";
  EXPECT_EQ(Dir(1), live);
  EXPECT_EQ(Count("adopted"), 1);
}

// Another daemon's instance (or another program) holds 127.1.0.1:8080: this daemon takes the
// next address, and gives its instance that one.
TEST_F(SupervisorTest, AnAddressTakenElsewhereIsSkipped) {
  launcher_.TakeAddress("127.1.0.1", 8080);
  Boot(Want(Rev(1)));
  Step(2);
  ASSERT_EQ(St().instances.size(), 1u);
  EXPECT_EQ(St().instances[0].host, "127.1.0.2");
  auto spec = launcher_.SpecOf(Dir(1));
  ASSERT_TRUE(spec.has_value());
  EXPECT_EQ(spec->host, "127.1.0.2");
  EXPECT_EQ(spec->port, 8080);
}

TEST_F(SupervisorTest, AFailedStartIsNotCountedAgainByTheNextDaemon) {
  launcher_.FailStarts(1, "exec: no such file");
  Boot(Want(Rev(1)));
  Step();
  EXPECT_EQ(Count("start-failed"), 1);
  sup_.reset();
  events_.clear();
  Boot(Want(Rev(1)));
  Step(2);
  EXPECT_EQ(Count("exited"), 0) << "the failed start came back as a crash";
  EXPECT_EQ(Count("adopted"), 0);
  EXPECT_EQ(St().running, 1);
}

TEST_F(SupervisorTest, AStaleDesiredStateDoesNotUndoARollback) {
  Live();
  auto want = Want(Rev(2), 1);
  want.active = Rev(1);
  launcher_.SetHealth(Dir(1), true);
  launcher_.SetDefaultHealth(false);
  sup_->Apply(want);
  Step();
  clock_.Advance(61s);
  Step();
  ASSERT_EQ(Count("rolled-back"), 1);
  // A refresh that read the store before the rollback was recorded there.
  sup_->Apply(want);
  size_t before = Starts();
  Step(3);
  EXPECT_EQ(Starts(), before) << "the rolled-back revision was started again";
  EXPECT_EQ(Count("rollout"), 1);
  EXPECT_EQ(St().active_revision, 1);
}

TEST_F(SupervisorTest, AfterARestartTheFailedRevisionIsNotRetriedAndAStoppedServiceStaysDown) {
  Live();
  std::string good = Dir(1);
  // The next daemon reads revision 2 as failed and revision 1 as live from the store.
  auto want = Want(Rev(2), 1);
  want.active = Rev(1);
  want.failed_revision = 2;
  Boot(want);
  clock_.Advance(120s);
  Step(3);
  EXPECT_EQ(Starts(), 1u) << "revision 2 was tried again after the restart";
  EXPECT_EQ(Dir(1), good);
  EXPECT_EQ(St().running, 1);
  // Stopped, then a restart: nothing comes back.
  auto stopped = Want(Rev(1), 1);
  stopped.running = false;
  sup_->Apply(stopped);
  Step(2);
  EXPECT_TRUE(launcher_.running().empty());
  Boot(stopped);
  clock_.Advance(120s);
  Step(3);
  EXPECT_TRUE(launcher_.running().empty());
  EXPECT_EQ(Starts(), 1u);
}

// Users paste an internal service's address into configs: a slot started again gets it back.
TEST_F(SupervisorTest, AStoppedAndStartedServiceKeepsItsAddressAcrossRevisions) {
  Live();
  std::string host = St().instances[0].host;
  ASSERT_FALSE(host.empty());
  auto stopped = Want(Rev(1), 1);
  stopped.running = false;
  sup_->Apply(stopped);
  Step(3);
  ASSERT_TRUE(launcher_.running().empty());
  // Started again, and with a newer revision once nothing holds the address.
  sup_->Apply(Want(Rev(1), 1));
  Step(2);
  ASSERT_EQ(St().running, 1);
  EXPECT_EQ(St().instances.back().host, host);
  sup_->Apply(stopped);
  Step(3);
  auto newer = Want(Rev(2), 1);
  newer.running = true;
  sup_->Apply(newer);
  Step(3);
  std::vector<std::string> hosts;
  for (const auto& i : St().instances) {
    if (i.revision == 2) {
      hosts.push_back(i.host);
    }
  }
  EXPECT_EQ(hosts, std::vector<std::string>{host});
  // Another program took it meanwhile: the next start takes another address.
  auto newer_stopped = newer;
  newer_stopped.running = false;
  sup_->Apply(newer_stopped);
  Step(3);
  ASSERT_TRUE(launcher_.running().empty());
  launcher_.TakeAddress(host, 8080);
  sup_->Apply(newer);
  Step(3);
  hosts.clear();
  for (const auto& i : St().instances) {
    if (i.state == InstanceState::kRunning) {
      hosts.push_back(i.host);
    }
  }
  ASSERT_EQ(hosts.size(), 1u);
  EXPECT_NE(hosts[0], host);
}

// Tasks.

TaskSpec Task(const std::string& id, std::string owner = "run-1") {
  TaskSpec t;
  t.id = id;
  t.owner = std::move(owner);
  t.argv = {"step.sh"};
  return t;
}

TEST_F(SupervisorTest, WithoutExitEventsExitsAreFoundByPolling) {
  launcher_.set_tells_exits(false);
  Live();
  launcher_.Exit(Dir(1), 3);
  Step();
  EXPECT_EQ(Count("exited"), 1);
  ASSERT_TRUE(sup_->StartTask(Task("t-1")).ok());
  Step();
  launcher_.Exit(root_ + "/t-1", 0);
  Step();
  EXPECT_EQ(sup_->Task("t-1")->state, TaskState::kSucceeded);
}

TEST_F(SupervisorTest, ATaskRunsOnceAndItsExitCodeIsItsResult) {
  Boot();
  ASSERT_TRUE(sup_->StartTask(Task("t-ok")).ok());
  ASSERT_TRUE(sup_->StartTask(Task("t-bad")).ok());
  EXPECT_EQ(sup_->Task("t-ok")->state, TaskState::kPending);
  Step();
  EXPECT_EQ(Starts(), 2u);
  EXPECT_EQ(sup_->Task("t-ok")->state, TaskState::kRunning);
  EXPECT_GT(sup_->Task("t-ok")->pid, 0);
  launcher_.Exit(root_ + "/t-ok", 0);
  launcher_.Exit(root_ + "/t-bad", 3);
  Step();
  auto ok = *sup_->Task("t-ok");
  auto bad = *sup_->Task("t-bad");
  EXPECT_EQ(ok.state, TaskState::kSucceeded);
  EXPECT_EQ(ok.exit_code, 0);
  EXPECT_EQ(bad.state, TaskState::kFailed);
  EXPECT_EQ(bad.exit_code, 3);
  EXPECT_EQ(bad.error, "exited with code 3");
  ASSERT_EQ(ended_.size(), 2u);
  // Never restarted.
  clock_.Advance(60s);
  Step(3);
  EXPECT_EQ(Starts(), 2u);
  auto all = sup_->Tasks("run-1");
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].id, "t-ok");
}

TEST_F(SupervisorTest, TasksStartInTheOrderTheyCameAndEndedOnesAreLeftAlone) {
  Boot();
  for (const char* id : {"t-c", "t-a", "t-b"}) {
    ASSERT_TRUE(sup_->StartTask(Task(id)).ok());
  }
  Step();
  EXPECT_EQ(launcher_.started(),
            (std::vector<std::string>{root_ + "/t-c", root_ + "/t-a", root_ + "/t-b"}));
  launcher_.Exit(root_ + "/t-a", 0);
  Step();
  ASSERT_EQ(sup_->Task("t-a")->state, TaskState::kSucceeded);
  // An ended task is history: later passes neither start, stop nor re-end it.
  ASSERT_TRUE(sup_->CancelTask("t-a").ok());
  clock_.Advance(60s);
  Step(3);
  EXPECT_EQ(Starts(), 3u);
  EXPECT_TRUE(launcher_.stopped().empty());
  EXPECT_EQ(sup_->Task("t-a")->state, TaskState::kSucceeded);
  EXPECT_EQ(ended_.size(), 1u);
  EXPECT_EQ(sup_->Task("t-b")->state, TaskState::kRunning);
}

TEST_F(SupervisorTest, BadTasksAreRefusedAndChangeNothing) {
  Boot();
  TaskSpec empty = Task("t-1");
  empty.argv.clear();
  EXPECT_EQ(sup_->StartTask(empty).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(sup_->StartTask(Task("../escape")).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(sup_->StartTask(Task("t-1")).ok());
  EXPECT_EQ(sup_->StartTask(Task("t-1")).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(sup_->CancelTask("nope").code(), StatusCode::kNotFound);
  Step();
  EXPECT_EQ(sup_->ForgetTask("t-1").code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(sup_->Tasks().size(), 1u);
}

TEST_F(SupervisorTest, CancelStopsARunningTaskAndEndsAPendingOneAtOnce) {
  Boot();
  ASSERT_TRUE(sup_->StartTask(Task("t-run")).ok());
  Step();
  ASSERT_TRUE(sup_->StartTask(Task("t-wait")).ok());
  ASSERT_TRUE(sup_->CancelTask("t-wait").ok());
  EXPECT_EQ(sup_->Task("t-wait")->state, TaskState::kCancelled);
  ASSERT_TRUE(sup_->CancelTask("t-run").ok());
  Step(2);
  EXPECT_EQ(launcher_.stopped(), std::vector<std::string>{root_ + "/t-run"});
  EXPECT_EQ(sup_->Task("t-run")->state, TaskState::kCancelled);
  EXPECT_EQ(Starts(), 1u) << "a cancelled pending task started";
  EXPECT_TRUE(sup_->ForgetTask("t-run").ok());
  EXPECT_FALSE(fs::exists(root_ + "/t-run"));
  EXPECT_FALSE(sup_->Task("t-run").has_value());
  // The id is free again, with a directory of its own.
  ASSERT_TRUE(sup_->StartTask(Task("t-run")).ok());
  Step();
  EXPECT_EQ(sup_->Task("t-run")->state, TaskState::kRunning);
  EXPECT_TRUE(fs::exists(root_ + "/t-run/meta.json"));
}

TEST_F(SupervisorTest, ATaskThatCannotStartFailsWithTheReason) {
  Boot();
  launcher_.FailStarts(1, "exec: step.sh: not found");
  ASSERT_TRUE(sup_->StartTask(Task("t-1")).ok());
  Step();
  auto t = *sup_->Task("t-1");
  EXPECT_EQ(t.state, TaskState::kFailed);
  EXPECT_NE(t.error.find("not found"), std::string::npos);
  ASSERT_EQ(ended_.size(), 1u);
}

TEST_F(SupervisorTest, TasksAreReadoptedAndAnEndWhileDownIsReportedOnce) {
  Boot();
  ASSERT_TRUE(sup_->StartTask(Task("t-long")).ok());
  ASSERT_TRUE(sup_->StartTask(Task("t-short")).ok());
  Step();
  sup_.reset();
  launcher_.Exit(root_ + "/t-short", 0);  // while the daemon is down
  Boot();
  Step();
  ASSERT_EQ(ended_.size(), 1u);
  EXPECT_EQ(ended_[0].id, "t-short");
  EXPECT_EQ(ended_[0].state, TaskState::kSucceeded);
  EXPECT_EQ(sup_->Task("t-long")->state, TaskState::kRunning);
  launcher_.Exit(root_ + "/t-long", 4);
  Step();
  ASSERT_EQ(ended_.size(), 2u);
  EXPECT_EQ(sup_->Task("t-long")->exit_code, 4);
  EXPECT_EQ(Starts(), 2u);
  // A third daemon knows both results and reports neither again.
  ended_.clear();
  Boot();
  Step();
  EXPECT_TRUE(ended_.empty());
  EXPECT_EQ(sup_->Task("t-short")->state, TaskState::kSucceeded);
  EXPECT_EQ(sup_->Tasks().size(), 2u);
  EXPECT_EQ(sup_->Tasks()[0].id, "t-long");
}

}  // namespace
}  // namespace berth
