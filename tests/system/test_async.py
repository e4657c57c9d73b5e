"""Plugin ABI version 2 through the real binary: asynchronous providers are paid
at submission and free to poll, and nothing paid for is submitted twice.

The `async` test plugin (tests/plugins/async.c) is such a provider against a
directory: a submission creates a task file there and a `submit` line in its
log, which is what these tests count.  Its tasks finish after `task_ms`, and
only once the gate file exists when `gate` is set, so that a test holds them
open for as long as it needs.  Waits are bounded polls; nothing asserts on
how long anything took."""

import json
import os
import re
import signal

from conftest import (events_of, http_provider, interrupt_run, png_size, provider_conf,
                      retry_conf, retry_warnings, service_pids, wait_for, wait_run_done,
                      warnings_of)
import pytest

pytestmark = pytest.mark.backends

KEY = "sk-async-KEY-4242"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def tasks_dir(env):
    return os.path.join(env.path, "tasks")


def gate(env):
    return os.path.join(env.path, "gate")


def open_gate(env):
    with open(gate(env), "w"):
        pass


def async_provider(env, name="async", **options):
    """The async plugin as a provider, its tasks in env's tasks directory."""
    os.makedirs(tasks_dir(env), exist_ok=True)
    opts = {"tasks": tasks_dir(env), "poll_ms": 30}
    opts.update(options)
    return http_provider(name, "async", "", api_key=KEY, **opts)


def task_log(env):
    """The plugin's log: [{event, sb, key, task, pid, detail}] in order."""
    path = os.path.join(tasks_dir(env), "log")
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            out.append({"event": parts[0], "sb": parts[1], "key": parts[2], "task": parts[3],
                        "pid": int(parts[4]), "detail": parts[5] if len(parts) > 5 else None})
    return out


def lines(log, event):
    return [x for x in log if x["event"] == event]


def submissions(env):
    """{storyboard_id: submissions}: what the provider was paid for."""
    out = {}
    for x in lines(task_log(env), "submit"):
        out[x["sb"]] = out.get(x["sb"], 0) + 1
    return out


def storyboard_ids(env, project_id):
    return [r[0] for r in env.sql("SELECT id FROM storyboards WHERE project_id = ?"
                                  " ORDER BY position", project_id)]


def pending_tasks(env):
    """{storyboard_id: state} of the provider_tasks table."""
    return {sb: json.loads(st) for sb, st in env.sql(
        "SELECT storyboard_id, state FROM provider_tasks")}


def assert_no_key(env, *texts):
    for t in texts:
        assert KEY not in t
    for table in env.snapshot().values():
        assert not any(KEY in row for row in table)


def assert_task_visible(service, env, pid, tasks):
    """While tasks (storyboard id: task id) are polled, every view shows them."""
    r = service.get(f"/v1/projects/{pid}/images")
    assert r.status == 200, r
    shown = {im["storyboard_id"]: im for im in r.json()["images"] if im["provider_task"]}
    assert set(shown) == set(tasks), shown
    for sb, im in shown.items():
        t = im["provider_task"]
        assert t["provider"] == "async" and t["state"]["task"] == tasks[sb], t
        assert t["created_at"] and t["updated_at"] and t["checkpoints"] == 1, t
        assert im["status"] in ("pending", "processing"), im
        one = service.get(f"/v1/images/{im['id']}").json()
        assert one["provider_task"]["state"]["task"] == tasks[sb], one
    project = service.get(f"/v1/projects/{pid}").json()
    by_sb = {sb["id"]: sb["image"] for sb in project["storyboards"]}
    for sb, task in tasks.items():
        assert by_sb[sb]["provider_task"]["state"]["task"] == task, by_sb[sb]
    assert {t["storyboard_id"]: t["state"]["task"] for t in project["provider_tasks"]} == tasks
    # The read-only commands see them too, beside the running service.
    cp = env.t2i("images", pid, "--json", check=0)
    assert {im["storyboard_id"]: im["provider_task"]["state"]["task"]
            for im in json.loads(cp.stdout) if im["provider_task"]} == tasks
    text = env.t2i("images", pid, check=0).stdout + env.t2i("status", pid, check=0).stdout
    assert text.count("provider task at async since ") == 2 * len(tasks), text
    for task in tasks.values():
        assert f'"task":"{task}"' in text, text


