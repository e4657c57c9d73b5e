"""The command line: import, status, images, plugins, --help, --version and
usage errors."""

import json
import os
import re
import shutil
import subprocess
import uuid

import pytest

from conftest import BIN, DB_STATES, assert_refused, prepare_db

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
MISSING_ID = "6f1d2c3b-4a59-4e8d-9c7b-0a1b2c3d4e5f"
COMMANDS = ("run", "import", "status", "images", "retry", "plugins", "check-config")


def import_project(env, path):
    cp = env.t2i("import", path, check=0)
    return cp.stdout.strip()


def bare(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=60)


# ---- import ----

def test_import_prints_new_id_and_creates_exactly_the_project(env):
    before = prepare_db(env, "populated")
    path = env.project([
        "a red fox",
        {"image_prompt": "a blue whale", "negative_prompt": "text",
         "params": {"ratio": "9:16", "options": {"seed": 7}}},
        "a green frog",
    ], name="Import me", image_providers=["ok"], params={"resolution": "1k"})
    cp = env.t2i("import", path, check=0)
    assert cp.stderr == ""
    out = cp.stdout.splitlines()
    assert len(out) == 1 and UUID_RE.match(out[0]), cp.stdout
    pid = out[0]
    after = env.snapshot()
    changed = {t for t in after if after[t] != before[t]}
    # (storyboard_status and project_counts are the storyboards' status and
    # counts, kept by triggers.)
    assert changed == {"projects", "storyboards", "project_stages", "storyboard_status",
                       "project_counts"}
    assert env.sql("SELECT id, name, image_providers FROM projects WHERE id = ?", pid) == \
        [(pid, "Import me", '["ok"]')]
    assert json.loads(env.sql("SELECT params FROM projects WHERE id = ?", pid)[0][0]) == \
        {"resolution": "1k"}
    sbs = env.sql("SELECT position, image_prompt, negative_prompt, params FROM storyboards "
                  "WHERE project_id = ? ORDER BY position", pid)
    assert [(p, ip, np) for p, ip, np, _ in sbs] == [
        (1, "a red fox", ""), (2, "a blue whale", "text"), (3, "a green frog", "")]
    assert json.loads(sbs[1][3]) == {"ratio": "9:16", "options": {"seed": 7}}
    assert env.sql("SELECT stage_type, status FROM project_stages WHERE project_id = ?",
                   pid) == [("storyboard", "completed")]
    # Exactly one new project, three storyboards, one stage.
    for table, n in (("projects", 1), ("storyboards", 3), ("project_stages", 1)):
        assert len(after[table]) - len(before[table]) == n, table


def test_import_into_absent_database(env):
    pid = import_project(env, env.project(["a"]))
    assert env.sql("SELECT id FROM projects") == [(pid,)]
    assert env.sql("SELECT count(*) FROM runs") == [(0,)]
    assert env.sql("SELECT count(*) FROM generated_images") == [(0,)]


def test_import_keeps_explicit_ids_in_lower_case(env):
    pid, sid = str(uuid.uuid4()), str(uuid.uuid4())
    path = env.project([{"id": sid.upper(), "image_prompt": "a"}], id=pid.upper())
    assert import_project(env, path) == pid
    assert env.sql("SELECT id FROM storyboards WHERE project_id = ?", pid) == [(sid,)]


def test_import_processing_stage(env):
    pid = import_project(env, env.project(["a"], storyboard_stage="processing"))
    assert env.sql("SELECT status FROM project_stages WHERE project_id = ?", pid) == \
        [("processing",)]


def test_imported_project_runs_by_id(env):
    pid = import_project(env, env.project(["a", "b"]))
    rc, events, _ = env.run_json(pid, expect=0)
    assert {e["project_id"] for e in events} == {pid}


# ---- status ----

