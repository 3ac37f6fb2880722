#include "pipeline/pipeline.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cassert>
#include <charconv>
#include <limits>
#include <optional>
#include <set>
#include <unordered_map>
#include <utility>

#include "model/yaml_json.h"

namespace berth {
namespace json = boost::json;
namespace {

constexpr uint64_t kKi = 1024;
constexpr uint64_t kMi = kKi * 1024;
constexpr uint64_t kGi = kMi * 1024;
constexpr uint64_t kTi = kGi * 1024;
// Below 1M nothing starts, and a bare number that small is far more likely a forgotten unit
// (service definitions count MB) than a wish. The top is a service's (model/definition.cc).
constexpr uint64_t kMinMemory = 1000 * 1000;
constexpr uint64_t kMaxMemory = kTi;
constexpr size_t kMaxStepName = 64;

// Which spelling the fields had, so that errors name the key the user wrote.
enum class Form { kCode, kOrchest, kBerth };

struct FieldNames {
  std::string_view incoming;
  std::string_view file;
  std::string_view id;  // what a step is known by
};

FieldNames NamesOf(Form form) {
  if (form == Form::kBerth) {
    return {"after", "file", "name"};
  }
  return {"incoming_connections", "file_path", "uuid"};
}


// Quoted for messages; long values are cut so that one bad field cannot flood a log line.
std::string Q(std::string_view s) {
  constexpr size_t kMax = 120;
  if (s.size() > kMax) {
    return fmt::format("\"{}...\"", s.substr(0, kMax));
  }
  return fmt::format("\"{}\"", s);
}

std::string Where(const PipelineStep& step) { return fmt::format("step {}", Q(StepLabel(step))); }

Status Err(std::string_view where, std::string_view what) {
  return Status::InvalidArgument(fmt::format("{}: {}", where, what));
}

bool IsPlainName(std::string_view s) {
  if (s.empty() || s.size() > kMaxStepName) {
    return false;
  }
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.';
  });
}

bool IsEnvName(std::string_view s) {
  if (s.empty() || s.size() > 256 || (s[0] >= '0' && s[0] <= '9')) {
    return false;
  }
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

bool IsBlank(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; });
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() > suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string FormatMemory(uint64_t bytes) {
  for (auto [unit, name] : {std::pair{kTi, "Ti"}, {kGi, "Gi"}, {kMi, "Mi"}, {kKi, "Ki"}}) {
    if (bytes >= unit && bytes % unit == 0) {
      return fmt::format("{}{}", bytes / unit, name);
    }
  }
  return fmt::format("{}", bytes);
}

// Kubernetes' quantities, integers only: "256Mi", "2G", "1048576". A JSON number is bytes.
std::optional<uint64_t> ParseMemory(const json::value& v) {
  if (v.is_int64()) {
    return v.get_int64() < 0 ? std::nullopt : std::optional<uint64_t>(v.get_int64());
  }
  if (v.is_uint64()) {
    return v.get_uint64();
  }
  if (!v.is_string()) {
    return std::nullopt;
  }
  std::string_view s = v.get_string();
  uint64_t n = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || ptr == s.data()) {
    return std::nullopt;
  }
  std::string_view unit(ptr, static_cast<size_t>(s.data() + s.size() - ptr));
  static const std::pair<std::string_view, uint64_t> kUnits[] = {
      {"", 1},
      {"Ki", kKi},
      {"Mi", kMi},
      {"Gi", kGi},
      {"Ti", kTi},
      {"k", 1000},
      {"K", 1000},
      {"M", 1000 * 1000},
      {"G", 1000 * 1000 * 1000},
      {"T", uint64_t{1000} * 1000 * 1000 * 1000}};
  for (const auto& [name, mult] : kUnits) {
    if (unit == name) {
      if (n > std::numeric_limits<uint64_t>::max() / mult) {
        return kMaxMemory + 1;  // too big either way; Validate says so
      }
      return n * mult;
    }
  }
  return std::nullopt;
}

// --- reading JSON fields: `where` names the step (or "pipeline"), `field` the key ---

Status ReadString(const json::value& v, std::string_view where, std::string_view field,
                  std::string& out) {
  if (!v.is_string()) {
    return Err(where, fmt::format("{} must be a string, got {}", field, JsonKindName(v)));
  }
  out = std::string(v.get_string());
  return Status::Ok();
}

