"""Failure injection through the real binary, with tests/helpers/failinject.c
preloaded: every allocation of the project file's reading and parsing fails
once in turn, and fsync() fails while an image is stored.  Each ends in a
clear error and leaves nothing half-written: no project half-imported, no
image row without its file, no file without its row, and PRAGMA
integrity_check ok."""

import json
import os
import sqlite3
import subprocess

import pytest

from conftest import BIN, BUILD, NO_RETRY, events_of, provider_conf

FAILINJECT = os.path.join(BUILD, "tests", "helpers", "failinject.so")


def sanitized():
    """ASan must be the first library loaded and owns malloc: a preloaded
    malloc cannot sit beside it."""
    out = subprocess.run(["ldd", BIN], capture_output=True, text=True).stdout
    return "libasan" in out or "libubsan" in out


pytestmark = pytest.mark.skipif(sanitized(), reason="the binary is built with ASan, which "
                                "must come first and owns malloc: nothing can be preloaded")


def integrity_ok(db):
    con = sqlite3.connect(db)
    try:
        return con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        con.close()


def rows(env, query):
    return env.sql(query) if os.path.exists(env.db) else []


def project_file(env):
    """Every kind of member the parser allocates for: ids, providers,
    params with options, negative prompts, several storyboards."""
    return env.project(
        [{"id": "6f1c2a4e-8d2b-4c1a-9e3f-0a1b2c3d4e5f", "image_prompt": "a lighthouse",
          "negative_prompt": "blurry", "params": {"ratio": "1:1", "options": {"seed": 7}}},
         "a keeper trims the wick", {"image_prompt": "the storm", "params": {"resolution": "1k"}},
         "dawn over the sea"],
        name="alloc", image_providers=["ok"],
        params={"ratio": "16:9", "options": {"style": "ink", "steps": [1, 2]}})


@pytest.mark.parametrize("command", ["import", "run"])
def test_each_allocation_of_the_project_parser_fails(env, command):
    path = project_file(env)
    report = os.path.join(env.path, "failalloc")
    n = 0
    while True:
        n += 1
        assert n < 5000, "the window never ended"
        cp = env.t2i(command, path, env={
            "LD_PRELOAD": FAILINJECT, "T2I_FAILALLOC_FILE": path,
            "T2I_FAILALLOC_UNTIL": "/" + os.path.basename(env.db),
            "T2I_FAILALLOC_N": str(n), "T2I_FAILALLOC_REPORT": report})
        with open(report) as f:
            seen, failed = (int(x) for x in f.read().split())
        if not failed:
            break
        # A clear error, one line naming the file (or the store) and the
        # cause; no crash; nothing written.
        assert cp.returncode in (1, 2), (n, cp.returncode, cp.stderr)
        lines = cp.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("t2istage: "), (n, cp.stderr)
        assert "out of memory" in lines[0] or "Cannot allocate memory" in lines[0], (n, lines)
        assert path in lines[0] or os.path.basename(path) in lines[0] or \
            env.db in lines[0], (n, lines)
        if os.path.exists(env.db):
            assert integrity_ok(env.db)
            assert rows(env, "SELECT count(*) FROM projects") == [(0,)], n
            assert rows(env, "SELECT count(*) FROM storyboards") == [(0,)], n
    # Every allocation in the window was failed once, and then it succeeded.
    assert n == seen + 1 and seen > 50, (n, seen)
    assert cp.returncode == 0, cp.stderr
    assert env.sql("SELECT count(*) FROM storyboards") == [(4,)]
    assert integrity_ok(env.db)


def files_under(d):
    out = set()
    for root, _, names in os.walk(d):
        out.update(os.path.join(root, n) for n in names)
    return out


def test_fsync_failure_while_an_image_is_stored(env):
    env.write_config(providers=[provider_conf("ok")], extra=NO_RETRY)
    path = env.project(["one", "two", "three"])
    os.makedirs(env.images, exist_ok=True)
    cp = env.t2i("run", path, "--json",
                 env={"LD_PRELOAD": FAILINJECT, "T2I_FAILFSYNC_DIR": env.images})
    events = [json.loads(line) for line in cp.stdout.splitlines() if line.strip()]
    assert cp.returncode == 1, (cp.returncode, cp.stderr[-2000:])   # nothing completed
    # A failure of ours, not the provider's: the run stops dispatching and
    # leaves the storyboards it did not reach pending for retry.
    errors = events_of(events, "error")
    assert 1 <= len(errors) <= 3
    done = events_of(events, "done")
    assert len(done) == 1 and "run stopped" in done[0]["message"], done
    for e in errors:
        # The call, the file and errno's words.
        text = json.dumps(e)
        assert "fsync" in text and "Input/output error" in text, e
        assert env.images in text, e
    # Nothing half-written: no row claims a file, no file is left behind.
    assert env.sql("SELECT count(*) FROM generated_images WHERE status = 'completed'"
                   " OR file_path IS NOT NULL") == [(0,)]
    assert files_under(env.images) == set()
    assert integrity_ok(env.db)

    # Without the fault the same storyboards complete, each row with its
    # file and each file with its row.
    cp = env.t2i("run", path, "--json", check=0)
    stored = {p for (p,) in env.sql("SELECT file_path FROM generated_images"
                                    " WHERE status = 'completed'")}
    assert len(stored) == 3 and stored == files_under(env.images)
    assert integrity_ok(env.db)