def test_status_all_and_one(env):
    p1 = import_project(env, env.project(["a", "b"], name="first"))
    p2 = import_project(env, env.project(["c", "d", "e"], name="second"))
    env.run_json(p1, expect=0)

    cp = env.t2i("status", check=0)
    assert p1 in cp.stdout and p2 in cp.stdout
    assert "first" in cp.stdout and "second" in cp.stdout

    cp = env.t2i("status", "--json", check=0)
    all_ = {p["id"]: p for p in json.loads(cp.stdout)}
    assert set(all_) == {p1, p2}
    assert all_[p1]["counts"]["storyboards"] == 2 and all_[p1]["counts"]["completed"] == 2
    assert all_[p2]["counts"]["storyboards"] == 3 and all_[p2]["counts"]["completed"] == 0
    assert all_[p2]["counts"]["not_started"] == 3

    cp = env.t2i("status", p1, "--json", check=0)
    one = json.loads(cp.stdout)
    assert one["id"] == p1 and one["name"] == "first"
    assert one["counts"] == {"storyboards": 2, "completed": 2, "failed": 0, "pending": 0,
                             "not_started": 0}
    stages = {s["stage_type"]: s["status"] for s in one["stages"]}
    assert stages == {"storyboard": "completed", "image_generation": "completed"}

    cp = env.t2i("status", p2, check=0)
    assert p2 in cp.stdout and "3 not started" in cp.stdout and p1 not in cp.stdout


def test_status_counts_failures(env):
    env.write_config(providers=['{ name = "error"; plugin = "error"; default = true; }'],
                     extra="retry = { attempts = 1; backoff = 0.0; backoff_max = 0.0; };")
    pid = import_project(env, env.project(["fine", "ERROR here"]))
    rc, _, _ = env.run_json(pid)
    assert rc == 3
    counts = json.loads(env.t2i("status", pid, "--json", check=0).stdout)["counts"]
    assert counts["storyboards"] == 2 and counts["completed"] == 1 and counts["failed"] == 1


@pytest.mark.parametrize("state", DB_STATES)
def test_status_of_unknown_project(env, state):
    before = prepare_db(env, state)
    cp = env.t2i("status", MISSING_ID, "--json")
    assert_refused(cp, MISSING_ID, "not found")
    assert env.snapshot() == before


def test_status_without_database_lists_no_project(env):
    cp = env.t2i("status", "--json", check=0)
    assert json.loads(cp.stdout) == [] and cp.stderr == ""
    cp = env.t2i("status", check=0)
    assert cp.stdout == "" and cp.stderr == ""
    assert env.snapshot() is None


def test_status_changes_nothing(env):
    before = prepare_db(env, "populated")
    env.t2i("status", "--json", check=0)
    assert env.snapshot() == before


# ---- images ----

def test_images_table_and_json(env):
    pid = import_project(env, env.project(["a", "b", {"image_prompt": "c",
                                                      "params": {"ratio": "1:1"}}]))
    env.run_json(pid, expect=0)
    cp = env.t2i("images", pid, "--json", check=0)
    images = json.loads(cp.stdout)
    assert len(images) == 3
    assert sorted(im["storyboard_index"] for im in images) == [1, 2, 3]
    for im in images:
        assert im["status"] == "completed"
        assert os.path.isfile(im["file_path"])
        assert im["file_size"] == os.path.getsize(im["file_path"]) > 0
        assert im["width"] > 0 and im["height"] > 0
    db_paths = sorted(r[0] for r in env.sql("SELECT file_path FROM generated_images"))
    assert sorted(im["file_path"] for im in images) == db_paths

    cp = env.t2i("images", pid, check=0)
    lines = cp.stdout.splitlines()
    assert len(lines) == 3
    for im in images:
        line = next(x for x in lines if im["file_path"] in x)
        assert str(im["file_size"]) in line.split()
        assert f"{im['width']}x{im['height']}" in line.replace(" ", "")


def test_images_before_any_run_is_empty(env):
    pid = import_project(env, env.project(["a"]))
    cp = env.t2i("images", pid, "--json", check=0)
    assert json.loads(cp.stdout) == []


@pytest.mark.parametrize("state", DB_STATES)
def test_images_of_unknown_project(env, state):
    before = prepare_db(env, state)
    for extra in ((), ("--json",)):
        cp = env.t2i("images", MISSING_ID, *extra)
        assert_refused(cp, MISSING_ID, "not found")
    assert env.snapshot() == before


