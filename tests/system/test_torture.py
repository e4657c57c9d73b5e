"""Long variants of the service tests: loops of kill -9, SIGTERM and SIGHUP
during runs followed by SSE clients.  `make torture` runs them; `make check`
leaves them out (-m "not torture").

As in test_serve.py, waits are bounded polls and nothing asserts on
wall-clock durations."""

import os
import signal

import pytest

from conftest import (Follower, assert_followers_saw_the_db, db_events, http_request,
                      primaries_by_storyboard, provider_conf, read_trace, run_row,
                      service_pids, wait_for)
from test_serve import (assert_stream_matches_db, completed_count, completed_storyboards,
                        image_sizes, image_statuses, run_path, slow_service, swap_plugin,
                        wait_run_done)

pytestmark = pytest.mark.torture


def test_kill9_loop_with_followers(service):
    """kill -9 of the supervisor, 30 times, while 20 SSE clients follow the
    run (every third kill comes right after a restart, before the resumed run
    has made progress): each restart resumes the run; in the end every
    storyboard has exactly one completed primary image, no provider call was
    repeated for an image committed before a kill, and every client received
    exactly the database's events."""
    trace = slow_service(service, n_delay_ms=20, workers_max=3, batch_size=2)
    service.start()
    env = service.env
    pid = service.import_project([f"shot {i}" for i in range(400)])
    run = service.start_run(pid)
    followers = [Follower(service, pid) for _ in range(20)]
    for f in followers:
        f.start()
    kills = 0
    for cycle in range(30):
        if run_row(env, run)["finished_at"]:
            break
        if cycle % 3 != 2:
            n = completed_count(env, run)
            wait_for(lambda: completed_count(env, run) >= n + 3 or
                     run_row(env, run)["finished_at"], what="progress")
        service.kill9()
        kills += 1
        wait_for(lambda: not service_pids(env.conf), what="the service's processes to die")
        before = completed_storyboards(env, run)
        lines = len(read_trace(trace))
        service.start()
        # Whatever was committed before the kill is never asked for again;
        # checked at the next kill (or the end) on the lines since this start.
        n = completed_count(env, run)
        wait_for(lambda: completed_count(env, run) > n or run_row(env, run)["finished_at"],
                 what="progress after the restart")
        again = {x[2] for x in read_trace(trace)[lines:] if x[0] == "start"}
        assert not again & before
    assert kills >= 10
    done = wait_run_done(env, run, timeout=300)
    assert done["success"] is True
    assert set(primaries_by_storyboard(env, pid, run).values()) == {1}
    assert image_statuses(env, run) == {"completed": 400}
    starts = {x[2] for x in read_trace(trace) if x[0] == "start"}
    assert len(starts) == 400
    assert_followers_saw_the_db(env, run, followers)
    warnings = [b["message"] for _s, t, b in db_events(env, run) if t == "warning"]
    assert sum("resumed" in w for w in warnings) == kills


def test_sigterm_loop_with_followers(service):
    """SIGTERM and restart, 20 times, during one run followed by SSE clients."""
    trace = slow_service(service, n_delay_ms=30, workers_max=3, batch_size=2)
    service.start()
    env = service.env
    pid = service.import_project([f"shot {i}" for i in range(300)])
    run = service.start_run(pid)
    followers = [Follower(service, pid) for _ in range(10)]
    for f in followers:
        f.start()
    for _cycle in range(20):
        n = completed_count(env, run)
        if run_row(env, run)["finished_at"]:
            break
        wait_for(lambda: completed_count(env, run) >= n + 5 or run_row(env, run)["finished_at"],
                 what="progress")
        assert service.stop() == 0
        assert not service_pids(env.conf)
        service.start()
    done = wait_run_done(env, run, timeout=300)
    assert done["success"] is True
    assert image_statuses(env, run) == {"completed": 300}
    starts = [x[2] for x in read_trace(trace) if x[0] == "start"]
    # A graceful stop lets every batch finish: nothing is ever started twice.
    assert sorted(starts) == sorted(set(starts)) and len(starts) == 300
    assert_followers_saw_the_db(env, run, followers)


def test_sighup_storm_long(service):
    """200 SIGHUPs with the plugin file replaced before each, during a run of
    400 storyboards followed by SSE clients."""
    env = service.env
    trace = os.path.join(env.path, "trace")
    swap_plugin(env, "swap", "slow")
    service.configure(providers=[provider_conf("swap", delay_ms=20, trace=trace)],
                      workers_max=3, batch_size=1)
    service.start()
    pid = service.import_project([f"shot {i}" for i in range(400)])
    run = service.start_run(pid, {"no_cache": True})
    followers = [Follower(service, pid) for _ in range(5)]
    for f in followers:
        f.start()
    variants = ["ok", "slow", "tiny", "slow"] * 50
    for k, variant in enumerate(variants):
        swap_plugin(env, "swap", variant)
        n = completed_count(env, run)
        service.kill(signal.SIGHUP)
        service.wait_log("reloaded:", k + 1)
        if k % 2 == 0:
            wait_for(lambda: completed_count(env, run) > n or run_row(env, run)["finished_at"],
                     what="a batch to finish")
    done = wait_run_done(env, run, timeout=300)
    assert done["success"] is True and done["data"]["success_count"] == 400
    assert set(primaries_by_storyboard(env, pid, run).values()) == {1}
    assert image_statuses(env, run) == {"completed": 400}
    sizes = image_sizes(env, run)
    traced = {x[2] for x in read_trace(trace) if x[0] == "start"}
    for sb, size in sizes.items():
        assert size == ((40, 22) if sb in traced else (8, 8)), (sb, size)
    assert "reload refused" not in service.log()
    assert service.proc.poll() is None
    assert_followers_saw_the_db(env, run, followers)
    assert http_request(service.port, "GET", "/healthz").status == 200


def test_many_runs_and_clients_at_once(service):
    """Twelve projects run side by side with SSE clients on each; four are
    cancelled while they run, the others complete; every stream matches the
    database."""
    slow_service(service, n_delay_ms=20, workers_max=4, batch_size=2, trace=False)
    service.start()
    env = service.env
    pids = [service.import_project([f"p{k} shot {i}" for i in range(60)] +
                                   (["held GATE"] if k < 4 else []), name=f"p{k}")
            for k in range(12)]
    runs = [service.start_run(p) for p in pids]
    followers = {p: [Follower(service, p) for _ in range(5)] for p in pids}
    for fs in followers.values():
        for f in fs:
            f.start()
    for p in pids[:4]:
        r = service.post(run_path(p, "/cancel"))
        assert r.status == 202, r
    for k, (p, run) in enumerate(zip(pids, runs)):
        done = wait_run_done(env, run, timeout=300)
        assert run_row(env, run)["status"] == ("cancelled" if k < 4 else "completed")
        assert done["success"] is (k >= 4)
        assert_followers_saw_the_db(env, run, followers[p])
        assert_stream_matches_db(env, run, service.events(p))
    assert "\nt2istage_runs_active 0\n" in service.get("/metrics").body.decode()
