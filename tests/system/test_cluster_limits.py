"""Limits that hold across instances on one PostgreSQL (src/sup/cluster.h):
the session's server (pgserver.py), a database of each test's own, real instances, the fake
Jimeng counting what it is sent.

- a budget of N requests for a run: the instances together send exactly N,
  the rest fail with "budget reached", the ledger holds N rows;
- a rate: the requests of every instance together stay within it, checked
  over sliding windows of the fake provider's recorded times (generously:
  one request more than the rate allows in any window);
- a queued run: queued by an instance that has no room, started by
  whichever has room once the running one ends, even after the instance
  that queued it was killed.

Each would fail with the limits kept per instance: two instances would
send twice the budget's requests, twice the rate, and a queued run would
wait for its own instance."""

from conftest import Env, Service, http_provider, wait_for, wait_run_done

CLUSTER = "cluster = { lease = 3.0; rescue_interval = 1.0; };"


def start_instances(tmp_path, pg_server, fake, n, keys="", concurrency=4, workers=4):
    env = Env(tmp_path, pg_server)
    Service(env).configure(providers=[http_provider("jimeng", "jimeng", fake.jimeng_url,
                                                    concurrency=concurrency, keys=keys)],
                           workers_max=workers, batch_size=2, extra=CLUSTER)
    out = []
    for _ in range(n):
        svc = Service(env)
        svc.start()
        out.append(svc)
    return env, out


def stop_all(services):
    for svc in services:
        if svc.proc is not None and svc.proc.poll() is None:
            svc.stop(timeout=60)


def generations(fake):
    return [r for r in fake.requests()
            if r["method"] == "POST" and r["path"] == "/jimeng/v1/images/generations"]


def test_a_run_budget_holds_over_three_instances(tmp_path, pg_server, fake):
    budget = 9
    fake.control({"latency_ms": 300})
    # One worker each: the instances work side by side.
    env, services = start_instances(tmp_path, pg_server, fake, 3, concurrency=3, workers=1,
                                    keys=f"cost = 1; budget = {{ per_run = {budget}; }};")
    a, b, c = services
    try:
        pid = a.import_project([f"budget storyboard {i}" for i in range(24)])
        run_id = b.start_run(pid)
        done = wait_run_done(env, run_id, timeout=120)
        assert done["data"]["success_count"] == budget, done["data"]
        assert len(generations(fake)) == budget
        assert env.sql("SELECT count(*), sum(cost) FROM spend_ledger WHERE run_id = ?",
                       run_id) == [(budget, float(budget))]
        failed = env.sql("SELECT error FROM generated_images WHERE run_id = ?"
                         " AND is_primary = 1 AND status = 'failed'", run_id)
        assert len(failed) == 24 - budget
        assert all("budget reached" in e for (e,) in failed), failed[:3]
        # More than one instance made requests: the limit was shared, not
        # held by one instance doing all the work.
        owners = env.sql("SELECT count(DISTINCT lease_owner) FROM generated_images"
                         " WHERE run_id = ? AND status = 'completed'", run_id)
        assert owners[0][0] >= 2, owners
    finally:
        stop_all(services)


def test_a_rate_holds_over_two_instances(tmp_path, pg_server, fake):
    # 60 a minute: one request a second for the instances together; each
    # would send as many on its own.
    env, services = start_instances(tmp_path, pg_server, fake, 2, keys="rate = 60;")
    a, b = services
    try:
        pid = a.import_project([f"rate storyboard {i}" for i in range(9)])
        run_id = a.start_run(pid)
        done = wait_run_done(env, run_id, timeout=120)
        assert done["data"]["success_count"] == 9, done["data"]
        times = sorted(r["time"] for r in generations(fake))
        assert len(times) == 9
        # In any window of 3 s at most 3 requests, and one more for the
        # windows' edges and the clocks' jitter; two instances each at the
        # rate would send 6.
        for i, t in enumerate(times):
            within = [u for u in times[i:] if u - t < 3.0]
            assert len(within) <= 4, (i, [round(u - times[0], 2) for u in times])
        owners = env.sql("SELECT count(DISTINCT lease_owner) FROM generated_images"
                         " WHERE run_id = ? AND status = 'completed'", run_id)
        assert owners[0][0] == 2, owners
    finally:
        stop_all(services)


def run_status(env, run_id):
    rows = env.sql("SELECT status FROM runs WHERE id = ?", run_id)
    return rows[0][0] if rows else None


def test_a_queued_run_starts_on_whichever_instance_has_room(tmp_path, pg_server, fake):
    fake.control({"latency_ms": 300})
    env, services = start_instances(tmp_path, pg_server, fake, 2, concurrency=1, workers=1)
    a, b = services
    try:
        first = a.import_project([f"first {i}" for i in range(8)])
        second = a.import_project([f"second {i}" for i in range(3)])
        run1 = a.start_run(first)
        wait_for(lambda: run_status(env, run1) == "processing", what="the first run")
        # b takes part in the first run: it has no room, so the second waits.
        wait_for(lambda: "\nt2istage_runs_active 1\n" in b.get("/metrics").body.decode(),
                 what="b in the first run")
        r = b.post(f"/v1/projects/{second}/image-generation", {})
        assert r.status == 202 and r.json()["status"] == "queued", r
        run2 = r.json()["run_id"]
        assert run_status(env, run2) == "queued"
        # The instance that queued it dies: a starts it once it has room.
        b.kill9()
        done1 = wait_run_done(env, run1, timeout=120)
        assert done1["data"]["success_count"] == 8, done1["data"]
        done2 = wait_run_done(env, run2, timeout=120)
        assert done2["data"]["success_count"] == 3, done2["data"]
        owners = env.sql("SELECT DISTINCT lease_owner FROM generated_images WHERE run_id = ?",
                         run2)
        assert len(owners) == 1, owners
        prompts = sorted(r["body"]["prompt"] for r in generations(fake))
        assert prompts.count("second 0") == 1
    finally:
        stop_all(services)
