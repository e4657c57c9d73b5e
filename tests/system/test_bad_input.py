"""Bad project files given to `run FILE` and `import FILE`: each is refused
whole with exit status 2 and one line naming the file, the storyboard (when
the fault is inside one) and the field; nothing reaches the database, which
is not even created when it did not exist."""

import json
import os
import uuid

import pytest

from conftest import DB_STATES, assert_refused, prepare_db

SB1 = str(uuid.uuid4())
SB2 = str(uuid.uuid4())
PROMPT_MAX = 8192
FILE_MAX = 32 * 1024 * 1024


def doc(*storyboards, **top):
    d = {"name": "bad", "storyboards": list(storyboards)}
    d.update(top)
    return d


def good(prompt="a lighthouse at dusk", **kw):
    sb = {"image_prompt": prompt}
    sb.update(kw)
    return sb


def js(d):
    return json.dumps(d, indent=2)


# (case id, file text, substrings of the one error line).  Each storyboard
# fault sits in storyboard 2 behind a good storyboard 1, so that a message
# naming the wrong storyboard, or a half import of storyboard 1, is caught.
CASES = [
    ("not-json", "this is not json", ["invalid JSON", ":1:"]),
    ("empty-file", "", ["invalid JSON"]),
    ("truncated", js(doc(good()))[:-3], ["invalid JSON"]),
    ("trailing-garbage", js(doc(good())) + "\nxyz\n", ["invalid JSON", "end of file expected"]),
    ("second-document", js(doc(good())) + js(doc(good())), ["invalid JSON"]),
    ("top-level-array", js([doc(good())]), ["top level", "array"]),
    ("top-level-string", '"hello"', ["top level", "string"]),
    ("missing-storyboards", js({"name": "x"}), ["storyboards", "missing"]),
    ("storyboards-object", js({"storyboards": {"image_prompt": "a"}}),
     ["storyboards", "expected an array"]),
    ("storyboard-not-object", js(doc(good(), "a prompt")),
     ["storyboard 2", "expected an object"]),
    ("empty-prompt", js(doc(good(), good(""))), ["storyboard 2", "image_prompt", "empty"]),
    ("missing-prompt", js(doc(good(), {"negative_prompt": "x"})),
     ["storyboard 2", "image_prompt", "missing"]),
    ("whitespace-prompt", js(doc(good(), good(" \t\n  \r"))),
     ["storyboard 2", "image_prompt", "empty"]),
    ("null-prompt", js(doc(good(), good(None))), ["storyboard 2", "image_prompt"]),
    ("number-prompt", js(doc(good(), good(42))),
     ["storyboard 2", "image_prompt", "expected a string", "number"]),
    ("nul-in-prompt", js(doc(good(), good("a\u0000b"))), ["storyboard 2", "image_prompt", "NUL"]),
    ("number-negative-prompt", js(doc(good(), good(negative_prompt=7))),
     ["storyboard 2", "negative_prompt"]),
    ("ratio-project", js(doc(good(), params={"ratio": "5:4"})), ["params.ratio", "5:4"]),
    ("ratio-storyboard", js(doc(good(), good(params={"ratio": "5:4"}))),
     ["storyboard 2", "params.ratio", "5:4"]),
    ("resolution-project", js(doc(good(), params={"resolution": "8k"})),
     ["params.resolution", "8k"]),
    ("resolution-storyboard", js(doc(good(), good(params={"resolution": "8k"}))),
     ["storyboard 2", "params.resolution", "8k"]),
    ("ratio-number", js(doc(good(), good(params={"ratio": 1.5}))),
     ["storyboard 2", "params.ratio"]),
    ("params-unknown-key", js(doc(good(), good(params={"size": "big"}))),
     ["storyboard 2", "params", "size"]),
    ("options-not-object", js(doc(good(), good(params={"options": [1]}))),
     ["storyboard 2", "params.options"]),
    ("duplicate-storyboard-ids",
     js(doc(good(id=SB1), good(id=SB2), good(id=SB1.upper()))),
     ["storyboard 3", SB1, "id", "duplicate of storyboard 1"]),
    ("duplicate-json-key-storyboard",
     '{"name": "x", "storyboards": [\n {"image_prompt": "a"},\n'
     ' {"image_prompt": "b", "image_prompt": "c"}\n]}\n',
     ["invalid JSON", "duplicate", "image_prompt", ":3:"]),
    ("duplicate-json-key-top",
     '{"name": "x",\n "name": "y",\n "storyboards": [{"image_prompt": "a"}]}\n',
     ["invalid JSON", "duplicate", "name", ":2:"]),
    ("unknown-key-top", js(doc(good(), colour="red")), ["unknown key", "colour"]),
    ("unknown-key-storyboard", js(doc(good(), {"image_prompt": "a", "prompt": "b"})),
     ["storyboard 2", "unknown key", "prompt"]),
    ("unknown-key-with-newline", js(doc(good(), {"image_prompt": "a", "bad\nkey": 1})),
     ["storyboard 2", "unknown key"]),
    ("bad-uuid-project", js(doc(good(), id="1234")), ["id", "not a UUID", "1234"]),
    ("bad-uuid-storyboard", js(doc(good(), good(id="sb-0002"))),
     ["storyboard 2", "id", "not a UUID", "sb-0002"]),
    ("uuid-number", js(doc(good(), good(id=12))), ["storyboard 2", "id"]),
    ("prompt-too-long", js(doc(good(), good("x" * (PROMPT_MAX + 1)))),
     ["storyboard 2", "image_prompt", "too long", str(PROMPT_MAX)]),
    ("bad-storyboard-stage", js(doc(good(), storyboard_stage="done")),
     ["storyboard_stage", "done"]),
    ("image-providers-string", js(doc(good(), image_providers="ok")), ["image_providers"]),
    ("name-number", js(doc(good(), name=3)), ["name"]),
]


