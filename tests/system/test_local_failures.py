"""Local failures are never paid for again: the image storage on a full disk (a small tmpfs
this test mounts) with two providers, and the database on a full disk, through the real
binary.  A storyboard whose image was made but could not be stored is not retried at the
provider nor failed over; the run stops dispatching, names the path and errno once, and
leaves the rest pending; the database's own failure keeps its cause and still ends the run
with `done`."""

import json
import os
import shutil
import sqlite3
import subprocess

import pytest

from conftest import events_of, generation_requests, http_provider, project_id_of


@pytest.fixture
def tmpfs(tmp_path):
    """mount(size) -> a directory on a tmpfs of that size, unmounted at the end; the test
    is skipped, with the reason, where this machine cannot mount one."""
    mounted = []

    def mount(size):
        d = str(tmp_path / f"tmpfs{len(mounted)}")
        os.makedirs(d)
        cp = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", d],
                            capture_output=True, text=True)
        if cp.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {cp.stderr.strip() or cp.returncode}")
        mounted.append(d)
        return d

    try:
        yield mount
    finally:
        for d in mounted:
            subprocess.run(["umount", "-l", d], capture_output=True)


def fill(directory, leave=0):
    """Writes a file into directory until only about leave bytes are free (none: until
    the filesystem refuses)."""
    st = os.statvfs(directory)
    left = st.f_bavail * st.f_frsize - leave
    fd = os.open(os.path.join(directory, "filler"), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while leave == 0 or left > 0:
            n = os.write(fd, b"\0" * (4096 if leave == 0 else min(left, 65536)))
            left -= n
    except OSError:
        pass
    finally:
        os.close(fd)


def integrity(db):
    con = sqlite3.connect(db)
    try:
        return con.execute("PRAGMA integrity_check").fetchall()
    finally:
        con.close()


def sbs(n):
    return [{"image_prompt": f"stored shot {i}", "params": {"ratio": "1:1", "resolution": "1k"}}
            for i in range(n)]


def test_full_storage_costs_one_request_and_stops_the_run(env, fake, tmpfs):
    images = tmpfs("256k")
    fill(images)
    env.images = images
    fake.control({"latency_ms": 100})
    env.write_config(providers=[
        http_provider("a", "openai", fake.openai_url, model="gpt-image-1", default=False),
        http_provider("b", "jimeng", fake.jimeng_url, model="jimeng-4.0")],
        workers_max=3, batch_size=2)
    rc, events, cp = env.run_json(env.project(sbs(9), image_providers=["a", "b"]), expect=1)
    # Each request the fake saw is one storyboard's: none was asked twice, on either provider.
    prompts = [r["body"]["prompt"] for r in generation_requests(fake)]
    assert len(prompts) == len(set(prompts)) and 1 <= len(prompts) <= 3, prompts
    (err,) = events_of(events, "error")
    assert images in err["error"] and "(ENOSPC)" in err["error"], err
    assert "No space left on device" in err["error"], err
    assert not [w for w in events if w["type"] == "warning" and "moving to" in w["message"]]
    done = events[-1]
    assert done["type"] == "done" and done["success"] is False
    assert done["message"].startswith("run stopped: ") and "left pending" in done["message"]
    pid = project_id_of(events)
    statuses = [s for (s,) in env.sql(
        "SELECT g.status FROM generated_images g JOIN storyboards s ON s.id = g.storyboard_id"
        " WHERE s.project_id = ? AND g.is_primary = 1", pid)]
    assert statuses.count("failed") == 1 and statuses.count("pending") >= 6, statuses
    assert integrity(env.db) == [("ok",)]
    # Room again: `retry` sends the rest, each once.
    os.remove(os.path.join(images, "filler"))
    env.t2i("retry", pid, "--json", check=0)
    prompts = [r["body"]["prompt"] for r in generation_requests(fake)]
    assert sorted(set(prompts)) == sorted(s["image_prompt"] for s in sbs(9))


def test_a_full_database_keeps_its_cause_and_ends_the_run(env, tmpfs):
    d = tmpfs("1m")
    env.db = os.path.join(d, "t2istage.db")
    env.write_config(providers=['{ name = "ok"; plugin = "ok"; default = true; }'],
                     workers_max=2, batch_size=1)
    pid = env.t2i("import", env.project([f"shot {i} with a long prompt " + "x" * 400
                                         for i in range(60)]), check=0).stdout.strip()
    fill(d, leave=160 * 1024)
    cp = env.t2i("run", pid, "--json")
    events = [json.loads(line) for line in cp.stdout.splitlines() if line]
    assert cp.returncode == 1, (cp.returncode, cp.stderr[-2000:])
    assert "cannot rollback" not in cp.stderr, cp.stderr[-2000:]
    errors = [e["error"] for e in events_of(events, "error")]
    assert any("database or disk is full (SQLITE_FULL)" in e and env.db in e for e in errors), \
        (errors, cp.stderr[-2000:])
    assert events[-1]["type"] == "done" and events[-1]["success"] is False, events[-3:]
    print(cp.stderr[-3000:]); print(events[-4:])
    os.remove(os.path.join(d, "filler"))
    assert integrity(env.db) == [("ok",)]
    shutil.rmtree(os.path.join(env.path, "var"), ignore_errors=True)


def test_read_only_storage_is_local_too(env, fake, tmpfs):
    images = tmpfs("1m")
    cp = subprocess.run(["mount", "-o", "remount,ro", images], capture_output=True, text=True)
    if cp.returncode != 0:
        pytest.skip(f"cannot remount the tmpfs read-only: {cp.stderr.strip()}")
    env.images = images
    env.write_config(providers=[http_provider("a", "openai", fake.openai_url,
                                              model="gpt-image-1")], workers_max=1, batch_size=3)
    rc, events, _ = env.run_json(env.project(sbs(3)), expect=1)
    assert len(generation_requests(fake)) == 1
    (err,) = events_of(events, "error")
    assert images in err["error"] and "(EROFS)" in err["error"], err
    assert events[-1]["type"] == "done"
