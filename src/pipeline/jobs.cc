#include "pipeline/jobs.h"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <filesystem>

#include "common/crypto.h"
#include "common/log.h"
#include "common/time.h"
#include "pipeline/cron.h"

namespace berth {
namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxParameterSets = 10000;

std::string NewJobId() {
  auto hex = RandomHex(16);
  std::string h = hex.ok() ? *hex : fmt::format("{:032x}", NowUnixMillis());
  return fmt::format("{}-{}-{}-{}-{}", h.substr(0, 8), h.substr(8, 4), h.substr(12, 4),
                     h.substr(16, 4), h.substr(20, 12));
}

std::string Utc(int64_t unix_seconds) { return FormatRfc3339(unix_seconds * 1000); }

bool IsPipelineKey(const Pipeline& p, std::string_view key) {
  return key == "pipeline_parameters" || (!p.uuid.empty() && key == p.uuid);
}

PipelineStep* FindStep(Pipeline& p, std::string_view key) {
  for (auto& s : p.steps) {
    if (s.uuid == key) {
      return &s;
    }
  }
  PipelineStep* by_title = nullptr;
  for (auto& s : p.steps) {
    if (s.title == key) {
      if (by_title) {
        return nullptr;  // ambiguous
      }
      by_title = &s;
    }
  }
  return by_title;
}

// Applies one parameter set to a copy of the pipeline. InvalidArgument for a key that names
// no step, or a value that is not an object.
Status ApplySet(Pipeline& p, const json::value& set, size_t index) {
  if (!set.is_object()) {
    return Status::InvalidArgument(fmt::format(
        "parameter set {}: must be an object {{\"<step>\": {{\"param\": value}}, "
        "\"pipeline_parameters\": {{...}}}}",
        index + 1));
  }
  for (const auto& [k, v] : set.as_object()) {
    if (!v.is_object()) {
      return Status::InvalidArgument(fmt::format(
          "parameter set {}, {:?}: must be an object of parameters", index + 1,
          std::string_view(k).substr(0, 64)));
    }
    json::object* target = nullptr;
    if (IsPipelineKey(p, k)) {
      target = &p.parameters;
    } else if (PipelineStep* s = FindStep(p, k)) {
      target = &s->parameters;
    } else {
      return Status::InvalidArgument(fmt::format(
          "parameter set {}: {:?} is not a step of pipeline {} (use a step's uuid or name, or "
          "\"pipeline_parameters\")",
          index + 1, std::string_view(k).substr(0, 64), p.name));
    }
    for (const auto& [pk, pv] : v.as_object()) {
      (*target)[pk] = pv;
    }
  }
  return Status::Ok();
}

}  // namespace

Result<json::array> ParameterGrid(const json::object& grid) {
  // Flatten to (set key, parameter, values) axes, then take the product.
  struct Axis {
    std::string key;
    std::string param;
    const json::array* values;
  };
  std::vector<Axis> axes;
  for (const auto& [k, v] : grid) {
    if (!v.is_object()) {
      return Status::InvalidArgument(fmt::format(
          "grid {:?}: must be an object {{\"param\": [values...]}}", std::string_view(k)));
    }
    for (const auto& [pk, pv] : v.as_object()) {
      if (!pv.is_array() || pv.as_array().empty()) {
        return Status::InvalidArgument(fmt::format(
            "grid {:?}.{:?}: must be a non-empty list of values", std::string_view(k),
            std::string_view(pk)));
      }
      axes.push_back({std::string(k), std::string(pk), &pv.as_array()});
    }
  }
  size_t total = 1;
  for (const auto& a : axes) {
    total *= a.values->size();
    if (total > kMaxParameterSets) {
      return Status::InvalidArgument(fmt::format(
          "the grid makes more than {} parameter sets; narrow it", kMaxParameterSets));
    }
  }
  json::array out;
  for (size_t i = 0; i < total; ++i) {
    json::object set;
    size_t rest = i;
    // The last axis varies fastest, as in itertools.product.
    for (size_t a = axes.size(); a-- > 0;) {
      const Axis& ax = axes[a];
      size_t n = ax.values->size();
      json::value& slot = set[ax.key];
      if (!slot.is_object()) {
        slot = json::object{};
      }
      slot.as_object()[ax.param] = (*ax.values)[rest % n];
      rest /= n;
    }
    out.push_back(std::move(set));
  }
  return out;
}

