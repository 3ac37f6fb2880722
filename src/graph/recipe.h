// A recipe (seed 003, Neptune) is a service made of a graph of nodes, one process each, that
// talk over pub/sub, with handler chains per HTTP method. This file holds the model and its
// pure functions: reading a recipe from berth's JSON or Neptune's (tuples hinted as
// {"__tuple__": true, "items": [...]}), validating it, adding the implicit START/END edges,
// the arguments of a run (overrides), and Neptune's cache form (`recipe_<name>.bak`).
//
//   {"name": "ping", "url": "ping",
//    "graph": {"nodes": ["ping", ...],                 // node types, in order (order matters)
//              "edges": [[source, sink, channel], ...]},  // node index or name; -1 START/END
//    "args": [{...} per node] | {...} for every node,
//    "handlers": {"get": ["handlers.ping_handler"] | "ping", "post": ..., "patch": ...}}
//
// A node is named by its type; a type used twice gets `<type>_2`, `<type>_3`... A node may
// also be given as {"type": "ping", "name": "first"}. A node's inputs are the sources of the
// edges into it, in the order the edges were added. Every node publishes on one channel: the
// edges out of one node must agree on its name (empty: the node's name).
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"

namespace berth {

inline constexpr int kGraphTerminal = -1;     // START as a source, END as a sink
inline constexpr size_t kMaxRecipeName = 11;  // "< 12 characters", Neptune's rule

struct RecipeNode {
  std::string type;
  std::string name;
  boost::json::object args;  // as given (tuple hints kept, for Neptune's cache)
};

struct RecipeEdge {
  int source = kGraphTerminal;
  int sink = kGraphTerminal;
  std::string channel;
  bool implicit = false;  // added because the recipe omitted it
};

struct Recipe {
  std::string name;
  std::string url;
  std::vector<RecipeNode> nodes;
  std::vector<RecipeEdge> edges;  // in the order they were added; implicit ones included
  // "get" / "post" / "patch" -> the handler chain, first to last.
  std::map<std::string, std::vector<std::string>> handlers;
};

// {"__tuple__": true, "items": [...]} -> [...], everywhere in `v`.
boost::json::value Untuple(const boost::json::value& v);

// Reads and validates a recipe (berth's or Neptune's form). InvalidArgument naming the
// problem: a name or url that is empty, not [A-Za-z0-9_-] or 12 characters or longer; no nodes;
// an edge naming a missing node; edges of one node with different channels; a node without a
// path from START or to END; duplicate node names; args of the wrong shape; a method other
// than get, post, patch; an empty handler chain.
Result<Recipe> ParseRecipe(const boost::json::value& v);

// berth's form (the input form, implicit edges left out), and Neptune's cache form (edges
// and the items of tuples as tuple hints).
boost::json::object RecipeToJson(const Recipe& r);
boost::json::object RecipeToNeptune(const Recipe& r);

// The sources of each node's inputs, in input order (-1: START).
std::vector<std::vector<int>> NodeInputs(const Recipe& r);
// Nodes with an edge to END, in edge order.
std::vector<int> EndSources(const Recipe& r);
int NodeIndex(const Recipe& r, std::string_view name);  // -1 when there is none

// Each node's arguments for one run: the recipe's (tuples as lists) with `overrides` applied,
// {"<node name>": {"add": {...}, "remove": {...} | [keys]}}. InvalidArgument naming an
// unknown node or a malformed override; the recipe is not changed.
Result<std::vector<boost::json::object>> RunArgs(const Recipe& r,
                                                 const boost::json::object& overrides);

// The recipes of a fresh data dir (and after a reset): `ping`.
std::vector<Recipe> DefaultRecipes();

}  // namespace berth
