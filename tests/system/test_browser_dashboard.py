"""The built-in dashboard at `GET /`, in headless Chromium against the real
service: a project run end to end with the token entered in the page, a
failed storyboard shown while the run goes on, a prompt edited and one tile
regenerated, a cancel, a queued run, a pending provider task, a run started elsewhere, an
import through the form, no reconnect after `done`, no console error, no
CSP violation, no unnamed control; and the page's files as served (types,
policy, cache validators).  Screenshots go to BUILD/artifacts/."""

import json
import os
import re
import urllib.parse

from conftest import (BUILD, NO_RETRY, gate_path, http_request, open_gate, provider_conf,
                      run_browser, wait_for, wait_run_done)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
WEB = os.path.join(ROOT, "web")
ARTIFACTS = os.path.join(BUILD, "artifacts")
TOKEN = "tok-dashboard-0123456789"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
       " connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
STREAM = re.compile(r"http: GET /v1/runs/([0-9a-f-]{36})/events(\S*) (\d{3}) ")


def api_of(service):
    return f"http://127.0.0.1:{service.port}"


def stream_lines(service, run_id=None):
    """(run, query, status) of every event-stream request in the access log."""
    return [(r, q, s) for r, q, s in STREAM.findall(service.log()) if run_id in (None, r)]


def assert_clean(problems, csp):
    assert problems == {"console_errors": [], "pageerrors": [], "failed": []}, problems
    assert csp == [], csp


def latest_run(env, pid):
    rows = env.sql("SELECT id, status, storyboard_ids, no_cache FROM runs WHERE project_id = ?"
                   " ORDER BY started_at DESC, rowid DESC LIMIT 1", pid)
    return rows[0] if rows else None


def test_dashboard_runs_a_project_with_the_token_entered(service):
    service.configure(token=TOKEN, thumbnails=True, providers=[provider_conf("ok")])
    service.start()
    env = service.env
    prompts = [f"a lighthouse, shot {i}" for i in range(6)]
    pid = service.import_project(prompts, name="Lighthouse")
    got = run_browser("dashboard_run.mjs", api=api_of(service), token=TOKEN, project=pid,
                      artifacts=ARTIFACTS)

    assert got["tokenStored"] == TOKEN
    assert got["listed"] == [pid]
    assert [t["status"] for t in got["before"]] == ["not-started"] * len(prompts)
    # The run as the page shows it: done, full bar, every image decoded.
    (run_id, status, _ids, _nc) = latest_run(env, pid)
    assert status == "completed"
    assert got["panel"]["state"] == "completed" and got["panel"]["value"] == 100, got["panel"]
    assert got["panel"]["okWidth"] == "100%" and got["panel"]["badWidth"] == "0%"
    assert got["panel"]["text"].startswith(f"100%: {len(prompts)} of {len(prompts)}")
    assert [t["status"] for t in got["tiles"]] == ["completed"] * len(prompts)
    assert [t["prompt"] for t in got["tiles"]] == prompts
    doc = service.get(f"/v1/projects/{pid}").json()
    for t, sb in zip(got["tiles"], doc["storyboards"]):
        assert t["id"] == sb["id"]
        assert t["complete"] and t["naturalWidth"] > 0, t
        # The thumbnail in the tile, the file behind its link: signed URLs,
        # no token in either.
        assert t["src"].startswith(f"/v1/images/{sb['image']['id']}/thumbnail?exp="), t
        assert t["href"].startswith(f"/v1/images/{sb['image']['id']}/file?exp="), t
        assert TOKEN not in t["src"] + t["href"]
    assert all(f["status"] == 200 and f["type"] == "image/png" and f["size"] > 0
               for f in got["files"]), got["files"]
    assert got["history"] == 1
    # Every API call carried the token in its header; the stream, which
    # cannot, in its query; images neither.
    reqs = got["requests"]
    calls = [r for r in reqs if "/v1/" in r["url"] and r["type"] == "fetch"
             and "/file?" not in r["url"]]
    assert calls and [r for r in calls if r["authorization"] != f"Bearer {TOKEN}"] == []
    streams = [r for r in reqs if r["type"] == "eventsource"]
    assert [urllib.parse.urlsplit(r["url"]).path for r in streams] == \
        [f"/v1/runs/{run_id}/events"], streams
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(streams[0]["url"]).query) == \
        {"access_token": [TOKEN]}
    assert not [r for r in reqs if r["type"] == "image" and "access_token" in r["url"]]
    # No reconnect after done: the page closed its one stream, and the
    # service saw exactly that one, however long the page stayed.
    assert stream_lines(service, run_id) == [(run_id, "?access_token=[redacted]", "200")]
    assert TOKEN not in service.log()
    assert_clean(got["problems"], got["csp"])
    assert os.path.getsize(got["screenshot"]) > 0
    # Asked once per session; asked again when the token is refused.
    assert got["reloadAsked"] is False
    assert got["reloadPanel"]["state"] == "completed" and got["reloadPanel"]["value"] == 100
    assert "refused" in got["refusedWhy"]
    assert got["afterRefusal"] and all("401" in m for m in got["afterRefusal"]), \
        got["afterRefusal"]
    # The policy is in force, and a violation would have been seen.
    assert got["inline"] == "blocked"
    assert any(v.startswith("script-src") for v in got["cspAfter"]), got["cspAfter"]


