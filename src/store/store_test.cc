// The store contract, run against every backend this build has (today SQLite in memory and on
// disk), plus file-specific behaviour: reopen, migrations, a newer schema.
#include "store/store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

namespace berth {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/berth-store-test-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class StoreContractTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string url = GetParam() == "memory" ? "sqlite::memory:"
                                             : "sqlite://" + dir_.path() + "/state.db";
    auto s = OpenStore({url});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    ASSERT_TRUE(store_->CreateProject("default").ok());
  }
  TempDir dir_;
  std::unique_ptr<Store> store_;
};

TEST_P(StoreContractTest, ProjectsAreUniqueAndListedByName) {
  ASSERT_TRUE(store_->CreateProject("beta").ok());
  auto dup = store_->CreateProject("beta");
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.status().code(), StatusCode::kAlreadyExists);
  auto list = store_->ListProjects();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name, "beta");
  EXPECT_EQ((*list)[1].name, "default");
  EXPECT_EQ(store_->GetProject("nope").status().code(), StatusCode::kNotFound);
}

// A project's id is what its instances' uid is derived from: distinct, stable, and the same
// from every read.
TEST_P(StoreContractTest, ProjectIdsAreDistinctAndStable) {
  auto created = store_->CreateProject("gamma");
  ASSERT_TRUE(created.ok());
  auto got = store_->GetProject("gamma");
  auto def = store_->GetProject("default");
  ASSERT_TRUE(got.ok() && def.ok());
  EXPECT_GT(created->id, 0);
  EXPECT_EQ(got->id, created->id);
  EXPECT_NE(def->id, got->id);
  auto list = store_->ListProjects();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].id, def->id);
  EXPECT_EQ((*list)[1].id, got->id);
}

TEST_P(StoreContractTest, TokensAreFoundByHashAndRevoked) {
  auto t = store_->CreateToken("tk_1", "hash1", std::string("default"), "ci");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_TRUE(store_->CreateToken("tk_admin", "hash2", std::nullopt, "").ok());
  auto found = store_->FindTokenByHash("hash1");
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(found->id, "tk_1");
  EXPECT_EQ(found->project, "default");
  EXPECT_FALSE(found->revoked_at.has_value());
  EXPECT_EQ(store_->FindTokenByHash("zzz").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(*store_->CountActiveAdminTokens(), 1);

  ASSERT_TRUE(store_->RevokeToken("tk_1").ok());
  ASSERT_TRUE(store_->RevokeToken("tk_1").ok());  // idempotent
  EXPECT_TRUE(store_->FindTokenByHash("hash1")->revoked_at.has_value());
  EXPECT_EQ(store_->RevokeToken("tk_none").code(), StatusCode::kNotFound);

  auto project_tokens = store_->ListTokens(std::string("default"));
  ASSERT_TRUE(project_tokens.ok());
  ASSERT_EQ(project_tokens->size(), 1u);
  EXPECT_EQ(store_->ListTokens(std::nullopt)->size(), 2u);
  EXPECT_EQ(store_->CreateToken("tk_x", "h3", std::string("ghost"), "").status().code(),
            StatusCode::kNotFound);
}

TEST_P(StoreContractTest, DefinitionsBecomeNumberedRevisions) {
  ASSERT_TRUE(store_->CreateService("default", "hello").ok());
  auto first = store_->GetService("default", "hello");
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->revision, 0);
  EXPECT_TRUE(first->definition_json.empty());

  ASSERT_TRUE(store_->PutDefinition("default", "hello", R"({"v":1})").ok());
  auto second = store_->PutDefinition("default", "hello", R"({"v":2})");
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->revision, 2);
  EXPECT_EQ(second->definition_json, R"({"v":2})");
  auto revs = store_->ListRevisions("default", "hello");
  ASSERT_TRUE(revs.ok());
  ASSERT_EQ(revs->size(), 2u);
  EXPECT_EQ((*revs)[0].definition_json, R"({"v":1})");

  EXPECT_EQ(store_->PutDefinition("default", "ghost", "{}").status().code(),
            StatusCode::kNotFound);
}

