"""`t2istage serve`: the HTTP API, SSE streams, cancel, SIGHUP reload,
SIGTERM and kill -9 recovery, sd_notify and the systemd unit.

Every test starts its own service on 127.0.0.1 (port 0, read back from the
log).  Waits are bounded polls; nothing asserts on wall-clock durations:
ordering is read from the database and the test plugins' trace files."""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import threading
import uuid

import pytest

from conftest import (SERVICE_WAIT, Follower, assert_followers_saw_the_db,
                      assert_json_error, assert_stream_matches_db, completed_count, db_events,
                      image_statuses, open_gate, run_path, slow_service,
                      http_request, png_size, primaries_by_storyboard, provider_conf,
                      read_trace, retry_conf, run_row, service_pids, stage_status,
                      worker_pids, process_role,
                      trace_starts, wait_for, wait_run_done)

pytestmark = pytest.mark.backends

ACCESS_LINE = re.compile(r"^<6>t2istage\[supervisor\]: http: (GET|POST|PUT|DELETE|PATCH|HEAD) "
                         r"(\S+) (\d{3}) (\d+) (-?\d+)ms", re.M)


# --------------------------------------------------------------------------
# Routes


def test_healthz_and_metrics(service):
    service.configure(providers=[provider_conf("flaky", plugin="error", **{"class": "transient"})],
                      extra=retry_conf(2))
    service.start()
    r = service.get("/healthz")
    assert (r.status, r.body) == (200, b"ok")
    assert r.headers["content-type"].startswith("text/plain")

    pid = service.import_project(["fine", "ERROR twice"])
    run = service.start_run(pid)
    done = wait_run_done(service.env, run)
    assert done["data"]["success_count"] == 1 and done["data"]["failed_count"] == 1

    r = service.get("/metrics")
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.body.decode()
    samples = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) t2istage_\w+ .+$", line), line
            continue
        m = re.match(r"^(t2istage_\w+(?:\{[^}]*\})?) (\S+)$", line)
        assert m, line
        samples[m[1]] = float(m[2])
    # The run was counted as ended before its done event was committed.
    assert samples['t2istage_runs_total{status="partial"}'] == 1
    assert samples['t2istage_runs_total{status="completed"}'] == 0
    assert samples['t2istage_runs_total{status="cancelled"}'] == 0
    assert samples["t2istage_runs_started_total"] == 1
    assert samples['t2istage_images{status="completed"}'] == 1
    assert samples['t2istage_images{status="failed"}'] == 1
    assert samples['t2istage_images{status="pending"}'] == 0
    assert samples['t2istage_retries_total{provider="flaky"}'] == 1
    assert samples["t2istage_workers_busy"] == 0
    assert samples['t2istage_provider_latency_seconds_bucket{provider="flaky",le="+Inf"}'] == 3
    assert samples['t2istage_provider_latency_seconds_count{provider="flaky"}'] == 3
    buckets = [v for k, v in samples.items()
               if k.startswith("t2istage_provider_latency_seconds_bucket{")]
    assert buckets == sorted(buckets)      # cumulative
    assert "# TYPE t2istage_provider_latency_seconds histogram" in text
    assert "# TYPE t2istage_retries_total counter" in text
    assert "# TYPE t2istage_workers_busy gauge" in text


def test_projects_routes(service):
    service.configure()
    service.start()
    r = service.post("/v1/projects", {"name": "Demo", "storyboards": [
        {"image_prompt": "a"}, {"image_prompt": "b", "negative_prompt": "c"}]})
    assert r.status == 201, r
    assert r.headers["content-type"].startswith("application/json")
    doc = r.json()
    pid = doc["id"]
    assert doc["name"] == "Demo"
    assert [s["status"] for s in doc["stages"] if s["stage_type"] == "storyboard"] == ["completed"]

    r = service.get(f"/v1/projects/{pid}")
    assert r.status == 200, r
    doc = r.json()
    assert doc["id"] == pid
    assert [s["image_prompt"] for s in doc["storyboards"]] == ["a", "b"]
    assert all(s["image"] is None for s in doc["storyboards"])
    # Upper-case ids name the same project.
    assert service.get(f"/v1/projects/{pid.upper()}").status == 200

    # Errors.
    assert_json_error(service.get(f"/v1/projects/{uuid.uuid4()}"), 404, "not found")
    assert_json_error(service.get("/v1/projects/not-a-uuid"), 404)
    assert_json_error(service.post("/v1/projects", '{"name": "x", "storyboards": ['), 400,
                      "invalid JSON")
    assert_json_error(service.post("/v1/projects", {"name": "x", "storyboards": [
        {"image_prompt": "a"}, {"image_prompt": ""}]}), 400, "storyboard 2", "image_prompt")
    assert_json_error(service.post("/v1/projects", {"name": "x", "storyboards": [
        {"image_prompt": "a", "params": {"ratio": "5:1"}}]}), 400, "storyboard 1",
        "params.ratio")
    assert_json_error(service.post("/v1/projects", {"name": "x", "bogus": 1, "storyboards": [
        {"image_prompt": "a"}]}), 400, "bogus")
    assert_json_error(service.post("/v1/projects", {"id": pid, "name": "again", "storyboards": [
        {"image_prompt": "a"}]}), 409, pid)
    # Nothing half-imported: still one project.
    assert service.env.sql("SELECT count(*) FROM projects")[0][0] == 1


