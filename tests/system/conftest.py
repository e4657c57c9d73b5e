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


def pg_query(query, params):
    """SQLite's placeholders (? and ?N) as psycopg2's: (query, {name: value})."""
    import re as _re
    n = [0]
    def one(m):
        k = int(m[1]) if m[1] else n[0] + 1
        n[0] = max(n[0], k)
        return f"%(p{k})s"
    q = _re.sub(r"\?(\d*)", one, query.replace("%", "%%"))
    return q, {f"p{i + 1}": v for i, v in enumerate(params)}


class Env:
    """One isolated t2istage installation in a temporary directory.  With pg
    (a PgServer) its database is a new PostgreSQL database on that server
    instead of a SQLite file; sql() and snapshot() read either."""

    def __init__(self, path, pg=None):
        self.path = str(path)
        self.pg = pg
        self.pg_db = pg.create_database() if pg is not None else None
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

    def database_conf(self):
        """The config's database lines."""
        if self.pg is None:
            return f'database = "{self.db}";\n'
        pw = os.path.join(self.path, "pg.password")
        with open(pw, "w") as f:
            f.write(self.pg.password + "\n")
        return (f'database = "{self.pg.uri(self.pg_db)}";\n'
                f'database_password_file = "{pw}";\n')

    def write_config(self, providers=None, workers_max=4, batch_size=3, timeout=30.0,
                     thumbnails=False, cache=True, extra=""):
        """Writes t2istage.conf.  providers: list of libconfig group texts."""
        if providers is None:
            providers = ['{ name = "ok"; plugin = "ok"; default = true; }']
        text = (
            self.database_conf() +
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

    def t2i(self, *args, timeout=RUN_TIMEOUT, env=None, check=None, wrapper=()):
        """Runs the binary with this config; returns CompletedProcess.  wrapper: argv
        put before the binary's.  RUNTIME_DIRECTORY is this directory, as for
        Service.start, so that `reload` finds the test's service."""
        e = dict(os.environ)
        for k in ("T2ISTAGE_CONF", "CREDENTIALS_DIRECTORY", "MAINPID"):
            e.pop(k, None)
        e["RUNTIME_DIRECTORY"] = self.path
        if env:
            e.update(env)
        cp = subprocess.run([*wrapper, BIN, "-c", self.conf, *args], capture_output=True,
                            text=True, timeout=timeout, cwd=self.path, env=e)
        if check is not None:
            assert cp.returncode == check, (cp.returncode, cp.stdout[-3000:], cp.stderr[-3000:])
        return cp

    def run_json(self, *args, expect=None):
        """`run ... --json`; returns (exit status, list of events)."""
        cp = self.t2i("run", *args, "--json", check=expect)
        events = [json.loads(line) for line in cp.stdout.splitlines() if line.strip()]
        return cp.returncode, events, cp

    def sql(self, query, *params):
        """Rows of query (SQLite's ? placeholders) as a list of tuples."""
        if self.pg is not None:
            con = self.pg.connect(self.pg_db)
            try:
                cur = con.cursor()
                cur.execute(*pg_query(query, params))
                rows = cur.fetchall() if cur.description is not None else []
                con.commit()
                return [tuple(r) for r in rows]
            finally:
                con.close()
        con = sqlite3.connect(self.db)
        try:
            return con.execute(query, params).fetchall()
        finally:
            con.close()

    def snapshot(self):
        """Every row of every table, for 'nothing changed' checks."""
        if self.pg is not None:
            tables = [r[0] for r in self.sql(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = 'public' ORDER BY table_name")]
            return {t: sorted(map(repr, self.sql(f"SELECT * FROM {t}"))) for t in tables}
        if not os.path.exists(self.db):
            return None
        con = sqlite3.connect(self.db)
        try:
            tables = [r[0] for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
            return {t: sorted(map(repr, con.execute(f"SELECT * FROM {t}"))) for t in tables}
        finally:
            con.close()


@pytest.fixture(scope="session")
def pg_server():
    """One PostgreSQL server for the session's tests (each test gets its own
    database on it); see pgserver.py."""
    from pgserver import PgServer

    srv = PgServer()
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture
def backend(request):
    """"sqlite" or "pg": tests marked `backends` run on both."""
    return getattr(request, "param", "sqlite")


def pytest_generate_tests(metafunc):
    if "backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker("backends"):
        metafunc.parametrize("backend", ["sqlite", "pg"], indirect=True)


@pytest.fixture
def env(tmp_path, backend, request):
    return Env(tmp_path, request.getfixturevalue("pg_server") if backend == "pg" else None)


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


def interrupt_run(env, target, ready, what):
    """`run TARGET --json`, stopped with SIGTERM (as Ctrl-C stops it) once
    ready() is true; returns (exit status, stdout, stderr)."""
    import signal

    e = dict(os.environ)
    e.pop("T2ISTAGE_CONF", None)
    proc = subprocess.Popen([BIN, "-c", env.conf, "run", target, "--json"], env=e, cwd=env.path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(ready, what=what)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err


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
NETWORK_DELAY_MS = 50


class FakeProvider:
    """A running tools/fakeprovider.  url is "http://127.0.0.1:PORT"; the
    *_url attributes are what a provider's api_url should be set to."""

    def __init__(self, directory, *args):
        import select

        self.dir = str(directory)
        self.log = os.path.join(self.dir, "requests.jsonl")
        self.stderr = open(os.path.join(self.dir, "stderr"), "w")
        # The real proxy answers a failed upstream request after its own three tries,
        # ~15 s; a short delay keeps that shape (the answer is late) without the wait.
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", FAKEPROVIDER, "--port-file", os.path.join(self.dir, "port"),
             "--log", self.log, "--network-delay-ms", str(NETWORK_DELAY_MS), *args],
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
                  concurrency=None, keys="", **options):
    """One providers entry for an HTTP plugin; keyword arguments become its options, keys
    is more of the entry's own settings ("rate = 60; cost = 1;")."""
    text = f'{{ name = "{name}"; plugin = "{plugin}"; api_url = {json.dumps(api_url)};'
    if api_key is not None:
        text += f" api_key = {json.dumps(api_key)};"
    if model is not None:
        text += f" model = {json.dumps(model)};"
    if default:
        text += " default = true;"
    if concurrency is not None:
        text += f" concurrency = {int(concurrency)};"
    if keys:
        text += f" {keys}"
    if options:
        text += f" options = {libconfig_value(options)};"
    return text + " }"


def retry_conf(attempts, backoff=0.05, backoff_max=0.2, rate_limit_wait=None):
    """The retry group: small backoffs keep retrying tests fast."""
    wait = "" if rate_limit_wait is None else f" rate_limit_wait = {rate_limit_wait};"
    return (f"retry = {{ attempts = {attempts}; backoff = {backoff};"
            f" backoff_max = {backoff_max};{wait} }};")


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
    r"^storyboard (?P<index>\d+): attempt (?P<attempt>\d+) of (?P<of>\d+) on provider "
    r"(?P<provider>\S+) failed \((?P<cls>\w+): (?P<cause>.*)\); retrying in "
    r"(?P<delay_s>\d+(?:\.\d+)?) s$", re.S)
RATE_WARNING = re.compile(
    r"^storyboard (?P<index>\d+): rate limited by provider (?P<provider>\S+) "
    r"\((?P<cause>.*)\); waiting (?P<delay_s>\d+(?:\.\d+)?) s, (?P<waited_s>\d+) s of "
    r"retry\.rate_limit_wait \(\S+ s\) used$", re.S)
NUMBERS = {"index": int, "attempt": int, "of": int, "delay_s": float, "waited_s": int}


def parsed_warnings(events, pattern):
    """The warnings of a run that match pattern, as dicts of its named groups."""
    out = []
    for e in events:
        m = pattern.match(e.get("message", "")) if e["type"] == "warning" else None
        if m:
            out.append({k: NUMBERS.get(k, str)(v) for k, v in m.groupdict().items()})
    return out


def retry_warnings(events):
    """The retry warnings of a run, parsed: [{index, attempt, of, provider, cls, cause,
    delay_s}] in event order."""
    return parsed_warnings(events, RETRY_WARNING)


def rate_warnings(events):
    """The warnings of rate-limited answers (which use up no attempt), parsed: [{index,
    provider, cause, delay_s, waited_s}] in event order."""
    return parsed_warnings(events, RATE_WARNING)


def warnings_of(events):
    return [e["message"] for e in events if e["type"] == "warning"]


GENERATION_PATHS = ("/jimeng/v1/images/generations", "/openai/v1/images/generations",
                    "/sdwebui/sdapi/v1/txt2img")


def generation_requests(fake):
    """The generation requests fake received, in order (image downloads left out)."""
    return [r for r in fake.requests() if r["method"] == "POST"
            and r["path"].split("?")[0] in GENERATION_PATHS]


# ---- the service: `t2istage serve` (test_serve, test_torture) ----

import http.client  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "torture: long stress tests, run by `make torture`, left out of `make check`")
    config.addinivalue_line(
        "markers", "backends: run on SQLite and on PostgreSQL (the backend fixture)")


# Bounded waits only: a test never asserts on how long something took, these
# limits only turn a hang into a failure.
SERVICE_WAIT = 30
SSE_READ_TIMEOUT = 60       # longer than the 15 s keepalive


def wait_for(pred, timeout=SERVICE_WAIT, interval=0.02, what="a condition"):
    """Polls pred() until it returns something true, which is returned."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout} s")
        time.sleep(interval)


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers          # lower-case names
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.body[:300]!r}>"


def http_request(port, method, path, body=None, headers=None, timeout=SERVICE_WAIT):
    """One request on its own connection; returns a Response."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


class SSEClient:
    """A Server-Sent Events stream over http.client, read message by message.
    A message is {"id": int or None, "data": parsed JSON, "event": name or None}."""

    def __init__(self, port, path, headers=None, method="GET", body=None,
                 timeout=SSE_READ_TIMEOUT):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        h = {"Accept": "text/event-stream"}
        if method != "GET":
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        self.conn.request(method, path, body=body, headers=h)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = {k.lower(): v for k, v in self.resp.getheaders()}
        self.lines = []          # every line read, for format checks
        self.retry = None        # the last retry: field, in ms
        self.comments = 0
        self.ended = False
        self.broken = False

    def next(self):
        """The next message, or None at the end of the stream."""
        fields = {}
        while True:
            try:
                line = self.resp.readline()
            except (http.client.IncompleteRead, ConnectionError):
                line, self.broken = b"", True   # the server closed it mid-chunk
            if not line:
                self.ended = True
                return None
            line = line.decode().rstrip("\r\n")
            self.lines.append(line)
            if line == "":
                if "retry" in fields:
                    self.retry = int(fields.pop("retry")[-1])
                if fields:
                    break
                continue
            if line.startswith(":"):
                self.comments += 1
                continue
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value[1:] if value.startswith(" ") else value)
        return {"id": int(fields["id"][-1]) if "id" in fields else None,
                "data": json.loads("\n".join(fields.get("data", []))),
                "event": fields["event"][-1] if "event" in fields else None}

    def read_all(self):
        """Every message up to the end of the stream."""
        out = []
        while True:
            m = self.next()
            if m is None:
                return out
            out.append(m)

    def close(self):
        self.conn.close()


