"""Automatic retries and failover, driven by the test plugins (error, crash,
ok): attempts per class, backoff and Retry-After in the warnings, failover
along the project's providers then the default, the final counts; and, with
tools/fakeprovider, the concurrency cut after rate limiting."""

import os

from conftest import (FakeProvider, events_of, generation_requests, http_provider,
                      project_id_of, provider_conf, rate_warnings, read_trace, retry_conf,
                      retry_warnings, stage_status, storyboard_rows, trace_starts, warnings_of)

FAST = dict(backoff=0.01, backoff_max=0.02)


def ids_by_position(env, events):
    return {pos: sid for sid, pos, _ in storyboard_rows(env, project_id_of(events))}


def starts_per_storyboard(trace):
    out = {}
    for sid in trace_starts(trace):
        out[sid] = out.get(sid, 0) + 1
    return out


def attempts_column(env, sid):
    return env.sql("SELECT status, attempts FROM generated_images WHERE storyboard_id = ?"
                   " AND is_primary = 1", sid)


def test_transient_error_uses_every_attempt_then_fails(env):
    trace = os.path.join(env.path, "trace")
    env.write_config(providers=[provider_conf("p", "error", trace=trace, always=True,
                                              **{"class": "transient", "status": 503})],
                     extra=retry_conf(4, **FAST))
    rc, events, _ = env.run_json(env.project(["first", "second"]), expect=1)
    ids = ids_by_position(env, events)
    assert starts_per_storyboard(trace) == {ids[1]: 4, ids[2]: 4}
    warnings = retry_warnings(events)
    for pos in (1, 2):
        mine = [w for w in warnings if w["index"] == pos]
        assert [w["attempt"] for w in mine] == [1, 2, 3]
        assert all((w["of"], w["provider"], w["cls"]) == (4, "p", "transient") for w in mine)
        assert all(w["cause"] == "error plugin: refused prompt" for w in mine)
        assert attempts_column(env, ids[pos]) == [("failed", 4)]
    assert len(warnings) == len(warnings_of(events)) == 6
    errors = events_of(events, "error")
    assert sorted(e["storyboard_id"] for e in errors) == sorted(ids.values())
    assert all(e["error"].endswith(": error plugin: refused prompt") for e in errors)
    # Retries are not storyboards: progress still ends at the total.
    assert max(e["current"] for e in events_of(events, "progress")) == 2
    done = events[-1]
    assert done["data"]["failed_count"] == 2 and done["data"]["success_count"] == 0
    assert done["stage"]["status"] == "failed"


def test_rejected_is_tried_once(env):
    trace = os.path.join(env.path, "trace")
    env.write_config(providers=[provider_conf("p", "error", trace=trace, always=True,
                                              **{"class": "rejected"})],
                     extra=retry_conf(5, **FAST))
    rc, events, _ = env.run_json(env.project(["first", "second"]), expect=1)
    ids = ids_by_position(env, events)
    assert starts_per_storyboard(trace) == {ids[1]: 1, ids[2]: 1}
    assert warnings_of(events) == []
    assert len(events_of(events, "error")) == 2
    assert attempts_column(env, ids[1]) == [("failed", 1)]


def test_one_attempt_means_no_retry(env):
    trace = os.path.join(env.path, "trace")
    env.write_config(providers=[provider_conf("p", "error", trace=trace, always=True,
                                              **{"class": "transient"})],
                     extra=retry_conf(1, **FAST))
    rc, events, _ = env.run_json(env.project(["only"]), expect=1)
    ids = ids_by_position(env, events)
    assert starts_per_storyboard(trace) == {ids[1]: 1}
    assert warnings_of(events) == []
    (err,) = events_of(events, "error")
    assert err["error"] == "storyboard 1: error plugin: refused prompt"
    assert attempts_column(env, ids[1]) == [("failed", 1)]


