// The wire protocol of recipe graphs: how the daemon and the nodes of a started recipe talk.
// The C++ node SDK (node_io.h), the Python one (sdk/python/berth/node.py) and the daemon's
// graph engine all speak it; nothing else.
//
// Channels. Every node publishes on exactly one channel: a ZeroMQ PUB socket it binds at
// `output`, an ipc:// path under the data dir. It reads each of its inputs with a SUB socket
// connected to the publisher of that input, subscribed to everything; inputs are numbered in
// the order the recipe's edges into the node were added. The graph's START is a PUB socket of
// the daemon; END is a SUB socket of the daemon connected to every channel with an edge to END.
//
// Messages have two frames:
//   frame 0, the header: "m<id>" a data message of request <id> (no spaces), or
//                        "h<seq>" a heartbeat with sequence number <seq> (decimal);
//   frame 1, the body:   a data message's JSON text; a heartbeat's JSON object
//                        {"stats": {"<node index>": [messages read on input 0, on input 1, ...]},
//                         "up": {"<node index>": [a heartbeat came on input 0, on input 1, ...]}}.
// A node forwards a heartbeat (with its own counters added to `stats` and `up`) the first time
// it sees its sequence number on each input, and only while it is reading its inputs: a node
// stuck in its own code stops heartbeats, and the daemon, seeing none at END for 5 s, calls
// the graph DEAD. Forwarding a sequence number once per input keeps heartbeats from circling in
// a graph with a feedback edge, and still carries every branch's counters to END. The daemon
// calls a graph STARTED (and, after a node restart, flowing again) once every edge, END's
// included, has carried a heartbeat: until then a message could be lost to a subscription
// that is not up yet. A data message a node publishes carries the id of the message it read last
// (sources make their own ids).
//
// A node learns its place from the environment variable BERTH_NODE, a JSON object:
//   {"recipe": "ping", "name": "ping", "index": 0, "type": "ping",
//    "inputs": ["ipc:///.../start", ...], "output": "ipc:///.../0", "args": {...}}
// `args` holds the recipe's arguments for the node with the run's overrides applied; every node
// understands `timeout` (ms to wait for an input, -1 forever, the default).
#pragma once

#include <string>
#include <string_view>

namespace berth::wire {

inline constexpr char kData = 'm';
inline constexpr char kHeartbeat = 'h';
inline constexpr const char* kNodeEnv = "BERTH_NODE";

inline std::string DataHeader(std::string_view id) {
  std::string h(1, kData);
  h.append(id);
  return h;
}
inline std::string HeartbeatHeader(unsigned long long seq) {
  return std::string(1, kHeartbeat) + std::to_string(seq);
}

}  // namespace berth::wire
