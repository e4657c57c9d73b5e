"""Rate limits, through the real binary against tools/fakeprovider's limits: the concurrency
that converges on what the provider serves, waiting that is not failing, Retry-After
pausing the whole provider (bounded, and said when it is not taken as sent), `rate` as a
bucket shared by every run, a provider that refuses for ever, and no request sent while
the supervisor is frozen.  Times compared are the fake's own clock, and only as lower
bounds."""

import os
import re
import signal
import time

import pytest

from conftest import (NO_RETRY, events_of, generation_requests, http_provider, rate_warnings,
                      retry_conf, retry_warnings, warnings_of)


def openai(fake, **kw):
    return http_provider("p", "openai", fake.openai_url, model="gpt-image-1", **kw)


def sbs(n, word="shot"):
    return [{"image_prompt": f"{word} {i}", "params": {"ratio": "1:1", "resolution": "1k"}}
            for i in range(n)]


def refusals(fake, kind):
    return [r for r in generation_requests(fake) if r["fault"] == kind]


def test_concurrency_converges_on_what_the_provider_serves(env, fake):
    """K=3 at once, asked with concurrency 12 at the default retry.attempts: every storyboard
    completes, and the 429s are the first overshoot (12 - 3) and at most a probe or two, not
    one in every window as when each success grew the limit and each 429 halved it."""
    fake.control({"latency_ms": [300, 500], "limit_concurrent": 3, "limit_retry_after": 1})
    env.write_config(providers=[openai(fake, concurrency=12)], workers_max=12)
    rc, events, cp = env.run_json(env.project(sbs(36)), expect=0)
    assert len(events_of(events, "image_generated")) == 36
    refused = refusals(fake, "limit_concurrent")
    assert 9 <= len(refused) <= 9 + 2, len(refused)
    # Each cut goes down to what the provider was serving when it refused: the
    # overshoot's refusals all left before the first cut, whenever the supervisor reads
    # their workers' begin, and none of them cuts again (once each did, down to 1).
    cuts = [int(n) for n in re.findall(r"rate limited: at most (\d+) workers at once",
                                       cp.stderr)]
    assert cuts, cp.stderr[-2000:]
    assert min(cuts) >= 2, cuts
    assert len(rate_warnings(events)) == len(refused)
    assert retry_warnings(events) == []     # no attempt was used up by a 429
    assert fake._call("GET", "/_limits")["max_in_flight"] == 3


def test_retry_after_pauses_the_whole_provider(env, fake):
    """One of four requests sent together is refused with Retry-After: 1.5: no request at
    all (not only that storyboard's) reaches the provider before the 1.5 s are over."""
    fake.control({"latency_ms": 400, "faults": [
        {"kind": "http429", "match": "shot 0", "times": 1, "retry_after": 1.5}]})
    env.write_config(providers=[openai(fake, concurrency=4)], workers_max=4, batch_size=1,
                     extra=retry_conf(3, 0.01, 5.0))
    rc, events, _ = env.run_json(env.project(sbs(8)), expect=0)
    reqs = generation_requests(fake)
    (refused,) = [r for r in reqs if r["fault"] == "http429"]
    answered = refused["time"] + refused["duration_s"]
    later = [r for r in reqs if r["time"] > answered]
    assert len(later) >= 4, reqs
    assert min(r["time"] for r in later) - answered >= 1.5 * 0.9, (answered, later)
    (w,) = rate_warnings(events)
    assert w["delay_s"] >= 1.5 and "Rate limit reached" in w["cause"], w


@pytest.mark.parametrize("header, said", [
    ({"retry_after": 86400}, "its Retry-After of 86400 s is clamped to retry.backoff_max (0.5 s)"),
    ({"retry_after_text": "-5"}, 'its Retry-After "-5" is negative: ignored'),
    ({"retry_after_text": "Wed, 21 Oct 2015 07:28:00 GMT"},
     'its Retry-After "Wed, 21 Oct 2015 07:28:00 GMT" is a date in the past: ignored'),
])
def test_a_retry_after_not_taken_as_sent_is_said(env, fake, header, said):
    fake.control({"faults": [{"kind": "http429", "times": 1, **header}]})
    env.write_config(providers=[openai(fake)], extra=retry_conf(3, 0.05, 0.5))
    rc, events, _ = env.run_json(env.project(sbs(1)), expect=0)
    (w,) = rate_warnings(events)
    assert said in w["cause"], w
    assert w["delay_s"] <= 0.5, w
    assert len(generation_requests(fake)) == 2


