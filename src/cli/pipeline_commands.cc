// Pipelines (seed 004) from the command line: `berth pipelines add|ls|show|rm`, `berth run`
// with a live view of the run, `berth runs ls|show|logs|cancel|rm`, and
// `berth jobs create|ls|show|pause|resume|cancel`.
#include <fmt/format.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <array>
#include <map>
#include <optional>
#include <thread>

#include "cli/command_util.h"
#include "cli/output.h"
#include "common/file_util.h"
#include "common/time.h"

namespace berth {
namespace json = boost::json;
namespace fs = std::filesystem;
namespace {

// Milliseconds since the epoch of an API time ("2026-11-22T07:40:00.123Z"); nullopt for null.
std::optional<int64_t> ParseTime(const json::value& v) {
  if (!v.is_string()) {
    return std::nullopt;
  }
  std::tm tm{};
  int millis = 0;
  int n = std::sscanf(v.get_string().c_str(), "%d-%d-%dT%d:%d:%d.%3d", &tm.tm_year, &tm.tm_mon,
                      &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &millis);
  if (n < 6) {
    return std::nullopt;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<int64_t>(timegm(&tm)) * 1000 + (n == 7 ? millis : 0);
}

std::string FormatDuration(int64_t ms) {
  ms = std::max<int64_t>(ms, 0);  // the daemon's clock may run a little ahead of ours
  if (ms < 1000) {
    return fmt::format("{}ms", ms);
  }
  if (ms < 60'000) {
    return fmt::format("{:.1f}s", static_cast<double>(ms) / 1000);
  }
  int64_t s = ms / 1000;
  if (s < 3600) {
    return fmt::format("{}m{:02}s", s / 60, s % 60);
  }
  return fmt::format("{}h{:02}m", s / 3600, s % 3600 / 60);
}

// From started_at to finished_at, or to now while it runs; "-" before it started.
std::string Elapsed(const json::value& v) {
  auto start = ParseTime(Field(v, "started_at"));
  if (!start) {
    return "-";
  }
  return FormatDuration(ParseTime(Field(v, "finished_at")).value_or(NowUnixMillis()) - *start);
}

bool Ended(const std::string& status) {
  return status == "SUCCESS" || status == "FAILURE" || status == "ABORTED";
}

// "load" in berth's form (the name is the uuid); "load (3f2a...)" for Orchest's uuids.
std::string StepName(const json::value& step, std::string_view uuid_key = "step") {
  std::string uuid = Str(Field(step, uuid_key));
  std::string title = Str(Field(step, "title"));
  return title.empty() || title == "-" || title == uuid ? uuid
                                                        : fmt::format("{} ({})", title, uuid);
}

// "1 step", "3 steps".
std::string Steps(size_t n) { return fmt::format("{} step{}", n, n == 1 ? "" : "s"); }

// A stored pipeline's number of steps: "steps" where the answer has it, else its definition's.
size_t StepCount(const json::value& pipeline) {
  if (const json::value& n = Field(pipeline, "steps"); n.is_number()) {
    return n.to_number<size_t>();
  }
  const json::value& steps = Field(Field(pipeline, "definition"), "steps");
  return steps.is_object() ? steps.get_object().size() : 0;
}

std::string AbsoluteDir(const std::string& dir) {
  return fs::absolute(dir).lexically_normal().string();
}

// Calls the API; a 404 gets `hint` (how to find what was missing) after the message, and for
// a pipeline how to add one unless the daemon's message says so already.
[[noreturn]] void FailWithHint(const Status& s, const std::string& hint) {
  if (s.code() == StatusCode::kNotFound) {
    std::string message = s.message();
    if (message.find("no pipeline") != std::string::npos &&
        message.find("berth pipelines add") == std::string::npos) {
      message += "; add it with 'berth pipelines add FILE'";
    }
    Fail(Status(StatusCode::kNotFound, message + "; " + hint));
  }
  Fail(s);
}

json::value CallOrHint(std::string_view method, const std::string& path, const json::value* body,
                       const std::string& hint) {
  auto r = Client().Call(method, path, body);
  if (!r.ok()) {
    FailWithHint(r.status(), hint);
  }
  return r->body;
}

const char kPipelinesHint[] = "'berth pipelines ls' lists the pipelines";
const char kRunHint[] =
    "'berth pipelines ls' lists the pipelines, and 'berth run FILE' runs a pipeline file once "
    "without storing it";
const char kRunsHint[] = "'berth runs ls' lists the runs";

// RUN PIPELINE TYPE STATUS STEPS CREATED DURATION, for `runs ls` and `pipelines show`.
std::string RunsTable(const json::value& runs) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : runs.as_array()) {
    size_t done = 0;
    for (const auto& s : Items(r, "steps")) {
      done += Str(Field(s, "status")) == "SUCCESS";
    }
    std::string status = Str(Field(r, "status"));
    if (Field(r, "waiting").is_string()) {
      status += " (queued)";
    }
    rows.push_back({Str(Field(r, "uuid")), Str(Field(r, "pipeline")), Str(Field(r, "run_type")),
                    status, fmt::format("{}/{} done", done, Items(r, "steps").size()),
                    Str(Field(r, "created_at")), Elapsed(r)});
  }
  return FormatTable({"RUN", "PIPELINE", "TYPE", "STATUS", "STEPS", "CREATED", "DURATION"}, rows);
}

// STEP STATUS DURATION, and EXIT MESSAGE with `details`.
std::string StepsTable(const json::value& run, bool details) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& s : Items(run, "steps")) {
    rows.push_back({StepName(s), Str(Field(s, "status")), Elapsed(s)});
    if (details) {
      rows.back().push_back(Str(Field(s, "exit_code")));
      rows.back().push_back(OneLine(Str(Field(s, "message")), 80));
    }
  }
  if (details) {
    return FormatTable({"STEP", "STATUS", "DURATION", "EXIT", "MESSAGE"}, rows);
  }
  return FormatTable({"STEP", "STATUS", "DURATION"}, rows);
}