def service_pids(conf):
    """Live processes (not zombies) running `t2istage -c conf ...`: the
    supervisor, its spawner and its workers share the command line."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if len(args) >= 3 and args[0] == BIN.encode() and args[1] == b"-c" and \
                args[2] == conf.encode():
            out.append(int(d))
    return out


def process_role(pid):
    """A process's name (/proc/PID/comm): the spawner, the plugin templates and the workers
    name themselves t2istage-spawn, t2istage-tmpl and t2istage-worker; the supervisor keeps
    the binary's name.  None when the process is gone."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def worker_pids(conf):
    """The live workers of the service or run using conf."""
    return [p for p in service_pids(conf) if process_role(p) == "t2istage-worker"]


class Service:
    """`t2istage -c CONF serve` as a subprocess on 127.0.0.1 (port 0: the
    kernel picks a free port, read back from the log, so that parallel tests
    and restarts never race for one).  Each start has its own stderr file."""

    def __init__(self, env):
        self.env = env
        self.proc = None
        self.port = None
        self.logs = []          # stderr files, one per start
        self.token = None

    # -- configuration --

    def configure(self, token=None, listen="127.0.0.1:0", extra="", http="", **kw):
        """env.write_config plus the http group (http: more of its settings);
        remembers the token."""
        self.token = token
        group = f'http = {{ listen = "{listen}";'
        if token is not None:
            group += f" token = {json.dumps(token)};"
        group += f" {http} }};"
        self.env.write_config(extra=f"{extra}\n{group}", **kw)

    # -- the process --

    def start(self, extra_env=None, wait=True, wrapper=(), session=False):
        """wrapper: argv put before the binary's (it must exec it, keeping the pid);
        session: the service leads a session of its own.  The status file for
        `t2istage reload` goes to the test's directory (RUNTIME_DIRECTORY)."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        e = dict(os.environ)
        for k in ("T2ISTAGE_CONF", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
                  "CREDENTIALS_DIRECTORY", "MAINPID"):
            e.pop(k, None)
        e["RUNTIME_DIRECTORY"] = self.env.path
        if extra_env:
            e.update(extra_env)
        path = os.path.join(self.env.path, f"serve-{len(self.logs) + 1}.log")
        self.logs.append(path)
        with open(path, "w") as err:
            self.proc = subprocess.Popen([*wrapper, BIN, "-c", self.env.conf, "serve"],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=err, cwd=self.env.path, env=e,
                                         start_new_session=session)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self):
        def port():
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}: {self.log()}")
            m = re.search(r"http: listening on \S+ \(port (\d+)\)", self.log())
            return int(m[1]) if m else None
        self.port = wait_for(port, what="the listening port")

        def healthy():
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}: {self.log()}")
            try:
                return http_request(self.port, "GET", "/healthz", timeout=5).status == 200
            except OSError:
                return False
        wait_for(healthy, what="/healthz")

    def log(self, index=-1):
        """The stderr text of a start (the latest by default)."""
        with open(self.logs[index], errors="replace") as f:
            return f.read()

    def all_logs(self):
        return "".join(self.log(i) for i in range(len(self.logs)))

    def wait_log(self, needle, count=1, timeout=SERVICE_WAIT):
        """Waits until the current log holds needle count times."""
        return wait_for(lambda: self.log().count(needle) >= count, timeout=timeout,
                        what=f"{count} x {needle!r} in the log")

    def kill(self, sig):
        """Sends sig to the supervisor."""
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Signals and waits; SIGKILL and an AssertionError when it does not
        exit in time.  Returns the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"serve did not exit within {timeout} s of signal {sig}")

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    @property
    def pid(self):
        return self.proc.pid

    # -- HTTP --

    def auth(self, headers=None):
        h = dict(headers or {})
        if self.token is not None and "Authorization" not in h:
            h["Authorization"] = f"Bearer {self.token}"
        return h

    def request(self, method, path, body=None, headers=None, timeout=SERVICE_WAIT):
        """A request with the token; a state change says its body is JSON
        (the service refuses anything else there) unless headers say."""
        h = self.auth(headers)
        if method in ("POST", "PATCH", "DELETE", "PUT") and "Content-Type" not in h:
            h["Content-Type"] = "application/json"
        return http_request(self.port, method, path, body, h, timeout)

    def patch(self, path, body=None, **kw):
        return self.request("PATCH", path, body, **kw)

    def delete(self, path, body=None, **kw):
        return self.request("DELETE", path, body, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body, **kw)

    def sse(self, path, headers=None, **kw):
        return SSEClient(self.port, path, self.auth(headers), **kw)

    # -- the API in a few words --

    def import_project(self, prompts, **top):
        """POSTs a project (prompts: strings or storyboard dicts); returns its id."""
        sbs = [p if isinstance(p, dict) else {"image_prompt": p} for p in prompts]
        doc = {"name": top.pop("name", "test"), "storyboards": sbs}
        doc.update(top)
        r = self.post("/v1/projects", doc)
        assert r.status == 201, r
        return r.json()["id"]

    def start_run(self, project_id, body=None):
        """POST .../image-generation; returns the run id."""
        r = self.post(f"/v1/projects/{project_id}/image-generation", body)
        assert r.status == 202, r
        return r.json()["run_id"]

    def events(self, project_id, last_event_id=None):
        """The whole stream of the project's latest run (until it ends)."""
        h = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
        c = self.sse(f"/v1/projects/{project_id}/image-generation/events", headers=h)
        try:
            assert c.status == 200, (c.status, c.resp.read())
            return c.read_all()
        finally:
            c.close()


