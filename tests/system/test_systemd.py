"""The systemd unit as shipped (etc/t2istage.service), tested without systemd as PID 1:
its syntax and exposure (systemd-analyze), the binary run as the unit confines it (a
scratch uid for DynamicUser=, its SystemCallFilter=, RestrictAddressFamilies= and
MemoryDenyWriteExecute= through tests/helpers/seccomp_exec.c, credentials in a
CREDENTIALS_DIRECTORY), `t2istage reload` as its ExecReload=, a stop that leaves no process
for systemd to kill, the journal's priorities, and the CLI run by root against the
service's state."""

import ctypes
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile

import pytest

from conftest import (BIN, BUILD, NO_RETRY, ROOT, Env, Service, http_provider, provider_conf,
                      wait_for)
from test_serve import wait_run_done

UNIT = os.path.join(ROOT, "etc", "t2istage.service")
EXAMPLE_CONF = os.path.join(ROOT, "etc", "t2istage.conf")
SECCOMP_EXEC = os.path.join(BUILD, "tests", "helpers", "seccomp-exec")
ANALYZE = shutil.which("systemd-analyze")

needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


# ---- the unit file ----

def unit_service_settings():
    """[(key, value)] of the unit's [Service] section, in order."""
    out, section = [], None
    with open(UNIT) as f:
        for line in f:
            line = line.strip()
            if line.startswith("["):
                section = line
            elif section == "[Service]" and line and not line.startswith("#"):
                key, _, value = line.partition("=")
                out.append((key, value))
    return out


def installed_unit(directory):
    """The unit with @PREFIX@ replaced by a prefix in directory holding the binary, as
    `make install` writes it; returns its path."""
    prefix = os.path.join(directory, "prefix")
    os.makedirs(os.path.join(prefix, "bin"))
    os.makedirs(os.path.join(prefix, "lib", "t2istage"))
    shutil.copy(BIN, os.path.join(prefix, "bin", "t2istage"))
    with open(UNIT) as f:
        text = f.read().replace("@PREFIX@", prefix)
    assert not re.findall(r"@[A-Z_]+@", text), "a placeholder make install does not replace"
    path = os.path.join(directory, "t2istage.service")
    with open(path, "w") as f:
        f.write(text)
    return path


@needs_analyze
def test_unit_verifies(tmp_path):
    # --man=no: the manuals are not installed here; their own tests render them.
    cp = subprocess.run([ANALYZE, "verify", "--man=no", installed_unit(str(tmp_path))],
                        capture_output=True, text=True, timeout=120)
    assert cp.returncode == 0 and cp.stdout == "" and cp.stderr == "", cp
    settings = dict(unit_service_settings())
    assert settings["Type"] == "notify"
    # ExecReload runs our own binary, nothing a minimal image may lack.
    assert settings["ExecReload"] == "@PREFIX@/bin/t2istage reload $MAINPID"
    assert settings["RuntimeDirectory"] == "t2istage"      # where the status file goes
    # The credentials the unit passes are the files the example config names.
    credentials = [v for k, v in unit_service_settings() if k == "LoadCredential"]
    assert credentials == ["t2istage.token", "t2istage.jimeng.key"]
    for key, name in (("token_file", "t2istage.token"), ("api_key_file", "t2istage.jimeng.key")):
        assert example_line(key) == "${CREDENTIALS_DIRECTORY:-/etc/credstore}/" + name


# What stays exposed, and why it must (each costs what systemd-analyze says):
EXPOSED = {
    "PrivateNetwork": "the HTTP API and the providers are on the network",
    "RestrictAddressFamilies_AF_INET_INET6": "the same",
    "IPAddressDeny": "providers may be anywhere; a site can narrow it with a drop-in",
    "RestrictAddressFamilies_AF_UNIX": "socketpairs to the spawner, sd_notify",
    "PrivateUsers": "it would show root's plugin files as nobody's, and the plugin "
                    "check refuses a plugin owned by someone else than root",
    "RootDirectoryOrRootImage": "the service runs the host's libraries",
    "DeviceAllow": "char-rtc:r, which ProtectClock= itself grants",
}


@needs_analyze
def test_unit_exposure(tmp_path):
    unit = installed_unit(str(tmp_path))
    # 1.2 is the sum of what EXPOSED keeps; --threshold counts in tenths.
    cp = subprocess.run([ANALYZE, "security", "--offline=yes", "--threshold=12", unit],
                        capture_output=True, text=True, timeout=120)
    assert cp.returncode == 0, cp.stdout[-3000:] + cp.stderr[-2000:]
    cp = subprocess.run([ANALYZE, "security", "--offline=yes", "--json=short", unit],
                        capture_output=True, text=True, timeout=120, check=True)
    exposed = {c["json_field"] for c in json.loads(cp.stdout) if c["set"] is False}
    assert exposed == set(EXPOSED), (exposed - set(EXPOSED), set(EXPOSED) - exposed)