def test_backoff_grows_and_is_capped(env):
    trace = os.path.join(env.path, "trace")
    env.write_config(providers=[provider_conf("p", "error", trace=trace, always=True,
                                              **{"class": "transient"})],
                     extra=retry_conf(4, backoff=0.1, backoff_max=0.2))
    rc, events, _ = env.run_json(env.project(["only"]), expect=1)
    delays = [w["delay_s"] for w in retry_warnings(events)]
    # Full jitter: uniform below min(backoff_max, backoff * 2^(attempt-1)),
    # printed with one decimal.
    assert len(delays) == 3
    for cap, d in zip((0.1, 0.2, 0.2), delays):
        assert 0 <= d <= cap + 0.05, delays


def test_rate_limited_waits_the_retry_after(env):
    """A provider that answers 429 for ever, with a Retry-After of 1.5 s: the wait is at
    least that, no attempt is used up (retry.attempts is 1), and the storyboard fails once
    retry.rate_limit_wait is over (after the second answer: the third try would come at
    its end), with the cause named."""
    trace = os.path.join(env.path, "trace")
    env.write_config(providers=[provider_conf("p", "error", trace=trace, always=True,
                                              status=429, retry_after_ms=1500,
                                              **{"class": "rate_limited"})],
                     extra=retry_conf(1, backoff=0.01, backoff_max=2.0, rate_limit_wait=2.5))
    rc, events, _ = env.run_json(env.project(["only"]), expect=1)
    waits = rate_warnings(events)
    assert len(waits) == 2 and retry_warnings(events) == [], warnings_of(events)
    assert waits[0]["delay_s"] >= 1.5 and waits[0]["provider"] == "p", waits
    assert waits[0]["cause"] == "error plugin: refused prompt", waits
    starts = [ns for ev, _pid, _sb, ns in read_trace(trace) if ev == "start"]
    assert len(starts) == 2
    # A lower bound only: the second attempt cannot begin before the wait.
    assert starts[1] - starts[0] >= 1.5e9 * 0.9
    (err,) = events_of(events, "error")
    assert "retry.rate_limit_wait" in err["error"] and "2.5 s" in err["error"], err
    assert "error plugin: refused prompt" in err["error"], err
    assert events[-1]["type"] == "done" and events[-1]["data"]["failed_count"] == 1


def test_crash_is_retried_then_reported(env):
    trace = os.path.join(env.path, "trace")
    env.write_config(providers=[provider_conf("p", "crash", trace=trace)],
                     extra=retry_conf(2, **FAST))
    rc, events, _ = env.run_json(env.project(["fine one", "CRASH here", "fine two"]), expect=3)
    ids = ids_by_position(env, events)
    starts = starts_per_storyboard(trace)
    assert starts == {ids[1]: 1, ids[2]: 2, ids[3]: 1}
    (w,) = retry_warnings(events)
    assert (w["index"], w["attempt"], w["of"], w["cls"]) == (2, 1, 2, "transient")
    assert w["cause"] == "worker crashed: signal 11"
    (err,) = events_of(events, "error")
    assert err["storyboard_id"] == ids[2]
    assert err["error"] == "storyboard 2: worker crashed: signal 11"
    assert attempts_column(env, ids[2]) == [("failed", 2)]
    assert len(events_of(events, "image_generated")) == 2


