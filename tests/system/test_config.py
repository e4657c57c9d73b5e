"""Configuration: errors naming FILE:LINE: KEY for every command with nothing
written, $T2ISTAGE_CONF, the built-in defaults, check-config against the
plugins, and secrets that never leave the config."""

import glob
import json
import os
import shutil
import subprocess

import pytest

from conftest import BIN, PLUGINS, ROOT, assert_refused, prepare_db

SECRET = "sk-SECRET-12345"
MISSING_ID = "6f1d2c3b-4a59-4e8d-9c7b-0a1b2c3d4e5f"


def base_lines(env):
    """A valid config, one setting per line, so a case can replace a line."""
    return [
        f'database = "{env.db}";',
        f'storage = {{ dir = "{env.images}"; thumbnails = false; }};',
        f'plugins = {{ dir = "{env.plugins}"; }};',
        "workers = { max = 2; batch_size = 3; };",
        "generation = { timeout = 30.0; };",
        "providers = (",
        '  { name = "ok"; plugin = "ok"; default = true; }',
        ");",
    ]


WORKERS, GENERATION, PROVIDER = 3, 4, 6


def replace(index, text):
    def f(lines):
        lines[index] = text
        return index
    return f


def insert(index, text):
    def f(lines):
        lines.insert(index, text)
        return index
    return f


def providers(*groups, bad):
    """Replaces the provider line by groups, one a line; bad: index of the
    group whose line the error is on."""
    def f(lines):
        lines[PROVIDER:PROVIDER + 1] = ["  " + g + ("," if i < len(groups) - 1 else "")
                                        for i, g in enumerate(groups)]
        return PROVIDER + bad
    return f


