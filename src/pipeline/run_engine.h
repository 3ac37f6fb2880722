// RunEngine executes pipeline runs (seed 004): each step of a run is a task of the runtime (own
// cgroup, memory limit, logs), started once all its parents in the run have succeeded, up to a
// global concurrency limit and a per-pipeline one. A failed step aborts its descendants (they
// never start) while independent branches finish; a run ends SUCCESS only if every step did.
//
// Honest by construction, against the flaws of the system it replaces:
//  - Statuses only move forward (PENDING -> STARTED -> SUCCESS | FAILURE | ABORTED), in memory
//    and in the store (which refuses to change an end state).
//  - A run executes the definition it was posted with: it is frozen into the run's directory
//    (`pipeline.json`, ORCHEST_PIPELINE_PATH) and the store when the run is created.
//  - Cancel marks the run and its unfinished steps ABORTED at once and stops every running
//    step's process tree (SIGTERM, grace, SIGKILL); nothing starts afterwards.
//  - A daemon crash loses nothing: runs and step statuses are in the store, step tasks are
//    shims that outlive the daemon. Start() re-reads unfinished runs and asks the runtime what
//    became of their steps; a step whose task never launched is launched then (task ids are
//    derived from run and step, so a step can never run twice).
//
// One queue for every run: interactive runs go before job runs, a job run that waited longer
// than `job_aging` counts as interactive, and among equals the project with fewer running
// steps goes first, then the older run. A queued run says why it waits (WaitReason).
//
// Threads: the supervisor's hook only queues ended tasks (OnTaskEnded); the engine's own
// thread applies them, writes the store and starts what may start. API threads create and
// cancel runs under the same lock. Runtime calls that may run hooks (CancelTask) are made
// after the lock is released.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/mutex.h"
#include "common/status.h"
#include "control/controller.h"
#include "pipeline/pipeline.h"
#include "runtime/supervisor.h"
#include "store/store.h"

namespace berth {

struct RunEngineOptions {
  std::string runs_dir;   // one directory per run: pipeline.json, outputs/, notebooks/
  int concurrency = 0;    // steps running at once over every run; 0: the number of cores
  int grace_seconds = 5;  // cancel: SIGTERM, then SIGKILL of the step's tree after this long
  std::string python = "/usr/bin/python3";
  std::chrono::seconds job_aging{300};  // a job run waiting this long is served as interactive
  bool threads = true;  // false: no thread; the caller drives Step() (tests)
  // A project's jobs-only services (seed 000's scope "jobs"): started when its first job run
  // starts, stopped when its last one ends; job runs' steps wait until they are ready (at
  // most `job_services_wait`). Empty: none.
  std::function<void(const std::string& project, bool running)> job_services;
  std::function<bool(const std::string& project)> job_services_ready;
  std::chrono::seconds job_services_wait{60};
  // Run and step changes, for the event stream: (project, kind, JSON text).
  std::function<void(const std::string&, const std::string&, const std::string&)> publish;
};

// What a caller asks to run.
struct RunRequest {
  std::string project;
  Pipeline pipeline;  // the definition to run; frozen when the run is created
  RunType type = RunType::kFull;
  std::vector<std::string> selection;  // step uuids (selection and incoming runs)
  bool include_selected = false;       // incoming runs: run the selected steps too
  std::string project_dir;             // the steps' working directory; empty: the project's
  std::string kind = "interactive";    // or "job"
  std::string job;                     // the job's id, for a job run
  std::string client_project_uuid;     // Orchest's project_uuid, kept as given
  std::string session_uuid;            // ORCHEST_SESSION_UUID; empty: derived
  // Job runs: the steps run in a copy of project_dir taken when the run is created, in the
  // run's directory (project/), so that later edits of the project do not reach them.
  bool snapshot_project_dir = false;
};

// The step statuses, as Orchest names them.
inline constexpr const char* kPending = "PENDING";
inline constexpr const char* kStarted = "STARTED";
inline constexpr const char* kSuccess = "SUCCESS";
inline constexpr const char* kFailure = "FAILURE";
inline constexpr const char* kAborted = "ABORTED";
bool RunStatusEnded(const std::string& status);

class RunEngine {
 public:
  using ContextFn = std::function<Result<TaskContext>(const std::string& project)>;
  // `store`, `runtime` and `clock` must outlive the engine.
  RunEngine(Store& store, Supervisor& runtime, Clock& clock, ContextFn context,
            RunEngineOptions options);
  ~RunEngine();