TEST_P(StoreContractTest, ServicesAreScopedToTheirProject) {
  ASSERT_TRUE(store_->CreateProject("other").ok());
  ASSERT_TRUE(store_->CreateService("default", "api").ok());
  ASSERT_TRUE(store_->CreateService("other", "api").ok());  // same name, other project
  EXPECT_EQ(store_->CreateService("default", "api").status().code(),
            StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->CreateService("ghost", "api").status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(store_->DeleteService("other", "api").ok());
  EXPECT_TRUE(store_->GetService("default", "api").ok());
  EXPECT_EQ(store_->GetService("other", "api").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->DeleteService("other", "api").code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->ListServices("other")->size(), 0u);
  EXPECT_EQ(*store_->CountServices("other", 100), 0);
  EXPECT_EQ(*store_->CountServices("default", 100), 1);
  EXPECT_EQ(store_->CountServices("ghost", 100).status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(store_->CreateService("default", "two").ok());
  ASSERT_TRUE(store_->CreateService("default", "three").ok());
  EXPECT_EQ(*store_->CountServices("default", 2), 2) << "counts no further than asked";
  EXPECT_EQ(*store_->CountServices("default", 3), 3);
}

TEST_P(StoreContractTest, AFailedAdmissionStoresNothing) {
  ASSERT_TRUE(store_->CreateService("default", "a").ok());
  ASSERT_TRUE(store_->CreateService("default", "b").ok());
  ASSERT_TRUE(store_->CreateService("default", "stopped").ok());
  ASSERT_TRUE(store_->PutDefinition("default", "a", R"({"v":1})", 300).ok());
  ASSERT_TRUE(store_->PutDefinition("default", "stopped", R"({"v":1})", 900).ok());
  ASSERT_TRUE(store_->SetDesiredRunning("default", "stopped", false).ok());
  std::vector<uint64_t> seen;
  auto refused = store_->PutDefinition("default", "b", R"({"v":2})", 40, [&](uint64_t others) {
    seen.push_back(others);
    return Status::FailedPrecondition("does not fit");
  });
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(seen, std::vector<uint64_t>{300})
      << "admission sees what the services meant to run reserve";
  EXPECT_EQ(store_->GetService("default", "b")->revision, 0);
  EXPECT_TRUE(store_->ListRevisions("default", "b")->empty());
  EXPECT_EQ(*store_->ReservedByOthers("default", "new"), 300u) << "a refusal reserves nothing";
  auto admitted = store_->PutDefinition("default", "b", R"({"v":2})", 40,
                                        [](uint64_t) { return Status::Ok(); });
  ASSERT_TRUE(admitted.ok());
  EXPECT_EQ(admitted->revision, 1);
  EXPECT_EQ(*store_->ReservedByOthers("default", "new"), 340u);
  EXPECT_EQ(*store_->ReservedByOthers("default", "b"), 300u);
  ASSERT_TRUE(store_->SetDesiredRunning("default", "a", false).ok());
  EXPECT_EQ(*store_->ReservedByOthers("default", "new"), 40u);
  ASSERT_TRUE(store_->DeleteService("default", "b").ok());
  EXPECT_EQ(*store_->ReservedByOthers("default", "new"), 0u);
}

TEST_P(StoreContractTest, DeleteRemovesRevisions) {
  ASSERT_TRUE(store_->CreateService("default", "svc", R"({"health-check":{}})").ok());
  ASSERT_TRUE(store_->PutDefinition("default", "svc", "{}").ok());
  ASSERT_TRUE(store_->DeleteService("default", "svc").ok());
  ASSERT_TRUE(store_->CreateService("default", "svc").ok());
  auto again = store_->GetService("default", "svc");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->revision, 0);
  EXPECT_EQ(again->defaults_json, "{}");
  EXPECT_EQ(store_->ListRevisions("default", "svc")->size(), 0u);
}

TEST_P(StoreContractTest, ArtifactTagsPointAtDigestsAndMove) {
  ASSERT_TRUE(store_->CreateService("default", "svc").ok());
  ASSERT_TRUE(store_->PutArtifact("default", "svc", "latest", "sha256:aa", 10).ok());
  ASSERT_TRUE(store_->PutArtifact("default", "svc", "v1", "sha256:aa", 10).ok());
  ASSERT_TRUE(store_->PutArtifact("default", "svc", "latest", "sha256:bb", 20).ok());
  auto list = store_->ListArtifacts("default", "svc");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  for (const auto& a : *list) {
    EXPECT_EQ(a.digest, a.tag == "latest" ? "sha256:bb" : "sha256:aa");
  }
  EXPECT_TRUE(*store_->DigestInUse("sha256:aa"));
  ASSERT_TRUE(store_->DeleteService("default", "svc").ok());
  EXPECT_FALSE(*store_->DigestInUse("sha256:aa"));
  EXPECT_EQ(store_->PutArtifact("default", "svc", "x", "d", 1).status().code(),
            StatusCode::kNotFound);
}

TEST_P(StoreContractTest, EventsAreNewestFirstAndCapped) {
  ASSERT_TRUE(store_->CreateService("default", "svc").ok());
  for (int i = 0; i < 250; ++i) {
    ASSERT_TRUE(store_->AddEvent("default", "svc", "test", "event " + std::to_string(i)).ok());
  }
  auto events = store_->ListEvents("default", "svc", 1000);
  ASSERT_TRUE(events.ok());
  EXPECT_EQ(events->size(), 200u);
  EXPECT_EQ(events->front().message, "event 249");
  EXPECT_EQ((*store_->ListEvents("default", "svc", 2)).size(), 2u);
}

TEST_P(StoreContractTest, DesiredStateAndRolloutResultPersist) {
  ASSERT_TRUE(store_->CreateService("default", "svc").ok());
  EXPECT_TRUE(store_->GetService("default", "svc")->desired_running);
  ASSERT_TRUE(store_->SetDesiredRunning("default", "svc", false).ok());
  ASSERT_TRUE(store_->SetRolloutResult("default", "svc", 3, 4).ok());
  auto svc = store_->GetService("default", "svc");
  EXPECT_FALSE(svc->desired_running);
  EXPECT_EQ(svc->active_revision, 3);
  EXPECT_EQ(svc->failed_revision, 4);
  auto all = store_->ListAllServices();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].project, "default");
  EXPECT_EQ((*all)[0].name, "svc");
}

