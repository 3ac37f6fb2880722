#include "graph/recipe_engine.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <boost/json.hpp>
#include <deque>
#include <filesystem>
#include <fstream>
#include <set>
#include <zmq.hpp>

#include "artifacts/bundle_manifest.h"
#include "common/crypto.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/thread.h"
#include "common/time.h"
#include "control/confinement.h"
#include "graph/wire.h"

namespace berth {

namespace json = boost::json;
namespace fs = std::filesystem;
using std::chrono::milliseconds;

namespace {

constexpr const char* kNeptuneProject = "default";
constexpr size_t kMaxIpcPath = 100;  // sockaddr_un holds 107 bytes

std::string Key(const std::string& project, const std::string& name) {
  return project + "/" + name;
}

// Built-in handlers, by berth's name and by Neptune's.
enum class Handler { kPing, kForward, kImage, kUnknown };
Handler HandlerOf(std::string_view h) {
  if (h == "ping" || h == "handlers.ping_handler") return Handler::kPing;
  if (h == "forward" || h == "handlers.forward" || h == "handlers.json_handler") {
    return Handler::kForward;
  }
  if (h == "image" || h == "handlers.image_handler") return Handler::kImage;
  return Handler::kUnknown;
}

// `module.function`: a Python handler's name.
bool IsPythonHandler(std::string_view h) {
  size_t dot = h.find('.');
  return dot != std::string_view::npos && dot > 0 && dot + 1 < h.size() &&
         h.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.") ==
             std::string_view::npos;
}

ServeAnswer JsonAnswer(int status, const json::value& v) {
  return ServeAnswer{status, "application/json", json::serialize(v)};
}
ServeAnswer ErrorAnswer(int status, const std::string& message) {
  return ServeAnswer{status, "text/plain; charset=utf-8", message};
}

}  // namespace

const char* RecipeStateName(RecipeState s) {
  switch (s) {
    case RecipeState::kStopped:
      return "STOPPED";
    case RecipeState::kStarting:
      return "STARTING";
    case RecipeState::kStarted:
      return "STARTED";
    case RecipeState::kDead:
      return "DEAD";
  }
  return "STOPPED";
}

int NeptuneStateCode(RecipeState s) {
  switch (s) {
    case RecipeState::kStopped:
      return -1;
    case RecipeState::kDead:
      return 0;
    case RecipeState::kStarting:
      return 1;
    case RecipeState::kStarted:
      return 2;
  }
  return -1;
}

const std::vector<std::string>& RecipeEngine::BuiltinNodes() {
  static const std::vector<std::string> kTypes = {"ping", "passthrough", "merge", "stream"};
  return kTypes;
}

bool RecipeEngine::IsBuiltinNode(std::string_view type) {
  const auto& types = BuiltinNodes();
  return std::find(types.begin(), types.end(), type) != types.end();
}
bool RecipeEngine::IsBuiltinHandler(std::string_view h) {
  return HandlerOf(h) != Handler::kUnknown;
}

// A request going through a recipe's handler chain: which handler it is at, the request's
// data, the previous handler's result, and whom to answer. Owned by the recipe while its
// message is in the graph (or waits for the graph to carry messages again).
struct RecipeEngine::Call {
  std::string name;
  std::vector<std::string> handlers;
  size_t step = 0;
  json::value request;
  std::optional<json::value> previous;
  std::function<void(ServeAnswer)> done;
  std::chrono::steady_clock::time_point deadline;
};

struct RecipeEngine::Active {
  RecipeRecord rec;
  Recipe recipe;
  std::string key;
  RecipeState state = RecipeState::kStopped;
  std::string message;
  int64_t since = 0;
  int dead_count = 0;

  // What the API asked of the loop.
  bool want_start = false;
  bool want_stop = false;
  bool want_destroy = false;
  bool restart_pending = false;
  Clock::TimePoint restart_at;

  json::object overrides;
  std::vector<json::object> run_args;

  struct Node {
    std::string task;       // current task id; empty when none
    std::string last_task;  // the one before, kept for its logs
    bool running = false;
    bool restart_due = false;
    int restarts = 0;
    int quick_crashes = 0;
    Clock::TimePoint started;
    Clock::TimePoint restart_at;
    std::string last_exit;
    TaskSpec spec;  // how to start it again
  };
  std::vector<Node> nodes;
  int launches = 0;

  // The running graph's channels (owned by the loop thread).
  std::string sock_dir;
  std::unique_ptr<zmq::socket_t> start;
  std::vector<std::unique_ptr<zmq::socket_t>> ends;
  uint64_t hb_seq = 0;
  uint64_t hb_seen = 0;
  uint64_t hb_first = 0;  // the last sequence number sent before this launch
  // By edge: a heartbeat crossed it since its nodes (re)started. All up: messages sent now get
  // through; while a node restarts its subscriptions are not up yet, and requests wait.
  std::vector<bool> edge_up;
  Clock::TimePoint next_hb;
  Clock::TimePoint last_hb_end;
  Clock::TimePoint starting_since;

  // Throughput: messages per edge (counted by each sink), and their rates between heartbeats.
  std::vector<std::vector<size_t>> inbound;  // node -> edge indices, in input order
  std::vector<size_t> end_edges;             // ends[i] -> edge index
  std::vector<uint64_t> counts;
  std::vector<uint64_t> counts_at_rate;
  std::vector<double> rates;
  Clock::TimePoint rate_at;

