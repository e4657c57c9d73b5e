"""Refusals of run and retry: the original's four validation cases, --storyboard,
a run already processing, and importing twice.  Every refusal exits 2,
prints one line on stderr naming the cause and changes nothing in the
database, not even by creating it."""

import json
import os
import sqlite3
import subprocess
import uuid

import pytest

from conftest import DB_STATES, assert_refused, events_of, prepare_db

MISSING_ID = "6f1d2c3b-4a59-4e8d-9c7b-0a1b2c3d4e5f"


def image_files(env):
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(env.images) for f in fs)


def import_project(env, path):
    cp = env.t2i("import", path, check=0)
    return cp.stdout.strip()


def write_json(env, name, doc):
    path = os.path.join(env.path, name)
    with open(path, "w") as f:
        json.dump(doc, f)
    return path


def two_providers_no_default(env):
    env.write_config(providers=['{ name = "ok"; plugin = "ok"; }',
                                '{ name = "tiny"; plugin = "tiny"; }'])


# ---- project not found ----

@pytest.mark.parametrize("state", DB_STATES)
@pytest.mark.parametrize("cmd", ["run", "retry"])
def test_unknown_project_id_is_refused(env, state, cmd):
    before = prepare_db(env, state)
    cp = env.t2i(cmd, MISSING_ID, "--json")
    assert_refused(cp, MISSING_ID, "not found")
    assert env.snapshot() == before


@pytest.mark.parametrize("state", ["absent", "populated"])
def test_unknown_project_id_with_storyboard_filter_is_refused(env, state):
    before = prepare_db(env, state)
    cp = env.t2i("run", MISSING_ID, "--storyboard", str(uuid.uuid4()))
    assert_refused(cp, MISSING_ID, "not found")
    assert env.snapshot() == before


def test_upper_case_unknown_id_is_refused(env):
    before = prepare_db(env, "populated")
    cp = env.t2i("run", MISSING_ID.upper())
    assert_refused(cp, "not found")
    assert env.snapshot() == before


# ---- storyboard stage not completed ----

def test_storyboard_stage_processing_by_id_is_refused(env):
    pid = import_project(env, env.project(["a", "b"], storyboard_stage="processing"))
    assert env.sql("SELECT status FROM project_stages WHERE project_id = ? AND "
                   "stage_type = 'storyboard'", pid) == [("processing",)]
    before = env.snapshot()
    for cmd in ("run", "retry"):
        cp = env.t2i(cmd, pid, "--json")
        assert_refused(cp, pid, "storyboard stage", "processing", "not completed")
        assert env.snapshot() == before
    assert env.sql("SELECT count(*) FROM runs") == [(0,)]
    assert env.sql("SELECT count(*) FROM generated_images") == [(0,)]


@pytest.mark.parametrize("state", DB_STATES)
def test_storyboard_stage_processing_file_writes_nothing(env, state):
    before = prepare_db(env, state)
    files = image_files(env)
    pid = str(uuid.uuid4())
    path = env.project(["a", "b"], storyboard_stage="processing", id=pid)
    cp = env.t2i("run", path, "--json")
    assert_refused(cp, pid, "storyboard stage", "not completed")
    # Not even the project: the whole run, import included, is refused.
    assert env.snapshot() == before
    assert image_files(env) == files


def test_storyboard_stage_completed_explicitly_runs(env):
    rc, events, _ = env.run_json(env.project(["a"], storyboard_stage="completed"), expect=0)
    assert events[-1]["type"] == "done"


# ---- no storyboards ----

@pytest.mark.parametrize("state", DB_STATES)
def test_no_storyboards_file_is_refused(env, state):
    before = prepare_db(env, state)
    pid = str(uuid.uuid4())
    cp = env.t2i("run", env.project([], id=pid), "--json")
    assert_refused(cp, pid, "no storyboards")
    assert env.snapshot() == before


def test_no_storyboards_by_id_is_refused(env):
    pid = import_project(env, env.project([]))
    before = env.snapshot()
    cp = env.t2i("run", pid, "--json")
    assert_refused(cp, pid, "no storyboards")
    assert env.snapshot() == before


def test_retry_with_nothing_missing_is_refused(env):
    pid = import_project(env, env.project(["a", "b"]))
    env.run_json(pid, expect=0)
    before = env.snapshot()
    cp = env.t2i("retry", pid, "--json")
    assert_refused(cp, pid, "no storyboards")
    assert env.snapshot() == before


# ---- no provider ----