Status ReadObject(const json::value& v, std::string_view where, std::string_view field,
                  json::object& out) {
  if (!v.is_object()) {
    return Err(where, fmt::format("{} must be an object of names to values, got {}", field,
                                  JsonKindName(v)));
  }
  out = v.get_object();
  return Status::Ok();
}

Status ReadEnv(const json::value& v, std::string_view where, std::string_view field,
               std::map<std::string, std::string>& out) {
  if (!v.is_object()) {
    return Err(where, fmt::format("{} must be an object of variable names to values, e.g. "
                                  "{{MODE: test}}, got {}",
                                  field, JsonKindName(v)));
  }
  for (const auto& kv : v.get_object()) {
    const json::value& val = kv.value();
    std::string text;
    // YAML reads `N: 3` or `DEBUG: true` as a number or boolean; keep the text the user wrote.
    if (val.is_string()) {
      text = std::string(val.get_string());
    } else if (val.is_double()) {
      text = fmt::format("{}", val.get_double());
    } else if (val.is_int64() || val.is_uint64() || val.is_bool()) {
      text = json::serialize(val);
    } else {
      return Err(where, fmt::format("{}.{} must be a string, got {}", field,
                                    std::string_view(kv.key()), JsonKindName(val)));
    }
    out[std::string(kv.key())] = std::move(text);
  }
  return Status::Ok();
}

Status ReadMemory(const json::value& v, std::string_view where, uint64_t& out) {
  std::optional<uint64_t> bytes = ParseMemory(v);
  if (!bytes) {
    std::string got = v.is_string()                    ? Q(v.get_string())
                      : v.is_number()                  ? json::serialize(v)
                                                       : std::string(JsonKindName(v));
    return Err(where, fmt::format("memory-limit {} is not a size; write e.g. 256Mi or 2Gi (Ki, "
                                  "Mi, Gi, Ti: powers of 1024; k, M, G, T: powers of 1000; no "
                                  "unit: bytes)",
                                  got));
  }
  out = *bytes;
  return Status::Ok();
}

// A list of names, or (berth's form, for `after: extract`) a single one.
Status ReadNames(const json::value& v, std::string_view where, std::string_view field,
                 bool allow_single, std::vector<std::string>& out) {
  if (allow_single && v.is_string()) {
    out = {std::string(v.get_string())};
    return Status::Ok();
  }
  if (!v.is_array()) {
    return Err(where, fmt::format("{} must be a list of step {}s, got {}", field,
                                  allow_single ? "name" : "uuid", JsonKindName(v)));
  }
  out.clear();
  const json::array& a = v.get_array();
  for (size_t i = 0; i < a.size(); ++i) {
    if (!a[i].is_string()) {
      return Err(where, fmt::format("{}[{}] must be a string (a step {}), got {}", field, i,
                                    allow_single ? "name" : "uuid", JsonKindName(a[i])));
    }
    out.emplace_back(a[i].get_string());
  }
  return Status::Ok();
}

Status ReadConcurrency(const json::value& v, int& out) {
  int64_t n = 0;
  if (v.is_int64()) {
    n = v.get_int64();
  } else if (v.is_uint64()) {
    n = std::numeric_limits<int64_t>::max();
  } else {
    return Status::InvalidArgument(fmt::format(
        "concurrency must be a whole number of steps, got {}", JsonKindName(v)));
  }
  if (n < std::numeric_limits<int>::min() || n > std::numeric_limits<int>::max()) {
    return Status::InvalidArgument(
        fmt::format("concurrency {} is out of range; use a small number of steps", n));
  }
  out = static_cast<int>(n);
  return Status::Ok();
}

Status ReadServices(const json::value& v, json::object& out) {
  // Some Orchest versions wrote `"services": []` for none.
  if (v.is_array() && v.get_array().empty()) {
    return Status::Ok();
  }
  if (!v.is_object()) {
    return Status::InvalidArgument(fmt::format(
        "services must be an object keyed by service name, got {}", JsonKindName(v)));
  }
  out = v.get_object();
  return Status::Ok();
}