def test_dashboard_shows_a_failure_while_the_run_goes_on(service):
    env = service.env
    service.configure(token=TOKEN, extra=NO_RETRY, workers_max=2, batch_size=1,
                      providers=[provider_conf("flaky", plugin="error", gate=gate_path(env))])
    service.start()
    prompts = ["harbour at dawn", "ERROR a boat in the storm", "GATE the keeper at the rail",
               "GATE gulls at noon", "GATE sunrise over the rocks", "fog over the masts"]
    pid = service.import_project(prompts, name="The Lantern Keeper")
    sids = [sb["id"] for sb in service.get(f"/v1/projects/{pid}").json()["storyboards"]]
    failing = sids[1]
    try:
        got = run_browser("dashboard_failed.mjs", api=api_of(service), token=TOKEN, project=pid,
                          failing=failing, gate=gate_path(env), artifacts=ARTIFACTS)
    finally:
        open_gate(env)
    during = got["during"]
    by_id = {t["id"]: t for t in during["tiles"]}
    # Mid-run: the failed tile says so, with the plugin's message, while
    # others are still generating and the run can be cancelled.
    assert by_id[failing]["status"] == "failed", by_id[failing]
    assert "error plugin: refused prompt" in by_id[failing]["error"]
    assert during["panel"]["state"] == "running" and during["panel"]["value"] < 100, during
    assert "1 failed" in during["panel"]["numbers"]
    assert "generating" in {t["status"] for t in during["tiles"]}
    assert during["cancelEnabled"] and during["failedChip"] == "1"
    assert during["failedColour"] != during["okColour"]
    assert got["filtered"] == [failing]
    assert got["unnamed"] == [] and got["unnamedList"] == []
    for path in got["shots"] + [got["listShot"]]:
        assert path.startswith(ARTIFACTS + os.sep) and os.path.getsize(path) > 0
    # At done: full bar, partial, the failure still shown, the rest done.
    after = got["after"]
    assert after["panel"]["state"] == "partial" and after["panel"]["value"] == 100, after
    assert [t["status"] for t in after["tiles"]] == \
        ["completed", "failed"] + ["completed"] * (len(prompts) - 2)
    assert got["retryLabel"] == "Retry failed (1)"
    # "Retry failed" ran the failed storyboard alone (and it failed again).
    (_rid, status, ids, no_cache) = latest_run(env, pid)
    assert (status, json.loads(ids), no_cache) == ("failed", [failing], 0)
    assert got["retried"]["panel"]["state"] == "failed"
    assert got["listFailedMarked"] is True
    assert_clean(got["problems"], got["csp"])


def image_rows(env, sid):
    return env.sql("SELECT id, run_id, sha256, status FROM generated_images"
                   " WHERE storyboard_id = ? AND is_primary = 1 ORDER BY created_at, rowid", sid)