def start_gated(service, n, workers=3):
    """The service with the async provider, its tasks held by the gate; a run
    of n storyboards started.  Returns (project id, run id), once `workers`
    tasks are submitted and recorded."""
    env = service.env
    service.configure(providers=[async_provider(env, gate=gate(env))], workers_max=workers,
                      batch_size=1)
    service.start()
    pid = service.import_project([f"shot {i}" for i in range(n)])
    run = service.start_run(pid)
    wait_for(lambda: len(pending_tasks(env)) == workers and len(first_tasks(env)) == workers,
             what=f"{workers} tasks submitted and recorded")
    return pid, run


def first_tasks(env):
    """{storyboard_id: task id} of the submissions so far."""
    return {x["sb"]: x["task"] for x in lines(task_log(env), "submit")}


# --------------------------------------------------------------------------


def test_kill9_while_polling_then_restart(service):
    """kill -9 of the service while tasks are polled, then a restart: every
    storyboard completes with exactly one submission, its task polled again
    under the same idempotency key."""
    env = service.env
    pid, run = start_gated(service, 12, workers=4)
    sbs = storyboard_ids(env, pid)
    before = first_tasks(env)
    assert_task_visible(service, env, pid, before)
    assert {sb: st["task"] for sb, st in pending_tasks(env).items()} == before
    wait_for(lambda: len(lines(task_log(env), "poll")) >= 8, what="the tasks being polled")
    service.kill9()
    wait_for(lambda: not service_pids(env.conf), what="every process of the service to die")
    # The paid tasks survive the crash in the database.
    assert {sb: st["task"] for sb, st in pending_tasks(env).items()} == before
    mark = len(task_log(env))

    service.start()
    open_gate(env)
    done = wait_run_done(env, run)
    assert done["success"] is True and done["data"]["success_count"] == 12
    assert submissions(env) == {sb: 1 for sb in sbs}
    after = task_log(env)[mark:]
    # The tasks submitted before the kill were polled, not submitted again.
    assert {x["sb"]: x["task"] for x in lines(after, "resume")} == before
    assert not set(x["sb"] for x in lines(after, "submit")) & set(before)
    # One idempotency key per storyboard, kept across the kill; none shared.
    keys = {}
    for x in task_log(env):
        keys.setdefault(x["sb"], set()).add(x["key"])
    assert all(len(k) == 1 for k in keys.values()), keys
    flat = [next(iter(k)) for k in keys.values()]
    assert all(UUID.match(k) for k in flat) and len(set(flat)) == 12, flat
    # Completion forgets the tasks.
    assert pending_tasks(env) == {}
    images = service.get(f"/v1/projects/{pid}/images").json()["images"]
    assert all(im["provider_task"] is None for im in images)
    assert_no_key(env, service.all_logs())


def test_timeout_shorter_than_task_polls_the_same_task(env):
    """generation.timeout shorter than the task: the worker is killed at its
    deadline, and the retry polls the task the first attempt paid for."""
    env.write_config(providers=[async_provider(env, task_ms=4500)], workers_max=2,
                     timeout=1.0, extra=retry_conf(4, 0.05, 0.1))
    rc, events, cp = env.run_json(env.project(["a slow shot", "another slow shot"]), expect=0)
    pid = events[0]["project_id"]
    sbs = storyboard_ids(env, pid)
    assert submissions(env) == {sb: 1 for sb in sbs}
    killed = [w for w in retry_warnings(events) if w["cause"] == "timed out after 1 s"]
    assert {w["index"] for w in killed} == {1, 2}, warnings_of(events)
    log = task_log(env)
    for sb in sbs:
        mine = [x for x in log if x["sb"] == sb]
        (submit,) = lines(mine, "submit")
        calls = lines(mine, "call")
        assert len(calls) >= 2 and calls[0]["detail"] == "-"
        # Every later attempt was handed the task, and polled it.
        assert all(c["detail"] == submit["task"] for c in calls[1:]), calls
        assert len(lines(mine, "resume")) == len(calls) - 1
        assert len({x["key"] for x in mine}) == 1
        assert not lines(mine, "cancel")     # a deadline before a retry leaves the task
    assert len(events_of(events, "image_generated")) == 2
    assert pending_tasks(env) == {}
    assert_no_key(env, cp.stdout, cp.stderr)