def test_images_without_argument(env):
    cp = env.t2i("images")
    assert cp.returncode == 2
    assert "images" in cp.stderr and "usage:" in cp.stderr


# ---- plugins ----

def test_plugins_lists_every_plugin(env):
    gw = os.path.join(env.plugins, "gw.so")
    shutil.copy(os.path.join(env.plugins, "ok.so"), gw)
    os.chmod(gw, 0o775)
    # Not a plugin: no .so suffix.
    with open(os.path.join(env.plugins, "README"), "w") as f:
        f.write("not a plugin\n")
    cp = env.t2i("plugins", check=0)
    names = sorted(n[:-3] for n in os.listdir(env.plugins) if n.endswith(".so"))
    rows = {}
    for line in cp.stdout.splitlines()[1:]:
        parts = line.split(None, 2)
        rows[parts[0]] = (parts[1], parts[2] if len(parts) > 2 else "")
    assert sorted(rows) == names
    assert rows["ok"][0] == "ok" and rows["placeholder"][0] == "ok"
    assert rows["badabi"][0] == "refused" and "ABI version 999" in rows["badabi"][1]
    assert rows["nosym"][0] == "refused" and "generate_image" in rows["nosym"][1]
    assert rows["gw"][0] == "refused" and "writable by group or others" in rows["gw"][1]
    assert "README" not in cp.stdout
    assert env.snapshot() is None


def test_plugins_with_writable_dir(env):
    os.chmod(env.plugins, 0o777)
    cp = env.t2i("plugins")
    assert cp.returncode != 0
    assert "writable by group or others" in cp.stderr


# ---- help, version, usage errors ----

@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(flag):
    cp = bare(flag)
    assert cp.returncode == 0
    assert cp.stdout.startswith("usage: t2istage")
    for cmd in COMMANDS:
        assert cmd in cp.stdout
    assert cp.stderr == ""


def test_version():
    cp = bare("--version")
    assert cp.returncode == 0
    assert re.match(r"^t2istage \d+\.\d+\.\d+", cp.stdout)
    assert cp.stdout.count("\n") == 1 and cp.stderr == ""


def assert_usage_error(cp, *words):
    assert cp.returncode == 2, (cp.returncode, cp.stderr)
    assert cp.stdout == ""
    assert "usage: t2istage" in cp.stderr
    for w in words:
        assert w in cp.stderr


def test_no_command():
    assert_usage_error(bare())


def test_unknown_command(env):
    assert_usage_error(env.t2i("frobnicate"), "frobnicate")
    assert env.snapshot() is None


@pytest.mark.parametrize("args", [("--frobnicate", "status"), ("-x", "status"),
                                  ("status", "--frobnicate"), ("run", "x.json", "--jsn"),
                                  ("images", MISSING_ID, "--nope")])
def test_unknown_option(env, args):
    assert_usage_error(env.t2i(*args), args[0] if args[0].startswith("-") else
                       [a for a in args if a.startswith("-")][0])
    assert env.snapshot() is None


def test_c_without_file():
    assert_usage_error(bare("-c"))


@pytest.mark.parametrize("cmd", ["run", "import", "retry", "images"])
def test_command_without_argument(env, cmd):
    assert_usage_error(env.t2i(cmd), cmd)
    assert env.snapshot() is None


def test_run_with_two_targets(env):
    p = env.project(["a"])
    assert_usage_error(env.t2i("run", p, p), "unexpected argument")
    assert env.snapshot() is None


def test_storyboard_option_without_value(env):
    cp = env.t2i("run", env.project(["a"]), "--storyboard")
    assert cp.returncode == 2
    assert env.snapshot() is None


def test_run_prints_ndjson_when_not_a_terminal(env):
    cp = env.t2i("run", env.project(["a"]), check=0)
    events = [json.loads(x) for x in cp.stdout.splitlines()]
    assert events[-1]["type"] == "done"