// The fields both forms share under the same name (berth's extras in Orchest's form, so that
// PipelineToJson's output reads back).
Status ReadCommonStepField(std::string_view key, const json::value& val, std::string_view where,
                           PipelineStep& step, bool& known) {
  known = true;
  if (key == "command") {
    return ReadString(val, where, key, step.command);
  }
  if (key == "parameters") {
    return ReadObject(val, where, key, step.parameters);
  }
  if (key == "env") {
    return ReadEnv(val, where, key, step.env);
  }
  if (key == "memory-limit") {
    return ReadMemory(val, where, step.memory_limit_bytes);
  }
  known = false;
  return Status::Ok();
}

Result<PipelineStep> ReadBerthStep(const json::value& v, size_t index) {
  if (!v.is_object()) {
    return Status::InvalidArgument(fmt::format(
        "steps[{}] must be an object with a name and a file or command, got {}", index,
        JsonKindName(v)));
  }
  const json::object& o = v.get_object();
  const json::value* name = o.if_contains("name");
  if (name == nullptr || name->is_null()) {
    return Status::InvalidArgument(fmt::format(
        "steps[{}] has no name; give every step one (letters, digits, '-', '_', '.')", index));
  }
  if (!name->is_string()) {
    return Status::InvalidArgument(
        fmt::format("steps[{}]: name must be a string, got {}", index, JsonKindName(*name)));
  }
  if (!IsPlainName(name->get_string())) {
    return Status::InvalidArgument(fmt::format(
        "steps[{}]: name {} is not a plain name; use 1-{} letters, digits, '-', '_' or '.'",
        index, Q(name->get_string()), kMaxStepName));
  }
  PipelineStep step;
  step.uuid = std::string(name->get_string());
  step.title = step.uuid;
  std::string where = Where(step);
  for (const auto& kv : o) {
    std::string_view key = kv.key();
    const json::value& val = kv.value();
    if (key == "name" || val.is_null()) {
      continue;
    }
    bool known = false;
    Status s = ReadCommonStepField(key, val, where, step, known);
    if (known) {
      if (!s.ok()) {
        return s;
      }
    } else if (key == "file") {
      if (Status r = ReadString(val, where, key, step.file_path); !r.ok()) {
        return r;
      }
    } else if (key == "after") {
      if (Status r = ReadNames(val, where, key, true, step.incoming); !r.ok()) {
        return r;
      }
    } else {
      return Err(where, fmt::format("unknown key {}; a step has name, file, command, after, "
                                    "parameters, env, memory-limit",
                                    Q(key)));
    }
  }
  return step;
}

Result<PipelineStep> ReadOrchestStep(std::string_view key, const json::value& v) {
  PipelineStep step;
  step.uuid = std::string(key);
  if (!v.is_object()) {
    return Err(Where(step), fmt::format("must be an object with title, file_path and "
                                        "incoming_connections, got {}",
                                        JsonKindName(v)));
  }
  const json::object& o = v.get_object();
  if (const json::value* title = o.if_contains("title"); title != nullptr && !title->is_null()) {
    if (Status s = ReadString(*title, Where(step), "title", step.title); !s.ok()) {
      return s;
    }
  }
  if (const json::value* uuid = o.if_contains("uuid"); uuid != nullptr && !uuid->is_null()) {
    if (!uuid->is_string()) {
      return Err(Where(step), fmt::format("uuid must be a string, got {}", JsonKindName(*uuid)));
    }
    if (uuid->get_string() != key) {
      return Err(Where(step), fmt::format("uuid is {} but the step is stored under the key {} "
                                          "of steps; Orchest keys every step by its uuid, make "
                                          "them the same",
                                          Q(uuid->get_string()), Q(key)));
    }
  }
  std::string where = Where(step);
  std::string image;
  for (const auto& kv : o) {
    std::string_view k = kv.key();
    const json::value& val = kv.value();
    if (val.is_null() || k == "uuid" || k == "title") {
      continue;
    }
    bool known = false;
    Status s = ReadCommonStepField(k, val, where, step, known);
    if (known) {
      if (!s.ok()) {
        return s;
      }
    } else if (k == "file_path") {
      s = ReadString(val, where, k, step.file_path);
    } else if (k == "incoming_connections") {
      s = ReadNames(val, where, k, false, step.incoming);
    } else if (k == "environment") {
      s = ReadString(val, where, k, step.environment);
    } else if (k == "image" || k == "kernel") {
      // 2020 files: "image": {"image_name": ...}; every version: "kernel": {"name": ...}.
      std::string_view sub = k == "image" ? "image_name" : "name";
      std::string& out = k == "image" ? image : step.kernel;
      if (val.is_string()) {
        out = std::string(val.get_string());
      } else if (!val.is_object()) {
        s = Err(where, fmt::format("{} must be an object with {}, got {}", k, sub,
                                   JsonKindName(val)));
      } else if (const json::value* n = val.get_object().if_contains(sub);
                 n != nullptr && !n->is_null()) {
        s = ReadString(*n, where, fmt::format("{}.{}", k, sub), out);
      }
    }
    // Anything else (meta_data, ...) is Orchest's editor state: not needed to run.
    if (!s.ok()) {
      return s;
    }
  }
  if (step.environment.empty()) {
    step.environment = std::move(image);
  }
  return step;
}

