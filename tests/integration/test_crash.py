"""Durability and startup: restarts, kill -9 under load, the data-dir lock, bad settings.

berth promises that every acknowledged change is one committed SQLite transaction, so a
kill -9 at any moment loses nothing that got a 2xx, and the store stays consistent.
"""
import shutil
import signal
import sqlite3
import stat
import subprocess
import threading
import time

import pytest
import requests

from conftest import (BERTH_BIN, clean_env, create_token, instance_processes,
                      pid_alive, project_with_token, push_bundle, wait_until)

# Scaled to zero, so nothing runs; the reservation is small because berth admits reservations
# against the machine's memory and the burst stores hundreds of definitions.
GOOD_DEF = {"command": ["/bin/true"], "replicas": 0, "memory-reservation": 1, "memory-limit": 2,
            "container-port": 80, "environment": []}


def definition(marker):
    """A valid definition that carries `marker`, so that a stored revision can be identified."""
    return dict(GOOD_DEF, environment=[{"name": "MARK", "value": marker}])


def snapshot(d, projects):
    """Everything the API shows about the given projects, for before/after comparisons.

    Service URLs embed the daemon's port, which port 0 picks afresh at each start; they are
    compared with the base URL taken out."""
    out = {"projects": d.get("/api/v1/projects").json(),
           "tokens": d.get("/api/v1/tokens").json()}
    for p in projects:
        services = d.get(f"/api/v1/services?project={p}").json()
        for s in services["services"]:
            assert s["url"].startswith(d.url + "/"), s
            s["url"] = s["url"][len(d.url):]
        out[p] = services
        for s in services["services"]:
            out[(p, s["name"])] = d.get(
                f"/api/v1/services/{s['name']}/revisions?project={p}").json()
    return out


def check_sqlite(path):
    """Opens the store like any SQLite client would and checks it is whole and consistent."""
    db = sqlite3.connect(f"file:{path}?mode=rw", uri=True)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        # A definition PUT bumps services.revision and inserts the revision row in one
        # transaction: the counter always equals the number of revisions and the highest one.
        mismatched = db.execute("""
            SELECT s.name, s.revision, COUNT(r.revision), COALESCE(MAX(r.revision), 0)
            FROM services s LEFT JOIN revisions r ON r.service_id = s.id
            GROUP BY s.id
            HAVING s.revision != COUNT(r.revision) OR s.revision != COALESCE(MAX(r.revision), 0)
        """).fetchall()
        assert mismatched == []
        return db.execute("SELECT COUNT(*) FROM services").fetchone()[0]
    finally:
        db.close()


# --- (a) a clean restart keeps everything ------------------------------------------------------