std::string DescribeRun(const json::value& r) {
  std::string id = Str(Field(r, "uuid"));
  std::string message = Str(Field(r, "message"));
  std::string out = fmt::format("Run:       {}\n", id);
  out += fmt::format("Pipeline:  {} ({} run, {})\n", Str(Field(r, "pipeline")),
                     Str(Field(r, "run_type")), Str(Field(r, "kind")));
  out += fmt::format("Project:   {}\n", Str(Field(r, "project")));
  out += fmt::format("Status:    {}{}\n", Str(Field(r, "status")),
                     message.empty() || message == "-" ? "" : " — " + message);
  if (Field(r, "waiting").is_string()) {
    out += fmt::format("Queued:    {}\n", Str(Field(r, "waiting")));
  }
  std::string dir = Str(Field(r, "project_dir"));
  out += fmt::format("Directory: {}\n", dir.empty() ? "(the project's)" : dir);
  out += fmt::format("Created:   {}\n", Str(Field(r, "created_at")));
  out += fmt::format("Started:   {}\n", Str(Field(r, "started_at")));
  out += fmt::format("Finished:  {}\n", Str(Field(r, "finished_at")));
  out += fmt::format("Duration:  {}\n", Elapsed(r));
  out += "Steps:\n" + StepsTable(r, true);
  for (const auto& s : Items(r, "steps")) {
    if (Str(Field(s, "status")) == "FAILURE") {
      out += fmt::format("See why {} failed: berth runs logs {} {}\n", Str(Field(s, "step")), id,
                         Str(Field(s, "step")));
    }
  }
  return out;
}

std::string LogLineText(const json::value& l) {
  return fmt::format("{} {:6} {}", Str(Field(l, "time")), Str(Field(l, "stream")),
                     Str(Field(l, "message")));
}

// --- the live view of `berth run` ------------------------------------------------------------

volatile std::sig_atomic_t g_interrupted = 0;
extern "C" void OnInterrupt(int) { g_interrupted = 1; }

// SIGINT only stops the watching (the run goes on in the daemon) while this is alive.
class InterruptGuard {
 public:
  InterruptGuard() {
    g_interrupted = 0;
    struct sigaction sa {};
    sa.sa_handler = OnInterrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_);
  }
  ~InterruptGuard() { sigaction(SIGINT, &old_, nullptr); }
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;

 private:
  struct sigaction old_ {};
};

size_t TerminalWidth() {
  winsize ws{};
  if (ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
    return ws.ws_col;
  }
  return 80;
}

// Redraws a block of lines in place: up over the previous block, clear, print. Lines are cut
// to the terminal's width so that none wraps and throws the count off.
class LiveBlock {
 public:
  void Draw(const std::string& text) {
    if (text == last_) {
      return;
    }
    last_ = text;
    std::string out;
    if (lines_ > 0) {
      out += fmt::format("\033[{}A\r\033[J", lines_);
    }
    size_t width = TerminalWidth();
    lines_ = 0;
    size_t pos = 0;
    while (pos < text.size()) {
      size_t nl = text.find('\n', pos);
      std::string line = text.substr(pos, nl == std::string::npos ? nl : nl - pos);
      if (line.size() >= width) {
        line.resize(width - 1);
      }
      out += line + "\n";
      ++lines_;
      pos = nl == std::string::npos ? text.size() : nl + 1;
    }
    std::cout << out << std::flush;
  }

 private:
  std::string last_;
  size_t lines_ = 0;
};

std::string LiveText(const json::value& run) {
  std::string out = fmt::format("Run {} ({}, {}): {}\n", Str(Field(run, "uuid")),
                                Str(Field(run, "pipeline")), Str(Field(run, "run_type")),
                                Str(Field(run, "status")));
  if (Field(run, "waiting").is_string()) {
    out += fmt::format("Queued: {}\n", Str(Field(run, "waiting")));
  }
  return out + StepsTable(run, false);
}

// Without a terminal: a line for each step status seen to change ("extract SUCCESS 1.2s"),
// and the queue's reason when it changes.
class ChangePrinter {
 public:
  void Print(const json::value& run) {
    std::string waiting = Str(Field(run, "waiting"));
    if (waiting != waiting_ && waiting != "-") {
      std::cout << "queued: " << waiting << "\n";
    }
    waiting_ = waiting;
    for (const auto& s : Items(run, "steps")) {
      // Orchest's steps by their title: a line is read, not parsed.
      std::string title = Str(Field(s, "title"));
      std::string name = title.empty() || title == "-" ? Str(Field(s, "step")) : title;
      std::string status = Str(Field(s, "status"));
      std::string& seen = seen_[Str(Field(s, "step"))];
      if (status == seen || status == "PENDING") {
        continue;
      }
      // A step that started and ended between two polls was seen neither way: say both.
      if (seen.empty() && status != "STARTED" && Field(s, "started_at").is_string()) {
        std::cout << name << " STARTED\n";
      }
      seen = status;
      if (status == "STARTED") {
        std::cout << name << " STARTED\n";
      } else if (Field(s, "started_at").is_string()) {
        std::cout << fmt::format("{} {} {}\n", name, status, Elapsed(s));
      } else {
        std::cout << fmt::format("{} {}\n", name, status);
      }
    }
    std::cout << std::flush;
  }

 private:
  std::string waiting_ = "-";
  std::map<std::string, std::string> seen_;
};