Result<StepKind> KindFor(const PipelineStep& step, Form form) {
  FieldNames names = NamesOf(form);
  bool has_command = !IsBlank(step.command);
  if (has_command && !step.file_path.empty()) {
    return Err(Where(step), fmt::format("has both {} {} and command {}; give one of them",
                                        names.file, Q(step.file_path), Q(step.command)));
  }
  if (has_command) {
    return StepKind::kCommand;
  }
  if (step.file_path.empty()) {
    return Err(Where(step), fmt::format("has neither {} nor command; give the file to run "
                                        "(e.g. load.py) or a command",
                                        names.file));
  }
  static const std::pair<std::string_view, StepKind> kExtensions[] = {
      {".py", StepKind::kPython},  {".sh", StepKind::kShell}, {".ipynb", StepKind::kNotebook},
      {".R", StepKind::kR},        {".r", StepKind::kR}};
  for (const auto& [ext, kind] : kExtensions) {
    if (EndsWith(step.file_path, ext)) {
      return kind;
    }
  }
  return Err(Where(step), fmt::format("file {} cannot be run; steps run .py, .sh, .ipynb or .R "
                                      "files, or a command",
                                      Q(step.file_path)));
}

// A cycle through the steps as file indexes, first step repeated at the end; empty if none.
// Iterative DFS along parent -> child edges, so that a long chain cannot overflow the stack.
std::vector<size_t> FindCycle(const std::vector<std::vector<size_t>>& children) {
  enum Color : uint8_t { kWhite, kGray, kBlack };
  std::vector<Color> color(children.size(), kWhite);
  for (size_t root = 0; root < children.size(); ++root) {
    if (color[root] != kWhite) {
      continue;
    }
    std::vector<std::pair<size_t, size_t>> stack = {{root, 0}};  // node, next child
    color[root] = kGray;
    while (!stack.empty()) {
      auto& [node, next] = stack.back();
      if (next == children[node].size()) {
        color[node] = kBlack;
        stack.pop_back();
        continue;
      }
      size_t child = children[node][next++];
      if (color[child] == kGray) {
        std::vector<size_t> cycle;
        auto it = std::find_if(stack.begin(), stack.end(),
                               [child](const auto& e) { return e.first == child; });
        for (; it != stack.end(); ++it) {
          cycle.push_back(it->first);
        }
        cycle.push_back(child);
        return cycle;
      }
      if (color[child] == kWhite) {
        color[child] = kGray;
        stack.emplace_back(child, 0);
      }
    }
  }
  return {};
}

Status CycleError(const Pipeline& p, const std::vector<size_t>& cycle) {
  std::vector<std::string> labels;
  for (size_t i : cycle) {
    labels.push_back(StepLabel(p.steps[i]));
  }
  return Status::InvalidArgument(fmt::format(
      "steps form a cycle: {}; remove one of these connections so that every step can run "
      "after its parents",
      fmt::join(labels, " -> ")));
}

// The step graph by file index: uuid -> index and each step's children (in file order).
// Fails on what a plan cannot be made of: duplicate uuids and unknown parents.
struct Graph {
  std::unordered_map<std::string_view, size_t> index;
  std::vector<std::vector<size_t>> children;
};

