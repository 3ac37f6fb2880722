#include "graph/recipe.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <cstdint>
#include <deque>
#include <set>

#include "graph/node_args.h"
#include "model/yaml_json.h"

namespace berth {

namespace json = boost::json;

namespace {

Status Bad(std::string m) { return Status::InvalidArgument(std::move(m)); }

bool IsTupleHint(const json::value& v) {
  if (!v.is_object()) {
    return false;
  }
  const json::object& o = v.as_object();
  const json::value* t = o.if_contains("__tuple__");
  return t && t->is_bool() && t->as_bool() && o.contains("items") && o.at("items").is_array();
}

// A node's timeout and processes, checked where the recipe names them (node_args.h).
Status CheckCommonArgs(const RecipeNode& n, const json::object& args) {
  NodeArgs ignored;
  if (auto problem = ReadNodeArgs(args, ignored)) {
    return Bad(fmt::format("node '{}': {}", n.name, *problem));
  }
  return Status::Ok();
}

Status ValidateName(std::string_view what, std::string_view v) {
  if (v.empty()) {
    return Bad(
        fmt::format("the recipe's '{}' is missing; give it a short name such as 'ping'", what));
  }
  if (v.size() > kMaxRecipeName) {
    return Bad(
        fmt::format("the recipe's {} '{}' has {} characters; keep it under 12 (node "
                    "channels are named after it)",
                    what, v, v.size()));
  }
  for (char c : v) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') {
      return Bad(
          fmt::format("the recipe's {} '{}' may hold only letters, digits, '_' and '-'", what, v));
    }
  }
  return Status::Ok();
}

// A node reference in an edge: an index (-1 START/END) or a node's name.
Result<int> EdgeEnd(const json::value& v, const std::vector<RecipeNode>& nodes, size_t edge,
                    const char* role) {
  int n = static_cast<int>(nodes.size());
  if (v.is_int64() || v.is_uint64()) {
    // A uint64 beyond int64's range must not wrap around to -1 (START/END).
    int64_t i = v.is_int64() ? v.as_int64()
                             : static_cast<int64_t>(std::min<uint64_t>(v.as_uint64(), INT64_MAX));
    if (i < -1 || i >= n) {
      return Bad(
          fmt::format("edge {} names node {} as its {}, but the recipe has {} node{} "
                      "(0-{}; -1 is {})",
                      edge, i, role, n, n == 1 ? "" : "s", n - 1,
                      std::string_view(role) == "source" ? "START" : "END"));
    }
    return static_cast<int>(i);
  }
  if (v.is_null()) {
    return kGraphTerminal;
  }
  if (v.is_string()) {
    for (int i = 0; i < n; ++i) {
      if (nodes[static_cast<size_t>(i)].name == v.as_string()) {
        return i;
      }
    }
    return Bad(fmt::format("edge {} names '{}' as its {}, but no node has that name", edge,
                           std::string_view(v.as_string()), role));
  }
  return Bad(fmt::format("edge {}: the {} must be a node index or name, not {}", edge, role,
                         JsonKindName(v)));
}

}  // namespace

json::value Untuple(const json::value& v) {
  if (IsTupleHint(v)) {
    json::array out;
    for (const auto& e : v.as_object().at("items").as_array()) {
      out.push_back(Untuple(e));
    }
    return out;
  }
  if (v.is_array()) {
    json::array out;
    for (const auto& e : v.as_array()) {
      out.push_back(Untuple(e));
    }
    return out;
  }
  if (v.is_object()) {
    json::object out;
    for (const auto& [k, e] : v.as_object()) {
      out[k] = Untuple(e);
    }
    return out;
  }
  return v;
}

