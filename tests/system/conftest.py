"""Fixtures for the system tests: each test gets its own directory with a
config, a database and a plugin directory, and drives the real binary."""

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import uuid

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(ROOT, os.environ.get("T2I_BUILD", "build"))
BIN = os.path.join(BUILD, "t2istage")
PLUGINS = os.path.join(BUILD, "plugins")
TEST_PLUGINS = os.path.join(BUILD, "tests", "plugins")

# Generous: a test never asserts on wall-clock time, this only stops a hang.
RUN_TIMEOUT = 120


class Env:
    """One isolated t2istage installation in a temporary directory."""

    def __init__(self, path):
        self.path = str(path)
        self.plugins = os.path.join(self.path, "plugins")
        self.db = os.path.join(self.path, "var", "t2istage.db")
        self.images = os.path.join(self.path, "var", "images")
        self.conf = os.path.join(self.path, "t2istage.conf")
        os.makedirs(self.plugins)
        os.chmod(self.path, 0o755)
        os.chmod(self.plugins, 0o755)
        for d in (PLUGINS, TEST_PLUGINS):
            for name in os.listdir(d):
                if name.endswith(".so"):
                    dst = os.path.join(self.plugins, name)
                    shutil.copy(os.path.join(d, name), dst)
                    os.chmod(dst, 0o755)
        self.write_config()

    def write_config(self, providers=None, workers_max=4, batch_size=3, timeout=30.0,
                     thumbnails=False, cache=True, extra=""):
        """Writes t2istage.conf.  providers: list of libconfig group texts."""
        if providers is None:
            providers = ['{ name = "ok"; plugin = "ok"; default = true; }']
        text = (
            f'database = "{self.db}";\n'
            f'storage = {{ dir = "{self.images}"; thumbnails = {str(thumbnails).lower()}; }};\n'
            f'plugins = {{ dir = "{self.plugins}"; }};\n'
            f"workers = {{ max = {workers_max}; batch_size = {batch_size}; }};\n"
            f"generation = {{ timeout = {float(timeout)}; }};\n"
            f"cache = {{ enabled = {str(cache).lower()}; }};\n"
            f"{extra}\n"
            "providers = (\n  " + ",\n  ".join(providers) + "\n);\n"
        )
        with open(self.conf, "w") as f:
            f.write(text)

    def project(self, prompts, name="test", **top):
        """Writes a project file; prompts: strings or storyboard dicts."""
        sbs = [p if isinstance(p, dict) else {"image_prompt": p} for p in prompts]
        doc = {"name": name, "storyboards": sbs}
        doc.update(top)
        path = os.path.join(self.path, f"project-{uuid.uuid4().hex[:8]}.json")
        with open(path, "w") as f:
            json.dump(doc, f)
        return path

    def t2i(self, *args, timeout=RUN_TIMEOUT, env=None, check=None):
        """Runs the binary with this config; returns CompletedProcess."""
        e = dict(os.environ)
        e.pop("T2ISTAGE_CONF", None)
        if env:
            e.update(env)
        cp = subprocess.run([BIN, "-c", self.conf, *args], capture_output=True, text=True,
                            timeout=timeout, cwd=self.path, env=e)
        if check is not None:
            assert cp.returncode == check, (cp.returncode, cp.stdout[-3000:], cp.stderr[-3000:])
        return cp

    def run_json(self, *args, expect=None):
        """`run ... --json`; returns (exit status, list of events)."""
        cp = self.t2i("run", *args, "--json", check=expect)
        events = [json.loads(line) for line in cp.stdout.splitlines() if line.strip()]
        return cp.returncode, events, cp

    def sql(self, query, *params):
        con = sqlite3.connect(self.db)
        try:
            return con.execute(query, params).fetchall()
        finally:
            con.close()

    def snapshot(self):
        """Every row of every table, for 'nothing changed' checks."""
        if not os.path.exists(self.db):
            return None
        con = sqlite3.connect(self.db)
        try:
            tables = [r[0] for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
            return {t: sorted(map(repr, con.execute(f"SELECT * FROM {t}"))) for t in tables}
        finally:
            con.close()


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path)


def events_of(events, kind):
    return [e for e in events if e["type"] == kind]


def png_size(path):
    """Width and height from a PNG's IHDR, checking the signature."""
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# ---------------------------------------------------------------------------
# Helpers for the run tests (test_run, test_failures, test_concurrency,
# test_cache_retry).


def libconfig_value(v):
    """A Python value as libconfig text (bool, int, float, str, dict)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, dict):
        return "{ " + " ".join(f"{k} = {libconfig_value(x)};" for k, x in v.items()) + " }"
    return json.dumps(str(v))


def provider_conf(name, plugin=None, default=True, concurrency=None, **options):
    """One providers entry; keyword arguments become its options group."""
    text = f'{{ name = "{name}"; plugin = "{plugin or name}";'
    if default:
        text += " default = true;"
    if concurrency is not None:
        text += f" concurrency = {int(concurrency)};"
    if options:
        text += f" options = {libconfig_value(options)};"
    return text + " }"


def set_generation(env, **settings):
    """Rewrites the generation group of env's config, keeping its timeout."""
    with open(env.conf) as f:
        lines = f.read().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("generation = "):
            timeout = line.split("timeout = ")[1].split(";")[0]
            body = " ".join(f"{k} = {libconfig_value(v)};" for k, v in settings.items())
            lines[i] = f"generation = {{ timeout = {timeout}; {body} }};"
    with open(env.conf, "w") as f:
        f.write("\n".join(lines) + "\n")


