"""The dashscope plugin (Alibaba Wan and Qwen-Image, asynchronous) through the real binary
against tools/fakeprovider: the submission and the polls as DashScope wants them, n always
1, the nearest allowed size per model family, the task id committed before polling and an
attempt that resumes it instead of paying again, every error class (400 Arrearage is quota),
a task DashScope forgot, polls that fail now and then, a task that outlives its budget, and
the key kept out of everything written."""

import json

import pytest

from conftest import (API_KEY, events_of, http_provider, image_info, retry_conf,
                      retry_warnings, wait_for, warnings_of)
from provider_checks import assert_secret_nowhere, failover_pair, run_project, seen_class

SUBMIT = "/dashscope/api/v1/services/aigc/text2image/image-synthesis"
TASKS = "/dashscope/api/v1/tasks/"


def dashscope(fake, name="ds", default=True, poll_interval=0.05, **kw):
    # The region's base URL; polls every 50 ms instead of DashScope's 5 s.
    return http_provider(name, "dashscope", fake.url + "/dashscope", default=default,
                         poll_interval=poll_interval, **kw)


def submissions(fake):
    return [r for r in fake.requests() if r["path"] == SUBMIT]


def polls(fake):
    return [r for r in fake.requests() if r["path"].startswith(TASKS)]


def counters(fake):
    return fake._call("GET", "/_counters")


def test_submission_and_polls_as_dashscope_wants_them(env, fake):
    env.write_config(providers=[dashscope(fake, seed=42, prompt_extend=False, n=4)],
                     extra=retry_conf(1))
    rc, events, cp, pid = run_project(env, [
        {"image_prompt": "a lighthouse at dusk", "negative_prompt": "fog"},
        {"image_prompt": "a harbour", "params": {"ratio": "9:16", "resolution": "1k"}},
    ], expect=0)
    subs = submissions(fake)
    assert len(subs) == 2
    for r in subs:
        assert r["method"] == "POST"
        assert r["headers"]["authorization"] == f"Bearer {API_KEY}"
        assert r["headers"]["x-dashscope-async"] == "enable"
        assert r["headers"]["content-type"] == "application/json"
    bodies = {r["body"]["input"]["prompt"]: r["body"] for r in subs}
    # n is 1 whatever the options say (each image is billed); the size fits Wan's sides.
    assert bodies == {
        "a lighthouse at dusk": {"model": "wan2.2-t2i-flash",
                                 "input": {"prompt": "a lighthouse at dusk",
                                           "negative_prompt": "fog"},
                                 "parameters": {"size": "1440*810", "n": 1, "seed": 42,
                                                "prompt_extend": False}},
        "a harbour": {"model": "wan2.2-t2i-flash", "input": {"prompt": "a harbour"},
                      "parameters": {"size": "576*1024", "n": 1, "seed": 42,
                                     "prompt_extend": False}},
    }
    assert 'option "n" is not sent' in cp.stderr
    task_ids = {r["task"] for r in subs}
    assert len(task_ids) == 2
    for r in polls(fake):
        assert r["method"] == "GET" and r["task"] in task_ids
        assert r["headers"]["authorization"] == f"Bearer {API_KEY}"
    got = {}
    for e in events_of(events, "image_generated"):
        img = e["image"]
        mime, w, h = image_info(img["file_path"])
        assert (w, h) == (img["width"], img["height"])
        assert img["url"].startswith(fake.url + "/images/")
        got[e["storyboard_index"]] = (w, h)
    assert got == {1: (1440, 810), 2: (576, 1024)}
    c = counters(fake)
    assert c["total"]["dashscope"]["submissions"] == 2
    assert all(t["submissions"] == 1 and t["status"] == "SUCCEEDED" for t in c["tasks"].values())
    # Completion clears the committed task.
    assert env.sql("SELECT count(*) FROM provider_tasks") == [(0,)]


