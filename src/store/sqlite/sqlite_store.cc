// SqliteStore keeps one connection behind a mutex. SQLite serialises writers anyway, and the
// daemon's reads are short point lookups, so one connection with cached prepared statements is
// faster than a pool and keeps transactions simple: every mutating call is BEGIN IMMEDIATE ...
// COMMIT, so a crash leaves either all of a change or none of it.
#include "store/sqlite/sqlite_store.h"

#include <fmt/format.h>
#include <sqlite3.h>

#include <atomic>
#include <map>
#include <mutex>
#include <optional>

#include "common/mutex.h"
#include "common/time.h"

namespace berth {
namespace {

// Schema migrations, applied in order; PRAGMA user_version counts how many have run.
// Append only: a released migration never changes.
const char* const kMigrations[] = {
    R"sql(
CREATE TABLE projects (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL
);
CREATE TABLE tokens (
  id TEXT PRIMARY KEY,
  hash TEXT NOT NULL UNIQUE,
  project_id INTEGER REFERENCES projects(id) ON DELETE CASCADE,
  description TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL,
  revoked_at INTEGER
);
CREATE TABLE services (
  id INTEGER PRIMARY KEY,
  project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  revision INTEGER NOT NULL DEFAULT 0,
  defaults TEXT NOT NULL DEFAULT '{}',
  UNIQUE (project_id, name)
);
CREATE TABLE revisions (
  service_id INTEGER NOT NULL REFERENCES services(id) ON DELETE CASCADE,
  revision INTEGER NOT NULL,
  definition TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (service_id, revision)
);
)sql",
    // Runtime: desired state, the revision serving traffic, artifacts and events.
    R"sql(
ALTER TABLE services ADD COLUMN desired_running INTEGER NOT NULL DEFAULT 1;
ALTER TABLE services ADD COLUMN active_revision INTEGER NOT NULL DEFAULT 0;
ALTER TABLE services ADD COLUMN failed_revision INTEGER NOT NULL DEFAULT 0;
CREATE TABLE artifacts (
  service_id INTEGER NOT NULL REFERENCES services(id) ON DELETE CASCADE,
  tag TEXT NOT NULL,
  digest TEXT NOT NULL,
  size INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (service_id, tag)
);
CREATE INDEX artifacts_by_digest ON artifacts(digest);
CREATE TABLE events (
  id INTEGER PRIMARY KEY,
  service_id INTEGER NOT NULL REFERENCES services(id) ON DELETE CASCADE,
  time INTEGER NOT NULL,
  kind TEXT NOT NULL,
  message TEXT NOT NULL
);
CREATE INDEX events_by_service ON events(service_id, id);
)sql",
    // Versions (seed 001), runtime parameters, notifications.
    R"sql(
ALTER TABLE services ADD COLUMN main_version TEXT NOT NULL DEFAULT '';
CREATE TABLE versions (
  service_id INTEGER NOT NULL REFERENCES services(id) ON DELETE CASCADE,
  version TEXT NOT NULL,
  revision INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (service_id, version)
);
CREATE TABLE parameters (
  service_id INTEGER NOT NULL REFERENCES services(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  value TEXT NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (service_id, name)
);
CREATE TABLE notifications (
  id INTEGER PRIMARY KEY,
  project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  service TEXT NOT NULL,
  version TEXT NOT NULL,
  instance TEXT NOT NULL,
  severity TEXT NOT NULL,
  message TEXT NOT NULL,
  count INTEGER NOT NULL,
  first_at INTEGER NOT NULL,
  last_at INTEGER NOT NULL,
  emails TEXT NOT NULL,
  timer INTEGER NOT NULL,
  UNIQUE (project_id, service, version, severity, message)
);
CREATE INDEX notifications_by_time ON notifications(project_id, last_at);
)sql",
    // Project environment (seed 000's inherited variables) and sessions.
    R"sql(
CREATE TABLE project_env (
  project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (project_id, name)
);
CREATE TABLE sessions (
  project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  pipeline TEXT NOT NULL,
  state TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (project_id, pipeline)
);
)sql",
    // Pipelines, their runs and the runs' steps (seed 004).
    R"sql(
CREATE TABLE pipelines (
  project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  uuid TEXT NOT NULL,
  definition TEXT NOT NULL,
  project_dir TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (project_id, name)
);
CREATE TABLE runs (
  id TEXT PRIMARY KEY,
  project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  pipeline TEXT NOT NULL,
  pipeline_uuid TEXT NOT NULL,
  client_project_uuid TEXT NOT NULL,
  run_type TEXT NOT NULL,
  kind TEXT NOT NULL,
  job TEXT NOT NULL,
  definition TEXT NOT NULL,
  plan TEXT NOT NULL,
  project_dir TEXT NOT NULL,
  status TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  started_at INTEGER NOT NULL,
  finished_at INTEGER NOT NULL,
  message TEXT NOT NULL
);
CREATE INDEX runs_by_project ON runs(project_id, created_at);
CREATE INDEX runs_unfinished ON runs(status) WHERE status IN ('PENDING', 'STARTED');
CREATE TABLE step_runs (
  run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  step TEXT NOT NULL,
  title TEXT NOT NULL,
  position INTEGER NOT NULL,
  status TEXT NOT NULL,
  started_at INTEGER NOT NULL,
  finished_at INTEGER NOT NULL,
  exit_code INTEGER,
  message TEXT NOT NULL,
  PRIMARY KEY (run_id, step)
);
)sql",
    // Jobs: pipelines run once, at a time or on a schedule, per parameter set (seed 004).
    R"sql(
CREATE TABLE jobs (
  id TEXT PRIMARY KEY,
  project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  pipeline TEXT NOT NULL,
  definition TEXT NOT NULL,
  project_dir TEXT NOT NULL,
  schedule TEXT NOT NULL,
  time_zone TEXT NOT NULL,
  at INTEGER NOT NULL,
  parameters TEXT NOT NULL,
  status TEXT NOT NULL,
  next_fire INTEGER NOT NULL,
  last_fire INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  finished_at INTEGER NOT NULL,
  message TEXT NOT NULL
);
CREATE INDEX jobs_by_project ON jobs(project_id, created_at);
CREATE INDEX runs_by_job ON runs(job) WHERE job != '';
)sql",
    // Recipes (seed 003), the node types pushed for them, and the daemon's own settings.
    R"sql(
CREATE TABLE recipes (
  project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  url TEXT NOT NULL,
  definition TEXT NOT NULL,
  started INTEGER NOT NULL,
  overrides TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (project_id, name),
  UNIQUE (project_id, url)
);
CREATE TABLE node_types (
  project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  digest TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (project_id, name)
);
CREATE TABLE settings (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
)sql",
    // The services a session started (they were not running): the last session stops them.
    R"sql(
CREATE TABLE session_services (
  project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  service TEXT NOT NULL,
  PRIMARY KEY (project_id, service)
);
)sql",
    // What each service's current revision reserves (MB), and their sum over the services
    // meant to run, kept by triggers: an admission reads one row, not every service. The
    // stored revisions' figures come from their definitions, once, here.
    R"sql(
ALTER TABLE services ADD COLUMN reserved_mb INTEGER NOT NULL DEFAULT 0;
UPDATE services SET reserved_mb = COALESCE((
  SELECT CASE WHEN json_valid(r.definition) THEN
    MAX(0, CAST(COALESCE(json_extract(r.definition, '$."memory-reservation"'), 0) AS INTEGER)) *
    MAX(0, CAST(COALESCE(json_extract(r.definition, '$.replicas'), 1) AS INTEGER))
  ELSE 0 END
  FROM revisions r WHERE r.service_id = services.id AND r.revision = services.revision), 0);
CREATE TABLE reservations (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  mb INTEGER NOT NULL
);
INSERT INTO reservations (id, mb)
  SELECT 1, COALESCE(SUM(reserved_mb), 0) FROM services WHERE desired_running = 1;
CREATE TRIGGER services_reservation_changed AFTER UPDATE OF reserved_mb, desired_running
  ON services BEGIN
  UPDATE reservations SET mb = mb
    - CASE WHEN OLD.desired_running THEN OLD.reserved_mb ELSE 0 END
    + CASE WHEN NEW.desired_running THEN NEW.reserved_mb ELSE 0 END;
END;
CREATE TRIGGER services_reservation_deleted AFTER DELETE ON services BEGIN
  UPDATE reservations SET mb = mb - CASE WHEN OLD.desired_running THEN OLD.reserved_mb ELSE 0 END;
END;
)sql",
};

Status SqliteError(sqlite3* db, std::string_view context) {
  int code = sqlite3_extended_errcode(db);
  std::string msg = fmt::format("{}: {} (sqlite error {})", context, sqlite3_errmsg(db), code);
  if ((code & 0xff) == SQLITE_BUSY || (code & 0xff) == SQLITE_LOCKED) {
    return Status::Unavailable(std::move(msg));
  }
  return Status::Internal(std::move(msg));
}

// A prepared statement, reset on destruction so that it can be reused from the cache.
class Stmt {
 public:
  Stmt(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

  Stmt& Bind(int i, std::string_view s) {
    sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& Bind(int i, int64_t n) {
    sqlite3_bind_int64(stmt_, i, n);
    return *this;
  }
  Stmt& BindNull(int i) {
    sqlite3_bind_null(stmt_, i);
    return *this;
  }

  // Returns true while rows remain; false when done.
  Result<bool> Step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) {
      return true;
    }
    if (rc == SQLITE_DONE) {
      return false;
    }
    return SqliteError(db_, "executing statement");
  }
  Status Exec() {
    auto r = Step();
    return r.ok() ? Status::Ok() : r.status();
  }