# (case id, edit of base_lines returning the 0-based index of the bad line,
#  the key the message must name (None: a syntax error names no key), words)
CONFIG_ERRORS = [
    ("unknown-top-key", insert(4, 'colour = "red";'), "colour", ["unknown key"]),
    ("unknown-group-key", replace(WORKERS, "workers = { max = 2; bogus = 1; };"),
     "workers.bogus", ["unknown key"]),
    ("unknown-provider-key",
     providers('{ name = "ok"; plugin = "ok"; colour = "red"; }', bad=0),
     "providers[0].colour", ["unknown key"]),
    ("wrong-type-int", replace(WORKERS, 'workers = { max = "two"; };'), "workers.max",
     ["integer"]),
    ("wrong-type-bool",
     replace(1, 'storage = { dir = "/tmp/x"; thumbnails = "yes"; };'), "storage.thumbnails",
     ["boolean"]),
    ("wrong-type-group", replace(WORKERS, "workers = 4;"), "workers", ["group"]),
    ("wrong-type-string", replace(0, "database = 42;"), "database", ["string"]),
    ("out-of-range-low", replace(WORKERS, "workers = { max = 0; };"), "workers.max",
     ["between 1 and 256"]),
    ("out-of-range-high", replace(WORKERS, "workers = { batch_size = 100000; };"),
     "workers.batch_size", ["between"]),
    ("timeout-zero", replace(GENERATION, "generation = { timeout = 0.0; };"),
     "generation.timeout", []),
    ("timeout-negative", replace(GENERATION, "generation = { timeout = -5; };"),
     "generation.timeout", []),
    ("unknown-ratio", replace(GENERATION, 'generation = { ratio = "5:4"; };'),
     "generation.ratio", ["5:4"]),
    ("unknown-resolution", replace(GENERATION, 'generation = { resolution = "8k"; };'),
     "generation.resolution", ["8k"]),
    ("provider-concurrency", providers('{ name = "ok"; plugin = "ok"; concurrency = 0; }',
                                       bad=0), "providers[0].concurrency", ["between"]),
    ("provider-rate-negative", providers('{ name = "ok"; plugin = "ok"; rate = -20.0; }',
                                         bad=0), "providers[0].rate", ["more than 0"]),
    ("provider-rate-not-a-number", providers('{ name = "ok"; plugin = "ok"; rate = "20"; }',
                                             bad=0), "providers[0].rate", ["number"]),
    ("provider-cost-negative", providers('{ name = "ok"; plugin = "ok"; cost = -0.04; }',
                                         bad=0), "providers[0].cost", ["from 0"]),
    ("provider-cost-not-a-number", providers('{ name = "ok"; plugin = "ok"; cost = true; }',
                                             bad=0), "providers[0].cost", ["number"]),
    ("provider-budget-negative",
     providers('{ name = "ok"; plugin = "ok"; budget = { per_run = -1.0; }; }', bad=0),
     "providers[0].budget.per_run", ["from 0"]),
    ("provider-budget-not-a-number",
     providers('{ name = "ok"; plugin = "ok"; budget = { per_day = "ten"; }; }', bad=0),
     "providers[0].budget.per_day", ["number"]),
    ("rate-limit-wait-negative", insert(5, "retry = { rate_limit_wait = -600; };"),
     "retry.rate_limit_wait", ["from 0"]),
    ("missing-plugin", providers('{ name = "ok"; plugin = "nosuch"; default = true; }', bad=0),
     "providers[0].plugin", ["plugin not found", "nosuch.so"]),
    ("duplicate-provider",
     providers('{ name = "ok"; plugin = "ok"; default = true; }',
               '{ name = "ok"; plugin = "tiny"; }', bad=1),
     "providers[1].name", ["duplicate provider", "ok"]),
    ("two-defaults",
     providers('{ name = "ok"; plugin = "ok"; default = true; }',
               '{ name = "tiny"; plugin = "tiny"; default = true; }', bad=1),
     "providers[1].default", ["default"]),
    ("bad-provider-name", providers('{ name = "o k"; plugin = "ok"; }', bad=0),
     "providers[0].name", []),
    ("api-key-and-file",
     providers(f'{{ name = "ok"; plugin = "ok"; api_key = "{SECRET}"; '
               'api_key_file = "/nonexistent/key"; }', bad=0),
     "providers[0].api_key_file", ["not both"]),
    ("api-key-file-missing",
     providers('{ name = "ok"; plugin = "ok"; api_key_file = "/nonexistent/key"; }', bad=0),
     "providers[0].api_key_file", ["cannot read"]),
    ("empty-api-key", providers('{ name = "ok"; plugin = "ok"; api_key = ""; }', bad=0),
     "providers[0].api_key", ["empty"]),
    ("syntax-error", replace(WORKERS, "workers = { max = ; };"), None, ["syntax error"]),
    ("syntax-duplicate-setting", insert(5, "workers = { max = 3; };"), None,
     ["syntax error"]),
]


def write_lines(env, lines):
    with open(env.conf, "w") as f:
        f.write("\n".join(lines) + "\n")


COMMANDS = [
    ("check-config",),
    ("run", "PROJECT", "--json"),
    ("run", MISSING_ID),
    ("retry", MISSING_ID),
    ("import", "PROJECT"),
    ("status",),
    ("status", MISSING_ID, "--json"),
    ("images", MISSING_ID),
    ("plugins",),
]


@pytest.mark.parametrize("state", ["absent", "populated"])
@pytest.mark.parametrize("case,edit,key,words", CONFIG_ERRORS, ids=[c[0] for c in CONFIG_ERRORS])
def test_config_error_names_file_line_key(env, case, edit, key, words, state):
    project = env.project(["a", "b"])
    before = prepare_db(env, state)
    lines = base_lines(env)
    line = edit(lines) + 1
    write_lines(env, lines)
    prefix = f"{env.conf}:{line}: " + (f"{key}: " if key else "")
    for args in COMMANDS:
        args = [project if a == "PROJECT" else a for a in args]
        cp = env.t2i(*args)
        assert cp.returncode != 0, args
        msg = assert_refused(cp, prefix, *words, status=cp.returncode)
        assert SECRET not in msg
        assert env.snapshot() == before, args