TEST_P(StoreContractTest, VersionsAreImmutableAndTheFirstIsMain) {
  ASSERT_TRUE(store_->CreateService("default", "hello").ok());
  auto v1 = store_->AddVersion("default", "hello", "1.0.0", R"({"container-tag":"1.0.0"})");
  ASSERT_TRUE(v1.ok()) << v1.status().ToString();
  EXPECT_EQ(v1->revision, 1);
  auto dup = store_->AddVersion("default", "hello", "1.0.0", "{}");
  EXPECT_EQ(dup.status().code(), StatusCode::kAlreadyExists);
  auto v2 = store_->AddVersion("default", "hello", "1.1.0", R"({"container-tag":"1.1.0"})");
  ASSERT_TRUE(v2.ok());
  EXPECT_EQ(v2->revision, 2);
  auto svc = store_->GetService("default", "hello");
  ASSERT_TRUE(svc.ok());
  EXPECT_EQ(svc->main_version, "1.0.0");
  EXPECT_EQ(svc->revision, 2);
  EXPECT_EQ(store_->SetMainVersion("default", "hello", "2.0.0").code(), StatusCode::kNotFound);
  ASSERT_TRUE(store_->SetMainVersion("default", "hello", "1.1.0").ok());
  EXPECT_EQ(store_->GetService("default", "hello")->main_version, "1.1.0");
  ASSERT_TRUE(store_->RemoveVersion("default", "hello", "1.0.0").ok());
  EXPECT_EQ(store_->RemoveVersion("default", "hello", "1.0.0").code(), StatusCode::kNotFound);
  auto list = store_->ListVersions("default", "hello");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].version, "1.1.0");
  EXPECT_TRUE(store_->GetService("default", "hello")->desired_running);
  ASSERT_TRUE(store_->RemoveVersion("default", "hello", "1.1.0").ok());
  EXPECT_EQ(store_->GetService("default", "hello")->main_version, "");
  EXPECT_FALSE(store_->GetService("default", "hello")->desired_running) << "the last one went";
  ASSERT_TRUE(store_->AddVersion("default", "hello", "2.0.0", "{}").ok());
  EXPECT_TRUE(store_->GetService("default", "hello")->desired_running);
  EXPECT_EQ(store_->GetService("default", "hello")->main_version, "2.0.0");
  // The revision history keeps them all.
  EXPECT_EQ(store_->ListRevisions("default", "hello")->size(), 3u);
}

