#include "pipeline/run_engine.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <filesystem>
#include <set>

#include "common/crypto.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/thread.h"
#include "common/time.h"
#include "control/confinement.h"

namespace berth {
namespace json = boost::json;
namespace fs = std::filesystem;

bool RunStatusEnded(const std::string& s) { return s == kSuccess || s == kFailure || s == kAborted; }

struct RunEngine::StepExec {
  const PipelineStep* def = nullptr;  // into ActiveRun::pipeline
  std::vector<int> parents;           // indices in the run, in incoming order
  std::vector<int> children;
  StepRunRecord rec;
  bool launched = false;  // a task exists for it (running, or ended and not yet applied)
  bool dirty = false;     // rec changed since the last write
};

struct RunEngine::ActiveRun {
  RunRecord rec;  // steps live in `steps`, not rec.steps
  Pipeline pipeline;
  std::vector<StepExec> steps;
  std::map<std::string, int> index;  // step uuid -> index
  Clock::TimePoint queued_at;
  uint64_t queued_seq = 0;  // order of arrival: breaks ties of created_at (same millisecond)
  int running = 0;
  bool cancelled = false;
  bool run_dirty = false;
  std::optional<TaskContext> context;
  bool counted_job = false;  // in job_runs_
  bool services_ready = false;
  std::optional<Clock::TimePoint> services_asked;  // when it first waited for job services
};

namespace {

std::string NewUuid() {
  auto hex = RandomHex(16);
  std::string h = hex.ok() ? *hex : fmt::format("{:032x}", NowUnixMillis());
  h[12] = '4';                                          // version 4
  h[16] = "89ab"[std::stoi(h.substr(16, 1), nullptr, 16) & 3];  // RFC 4122 variant
  return fmt::format("{}-{}-{}-{}-{}", h.substr(0, 8), h.substr(8, 4), h.substr(12, 4),
                     h.substr(16, 4), h.substr(20, 12));
}

json::object PlanJson(const RunPlan& plan) {
  json::object parents;
  for (const auto& [step, ps] : plan.parents) {
    json::array a;
    for (const auto& p : ps) {
      a.emplace_back(p);
    }
    parents[step] = std::move(a);
  }
  json::array steps;
  for (const auto& s : plan.steps) {
    steps.emplace_back(s);
  }
  return {{"steps", std::move(steps)}, {"parents", std::move(parents)}};
}

Result<RunPlan> PlanFromJson(const std::string& text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) {
    return Status::Internal("a stored run plan is not JSON");
  }
  RunPlan plan;
  const json::object& o = v.get_object();
  if (const auto* steps = o.if_contains("steps"); steps && steps->is_array()) {
    for (const auto& s : steps->get_array()) {
      if (s.is_string()) {
        plan.steps.emplace_back(s.get_string());
      }
    }
  }
  if (const auto* ps = o.if_contains("parents"); ps && ps->is_object()) {
    for (const auto& [k, a] : ps->get_object()) {
      auto& list = plan.parents[std::string(k)];
      if (a.is_array()) {
        for (const auto& p : a.get_array()) {
          if (p.is_string()) {
            list.emplace_back(p.get_string());
          }
        }
      }
    }
  }
  return plan;
}

// Why a task ended, in words, for a step that did not succeed.
std::string EndMessage(const TaskStatus& t) {
  if (t.oom_killed) {
    return "killed: it used more memory than its limit";
  }
  if (!t.error.empty()) {
    return t.error;
  }
  if (t.signal != 0) {
    return fmt::format("killed by signal {}", t.signal);
  }
  if (t.exit_code) {
    return fmt::format("exited with code {}", *t.exit_code);
  }
  return "ended";
}

json::object StepJson(const StepRunRecord& s) {
  json::object o{{"step", s.step},
                 {"title", s.title},
                 {"status", s.status},
                 {"started_at", s.started_at ? json::value(FormatRfc3339Millis(s.started_at))
                                             : json::value(nullptr)},
                 {"finished_at", s.finished_at ? json::value(FormatRfc3339Millis(s.finished_at))
                                               : json::value(nullptr)}};
  if (s.exit_code) {
    o["exit_code"] = *s.exit_code;
  }
  if (!s.message.empty()) {
    o["message"] = s.message;
  }
  return o;
}

}  // namespace

std::string RunEngine::TaskId(const std::string& run, int position) {
  return fmt::format("step-{}-{}", run, position);
}