def test_provider_not_a_group(env):
    # libconfig gives a scalar list element the line after it (here the
    # closing parenthesis), so only the file and the key are checked.
    lines = base_lines(env)
    lines[PROVIDER] = '  "ok"'
    write_lines(env, lines)
    for args in (("check-config",), ("run", env.project(["a"]))):
        cp = env.t2i(*args)
        assert_refused(cp, env.conf + ":", ": providers[0]: ", "group", status=1)
    assert env.snapshot() is None


def test_base_lines_are_valid(env):
    # The cases above only mean something if the unedited config is good.
    write_lines(env, base_lines(env))
    cp = env.t2i("check-config", check=0)
    assert "valid" in cp.stdout
    env.run_json(env.project(["a"]), expect=0)


def test_missing_config_file_is_an_error(env):
    missing = os.path.join(env.path, "nope.conf")
    for args in (("check-config",), ("run", env.project(["a"])), ("status",)):
        cp = subprocess.run([BIN, "-c", missing, *args], capture_output=True, text=True,
                            cwd=env.path, env=clean_env(env.path))
        assert_refused(cp, missing, status=cp.returncode)
        assert cp.returncode != 0
    assert env.snapshot() is None
    assert not os.path.exists(os.path.join(env.path, "var"))


def test_config_directory_is_an_error(env):
    cp = env.t2i("-c", env.path, "check-config")  # the later -c wins
    assert cp.returncode != 0


# ---- $T2ISTAGE_CONF and the built-in defaults ----

def clean_env(home, **extra):
    e = {k: v for k, v in os.environ.items() if k != "T2ISTAGE_CONF"}
    e["HOME"] = home
    e.update(extra)
    return e


def bare(args, cwd, **extra):
    """The binary without -c."""
    return subprocess.run([BIN, *args], capture_output=True, text=True, cwd=cwd,
                          env=clean_env(cwd, **extra), timeout=120)


def test_env_var_names_the_config(env, tmp_path_factory):
    elsewhere = str(tmp_path_factory.mktemp("elsewhere"))
    cp = bare(["import", env.project(["a"])], elsewhere, T2ISTAGE_CONF=env.conf)
    assert cp.returncode == 0, cp.stderr
    pid = cp.stdout.strip()
    assert env.sql("SELECT id FROM projects") == [(pid,)]
    assert os.listdir(elsewhere) == []  # not the built-in ./var/
    cp = bare(["check-config"], elsewhere, T2ISTAGE_CONF=env.conf)
    assert cp.returncode == 0 and env.conf in cp.stdout


def test_env_var_with_bad_config_is_used_and_refused(env, tmp_path_factory):
    elsewhere = str(tmp_path_factory.mktemp("elsewhere"))
    env.write_config(extra="colour = 1;")
    for args in (["check-config"], ["run", env.project(["a"])]):
        cp = bare(args, elsewhere, T2ISTAGE_CONF=env.conf)
        assert_refused(cp, env.conf + ":", "colour", status=cp.returncode)
        assert cp.returncode != 0
    assert env.snapshot() is None
    assert os.listdir(elsewhere) == []


def test_option_c_wins_over_env_var(env):
    bad = os.path.join(env.path, "bad.conf")
    with open(bad, "w") as f:
        f.write("colour = 1;\n")
    cp = env.t2i("check-config", env={"T2ISTAGE_CONF": bad}, check=0)
    assert env.conf in cp.stdout


def test_empty_env_var_means_unset(env, tmp_path_factory):
    if os.path.exists("/etc/t2istage/t2istage.conf"):
        pytest.skip("/etc/t2istage/t2istage.conf exists")
    elsewhere = str(tmp_path_factory.mktemp("elsewhere"))
    cp = bare(["check-config"], elsewhere, T2ISTAGE_CONF="")
    # Built-in defaults: plugins from ./build/plugins, absent here.
    assert cp.returncode != 0
    assert "placeholder.so" in cp.stderr and "plugin not found" in cp.stderr