Result<Recipe> ParseRecipe(const json::value& input) {
  if (!input.is_object()) {
    return Bad(fmt::format("a recipe is a JSON object, not {}", JsonKindName(input)));
  }
  const json::object& o = input.as_object();
  Recipe r;
  for (auto [key, out] : {std::pair{"name", &r.name}, std::pair{"url", &r.url}}) {
    const json::value* v = o.if_contains(key);
    if (v && !v->is_string() && !v->is_null()) {
      return Bad(fmt::format("the recipe's '{}' must be a string, not {}", key, JsonKindName(*v)));
    }
    if (v && v->is_string()) {
      *out = std::string(v->as_string());
    }
  }
  if (r.url.empty()) {
    r.url = r.name;  // Neptune's advice: the same string for both
  }
  if (auto s = ValidateName("name", r.name); !s.ok()) {
    return s;
  }
  if (auto s = ValidateName("url", r.url); !s.ok()) {
    return s;
  }
  const json::value* graph_v = o.if_contains("graph");
  if (!graph_v || !graph_v->is_object()) {
    return Bad("the recipe needs a 'graph' object: {\"nodes\": [\"ping\"], \"edges\": []}");
  }
  const json::object& graph = graph_v->as_object();
  json::value nodes_v = Untuple(graph.contains("nodes") ? graph.at("nodes") : json::value());
  if (!nodes_v.is_array() || nodes_v.as_array().empty()) {
    return Bad("the recipe's graph needs 'nodes', a list of node types such as [\"ping\"]");
  }
  std::map<std::string, int> type_count;
  for (size_t i = 0; i < nodes_v.as_array().size(); ++i) {
    const json::value& n = nodes_v.as_array()[i];
    RecipeNode node;
    if (n.is_string()) {
      node.type = std::string(n.as_string());
    } else if (n.is_object() && n.as_object().contains("type") &&
               n.as_object().at("type").is_string()) {
      node.type = std::string(n.as_object().at("type").as_string());
      if (const json::value* nm = n.as_object().if_contains("name"); nm && nm->is_string()) {
        node.name = std::string(nm->as_string());
      }
    } else {
      return Bad(
          fmt::format("node {} must be a node type (a string) or {{\"type\": ..., "
                      "\"name\": ...}}, not {}",
                      i, JsonKindName(n)));
    }
    if (node.type.empty()) {
      return Bad(fmt::format("node {} has an empty type", i));
    }
    if (node.name.empty()) {
      int k = ++type_count[node.type];
      node.name = k == 1 ? node.type : fmt::format("{}_{}", node.type, k);
    }
    r.nodes.push_back(std::move(node));
  }
  std::set<std::string> names;
  for (const auto& n : r.nodes) {
    if (!names.insert(n.name).second) {
      return Bad(fmt::format("two nodes are named '{}'; node names must be unique", n.name));
    }
  }
  // Arguments: one object per node, or one for all.
  if (const json::value* a = o.if_contains("args"); a && !a->is_null()) {
    json::value args = *a;
    if (IsTupleHint(args)) {
      args = args.as_object().at("items");
    }
    if (args.is_object()) {
      for (auto& n : r.nodes) {
        n.args = args.as_object();
      }
    } else if (args.is_array()) {
      const json::array& list = args.as_array();
      if (list.size() != r.nodes.size()) {
        return Bad(
            fmt::format("'args' has {} entries for {} nodes; give one object per node "
                        "(in node order) or one object for all",
                        list.size(), r.nodes.size()));
      }
      for (size_t i = 0; i < list.size(); ++i) {
        if (list[i].is_null()) {
          continue;
        }
        if (!list[i].is_object()) {
          return Bad(fmt::format("args of node {} ({}) must be an object, not {}", i,
                                 r.nodes[i].name, JsonKindName(list[i])));
        }
        r.nodes[i].args = list[i].as_object();
      }
    } else {
      return Bad(fmt::format("'args' must be a list of objects or one object, not {}",
                             JsonKindName(args)));
    }
  }
  for (size_t i = 0; i < r.nodes.size(); ++i) {
    if (auto s = CheckCommonArgs(r.nodes[i], r.nodes[i].args); !s.ok()) {
      return s;
    }
  }
  // Edges, in order.
  if (const json::value* ev = graph.if_contains("edges"); ev && !ev->is_null()) {
    json::value edges = *ev;
    if (IsTupleHint(edges)) {
      edges = edges.as_object().at("items");
    }
    if (!edges.is_array()) {
      return Bad(
          fmt::format("the graph's 'edges' must be a list of [source, sink, channel], not {}",
                      JsonKindName(edges)));
    }
    for (size_t i = 0; i < edges.as_array().size(); ++i) {
      json::value e = Untuple(edges.as_array()[i]);
      json::array fields;
      if (e.is_array()) {
        fields = e.as_array();
      } else if (e.is_object()) {
        const json::object& eo = e.as_object();
        for (const char* k : {"source", "sink", "channel"}) {
          fields.push_back(eo.contains(k) ? eo.at(k) : json::value());
        }
      }
      if (fields.size() < 2 || fields.size() > 3) {
        return Bad(fmt::format("edge {} must be [source, sink] or [source, sink, channel]", i));
      }
      RecipeEdge edge;
      auto src = EdgeEnd(fields[0], r.nodes, i, "source");
      if (!src.ok()) {
        return src.status();
      }
      auto dst = EdgeEnd(fields[1], r.nodes, i, "sink");
      if (!dst.ok()) {
        return dst.status();
      }
      edge.source = *src;
      edge.sink = *dst;
      if (edge.source == kGraphTerminal && edge.sink == kGraphTerminal) {
        return Bad(fmt::format("edge {} goes from START straight to END; it needs a node", i));
      }
      if (fields.size() == 3 && fields[2].is_string()) {
        edge.channel = std::string(fields[2].as_string());
      } else if (fields.size() == 3 && !fields[2].is_null()) {
        return Bad(fmt::format("edge {}: the channel must be a string, not {}", i,
                               JsonKindName(fields[2])));
      }
      r.edges.push_back(std::move(edge));
    }
  }
  // The implicit edges: START -> first node, last node -> END.
  auto has = [&](auto pred) { return std::any_of(r.edges.begin(), r.edges.end(), pred); };
  if (!has([](const RecipeEdge& e) { return e.source == kGraphTerminal; })) {
    r.edges.insert(r.edges.begin(), RecipeEdge{kGraphTerminal, 0, "", true});
  }
  if (!has([](const RecipeEdge& e) { return e.sink == kGraphTerminal; })) {
    r.edges.push_back(RecipeEdge{static_cast<int>(r.nodes.size()) - 1, kGraphTerminal, "", true});
  }
  // One channel per publisher.
  std::map<int, std::string> channel;
  for (auto& e : r.edges) {
    auto [it, fresh] = channel.emplace(e.source, e.channel);
    if (!fresh && !e.channel.empty() && !it->second.empty() && it->second != e.channel) {
      std::string who =
          e.source == kGraphTerminal ? "START" : r.nodes[static_cast<size_t>(e.source)].name;
      return Bad(
          fmt::format("{} publishes on channels '{}' and '{}'; a node publishes on "
                      "exactly one channel (leave the channel out or give the same one)",
                      who, it->second, e.channel));
    }
    if (it->second.empty()) {
      it->second = e.channel;
    }
  }
  // Every node on a path START -> node -> END.
  int n = static_cast<int>(r.nodes.size());
  auto reach = [&](bool forward) {
    std::vector<bool> seen(static_cast<size_t>(n), false);
    std::deque<int> todo{kGraphTerminal};
    while (!todo.empty()) {
      int at = todo.front();
      todo.pop_front();
      for (const auto& e : r.edges) {
        int from = forward ? e.source : e.sink;
        int to = forward ? e.sink : e.source;
        if (from == at && to != kGraphTerminal && !seen[static_cast<size_t>(to)]) {
          seen[static_cast<size_t>(to)] = true;
          todo.push_back(to);
        }
      }
    }
    return seen;
  };
  std::vector<bool> from_start = reach(true), to_end = reach(false);
  for (int i = 0; i < n; ++i) {
    if (!from_start[static_cast<size_t>(i)]) {
      return Bad(fmt::format("node {} ({}) has no path from START; add an edge into it", i,
                             r.nodes[static_cast<size_t>(i)].name));
    }
    if (!to_end[static_cast<size_t>(i)]) {
      return Bad(fmt::format("node {} ({}) has no path to END; add an edge out of it", i,
                             r.nodes[static_cast<size_t>(i)].name));
    }
  }
  // Handlers.
  if (const json::value* hv = o.if_contains("handlers"); hv && !hv->is_null()) {
    json::value h = Untuple(*hv);
    if (!h.is_object()) {
      return Bad(
          fmt::format("'handlers' must be an object keyed by method (get, post, patch), "
                      "not {}",
                      JsonKindName(h)));
    }
    for (const auto& [method, chain] : h.as_object()) {
      std::string m(method);
      std::transform(m.begin(), m.end(), m.begin(), ::tolower);
      if (m != "get" && m != "post" && m != "patch") {
        return Bad(fmt::format("handlers for '{}': only get, post and patch are served",
                               std::string_view(method)));
      }
      std::vector<std::string> list;
      if (chain.is_null()) {
        continue;
      }
      if (chain.is_string()) {
        if (!chain.as_string().empty()) {  // "" is an empty chain, as [] is
          list.emplace_back(chain.as_string());
        }
      } else if (chain.is_array()) {
        for (const auto& c : chain.as_array()) {
          if (!c.is_string() || c.as_string().empty()) {
            return Bad(fmt::format("handlers for '{}' must be names of handlers (strings)", m));
          }
          list.emplace_back(c.as_string());
        }
      } else {
        return Bad(fmt::format("handlers for '{}' must be a handler name or a list of them, not {}",
                               m, JsonKindName(chain)));
      }
      if (list.empty()) {
        return Bad(
            fmt::format("handlers for '{}' is an empty list; name at least one or leave "
                        "the method out",
                        m));
      }
      r.handlers[m] = std::move(list);
    }
  }
  return r;
}

