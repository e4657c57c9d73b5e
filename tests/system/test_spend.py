"""Spend: `cost` per request and `budget = { per_run; per_day; }` per provider, through the
real binary against tools/fakeprovider, which counts the requests it was sent.  No request
passes a budget; the storyboards a budget stops fail with "budget reached" and one warning,
and `retry` sends them once the budget allows; the ledger keeps every request, also across a
kill -9; `status` and /metrics show it."""

import json
import os
import re
import signal

from conftest import (events_of, generation_requests, http_provider, project_id_of, wait_for,
                      warnings_of)


def openai(fake, keys, concurrency=2):
    return http_provider("p", "openai", fake.openai_url, model="gpt-image-1",
                         concurrency=concurrency, keys=keys)


def sbs(n):
    return [{"image_prompt": f"paid shot {i}", "params": {"ratio": "1:1", "resolution": "1k"}}
            for i in range(n)]


def ledger(env):
    return env.sql("SELECT provider, outcome, cost FROM spend_ledger ORDER BY id")


def test_a_day_budget_sends_what_it_allows_and_retry_sends_the_rest(env, fake):
    fake.control({"latency_ms": 100})
    env.write_config(providers=[openai(fake, "cost = 1; budget = { per_day = 5; };")],
                     workers_max=2, batch_size=3)
    rc, events, _ = env.run_json(env.project(sbs(10)), expect=3)
    pid = project_id_of(events)
    assert len(generation_requests(fake)) == 5
    errors = events_of(events, "error")
    assert len(errors) == 5 and all("budget reached: provider p: its per_day budget of 5"
                                    in e["error"] for e in errors), errors
    told = [w for w in warnings_of(events) if "budget reached" in w]
    assert len(told) == 1 and "5 storyboards not sent" in told[0], warnings_of(events)
    assert ledger(env) == [("p", "completed", 1.0)] * 5

    # status: the run's spend and the day's, per provider.
    cp = env.t2i("status", pid, check=0)
    assert re.search(r"spend of its last run:\s+p 5 requests, 5 spent", cp.stdout), cp.stdout
    assert re.search(r"spend today \(\d{4}-\d\d-\d\d\):\s+p 5 requests, 5 spent", cp.stdout)
    spend = json.loads(env.t2i("status", pid, "--json", check=0).stdout)["spend"]
    assert spend["run"] == {"p": {"requests": 5, "spent": 5.0}}
    assert spend["today"] == {"p": {"requests": 5, "spent": 5.0}}

    # The day's spend is in the database: another process sends nothing more...
    env.t2i("retry", pid, "--json", check=1)
    assert len(generation_requests(fake)) == 5
    # ...until the budget allows: then `retry` completes them.
    env.write_config(providers=[openai(fake, "cost = 1; budget = { per_day = 10; };")],
                     workers_max=2, batch_size=3)
    cp = env.t2i("retry", pid, "--json", check=0)
    assert len(generation_requests(fake)) == 10
    assert len([e for e in map(json.loads, cp.stdout.splitlines())
                if e["type"] == "image_generated"]) == 5
    assert len(ledger(env)) == 10


def test_a_run_budget_holds_for_one_run_and_counts_what_cost_nothing(env, fake):
    """per_run = 3 at cost 1.5 allows two requests a run; a 429 costs nothing (the provider
    refused it before any work) and leaves room, recorded all the same."""
    fake.control({"faults": [{"kind": "http429", "times": 1}]})
    env.write_config(providers=[openai(fake, "cost = 1.5; budget = { per_run = 3; };")],
                     workers_max=1, batch_size=1)
    rc, events, _ = env.run_json(env.project(sbs(4)), expect=3)
    assert len(events_of(events, "image_generated")) == 2
    assert len(generation_requests(fake)) == 3
    assert ledger(env) == [("p", "refused", 0.0), ("p", "completed", 1.5),
                           ("p", "completed", 1.5)]


def test_no_budget_but_every_request_is_recorded(env, fake):
    fake.control({"faults": [{"kind": "http500", "times": 1}]})
    env.write_config(providers=[openai(fake, "cost = 0.04;")], workers_max=1,
                     extra="retry = { attempts = 3; backoff = 0.01; backoff_max = 0.02; };")
    env.run_json(env.project(sbs(2)), expect=0)
    # The failed one may have been billed: counted, as what it would cost.
    assert ledger(env) == [("p", "failed", 0.04), ("p", "completed", 0.04),
                           ("p", "completed", 0.04)]


def metric(text, name, provider):
    m = re.search(rf'^{name}{{provider="{provider}"}} (\S+)$', text, re.M)
    return float(m[1]) if m else None