TEST_P(StoreContractTest, ParametersAreUpserted) {
  ASSERT_TRUE(store_->CreateService("default", "hello").ok());
  ASSERT_TRUE(store_->PutParameter("default", "hello", "greeting_phrase", "\"Hi\"").ok());
  ASSERT_TRUE(store_->PutParameter("default", "hello", "greeting_phrase", "\"Bonjour\"").ok());
  ASSERT_TRUE(store_->PutParameter("default", "hello", "n", "3").ok());
  auto list = store_->ListParameters("default", "hello");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0], std::make_pair(std::string("greeting_phrase"), std::string("\"Bonjour\"")));
  EXPECT_EQ(store_->PutParameter("default", "nope", "x", "1").code(), StatusCode::kNotFound);
}

TEST_P(StoreContractTest, IdenticalNotificationsAreCounted) {
  NotificationRecord n;
  n.project = "default";
  n.service = "hello";
  n.version = "1.0.0";
  n.severity = "WARNING";
  n.message = "World";
  auto a = store_->AddNotification(n);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->count, 1);
  auto b = store_->AddNotification(n);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->id, a->id);
  EXPECT_EQ(b->count, 2);
  EXPECT_GE(b->last_at, a->first_at);
  n.severity = "CRITICAL";
  auto c = store_->AddNotification(n);
  ASSERT_TRUE(c.ok());
  EXPECT_NE(c->id, a->id);
  auto list = store_->ListNotifications("default");
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 2u);
  ASSERT_TRUE(store_->CreateProject("other").ok());
  EXPECT_EQ(store_->DeleteNotification("other", a->id).code(), StatusCode::kNotFound);
  ASSERT_TRUE(store_->DeleteNotification("default", a->id).ok());
  EXPECT_EQ(store_->ListNotifications("default")->size(), 1u);
  ASSERT_TRUE(store_->DeleteNotifications("default").ok());
  EXPECT_TRUE(store_->ListNotifications("default")->empty());
  n.project = "missing";
  EXPECT_EQ(store_->AddNotification(n).status().code(), StatusCode::kNotFound);
}

TEST_P(StoreContractTest, ProjectEnvIsReplacedWhole) {
  ASSERT_TRUE(store_->SetProjectEnv("default", {{"A", "1"}, {"B", "2"}}).ok());
  ASSERT_TRUE(store_->SetProjectEnv("default", {{"B", "3"}}).ok());
  auto env = store_->GetProjectEnv("default");
  ASSERT_TRUE(env.ok());
  ASSERT_EQ(env->size(), 1u);
  EXPECT_EQ((*env)[0], std::make_pair(std::string("B"), std::string("3")));
  EXPECT_EQ(store_->SetProjectEnv("nope", {}).code(), StatusCode::kNotFound);
}