def test_body_too_large(service):
    service.configure()
    service.start()
    limit = 32 * 1024 * 1024
    # A declared size far past the limit is answered before the body.
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=SERVICE_WAIT)
    try:
        conn.putrequest("POST", "/v1/projects")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(4 * limit))
        conn.endheaders()
        resp = conn.getresponse()
        assert resp.status == 413
        assert "error" in json.loads(resp.read())
    finally:
        conn.close()
    # A body one byte over the limit, declared...
    assert_json_error(service.post("/v1/projects", b" " * (limit + 1)), 413, "too large")

    # ...or chunked, without a Content-Length.
    def chunks():
        piece = b" " * (1024 * 1024)
        for _ in range(33):
            yield piece
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=SERVICE_WAIT)
    try:
        conn.request("POST", "/v1/projects", body=chunks(), encode_chunked=True,
                     headers={"Transfer-Encoding": "chunked",
                              "Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 413
        assert "error" in json.loads(resp.read())
    finally:
        conn.close()
    # The service is fine afterwards, and nothing was imported.
    assert service.get("/healthz").status == 200
    assert service.env.sql("SELECT count(*) FROM projects")[0][0] == 0


def test_run_routes(service):
    service.configure(thumbnails=True)
    service.start()
    env = service.env
    pid = service.import_project(["one", "two", "three"])
    sb_ids = [s["id"] for s in service.get(f"/v1/projects/{pid}").json()["storyboards"]]

    # Bad bodies, before anything is written.
    before = env.snapshot()
    assert_json_error(service.post(run_path(pid), {"storyboard_ids": [sb_ids[0]], "x": 1}),
                      400, "unknown member")
    assert_json_error(service.post(run_path(pid), {"storyboard_ids": sb_ids[0]}), 400,
                      "storyboard_ids")
    assert_json_error(service.post(run_path(pid), {"storyboard_ids": [1]}), 400,
                      "storyboard_ids[0]")
    assert_json_error(service.post(run_path(pid), {"no_cache": "yes"}), 400, "no_cache")
    assert_json_error(service.post(run_path(pid), "[1, 2"), 400, "invalid JSON")
    assert_json_error(service.post(run_path(pid), "[]"), 400, "object")
    other = str(uuid.uuid4())
    assert_json_error(service.post(run_path(pid), {"storyboard_ids": [sb_ids[0], other]}), 400,
                      other)
    assert_json_error(service.post(run_path(str(uuid.uuid4()))), 404, "not found")
    assert_json_error(service.post(run_path(pid, "/cancel")), 409, "no run")
    assert_json_error(service.post(run_path(str(uuid.uuid4()), "/cancel")), 404)
    assert_json_error(service.get(run_path(pid, "/events")), 404, "no run")
    assert env.snapshot() == before

    # A run of two of the three storyboards.
    r = service.post(run_path(pid), {"storyboard_ids": sb_ids[:2], "no_cache": False})
    assert r.status == 202, r
    doc = r.json()
    assert doc["project_id"] == pid and doc["status"] == "processing"
    run = doc["run_id"]
    done = wait_run_done(env, run)
    assert done["success"] is True and done["data"]["total_storyboards"] == 2
    assert_json_error(service.post(run_path(pid, "/cancel")), 409)

    r = service.get(f"/v1/projects/{pid}/images")
    assert r.status == 200, r
    images = r.json()["images"]
    assert r.json()["project_id"] == pid
    assert sorted(i["storyboard_id"] for i in images) == sorted(sb_ids[:2])
    assert_json_error(service.get(f"/v1/projects/{uuid.uuid4()}/images"), 404)
    proj = service.get(f"/v1/projects/{pid}").json()
    assert [s["image"] is not None for s in proj["storyboards"]] == [True, True, False]

    for im in images:
        assert im["status"] == "completed"
        r = service.get(f"/v1/images/{im['id']}")
        assert r.status == 200 and r.json()["id"] == im["id"], r
        assert r.json()["file_path"] == im["file_path"]
        r = service.get(f"/v1/images/{im['id']}/file")
        assert r.status == 200, r
        assert r.headers["content-type"] == "image/png"
        with open(im["file_path"], "rb") as f:
            assert r.body == f.read()
        assert int(r.headers["content-length"]) == len(r.body) == im["file_size"]
        r = service.get(f"/v1/images/{im['id']}/thumbnail")
        assert r.status == 200, r
        assert r.headers["content-type"] in ("image/jpeg", "image/png", "image/webp")
        with open(im["thumbnail_path"], "rb") as f:
            assert r.body == f.read()
    for tail in ("", "/file", "/thumbnail"):
        assert_json_error(service.get(f"/v1/images/{uuid.uuid4()}{tail}"), 404, "not found")
        assert_json_error(service.get(f"/v1/images/nope{tail}"), 404)

    # Refusals of the stage: storyboard stage not completed, no storyboards.
    r = service.post("/v1/projects", {"name": "early", "storyboard_stage": "processing",
                                      "storyboards": [{"image_prompt": "x"}]})
    assert r.status == 201, r
    assert_json_error(service.post(run_path(r.json()["id"])), 409, "storyboard stage")
    r = service.post("/v1/projects", {"name": "empty", "storyboards": []})
    assert r.status == 201, r
    assert_json_error(service.post(run_path(r.json()["id"])), 422, "no storyboards")


def test_busy_project_409(service):
    slow_service(service, n_delay_ms=2000, trace=False)
    service.start()
    pid = service.import_project(["slow one"])
    run = service.start_run(pid)
    assert_json_error(service.post(run_path(pid)), 409, "already processing")
    # The run goes on, and ends; then the project takes a new run.
    assert wait_run_done(service.env, run)["success"] is True
    assert service.start_run(pid) != run


def test_thumbnail_404_without_thumbnails(service):
    service.configure(thumbnails=False)
    service.start()
    pid = service.import_project(["a"])
    wait_run_done(service.env, service.start_run(pid))
    (im,) = service.get(f"/v1/projects/{pid}/images").json()["images"]
    assert service.get(f"/v1/images/{im['id']}/file").status == 200
    assert_json_error(service.get(f"/v1/images/{im['id']}/thumbnail"), 404, "thumbnail")


def test_wrong_method_405(service):
    service.configure()
    service.start()
    pid = service.import_project(["a"])
    for method, path, allow in [
            ("PUT", "/healthz", "GET, HEAD"),
            ("POST", "/metrics", "GET, HEAD"),
            ("PUT", "/v1/projects", "GET, POST, HEAD"),
            ("PUT", f"/v1/projects/{pid}", "GET, DELETE, HEAD"),
            ("GET", f"/v1/projects/{pid}/storyboards/{uuid.uuid4()}", "PATCH"),
            ("POST", f"/v1/projects/{pid}/runs", "GET, HEAD"),
            ("DELETE", f"/v1/runs/{uuid.uuid4()}", "GET, HEAD"),
            ("POST", f"/v1/runs/{uuid.uuid4()}/events", "GET, HEAD"),
            ("GET", run_path(pid), "POST"),
            ("POST", run_path(pid, "/events"), "GET, HEAD"),
            ("GET", run_path(pid, "/cancel"), "POST"),
            ("POST", f"/v1/images/{uuid.uuid4()}/file", "GET, HEAD")]:
        r = service.request(method, path)
        assert_json_error(r, 405, "method not allowed")
        assert r.headers.get("allow") == allow, (method, path, r.headers)
    assert_json_error(service.get("/nowhere"), 404)
    assert_json_error(service.get(f"/v1/projects/{pid}/nothing"), 404)


def access_lines(text):
    return ACCESS_LINE.findall(text)


def log_mark(service):
    """Makes a request of its own and waits for its access-log line; returns
    the number of access-log lines up to it, every earlier request's line
    being in by then."""
    mark = f"/mark-{uuid.uuid4().hex}"
    assert http_request(service.port, "GET", mark).status == 404
    service.wait_log(mark)
    return len(access_lines(service.log()))


def test_token_and_access_log(service):
    token = "t0ken-" + uuid.uuid4().hex
    service.configure(token=token)
    service.start()
    before = log_mark(service)
    pid = service.import_project(["a"])                                    # 1
    for headers in ({"Authorization": "Bearer"},                           # 2..6
                    {"Authorization": "Bearer wrong"},
                    {"Authorization": f"Bearer {token}x"},
                    {"Authorization": f"Basic {token}"},
                    {"Authorization": "Bearer " + token[:-1]}):
        r = service.get(f"/v1/projects/{pid}", headers=headers)
        assert_json_error(r, 401, "token")
        assert r.headers.get("www-authenticate") == "Bearer"
    r = http_get_noauth(service, f"/v1/projects/{pid}")                   # 7
    assert_json_error(r, 401)
    r = http_post_noauth(service, "/v1/projects",                          # 8
                         {"name": "x", "storyboards": [{"image_prompt": "a"}]})
    assert_json_error(r, 401)
    assert service.env.sql("SELECT count(*) FROM projects")[0][0] == 1
    # A query string is not logged either (there is no place for a secret).
    assert service.get(f"/v1/projects/{pid}?token={token}").status == 200  # 9
    assert http_get_noauth(service, "/healthz").status == 200              # 10
    assert http_get_noauth(service, "/metrics").status == 200              # 11
    # Unknown routes under /v1 need the token too (nothing is revealed).
    assert http_get_noauth(service, "/v1/nothing").status == 401           # 12
    run = service.start_run(pid)                                           # 13
    msgs = service.events(pid)                                             # 14
    assert msgs[-1]["data"]["type"] == "done"
    c = service.sse(run_path(pid, "/events"), headers={"Authorization": "Bearer nope"})
    assert c.status == 401                                                 # 15
    c.resp.read()
    c.close()
    wait_run_done(service.env, run)
    # Sentinel: once its line is there, every earlier request's line is too.
    marker = f"/v1/projects/{uuid.uuid4()}"
    assert service.get(marker).status == 404                               # 16
    service.wait_log(marker)
    lines = access_lines(service.log())[before:]
    # The 401s from one address after its first are counted, not written
    # (one summary a minute, or at the stop).
    assert len(lines) == 16 - 8, lines
    # In completion order, which for a stream may come after the next request's.
    statuses = sorted(x[2] for x in lines)
    assert statuses == sorted(["201", "401"] + ["200"] * 3 + ["202", "200", "404"]), lines
    assert lines[0][:3] == ("POST", "/v1/projects", "201")
    assert lines[-1][:3] == ("GET", marker, "404")
    assert service.stop() == 0
    text = service.log()
    assert "http: 127.0.0.1: 8 more requests answered 401 in the last 60 s" in text, text
    assert token not in text
    assert token[:-1] not in text and "Bearer" not in text


def http_get_noauth(service, path):
    return http_request(service.port, "GET", path)


def http_post_noauth(service, path, body):
    return http_request(service.port, "POST", path, body)


def test_token_reload(service):
    service.configure(token="first-token")
    service.start()
    pid = service.import_project(["a"])
    service.configure(token="second-token")
    service.kill(signal.SIGHUP)
    service.wait_log("reloaded:")
    assert service.get(f"/v1/projects/{pid}").status == 200
    r = service.get(f"/v1/projects/{pid}", headers={"Authorization": "Bearer first-token"})
    assert_json_error(r, 401)
    service.configure(token=None)
    service.kill(signal.SIGHUP)
    service.wait_log("reloaded:", 2)
    assert http_get_noauth(service, f"/v1/projects/{pid}").status == 200
    assert "first-token" not in service.log() and "second-token" not in service.log()


# --------------------------------------------------------------------------
# SSE


def test_sse_format_and_error_does_not_end_stream(service):
    service.configure(providers=[provider_conf("combo")], extra=retry_conf(1), batch_size=1)
    service.start()
    pid = service.import_project(["first", "this one ERROR", "third", "fourth"])
    run = service.start_run(pid)
    c = service.sse(run_path(pid, "/events"))
    try:
        assert c.status == 200
        assert c.headers["content-type"].startswith("text/event-stream")
        assert c.headers["cache-control"] == "no-cache"
        assert c.headers["x-accel-buffering"] == "no"
        msgs = c.read_all()
    finally:
        c.close()
    assert not c.broken
    first = msgs[0]
    assert first["id"] is None
    assert first["data"] == {"type": "connected", "project_id": pid, "run_id": run}
    # retry: first, then id: seq and one data: line per event, no event: lines.
    assert c.lines[0] == "retry: 3000" and c.retry == 3000
    assert not [line for line in c.lines if line.startswith("event")]
    assert [line.split(":")[0] for line in c.lines if line] == \
        ["retry", "data"] + ["id", "data"] * (len(msgs) - 1)
    ids = [m["id"] for m in msgs[1:]]
    assert ids == list(range(1, len(ids) + 1))
    types = [m["data"]["type"] for m in msgs[1:]]
    assert "error" in types
    err_at = types.index("error")
    assert msgs[1 + err_at]["data"]["storyboard_id"]
    assert types.index("error") < len(types) - 1
    assert types.count("image_generated") == 3
    assert types[-1] == "done" and msgs[-1]["data"]["success"] is True
    assert msgs[-1]["data"]["data"]["failed_count"] == 1
    assert_stream_matches_db(service.env, run, msgs)


def test_post_with_event_stream_streams_the_run(service):
    service.configure()
    service.start()
    pid = service.import_project(["a", "b", "c"])
    c = service.sse(run_path(pid), method="POST", body={"no_cache": True})
    try:
        assert c.status == 200
        assert c.headers["content-type"].startswith("text/event-stream")
        msgs = c.read_all()
    finally:
        c.close()
    run = msgs[0]["data"]["run_id"]
    assert msgs[0]["data"] == {"type": "connected", "project_id": pid, "run_id": run}
    assert [m["data"]["type"] for m in msgs[1:]].count("image_generated") == 3
    assert_stream_matches_db(service.env, run, msgs)
    # A refused start is a JSON error, not a stream.
    c = service.sse(run_path(str(uuid.uuid4())), method="POST")
    try:
        assert c.status == 404
        assert c.headers["content-type"].startswith("application/json")
        assert "error" in json.loads(c.resp.read())
    finally:
        c.close()


def test_last_event_id(service):
    slow_service(service, n_delay_ms=50, workers_max=2, trace=False)
    service.start()
    env = service.env
    pid = service.import_project([f"shot {i}" for i in range(6)])
    run = service.start_run(pid)
    # While the run is live: from a point reached, and from one not yet reached.
    live = service.events(pid, last_event_id=2)
    assert_stream_matches_db(env, run, live, after=2)
    wait_run_done(env, run)
    last = run_row(env, run)["last_seq"]
    for after in (0, 1, 5, last - 1):
        msgs = service.events(pid, last_event_id=after)
        assert_stream_matches_db(env, run, msgs, after=after)
        assert [m["id"] for m in msgs[1:]] == list(range(after + 1, last + 1))
    # At or past `done`: 204 No Content, which stops an EventSource from
    # reconnecting (test_browser_sse watches a real one do so).
    for after in (last, last + 100):
        for path in (run_path(pid, "/events"), f"/v1/runs/{run}/events"):
            c = service.sse(path, headers={"Last-Event-ID": str(after)})
            try:
                assert c.status == 204, (path, after, c.status)
                assert c.resp.read() == b""
            finally:
                c.close()
    for bad in ("abc", "-1", "1x"):
        assert_json_error(service.get(run_path(pid, "/events"), headers={"Last-Event-ID": bad}),
                          400, "Last-Event-ID")


def test_200_concurrent_sse_clients(service):
    """200 clients, each on its own connection, follow one run live (it is held
    at its first storyboard until all are connected) and each receives every
    event in order.  They all come from 127.0.0.1, as 200 browsers would not:
    the per-address limit is raised for them."""
    slow_service(service, n_delay_ms=20, workers_max=1, batch_size=1, trace=False,
                 http="max_connections_per_ip = 256;")
    service.start()
    env = service.env
    pid = service.import_project(["shot 0 GATE"] + [f"shot {i}" for i in range(1, 20)])
    run = service.start_run(pid)
    results, errors = [None] * 200, []
    connected = []

    def client(k):
        try:
            c = service.sse(run_path(pid, "/events"))
            try:
                assert c.status == 200
                first = c.next()
                connected.append(k)
                results[k] = [first] + c.read_all()
            finally:
                c.close()
        except Exception as e:     # noqa: BLE001 - reported below
            errors.append((k, repr(e)))
            connected.append(k)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(200)]
    for t in threads:
        t.start()
    wait_for(lambda: len(connected) == 200, timeout=120, what="200 clients to connect")
    assert not errors, errors[:5]
    assert run_row(env, run)["status"] == "processing"
    assert completed_count(env, run) == 0
    open_gate(env)
    for t in threads:
        t.join(timeout=180)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors[:5]
    assert run_row(env, run)["status"] == "completed"
    assert len(db_events(env, run)) >= 2 * 20 + 4
    for msgs in results:
        assert_stream_matches_db(env, run, msgs)


def test_sse_resume_across_restart(service):
    """A client follows a run, the service is stopped (SIGTERM) mid-run, and
    after the next start the client resumes with Last-Event-ID: the events go
    on with contiguous seqs and end with done."""
    slow_service(service, n_delay_ms=100, workers_max=2, batch_size=1, trace=False)
    service.start()
    env = service.env
    pid = service.import_project([f"shot {i}" for i in range(30)])
    run = service.start_run(pid)
    c = service.sse(run_path(pid, "/events"))
    got = []
    try:
        while sum(1 for m in got if m["data"]["type"] == "image_generated") < 3:
            m = c.next()
            assert m is not None, got
            got.append(m)
        assert service.stop() == 0
        # The stream ends with the service (maybe with a few more events).
        got += c.read_all()
    finally:
        c.close()
    assert got[0]["data"]["type"] == "connected"
    assert "done" not in [m["data"]["type"] for m in got]
    assert run_row(env, run)["status"] == "processing"
    last = got[-1]["id"]
    service.start()
    rest = service.events(pid, last_event_id=last)
    assert_stream_matches_db(env, run, rest, after=last)
    ids = [m["id"] for m in got[1:]] + [m["id"] for m in rest[1:]]
    assert ids == list(range(1, ids[-1] + 1))
    assert rest[-1]["data"]["type"] == "done" and rest[-1]["data"]["success"] is True
    warnings = [m["data"]["message"] for m in rest if m["data"]["type"] == "warning"]
    assert any("resumed" in w for w in warnings), warnings
    assert set(primaries_by_storyboard(env, pid, run).values()) == {1}


# --------------------------------------------------------------------------
# Several projects at once


def test_small_project_is_not_stuck_behind_a_big_one(service):
    slow_service(service, n_delay_ms=50, workers_max=2, batch_size=2, trace=False)
    service.start()
    env = service.env
    big = service.import_project([f"big {i}" for i in range(100)], name="big")
    small = service.import_project([f"small {i}" for i in range(5)], name="small")
    big_run = service.start_run(big)
    small_run = service.start_run(small)
    assert wait_run_done(env, small_run)["success"] is True
    assert wait_run_done(env, big_run, timeout=300)["success"] is True
    # Order from the database, not from a clock: when the small run ended,
    # most of the big one was still to do.
    small_end = run_row(env, small_run)["finished_at"]
    (done_before,) = env.sql(
        "SELECT count(*) FROM generated_images WHERE run_id = ? AND status = 'completed'"
        " AND updated_at <= ?", big_run, small_end)[0]
    assert done_before < 50, done_before
    assert run_row(env, small_run)["finished_at"] < run_row(env, big_run)["finished_at"]
    # Both streams are whole.
    assert_stream_matches_db(env, small_run, service.events(small))
    assert_stream_matches_db(env, big_run, service.events(big))


# --------------------------------------------------------------------------
# Cancel


def test_cancel(service):
    trace = slow_service(service, n_delay_ms=100, workers_max=2, batch_size=2)
    service.start()
    env = service.env
    pid = service.import_project([f"shot {i}" for i in range(3)] + ["held GATE"] +
                                 [f"shot {i}" for i in range(4, 12)])
    run = service.start_run(pid)
    c = service.sse(run_path(pid, "/events"))
    try:
        msgs = []
        while sum(1 for m in msgs if m["data"]["type"] == "image_generated") < 1:
            m = c.next()
            assert m is not None
            msgs.append(m)
        r = service.post(run_path(pid, "/cancel"))
        assert r.status == 202, r
        assert r.json() == {"run_id": run, "status": "cancelling"}
        msgs += c.read_all()
    finally:
        c.close()
    assert not c.broken
    done = msgs[-1]["data"]
    assert done["type"] == "done" and done["success"] is False
    assert done["stage"]["status"] == "cancelled"
    assert_stream_matches_db(env, run, msgs)
    row = run_row(env, run)
    assert row["status"] == "cancelled"
    assert stage_status(env, pid) == "cancelled"
    st = image_statuses(env, run)
    assert set(st) <= {"completed", "pending"}, st
    assert st.get("pending", 0) >= 1          # the held one at least
    assert st.get("completed", 0) == row["success_count"] >= 1
    # Its workers are gone: the supervisor, the spawner, the plugin's template and its
    # idle spares are left.
    wait_for(lambda: not worker_pids(env.conf), what="the run's workers to exit")
    roles = sorted(process_role(p) for p in service_pids(env.conf))
    assert set(roles) <= {"t2istage", "t2istage-spawn", "t2istage-tmpl", "t2istage-spare"}
    assert [roles.count(r) for r in ("t2istage", "t2istage-spawn", "t2istage-tmpl")] == \
        [1, 1, 1], roles
    metrics = service.get("/metrics").body.decode()
    assert "\nt2istage_workers_busy 0\n" in metrics
    assert 't2istage_runs_total{status="cancelled"} 1' in metrics
    assert_json_error(service.post(run_path(pid, "/cancel")), 409)
    # A pending image has metadata but no file yet.
    (pending_id,) = env.sql("SELECT id FROM generated_images WHERE run_id = ?"
                            " AND status = 'pending' LIMIT 1", run)[0]
    r = service.get(f"/v1/images/{pending_id}")
    assert r.status == 200 and r.json()["status"] == "pending", r
    assert_json_error(service.get(f"/v1/images/{pending_id}/file"), 404, "no file")
    # A new run can start, and finishes what the cancelled one left.
    open_gate(env)
    starts = len(trace_starts(trace))
    run2 = service.start_run(pid)
    done2 = wait_run_done(env, run2)
    assert done2["success"] is True
    assert run_row(env, run2)["status"] == "completed"
    assert stage_status(env, pid) == "completed"
    assert all(n >= 1 for n in primaries_by_storyboard(env, pid).values())
    # Storyboards completed before the cancel came from the cache.
    new_starts = trace_starts(trace)[starts:]
    assert len(new_starts) == st["pending"], (new_starts, st)


# --------------------------------------------------------------------------
# SIGHUP


def metric(service, name):
    text = service.get("/metrics").body.decode()
    m = re.search(r"^" + re.escape(name) + r" (\S+)$", text, re.M)
    return float(m[1]) if m else None


def image_sizes(env, run_id):
    """{storyboard_id: (width, height)} of the run's completed primary images,
    read from the files."""
    return {sb: png_size(path) for sb, path in env.sql(
        "SELECT storyboard_id, file_path FROM generated_images WHERE run_id = ?"
        " AND is_primary = 1 AND status = 'completed'", run_id)}


def test_sighup_reload(service):
    env = service.env
    ok = provider_conf("ok")
    service.configure(providers=[ok], workers_max=2)
    service.start()
    assert metric(service, "t2istage_workers_max") == 2
    pid = service.import_project(["a", "b"], image_providers=["extra"])
    # "extra" is not configured yet: the default provider serves the run.
    run = service.start_run(pid, {"no_cache": True})
    assert wait_run_done(env, run)["success"] is True
    assert set(image_sizes(env, run).values()) == {(40, 22)}

    service.configure(providers=[ok, provider_conf("extra", plugin="tiny", default=False)],
                      workers_max=3)
    service.kill(signal.SIGHUP)
    service.wait_log("reloaded: 2 providers, 3 workers")
    assert metric(service, "t2istage_workers_max") == 3
    run = service.start_run(pid, {"no_cache": True})
    assert wait_run_done(env, run)["success"] is True
    assert set(image_sizes(env, run).values()) == {(8, 8)}    # the tiny plugin
    (im,) = service.get(f"/v1/projects/{pid}/images").json()["images"][-1:]
    assert im["provider"] == "extra"

    # A broken file, then a provider whose plugin does not load: both
    # refused, the running configuration stays.
    good = open(env.conf).read()
    with open(env.conf, "w") as f:
        f.write(good + "\nworkers = { max = 5; \n")      # syntax error
    service.kill(signal.SIGHUP)
    service.wait_log("reload refused", 1)
    assert service.get("/healthz").status == 200
    assert metric(service, "t2istage_workers_max") == 3
    service.configure(providers=[ok, provider_conf("extra", plugin="badabi", default=False)],
                      workers_max=4)
    service.kill(signal.SIGHUP)
    service.wait_log("reload refused", 2)
    refused = [line for line in service.log().splitlines() if "reload refused" in line]
    assert "badabi" in refused[1] or "extra" in refused[1], refused
    assert all(line.startswith("<3>") for line in refused), refused
    assert metric(service, "t2istage_workers_max") == 3
    # Requests and runs still work, on the old generation (extra = tiny).
    run = service.start_run(pid, {"no_cache": True})
    assert wait_run_done(env, run)["success"] is True
    assert set(image_sizes(env, run).values()) == {(8, 8)}
    assert service.proc.poll() is None


def swap_plugin(env, name, variant):
    """Replaces plugins/NAME.so with the test plugin VARIANT atomically
    (copy, chmod 0755, rename), as a package upgrade would."""
    src = os.path.join(env.plugins, f"{variant}.so")
    tmp = os.path.join(env.plugins, f".{name}.so.tmp")
    shutil.copyfile(src, tmp)
    os.chmod(tmp, 0o755)
    os.rename(tmp, os.path.join(env.plugins, f"{name}.so"))


def test_sighup_storm_with_plugin_swaps(service):
    """20 SIGHUPs during a run, the plugin file replaced (slow, ok, tiny)
    before each: no storyboard lost or doubled, and the batches started after
    a swap used the new file (tiny images have no trace line and 8x8 pixels;
    slow and ok images have a trace line and 40x22)."""
    env = service.env
    trace = os.path.join(env.path, "trace")
    swap_plugin(env, "swap", "slow")
    service.configure(providers=[provider_conf("swap", delay_ms=60, trace=trace)],
                      workers_max=2, batch_size=1)
    service.start()
    pid = service.import_project([f"shot {i}" for i in range(80)])
    run = service.start_run(pid, {"no_cache": True})
    variants = ["ok", "slow", "tiny", "slow"] * 5
    for k, variant in enumerate(variants):
        swap_plugin(env, "swap", variant)
        n = completed_count(env, run)
        service.kill(signal.SIGHUP)
        service.wait_log("reloaded:", k + 1)
        # At least one batch between reloads (unless the run is over).
        wait_for(lambda: completed_count(env, run) > n or run_row(env, run)["finished_at"],
                 what="a batch to finish")
    done = wait_run_done(env, run)
    assert done["success"] is True and done["data"]["success_count"] == 80
    assert run_row(env, run)["status"] == "completed"
    assert set(primaries_by_storyboard(env, pid, run).values()) == {1}
    assert set(primaries_by_storyboard(env, pid).values()) == {1}
    assert image_statuses(env, run) == {"completed": 80}
    assert "reload refused" not in service.log()
    sizes = image_sizes(env, run)
    starts = trace_starts(trace)
    traced = set(starts)
    for sb, size in sizes.items():
        assert size == ((40, 22) if sb in traced else (8, 8)), (sb, size)
    # Every plugin took part, and each traced storyboard was started once.
    assert (8, 8) in sizes.values() and (40, 22) in sizes.values()
    assert len(starts) == len(traced)
    assert service.proc.poll() is None


# --------------------------------------------------------------------------
# Stop, crash, recovery


def completed_storyboards(env, run_id):
    return {sb for (sb,) in env.sql(
        "SELECT storyboard_id FROM generated_images WHERE run_id = ? AND is_primary = 1"
        " AND status = 'completed'", run_id)}


def test_sigterm_mid_run_then_resume(service):
    trace = slow_service(service, n_delay_ms=150, workers_max=2, batch_size=2)
    service.start()
    env = service.env
    pid = service.import_project([f"shot {i}" for i in range(40)])
    run = service.start_run(pid)
    wait_for(lambda: completed_count(env, run) >= 3, what="three images")
    assert service.stop(signal.SIGTERM, timeout=30) == 0
    assert not service_pids(env.conf)
    log = service.log()
    assert "finishing work in progress" in log and "stopped" in log
    assert "grace period over" not in log      # the workers finished their batches
    # Unfinished storyboards pending, the run still processing.
    assert run_row(env, run)["status"] == "processing"
    st = image_statuses(env, run)
    assert set(st) == {"completed", "pending"}, st
    before = completed_storyboards(env, run)
    assert len(before) == st["completed"]
    # Workers finished their batches: every started storyboard ended.
    t = read_trace(trace)
    assert len([x for x in t if x[0] == "start"]) == len([x for x in t if x[0] == "end"])
    lines_at_stop = len(t)

    service.start()
    done = wait_run_done(env, run)
    assert done["success"] is True and done["data"]["success_count"] == 40
    assert run_row(env, run)["status"] == "completed"
    assert set(primaries_by_storyboard(env, pid, run).values()) == {1}
    assert set(primaries_by_storyboard(env, pid).values()) == {1}
    assert "resumed run " + run in service.log()
    after = [x[2] for x in read_trace(trace)[lines_at_stop:] if x[0] == "start"]
    assert not set(after) & before
    assert sorted(after) == sorted(set(completed_storyboards(env, run)) - before)


def test_kill9_mid_run_then_resume(service):
    trace = slow_service(service, n_delay_ms=150, workers_max=3, batch_size=2)
    service.start()
    env = service.env
    pid = service.import_project([f"shot {i}" for i in range(40)])
    run = service.start_run(pid)
    # Clients that follow the run across the crash (reconnecting with
    # Last-Event-ID) must end up with exactly the database's events: none
    # sent before it was committed.
    followers = [Follower(service, pid) for _ in range(5)]
    for f in followers:
        f.start()
    wait_for(lambda: completed_count(env, run) >= 4, what="four images")
    # Killed while workers run (supervisor, spawner and at least one worker).
    wait_for(lambda: len(service_pids(env.conf)) >= 3, interval=0.001, what="a worker")
    service.kill9()
    # The spawner and the workers die with the supervisor (PDEATHSIG).
    wait_for(lambda: not service_pids(env.conf), what="every process of the service to die")
    before = completed_storyboards(env, run)
    assert 4 <= len(before) < 40
    assert run_row(env, run)["status"] == "processing"
    lines_at_kill = len(read_trace(trace))

    service.start()
    done = wait_run_done(env, run)
    assert done["success"] is True and done["data"]["success_count"] == 40
    assert run_row(env, run)["status"] == "completed"
    assert set(primaries_by_storyboard(env, pid, run).values()) == {1}
    assert image_statuses(env, run) == {"completed": 40}
    # No provider call repeated for an image committed before the kill.
    after = [x[2] for x in read_trace(trace)[lines_at_kill:] if x[0] == "start"]
    assert not set(after) & before
    assert set(after) | before == completed_storyboards(env, run)
    # The stream of the resumed run is whole, with contiguous seqs.
    msgs = service.events(pid)
    assert_stream_matches_db(env, run, msgs)
    assert [m["id"] for m in msgs[1:]] == list(range(1, len(msgs)))
    assert_followers_saw_the_db(env, run, followers)


def test_sigterm_grace_period_then_workers_killed(service):
    """A worker still busy when the grace period ends is killed: its
    storyboard stays pending (not failed), the service exits 0, and the next
    start finishes the run."""
    trace = slow_service(service, n_delay_ms=20, workers_max=2, batch_size=2)
    service.start()
    env = service.env
    pid = service.import_project(["held GATE", "after the held one"] +
                                 [f"shot {i}" for i in range(6)])
    run = service.start_run(pid)
    wait_for(lambda: completed_count(env, run) >= 6, what="the other storyboards")
    c = service.sse(run_path(pid, "/events"))
    assert c.next()["data"]["type"] == "connected"
    service.kill(signal.SIGTERM)
    # While the held worker keeps the service in its grace period, it takes
    # no new connection.
    service.wait_log("no longer accepting connections")
    assert service.proc.poll() is None
    with pytest.raises(ConnectionRefusedError):
        http_request(service.port, "GET", "/healthz")
    assert service.proc.wait(timeout=60) == 0      # no second signal: that stops at once
    msgs = c.read_all()        # the stream ends with the service
    c.close()
    assert "done" not in [m["data"]["type"] for m in msgs]
    log = service.log()
    assert "grace period over" in log
    assert image_statuses(env, run) == {"completed": 6, "pending": 2}
    assert run_row(env, run)["status"] == "processing"
    assert not service_pids(env.conf)
    open_gate(env)
    service.start()
    assert wait_run_done(env, run)["success"] is True
    assert image_statuses(env, run) == {"completed": 8}
    assert set(primaries_by_storyboard(env, pid, run).values()) == {1}
    held = [x for x in read_trace(trace) if x[0] == "start"]
    assert len(held) == 9      # the held storyboard twice: killed, then again


def test_second_sigterm_stops_workers_at_once(service):
    slow_service(service, n_delay_ms=20, workers_max=3, batch_size=1, trace=False)
    service.start()
    env = service.env
    pid = service.import_project(["held GATE", "also held GATE", "free"])
    run = service.start_run(pid)
    wait_for(lambda: completed_count(env, run) == 1, what="the free storyboard")
    service.kill(signal.SIGTERM)
    service.wait_log("finishing work in progress")
    assert service.stop(signal.SIGTERM, timeout=60) == 0
    assert "second signal: stopping workers now" in service.log()
    assert "grace period over" not in service.log()
    assert image_statuses(env, run) == {"completed": 1, "pending": 2}
    assert not service_pids(env.conf)


def test_sse_keepalive(service):
    """A stream with nothing to say sends a `:` comment (every 15 s) and goes
    on afterwards."""
    slow_service(service, n_delay_ms=10, workers_max=1, trace=False)
    service.start()
    env = service.env
    pid = service.import_project(["held GATE", "b"])
    run = service.start_run(pid)
    c = service.sse(run_path(pid, "/events"))
    try:
        seen = []
        while True:
            line = c.resp.readline().decode()
            assert line, seen
            seen.append(line)
            if line.startswith(":"):
                break
        assert run_row(env, run)["status"] == "processing"
        open_gate(env)
        rest = c.read_all()
    finally:
        c.close()
    assert rest[-1]["data"]["type"] == "done"
    assert [m["id"] for m in rest] == list(range(rest[0]["id"], rest[-1]["id"] + 1))


# --------------------------------------------------------------------------
# systemd


def notify_messages(sock, until, timeout=SERVICE_WAIT):
    """Datagrams received until one satisfies until(msg); returns them all."""
    got = []

    def poll():
        sock.settimeout(0.2)
        try:
            msg = sock.recv(4096).decode()
        except socket.timeout:
            return False
        got.append(msg)
        return until(msg)
    wait_for(poll, timeout=timeout, interval=0, what=f"a notification, got {got}")
    return got


def test_sd_notify(service, tmp_path):
    path = os.path.join(str(tmp_path), "notify.sock")
    if len(path) >= 100:
        path = "@t2istage-test-" + uuid.uuid4().hex
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path if not path.startswith("@") else "\0" + path[1:])
    try:
        service.configure()
        service.start(extra_env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"})
        got = notify_messages(sock, lambda m: "READY=1" in m.splitlines())
        got += notify_messages(sock, lambda m: "WATCHDOG=1" in m.splitlines())
        service.kill(signal.SIGHUP)
        seen = notify_messages(sock, lambda m: "READY=1" in m.splitlines())
        reloading = [m for m in seen if "RELOADING=1" in m.splitlines()]
        assert len(reloading) == 1, seen
        assert re.search(r"^MONOTONIC_USEC=\d+$", reloading[0], re.M), reloading
        assert seen.index(reloading[0]) < len(seen) - 1      # READY=1 after it
        # The workers must not have inherited the socket: only the
        # supervisor's messages arrive (checked by a run in between).
        pid = service.import_project(["a"])
        wait_run_done(service.env, service.start_run(pid))
        assert service.stop() == 0
        rest = []
        sock.settimeout(0.2)
        try:
            while True:
                rest.append(sock.recv(4096).decode())
        except socket.timeout:
            pass
        assert any("STOPPING=1" in m.splitlines() for m in rest), rest
        assert not [m for m in got + seen + rest if not re.match(r"^[A-Z_]+=", m)]
    finally:
        sock.close()
        if not path.startswith("@"):
            os.unlink(path)
    # Every line on stderr has a <N> priority prefix.
    lines = service.log().splitlines()
    assert lines and all(re.match(r"^<[0-7]>", line) for line in lines), \
        [line for line in lines if not re.match(r"^<[0-7]>", line)][:5]