def write_case(env, text):
    path = os.path.join(env.path, f"bad-{uuid.uuid4().hex[:8]}.json")
    with open(path, "w") as f:
        f.write(text)
    return path


def check_refused_everywhere(env, path, needles, state):
    before = prepare_db(env, state)
    for cmd in ("run", "import"):
        args = (cmd, path, "--json") if cmd == "run" else (cmd, path)
        line = assert_refused(env.t2i(*args), path, *needles)
        assert env.snapshot() == before, cmd
    return line


@pytest.mark.parametrize("state", DB_STATES)
@pytest.mark.parametrize("case,text,needles", CASES, ids=[c[0] for c in CASES])
def test_bad_project_file_is_refused(env, case, text, needles, state):
    check_refused_everywhere(env, write_case(env, text), needles, state)


def test_error_line_holds_no_control_characters(env):
    path = write_case(env, js(doc(good(), {"image_prompt": "a", "x\n\r\x1b[31my": 1})))
    line = check_refused_everywhere(env, path, ["unknown key"], "absent")
    assert not any(ord(ch) < 0x20 for ch in line)


def test_long_bad_value_is_clipped(env):
    path = write_case(env, js(doc(good(), good(params={"ratio": "r" * 5000}))))
    line = check_refused_everywhere(env, path, ["params.ratio"], "absent")
    assert len(line) < 1000


def test_storyboard_with_id_is_named_by_id(env):
    path = write_case(env, js(doc(good(id=SB1), good("", id=SB2))))
    check_refused_everywhere(env, path, ["storyboard 2", SB2, "image_prompt"], "absent")


def test_fault_in_last_of_many_storyboards_imports_nothing(env):
    sbs = [good(f"shot {i}") for i in range(200)] + [good(params={"resolution": "8k"})]
    path = write_case(env, js(doc(*sbs)))
    check_refused_everywhere(env, path, ["storyboard 201", "params.resolution"], "populated")


@pytest.mark.parametrize("state", ["absent", "populated"])
def test_oversized_file_is_refused(env, state):
    path = os.path.join(env.path, "huge.json")
    # Sparse: a valid project padded with spaces past the limit would be
    # the honest test, but only the size is looked at before reading.
    with open(path, "w") as f:
        f.write(js(doc(good())))
        f.truncate(FILE_MAX + 1)
    check_refused_everywhere(env, path, ["too large", str(FILE_MAX)], state)


def test_oversized_padded_valid_json_is_refused(env):
    text = js(doc(good()))
    path = os.path.join(env.path, "padded.json")
    with open(path, "w") as f:
        f.write(text)
        f.write(" " * (FILE_MAX + 1 - len(text)))
    assert os.path.getsize(path) == FILE_MAX + 1
    check_refused_everywhere(env, path, ["too large"], "absent")


def test_file_at_size_limit_is_accepted(env):
    text = js(doc(good()))
    path = os.path.join(env.path, "limit.json")
    with open(path, "w") as f:
        f.write(text)
        f.write(" " * (FILE_MAX - len(text)))
    assert os.path.getsize(path) == FILE_MAX
    env.t2i("import", path, check=0)


def test_prompt_at_size_limit_is_accepted(env):
    path = write_case(env, js(doc(good("y" * PROMPT_MAX),
                                  good("z", negative_prompt="n" * PROMPT_MAX))))
    cp = env.t2i("import", path, check=0)
    pid = cp.stdout.strip()
    rows = env.sql("SELECT length(image_prompt), length(negative_prompt) FROM storyboards "
                   "WHERE project_id = ? ORDER BY position", pid)
    assert rows == [(PROMPT_MAX, 0), (1, PROMPT_MAX)]


def test_multibyte_prompt_limit_counts_bytes(env):
    # 2731 x 3 bytes = 8193 bytes, though only 2731 characters.
    path = write_case(env, js(doc(good("\u6d77" * 2731))))
    check_refused_everywhere(env, path, ["storyboard 1", "image_prompt", "too long"], "absent")


@pytest.mark.parametrize("state", ["absent", "populated"])
def test_nonexistent_file_is_refused(env, state):
    path = os.path.join(env.path, "no-such-project.json")
    check_refused_everywhere(env, path, ["No such file"], state)


@pytest.mark.parametrize("state", ["absent", "populated"])
def test_directory_is_refused(env, state):
    path = os.path.join(env.path, "adir.json")
    os.mkdir(path)
    check_refused_everywhere(env, path, ["not a regular file"], state)


def test_unreadable_file_is_refused(env):
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    path = write_case(env, js(doc(good())))
    os.chmod(path, 0)
    check_refused_everywhere(env, path, ["cannot read"], "absent")


def test_fifo_is_refused_without_hanging(env):
    path = os.path.join(env.path, "fifo.json")
    os.mkfifo(path)
    check_refused_everywhere(env, path, ["not a regular file"], "absent")


def test_path_with_newline_stays_one_line(env):
    path = os.path.join(env.path, "two\nlines.json")
    cp = env.t2i("import", path)
    assert_refused(cp, "No such file")
    assert env.snapshot() is None


def test_invalid_utf8_is_refused(env):
    path = os.path.join(env.path, "latin1.json")
    with open(path, "wb") as f:
        f.write(b'{"storyboards": [{"image_prompt": "caf\xe9"}]}')
    check_refused_everywhere(env, path, ["invalid JSON"], "absent")


def test_null_optional_members_are_accepted(env):
    # Upstream exporters write null for blank fields.
    path = write_case(env, js(doc(good(id=None, negative_prompt=None, params=None),
                                  id=None, params=None, image_providers=None)))
    env.t2i("import", path, check=0)