@pytest.fixture
def service(env):
    """A Service for env, not started; stopped (SIGTERM, then SIGKILL after
    30 s) at teardown."""
    svc = Service(env)
    try:
        yield svc
    finally:
        if svc.proc is not None and svc.proc.poll() is None:
            try:
                svc.stop(timeout=30)
            except AssertionError:
                pass
        # A worker must never outlive its supervisor (PDEATHSIG).
        wait_for(lambda: not service_pids(env.conf), timeout=SERVICE_WAIT,
                 what="the service's processes to exit")
        # Under `make asan` a sanitizer's report fails the test that caused it.
        for i in range(len(svc.logs)):
            text = svc.log(i)
            m = re.search(r"ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:", text)
            assert m is None, text[max(0, m.start() - 200):m.start() + 4000]


SIGNED_URL = re.compile(r"^/v1/images/([0-9a-f-]{36})/(file|thumbnail)\?exp=(\d+)&sig=[0-9a-f]{64}$")


def check_signed_urls(image):
    """An image object's file_url and thumbnail_url: relative signed URLs of
    its own file and thumbnail (null when it has none), in the image and in
    its variants."""
    for im in [image] + list(image.get("variants", [])):
        m = SIGNED_URL.match(im["file_url"] or "")
        assert m and m[1] == im["id"] and m[2] == "file", im
        if im.get("thumbnail_path"):
            m = SIGNED_URL.match(im["thumbnail_url"] or "")
            assert m and m[1] == im["id"] and m[2] == "thumbnail", im
        else:
            assert im["thumbnail_url"] is None, im