TEST_P(StoreContractTest, SessionServicesAreRecordedOnceAndForgottenTogether) {
  ASSERT_TRUE(store_->CreateProject("other").ok());
  ASSERT_TRUE(store_->AddSessionService("default", "redis").ok());
  ASSERT_TRUE(store_->AddSessionService("default", "redis").ok());  // twice: once
  ASSERT_TRUE(store_->AddSessionService("default", "postgres").ok());
  ASSERT_TRUE(store_->AddSessionService("other", "redis").ok());
  EXPECT_EQ(store_->SessionServices("default").value(),
            (std::vector<std::string>{"postgres", "redis"}));
  ASSERT_TRUE(store_->ClearSessionServices("default").ok());
  EXPECT_TRUE(store_->SessionServices("default").value().empty());
  EXPECT_EQ(store_->SessionServices("other").value(), std::vector<std::string>{"redis"});
  EXPECT_EQ(store_->AddSessionService("nosuch", "x").code(), StatusCode::kNotFound);
}

TEST_P(StoreContractTest, OneSessionPerPipeline) {
  ASSERT_TRUE(store_->CreateSession("default", "etl").ok());
  EXPECT_EQ(store_->CreateSession("default", "etl").status().code(), StatusCode::kAlreadyExists);
  ASSERT_TRUE(store_->CreateSession("default", "train").ok());
  ASSERT_TRUE(store_->SetSessionState("default", "etl", "stopping").ok());
  auto list = store_->ListSessions("default");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].state, "stopping");
  ASSERT_TRUE(store_->DeleteSession("default", "etl").ok());
  EXPECT_EQ(store_->DeleteSession("default", "etl").code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->SetSessionState("default", "etl", "x").code(), StatusCode::kNotFound);
}

TEST_P(StoreContractTest, RecipesAreUniqueByNameAndUrlAndKeepTheirStartedFlag) {
  RecipeRecord r{"default", "ping", "ping", R"({"name":"ping"})", false, "{}", 0, 0};
  auto made = store_->CreateRecipe(r);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  EXPECT_GT(made->created_at, 0);
  EXPECT_EQ(store_->CreateRecipe(r).status().code(), StatusCode::kAlreadyExists);
  RecipeRecord same_url{"default", "other", "ping", "{}", false, "{}", 0, 0};
  auto dup_url = store_->CreateRecipe(same_url);
  EXPECT_EQ(dup_url.status().code(), StatusCode::kAlreadyExists);
  EXPECT_NE(dup_url.status().message().find("url"), std::string::npos)
      << dup_url.status().message();
  // Another project may reuse both.
  ASSERT_TRUE(store_->CreateProject("beta").ok());
  RecipeRecord beta{"beta", "ping", "ping", "{}", false, "{}", 0, 0};
  ASSERT_TRUE(store_->CreateRecipe(beta).ok());

  ASSERT_TRUE(store_->SetRecipeStarted("default", "ping", true, R"({"ping":{"add":{"a":1}}})").ok());
  auto got = store_->GetRecipe("default", "ping");
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->started);
  EXPECT_EQ(got->overrides_json, R"({"ping":{"add":{"a":1}}})");
  EXPECT_EQ(got->definition_json, R"({"name":"ping"})");
  EXPECT_EQ(store_->SetRecipeStarted("default", "nope", true, "{}").code(), StatusCode::kNotFound);

  auto mine = store_->ListRecipes("default");
  ASSERT_TRUE(mine.ok());
  ASSERT_EQ(mine->size(), 1u);
  auto all = store_->ListRecipes("");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 2u);

  ASSERT_TRUE(store_->DeleteRecipe("default", "ping").ok());
  EXPECT_EQ(store_->GetRecipe("default", "ping").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->DeleteRecipe("default", "ping").code(), StatusCode::kNotFound);
  // Construct -> destruct -> construct of the same name works at once.
  EXPECT_TRUE(store_->CreateRecipe(r).ok());
}