@pytest.mark.parametrize("state", DB_STATES)
def test_no_provider_configured_is_refused(env, state):
    before = prepare_db(env, state)
    env.write_config(providers=[])
    pid = str(uuid.uuid4())
    cp = env.t2i("run", env.project(["a"], id=pid), "--json")
    assert_refused(cp, pid, "no image provider")
    assert env.snapshot() == before


def test_no_provider_configured_by_id_is_refused(env):
    pid = import_project(env, env.project(["a"]))
    env.write_config(providers=[])
    before = env.snapshot()
    cp = env.t2i("run", pid, "--json")
    assert_refused(cp, pid, "no image provider")
    assert env.snapshot() == before


@pytest.mark.parametrize("state", DB_STATES)
def test_unknown_image_providers_without_default_is_refused(env, state):
    before = prepare_db(env, state)
    two_providers_no_default(env)
    pid = str(uuid.uuid4())
    path = env.project(["a"], id=pid, image_providers=["nope", "nada"])
    cp = env.t2i("run", path, "--json")
    assert_refused(cp, pid, "no image provider")
    # The provider mirror of the new config is part of what is rolled back.
    assert env.snapshot() == before


def test_unknown_image_providers_without_default_by_id_is_refused(env):
    pid = import_project(env, env.project(["a"], image_providers=["nope"]))
    two_providers_no_default(env)
    before = env.snapshot()
    cp = env.t2i("run", pid)
    assert_refused(cp, pid, "no image provider")
    assert env.snapshot() == before


def test_no_image_providers_and_no_default_is_refused(env):
    two_providers_no_default(env)
    cp = env.t2i("run", env.project(["a"]))
    assert_refused(cp, "no image provider")
    assert env.snapshot() is None


def test_unknown_image_providers_fall_back_to_default(env):
    env.write_config(providers=['{ name = "tiny"; plugin = "tiny"; }',
                                '{ name = "ok"; plugin = "ok"; default = true; }'])
    path = env.project(["a", "b"], image_providers=["nope", "nada"])
    rc, events, _ = env.run_json(path, expect=0)
    assert events[-1]["type"] == "done" and events[-1]["data"]["success_count"] == 2
    used = env.sql("SELECT DISTINCT m.name FROM generated_images g "
                   "JOIN model_providers m ON m.id = g.model_provider_id")
    assert used == [("ok",)]


def test_known_image_provider_wins_over_default(env):
    env.write_config(providers=['{ name = "tiny"; plugin = "tiny"; }',
                                '{ name = "ok"; plugin = "ok"; default = true; }'])
    path = env.project(["a"], image_providers=["nope", "tiny"])
    env.run_json(path, expect=0)
    used = env.sql("SELECT DISTINCT m.name FROM generated_images g "
                   "JOIN model_providers m ON m.id = g.model_provider_id")
    assert used == [("tiny",)]


# ---- --storyboard ----

def storyboard_ids(env, pid):
    return [r[0] for r in env.sql(
        "SELECT id FROM storyboards WHERE project_id = ? ORDER BY position", pid)]


@pytest.mark.parametrize("bad", [str(uuid.uuid4()), "not-a-uuid", "12345", ""])
def test_storyboard_not_in_project_by_id_is_refused(env, bad):
    pid = import_project(env, env.project(["a", "b"]))
    good = storyboard_ids(env, pid)[0]
    before = env.snapshot()
    cp = env.t2i("run", pid, "--storyboard", good, "--storyboard", bad, "--json")
    line = assert_refused(cp, pid)
    assert f"storyboard {bad} " in line
    assert env.snapshot() == before


@pytest.mark.parametrize("state", DB_STATES)
def test_storyboard_not_in_project_file_is_refused(env, state):
    before = prepare_db(env, state)
    sid = str(uuid.uuid4())
    path = env.project([{"id": sid, "image_prompt": "a"}])
    bad = str(uuid.uuid4())
    cp = env.t2i("run", path, "--storyboard", sid, "--storyboard=" + bad)
    assert_refused(cp, bad, "not in project")
    assert env.snapshot() == before


def test_storyboard_of_another_project_is_refused(env):
    p1 = import_project(env, env.project(["a"]))
    p2 = import_project(env, env.project(["b"]))
    other = storyboard_ids(env, p2)[0]
    before = env.snapshot()
    cp = env.t2i("run", p1, "--storyboard", other)
    assert_refused(cp, other, p1)
    assert env.snapshot() == before


