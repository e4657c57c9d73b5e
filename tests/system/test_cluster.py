"""Several instances of `serve` on one PostgreSQL (src/sup/cluster.h): a real
server of the test's own (pgserver.py), real instances, the fake Jimeng.

The long test runs 300 storyboards on 3 instances while one is killed with
SIGKILL, another is frozen with SIGSTOP past its lease and thawed, and the
database restarts; SSE followers on different instances reconnect with
Last-Event-ID.  Then: every storyboard has exactly one completed primary
image, no provider request was made for a storyboard after its image was
stored, every follower saw every stored event in order, and the provider
never had more requests in flight than its concurrency.  The others check
the refusals at start (each naming its key) and that the instances share
the API: any instance starts, follows and cancels any run."""

import datetime
import http.client
import os
import re
import signal
import time

import pytest

from conftest import (Env, FakeProvider, Follower, SSEClient, Service,
                      assert_followers_saw_the_db, http_provider, primaries_by_storyboard,
                      wait_for, wait_run_done)
from pgserver import PgServer

LEASE = 3.0
RESCUE = 1.0
CONCURRENCY = 3
CLUSTER = f"cluster = {{ lease = {LEASE}; rescue_interval = {RESCUE}; }};"


@pytest.fixture
def pg():
    """A server of this test's own: the long test restarts it."""
    srv = PgServer()
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture
def fake(tmp_path_factory):
    server = FakeProvider(tmp_path_factory.mktemp("fakeprovider"))
    try:
        yield server
    finally:
        server.stop()


def cluster_env(tmp_path, pg, fake, extra="", concurrency=CONCURRENCY, workers=CONCURRENCY):
    env = Env(tmp_path, pg)
    svc = Service(env)
    svc.configure(providers=[http_provider("jimeng", "jimeng", fake.jimeng_url,
                                           concurrency=concurrency)],
                  workers_max=workers, batch_size=2, extra=CLUSTER + "\n" + extra)
    return env


def instances(env, n):
    out = []
    for _ in range(n):
        svc = Service(env)
        svc.start()
        out.append(svc)
    return out


def stop_all(services):
    """Stops every instance; under `make asan` a sanitizer's report in any
    of their logs fails the test."""
    for svc in services:
        if svc.proc is not None and svc.proc.poll() is None:
            try:
                os.kill(svc.pid, signal.SIGCONT)
                svc.stop(timeout=60)
            except (AssertionError, ProcessLookupError):
                svc.kill9()
    for svc in services:
        for i in range(len(svc.logs)):
            text = svc.log(i)
            m = re.search(r"ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:", text)
            assert m is None, text[max(0, m.start() - 200):m.start() + 4000]


class ClusterFollower(Follower):
    """Follows one run over SSE, each (re)connection to the next instance
    that is up, with Last-Event-ID, until `done`."""

    def __init__(self, services, first, run_id, deadline_s=300):
        super().__init__(None, None, deadline_s)
        self.services, self.at, self.run_id = services, first, run_id
        self.instances = set()

    def _next_service(self):
        for _ in range(len(self.services)):
            svc = self.services[self.at % len(self.services)]
            self.at += 1
            if svc.proc is not None and svc.proc.poll() is None and svc.port:
                return svc
        return None

    def _follow(self):
        while time.monotonic() < self.deadline:
            svc = self._next_service()
            last = self.got[-1][0] if self.got else 0
            try:
                c = SSEClient(svc.port, f"/v1/runs/{self.run_id}/events",
                              {"Last-Event-ID": str(last)}, timeout=20) if svc else None
            except (OSError, http.client.HTTPException):
                c = None
            if c is None or c.status != 200:
                if c is not None:
                    c.close()
                time.sleep(0.1)
                continue
            self.instances.add(svc.pid)
            try:
                # A stream cut in the middle of a line (kill -9) is an end.
                if self._read(c, (OSError, http.client.HTTPException, ValueError)):
                    return
            finally:
                c.close()
            self.reconnects += 1
        raise AssertionError("follower gave up")


def completed(env, run_id):
    try:
        return env.sql("SELECT count(*) FROM generated_images WHERE run_id = ?"
                       " AND is_primary = 1 AND status = 'completed'", run_id)[0][0]
    except Exception:       # noqa: BLE001 - the database is restarting
        return 0