# No automatic retries, so that each failure costs exactly one attempt and
# the event sequence of a failing run is the same on every machine.
NO_RETRY = "retry = { attempts = 1; };"


def read_trace(path):
    """Trace lines of the test plugins: [(event, pid, storyboard_id, ns)] in
    timestamp order; [] when the file does not exist."""
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as f:
        for line in f:
            ev, pid, sb, ns = line.split()
            out.append((ev, int(pid), sb, int(ns)))
    out.sort(key=lambda t: (t[3], 0 if t[0] == "end" else 1))
    return out


def trace_starts(path):
    """Storyboard ids with a start line, in start order (with repeats)."""
    return [t[2] for t in read_trace(path) if t[0] == "start"]


def max_overlap(trace):
    """Most generations in flight at once, by the trace's monotonic clock.
    At equal timestamps an end counts before a start."""
    cur = best = 0
    for ev, _pid, _sb, _ns in trace:
        cur += 1 if ev == "start" else -1
        best = max(best, cur)
    return best


def project_id_of(events):
    return events[0]["project_id"]


def storyboard_rows(env, project_id):
    """[(id, position, image_prompt)] of a project, by position."""
    return env.sql("SELECT id, position, image_prompt FROM storyboards WHERE project_id = ?"
                   " ORDER BY position", project_id)


def stage_status(env, project_id, stage="image_generation"):
    rows = env.sql("SELECT status FROM project_stages WHERE project_id = ? AND stage_type = ?",
                   project_id, stage)
    return rows[0][0] if rows else None


def run_pty(env, *args, timeout=RUN_TIMEOUT):
    """Runs the binary with stdout on a pseudo-terminal; returns (exit status,
    terminal output as text, stderr text)."""
    import select

    master, slave = os.openpty()
    e = dict(os.environ)
    e.pop("T2ISTAGE_CONF", None)
    proc = subprocess.Popen([BIN, "-c", env.conf, *args], stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=subprocess.PIPE, cwd=env.path, env=e)
    os.close(slave)
    out = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], timeout)
            if not ready:
                proc.kill()
                raise AssertionError("no terminal output for %s s" % timeout)
            try:
                chunk = os.read(master, 65536)
            except OSError:	# EIO: every writer of the terminal is gone
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    rc = proc.wait(timeout=timeout)
    return rc, out.decode(errors="replace"), err


# ---- helpers for the refusal, bad-input, config and CLI tests ----

def assert_refused(cp, *needles, status=2):
    """A refusal: the exit status, nothing on stdout, exactly one line on
    stderr holding every needle.  Returns that line."""
    assert cp.returncode == status, (cp.returncode, cp.stdout[-2000:], cp.stderr[-2000:])
    assert cp.stdout == "", cp.stdout[-2000:]
    lines = cp.stderr.splitlines()
    assert len(lines) == 1, cp.stderr[-2000:]
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


DB_STATES = ("absent", "empty", "populated")


def prepare_db(env, state):
    """Leaves env's database 'absent', 'empty' (made by an earlier command:
    schema and provider mirror, no project) or 'populated' (one project run
    to completion).  Returns env.snapshot()."""
    if state in ("empty", "populated"):
        cp = env.t2i("import", env.project(["an earlier project"]), check=0)
        if state == "populated":
            env.t2i("run", cp.stdout.strip(), "--json", check=0)
        else:
            con = sqlite3.connect(env.db)
            try:
                con.execute("PRAGMA foreign_keys = ON")
                con.execute("DELETE FROM projects")
                con.commit()
            finally:
                con.close()
    snap = env.snapshot()
    assert (snap is None) == (state == "absent")
    return snap


# ---- the fake provider (tools/fakeprovider) for the provider plugins' tests ----

FAKEPROVIDER = os.path.join(ROOT, "tools", "fakeprovider")


