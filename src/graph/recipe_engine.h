// RecipeEngine runs recipes (seed 003): each node of a started recipe is a process of the
// runtime (a task of the supervisor, in its own cgroup, with its logs), wired to the others
// over ZeroMQ channels under the data dir (graph/wire.h). The engine owns the graph's START
// and END sockets, runs handler chains (HTTP request -> messages through the graph -> answer),
// and watches each graph with heartbeats.
//
// Lifecycle: STOPPED -> STARTING (nodes spawned; heartbeats every 20 ms until every edge
// carried one to END)
// -> STARTED (a heartbeat every 2.5 s) -> DEAD when no heartbeat reached END for 5 s (event,
// notification, then the graph is started again), or when start cannot succeed: a node type or
// handler berth cannot resolve, a node that exits before the graph is up. A DEAD start says
// what failed, naming the node and with its last log lines. Stop cancels every node at once.
// A node that crashes while its graph runs is restarted with the runtime's backoff (250 ms,
// doubling to 30 s) and counted.
//
// Recipes are kept in the store until destructed or reset; the ones marked started are started
// again when the daemon starts. The `default` project (the one Neptune's clients act on) also
// has Neptune's cache, `<data-dir>/neptune/recipes/recipe_<name>.bak`: written on construct,
// removed on destruct; at start-up, if any such file exists, exactly those recipes are the
// default project's (Neptune's rule), else a data dir that never had them gets the defaults.
//
// Threads: one loop thread owns the sockets' lifecycle, polls END, sends heartbeats and
// restarts nodes; API threads construct, start and stop under the engine's mutex (waiting on
// a condition variable for the loop to act). Requests never hold a thread: Serve sends the
// first message and returns; the loop thread moves a call along its handler chain as the
// graph answers, and answers it.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/mutex.h"
#include "common/status.h"
#include "control/controller.h"
#include "graph/recipe.h"
#include "runtime/supervisor.h"
#include "store/store.h"

namespace zmq {
class context_t;
}
struct zmq_pollitem_t;

namespace berth {

enum class RecipeState { kStopped, kStarting, kStarted, kDead };
const char* RecipeStateName(RecipeState s);  // "STOPPED", "STARTING", "STARTED", "DEAD"
int NeptuneStateCode(RecipeState s);         // -1, 1, 2, 0

struct RecipeNodeView {
  std::string name;
  std::string type;
  int pid = 0;
  int restarts = 0;
  std::string state;  // "running", "restarting", "stopped"
  std::string last_exit;
};

struct RecipeEdgeRate {
  int source = kGraphTerminal;
  int sink = kGraphTerminal;
  uint64_t messages = 0;
  double per_second = 0;
};

struct RecipeView {
  RecipeRecord record;
  Recipe recipe;
  RecipeState state = RecipeState::kStopped;
  std::string message;      // what happened last (why DEAD, what a start is waiting for)
  int64_t state_since = 0;  // unix millis
  int dead_count = 0;
  std::vector<RecipeNodeView> nodes;
  std::vector<RecipeEdgeRate> edges;  // in the recipe's edge order
  double throughput = 0;              // messages/s reaching END
};

// A request to a recipe: its method and its data (the API's decoding of a JSON body, form
// fields or the query, as an object).
struct ServeRequest {
  std::string method;  // "GET", "POST", "PATCH"
  boost::json::value data;
};

struct ServeAnswer {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

struct RecipeEngineOptions {
  std::string data_dir;
  std::string node_program;  // berth-node
  std::string python = "/usr/bin/python3";
  std::chrono::milliseconds heartbeat_every{2500};
  std::chrono::milliseconds starting_heartbeat_every{20};
  std::chrono::milliseconds dead_after{5000};
  std::chrono::milliseconds start_timeout{15000};  // STARTING this long -> DEAD
  std::chrono::milliseconds answer_timeout{30000};
  std::chrono::milliseconds backoff_base{250};
  std::chrono::milliseconds backoff_max{30000};
  bool threads = true;  // false: no loop thread; the caller drives Step() (tests)
  std::function<Result<TaskContext>(const std::string& project)> context;
  std::function<void(const std::string& project, const std::string& kind, const std::string& data)>
      publish;
  std::function<void(const NotificationRecord&)> notify;
  // Where a pushed bundle is unpacked (node types).
  std::function<std::string(const std::string& digest)> unpacked_path;
};

class RecipeEngine {
 public:
  RecipeEngine(Store& store, Supervisor& runtime, Clock& clock, RecipeEngineOptions options);
  ~RecipeEngine();

  // Loads the recipes (seeding the defaults, reading Neptune's cache), starts the ones marked
  // started and the loop thread. Call after the runtime re-adopted its tasks.
  Status Start() EXCLUDES(mu_);
  void Shutdown() EXCLUDES(mu_);
  // The runtime's news of a task; tasks not of recipes are ignored.
  void OnTaskEnded(const TaskStatus& task) EXCLUDES(ended_mu_);

  Result<RecipeView> Construct(const std::string& project, const boost::json::value& body)
      EXCLUDES(mu_);
  // Stops the recipe first when it runs.
  Status Destruct(const std::string& project, const std::string& name) EXCLUDES(mu_);
  // Starts a STOPPED (or DEAD) recipe with argument overrides for this run and waits until it
  // is STARTED or DEAD. FailedPrecondition when it is starting or started.
  Result<RecipeView> StartRecipe(const std::string& project, const std::string& name,
                                 const boost::json::object& overrides) EXCLUDES(mu_);
  Result<RecipeView> StopRecipe(const std::string& project, const std::string& name) EXCLUDES(mu_);
  std::vector<RecipeView> List(const std::string& project) const EXCLUDES(mu_);
  Result<RecipeView> Get(const std::string& project, const std::string& name) const EXCLUDES(mu_);
  // The name of the project's recipe serving `url`; NotFound otherwise.
  Result<std::string> NameByUrl(const std::string& project, const std::string& url) const
      EXCLUDES(mu_);
  // Destroys every recipe of the project and brings the defaults back (Neptune's --clean).
  Status Reset(const std::string& project) EXCLUDES(mu_);

