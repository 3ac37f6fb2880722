// Jobs (seed 004): a pipeline run once (now or at a time) or on a cron schedule with a time
// zone, each time once per parameter set. The pipeline is frozen when the job is created, and
// each job run executes in a snapshot of the project directory taken when that run is created
// (seed 000: "the project directory of a job is an internal snapshot"), so that later edits
// reach neither a queued run nor a running one.
//
// Statuses: PENDING (waiting for its first fire), STARTED (runs made), PAUSED, and the end
// states SUCCESS / FAILURE / ABORTED. A one-off job ends when its runs have: SUCCESS only if
// all succeeded, FAILURE if one failed. A scheduled job runs until cancelled; its runs are
// counted (succeeded, failed), and its message names the last failure. After downtime a
// missed cron slot runs once, and the job's message says what was skipped.
//
// A thread ticks every second (or Tick() in tests): it fires due jobs and settles one-off
// jobs whose runs ended. Everything a job does to runs goes through the RunEngine.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include "common/mutex.h"
#include "common/status.h"
#include "pipeline/pipeline.h"
#include "pipeline/run_engine.h"
#include "store/store.h"

namespace berth {

// {"<step uuid or name>": {"param": [v1, v2]}, "pipeline_parameters": {"p": [..]}} -> one
// parameter set per combination (the Cartesian product, in key order). InvalidArgument for a
// value that is not a non-empty list, or more than 10,000 sets.
Result<boost::json::array> ParameterGrid(const boost::json::object& grid);

struct JobRequest {
  std::string project;
  std::string name;
  Pipeline pipeline;
  std::string project_dir;  // empty: the project's own
  std::string schedule;     // cron; empty: once
  std::string time_zone;
  int64_t at = 0;  // unix seconds, one-off jobs only; 0: at once
  // Each set: {"<step uuid>": {param: value}, "pipeline_parameters": {param: value}}. Empty:
  // one run with the pipeline's own parameters.
  boost::json::array parameter_sets;
};

struct JobsOptions {
  bool threads = true;
  // Wall-clock time in unix seconds (tests pass a fake).
  std::function<int64_t()> now;
  // Job changes for the event stream: (project, kind, JSON text).
  std::function<void(const std::string&, const std::string&, const std::string&)> publish;
};

class Jobs {
 public:
  Jobs(Store& store, RunEngine& runs, JobsOptions options);
  ~Jobs();
  void Start();
  void Shutdown();
  // Fires due jobs and settles ended ones; the thread calls it every second.
  void Tick() EXCLUDES(mu_);

  // Validates (schedule, time zone, parameter sets naming steps the pipeline has, the project
  // directory) and stores the job. Nothing is stored when a check fails.
  Result<JobRecord> Create(JobRequest request) EXCLUDES(mu_);
  Result<JobRecord> Pause(const std::string& project, const std::string& id) EXCLUDES(mu_);
  Result<JobRecord> Resume(const std::string& project, const std::string& id) EXCLUDES(mu_);
  // Ends the job ABORTED and cancels its unfinished runs.
  Result<JobRecord> Cancel(const std::string& project, const std::string& id) EXCLUDES(mu_);
  // The job if it belongs to `project` (any when empty).
  Result<JobRecord> Get(const std::string& project, const std::string& id);

 private:
  int64_t Now() const;
  void Fire(JobRecord& job, int64_t now) REQUIRES(mu_);
  void Settle(JobRecord& job, int64_t now) REQUIRES(mu_);
  void PublishJob(const JobRecord& job);

  Store& store_;
  RunEngine& runs_;
  JobsOptions options_;
  // Serialises every change to jobs (ticks and API calls).
  Mutex mu_;
  Mutex stop_mu_;
  bool stop_ GUARDED_BY(stop_mu_) = false;
  CondVar cv_;
  std::thread thread_;
};

}  // namespace berth