# ---- the unit's confinement, emulated ----

_groups = {}


def syscall_set(name):
    """A system call, or a @group expanded (recursively) by systemd-analyze."""
    if not name.startswith("@"):
        return {name}
    if name not in _groups:
        out = subprocess.run([ANALYZE, "syscall-filter", "--no-pager", name],
                             capture_output=True, text=True, timeout=60, check=True).stdout
        calls = set()
        for line in out.splitlines()[1:]:
            line = line.strip()
            if line and not line.startswith("#"):
                calls |= syscall_set(line)
        assert calls, name
        _groups[name] = calls
    return _groups[name]


def unit_allowed_syscalls():
    """The allow list the unit's SystemCallFilter= lines make, as systemd.exec(5) says: the
    first line's kind decides, later "~" lines take away, later lines add; execve, exit,
    exit_group, getrlimit, rt_sigreturn, sigreturn and @default are always allowed."""
    allowed = None
    for key, value in unit_service_settings():
        if key != "SystemCallFilter":
            continue
        deny = value.startswith("~")
        calls = set().union(*(syscall_set(w) for w in value.lstrip("~").split()))
        if allowed is None:
            assert not deny, "the unit's filter is an allow list"
            allowed = calls
        elif deny:
            allowed -= calls
        else:
            allowed |= calls
    assert allowed, "the unit has a SystemCallFilter="
    return allowed | {"execve", "exit", "exit_group", "getrlimit", "rt_sigreturn",
                      "sigreturn"} | syscall_set("@default")


def scratch_uid():
    """A uid no account has, from systemd's DynamicUser= range."""
    for uid in range(61184 + os.getpid() % 2000, 65520):
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
    raise AssertionError("no free uid")


class UnitEnv(Env):
    """An Env the service's user (a scratch uid) can use, as systemd would lay it out: the
    state (var/), the runtime directory (run/) and the credentials (creds/) are the
    user's; the config and plugins are root's.  Outside /tmp/pytest-of-root, which
    only root may enter."""

    def __init__(self):
        super().__init__(tempfile.mkdtemp(prefix="t2i-unit-", dir="/tmp"))
        self.uid = scratch_uid()
        self.var, self.run, self.creds = (os.path.join(self.path, d)
                                          for d in ("var", "run", "creds"))
        for d in (self.var, self.run, self.creds):
            os.mkdir(d, 0o700)
            os.chown(d, self.uid, self.uid)

    def credential(self, name, text):
        """A file in CREDENTIALS_DIRECTORY, as systemd leaves it: 0400, the user's."""
        path = os.path.join(self.creds, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o400)
        os.chown(path, self.uid, self.uid)

    def confined(self):
        """argv that runs what follows as the unit would: as the service's user, under the
        unit's SystemCallFilter=, RestrictAddressFamilies= and MemoryDenyWriteExecute=."""
        settings = unit_service_settings()
        allow = os.path.join(self.path, "allowed-syscalls")
        with open(allow, "w") as f:
            f.write("\n".join(sorted(unit_allowed_syscalls())) + "\n")
        (families,) = [v for k, v in settings if k == "RestrictAddressFamilies"]
        argv = ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups",
                SECCOMP_EXEC, "-a", allow,
                "-f", ",".join(str(int(getattr(socket, f))) for f in families.split())]
        if ("MemoryDenyWriteExecute", "yes") in settings:
            argv.append("-w")
        return argv + ["--"]

    def unit_environment(self):
        # LeakSanitizer stops the world with ptrace(), which the filter forbids (and
        # should): under `make asan` the other tests look for leaks.
        return {"RUNTIME_DIRECTORY": self.run, "CREDENTIALS_DIRECTORY": self.creds,
                "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0"}

    def remove(self):
        shutil.rmtree(self.path)


@pytest.fixture
def unit_env():
    e = UnitEnv()
    try:
        yield e
    finally:
        e.remove()


CONFINEMENT_PROBE = """
import errno, mmap, os, socket
try:
    socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
except OSError as e:
    print("netlink", errno.errorcode[e.errno])
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
except OSError as e:
    print("write+exec", errno.errorcode[e.errno])
socket.socket(socket.AF_INET6).close()
print("uid", os.getuid(), flush=True)
os.sched_setaffinity(0, os.sched_getaffinity(0))     # of @resources
print("still alive")
"""