// After the end: the run's status and duration, and for each failed step its message and the
// last lines it wrote.
void PrintOutcome(const json::value& run, const CommonOptions& opts) {
  std::string id = Str(Field(run, "uuid"));
  std::string message = Str(Field(run, "message"));
  std::cout << fmt::format("Run {} {} in {}{}\n", id, Str(Field(run, "status")), Elapsed(run),
                           message.empty() || message == "-" ? "" : ": " + message);
  for (const auto& s : Items(run, "steps")) {
    if (Str(Field(s, "status")) != "FAILURE") {
      continue;
    }
    std::string step = Str(Field(s, "step"));
    std::cout << fmt::format("\nStep {} failed: {}\n", StepName(s), Str(Field(s, "message")));
    auto logs = Client().Call(
        "GET", WithProject(fmt::format("/api/v1/runs/{}/steps/{}/logs?tail=10", Escape(id),
                                       Escape(step)),
                           opts));
    if (!logs.ok()) {
      std::cout << "  (its logs could not be read: " << logs.status().message() << ")\n";
      continue;
    }
    const auto& lines = Items(logs->body, "lines");
    if (lines.empty()) {
      std::cout << "  (it wrote no log lines)\n";
    }
    for (const auto& l : lines) {
      std::cout << fmt::format("  {:6} {}\n", Str(Field(l, "stream")), Str(Field(l, "message")));
    }
    std::cout << fmt::format("All of its logs: berth runs logs {} {}\n", id, step);
  }
}