def test_dashboard_edits_a_prompt_and_regenerates_one_tile(service):
    """Without a token: no prompt for one."""
    service.configure(providers=[provider_conf("ok")])
    service.start()
    env = service.env
    pid = service.import_project([
        "first shot", {"image_prompt": "second shot", "negative_prompt": "text, watermark"},
        "third shot"])
    wait_run_done(env, service.start_run(pid))
    sids = [sb["id"] for sb in service.get(f"/v1/projects/{pid}").json()["storyboards"]]
    new = "second shot, now at night in the rain"
    assert http_request(service.port, "GET", "/ui/service.json").json()["token_required"] is False
    got = run_browser("dashboard_edit.mjs", api=api_of(service), project=pid, edit=sids[1],
                      keep=sids[2], prompt=new)
    assert got["asked"] is False
    before = {t["id"]: t for t in got["before"]}
    edited = {t["id"]: t for t in got["edited"]}
    # The edit is stored, and the storyboard alone was generated anew
    # (no_cache) with it: a new image of other bytes, shown in its tile.
    assert env.sql("SELECT image_prompt, coalesce(negative_prompt, '') FROM storyboards"
                   " WHERE id = ?", sids[1]) == [(new, "")]
    assert edited[sids[1]]["prompt"] == new
    runs = env.sql("SELECT storyboard_ids, no_cache, status FROM runs WHERE project_id = ?"
                   " ORDER BY started_at, rowid", pid)
    assert [(json.loads(i) if i else None, nc, st) for i, nc, st in runs] == [
        (None, 0, "completed"), ([sids[1]], 1, "completed"), ([sids[0]], 1, "completed")]
    rows = image_rows(env, sids[1])
    assert len(rows) == 2 and rows[0][2] != rows[1][2], rows
    assert edited[sids[1]]["src"] != before[sids[1]]["src"]
    assert f"/v1/images/{rows[1][0]}/" in edited[sids[1]]["src"]
    assert edited[sids[0]]["src"] == before[sids[0]]["src"]    # untouched meanwhile
    assert got["editedPanel"]["value"] == 100 and got["editedPanel"]["numbers"].startswith("1/1")
    # Regenerate: the same prompt, a new image row, shown.
    regen = {t["id"]: t for t in got["regenerated"]}
    rows0 = image_rows(env, sids[0])
    assert len(rows0) == 2 and f"/v1/images/{rows0[1][0]}/" in regen[sids[0]]["src"]
    assert all(t["complete"] and t["naturalWidth"] > 0 for t in got["regenerated"])
    # An empty prompt never left the page.
    assert got["unnamedEditor"] == []
    assert got["emptyError"] == "The prompt cannot be empty."
    assert got["kept"] == "third shot"
    assert env.sql("SELECT image_prompt FROM storyboards WHERE id = ?", sids[2]) == \
        [("third shot",)]
    assert got["focusAfterCancel"] == "Edit prompt"
    assert_clean(got["problems"], got["csp"])


def test_dashboard_keeps_an_image_a_late_project_read_does_not_have(service):
    """A project read answered before a storyboard's image_generated event
    and delivered after it (a slow service, a slow network) does not draw
    the tile as it was: the page keeps what the newer event said, and reads
    the project again at the end of the run."""
    env = service.env
    service.configure(token=TOKEN, batch_size=1,
                      providers=[provider_conf("slow", delay_ms=0, gate=gate_path(env))])
    service.start()
    pid = service.import_project(["GATE one", "GATE2 two", "three"])
    sids = [sb["id"] for sb in service.get(f"/v1/projects/{pid}").json()["storyboards"]]
    wait_run_done(env, service.start_run(pid, {"storyboard_ids": [sids[2]]}))
    try:
        got = run_browser("dashboard_stale.mjs", api=api_of(service), token=TOKEN, project=pid,
                          first=sids[0], gate=gate_path(env))
    finally:
        open_gate(env)
        open(gate_path(env) + ".2", "w").close()
    # The held read is older than the event: no image for the first one.
    held = {sb["id"]: sb for sb in got["held"]["storyboards"]}
    assert (held[sids[0]].get("image") or {}).get("status") != "completed", held[sids[0]]
    shown = got["afterEvent"]
    assert shown["status"] == "completed" and shown["imageShown"] and shown["naturalWidth"] > 0
    rows = image_rows(env, sids[0])
    assert len(rows) == 1 and f"/v1/images/{rows[0][0]}/" in shown["src"], (rows, shown)
    # Drawn after the event, the late read changed nothing of the tile.
    assert got["afterStaleRead"] == shown, got["afterStaleRead"]
    assert got["panelAfterStaleRead"] == "running"
    after = {t["id"]: t for t in got["after"]}
    assert [after[s]["status"] for s in sids] == ["completed"] * 3
    assert after[sids[0]]["src"] == shown["src"]
    assert_clean(got["problems"], got["csp"])


