// berth-node: the built-in node types of recipe graphs, one process per node.
//   ping         copies the incoming message and adds "pong", the current Unix time as a string
//   passthrough  publishes what it reads
//   merge        reads one message from each input, in input order, and publishes
//                {"inputs": [message of input 0, of input 1, ...]} with the id of input 0's
//   stream       a source: publishes {"seq": n, "time": unix seconds} `frequency` times a second
// ping and passthrough take args "processes" (N worker processes). Started by berth as
// `berth-node TYPE` with BERTH_NODE in the environment (graph/wire.h).
#include <chrono>
#include <cstdio>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

#include <boost/json.hpp>
#include <zmq.hpp>

#include "graph/node_io.h"

namespace json = boost::json;
using berth::NodeIo;

namespace {

int Ping(NodeIo& io) {
  return io.Run([](const berth::NodeMessage& m) -> std::optional<std::string> {
    json::object o = m.Object();
    o["pong"] = std::to_string(std::time(nullptr));
    return json::serialize(o);
  });
}

int Passthrough(NodeIo& io) {
  return io.Run([](const berth::NodeMessage& m) -> std::optional<std::string> { return m.body; });
}

int Merge(NodeIo& io) {
  while (true) {
    auto first = io.Get(0);
    if (!first) {
      continue;
    }
    json::array all;
    all.push_back(json::parse(first->body));
    for (int i = 1; i < io.inputs(); ++i) {
      auto m = io.Get(i, std::chrono::milliseconds(-1));
      all.push_back(json::parse(m->body));
    }
    io.Put(*first, json::serialize(json::object{{"inputs", std::move(all)}}));
  }
}

int Stream(NodeIo& io) {
  double frequency = 1;
  if (const json::value* f = io.args().if_contains("frequency"); f && f->is_number()) {
    frequency = f->to_number<double>();
  }
  if (frequency <= 0) {
    std::fprintf(stderr, "stream: 'frequency' must be above 0 (messages per second)\n");
    return 2;
  }
  auto period = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::duration<double>(1.0 / frequency));
  auto next = std::chrono::steady_clock::now();
  for (unsigned long long seq = 1;; ++seq) {
    io.Publish("s" + std::to_string(seq),
               json::serialize(json::object{{"seq", seq}, {"time", std::time(nullptr)}}));
    next += period;
    io.Idle(std::chrono::duration_cast<std::chrono::milliseconds>(
        next - std::chrono::steady_clock::now()));
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string_view type = argc > 1 ? argv[1] : "";
  auto io = NodeIo::FromEnvironment();
  if (!io.ok()) {
    std::fprintf(stderr, "berth-node: %s\n", io.status().message().c_str());
    return 2;
  }
  try {
    if (type == "ping") {
      return Ping(**io);
    }
    if (type == "passthrough") {
      return Passthrough(**io);
    }
    if (type == "merge") {
      return Merge(**io);
    }
    if (type == "stream") {
      return Stream(**io);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "berth-node %s: %s\n", std::string(type).c_str(), e.what());
    return 1;
  }
  std::fprintf(stderr, "berth-node: unknown node type '%s' (ping, passthrough, merge, stream)\n",
               std::string(type).c_str());
  return 2;
}