Result<Graph> BuildGraph(const Pipeline& p, Form form) {
  FieldNames names = NamesOf(form);
  Graph g;
  g.children.resize(p.steps.size());
  for (size_t i = 0; i < p.steps.size(); ++i) {
    auto [it, inserted] = g.index.emplace(p.steps[i].uuid, i);
    if (!inserted) {
      return Status::InvalidArgument(fmt::format(
          "duplicate step {0} {1}: steps[{2}] and steps[{3}] both have it; give each step its "
          "own {0}",
          names.id, Q(p.steps[i].uuid), it->second, i));
    }
  }
  for (size_t i = 0; i < p.steps.size(); ++i) {
    const PipelineStep& step = p.steps[i];
    std::set<std::string_view> seen;
    for (const std::string& parent : step.incoming) {
      auto it = g.index.find(parent);
      if (it == g.index.end()) {
        std::string hint;
        // Orchest's editor shows titles; a hand-edited file may use one in place of the uuid.
        for (const PipelineStep& other : p.steps) {
          if (other.title == parent && other.uuid != parent) {
            hint = fmt::format(" (the step titled {} has uuid {})", Q(parent), Q(other.uuid));
            break;
          }
        }
        return Err(Where(step), fmt::format("{} names {}, which is not a step of this pipeline; "
                                            "use the {} of one of its steps{}",
                                            names.incoming, Q(parent), names.id, hint));
      }
      if (!seen.insert(parent).second) {
        return Err(Where(step), fmt::format("{} lists {} twice; list each parent once",
                                            names.incoming, Q(parent)));
      }
      g.children[it->second].push_back(i);
    }
  }
  return g;
}

Status ValidateImpl(const Pipeline& p, Form form) {
  FieldNames names = NamesOf(form);
  if (p.steps.empty()) {
    return Status::InvalidArgument(fmt::format(
        "pipeline{} has no steps; add at least one under steps",
        p.name.empty() ? "" : " " + Q(p.name)));
  }
  if (p.concurrency < 0) {
    return Status::InvalidArgument(fmt::format(
        "concurrency is {}; use a positive number of steps to run at once, or 0 (or leave it "
        "out) for the global limit only",
        p.concurrency));
  }
  for (const auto& [name, value] : p.env) {
    if (!IsEnvName(name)) {
      return Status::InvalidArgument(fmt::format(
          "pipeline: env: {} is not a variable name; use letters, digits and '_', not starting "
          "with a digit",
          Q(name)));
    }
  }
  for (size_t i = 0; i < p.steps.size(); ++i) {
    const PipelineStep& step = p.steps[i];
    if (step.uuid.empty()) {
      return Status::InvalidArgument(
          fmt::format("steps[{}] has an empty {}; every step needs one", i, names.id));
    }
    // The uuid names the step's output and log directories.
    if (step.uuid == "." || step.uuid == ".." ||
        std::any_of(step.uuid.begin(), step.uuid.end(),
                    [](char c) { return c == '/' || static_cast<unsigned char>(c) < 0x20; })) {
      return Err(Where(step), fmt::format("{} {} cannot name a step: it may not contain '/' or "
                                          "control characters, nor be \".\" or \"..\"",
                                          names.id, Q(step.uuid)));
    }
    Result<StepKind> kind = KindFor(step, form);
    if (!kind.ok()) {
      return kind.status();
    }
    if (*kind != step.kind) {
      return Err(Where(step), fmt::format("kind is {} but its {} makes it a {} step; set kind "
                                          "with StepKindOf",
                                          StepKindName(step.kind),
                                          *kind == StepKind::kCommand ? "command" : names.file,
                                          StepKindName(*kind)));
    }
    if (!step.file_path.empty() && step.file_path[0] == '/') {
      return Err(Where(step), fmt::format("{} {} must be relative to the project directory",
                                          names.file, Q(step.file_path)));
    }
    if (step.memory_limit_bytes != 0 && step.memory_limit_bytes < kMinMemory) {
      std::string hint = step.memory_limit_bytes <= 64 * kKi
                             ? fmt::format("; a number without a unit is bytes: did you mean {}Mi?",
                                           step.memory_limit_bytes)
                             : "";
      return Err(Where(step), fmt::format("memory-limit is {} bytes; it must be at least 1M{}",
                                          step.memory_limit_bytes, hint));
    }
    if (step.memory_limit_bytes > kMaxMemory) {
      return Err(Where(step), fmt::format("memory-limit is {} bytes; at most 1Ti is allowed",
                                          step.memory_limit_bytes));
    }
    for (const auto& [name, value] : step.env) {
      if (!IsEnvName(name)) {
        return Err(Where(step), fmt::format("env: {} is not a variable name; use letters, "
                                            "digits and '_', not starting with a digit",
                                            Q(name)));
      }
    }
  }
  Result<Graph> g = BuildGraph(p, form);
  if (!g.ok()) {
    return g.status();
  }
  if (std::vector<size_t> cycle = FindCycle(g->children); !cycle.empty()) {
    return CycleError(p, cycle);
  }
  return Status::Ok();
}

