"""`t2istage run`: events, exit status, image files and database rows of a
run, parameter resolution, storyboard subsets and the terminal output."""

import json
import os
import re

import pytest

from conftest import (events_of, png_size, project_id_of, provider_conf,
                      run_pty, set_generation, sha256_file, stage_status, storyboard_rows,
                      trace_starts)

ENVELOPE = ("type", "seq", "run_id", "project_id")
SHA_NAME = re.compile(r"^[0-9a-f]{64}\.png$")

pytestmark = pytest.mark.backends


def check_envelope(events):
    """seq 1..N, the four envelope fields on every event, one run and project."""
    assert events, "no events"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    for e in events:
        for k in ENVELOPE:
            assert k in e, (k, e)
    assert len({e["run_id"] for e in events}) == 1
    assert len({e["project_id"] for e in events}) == 1


def check_order(events, final_status):
    """stage_update(processing), info, then per-storyboard events, then
    stage_update(final), done last."""
    assert events[0]["type"] == "stage_update"
    assert events[0]["stage"]["status"] == "processing"
    assert events[0]["stage"]["stage_type"] == "image_generation"
    assert events[1]["type"] == "info"
    middle = events[2:-2]
    assert {e["type"] for e in middle} <= {"progress", "image_generated", "error", "warning"}
    assert events[-2]["type"] == "stage_update"
    assert events[-2]["stage"]["status"] == final_status
    assert events[-2]["stage"]["id"] == events[0]["stage"]["id"]
    assert events[-1]["type"] == "done"
    assert events[-1]["stage"]["status"] == final_status
    assert [e["type"] for e in events].count("done") == 1
    # Every result follows a progress event of its storyboard.
    seen = set()
    for e in middle:
        if e["type"] == "progress":
            assert e["total"] == events[-1]["data"]["total_storyboards"]
            seen.add(e["storyboard"]["id"])
        elif e["type"] in ("image_generated",):
            assert e["storyboard_id"] in seen, e
    currents = [e["current"] for e in middle if e["type"] == "progress"]
    assert currents == list(range(1, len(currents) + 1))


def check_image_row(env, image_id, storyboard_id):
    (row,) = env.sql(
        "SELECT status, width, height, file_size, file_path, sha256, storyboard_id, error"
        " FROM generated_images WHERE id = ?", image_id)
    status, w, h, size, path, sha, sb, error = row
    assert status == "completed"
    assert sb == storyboard_id
    assert error is None
    assert os.path.isfile(path)
    assert png_size(path) == (w, h)
    assert os.path.getsize(path) == size
    assert sha256_file(path) == sha
    assert os.path.basename(path) == sha + ".png"
    assert path.startswith(env.images + os.sep)
    return row


def test_run_project_file_events_files_and_rows(env):
    trace = os.path.join(env.path, "trace")
    env.write_config(providers=[provider_conf("ok", trace=trace)])
    prompts = ["a red fox", "a blue whale", "a green owl", "a grey wolf"]
    p = env.project(prompts, name="four")
    rc, events, cp = env.run_json(p, expect=0)
    assert cp.stdout.endswith("\n")
    check_envelope(events)
    check_order(events, "completed")
    pid = project_id_of(events)
    run_id = events[0]["run_id"]

    done = events[-1]
    assert done["success"] is True
    data = done["data"]
    assert data["total_storyboards"] == 4
    assert data["success_count"] == 4
    assert data["failed_count"] == 0
    gen = events_of(events, "image_generated")
    assert len(gen) == 4
    assert not events_of(events, "error")
    assert data["generated_image_ids"] == [e["image"]["id"] for e in gen]
    assert len(set(data["generated_image_ids"])) == 4

    sbs = storyboard_rows(env, pid)
    assert [(pos, prompt) for _id, pos, prompt in sbs] == [(i + 1, t) for i, t in
                                                            enumerate(prompts)]
    assert sorted(e["storyboard_id"] for e in gen) == sorted(r[0] for r in sbs)
    for e in gen:
        img = e["image"]
        assert img["cached"] is False
        assert img["url"] is None        # the ok plugin returns bytes
        status, w, h, size, path, sha, _sb, _err = check_image_row(env, img["id"],
                                                                    e["storyboard_id"])
        assert (img["width"], img["height"], img["file_size"], img["file_path"]) == \
            (w, h, size, path)
        assert SHA_NAME.match(os.path.basename(img["file_path"]))
    # The plugin was called once per storyboard.
    assert sorted(trace_starts(trace)) == sorted(r[0] for r in sbs)

    # Rows: project, stages, run, images, run events.
    assert env.sql("SELECT name FROM projects WHERE id = ?", pid) == [("four",)]
    assert stage_status(env, pid, "storyboard") == "completed"
    assert stage_status(env, pid) == "completed"
    assert env.sql("SELECT id FROM project_stages WHERE project_id = ? AND"
                   " stage_type = 'image_generation'", pid) == [(events[0]["stage"]["id"],)]
    assert env.sql("SELECT id, status, total, success_count, failed_count, last_seq"
                   " FROM runs") == [(run_id, "completed", 4, 4, 0, len(events))]
    assert env.sql("SELECT count(*) FROM generated_images WHERE status = 'completed'"
                   " AND is_primary = 1 AND run_id = ?", run_id) == [(4,)]
    stored = env.sql("SELECT seq, type, body FROM run_events WHERE run_id = ? ORDER BY seq",
                     run_id)
    assert [(s, t) for s, t, _b in stored] == [(e["seq"], e["type"]) for e in events]
    assert [json.loads(b) for _s, _t, b in stored] == events


