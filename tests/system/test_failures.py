"""Misbehaving plugins: each failure costs only its own storyboard; the run
ends partial (exit 3) or failed (exit 1) with the cause in error events and
in the generated_images rows."""

import os

import pytest

import re

from conftest import (NO_RETRY, events_of, png_size, project_id_of, provider_conf,
                      read_trace, run_pty, stage_status, storyboard_rows)


def configure(env, plugin, timeout=30.0, batch_size=3, workers_max=4, **options):
    trace = os.path.join(env.path, "trace")
    env.write_config(providers=[provider_conf("p", plugin, trace=trace, **options)],
                     timeout=timeout, batch_size=batch_size, workers_max=workers_max,
                     extra=NO_RETRY)
    return trace


def check_seq(events):
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "done"
    assert events[-2]["type"] == "stage_update"


def by_index(env, events):
    """{position: storyboard id} of the run's project."""
    return {pos: sid for sid, pos, _ in storyboard_rows(env, project_id_of(events))}


def check_partial(env, events, failed, cause):
    """failed: {position: storyboard id} expected to fail, each with cause in
    its error event and its row; every other storyboard completed."""
    ids = by_index(env, events)
    errors = events_of(events, "error")
    assert sorted(e["storyboard_id"] for e in errors) == sorted(failed.values())
    for e in errors:
        assert cause in e["error"], e
    gen = events_of(events, "image_generated")
    ok_ids = sorted(sid for pos, sid in ids.items() if pos not in failed)
    assert sorted(e["storyboard_id"] for e in gen) == ok_ids
    for e in gen:
        assert png_size(e["image"]["file_path"]) == (e["image"]["width"], e["image"]["height"])
    done = events[-1]
    assert done["data"]["total_storyboards"] == len(ids)
    assert done["data"]["success_count"] == len(ok_ids)
    assert done["data"]["failed_count"] == len(failed)
    assert done["data"]["generated_image_ids"] == [e["image"]["id"] for e in gen]
    assert done["success"] is True
    assert done["stage"]["status"] == "partial"
    pid = project_id_of(events)
    assert stage_status(env, pid) == "partial"
    assert env.sql("SELECT status, success_count, failed_count FROM runs") == [
        ("partial", len(ok_ids), len(failed))]
    for sid in failed.values():
        rows = env.sql("SELECT status, error, file_path FROM generated_images"
                       " WHERE storyboard_id = ?", sid)
        assert len(rows) == 1
        status, error, path = rows[0]
        assert status == "failed"
        assert cause in error
        assert path is None
    for sid in ok_ids:
        assert env.sql("SELECT status FROM generated_images WHERE storyboard_id = ?"
                       " AND is_primary = 1", sid) == [("completed",)]


def test_done_when_crash_and_hang_in_one_run(env):
    """The issue's scenario: combo crashes on one storyboard and hangs on
    another in a run of 8; the other 6 complete, the run is partial."""
    configure(env, "combo", timeout=1.0)
    prompts = ["one", "two CRASH", "three", "four", "five HANG", "six", "seven", "eight"]
    rc, events, cp = env.run_json(env.project(prompts))
    assert rc == 3, (cp.stdout[-2000:], cp.stderr[-2000:])
    check_seq(events)
    ids = by_index(env, events)
    errors = {e["storyboard_id"]: e["error"] for e in events_of(events, "error")}
    assert set(errors) == {ids[2], ids[5]}
    assert "worker crashed: signal 11" in errors[ids[2]]
    assert "timed out after 1 s" in errors[ids[5]]
    gen = events_of(events, "image_generated")
    assert sorted(e["storyboard_id"] for e in gen) == sorted(
        ids[i] for i in (1, 3, 4, 6, 7, 8))
    done = events[-1]
    assert (done["data"]["success_count"], done["data"]["failed_count"]) == (6, 2)
    assert done["data"]["total_storyboards"] == 8
    assert stage_status(env, project_id_of(events)) == "partial"
    assert env.sql("SELECT status FROM runs") == [("partial",)]
    rows = dict(env.sql("SELECT storyboard_id, error FROM generated_images"
                        " WHERE status = 'failed'"))
    assert set(rows) == {ids[2], ids[5]}
    assert "worker crashed: signal 11" in rows[ids[2]]
    assert "timed out after 1 s" in rows[ids[5]]
    assert env.sql("SELECT count(*) FROM generated_images WHERE status = 'completed'") == [(6,)]


# plugin, trigger word, cause in the error event, whether the worker dies
CASES = [
    ("crash", "CRASH", "worker crashed: signal 11", True),
    ("hang", "HANG", "timed out after 1 s", True),
    ("exit", "EXIT", "worker exited before finishing its batch", True),
    ("garbage", "GARBAGE", "bad message from worker", True),
    ("error", "ERROR", "error plugin: refused prompt", False),
    ("combo", "ERROR", "combo plugin: refused prompt", False),
]


@pytest.mark.parametrize("plugin,trigger,cause,dies", CASES, ids=[c[0] for c in CASES])
def test_failure_costs_only_its_storyboard(env, plugin, trigger, cause, dies):
    """Three storyboards in one batch; the middle one misbehaves.  The first
    and the last (its batch mates) complete.  (One worker: with more, the
    three would be spread over several.)"""
    trace = configure(env, plugin, timeout=1.0, batch_size=3, workers_max=1)
    rc, events, cp = env.run_json(env.project(["first", f"second {trigger}", "third"]))
    assert rc == 3, (cp.stdout[-2000:], cp.stderr[-2000:])
    check_seq(events)
    ids = by_index(env, events)
    check_partial(env, events, {2: ids[2]}, cause)
    starts = {}
    for ev, pid, sid, _ns in read_trace(trace):
        if ev == "start":
            starts.setdefault(sid, []).append(pid)
    # One attempt each; the three were one batch, so one worker began them
    # all, unless it died at the second and the third went to a new one.
    assert set(starts) == {ids[1], ids[2], ids[3]}
    assert len(starts[ids[1]]) == 1 and len(starts[ids[2]]) == 1
    assert starts[ids[1]] == starts[ids[2]]
    if dies:
        # (A garbage-writing worker may get to begin the third storyboard
        # before its kill lands; that start never counts.)
        assert starts[ids[3]][-1] != starts[ids[2]][0]
        assert len(starts[ids[3]]) <= 2
    else:
        assert starts[ids[3]] == starts[ids[2]]
    (row,) = env.sql("SELECT attempts FROM generated_images WHERE storyboard_id = ?", ids[3])
    assert row == (1,)