def test_dashboard_cancels_a_run(service):
    env = service.env
    service.configure(token=TOKEN, workers_max=2, batch_size=1,
                      providers=[provider_conf("slow", delay_ms=0, gate=gate_path(env))])
    service.start()
    pid = service.import_project([f"GATE shot {i}" for i in range(5)])
    try:
        got = run_browser("dashboard_cancel.mjs", api=api_of(service), token=TOKEN, project=pid)
    finally:
        open_gate(env)
    (run_id, status, _ids, _nc) = latest_run(env, pid)
    assert status == "cancelled"
    assert got["during"]["state"] == "running"
    assert got["after"]["state"] == "cancelled" and got["after"]["value"] < 100, got["after"]
    assert "completed" not in {t["status"] for t in got["tiles"]}
    buttons = {b["id"]: b for b in got["buttons"]}
    assert not buttons["run-all"]["disabled"] and buttons["cancel-run"]["hidden"]
    assert stream_lines(service, run_id) == [(run_id, "?access_token=[redacted]", "200")]
    assert_clean(got["problems"], got["csp"])


def test_dashboard_follows_a_run_started_elsewhere(service):
    env = service.env
    service.configure(token=TOKEN, providers=[provider_conf("slow", delay_ms=0,
                                                            gate=gate_path(env))])
    service.start()
    pid = service.import_project(["GATE one", "GATE two"])
    try:
        got = run_browser("dashboard_elsewhere.mjs", api=api_of(service), token=TOKEN,
                          project=pid, gate=gate_path(env))
    finally:
        open_gate(env)
    assert got["before"]["state"] == "none" and got["started"] == 202
    assert got["during"]["state"] == "running"
    assert got["after"]["state"] == "completed" and got["after"]["value"] == 100
    assert stream_lines(service, got["run"]) == [(got["run"], "?access_token=[redacted]", "200")]
    assert_clean(got["problems"], got["csp"])


def test_dashboard_shows_a_queued_run_then_follows_it(service):
    env = service.env
    service.configure(token=TOKEN, workers_max=1, batch_size=1,
                      providers=[provider_conf("slow", delay_ms=0, gate=gate_path(env))])
    service.start()
    busy = service.import_project(["GATE busy one", "GATE busy two"])
    pid = service.import_project(["GATE one", "GATE two"])
    try:
        got = run_browser("dashboard_queued.mjs", api=api_of(service), token=TOKEN,
                          project=pid, busy=busy, gate=gate_path(env))
    finally:
        open_gate(env)
    assert got["first"]["status"] == 202 and got["first"]["body"]["status"] == "processing"
    assert got["second"]["status"] == 202 and got["second"]["body"]["status"] == "queued"
    assert got["during"]["state"] == "queued" and got["during"]["value"] == 0, got["during"]
    assert got["after"]["state"] == "completed" and got["after"]["value"] == 100
    run = got["second"]["body"]["run_id"]
    assert env.sql("SELECT status FROM runs WHERE id = ?", run) == [("completed",)]
    assert_clean(got["problems"], got["csp"])


def test_dashboard_imports_a_project_file(service):
    service.configure(token=TOKEN, providers=[provider_conf("ok")])
    service.start()
    env = service.env
    path = env.project(["a harbour at dawn", "a boat at sea", "gulls"], name="Imported in the page")
    bad = json.dumps({"name": "refused", "storyboards": [{"image_prompt": "fine"},
                                                         {"image_prompt": ""}]})
    got = run_browser("dashboard_import.mjs", api=api_of(service), token=TOKEN, file=path,
                      bad=bad)
    (row,) = env.sql("SELECT id, name FROM projects")
    assert row[1] == "Imported in the page"
    assert got["hash"] == f"#/projects/{row[0]}" and got["title"] == row[1]
    assert [t["prompt"] for t in got["tiles"]] == ["a harbour at dawn", "a boat at sea", "gulls"]
    assert got["clean"] == {"console_errors": [], "pageerrors": [], "failed": []}
    assert got["unnamedForm"] == []
    assert got["notJson"].startswith("This is not JSON")
    # The service's own message, naming the storyboard and the field.
    assert "storyboard 2: image_prompt" in got["refused"], got["refused"]
    assert env.sql("SELECT count(*) FROM projects") == [(1,)] and got["rows"] == 1
    # The one console error is the browser's note of that refusal (400).
    errors = got["problems"]["console_errors"]
    assert len(errors) == 1 and "400" in errors[0], errors
    assert got["csp"] == []