def test_defaults_are_16_9_2k_and_params_recorded(env):
    p = env.project(["a lighthouse"])
    _, events, _ = env.run_json(p, expect=0)
    (gp,) = env.sql("SELECT generation_params FROM generated_images")
    params = json.loads(gp[0])
    assert params["provider"] == "ok"
    assert (params["ratio"], params["resolution"]) == ("16:9", "2k")
    assert (params["width"], params["height"]) == (2560, 1440)
    assert params["options"] == {}


# ratio, resolution, expected pixels (doc/providers.md, "Pixel sizes")
SIZES = [
    ("16:9", "1k", (1024, 576)),
    ("9:16", "1k", (576, 1024)),
    ("1:1", "1k", (1024, 1024)),
    ("21:9", "1k", (1195, 512)),
    ("4:3", "1k", (1024, 768)),
    ("16:9", "2k", (2560, 1440)),
]


def test_placeholder_makes_requested_sizes(env):
    env.write_config(providers=['{ name = "placeholder"; plugin = "placeholder";'
                                ' default = true; }'])
    sbs = [{"image_prompt": f"shot {r} {s}", "params": {"ratio": r, "resolution": s}}
           for r, s, _ in SIZES]
    rc, events, _ = env.run_json(env.project(sbs), expect=0)
    check_envelope(events)
    gen = {e["storyboard_index"]: e for e in events_of(events, "image_generated")}
    assert sorted(gen) == list(range(1, len(SIZES) + 1))
    for i, (_r, _s, size) in enumerate(SIZES, start=1):
        img = gen[i]["image"]
        assert png_size(img["file_path"]) == size, (i, SIZES[i - 1])
        assert (img["width"], img["height"]) == size
        (row,) = env.sql("SELECT width, height, file_path FROM generated_images WHERE id = ?",
                         img["id"])
        assert row == (size[0], size[1], img["file_path"])


def test_parameter_resolution_storyboard_project_config(env):
    env.write_config(providers=[
        '{ name = "placeholder"; plugin = "placeholder"; default = true;'
        ' options = { a = 1; b = 1; c = 1; }; }'])
    set_generation(env, ratio="1:1", resolution="1k")
    sbs = [
        {"image_prompt": "inherits the project", },
        {"image_prompt": "own resolution", "params": {"resolution": "2k"}},
        {"image_prompt": "own ratio and options",
         "params": {"ratio": "21:9", "options": {"c": 3, "d": "x"}}},
    ]
    p = env.project(sbs, params={"ratio": "9:16", "options": {"b": 2, "c": 2}})
    _, events, _ = env.run_json(p, expect=0)
    q = env.project(["only the config"])
    _, events2, _ = env.run_json(q, expect=0)

    def params_of(evs):
        out = {}
        for e in events_of(evs, "image_generated"):
            (gp,) = env.sql("SELECT generation_params FROM generated_images WHERE id = ?",
                            e["image"]["id"])
            out[e["storyboard_index"]] = (json.loads(gp[0]), e["image"])
        return out

    got = params_of(events)
    want = {
        1: ("9:16", "1k", (576, 1024), {"a": 1, "b": 2, "c": 2}),
        2: ("9:16", "2k", (1440, 2560), {"a": 1, "b": 2, "c": 2}),
        3: ("21:9", "1k", (1195, 512), {"a": 1, "b": 2, "c": 3, "d": "x"}),
    }
    for i, (ratio, res, size, opts) in want.items():
        gp, img = got[i]
        assert (gp["ratio"], gp["resolution"]) == (ratio, res), i
        assert (gp["width"], gp["height"]) == size, i
        assert gp["options"] == opts, i
        assert gp["provider"] == "placeholder"
        assert png_size(img["file_path"]) == size, i
    gp, img = params_of(events2)[1]
    assert (gp["ratio"], gp["resolution"], gp["width"], gp["height"]) == ("1:1", "1k", 1024,
                                                                          1024)
    assert gp["options"] == {"a": 1, "b": 1, "c": 1}
    assert png_size(img["file_path"]) == (1024, 1024)