def epoch(iso):
    return datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def test_three_instances_survive_kill_freeze_and_a_database_restart(tmp_path, pg, fake):
    fake.control({"latency_ms": [100, 200]})
    env = cluster_env(tmp_path, pg, fake)
    a, b, c = services = instances(env, 3)
    try:
        prompts = [f"cluster storyboard {i}" for i in range(300)]
        pid = a.import_project([{"image_prompt": p} for p in prompts],
                               params={"ratio": "1:1", "resolution": "1k"})
        run_id = b.start_run(pid)
        followers = [ClusterFollower(services, k, run_id) for k in range(3)]
        for f in followers:
            f.start()
        wait_for(lambda: completed(env, run_id) >= 40, timeout=120, what="40 images")
        a.kill9()                                   # its workers die with it
        wait_for(lambda: completed(env, run_id) >= 100, timeout=120, what="100 images")
        os.kill(b.pid, signal.SIGSTOP)              # past its lease: the others take over
        time.sleep(LEASE + RESCUE + 2)
        os.kill(b.pid, signal.SIGCONT)
        wait_for(lambda: completed(env, run_id) >= 180, timeout=120, what="180 images")
        pg.restart(down_s=1.0)
        done = wait_run_done(env, run_id, timeout=300)
        assert done["data"]["success_count"] == 300, done["data"]
        # Every follower saw every event, in order, none twice, none missing.
        assert_followers_saw_the_db(env, run_id, followers)
        assert all(f.reconnects >= 1 for f in followers), [f.reconnects for f in followers]
        # Exactly one completed primary image per storyboard.
        per = primaries_by_storyboard(env, pid)
        assert sorted(per.values()) == [1] * 300, per
        # No request for a storyboard's image after that image was stored.
        stored = dict(env.sql("SELECT s.image_prompt, g.updated_at FROM generated_images g"
                              " JOIN storyboards s ON s.id = g.storyboard_id"
                              " WHERE g.run_id = ? AND g.is_primary = 1"
                              " AND g.status = 'completed'", run_id))
        reqs = [r for r in fake.requests() if r["path"].startswith("/jimeng/")]
        late = [(r["body"]["prompt"], r["time"]) for r in reqs
                if r["time"] > epoch(stored[r["body"]["prompt"]])]
        assert late == [], late[:5]
        assert {r["body"]["prompt"] for r in reqs} == set(prompts)
        # Never more requests in flight than the provider's concurrency.
        peak = fake._call("GET", "/_inflight")["peak"]
        assert 1 <= peak["/jimeng/v1/images/generations"] <= CONCURRENCY, peak
        # b was frozen past its lease: it found it out, and recorded nothing
        # over the others (the counts above), and it still serves.
        assert b.get("/healthz").status == 200
    finally:
        stop_all(services)


def test_any_instance_starts_follows_and_cancels_any_run(tmp_path, pg, fake):
    fake.control({"latency_ms": 300})
    env = cluster_env(tmp_path, pg, fake, concurrency=1, workers=1)
    a, b = services = instances(env, 2)
    try:
        pid = a.import_project([f"shared {i}" for i in range(20)])
        # b sees a's project, and starts its run; a follows it.
        assert b.get(f"/v1/projects/{pid}").status == 200
        run_id = b.start_run(pid)
        s = SSEClient(a.port, f"/v1/runs/{run_id}/events", a.auth())
        assert s.status == 200
        first = [s.next() for _ in range(3)]
        assert first[0]["data"]["type"] == "connected"
        wait_for(lambda: completed(env, run_id) >= 2, what="two images")
        r = a.post(f"/v1/projects/{pid}/image-generation/cancel")
        assert r.status == 202, r
        msgs = s.read_all()
        s.close()
        assert msgs[-1]["data"]["type"] == "done", msgs[-3:]
        assert msgs[-1]["data"]["stage"]["status"] == "cancelled"
        # Both instances name both as alive.
        for svc in services:
            text = svc.get("/metrics").body.decode()
            assert "t2istage_cluster_instances 2" in text, text[-500:]
        wait_for(lambda: env.sql("SELECT count(*) FROM generated_images WHERE run_id = ?"
                                 " AND status = 'processing'", run_id) == [(0,)],
                 what="no generation left processing")
    finally:
        stop_all(services)


def refused(env, *needles):
    svc = Service(env)
    svc.start(wait=False)
    assert svc.proc.wait(timeout=60) != 0
    log = svc.log()
    for n in needles:
        assert n in log, (n, log)
    return log