def test_restart_keeps_everything(daemon_factory):
    d = daemon_factory()
    p1, tok1 = project_with_token(d)
    p2, tok2 = project_with_token(d)
    spare_admin = create_token(d, admin=True, description="spare")
    revoked = create_token(d, project=p1)
    assert d.delete(f"/api/v1/tokens/{revoked['id']}").status_code == 200

    for project, token in ((p1, tok1), (p2, tok2)):
        for name in ("alpha", "beta"):
            assert d.post("/api/v1/services", json={"name": name}, token=token).status_code == 201
        for i in range(3):
            r = d.put("/api/v1/services/alpha", json=definition(f"{project}-{i}"), token=token)
            assert r.status_code == 200, r.text
    # A health check given at create through servicectl is kept with the service.
    r = requests.post(d.url + "/servicectl-1/services", headers={"X-Auth-Token": tok1},
                      json={"name": "hc", "health_check": {"rel_path": "/ping",
                                                           "status_codes": "200",
                                                           "interval": 7}}, timeout=10)
    assert r.status_code == 201, r.text
    status_before = requests.get(d.url + "/servicectl-1/services/hc",
                                 headers={"X-Auth-Token": tok1}, timeout=10).json()

    before = snapshot(d, ["default", p1, p2])
    token_file = d.data_dir / "admin.token"
    token_text = token_file.read_text()

    assert d.stop() == 0
    # A clean stop removes the address file: nobody should try to reach a stopped daemon.
    assert not (d.data_dir / "daemon.json").exists()
    d.start()

    assert snapshot(d, ["default", p1, p2]) == before
    assert token_file.read_text() == token_text
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(d.data_dir.stat().st_mode) == 0o700
    # Every token still works (or still does not).
    assert d.get("/api/v1/whoami").json()["admin"] is True
    assert d.get("/api/v1/whoami", token=spare_admin["token"]).json()["admin"] is True
    assert d.get("/api/v1/whoami", token=tok1).json()["project"] == p1
    assert d.get("/api/v1/whoami", token=tok2).json()["project"] == p2
    assert d.get("/api/v1/whoami", token=revoked["token"]).status_code == 401
    status_after = requests.get(d.url + "/servicectl-1/services/hc",
                                headers={"X-Auth-Token": tok1}, timeout=10).json()
    th_before = status_before["status"].pop("target_health")
    th_after = status_after["status"].pop("target_health")
    assert status_after == status_before
    assert th_after["health_check_path"] == d.url + f"/{p1}-hc/ping"
    assert th_before["health_check_path"].endswith(f"/{p1}-hc/ping")
    assert th_after["interval"] == th_before["interval"] == 7
    # Revision numbers continue where they were.
    assert d.put("/api/v1/services/alpha", json=GOOD_DEF, token=tok1).json()["revision"] == 4
    assert d.post("/api/v1/services", json={"name": "alpha"}, token=tok1).status_code == 409

    assert d.stop() == 0
    check_sqlite(d.data_dir / "state.db")


def test_the_admin_tokens_secret_is_in_its_file_only_not_in_the_log(daemon_factory):
    d = daemon_factory()
    log = d.log()
    assert "created admin token" in log and str(d.data_dir / "admin.token") in log, log
    assert d.admin_token not in log, "whoever reads the daemon's output would be an admin"


def test_admin_token_file_is_not_rewritten_when_revoked_and_replaced(daemon_factory):
    # The bootstrap token is made once; a restart with other admin tokens active keeps the file.
    d = daemon_factory()
    second = create_token(d, admin=True)
    first_id = d.get("/api/v1/whoami").json()["token_id"]
    assert d.delete(f"/api/v1/tokens/{first_id}", token=second["token"]).status_code == 200
    text = (d.data_dir / "admin.token").read_text()
    d.restart()
    assert (d.data_dir / "admin.token").read_text() == text
    assert d.get("/api/v1/whoami", token=second["token"]).json()["admin"] is True
    d.admin_token = second["token"]


def running_instance(d, name, token):
    """Waits until the service has one healthy instance; returns (task name, pid)."""
    def ready():
        r = requests.get(d.url + f"/servicectl-1/services/{name}",
                         headers={"X-Auth-Token": token}, timeout=10).json()["status"]
        return r if r["count_running"] == 1 and r["target_health"]["targets"] else None
    status = wait_until(ready, 30, f"service {name} to run")
    task = status["target_health"]["targets"][0]["target"]
    started = [e["message"] for e in status["events"]
               if f"instance {task} " in e["message"] and "(pid " in e["message"]]
    return task, int(started[0].rsplit("(pid ", 1)[1].rstrip(")"))


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_running_instance_survives_daemon_restart(daemon_factory, how):
    # Instances run under shims that outlive the daemon; the next daemon adopts them instead
    # of starting a second copy.
    d = daemon_factory()
    project, token = project_with_token(d)
    assert d.post("/api/v1/services", json={"name": "web"}, token=token).status_code == 201
    push_bundle(d, "web", "v1", token=token)
    body = {"container-tag": "v1", "container-port": 8080,
            "health-check": {"interval": 1, "status_codes": "200-499"}}
    assert d.put("/api/v1/services/web", json=body, token=token).status_code == 200
    task, pid = running_instance(d, "web", token)

    if how == "sigterm":
        assert d.stop() == 0
    else:
        d.kill9()
    assert pid_alive(pid), "the instance died with the daemon"
    d.start()
    assert running_instance(d, "web", token) == (task, pid)
    assert pid_alive(pid)

    assert d.delete("/api/v1/services/web", token=token).status_code == 200
    wait_until(lambda: not pid_alive(pid), 15, f"instance {pid} to stop after delete")
    wait_until(lambda: not instance_processes(d.data_dir), 15, "every instance process to end")