def test_quota_fails_over_to_the_default_provider(env):
    qtrace, otrace = os.path.join(env.path, "qtrace"), os.path.join(env.path, "otrace")
    env.write_config(providers=[
        provider_conf("q", "error", default=False, trace=qtrace, always=True,
                      **{"class": "quota", "status": 402}),
        provider_conf("fallback", "ok", trace=otrace)], extra=retry_conf(3, **FAST),
        workers_max=1)
    rc, events, _ = env.run_json(env.project(["a", "b", "c"], image_providers=["q"]), expect=0)
    ids = ids_by_position(env, events)
    # (One worker, so that the three are one batch.)  Exhausted credits make the provider unusable for the run, as a refused
    # credential does: it is asked once, by the storyboard that found out,
    # and the others go straight to the next provider.
    qstarts = starts_per_storyboard(qtrace)
    assert sum(qstarts.values()) == 1
    (first,) = qstarts
    assert starts_per_storyboard(otrace) == {sid: 1 for sid in ids.values()}
    pos_of = {sid: pos for pos, sid in ids.items()}
    moves = [w for w in warnings_of(events) if "moving to provider" in w]
    assert moves == [f"storyboard {pos_of[first]}: provider q failed (quota: error plugin: "
                     "refused prompt); moving to provider fallback"]
    assert any("provider q is unusable" in w for w in warnings_of(events))
    assert retry_warnings(events) == []
    (fb,) = env.sql("SELECT id FROM model_providers WHERE name = 'fallback'")[0]
    for sid in ids.values():
        assert env.sql("SELECT status, attempts, model_provider_id FROM generated_images"
                       " WHERE storyboard_id = ?", sid) == [
                           ("completed", 2 if sid == first else 1, fb)]
    assert events[-1]["stage"]["status"] == "completed"


def test_used_up_attempts_fail_over_along_the_project_list(env):
    atrace, btrace = os.path.join(env.path, "atrace"), os.path.join(env.path, "btrace")
    env.write_config(providers=[
        provider_conf("a", "error", default=False, trace=atrace, always=True,
                      **{"class": "transient"}),
        provider_conf("b", "ok", default=False, trace=btrace),
        provider_conf("c", "ok")], extra=retry_conf(2, **FAST))
    rc, events, _ = env.run_json(env.project(["x", "y"], image_providers=["a", "b"]), expect=0)
    ids = ids_by_position(env, events)
    assert starts_per_storyboard(atrace) == {ids[1]: 2, ids[2]: 2}
    assert starts_per_storyboard(btrace) == {ids[1]: 1, ids[2]: 1}
    for pos in (1, 2):
        assert [(w["attempt"], w["provider"]) for w in retry_warnings(events)
                if w["index"] == pos] == [(1, "a")]
        assert (f"storyboard {pos}: provider a failed (transient: error plugin: refused "
                "prompt); moving to provider b") in warnings_of(events)
        assert attempts_column(env, ids[pos]) == [("completed", 3)]


def test_auth_makes_the_provider_unusable_for_the_run(env):
    atrace, btrace = os.path.join(env.path, "atrace"), os.path.join(env.path, "btrace")
    env.write_config(providers=[
        provider_conf("a", "error", default=False, trace=atrace, always=True,
                      **{"class": "auth", "status": 401}),
        provider_conf("b", "ok", trace=btrace)],
        workers_max=1, batch_size=10, extra=retry_conf(3, **FAST))
    rc, events, _ = env.run_json(env.project([f"shot {i}" for i in range(1, 7)],
                                             image_providers=["a", "b"]), expect=0)
    assert len(trace_starts(atrace)) == 1, "asked once, never again"
    assert len(trace_starts(btrace)) == 6
    warnings = warnings_of(events)
    assert warnings.count("provider a is unusable (error plugin: refused prompt); "
                          "not asked again in this run") == 1
    assert ("storyboard 1: provider a failed (auth: error plugin: refused prompt); "
            "moving to provider b") in warnings
    assert len(events_of(events, "image_generated")) == 6
    assert not events_of(events, "error")


def test_auth_on_the_last_provider_fails_the_rest_with_the_cause(env):
    trace = os.path.join(env.path, "trace")
    env.write_config(providers=[provider_conf("a", "error", trace=trace, always=True,
                                              **{"class": "auth", "status": 401})],
                     workers_max=2, batch_size=2, extra=retry_conf(3, **FAST))
    rc, events, _ = env.run_json(env.project([f"shot {i}" for i in range(1, 6)]), expect=1)
    assert 1 <= len(trace_starts(trace)) <= 2      # at most one per running worker
    errors = events_of(events, "error")
    assert len(errors) == 5
    assert all("error plugin: refused prompt" in e["error"] for e in errors), errors
    assert events[-1]["data"]["failed_count"] == 5