def newcomer_tree(tmp_path_factory):
    """A copy of the parts of a source tree a newcomer runs from."""
    if os.path.exists("/etc/t2istage/t2istage.conf"):
        pytest.skip("/etc/t2istage/t2istage.conf exists and would be read")
    top = str(tmp_path_factory.mktemp("tree"))
    plugdir = os.path.join(top, "build", "plugins")
    os.makedirs(plugdir)
    os.makedirs(os.path.join(top, "examples"))
    for d in (top, os.path.join(top, "build"), plugdir):
        os.chmod(d, 0o755)
    shutil.copy(os.path.join(PLUGINS, "placeholder.so"), plugdir)
    os.chmod(os.path.join(plugdir, "placeholder.so"), 0o755)
    shutil.copy(os.path.join(ROOT, "examples", "demo.json"), os.path.join(top, "examples"))
    return top


def test_builtin_defaults_run_the_demo(tmp_path_factory):
    top = newcomer_tree(tmp_path_factory)
    cp = bare(["run", "examples/demo.json", "--json"], top)
    assert cp.returncode == 0, cp.stderr[-3000:]
    events = [json.loads(x) for x in cp.stdout.splitlines()]
    with open(os.path.join(top, "examples", "demo.json")) as f:
        n = len(json.load(f)["storyboards"])
    assert events[-1]["type"] == "done" and events[-1]["data"]["success_count"] == n
    db = os.path.join(top, "var", "t2istage.db")
    assert os.path.isfile(db)
    import sqlite3
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT g.file_path, m.name FROM generated_images g "
                           "JOIN model_providers m ON m.id = g.model_provider_id "
                           "WHERE g.status = 'completed' AND g.is_primary = 1").fetchall()
    finally:
        con.close()
    assert len(rows) == n
    images = os.path.join(top, "var", "images")
    for path, provider in rows:
        assert provider == "placeholder"
        assert os.path.realpath(path).startswith(os.path.realpath(images) + os.sep)
        assert os.path.getsize(path) > 0
    # The other commands find the same defaults.
    cp = bare(["status", "--json"], top)
    assert cp.returncode == 0 and len(json.loads(cp.stdout)) == 1
    cp = bare(["check-config"], top)
    assert cp.returncode == 0 and "built-in defaults" in cp.stdout


def test_builtin_defaults_from_another_directory_find_no_plugin(tmp_path_factory):
    top = newcomer_tree(tmp_path_factory)
    sub = os.path.join(top, "examples")
    cp = bare(["run", "demo.json"], sub)
    assert cp.returncode != 0
    assert "placeholder.so" in cp.stderr
    assert not os.path.exists(os.path.join(sub, "var"))


# ---- check-config and the plugins ----

def test_check_config_valid(env):
    env.write_config(providers=['{ name = "ok"; plugin = "ok"; default = true; }',
                                '{ name = "tiny"; plugin = "tiny"; }'])
    cp = env.t2i("check-config", check=0)
    lines = cp.stdout.splitlines()
    assert len(lines) == 1 and "valid" in lines[0] and env.conf in lines[0]
    assert "2 providers" in lines[0]
    assert cp.stderr == ""
    assert env.snapshot() is None


@pytest.mark.parametrize("plugin,words", [
    ("badabi", ["t2i_plugin", "999"]),
    ("nosym", ["generate_image"]),
])
def test_check_config_refuses_bad_plugin(env, plugin, words):
    env.write_config(providers=['{ name = "ok"; plugin = "ok"; default = true; }',
                                f'{{ name = "bad"; plugin = "{plugin}"; }}'])
    cp = env.t2i("check-config")
    assert cp.returncode == 1
    path = os.path.join(env.plugins, plugin + ".so")
    assert_refused(cp, "provider bad", path, *words, status=1)
    assert "valid" not in cp.stdout


@pytest.mark.parametrize("mode", [0o775, 0o757, 0o777])
def test_check_config_refuses_writable_plugin(env, mode):
    path = os.path.join(env.plugins, "gw.so")
    shutil.copy(os.path.join(env.plugins, "ok.so"), path)
    os.chmod(path, mode)
    env.write_config(providers=['{ name = "gw"; plugin = "gw"; default = true; }'])
    cp = env.t2i("check-config")
    assert_refused(cp, path, "writable by group or others", status=1)