@pytest.mark.parametrize("model, ratio, resolution, size", [
    ("qwen-image", "16:9", "2k", "1664*928"),
    ("qwen-image", "4:3", "1k", "1472*1140"),
    ("qwen-image", "1:1", "2k", "1328*1328"),
    ("qwen-image", "3:4", "2k", "1140*1472"),
    ("qwen-image", "9:16", "1k", "928*1664"),
    ("qwen-image", "21:9", "2k", "1664*928"),
    ("wan2.2-t2i-plus", "21:9", "1k", "1195*512"),
    ("wan2.2-t2i-plus", "1:1", "2k", "1440*1440"),
    ("wanx2.1-t2i-turbo", "3:2", "4k", "1440*960"),
])
def test_nearest_allowed_size_per_model_family(env, fake, model, ratio, resolution, size):
    env.write_config(providers=[dashscope(fake, model=model)], extra=retry_conf(1))
    p = {"ratio": ratio, "resolution": resolution}
    rc, events, _, _ = run_project(env, [{"image_prompt": "a tram", "params": p}], expect=0)
    (r,) = submissions(fake)
    assert r["body"]["model"] == model and r["body"]["parameters"]["size"] == size
    (e,) = events_of(events, "image_generated")
    assert image_info(e["image"]["file_path"])[1:] == tuple(map(int, size.split("*")))


# (fault kind, class, the words that reach the message, submissions)
CASES = [
    ("content_policy", "rejected", "DataInspectionFailed", 1),
    ("auth", "auth", "InvalidApiKey", 1),
    ("quota", "quota", "Arrearage", 1),
    ("http429", "rate_limited", "Throttling.RateQuota", 2),
    ("http500", "transient", "InternalError", 2),
    ("timeout408", "transient", "RequestTimeOut", 2),
    ("malformed", "transient", "submit answer is not JSON", 2),
    ("not_json", "transient", "submit answer is not JSON", 2),
    # The task's own end: a retry polls it, finds it ended without images, submits anew.
    ("task_failed", "transient", "InternalError.Algo", 2),
    ("task_canceled", "transient", "cancelled at the provider", 2),
    ("task_unknown", "transient", "unknown to DashScope", 2),
    ("empty_data", "transient", "without output.results", 2),
    ("task_blocked", "rejected", "DataInspectionFailed", 1),
]


@pytest.mark.parametrize("kind, cls, words, paid", CASES)
def test_each_error_is_its_class(env, fake, kind, cls, words, paid):
    fake.control({"faults": [{"kind": kind, "endpoint": "dashscope", "times": 1}]})
    env.write_config(providers=failover_pair(dashscope(fake, name="a", default=False)),
                     extra=retry_conf(2, 0.01, 0.02))
    rc, events, cp, _ = run_project(env, ["a quiet street"], image_providers=["a", "b"])
    got, cause = seen_class(events)
    assert (got, words in cause) == (cls, True), (kind, got, cause)
    assert cause.startswith("dashscope: "), cause
    assert len(submissions(fake)) == paid, kind
    assert rc == (1 if cls == "rejected" else 0)


def test_a_forgotten_task_is_submitted_again_by_the_next_attempt(env, fake):
    # The task runs longer than the attempt: the worker is killed at its deadline; before
    # the retry DashScope forgets the task (ids expire after 24 hours): UNKNOWN, submit anew.
    fake.control({"task_s": 6})
    env.write_config(providers=[dashscope(fake)], timeout=1.0, extra=retry_conf(3, 0.01, 0.02))
    import threading
    import time

    def forget_after_first_poll():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not polls(fake):
            time.sleep(0.02)
        fake._call("POST", "/_forget", {"provider": "dashscope"})
        fake.control({"task_s": 0.1})
    t = threading.Thread(target=forget_after_first_poll, daemon=True)
    t.start()
    rc, events, cp, _ = run_project(env, ["a night market"], expect=0)
    t.join()
    assert "unknown to DashScope" in cp.stderr and "submitting a new task" in cp.stderr
    first, second = submissions(fake)
    assert first["task"] != second["task"]
    assert len(events_of(events, "image_generated")) == 1


def test_polls_that_fail_now_and_then_cost_no_attempt(env, fake):
    fake.control({"task_s": 0.3, "faults": [{"kind": "poll_http500", "times": 2},
                                            {"kind": "poll_malformed", "times": 0}]})
    env.write_config(providers=[dashscope(fake)], extra=retry_conf(3, 0.01, 0.02))
    rc, events, cp, _ = run_project(env, ["a paper boat"], expect=0)
    assert retry_warnings(events) == []
    assert len(submissions(fake)) == 1
    assert [r["fault"] for r in polls(fake)][:2] == ["poll_http500", "poll_http500"]
    assert cp.stderr.count("trying again") == 2