Jobs::Jobs(Store& store, RunEngine& runs, JobsOptions options)
    : store_(store), runs_(runs), options_(std::move(options)) {}

Jobs::~Jobs() { Shutdown(); }

int64_t Jobs::Now() const { return options_.now ? options_.now() : NowUnixMillis() / 1000; }

void Jobs::Start() {
  if (!options_.threads) {
    return;
  }
  thread_ = std::thread([this] {
    for (;;) {
      {
        MutexLock lock(stop_mu_);
        cv_.WaitFor(stop_mu_, std::chrono::seconds(1), [&]() REQUIRES(stop_mu_) { return stop_; });
        if (stop_) {
          return;
        }
      }
      Tick();
    }
  });
}

void Jobs::Shutdown() {
  {
    MutexLock lock(stop_mu_);
    stop_ = true;
  }
  cv_.NotifyAll();
  if (thread_.joinable()) {
    thread_.join();
  }
}

void Jobs::PublishJob(const JobRecord& job) {
  if (options_.publish) {
    options_.publish(job.project, "job",
                     json::serialize(json::object{{"job", job.id},
                                                  {"name", job.name},
                                                  {"status", job.status},
                                                  {"message", job.message}}));
  }
}

Result<JobRecord> Jobs::Create(JobRequest req) {
  if (req.name.empty() || req.name.size() > 128) {
    return Status::InvalidArgument("name: required, up to 128 characters");
  }
  JobRecord job;
  int64_t now = Now();
  if (!req.schedule.empty()) {
    if (req.at != 0) {
      return Status::InvalidArgument(
          "a job has either a cron schedule or a time to run at, not both");
    }
    auto cron = ParseCron(req.schedule, req.time_zone);
    if (!cron.ok()) {
      return cron.status();
    }
    auto next = NextFire(*cron, now);
    if (!next) {
      return Status::InvalidArgument(
          fmt::format("cron schedule {:?} never fires", req.schedule));
    }
    job.schedule = CronToString(*cron);
    job.time_zone = cron->time_zone;
    job.next_fire = *next;
  } else {
    if (!req.time_zone.empty()) {
      return Status::InvalidArgument("time_zone: only for jobs with a cron schedule");
    }
    job.at = req.at;
    job.next_fire = req.at > now ? req.at : now;
  }
  if (req.parameter_sets.empty()) {
    req.parameter_sets.push_back(json::object{});
  }
  if (req.parameter_sets.size() > kMaxParameterSets) {
    return Status::InvalidArgument(
        fmt::format("a job takes at most {} parameter sets", kMaxParameterSets));
  }
  for (size_t i = 0; i < req.parameter_sets.size(); ++i) {
    Pipeline copy = req.pipeline;
    if (auto s = ApplySet(copy, req.parameter_sets[i], i); !s.ok()) {
      return s;
    }
  }
  // The plan of a full run: a pipeline that cannot run is refused now, not at its first fire.
  if (auto plan = PlanRun(req.pipeline, RunType::kFull, {}); !plan.ok()) {
    return plan.status();
  }
  std::error_code ec;
  if (!req.project_dir.empty() &&
      (!fs::path(req.project_dir).is_absolute() || !fs::is_directory(req.project_dir, ec))) {
    return Status::InvalidArgument(fmt::format(
        "project directory {:?} is not an existing absolute directory", req.project_dir));
  }
  job.id = NewJobId();
  job.project = req.project;
  job.name = req.name;
  job.pipeline = req.pipeline.name;
  job.definition_json = json::serialize(PipelineToJson(req.pipeline));
  job.project_dir = req.project_dir;
  job.parameters_json = json::serialize(req.parameter_sets);
  job.created_at = NowUnixMillis();
  {
    MutexLock lock(mu_);
    if (auto s = store_.CreateJob(job); !s.ok()) {
      return s;
    }
  }
  PublishJob(job);
  return job;
}