  // Steps through every row, appending row_fn(*this) to a vector.
  template <typename T, typename RowFn>
  Result<std::vector<T>> Collect(RowFn row_fn) {
    std::vector<T> out;
    for (;;) {
      auto row = Step();
      if (!row.ok()) {
        return row.status();
      }
      if (!*row) {
        return out;
      }
      out.push_back(row_fn(*this));
    }
  }

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::string Text(int col) const {
    const unsigned char* p = sqlite3_column_text(stmt_, col);
    return p ? std::string(reinterpret_cast<const char*>(p),
                           static_cast<size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

class SqliteStore final : public Store {
 public:
  explicit SqliteStore(sqlite3* db) : db_(db) {}
  ~SqliteStore() override {
    for (auto& [sql, stmt] : cache_) {
      sqlite3_finalize(stmt);
    }
    for (auto& [sql, stmt] : read_cache_) {
      sqlite3_finalize(stmt);
    }
    sqlite3_close(read_db_);
    sqlite3_close(db_);
  }

  Status Init() {
    MutexLock lock(mu_);
    for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL",
                               "PRAGMA foreign_keys=ON", "PRAGMA busy_timeout=5000"}) {
      if (sqlite3_exec(db_, pragma, nullptr, nullptr, nullptr) != SQLITE_OK) {
        return SqliteError(db_, pragma);
      }
    }
    return Migrate();
  }

  // The read-only connection of Read(), opened once the writer has made the file WAL.
  Status OpenReader(const std::string& path) {
    sqlite3* db = nullptr;
    int rc =
        sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK ||
        sqlite3_exec(db, "PRAGMA busy_timeout=5000", nullptr, nullptr, nullptr) != SQLITE_OK) {
      Status s = SqliteError(db, "opening the read connection");
      sqlite3_close(db);
      return s;
    }
    read_db_ = db;
    return Status::Ok();
  }

