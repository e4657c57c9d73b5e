"""The routes of version 2 of the API: the project list and its pages, a
project's runs, one run and its stream, PATCH of a storyboard, DELETE of a
project (with the image files nothing else uses), and only_missing.  Every
refusal is a JSON error and changes nothing."""

import os
import uuid

from conftest import (assert_json_error, assert_stream_matches_db, check_signed_urls,
                      http_request, open_gate, provider_conf, retry_conf, run_path,
                      slow_service, stage_status, wait_run_done)
import pytest

pytestmark = pytest.mark.backends


def run_to_end(service, pid, body=None):
    run = service.start_run(pid, body)
    wait_run_done(service.env, run)
    return run


# --------------------------------------------------------------------------
# GET /v1/projects


def test_project_pages(service):
    service.configure()
    service.start()
    ids = [service.import_project([f"p{i}"], name=f"n{i}") for i in range(7)]
    run_to_end(service, ids[3])
    got, cursor, pages = [], None, 0
    while True:
        path = "/v1/projects?limit=3" + (f"&after={cursor}" if cursor else "")
        r = service.get(path)
        assert r.status == 200, r
        doc = r.json()
        assert set(doc) == {"projects", "next"}
        assert len(doc["projects"]) <= 3
        got += doc["projects"]
        pages += 1
        cursor = doc["next"]
        if cursor is None:
            break
    # Newest first, each once, with its stages and counts.
    assert [p["id"] for p in got] == ids[::-1]
    assert pages == 3
    p3 = next(p for p in got if p["id"] == ids[3])
    assert p3["counts"]["completed"] == 1 and p3["counts"]["storyboards"] == 1
    assert {s["stage_type"]: s["status"] for s in p3["stages"]} == {
        "storyboard": "completed", "image_generation": "completed"}
    assert got[0]["name"] == "n6"
    # The default page holds them all; a cursor outlives its project.
    assert [p["id"] for p in service.get("/v1/projects").json()["projects"]] == ids[::-1]
    first = service.get("/v1/projects?limit=2").json()
    assert service.delete(f"/v1/projects/{ids[5]}").status == 200
    rest = service.get(f"/v1/projects?limit=10&after={first['next']}").json()
    assert [p["id"] for p in rest["projects"]] == ids[4::-1] and rest["next"] is None
    # Bad cursors and limits: 400, JSON.
    snap = service.env.snapshot()
    for q in ("after=xyz", "after=" + "0" * 120, "after=" + first["next"][:-1],
              "after=" + first["next"].upper(), "limit=0", "limit=501", "limit=two",
              "limit=-1", "limit="):
        assert_json_error(service.get(f"/v1/projects?{q}"), 400,
                          "cursor" if q.startswith("after") else "limit")
    assert service.env.snapshot() == snap


# --------------------------------------------------------------------------
# Runs