TEST_P(StoreContractTest, NodeTypesAreReplacedByNameAndKeepTheirBundle) {
  NodeTypeRecord n{"default", "scale", "sha256:aaaa", 0};
  ASSERT_TRUE(store_->PutNodeType(n).ok());
  n.digest = "sha256:bbbb";
  ASSERT_TRUE(store_->PutNodeType(n).ok());
  auto list = store_->ListNodeTypes("default");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].digest, "sha256:bbbb");
  auto used = store_->DigestInUse("sha256:bbbb");
  ASSERT_TRUE(used.ok());
  EXPECT_TRUE(*used);
  ASSERT_TRUE(store_->DeleteNodeType("default", "scale").ok());
  EXPECT_EQ(store_->DeleteNodeType("default", "scale").code(), StatusCode::kNotFound);
  used = store_->DigestInUse("sha256:bbbb");
  ASSERT_TRUE(used.ok());
  EXPECT_FALSE(*used);
}

TEST_P(StoreContractTest, SettingsAreSetReadAndClearedByAnEmptyValue) {
  auto unset = store_->GetSetting("recipes.seeded:default");
  ASSERT_TRUE(unset.ok());
  EXPECT_EQ(*unset, "");
  ASSERT_TRUE(store_->SetSetting("recipes.seeded:default", "1").ok());
  EXPECT_EQ(*store_->GetSetting("recipes.seeded:default"), "1");
  ASSERT_TRUE(store_->SetSetting("recipes.seeded:default", "2").ok());
  EXPECT_EQ(*store_->GetSetting("recipes.seeded:default"), "2");
  ASSERT_TRUE(store_->SetSetting("recipes.seeded:default", "").ok());
  EXPECT_EQ(*store_->GetSetting("recipes.seeded:default"), "");
}

TEST_P(StoreContractTest, PipelinesAreReplacedByName) {
  PipelineRecord p{"default", "etl", "u1", "{}", "", 0, 0};
  auto first = store_->PutPipeline(p);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  p.definition_json = R"({"steps":{}})";
  ASSERT_TRUE(store_->PutPipeline(p).ok());
  auto list = store_->ListPipelines("default");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].definition_json, R"({"steps":{}})");
  EXPECT_EQ((*list)[0].created_at, first->created_at);
  EXPECT_EQ(store_->GetPipeline("default", "nope").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(store_->DeletePipeline("default", "etl").ok());
  EXPECT_EQ(store_->DeletePipeline("default", "etl").code(), StatusCode::kNotFound);
}