  // Python handlers (`module.function` in the project's handlers bundle): one more process,
  // after the graph's nodes in `nodes`, answering on a ROUTER socket the engine's DEALER
  // connects to.
  bool has_host = false;
  bool host_ready = false;  // it answered "hello": every handler imported
  std::unique_ptr<zmq::socket_t> handlers;
  std::map<std::string, std::unique_ptr<Call>> pending;  // by message id, in the graph
  std::vector<std::unique_ptr<Call>> waiting;            // until every edge is up again
  std::chrono::steady_clock::time_point next_expiry_check;
};

RecipeEngine::RecipeEngine(Store& store, Supervisor& runtime, Clock& clock,
                           RecipeEngineOptions options)
    : store_(store),
      runtime_(runtime),
      clock_(clock),
      options_(std::move(options)),
      zmq_(std::make_unique<zmq::context_t>(1)) {}

RecipeEngine::~RecipeEngine() { Shutdown(); }

bool RecipeEngine::AwaitLoop(milliseconds timeout, const std::function<bool()>& done) {
  if (!options_.threads) {
    Tick();  // tests: one pass of the loop's work, on the caller's thread
    return done();
  }
  changed_.WaitFor(mu_, timeout, done);
  return done();
}

Status RecipeEngine::Start() {
  {
    MutexLock lock(mu_);
    if (auto s = LoadLocked(); !s.ok()) {
      return s;
    }
  }
  if (options_.threads) {
    loop_ = std::thread([this] {
      NameThisThread("berth-recipes");
      Loop();
    });
  }
  return Status::Ok();
}

void RecipeEngine::Shutdown() {
  {
    MutexLock lock(mu_);
    if (stopping_) {
      return;
    }
    stopping_ = true;
    changed_.NotifyAll();
  }
  if (loop_.joinable()) {
    loop_.join();
  }
  // Nodes are stopped with the daemon; the next daemon starts the started recipes afresh.
  std::vector<std::string> tasks;
  {
    MutexLock lock(mu_);
    for (auto& [key, a] : recipes_) {
      FailCalls(*a, 503, fmt::format("{} is not active: berth is shutting down", a->rec.name));
      for (auto& n : a->nodes) {
        if (!n.task.empty()) {
          (void)runtime_.CancelTask(n.task);
          tasks.push_back(n.task);
        }
      }
      a->start.reset();
      a->handlers.reset();
      a->ends.clear();
    }
  }
  // The runtime stops them (SIGTERM, SIGKILL after the grace): wait for it, so that no node
  // outlives the daemon. (Without threads, the test driving the runtime does not step it now.)
  if (!options_.threads) {
    return;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(4);
  for (const auto& id : tasks) {
    while (std::chrono::steady_clock::now() < deadline) {
      auto t = runtime_.Task(id);
      if (!t || TaskEnded(t->state)) {
        break;
      }
      std::this_thread::sleep_for(milliseconds(10));
    }
  }
}

Status RecipeEngine::LoadLocked() {
  // Neptune's cache decides the default project's recipes when it has any file.
  std::string cache = options_.data_dir + "/neptune/recipes";
  std::vector<std::pair<std::string, json::value>> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(cache, ec)) {
    std::string f = e.path().filename().string();
    if (!f.starts_with("recipe_") || !f.ends_with(".bak")) {
      continue;
    }
    auto text = ReadFile(e.path().string());
    boost::system::error_code jec;
    json::value v = text.ok() ? json::parse(*text, jec) : json::value();
    if (!text.ok() || jec) {
      LogWarn("ignoring unreadable Neptune recipe cache file", {{"file", e.path().string()}});
      continue;
    }
    files.emplace_back(e.path().string(), std::move(v));
  }
  if (!files.empty()) {
    std::set<std::string> keep;
    for (auto& [path, v] : files) {
      auto r = ParseRecipe(v);
      if (!r.ok()) {
        LogWarn("ignoring a Neptune recipe cache file that is not a valid recipe",
                {{"file", path}, {"error", r.status().message()}});
        continue;
      }
      keep.insert(r->name);
      auto existing = store_.GetRecipe(kNeptuneProject, r->name);
      std::string def = json::serialize(RecipeToNeptune(*r));
      if (existing.ok() && existing->definition_json == def) {
        continue;
      }
      if (existing.ok()) {
        (void)store_.DeleteRecipe(kNeptuneProject, r->name);
      }
      RecipeRecord rec{kNeptuneProject,
                       r->name,
                       r->url,
                       def,
                       existing.ok() && existing->started,
                       existing.ok() ? existing->overrides_json : "{}"};
      if (auto c = store_.CreateRecipe(rec); !c.ok()) {
        LogWarn("cannot load recipe from Neptune's cache",
                {{"file", path}, {"error", c.status().message()}});
      }
    }
    if (auto all = store_.ListRecipes(kNeptuneProject); all.ok()) {
      for (const auto& rec : *all) {
        if (keep.count(rec.name) == 0) {
          (void)store_.DeleteRecipe(kNeptuneProject, rec.name);
        }
      }
    }
    (void)store_.SetSetting(std::string("recipes.seeded:") + kNeptuneProject, "1");
  } else if (auto s = SeedDefaults(kNeptuneProject); !s.ok()) {
    return s;
  }
  auto all = store_.ListRecipes("");
  if (!all.ok()) {
    return all.status();
  }
  // Node tasks of an earlier daemon: their graphs are started afresh.
  // Their ids never come back: this daemon's carry its own generation.
  generation_ = std::to_string(NowUnixMillis());
  for (const auto& t : runtime_.Tasks()) {
    if (t.owner.starts_with("recipe:")) {
      if (TaskEnded(t.state)) {
        (void)runtime_.ForgetTask(t.id);
      } else {
        (void)runtime_.CancelTask(t.id);  // forgotten once it ended (OnTaskEnded)
      }
    }
  }
  for (const auto& rec : *all) {
    if (auto s = AddActive(rec); !s.ok()) {
      LogWarn("cannot load recipe", {{"recipe", rec.name}, {"error", s.message()}});
      continue;
    }
    Active& a = *recipes_[Key(rec.project, rec.name)];
    if (rec.project == kNeptuneProject) {
      WriteNeptuneCache(rec, a.recipe);
    }
    if (rec.started) {
      boost::system::error_code jec;
      json::value o = json::parse(rec.overrides_json, jec);
      a.overrides = !jec && o.is_object() ? o.as_object() : json::object{};
      auto args = RunArgs(a.recipe, a.overrides);
      a.run_args = args.ok() ? *args : *RunArgs(a.recipe, {});
      a.want_start = true;
      SetState(a, RecipeState::kStarting, "starting again after the daemon's restart");
    }
  }
  return Status::Ok();
}

Status RecipeEngine::SeedDefaults(const std::string& project) {
  std::string flag = "recipes.seeded:" + project;
  auto seeded = store_.GetSetting(flag);
  if (!seeded.ok()) {
    return seeded.status();
  }
  if (!seeded->empty()) {
    return Status::Ok();  // a destroyed default stays destroyed
  }
  for (const auto& r : DefaultRecipes()) {
    RecipeRecord rec{project, r.name, r.url, json::serialize(RecipeToNeptune(r))};
    if (auto c = store_.CreateRecipe(rec);
        !c.ok() && c.status().code() != StatusCode::kAlreadyExists) {
      return c.status();
    }
  }
  return store_.SetSetting(flag, "1");
}

void RecipeEngine::WriteNeptuneCache(const RecipeRecord& rec, const Recipe& r) {
  if (rec.project != kNeptuneProject) {
    return;
  }
  std::string dir = options_.data_dir + "/neptune/recipes";
  std::error_code ec;
  fs::create_directories(dir, ec);
  std::string path = dir + "/recipe_" + r.name + ".bak";
  if (auto s = WriteFileAtomic(path, json::serialize(RecipeToNeptune(r)) + "\n", 0644); !s.ok()) {
    LogWarn("cannot write Neptune's recipe cache", {{"file", path}, {"error", s.message()}});
  }
}

void RecipeEngine::RemoveNeptuneCache(const std::string& name) {
  std::error_code ec;
  fs::remove(options_.data_dir + "/neptune/recipes/recipe_" + name + ".bak", ec);
}

Status RecipeEngine::AddActive(const RecipeRecord& rec) {
  boost::system::error_code ec;
  json::value v = json::parse(rec.definition_json, ec);
  if (ec) {
    return Status::Internal("stored recipe is not JSON");
  }
  auto r = ParseRecipe(v);
  if (!r.ok()) {
    return r.status();
  }
  auto a = std::make_unique<Active>();
  a->rec = rec;
  a->recipe = std::move(*r);
  a->key = Key(rec.project, rec.name);
  a->since = NowUnixMillis();
  a->message = "constructed";
  a->nodes.resize(a->recipe.nodes.size());
  a->inbound.resize(a->recipe.nodes.size());
  for (size_t e = 0; e < a->recipe.edges.size(); ++e) {
    int sink = a->recipe.edges[e].sink;
    if (sink != kGraphTerminal) {
      a->inbound[static_cast<size_t>(sink)].push_back(e);
    }
  }
  a->counts.assign(a->recipe.edges.size(), 0);
  a->counts_at_rate = a->counts;
  a->rates.assign(a->recipe.edges.size(), 0);
  recipes_[a->key] = std::move(a);
  return Status::Ok();
}

bool RecipeEngine::AllEdgesUp(const Active& a) {
  return std::all_of(a.edge_up.begin(), a.edge_up.end(), [](bool up) { return up; });
}

std::string RecipeEngine::NodeLabel(const Active& a, size_t i) const {
  if (i < a.recipe.nodes.size()) {
    return fmt::format("node {} ({})", i, a.recipe.nodes[i].name);
  }
  return "the handlers process";
}

RecipeEngine::Active* RecipeEngine::Find(const std::string& project,
                                         const std::string& name) const {
  auto it = recipes_.find(Key(project, name));
  if (it == recipes_.end() || it->second->want_destroy) {
    return nullptr;
  }
  return it->second.get();
}

RecipeView RecipeEngine::ViewOf(const Active& a) const {
  RecipeView v;
  v.record = a.rec;
  v.recipe = a.recipe;
  v.state = a.state;
  v.message = a.message;
  v.state_since = a.since;
  v.dead_count = a.dead_count;
  for (size_t i = 0; i < a.nodes.size(); ++i) {
    const auto& n = a.nodes[i];
    RecipeNodeView nv;
    bool host = i >= a.recipe.nodes.size();
    nv.name = host ? "handlers" : a.recipe.nodes[i].name;
    nv.type = host ? "python handlers" : a.recipe.nodes[i].type;
    if (n.running && !n.task.empty()) {
      if (auto t = runtime_.Task(n.task)) {
        nv.pid = t->pid;
      }
    }
    nv.restarts = n.restarts;
    nv.state = n.running ? "running" : n.restart_due ? "restarting" : "stopped";
    nv.last_exit = n.last_exit;
    v.nodes.push_back(std::move(nv));
  }
  for (size_t e = 0; e < a.recipe.edges.size(); ++e) {
    v.edges.push_back(
        RecipeEdgeRate{a.recipe.edges[e].source, a.recipe.edges[e].sink, a.counts[e], a.rates[e]});
  }
  for (size_t e : a.end_edges) {
    v.throughput += a.rates[e];
  }
  return v;
}

Result<RecipeView> RecipeEngine::Construct(const std::string& project, const json::value& body) {
  auto r = ParseRecipe(body);
  if (!r.ok()) {
    return r.status();
  }
  MutexLock lock(mu_);
  // A destructed recipe of the same name may still be torn down by the loop: wait for it.
  AwaitLoop(std::chrono::seconds(10), [&]() REQUIRES(mu_) {
    auto it = recipes_.find(Key(project, r->name));
    return it == recipes_.end() || !it->second->want_destroy;
  });
  RecipeRecord rec{project, r->name, r->url, json::serialize(RecipeToNeptune(*r))};
  auto stored = store_.CreateRecipe(rec);
  if (!stored.ok()) {
    // A taken name or url is a problem of the recipe posted, like the rest of validation.
    return stored.status().code() == StatusCode::kAlreadyExists
               ? Status::InvalidArgument(stored.status().message())
               : stored.status();
  }
  if (auto s = AddActive(*stored); !s.ok()) {
    return s;
  }
  Active& a = *recipes_[Key(project, r->name)];
  WriteNeptuneCache(*stored, a.recipe);
  Event(a, "constructed",
        fmt::format("recipe {} constructed ({} nodes)", a.rec.name, a.recipe.nodes.size()));
  return ViewOf(a);
}

Status RecipeEngine::Destruct(const std::string& project, const std::string& name) {
  MutexLock lock(mu_);
  Active* a = Find(project, name);
  if (a == nullptr) {
    return Status::NotFound(fmt::format(
        "project '{}' has no recipe '{}'; see them with: berth recipes ls", project, name));
  }
  if (auto s = store_.DeleteRecipe(project, name); !s.ok()) {
    return s;
  }
  if (project == kNeptuneProject) {
    RemoveNeptuneCache(name);
  }
  a->want_destroy = true;
  Event(*a, "destructed", fmt::format("recipe {} destructed", name));
  changed_.NotifyAll();
  std::string key = Key(project, name);
  AwaitLoop(std::chrono::seconds(10), [&]() REQUIRES(mu_) { return recipes_.count(key) == 0; });
  return Status::Ok();
}

Result<RecipeView> RecipeEngine::StartRecipe(const std::string& project, const std::string& name,
                                             const json::object& overrides) {
  MutexLock lock(mu_);
  Active* a = Find(project, name);
  if (a == nullptr) {
    return Status::NotFound(fmt::format(
        "project '{}' has no recipe '{}'; see them with: berth recipes ls", project, name));
  }
  if (a->state == RecipeState::kStarting || a->state == RecipeState::kStarted) {
    return Status::FailedPrecondition(
        fmt::format("recipe {} is {} already; stop it first to start it with other arguments", name,
                    RecipeStateName(a->state)));
  }
  auto args = RunArgs(a->recipe, overrides);
  if (!args.ok()) {
    return args.status();
  }
  if (auto s = store_.SetRecipeStarted(project, name, true, json::serialize(overrides)); !s.ok()) {
    return s;
  }
  a->overrides = overrides;
  a->rec.started = true;
  a->rec.overrides_json = json::serialize(overrides);
  a->run_args = std::move(*args);
  a->want_start = true;
  a->restart_pending = false;
  SetState(*a, RecipeState::kStarting, "starting");
  changed_.NotifyAll();
  std::string key = a->key;
  AwaitLoop(options_.start_timeout + std::chrono::seconds(2), [&]() REQUIRES(mu_) {
    auto it = recipes_.find(key);
    return it == recipes_.end() || it->second->state != RecipeState::kStarting;
  });
  a = Find(project, name);
  if (a == nullptr) {
    return Status::NotFound(fmt::format("recipe {} was destructed while it started", name));
  }
  return ViewOf(*a);
}

Result<RecipeView> RecipeEngine::StopRecipe(const std::string& project, const std::string& name) {
  MutexLock lock(mu_);
  Active* a = Find(project, name);
  if (a == nullptr) {
    return Status::NotFound(fmt::format(
        "project '{}' has no recipe '{}'; see them with: berth recipes ls", project, name));
  }
  if (auto s = store_.SetRecipeStarted(project, name, false, json::serialize(a->overrides));
      !s.ok()) {
    return s;
  }
  a->rec.started = false;
  a->want_start = false;
  a->restart_pending = false;
  a->want_stop = true;
  changed_.NotifyAll();
  std::string key = a->key;
  AwaitLoop(std::chrono::seconds(10), [&]() REQUIRES(mu_) {
    auto it = recipes_.find(key);
    return it == recipes_.end() || !it->second->want_stop;
  });
  a = Find(project, name);
  if (a == nullptr) {
    return Status::NotFound(fmt::format("recipe {} was destructed while it stopped", name));
  }
  return ViewOf(*a);
}

std::vector<RecipeView> RecipeEngine::List(const std::string& project) const {
  MutexLock lock(mu_);
  std::vector<RecipeView> out;
  for (const auto& [key, a] : recipes_) {
    if (!a->want_destroy && (project.empty() || a->rec.project == project)) {
      out.push_back(ViewOf(*a));
    }
  }
  return out;
}

Result<RecipeView> RecipeEngine::Get(const std::string& project, const std::string& name) const {
  MutexLock lock(mu_);
  Active* a = Find(project, name);
  if (a == nullptr) {
    return Status::NotFound(fmt::format(
        "project '{}' has no recipe '{}'; see them with: berth recipes ls", project, name));
  }
  return ViewOf(*a);
}

Result<std::string> RecipeEngine::NameByUrl(const std::string& project,
                                            const std::string& url) const {
  MutexLock lock(mu_);
  for (const auto& [key, a] : recipes_) {
    if (!a->want_destroy && a->rec.project == project && a->rec.url == url) {
      return a->rec.name;
    }
  }
  return Status::NotFound(
      fmt::format("no recipe of project '{}' serves the url '{}'", project, url));
}

Status RecipeEngine::Reset(const std::string& project) {
  std::vector<std::string> names;
  {
    MutexLock lock(mu_);
    for (const auto& [key, a] : recipes_) {
      if (!a->want_destroy && a->rec.project == project) {
        names.push_back(a->rec.name);
      }
    }
  }
  for (const auto& n : names) {
    if (auto s = Destruct(project, n); !s.ok() && s.code() != StatusCode::kNotFound) {
      return s;
    }
  }
  MutexLock lock(mu_);
  if (auto s = store_.SetSetting("recipes.seeded:" + project, ""); !s.ok()) {
    return s;
  }
  if (auto s = SeedDefaults(project); !s.ok()) {
    return s;
  }
  auto all = store_.ListRecipes(project);
  if (!all.ok()) {
    return all.status();
  }
  for (const auto& rec : *all) {
    if (recipes_.count(Key(rec.project, rec.name)) == 0) {
      if (auto s = AddActive(rec); s.ok()) {
        WriteNeptuneCache(rec, recipes_[Key(rec.project, rec.name)]->recipe);
      }
    }
  }
  return Status::Ok();
}

Result<NodeTypeRecord> RecipeEngine::PutNodeType(const std::string& project,
                                                 const std::string& name,
                                                 const std::string& digest) {
  if (IsBuiltinNode(name)) {
    return Status::InvalidArgument(
        fmt::format("'{}' is a built-in node type; give the pushed one another name", name));
  }
  if (name.empty() || name.size() > 64 ||
      name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") !=
          std::string::npos) {
    return Status::InvalidArgument(
        fmt::format("node type '{}' must be 1-64 letters, digits, '-' or '_'", name));
  }
  return store_.PutNodeType(NodeTypeRecord{project, name, digest});
}

Result<NodeTypeRecord> RecipeEngine::PutHandlers(const std::string& project,
                                                 const std::string& digest) {
  return store_.PutNodeType(NodeTypeRecord{project, kHandlersBundle, digest});
}

// --- the loop ---

void RecipeEngine::SetState(Active& a, RecipeState s, std::string message) {
  bool changed = a.state != s;
  a.state = s;
  a.message = std::move(message);
  if (changed) {
    a.since = NowUnixMillis();
  }
  changed_.NotifyAll();
}

void RecipeEngine::Event(const Active& a, const std::string& kind, const std::string& message) {
  LogInfo("recipe " + kind, {{"recipe", a.key}, {"message", message}});
  if (options_.publish) {
    options_.publish(a.rec.project, "recipe",
                     json::serialize(json::object{{"recipe", a.rec.name},
                                                  {"kind", kind},
                                                  {"state", RecipeStateName(a.state)},
                                                  {"message", message}}));
  }
}

std::string RecipeEngine::NodeLogTail(const std::string& task_id) const {
  auto t = runtime_.Task(task_id);
  if (!t) {
    return "";
  }
  LogQuery q;
  q.tail = 5;
  std::string out;
  for (const auto& l : ReadLogLines(t->dir, "", 0, q)) {
    out += (out.empty() ? "" : " | ") + l.message;
  }
  return out;
}

void RecipeEngine::Dead(Active& a, std::string reason, bool restart) {
  Teardown(a);
  ++a.dead_count;
  SetState(a, RecipeState::kDead, reason);
  Event(a, "dead", reason);
  if (options_.notify) {
    NotificationRecord n;
    n.project = a.rec.project;
    n.service = a.rec.name;
    n.severity = "CRITICAL";
    n.message = fmt::format("recipe {} is DEAD: {}", a.rec.name, reason);
    options_.notify(n);
  }
  if (restart) {
    a.restart_pending = true;
    a.restart_at = clock_.Now() + std::chrono::seconds(1);
  }
}

void RecipeEngine::Teardown(Active& a) {
  for (auto& n : a.nodes) {
    if (!n.task.empty()) {
      (void)runtime_.CancelTask(n.task);
    }
    n.running = false;
    n.restart_due = false;
  }
  a.start.reset();
  a.handlers.reset();
  a.edge_up.assign(a.recipe.edges.size(), false);
  a.ends.clear();
  a.end_edges.clear();
  FailCalls(a, 500, fmt::format("{} is not active: it stopped before it answered", a.rec.name));
  changed_.NotifyAll();
}

void RecipeEngine::Launch(Active& a) {
  Teardown(a);
  // From here a failure is DEAD again (a launch may follow a DEAD one).
  SetState(a, RecipeState::kStarting, "starting");
  // Resolve every node and handler first: what is missing makes the start fail, naming it.
  std::vector<std::string> missing;
  std::map<std::string, NodeTypeRecord> pushed;
  if (auto types = store_.ListNodeTypes(a.rec.project); types.ok()) {
    for (auto& t : *types) {
      pushed[t.name] = t;
    }
  }
  std::vector<std::pair<std::vector<std::string>, std::string>> programs;  // argv, cwd
  for (size_t i = 0; i < a.recipe.nodes.size(); ++i) {
    const RecipeNode& n = a.recipe.nodes[i];
    if (IsBuiltinNode(n.type)) {
      programs.push_back({{options_.node_program, n.type}, "/"});
      continue;
    }
    auto p = pushed.find(n.type);
    if (p == pushed.end()) {
      missing.push_back(fmt::format(
          "node type '{}' (node {}, {}) is not built in ({}) and no bundle was pushed for it "
          "(berth recipes push-node {} DIR)",
          n.type, i, n.name, fmt::join(BuiltinNodes(), ", "), n.type));
      continue;
    }
    std::string dir = options_.unpacked_path ? options_.unpacked_path(p->second.digest) : "";
    auto manifest = ReadBundleManifest(dir);
    std::vector<std::string> argv;
    if (manifest.ok() && !manifest->command.empty()) {
      argv = manifest->command;
    } else if (fs::exists(dir + "/node.py")) {
      argv = {options_.python, "node.py"};
    } else {
      missing.push_back(fmt::format(
          "the bundle of node type '{}' has neither a berth.yaml with a command nor a node.py",
          n.type));
      continue;
    }
    programs.push_back({argv, dir});
  }
  std::set<std::string> python_handlers;
  std::string handlers_dir;
  auto bundle = pushed.find(kHandlersBundle);
  if (bundle != pushed.end() && options_.unpacked_path) {
    handlers_dir = options_.unpacked_path(bundle->second.digest);
  }
  for (const auto& [method, chain] : a.recipe.handlers) {
    for (const auto& h : chain) {
      if (IsBuiltinHandler(h)) {
        continue;
      }
      if (!IsPythonHandler(h)) {
        missing.push_back(fmt::format(
            "handler '{}' of {} is neither built in (ping, forward, image; Neptune's "
            "handlers.ping_handler, handlers.json_handler, handlers.image_handler) nor a Python "
            "function named module.function",
            h, method));
        continue;
      }
      std::string module = h.substr(0, h.rfind('.'));
      std::string file = module;
      std::replace(file.begin(), file.end(), '.', '/');
      if (handlers_dir.empty()) {
        missing.push_back(fmt::format(
            "handler '{}' of {}: no handlers bundle was pushed (berth recipes push-handlers DIR, "
            "with {}.py in it)",
            h, method, file));
      } else if (!fs::exists(handlers_dir + "/" + file + ".py") &&
                 !fs::exists(handlers_dir + "/" + file + "/__init__.py")) {
        missing.push_back(
            fmt::format("handler '{}' of {}: the handlers bundle has no {}.py", h, method, file));
      } else {
        python_handlers.insert(h);
      }
    }
  }
  if (!missing.empty()) {
    std::string why = "cannot start: ";
    for (size_t i = 0; i < missing.size(); ++i) {
      why += (i ? "; " : "") + missing[i];
    }
    Dead(a, why, false);
    return;
  }
  auto ctx =
      options_.context ? options_.context(a.rec.project) : Result<TaskContext>(TaskContext{});
  if (!ctx.ok()) {
    Dead(a, "cannot start: " + ctx.status().message(), false);
    return;
  }
  // Channels.
  a.sock_dir = fmt::format("{}/graphs/{}", options_.data_dir, Sha256Hex(a.key).substr(0, 12));
  std::error_code ec;
  fs::remove_all(a.sock_dir, ec);
  fs::create_directories(a.sock_dir, ec);
  ::chmod(a.sock_dir.c_str(), 0700);
  // Confined nodes (the project's user) bind their channels here and connect to START.
  const Sandbox& sandbox = ctx->sandbox;
  if (sandbox.uid != 0) {
    if (auto s = GiveToUser(a.sock_dir, sandbox.uid, sandbox.gid); !s.ok()) {
      Dead(a, "cannot start: " + s.message(), false);
      return;
    }
  }
  std::string start_ep = "ipc://" + a.sock_dir + "/start";
  auto node_ep = [&](int i) { return fmt::format("ipc://{}/{}", a.sock_dir, i); };
  if (start_ep.size() > kMaxIpcPath) {
    Dead(a,
         fmt::format("cannot start: the data dir's path is too long for its channels ({} "
                     "characters; sockets need under {}); use a shorter --data-dir",
                     start_ep.size(), kMaxIpcPath),
         false);
    return;
  }
  try {
    a.start = std::make_unique<zmq::socket_t>(*zmq_, zmq::socket_type::pub);
    a.start->set(zmq::sockopt::linger, 0);
    a.start->set(zmq::sockopt::sndhwm, 100000);
    a.start->bind(start_ep);
    if (sandbox.uid != 0) {
      (void)::lchown((a.sock_dir + "/start").c_str(), sandbox.uid, sandbox.gid);
    }
    for (int src : EndSources(a.recipe)) {
      auto s = std::make_unique<zmq::socket_t>(*zmq_, zmq::socket_type::sub);
      s->set(zmq::sockopt::linger, 0);
      s->set(zmq::sockopt::rcvhwm, 100000);
      s->set(zmq::sockopt::subscribe, "");
      s->connect(node_ep(src));
      a.ends.push_back(std::move(s));
      for (size_t e = 0; e < a.recipe.edges.size(); ++e) {
        if (a.recipe.edges[e].source == src && a.recipe.edges[e].sink == kGraphTerminal) {
          a.end_edges.push_back(e);
          break;
        }
      }
    }
  } catch (const zmq::error_t& e) {
    Dead(a, fmt::format("cannot start: opening its channels under {}: {}", a.sock_dir, e.what()),
         false);
    return;
  }
  // The Python handlers' process answers on a socket of its own.
  a.has_host = !python_handlers.empty();
  a.nodes.resize(a.recipe.nodes.size() + (a.has_host ? 1 : 0));
  std::string handlers_ep = "ipc://" + a.sock_dir + "/handlers";
  if (a.has_host) {
    try {
      a.handlers = std::make_unique<zmq::socket_t>(*zmq_, zmq::socket_type::dealer);
      a.handlers->set(zmq::sockopt::linger, 0);
      a.handlers->connect(handlers_ep);
    } catch (const zmq::error_t& e) {
      Dead(a, fmt::format("cannot start: opening the handlers' channel: {}", e.what()), false);
      return;
    }
  }
  // Nodes.
  auto inputs = NodeInputs(a.recipe);
  a.launches = ++launches_;  // engine-wide: a recipe made again never reuses a task id
  std::map<std::string, std::string> env = ctx->base_env;
  for (const auto& [k, v] : ctx->project_env) {
    env[k] = v;
  }
  env["BERTH_URL"] = ctx->berth_url;
  env["BERTH_TOKEN"] = ctx->token;
  env["BERTH_PROJECT"] = a.rec.project;
  env["BERTH_RECIPE"] = a.rec.name;
  env["PYTHONUNBUFFERED"] = "1";
  auto launch = [&](size_t i, std::vector<std::string> argv, std::string cwd,
                    const std::map<std::string, std::string>& extra) REQUIRES(mu_) {
    TaskSpec spec;
    spec.owner = "recipe:" + a.key;
    spec.argv = std::move(argv);
    spec.cwd = std::move(cwd);
    spec.grace_seconds = 2;
    spec.sandbox = sandbox;
    if (!spec.sandbox.empty()) {
      spec.sandbox.binds.push_back({a.sock_dir, a.sock_dir, true});
      if (!spec.cwd.empty()) {
        spec.sandbox.binds.push_back({spec.cwd, spec.cwd, false});
      }
    }
    std::map<std::string, std::string> all = env;
    for (const auto& [k, v] : extra) {
      all[k] = v;
    }
    for (const auto& [k, v] : all) {
      spec.env.push_back(k + "=" + v);
    }
    auto& node = a.nodes[i];
    node.spec = std::move(spec);
    node.quick_crashes = 0;
    LaunchNode(a, i);
  };
  for (size_t i = 0; i < a.recipe.nodes.size() && a.state != RecipeState::kDead; ++i) {
    const RecipeNode& n = a.recipe.nodes[i];
    json::array in;
    for (int src : inputs[i]) {
      in.push_back(json::string(src == kGraphTerminal ? start_ep : node_ep(src)));
    }
    json::object cfg{{"recipe", a.rec.name},
                     {"name", n.name},
                     {"index", static_cast<int64_t>(i)},
                     {"type", n.type},
                     {"inputs", std::move(in)},
                     {"output", node_ep(static_cast<int>(i))},
                     {"args", i < a.run_args.size() ? a.run_args[i] : json::object{}}};
    launch(i, programs[i].first, programs[i].second, {{wire::kNodeEnv, json::serialize(cfg)}});
  }
  if (a.has_host && a.state != RecipeState::kDead) {
    json::array names;
    for (const auto& h : python_handlers) {
      names.push_back(json::string(h));
    }
    std::string path = env.count("PYTHONPATH") ? env["PYTHONPATH"] : "";
    launch(a.recipe.nodes.size(), {options_.python, "-m", "berth.recipe_handlers"}, handlers_dir,
           {{"PYTHONPATH", path.empty() ? handlers_dir : path + ":" + handlers_dir},
            {"BERTH_HANDLERS", json::serialize(json::object{{"endpoint", handlers_ep},
                                                            {"handlers", std::move(names)}})}});
  }
  if (a.state == RecipeState::kDead) {
    return;
  }
  a.hb_seen = a.hb_seq;
  a.hb_first = a.hb_seq;
  a.starting_since = clock_.Now();
  a.next_hb = a.starting_since;
  a.rate_at = a.starting_since;
  SetState(a, RecipeState::kStarting,
           fmt::format("{} node{} spawned; waiting for a heartbeat to reach END",
                       a.recipe.nodes.size(), a.recipe.nodes.size() == 1 ? "" : "s"));
}

void RecipeEngine::LaunchNode(Active& a, size_t i) {
  auto& node = a.nodes[i];
  if (!node.last_task.empty()) {
    by_task_.erase(node.last_task);
    (void)runtime_.ForgetTask(node.last_task);
  }
  if (!node.task.empty()) {
    node.last_task = node.task;
  }
  std::string project_part = a.rec.project.substr(0, 40);
  node.task = fmt::format("node-{}-{}-{}-{}.{}-{}", project_part, a.rec.name, i, generation_,
                          a.launches, node.restarts);
  TaskSpec spec = node.spec;
  spec.id = node.task;
  if (auto s = runtime_.StartTask(std::move(spec)); !s.ok()) {
    node.task.clear();
    Dead(a, fmt::format("cannot start {}: {}", NodeLabel(a, i), s.message()), false);
    return;
  }
  by_task_[node.task] = a.key;
  if (i == a.recipe.nodes.size()) {
    HelloHandlers(a);  // answered once the (re)started process imported every handler
  }
  node.running = true;
  node.restart_due = false;
  node.started = clock_.Now();
}

// Called by the runtime while it tells its hooks, possibly on a thread inside a runtime call
// the engine made under mu_: so it only queues the news for the loop thread.
void RecipeEngine::OnTaskEnded(const TaskStatus& task) {
  if (!task.owner.starts_with("recipe:")) {
    return;
  }
  {
    MutexLock lock(ended_mu_);
    ended_.push_back(task);
  }
  changed_.NotifyAll();
}

void RecipeEngine::HandleTaskEnded(const TaskStatus& task) {
  auto k = by_task_.find(task.id);
  if (k == by_task_.end()) {
    // A node of an earlier daemon or of a destructed recipe: nothing waits for it.
    (void)runtime_.ForgetTask(task.id);
    return;
  }
  auto it = recipes_.find(k->second);
  if (it == recipes_.end()) {
    return;
  }
  Active& a = *it->second;
  for (size_t i = 0; i < a.nodes.size(); ++i) {
    auto& n = a.nodes[i];
    if (n.task != task.id || !n.running) {
      continue;
    }
    n.running = false;
    n.last_exit = task.oom_killed    ? "killed: out of memory"
                  : task.signal != 0 ? fmt::format("killed by signal {}", task.signal)
                  : task.exit_code   ? fmt::format("exited with code {}", *task.exit_code)
                                     : (task.error.empty() ? "ended" : task.error);
    if (a.state == RecipeState::kStarting) {
      std::string tail = NodeLogTail(task.id);
      Dead(a,
           fmt::format("{} {} before the graph was up{}", NodeLabel(a, i), n.last_exit,
                       tail.empty() ? "" : ": " + tail),
           false);
      return;
    }
    if (a.state != RecipeState::kStarted) {
      return;
    }
    // A crash while the graph runs: restart with backoff, counted.
    auto now = clock_.Now();
    if (now - n.started > std::chrono::seconds(30)) {
      n.quick_crashes = 0;
    }
    auto backoff = options_.backoff_base * (1 << std::min(n.quick_crashes, 7));
    backoff = std::min<milliseconds>(backoff, options_.backoff_max);
    ++n.quick_crashes;
    ++n.restarts;
    n.restart_due = true;
    n.restart_at = now + backoff;
    // Its channels come back with the new process: until a heartbeat crossed them again,
    // requests wait (Advance). What was in the graph is lost with the node: say so now.
    for (size_t e = 0; e < a.recipe.edges.size(); ++e) {
      if (a.recipe.edges[e].source == static_cast<int>(i) ||
          a.recipe.edges[e].sink == static_cast<int>(i)) {
        a.edge_up[e] = false;
      }
    }
    FailCalls(a, 503,
              fmt::format("recipe {} lost the request: {} {} while it was in the graph; it is "
                          "restarting (restart {}), try again",
                          a.rec.name, NodeLabel(a, i), n.last_exit, n.restarts));
    Event(a, "node-exited",
          fmt::format("{} {}; restarting it in {} ms (restart {})", NodeLabel(a, i), n.last_exit,
                      backoff.count(), n.restarts));
    changed_.NotifyAll();
    return;
  }
}

void RecipeEngine::SendHeartbeat(Active& a) {
  ++a.hb_seq;
  std::string h = wire::HeartbeatHeader(a.hb_seq);
  std::string body = R"({"stats":{}})";
  try {
    a.start->send(zmq::buffer(h), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
    a.start->send(zmq::buffer(body), zmq::send_flags::dontwait);
  } catch (const zmq::error_t&) {
  }
}

void RecipeEngine::Receive(Active& a, size_t end_index) {
  if (end_index == a.ends.size() && a.handlers) {
    ReceiveHandlers(a);
    return;
  }
  if (end_index >= a.ends.size()) {
    return;
  }
  zmq::socket_t& s = *a.ends[end_index];
  while (true) {
    zmq::message_t head;
    if (!s.recv(head, zmq::recv_flags::dontwait)) {
      return;
    }
    zmq::message_t body;
    if (head.more()) {
      (void)s.recv(body, zmq::recv_flags::none);
    }
    std::string h = head.to_string();
    if (h.empty()) {
      continue;
    }
    if (h[0] == wire::kData) {
      if (end_index < a.end_edges.size()) {
        ++a.counts[a.end_edges[end_index]];
      }
      auto p = a.pending.find(h.substr(1));
      if (p != a.pending.end()) {
        std::unique_ptr<Call> call = std::move(p->second);
        a.pending.erase(p);
        boost::system::error_code jec;
        json::value v = json::parse(body.to_string_view(), jec);
        call->previous = jec ? json::value(json::string(body.to_string_view())) : std::move(v);
        ++call->step;
        Advance(a, std::move(call));
      }
      continue;
    }
    if (h[0] != wire::kHeartbeat) {
      continue;
    }
    uint64_t seq = std::strtoull(h.c_str() + 1, nullptr, 10);
    auto now = clock_.Now();
    boost::system::error_code ec;
    json::value v = json::parse(body.to_string_view(), ec);
    // heartbeat[field] = {"<node index>": [value per input]}: `use(edge, value)` for each.
    auto per_input = [&](const char* field, auto use) {
      const json::object* o = ec ? nullptr : v.if_object();
      const json::value* f = o ? o->if_contains(field) : nullptr;
      if (f == nullptr || !f->is_object()) {
        return;
      }
      for (const auto& [node, values] : f->as_object()) {
        size_t i = std::strtoul(std::string(node).c_str(), nullptr, 10);
        if (i >= a.inbound.size() || !values.is_array()) {
          continue;
        }
        const auto& list = values.as_array();
        for (size_t k = 0; k < list.size() && k < a.inbound[i].size(); ++k) {
          use(a.inbound[i][k], list[k]);
        }
      }
    };
    per_input("stats", [&](size_t e, const json::value& count) {
      if (count.is_number()) {
        a.counts[e] = std::max(a.counts[e], count.to_number<uint64_t>());
      }
    });
    // Which edges carried a heartbeat: the inputs each node reports, and this END channel.
    per_input("up", [&](size_t e, const json::value& up) {
      if (up.is_bool() && up.as_bool()) {
        a.edge_up[e] = true;
      }
    });
    if (end_index < a.end_edges.size()) {
      a.edge_up[a.end_edges[end_index]] = true;
    }
    if (seq > a.hb_seen) {
      a.hb_seen = seq;
      a.last_hb_end = now;
    }
    if (!a.waiting.empty() && AllEdgesUp(a)) {  // a restarted node's channels are up again
      std::vector<std::unique_ptr<Call>> waiting = std::move(a.waiting);
      a.waiting.clear();
      for (auto& call : waiting) {
        Advance(a, std::move(call));
      }
    }
    double dt = std::chrono::duration<double>(now - a.rate_at).count();
    if (dt >= 1.0) {
      for (size_t e = 0; e < a.counts.size(); ++e) {
        a.rates[e] =
            static_cast<double>(a.counts[e] - std::min(a.counts[e], a.counts_at_rate[e])) / dt;
      }
      a.counts_at_rate = a.counts;
      a.rate_at = now;
    }
    MaybeStarted(a);
  }
}

// STARTED once a heartbeat crossed the graph and the Python handlers (if any) are loaded.
void RecipeEngine::MaybeStarted(Active& a) {
  if (a.state != RecipeState::kStarting || a.hb_seen <= a.hb_first || !AllEdgesUp(a) ||
      (a.has_host && !a.host_ready)) {
    return;
  }
  auto now = clock_.Now();
  auto ms = std::chrono::duration_cast<milliseconds>(now - a.starting_since).count();
  SetState(a, RecipeState::kStarted,
           fmt::format("started: a heartbeat went from START through {} node{} to END in {} ms{}",
                       a.recipe.nodes.size(), a.recipe.nodes.size() == 1 ? "" : "s", ms,
                       a.has_host ? ", Python handlers loaded" : ""));
  Event(a, "started", a.message);
  a.next_hb = now + options_.heartbeat_every;
}

void RecipeEngine::HelloHandlers(Active& a) {
  if (!a.handlers) {
    return;
  }
  a.host_ready = false;
  try {
    a.handlers->send(zmq::buffer(std::string("hello")), zmq::send_flags::sndmore);
    a.handlers->send(zmq::buffer(std::string(R"({"hello":true})")), zmq::send_flags::none);
  } catch (const zmq::error_t&) {
  }
}

// One pass of the loop's work: node ends, what the API asked for, heartbeats, DEAD graphs,
// node restarts, late calls. Returns when it wants to run again.
Clock::TimePoint RecipeEngine::Tick() {
  std::vector<TaskStatus> ended;
  {
    MutexLock e(ended_mu_);
    ended.swap(ended_);
  }
  for (const auto& t : ended) {
    HandleTaskEnded(t);
  }
  auto now = clock_.Now();
  // A graph starting or started is looked at every 50 ms (its deadlines); with none, the loop
  // sleeps until something is asked of it.
  auto next = now + milliseconds(1000);
  for (auto it = recipes_.begin(); it != recipes_.end();) {
    Active& a = *it->second;
    if (a.want_destroy) {
      Teardown(a);
      for (auto& n : a.nodes) {
        for (const std::string* t : {&n.task, &n.last_task}) {
          if (!t->empty()) {
            by_task_.erase(*t);
          }
        }
      }
      std::error_code ec;
      if (!a.sock_dir.empty()) {
        fs::remove_all(a.sock_dir, ec);
      }
      it = recipes_.erase(it);
      changed_.NotifyAll();
      continue;
    }
    if (a.want_stop) {
      a.want_stop = false;
      Teardown(a);
      SetState(a, RecipeState::kStopped, "stopped");
      Event(a, "stopped", "recipe " + a.rec.name + " stopped");
    }
    if (a.want_start) {
      a.want_start = false;
      Launch(a);
    }
    if (a.restart_pending && now >= a.restart_at) {
      a.restart_pending = false;
      Event(a, "restarting", "starting recipe " + a.rec.name + " again after it was DEAD");
      Launch(a);
      if (a.state == RecipeState::kStarting) {
        a.message = "restarting after it was DEAD";
      }
    }
    if ((a.state == RecipeState::kStarting || a.state == RecipeState::kStarted) && a.start) {
      next = std::min(next, now + milliseconds(50));
      if (a.state == RecipeState::kStarting && now - a.starting_since > options_.start_timeout) {
        std::string running;
        for (size_t i = 0; i < a.nodes.size(); ++i) {
          running += fmt::format("{}{} {}", i ? ", " : "", NodeLabel(a, i),
                                 a.nodes[i].running ? "running" : "not running");
        }
        std::string silent;
        for (size_t e = 0; e < a.recipe.edges.size() && e < a.edge_up.size(); ++e) {
          if (!a.edge_up[e]) {
            const RecipeEdge& edge = a.recipe.edges[e];
            auto end_name = [&](int n, const char* terminal) {
              return n == kGraphTerminal ? std::string(terminal)
                                         : a.recipe.nodes[static_cast<size_t>(n)].name;
            };
            silent += fmt::format("{}{} -> {}", silent.empty() ? "" : ", ",
                                  end_name(edge.source, "START"), end_name(edge.sink, "END"));
          }
        }
        Dead(a,
             fmt::format("no heartbeat crossed the graph within {} s of the start (no "
                         "heartbeat on {}; {}); a node does not read its inputs",
                         options_.start_timeout.count() / 1000, silent.empty() ? "-" : silent,
                         running),
             false);
      } else if (a.state == RecipeState::kStarted && now - a.last_hb_end > options_.dead_after) {
        Dead(a,
             fmt::format("no heartbeat reached END for {} s: a node is stuck or gone; "
                         "restarting the graph",
                         options_.dead_after.count() / 1000),
             true);
      } else {
        if (now >= a.next_hb) {
          SendHeartbeat(a);
          a.next_hb = now + (a.state == RecipeState::kStarting || !AllEdgesUp(a)
                                 ? options_.starting_heartbeat_every
                                 : options_.heartbeat_every);
        }
        next = std::min(next, a.next_hb);
        for (size_t i = 0; i < a.nodes.size(); ++i) {
          auto& n = a.nodes[i];
          if (n.restart_due) {
            if (now >= n.restart_at) {
              LaunchNode(a, i);
              if (a.state == RecipeState::kDead) {
                break;
              }
            } else {
              next = std::min(next, n.restart_at);
            }
          }
        }
      }
    }
    if (a.restart_pending) {
      next = std::min(next, a.restart_at);
    }
    ExpireCalls(a);
    if (!a.pending.empty() || !a.waiting.empty()) {
      next = std::min(next, now + milliseconds(100));  // their deadlines
    }
    ++it;
  }
  return next;
}

RecipeEngine::PollSet RecipeEngine::PollItems() {
  PollSet set;
  for (auto& [key, a] : recipes_) {
    for (size_t i = 0; i < a->ends.size(); ++i) {
      set.items.push_back({a->ends[i]->handle(), 0, ZMQ_POLLIN, 0});
      set.owners.emplace_back(key, i);
    }
    if (a->handlers) {  // index ends.size(): the handlers' answers
      set.items.push_back({a->handlers->handle(), 0, ZMQ_POLLIN, 0});
      set.owners.emplace_back(key, a->ends.size());
    }
  }
  return set;
}

void RecipeEngine::Dispatch(const PollSet& set) {
  for (size_t i = 0; i < set.items.size(); ++i) {
    if (set.items[i].revents & ZMQ_POLLIN) {
      auto it = recipes_.find(set.owners[i].first);
      if (it != recipes_.end()) {
        Receive(*it->second, set.owners[i].second);
      }
    }
  }
}

int RecipeEngine::Poll(PollSet& set, milliseconds wait) {
  try {
    return set.items.empty() ? 0 : zmq::poll(set.items.data(), set.items.size(), wait);
  } catch (const zmq::error_t&) {
    return 0;
  }
}

void RecipeEngine::Loop() {
  MutexLock lock(mu_);
  while (!stopping_) {
    auto now = clock_.Now();
    auto next = Tick();
    // Poll END of every running graph with the lock released; only this thread closes them.
    PollSet set = PollItems();
    auto wait = std::max(milliseconds(1), std::chrono::duration_cast<milliseconds>(next - now));
    if (set.items.empty()) {
      // Nothing to poll: woken by whatever changes (a start, a construct, a node's end).
      changed_.WaitUntil(mu_, std::chrono::steady_clock::now() + wait);
      continue;
    }
    lock.Unlock();
    int ready = Poll(set, std::min(wait, milliseconds(20)));
    lock.Lock();
    if (ready > 0) {
      Dispatch(set);
    }
  }
}

void RecipeEngine::Step() {
  MutexLock lock(mu_);
  Tick();
  PollSet set = PollItems();
  if (Poll(set, milliseconds(0)) > 0) {
    Dispatch(set);
  }
}

// --- serving ---

// Answers of the Python handlers' process: [id, {"result": ...} | {"error": "..."}].
void RecipeEngine::ReceiveHandlers(Active& a) {
  while (a.handlers) {
    zmq::message_t id;
    if (!a.handlers->recv(id, zmq::recv_flags::dontwait)) {
      return;
    }
    zmq::message_t body;
    if (id.more()) {
      (void)a.handlers->recv(body, zmq::recv_flags::none);
    }
    if (id.to_string_view() == "hello") {
      a.host_ready = true;
      MaybeStarted(a);
      continue;
    }
    auto p = a.pending.find(id.to_string());
    if (p == a.pending.end()) {
      continue;  // answered already (timed out)
    }
    std::unique_ptr<Call> call = std::move(p->second);
    a.pending.erase(p);
    boost::system::error_code ec;
    json::value v = json::parse(body.to_string_view(), ec);
    const json::object* o = ec ? nullptr : v.if_object();
    if (o == nullptr || (!o->contains("result") && !o->contains("error"))) {
      call->done(ErrorAnswer(500, fmt::format("recipe {}: handler '{}' gave an answer berth "
                                              "cannot read",
                                              call->name, call->handlers[call->step])));
      continue;
    }
    if (const json::value* e = o->if_contains("error")) {
      call->done(ErrorAnswer(
          500,
          fmt::format("recipe {}: handler '{}' failed: {}", call->name, call->handlers[call->step],
                      e->is_string() ? std::string(e->as_string()) : json::serialize(*e))));
      continue;
    }
    call->previous = o->at("result");
    ++call->step;
    Advance(a, std::move(call));
  }
}

void RecipeEngine::FailCalls(Active& a, int status, const std::string& message) {
  for (auto& [id, call] : a.pending) {
    call->done(ErrorAnswer(status, message));
  }
  for (auto& call : a.waiting) {
    call->done(ErrorAnswer(status, message));
  }
  a.pending.clear();
  a.waiting.clear();
}

void RecipeEngine::ExpireCalls(Active& a) {
  auto now = std::chrono::steady_clock::now();
  if (now < a.next_expiry_check || (a.pending.empty() && a.waiting.empty())) {
    return;
  }
  a.next_expiry_check = now + milliseconds(100);
  std::string late = fmt::format("recipe {} gave no answer within {} s", a.rec.name,
                                 options_.answer_timeout.count() / 1000);
  for (auto it = a.pending.begin(); it != a.pending.end();) {
    if (now >= it->second->deadline) {
      it->second->done(ErrorAnswer(503, late));
      it = a.pending.erase(it);
    } else {
      ++it;
    }
  }
  std::string recovering =
      fmt::format("recipe {} is restarting a node and did not carry messages again within {} s",
                  a.rec.name, options_.answer_timeout.count() / 1000);
  std::erase_if(a.waiting, [&](const std::unique_ptr<Call>& c) {
    if (now >= c->deadline) {
      c->done(ErrorAnswer(503, recovering));
      return true;
    }
    return false;
  });
}

// Runs the chain from the call's current handler: each built-in handler makes the message it
// sends into the graph; the graph's answer (Receive) moves the call to the next handler. The
// last result is the answer.
void RecipeEngine::Advance(Active& a, std::unique_ptr<Call> call) {
  if (call->step >= call->handlers.size()) {
    call->done(JsonAnswer(200, call->previous ? *call->previous : json::value(nullptr)));
    return;
  }
  if (a.state != RecipeState::kStarted || !a.start) {
    call->done(ErrorAnswer(500, fmt::format("{} is not active", call->name)));
    return;
  }
  if (!AllEdgesUp(a)) {
    a.waiting.push_back(std::move(call));  // a node restarts; sent once a heartbeat gets through
    return;
  }
  const std::string& h = call->handlers[call->step];
  const json::value& input = call->previous ? *call->previous : call->request;
  std::string id = std::to_string(next_request_++);
  std::string send;
  switch (HandlerOf(h)) {
    case Handler::kPing: {
      json::object o;
      if (call->previous && call->previous->is_object()) {
        o = call->previous->as_object();
      }
      o["id"] = static_cast<int64_t>(std::stoll(id));
      send = json::serialize(o);
      break;
    }
    case Handler::kImage: {
      json::value data = input;
      json::object* o = data.if_object();
      // `image` may come as JSON text (a form field).
      if (json::value* image = o ? o->if_contains("image") : nullptr; image && image->is_string()) {
        boost::system::error_code ec;
        json::value parsed = json::parse(image->as_string(), ec);
        if (!ec) {
          *image = std::move(parsed);
        }
      }
      const json::value* image = o ? o->if_contains("image") : nullptr;
      const json::value* url = o ? o->if_contains("url") : nullptr;
      bool image_ok = image && image->is_object() && image->as_object().contains("data") &&
                      image->as_object().at("data").is_array();
      if (!image_ok && !(url && url->is_string())) {
        call->done(ErrorAnswer(400,
                               "the image handler needs 'image' (JSON with a 'data' array) "
                               "or 'url'"));
        return;
      }
      send = json::serialize(data);
      break;
    }
    case Handler::kForward:
      send = json::serialize(input);
      break;
    case Handler::kUnknown: {
      if (!a.handlers || !IsPythonHandler(h)) {
        call->done(ErrorAnswer(
            500, fmt::format("recipe {}: handler '{}' is not available", call->name, h)));
        return;
      }
      // A Python handler: its process gets the request and the previous result.
      json::object msg{{"handler", h},
                       {"request", call->request},
                       {"previous", call->previous ? *call->previous : json::value(nullptr)}};
      try {
        std::string body = json::serialize(msg);
        a.handlers->send(zmq::buffer(id), zmq::send_flags::sndmore);
        a.handlers->send(zmq::buffer(body), zmq::send_flags::none);
      } catch (const zmq::error_t& e) {
        call->done(ErrorAnswer(
            500, fmt::format("recipe {}: sending to its handlers: {}", call->name, e.what())));
        return;
      }
      a.pending[id] = std::move(call);
      return;
    }
  }
  try {
    std::string head = wire::DataHeader(id);
    a.start->send(zmq::buffer(head), zmq::send_flags::sndmore);
    a.start->send(zmq::buffer(send), zmq::send_flags::none);
  } catch (const zmq::error_t& e) {
    call->done(ErrorAnswer(
        500, fmt::format("recipe {}: sending into the graph: {}", call->name, e.what())));
    return;
  }
  a.pending[id] = std::move(call);
}

void RecipeEngine::Serve(const std::string& project, const std::string& name,
                         const ServeRequest& req, std::function<void(ServeAnswer)> done) {
  MutexLock lock(mu_);
  Active* a = Find(project, name);
  if (a == nullptr) {
    done(ErrorAnswer(404, fmt::format("no recipe '{}' in project '{}'", name, project)));
    return;
  }
  std::string method = req.method;
  std::transform(method.begin(), method.end(), method.begin(), ::tolower);
  auto chain = a->recipe.handlers.find(method);
  if (chain == a->recipe.handlers.end()) {
    std::string allowed;
    for (const auto& [m, c] : a->recipe.handlers) {
      allowed += (allowed.empty() ? "" : ", ") + m;
    }
    done(ErrorAnswer(405, fmt::format("recipe {} has no handler for {}{}", name, req.method,
                                      allowed.empty() ? "" : "; it serves " + allowed)));
    return;
  }
  auto call = std::make_unique<Call>();
  call->name = name;
  call->handlers = chain->second;
  call->request = req.data;
  call->done = std::move(done);
  call->deadline = std::chrono::steady_clock::now() + options_.answer_timeout;
  Advance(*a, std::move(call));
}

}  // namespace berth