  Result<Project> CreateProject(std::string_view name) override {
    MutexLock lock(mu_);
    Project p{std::string(name), NowUnixMillis()};
    auto st = Prepare("INSERT INTO projects (name, created_at) VALUES (?, ?)");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, name).Bind(2, p.created_at);
    if (auto r = st->Exec(); !r.ok()) {
      if (sqlite3_extended_errcode(db_) == SQLITE_CONSTRAINT_UNIQUE) {
        return Status::AlreadyExists(fmt::format("project '{}' already exists", name));
      }
      return r.WithContext("creating project");
    }
    p.id = sqlite3_last_insert_rowid(db_);
    return p;
  }

  Result<std::vector<Project>> ListProjects() override {
    MutexLock lock(mu_);
    auto st = Prepare("SELECT name, created_at, id FROM projects ORDER BY name");
    if (!st.ok()) {
      return st.status();
    }
    return st->Collect<Project>(
        [&](const Stmt& r) { return Project{r.Text(0), r.Int(1), r.Int(2)}; });
  }

  Result<Project> GetProject(std::string_view name) override {
    MutexLock lock(mu_);
    auto st = Prepare("SELECT name, created_at, id FROM projects WHERE name = ?");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, name);
    auto row = st->Step();
    if (!row.ok()) {
      return row.status();
    }
    if (!*row) {
      return Status::NotFound(fmt::format("project '{}' does not exist", name));
    }
    return Project{st->Text(0), st->Int(1), st->Int(2)};
  }

  Result<TokenInfo> CreateToken(std::string_view id, std::string_view hash,
                                const std::optional<std::string>& project,
                                std::string_view description) override {
    MutexLock lock(mu_);
    std::optional<int64_t> project_id;
    if (project) {
      auto pid = ProjectId(*project);
      if (!pid.ok()) {
        return pid.status();
      }
      project_id = *pid;
    }
    TokenInfo t{std::string(id), project, std::string(description), NowUnixMillis(), {}};
    auto st = Prepare(
        "INSERT INTO tokens (id, hash, project_id, description, created_at) VALUES (?,?,?,?,?)");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, id).Bind(2, hash).Bind(4, description).Bind(5, t.created_at);
    if (project_id) {
      st->Bind(3, *project_id);
    } else {
      st->BindNull(3);
    }
    if (auto r = st->Exec(); !r.ok()) {
      return r.WithContext("creating token");
    }
    return t;
  }

  Result<std::vector<TokenInfo>> ListTokens(const std::optional<std::string>& project) override {
    MutexLock lock(mu_);
    auto st =
        Prepare(project ? kTokenSelect + std::string(" WHERE p.name = ? ORDER BY t.created_at")
                        : kTokenSelect + std::string(" ORDER BY t.created_at"));
    if (!st.ok()) {
      return st.status();
    }
    if (project) {
      st->Bind(1, *project);
    }
    return st->Collect<TokenInfo>([&](const Stmt& r) { return TokenFromRow(r); });
  }

  Result<TokenInfo> GetToken(std::string_view id) override {
    MutexLock lock(mu_);
    return FindToken(" WHERE t.id = ?", id, fmt::format("token '{}' does not exist", id));
  }

  Result<TokenInfo> FindTokenByHash(std::string_view hash) override {
    MutexLock lock(mu_);
    return FindToken(" WHERE t.hash = ?", hash, "no token matches");
  }

  Status RevokeToken(std::string_view id) override {
    MutexLock lock(mu_);
    auto st = Prepare("UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, NowUnixMillis()).Bind(2, id);
    if (auto r = st->Exec(); !r.ok()) {
      return r.WithContext("revoking token");
    }
    if (sqlite3_changes(db_) == 0) {
      return Status::NotFound(fmt::format("token '{}' does not exist", id));
    }
    revocations_.fetch_add(1);
    return Status::Ok();
  }

  uint64_t TokenRevocations() const override { return revocations_.load(); }

  Result<int64_t> CountActiveAdminTokens() override {
    MutexLock lock(mu_);
    auto st =
        Prepare("SELECT COUNT(*) FROM tokens WHERE project_id IS NULL AND revoked_at IS NULL");
    if (!st.ok()) {
      return st.status();
    }
    auto row = st->Step();
    if (!row.ok()) {
      return row.status();
    }
    return st->Int(0);
  }

  Result<ServiceRecord> CreateService(std::string_view project, std::string_view name,
                                      std::string_view defaults_json) override {
    MutexLock lock(mu_);
    auto pid = ProjectId(project);
    if (!pid.ok()) {
      return pid.status();
    }
    ServiceRecord rec;
    rec.project = std::string(project);
    rec.name = std::string(name);
    rec.created_at = rec.updated_at = NowUnixMillis();
    rec.defaults_json = std::string(defaults_json);
    auto st = Prepare(
        "INSERT INTO services (project_id, name, created_at, updated_at, defaults) "
        "VALUES (?,?,?,?,?)");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, *pid).Bind(2, name).Bind(3, rec.created_at).Bind(4, rec.updated_at);
    st->Bind(5, defaults_json);
    if (auto r = st->Exec(); !r.ok()) {
      if (sqlite3_extended_errcode(db_) == SQLITE_CONSTRAINT_UNIQUE) {
        return Status::AlreadyExists(
            fmt::format("service '{}' already exists in project '{}'", name, project));
      }
      return r.WithContext("creating service");
    }
    return rec;
  }

  Result<std::vector<ServiceRecord>> ListServices(std::string_view project) override {
    return Read([&](Conn c) -> Result<std::vector<ServiceRecord>> {
      auto pid = ProjectIdOn(c, project);
      if (!pid.ok()) {
        return pid.status();
      }
      auto st =
          PrepareOn(c, std::string(kServiceSelect) + " WHERE s.project_id = ? ORDER BY s.name");
      if (!st.ok()) {
        return st.status();
      }
      st->Bind(1, *pid);
      return st->Collect<ServiceRecord>([&](const Stmt& r) { return ServiceFromRow(r, project); });
    });
  }

  Result<ServiceRecord> GetService(std::string_view project, std::string_view name) override {
    return Read([&](Conn c) { return GetServiceOn(c, project, name); });
  }

  Result<int64_t> CountServices(std::string_view project, int64_t at_most) override {
    MutexLock lock(mu_);
    auto pid = ProjectId(project);
    if (!pid.ok()) {
      return pid.status();
    }
    auto st = Prepare("SELECT COUNT(*) FROM (SELECT 1 FROM services WHERE project_id = ? LIMIT ?)");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, *pid).Bind(2, at_most);
    auto row = st->Step();
    if (!row.ok()) {
      return row.status();
    }
    return *row ? st->Int(0) : 0;
  }

  Result<ServiceRecord> PutDefinition(std::string_view project, std::string_view name,
                                      std::string_view definition_json, uint64_t reserved_mb,
                                      const AdmitFn& admit) override {
    MutexLock lock(mu_);
    Transaction tx(this);
    if (auto s = tx.Begin(); !s.ok()) {
      return s;
    }
    auto sid = ServiceId(project, name);
    if (!sid.ok()) {
      return sid.status();
    }
    if (admit) {
      auto others = ReservedByOthersLocked(*sid);
      if (!others.ok()) {
        return others.status();
      }
      if (auto s = admit(*others); !s.ok()) {
        return s;  // the transaction rolls back
      }
    }
    int64_t now = NowUnixMillis();
    auto up = Prepare(
        "UPDATE services SET revision = revision + 1, updated_at = ?, reserved_mb = ? "
        "WHERE id = ? RETURNING revision");
    if (!up.ok()) {
      return up.status();
    }
    up->Bind(1, now).Bind(2, static_cast<int64_t>(reserved_mb)).Bind(3, *sid);
    auto row = up->Step();
    if (!row.ok()) {
      return row.status().WithContext("storing definition");
    }
    if (!*row) {
      return Status::Internal("storing definition: the service row vanished mid-transaction");
    }
    int64_t revision = up->Int(0);
    while (true) {  // drain RETURNING so the statement completes
      auto more = up->Step();
      if (!more.ok()) {
        return more.status();
      }
      if (!*more) {
        break;
      }
    }
    auto ins = Prepare(
        "INSERT INTO revisions (service_id, revision, definition, created_at) VALUES (?,?,?,?)");
    if (!ins.ok()) {
      return ins.status();
    }
    ins->Bind(1, *sid).Bind(2, revision).Bind(3, definition_json).Bind(4, now);
    if (auto s = ins->Exec(); !s.ok()) {
      return s.WithContext("storing definition");
    }
    if (auto s = tx.Commit(); !s.ok()) {
      return s;
    }
    return GetServiceLocked(project, name);
  }

  Result<std::vector<Revision>> ListRevisions(std::string_view project,
                                              std::string_view name) override {
    MutexLock lock(mu_);
    auto sid = ServiceId(project, name);
    if (!sid.ok()) {
      return sid.status();
    }
    auto st = Prepare(
        "SELECT revision, definition, created_at FROM revisions WHERE service_id = ? "
        "ORDER BY revision");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, *sid);
    return st->Collect<Revision>([&](const Stmt& r) {
      return Revision{static_cast<int>(r.Int(0)), r.Text(1), r.Int(2)};
    });
  }

  Status DeleteService(std::string_view project, std::string_view name) override {
    MutexLock lock(mu_);
    auto sid = ServiceId(project, name);
    if (!sid.ok()) {
      return sid.status();
    }
    // Revisions go with the service through ON DELETE CASCADE, in the same statement.
    auto st = Prepare("DELETE FROM services WHERE id = ?");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, *sid);
    return st->Exec().WithContext("deleting service");
  }

  Result<std::vector<ServiceRecord>> ListAllServices() override {
    MutexLock lock(mu_);
    return ListAllLocked();
  }

  // What the services meant to run reserve, but for service `sid` (0: none): the triggers'
  // total less its own part.
  Result<uint64_t> ReservedByOthersLocked(int64_t sid) REQUIRES(mu_) {
    auto st = Prepare(
        "SELECT (SELECT mb FROM reservations WHERE id = 1) - COALESCE((SELECT reserved_mb FROM "
        "services WHERE id = ? AND desired_running = 1), 0)");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, sid);
    auto row = st->Step();
    if (!row.ok()) {
      return row.status();
    }
    return *row ? static_cast<uint64_t>(std::max<int64_t>(0, st->Int(0))) : 0;
  }

  Result<uint64_t> ReservedByOthers(std::string_view project, std::string_view name) override {
    MutexLock lock(mu_);
    auto sid = ServiceId(project, name);
    if (!sid.ok() && sid.status().code() != StatusCode::kNotFound) {
      return sid.status();
    }
    return ReservedByOthersLocked(sid.ok() ? *sid : 0);
  }

  Result<std::vector<ServiceRecord>> ListAllLocked() REQUIRES(mu_) {
    auto st = Prepare(std::string(kServiceSelect) + " ORDER BY p.name, s.name");
    if (!st.ok()) {
      return st.status();
    }
    return st->Collect<ServiceRecord>([&](const Stmt& r) { return ServiceFromRow(r, ""); });
  }

  Status SetDesiredRunning(std::string_view project, std::string_view name, bool running) override {
    MutexLock lock(mu_);
    auto sid = ServiceId(project, name);
    if (!sid.ok()) {
      return sid.status();
    }
    auto st = Prepare("UPDATE services SET desired_running = ? WHERE id = ?");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, running ? 1 : 0).Bind(2, *sid);
    return st->Exec().WithContext("recording desired state");
  }

  Status SetRolloutResult(std::string_view project, std::string_view name, int active_revision,
                          int failed_revision) override {
    MutexLock lock(mu_);
    auto sid = ServiceId(project, name);
    if (!sid.ok()) {
      return sid.status();
    }
    auto st = Prepare("UPDATE services SET active_revision = ?, failed_revision = ? WHERE id = ?");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, active_revision).Bind(2, failed_revision).Bind(3, *sid);
    return st->Exec().WithContext("recording rollout result");
  }

  Result<ArtifactRecord> PutArtifact(std::string_view project, std::string_view name,
                                     std::string_view tag, std::string_view digest,
                                     int64_t size) override {
    MutexLock lock(mu_);
    auto sid = ServiceId(project, name);
    if (!sid.ok()) {
      return sid.status();
    }
    ArtifactRecord a{std::string(tag), std::string(digest), size, NowUnixMillis()};
    auto st = Prepare(
        "INSERT INTO artifacts (service_id, tag, digest, size, created_at) VALUES (?,?,?,?,?) "
        "ON CONFLICT (service_id, tag) DO UPDATE SET digest = excluded.digest, "
        "size = excluded.size, created_at = excluded.created_at");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, *sid).Bind(2, tag).Bind(3, digest).Bind(4, size).Bind(5, a.created_at);
    if (auto s = st->Exec(); !s.ok()) {
      return s.WithContext("storing artifact");
    }
    return a;
  }

  Result<std::vector<ArtifactRecord>> ListArtifacts(std::string_view project,
                                                    std::string_view name) override {
    MutexLock lock(mu_);
    auto sid = ServiceId(project, name);
    if (!sid.ok()) {
      return sid.status();
    }
    auto st = Prepare(
        "SELECT tag, digest, size, created_at FROM artifacts WHERE service_id = ? "
        "ORDER BY created_at DESC, tag");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, *sid);
    return st->Collect<ArtifactRecord>([&](const Stmt& r) {
      return ArtifactRecord{r.Text(0), r.Text(1), r.Int(2), r.Int(3)};
    });
  }

  Result<bool> DigestInUse(std::string_view digest) override {
    MutexLock lock(mu_);
    auto st = Prepare(
        "SELECT 1 FROM artifacts WHERE digest = ?1 UNION ALL "
        "SELECT 1 FROM node_types WHERE digest = ?1 LIMIT 1");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, digest);
    return st->Step();
  }

  Result<VersionRecord> AddVersion(std::string_view project, std::string_view name,
                                   std::string_view version, std::string_view definition_json,
                                   uint64_t reserved_mb) override {
    MutexLock lock(mu_);
    Transaction tx(this);
    if (auto s = tx.Begin(); !s.ok()) {
      return s;
    }
    auto sid = ServiceId(project, name);
    if (!sid.ok()) {
      return sid.status();
    }
    auto exists = Prepare("SELECT revision FROM versions WHERE service_id = ? AND version = ?");
    if (!exists.ok()) {
      return exists.status();
    }
    exists->Bind(1, *sid).Bind(2, version);
    auto found = exists->Step();
    if (!found.ok()) {
      return found.status();
    }
    if (*found) {
      return Status::AlreadyExists(fmt::format(
          "version {} of '{}' already exists (revision {}); versions are immutable: deploy a new "
          "version, or kill this one first",
          version, name, exists->Int(0)));
    }
    int64_t now = NowUnixMillis();
    auto up = Prepare(
        "UPDATE services SET revision = revision + 1, updated_at = ?, desired_running = 1, "
        "reserved_mb = ?, main_version = CASE main_version WHEN '' THEN ? ELSE main_version END "
        "WHERE id = ? RETURNING revision");
    if (!up.ok()) {
      return up.status();
    }
    up->Bind(1, now).Bind(2, static_cast<int64_t>(reserved_mb)).Bind(3, version).Bind(4, *sid);
    auto row = up->Step();
    if (!row.ok() || !*row) {
      return row.ok() ? Status::Internal("storing version: the service row vanished")
                      : row.status().WithContext("storing version");
    }
    int revision = static_cast<int>(up->Int(0));
    while (true) {  // drain RETURNING so the statement completes
      auto more = up->Step();
      if (!more.ok()) {
        return more.status();
      }
      if (!*more) {
        break;
      }
    }
    auto ins = Prepare(
        "INSERT INTO revisions (service_id, revision, definition, created_at) VALUES (?,?,?,?)");
    if (!ins.ok()) {
      return ins.status();
    }
    ins->Bind(1, *sid).Bind(2, revision).Bind(3, definition_json).Bind(4, now);
    if (auto s = ins->Exec(); !s.ok()) {
      return s.WithContext("storing version");
    }
    auto ver = Prepare(
        "INSERT INTO versions (service_id, version, revision, created_at) VALUES (?,?,?,?)");
    if (!ver.ok()) {
      return ver.status();
    }
    ver->Bind(1, *sid).Bind(2, version).Bind(3, revision).Bind(4, now);
    if (auto s = ver->Exec(); !s.ok()) {
      return s.WithContext("storing version");
    }
    if (auto s = tx.Commit(); !s.ok()) {
      return s;
    }
    return VersionRecord{std::string(version), revision, now};
  }

  Result<std::vector<VersionRecord>> ListVersions(std::string_view project,
                                                  std::string_view name) override {
    return Read([&](Conn c) -> Result<std::vector<VersionRecord>> {
      auto sid = ServiceIdOn(c, project, name);
      if (!sid.ok()) {
        return sid.status();
      }
      auto st = PrepareOn(c,
                          "SELECT version, revision, created_at FROM versions WHERE service_id = ? "
                          "ORDER BY revision");
      if (!st.ok()) {
        return st.status();
      }
      st->Bind(1, *sid);
      return st->Collect<VersionRecord>([&](const Stmt& r) {
        return VersionRecord{r.Text(0), static_cast<int>(r.Int(1)), r.Int(2)};
      });
    });
  }

  Status SetMainVersion(std::string_view project, std::string_view name,
                        std::string_view version) override {
    MutexLock lock(mu_);
    auto sid = ServiceId(project, name);
    if (!sid.ok()) {
      return sid.status();
    }
    auto st = Prepare(
        "UPDATE services SET main_version = ?, updated_at = ? WHERE id = ? AND EXISTS "
        "(SELECT 1 FROM versions WHERE service_id = ? AND version = ?)");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, version).Bind(2, NowUnixMillis()).Bind(3, *sid).Bind(4, *sid).Bind(5, version);
    if (auto s = st->Exec(); !s.ok()) {
      return s.WithContext("assigning MAIN");
    }
    if (sqlite3_changes(db_) == 0) {
      return Status::NotFound(fmt::format("'{}' has no version {}", name, version));
    }
    return Status::Ok();
  }

  Status RemoveVersion(std::string_view project, std::string_view name,
                       std::string_view version) override {
    MutexLock lock(mu_);
    Transaction tx(this);
    if (auto s = tx.Begin(); !s.ok()) {
      return s;
    }
    auto sid = ServiceId(project, name);
    if (!sid.ok()) {
      return sid.status();
    }
    auto del = Prepare("DELETE FROM versions WHERE service_id = ? AND version = ?");
    if (!del.ok()) {
      return del.status();
    }
    del->Bind(1, *sid).Bind(2, version);
    if (auto s = del->Exec(); !s.ok()) {
      return s.WithContext("removing version");
    }
    if (sqlite3_changes(db_) == 0) {
      return Status::NotFound(fmt::format("'{}' has no version {}", name, version));
    }
    auto main = Prepare(
        "UPDATE services SET main_version = '' WHERE id = ? AND main_version = ?");
    if (!main.ok()) {
      return main.status();
    }
    main->Bind(1, *sid).Bind(2, version);
    if (auto s = main->Exec(); !s.ok()) {
      return s.WithContext("removing version");
    }
    // With its last version gone the service runs nothing (not its newest revision).
    auto idle = Prepare(
        "UPDATE services SET desired_running = 0 WHERE id = ? AND NOT EXISTS "
        "(SELECT 1 FROM versions WHERE service_id = ?)");
    if (!idle.ok()) {
      return idle.status();
    }
    idle->Bind(1, *sid).Bind(2, *sid);
    if (auto s = idle->Exec(); !s.ok()) {
      return s.WithContext("removing version");
    }
    return tx.Commit();
  }

  Status PutParameter(std::string_view project, std::string_view name,
                      std::string_view parameter, std::string_view value_json) override {
    MutexLock lock(mu_);
    auto sid = ServiceId(project, name);
    if (!sid.ok()) {
      return sid.status();
    }
    auto st = Prepare(
        "INSERT INTO parameters (service_id, name, value, updated_at) VALUES (?,?,?,?) "
        "ON CONFLICT (service_id, name) DO UPDATE SET value = excluded.value, "
        "updated_at = excluded.updated_at");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, *sid).Bind(2, parameter).Bind(3, value_json).Bind(4, NowUnixMillis());
    return st->Exec().WithContext("storing parameter");
  }

  Result<std::vector<std::pair<std::string, std::string>>> ListParameters(
      std::string_view project, std::string_view name) override {
    MutexLock lock(mu_);
    auto sid = ServiceId(project, name);
    if (!sid.ok()) {
      return sid.status();
    }
    auto st = Prepare("SELECT name, value FROM parameters WHERE service_id = ? ORDER BY name");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, *sid);
    return st->Collect<std::pair<std::string, std::string>>(
        [&](const Stmt& r) { return std::make_pair(r.Text(0), r.Text(1)); });
  }

  Result<NotificationRecord> AddNotification(const NotificationRecord& n) override {
    MutexLock lock(mu_);
    auto pid = ProjectId(n.project);
    if (!pid.ok()) {
      return pid.status();
    }
    int64_t now = NowUnixMillis();
    auto st = Prepare(
        "INSERT INTO notifications (project_id, service, version, instance, severity, message, "
        "count, first_at, last_at, emails, timer) VALUES (?,?,?,?,?,?,1,?,?,?,?) "
        "ON CONFLICT (project_id, service, version, severity, message) DO UPDATE SET "
        "count = count + 1, last_at = excluded.last_at, instance = excluded.instance, "
        "emails = excluded.emails, timer = excluded.timer "
        "RETURNING " + std::string(kNotificationColumns));
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, *pid).Bind(2, n.service).Bind(3, n.version).Bind(4, n.instance);
    st->Bind(5, n.severity).Bind(6, n.message).Bind(7, now).Bind(8, now);
    st->Bind(9, n.emails_json).Bind(10, n.timer_s);
    auto rows = st->Collect<NotificationRecord>(
        [&](const Stmt& r) { return NotificationFromRow(r, n.project); });
    if (!rows.ok()) {
      return rows.status().WithContext("storing notification");
    }
    if (rows->empty()) {
      return Status::Internal("storing notification: no row returned");
    }
    // Keep the project's 1,000 most recent.
    auto trim = Prepare(
        "DELETE FROM notifications WHERE project_id = ? AND id NOT IN (SELECT id FROM "
        "notifications WHERE project_id = ? ORDER BY last_at DESC, id DESC LIMIT 1000)");
    if (!trim.ok()) {
      return trim.status();
    }
    trim->Bind(1, *pid).Bind(2, *pid);
    if (auto s = trim->Exec(); !s.ok()) {
      return s.WithContext("trimming notifications");
    }
    return rows->front();
  }

  Result<std::vector<NotificationRecord>> ListNotifications(std::string_view project) override {
    MutexLock lock(mu_);
    auto pid = ProjectId(project);
    if (!pid.ok()) {
      return pid.status();
    }
    auto st = Prepare("SELECT " + std::string(kNotificationColumns) +
                      " FROM notifications WHERE project_id = ? ORDER BY last_at DESC, id DESC "
                      "LIMIT 500");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, *pid);
    return st->Collect<NotificationRecord>(
        [&](const Stmt& r) { return NotificationFromRow(r, project); });
  }

  Status DeleteNotification(std::string_view project, int64_t id) override {
    MutexLock lock(mu_);
    auto pid = ProjectId(project);
    if (!pid.ok()) {
      return pid.status();
    }
    auto st = Prepare("DELETE FROM notifications WHERE project_id = ? AND id = ?");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, *pid).Bind(2, id);
    if (auto s = st->Exec(); !s.ok()) {
      return s.WithContext("deleting notification");
    }
    if (sqlite3_changes(db_) == 0) {
      return Status::NotFound(
          fmt::format("project '{}' has no notification {}", project, id));
    }
    return Status::Ok();
  }

  Status DeleteNotifications(std::string_view project) override {
    MutexLock lock(mu_);
    auto pid = ProjectId(project);
    if (!pid.ok()) {
      return pid.status();
    }
    auto st = Prepare("DELETE FROM notifications WHERE project_id = ?");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, *pid);
    return st->Exec().WithContext("deleting notifications");
  }

  Status SetProjectEnv(std::string_view project,
                       const std::vector<std::pair<std::string, std::string>>& env) override {
    MutexLock lock(mu_);
    Transaction tx(this);
    if (auto s = tx.Begin(); !s.ok()) {
      return s;
    }
    auto pid = ProjectId(project);
    if (!pid.ok()) {
      return pid.status();
    }
    auto del = Prepare("DELETE FROM project_env WHERE project_id = ?");
    if (!del.ok()) {
      return del.status();
    }
    del->Bind(1, *pid);
    if (auto s = del->Exec(); !s.ok()) {
      return s.WithContext("storing project environment");
    }
    for (const auto& [k, v] : env) {
      auto ins = Prepare("INSERT INTO project_env (project_id, name, value) VALUES (?,?,?)");
      if (!ins.ok()) {
        return ins.status();
      }
      ins->Bind(1, *pid).Bind(2, k).Bind(3, v);
      if (auto s = ins->Exec(); !s.ok()) {
        return s.WithContext("storing project environment");
      }
    }
    return tx.Commit();
  }

  Result<std::vector<std::pair<std::string, std::string>>> GetProjectEnv(
      std::string_view project) override {
    MutexLock lock(mu_);
    auto pid = ProjectId(project);
    if (!pid.ok()) {
      return pid.status();
    }
    auto st = Prepare("SELECT name, value FROM project_env WHERE project_id = ? ORDER BY name");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, *pid);
    return st->Collect<std::pair<std::string, std::string>>(
        [&](const Stmt& r) { return std::make_pair(r.Text(0), r.Text(1)); });
  }

  Result<SessionRecord> CreateSession(std::string_view project,
                                      std::string_view pipeline) override {
    MutexLock lock(mu_);
    auto pid = ProjectId(project);
    if (!pid.ok()) {
      return pid.status();
    }
    SessionRecord rec{std::string(project), std::string(pipeline), "running", NowUnixMillis()};
    auto st = Prepare(
        "INSERT INTO sessions (project_id, pipeline, state, created_at) VALUES (?,?,?,?)");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, *pid).Bind(2, pipeline).Bind(3, rec.state).Bind(4, rec.created_at);
    if (auto r = st->Exec(); !r.ok()) {
      if (sqlite3_extended_errcode(db_) == SQLITE_CONSTRAINT_PRIMARYKEY) {
        return Status::AlreadyExists(fmt::format(
            "pipeline '{}' of project '{}' already has a session; stop it first (DELETE "
            "/api/v1/sessions/{}/{})",
            pipeline, project, project, pipeline));
      }
      return r.WithContext("creating session");
    }
    return rec;
  }

  Result<std::vector<SessionRecord>> ListSessions(std::string_view project) override {
    MutexLock lock(mu_);
    auto pid = ProjectId(project);
    if (!pid.ok()) {
      return pid.status();
    }
    auto st = Prepare(
        "SELECT pipeline, state, created_at FROM sessions WHERE project_id = ? ORDER BY pipeline");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, *pid);
    return st->Collect<SessionRecord>([&](const Stmt& r) {
      return SessionRecord{std::string(project), r.Text(0), r.Text(1), r.Int(2)};
    });
  }

  Status SetSessionState(std::string_view project, std::string_view pipeline,
                         std::string_view state) override {
    MutexLock lock(mu_);
    return ChangeSession("UPDATE sessions SET state = ? WHERE project_id = ? AND pipeline = ?",
                         project, pipeline, state);
  }

  Status DeleteSession(std::string_view project, std::string_view pipeline) override {
    MutexLock lock(mu_);
    return ChangeSession("DELETE FROM sessions WHERE project_id = ? AND pipeline = ?", project,
                         pipeline, {});
  }

  Status AddSessionService(std::string_view project, std::string_view service) override {
    MutexLock lock(mu_);
    auto pid = ProjectId(project);
    if (!pid.ok()) {
      return pid.status();
    }
    auto st = Prepare("INSERT OR IGNORE INTO session_services (project_id, service) VALUES (?,?)");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, *pid).Bind(2, service);
    return st->Exec().WithContext("recording a session's service");
  }

  Result<std::vector<std::string>> SessionServices(std::string_view project) override {
    MutexLock lock(mu_);
    auto pid = ProjectId(project);
    if (!pid.ok()) {
      return pid.status();
    }
    auto st = Prepare(
        "SELECT service FROM session_services WHERE project_id = ? ORDER BY service");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, *pid);
    return st->Collect<std::string>([](const Stmt& r) { return r.Text(0); });
  }

  Status ClearSessionServices(std::string_view project) override {
    MutexLock lock(mu_);
    auto pid = ProjectId(project);
    if (!pid.ok()) {
      return pid.status();
    }
    auto st = Prepare("DELETE FROM session_services WHERE project_id = ?");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, *pid);
    return st->Exec().WithContext("clearing a project's session services");
  }

  Result<RecipeRecord> CreateRecipe(const RecipeRecord& r) override {
    MutexLock lock(mu_);
    auto pid = ProjectId(r.project);
    if (!pid.ok()) {
      return pid.status();
    }
    auto taken = Prepare("SELECT name, url FROM recipes WHERE project_id = ? AND (name = ? OR url = ?)");
    if (!taken.ok()) {
      return taken.status();
    }
    taken->Bind(1, *pid).Bind(2, r.name).Bind(3, r.url);
    if (auto row = taken->Step(); !row.ok()) {
      return row.status();
    } else if (*row) {
      if (taken->Text(0) == r.name) {
        return Status::AlreadyExists(fmt::format(
            "project '{}' already has a recipe named '{}'; destruct it first or pick another name",
            r.project, r.name));
      }
      return Status::AlreadyExists(fmt::format(
          "recipe '{}' of project '{}' already serves the url '{}'; pick another url",
          taken->Text(0), r.project, r.url));
    }
    RecipeRecord out = r;
    out.created_at = out.updated_at = NowUnixMillis();
    auto st = Prepare(
        "INSERT INTO recipes (project_id, name, url, definition, started, overrides, created_at, "
        "updated_at) VALUES (?,?,?,?,?,?,?,?)");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, *pid).Bind(2, r.name).Bind(3, r.url).Bind(4, r.definition_json);
    st->Bind(5, int64_t{r.started ? 1 : 0}).Bind(6, r.overrides_json);
    st->Bind(7, out.created_at).Bind(8, out.updated_at);
    if (auto e = st->Exec(); !e.ok()) {
      return e.WithContext("storing recipe");
    }
    return out;
  }

  Result<std::vector<RecipeRecord>> ListRecipes(std::string_view project) override {
    MutexLock lock(mu_);
    auto st = Prepare(
        "SELECT p.name, r.name, r.url, r.definition, r.started, r.overrides, r.created_at, "
        "r.updated_at FROM recipes r JOIN projects p ON p.id = r.project_id "
        "WHERE ?1 = '' OR p.name = ?1 ORDER BY p.name, r.name");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, project);
    return st->Collect<RecipeRecord>([](const Stmt& r) {
      return RecipeRecord{r.Text(0), r.Text(1), r.Text(2), r.Text(3),
                          r.Int(4) != 0, r.Text(5), r.Int(6), r.Int(7)};
    });
  }

  Result<RecipeRecord> GetRecipe(std::string_view project, std::string_view name) override {
    MutexLock lock(mu_);
    auto pid = ProjectId(project);
    if (!pid.ok()) {
      return pid.status();
    }
    auto st = Prepare(
        "SELECT name, url, definition, started, overrides, created_at, updated_at FROM recipes "
        "WHERE project_id = ? AND name = ?");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, *pid).Bind(2, name);
    auto row = st->Step();
    if (!row.ok()) {
      return row.status();
    }
    if (!*row) {
      return Status::NotFound(fmt::format(
          "project '{}' has no recipe '{}'; see them with: berth recipes ls", project, name));
    }
    return RecipeRecord{std::string(project), st->Text(0), st->Text(1), st->Text(2),
                        st->Int(3) != 0,      st->Text(4), st->Int(5),  st->Int(6)};
  }

  Status SetRecipeStarted(std::string_view project, std::string_view name, bool started,
                          std::string_view overrides_json) override {
    MutexLock lock(mu_);
    return ChangeRecipe(
        "UPDATE recipes SET started = ?3, overrides = ?4, updated_at = ?5 "
        "WHERE project_id = ?1 AND name = ?2",
        project, name, std::pair{started, overrides_json});
  }

  Status DeleteRecipe(std::string_view project, std::string_view name) override {
    MutexLock lock(mu_);
    return ChangeRecipe("DELETE FROM recipes WHERE project_id = ?1 AND name = ?2", project, name,
                        std::nullopt);
  }

  Result<NodeTypeRecord> PutNodeType(const NodeTypeRecord& n) override {
    MutexLock lock(mu_);
    auto pid = ProjectId(n.project);
    if (!pid.ok()) {
      return pid.status();
    }
    NodeTypeRecord out = n;
    out.created_at = NowUnixMillis();
    auto st = Prepare(
        "INSERT INTO node_types (project_id, name, digest, created_at) VALUES (?,?,?,?) "
        "ON CONFLICT (project_id, name) DO UPDATE SET digest = excluded.digest, "
        "created_at = excluded.created_at");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, *pid).Bind(2, n.name).Bind(3, n.digest).Bind(4, out.created_at);
    if (auto e = st->Exec(); !e.ok()) {
      return e.WithContext("storing node type");
    }
    return out;
  }

  Result<std::vector<NodeTypeRecord>> ListNodeTypes(std::string_view project) override {
    MutexLock lock(mu_);
    auto pid = ProjectId(project);
    if (!pid.ok()) {
      return pid.status();
    }
    auto st = Prepare(
        "SELECT name, digest, created_at FROM node_types WHERE project_id = ? ORDER BY name");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, *pid);
    return st->Collect<NodeTypeRecord>([&](const Stmt& r) {
      return NodeTypeRecord{std::string(project), r.Text(0), r.Text(1), r.Int(2)};
    });
  }

  Status DeleteNodeType(std::string_view project, std::string_view name) override {
    MutexLock lock(mu_);
    auto pid = ProjectId(project);
    if (!pid.ok()) {
      return pid.status();
    }
    auto st = Prepare("DELETE FROM node_types WHERE project_id = ? AND name = ?");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, *pid).Bind(2, name);
    if (auto e = st->Exec(); !e.ok()) {
      return e.WithContext("deleting node type");
    }
    if (sqlite3_changes(db_) == 0) {
      return Status::NotFound(
          fmt::format("project '{}' has no node type '{}'", project, name));
    }
    return Status::Ok();
  }

  Result<std::string> GetSetting(std::string_view key) override {
    MutexLock lock(mu_);
    auto st = Prepare("SELECT value FROM settings WHERE key = ?");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, key);
    auto row = st->Step();
    if (!row.ok()) {
      return row.status();
    }
    return *row ? st->Text(0) : std::string();
  }

  Status SetSetting(std::string_view key, std::string_view value) override {
    MutexLock lock(mu_);
    auto st = value.empty()
                  ? Prepare("DELETE FROM settings WHERE key = ?1")
                  : Prepare("INSERT INTO settings (key, value) VALUES (?1, ?2) "
                            "ON CONFLICT (key) DO UPDATE SET value = excluded.value");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, key);
    if (!value.empty()) {
      st->Bind(2, value);
    }
    return st->Exec().WithContext("storing setting");
  }

  Result<PipelineRecord> PutPipeline(const PipelineRecord& p) override {
    MutexLock lock(mu_);
    auto pid = ProjectId(p.project);
    if (!pid.ok()) {
      return pid.status();
    }
    PipelineRecord out = p;
    int64_t now = NowUnixMillis();
    out.updated_at = now;
    out.created_at = now;
    if (auto prev = Prepare("SELECT created_at FROM pipelines WHERE project_id = ? AND name = ?");
        prev.ok()) {
      prev->Bind(1, *pid).Bind(2, p.name);
      if (auto row = prev->Step(); row.ok() && *row) {
        out.created_at = prev->Int(0);
      }
    }
    auto st = Prepare(
        "INSERT INTO pipelines (project_id, name, uuid, definition, project_dir, created_at, "
        "updated_at) VALUES (?,?,?,?,?,?,?) ON CONFLICT (project_id, name) DO UPDATE SET "
        "uuid = excluded.uuid, definition = excluded.definition, "
        "project_dir = excluded.project_dir, updated_at = excluded.updated_at");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, *pid).Bind(2, p.name).Bind(3, p.uuid).Bind(4, p.definition_json);
    st->Bind(5, p.project_dir).Bind(6, out.created_at).Bind(7, out.updated_at);
    if (auto r = st->Exec(); !r.ok()) {
      return r.WithContext("storing pipeline");
    }
    return out;
  }

  Result<std::vector<PipelineRecord>> ListPipelines(std::string_view project) override {
    MutexLock lock(mu_);
    auto pid = ProjectId(project);
    if (!pid.ok()) {
      return pid.status();
    }
    auto st = Prepare(
        "SELECT name, uuid, definition, project_dir, created_at, updated_at FROM pipelines "
        "WHERE project_id = ? ORDER BY name");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, *pid);
    return st->Collect<PipelineRecord>([&](const Stmt& r) {
      return PipelineRecord{std::string(project), r.Text(0), r.Text(1), r.Text(2),
                            r.Text(3),            r.Int(4),  r.Int(5)};
    });
  }

  Result<PipelineRecord> GetPipeline(std::string_view project, std::string_view name) override {
    MutexLock lock(mu_);
    auto pid = ProjectId(project);
    if (!pid.ok()) {
      return pid.status();
    }
    auto st = Prepare(
        "SELECT name, uuid, definition, project_dir, created_at, updated_at FROM pipelines "
        "WHERE project_id = ? AND name = ?");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, *pid).Bind(2, name);
    auto row = st->Step();
    if (!row.ok()) {
      return row.status();
    }
    if (!*row) {
      return Status::NotFound(fmt::format(
          "project '{}' has no pipeline '{}'; add it with: berth pipelines add FILE", project,
          name));
    }
    return PipelineRecord{std::string(project), st->Text(0), st->Text(1), st->Text(2),
                          st->Text(3),          st->Int(4),  st->Int(5)};
  }

  Status DeletePipeline(std::string_view project, std::string_view name) override {
    MutexLock lock(mu_);
    auto pid = ProjectId(project);
    if (!pid.ok()) {
      return pid.status();
    }
    auto st = Prepare("DELETE FROM pipelines WHERE project_id = ? AND name = ?");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, *pid).Bind(2, name);
    if (auto r = st->Exec(); !r.ok()) {
      return r.WithContext("deleting pipeline");
    }
    if (sqlite3_changes(db_) == 0) {
      return Status::NotFound(fmt::format("project '{}' has no pipeline '{}'", project, name));
    }
    return Status::Ok();
  }

  Status CreateRun(const RunRecord& run) override {
    MutexLock lock(mu_);
    auto pid = ProjectId(run.project);
    if (!pid.ok()) {
      return pid.status();
    }
    Transaction tx(this);
    if (auto s = tx.Begin(); !s.ok()) {
      return s;
    }
    auto st = Prepare(
        "INSERT INTO runs (id, project_id, pipeline, pipeline_uuid, client_project_uuid, "
        "run_type, kind, job, definition, plan, project_dir, status, created_at, started_at, "
        "finished_at, message) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, run.id).Bind(2, *pid).Bind(3, run.pipeline).Bind(4, run.pipeline_uuid);
    st->Bind(5, run.client_project_uuid).Bind(6, run.run_type).Bind(7, run.kind);
    st->Bind(8, run.job).Bind(9, run.definition_json).Bind(10, run.plan_json);
    st->Bind(11, run.project_dir).Bind(12, run.status).Bind(13, run.created_at);
    st->Bind(14, run.started_at).Bind(15, run.finished_at).Bind(16, run.message);
    if (auto r = st->Exec(); !r.ok()) {
      if (sqlite3_extended_errcode(db_) == SQLITE_CONSTRAINT_PRIMARYKEY) {
        return Status::AlreadyExists(fmt::format("run {} exists already", run.id));
      }
      return r.WithContext("storing run");
    }
    for (const auto& step : run.steps) {
      auto ss = Prepare(
          "INSERT INTO step_runs (run_id, step, title, position, status, started_at, "
          "finished_at, exit_code, message) VALUES (?,?,?,?,?,?,?,?,?)");
      if (!ss.ok()) {
        return ss.status();
      }
      ss->Bind(1, run.id).Bind(2, step.step).Bind(3, step.title).Bind(4, step.position);
      ss->Bind(5, step.status).Bind(6, step.started_at).Bind(7, step.finished_at);
      if (step.exit_code) {
        ss->Bind(8, *step.exit_code);
      } else {
        ss->BindNull(8);
      }
      ss->Bind(9, step.message);
      if (auto r = ss->Exec(); !r.ok()) {
        return r.WithContext(fmt::format("storing step {} of run {}", step.step, run.id));
      }
    }
    return tx.Commit();
  }

  Result<RunRecord> GetRun(std::string_view id) override {
    MutexLock lock(mu_);
    auto st = Prepare(std::string(kRunSelect) + " WHERE r.id = ?");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, id);
    auto row = st->Step();
    if (!row.ok()) {
      return row.status();
    }
    if (!*row) {
      return Status::NotFound(fmt::format("there is no run {}", id));
    }
    RunRecord run = RunFromRow(*st, true);
    if (auto s = LoadSteps(run); !s.ok()) {
      return s;
    }
    return run;
  }

  Result<std::vector<RunRecord>> ListRuns(const RunFilter& f) override {
    MutexLock lock(mu_);
    std::string sql = kRunSelect;
    std::vector<std::string> where;
    std::optional<int64_t> pid;  // bound first, then the strings in order
    std::vector<std::string> args;
    if (!f.project.empty()) {
      auto p = ProjectId(f.project);
      if (!p.ok()) {
        return p.status();
      }
      where.push_back("r.project_id = ?");
      pid = *p;
    }
    for (const auto& [column, value] : {std::pair<const char*, const std::string*>{
                                            "r.pipeline = ?", &f.pipeline},
                                        {"r.pipeline_uuid = ?", &f.pipeline_uuid},
                                        {"r.job = ?", &f.job}}) {
      if (!value->empty()) {
        where.push_back(column);
        args.push_back(*value);
      }
    }
    if (f.unfinished_only) {
      where.push_back("r.status IN ('PENDING', 'STARTED')");
    }
    for (size_t i = 0; i < where.size(); ++i) {
      sql += (i == 0 ? " WHERE " : " AND ") + where[i];
    }
    sql += " ORDER BY r.created_at DESC, r.rowid DESC";
    if (f.limit > 0) {
      sql += fmt::format(" LIMIT {}", f.limit);
    }
    auto st = Prepare(sql);
    if (!st.ok()) {
      return st.status();
    }
    int n = 1;
    if (pid) {
      st->Bind(n++, *pid);
    }
    for (const auto& a : args) {
      st->Bind(n++, a);
    }
    auto runs = st->Collect<RunRecord>(
        [&](const Stmt& r) { return RunFromRow(r, f.with_definition); });
    if (!runs.ok()) {
      return runs.status();
    }
    for (auto& run : *runs) {
      if (auto s = LoadSteps(run); !s.ok()) {
        return s;
      }
    }
    return runs;
  }

  Status SaveRunProgress(const RunProgress& p) override {
    MutexLock lock(mu_);
    Transaction tx(this);
    if (auto s = tx.Begin(); !s.ok()) {
      return s;
    }
    // End states are final: every update is guarded by the current status.
    constexpr const char* kOpen = "status IN ('PENDING', 'STARTED')";
    if (p.status || p.started_at || p.finished_at || p.message) {
      auto st = Prepare(fmt::format(
          "UPDATE runs SET status = COALESCE(?, status), "
          "started_at = CASE WHEN started_at = 0 THEN ? ELSE started_at END, "
          "finished_at = CASE WHEN finished_at = 0 THEN ? ELSE finished_at END, "
          "message = COALESCE(?, message) WHERE id = ? AND {}",
          kOpen));
      if (!st.ok()) {
        return st.status();
      }
      if (p.status) {
        st->Bind(1, *p.status);
      } else {
        st->BindNull(1);
      }
      st->Bind(2, p.started_at).Bind(3, p.finished_at);
      if (p.message) {
        st->Bind(4, *p.message);
      } else {
        st->BindNull(4);
      }
      st->Bind(5, p.run);
      if (auto r = st->Exec(); !r.ok()) {
        return r.WithContext(fmt::format("updating run {}", p.run));
      }
    }
    for (const auto& step : p.steps) {
      auto st = Prepare(fmt::format(
          "UPDATE step_runs SET status = ?, "
          "started_at = CASE WHEN started_at = 0 THEN ? ELSE started_at END, "
          "finished_at = CASE WHEN finished_at = 0 THEN ? ELSE finished_at END, "
          "exit_code = COALESCE(?, exit_code), message = ? "
          "WHERE run_id = ? AND step = ? AND {}",
          kOpen));
      if (!st.ok()) {
        return st.status();
      }
      st->Bind(1, step.status).Bind(2, step.started_at).Bind(3, step.finished_at);
      if (step.exit_code) {
        st->Bind(4, *step.exit_code);
      } else {
        st->BindNull(4);
      }
      st->Bind(5, step.message).Bind(6, p.run).Bind(7, step.step);
      if (auto r = st->Exec(); !r.ok()) {
        return r.WithContext(fmt::format("updating step {} of run {}", step.step, p.run));
      }
    }
    return tx.Commit();
  }

  Status DeleteRun(std::string_view id) override {
    MutexLock lock(mu_);
    auto st = Prepare("DELETE FROM runs WHERE id = ?");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, id);
    if (auto r = st->Exec(); !r.ok()) {
      return r.WithContext("deleting run");
    }
    if (sqlite3_changes(db_) == 0) {
      return Status::NotFound(fmt::format("there is no run {}", id));
    }
    return Status::Ok();
  }

  Status CreateJob(const JobRecord& j) override {
    MutexLock lock(mu_);
    auto pid = ProjectId(j.project);
    if (!pid.ok()) {
      return pid.status();
    }
    auto st = Prepare(
        "INSERT INTO jobs (id, project_id, name, pipeline, definition, project_dir, schedule, "
        "time_zone, at, parameters, status, next_fire, last_fire, created_at, finished_at, "
        "message) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, j.id).Bind(2, *pid).Bind(3, j.name).Bind(4, j.pipeline);
    st->Bind(5, j.definition_json).Bind(6, j.project_dir).Bind(7, j.schedule);
    st->Bind(8, j.time_zone).Bind(9, j.at).Bind(10, j.parameters_json).Bind(11, j.status);
    st->Bind(12, j.next_fire).Bind(13, j.last_fire).Bind(14, j.created_at);
    st->Bind(15, j.finished_at).Bind(16, j.message);
    if (auto r = st->Exec(); !r.ok()) {
      if (sqlite3_extended_errcode(db_) == SQLITE_CONSTRAINT_PRIMARYKEY) {
        return Status::AlreadyExists(fmt::format("job {} exists already", j.id));
      }
      return r.WithContext("storing job");
    }
    return Status::Ok();
  }

  Result<JobRecord> GetJob(std::string_view id) override {
    MutexLock lock(mu_);
    auto st = Prepare(std::string(kJobSelect) + " WHERE j.id = ?");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, id);
    auto row = st->Step();
    if (!row.ok()) {
      return row.status();
    }
    if (!*row) {
      return Status::NotFound(fmt::format("there is no job {}", id));
    }
    return JobFromRow(*st);
  }

  Result<std::vector<JobRecord>> ListJobs(std::string_view project, bool active_only) override {
    MutexLock lock(mu_);
    std::string sql = kJobSelect;
    std::optional<int64_t> pid;
    if (!project.empty()) {
      auto p = ProjectId(project);
      if (!p.ok()) {
        return p.status();
      }
      pid = *p;
      sql += " WHERE j.project_id = ?";
    }
    if (active_only) {
      sql += pid ? " AND" : " WHERE";
      sql += " j.status IN ('PENDING', 'STARTED', 'PAUSED')";
    }
    sql += " ORDER BY j.created_at DESC, j.rowid DESC";
    auto st = Prepare(sql);
    if (!st.ok()) {
      return st.status();
    }
    if (pid) {
      st->Bind(1, *pid);
    }
    return st->Collect<JobRecord>([&](const Stmt& r) { return JobFromRow(r); });
  }

  Status UpdateJob(const JobRecord& j) override {
    MutexLock lock(mu_);
    auto st = Prepare(
        "UPDATE jobs SET status = ?, next_fire = ?, last_fire = ?, finished_at = ?, "
        "message = ? WHERE id = ? AND status IN ('PENDING', 'STARTED', 'PAUSED')");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, j.status).Bind(2, j.next_fire).Bind(3, j.last_fire).Bind(4, j.finished_at);
    st->Bind(5, j.message).Bind(6, j.id);
    if (auto r = st->Exec(); !r.ok()) {
      return r.WithContext(fmt::format("updating job {}", j.id));
    }
    if (sqlite3_changes(db_) == 0) {
      return Status::FailedPrecondition(
          fmt::format("job {} has ended or does not exist; it cannot change", j.id));
    }
    return Status::Ok();
  }

  Status AddEvent(std::string_view project, std::string_view name, std::string_view kind,
                  std::string_view message) override {
    MutexLock lock(mu_);
    // The insert and the trim in one transaction: one commit per event, not two.
    Transaction tx(this);
    if (auto s = tx.Begin(); !s.ok()) {
      return s;
    }
    auto sid = ServiceId(project, name);
    if (!sid.ok()) {
      return sid.status();
    }
    auto st = Prepare("INSERT INTO events (service_id, time, kind, message) VALUES (?,?,?,?)");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, *sid).Bind(2, NowUnixMillis()).Bind(3, kind).Bind(4, message);
    if (auto s = st->Exec(); !s.ok()) {
      return s.WithContext("recording event");
    }
    // Keep the newest 200 events of a service.
    auto trim = Prepare(
        "DELETE FROM events WHERE service_id = ? AND id <= "
        "(SELECT id FROM events WHERE service_id = ? ORDER BY id DESC LIMIT 1 OFFSET 200)");
    if (!trim.ok()) {
      return trim.status();
    }
    trim->Bind(1, *sid).Bind(2, *sid);
    if (auto s = trim->Exec(); !s.ok()) {
      return s.WithContext("recording event");
    }
    return tx.Commit();
  }

  Result<std::vector<EventRecord>> ListEvents(std::string_view project, std::string_view name,
                                              int limit) override {
    return Read([&](Conn c) -> Result<std::vector<EventRecord>> {
      auto sid = ServiceIdOn(c, project, name);
      if (!sid.ok()) {
        return sid.status();
      }
      auto st = PrepareOn(
          c,
          "SELECT time, kind, message FROM events WHERE service_id = ? ORDER BY id DESC LIMIT ?");
      if (!st.ok()) {
        return st.status();
      }
      st->Bind(1, *sid).Bind(2, limit);
      return st->Collect<EventRecord>([&](const Stmt& r) {
        return EventRecord{r.Int(0), r.Text(1), r.Text(2)};
      });
    });
  }

 private:
  static constexpr const char* kTokenSelect =
      "SELECT t.id, p.name, t.description, t.created_at, t.revoked_at FROM tokens t "
      "LEFT JOIN projects p ON p.id = t.project_id";


  static constexpr const char* kJobSelect =
      "SELECT j.id, p.name, j.name, j.pipeline, j.definition, j.project_dir, j.schedule, "
      "j.time_zone, j.at, j.parameters, j.status, j.next_fire, j.last_fire, j.created_at, "
      "j.finished_at, j.message FROM jobs j JOIN projects p ON p.id = j.project_id";

  static JobRecord JobFromRow(const Stmt& r) {
    JobRecord j;
    j.id = r.Text(0);
    j.project = r.Text(1);
    j.name = r.Text(2);
    j.pipeline = r.Text(3);
    j.definition_json = r.Text(4);
    j.project_dir = r.Text(5);
    j.schedule = r.Text(6);
    j.time_zone = r.Text(7);
    j.at = r.Int(8);
    j.parameters_json = r.Text(9);
    j.status = r.Text(10);
    j.next_fire = r.Int(11);
    j.last_fire = r.Int(12);
    j.created_at = r.Int(13);
    j.finished_at = r.Int(14);
    j.message = r.Text(15);
    return j;
  }
  static constexpr const char* kRunSelect =
      "SELECT r.id, p.name, r.pipeline, r.pipeline_uuid, r.client_project_uuid, r.run_type, "
      "r.kind, r.job, r.project_dir, r.status, r.created_at, r.started_at, r.finished_at, "
      "r.message, r.definition, r.plan FROM runs r JOIN projects p ON p.id = r.project_id";

  static RunRecord RunFromRow(const Stmt& r, bool with_definition) {
    RunRecord run;
    run.id = r.Text(0);
    run.project = r.Text(1);
    run.pipeline = r.Text(2);
    run.pipeline_uuid = r.Text(3);
    run.client_project_uuid = r.Text(4);
    run.run_type = r.Text(5);
    run.kind = r.Text(6);
    run.job = r.Text(7);
    run.project_dir = r.Text(8);
    run.status = r.Text(9);
    run.created_at = r.Int(10);
    run.started_at = r.Int(11);
    run.finished_at = r.Int(12);
    run.message = r.Text(13);
    if (with_definition) {
      run.definition_json = r.Text(14);
      run.plan_json = r.Text(15);
    }
    return run;
  }

  Status LoadSteps(RunRecord& run) REQUIRES(mu_) {
    auto st = Prepare(
        "SELECT step, title, position, status, started_at, finished_at, exit_code, message "
        "FROM step_runs WHERE run_id = ? ORDER BY position");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, run.id);
    auto steps = st->Collect<StepRunRecord>([&](const Stmt& r) {
      StepRunRecord s;
      s.step = r.Text(0);
      s.title = r.Text(1);
      s.position = static_cast<int>(r.Int(2));
      s.status = r.Text(3);
      s.started_at = r.Int(4);
      s.finished_at = r.Int(5);
      if (!r.IsNull(6)) {
        s.exit_code = static_cast<int>(r.Int(6));
      }
      s.message = r.Text(7);
      return s;
    });
    if (!steps.ok()) {
      return steps.status();
    }
    run.steps = std::move(*steps);
    return Status::Ok();
  }

  static constexpr const char* kServiceSelect =
      "SELECT s.name, s.created_at, s.updated_at, s.revision, r.definition, s.defaults, "
      "s.desired_running, s.active_revision, s.failed_revision, p.name, s.main_version "
      "FROM services s "
      "JOIN projects p ON p.id = s.project_id "
      "LEFT JOIN revisions r ON r.service_id = s.id AND r.revision = s.revision";

  // BEGIN IMMEDIATE takes the write lock up front so that a transaction never fails half-way
  // on a lock upgrade; it rolls back unless committed.
  class Transaction {
   public:
    explicit Transaction(SqliteStore* store) : store_(store) {}
    ~Transaction() {
      if (open_) {
        sqlite3_exec(store_->db_, "ROLLBACK", nullptr, nullptr, nullptr);
      }
    }
    Status Begin() {
      if (sqlite3_exec(store_->db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) {
        return SqliteError(store_->db_, "beginning transaction");
      }
      open_ = true;
      return Status::Ok();
    }
    Status Commit() {
      if (sqlite3_exec(store_->db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
        return SqliteError(store_->db_, "committing transaction");
      }
      open_ = false;
      return Status::Ok();
    }

   private:
    SqliteStore* store_;
    bool open_ = false;
  };

  // A connection and its statement cache, as a call runs on it: the writer (under mu_) or the
  // reader (under read_mu_).
  struct Conn {
    sqlite3* db;
    std::map<std::string, sqlite3_stmt*>* cache;
  };
  Conn Writer() REQUIRES(mu_) { return {db_, &cache_}; }

  static Result<Stmt> PrepareOn(Conn c, const std::string& sql) {
    auto it = c.cache->find(sql);
    if (it == c.cache->end()) {
      sqlite3_stmt* stmt = nullptr;
      if (sqlite3_prepare_v3(c.db, sql.c_str(), static_cast<int>(sql.size()),
                             SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) != SQLITE_OK) {
        return SqliteError(c.db, "preparing statement");
      }
      it = c.cache->emplace(sql, stmt).first;
    }
    return Result<Stmt>(std::in_place, c.db, it->second);
  }
  Result<Stmt> Prepare(const std::string& sql) REQUIRES(mu_) { return PrepareOn(Writer(), sql); }

  // Reads that API GETs make run here. On a file store they take a read-only connection of
  // their own: in WAL mode a reader never waits for a writer, so a status call does not
  // queue behind a deploy's transaction. A ":memory:" store has one connection for both.
  template <typename F>
  auto Read(F f) -> decltype(f(std::declval<Conn>())) {
    if (read_db_ == nullptr) {
      MutexLock lock(mu_);
      return f(Writer());
    }
    MutexLock lock(read_mu_);
    return f(Conn{read_db_, &read_cache_});
  }

  Status Migrate() {
    int version = 0;
    {
      sqlite3_stmt* st = nullptr;
      if (sqlite3_prepare_v2(db_, "PRAGMA user_version", -1, &st, nullptr) != SQLITE_OK) {
        return SqliteError(db_, "reading schema version");
      }
      if (sqlite3_step(st) == SQLITE_ROW) {
        version = sqlite3_column_int(st, 0);
      }
      sqlite3_finalize(st);
    }
    constexpr int kKnown = static_cast<int>(std::size(kMigrations));
    if (version > kKnown) {
      return Status::FailedPrecondition(fmt::format(
          "store schema version {} is newer than this berth understands ({}); upgrade berth",
          version, kKnown));
    }
    for (int v = version; v < kKnown; ++v) {
      Transaction tx(this);
      if (auto s = tx.Begin(); !s.ok()) {
        return s;
      }
      if (sqlite3_exec(db_, kMigrations[v], nullptr, nullptr, nullptr) != SQLITE_OK) {
        return SqliteError(db_, fmt::format("applying schema migration {}", v + 1));
      }
      std::string set_version = fmt::format("PRAGMA user_version = {}", v + 1);
      if (sqlite3_exec(db_, set_version.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
        return SqliteError(db_, "recording schema version");
      }
      if (auto s = tx.Commit(); !s.ok()) {
        return s;
      }
    }
    return Status::Ok();
  }

  // Runs an UPDATE (`started` and its overrides bound as ?3, ?4, the time as ?5) or a DELETE
  // of one recipe.
  Status ChangeRecipe(const char* sql, std::string_view project, std::string_view name,
                      std::optional<std::pair<bool, std::string_view>> started) REQUIRES(mu_) {
    auto pid = ProjectId(project);
    if (!pid.ok()) {
      return pid.status();
    }
    auto st = Prepare(sql);
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, *pid).Bind(2, name);
    if (started) {
      st->Bind(3, int64_t{started->first ? 1 : 0}).Bind(4, started->second);
      st->Bind(5, NowUnixMillis());
    }
    if (auto e = st->Exec(); !e.ok()) {
      return e.WithContext("changing recipe");
    }
    if (sqlite3_changes(db_) == 0) {
      return Status::NotFound(fmt::format("project '{}' has no recipe '{}'", project, name));
    }
    return Status::Ok();
  }

  Result<int64_t> ProjectId(std::string_view project) REQUIRES(mu_) {
    return ProjectIdOn(Writer(), project);
  }
  static Result<int64_t> ProjectIdOn(Conn c, std::string_view project) {
    auto st = PrepareOn(c, "SELECT id FROM projects WHERE name = ?");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, project);
    auto row = st->Step();
    if (!row.ok()) {
      return row.status();
    }
    if (!*row) {
      return Status::NotFound(fmt::format("project '{}' does not exist", project));
    }
    return st->Int(0);
  }

  Result<int64_t> ServiceId(std::string_view project, std::string_view name) REQUIRES(mu_) {
    return ServiceIdOn(Writer(), project, name);
  }
  static Result<int64_t> ServiceIdOn(Conn c, std::string_view project, std::string_view name) {
    auto st = PrepareOn(c,
                        "SELECT s.id FROM services s JOIN projects p ON p.id = s.project_id "
                        "WHERE p.name = ? AND s.name = ?");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, project).Bind(2, name);
    auto row = st->Step();
    if (!row.ok()) {
      return row.status();
    }
    if (!*row) {
      return Status::NotFound(
          fmt::format("service '{}' does not exist in project '{}'", name, project));
    }
    return st->Int(0);
  }

  Result<ServiceRecord> GetServiceLocked(std::string_view project, std::string_view name) REQUIRES(mu_) {
    return GetServiceOn(Writer(), project, name);
  }
  static Result<ServiceRecord> GetServiceOn(Conn c, std::string_view project,
                                            std::string_view name) {
    auto st = PrepareOn(c, std::string(kServiceSelect) + " WHERE p.name = ? AND s.name = ?");
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, project).Bind(2, name);
    auto row = st->Step();
    if (!row.ok()) {
      return row.status();
    }
    if (!*row) {
      return Status::NotFound(
          fmt::format("service '{}' does not exist in project '{}'", name, project));
    }
    return ServiceFromRow(*st, project);
  }

  Result<TokenInfo> FindToken(std::string_view where, std::string_view key, std::string not_found) REQUIRES(mu_) {
    auto st = Prepare(kTokenSelect + std::string(where));
    if (!st.ok()) {
      return st.status();
    }
    st->Bind(1, key);
    auto row = st->Step();
    if (!row.ok()) {
      return row.status();
    }
    if (!*row) {
      return Status::NotFound(std::move(not_found));
    }
    return TokenFromRow(*st);
  }

  static TokenInfo TokenFromRow(const Stmt& st) {
    TokenInfo t;
    t.id = st.Text(0);
    if (!st.IsNull(1)) {
      t.project = st.Text(1);
    }
    t.description = st.Text(2);
    t.created_at = st.Int(3);
    if (!st.IsNull(4)) {
      t.revoked_at = st.Int(4);
    }
    return t;
  }

  // Runs an UPDATE or DELETE of one session (`state` bound first when given).
  Status ChangeSession(const std::string& sql, std::string_view project,
                       std::string_view pipeline, std::optional<std::string_view> state) REQUIRES(mu_) {
    auto pid = ProjectId(project);
    if (!pid.ok()) {
      return pid.status();
    }
    auto st = Prepare(sql);
    if (!st.ok()) {
      return st.status();
    }
    int i = 1;
    if (state) {
      st->Bind(i++, *state);
    }
    st->Bind(i, *pid);
    st->Bind(i + 1, pipeline);
    if (auto s = st->Exec(); !s.ok()) {
      return s.WithContext("changing session");
    }
    if (sqlite3_changes(db_) == 0) {
      return Status::NotFound(
          fmt::format("project '{}' has no session for pipeline '{}'", project, pipeline));
    }
    return Status::Ok();
  }

  static constexpr const char* kNotificationColumns =
      "id, service, version, instance, severity, message, count, first_at, last_at, emails, "
      "timer";
  static NotificationRecord NotificationFromRow(const Stmt& r, std::string_view project) {
    NotificationRecord n;
    n.id = r.Int(0);
    n.project = std::string(project);
    n.service = r.Text(1);
    n.version = r.Text(2);
    n.instance = r.Text(3);
    n.severity = r.Text(4);
    n.message = r.Text(5);
    n.count = r.Int(6);
    n.first_at = r.Int(7);
    n.last_at = r.Int(8);
    n.emails_json = r.Text(9);
    n.timer_s = static_cast<int>(r.Int(10));
    return n;
  }

  static ServiceRecord ServiceFromRow(const Stmt& st, std::string_view project) {
    ServiceRecord rec;
    rec.project = std::string(project);
    rec.name = st.Text(0);
    rec.created_at = st.Int(1);
    rec.updated_at = st.Int(2);
    rec.revision = static_cast<int>(st.Int(3));
    rec.definition_json = st.Text(4);
    rec.defaults_json = st.Text(5);
    rec.desired_running = st.Int(6) != 0;
    rec.active_revision = static_cast<int>(st.Int(7));
    rec.failed_revision = static_cast<int>(st.Int(8));
    if (project.empty()) {
      rec.project = st.Text(9);
    }
    rec.main_version = st.Text(10);
    return rec;
  }

  Mutex mu_;
  sqlite3* db_;  // set once at construction; its use is serialised by mu_
  std::map<std::string, sqlite3_stmt*> cache_ GUARDED_BY(mu_);
  Mutex read_mu_;
  sqlite3* read_db_ = nullptr;  // set once by OpenReader; its use is serialised by read_mu_
  std::map<std::string, sqlite3_stmt*> read_cache_ GUARDED_BY(read_mu_);
  std::atomic<uint64_t> revocations_{0};
};

}  // namespace

Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return Status::Unavailable(fmt::format("opening SQLite store '{}': {}", path, msg));
  }
  auto store = std::make_unique<SqliteStore>(db);
  if (auto s = store->Init(); !s.ok()) {
    return s.WithContext(fmt::format("opening SQLite store '{}'", path));
  }
  if (path != ":memory:") {
    if (auto s = store->OpenReader(path); !s.ok()) {
      return s.WithContext(fmt::format("opening SQLite store '{}'", path));
    }
  }
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace berth