@needs_analyze
def test_the_emulation_confines(unit_env):
    """The emulation is not a no-op: what the unit forbids fails as under systemd."""
    e = unit_env
    cp = subprocess.run([*e.confined(), "/usr/bin/python3", "-c", CONFINEMENT_PROBE],
                        capture_output=True, text=True, timeout=60)
    assert cp.stdout.splitlines() == ["netlink EAFNOSUPPORT", "write+exec EPERM",
                                      f"uid {e.uid}"], cp
    assert cp.returncode == -signal.SIGSYS, cp


def example_line(key):
    """The value of a commented-out line `# KEY = "VALUE";` of the example config."""
    with open(EXAMPLE_CONF) as f:
        (value,) = re.findall(r'^\s*#\s*' + re.escape(key) + r'\s*=\s*"([^"]+)";', f.read(),
                              re.M)
    return value


def assert_thumbnails(events):
    made = [ev["image"] for ev in events if ev["type"] == "image_generated"]
    assert made and all(im["thumbnail_path"] for im in made), made
    for im in made:
        with open(im["thumbnail_path"], "rb") as f:
            assert f.read(3) == b"\xff\xd8\xff", im      # a JPEG
    return made


@needs_analyze
def test_thumbnails_under_the_units_confinement(unit_env, fake):
    """libvips must not load its HEIF module there: libheif's libnuma calls
    set_mempolicy() from a constructor, and the unit's filter kills the worker."""
    e = unit_env
    # The key through a credential, named as the example config names it.
    e.credential("t2istage.jimeng.key", "sk-from-credential\n")
    jimeng = http_provider("jm", "jimeng", fake.jimeng_url, api_key=None, default=False)
    jimeng = jimeng[:-1] + f'api_key_file = "{example_line("api_key_file")}"; }}'
    e.write_config(providers=[provider_conf("preview", "placeholder"), jimeng],
                   thumbnails=True, extra=NO_RETRY)
    # PNG from the placeholder, then JPEG and WebP downloaded by the worker (libcurl).
    for fmt, providers in (("png", ["preview"]), ("jpeg", ["jm"]), ("webp", ["jm"])):
        fake.control({"format": fmt})
        project = e.project([f"a {fmt} lighthouse", f"a {fmt} harbour"],
                            image_providers=providers)
        cp = e.t2i("run", project, "--json", wrapper=e.confined(), env=e.unit_environment())
        assert cp.returncode == 0, (fmt, cp.stdout[-2000:], cp.stderr[-3000:])
        events = [json.loads(line) for line in cp.stdout.splitlines()]
        for im in assert_thumbnails(events):
            assert im["file_path"].endswith({"png": ".png", "jpeg": ".jpg",
                                             "webp": ".webp"}[fmt]), im
            assert os.stat(im["thumbnail_path"]).st_uid == e.uid
    posts = [r for r in fake.requests()
             if r["method"] == "POST" and r["path"].startswith("/jimeng/")]
    assert len(posts) == 4
    assert {r["headers"].get("authorization") for r in posts} == {"Bearer sk-from-credential"}


def reload_as_unit(e, pid):
    """ExecReload=: `t2istage reload $MAINPID` as the service's user, confined."""
    return e.t2i("reload", str(pid), wrapper=e.confined(), env=e.unit_environment())


@needs_analyze
def test_service_as_the_unit_runs_it(unit_env):
    """serve confined as the unit confines it: the token read through a credential named
    as the example config names it, thumbnails, ExecReload's verdicts, a clean stop."""
    e = unit_env
    e.credential("t2istage.token", "tok-from-credential\n")
    token_line = ('http = { listen = "127.0.0.1:0"; '
                  f'token_file = "{example_line("token_file")}"; }};')
    e.write_config(providers=[provider_conf("preview", "placeholder")], thumbnails=True,
                   extra=token_line)
    svc = Service(e)
    svc.token = "tok-from-credential"
    try:
        with Subreaper() as reaper:
            svc.start(extra_env=e.unit_environment(), wrapper=e.confined(), session=True)
            assert svc.get("/v1/projects", headers={"Authorization": "Bearer wrong"}).status \
                == 401
            project = svc.import_project(["a lighthouse", "a harbour"])
            assert wait_run_done(e, svc.start_run(project))["success"] is True
            (image_id,) = e.sql("SELECT id FROM generated_images LIMIT 1")[0]
            r = svc.get(f"/v1/images/{image_id}/thumbnail")
            assert r.status == 200 and r.body[:3] == b"\xff\xd8\xff", r
            cp = reload_as_unit(e, svc.pid)
            assert cp.returncode == 0, cp
            e.write_config(providers=[provider_conf("preview", "placeholder")],
                           thumbnails=True, extra=token_line, workers_max=0)
            cp = reload_as_unit(e, svc.pid)
            assert cp.returncode == 1 and "workers.max: must be between 1 and 256" in cp.stderr, cp
            assert svc.get("/healthz").status == 200
            assert svc.stop() == 0
            assert reaper.left_by(svc.pid) == []
    finally:
        if svc.proc is not None and svc.proc.poll() is None:
            svc.kill9()
    # Nothing but the refusal was worth a warning.
    log = svc.log()
    assert [line for line in priority_lines(log, "0-4") if "reload refused" not in line] == [], log
    assert "reload refused" in log, log