def test_worker_crash_after_checkpoint_then_the_retry_polls(env):
    """checkpoint() returned: the state is in the database, so a worker that
    dies right after is retried on the same task."""
    env.write_config(providers=[async_provider(env, task_ms=200)],
                     extra=retry_conf(3, 0.05, 0.1))
    rc, events, cp = env.run_json(env.project(["a CRASH shot"]), expect=0)
    (w,) = retry_warnings(events)
    assert w["cause"] == "worker crashed: signal 11", w
    log = task_log(env)
    (submit,) = lines(log, "submit")
    assert [c["detail"] for c in lines(log, "call")] == ["-", submit["task"]]
    assert lines(log, "resume")[0]["task"] == submit["task"]
    assert len(events_of(events, "image_generated")) == 1
    assert pending_tasks(env) == {}


def test_deadline_on_the_last_attempt_cancels(env):
    """On the last attempt the plugin hears T2I_STOP_DEADLINE from sleep(),
    before the kill: it cancels its task, says so, and forgets it."""
    env.write_config(providers=[async_provider(env, task_ms=600000)], timeout=1.0,
                     extra=retry_conf(1))
    rc, events, cp = env.run_json(env.project(["a task that never ends"]), expect=1)
    log = task_log(env)
    assert [x["detail"] for x in lines(log, "stop")] == ["deadline"]
    assert len(lines(log, "cancel")) == 1 and len(lines(log, "submit")) == 1
    (err,) = events_of(events, "error")
    assert "stopped (deadline)" in err["error"] and "cancelled at the provider" in err["error"]
    assert "timed out" not in json.dumps(events)
    assert pending_tasks(env) == {}


def test_cancel_while_polling_stops_through_sleep(service):
    env = service.env
    pid, run = start_gated(service, 3)
    r = service.post(f"/v1/projects/{pid}/image-generation/cancel")
    assert r.status == 202, r
    done = wait_run_done(env, run)
    assert done["stage"]["status"] == "cancelled"
    log = task_log(env)
    # Each plugin heard the cancel in sleep() (a kill would leave no line),
    # cancelled its task at the provider and forgot it.
    assert [x["detail"] for x in lines(log, "stop")] == ["cancelled"] * 3
    assert len(lines(log, "cancel")) == 3 and len(lines(log, "submit")) == 3
    assert pending_tasks(env) == {}
    assert "still running after being told to stop" not in service.log()
    statuses = dict(env.sql("SELECT status, count(*) FROM generated_images WHERE run_id = ?"
                            " GROUP BY status", run))
    assert statuses == {"pending": 3}, statuses


def test_sigterm_while_polling_leaves_the_tasks(service):
    """SIGTERM: polling plugins stop at once and leave their tasks (nothing is
    cancelled); the next start polls them and pays for nothing new."""
    env = service.env
    pid, run = start_gated(service, 3)
    before = first_tasks(env)
    assert service.stop(signal.SIGTERM, timeout=30) == 0
    log = task_log(env)
    assert [x["detail"] for x in lines(log, "stop")] == ["shutdown"] * 3
    assert len(lines(log, "left")) == 3 and not lines(log, "cancel")
    text = service.log()
    assert "grace period over" not in text and "told to stop" not in text
    assert {sb: st["task"] for sb, st in pending_tasks(env).items()} == before

    open_gate(env)
    service.start()
    done = wait_run_done(env, run)
    assert done["success"] is True
    assert submissions(env) == {sb: 1 for sb in before}
    assert len(lines(task_log(env), "resume")) == 3
    assert pending_tasks(env) == {}


def test_retry_run_resumes_the_task_of_an_interrupted_run(env):
    """A later `retry` run with the same parameters polls the task an
    interrupted run paid for, under its own idempotency key."""
    env.write_config(providers=[async_provider(env, gate=gate(env))], workers_max=2)
    pid = env.t2i("import", env.project(["one", "two"]), check=0).stdout.strip()
    rc, out, err = interrupt_run(env, pid, lambda: len(pending_tasks(env)) == 2,
                                 "two tasks recorded")
    assert rc != 0
    first = first_tasks(env)
    first_keys = {x["sb"]: x["key"] for x in lines(task_log(env), "submit")}
    mark = len(task_log(env))
    open_gate(env)
    cp = env.t2i("retry", pid, "--json", check=0)
    assert submissions(env) == {sb: 1 for sb in first}
    later = task_log(env)[mark:]
    assert {x["sb"]: x["detail"] for x in lines(later, "call")} == first
    assert {x["sb"]: x["task"] for x in lines(later, "resume")} == first
    # A new run has new image rows, hence new keys.
    assert all(x["key"] != first_keys[x["sb"]] and UUID.match(x["key"]) for x in later)
    assert pending_tasks(env) == {}
    assert_no_key(env, out, err, cp.stdout, cp.stderr)