def test_dashboard_shows_a_pending_provider_task(service):
    env = service.env
    tasks = os.path.join(env.path, "tasks")
    os.makedirs(tasks)
    service.configure(workers_max=2, batch_size=1, providers=[
        provider_conf("async", tasks=tasks, poll_ms=30, gate=gate_path(env))])
    service.start()
    pid = service.import_project(["a paid shot", "another paid shot"])
    service.start_run(pid)
    try:
        wait_for(lambda: env.sql("SELECT count(*) FROM provider_tasks")[0][0] == 2,
                 what="both provider tasks to be checkpointed")
        got = run_browser("dashboard_task.mjs", api=api_of(service), project=pid,
                          gate=gate_path(env))
    finally:
        open_gate(env)
    assert got["panel"]["state"] == "running"
    for t in got["during"]:
        assert t["task"] and t["task"].startswith("Waiting on async's task · 1 checkpoint"), t
        assert t["status"] in ("generating", "queued"), t
    assert [(t["status"], t["task"]) for t in got["after"]] == [("completed", None)] * 2
    assert env.sql("SELECT count(*) FROM provider_tasks") == [(0,)]
    assert_clean(got["problems"], got["csp"])


def test_dashboard_files_as_served(service):
    """The page and its files: public (no token), compiled in (the bytes of
    web/), their types, the policy, and ETag revalidation."""
    service.configure(token=TOKEN)
    service.start()
    port = service.port
    names = sorted(os.listdir(WEB))
    assert "index.html" in names and "dashboard.js" in names and "dashboard.css" in names
    types = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
             ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}
    for name in names:
        path = "/" if name == "index.html" else f"/ui/{name}"
        r = http_request(port, "GET", path)
        with open(os.path.join(WEB, name), "rb") as f:
            assert r.status == 200 and r.body == f.read(), (name, r)
        h = r.headers
        assert h["content-type"] == types[os.path.splitext(name)[1]], (name, h)
        assert h["content-security-policy"] == CSP
        assert h["x-content-type-options"] == "nosniff"
        assert h["cache-control"] == "no-cache"
        assert re.fullmatch(r'"[0-9a-f]{32}"', h["etag"]), h
        again = http_request(port, "GET", path, headers={"If-None-Match": h["etag"]})
        assert again.status == 304 and again.body == b"" and again.headers["etag"] == h["etag"]
        weak = http_request(port, "GET", path, headers={"If-None-Match": f'"x", W/{h["etag"]}'})
        assert weak.status == 304
        other = http_request(port, "GET", path, headers={"If-None-Match": '"0123"'})
        assert other.status == 200 and other.body == r.body
    # One URL for the page; nothing else under /ui/; the API still needs the token.
    for path in ("/ui/index.html", "/ui/nope.js", "/ui/", "/ui/a/b", "/index.html"):
        assert http_request(port, "GET", path).status == 404, path
    assert http_request(port, "POST", "/", body="{}",
                        headers={"Content-Type": "application/json"}).status == 405
    assert http_request(port, "GET", "/v1/projects").status == 401
    info = http_request(port, "GET", "/ui/service.json")
    assert info.status == 200 and info.json()["token_required"] is True
    assert info.json()["version"]
    # The page loads nothing but its own files, and holds no inline script
    # or style (the policy would refuse them).
    with open(os.path.join(WEB, "index.html")) as f:
        html = f.read()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert not re.search(r"\son\w+=|\sstyle=", html)
    for ref in re.findall(r'(?:src|href)="([^"#]+)"', html):
        assert ref.startswith("/ui/") and ref[4:] in names, ref