  // Runs the recipe's handler chain for the request's method. `done` is called exactly once,
  // with the answer: at once for what is known at once (unknown recipe, no handler, not
  // active), else from the engine's loop thread when the graph answered, lost the request or
  // timed out. It must not block and must not call the engine.
  void Serve(const std::string& project, const std::string& name, const ServeRequest& req,
             std::function<void(ServeAnswer)> done) EXCLUDES(mu_);

  // Pushes a node type's bundle (already ingested).
  Result<NodeTypeRecord> PutNodeType(const std::string& project, const std::string& name,
                                     const std::string& digest);
  // Sets the project's handlers bundle: the Python modules of `module.function` handlers.
  Result<NodeTypeRecord> PutHandlers(const std::string& project, const std::string& digest);
  static constexpr const char* kHandlersBundle = "@handlers";

  // One pass of the loop (threads = false): node ends, starts, stops, heartbeats, restarts,
  // and what arrived at END, without waiting.
  void Step() EXCLUDES(mu_);

  static bool IsBuiltinNode(std::string_view type);
  // The node types berth-node runs: ping, passthrough, merge, stream.
  static const std::vector<std::string>& BuiltinNodes();
  static bool IsBuiltinHandler(std::string_view handler);

 private:
  struct Active;
  struct Call;

  Status LoadLocked() REQUIRES(mu_);
  Status SeedDefaults(const std::string& project) REQUIRES(mu_);
  void WriteNeptuneCache(const RecipeRecord& rec, const Recipe& r);
  void RemoveNeptuneCache(const std::string& name);
  Status AddActive(const RecipeRecord& rec) REQUIRES(mu_);
  Active* Find(const std::string& project, const std::string& name) const REQUIRES(mu_);
  RecipeView ViewOf(const Active& a) const REQUIRES(mu_);

  void Loop() EXCLUDES(mu_);
  Clock::TimePoint Tick() REQUIRES(mu_);
  struct PollSet {
    std::vector<zmq_pollitem_t> items;
    std::vector<std::pair<std::string, size_t>> owners;  // recipe key, END index
  };
  PollSet PollItems() REQUIRES(mu_);
  static int Poll(PollSet& set, std::chrono::milliseconds wait);
  void Dispatch(const PollSet& set) REQUIRES(mu_);
  // Waits for the loop to make `done` true (threads = false: runs one Tick, then asks).
  bool AwaitLoop(std::chrono::milliseconds timeout, const std::function<bool()>& done)
      REQUIRES(mu_);
  // Opens the channels, resolves and launches the nodes. Sets DEAD with the reason on failure.
  void Launch(Active& a) REQUIRES(mu_);
  void LaunchNode(Active& a, size_t i) REQUIRES(mu_);
  void Teardown(Active& a) REQUIRES(mu_);
  void SetState(Active& a, RecipeState s, std::string message) REQUIRES(mu_);
  void Dead(Active& a, std::string reason, bool restart) REQUIRES(mu_);
  void SendHeartbeat(Active& a) REQUIRES(mu_);
  void Receive(Active& a, size_t end_index) REQUIRES(mu_);
  // A node's end, as the loop thread takes it from `ended_`: restart, or DEAD while starting.
  void HandleTaskEnded(const TaskStatus& task) REQUIRES(mu_);
  void ReceiveHandlers(Active& a) REQUIRES(mu_);
  void MaybeStarted(Active& a) REQUIRES(mu_);
  static bool AllEdgesUp(const Active& a);
  void HelloHandlers(Active& a) REQUIRES(mu_);
  // "node 1 (resize)", or "the handlers process".
  std::string NodeLabel(const Active& a, size_t i) const;
  void Event(const Active& a, const std::string& kind, const std::string& message) REQUIRES(mu_);
  std::string NodeLogTail(const std::string& task_id) const;
  // Handler chains: the call's next step, and the calls that cannot be answered.
  void Advance(Active& a, std::unique_ptr<Call> call) REQUIRES(mu_);
  void FailCalls(Active& a, int status, const std::string& message) REQUIRES(mu_);
  void ExpireCalls(Active& a) REQUIRES(mu_);

  Store& store_;
  Supervisor& runtime_;
  Clock& clock_;
  const RecipeEngineOptions options_;
  std::unique_ptr<zmq::context_t> zmq_;

  mutable Mutex mu_;
  CondVar changed_;
  std::map<std::string, std::unique_ptr<Active>> recipes_ GUARDED_BY(mu_);  // "project/name"
  std::map<std::string, std::string> by_task_ GUARDED_BY(mu_);              // task id -> recipe key
  uint64_t next_request_ GUARDED_BY(mu_) = 1;
  int launches_ GUARDED_BY(mu_) = 0;
  std::string generation_ GUARDED_BY(mu_);  // in node task ids: unique across daemons
  bool stopping_ GUARDED_BY(mu_) = false;
  // Ends of node tasks, queued by OnTaskEnded (never under mu_: the runtime may tell them
  // from inside a call the engine makes while holding mu_).
  Mutex ended_mu_;
  std::vector<TaskStatus> ended_ GUARDED_BY(ended_mu_);
  std::thread loop_;
};

}  // namespace berth