RunEngine::RunEngine(Store& store, Supervisor& runtime, Clock& clock, ContextFn context,
                     RunEngineOptions options)
    : store_(store),
      runtime_(runtime),
      clock_(clock),
      context_(std::move(context)),
      options_(std::move(options)) {
  std::error_code ec;
  fs::create_directories(options_.runs_dir, ec);
}

RunEngine::~RunEngine() { Shutdown(); }

int RunEngine::Limit() const {
  if (options_.concurrency > 0) {
    return options_.concurrency;
  }
  long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

Result<std::shared_ptr<RunEngine::ActiveRun>> RunEngine::Load(const RunRecord& rec) {
  auto run = std::make_shared<ActiveRun>();
  run->rec = rec;
  run->rec.steps.clear();
  boost::system::error_code ec;
  json::value def = json::parse(rec.definition_json, ec);
  if (ec) {
    return Status::Internal(fmt::format("run {}: its stored definition is not JSON", rec.id));
  }
  auto pipeline = PipelineFromJson(def);
  if (!pipeline.ok()) {
    return pipeline.status().WithContext(fmt::format("run {}", rec.id));
  }
  run->pipeline = std::move(*pipeline);
  auto plan = PlanFromJson(rec.plan_json);
  if (!plan.ok()) {
    return plan.status();
  }
  for (const auto& s : rec.steps) {
    StepExec e;
    e.def = run->pipeline.Find(s.step);
    if (e.def == nullptr) {
      return Status::Internal(fmt::format("run {}: step {} is not in its definition", rec.id,
                                          s.step));
    }
    e.rec = s;
    run->index[s.step] = static_cast<int>(run->steps.size());
    run->steps.push_back(std::move(e));
  }
  for (auto& e : run->steps) {
    for (const auto& p : plan->parents[e.rec.step]) {
      auto it = run->index.find(p);
      if (it != run->index.end()) {
        e.parents.push_back(it->second);
        run->steps[static_cast<size_t>(it->second)].children.push_back(
            run->index[e.rec.step]);
      }
    }
  }
  run->queued_at = clock_.Now();
  run->queued_seq = next_queued_seq_++;
  return run;
}

Status RunEngine::Start() {
  Store::RunFilter open;
  open.unfinished_only = true;
  open.with_definition = true;
  auto runs = store_.ListRuns(open);
  if (!runs.ok()) {
    return runs.status().WithContext("loading unfinished runs");
  }
  {
    MutexLock lock(mu_);
    int64_t now = NowUnixMillis();
    // Oldest first, so that the queue keeps its order across a restart.
    std::reverse(runs->begin(), runs->end());
    for (const auto& rec : *runs) {
      auto run = Load(rec);
      if (!run.ok()) {
        LogWarn("cannot resume run", {{"run", rec.id}, {"error", run.status().message()}});
        RunProgress p;
        p.run = rec.id;
        p.status = kFailure;
        p.finished_at = now;
        p.message = "berth could not resume it after a restart: " + run.status().message();
        (void)store_.SaveRunProgress(p);
        continue;
      }
      ActiveRun& r = **run;
      runs_[rec.id] = *run;
      r.counted_job = true;
      CountJobRun(r, +1);
      for (size_t i = 0; i < r.steps.size(); ++i) {
        StepExec& e = r.steps[i];
        if (RunStatusEnded(e.rec.status)) {
          continue;
        }
        std::string id = TaskId(rec.id, e.rec.position);
        by_task_[id] = {rec.id, static_cast<int>(i)};
        auto task = runtime_.Task(id);
        if (!task) {
          // Never launched (or queued in memory when the daemon died): the scheduler will.
          continue;
        }
        e.launched = true;
        ++r.running;
        ++running_;
        ++running_by_project_[r.rec.project];
        if (e.rec.status == kPending) {
          e.rec.status = kStarted;
          e.rec.started_at = task->started_at ? task->started_at : now;
          e.dirty = true;
          dirty_.push_back(rec.id);
        }
        if (TaskEnded(task->state)) {
          ApplyEnded(*task);
        }
      }
      MaybeFinishRun(r, now);
    }
    started_ = true;
    Schedule(now);
    Flush();
  }
  ApplyServiceChanges();
  if (options_.threads) {
    thread_ = std::thread([this] {
      NameThisThread("berth-runs");
      Loop();
    });
  }
  return Status::Ok();
}

void RunEngine::Shutdown() {
  {
    MutexLock lock(ended_mu_);
    stop_ = true;
  }
  cv_.NotifyAll();
  if (thread_.joinable()) {
    thread_.join();
  }
}

void RunEngine::OnTaskEnded(const TaskStatus& task) {
  if (task.owner.rfind("run:", 0) != 0) {
    return;
  }
  {
    MutexLock lock(ended_mu_);
    ended_.push_back(task);
    wake_ = true;
  }
  cv_.NotifyAll();
}

void RunEngine::Loop() {
  for (;;) {
    {
      MutexLock lock(ended_mu_);
      cv_.WaitFor(ended_mu_, std::chrono::seconds(1), [&]() REQUIRES(ended_mu_) {
        return wake_ || stop_;
      });
      if (stop_) {
        return;
      }
      wake_ = false;
    }
    Step();
  }
}

void RunEngine::Step() {
  std::vector<std::string> cancel;
  {
    MutexLock lock(mu_);
    std::vector<TaskStatus> ended;
    {
      MutexLock el(ended_mu_);
      ended.swap(ended_);
    }
    for (const auto& t : ended) {
      ApplyEnded(t);
    }
    Schedule(NowUnixMillis());
    Flush();
    cancel.swap(to_cancel_);
  }
  for (const auto& id : cancel) {
    (void)runtime_.CancelTask(id);
  }
  ApplyServiceChanges();
}

void RunEngine::ApplyEnded(const TaskStatus& task) {
  auto it = by_task_.find(task.id);
  if (it == by_task_.end()) {
    return;  // a run that has ended and been let go, or not ours
  }
  auto rit = runs_.find(it->second.first);
  if (rit == runs_.end()) {
    by_task_.erase(it);
    return;
  }
  ActiveRun& run = *rit->second;
  int index = it->second.second;
  StepExec& e = run.steps[static_cast<size_t>(index)];
  by_task_.erase(it);
  if (e.launched) {
    e.launched = false;
    --run.running;
    --running_;
    if (--running_by_project_[run.rec.project] <= 0) {
      running_by_project_.erase(run.rec.project);
    }
  }
  int64_t now = task.ended_at ? task.ended_at : NowUnixMillis();
  dirty_.push_back(run.rec.id);  // also lets a cancelled run go once its last task ended
  if (!RunStatusEnded(e.rec.status)) {
    if (task.state == TaskState::kSucceeded) {
      FinishStep(run, index, kSuccess, now, task.exit_code, "");
    } else if (task.state == TaskState::kCancelled) {
      FinishStep(run, index, kAborted, now, task.exit_code, "cancelled");
    } else {
      FinishStep(run, index, kFailure, now, task.exit_code, EndMessage(task));
    }
  }
  MaybeFinishRun(run, now);
}

void RunEngine::FinishStep(ActiveRun& run, int index, const std::string& status, int64_t now,
                           std::optional<int> exit_code, const std::string& message) {
  StepExec& e = run.steps[static_cast<size_t>(index)];
  if (RunStatusEnded(e.rec.status)) {
    return;
  }
  e.rec.status = status;
  e.rec.finished_at = now;
  e.rec.exit_code = exit_code;
  e.rec.message = message;
  e.dirty = true;
  dirty_.push_back(run.rec.id);
  Publish(run, "step", index);
  if (status == kFailure) {
    // Every descendant is ABORTED and never starts; independent branches go on.
    std::vector<int> todo = e.children;
    std::set<int> seen;
    while (!todo.empty()) {
      int c = todo.back();
      todo.pop_back();
      if (!seen.insert(c).second) {
        continue;
      }
      StepExec& d = run.steps[static_cast<size_t>(c)];
      if (!RunStatusEnded(d.rec.status) && !d.launched) {
        d.rec.status = kAborted;
        d.rec.finished_at = now;
        d.rec.message = fmt::format("not run: step {} failed", StepLabel(*e.def));
        d.dirty = true;
        Publish(run, "step", c);
      }
      todo.insert(todo.end(), d.children.begin(), d.children.end());
    }
  }
}

void RunEngine::MaybeFinishRun(ActiveRun& run, int64_t now) {
  if (RunStatusEnded(run.rec.status)) {
    return;
  }
  bool failed = false;
  for (const auto& e : run.steps) {
    if (!RunStatusEnded(e.rec.status)) {
      return;
    }
    failed = failed || e.rec.status == kFailure || e.rec.status == kAborted;
  }
  run.rec.status = run.cancelled ? kAborted : failed ? kFailure : kSuccess;
  run.rec.finished_at = now;
  if (run.rec.started_at == 0) {
    run.rec.started_at = now;
  }
  if (failed && !run.cancelled) {
    std::vector<std::string> names;
    for (const auto& e : run.steps) {
      if (e.rec.status == kFailure) {
        names.push_back(StepLabel(*e.def));
      }
    }
    run.rec.message = fmt::format("step{} {} failed", names.size() == 1 ? "" : "s",
                                  fmt::join(names, ", "));
  }
  run.run_dirty = true;
  dirty_.push_back(run.rec.id);
  Publish(run, "run", -1);
}

int RunEngine::Priority(const ActiveRun& run, int64_t /*now*/) const {
  if (run.rec.kind != "job") {
    return 0;
  }
  return clock_.Now() - run.queued_at >= options_.job_aging ? 0 : 1;
}

void RunEngine::Schedule(int64_t now) {
  if (!started_) {
    return;
  }
  int limit = Limit();
  while (running_ < limit) {
    // The next step: the best run (class, then the project with fewer running steps, then
    // the older run) that has a ready step and room under its pipeline's limit.
    ActiveRun* best = nullptr;
    int best_step = -1;
    std::tuple<int, int, int64_t, uint64_t> best_key{};
    for (auto& [id, rp] : runs_) {
      ActiveRun& r = *rp;
      if (r.cancelled || RunStatusEnded(r.rec.status)) {
        continue;
      }
      if (r.pipeline.concurrency > 0 && r.running >= r.pipeline.concurrency) {
        continue;
      }
      if (r.rec.kind == "job" && options_.job_services_ready && r.running == 0 &&
          !r.services_ready) {
        // Its jobs-scoped services start with it: wait for them, but not forever.
        if (!r.services_asked) {
          r.services_asked = clock_.Now();
        }
        if (options_.job_services_ready(r.rec.project) ||
            clock_.Now() - *r.services_asked >= options_.job_services_wait) {
          r.services_ready = true;
        } else {
          continue;
        }
      }
      int ready = -1;
      for (size_t i = 0; i < r.steps.size() && ready < 0; ++i) {
        const StepExec& e = r.steps[i];
        if (e.launched || RunStatusEnded(e.rec.status)) {
          continue;
        }
        bool ok = std::all_of(e.parents.begin(), e.parents.end(), [&](int p) {
          return r.steps[static_cast<size_t>(p)].rec.status == kSuccess;
        });
        if (ok) {
          ready = static_cast<int>(i);
        }
      }
      if (ready < 0) {
        continue;
      }
      auto pr = running_by_project_.find(r.rec.project);
      std::tuple<int, int, int64_t, uint64_t> key{
          Priority(r, now), pr == running_by_project_.end() ? 0 : pr->second, r.rec.created_at,
          r.queued_seq};
      if (best == nullptr || key < best_key) {
        best = &r;
        best_step = ready;
        best_key = key;
      }
    }
    if (best == nullptr) {
      return;
    }
    if (auto s = Launch(*best, best_step, now); !s.ok()) {
      StepExec& e = best->steps[static_cast<size_t>(best_step)];
      FinishStep(*best, best_step, kFailure, now, std::nullopt,
                 "berth could not start it: " + s.message());
      (void)e;
      MaybeFinishRun(*best, now);
    }
  }
}

Status RunEngine::Launch(ActiveRun& run, int index, int64_t now) {
  StepExec& e = run.steps[static_cast<size_t>(index)];
  const PipelineStep& step = *e.def;
  if (!run.context) {
    auto c = context_(run.rec.project);
    if (!c.ok()) {
      return c.status();
    }
    run.context = std::move(*c);
  }
  const TaskContext& ctx = *run.context;
  std::string run_dir = RunDir(run.rec.id);
  std::string out_dir = fmt::format("{}/outputs/{}", run_dir, e.rec.position);
  std::error_code ec;
  fs::create_directories(out_dir, ec);

  TaskSpec spec;
  spec.id = TaskId(run.rec.id, e.rec.position);
  spec.owner = "run:" + run.rec.id;
  spec.cwd = run.rec.project_dir;
  spec.memory_limit_bytes = step.memory_limit_bytes;
  spec.grace_seconds = options_.grace_seconds;
  switch (step.kind) {
    case StepKind::kCommand:
      spec.argv = {"/bin/sh", "-c", step.command};
      break;
    case StepKind::kPython:
      spec.argv = {options_.python, step.file_path};
      break;
    case StepKind::kShell:
      spec.argv = {"/bin/sh", step.file_path};
      break;
    case StepKind::kNotebook: {
      // Executed into the run's own copy; the project's notebook is never written.
      fs::create_directories(run_dir + "/notebooks", ec);
      std::string copy = fmt::format("{}/notebooks/{}-{}", run_dir, e.rec.position,
                                     fs::path(step.file_path).filename().string());
      spec.argv = {options_.python, "-m", "berth.notebook", step.file_path, copy};
      break;
    }
    case StepKind::kR:
      spec.argv = {"Rscript", step.file_path};
      break;
  }

  std::map<std::string, std::string> env = ctx.base_env;
  using Env = std::map<std::string, std::string>;
  for (const Env* layer : std::array<const Env*, 3>{&ctx.project_env, &run.pipeline.env, &step.env}) {
    for (const auto& [k, v] : *layer) {
      env[k] = v;
    }
  }
  // Where each incoming step's outputs are, in incoming order: this run's, or for a parent
  // outside the run (a selection), the outputs of the last run in which it succeeded.
  json::array inputs;
  for (const auto& parent : step.incoming) {
    std::string dir;
    auto pi = run.index.find(parent);
    if (pi != run.index.end()) {
      dir = fmt::format("{}/outputs/{}", run_dir, run.steps[static_cast<size_t>(pi->second)].rec.position);
    } else if (auto latest = ReadFile(fmt::format("{}/latest/{}", options_.runs_dir,
                                                  Sha256Hex(run.rec.project + "\n" +
                                                            run.rec.pipeline + "\n" + parent)
                                                      .substr(0, 32)));
               latest.ok()) {
      dir = *latest;
    }
    inputs.push_back(json::object{
        {"step", parent}, {"dir", dir.empty() ? json::value(nullptr) : json::value(dir)}});
  }
  std::string pipeline_uuid =
      !run.rec.pipeline_uuid.empty() ? run.rec.pipeline_uuid : run.pipeline.uuid;
  std::string project_uuid =
      !run.rec.client_project_uuid.empty() ? run.rec.client_project_uuid : run.rec.project;
  env["BERTH_URL"] = ctx.berth_url;
  env["BERTH_TOKEN"] = ctx.token;
  env["BERTH_PROJECT"] = run.rec.project;
  env["BERTH_RUN"] = run.rec.id;
  env["BERTH_STEP"] = step.uuid;
  env["BERTH_RUN_DIR"] = run_dir;
  env["BERTH_STEP_OUTPUT_DIR"] = out_dir;
  // One environment string is limited to 128 KiB (MAX_ARG_STRLEN): a step with very many
  // parents gets its inputs in a file instead.
  std::string inputs_text = json::serialize(inputs);
  if (inputs_text.size() > 16 * 1024) {
    std::string path = fmt::format("{}/inputs-{}.json", run_dir, e.rec.position);
    if (auto s = WriteFileAtomic(path, inputs_text, 0644, Durability::kProcessCrash); !s.ok()) {
      return s.WithContext("writing the step's inputs");
    }
    inputs_text = "@" + path;
  }
  env["BERTH_STEP_INPUTS"] = inputs_text;
  env["BERTH_DATA_DIR"] = ctx.data_dir;
  env["ORCHEST_STEP_UUID"] = step.uuid;
  env["ORCHEST_PIPELINE_UUID"] = pipeline_uuid;
  env["ORCHEST_PROJECT_UUID"] = project_uuid;
  env["ORCHEST_PIPELINE_PATH"] = run_dir + "/pipeline.json";
  env["ORCHEST_SESSION_UUID"] = project_uuid + "-" + pipeline_uuid;
  env["ORCHEST_SESSION_TYPE"] = run.rec.kind == "job" ? "noninteractive" : "interactive";
  env["PYTHONUNBUFFERED"] = "1";
  for (const auto& [k, v] : env) {
    spec.env.push_back(k + "=" + v);
  }
  // Confined as the project's services are: its run directory (outputs, notebooks) is its
  // own, the project directory it runs in writable, the outputs it reads from earlier runs
  // read-only.
  spec.sandbox = ctx.sandbox;
  if (!spec.sandbox.empty() && spec.sandbox.uid != 0) {
    // A directory an admin named outside the project's own (`berth run` in a working copy):
    // its steps run as the directory's owner, as `sudo -u` would, so that they may write
    // there and what they write is the owner's. Project tokens cannot name such directories.
    std::string own = fs::path(ctx.project_dir).parent_path().string();
    std::string where = fs::path(run.rec.project_dir).lexically_normal().string();
    struct stat st {};
    if (where != own && !where.starts_with(own + "/") && !where.starts_with(run_dir + "/") &&
        ::stat(where.c_str(), &st) == 0) {
      spec.sandbox.uid = st.st_uid;
      spec.sandbox.gid = st.st_uid == 0 ? 0 : st.st_gid;
    }
  }
  if (!spec.sandbox.empty()) {
    if (spec.sandbox.uid != 0) {
      for (const auto& dir : {run_dir, out_dir}) {
        if (auto s = GiveToUser(dir, spec.sandbox.uid, spec.sandbox.gid); !s.ok()) {
          return s;
        }
      }
      if (step.kind == StepKind::kNotebook) {
        (void)GiveToUser(run_dir + "/notebooks", spec.sandbox.uid, spec.sandbox.gid);
      }
    }
    spec.sandbox.binds.push_back({run_dir, run_dir, true});
    spec.sandbox.binds.push_back({run.rec.project_dir, run.rec.project_dir, true});
    for (const auto& in : inputs) {
      const json::value* dir = in.as_object().if_contains("dir");
      if (dir && dir->is_string() && !std::string_view(dir->as_string()).starts_with(run_dir)) {
        std::string d(dir->as_string());
        spec.sandbox.binds.push_back({d, d, false});
      }
    }
  }

  if (e.rec.status == kPending) {
    e.rec.status = kStarted;
    e.rec.started_at = now;
    e.dirty = true;
    dirty_.push_back(run.rec.id);
  }
  if (run.rec.status == kPending) {
    run.rec.status = kStarted;
    run.rec.started_at = now;
    run.run_dirty = true;
  }
  // The store hears of STARTED before the task can end (Flush runs before the next pass).
  if (auto s = runtime_.StartTask(std::move(spec)); !s.ok()) {
    return s;
  }
  by_task_[TaskId(run.rec.id, e.rec.position)] = {run.rec.id, index};
  e.launched = true;
  ++run.running;
  ++running_;
  ++running_by_project_[run.rec.project];
  Publish(run, "step", index);
  return Status::Ok();
}

void RunEngine::Flush() {
  std::sort(dirty_.begin(), dirty_.end());
  dirty_.erase(std::unique(dirty_.begin(), dirty_.end()), dirty_.end());
  for (const auto& id : dirty_) {
    auto it = runs_.find(id);
    if (it == runs_.end()) {
      continue;
    }
    ActiveRun& run = *it->second;
    RunProgress p;
    p.run = id;
    // Steps are written before the run's end: a reader never sees an ended run with open steps.
    for (auto& e : run.steps) {
      if (e.dirty) {
        p.steps.push_back(e.rec);
        e.dirty = false;
        if (e.rec.status == kSuccess) {
          // The latest outputs of this step, for selection runs that read them later.
          std::string key = Sha256Hex(run.rec.project + "\n" + run.rec.pipeline + "\n" + e.rec.step)
                                .substr(0, 32);
          std::error_code ec;
          fs::create_directories(options_.runs_dir + "/latest", ec);
          (void)WriteFileAtomic(options_.runs_dir + "/latest/" + key,
                                fmt::format("{}/outputs/{}", RunDir(id), e.rec.position), 0600,
                                Durability::kProcessCrash);
        }
      }
    }
    if (run.run_dirty || run.rec.status != kPending) {
      p.status = run.rec.status;
      p.started_at = run.rec.started_at;
      p.finished_at = run.rec.finished_at;
      if (!run.rec.message.empty()) {
        p.message = run.rec.message;
      }
      run.run_dirty = false;
    }
    if (auto s = store_.SaveRunProgress(p); !s.ok()) {
      LogWarn("cannot record run progress", {{"run", id}, {"error", s.message()}});
    }
    if (RunStatusEnded(run.rec.status) && run.running == 0) {
      if (run.counted_job) {
        CountJobRun(run, -1);
      }
      runs_.erase(it);
    }
  }
  dirty_.clear();
}

void RunEngine::Publish(const ActiveRun& run, const std::string& kind, int step_index) {
  if (!options_.publish) {
    return;
  }
  json::object o{{"run", run.rec.id},
                 {"pipeline", run.rec.pipeline},
                 {"status", run.rec.status}};
  if (step_index >= 0) {
    o["step"] = StepJson(run.steps[static_cast<size_t>(step_index)].rec);
  }
  options_.publish(run.rec.project, kind == "run" ? "run" : "run-step", json::serialize(o));
}

void RunEngine::CountJobRun(const ActiveRun& run, int delta) {
  if (run.rec.kind != "job" || !options_.job_services) {
    return;
  }
  int& n = job_runs_[run.rec.project];
  n += delta;
  if (delta > 0 && n == 1) {
    service_changes_.emplace_back(run.rec.project, true);
  } else if (delta < 0 && n == 0) {
    job_runs_.erase(run.rec.project);
    service_changes_.emplace_back(run.rec.project, false);
  }
}

void RunEngine::ApplyServiceChanges() {
  std::vector<std::pair<std::string, bool>> changes;
  {
    MutexLock lock(mu_);
    changes.swap(service_changes_);
  }
  for (const auto& [project, running] : changes) {
    options_.job_services(project, running);
  }
}

Result<RunRecord> RunEngine::StartRun(RunRequest req) {
  auto plan = PlanRun(req.pipeline, req.type, req.selection, req.include_selected);
  if (!plan.ok()) {
    return plan.status();
  }
  if (req.project_dir.empty()) {
    auto c = context_(req.project);
    if (!c.ok()) {
      return c.status();
    }
    req.project_dir = c->project_dir;
  }
  std::error_code ec;
  if (!fs::path(req.project_dir).is_absolute() || !fs::is_directory(req.project_dir, ec)) {
    return Status::InvalidArgument(fmt::format(
        "project directory {:?} is not an existing absolute directory; the steps run there",
        req.project_dir));
  }
  // A step whose file is missing would only fail later: say so now, for every such step.
  std::vector<std::string> missing;
  for (const auto& uuid : plan->steps) {
    const PipelineStep* s = req.pipeline.Find(uuid);
    if (s && !s->file_path.empty() &&
        !fs::is_regular_file(fs::path(req.project_dir) / s->file_path, ec)) {
      missing.push_back(fmt::format("{} ({})", StepLabel(*s), s->file_path));
    }
  }
  if (!missing.empty()) {
    return Status::InvalidArgument(fmt::format("steps name files that do not exist in {}: {}",
                                               req.project_dir, fmt::join(missing, ", ")));
  }

  RunRecord rec;
  rec.id = NewUuid();
  rec.project = req.project;
  rec.pipeline = req.pipeline.name;
  rec.pipeline_uuid = req.pipeline.uuid;
  rec.client_project_uuid = req.client_project_uuid;
  rec.run_type = RunTypeName(req.type);
  rec.kind = req.kind;
  rec.job = req.job;
  json::object frozen = PipelineToJson(req.pipeline);
  rec.definition_json = json::serialize(frozen);
  rec.plan_json = json::serialize(PlanJson(*plan));
  rec.project_dir = req.project_dir;
  rec.created_at = NowUnixMillis();
  for (size_t i = 0; i < plan->steps.size(); ++i) {
    StepRunRecord s;
    s.step = plan->steps[i];
    s.title = req.pipeline.Find(s.step)->title;
    s.position = static_cast<int>(i);
    rec.steps.push_back(std::move(s));
  }
  // The frozen definition is on disk before the run exists: a step reads its parameters there.
  std::string dir = RunDir(rec.id);
  fs::create_directories(dir + "/outputs", ec);
  if (req.snapshot_project_dir) {
    std::string snap = dir + "/project";
    fs::copy(req.project_dir, snap,
             fs::copy_options::recursive | fs::copy_options::copy_symlinks, ec);
    if (ec) {
      fs::remove_all(dir, ec);
      return Status::Internal(fmt::format("cannot snapshot the project directory {}: {}",
                                          req.project_dir, ec.message()));
    }
    rec.project_dir = snap;
  }
  if (auto s = WriteFileAtomic(dir + "/pipeline.json", rec.definition_json, 0644); !s.ok()) {
    return s.WithContext("writing the run's definition");
  }
  if (auto s = store_.CreateRun(rec); !s.ok()) {
    fs::remove_all(dir, ec);
    return s;
  }
  {
    MutexLock lock(mu_);
    auto run = Load(rec);
    if (!run.ok()) {
      return run.status();
    }
    runs_[rec.id] = *run;
    (*run)->counted_job = true;
    CountJobRun(**run, +1);
    Schedule(NowUnixMillis());
    Flush();
    auto it = runs_.find(rec.id);
    if (it != runs_.end()) {
      rec.status = it->second->rec.status;
      rec.started_at = it->second->rec.started_at;
      for (size_t i = 0; i < rec.steps.size(); ++i) {
        rec.steps[i] = it->second->steps[i].rec;
      }
    }
    if (it != runs_.end()) {
      Publish(*it->second, "run", -1);
    }
  }
  ApplyServiceChanges();
  return rec;
}

Result<RunRecord> RunEngine::CancelRun(const std::string& id) {
  std::vector<std::string> cancel;
  {
    MutexLock lock(mu_);
    auto it = runs_.find(id);
    if (it == runs_.end() || RunStatusEnded(it->second->rec.status)) {
      auto stored = store_.GetRun(id);
      if (!stored.ok()) {
        return stored.status();
      }
      return Status::FailedPrecondition(fmt::format(
          "run {} has ended already ({}); there is nothing to cancel", id, stored->status));
    }
    ActiveRun& run = *it->second;
    run.cancelled = true;
    int64_t now = NowUnixMillis();
    for (size_t i = 0; i < run.steps.size(); ++i) {
      StepExec& e = run.steps[i];
      if (RunStatusEnded(e.rec.status)) {
        continue;
      }
      if (e.launched) {
        cancel.push_back(TaskId(id, e.rec.position));
      }
      e.rec.status = kAborted;
      e.rec.finished_at = now;
      e.rec.message = "the run was cancelled";
      e.dirty = true;
      Publish(run, "step", static_cast<int>(i));
    }
    dirty_.push_back(id);
    MaybeFinishRun(run, now);
    auto rec = run.rec;
    for (const auto& e : run.steps) {
      rec.steps.push_back(e.rec);
    }
    Flush();
    lock.Unlock();
    for (const auto& t : cancel) {
      (void)runtime_.CancelTask(t);
    }
    ApplyServiceChanges();
    return rec;
  }
}

std::string RunEngine::WaitReason(const std::string& id) const {
  MutexLock lock(mu_);
  auto it = runs_.find(id);
  if (it == runs_.end()) {
    return "";
  }
  const ActiveRun& run = *it->second;
  if (run.running > 0 || RunStatusEnded(run.rec.status)) {
    return "";
  }
  if (run.rec.kind == "job" && run.services_asked && !run.services_ready) {
    return "waiting for the project's jobs-scoped services to be ready";
  }
  int limit = Limit();
  int ahead = 0;
  int interactive_ahead = 0;
  for (const auto& [oid, o] : runs_) {
    // Runs ahead in the queue: those waiting with a better place.
    if (oid == id || o->cancelled || RunStatusEnded(o->rec.status) || o->running > 0) {
      continue;
    }
    bool before = std::make_tuple(Priority(*o, 0), o->rec.created_at, o->queued_seq) <
                  std::make_tuple(Priority(run, 0), run.rec.created_at, run.queued_seq);
    if (before) {
      ++ahead;
      if (o->rec.kind != "job") {
        ++interactive_ahead;
      }
    }
  }
  std::string why = fmt::format("waiting for a free slot: {} of {} steps are running", running_,
                                limit);
  if (running_ < limit) {
    why = "waiting to be scheduled";
  }
  if (ahead > 0) {
    why += fmt::format("; {} run{} ahead", ahead, ahead == 1 ? "" : "s");
    if (interactive_ahead > 0 && run.rec.kind == "job") {
      why += fmt::format(" ({} interactive)", interactive_ahead);
    }
  }
  return why;
}

std::string RunEngine::StepDir(const std::string& run, int position) const {
  auto t = runtime_.Task(TaskId(run, position));
  return t ? t->dir : std::string();
}

Status RunEngine::ForgetRun(const RunRecord& run) {
  {
    MutexLock lock(mu_);
    if (runs_.count(run.id) > 0) {
      return Status::FailedPrecondition(
          fmt::format("run {} is {}; cancel it first", run.id, run.status));
    }
  }
  for (const auto& s : run.steps) {
    (void)runtime_.ForgetTask(TaskId(run.id, s.position));
  }
  std::error_code ec;
  fs::remove_all(RunDir(run.id), ec);
  return Status::Ok();
}

}  // namespace berth
