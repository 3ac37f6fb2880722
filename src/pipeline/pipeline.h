// A pipeline is a graph of steps (seed 004, Orchest's pipeline file). This file holds the model
// and its pure functions: reading a pipeline from berth's own YAML/JSON form or from Orchest's
// `pipeline.json` / `*.orchest`, validating it (unknown parents, cycles, duplicate uuids, steps
// that cannot be run) and planning a run (full / selection / incoming) as the steps that will
// run and the edges between them. No I/O besides the `has_program` probe the caller passes.
//
// Two input forms, told apart by the type of `steps`:
//   Orchest (an object keyed by step uuid):
//     {"name": "etl", "uuid": "...", "parameters": {...}, "settings": {...}, "services": {...},
//      "steps": {"<uuid>": {"uuid": "<uuid>", "title": "load", "file_path": "load.py",
//                           "incoming_connections": ["<uuid>", ...], "parameters": {...},
//                           "environment": "<uuid>" | (2020) "image": {...}, "kernel": {...},
//                           "meta_data": {...}}}}
//   berth (a list):
//     name: etl
//     parameters: {rate: 3}
//     env: {MODE: test}
//     concurrency: 2            # steps of one run at once; 0 or absent: the global limit
//     steps:
//       - name: extract         # the step's uuid and title
//         file: extract.py      # or  command: "python3 extract.py --fast"
//         after: [other, ...]   # parents, in the order of the step's inputs
//         parameters: {n: 1}
//         env: {K: v}
//         memory-limit: 256Mi
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "common/status.h"

namespace berth {

// How a step is run, from its command or its file's extension.
enum class StepKind {
  kCommand,   // `command`: sh -c
  kPython,    // .py: python3 FILE
  kShell,     // .sh: sh FILE
  kNotebook,  // .ipynb: executed with nbclient, outputs saved to the run's copy
  kR,         // .R / .r: Rscript FILE
};
const char* StepKindName(StepKind k);  // "command", "python", "shell", "notebook", "r"

struct PipelineStep {
  std::string uuid;       // unique in the pipeline; a plain name in berth's form
  std::string title;      // Orchest's title; berth's form: the name
  std::string file_path;  // relative to the project directory; empty for a command step
  std::string command;    // berth's form only; empty for a file step
  std::vector<std::string> incoming;  // parent uuids, in order (the order of its inputs)
  boost::json::object parameters;
  std::map<std::string, std::string> env;
  // Orchest's environment uuid, or the 2020 `image.image_name`; kept, shown, not used to run.
  std::string environment;
  std::string kernel;                // Orchest's kernel name, when given
  uint64_t memory_limit_bytes = 0;   // 0: none
  // (memory-limit is written 256Mi, 2Gi (Ki Mi Gi Ti), 3G (k M G T) or in bytes; 1M to 1Ti)
  StepKind kind = StepKind::kCommand;  // set by ParsePipeline from command / file_path

  bool operator==(const PipelineStep&) const = default;
};

struct Pipeline {
  std::string name;
  std::string uuid;  // Orchest's pipeline uuid; berth's form: empty unless given as `uuid`
  boost::json::object parameters;
  std::map<std::string, std::string> env;
  int concurrency = 0;  // 0: only the global limit applies
  // Orchest's `services` (they belong to the session, not the run); kept as given.
  boost::json::object services;
  std::vector<PipelineStep> steps;  // in the order of the file

  const PipelineStep* Find(std::string_view uuid) const;
  bool operator==(const Pipeline&) const = default;
};

// "load (3f2a...)" when a title differs from the uuid, else the uuid: how errors name a step.
std::string StepLabel(const PipelineStep& step);

// The kind `step` runs as, from its command or its file_path's extension (what ParsePipeline
// sets; for steps built in code). InvalidArgument naming the step for neither or both of them,
// or an extension berth cannot run.
Result<StepKind> StepKindOf(const PipelineStep& step);

// Reads either form from JSON or YAML text, then validates it (ValidatePipeline).
// InvalidArgument naming the field and the step for anything wrong: a missing or non-string
// field, a step with neither or both of file and command, a file whose extension berth cannot
// run (".exe: steps run .py, .sh, .ipynb or .R files, or a command"), an unknown parent, a
// duplicate uuid, a cycle ("steps form a cycle: a -> b -> c -> a"), a bad memory limit.
// `has_program("Rscript")` is asked for .R steps: without it, "step X is an R script but
// Rscript is not installed (apt-get install r-base-core)". Empty: every program is there.
Result<Pipeline> ParsePipeline(std::string_view text,
                               const std::function<bool(std::string_view)>& has_program = {});
Result<Pipeline> PipelineFromJson(const boost::json::value& v,
                                  const std::function<bool(std::string_view)>& has_program = {});
// The checks ParsePipeline runs after reading; for pipelines built in code (which must also
// set each step's `kind` as StepKindOf says).
Status ValidatePipeline(const Pipeline& p);

// Orchest's pipeline.json form of `p` (steps keyed by uuid, with title, file_path,
// incoming_connections, parameters, environment, kernel), so that Orchest's SDK and berth's
// `orchest` module read a run's frozen definition the same way; berth's extra fields (command,
// env, memory limit, concurrency) are kept under the same object with their berth names.
// PipelineFromJson(PipelineToJson(p)) == p.
boost::json::object PipelineToJson(const Pipeline& p);

enum class RunType { kFull, kSelection, kIncoming };
const char* RunTypeName(RunType t);  // "full", "selection", "incoming"
// Accepts "full", "selection", "incoming" (and Orchest's "partial" as "selection");
// InvalidArgument listing those otherwise.
Result<RunType> ParseRunType(std::string_view name);

// What one run executes: its steps in a topological order (ties in file order), and for each
// its parents inside the run, in the step's incoming order. Edges to steps outside the run are
// dropped.
struct RunPlan {
  std::vector<std::string> steps;
  std::map<std::string, std::vector<std::string>> parents;
};

// full: every step. selection: the selected steps and the edges between them. incoming: every
// ancestor of the selected steps without the selected steps themselves (Orchest's "run incoming
// steps"), or with them when `include_selected`. InvalidArgument for an empty selection with
// selection / incoming, and for uuids the pipeline does not have (naming them); an incoming
// run of steps that have no ancestors is InvalidArgument too ("nothing to run: ... have no
// incoming steps").
Result<RunPlan> PlanRun(const Pipeline& p, RunType type, const std::vector<std::string>& selection,
                        bool include_selected = false);

}  // namespace berth