def as_stored(event):
    """An event as sent over SSE, less what is added on the way out (the
    signed image URLs, checked here): the event as run_events holds it."""
    if event.get("type") != "image_generated":
        return event
    e = json.loads(json.dumps(event))
    check_signed_urls(e["image"])
    for im in [e["image"]] + list(e["image"].get("variants", [])):
        del im["file_url"], im["thumbnail_url"]
    return e


def db_events(env, run_id):
    """[(seq, type, body as JSON)] of a run, from run_events."""
    return [(s, t, json.loads(b)) for s, t, b in env.sql(
        "SELECT seq, type, body FROM run_events WHERE run_id = ? ORDER BY seq", run_id)]


def run_row(env, run_id):
    (row,) = env.sql("SELECT status, total, success_count, failed_count, last_seq, finished_at"
                     " FROM runs WHERE id = ?", run_id)
    return dict(zip(("status", "total", "success_count", "failed_count", "last_seq",
                     "finished_at"), row))


def primaries_by_storyboard(env, project_id, run_id=None, status="completed"):
    """{storyboard_id: number of primary images with status} over every
    storyboard of the project (0 when it has none)."""
    q = ("SELECT s.id, (SELECT count(*) FROM generated_images g WHERE g.storyboard_id = s.id"
         " AND g.is_primary = 1 AND g.status = ?" + (" AND g.run_id = ?" if run_id else "") +
         ") FROM storyboards s WHERE s.project_id = ?")
    args = (status, run_id, project_id) if run_id else (status, project_id)
    return dict(env.sql(q, *args))