def test_polls_that_keep_failing_end_the_attempt_and_the_next_one_resumes(env, fake):
    fake.control({"task_s": 0.3, "faults": [{"kind": "poll_malformed", "times": 3}]})
    env.write_config(providers=[dashscope(fake)], extra=retry_conf(3, 0.01, 0.02))
    rc, events, cp, _ = run_project(env, ["a paper boat"], expect=0)
    (w,) = retry_warnings(events)
    assert w["cls"] == "transient" and w["cause"].startswith("dashscope: poll answer is not "
                                                             "JSON (HTTP 200)"), w
    assert len(submissions(fake)) == 1                 # the retry polled the same task
    assert "of an earlier attempt" in cp.stderr


def test_a_task_longer_than_the_attempt_is_polled_by_the_retry(env, fake):
    # generation.timeout 1 s, a task of 4 s: attempts are killed at their deadline and the
    # next one resumes the committed task; one submission in all.
    fake.control({"task_s": 4})
    env.write_config(providers=[dashscope(fake)], timeout=1.0, extra=retry_conf(5, 0.01, 0.02))
    rc, events, cp, pid = run_project(env, ["a slow sunrise"], expect=0)
    timed_out = [w for w in retry_warnings(events) if "timed out" in w["cause"]]
    assert timed_out, warnings_of(events)
    (sub,) = submissions(fake)
    assert {r["task"] for r in polls(fake)} == {sub["task"]}
    (attempts,) = env.sql("SELECT attempts FROM generated_images WHERE is_primary = 1")[0]
    assert attempts == len(timed_out) + 1 >= 2
    assert counters(fake)["tasks"][sub["task"]]["submissions"] == 1


def test_running_past_the_last_attempts_budget_is_a_clear_error(env, fake):
    fake.control({"task_s": 4})
    env.write_config(providers=[dashscope(fake)], timeout=1.0, extra=retry_conf(1))
    rc, events, _, project = run_project(env, ["a long night"], expect=1)
    (err,) = events_of(events, "error")
    (sub,) = submissions(fake)
    assert f"dashscope: task {sub['task']} not finished" in err["error"], err
    assert "time budget (1 s) is used up on its last attempt" in err["error"]
    assert "DashScope offers no way to cancel a running task" in err["error"]
    # It cannot be cancelled, so it stays committed: once it has finished, `retry` gets
    # its image without submitting another.
    assert len(env.sql("SELECT state FROM provider_tasks")) == 1
    wait_for(lambda: counters(fake)["tasks"][sub["task"]]["status"] == "SUCCEEDED",
             what="the task to finish at the provider")
    cp = env.t2i("retry", project, "--json", check=0)
    assert len(submissions(fake)) == 1
    assert [json.loads(line)["type"] for line in cp.stdout.splitlines()].count(
        "image_generated") == 1


def test_max_wait_bounds_a_task_over_all_attempts(env, fake):
    fake.control({"task_s": 60})
    env.write_config(providers=[dashscope(fake, max_wait=1)], timeout=20.0,
                     extra=retry_conf(1))
    rc, events, _, _ = run_project(env, ["an endless night"], expect=1)
    (err,) = events_of(events, "error")
    assert "waited options.max_wait (1 s)" in err["error"], err
    assert "DashScope offers no way to cancel" in err["error"]


def test_key_appears_in_no_output_event_or_database_byte(env, fake):
    kinds = ["http500", "content_policy", "task_failed", "poll_http500", "quota"]
    fake.control({"faults": [{"kind": k, "match": f"<{k}>", "times": -1,
                              "endpoint": "dashscope"} for k in kinds]})
    env.write_config(providers=failover_pair(dashscope(fake, name="a", default=False)),
                     thumbnails=True, extra=retry_conf(2, 0.01, 0.02))
    sbs = [f"scene <{k}>" for k in kinds] + ["a good scene"]
    rc, events, cp, pid = run_project(env, sbs, image_providers=["a", "b"])
    assert events[-1]["type"] == "done"
    assert all(r["headers"]["authorization"] == f"Bearer {API_KEY}"
               for r in submissions(fake) + polls(fake))
    assert_secret_nowhere(env, API_KEY, [cp.stdout, cp.stderr], pid)
