"""`retry` over the storyboards without a completed image, and the image
cache (across projects, inside one run, --no-cache, cache disabled)."""

import json
import os

from conftest import (NO_RETRY, events_of, png_size, project_id_of, provider_conf,
                      read_trace, stage_status, storyboard_rows, trace_starts)
import pytest

pytestmark = pytest.mark.backends


def test_retry_after_partial_run(env):
    trace = os.path.join(env.path, "trace")
    # "main" first refuses prompts with ERROR; for the retry the same
    # provider name is switched to a plugin that accepts everything.
    env.write_config(providers=[provider_conf("main", "error", trace=trace)], extra=NO_RETRY)
    p = env.project(["one", "two ERROR", "three", "four ERROR", "five"])
    rc, events, _ = env.run_json(p, expect=3)
    pid = project_id_of(events)
    ids = {pos: sid for sid, pos, _ in storyboard_rows(env, pid)}
    assert sorted(e["storyboard_id"] for e in events_of(events, "error")) == sorted(
        [ids[2], ids[4]])
    assert stage_status(env, pid) == "partial"
    first_images = dict(env.sql("SELECT storyboard_id, id FROM generated_images"
                                " WHERE status = 'completed'"))
    assert len(first_images) == 3

    env.write_config(providers=[provider_conf("main", "ok", trace=trace)], extra=NO_RETRY)
    os.unlink(trace)
    cp = env.t2i("retry", pid, "--json", check=0)
    events2 = [json.loads(line) for line in cp.stdout.splitlines() if line.strip()]
    assert [e["seq"] for e in events2] == list(range(1, len(events2) + 1))
    assert events2[0]["run_id"] != events[0]["run_id"]
    assert project_id_of(events2) == pid
    # Only the failed storyboards are run again; completed ones not at all.
    assert sorted(trace_starts(trace)) == sorted([ids[2], ids[4]])
    assert sorted(e["storyboard"]["id"] for e in events_of(events2, "progress")) == sorted(
        [ids[2], ids[4]])
    gen = events_of(events2, "image_generated")
    assert sorted(e["storyboard_id"] for e in gen) == sorted([ids[2], ids[4]])
    assert not events_of(events2, "error")
    done = events2[-1]
    assert done["data"]["total_storyboards"] == 2
    assert done["data"]["success_count"] == 2
    assert done["data"]["generated_image_ids"] == [e["image"]["id"] for e in gen]
    # The stage covers the whole project: partial becomes completed.
    assert events2[0]["stage"]["status"] == "processing"
    assert events2[-2]["stage"]["status"] == "completed"
    assert done["stage"]["status"] == "completed"
    assert stage_status(env, pid) == "completed"
    # The first run's images are untouched, and the failures stay recorded.
    for sid, image_id in first_images.items():
        assert env.sql("SELECT id FROM generated_images WHERE storyboard_id = ?", sid) == [
            (image_id,)]
    for pos in (2, 4):
        rows = sorted(env.sql("SELECT status FROM generated_images WHERE storyboard_id = ?",
                              ids[pos]))
        assert rows == [("completed",), ("failed",)]
    assert sorted(env.sql("SELECT status, total FROM runs")) == [("completed", 2),
                                                                 ("partial", 5)]


def test_cache_serves_a_second_project(env):
    trace = os.path.join(env.path, "trace")
    env.write_config(providers=[provider_conf("ok", trace=trace)])
    sbs = ["a castle", {"image_prompt": "a bridge", "negative_prompt": "fog",
                        "params": {"ratio": "1:1"}}]
    rc, first, _ = env.run_json(env.project(sbs, name="first"), expect=0)
    assert len(trace_starts(trace)) == 2
    made = {e["storyboard"]["image_prompt"]: None for e in events_of(first, "progress")}
    for e in events_of(first, "image_generated"):
        assert e["image"]["cached"] is False
        (prompt,) = env.sql("SELECT image_prompt FROM storyboards WHERE id = ?",
                            e["storyboard_id"])[0]
        made[prompt] = e["image"]

    rc, second, _ = env.run_json(env.project(sbs, name="second"), expect=0)
    assert len(trace_starts(trace)) == 2      # the plugin was not called again
    gen = events_of(second, "image_generated")
    assert len(gen) == 2
    for e in gen:
        img = e["image"]
        assert img["cached"] is True
        (prompt,) = env.sql("SELECT image_prompt FROM storyboards WHERE id = ?",
                            e["storyboard_id"])[0]
        orig = made[prompt]
        assert img["id"] != orig["id"]
        assert img["file_path"] == orig["file_path"]
        assert (img["width"], img["height"], img["file_size"]) == (
            orig["width"], orig["height"], orig["file_size"])
        row = env.sql("SELECT status, cached, file_path, sha256 FROM generated_images"
                      " WHERE id = ?", img["id"])
        (orig_sha,) = env.sql("SELECT sha256 FROM generated_images WHERE id = ?",
                              orig["id"])[0]
        assert row == [("completed", 1, orig["file_path"], orig_sha)]
        assert png_size(img["file_path"]) == (img["width"], img["height"])
    assert second[-1]["data"]["success_count"] == 2
    assert stage_status(env, project_id_of(second)) == "completed"
    assert env.sql("SELECT count(*) FROM generated_images WHERE cached = 0") == [(2,)]