def test_final_counts_of_a_mixed_run(env):
    trace = os.path.join(env.path, "trace")
    env.write_config(providers=[provider_conf("p", "error", trace=trace)],
                     extra=retry_conf(3, rate_limit_wait=1.0, **FAST))
    sbs = ["one fine",
           {"image_prompt": "two ERROR", "params": {"options": {"class": "transient"}}},
           "three fine",
           {"image_prompt": "four ERROR", "params": {"options": {"class": "rejected"}}},
           {"image_prompt": "five ERROR", "params": {"options": {"class": "rate_limited"}}}]
    rc, events, _ = env.run_json(env.project(sbs), expect=3)
    ids = ids_by_position(env, events)
    starts = starts_per_storyboard(trace)
    # The rate-limited one waits for retry.rate_limit_wait, asked as often as its
    # backoff allows, without using up attempts.
    assert starts.pop(ids[5]) >= 3
    assert starts == {ids[1]: 1, ids[2]: 3, ids[3]: 1, ids[4]: 1}
    assert sorted((w["index"], w["cls"]) for w in retry_warnings(events)) == [
        (2, "transient"), (2, "transient")]
    assert {w["index"] for w in rate_warnings(events)} == {5}
    gen = events_of(events, "image_generated")
    done = events[-1]
    assert done["data"] == {"total_storyboards": 5, "success_count": 2, "failed_count": 3,
                            "generated_image_ids": [e["image"]["id"] for e in gen]}
    assert done["success"] is True and done["stage"]["status"] == "partial"
    assert env.sql("SELECT status, total, success_count, failed_count FROM runs") == [
        ("partial", 5, 2, 3)]
    assert stage_status(env, project_id_of(events)) == "partial"
    assert sorted(env.sql("SELECT attempts, status FROM generated_images WHERE"
                          " storyboard_id <> ?", ids[5])) == [
        (1, "completed"), (1, "completed"), (1, "failed"), (3, "failed")]


def test_rate_limiting_cuts_concurrency(env, tmp_path_factory):
    """Four workers' requests all rate limited (the proxy's -2001 请求频率限制,
    in an HTTP 200 as it sends every failure): the first answer cuts the
    provider's limit once, and the other three of that round trip hold it to
    what each proves (the requests still in flight when it came: none at the
    last), so the first request after them runs alone, and the next one can
    only start once it has been answered.  The fake's fixed latency delays
    every answer, and its clock records when requests arrive."""
    latency = 0.4
    fake = FakeProvider(tmp_path_factory.mktemp("fakeprovider"))
    try:
        fake.control({"latency_ms": latency * 1000,
                      "faults": [{"kind": "jimeng_rate", "times": 4}]})
        env.write_config(providers=[http_provider("p", "jimeng", fake.jimeng_url,
                                                  model="jimeng-4.0", concurrency=4)],
                         workers_max=4, batch_size=1, extra=retry_conf(3, **FAST))
        sbs = [{"image_prompt": f"shot {i}", "params": {"resolution": "1k"}}
               for i in range(1, 9)]
        rc, events, _ = env.run_json(env.project(sbs), expect=0)
        reqs = generation_requests(fake)
    finally:
        fake.stop()
    assert [r["fault"] for r in reqs[:4]] == ["jimeng_rate"] * 4
    assert all(r["fault"] is None for r in reqs[4:])
    assert len(reqs) == 12
    first_ok, second_ok = reqs[4], reqs[5]
    # All four were answered before the next request was sent...
    assert first_ok["time"] - max(r["time"] for r in reqs[:4]) >= latency * 0.9
    # ...and it ran alone: one worker until a success raises the limit.
    assert second_ok["time"] - first_ok["time"] >= latency * 0.9
    assert len(rate_warnings(events)) == 4 and retry_warnings(events) == []
