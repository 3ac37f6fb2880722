// berth-node: the built-in node types of recipe graphs, one process per node.
//   ping         copies the incoming message and adds "pong", the current Unix time as a string
//   passthrough  publishes what it reads
//   merge        waits for a message of the same request on every input and publishes
//                {"inputs": [message of input 0, of input 1, ...]} with that request's id
//   stream       a source: publishes {"seq": n, "time": unix seconds} `frequency` times a second
// ping and passthrough take args "processes" (N worker processes). Started by berth as
// `berth-node TYPE` with BERTH_NODE in the environment (graph/wire.h).
#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
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

// Pairs messages by request id, so that one lost on a branch does not shift every later pair;
// the oldest incomplete requests are dropped beyond 10,000.
int Merge(NodeIo& io) {
  struct Parts {
    std::vector<std::optional<std::string>> bodies;
    size_t have = 0;
  };
  std::map<std::string, Parts> open;
  std::deque<std::string> order;
  size_t n = static_cast<size_t>(io.inputs());
  while (true) {
    auto got = io.GetAny(std::chrono::milliseconds(-1));
    if (!got) {
      continue;
    }
    auto& [input, m] = *got;
    auto [it, fresh] = open.try_emplace(m.id);
    if (fresh) {
      it->second.bodies.resize(n);
      order.push_back(m.id);
      if (order.size() > 10000) {
        open.erase(order.front());
        order.pop_front();
      }
    }
    Parts& p = it->second;
    if (!p.bodies[static_cast<size_t>(input)]) {
      p.bodies[static_cast<size_t>(input)] = std::move(m.body);
      ++p.have;
    }
    if (p.have < n) {
      continue;
    }
    json::array all;
    for (auto& b : p.bodies) {
      boost::system::error_code ec;
      json::value v = json::parse(*b, ec);
      all.push_back(ec ? json::value(json::string(*b)) : std::move(v));
    }
    io.Publish(it->first, json::serialize(json::object{{"inputs", std::move(all)}}));
    order.erase(std::find(order.begin(), order.end(), it->first));
    open.erase(it);
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