def test_cache_key_includes_size_options_and_negative_prompt(env):
    trace = os.path.join(env.path, "trace")
    env.write_config(providers=[provider_conf("ok", trace=trace)])
    env.run_json(env.project(["a tower"]), expect=0)
    assert len(trace_starts(trace)) == 1
    variants = [
        {"image_prompt": "a tower", "params": {"ratio": "9:16"}},
        {"image_prompt": "a tower", "params": {"resolution": "1k"}},
        {"image_prompt": "a tower", "negative_prompt": "rain"},
        {"image_prompt": "a tower", "params": {"options": {"images": 1}}},
        {"image_prompt": "a tower!"},
    ]
    rc, events, _ = env.run_json(env.project(variants), expect=0)
    assert len(trace_starts(trace)) == 1 + len(variants)
    for e in events_of(events, "image_generated"):
        assert e["image"]["cached"] is False


def test_no_cache_calls_the_plugin_again(env):
    trace = os.path.join(env.path, "trace")
    env.write_config(providers=[provider_conf("ok", trace=trace)])
    sbs = ["a harbour", "a market"]
    env.run_json(env.project(sbs), expect=0)
    assert len(trace_starts(trace)) == 2
    rc, events, _ = env.run_json(env.project(sbs), "--no-cache", expect=0)
    assert len(trace_starts(trace)) == 4
    for e in events_of(events, "image_generated"):
        assert e["image"]["cached"] is False
    assert env.sql("SELECT no_cache FROM runs ORDER BY started_at") == [(0,), (1,)]
    assert env.sql("SELECT count(*) FROM generated_images WHERE cached = 1") == [(0,)]


def test_cache_disabled_in_config(env):
    trace = os.path.join(env.path, "trace")
    env.write_config(providers=[provider_conf("ok", trace=trace)], cache=False)
    sbs = ["a harbour", "a harbour"]
    rc, events, _ = env.run_json(env.project(sbs), expect=0)
    assert len(trace_starts(trace)) == 2      # duplicates inside a run too
    rc, events, _ = env.run_json(env.project(sbs), expect=0)
    assert len(trace_starts(trace)) == 4
    for e in events_of(events, "image_generated"):
        assert e["image"]["cached"] is False
    assert env.sql("SELECT count(*) FROM generated_images WHERE cached = 1") == [(0,)]


def test_identical_prompts_in_one_run_call_the_plugin_once(env):
    trace = os.path.join(env.path, "trace")
    env.write_config(providers=[provider_conf("ok", trace=trace)], batch_size=1)
    sbs = ["same shot", "other shot", "same shot", "same shot"]
    rc, events, _ = env.run_json(env.project(sbs), expect=0)
    ids = {pos: sid for sid, pos, _ in storyboard_rows(env, project_id_of(events))}
    assert sorted(trace_starts(trace)) == sorted([ids[1], ids[2]])
    gen = {e["storyboard_id"]: e["image"] for e in events_of(events, "image_generated")}
    assert len(gen) == 4
    assert gen[ids[1]]["cached"] is False
    assert gen[ids[2]]["cached"] is False
    for pos in (3, 4):
        assert gen[ids[pos]]["cached"] is True
        assert gen[ids[pos]]["file_path"] == gen[ids[1]]["file_path"]
        assert gen[ids[pos]]["id"] != gen[ids[1]]["id"]
    done = events[-1]["data"]
    assert done["success_count"] == 4
    assert len(set(done["generated_image_ids"])) == 4
    assert sorted(env.sql("SELECT cached FROM generated_images")) == [(0,), (0,), (1,), (1,)]
    # Each storyboard still has its own progress event.
    assert sorted(e["storyboard"]["id"] for e in events_of(events, "progress")) == sorted(
        ids.values())


def test_identical_failing_prompts_each_fail(env):
    """When the one call for several identical storyboards fails, the others
    are not left waiting: the run still ends, every one of them accounted."""
    trace = os.path.join(env.path, "trace")
    env.write_config(providers=[provider_conf("error", trace=trace)], extra=NO_RETRY)
    sbs = ["fine", "bad ERROR", "bad ERROR", "bad ERROR"]
    rc, events, _ = env.run_json(env.project(sbs), expect=3)
    ids = {pos: sid for sid, pos, _ in storyboard_rows(env, project_id_of(events))}
    assert sorted(e["storyboard_id"] for e in events_of(events, "error")) == sorted(
        [ids[2], ids[3], ids[4]])
    done = events[-1]["data"]
    assert (done["success_count"], done["failed_count"]) == (1, 3)
    assert env.sql("SELECT count(*) FROM generated_images WHERE status = 'failed'") == [(3,)]
    assert read_trace(trace)      # the plugin was called


def test_cache_key_includes_provider_model(env):
    trace = os.path.join(env.path, "trace")
    conf = ('{{ name = "ok"; plugin = "ok"; default = true; model = "{}";'
            ' options = {{ trace = "{}"; }}; }}')
    env.write_config(providers=[conf.format("m1", trace)])
    env.run_json(env.project(["a tower"]), expect=0)
    env.write_config(providers=[conf.format("m2", trace)])
    rc, events, _ = env.run_json(env.project(["a tower"]), expect=0)
    assert len(trace_starts(trace)) == 2
    assert events_of(events, "image_generated")[0]["image"]["cached"] is False
    env.write_config(providers=[conf.format("m1", trace)])
    rc, events, _ = env.run_json(env.project(["a tower"]), expect=0)
    assert len(trace_starts(trace)) == 2
    assert events_of(events, "image_generated")[0]["image"]["cached"] is True
    gp = [json.loads(r[0])["model"] for r in
          env.sql("SELECT generation_params FROM generated_images ORDER BY created_at")]
    assert gp == ["m1", "m2", "m1"]