import threading  # noqa: E402


class Follower(threading.Thread):
    """An SSE client that follows a project's latest run across service
    restarts: on a broken stream it reconnects (to whatever port the service
    has now) with Last-Event-ID, until it has the run's done event."""

    def __init__(self, service, project_id, deadline_s=600):
        super().__init__(daemon=True)
        self.service, self.pid = service, project_id
        self.got = []           # (seq, event) in the order received
        self.error = None
        self.reconnects = 0
        self.deadline = time.monotonic() + deadline_s

    def run(self):
        try:
            self._follow()
        except Exception as e:      # noqa: BLE001 - reported by the test
            self.error = repr(e)

    def _follow(self):
        while time.monotonic() < self.deadline:
            last = self.got[-1][0] if self.got else 0
            try:
                c = self.service.sse(f"/v1/projects/{self.pid}/image-generation/events",
                                     headers={"Last-Event-ID": str(last)}, timeout=60)
            except (OSError, TypeError, http.client.HTTPException):
                time.sleep(0.05)    # the service is down or has no port yet
                continue
            try:
                if c.status != 200:
                    time.sleep(0.05)
                    continue
                if self._read(c):
                    return
            finally:
                c.close()
            self.reconnects += 1
        raise AssertionError("follower gave up")

    def _read(self, c, lost=(OSError, http.client.HTTPException)):
        """Appends the stream's events until it ends (lost: what counts as
        its end); whether it had `done`."""
        while True:
            try:
                m = c.next()
            except lost:
                return False
            if m is None:
                return False
            if m["id"] is None:
                continue    # connected
            self.got.append((m["id"], as_stored(m["data"])))
            if m["data"]["type"] == "done":
                return True


