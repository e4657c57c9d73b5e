"""Worker processes and concurrency limits, measured on the test plugins'
trace files (ordering of monotonic timestamps, never wall-clock durations)."""

import os
import subprocess
import time

from conftest import (BIN, RUN_TIMEOUT, events_of, max_overlap, provider_conf, read_trace,
                      storyboard_rows, project_id_of)


def slow_env(env, workers_max, batch_size, concurrency=None, delay_ms=300):
    trace = os.path.join(env.path, "trace")
    env.write_config(providers=[provider_conf("slow", concurrency=concurrency, trace=trace,
                                              delay_ms=delay_ms)],
                     workers_max=workers_max, batch_size=batch_size)
    return trace


def test_workers_max_bounds_overlap(env):
    trace = slow_env(env, workers_max=2, batch_size=1, concurrency=4)
    rc, events, _ = env.run_json(env.project([f"shot {i}" for i in range(6)]), expect=0)
    t = read_trace(trace)
    assert len([x for x in t if x[0] == "start"]) == 6
    assert len([x for x in t if x[0] == "end"]) == 6
    # Two workers run side by side, never three.
    assert max_overlap(t) == 2
    assert len({x[1] for x in t}) == 6        # batch_size 1: a process per storyboard


def test_provider_concurrency_bounds_overlap(env):
    trace = slow_env(env, workers_max=4, batch_size=1, concurrency=1, delay_ms=100)
    rc, events, _ = env.run_json(env.project([f"shot {i}" for i in range(5)]), expect=0)
    t = read_trace(trace)
    assert len([x for x in t if x[0] == "start"]) == 5
    assert max_overlap(t) == 1
    # Strictly one after another: each start follows the previous end.
    kinds = [x[0] for x in t]
    assert kinds == ["start", "end"] * 5


def test_free_slot_is_refilled_at_once(env):
    """batch_size 1, 4 workers, one slow storyboard among fast ones: the
    other three slots keep taking new storyboards while the slow one runs,
    rather than waiting for a whole wave to finish."""
    trace = slow_env(env, workers_max=4, batch_size=1, delay_ms=20)
    prompts = ["the slow one slow:1500"] + [f"fast {i}" for i in range(11)]
    rc, events, _ = env.run_json(env.project(prompts), expect=0)
    ids = {pos: sid for sid, pos, _ in storyboard_rows(env, project_id_of(events))}
    slow = ids[1]
    t = read_trace(trace)
    (slow_start,) = [x[3] for x in t if x[0] == "start" and x[2] == slow]
    (slow_end,) = [x[3] for x in t if x[0] == "end" and x[2] == slow]
    during = [x for x in t if x[0] == "start" and x[2] != slow and slow_start < x[3] < slow_end]
    # The first wave fills at most three other slots; more starts while the
    # slow storyboard is still running means freed slots were refilled.
    assert len(during) > 3, t
    assert len(events_of(events, "image_generated")) == 12


def test_one_worker_process_per_batch(env):
    trace = slow_env(env, workers_max=4, batch_size=2, delay_ms=10)
    rc, events, _ = env.run_json(env.project([f"shot {i}" for i in range(16)]), expect=0)
    t = read_trace(trace)
    pids = {}
    for ev, pid, sid, _ns in t:
        if ev == "start":
            pids.setdefault(pid, []).append(sid)
    # batch_size while there is plenty left (16 storyboards, 4 workers), then
    # smaller batches at the end: never more than an even share of what is left.
    sizes = sorted(len(v) for v in pids.values())
    assert sum(sizes) == 16 and max(sizes) == 2 and sizes.count(1) >= 2, sizes
    all_ids = [sid for v in pids.values() for sid in v]
    assert len(set(all_ids)) == 16
    (sup_pid,) = env.sql("SELECT pid FROM runs")[0]
    assert sup_pid not in pids
    assert os.getpid() not in pids
    # Within a batch the worker goes in order: one ends before the next starts.
    for pid in pids:
        kinds = [x[0] for x in t if x[1] == pid]
        assert kinds == ["start", "end"] * len(pids[pid])


def test_last_batches_spread_out(env):
    """6 storyboards, 2 workers, batch_size 3: batches of 3, 2 and 1 rather than 3 and 3, so
    that the end of the run does not wait on one worker's whole batch."""
    trace = slow_env(env, workers_max=2, batch_size=3, delay_ms=10)
    rc, events, _ = env.run_json(env.project([f"shot {i}" for i in range(6)]), expect=0)
    pids = {}
    for ev, pid, sid, _ns in read_trace(trace):
        if ev == "start":
            pids.setdefault(pid, []).append(sid)
    assert sorted(len(v) for v in pids.values()) == [1, 2, 3]


def test_worker_never_holds_the_database(env):
    """While a worker is inside the plugin, none of its file descriptors
    refers to the database (or its WAL / shared memory files)."""
    trace = slow_env(env, workers_max=1, batch_size=1, delay_ms=1500)
    p = env.project(["look inside"])
    e = dict(os.environ)
    e.pop("T2ISTAGE_CONF", None)
    proc = subprocess.Popen([BIN, "-c", env.conf, "run", p, "--json"], cwd=env.path, env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        worker = None
        for _ in range(RUN_TIMEOUT * 100):
            starts = [x for x in read_trace(trace) if x[0] == "start"]
            if starts:
                worker = starts[0][1]
                break
            if proc.poll() is not None:
                break
            time.sleep(0.01)
        assert worker is not None, "the worker never started"
        links = []
        fd_dir = f"/proc/{worker}/fd"
        for fd in os.listdir(fd_dir):
            try:
                links.append(os.readlink(os.path.join(fd_dir, fd)))
            except OSError:
                pass
        assert links, "could not read the worker's descriptors"
        db = os.path.realpath(env.db)
        for link in links:
            assert not link.startswith(db), (link, links)
        # Sanity: the supervisor itself does hold it.
        sup_links = [os.readlink(os.path.join(f"/proc/{proc.pid}/fd", fd))
                     for fd in os.listdir(f"/proc/{proc.pid}/fd")]
        assert any(link == db for link in sup_links), sup_links
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