# --- (b) kill -9 in the middle of a burst of writes --------------------------------------------


class Burst:
    """Worker threads creating services and PUTting definitions until told to stop or the daemon
    stops answering. Records exactly what was acknowledged with a 2xx."""

    def __init__(self, d, token, prefix, workers=4, puts_per_service=3):
        self.url = d.url
        self.headers = {"Authorization": "Bearer " + token}
        self.prefix = prefix
        self.puts = puts_per_service
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.services = set()  # names whose POST got 201
        self.revisions = {}  # (name, revision) -> marker, for PUTs that got 200
        self.errors = []  # anything that was neither a 2xx nor a connection failure
        self.cut_off = 0  # workers whose request died with the daemon
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(workers)]

    def acks(self):
        with self.lock:
            return len(self.services) + len(self.revisions)

    def _run(self, worker):
        s = requests.Session()
        n = 0
        try:
            while not self.stop.is_set():
                name = f"{self.prefix}w{worker}n{n}"
                n += 1
                r = s.post(self.url + "/api/v1/services", json={"name": name},
                           headers=self.headers, timeout=30)
                if r.status_code != 201:
                    self.errors.append((name, r.status_code, r.text))
                    return
                with self.lock:
                    self.services.add(name)
                for k in range(self.puts):
                    marker = f"{name}-{k}"
                    r = s.put(self.url + f"/api/v1/services/{name}", json=definition(marker),
                              headers=self.headers, timeout=30)
                    if r.status_code != 200:
                        self.errors.append((name, r.status_code, r.text))
                        return
                    with self.lock:
                        self.revisions[(name, r.json()["revision"])] = marker
        except requests.ConnectionError:
            # The daemon died under us: this request was not acknowledged.
            with self.lock:
                self.cut_off += 1

    def start(self):
        for t in self.threads:
            t.start()

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)
            assert not t.is_alive(), "a burst worker hung"


def copy_store(data_dir, dest):
    """Copies state.db with its WAL and shared-memory files, as they were left."""
    dest.mkdir()
    for suffix in ("", "-wal", "-shm"):
        src = data_dir / f"state.db{suffix}"
        if src.exists():
            shutil.copy2(src, dest / src.name)
    return dest / "state.db"


KILL_ROUNDS = 3  # each round: burst, kill -9, restart, verify; the store must survive them all


def test_kill9_during_write_burst_loses_nothing_acknowledged(daemon_factory, tmp_path):
    d = daemon_factory()
    project, token = project_with_token(d)
    acked_services = set()
    acked_revisions = {}
    for rnd in range(KILL_ROUNDS):
        burst = Burst(d, token, prefix=f"r{rnd}")
        burst.start()
        # Let enough writes through that the kill lands in the middle of steady traffic.
        wait_until(lambda: burst.acks() >= 400 or burst.errors, 60, "400 acknowledged writes")
        assert not burst.errors, burst.errors[:3]
        assert all(t.is_alive() for t in burst.threads), "workers stopped before the kill"
        d.kill9()
        burst.join()
        assert not burst.errors, burst.errors[:3]
        assert burst.cut_off > 0, "no request was in flight when the daemon died"
        acked_services |= burst.services
        acked_revisions.update(burst.revisions)

        # What another SQLite reader finds in the files the dead daemon left behind.
        check_sqlite(copy_store(d.data_dir, tmp_path / f"copy{rnd}"))

        d.start()  # the lock died with the process; a stale daemon.json is replaced
        listed = {s["name"]: s for s in
                  d.get("/api/v1/services", token=token).json()["services"]}
        missing = acked_services - set(listed)
        assert not missing, f"acknowledged services lost after kill -9: {sorted(missing)[:5]}"
        by_service = {}
        for (name, revision), marker in acked_revisions.items():
            by_service.setdefault(name, {})[revision] = marker
        for name, revs in by_service.items():
            stored = d.get(f"/api/v1/services/{name}/revisions", token=token).json()["revisions"]
            stored_markers = {r["revision"]: r["definition"]["environment"][0]["value"]
                              for r in stored}
            for revision, marker in revs.items():
                assert stored_markers.get(revision) == marker, (name, revision, stored_markers)
            assert listed[name]["revision"] == max(stored_markers)

    assert d.stop() == 0
    services = check_sqlite(d.data_dir / "state.db")
    assert services >= len(acked_services)