def test_a_provider_that_refuses_for_ever_ends_the_run(env, fake):
    """Every answer a 429: the run ends once retry.rate_limit_wait is over, every storyboard
    failed with the cause, retry.attempts (1 here) never the reason."""
    fake.control({"faults": [{"kind": "http429", "times": -1, "retry_after": 0.2}]})
    env.write_config(providers=[openai(fake, concurrency=2)], workers_max=2,
                     extra=retry_conf(1, 0.05, 0.5, rate_limit_wait=1.5))
    rc, events, _ = env.run_json(env.project(sbs(5)), expect=1)
    errors = events_of(events, "error")
    assert len(errors) == 5, warnings_of(events)
    for e in errors:
        assert "retry.rate_limit_wait" in e["error"], e
        assert "Rate limit reached for requests" in e["error"], e
    assert events[-1]["type"] == "done" and events[-1]["data"]["failed_count"] == 5
    assert len(generation_requests(fake)) > 5     # they waited, rather than gave up at once


def test_rate_spaces_requests_for_every_run(env, service, fake):
    """rate = 300 a minute, two projects at once on the one provider: the requests are sent
    0.2 s apart over both runs, and none is refused by a provider that takes 300 a minute
    with little burst (without `rate`, four workers would send them together).  The gaps
    are measured where the requests arrive, after the workers' scheduling: on a loaded
    machine (make asan) a request can arrive up to some tens of milliseconds late, so a gap
    of half the interval is the bound, and the provider's burst covers the same."""
    fake.control({"latency_ms": 20, "limit_rate": 300, "limit_burst_s": 0.3})
    service.configure(providers=[openai(fake, concurrency=4, keys="rate = 300.0;")],
                      workers_max=4)
    service.start()
    projects = [service.import_project([s["image_prompt"] for s in sbs(6, word)], params={
        "ratio": "1:1", "resolution": "1k"}) for word in ("north", "south")]
    for p in projects:
        service.start_run(p)
    for p in projects:
        done = [m for m in service.events(p) if m["data"]["type"] == "done"]
        assert done and done[0]["data"]["data"]["success_count"] == 6
    times = sorted(r["time"] for r in generation_requests(fake))
    assert len(times) == 12
    assert min(b - a for a, b in zip(times, times[1:])) >= 0.2 * 0.5, times
    assert times[-1] - times[0] >= 11 * 0.2 * 0.9, times  # paced, not sent together
    assert refusals(fake, "limit_rate") == []


def test_rate_limited_answers_share_the_limit_across_runs(env, service, fake):
    """Two runs on one provider that serves 2 at once: their workers share its limit, so the
    provider never sees more than the 2 plus the first overshoot of concurrency 4."""
    fake.control({"latency_ms": [200, 300], "limit_concurrent": 2, "limit_retry_after": 1})
    service.configure(providers=[openai(fake, concurrency=4)], workers_max=8)
    service.start()
    projects = [service.import_project([s["image_prompt"] for s in sbs(8, word)], params={
        "ratio": "1:1", "resolution": "1k"}) for word in ("east", "west")]
    for p in projects:
        service.start_run(p)
    for p in projects:
        done = [m for m in service.events(p) if m["data"]["type"] == "done"]
        assert done and done[0]["data"]["data"]["success_count"] == 8
    # One limit for both runs: the first overshoot is 4 - 2, not twice that.
    assert len(refusals(fake, "limit_concurrent")) <= 2 + 2


def test_no_retry_means_rate_limits_still_wait(env, fake):
    """retry.attempts = 1: a transient failure is not retried, but a rate-limited answer is
    no attempt used: the storyboard waits and completes."""
    fake.control({"faults": [{"kind": "http429", "times": 2}]})
    env.write_config(providers=[openai(fake)], extra=NO_RETRY)
    rc, events, _ = env.run_json(env.project(sbs(1)), expect=0)
    assert len(rate_warnings(events)) == 2
    assert len(events_of(events, "image_generated")) == 1
    assert len(generation_requests(fake)) == 3


def test_a_frozen_supervisor_gets_no_request_sent_in_its_name(env, service, fake):
    """A worker asks the supervisor's go-ahead before each request: while the supervisor is
    stopped (SIGSTOP: a freeze, as when its lease runs out under several instances) the
    worker sends nothing more of its batch, though it has three storyboards to do."""
    fake.control({"latency_ms": 300})
    service.configure(providers=[openai(fake, concurrency=1)], workers_max=1, batch_size=3)
    service.start()
    pid = service.import_project([s["image_prompt"] for s in sbs(3)],
                                 params={"ratio": "1:1", "resolution": "1k"})
    service.start_run(pid)
    deadline = time.monotonic() + 30
    while not generation_requests(fake) and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(service.pid, signal.SIGSTOP)
    try:
        time.sleep(1.5)     # five of the fake's latencies: the batch would be done
        frozen = len(generation_requests(fake))
    finally:
        os.kill(service.pid, signal.SIGCONT)
    assert frozen == 1, generation_requests(fake)
    done = [m for m in service.events(pid) if m["data"]["type"] == "done"]
    assert done and done[0]["data"]["data"]["success_count"] == 3
    assert len(generation_requests(fake)) == 3