def assert_followers_saw_the_db(env, run_id, followers):
    want = [(s, b) for s, _t, b in db_events(env, run_id)]
    for f in followers:
        f.join(timeout=120)
        assert not f.is_alive()
        assert f.error is None, f.error
        # Every event received is the database's event of that seq: none was
        # sent before it was committed, none skipped, none doubled.
        assert f.got == want, (len(f.got), len(want),
                               next(((a, b) for a, b in zip(f.got, want) if a != b), None))


# ---- building and installing (test_build, test_install) ----

# What a make started by `make check` passes down to its children.  A test
# that runs make itself starts from none of it, so that it builds what it
# names and nothing of the outer build leaks in (BUILD=build-asan, CFLAGS).
_MAKE_VARS = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "CFLAGS", "CXXFLAGS",
              "LDFLAGS", "CC", "CXX", "BUILD", "PREFIX", "DESTDIR", "SYSCONFDIR",
              "PKG_CONFIG_PATH", "PKG_CONFIG_SYSROOT_DIR", "T2ISTAGE_CONF")
MAKE_TIMEOUT = 600


def make_env(**extra):
    e = {k: v for k, v in os.environ.items() if k not in _MAKE_VARS}
    e.update(extra)
    return e


def run_make(*args, cwd=ROOT, env=None, check=True):
    """`make ARGS` in cwd; returns CompletedProcess (output as text)."""
    cp = subprocess.run(["make", *args], cwd=cwd, env=env or make_env(), capture_output=True,
                        text=True, timeout=MAKE_TIMEOUT)
    if check:
        assert cp.returncode == 0, (args, cp.stdout[-4000:], cp.stderr[-4000:])
    return cp


# ---- helpers of the service tests (test_serve, test_api_v2, test_browser_*) ----

def slow_service(service, n_delay_ms=200, workers_max=2, batch_size=1, trace=True, **kw):
    """Configures the slow plugin as the default provider, with a trace file
    and a gate file (prompts with GATE wait for it); returns the trace path."""
    env = service.env
    path = os.path.join(env.path, "trace") if trace else None
    opts = {"delay_ms": n_delay_ms, "gate": gate_path(env)}
    if path:
        opts["trace"] = path
    service.configure(providers=[provider_conf("slow", **opts)], workers_max=workers_max,
                      batch_size=batch_size, **kw)
    return path


