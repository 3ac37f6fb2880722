// Helpers shared by the CLI's commands: common options, calling the API, reading its JSON,
// failing with a plain message and a non-zero exit.
#pragma once

#include <boost/json/value.hpp>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "cli/api_client.h"
#include "common/status.h"

namespace CLI {
class App;
}

namespace berth {

// Options every client command takes.
struct CommonOptions {
  std::string output = "table";
  std::string project;
};

// Prints "berth: <message>" to stderr and exits with 1 (through CLI11).
[[noreturn]] void Fail(const Status& s);
// Adds -o/--output (and -p/--project when `project`).
void AddCommon(CLI::App* cmd, const std::shared_ptr<CommonOptions>& opts, bool project);
// A client for the saved login (or BERTH_URL / BERTH_TOKEN).
ApiClient Client();
// Calls the API and returns the JSON body; fails on any error.
boost::json::value Call(std::string_view method, const std::string& path,
                        const boost::json::value* body = nullptr);
// Appends ?project= (or &project=) when the user named one.
std::string WithProject(std::string path, const CommonOptions& opts);
// A JSON value as text for a table cell ("-" for null).
std::string Str(const boost::json::value& v);
// v[key], or null when absent.
const boost::json::value& Field(const boost::json::value& v, std::string_view key);
// `s` percent-encoded for a path segment or query value (names may hold spaces, '?', '#').
std::string Escape(std::string_view s);
// The array v[key], or an empty one.
const boost::json::array& Items(const boost::json::value& v, std::string_view key);
// A table cell on one line (newlines and tabs become spaces), cut at `max`; "-" when empty.
std::string OneLine(std::string s, size_t max = 60);
// A file (pipeline, recipe, definition) as JSON: JSON first, then YAML. Fails naming the file.
boost::json::value ReadJsonOrYamlFile(const std::string& path);
// Prints `v` as JSON with -o json, else `table`.
void Print(const CommonOptions& opts, const boost::json::value& v, const std::string& table);
// Turns the pieces of an NDJSON body (which need not end on a line) into calls of `on_line`
// with each line as sent and as parsed; lines that are not JSON are skipped. For
// ApiClient::Stream and Upload's `on_data`.
using JsonLineHandler =
    std::function<void(const std::string& raw, const boost::json::value& v)>;
std::function<bool(std::string_view)> JsonLines(JsonLineHandler on_line);
// Reads an NDJSON stream (a GET such as logs?follow=1) until the server ends it, calling
// `on_line` as JsonLines does. Fails on any error.
void FollowJsonLines(const std::string& path, const JsonLineHandler& on_line);

// Packs `source` (a folder, honouring .berthignore; or a tarball as it is) and uploads it as
// `name`:`tag`, with progress bars on a terminal. Fails on any error.
struct PushedBundle {
  boost::json::value response;  // the artifact as the API stored it
  size_t entries = 0;
  uint64_t bytes = 0;
};
PushedBundle PushBundle(const std::string& name, const std::string& source,
                        const std::string& tag, const CommonOptions& opts);
// The same to any upload route (PUT `api_path`, e.g. a recipe node type's). `watch_build`
// (routes with `?progress=`): the bundle's build output is shown as it runs.
PushedBundle UploadBundle(const std::string& api_path, const std::string& source,
                          bool watch_build = false);

// A service's status (GET .../status) for people: instances and recent events.
std::string DescribeStatus(const boost::json::value& status);
// The word for it: running, starting, crash-looping, failed: <why>, stopped, scaled to 0,
// no definition yet.
std::string StatusWord(const boost::json::value& status);

// Every service of the project as `berth ls` and `berth services ls` both print it: one row
// per version of a versioned service, one per plain service (VERSION "rev N"), with the
// status word, readiness and since when. `-o json`: the API's list, each service with
// "status", "ready", "desired", "since" and (versioned) "versions".
void PrintServiceList(const CommonOptions& opts);

// Why a revision will not run, from a service's status (the supervisor's "cannot run" or
// "rolled back" event, or its failed_revision), or "" while nothing says so. `version`: its
// version label, for a shadow version's events.
std::string RevisionFailure(const boost::json::value& status, int revision,
                            std::string_view version);
// The last lines `revision` of service `name` logged, as "\nlast log lines:\n  ..." for a
// failure's message; "" when none.
std::string LastLogLines(const std::string& name, int revision, const CommonOptions& opts);

// Waits until revision `revision` of service `name` is live with all its instances ready,
// showing on stderr what it waits for whenever that changes (starting 0/1, the failing health
// check's answer). Fails at once, with the supervisor's reason and the revision's last log
// lines, when the revision cannot run or was rolled back; and after `timeout_s` seconds.
void WaitForRollout(const std::string& name, int revision, const CommonOptions& opts,
                    int timeout_s);

// Adds push, logs, and `services show|stop|start` runtime views (runtime_commands.cc).
void AddRuntimeCommands(CLI::App& app, CLI::App& services);
// Adds the seed 001 workflow: init, deploy, ls, assign, kill, params, notifications
// (version_commands.cc).
void AddVersionCommands(CLI::App& app);
// Adds template ls, add and sessions (orchest_commands.cc).
void AddOrchestCommands(CLI::App& app);
// Adds `pipelines add|ls|show|rm`, `run` and `runs ls|show|logs|cancel|rm`
// (pipeline_commands.cc).
void AddPipelineCommands(CLI::App& app);
// Adds `recipes ls|show|construct|start|stop|destruct|reset|call|push-node`
// (recipe_commands.cc).
void AddRecipeCommands(CLI::App& app);

}  // namespace berth
