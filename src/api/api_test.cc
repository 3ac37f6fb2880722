// The API handlers called directly with request values: no sockets (Beast's pure
// handle_request style), over the production control path on SQLite :memory: and a
// FakeLauncher. The integration suites drive the same paths over HTTP with real processes.
#include "api/api.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "api/auth.h"
#include "common/fake_clock.h"
#include "runtime/fake_launcher.h"

#include <cctype>
#include <filesystem>
#include <set>
#include <unistd.h>

namespace berth {
namespace {

namespace json = boost::json;

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = OpenStore({"sqlite::memory:"});
    ASSERT_TRUE(s.ok());
    store_ = std::move(*s);
    ASSERT_TRUE(store_->CreateProject("default").ok());
    ASSERT_TRUE(store_->CreateProject("other").ok());
    admin_ = MakeToken(std::nullopt);
    other_ = MakeToken(std::string("other"));
    char tmpl[] = "/tmp/berth-api-test-XXXXXX";
    data_dir_ = mkdtemp(tmpl);
    ControllerOptions copts;
    copts.data_dir = data_dir_;
    copts.memory_capacity_mb = 1000;
    controller_ = std::make_unique<Controller>(*store_, launcher_, clock_, copts);
    RunEngineOptions ropts;
    ropts.runs_dir = data_dir_ + "/runs";
    ropts.threads = false;
    runs_ = std::make_unique<RunEngine>(
        *store_, controller_->runtime(), clock_,
        [this](const std::string& project) { return controller_->TaskContextOf(project); },
        ropts);
    RecipeEngineOptions reopts;
    reopts.data_dir = data_dir_;
    reopts.node_program = "/bin/true";
    recipes_ = std::make_unique<RecipeEngine>(*store_, controller_->runtime(), clock_, reopts);
    controller_->SetTaskListener([this](const TaskStatus& t) {
      runs_->OnTaskEnded(t);
      recipes_->OnTaskEnded(t);
    });
    ASSERT_TRUE(controller_->Start().ok());
    ASSERT_TRUE(runs_->Start().ok());
    ASSERT_TRUE(recipes_->Start().ok());
    JobsOptions jopts;
    jopts.threads = false;
    jobs_ = std::make_unique<Jobs>(*store_, *runs_, jopts);
    api_ = MakeApiHandler(*store_, ApiOptions{"https://berth.example"}, *controller_, *runs_,
                          *jobs_, *recipes_);
  }
  void TearDown() override {
    api_.reset();
    jobs_.reset();
    recipes_.reset();
    runs_.reset();
    controller_.reset();
    std::filesystem::remove_all(data_dir_);
  }

  std::string MakeToken(std::optional<std::string> project) {
    auto t = GenerateToken();
    EXPECT_TRUE(t.ok());
    EXPECT_TRUE(store_->CreateToken(t->id, t->hash, project, "").ok());
    return t->secret;
  }

  HttpResponse Call(std::string method, std::string target, std::string body = "",
                    std::string token = "", bool servicectl = false) {
    HttpRequest req;
    req.method = std::move(method);
    req.target = std::move(target);
    EXPECT_TRUE(ParseTarget(req.target, req));
    req.body = std::move(body);
    if (!token.empty()) {
      req.headers.emplace_back(servicectl ? "x-auth-token" : "authorization",
                               servicectl ? token : "Bearer " + token);
    }
    return api_->Handle(req);
  }

  static json::value Body(const HttpResponse& r) { return json::parse(r.body); }

  static std::string ErrorMessage(const HttpResponse& r) {
    return std::string(Body(r).at("error").at("message").as_string());
  }

  std::unique_ptr<Store> store_;
  std::string data_dir_;
  FakeLauncher launcher_;
  FakeClock clock_;
  std::unique_ptr<Controller> controller_;
  std::unique_ptr<RunEngine> runs_;
  std::unique_ptr<Jobs> jobs_;
  std::unique_ptr<RecipeEngine> recipes_;
  std::unique_ptr<HttpHandler> api_;
  std::string admin_;
  std::string other_;
};