# ---- `t2istage reload` ----

def test_reload_command_exit_status(service):
    env = service.env
    service.configure()
    service.start()
    cp = env.t2i("reload")          # the pid from the status file
    assert cp.returncode == 0 and cp.stdout == f"t2istage: reloaded (pid {service.pid})\n", cp
    assert env.t2i("reload", env={"MAINPID": str(service.pid)}).returncode == 0
    # A config that parses but whose plugin the service refuses when it probes it: only
    # the main process knows, and the command says what it said.
    service.configure(providers=[provider_conf("bad", "badabi")])
    cp = env.t2i("reload", str(service.pid))
    assert cp.returncode == 1, cp
    (line,) = cp.stderr.splitlines()
    assert line.startswith("t2istage: reload refused, the running configuration stays: "
                           "provider bad: "), line
    assert "badabi.so" in line, line
    # A file that does not parse.
    service.configure(workers_max=0)
    cp = env.t2i("reload")
    assert cp.returncode == 1 and re.search(
        r"t2istage.conf:\d+: workers.max: must be between 1 and 256 \(got 0\)$", cp.stderr), cp
    # The old configuration still serves: a run on its provider completes.
    project = service.import_project(["still ok"])
    assert wait_run_done(env, service.start_run(project))["success"] is True
    service.configure()
    assert env.t2i("reload").returncode == 0
    assert service.log().count("reloaded:") == 3
    # Nobody to ask.
    for args, extra, needle in (
            (["1"], {}, "belongs to pid"),
            (["x1"], {}, "not a process id"),
            ([], {"RUNTIME_DIRECTORY": os.path.join(env.path, "nowhere")},
             "No such file or directory")):
        cp = env.t2i("reload", *args, env=extra)
        assert cp.returncode == 2 and needle in cp.stderr, (args, cp)
    assert service.stop() == 0
    assert not os.path.exists(os.path.join(env.path, "t2istage.status"))
    cp = env.t2i("reload", str(service.pid))
    assert cp.returncode == 2 and "No such file or directory" in cp.stderr, cp


# ---- nothing left behind ----

PR_SET_CHILD_SUBREAPER = 36