def test_sigterm_during_write_burst_is_clean(daemon_factory):
    d = daemon_factory()
    project, token = project_with_token(d)
    burst = Burst(d, token, prefix="t")
    burst.start()
    wait_until(lambda: burst.acks() >= 200 or burst.errors, 60, "200 acknowledged writes")
    rc = d.stop()
    burst.join()
    assert rc == 0, d.log()[-2000:]
    assert not burst.errors, burst.errors[:3]
    d.start()
    listed = {s["name"]: s["revision"] for s in
              d.get("/api/v1/services", token=token).json()["services"]}
    assert burst.services <= set(listed)
    for (name, revision) in burst.revisions:
        assert listed[name] >= revision
    assert d.stop() == 0
    check_sqlite(d.data_dir / "state.db")


def test_sigterm_right_after_startup_is_clean(tmp_path):
    # daemon.json announces that the daemon is ready, so a supervisor (or a test) may stop it
    # the moment the file appears. That SIGTERM must get the clean shutdown too: exit 0 and
    # the address file removed, not death by the default signal action and a stale file.
    for i in range(20):
        data_dir = tmp_path / f"data{i}"
        with open(tmp_path / f"log{i}", "wb") as log:
            p = subprocess.Popen([BERTH_BIN, "serve", "--data-dir", str(data_dir), "--listen",
                                  "127.0.0.1:0"], stdout=log, stderr=log, env=clean_env())
            try:
                wait_until(lambda: (data_dir / "daemon.json").exists() or p.poll() is not None,
                           15, "daemon.json", interval=0)  # react as fast as a supervisor
                p.send_signal(signal.SIGTERM)
                rc = p.wait(timeout=15)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        assert rc == 0, f"attempt {i}: berth exited {rc} on a SIGTERM right after daemon.json"
        assert not (data_dir / "daemon.json").exists(), f"attempt {i}: stale daemon.json"


# --- (c) one data directory, one daemon --------------------------------------------------------


def serve(data_dir, *args, env=None, timeout=20):
    """Runs `berth serve` that is expected to exit by itself; returns the CompletedProcess."""
    try:
        return subprocess.run([BERTH_BIN, "serve", "--data-dir", str(data_dir), *args],
                              env=clean_env(**(env or {})), capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"berth serve {args} kept running; expected it to refuse to "
                             f"start:\n{e.stderr}")


def test_second_daemon_on_same_data_dir_refuses(daemon_factory):
    d = daemon_factory()
    info = (d.data_dir / "daemon.json").read_text()
    p = serve(d.data_dir, "--listen", "127.0.0.1:0")
    assert p.returncode != 0
    assert "another berth daemon is already using data directory" in p.stderr, p.stderr
    assert str(d.data_dir) in p.stderr
    assert f"(pid {d.proc.pid}, which holds" in p.stderr, "it names the daemon that holds it"
    # The running daemon is undisturbed, and still the one named in daemon.json.
    assert (d.data_dir / "daemon.json").read_text() == info
    assert d.get("/api/v1/whoami").status_code == 200

    # Once the first is gone, the directory is free.
    assert d.stop() == 0
    d.start()
    assert d.get("/api/v1/whoami").status_code == 200


def test_same_data_dir_through_another_path_is_still_locked(daemon_factory, tmp_path):
    d = daemon_factory()
    link = tmp_path / "link"
    link.symlink_to(d.data_dir)
    p = serve(str(link) + "/", "--listen", "127.0.0.1:0")
    assert p.returncode != 0 and "another berth daemon" in p.stderr, p.stderr


# --- (d) bad settings are refused, naming the setting ------------------------------------------