// Polls the run every 200 ms until it ends; a redrawn table on a terminal, else a line per
// change; silent with -o json, which prints the ended run. Exits 0 for SUCCESS, 1 otherwise,
// 130 on Ctrl-C (the run goes on).
void WatchRun(json::value run, const CommonOptions& opts) {
  std::string id = Str(Field(run, "uuid"));
  std::string path = WithProject("/api/v1/runs/" + Escape(id), opts);
  bool human = opts.output != "json";
  bool tty = human && isatty(1) != 0;
  LiveBlock live;
  ChangePrinter changes;
  if (human && !tty) {
    std::cout << fmt::format("Run {} ({}, {}): {}\n", id, Str(Field(run, "pipeline")),
                             Str(Field(run, "run_type")), Steps(Items(run, "steps").size()));
  }
  {
    InterruptGuard guard;
    while (true) {
      if (tty) {
        live.Draw(LiveText(run));
      } else if (human) {
        changes.Print(run);
      }
      if (Ended(Str(Field(run, "status")))) {
        break;
      }
      for (int i = 0; i < 10 && !g_interrupted; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      // A Ctrl-C during the request may fail it: the interrupt is what to report.
      Result<ApiResponse> next =
          g_interrupted ? Result<ApiResponse>(ApiResponse{}) : Client().Call("GET", path);
      if (g_interrupted) {
        std::cerr << fmt::format("{}Stopped watching; run {} goes on.\n  {:<{}}  its status\n"
                                 "  {:<{}}  stop it\n",
                                 tty ? "\n" : "", id, "berth runs show " + id, id.size() + 18,
                                 "berth runs cancel " + id, id.size() + 18);
        throw CLI::RuntimeError(130);
      }
      if (!next.ok()) {
        Fail(next.status().WithContext(fmt::format(
            "watching run {} (it may still run: berth runs show {})", id, id)));
      }
      run = std::move(next->body);
    }
  }
  if (human) {
    PrintOutcome(run, opts);
  } else {
    std::cout << PrettyJson(run);
  }
  if (Str(Field(run, "status")) != "SUCCESS") {
    throw CLI::RuntimeError(1);
  }
}

// --steps names steps by uuid; Orchest's pipelines have uuids nobody types, so a title that
// names exactly one step stands for its uuid. Berth's own form has no titles apart from names.
std::vector<std::string> ResolveSteps(const json::value& definition,
                                      const std::vector<std::string>& names) {
  const json::value& steps = Field(definition, "steps");
  if (!steps.is_object()) {
    return names;
  }
  std::vector<std::string> out;
  for (const std::string& name : names) {
    if (steps.get_object().contains(name)) {
      out.push_back(name);
      continue;
    }
    std::vector<std::string> matches;
    for (const auto& [uuid, s] : steps.get_object()) {
      if (Str(Field(s, "title")) == name) {
        matches.emplace_back(uuid);
      }
    }
    if (matches.size() > 1) {
      Fail(Status::InvalidArgument(fmt::format(
          "--steps {}: {} steps have that title ({}); name the one you mean by its uuid", name,
          matches.size(), fmt::join(matches, ", "))));
    }
    out.push_back(matches.empty() ? name : matches[0]);  // unknown: the daemon lists the steps
  }
  return out;
}

void AddPipelines(CLI::App& app, const std::shared_ptr<CommonOptions>& opts) {
  CLI::App* group = app.add_subcommand(
      "pipelines", "Store, list, show and remove pipelines (graphs of steps; run one with 'berth run')");
  group->require_subcommand(1);
  group->footer(
      "A pipeline file, in berth's form (Orchest's pipeline.json works as it is):\n"
      "  name: etl\n"
      "  steps:\n"
      "    - name: extract\n"
      "      command: echo extracting\n"
      "    - name: transform\n"
      "      file: transform.py     # .py .sh .ipynb .R, relative to the project directory\n"
      "      after: [extract]\n\n"
      "Examples:\n"
      "  berth pipelines add etl.yaml --project-dir .\n"
      "  berth pipelines show etl\n"
      "  berth run etl");

  struct AddArgs {
    std::string file;
    std::string project_dir;
  };
  auto aa = std::make_shared<AddArgs>();
  CLI::App* add = group->add_subcommand(
      "add", "Store a pipeline file (YAML or JSON) under its name, replacing one of that name");
  add->add_option("file", aa->file, "Pipeline file: berth's YAML/JSON form or Orchest's pipeline.json")
      ->required()
      ->check(CLI::ExistingFile);
  add->add_option("--project-dir", aa->project_dir,
                  "Folder the steps run in and their files are read from (default: the "
                  "project's own; a project token may name only folders inside it)")
      ->check(CLI::ExistingDirectory);
  AddCommon(add, opts, true);
  add->footer("Examples:\n  berth pipelines add etl.yaml --project-dir .\n"
              "  berth pipelines add pipeline.orchest --project-dir ~/orchest/my-project");
  add->callback([opts, aa] {
    json::value def = ReadJsonOrYamlFile(aa->file);
    std::string path = "/api/v1/pipelines";
    if (!aa->project_dir.empty()) {
      path += "?project_dir=" + Escape(AbsoluteDir(aa->project_dir));
    }
    auto r = Client().Call("POST", WithProject(path, *opts), &def);
    if (!r.ok()) {
      Fail(r.status().WithContext(aa->file));
    }
    const json::value& v = r->body;
    std::string name = Str(Field(v, "name"));
    Print(*opts, v,
          fmt::format("pipeline {} {} ({})\nRun it: berth run {}\n", name,
                      r->status == 201 ? "added" : "replaced", Steps(StepCount(v)), name));
  });

  CLI::App* ls = group->add_subcommand("ls", "List the project's pipelines");
  AddCommon(ls, opts, true);
  ls->callback([opts] {
    json::value v = Call("GET", WithProject("/api/v1/pipelines", *opts));
    std::vector<std::vector<std::string>> rows;
    for (const auto& p : Items(v, "pipelines")) {
      std::string dir = Str(Field(p, "project_dir"));
      rows.push_back({Str(Field(p, "name")), std::to_string(StepCount(p)), dir.empty() ? "(the project's)" : dir,
                      Str(Field(p, "updated_at"))});
    }
    if (rows.empty() && opts->output == "table") {
      std::cout << "No pipelines yet. Add one with 'berth pipelines add FILE' (see 'berth "
                   "pipelines --help' for the file's form).\n";
      return;
    }
    Print(*opts, v, FormatTable({"NAME", "STEPS", "DIRECTORY", "UPDATED"}, rows));
  });

  auto name = std::make_shared<std::string>();
  CLI::App* show = group->add_subcommand(
      "show", "Show a pipeline: its steps (what each runs, after which) and its recent runs");
  show->add_option("name", *name, "Pipeline name")->required();
  AddCommon(show, opts, true);
  show->callback([opts, name] {
    json::value v = CallOrHint("GET", WithProject("/api/v1/pipelines/" + Escape(*name), *opts),
                               nullptr, kPipelinesHint);
    std::string dir = Str(Field(v, "project_dir"));
    std::string out = fmt::format("Name:      {}\n", Str(Field(v, "name")));
    if (std::string uuid = Str(Field(v, "uuid")); !uuid.empty()) {
      out += fmt::format("UUID:      {}\n", uuid);
    }
    out += fmt::format("Project:   {}\n", Str(Field(v, "project")));
    out += fmt::format("Directory: {}\n", dir.empty() ? "(the project's)" : dir);
    out += fmt::format("Created:   {}\n", Str(Field(v, "created_at")));
    out += fmt::format("Updated:   {}\n", Str(Field(v, "updated_at")));
    // The stored definition is Orchest's form: steps keyed by uuid, parents by uuid.
    const json::value& steps = Field(Field(v, "definition"), "steps");
    std::vector<std::vector<std::string>> rows;
    if (steps.is_object()) {
      auto title_of = [&](std::string_view uuid) {
        const json::value* s = steps.get_object().if_contains(uuid);
        return s ? Str(Field(*s, "title")) : std::string(uuid);
      };
      for (const auto& [uuid, s] : steps.get_object()) {
        std::string command = Str(Field(s, "command"));
        bool is_command = !command.empty() && command != "-";
        std::vector<std::string> parents;
        for (const auto& p : Items(s, "incoming_connections")) {
          parents.push_back(title_of(Str(p)));
        }
        rows.push_back({StepName(s, "uuid"), is_command ? "command" : "file",
                        OneLine(is_command ? command : Str(Field(s, "file_path"))),
                        parents.empty() ? "-" : fmt::format("{}", fmt::join(parents, ", "))});
      }
    }
    out += "Steps:\n" + FormatTable({"STEP", "KIND", "RUNS", "AFTER"}, rows);
    const json::value& runs = Field(v, "runs");
    if (runs.is_array() && !runs.get_array().empty()) {
      out += "Recent runs:\n" + RunsTable(runs);
    } else {
      out += fmt::format("No runs yet: berth run {}\n", Str(Field(v, "name")));
    }
    Print(*opts, v, out);
  });

  CLI::App* rm = group->add_subcommand(
      "rm", "Delete a stored pipeline (its past runs stay until 'berth runs rm')");
  rm->add_option("name", *name, "Pipeline name")->required();
  AddCommon(rm, opts, true);
  rm->callback([opts, name] {
    json::value v = CallOrHint("DELETE", WithProject("/api/v1/pipelines/" + Escape(*name), *opts),
                               nullptr, kPipelinesHint);
    Print(*opts, v, fmt::format("Deleted pipeline {}\n", *name));
  });
}

void AddRun(CLI::App& app, const std::shared_ptr<CommonOptions>& opts) {
  struct Args {
    std::string pipeline;
    std::vector<std::string> steps;
    bool incoming = false;
    bool include_selected = false;
    std::string project_dir;
    bool detach = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* run = app.add_subcommand(
      "run", "Run a pipeline (stored, or a file run once without storing it) and watch it");
  run->add_option("pipeline", a->pipeline,
                  "A stored pipeline's name, or the path of a pipeline file to run as it is")
      ->required();
  run->add_option("--steps", a->steps,
                  "Run only these steps (names, uuids or Orchest titles; comma-separated)")
      ->delimiter(',');
  run->add_flag("--incoming", a->incoming,
                "Run the steps leading to those of --steps, not the steps themselves");
  run->add_flag("--include-selected", a->include_selected,
                "With --incoming: run the steps of --steps too, after their ancestors");
  run->add_option("--project-dir", a->project_dir,
                  "Folder the steps run in (default: the pipeline's, else the project's)")
      ->check(CLI::ExistingDirectory);
  run->add_flag("-d,--detach", a->detach, "Print the run's id and return without watching");
  AddCommon(run, opts, true);
  run->footer(
      "Without --detach it shows each step's status until the run ends, then the failed steps'\n"
      "messages and last log lines; it exits 0 when the run succeeded, 1 when it failed or was\n"
      "cancelled. Ctrl-C stops watching; the run goes on (berth runs show|cancel ID).\n\n"
      "Examples:\n"
      "  berth run etl                                    every step\n"
      "  berth run etl --steps transform,load             only these (and the edges between them)\n"
      "  berth run etl --steps load --incoming            what load needs, not load itself\n"
      "  berth run etl --steps load --incoming --include-selected\n"
      "  berth run ./etl.yaml --project-dir .             a file, run once without storing it\n"
      "  RUN=$(berth run etl --detach); berth runs show $RUN");
  run->callback([opts, a] {
    std::vector<std::string> steps;
    for (const auto& s : a->steps) {
      if (!s.empty()) {
        steps.push_back(s);
      }
    }
    if (a->incoming && steps.empty()) {
      Fail(Status::InvalidArgument(
          "--incoming runs the steps that lead to those named with --steps; name them, e.g. "
          "--steps load --incoming"));
    }
    if (a->include_selected && !a->incoming) {
      Fail(Status::InvalidArgument(
          "--include-selected goes with --incoming (--steps alone runs the named steps "
          "already)"));
    }
    bool from_file = fs::is_regular_file(a->pipeline);
    json::value definition;
    if (from_file) {
      definition = ReadJsonOrYamlFile(a->pipeline);
    } else if (!steps.empty()) {
      definition = Field(CallOrHint("GET",
                                    WithProject("/api/v1/pipelines/" + Escape(a->pipeline), *opts),
                                    nullptr, kRunHint),
                         "definition");
    }
    json::object body{{"type", a->incoming ? "incoming" : steps.empty() ? "full" : "selection"}};
    if (!steps.empty()) {
      json::array list;
      for (const auto& s : ResolveSteps(definition, steps)) {
        list.emplace_back(s);
      }
      body["steps"] = std::move(list);
    }
    if (a->include_selected) {
      body["include_selected"] = true;
    }
    if (!a->project_dir.empty()) {
      body["project_dir"] = AbsoluteDir(a->project_dir);
    }
    std::string path = "/api/v1/pipelines/" + Escape(a->pipeline) + "/runs";
    if (from_file) {
      body["definition"] = std::move(definition);
      path = "/api/v1/runs";
    }
    json::value b = std::move(body);
    json::value started = CallOrHint("POST", WithProject(path, *opts), &b, kRunHint);
    if (a->detach) {
      Print(*opts, started, Str(Field(started, "uuid")) + "\n");
      return;
    }
    WatchRun(std::move(started), *opts);
  });
}

void AddRuns(CLI::App& app, const std::shared_ptr<CommonOptions>& opts) {
  CLI::App* group = app.add_subcommand(
      "runs", "Pipeline runs: list them, show one, read a step's logs, cancel, delete");
  group->require_subcommand(1);
  group->footer("Examples:\n"
                "  berth runs ls --pipeline etl\n"
                "  berth runs show RUN\n"
                "  berth runs logs RUN transform -f\n"
                "  berth runs cancel RUN");

  struct LsArgs {
    std::string pipeline;
    size_t limit = 20;
  };
  auto la = std::make_shared<LsArgs>();
  CLI::App* ls = group->add_subcommand("ls", "List runs, the latest first");
  ls->add_option("--pipeline", la->pipeline, "Only this pipeline's runs");
  ls->add_option("-n,--limit", la->limit, "How many runs at most (default 20)")
      ->check(CLI::Range(1, 10000));
  AddCommon(ls, opts, true);
  ls->callback([opts, la] {
    std::string path = fmt::format("/api/v1/runs?limit={}", la->limit);
    if (!la->pipeline.empty()) {
      path += "&pipeline=" + Escape(la->pipeline);
    }
    json::value v = Call("GET", WithProject(path, *opts));
    const json::array& runs = Items(v, "runs");
    if (runs.empty() && opts->output == "table") {
      std::cout << (la->pipeline.empty()
                        ? std::string("No runs yet. Start one with 'berth run PIPELINE'.\n")
                        : fmt::format("No runs of pipeline {} yet. Start one with 'berth run "
                                      "{}'.\n",
                                      la->pipeline, la->pipeline));
      return;
    }
    std::string table = RunsTable(runs);
    if (runs.size() == la->limit) {
      table += fmt::format("(the {} latest; --limit N for more)\n", la->limit);
    }
    Print(*opts, v, table);
  });

  auto id = std::make_shared<std::string>();
  CLI::App* show = group->add_subcommand(
      "show", "Show a run: its status, why it waits when queued, and each step's outcome");
  show->add_option("id", *id, "Run id (berth runs ls)")->required();
  AddCommon(show, opts, true);
  show->callback([opts, id] {
    json::value v =
        CallOrHint("GET", WithProject("/api/v1/runs/" + Escape(*id), *opts), nullptr, kRunsHint);
    Print(*opts, v, DescribeRun(v));
  });

  struct LogArgs {
    std::string id;
    std::string step;
    bool follow = false;
    size_t tail = 100;
  };
  auto lg = std::make_shared<LogArgs>();
  CLI::App* logs = group->add_subcommand("logs", "Print what a step of a run wrote");
  logs->add_option("id", lg->id, "Run id")->required();
  logs->add_option("step", lg->step, "Step name (or uuid, or Orchest title)")->required();
  logs->add_flag("-f,--follow", lg->follow, "Keep printing new lines until the step ends");
  logs->add_option("-n,--tail", lg->tail, "Lines to show first (0: all; default 100)");
  AddCommon(logs, opts, true);
  logs->footer("Examples:\n  berth runs logs RUN extract\n  berth runs logs RUN load -f --tail 0");
  logs->callback([opts, lg] {
    std::string path = WithProject(fmt::format("/api/v1/runs/{}/steps/{}/logs?tail={}",
                                               Escape(lg->id), Escape(lg->step), lg->tail),
                                   *opts);
    if (!lg->follow) {
      json::value v = CallOrHint("GET", path, nullptr, kRunsHint);
      std::string text;
      for (const auto& l : Items(v, "lines")) {
        text += LogLineText(l) + "\n";
      }
      Print(*opts, v, text);
      return;
    }
    FollowJsonLines(path + "&follow=1", [&](const std::string& raw, const json::value& l) {
      std::cout << (opts->output == "json" ? raw : LogLineText(l)) << "\n" << std::flush;
    });
  });

  CLI::App* cancel = group->add_subcommand(
      "cancel", "Cancel a run: unfinished steps become ABORTED, running ones are stopped");
  cancel->add_option("id", *id, "Run id")->required();
  AddCommon(cancel, opts, true);
  cancel->callback([opts, id] {
    json::value v = CallOrHint("POST", WithProject("/api/v1/runs/" + Escape(*id) + "/cancel", *opts),
                               nullptr, kRunsHint);
    Print(*opts, v, fmt::format("Cancelled run {} ({})\n", *id, Str(Field(v, "status"))));
  });

  CLI::App* rm = group->add_subcommand("rm", "Delete an ended run with its logs and outputs");
  rm->add_option("id", *id, "Run id")->required();
  AddCommon(rm, opts, true);
  rm->callback([opts, id] {
    json::value v =
        CallOrHint("DELETE", WithProject("/api/v1/runs/" + Escape(*id), *opts), nullptr, kRunsHint);
    Print(*opts, v, fmt::format("Deleted run {} and its logs\n", *id));
  });
}


// --- jobs: a pipeline run on a schedule, at a time, or now, once per parameter set ----------

const char kJobsHint[] = "'berth jobs ls' lists the jobs";

// "0 3 * * * (Europe/Amsterdam)", "once at 2026-12-24T06:00:00Z", "once".
std::string JobSchedule(const json::value& j) {
  if (Field(j, "schedule").is_string()) {
    std::string tz = Str(Field(j, "time_zone"));
    return tz == "-" ? Str(Field(j, "schedule"))
                     : fmt::format("{} ({})", Str(Field(j, "schedule")), tz);
  }
  if (Field(j, "at").is_string()) {
    return "once at " + Str(Field(j, "at"));
  }
  return "once";
}

// "3 ok / 1 failed / 0 running".
std::string JobRuns(const json::value& j) {
  const json::value& r = Field(j, "runs");
  return fmt::format("{} ok / {} failed / {} running", Str(Field(r, "succeeded")),
                     Str(Field(r, "failed")), Str(Field(r, "running")));
}

std::string DescribeJob(const json::value& j) {
  std::string message = Str(Field(j, "message"));
  std::string dir = Str(Field(j, "project_dir"));
  std::string out = fmt::format("Job:        {}\n", Str(Field(j, "uuid")));
  out += fmt::format("Name:       {}\n", Str(Field(j, "name")));
  out += fmt::format("Pipeline:   {}\n", Str(Field(j, "pipeline")));
  out += fmt::format("Project:    {}\n", Str(Field(j, "project")));
  out += fmt::format("Schedule:   {}\n", JobSchedule(j));
  out += fmt::format("Status:     {}{}\n", Str(Field(j, "status")),
                     message.empty() || message == "-" ? "" : " — " + message);
  out += fmt::format("Next run:   {}\n", Str(Field(j, "next_run")));
  out += fmt::format("Last run:   {}\n", Str(Field(j, "last_run")));
  out += fmt::format("Directory:  {}\n", dir.empty() || dir == "-" ? "(the project's)" : dir);
  out += fmt::format("Created:    {}\n", Str(Field(j, "created_at")));
  out += fmt::format("Finished:   {}\n", Str(Field(j, "finished_at")));
  const json::array& sets = Items(j, "parameters");
  bool none = sets.empty() || (sets.size() == 1 && sets[0].is_object() &&
                               sets[0].get_object().empty());
  if (none) {
    out += "Parameters: the pipeline's own (one run each time)\n";
  } else {
    out += fmt::format("Parameters: {} set{} (a run each)\n", sets.size(),
                       sets.size() == 1 ? "" : "s");
    for (const auto& s : sets) {
      out += "  " + json::serialize(s) + "\n";
    }
  }
  out += fmt::format("Runs:       {} ({} in all)\n", JobRuns(j),
                     Str(Field(Field(j, "runs"), "total")));
  const json::array& runs = Items(j, "recent_runs");
  if (!runs.empty()) {
    out += "Recent runs:\n" + RunsTable(runs);
  } else if (Field(j, "recent_runs").is_array()) {
    out += "No runs yet.\n";
  }
  return out;
}

// A --param or --params value: JSON when it parses ("2", "true", "[1,2]", "\"x\""), else the
// text as a string.
json::value ParamValue(const std::string& text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  return ec ? json::value(text) : v;
}

// "show.rate=2" as {"show", "rate", "2"}; the first '.' ends the step's name.
std::array<std::string, 3> SplitParam(std::string_view flag, const std::string& arg,
                                      std::string_view example) {
  size_t eq = arg.find('=');
  size_t dot = arg.find('.');
  if (eq == std::string::npos || dot == std::string::npos || dot > eq || dot == 0 ||
      dot + 1 == eq) {
    Fail(Status::InvalidArgument(fmt::format("{} '{}': give STEP.KEY=VALUE, e.g. {} {}", flag,
                                             arg, flag, example)));
  }
  return {arg.substr(0, dot), arg.substr(dot + 1, eq - dot - 1), arg.substr(eq + 1)};
}

json::object& StepParams(json::object& sets, const std::string& step) {
  json::value& s = sets[step];
  if (!s.is_object()) {
    s = json::object{};
  }
  return s.get_object();
}

void AddJobs(CLI::App& app, const std::shared_ptr<CommonOptions>& opts) {
  CLI::App* group = app.add_subcommand(
      "jobs", "Pipeline jobs: run a pipeline on a cron schedule, at a time, or now, once per "
              "parameter set");
  group->require_subcommand(1);
  group->footer(
      "Examples:\n"
      "  berth jobs create nightly --pipeline etl --schedule \"0 3 * * *\" --time-zone Europe/Amsterdam\n"
      "  berth jobs create sweep --pipeline etl --grid train.rate=0.1,0.01\n"
      "  berth jobs ls\n"
      "  berth jobs show JOB\n"
      "  berth jobs pause JOB; berth jobs resume JOB; berth jobs cancel JOB");

  struct CreateArgs {
    std::string name;
    std::string pipeline;
    std::string schedule;
    std::string time_zone;
    std::string at;
    std::vector<std::string> params;
    std::string params_file;
    std::vector<std::string> grid;
    std::string project_dir;
  };
  auto ca = std::make_shared<CreateArgs>();
  CLI::App* create = group->add_subcommand(
      "create", "Create a job: a pipeline run on a schedule, at a time, or now (once)");
  create->add_option("name", ca->name, "The job's name")->required();
  create->add_option("--pipeline", ca->pipeline,
                     "A stored pipeline's name, or a pipeline file (its definition is kept "
                     "with the job)")
      ->required();
  create->add_option("--schedule", ca->schedule,
                     "Cron schedule, five fields: minute hour day-of-month month day-of-week "
                     "(default: no schedule, one run now or --at)");
  create->add_option("--time-zone", ca->time_zone,
                     "IANA time zone the schedule is read in, e.g. Europe/Amsterdam (default UTC)");
  create->add_option("--at", ca->at, "Run once at this RFC 3339 time, e.g. 2026-12-24T06:00:00Z");
  create->add_option("--param", ca->params,
                     "STEP.KEY=VALUE: a step parameter (VALUE as JSON when it parses, else a "
                     "string); several make one parameter set");
  create->add_option("--params-file", ca->params_file,
                     "JSON file with a list of parameter sets, a run each: "
                     "[{\"STEP\": {\"KEY\": VALUE}}, ...]")
      ->check(CLI::ExistingFile);
  create->add_option("--grid", ca->grid,
                     "STEP.KEY=V1,V2,...: a run for each combination of the values of all "
                     "--grid options");
  create->add_option("--project-dir", ca->project_dir,
                     "Folder the steps' files are taken from (default: the pipeline's, else "
                     "the project's)")
      ->check(CLI::ExistingDirectory);
  AddCommon(create, opts, true);
  create->footer(
      "Each run works on a snapshot of the project directory taken when it starts.\n\n"
      "Examples:\n"
      "  berth jobs create nightly --pipeline etl --schedule \"0 3 * * *\" --time-zone Europe/Amsterdam\n"
      "  berth jobs create xmas --pipeline etl --at 2026-12-24T06:00:00Z\n"
      "  berth jobs create once --pipeline etl --param train.rate=0.1 --param train.tag=fast\n"
      "  berth jobs create sweep --pipeline etl --grid train.rate=0.1,0.01 --grid train.depth=2,4\n"
      "  berth jobs create sets --pipeline etl --params-file sets.json");
  create->callback([opts, ca] {
    if (!ca->params.empty() + !ca->params_file.empty() + !ca->grid.empty() > 1) {
      Fail(Status::InvalidArgument(
          "--param (one parameter set), --params-file (a list of sets) and --grid (every "
          "combination) do not go together; use one of them"));
    }
    json::object body{{"name", ca->name}};
    if (fs::is_regular_file(ca->pipeline)) {
      body["definition"] = ReadJsonOrYamlFile(ca->pipeline);
    } else {
      body["pipeline"] = ca->pipeline;
    }
    if (!ca->schedule.empty()) {
      body["schedule"] = ca->schedule;
    }
    if (!ca->time_zone.empty()) {
      body["time_zone"] = ca->time_zone;
    }
    if (!ca->at.empty()) {
      body["at"] = ca->at;
    }
    if (!ca->params.empty()) {
      json::object set;
      for (const auto& p : ca->params) {
        auto [step, key, value] = SplitParam("--param", p, "train.rate=0.1");
        StepParams(set, step)[key] = ParamValue(value);
      }
      body["parameters"] = json::array{std::move(set)};
    }
    if (!ca->params_file.empty()) {
      json::value sets = ReadJsonOrYamlFile(ca->params_file);
      if (!sets.is_array()) {
        Fail(Status::InvalidArgument(fmt::format(
            "{}: must be a list of parameter sets, a run each: [{{\"STEP\": {{\"KEY\": "
            "VALUE}}}}, ...]",
            ca->params_file)));
      }
      body["parameters"] = std::move(sets);
    }
    if (!ca->grid.empty()) {
      json::object grid;
      for (const auto& g : ca->grid) {
        auto [step, key, text] = SplitParam("--grid", g, "train.rate=0.1,0.01");
        json::value values = ParamValue(text);
        if (!values.is_array()) {
          values = json::array{};
          size_t pos = 0;
          while (true) {
            size_t comma = text.find(',', pos);
            values.get_array().push_back(ParamValue(text.substr(pos, comma - pos)));
            if (comma == std::string::npos) {
              break;
            }
            pos = comma + 1;
          }
        }
        json::value& slot = StepParams(grid, step)[key];
        if (slot.is_array()) {  // the same STEP.KEY twice: all of the values
          for (auto& v : values.get_array()) {
            slot.get_array().push_back(std::move(v));
          }
        } else {
          slot = std::move(values);
        }
      }
      body["parameter_grid"] = std::move(grid);
    }
    if (!ca->project_dir.empty()) {
      body["project_dir"] = AbsoluteDir(ca->project_dir);
    }
    json::value b = std::move(body);
    auto r = Client().Call("POST", WithProject("/api/v1/jobs", *opts), &b);
    if (!r.ok()) {
      // The cron parser names the cron field ("cron field 1 (minute) '99': ..."); say which
      // option it came from.
      const std::string& m = r.status().message();
      if (r.status().code() == StatusCode::kInvalidArgument && !ca->schedule.empty() &&
          m.find("cron") != std::string::npos && m.find("schedule:") == std::string::npos) {
        Fail(r.status().WithContext(fmt::format("--schedule '{}'", ca->schedule)));
      }
      FailWithHint(r.status(), kPipelinesHint);
    }
    const json::value& v = r->body;
    std::string id = Str(Field(v, "uuid"));
    size_t sets = Items(v, "parameters").size();
    Print(*opts, v,
          fmt::format("Job {} ({}) created: {}, next run {}\n"
                      "Schedule: {}; {} run{} each time\n"
                      "See it: berth jobs show {}\n",
                      id, Str(Field(v, "name")), Str(Field(v, "status")),
                      Str(Field(v, "next_run")), JobSchedule(v), std::max<size_t>(sets, 1),
                      sets > 1 ? "s" : "", id));
  });

  CLI::App* ls = group->add_subcommand("ls", "List the project's jobs");
  AddCommon(ls, opts, true);
  ls->footer("Example:\n  berth jobs ls -o json");
  ls->callback([opts] {
    json::value v = Call("GET", WithProject("/api/v1/jobs", *opts));
    std::vector<std::vector<std::string>> rows;
    for (const auto& j : Items(v, "jobs")) {
      rows.push_back({Str(Field(j, "uuid")), Str(Field(j, "name")), Str(Field(j, "pipeline")),
                      JobSchedule(j), Str(Field(j, "status")), Str(Field(j, "next_run")),
                      JobRuns(j)});
    }
    if (rows.empty() && opts->output == "table") {
      std::cout << "No jobs yet. Create one with 'berth jobs create NAME --pipeline PIPELINE'.\n";
      return;
    }
    Print(*opts, v,
          FormatTable({"JOB", "NAME", "PIPELINE", "SCHEDULE", "STATUS", "NEXT RUN", "RUNS"},
                      rows));
  });

  auto id = std::make_shared<std::string>();
  CLI::App* show = group->add_subcommand(
      "show", "Show a job: its schedule, status, parameter sets and recent runs");
  show->add_option("id", *id, "Job id (berth jobs ls)")->required();
  AddCommon(show, opts, true);
  show->footer("Example:\n  berth jobs show JOB -o json");
  show->callback([opts, id] {
    json::value v =
        CallOrHint("GET", WithProject("/api/v1/jobs/" + Escape(*id), *opts), nullptr, kJobsHint);
    Print(*opts, v, DescribeJob(v));
  });

  struct Change {
    const char* verb;
    const char* done;
    const char* help;
  };
  for (const Change& c :
       {Change{"pause", "Paused", "Pause a job: no new runs until it is resumed"},
        Change{"resume", "Resumed", "Resume a paused job; a schedule goes on from now"},
        Change{"cancel", "Cancelled",
               "Cancel a job for good: it is ABORTED and starts no more runs"}}) {
    CLI::App* cmd = group->add_subcommand(c.verb, c.help);
    cmd->add_option("id", *id, "Job id (berth jobs ls)")->required();
    AddCommon(cmd, opts, true);
    cmd->footer(fmt::format("Example:\n  berth jobs {} JOB", c.verb));
    std::string verb = c.verb, done = c.done;
    cmd->callback([opts, id, verb, done] {
      json::value v = CallOrHint(
          "POST", WithProject("/api/v1/jobs/" + Escape(*id) + "/" + verb, *opts), nullptr,
          kJobsHint);
      Print(*opts, v,
            fmt::format("{} job {} ({}); next run {}\n", done, *id, Str(Field(v, "status")),
                        Str(Field(v, "next_run"))));
    });
  }
}

}  // namespace

void AddPipelineCommands(CLI::App& app) {
  auto opts = std::make_shared<CommonOptions>();
  AddPipelines(app, opts);
  AddRun(app, opts);
  AddRuns(app, opts);
  AddJobs(app, opts);
}

}  // namespace berth