def test_failure_in_several_batches(env):
    """Crashes in two different batches of a larger run: the untouched
    storyboards of each crashed batch go to new workers and complete."""
    trace = configure(env, "crash", batch_size=3, workers_max=2)
    prompts = ["a", "b CRASH", "c", "d CRASH", "e", "f", "g", "h CRASH"]
    rc, events, _ = env.run_json(env.project(prompts))
    assert rc == 3
    ids = by_index(env, events)
    check_partial(env, events, {2: ids[2], 4: ids[4], 8: ids[8]}, "worker crashed: signal 11")
    started = [t[2] for t in read_trace(trace) if t[0] == "start"]
    assert sorted(started) == sorted(ids.values())   # each storyboard tried once


@pytest.mark.parametrize("plugin,words", [
    ("badabi", ["symbol t2i_plugin", "ABI version 999", "badabi.so"]),
    ("nosym", ["generate_image", "nosym.so"]),
])
def test_unloadable_plugin_fails_every_storyboard(env, plugin, words):
    trace = configure(env, plugin, batch_size=2)
    rc, events, cp = env.run_json(env.project(["a", "b", "c", "d", "e"]))
    assert rc == 1, (cp.stdout[-2000:], cp.stderr[-2000:])
    check_seq(events)
    ids = by_index(env, events)
    errors = events_of(events, "error")
    assert sorted(e["storyboard_id"] for e in errors) == sorted(ids.values())
    for e in errors:
        for w in words:
            assert w in e["error"], (w, e)
    assert not events_of(events, "image_generated")
    done = events[-1]
    assert done["success"] is False
    assert done["data"]["success_count"] == 0
    assert done["data"]["failed_count"] == 5
    assert done["data"]["generated_image_ids"] == []
    assert done["stage"]["status"] == "failed"
    assert stage_status(env, project_id_of(events)) == "failed"
    assert env.sql("SELECT status FROM runs") == [("failed",)]
    rows = env.sql("SELECT status, error FROM generated_images")
    assert len(rows) == 5
    for status, error in rows:
        assert status == "failed"
        for w in words:
            assert w in error
    assert read_trace(trace) == []      # no plugin code ever ran


def test_all_storyboards_failing_is_failed(env):
    configure(env, "error", always=True)
    rc, events, _ = env.run_json(env.project(["a", "b", "c", "d"]))
    assert rc == 1
    check_seq(events)
    assert len(events_of(events, "error")) == 4
    assert not events_of(events, "image_generated")
    done = events[-1]
    assert done["success"] is False
    assert done["data"]["success_count"] == 0
    assert done["data"]["failed_count"] == 4
    assert done["stage"]["status"] == "failed"
    assert events[-2]["stage"]["status"] == "failed"
    assert stage_status(env, project_id_of(events)) == "failed"
    assert env.sql("SELECT status, success_count, failed_count FROM runs") == [
        ("failed", 0, 4)]
    assert env.sql("SELECT DISTINCT status FROM generated_images") == [("failed",)]


def test_every_storyboard_crashing_still_ends(env):
    """A plugin that kills every worker: the run still ends (failed), one
    attempt per storyboard."""
    trace = configure(env, "crash", batch_size=3)
    rc, events, _ = env.run_json(env.project([f"{c} CRASH" for c in "abcdefg"]))
    assert rc == 1
    assert len(events_of(events, "error")) == 7
    for e in events_of(events, "error"):
        assert "worker crashed: signal 11" in e["error"]
    assert events[-1]["success"] is False
    assert len([t for t in read_trace(trace) if t[0] == "start"]) == 7


def test_terminal_summary_of_a_partial_run(env):
    """On a terminal the summary lists every storyboard by its position,
    failures with their cause, and exit status 3."""
    configure(env, "combo")
    rc, out, err = run_pty(env, "run", env.project(["a", "b CRASH", "c ERROR", "d"]))
    assert rc == 3, (out, err)
    (run_id,) = env.sql("SELECT id FROM runs")[0]
    assert f"run {run_id}: partial: 2 of 4 storyboards completed, 2 failed" in out
    summary = out[out.index(f"run {run_id}:"):].replace("\r", "").splitlines()[1:]
    rows = [re.match(r"\s*#(\d+)\s+(.*)$", line) for line in summary]
    assert all(rows), summary
    assert [int(m.group(1)) for m in rows] == [1, 2, 3, 4]
    text = {int(m.group(1)): m.group(2) for m in rows}
    assert text[2].startswith("FAILED") and "worker crashed: signal 11" in text[2]
    assert text[3].startswith("FAILED") and "combo plugin: refused prompt" in text[3]
    paths = dict(env.sql("SELECT s.position, g.file_path FROM generated_images g"
                         " JOIN storyboards s ON s.id = g.storyboard_id"
                         " WHERE g.status = 'completed'"))
    assert paths[1] in text[1] and paths[4] in text[4]
    assert "ok 2  failed 2" in out