def test_storyboard_filter_runs_only_the_chosen(env):
    pid = import_project(env, env.project(["a", "b", "c"]))
    ids = storyboard_ids(env, pid)
    rc, events, _ = env.run_json(pid, "--storyboard", ids[1], expect=0)
    assert events[-1]["data"]["total_storyboards"] == 1
    done = env.sql("SELECT storyboard_id FROM generated_images WHERE status = 'completed'")
    assert done == [(ids[1],)]


# ---- a run already processing ----

def sql_write(env, query, *params):
    con = sqlite3.connect(env.db)
    try:
        con.execute(query, params)
        con.commit()
    finally:
        con.close()


def add_run(env, pid, status, proc_pid):
    run_id = str(uuid.uuid4())
    sql_write(env, "INSERT INTO runs (id, project_id, status, total, pid, started_at) "
              "VALUES (?, ?, ?, 1, ?, '2024-01-01T00:00:00.000Z')",
              run_id, pid, status, proc_pid)
    return run_id


def dead_pid():
    p = subprocess.Popen(["true"])
    p.wait()
    try:
        os.kill(p.pid, 0)
    except ProcessLookupError:
        return p.pid
    pytest.skip("pid of a finished child already reused")


@pytest.mark.parametrize("cmd", ["run", "retry"])
def test_run_already_processing_is_refused(env, cmd):
    pid = import_project(env, env.project(["a", "b"]))
    add_run(env, pid, "processing", os.getpid())
    before = env.snapshot()
    cp = env.t2i(cmd, pid, "--json")
    assert_refused(cp, pid, "already processing")
    assert env.snapshot() == before


def test_stale_run_of_dead_process_is_interrupted_and_new_run_proceeds(env):
    pid = import_project(env, env.project(["a", "b"]))
    stale = add_run(env, pid, "processing", dead_pid())
    rc, events, _ = env.run_json(pid, expect=0)
    assert events[-1]["type"] == "done" and events[-1]["data"]["success_count"] == 2
    assert env.sql("SELECT status FROM runs WHERE id = ?", stale) == [("interrupted",)]
    others = env.sql("SELECT status FROM runs WHERE id <> ?", stale)
    assert others == [("completed",)]


def test_stale_run_without_pid_is_interrupted(env):
    pid = import_project(env, env.project(["a"]))
    stale = add_run(env, pid, "processing", None)
    env.run_json(pid, expect=0)
    assert env.sql("SELECT status FROM runs WHERE id = ?", stale) == [("interrupted",)]


def test_processing_run_of_another_project_does_not_block(env):
    p1 = import_project(env, env.project(["a"]))
    p2 = import_project(env, env.project(["b"]))
    add_run(env, p2, "processing", os.getpid())
    env.run_json(p1, expect=0)


def test_finished_runs_do_not_block(env):
    pid = import_project(env, env.project(["a"]))
    for status in ("completed", "failed", "partial", "interrupted"):
        add_run(env, pid, status, os.getpid())
    rc, events, _ = env.run_json(pid, "--no-cache", expect=0)
    assert events_of(events, "image_generated")


# ---- importing twice ----

def test_import_same_explicit_id_twice_is_refused(env):
    pid = str(uuid.uuid4())
    path = env.project(["a", "b"], id=pid)
    assert import_project(env, path) == pid
    before = env.snapshot()
    cp = env.t2i("import", path)
    assert_refused(cp, pid, "already exists")
    assert env.snapshot() == before


def test_import_same_id_with_other_content_is_refused(env):
    pid = str(uuid.uuid4())
    import_project(env, env.project(["a"], id=pid, name="first"))
    before = env.snapshot()
    cp = env.t2i("import", env.project(["x", "y", "z"], id=pid, name="second"))
    assert_refused(cp, pid, "already exists")
    assert env.snapshot() == before


def test_run_file_whose_id_exists_is_refused(env):
    pid = str(uuid.uuid4())
    path = env.project(["a"], id=pid)
    import_project(env, path)
    before = env.snapshot()
    cp = env.t2i("run", path, "--json")
    assert_refused(cp, pid, "already exists")
    assert env.snapshot() == before


def test_import_without_id_twice_makes_two_projects(env):
    path = env.project(["a"])
    a = import_project(env, path)
    b = import_project(env, path)
    assert a != b
    assert env.sql("SELECT count(*) FROM projects") == [(2,)]


@pytest.mark.parametrize("target", ["1234", "not-a-project", MISSING_ID[:-1]])
def test_malformed_target_is_refused(env, target):
    before = prepare_db(env, "populated")
    cp = env.t2i("run", target, "--json")
    assert_refused(cp, target)
    assert env.snapshot() == before