def test_kill9_loses_no_spend_record(env, service, fake):
    """The service is killed while two paid requests are in flight.  Those were handed out
    with their ledger rows committed first: after the restart they count against the budget
    (their answers never came), the run resumes within what is left, and every request the
    provider received has its row; /metrics shows the spend."""
    fake.control({"latency_ms": 1500})
    service.configure(providers=[openai(fake, "cost = 1; budget = { per_day = 4; };")],
                      workers_max=2, batch_size=1)
    service.start()
    pid = service.import_project([s["image_prompt"] for s in sbs(8)],
                                 params={"ratio": "1:1", "resolution": "1k"})
    service.start_run(pid)
    wait_for(lambda: len(generation_requests(fake)) == 2, what="two requests in flight")
    service.kill9()
    assert env.sql("SELECT outcome, cost FROM spend_ledger") == [("reserved", 1.0)] * 2
    service.start()
    done = [m for m in service.events(pid) if m["data"]["type"] == "done"]
    assert done, "the resumed run sent no done"
    sent = len(generation_requests(fake))
    rows = ledger(env)
    assert len(rows) == sent <= 4, (sent, rows)
    assert sum(c for _, _, c in rows) == 4.0
    assert sorted(o for _, o, _ in rows).count("unknown") == 2
    text = service.get("/metrics").body.decode()
    assert metric(text, "t2istage_spend_total", "p") == 4.0
    assert metric(text, "t2istage_requests_total", "p") == 4.0
    assert metric(text, "t2istage_requests_per_image", "p") == 2.0
    # The budget raised, a run of the missing ones completes them: 6 more requests.
    service.configure(providers=[openai(fake, "cost = 1; budget = { per_day = 100; };")],
                      workers_max=2, batch_size=1)
    service.kill(signal.SIGHUP)
    service.wait_log("reloaded:")
    r = service.post(f"/v1/projects/{pid}/image-generation", {"only_missing": True})
    assert r.status == 202, r
    done = service.events(pid)[-1]["data"]
    assert done["type"] == "done" and done["data"]["success_count"] == 6, done
    assert len(generation_requests(fake)) == len(ledger(env)) == 10


def async_log(tasks):
    path = os.path.join(tasks, "log")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.split() for line in f]


def test_a_budget_lowered_under_a_polling_plugin_stops_it(env, service):
    """A polling plugin's task is paid for (its checkpoint); a reload lowers the day's
    budget below what is spent: the worker is told T2I_STOP_BUDGET, leaves the task (no
    cancel), the storyboard fails with "budget reached", and a later run the budget allows
    polls the same task instead of paying again."""
    tasks = os.path.join(env.path, "tasks")
    os.makedirs(tasks)
    gate = os.path.join(env.path, "gate")

    def configure(per_day):
        service.configure(providers=[http_provider(
            "a", "async", "", api_key="sk-async-KEY-1", keys=f"cost = 1; budget = {{ per_day"
            f" = {per_day}; }};", tasks=tasks, poll_ms=30, gate=gate)], workers_max=1)

    configure(10)
    service.start()
    pid = service.import_project(["a paid task"])
    service.start_run(pid)
    wait_for(lambda: [x for x in async_log(tasks) if x[0] == "poll"], what="the plugin polling")
    configure(0.5)
    service.kill(signal.SIGHUP)
    service.wait_log("reloaded:")
    msgs = service.events(pid)
    (err,) = [m["data"] for m in msgs if m["data"]["type"] == "error"]
    assert "budget reached: provider a: its per_day budget of 0.5" in err["error"], err
    log = async_log(tasks)
    assert ["budget"] == [x[5] for x in log if x[0] == "stop"], log
    assert [x for x in log if x[0] == "left"] and not [x for x in log if x[0] == "cancel"]
    assert env.sql("SELECT outcome, cost FROM spend_ledger") == [("failed", 1.0)]
    # The budget raised, the task is polled, not paid again.
    configure(10)
    service.kill(signal.SIGHUP)
    service.wait_log("reloaded:", 2)
    with open(gate, "w"):
        pass
    r = service.post(f"/v1/projects/{pid}/image-generation", {"only_missing": True})
    assert r.status == 202, r
    done = service.events(pid)[-1]["data"]
    assert done["type"] == "done" and done["data"]["success_count"] == 1, done
    assert len([x for x in async_log(tasks) if x[0] == "submit"]) == 1
    assert env.sql("SELECT outcome, cost FROM spend_ledger ORDER BY id") == [
        ("failed", 1.0), ("completed", 0.0)]