class FakeProvider:
    """A running tools/fakeprovider.  url is "http://127.0.0.1:PORT"; the
    *_url attributes are what a provider's api_url should be set to."""

    def __init__(self, directory, *args):
        import select

        self.dir = str(directory)
        self.log = os.path.join(self.dir, "requests.jsonl")
        self.stderr = open(os.path.join(self.dir, "stderr"), "w")
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", FAKEPROVIDER, "--port-file", os.path.join(self.dir, "port"),
             "--log", self.log, *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        # The first stdout line announces the port once the socket listens; a bound wait
        # only guards against a server that never starts.
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("fakeprovider listening on "):
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"fakeprovider did not start: {line!r}, see {self.dir}/stderr")
        self.url = line.split()[-1]
        self.port = int(self.url.rsplit(":", 1)[1])
        self.jimeng_url = self.url + "/jimeng/v1/images/generations"
        self.openai_url = self.url + "/openai/v1/images/generations"
        self.sdwebui_url = self.url + "/sdwebui"    # the plugin appends /sdapi/v1/txt2img

    def _call(self, method, path, doc=None):
        import urllib.error
        import urllib.request

        data = None if doc is None else json.dumps(doc).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as e:
            raise AssertionError(f"fakeprovider {method} {path}: {e.code} {e.read()!r}")

    def control(self, settings):
        """Merges settings (see tools/fakeprovider); returns all settings."""
        return self._call("POST", "/_control", settings)

    def settings(self):
        return self._call("GET", "/_control")

    def requests(self):
        """Every recorded request, in order (generations and image downloads)."""
        return self._call("GET", "/_requests")

    def reset(self):
        return self._call("POST", "/_reset", {})

    def stop(self):
        """SIGTERM, then wait; returns the exit status."""
        try:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
                    raise AssertionError("fakeprovider ignored SIGTERM")
        finally:
            self.proc.stdout.close()
            self.stderr.close()
        return self.proc.returncode


@pytest.fixture
def fake(tmp_path_factory):
    server = FakeProvider(tmp_path_factory.mktemp("fakeprovider"))
    try:
        yield server
    finally:
        server.stop()


# ---- helpers for the provider plugins' and the retry tests (test_providers, test_retries) ----

import re  # noqa: E402  (kept with the helpers that use it)

API_KEY = "sk-test-KEY-123"


def http_provider(name, plugin, api_url, api_key=API_KEY, model=None, default=True,
                  concurrency=None, **options):
    """One providers entry for an HTTP plugin; keyword arguments become its options."""
    text = f'{{ name = "{name}"; plugin = "{plugin}"; api_url = {json.dumps(api_url)};'
    if api_key is not None:
        text += f" api_key = {json.dumps(api_key)};"
    if model is not None:
        text += f" model = {json.dumps(model)};"
    if default:
        text += " default = true;"
    if concurrency is not None:
        text += f" concurrency = {int(concurrency)};"
    if options:
        text += f" options = {libconfig_value(options)};"
    return text + " }"


def retry_conf(attempts, backoff=0.05, backoff_max=0.2):
    """The retry group: small backoffs keep retrying tests fast."""
    return (f"retry = {{ attempts = {attempts}; backoff = {backoff};"
            f" backoff_max = {backoff_max}; }};")


def image_info(path):
    """(mime, width, height) read from an image file's own header (PNG, JPEG, WebP)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        assert data[12:16] == b"IHDR", path
        return ("image/png", int.from_bytes(data[16:20], "big"),
                int.from_bytes(data[20:24], "big"))
    if data[:3] == b"\xff\xd8\xff":
        i = 2
        while i + 9 <= len(data):
            assert data[i] == 0xFF, (path, i)
            marker, length = data[i + 1], int.from_bytes(data[i + 2:i + 4], "big")
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):    # SOFn
                return ("image/jpeg", int.from_bytes(data[i + 7:i + 9], "big"),
                        int.from_bytes(data[i + 5:i + 7], "big"))
            i += 2 + length
        raise AssertionError(f"{path}: JPEG without a frame header")
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        chunk = data[12:16]
        if chunk == b"VP8 ":
            assert data[23:26] == b"\x9d\x01\x2a", path
            return ("image/webp", int.from_bytes(data[26:28], "little") & 0x3FFF,
                    int.from_bytes(data[28:30], "little") & 0x3FFF)
        if chunk == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return "image/webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if chunk == b"VP8X":
            return ("image/webp", int.from_bytes(data[24:27], "little") + 1,
                    int.from_bytes(data[27:30], "little") + 1)
    raise AssertionError(f"{path}: not an image: {data[:40]!r}")


RETRY_WARNING = re.compile(
    r"^storyboard (\d+): attempt (\d+) of (\d+) on provider (\S+) failed "
    r"\((\w+): (.*)\); retrying in (\d+(?:\.\d+)?) s$", re.S)


def retry_warnings(events):
    """The retry warnings of a run, parsed: [{index, attempt, of, provider, cls, cause,
    delay_s}] in event order."""
    out = []
    for e in events:
        m = RETRY_WARNING.match(e.get("message", "")) if e["type"] == "warning" else None
        if m:
            out.append({"index": int(m[1]), "attempt": int(m[2]), "of": int(m[3]),
                        "provider": m[4], "cls": m[5], "cause": m[6],
                        "delay_s": float(m[7])})
    return out


def warnings_of(events):
    return [e["message"] for e in events if e["type"] == "warning"]


GENERATION_PATHS = ("/jimeng/v1/images/generations", "/openai/v1/images/generations",
                    "/sdwebui/sdapi/v1/txt2img")


def generation_requests(fake):
    """The generation requests fake received, in order (image downloads left out)."""
    return [r for r in fake.requests() if r["method"] == "POST"
            and r["path"].split("?")[0] in GENERATION_PATHS]
