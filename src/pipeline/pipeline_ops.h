// PipelineOps: the use cases of pipelines (seed 004) that the native API, the orchest-api
// dialect and the CLI share: store a pipeline, run one (stored or posted), cancel a run,
// delete an ended run with its logs. Checks come first; nothing is stored when one fails.
#pragma once

#include <string>
#include <utility>

#include "common/status.h"
#include "pipeline/pipeline.h"
#include "pipeline/run_engine.h"
#include "store/store.h"

namespace berth {

// True when `program` is an executable file on PATH (the .R check of ParsePipeline).
bool ProgramOnPath(std::string_view program);

class PipelineOps {
 public:
  PipelineOps(Store& store, RunEngine& engine) : store_(store), engine_(engine) {}

  // Reads a pipeline file (either form, JSON or YAML) and stores it under its name, replacing
  // one of the same name. The bool is true when it was new.
  Result<std::pair<PipelineRecord, bool>> Add(const std::string& project, std::string_view text,
                                              const std::string& project_dir);
  Status Remove(const std::string& project, const std::string& name);
  // The stored pipeline `name`, parsed.
  Result<Pipeline> Load(const std::string& project, const std::string& name,
                        PipelineRecord* record = nullptr);

  Result<RunRecord> Run(RunRequest request) { return engine_.StartRun(std::move(request)); }
  // NotFound as well for a run of another project (a token sees only its own).
  Result<RunRecord> Cancel(const std::string& project, const std::string& run);
  // Deletes an ended run, its step logs and outputs. FailedPrecondition while it runs.
  Status DeleteRun(const std::string& project, const std::string& run);
  // The run if it belongs to `project` (any project when empty).
  Result<RunRecord> GetRun(const std::string& project, const std::string& run);

 private:
  Store& store_;
  RunEngine& engine_;
};

}  // namespace berth
