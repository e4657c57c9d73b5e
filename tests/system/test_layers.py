"""The layering check of HACKING.md (tools/check-layers): the tree passes it,
and it catches what it is there to catch."""
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHECK = os.path.join(ROOT, "tools", "check-layers")


def check(root):
    return subprocess.run(["/usr/bin/python3", CHECK, str(root)], capture_output=True, text=True)


def tree(tmp_path, files):
    for rel, text in files.items():
        p = tmp_path / "src" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return tmp_path


def test_the_tree_keeps_its_layers():
    cp = check(ROOT)
    assert cp.returncode == 0, cp.stdout


def test_a_worker_file_including_the_store_is_refused(tmp_path):
    root = tree(tmp_path, {"store/store.h": "", "store/store.c": '#include "store.h"\n',
                           "proc/worker.c": '#include "worker.h"\n\n#include "store.h"\n',
                           "proc/worker.h": ""})
    cp = check(root)
    assert cp.returncode == 1
    assert "src/proc/worker.c:3: proc may not include store/store.h" in cp.stdout


def test_an_include_circle_is_refused(tmp_path):
    root = tree(tmp_path, {"http/http.h": "", "http/api.h": "",
                           "http/http.c": '#include "http.h"\n#include "api.h"\n',
                           "http/api.c": '#include "api.h"\n#include "http.h"\n'})
    cp = check(root)
    assert cp.returncode == 1
    assert "include circle: api -> http -> api" in cp.stdout


def test_an_unknown_directory_or_header_is_refused(tmp_path):
    cp = check(tree(tmp_path, {"misc/x.c": ""}))
    assert cp.returncode == 1 and "src/misc" in cp.stdout
    cp = check(tree(tmp_path / "b", {"core/x.c": '#include "nowhere.h"\n'}))
    assert cp.returncode == 1 and "which is in no layer" in cp.stdout