Result<JobRecord> Jobs::Get(const std::string& project, const std::string& id) {
  auto job = store_.GetJob(id);
  if (!job.ok()) {
    return job.status();
  }
  if (!project.empty() && job->project != project) {
    return Status::NotFound(fmt::format("there is no job {} in project '{}'", id, project));
  }
  return job;
}

void Jobs::Tick() {
  MutexLock lock(mu_);
  auto jobs = store_.ListJobs("", true);
  if (!jobs.ok()) {
    LogWarn("cannot list jobs", {{"error", jobs.status().message()}});
    return;
  }
  int64_t now = Now();
  for (auto& job : *jobs) {
    if (job.status == "PAUSED") {
      continue;
    }
    if (job.next_fire != 0 && job.next_fire <= now) {
      Fire(job, now);
    }
    if (job.schedule.empty() && job.status == "STARTED") {
      Settle(job, now);
    }
  }
}

void Jobs::Fire(JobRecord& job, int64_t now) {
  boost::system::error_code ec;
  json::value def = json::parse(job.definition_json, ec);
  auto pipeline = ec ? Result<Pipeline>(Status::Internal("stored job definition is not JSON"))
                     : PipelineFromJson(def);
  json::value sets = json::parse(job.parameters_json, ec);
  std::string failure;
  if (!pipeline.ok()) {
    failure = pipeline.status().message();
  } else if (ec || !sets.is_array()) {
    failure = "stored parameter sets are not a JSON list";
  }
  std::string message;
  if (!job.schedule.empty()) {
    auto cron = ParseCron(job.schedule, job.time_zone);
    if (!cron.ok()) {
      failure = cron.status().message();
    } else {
      // Slots missed while berth was down run once; say which were skipped.
      int64_t from = job.last_fire ? job.last_fire : job.next_fire - 1;
      auto missed = FiresBetween(*cron, from, now, 1000);
      if (missed.size() > 1) {
        message = fmt::format(
            "{}{} scheduled run{} missed while berth was not running (from {} to {}); ran once "
            "at {}",
            missed.size() - 1, missed.size() > 1000 ? "+" : "", missed.size() == 2 ? " was" : "s were",
            Utc(missed.front()), Utc(missed[missed.size() - 2]), Utc(now));
      }
      auto next = NextFire(*cron, now);
      job.next_fire = next ? *next : 0;
    }
  } else {
    job.next_fire = 0;
  }
  job.last_fire = now;
  if (!failure.empty()) {
    job.status = "FAILURE";
    job.finished_at = NowUnixMillis();
    job.message = "cannot run the job: " + failure;
    (void)store_.UpdateJob(job);
    PublishJob(job);
    return;
  }
  std::vector<std::string> errors;
  const json::array& list = sets.as_array();
  for (size_t i = 0; i < list.size(); ++i) {
    Pipeline copy = *pipeline;
    if (auto s = ApplySet(copy, list[i], i); !s.ok()) {
      errors.push_back(s.message());
      continue;
    }
    RunRequest req;
    req.project = job.project;
    req.pipeline = std::move(copy);
    req.kind = "job";
    req.job = job.id;
    // A snapshot of the project directory, taken now, is what this run sees.
    req.project_dir = job.project_dir;
    req.snapshot_project_dir = true;
    if (auto run = runs_.StartRun(std::move(req)); !run.ok()) {
      errors.push_back(fmt::format("parameter set {}: {}", i + 1, run.status().message()));
    }
  }
  job.status = "STARTED";
  if (!errors.empty()) {
    message += (message.empty() ? "" : "; ") +
               fmt::format("{} run{} could not start: {}", errors.size(),
                           errors.size() == 1 ? "" : "s", errors.front());
  }
  if (!message.empty()) {
    job.message = message;
  }
  if (auto s = store_.UpdateJob(job); !s.ok()) {
    LogWarn("cannot record job", {{"job", job.id}, {"error", s.message()}});
  }
  PublishJob(job);
}

