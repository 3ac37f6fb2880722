// libFuzzer target for pipeline definitions (berth's YAML/JSON and Orchest's pipeline.json) and
// cron schedules. Besides not crashing:
// - a pipeline that parses round-trips through Orchest's form (what runs freeze and the
//   `orchest` module reads), and a full run plans every step once, parents before children;
// - a cron expression that parses prints as fields that parse to the same schedule, and its
//   next fire is strictly later.
#include <cstddef>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

#include <boost/json.hpp>

#include "pipeline/cron.h"
#include "pipeline/pipeline.h"

namespace json = boost::json;

namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "pipeline_fuzz: %s\n", what);
    std::abort();
  }
}

void CheckPipeline(std::string_view text) {
  auto p = berth::ParsePipeline(text);
  if (!p.ok()) {
    Check(!p.status().message().empty(), "a refused pipeline without a reason");
    return;
  }
  json::object once = berth::PipelineToJson(*p);
  auto again = berth::PipelineFromJson(once);
  Check(again.ok(), "a pipeline's Orchest form does not parse");
  Check(json::serialize(berth::PipelineToJson(*again)) == json::serialize(once),
        "a pipeline does not round-trip through Orchest's form");
  auto plan = berth::PlanRun(*p, berth::RunType::kFull, {});
  Check(plan.ok(), "a valid pipeline has no full run");
  Check(plan->steps.size() == p->steps.size(), "a full run does not plan every step");
  std::set<std::string> done;
  for (const std::string& step : plan->steps) {
    for (const std::string& parent : plan->parents[step]) {
      Check(done.contains(parent), "a step planned before its parent");
    }
    Check(done.insert(step).second, "a step planned twice");
  }
  if (!p->steps.empty()) {
    (void)berth::PlanRun(*p, berth::RunType::kIncoming, {p->steps.back().uuid});
  }
}

void CheckCron(std::string_view text) {
  if (text.size() > 200 || text.find('\n') != std::string_view::npos) {
    return;
  }
  auto s = berth::ParseCron(text);
  if (!s.ok()) {
    return;
  }
  auto again = berth::ParseCron(berth::CronToString(*s));
  Check(again.ok() && *again == *s, "a schedule's fields do not parse to the same schedule");
  constexpr int64_t kFrom = 1798761600;  // 2027-01-01T00:00:00Z
  if (auto next = berth::NextFire(*s, kFrom)) {
    Check(*next > kFrom, "a next fire that is not later");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  CheckPipeline(text);
  CheckCron(text);
  return 0;
}