@pytest.mark.parametrize("args,env,message", [
    (["--listen", "127.0.0.1:0", "--threads", "0"], {}, "--threads 0: must be between 1 and 256"),
    (["--listen", "127.0.0.1:0", "--threads", "257"], {}, "--threads 257"),
    (["--listen", "127.0.0.1:0", "--threads", "abc"], {}, "--threads"),
    (["--listen", "nonsense"], {}, "listen address 'nonsense' has no port"),
    (["--listen", "127.0.0.1:99999"], {}, "port '99999' is not a number"),
    (["--listen", "127.0.0.1:http"], {}, "port 'http' is not a number"),
    (["--listen", "berth.example:8080"], {}, "'berth.example' is not an IP address"),
    (["--listen", "127.0.0.1:0"], {"BERTH_THREADS": "abc"}, "BERTH_THREADS: 'abc'"),
    (["--listen", "127.0.0.1:0"], {"BERTH_THREADS": "0"}, "BERTH_THREADS: '0'"),
    ([], {"BERTH_LISTEN": "garbage"}, "listen address 'garbage'"),
])
def test_bad_settings_are_refused(tmp_path, args, env, message):
    data_dir = tmp_path / "data"
    p = serve(data_dir, *args, env=env)
    assert p.returncode != 0, p.stderr
    assert message in p.stderr, p.stderr
    assert not (data_dir / "daemon.json").exists()


def test_flag_overrides_bad_env(daemon_factory):
    # Flags take precedence over the environment.
    d = daemon_factory(extra_args=["--threads", "3"], env={"BERTH_THREADS": "4"})
    assert "threads=3" in d.log()


def test_port_in_use_is_refused(daemon_factory, tmp_path):
    d = daemon_factory()
    p = serve(tmp_path / "other", "--listen", d.address)
    assert p.returncode != 0
    assert f"cannot listen on {d.address}" in p.stderr, p.stderr


@pytest.mark.parametrize("text,message", [
    ("threads: 4\ncolour: blue\n", "unknown key 'colour'"),
    ("threads: many\n", "'many' is not a number between 1 and 256"),
    ("- a\n- b\n", "must be a mapping"),
    ("listen: [1, 2\n", "reading config file"),
])
def test_bad_config_file_is_refused(tmp_path, text, message):
    config = tmp_path / "berth.yaml"
    config.write_text(text)
    p = serve(tmp_path / "data", "--listen", "127.0.0.1:0", "--config", str(config))
    assert p.returncode != 0
    assert message in p.stderr and str(config) in p.stderr, p.stderr


def test_missing_config_file_is_refused(tmp_path):
    missing = tmp_path / "nope.yaml"
    p = serve(tmp_path / "data", "--listen", "127.0.0.1:0", "--config", str(missing))
    assert p.returncode != 0 and str(missing) in p.stderr, p.stderr


def test_config_file_settings_are_used(daemon_factory, tmp_path):
    config = tmp_path / "berth.yaml"
    config.write_text("threads: 3\npublic-url: https://cfg.example.org\n")
    d = daemon_factory(extra_args=["--config", str(config)])
    assert "threads=3" in d.log()
    r = d.post("/api/v1/services", json={"name": "cfg"})
    assert r.json()["url"] == "https://cfg.example.org/default-cfg"


def test_data_dir_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    p = serve(f, "--listen", "127.0.0.1:0")
    assert p.returncode != 0 and str(f) in p.stderr, p.stderr


def test_sigint_stops_cleanly(daemon_factory):
    d = daemon_factory()
    assert d.stop(signal.SIGINT) == 0
    assert "signal=SIGINT" in d.log()
    assert not (d.data_dir / "daemon.json").exists()


def test_sigterm_with_idle_keep_alive_connection_is_prompt(daemon_factory):
    # An idle keep-alive connection must not hold shutdown up.
    d = daemon_factory()
    s = requests.Session()
    assert s.get(d.url + "/api/v1/health", timeout=10).status_code == 200
    started = time.monotonic()
    assert d.stop() == 0
    assert time.monotonic() - started < 5
    s.close()