// JSON first: its errors are precise, and a JSON document YAML reads differently (tabs, long
// lines) would be misread. YAML for everything else.
Result<json::value> ReadText(std::string_view text) {
  json::stream_parser parser;
  boost::system::error_code ec;
  size_t consumed = parser.write(text.data(), text.size(), ec);
  if (!ec) {
    parser.finish(ec);
  }
  if (!ec) {
    return parser.release();
  }
  Result<json::value> yaml = YamlToJson(std::string(text));
  if (yaml.ok()) {
    return yaml;
  }
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && text[first] == '{') {
    std::string_view before = text.substr(0, std::min(consumed, text.size()));
    size_t line = 1 + static_cast<size_t>(std::count(before.begin(), before.end(), '\n'));
    size_t nl = before.rfind('\n');
    size_t column = nl == std::string_view::npos ? before.size() + 1 : before.size() - nl;
    return Status::InvalidArgument(fmt::format("pipeline is not valid JSON: {} at line {}, "
                                               "column {}",
                                               ec.message(), line, column));
  }
  return yaml.status().WithContext("reading pipeline");
}

}  // namespace

const char* StepKindName(StepKind k) {
  switch (k) {
    case StepKind::kCommand:
      return "command";
    case StepKind::kPython:
      return "python";
    case StepKind::kShell:
      return "shell";
    case StepKind::kNotebook:
      return "notebook";
    case StepKind::kR:
      return "r";
  }
  return "command";
}

const PipelineStep* Pipeline::Find(std::string_view uuid) const {
  for (const PipelineStep& s : steps) {
    if (s.uuid == uuid) {
      return &s;
    }
  }
  return nullptr;
}

std::string StepLabel(const PipelineStep& step) {
  if (step.title.empty() || step.title == step.uuid) {
    return step.uuid;
  }
  return fmt::format("{} ({})", step.title, step.uuid);
}

Result<StepKind> StepKindOf(const PipelineStep& step) { return KindFor(step, Form::kCode); }

Result<Pipeline> PipelineFromJson(const json::value& v,
                                  const std::function<bool(std::string_view)>& has_program) {
  if (!v.is_object()) {
    return Status::InvalidArgument(fmt::format(
        "a pipeline must be an object with name and steps, got {}", JsonKindName(v)));
  }
  const json::object& o = v.get_object();
  const json::value* steps = o.if_contains("steps");
  if (steps == nullptr || steps->is_null()) {
    return Status::InvalidArgument(
        "the pipeline has no steps: list them under steps (berth's form) or key them by uuid "
        "(Orchest's pipeline.json)");
  }
  if (!steps->is_array() && !steps->is_object()) {
    return Status::InvalidArgument(fmt::format(
        "steps must be a list (berth's form) or an object keyed by step uuid (Orchest's form), "
        "got {}",
        JsonKindName(*steps)));
  }
  Form form = steps->is_array() ? Form::kBerth : Form::kOrchest;
  Pipeline p;
  for (const auto& kv : o) {
    std::string_view key = kv.key();
    const json::value& val = kv.value();
    if (key == "steps" || val.is_null()) {
      continue;
    }
    Status s;
    if (key == "name") {
      s = ReadString(val, "pipeline", key, p.name);
    } else if (key == "uuid") {
      s = ReadString(val, "pipeline", key, p.uuid);
    } else if (key == "parameters") {
      s = ReadObject(val, "pipeline", key, p.parameters);
    } else if (key == "env") {
      s = ReadEnv(val, "pipeline", key, p.env);
    } else if (key == "concurrency") {
      s = ReadConcurrency(val, p.concurrency);
    } else if (key == "services") {
      s = ReadServices(val, p.services);
    } else if (form == Form::kBerth) {
      // berth's form is written by hand: a misspelt key would otherwise be silently ignored.
      s = Status::InvalidArgument(fmt::format(
          "pipeline: unknown key {}; a pipeline has name, uuid, parameters, env, concurrency, "
          "services, steps",
          Q(key)));
    }
    if (!s.ok()) {
      return s;
    }
  }
  if (form == Form::kBerth) {
    const json::array& a = steps->get_array();
    for (size_t i = 0; i < a.size(); ++i) {
      Result<PipelineStep> step = ReadBerthStep(a[i], i);
      if (!step.ok()) {
        return step.status();
      }
      p.steps.push_back(std::move(*step));
    }
  } else {
    for (const auto& kv : steps->get_object()) {
      Result<PipelineStep> step = ReadOrchestStep(kv.key(), kv.value());
      if (!step.ok()) {
        return step.status();
      }
      p.steps.push_back(std::move(*step));
    }
  }
  for (PipelineStep& step : p.steps) {
    if (Result<StepKind> kind = KindFor(step, form); kind.ok()) {
      step.kind = *kind;
    }  // else ValidateImpl reports it, in file order with the other checks
  }
  if (Status s = ValidateImpl(p, form); !s.ok()) {
    return s;
  }
  if (has_program) {
    std::optional<bool> rscript;  // asked once, and only when an R step needs it
    for (const PipelineStep& step : p.steps) {
      if (step.kind == StepKind::kR && !rscript) {
        rscript = has_program("Rscript");
      }
      if (step.kind == StepKind::kR && !*rscript) {
        return Status::InvalidArgument(fmt::format(
            "step {} is an R script ({}) but Rscript is not installed (apt-get install "
            "r-base-core)",
            Q(StepLabel(step)), step.file_path));
      }
    }
  }
  return p;
}