def proc_stat(pid):
    """(state, ppid, session) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[1]), int(fields[3])


class Subreaper:
    """Makes this process a child subreaper while it is entered, as systemd is for a unit:
    whatever a service started in its own session leaves behind is reparented to us and
    stays visible, even dead (a zombie), until we reap it, instead of vanishing into init."""

    def __enter__(self):
        self.libc = ctypes.CDLL(None, use_errno=True)
        assert self.libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
        self.sessions = set()
        return self

    def left_by(self, session):
        """Processes (pid, state) of the session, other than its leader, still there."""
        self.sessions.add(session)
        left = []
        for d in os.listdir("/proc"):
            st = proc_stat(d) if d.isdigit() and int(d) != session else None
            if st is not None and st[2] == session:
                left.append((int(d), st[0]))
        return left

    def __exit__(self, *exc):
        self.libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
        # What we adopted from those sessions, and only that: our children now.
        for d in os.listdir("/proc"):
            st = proc_stat(d) if d.isdigit() else None
            if st is not None and st[1] == os.getpid() and st[2] in self.sessions:
                try:
                    os.kill(int(d), signal.SIGKILL)
                    os.waitpid(int(d), 0)
                except (ProcessLookupError, ChildProcessError):
                    pass
        return False


def test_stop_leaves_no_process(service):
    env = service.env
    # Two plugins: two templates, each with spares forked ahead.
    service.configure(providers=[provider_conf("ok"), provider_conf("tiny", default=False)],
                      workers_max=4)
    with Subreaper() as reaper:
        service.start(session=True)
        roles = {"t2istage-spawn": 1, "t2istage-tmpl": 2, "t2istage-spare": 2}

        def warmed():
            names = [role_of(pid) for pid, _ in reaper.left_by(service.pid)]
            return all(names.count(r) >= n for r, n in roles.items())
        wait_for(warmed, what="templates and spares")
        project = service.import_project(["one", "two", "three"])
        assert wait_run_done(env, service.start_run(project))["success"] is True
        assert service.stop() == 0
        assert reaper.left_by(service.pid) == []
    # And `run`, whose spawner warms a template too.
    with Subreaper() as reaper:
        proc = subprocess.Popen([BIN, "-c", env.conf, "run", env.project(["a", "b"]), "--json"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                cwd=env.path, start_new_session=True)
        assert proc.wait(timeout=120) == 0
        assert reaper.left_by(proc.pid) == []


def role_of(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


# ---- the journal ----

def priority_lines(text, levels):
    return [line for line in text.splitlines() if re.match(rf"^<[{levels}]>", line)]


def test_routine_stop_is_not_a_warning(service):
    service.configure()
    service.start()
    project = service.import_project(["one"])
    assert wait_run_done(service.env, service.start_run(project))["success"] is True
    assert service.stop() == 0
    log = service.log()
    assert "signal 15: finishing work in progress" in log and "stopped" in log, log
    assert priority_lines(log, "0-4") == [], log


@pytest.mark.parametrize("plugin,prompt,level,needle", [
    ("crash", "CRASH now", "4", "worker crashed: signal 11"),
    ("hang", "HANG now", "4", "timed out after 0.2 s"),
    ("badabi", "anything", "3", "plugin refused"),
])
def test_worker_failures_reach_the_journal(env, plugin, prompt, level, needle):
    env.write_config(providers=[provider_conf(plugin)], timeout=0.2, extra=NO_RETRY)
    cp = env.t2i("run", env.project([prompt]), "--json")
    assert cp.returncode == 1, cp
    (line,) = [ln for ln in cp.stderr.splitlines() if needle in ln]
    assert line.startswith(f"<{level}>t2istage[supervisor]: run "), line
    assert "storyboard 1" in line or "provider " + plugin in line, line


# ---- the CLI run by root against the service's state ----

def test_cli_as_root_leaves_the_state_to_the_service(unit_env):
    """An admin's `t2istage run` as root, before and while the service runs as its own
    user: everything it creates belongs to the service's user, which serves the files and
    goes on storing into the same directories."""
    e = unit_env
    svc = Service(e)
    svc.configure(providers=[provider_conf("preview", "placeholder")], thumbnails=True)
    prompts = ["a lighthouse", "a harbour", "a boat"]
    cp = e.t2i("run", e.project(prompts), "--json")      # as root: creates the database
    assert cp.returncode == 0, cp.stderr
    for top, dirs, files in os.walk(e.var):
        for name in [top] + [os.path.join(top, n) for n in dirs + files]:
            st = os.lstat(name)
            assert (st.st_uid, st.st_gid) == (e.uid, e.uid), (name, st.st_uid, st.st_gid)
    try:
        svc.start(extra_env={"RUNTIME_DIRECTORY": e.run},
                  wrapper=["setpriv", f"--reuid={e.uid}", f"--regid={e.uid}",
                           "--clear-groups"])
        rows = e.sql("SELECT id, file_path, thumbnail_path FROM generated_images")
        assert len(rows) == 3
        for image_id, path, thumb in rows:
            r = svc.get(f"/v1/images/{image_id}/file")
            assert r.status == 200, r
            with open(path, "rb") as f:
                assert r.body == f.read()
            # The service writes into the directories root made: the same prompts make
            # the same files, and these are gone.
            os.unlink(path)
            os.unlink(thumb)
        project = svc.import_project(prompts)
        done = wait_run_done(e, svc.start_run(project, {"no_cache": True}))
        assert done["success"] is True and done["data"]["failed_count"] == 0, done
        for _image_id, path, thumb in rows:
            assert os.stat(path).st_uid == e.uid and os.stat(thumb).st_uid == e.uid
        # A file the service cannot read: the answer says why.
        (image_id, path), = e.sql("SELECT id, file_path FROM generated_images LIMIT 1")
        os.chmod(path, 0)
        r = svc.get(f"/v1/images/{image_id}/file")
        assert r.status == 500 and "Permission denied" in r.json()["error"], r
        assert re.search(rf"^<3>.*cannot read {re.escape(path)}: Permission denied$",
                         svc.log(), re.M), svc.log()
    finally:
        if svc.proc is not None and svc.proc.poll() is None:
            svc.stop()