void Jobs::Settle(JobRecord& job, int64_t /*now*/) {
  Store::RunFilter f;
  f.job = job.id;
  auto runs = store_.ListRuns(f);
  if (!runs.ok()) {
    return;
  }
  size_t failed = 0;
  for (const auto& r : *runs) {
    if (!RunStatusEnded(r.status)) {
      return;
    }
    failed += r.status != kSuccess ? 1 : 0;
  }
  bool none = runs->empty();
  job.status = failed > 0 || none ? kFailure : kSuccess;
  job.finished_at = NowUnixMillis();
  if (failed > 0) {
    job.message = fmt::format("{} of {} runs did not succeed", failed, runs->size());
  } else if (none) {
    job.message = job.message.empty() ? "no run could start" : job.message;
  }
  if (auto s = store_.UpdateJob(job); !s.ok()) {
    LogWarn("cannot record job", {{"job", job.id}, {"error", s.message()}});
  }
  PublishJob(job);
}

Result<JobRecord> Jobs::Pause(const std::string& project, const std::string& id) {
  MutexLock lock(mu_);
  auto job = Get(project, id);
  if (!job.ok()) {
    return job.status();
  }
  if (job->status != "PENDING" && !(job->status == "STARTED" && !job->schedule.empty())) {
    return Status::FailedPrecondition(fmt::format(
        "job {} is {}; only a job that is waiting for a run, or a scheduled one, can be paused",
        id, job->status));
  }
  job->status = "PAUSED";
  if (auto s = store_.UpdateJob(*job); !s.ok()) {
    return s;
  }
  PublishJob(*job);
  return job;
}

Result<JobRecord> Jobs::Resume(const std::string& project, const std::string& id) {
  MutexLock lock(mu_);
  auto job = Get(project, id);
  if (!job.ok()) {
    return job.status();
  }
  if (job->status != "PAUSED") {
    return Status::FailedPrecondition(
        fmt::format("job {} is {}, not PAUSED; there is nothing to resume", id, job->status));
  }
  int64_t now = Now();
  job->status = job->last_fire ? "STARTED" : "PENDING";
  if (!job->schedule.empty()) {
    // Slots that passed while paused were skipped on purpose: resume from now.
    auto cron = ParseCron(job->schedule, job->time_zone);
    if (cron.ok()) {
      auto next = NextFire(*cron, now);
      job->next_fire = next ? *next : 0;
      job->last_fire = job->last_fire ? now : 0;
    }
  }
  if (auto s = store_.UpdateJob(*job); !s.ok()) {
    return s;
  }
  PublishJob(*job);
  return job;
}

Result<JobRecord> Jobs::Cancel(const std::string& project, const std::string& id) {
  MutexLock lock(mu_);
  auto job = Get(project, id);
  if (!job.ok()) {
    return job.status();
  }
  if (RunStatusEnded(job->status)) {
    return Status::FailedPrecondition(
        fmt::format("job {} has ended already ({}); there is nothing to cancel", id,
                    job->status));
  }
  job->status = kAborted;
  job->next_fire = 0;
  job->finished_at = NowUnixMillis();
  job->message = "cancelled";
  if (auto s = store_.UpdateJob(*job); !s.ok()) {
    return s;
  }
  Store::RunFilter f;
  f.job = id;
  f.unfinished_only = true;
  if (auto open = store_.ListRuns(f); open.ok()) {
    for (const auto& r : *open) {
      (void)runs_.CancelRun(r.id);
    }
  }
  PublishJob(*job);
  return job;
}

}  // namespace berth