Result<Pipeline> ParsePipeline(std::string_view text,
                               const std::function<bool(std::string_view)>& has_program) {
  Result<json::value> v = ReadText(text);
  if (!v.ok()) {
    return v.status();
  }
  return PipelineFromJson(*v, has_program);
}

Status ValidatePipeline(const Pipeline& p) { return ValidateImpl(p, Form::kCode); }

json::object PipelineToJson(const Pipeline& p) {
  json::object o;
  // name, uuid and settings are read unconditionally by Orchest's SDK (Pipeline.from_json).
  o["name"] = p.name;
  o["uuid"] = p.uuid;
  o["settings"] = json::object();
  o["parameters"] = p.parameters;
  o["services"] = p.services;
  if (!p.env.empty()) {
    json::object env;
    for (const auto& [k, v] : p.env) {
      env[k] = v;
    }
    o["env"] = std::move(env);
  }
  if (p.concurrency != 0) {
    o["concurrency"] = p.concurrency;
  }
  json::object steps;
  for (const PipelineStep& s : p.steps) {
    json::object step;
    step["uuid"] = s.uuid;
    step["title"] = s.title;
    step["file_path"] = s.file_path;
    json::array incoming;
    for (const std::string& parent : s.incoming) {
      incoming.emplace_back(parent);
    }
    step["incoming_connections"] = std::move(incoming);
    step["parameters"] = s.parameters;
    step["environment"] = s.environment;
    if (!s.kernel.empty()) {
      step["kernel"] = json::object{{"name", s.kernel}};
    }
    if (!s.command.empty()) {
      step["command"] = s.command;
    }
    if (!s.env.empty()) {
      json::object env;
      for (const auto& [k, v] : s.env) {
        env[k] = v;
      }
      step["env"] = std::move(env);
    }
    if (s.memory_limit_bytes != 0) {
      step["memory-limit"] = FormatMemory(s.memory_limit_bytes);
    }
    steps[s.uuid] = std::move(step);
  }
  o["steps"] = std::move(steps);
  return o;
}

const char* RunTypeName(RunType t) {
  switch (t) {
    case RunType::kFull:
      return "full";
    case RunType::kSelection:
      return "selection";
    case RunType::kIncoming:
      return "incoming";
  }
  return "full";
}

Result<RunType> ParseRunType(std::string_view name) {
  if (name == "full") {
    return RunType::kFull;
  }
  if (name == "selection" || name == "partial") {
    return RunType::kSelection;
  }
  if (name == "incoming") {
    return RunType::kIncoming;
  }
  return Status::InvalidArgument(fmt::format(
      "unknown run type {}; use full, selection or incoming (Orchest's \"partial\" is "
      "selection)",
      Q(name)));
}

