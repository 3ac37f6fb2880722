#include "graph/node_io.h"

#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "common/file_util.h"
#include "graph/node_args.h"
#include "graph/wire.h"

namespace berth {

namespace json = boost::json;

// Set (to the node's pid) in the environment of a node's worker processes.
constexpr const char* kWorkerEnv = "BERTH_NODE_WORKER";

json::object NodeMessage::Object() const {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (!ec && v.is_object()) {
    return std::move(v.as_object());
  }
  json::object o;
  o["data"] = ec ? json::value(json::string(body)) : std::move(v);
  return o;
}

Result<NodeConfig> ParseNodeConfig(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) {
    return Status::InvalidArgument(std::string(wire::kNodeEnv) + " is not a JSON object");
  }
  const json::object& o = v.as_object();
  NodeConfig c;
  auto str = [&](const char* key, std::string& out) -> Status {
    const json::value* f = o.if_contains(key);
    if (!f || !f->is_string()) {
      return Status::InvalidArgument(std::string(wire::kNodeEnv) + ": '" + key +
                                     "' must be a string");
    }
    out = std::string(f->as_string());
    return Status::Ok();
  };
  for (auto [key, out] : {std::pair{"recipe", &c.recipe}, std::pair{"name", &c.name},
                          std::pair{"type", &c.type}, std::pair{"output", &c.output}}) {
    if (auto s = str(key, *out); !s.ok()) {
      return s;
    }
  }
  if (const json::value* i = o.if_contains("index"); i && i->is_int64()) {
    c.index = static_cast<int>(i->as_int64());
  }
  const json::value* inputs = o.if_contains("inputs");
  if (!inputs || !inputs->is_array()) {
    return Status::InvalidArgument(std::string(wire::kNodeEnv) + ": 'inputs' must be a list");
  }
  for (const auto& in : inputs->as_array()) {
    if (!in.is_string()) {
      return Status::InvalidArgument(std::string(wire::kNodeEnv) +
                                     ": 'inputs' must be a list of endpoints");
    }
    c.inputs.emplace_back(in.as_string());
  }
  if (const json::value* a = o.if_contains("args"); a && a->is_object()) {
    c.args = a->as_object();
  }
  NodeArgs common;
  if (auto problem = ReadNodeArgs(c.args, common)) {
    return Status::InvalidArgument(*problem);
  }
  c.timeout_ms = common.timeout_ms;
  c.processes = common.processes;
  return c;
}

NodeIo::NodeIo(NodeConfig config) : config_(std::move(config)) {}
NodeIo::~NodeIo() = default;

Result<std::unique_ptr<NodeIo>> NodeIo::FromEnvironment() {
  const char* text = std::getenv(wire::kNodeEnv);
  if (text == nullptr) {
    return Status::InvalidArgument(std::string(wire::kNodeEnv) +
                                   " is not set: nodes are started by berth for a recipe");
  }
  auto c = ParseNodeConfig(text);
  if (!c.ok()) {
    return c.status();
  }
  return FromConfig(std::move(*c));
}

Result<std::unique_ptr<NodeIo>> NodeIo::FromConfig(NodeConfig config) {
  std::unique_ptr<NodeIo> io(new NodeIo(std::move(config)));
  if (const char* parent = std::getenv(kWorkerEnv)) {
    io->worker_of_ = static_cast<pid_t>(std::atol(parent));
    return io;  // a worker speaks only to its node, over channels of its own
  }
  if (auto s = io->Open(); !s.ok()) {
    return s;
  }
  return io;
}

Status NodeIo::Open() {
  try {
    context_ = std::make_unique<zmq::context_t>(1);
    output_ = std::make_unique<zmq::socket_t>(*context_, zmq::socket_type::pub);
    output_->set(zmq::sockopt::linger, 0);
    output_->set(zmq::sockopt::sndhwm, 100000);
    output_->bind(config_.output);
    for (const auto& in : config_.inputs) {
      auto s = std::make_unique<zmq::socket_t>(*context_, zmq::socket_type::sub);
      s->set(zmq::sockopt::linger, 0);
      s->set(zmq::sockopt::rcvhwm, 100000);
      s->set(zmq::sockopt::subscribe, "");
      s->connect(in);
      inputs_.push_back(std::move(s));
    }
  } catch (const zmq::error_t& e) {
    return Status::Internal("opening the node's channels (" + config_.output + "): " + e.what());
  }
  pending_.resize(inputs_.size());
  counts_.assign(inputs_.size(), 0);
  last_heartbeat_.assign(inputs_.size(), 0);
  heartbeat_seen_.assign(inputs_.size(), false);
  return Status::Ok();
}