TEST_P(StoreContractTest, RunStatusesOnlyMoveForward) {
  RunRecord run;
  run.id = "r1";
  run.project = "default";
  run.pipeline = "etl";
  run.run_type = "full";
  run.kind = "interactive";
  run.created_at = 5;
  run.steps.resize(2);
  run.steps[0].step = "a";
  run.steps[1].step = "b";
  run.steps[1].position = 1;
  ASSERT_TRUE(store_->CreateRun(run).ok());
  EXPECT_EQ(store_->CreateRun(run).code(), StatusCode::kAlreadyExists);

  RunProgress p;
  p.run = "r1";
  p.status = "STARTED";
  p.started_at = 10;
  StepRunRecord a;
  a.step = "a";
  a.status = "STARTED";
  a.started_at = 10;
  p.steps = {a};
  ASSERT_TRUE(store_->SaveRunProgress(p).ok());
  a.status = "FAILURE";
  a.finished_at = 20;
  a.exit_code = 3;
  StepRunRecord b;
  b.step = "b";
  b.status = "ABORTED";
  b.finished_at = 20;
  b.message = "its parent a failed";
  RunProgress end;
  end.run = "r1";
  end.status = "FAILURE";
  end.finished_at = 20;
  end.steps = {a, b};
  ASSERT_TRUE(store_->SaveRunProgress(end).ok());
  // A late report cannot move an end state.
  a.status = "SUCCESS";
  RunProgress late;
  late.run = "r1";
  late.status = "SUCCESS";
  late.finished_at = 30;
  late.steps = {a};
  ASSERT_TRUE(store_->SaveRunProgress(late).ok());

  auto got = store_->GetRun("r1");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->status, "FAILURE");
  EXPECT_EQ(got->started_at, 10);
  EXPECT_EQ(got->finished_at, 20);
  ASSERT_EQ(got->steps.size(), 2u);
  EXPECT_EQ(got->steps[0].status, "FAILURE");
  EXPECT_EQ(got->steps[0].exit_code, 3);
  EXPECT_EQ(got->steps[1].status, "ABORTED");
  EXPECT_EQ(got->steps[1].message, "its parent a failed");

  Store::RunFilter open;
  open.unfinished_only = true;
  auto unfinished = store_->ListRuns(open);
  ASSERT_TRUE(unfinished.ok());
  EXPECT_TRUE(unfinished->empty());
  Store::RunFilter of_default;
  of_default.project = "default";
  auto all = store_->ListRuns(of_default);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].steps.size(), 2u);
  EXPECT_TRUE(store_->DeleteRun("r1").ok());
  EXPECT_EQ(store_->GetRun("r1").status().code(), StatusCode::kNotFound);
}

TEST_P(StoreContractTest, AnEndedJobNeverChanges) {
  JobRecord j;
  j.id = "j1";
  j.project = "default";
  j.name = "nightly";
  j.pipeline = "etl";
  j.schedule = "0 3 * * *";
  j.next_fire = 100;
  ASSERT_TRUE(store_->CreateJob(j).ok());
  EXPECT_EQ(store_->CreateJob(j).code(), StatusCode::kAlreadyExists);
  j.status = "PAUSED";
  ASSERT_TRUE(store_->UpdateJob(j).ok());
  auto active = store_->ListJobs("default", true);
  ASSERT_TRUE(active.ok());
  ASSERT_EQ(active->size(), 1u);
  EXPECT_EQ((*active)[0].status, "PAUSED");
  EXPECT_EQ((*active)[0].schedule, "0 3 * * *");
  j.status = "ABORTED";
  ASSERT_TRUE(store_->UpdateJob(j).ok());
  j.status = "STARTED";
  EXPECT_EQ(store_->UpdateJob(j).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->GetJob("j1")->status, "ABORTED");
  EXPECT_TRUE(store_->ListJobs("", true)->empty());
  EXPECT_EQ(store_->ListJobs("", false)->size(), 1u);
  EXPECT_EQ(store_->GetJob("nope").status().code(), StatusCode::kNotFound);
}

INSTANTIATE_TEST_SUITE_P(Sqlite, StoreContractTest, ::testing::Values("memory", "file"));

TEST(SqliteStoreTest, ReopenKeepsEverything) {
  TempDir dir;
  std::string url = "sqlite://" + dir.path() + "/state.db";
  {
    auto s = OpenStore({url});
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->CreateProject("default").ok());
    ASSERT_TRUE((*s)->CreateService("default", "hello").ok());
    ASSERT_TRUE((*s)->PutDefinition("default", "hello", R"({"a":1})").ok());
  }
  auto s = OpenStore({url});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  auto svc = (*s)->GetService("default", "hello");
  ASSERT_TRUE(svc.ok());
  EXPECT_EQ(svc->revision, 1);
  EXPECT_EQ(svc->definition_json, R"({"a":1})");
}