def test_refusals_at_start_name_the_key(tmp_path, pg, fake):
    env = cluster_env(tmp_path / "one", pg, fake)
    (a,) = instances(env, 1)
    try:
        # Other providers on the same database.
        other = Env(tmp_path / "two", pg)
        other.pg_db, own = env.pg_db, other.images
        other.images = env.images
        Service(other).configure(providers=[http_provider("other", "jimeng", fake.jimeng_url)],
                                 extra=CLUSTER)
        log = refused(other, "providers: ", "differ from those of instance")
        # The same providers, but a storage.dir of its own.
        other.images = own
        Service(other).configure(providers=[http_provider("jimeng", "jimeng", fake.jimeng_url,
                                                          concurrency=CONCURRENCY)],
                                 extra=CLUSTER)
        log = refused(other, "storage.dir: ", "not the storage.dir of instance")
        assert "password" not in log.lower() or pg.password not in log
    finally:
        stop_all([a])
    # A schema newer than the binary.
    env.sql("UPDATE schema_version SET version = version + 1")
    log = refused(env, "database (", "schema version", "newer than this program")
    # An unauthenticated or unreachable server: the URI's password never shows.
    with open(os.path.join(env.path, "pg.password"), "w") as f:
        f.write("wrong-password\n")
    with open(env.conf) as f:
        conf = f.read()
    log = refused(env, "database (", "cannot connect", "password authentication failed")
    assert "wrong-password" not in log
    with open(env.conf, "w") as f:
        f.write(conf.replace(f"host={pg.dir}", "host=/nonexistent").replace(
            "database_password_file", "database_timeout = 1.0;\ndatabase_password_file"))
    log = refused(env, "database (", "cannot connect")


def test_password_in_the_uri_is_never_logged(tmp_path, pg, fake):
    env = cluster_env(tmp_path, pg, fake)
    with open(env.conf) as f:
        conf = f.read()
    uri = pg.uri(env.pg_db).replace("postgresql://t2i@", f"postgresql://t2i:{pg.password}@")
    lines = [ln for ln in conf.splitlines() if not ln.startswith("database")]
    with open(env.conf, "w") as f:
        f.write(f'database = "{uri}";\n' + "\n".join(lines) + "\n")
    (a,) = instances(env, 1)
    try:
        pid = a.import_project(["one"])
        a.start_run(pid)
        cp = env.t2i("status")
        assert cp.returncode == 0, cp.stderr
    finally:
        stop_all([a])
    for text in [a.log(), cp.stdout, cp.stderr]:
        assert pg.password not in text
    # A message about the database shows the URI without the password.
    env.sql("UPDATE schema_version SET version = version + 1")
    log = refused(env, "database (postgresql://t2i:[redacted]@/")
    assert pg.password not in log


def test_one_image_stored_by_two_instances_at_once(tmp_path, pg):
    """Files are named by their content and written atomically: two
    instances that store the same image at once (the placeholder plugin
    makes the same bytes for the same prompt) both end with the one file,
    whole."""
    env = Env(tmp_path, pg)
    Service(env).configure(providers=['{ name = "p"; plugin = "placeholder"; default = true;'
                                      ' concurrency = 8; }'],
                           workers_max=8, batch_size=1, cache=False,
                           extra=CLUSTER)
    a, b = services = instances(env, 2)
    try:
        # Two projects with the same prompts, run at once on the two instances.
        sbs = [{"image_prompt": f"the same picture {i}"} for i in range(24)]
        p1 = a.import_project(sbs, params={"ratio": "1:1", "resolution": "1k"})
        p2 = b.import_project(sbs, params={"ratio": "1:1", "resolution": "1k"})
        r1, r2 = a.start_run(p1), b.start_run(p2)
        wait_run_done(env, r1)
        wait_run_done(env, r2)
        rows = env.sql("SELECT s.image_prompt, g.file_path, g.sha256, g.file_size FROM"
                       " generated_images g JOIN storyboards s ON s.id = g.storyboard_id"
                       " WHERE g.status = 'completed' AND g.is_primary = 1")
        assert len(rows) == 48
        by_prompt = {}
        for prompt, path, sha, size in rows:
            by_prompt.setdefault(prompt, set()).add((path, sha, size))
        import hashlib
        for prompt, files in by_prompt.items():
            assert len(files) == 1, (prompt, files)     # one file for both
            ((path, sha, size),) = files
            with open(path, "rb") as f:
                data = f.read()
            assert len(data) == size and hashlib.sha256(data).hexdigest() == sha
        leftovers = [n for _, _, names in os.walk(env.images) for n in names
                     if n.endswith(".tmp") or n.startswith(".tmp")]
        assert leftovers == []
    finally:
        stop_all(services)