namespace {

json::value EdgeEndJson(int i) { return json::value(static_cast<int64_t>(i)); }

json::value Tuple(json::array items) {
  return json::object{{"__tuple__", true}, {"items", std::move(items)}};
}

// Arrays inside args that came as tuples keep their hint; lists are written as lists.
json::object RecipeJson(const Recipe& r, bool neptune) {
  json::array nodes, edges, args;
  std::map<std::string, int> type_count;
  for (const auto& n : r.nodes) {
    // Count as ParseRecipe does: only the nodes written by type alone take a number.
    int k = type_count[n.type] + 1;
    std::string auto_name = k == 1 ? n.type : fmt::format("{}_{}", n.type, k);
    if (n.name == auto_name) {
      ++type_count[n.type];
      nodes.push_back(json::string(n.type));
    } else {
      nodes.push_back(json::object{{"type", n.type}, {"name", n.name}});
    }
    args.push_back(neptune ? json::value(n.args) : Untuple(n.args));
  }
  for (const auto& e : r.edges) {
    if (e.implicit) {
      continue;
    }
    json::array t{EdgeEndJson(e.source), EdgeEndJson(e.sink),
                  e.channel.empty() ? json::value(nullptr) : json::value(e.channel)};
    edges.push_back(neptune ? Tuple(std::move(t)) : json::value(std::move(t)));
  }
  json::object handlers;
  for (const auto& [m, chain] : r.handlers) {
    json::array list;
    for (const auto& h : chain) {
      list.push_back(json::string(h));
    }
    handlers[m] = std::move(list);
  }
  return json::object{
      {"name", r.name},
      {"url", r.url},
      {"graph", json::object{{"nodes", std::move(nodes)}, {"edges", std::move(edges)}}},
      {"args", std::move(args)},
      {"handlers", std::move(handlers)}};
}

}  // namespace