def gate_path(env):
    return os.path.join(env.path, "gate")


def open_gate(env):
    with open(gate_path(env), "w"):
        pass


def assert_json_error(r, status, *needles):
    assert r.status == status, r
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    doc = r.json()
    assert list(doc) == ["error"] and isinstance(doc["error"], str) and doc["error"], doc
    for n in needles:
        assert n in doc["error"], (n, doc)
    return doc["error"]


def run_path(pid, tail=""):
    return f"/v1/projects/{pid}/image-generation{tail}"


def wait_run_done(env, run_id, timeout=120):
    """Waits until the run has a `done` event in the database; returns it."""
    def done():
        rows = env.sql("SELECT body FROM run_events WHERE run_id = ? AND type = 'done'", run_id)
        return json.loads(rows[0][0]) if rows else None
    return wait_for(done, timeout=timeout, interval=0.05, what=f"run {run_id} to end")


def completed_count(env, run_id):
    return env.sql("SELECT count(*) FROM generated_images WHERE run_id = ? AND is_primary = 1"
                   " AND status = 'completed'", run_id)[0][0]


def image_statuses(env, run_id):
    return dict(env.sql("SELECT status, count(*) FROM generated_images WHERE run_id = ?"
                        " AND is_primary = 1 GROUP BY status", run_id))


def assert_stream_matches_db(env, run_id, msgs, after=0):
    """msgs: a whole stream (connected first); its events are exactly the
    database's events of the run with seq > after, in order, ending with done."""
    assert msgs, "empty stream"
    first = msgs[0]
    assert first["id"] is None and first["data"]["type"] == "connected", first
    assert first["data"]["run_id"] == run_id
    rest = msgs[1:]
    want = [(s, b) for s, _t, b in db_events(env, run_id) if s > after]
    assert [(m["id"], as_stored(m["data"])) for m in rest] == want
    for m in rest:
        assert m["event"] is None
        assert m["id"] == m["data"]["seq"]
    if want:
        assert rest[-1]["data"]["type"] == "done"


# ---- the browser tests (test_browser_*.py): Debian's chromium through
# playwright-core (tests/browser, installed by tools/install-deps) ----

BROWSER_DIR = os.path.join(ROOT, "tests", "browser")


class StaticSite:
    """A tiny static web server on 127.0.0.1 (a free port), serving a blank
    page: another origin for the browser tests' pages.  origin is
    "http://127.0.0.1:PORT"; requests counts what it was asked."""

    def __init__(self):
        import http.server

        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                site.requests.append(self.path)
                body = b"<!doctype html><meta charset=utf-8><title>t2i test page</title>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.requests = []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site():
    s = StaticSite()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def other_site():
    s = StaticSite()
    try:
        yield s
    finally:
        s.stop()


def run_browser(scenario, timeout=120, **args):
    """Runs tests/browser/SCENARIO.mjs in headless chromium with args (JSON);
    returns what it returned.  Fails, naming the fix, when the browser or
    playwright-core is not installed: these tests are part of `make check`."""
    for need, what in [("/usr/bin/chromium", "Debian's chromium"),
                       (os.path.join(BROWSER_DIR, "node_modules", "playwright-core"),
                        "playwright-core (npm ci in tests/browser)")]:
        assert os.path.exists(need), f"{what} is missing: run tools/install-deps"
    args.setdefault("timeout_ms", timeout * 1000)
    cp = subprocess.run(["node", os.path.join(BROWSER_DIR, "run.mjs"),
                         os.path.join(BROWSER_DIR, scenario), json.dumps(args)],
                        capture_output=True, text=True, timeout=timeout + 30, cwd=BROWSER_DIR)
    lines = [line for line in cp.stdout.splitlines() if line.startswith("{")]
    assert lines, (cp.returncode, cp.stdout[-2000:], cp.stderr[-3000:])
    out = json.loads(lines[-1])
    assert out["ok"], out["error"] + "\n" + cp.stderr[-3000:]
    return out["result"]