Result<RunPlan> PlanRun(const Pipeline& p, RunType type, const std::vector<std::string>& selection,
                        bool include_selected) {
  // Only the graph is checked here (not file kinds or limits): a plan can be made of any
  // pipeline whose graph is sound.
  Result<Graph> g = BuildGraph(p, Form::kCode);
  if (!g.ok()) {
    return g.status();
  }
  if (std::vector<size_t> cycle = FindCycle(g->children); !cycle.empty()) {
    return CycleError(p, cycle);
  }
  const size_t n = p.steps.size();
  std::vector<bool> in_run(n, type == RunType::kFull);
  if (type != RunType::kFull) {
    if (selection.empty()) {
      return Status::InvalidArgument(fmt::format(
          "a {} run needs at least one selected step; pass the uuids of the steps {}",
          RunTypeName(type),
          type == RunType::kSelection ? "to run" : "whose incoming steps are to run"));
    }
    std::vector<bool> selected(n, false);
    std::vector<size_t> picked;  // file indexes, deduplicated, in the order given
    std::vector<std::string> unknown;
    for (const std::string& uuid : selection) {
      auto it = g->index.find(uuid);
      if (it == g->index.end()) {
        if (std::find(unknown.begin(), unknown.end(), Q(uuid)) == unknown.end()) {
          unknown.push_back(Q(uuid));
        }
      } else if (!selected[it->second]) {
        selected[it->second] = true;
        picked.push_back(it->second);
      }
    }
    if (!unknown.empty()) {
      return Status::InvalidArgument(fmt::format(
          "the selection names {} this pipeline does not have: {}; select steps by uuid",
          unknown.size() == 1 ? "a step" : "steps", fmt::join(unknown, ", ")));
    }
    if (type == RunType::kSelection) {
      in_run = selected;
    } else {
      std::vector<bool> ancestor(n, false);
      std::vector<size_t> todo = picked;
      while (!todo.empty()) {
        size_t i = todo.back();
        todo.pop_back();
        for (const std::string& parent : p.steps[i].incoming) {
          size_t j = g->index.at(parent);
          if (!ancestor[j]) {
            ancestor[j] = true;
            todo.push_back(j);
          }
        }
      }
      bool any_ancestor = false;
      for (size_t i = 0; i < n; ++i) {
        any_ancestor = any_ancestor || ancestor[i];
        in_run[i] = include_selected ? ancestor[i] || selected[i] : ancestor[i] && !selected[i];
      }
      if (std::find(in_run.begin(), in_run.end(), true) == in_run.end()) {
        std::vector<std::string> labels;
        for (size_t i : picked) {
          labels.push_back(Q(StepLabel(p.steps[i])));
        }
        return Status::InvalidArgument(fmt::format(
            "nothing to run: {} {} no incoming steps{}; run a selection, or include the "
            "selected steps",
            fmt::join(labels, ", "), labels.size() == 1 ? "has" : "have",
            any_ancestor ? " that are not themselves selected" : ""));
      }
    }
  }
  // Kahn's algorithm over the steps of the run; `ready` orders ties by file index.
  std::vector<size_t> indegree(n, 0);
  RunPlan plan;
  for (size_t i = 0; i < n; ++i) {
    if (!in_run[i]) {
      continue;
    }
    std::vector<std::string>& parents = plan.parents[p.steps[i].uuid];
    for (const std::string& parent : p.steps[i].incoming) {
      if (in_run[g->index.at(parent)]) {
        parents.push_back(parent);
        ++indegree[i];
      }
    }
  }
  std::set<size_t> ready;
  for (size_t i = 0; i < n; ++i) {
    if (in_run[i] && indegree[i] == 0) {
      ready.insert(i);
    }
  }
  while (!ready.empty()) {
    size_t i = *ready.begin();
    ready.erase(ready.begin());
    plan.steps.push_back(p.steps[i].uuid);
    for (size_t child : g->children[i]) {
      if (in_run[child] && --indegree[child] == 0) {
        ready.insert(child);
      }
    }
  }
  assert(plan.steps.size() == plan.parents.size());  // no cycle: Kahn's reaches every step
  return plan;
}

}  // namespace berth
