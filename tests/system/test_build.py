"""The build as a newcomer meets it: the README's `make demo`, then
`make check`, in a fresh copy of the tree on a machine whose packages are
not installed yet; and header dependencies that rebuild only what includes
the header that changed.

A fresh machine is imitated with two stand-ins on PATH: a pkg-config that
knows no package until the install step has run (as on a machine without
the -dev packages), and an install step (INSTALL_DEPS) that records when it
ran and then lets pkg-config answer.  A Makefile that computed its flags
before installing would link the binary without its libraries, as happened
on a real fresh Debian 12."""

import json
import os
import re
import shutil
import stat
import subprocess
import time

import pytest

from conftest import BUILD, ROOT, make_env, run_make

# Left out of the copy: build products and the checkout's own state.
SKIP_TOP = {".git", "var"}


def copy_tree(dst):
    def ignore(directory, names):
        skip = {n for n in names if n in ("__pycache__", ".pytest_cache") or n.endswith(".pyc")}
        if os.path.samefile(directory, ROOT):
            skip |= {n for n in names if n in SKIP_TOP or n.startswith("build")}
        return skip
    shutil.copytree(ROOT, dst, ignore=ignore)


def write_script(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


class Fresh:
    """A copy of the tree and the two stand-ins."""

    def __init__(self, base):
        self.base = str(base)
        self.src = os.path.join(self.base, "src")
        self.log = os.path.join(self.base, "log")
        self.installed = os.path.join(self.base, "installed")
        self.install_deps = os.path.join(self.base, "install-deps")
        bindir = os.path.join(self.base, "bin")
        os.makedirs(bindir)
        copy_tree(self.src)
        real = shutil.which("pkg-config")
        assert real, "pkg-config is not installed"
        write_script(os.path.join(bindir, "pkg-config"),
                     "#!/bin/sh\n"
                     f'echo "pkg-config $*" >>"{self.log}"\n'
                     f'[ -e "{self.installed}" ] && exec "{real}" "$@"\n'
                     "exit 1\n")
        write_script(self.install_deps,
                     "#!/bin/sh\n"
                     f'echo install-deps >>"{self.log}"\n'
                     f'touch "{self.installed}"\n')
        self.env = make_env(PATH=bindir + os.pathsep + os.environ["PATH"])

    def uninstall_packages(self):
        if os.path.exists(self.installed):
            os.unlink(self.installed)
        open(self.log, "w").close()

    def make(self, *args, check=True):
        return run_make(f"INSTALL_DEPS={self.install_deps}", *args, cwd=self.src, env=self.env,
                        check=check)

    def log_lines(self):
        with open(self.log) as f:
            return f.read().splitlines()


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    return Fresh(tmp_path_factory.mktemp("fresh"))


def assert_installed_before_use(fresh):
    """The log shows pkg-config asked in vain before the install step (so
    the imitation was real) and asked again after it."""
    log = fresh.log_lines()
    assert "install-deps" in log, log[:20]
    at = log.index("install-deps")
    assert any(line.startswith("pkg-config") for line in log[:at]), log[:20]
    assert any(line.startswith("pkg-config --libs") for line in log[at:]), log[at:at + 20]


def test_demo_on_a_fresh_machine(fresh):
    if os.path.exists("/etc/t2istage/t2istage.conf"):
        pytest.skip("/etc/t2istage/t2istage.conf exists and the demo would read it")
    fresh.uninstall_packages()
    cp = fresh.make("demo")
    assert_installed_before_use(fresh)
    done = json.loads(cp.stdout.strip().splitlines()[-1])
    assert done["type"] == "done" and done["success"], done
    assert done["data"]["failed_count"] == 0 and done["data"]["success_count"] > 0, done
    assert os.listdir(os.path.join(fresh.src, "var", "images"))


def test_check_on_a_fresh_machine(fresh):
    """`make check` after the demo, with the packages gone again: the test
    plugins, the unit tests (cmocka), the fuzz harnesses and the clang build
    still link.  The system tests are only collected here: this very file
    is one of them; and the lint, which reads the tree the outer check
    lints, is left out."""
    fresh.uninstall_packages()
    cp = fresh.make("check", "PYTEST_ARGS=--collect-only -q", "CHECK_LINT=no")
    assert_installed_before_use(fresh)
    assert re.search(r"^\[  PASSED  \] \d+ test", cp.stdout + cp.stderr, re.M), cp.stderr[-3000:]
    assert re.search(r"^tests/system/test_build.py: \d+$", cp.stdout, re.M), cp.stdout[-3000:]
    assert re.search(r"^build/fuzz/plugin_comfyui: [1-9]\d* inputs replayed$", cp.stdout, re.M), \
        cp.stdout[-3000:]
    clang = os.path.join(fresh.src, "build-clang", "t2istage")
    assert os.access(clang, os.X_OK)
    assert "clang" in subprocess.run(["readelf", "-p", ".comment", clang], capture_output=True,
                                     text=True).stdout


def compiled(cp):
    """Sources the Makefile compiled, from its "  CC      FILE" lines."""
    return sorted(m[1] for m in re.finditer(r"^  CC +(\S+)$", cp.stdout, re.M))


def includers(fresh, header, sources):
    """Sources whose preprocessing reads header, asked of the compiler
    itself (-MM), independently of the Makefile's dependency files."""
    layers = [f"-I{os.path.join('src', d)}" for d in sorted(os.listdir(os.path.join(fresh.src, "src")))]
    # tests/plugins/abi1.c is built against the version 1 header kept beside
    # it, which comes first on its include path (see the Makefile).
    sources = [s for s in sources if s != "tests/plugins/abi1.c"]
    cp = subprocess.run(["cc", "-MM", "-MG", *layers, "-Iinclude", "-Ibuild/gen", *sources],
                        cwd=fresh.src, capture_output=True, text=True, check=True)
    out, rules = [], cp.stdout.replace("\\\n", " ")
    for rule in rules.splitlines():
        deps = rule.split(":", 1)[1].split()
        if header in deps:
            out.append(deps[0])
    return sorted(out)


def touch_later(path, than):
    """Makes path newer than every file in than, and not in the future: what
    the next build writes must be newer still."""
    t = max(time.time(), max(os.stat(p).st_mtime for p in than) + 0.001)
    os.utime(path, (t, t))


def sources(fresh, *dirs):
    """The .c files of dirs; those of src/ are in one directory per layer."""
    out = []
    for d in dirs:
        subs = [os.path.join(d, s) for s in sorted(os.listdir(os.path.join(fresh.src, d)))
                if os.path.isdir(os.path.join(fresh.src, d, s))] if d == "src" else [d]
        out += [os.path.join(s, n) for s in subs
                for n in os.listdir(os.path.join(fresh.src, s)) if n.endswith(".c")]
    return sorted(out)


def built(fresh):
    out = []
    for top, _dirs, names in os.walk(os.path.join(fresh.src, "build")):
        out.extend(os.path.join(top, n) for n in names)
    return out


@pytest.mark.parametrize("header, dirs", [
    ("src/core/imgsize.h", ("src",)),
    ("plugins/phttp.h", ("plugins",)),
    ("include/t2istage/plugin.h", ("src", "plugins", "tests/plugins", "modules")),
])
def test_touching_a_header_rebuilds_only_its_includers(fresh, header, dirs):
    if not os.path.exists(fresh.installed):
        open(fresh.installed, "w").close()
    fresh.make("all", "test-plugins")
    srcs = sources(fresh, *dirs)
    want = includers(fresh, header, srcs)
    assert want and len(want) < len(sources(fresh, "src", "plugins", "tests/plugins", "modules"))
    touch_later(os.path.join(fresh.src, header), built(fresh))
    assert compiled(fresh.make("all", "test-plugins")) == want
    assert compiled(fresh.make("all", "test-plugins")) == []


def test_sysconfdir_rebuilds_what_uses_it(fresh):
    """The default configuration path is compiled in; changing SYSCONFDIR
    rebuilds the two files that use it, and only when it changed."""
    if not os.path.exists(fresh.installed):
        open(fresh.installed, "w").close()
    fresh.make("all")
    binary = os.path.join(fresh.src, "build", "t2istage")
    for sysconfdir in ("/srv/t2i-etc", "/etc"):
        cp = fresh.make("all", f"SYSCONFDIR={sysconfdir}")
        assert compiled(cp) == ["src/cli/main.c", "src/core/config.c"], cp.stdout
        assert compiled(fresh.make("all", f"SYSCONFDIR={sysconfdir}")) == []
        help_text = subprocess.run([binary, "--help"], capture_output=True, text=True).stdout
        assert f"{sysconfdir}/t2istage/t2istage.conf" in help_text


def test_web_files_are_compiled_in_and_tracked(fresh):
    """The dashboard's files (web/) become a C table at build time: a
    changed file rebuilds that table alone, a new or removed file changes
    it too, and the table is the same bytes wherever the tree is."""
    if not os.path.exists(fresh.installed):
        open(fresh.installed, "w").close()
    fresh.make("all")
    table = os.path.join(fresh.src, "build", "gen", "webasset_data.c")
    first = open(table, "rb").read()
    # The build the tests run with made the same table in another directory.
    assert first == open(os.path.join(BUILD, "gen", "webasset_data.c"), "rb").read()
    touch_later(os.path.join(fresh.src, "web", "dashboard.css"), built(fresh))
    cp = fresh.make("all")
    assert compiled(cp) == ["build/gen/webasset_data.c"], cp.stdout
    assert open(table, "rb").read() == first    # same bytes in, same table out
    assert compiled(fresh.make("all")) == []
    extra = os.path.join(fresh.src, "web", "extra.js")
    with open(extra, "w") as f:
        f.write("export const x = 1;\n")
    try:
        fresh.make("all")
        assert b'"extra.js", "text/javascript; charset=utf-8"' in open(table, "rb").read()
    finally:
        os.unlink(extra)
    fresh.make("all")
    assert open(table, "rb").read() == first