def test_runs_of_a_project_and_their_streams(service):
    service.configure(providers=[provider_conf("combo")], extra=retry_conf(1))
    service.start()
    env = service.env
    pid = service.import_project(["first", "an ERROR", "third"])
    sids = [s["id"] for s in service.get(f"/v1/projects/{pid}").json()["storyboards"]]
    run1 = run_to_end(service, pid)
    run2 = run_to_end(service, pid, {"storyboard_ids": [sids[0]], "no_cache": True})
    r = service.get(f"/v1/projects/{pid}/runs")
    assert r.status == 200, r
    runs = r.json()["runs"]
    assert [x["id"] for x in runs] == [run2, run1]
    newest, oldest = runs
    assert oldest["status"] == "partial"
    assert (oldest["total"], oldest["success_count"], oldest["failed_count"]) == (3, 2, 1)
    assert oldest["storyboard_ids"] is None and oldest["no_cache"] is False
    assert newest["status"] == "completed" and newest["total"] == 1
    assert newest["storyboard_ids"] == [sids[0]] and newest["no_cache"] is True
    assert oldest["finished_at"] and oldest["started_at"] <= newest["started_at"]
    assert oldest["last_seq"] == env.sql("SELECT max(seq) FROM run_events WHERE run_id = ?",
                                         run1)[0][0]
    # One run; the same object.
    r = service.get(f"/v1/runs/{run1}")
    assert r.status == 200 and r.json() == oldest
    # The stream of an earlier run, not only the latest.
    c = service.sse(f"/v1/runs/{run1}/events")
    msgs = c.read_all()
    c.close()
    assert_stream_matches_db(env, run1, msgs)
    assert msgs[0]["data"] == {"type": "connected", "project_id": pid, "run_id": run1}
    # The failed storyboard's image has no URLs; the others' load.
    images = service.get(f"/v1/projects/{pid}/images").json()["images"]
    failed = [im for im in images if im["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["file_url"] is None and failed[0]["thumbnail_url"] is None
    for im in images:
        if im["status"] == "completed":
            check_signed_urls(im)
            assert http_request(service.port, "GET", im["file_url"]).status == 200
    # Not found, JSON.
    for path in (f"/v1/runs/{uuid.uuid4()}", f"/v1/runs/{uuid.uuid4()}/events",
                 f"/v1/projects/{uuid.uuid4()}/runs"):
        assert_json_error(service.get(path), 404, "not found")
    assert_json_error(service.get("/v1/runs/not-a-uuid"), 404)
    assert_json_error(service.get(f"/v1/runs/{run1}/events", headers={"Last-Event-ID": "x"}),
                      400, "Last-Event-ID")


def test_edit_a_prompt_then_only_missing(service):
    """The original system's loop: a storyboard fails, its prompt is edited,
    and a run of only the missing ones makes it."""
    service.configure(providers=[provider_conf("combo")], extra=retry_conf(1))
    service.start()
    env = service.env
    pid = service.import_project(["first", "an ERROR here", "third"])
    sb = service.get(f"/v1/projects/{pid}").json()["storyboards"]
    run_to_end(service, pid)
    assert stage_status(env, pid) == "partial"
    r = service.patch(f"/v1/projects/{pid}/storyboards/{sb[1]['id']}",
                      {"image_prompt": "fixed now", "negative_prompt": "blur",
                       "params": {"ratio": "1:1", "options": {"k": 1}}})
    assert r.status == 200, r
    assert r.json() == {"id": sb[1]["id"], "index": 2, "image_prompt": "fixed now",
                        "negative_prompt": "blur", "params": {"options": {"k": 1},
                                                               "ratio": "1:1"}}
    assert env.sql("SELECT image_prompt, negative_prompt FROM storyboards WHERE id = ?",
                   sb[1]["id"]) == [("fixed now", "blur")]
    run = run_to_end(service, pid, {"only_missing": True})
    view = service.get(f"/v1/runs/{run}").json()
    assert (view["total"], view["success_count"], view["status"]) == (1, 1, "completed")
    assert stage_status(env, pid) == "completed"
    made = env.sql("SELECT generation_params FROM generated_images WHERE run_id = ?", run)
    assert len(made) == 1 and '"1:1"' in made[0][0]
    # Nothing left to make: 422, as `retry` says.
    assert_json_error(service.post(run_path(pid), {"only_missing": True}), 422,
                      "without a completed image")
    assert_json_error(service.post(run_path(pid), {"only_missing": "yes"}), 400, "only_missing")
    # Only the given fields change; null clears the negative prompt.
    r = service.patch(f"/v1/projects/{pid}/storyboards/{sb[1]['id']}",
                      {"negative_prompt": None})
    assert r.json()["image_prompt"] == "fixed now" and r.json()["negative_prompt"] == ""
    assert r.json()["params"] == {"options": {"k": 1}, "ratio": "1:1"}


def test_patch_refusals_change_nothing(service):
    service.configure()
    service.start()
    env = service.env
    pid = service.import_project(["a", "b"])
    other = service.import_project(["c"])
    sid = service.get(f"/v1/projects/{pid}").json()["storyboards"][0]["id"]
    osid = service.get(f"/v1/projects/{other}").json()["storyboards"][0]["id"]
    path = f"/v1/projects/{pid}/storyboards/{sid}"
    snap = env.snapshot()
    for body, needle in [
            ({"prompt": "x"}, "unknown key 'prompt'"),
            ({"image_prompt": "x", "seed": 1}, "unknown key 'seed'"),
            ({"image_prompt": ""}, "image_prompt: must not be empty"),
            ({"image_prompt": "   "}, "image_prompt: must not be empty"),
            ({"image_prompt": None}, "image_prompt: must not be empty"),
            ({"image_prompt": 3}, "image_prompt: expected a string"),
            ({"image_prompt": "x" * 8193}, "too long"),
            ({"negative_prompt": ["x"]}, "negative_prompt"),
            ({"params": {"ratio": "5:4x"}}, "unknown ratio"),
            ({"params": {"colour": "red"}}, "params: unknown key 'colour'"),
            ({"params": []}, "params: expected an object"),
            ({"image_prompt": "ok", "params": {"resolution": "9k"}}, "unknown resolution"),
            ("[1]", "expected a JSON object"),
            ("{", "invalid JSON"),
            ("", "invalid JSON"),
            ('{"image_prompt": "a", "image_prompt": "b"}', "invalid JSON")]:
        assert_json_error(service.patch(path, body), 400, needle)
    assert_json_error(service.patch(f"/v1/projects/{pid}/storyboards/{osid}",
                                    {"image_prompt": "x"}), 404, "has no storyboard")
    assert_json_error(service.patch(f"/v1/projects/{uuid.uuid4()}/storyboards/{sid}",
                                    {"image_prompt": "x"}), 404, "not found")
    assert_json_error(service.patch(f"/v1/projects/{pid}/storyboards/nope",
                                    {"image_prompt": "x"}), 404)
    assert env.snapshot() == snap


# --------------------------------------------------------------------------
# DELETE /v1/projects/{id}


def files_under(d):
    out = set()
    for root, _dirs, names in os.walk(d):
        out |= {os.path.join(root, n) for n in names}
    return out


def project_files(env, pid):
    """The image files and thumbnails the project's rows name."""
    return {p for (p,) in env.sql(
        "SELECT file_path FROM generated_images g JOIN storyboards s ON s.id = g.storyboard_id"
        " WHERE s.project_id = ?1 UNION SELECT thumbnail_path FROM generated_images g"
        " JOIN storyboards s ON s.id = g.storyboard_id WHERE s.project_id = ?1"
        " AND thumbnail_path IS NOT NULL", pid)}


def test_delete_project_and_its_files(service):
    service.configure(thumbnails=True, providers=[provider_conf("ok", images=2)])
    service.start()
    env = service.env
    gone = service.import_project(["shared shot", "own shot"])
    keep = service.import_project(["shared shot", "other shot"])
    run_gone = run_to_end(service, gone)
    run_to_end(service, keep)
    # The cache served the shared storyboard of `keep` from `gone`'s image file.
    kept_doc = service.get(f"/v1/projects/{keep}").json()
    shared = kept_doc["storyboards"][0]["image"]
    assert shared["cached"] == 1
    kept_files, gone_files = project_files(env, keep), project_files(env, gone)
    only_gone = gone_files - kept_files
    assert only_gone and gone_files & kept_files
    before = files_under(env.images)
    assert gone_files <= before
    r = service.delete(f"/v1/projects/{gone}")
    assert r.status == 200, r
    assert r.json() == {"id": gone, "deleted": True, "files_removed": len(only_gone)}
    assert files_under(env.images) == before - only_gone
    for table, col in [("projects", "id"), ("storyboards", "project_id"),
                       ("project_stages", "project_id"), ("runs", "project_id")]:
        assert env.sql(f"SELECT count(*) FROM {table} WHERE {col} = ?", gone) == [(0,)]
    assert env.sql("SELECT count(*) FROM run_events WHERE run_id = ?", run_gone) == [(0,)]
    assert_json_error(service.get(f"/v1/projects/{gone}"), 404)
    assert_json_error(service.get(f"/v1/runs/{run_gone}"), 404)
    assert_json_error(service.delete(f"/v1/projects/{gone}"), 404, "not found")
    # What the other project uses still loads.
    for sb in service.get(f"/v1/projects/{keep}").json()["storyboards"]:
        for url in (sb["image"]["file_url"], sb["image"]["thumbnail_url"]):
            assert http_request(service.port, "GET", url).status == 200
    # A body other than nothing or {} is refused, and deletes nothing.
    snap = env.snapshot()
    assert_json_error(service.delete(f"/v1/projects/{keep}", {"force": True}), 400,
                      "no arguments")
    assert_json_error(service.delete(f"/v1/projects/{keep}", "[]"), 400)
    assert env.snapshot() == snap
    assert service.delete(f"/v1/projects/{keep}", {}).status == 200


def test_patch_and_delete_while_processing_409(service):
    slow_service(service, n_delay_ms=0, trace=False)
    service.start()
    env = service.env
    pid = service.import_project(["GATE a", "b"])
    sid = service.get(f"/v1/projects/{pid}").json()["storyboards"][1]["id"]
    run = service.start_run(pid)
    rows = env.sql("SELECT * FROM storyboards WHERE project_id = ?", pid)
    r = service.patch(f"/v1/projects/{pid}/storyboards/{sid}", {"image_prompt": "new"})
    assert_json_error(r, 409, "a run is processing")
    assert_json_error(service.delete(f"/v1/projects/{pid}"), 409, "a run is processing")
    assert env.sql("SELECT * FROM storyboards WHERE project_id = ?", pid) == rows
    assert env.sql("SELECT count(*) FROM projects WHERE id = ?", pid) == [(1,)]
    open_gate(env)
    wait_run_done(env, run)
    # Once it is over, both go through.
    assert service.patch(f"/v1/projects/{pid}/storyboards/{sid}",
                         {"image_prompt": "new"}).status == 200
    assert service.delete(f"/v1/projects/{pid}").status == 200