  // Loads unfinished runs and reconciles their steps with the runtime's tasks (call after the
  // runtime has re-adopted them), then starts the engine's thread.
  Status Start() EXCLUDES(mu_);
  void Shutdown() EXCLUDES(mu_);
  // The supervisor's task_ended hook: queues the news and returns at once.
  void OnTaskEnded(const TaskStatus& task) EXCLUDES(ended_mu_);
  // One pass: apply ended tasks, start what may start. The thread calls it; tests too.
  void Step() EXCLUDES(mu_);

  // Plans, validates and stores a run, then queues it. InvalidArgument (nothing is stored,
  // nothing runs) for a bad selection, a step file that does not exist, a project directory
  // that is not one.
  Result<RunRecord> StartRun(RunRequest request) EXCLUDES(mu_);
  // Cancels a run: it and its unfinished steps are ABORTED now, running steps are stopped.
  // NotFound for an unknown run; FailedPrecondition for one that has ended already.
  Result<RunRecord> CancelRun(const std::string& id) EXCLUDES(mu_);
  // Why a queued run has not started a step yet ("2 runs ahead; 4 of 4 steps running"); empty
  // for a run that is running or has ended.
  std::string WaitReason(const std::string& id) const EXCLUDES(mu_);
  // The task directory of a run's step (logs/ inside), or empty when it never started.
  std::string StepDir(const std::string& run, int position) const;
  // The runtime's id of a run's step.
  static std::string TaskId(const std::string& run, int position);
  std::string RunDir(const std::string& run) const { return options_.runs_dir + "/" + run; }
  const std::string& runs_dir() const { return options_.runs_dir; }
  // Forgets an ended run: its steps' tasks (and logs) and its directory; the store's row is
  // the caller's. FailedPrecondition while it runs.
  Status ForgetRun(const RunRecord& run) EXCLUDES(mu_);

 private:
  struct StepExec;
  struct ActiveRun;

  void Loop();
  // Applies one ended task to its step; collects what to write.
  void ApplyEnded(const TaskStatus& task) REQUIRES(mu_);
  void FinishStep(ActiveRun& run, int index, const std::string& status, int64_t now,
                  std::optional<int> exit_code, const std::string& message) REQUIRES(mu_);
  void MaybeFinishRun(ActiveRun& run, int64_t now) REQUIRES(mu_);
  void Schedule(int64_t now) REQUIRES(mu_);
  Status Launch(ActiveRun& run, int index, int64_t now) REQUIRES(mu_);
  void Flush() REQUIRES(mu_);
  void Publish(const ActiveRun& run, const std::string& kind, int step_index) REQUIRES(mu_);
  int Priority(const ActiveRun& run, int64_t now) const REQUIRES(mu_);
  int Limit() const;
  Result<std::shared_ptr<ActiveRun>> Load(const RunRecord& rec) REQUIRES(mu_);

  Store& store_;
  Supervisor& runtime_;
  Clock& clock_;
  ContextFn context_;
  RunEngineOptions options_;

  mutable Mutex mu_ ACQUIRED_BEFORE(ended_mu_);
  std::map<std::string, std::shared_ptr<ActiveRun>> runs_ GUARDED_BY(mu_);  // unfinished
  uint64_t next_queued_seq_ GUARDED_BY(mu_) = 0;
  std::map<std::string, std::pair<std::string, int>> by_task_ GUARDED_BY(mu_);
  std::map<std::string, int> running_by_project_ GUARDED_BY(mu_);
  int running_ GUARDED_BY(mu_) = 0;
  std::vector<std::string> dirty_ GUARDED_BY(mu_);  // runs with progress to write
  std::vector<std::string> to_cancel_ GUARDED_BY(mu_);  // tasks to stop once unlocked
  // Unfinished job runs per project, and service starts/stops to make once unlocked.
  std::map<std::string, int> job_runs_ GUARDED_BY(mu_);
  std::vector<std::pair<std::string, bool>> service_changes_ GUARDED_BY(mu_);
  void CountJobRun(const ActiveRun& run, int delta) REQUIRES(mu_);
  void ApplyServiceChanges() EXCLUDES(mu_);
  bool started_ GUARDED_BY(mu_) = false;

  Mutex ended_mu_;
  std::vector<TaskStatus> ended_ GUARDED_BY(ended_mu_);
  bool wake_ GUARDED_BY(ended_mu_) = false;
  bool stop_ GUARDED_BY(ended_mu_) = false;
  CondVar cv_;
  std::thread thread_;
};

}  // namespace berth