void NodeIo::AddPerInput(json::object& heartbeat, const char* field, json::array values) const {
  json::value& f = heartbeat[field];
  if (!f.is_object()) {
    f = json::object{};
  }
  f.as_object()[std::to_string(config_.index)] = std::move(values);
}

void NodeIo::Forward(const std::string& header, std::string body) {
  output_->send(zmq::buffer(header), zmq::send_flags::sndmore);
  output_->send(zmq::buffer(body), zmq::send_flags::none);
}

bool NodeIo::PollOnce(std::chrono::milliseconds timeout) {
  std::vector<zmq::pollitem_t> items;
  for (auto& s : inputs_) {
    items.push_back({s->handle(), 0, ZMQ_POLLIN, 0});
  }
  if (zmq::poll(items.data(), items.size(), timeout) <= 0) {
    return false;
  }
  for (size_t i = 0; i < items.size(); ++i) {
    if (!(items[i].revents & ZMQ_POLLIN)) {
      continue;
    }
    // Drain what is there without waiting.
    while (true) {
      zmq::message_t head;
      if (!inputs_[i]->recv(head, zmq::recv_flags::dontwait)) {
        break;
      }
      zmq::message_t body;
      if (head.more()) {
        (void)inputs_[i]->recv(body, zmq::recv_flags::none);
      }
      std::string h = head.to_string();
      if (h.empty()) {
        continue;
      }
      if (h[0] == wire::kHeartbeat) {
        uint64_t seq = std::strtoull(h.c_str() + 1, nullptr, 10);
        if (seq <= last_heartbeat_[i]) {
          continue;
        }
        last_heartbeat_[i] = seq;
        heartbeat_seen_[i] = true;
        boost::system::error_code ec;
        json::value v = json::parse(body.to_string_view(), ec);
        if (ec || !v.is_object()) {
          v = json::object{};
        }
        json::object& o = v.as_object();
        AddPerInput(o, "stats", json::array(counts_.begin(), counts_.end()));
        json::array up;  // as booleans: a vector<bool>'s iterators would give integers
        for (bool seen : heartbeat_seen_) {
          up.push_back(seen);
        }
        AddPerInput(o, "up", std::move(up));
        Forward(h, json::serialize(o));
      } else if (h[0] == wire::kData) {
        ++counts_[i];
        pending_[i].push_back(NodeMessage{h.substr(1), body.to_string()});
      }
    }
  }
  return true;
}

std::optional<std::pair<int, NodeMessage>> NodeIo::GetAny(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    for (size_t i = 0; i < pending_.size(); ++i) {
      if (!pending_[i].empty()) {
        NodeMessage m = std::move(pending_[i].front());
        pending_[i].pop_front();
        return std::pair{static_cast<int>(i), std::move(m)};
      }
    }
    auto wait = std::chrono::milliseconds(-1);
    if (timeout.count() >= 0) {
      wait = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (wait.count() < 0) {
        return std::nullopt;
      }
    }
    if (inputs_.empty()) {
      return std::nullopt;
    }
    PollOnce(wait);
  }
}

std::optional<NodeMessage> NodeIo::Get(int i) {
  return Get(i, std::chrono::milliseconds(config_.timeout_ms));
}

std::optional<NodeMessage> NodeIo::Get(int i, std::chrono::milliseconds timeout) {
  if (i < 0 || i >= inputs()) {
    return std::nullopt;
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto& q = pending_[static_cast<size_t>(i)];
  while (q.empty()) {
    auto wait = std::chrono::milliseconds(-1);
    if (timeout.count() >= 0) {
      wait = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (wait.count() < 0) {
        return std::nullopt;
      }
    }
    PollOnce(wait);
  }
  NodeMessage m = std::move(q.front());
  q.pop_front();
  return m;
}

void NodeIo::Put(const NodeMessage& to, std::string_view body) { Publish(to.id, body); }

void NodeIo::Publish(std::string_view id, std::string_view body) {
  Forward(wire::DataHeader(id), std::string(body));
}

void NodeIo::Idle(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (wait.count() <= 0) {
      return;
    }
    PollOnce(wait);
    // Data read while idle is dropped: a source has nothing to do with it.
    for (auto& q : pending_) {
      q.clear();
    }
  }
}

