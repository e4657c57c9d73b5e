"""Nothing paid twice: 12 DashScope storyboards and 6 ComfyUI storyboards whose tasks are
being polled when `serve` is killed with SIGKILL, then restarted; and the same runs with a
generation.timeout shorter than the task, so that workers are killed at their deadline and
the retries poll the tasks already submitted.  The fake's counters must show exactly one
submission per storyboard.  Each test prints the submissions per completed image:

    T2I_BUILD=build /usr/bin/python3 -m pytest -q -s -p no:cacheprovider \\
        tests/system/test_paid_once.py
"""

import json

from conftest import events_of, http_provider, retry_conf, retry_warnings, service_pids, wait_for
from provider_checks import run_project
from test_comfyui import PATHS, comfyui, graph, write_workflow
import pytest

pytestmark = pytest.mark.backends

DASHSCOPE_N = 12
COMFYUI_N = 6


def counters(fake):
    return fake._call("GET", "/_counters")


def dashscope(fake, n):
    return http_provider("ds", "dashscope", fake.url + "/dashscope", default=True,
                         concurrency=n, poll_interval=0.2)


def completed_images(env, run_id):
    return env.sql("SELECT count(*) FROM generated_images WHERE run_id = ? AND is_primary = 1"
                   " AND status = 'completed'", run_id)[0][0]


def wait_done(env, run_id, timeout=180):
    def done():
        rows = env.sql("SELECT body FROM run_events WHERE run_id = ? AND type = 'done'", run_id)
        return json.loads(rows[0][0]) if rows else None
    return wait_for(done, timeout=timeout, interval=0.1, what=f"run {run_id} to end")


def assert_one_submission_each(fake, provider, prompts):
    """One task per prompt, each submitted once; returns the total of submissions."""
    c = counters(fake)
    mine = [t for t in c["tasks"].values() if t["provider"] == provider]
    by_prompt = {}
    for t in mine:
        by_prompt[t["prompt"]] = by_prompt.get(t["prompt"], 0) + t["submissions"]
    assert by_prompt == {p: 1 for p in prompts}, by_prompt
    assert c["total"][provider]["submissions"] == len(prompts)
    return c["total"][provider]["submissions"]


def report(what, submissions, completed):
    print(f"\n{what}: {submissions} submissions / {completed} completed images = "
          f"{submissions / completed:.2f} submissions per completed image")


def kill9_while_polling(service, fake, provider, prompts):
    """Starts a run of prompts, kills serve with SIGKILL once every task is submitted and
    polled, restarts it and waits for the run's end.  Returns the run id."""
    env = service.env
    service.start()
    project = service.import_project(prompts)
    run = service.start_run(project)

    def all_polled():
        c = counters(fake)
        tasks = [t for t in c["tasks"].values() if t["provider"] == provider]
        return len(tasks) == len(prompts) and all(t["polls"] >= 1 for t in tasks)
    wait_for(all_polled, timeout=60, what="every task submitted and polled")
    # Committed before the first poll: every task is in the database.
    assert env.sql("SELECT count(*) FROM provider_tasks") == [(len(prompts),)]
    polls_before = counters(fake)["total"][provider]["polls"]
    service.kill9()
    wait_for(lambda: not service_pids(env.conf), what="every process of the service to die")
    assert completed_images(env, run) < len(prompts), "killed too late to prove anything"
    service.start()
    done = wait_done(env, run)
    assert done["success"] is True and done["data"]["success_count"] == len(prompts), done
    assert completed_images(env, run) == len(prompts)
    assert counters(fake)["total"][provider]["polls"] > polls_before   # polled after restart
    assert env.sql("SELECT count(*) FROM provider_tasks") == [(0,)]
    return run


def test_dashscope_kill9_of_serve_while_polling(service, fake):
    fake.control({"task_s": 4})
    service.configure(providers=[dashscope(fake, DASHSCOPE_N)], workers_max=DASHSCOPE_N,
                      batch_size=1, extra=retry_conf(3, 0.01, 0.02))
    prompts = [f"storyboard {i}" for i in range(1, DASHSCOPE_N + 1)]
    run = kill9_while_polling(service, fake, "dashscope", prompts)
    subs = assert_one_submission_each(fake, "dashscope", prompts)
    report("dashscope, kill -9 of serve", subs, completed_images(service.env, run))


def test_comfyui_kill9_of_serve_while_polling(service, fake):
    # ComfyUI runs one prompt at a time: 6 prompts of 1 s are polled for up to 6 s.
    fake.control({"task_s": 1})
    wf = write_workflow(service.env, graph())
    service.configure(providers=[comfyui(fake, wf, inputs=PATHS, poll_interval=0.2)
                                 .replace("default = true;", "default = true; concurrency = 6;")],
                      workers_max=COMFYUI_N, batch_size=1, extra=retry_conf(3, 0.01, 0.02))
    prompts = [f"storyboard {i}" for i in range(1, COMFYUI_N + 1)]
    run = kill9_while_polling(service, fake, "comfyui", prompts)
    subs = assert_one_submission_each(fake, "comfyui", prompts)
    report("comfyui, kill -9 of serve", subs, completed_images(service.env, run))


def deadline_run(env, fake, provider, prompts):
    rc, events, cp, project = run_project(env, prompts, expect=0)
    timed_out = [w for w in retry_warnings(events) if "timed out after 1 s" in w["cause"]]
    assert timed_out, [e for e in events if e["type"] == "warning"]
    # Every image came from the task its storyboard submitted first.
    assert len(events_of(events, "image_generated")) == len(prompts)
    attempts = dict(env.sql("SELECT s.image_prompt, g.attempts FROM generated_images g JOIN "
                            "storyboards s ON s.id = g.storyboard_id WHERE g.is_primary = 1"))
    assert sum(a - 1 for a in attempts.values()) == len(timed_out)
    return events


def test_dashscope_worker_deadline_shorter_than_the_task(env, fake):
    # generation.timeout 1 s: each worker is killed at its deadline (3 s: 1 s and the
    # supervisor's margin) while its 4 s task runs; the retry polls the same task.
    fake.control({"task_s": 4})
    env.write_config(providers=[dashscope(fake, DASHSCOPE_N)], workers_max=DASHSCOPE_N,
                     batch_size=1, timeout=1.0, extra=retry_conf(4, 0.01, 0.02))
    prompts = [f"storyboard {i}" for i in range(1, DASHSCOPE_N + 1)]
    events = deadline_run(env, fake, "dashscope", prompts)
    subs = assert_one_submission_each(fake, "dashscope", prompts)
    report("dashscope, worker deadline shorter than the task", subs,
           len(events_of(events, "image_generated")))


def test_comfyui_worker_deadline_shorter_than_the_task(env, fake):
    # One prompt at a time, 0.8 s each: the later prompts wait past the 3 s deadline of
    # their first worker; the retry finds them in /queue or /history by their prompt_id.
    fake.control({"task_s": 0.8})
    wf = write_workflow(env, graph())
    env.write_config(providers=[comfyui(fake, wf, inputs=PATHS, poll_interval=0.1)
                                .replace("default = true;", "default = true; concurrency = 6;")],
                     workers_max=COMFYUI_N, batch_size=1, timeout=1.0,
                     extra=retry_conf(5, 0.01, 0.02))
    prompts = [f"storyboard {i}" for i in range(1, COMFYUI_N + 1)]
    events = deadline_run(env, fake, "comfyui", prompts)
    subs = assert_one_submission_each(fake, "comfyui", prompts)
    report("comfyui, worker deadline shorter than the task", subs,
           len(events_of(events, "image_generated")))