json::object RecipeToJson(const Recipe& r) { return RecipeJson(r, false); }
json::object RecipeToNeptune(const Recipe& r) { return RecipeJson(r, true); }

std::vector<std::vector<int>> NodeInputs(const Recipe& r) {
  std::vector<std::vector<int>> in(r.nodes.size());
  for (const auto& e : r.edges) {
    if (e.sink != kGraphTerminal) {
      in[static_cast<size_t>(e.sink)].push_back(e.source);
    }
  }
  return in;
}

std::vector<int> EndSources(const Recipe& r) {
  std::vector<int> out;
  for (const auto& e : r.edges) {
    if (e.sink == kGraphTerminal && std::find(out.begin(), out.end(), e.source) == out.end()) {
      out.push_back(e.source);
    }
  }
  return out;
}

int NodeIndex(const Recipe& r, std::string_view name) {
  for (size_t i = 0; i < r.nodes.size(); ++i) {
    if (r.nodes[i].name == name) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

Result<std::vector<json::object>> RunArgs(const Recipe& r, const json::object& overrides) {
  std::vector<json::object> out;
  for (const auto& n : r.nodes) {
    out.push_back(Untuple(n.args).as_object());
  }
  for (const auto& [name, change] : overrides) {
    int i = NodeIndex(r, name);
    if (i < 0) {
      std::string known;
      for (const auto& n : r.nodes) {
        known += (known.empty() ? "" : ", ") + n.name;
      }
      return Bad(fmt::format("the overrides name node '{}', but recipe {} has only {}",
                             std::string_view(name), r.name, known));
    }
    if (!change.is_object()) {
      return Bad(
          fmt::format("the override of node '{}' must be {{\"add\": {{...}}, \"remove\": "
                      "{{...}}}}, not {}",
                      std::string_view(name), JsonKindName(change)));
    }
    json::object& args = out[static_cast<size_t>(i)];
    for (const auto& [k, v] : change.as_object()) {
      if (k == "add") {
        if (!v.is_object()) {
          return Bad(fmt::format("'add' of node '{}' must be an object of arguments",
                                 std::string_view(name)));
        }
        for (const auto& [ak, av] : v.as_object()) {
          args[ak] = Untuple(av);
        }
      } else if (k == "remove") {
        if (v.is_object()) {
          for (const auto& [rk, rv] : v.as_object()) {
            (void)rv;
            args.erase(rk);
          }
        } else if (v.is_array()) {
          for (const auto& rk : v.as_array()) {
            if (rk.is_string()) {
              args.erase(rk.as_string());
            }
          }
        } else {
          return Bad(
              fmt::format("'remove' of node '{}' must be an object or a list of argument "
                          "names",
                          std::string_view(name)));
        }
      } else {
        return Bad(
            fmt::format("the override of node '{}' has '{}'; only 'add' and 'remove' are "
                        "understood",
                        std::string_view(name), std::string_view(k)));
      }
    }
    if (auto s = CheckCommonArgs(r.nodes[static_cast<size_t>(i)], args); !s.ok()) {
      return s;
    }
  }
  return out;
}

std::vector<Recipe> DefaultRecipes() {
  json::value ping = json::parse(R"({"name": "ping", "url": "ping",
      "graph": {"nodes": ["ping"], "edges": []},
      "handlers": {"get": ["handlers.ping_handler"]}})");
  return {std::move(*ParseRecipe(ping))};
}

}  // namespace berth