int NodeIo::Run(const Work& work) {
  if (worker_of_ != 0) {
    return RunAsWorker(work);
  }
  if (config_.processes > 0 && inputs() > 0) {
    return RunWorkers();
  }
  while (true) {
    auto m = Get(0);
    if (!m) {
      continue;  // timed out: nothing to do but wait again
    }
    if (auto out = work(*m)) {
      Put(*m, *out);
    }
  }
}

int NodeIo::RunAsWorker(const Work& work) {
  // Dies with its node, and not at all if the node is already gone.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != worker_of_) {
    return 1;
  }
  zmq::context_t ctx(1);
  zmq::socket_t in(ctx, zmq::socket_type::pull);
  zmq::socket_t out(ctx, zmq::socket_type::push);
  in.set(zmq::sockopt::linger, 0);
  out.set(zmq::sockopt::linger, 0);
  in.connect(config_.output + ".w");
  out.connect(config_.output + ".r");
  while (true) {
    zmq::message_t id;
    zmq::message_t body;
    if (!in.recv(id) || !in.recv(body)) {
      return 1;
    }
    NodeMessage m{id.to_string(), body.to_string()};
    std::optional<std::string> answer;
    try {
      answer = work(m);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "berth-node worker: %s\n", e.what());
    }
    if (answer) {
      out.send(zmq::buffer(m.id), zmq::send_flags::sndmore);
      out.send(zmq::buffer(*answer), zmq::send_flags::none);
    }
  }
}

int NodeIo::RunWorkers() {
  std::string feed = config_.output + ".w";
  std::string results = config_.output + ".r";
  // This program's own argv, for the workers (the work runs in them).
  auto self = ReadFile("/proc/self/cmdline");
  std::string cmdline = self.ok() ? std::move(*self) : std::string();
  std::vector<char*> argv;
  for (size_t at = 0; at < cmdline.size(); at = cmdline.find('\0', at) + 1) {
    argv.push_back(cmdline.data() + at);
  }
  argv.push_back(nullptr);
  std::string mark = std::string(kWorkerEnv) + "=" + std::to_string(getpid());
  std::vector<char*> envp;
  for (char** e = environ; *e != nullptr; ++e) {
    envp.push_back(*e);
  }
  envp.push_back(mark.data());
  envp.push_back(nullptr);
  for (int w = 0; w < config_.processes; ++w) {
    pid_t pid = 0;
    if (int err = posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), envp.data());
        err != 0) {
      std::fprintf(stderr, "berth-node: starting a worker: %s\n", std::strerror(err));
      return 1;
    }
  }
  zmq::socket_t to_workers(*context_, zmq::socket_type::push);
  zmq::socket_t from_workers(*context_, zmq::socket_type::pull);
  to_workers.set(zmq::sockopt::linger, 0);
  from_workers.set(zmq::sockopt::linger, 0);
  to_workers.bind(feed);
  from_workers.bind(results);
  std::deque<NodeMessage> backlog;
  while (true) {
    // Answers first, then whatever arrived on the inputs (heartbeats are forwarded there).
    zmq::pollitem_t item{from_workers.handle(), 0, ZMQ_POLLIN, 0};
    while (zmq::poll(&item, 1, std::chrono::milliseconds(0)) > 0) {
      zmq::message_t id;
      zmq::message_t body;
      (void)from_workers.recv(id);
      (void)from_workers.recv(body);
      Publish(id.to_string_view(), body.to_string_view());
    }
    std::vector<zmq::pollitem_t> items{{from_workers.handle(), 0, ZMQ_POLLIN, 0}};
    for (auto& s : inputs_) {
      items.push_back({s->handle(), 0, ZMQ_POLLIN, 0});
    }
    zmq::poll(items.data(), items.size(), std::chrono::milliseconds(backlog.empty() ? -1 : 20));
    PollOnce(std::chrono::milliseconds(0));
    // Input 0 feeds the workers; a worker node has one input, the others are dropped. A send
    // never blocks (PUSH waits while no worker is connected): what cannot go now waits here,
    // and heartbeats go on meanwhile.
    for (NodeMessage& m : pending_[0]) {
      backlog.push_back(std::move(m));
    }
    for (auto& q : pending_) {
      q.clear();
    }
    while (!backlog.empty()) {
      NodeMessage& m = backlog.front();
      constexpr auto kNow = zmq::send_flags::sndmore | zmq::send_flags::dontwait;
      if (!to_workers.send(zmq::buffer(m.id), kNow)) {
        break;
      }
      to_workers.send(zmq::buffer(m.body), zmq::send_flags::none);
      backlog.pop_front();
    }
  }
}

}  // namespace berth
