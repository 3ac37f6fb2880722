// NodeIo: the C++ node SDK. A node program reads input i, does its work and publishes its
// output; NodeIo hides the channels, the heartbeats and the counters of the wire protocol
// (graph/wire.h):
//
//   auto io = berth::NodeIo::FromEnvironment();      // BERTH_NODE, set by berth
//   while (auto m = io->Get(0)) {                      // nullopt: timed out (args "timeout")
//     boost::json::object o = m->Object();
//     o["seen"] = true;
//     io->Put(*m, boost::json::serialize(o));
//   }
//
// While Get waits for input i it also forwards heartbeats from every input and keeps data that
// arrives on other inputs for later Gets, so a node with two inputs may read them in any order.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace zmq {
class context_t;
class socket_t;
}  // namespace zmq

namespace berth {

struct NodeMessage {
  std::string id;    // the request it belongs to
  std::string body;  // JSON text
  // The body as an object: itself when it is one, {"data": body} otherwise.
  boost::json::object Object() const;
};

struct NodeConfig {
  std::string recipe;
  std::string name;
  int index = 0;
  std::string type;
  std::vector<std::string> inputs;  // endpoints, in input order
  std::string output;
  boost::json::object args;
  int timeout_ms = -1;  // from args "timeout"
  int processes = 0;    // from args "processes": 0 this process, N > 0 worker processes
};

// Parses the BERTH_NODE text. InvalidArgument naming the field that is wrong.
Result<NodeConfig> ParseNodeConfig(std::string_view text);

class NodeIo {
 public:
  static Result<std::unique_ptr<NodeIo>> FromEnvironment();
  static Result<std::unique_ptr<NodeIo>> FromConfig(NodeConfig config);
  ~NodeIo();
  NodeIo(const NodeIo&) = delete;
  NodeIo& operator=(const NodeIo&) = delete;

  const NodeConfig& config() const { return config_; }
  const boost::json::object& args() const { return config_.args; }
  int inputs() const { return static_cast<int>(inputs_.size()); }

  // The next data message of input `i`, or nullopt once the node's timeout passed without one.
  std::optional<NodeMessage> Get(int i);
  // Same with an explicit timeout (-1: forever).
  std::optional<NodeMessage> Get(int i, std::chrono::milliseconds timeout);
  // The next data message of whichever input has one first, with the input's index.
  std::optional<std::pair<int, NodeMessage>> GetAny(std::chrono::milliseconds timeout);
  // Publishes `body` (JSON text) as the answer to `to` (keeps its request id).
  void Put(const NodeMessage& to, std::string_view body);
  // Publishes a message of a request of its own (sources).
  void Publish(std::string_view id, std::string_view body);
  // For sources between messages: forwards heartbeats for up to `timeout`.
  void Idle(std::chrono::milliseconds timeout);

  // The loop of a node with one input: `work` turns each message of input 0 into the body it
  // publishes (nullopt: publish nothing). With args "processes" N > 0 the work runs in N
  // worker processes (fed round-robin over ipc `<output>.w`, answering on `<output>.r`) while
  // this process keeps the channels and heartbeats. Returns only on a channel error.
  // Workers are this program again, exec'd with BERTH_NODE_WORKER set (a bare fork would copy
  // a process whose ZeroMQ thread may hold a lock the child then waits on for ever): in them
  // FromEnvironment opens no channel and Run runs `work` for the node that started them.
  using Work = std::function<std::optional<std::string>(const NodeMessage&)>;
  int Run(const Work& work);

 private:
  explicit NodeIo(NodeConfig config);
  Status Open();
  // Waits up to `timeout` for any input; handles what arrives. False on timeout.
  bool PollOnce(std::chrono::milliseconds timeout);
  void Forward(const std::string& header, std::string body);
  // heartbeat[field][this node's index] = values (one per input), making `field` an object.
  void AddPerInput(boost::json::object& heartbeat, const char* field,
                   boost::json::array values) const;
  int RunWorkers();
  int RunAsWorker(const Work& work);

  NodeConfig config_;
  pid_t worker_of_ = 0;  // in a worker: its node's pid
  std::unique_ptr<zmq::context_t> context_;
  std::unique_ptr<zmq::socket_t> output_;
  std::vector<std::unique_ptr<zmq::socket_t>> inputs_;
  std::vector<std::deque<NodeMessage>> pending_;
  std::vector<uint64_t> counts_;
  // Per input: the last heartbeat forwarded from it, and whether one ever came.
  std::vector<uint64_t> last_heartbeat_;
  std::vector<bool> heartbeat_seen_;
};

}  // namespace berth
