// libFuzzer target for the request bodies of the API and its dialects (servicectl, Orchest,
// Neptune): the first byte picks an endpoint, the rest is its body, sent with the admin
// token to the production handlers over SQLite :memory: and a FakeLauncher (as api_test).
// Besides not crashing: no body is a 500 (a body the daemon cannot take is the client's
// error, said as a 4xx), and every JSON answer is JSON.
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include <boost/json.hpp>

#include "api/api.h"
#include "common/crypto.h"
#include "common/fake_clock.h"
#include "runtime/fake_launcher.h"

namespace json = boost::json;

namespace {

void Check(bool ok, const char* what, std::string_view detail) {
  if (!ok) {
    std::fprintf(stderr, "dialect_fuzz: %s: %.*s\n", what, static_cast<int>(detail.size()),
                     detail.data());
    std::abort();
  }
}

struct Endpoint {
  const char* method;
  const char* target;
};

// Endpoints that read a body. The pipeline, recipe and service names are fixed so that the
// update paths (PUT of an existing service, a run of an existing pipeline) are reached too.
constexpr Endpoint kEndpoints[] = {
    {"PUT", "/servicectl-1/services/svc?project=default"},
    {"POST", "/servicectl-1/services?project=default"},
    {"POST", "/orchest/api/sessions"},
    {"POST", "/orchest/api/runs"},
    {"POST", "/orchest/api/jobs"},
    {"POST", "/neptune/services/construct"},
    {"POST", "/neptune/services/start"},
    {"POST", "/neptune/services/destruct"},
    {"POST", "/api/v1/recipes"},
    {"POST", "/api/v1/recipes/fuzz/start"},
    {"PUT", "/api/v1/nodes/fuzz"},
    {"PUT", "/api/v1/services/svc?project=default"},
    {"POST", "/api/v1/services?project=default"},
    {"POST", "/api/v1/templates/redis/services?project=default"},
    {"POST", "/api/v1/services/svc/parameters/p?project=default"},
    {"POST", "/api/v1/services/svc/versions?project=default"},
    {"PUT", "/api/v1/projects/default/env"},
    {"POST", "/api/v1/projects"},
    {"POST", "/api/v1/tokens"},
    {"POST", "/api/v1/notifications?project=default"},
    {"POST", "/api/v1/pipelines?project=default"},
    {"POST", "/api/v1/pipelines/fuzz/runs?project=default"},
    {"POST", "/api/v1/runs?project=default"},
    {"POST", "/api/v1/jobs?project=default"},
    {"POST", "/api/v1/sessions?project=default"},
};

class World {
 public:
  World() {
    auto opened = berth::OpenStore({"sqlite::memory:"});
    Check(opened.ok(), "setup", "store");
    store_ = std::move(*opened);
    Check(store_->CreateProject("default").ok(), "setup", "project");
    auto t = berth::GenerateToken();
    Check(t.ok() && store_->CreateToken(t->id, t->hash, std::nullopt, "").ok(), "setup", "token");
    admin_ = t->secret;
    char tmpl[] = "/tmp/berth-dialect-fuzz-XXXXXX";
    data_dir_ = mkdtemp(tmpl);
    berth::ControllerOptions copts;
    copts.data_dir = data_dir_;
    copts.memory_capacity_mb = 1 << 20;
    controller_ = std::make_unique<berth::Controller>(*store_, launcher_, clock_, copts);
    berth::RunEngineOptions ropts;
    ropts.runs_dir = data_dir_ + "/runs";
    ropts.threads = false;
    runs_ = std::make_unique<berth::RunEngine>(
        *store_, controller_->runtime(), clock_,
        [this](const std::string& project) { return controller_->TaskContextOf(project); },
        ropts);
    berth::RecipeEngineOptions reopts;
    reopts.data_dir = data_dir_;
    reopts.node_program = "/bin/true";
    reopts.threads = false;  // the fuzzer drives the loop: a start waits for nothing
    recipes_ = std::make_unique<berth::RecipeEngine>(*store_, controller_->runtime(), clock_,
                                                     reopts);
    controller_->SetTaskListener([this](const berth::TaskStatus& s) {
      runs_->OnTaskEnded(s);
      recipes_->OnTaskEnded(s);
    });
    Check(controller_->Start().ok() && runs_->Start().ok() && recipes_->Start().ok(), "setup",
          "start");
    berth::JobsOptions jopts;
    jopts.threads = false;
    jobs_ = std::make_unique<berth::Jobs>(*store_, *runs_, jopts);
    api_ = berth::MakeApiHandler(*store_, berth::ApiOptions{"https://berth.example"},
                                 *controller_, *runs_, *jobs_, *recipes_);
    // What the update paths need to exist.
    Call("PUT", "/api/v1/services/svc?project=default", R"({"command": ["/bin/true"]})");
    Call("POST", "/api/v1/pipelines?project=default",
         R"({"name": "fuzz", "steps": [{"name": "a", "command": "true"}]})");
    Call("POST", "/api/v1/recipes",
         R"({"name": "fuzz", "graph": {"nodes": ["ping"], "edges": []}, "args": [{}]})");
  }

  berth::HttpResponse Call(std::string method, std::string target, std::string body) {
    berth::HttpRequest req;
    req.method = std::move(method);
    req.target = std::move(target);
    Check(berth::ParseTarget(req.target, req), "setup", req.target);
    req.body = std::move(body);
    req.headers.emplace_back("authorization", "Bearer " + admin_);
    req.headers.emplace_back("content-type", "application/json");
    req.peer = "127.0.0.1:1";
    return api_->Handle(req);
  }

 private:
  std::unique_ptr<berth::Store> store_;
  std::string data_dir_;
  berth::FakeLauncher launcher_;
  berth::FakeClock clock_;
  std::unique_ptr<berth::Controller> controller_;
  std::unique_ptr<berth::RunEngine> runs_;
  std::unique_ptr<berth::Jobs> jobs_;
  std::unique_ptr<berth::RecipeEngine> recipes_;
  std::unique_ptr<berth::HttpHandler> api_;
  std::string admin_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World* world = new World();  // one daemon for the whole run, as a real one serves
  if (size == 0) {
    return 0;
  }
  const Endpoint& e = kEndpoints[data[0] % std::size(kEndpoints)];
  std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  berth::HttpResponse r = world->Call(e.method, e.target, body);
  Check(r.status < 500 || r.status == 503 || r.status == 507, "a body answered with a 5xx",
        r.body);
  if (r.content_type == "application/json" && !r.body.empty()) {
    boost::system::error_code ec;
    (void)json::parse(r.body, ec);
    Check(!ec, "a JSON answer that is not JSON", r.body);
  }
  return 0;
}
