// The arguments every node understands, checked in one place: by the recipe model when a
// recipe is constructed or started with overrides (so that a bad value is a 400 naming the
// node), and by the C++ node SDK when a node reads its BERTH_NODE (so that a node started by
// hand says the same). The Python SDK (sdk/python/berth/node.py) applies the same rule.
//   timeout    ms to wait for an input; -1 (or any negative number) waits forever.
//   processes  0: work in the node's own process; 1..256: that many worker processes.
#pragma once

#include <boost/json.hpp>
#include <climits>
#include <cmath>
#include <optional>
#include <string>

namespace berth {

struct NodeArgs {
  int timeout_ms = -1;
  int processes = 0;
};

// The node's common arguments from `args`, or the message saying which one is wrong and why.
inline std::optional<std::string> ReadNodeArgs(const boost::json::object& args, NodeArgs& out) {
  if (const boost::json::value* t = args.if_contains("timeout"); t && !t->is_null()) {
    double ms = t->is_number() ? t->to_number<double>() : NAN;
    if (!std::isfinite(ms) || ms > INT_MAX) {
      return "args 'timeout' must be a number of milliseconds up to 2147483647 (-1: wait "
             "forever)";
    }
    out.timeout_ms = ms < 0 ? -1 : static_cast<int>(ms);
  }
  if (const boost::json::value* n = args.if_contains("processes"); n && !n->is_null()) {
    double count = n->is_number() ? n->to_number<double>() : NAN;
    if (!(count >= 0 && count <= 256)) {
      return "args 'processes' must be a number from 0 to 256 (0: work in the node's own "
             "process)";
    }
    out.processes = static_cast<int>(count);
  }
  return std::nullopt;
}

}  // namespace berth