def test_bad_checkpoints_are_refused_by_the_host(env):
    env.write_config(providers=[async_provider(env)])
    rc, events, cp = env.run_json(env.project(["a BADCKPT shot"]), expect=0)
    (bad,) = lines(task_log(env), "badckpt")
    assert bad["detail"] == "-1,-1,-1,-1,-1"
    for why in ("checkpoint refused: not a JSON object", "checkpoint refused: not JSON",
                "checkpoint refused: 16394 bytes, more than the 16384 allowed",
                "checkpoint refused: it holds the provider's api key",
                "checkpoint refused: no state"):
        assert why in cp.stderr, (why, cp.stderr[-3000:])
    assert "storyboard 1: checkpoint refused" in cp.stderr
    # Nothing refused was stored; the good checkpoint after them was, until
    # the image forgot it.
    assert len(lines(task_log(env), "submit")) == 1
    assert len(events_of(events, "image_generated")) == 1
    assert pending_tasks(env) == {}
    assert_no_key(env, cp.stdout, cp.stderr)


def test_progress_events_are_rate_limited(env):
    env.write_config(providers=[async_provider(env)])
    rc, events, cp = env.run_json(env.project(["a PROGRESS shot"]), expect=0)
    spans = [int(x["detail"]) for x in lines(task_log(env), "burst")]
    assert len(spans) == 2
    told = [e for e in events_of(events, "progress") if "fraction" in e]
    # Two bursts of 100 calls a second apart: one event each, or one more
    # for each second a burst took on a very busy machine.
    assert 2 <= len(told) <= 2 + sum(s // 1_000_000_000 for s in spans), told
    for e in told:
        assert 0.0 <= e["fraction"] <= 1.0
        assert e["message"].startswith("storyboard 1 (1/1): burst")
        assert e["current"] == 1 and e["total"] == 1
        assert e["storyboard"]["index"] == 1 and e["storyboard"]["image_prompt"]
    assert told[0]["fraction"] < 0.5 <= told[-1]["fraction"]
    # The host's own steps carry no fraction, as before.
    assert "fraction" not in events_of(events, "progress")[0]


def test_progress_while_polling(env):
    env.write_config(providers=[async_provider(env, task_ms=1500, poll_ms=20)])
    rc, events, cp = env.run_json(env.project(["a shot"]), expect=0)
    told = [e for e in events_of(events, "progress") if "fraction" in e]
    assert told and all(0.0 <= e["fraction"] < 1.0 for e in told)
    assert all("task " in e["message"] and " running" in e["message"] for e in told)
    assert [e["fraction"] for e in told] == sorted(e["fraction"] for e in told)
    # Polled every 20 ms, told at most once a second (by the plugin's clock).
    polls = [int(x["detail"]) for x in lines(task_log(env), "poll")]
    assert len(told) <= 1 + (polls[-1] - polls[0]) // 1_000_000_000, (len(told), len(polls))


def test_warning_log_line_is_one_event_per_run(env):
    env.write_config(providers=[async_provider(env)], workers_max=2, batch_size=2)
    want = "provider async: async: this provider has no negative prompt field; it is not sent"
    project = env.project([f"a WARN shot {i}" for i in range(4)])
    rc, events, cp = env.run_json(project, expect=0)
    mine = [e for e in events_of(events, "warning") if e["message"] == want]
    assert len(mine) == 1 and mine[0]["provider"] == "async", warnings_of(events)
    # Logged for every storyboard, an event once per run: a second run says it again.
    assert cp.stderr.count("this provider has no negative prompt field") == 4
    rc, events, cp = env.run_json(events[0]["project_id"], "--no-cache", expect=0)
    assert [e["message"] for e in events_of(events, "warning")] == [want]


def test_version_1_plugin_still_loads_and_runs(env):
    """A plugin built against the version 1 header (tests/plugins/abi1.c)."""
    env.write_config(providers=[provider_conf("old", "abi1")])
    cp = env.t2i("plugins", check=0)
    (line,) = [x for x in cp.stdout.splitlines() if x.split()[:1] == ["abi1"]]
    assert "ok" in line and "abi 1" in line, line
    rc, events, cp = env.run_json(env.project(["one", {"image_prompt": "two",
                                                       "params": {"ratio": "1:1"}}]), expect=0)
    ims = [e["image"] for e in events_of(events, "image_generated")]
    assert len(ims) == 2
    assert sorted(png_size(im["file_path"]) for im in ims) == [(32, 32), (40, 22)]
    assert "abi1: 2560x1440 for storyboard 1" in cp.stderr