@pytest.mark.parametrize("mode", [0o775, 0o757])
def test_check_config_refuses_writable_plugin_dir(env, mode):
    os.chmod(env.plugins, mode)
    cp = env.t2i("check-config")
    assert_refused(cp, env.plugins, "writable by group or others", status=1)


def test_check_config_reports_every_bad_provider(env):
    env.write_config(providers=['{ name = "ok"; plugin = "ok"; default = true; }',
                                '{ name = "b1"; plugin = "badabi"; }',
                                '{ name = "b2"; plugin = "nosym"; }'])
    cp = env.t2i("check-config")
    assert cp.returncode == 1
    assert "badabi.so" in cp.stderr and "nosym.so" in cp.stderr


def test_writable_plugin_is_never_run(env):
    path = os.path.join(env.plugins, "gw.so")
    shutil.copy(os.path.join(env.plugins, "ok.so"), path)
    os.chmod(path, 0o777)
    env.write_config(providers=['{ name = "gw"; plugin = "gw"; default = true; }'])
    rc, events, _ = env.run_json(env.project(["a"]))
    assert rc == 1
    assert events[-1]["type"] == "done" and events[-1]["data"]["success_count"] == 0
    assert env.sql("SELECT count(*) FROM generated_images WHERE status = 'completed'") == [(0,)]


# ---- secrets ----

def test_api_key_never_leaves_the_config(env):
    env.write_config(providers=[
        f'{{ name = "ok"; plugin = "ok"; default = true; api_key = "{SECRET}"; '
        'api_url = "http://localhost:1/v1"; }'])
    outputs = []
    cp = env.t2i("-v", "run", env.project(["a red fox", "a blue whale"]), "--json", check=0)
    outputs += [cp.stdout, cp.stderr]
    pid = json.loads(cp.stdout.splitlines()[-1])["project_id"]
    cp = env.t2i("-v", "run", pid, "--no-cache", check=0)  # not a terminal: NDJSON too
    outputs += [cp.stdout, cp.stderr]
    for args in (("status", "--json"), ("status", pid, "--json"), ("status",),
                 ("images", pid, "--json"), ("images", pid), ("check-config",),
                 ("plugins",), ("retry", pid, "--json")):
        cp = env.t2i(*args)
        outputs += [cp.stdout, cp.stderr]
    for text in outputs:
        assert SECRET not in text
        assert "SECRET" not in text
    files = glob.glob(env.db + "*")
    assert env.db in files
    for path in files:
        with open(path, "rb") as f:
            data = f.read()
        assert SECRET.encode() not in data, path
    # The run really had the key: the plugin received the batch.
    assert env.sql("SELECT count(*) FROM generated_images WHERE status = 'completed'")[0][0] >= 2


def test_api_key_file_never_leaves_the_config(env):
    keyfile = os.path.join(env.path, "ok.key")
    with open(keyfile, "w") as f:
        f.write(SECRET + "\n")
    env.write_config(providers=[
        '{ name = "ok"; plugin = "ok"; default = true; api_key_file = "ok.key"; }'])
    cp = env.t2i("run", env.project(["a"]), "--json", check=0)
    assert SECRET not in cp.stdout + cp.stderr
    for path in glob.glob(env.db + "*"):
        with open(path, "rb") as f:
            assert SECRET.encode() not in f.read()


def test_config_error_does_not_print_the_key(env):
    env.write_config(providers=[
        f'{{ name = "ok"; plugin = "ok"; default = true; api_key = "{SECRET}"; '
        'concurrency = "many"; }'])
    for args in (("check-config",), ("run", env.project(["a"]))):
        cp = env.t2i(*args)
        assert cp.returncode != 0
        assert "providers[0].concurrency" in cp.stderr
        assert SECRET not in cp.stdout + cp.stderr