TEST(SqliteStoreTest, RefusesStoreFromNewerBerth) {
  TempDir dir;
  std::string path = dir.path() + "/state.db";
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 999", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto s = OpenStore({"sqlite://" + path});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.status().message().find("upgrade berth"), std::string::npos);
}

TEST(SqliteStoreTest, UsesWalAndForeignKeys) {
  TempDir dir;
  std::string path = dir.path() + "/state.db";
  ASSERT_TRUE(OpenStore({"sqlite://" + path}).ok());
  EXPECT_TRUE(fs::exists(path));
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "wal");
  sqlite3_finalize(st);
  sqlite3_close(db);
}

// A data dir of a berth before the reservation totals: the migration reads the stored
// definitions once (replicas default to 1; stopped services and bad JSON reserve nothing).
TEST(SqliteStoreTest, TheMigrationCountsWhatStoredRevisionsReserve) {
  TempDir dir;
  std::string path = dir.path() + "/state.db";
  {
    auto s = OpenStore({"sqlite://" + path});
    ASSERT_TRUE(s.ok());
    Store& store = **s;
    ASSERT_TRUE(store.CreateProject("default").ok());
    for (const char* name : {"two", "one", "stopped", "bad"}) {
      ASSERT_TRUE(store.CreateService("default", name).ok());
    }
    ASSERT_TRUE(
        store.PutDefinition("default", "two", R"({"memory-reservation":200,"replicas":2})").ok());
    ASSERT_TRUE(store.PutDefinition("default", "one", R"({"memory-reservation":30})").ok());
    ASSERT_TRUE(store.PutDefinition("default", "stopped", R"({"memory-reservation":900})").ok());
    ASSERT_TRUE(store.SetDesiredRunning("default", "stopped", false).ok());
    ASSERT_TRUE(store.PutDefinition("default", "bad", "not json").ok());
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  int version = 0;
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  version = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  std::string undo =
      "DROP TRIGGER services_reservation_changed; "
      "DROP TRIGGER services_reservation_deleted; DROP TABLE reservations; "
      "ALTER TABLE services DROP COLUMN reserved_mb; PRAGMA user_version = " +
      std::to_string(version - 1);
  ASSERT_EQ(sqlite3_exec(db, undo.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_close(db);
  auto s = OpenStore({"sqlite://" + path});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(*(*s)->ReservedByOthers("default", "new"), 430u);
  EXPECT_EQ(*(*s)->ReservedByOthers("default", "two"), 30u);
}

// A status read must not queue behind a write: here the write waits for another connection's
// lock (as a long transaction or a checkpoint would hold it) while reads go on.
TEST(SqliteStoreTest, ReadsDoNotWaitForAWriteInProgress) {
  TempDir dir;
  std::string path = dir.path() + "/state.db";
  auto s = OpenStore({"sqlite://" + path});
  ASSERT_TRUE(s.ok());
  Store& store = **s;
  ASSERT_TRUE(store.CreateProject("default").ok());
  ASSERT_TRUE(store.CreateService("default", "hello").ok());
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  std::atomic<bool> written{false};
  std::thread writer([&] {
    EXPECT_TRUE(store.PutDefinition("default", "hello", R"({"a":1})").ok());
    written = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the write is waiting now
  auto svc = store.GetService("default", "hello");
  ASSERT_TRUE(svc.ok());
  EXPECT_EQ(svc->revision, 0);
  EXPECT_TRUE(store.ListServices("default").ok());
  EXPECT_TRUE(store.ListEvents("default", "hello", 10).ok());
  EXPECT_FALSE(written.load()) << "the reads waited until the write was done";
  ASSERT_EQ(sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(other);
  writer.join();
  // What was written is read at once.
  EXPECT_EQ(store.GetService("default", "hello")->revision, 1);
  EXPECT_EQ(store.ListServices("default")->at(0).revision, 1);
}

TEST(StoreTest, UnknownSchemeIsInvalidArgument) {
  auto s = OpenStore({"mysql://x"});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace berth