def test_options_reach_the_plugin_and_variants_are_kept(env):
    """The ok plugin returns option "images" images: the first is the primary
    image, the others variants; options resolve storyboard over project over
    provider, and the plugin sees the merged result."""
    trace = os.path.join(env.path, "trace")
    env.write_config(providers=[provider_conf("ok", trace=trace, images=1)])
    sbs = ["project default", {"image_prompt": "storyboard three",
                               "params": {"options": {"images": 3}}}]
    p = env.project(sbs, params={"options": {"images": 2}})
    rc, events, _ = env.run_json(p, expect=0)
    assert len(trace_starts(trace)) == 2      # the trace option came from the provider
    gen = {e["storyboard_index"]: e for e in events_of(events, "image_generated")}
    assert len(gen[1]["image"]["variants"]) == 1
    assert len(gen[2]["image"]["variants"]) == 2
    done = events[-1]["data"]
    assert done["generated_image_ids"] == [e["image"]["id"] for e in
                                           events_of(events, "image_generated")]
    for idx, e in gen.items():
        primary = e["image"]
        rows = env.sql("SELECT id, is_primary, primary_id, status, file_path, sha256"
                       " FROM generated_images WHERE storyboard_id = ? ORDER BY is_primary DESC",
                       e["storyboard_id"])
        assert len(rows) == 1 + len(primary["variants"])
        assert rows[0][:4] == (primary["id"], 1, None, "completed")
        variant_ids = {v["id"] for v in primary["variants"]}
        assert {r[0] for r in rows[1:]} == variant_ids
        paths = {primary["file_path"]}
        for vid, is_primary, primary_id, status, path, sha in rows[1:]:
            assert (is_primary, primary_id, status) == (0, primary["id"], "completed")
            assert sha256_file(path) == sha
            paths.add(path)
        assert len(paths) == len(rows)        # every variant is a different image
        for v in primary["variants"]:
            assert png_size(v["file_path"]) == (v["width"], v["height"])
        # Variants are not primary images, so not counted as storyboards.
        assert primary["id"] in done["generated_image_ids"]
        assert not variant_ids & set(done["generated_image_ids"])


def test_storyboard_subset_by_project_id(env):
    trace = os.path.join(env.path, "trace")
    env.write_config(providers=[provider_conf("ok", trace=trace)])
    p = env.project(["one", "two", "three", "four", "five"])
    cp = env.t2i("import", p, check=0)
    pid = cp.stdout.strip()
    assert env.sql("SELECT count(*) FROM generated_images") == [(0,)]
    sbs = storyboard_rows(env, pid)
    chosen = [sbs[1][0], sbs[3][0]]
    rc, events, _ = env.run_json(pid, "--storyboard", chosen[0], "--storyboard", chosen[1],
                                 expect=0)
    check_envelope(events)
    assert project_id_of(events) == pid
    # The stage covers the whole project: 2 of 5 storyboards have images.
    check_order(events, "partial")
    done = events[-1]
    assert done["data"]["total_storyboards"] == 2
    assert done["data"]["success_count"] == 2
    assert done["data"]["failed_count"] == 0
    assert sorted(e["storyboard"]["id"] for e in events_of(events, "progress")) == \
        sorted(chosen)
    assert sorted(e["storyboard_id"] for e in events_of(events, "image_generated")) == \
        sorted(chosen)
    assert sorted(trace_starts(trace)) == sorted(chosen)
    rows = env.sql("SELECT storyboard_id, status FROM generated_images")
    assert sorted(rows) == sorted((c, "completed") for c in chosen)
    assert env.sql("SELECT status, total FROM runs") == [("completed", 2)]
    assert json.loads(env.sql("SELECT storyboard_ids FROM runs")[0][0]) == chosen
    assert stage_status(env, pid) == "partial"


def test_terminal_progress_bar_and_summary(env):
    p = env.project(["alpha", "beta", "gamma"])
    rc, out, err = run_pty(env, "run", p)
    assert rc == 0, (out, err)
    assert "[####" in out
    assert "3/3" in out
    (run_id,) = env.sql("SELECT id FROM runs")[0]
    assert f"run {run_id}: completed: 3 of 3 storyboards completed" in out
    paths = [r[0] for r in env.sql("SELECT file_path FROM generated_images")]
    assert len(paths) == 3
    for path in paths:
        assert path in out
    # Not NDJSON on a terminal.
    assert '"type"' not in out


def test_json_flag_on_terminal_gives_ndjson(env):
    p = env.project(["alpha", "beta"])
    rc, out, err = run_pty(env, "run", p, "--json")
    assert rc == 0, (out, err)
    lines = [line for line in out.replace("\r", "").split("\n") if line.strip()]
    events = [json.loads(line) for line in lines]
    check_envelope(events)
    assert events[-1]["type"] == "done"
    assert "[####" not in out


def test_piped_output_is_ndjson_without_json_flag(env):
    """stdout not a terminal: one event per line even without --json."""
    p = env.project(["alpha", "beta"])
    cp = env.t2i("run", p, check=0)
    lines = cp.stdout.splitlines()
    events = [json.loads(line) for line in lines]
    check_envelope(events)
    check_order(events, "completed")
    assert "\r" not in cp.stdout and "\033" not in cp.stdout
    assert '"type"' not in cp.stderr
    (run_id,) = env.sql("SELECT id FROM runs")[0]
    assert events[0]["run_id"] == run_id