// The access matrix (tests/integration/test_security.py) is generated from the OpenAPI
// document: a route missing from it would escape the matrix, a documented operation without a
// route would be a promise berth does not keep.
TEST_F(ApiTest, EveryRouteIsInTheOpenApiDocumentAndEveryOperationHasARoute) {
  HttpResponse doc = Call("GET", "/api/v1/openapi.json");
  ASSERT_EQ(doc.status, 200);
  const json::value spec = Body(doc);
  const json::object& paths = spec.at("paths").as_object();
  // "{name}" and "{id}" are the same segment to the router.
  auto shape = [](std::string_view pattern) {
    std::string out;
    for (std::string_view seg : SplitPath(pattern)) {
      out += '/';
      out += seg.starts_with('{') ? std::string_view("{}") : seg;
    }
    return out;
  };
  auto lower = [](std::string m) {
    for (char& c : m) {
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return m;
  };
  std::set<std::string> documented;
  for (const auto& [path, ops] : paths) {
    for (const auto& [method, op] : ops.as_object()) {
      if (method == "parameters") {
        continue;
      }
      documented.insert(std::string(method) + " " + shape(path));
      if (const json::value* access = op.as_object().if_contains("x-berth-access")) {
        EXPECT_EQ(*access, "admin") << method << " " << path;
      }
    }
  }
  std::set<std::string> routed;
  for (const auto& r : ApiRoutes(*api_)) {
    std::string key = lower(r.method) + " " + shape(r.pattern);
    routed.insert(key);
    EXPECT_TRUE(documented.contains(key))
        << r.method << " " << r.pattern << " is served but not in src/api/docs/openapi.json";
  }
  for (const auto& key : documented) {
    EXPECT_TRUE(routed.contains(key)) << key << " is documented but no route serves it";
  }
  EXPECT_GT(routed.size(), 100u);
}

TEST_F(ApiTest, MissingUnknownAndRevokedTokensAre401) {
  EXPECT_EQ(Call("GET", "/api/v1/services").status, 401);
  EXPECT_EQ(Call("GET", "/api/v1/services", "", "berth_nope").status, 401);
  auto created = Call("POST", "/api/v1/tokens", R"({"project": "default"})", admin_);
  ASSERT_EQ(created.status, 201);
  std::string token(Body(created).at("token").as_string());
  std::string id(Body(created).at("id").as_string());
  EXPECT_EQ(Call("GET", "/api/v1/services", "", token).status, 200);
  EXPECT_EQ(Call("DELETE", "/api/v1/tokens/" + id, "", admin_).status, 200);
  auto after = Call("GET", "/api/v1/services", "", token);
  EXPECT_EQ(after.status, 401);
  EXPECT_NE(ErrorMessage(after).find("revoked"), std::string::npos);
}

TEST_F(ApiTest, ProjectTokenSeesOnlyItsProject) {
  ASSERT_EQ(Call("POST", "/api/v1/services", R"({"name": "secret"})", admin_).status, 201);
  EXPECT_EQ(Call("GET", "/api/v1/services/secret", "", other_).status, 404);
  EXPECT_EQ(Call("GET", "/api/v1/services?project=default", "", other_).status, 403);
  EXPECT_EQ(Call("DELETE", "/api/v1/services/secret?project=default", "", other_).status, 403);
  auto list = Call("GET", "/api/v1/services", "", other_);
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(Body(list).at("project"), "other");
  EXPECT_TRUE(Body(list).at("services").as_array().empty());
  EXPECT_EQ(Call("POST", "/api/v1/projects", R"({"name": "x"})", other_).status, 403);
  EXPECT_EQ(Call("POST", "/api/v1/tokens", R"({"project": "default"})", other_).status, 403);
  // The service is still there for its owner.
  EXPECT_EQ(Call("GET", "/api/v1/services/secret", "", admin_).status, 200);
}

TEST_F(ApiTest, BadDefinitionChangesNothing) {
  ASSERT_EQ(Call("POST", "/api/v1/services", R"({"name": "hello"})", admin_).status, 201);
  // A definition naming a tag never pushed is refused with the tags that were.
  auto unpushed = Call("PUT", "/api/v1/services/hello", R"({"container-tag": "v1"})", admin_);
  EXPECT_EQ(unpushed.status, 400);
  EXPECT_EQ(ErrorMessage(unpushed),
            "container-tag: no bundle tagged 'v1' was pushed to 'hello' (none was pushed yet); "
            "push it with: berth push hello DIR --tag v1");
  for (const char* tag : {"v1", "v2"}) {
    ASSERT_TRUE(store_->PutArtifact("default", "hello", tag, "sha256:00", 1).ok());
  }
  auto other_tag = Call("PUT", "/api/v1/services/hello", R"({"container-tag": "v3"})", admin_);
  EXPECT_EQ(other_tag.status, 400);
  EXPECT_NE(ErrorMessage(other_tag).find("(pushed: v"), std::string::npos)
      << ErrorMessage(other_tag);
  ASSERT_EQ(Call("PUT", "/api/v1/services/hello", R"({"container-tag": "v1"})", admin_).status,
            200);
  auto bad = Call("PUT", "/api/v1/services/hello",
                  R"({"container-tag": "v2", "container-port": 70000})", admin_);
  EXPECT_EQ(bad.status, 400);
  EXPECT_TRUE(ErrorMessage(bad).starts_with("container-port:"));
  auto malformed = Call("PUT", "/api/v1/services/hello", "{\"container-tag\": ", admin_);
  EXPECT_EQ(malformed.status, 400);
  EXPECT_NE(ErrorMessage(malformed).find("malformed JSON"), std::string::npos);
  auto svc = Body(Call("GET", "/api/v1/services/hello", "", admin_));
  EXPECT_EQ(svc.at("revision"), 1);
  EXPECT_EQ(svc.at("definition").at("container-tag"), "v1");
}

TEST_F(ApiTest, WrongMethodIs405WithAllow) {
  auto r = Call("PATCH", "/api/v1/services/x", "", admin_);
  EXPECT_EQ(r.status, 405);
  bool has_allow = false;
  for (const auto& [k, v] : r.headers) {
    if (k == "Allow") {
      has_allow = true;
      EXPECT_EQ(v, "GET, PUT, DELETE");
    }
  }
  EXPECT_TRUE(has_allow);
}

TEST_F(ApiTest, ServicectlDialectUsesItsOwnErrorShapeAndCodes) {
  auto missing = Call("GET", "/servicectl-1/services");
  EXPECT_EQ(missing.status, 400);
  EXPECT_TRUE(Body(missing).as_object().contains("Error"));
  EXPECT_EQ(Call("GET", "/servicectl-1/services", "", "berth_bad", true).status, 403);

  auto created =
      Call("POST", "/servicectl-1/services", R"({"name": "svc"})", other_, true);
  ASSERT_EQ(created.status, 201);
  auto links = Body(created).at("links").as_array();
  EXPECT_EQ(links[1].at("href"), "https://berth.example/other-svc");
  EXPECT_EQ(Call("POST", "/servicectl-1/services", R"({"name": "svc"})", other_, true).status,
            405);
  auto bad = Call("POST", "/servicectl-1/services", R"({"name": "Bad"})", other_, true);
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(std::string(Body(bad).at("Error").as_string()).find("lowercase"), std::string::npos);
  EXPECT_EQ(Call("GET", "/servicectl-1/services/ghost", "", other_, true).status, 404);
}

TEST_F(ApiTest, ServicectlContainerPortIsFixedAfterFirstUpdate) {
  ASSERT_EQ(Call("POST", "/servicectl-1/services", R"({"name": "svc"})", admin_, true).status,
            201);
  ASSERT_TRUE(store_->PutArtifact("default", "svc", "latest", "sha256:00", 1).ok());
  std::string def = R"({"container-tag": "latest", "memory-reservation": 100,
                        "memory-limit": 150, "container-port": 80, "environment": []})";
  auto first = Call("PUT", "/servicectl-1/services/svc", def, admin_, true);
  ASSERT_EQ(first.status, 200);
  EXPECT_TRUE(Body(first).as_object().contains("Success"));
  std::string moved = R"({"container-tag": "latest", "memory-reservation": 100,
                          "memory-limit": 150, "container-port": 8080, "environment": []})";
  auto second = Call("PUT", "/servicectl-1/services/svc", moved, admin_, true);
  EXPECT_EQ(second.status, 400);
  EXPECT_NE(std::string(Body(second).at("Error").as_string()).find("container-port"),
            std::string::npos);
}

TEST_F(ApiTest, ServicectlHealthCheckFromCreateShowsInStatus) {
  ASSERT_EQ(Call("POST", "/servicectl-1/services",
                 R"({"name": "svc", "health_check": {"rel_path": "default-svc/MyService?wsdl",
                     "status_codes": "200", "interval": 60}})",
                 admin_, true)
                .status,
            201);
  auto status = Body(Call("GET", "/servicectl-1/services/svc", "", admin_, true)).at("status");
  EXPECT_EQ(status.at("service_status"), "unknown");
  EXPECT_EQ(status.at("target_health").at("interval"), 60);
  EXPECT_EQ(status.at("target_health").at("health_check_path"),
            "https://berth.example/default-svc/MyService?wsdl");
}

}  // namespace
}  // namespace berth
