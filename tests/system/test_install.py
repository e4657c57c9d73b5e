"""`make install` into a temporary DESTDIR with a PREFIX and a SYSCONFDIR of
its own: every file where it belongs with the installed paths written in, the
installed binary running its installed plugins and modules, the example
plugin built out of tree against the installed header in C and in C++ and
loaded by that binary, and `make uninstall` removing every file again."""

import glob
import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT, RUN_TIMEOUT, events_of, make_env, run_make

# Neither default: SYSCONFDIR outside PREFIX, as the FHS has it for /opt.
PREFIX = "/opt/t2istage-test"
SYSCONFDIR = "/etc/opt/t2istage-test"
PLUGINDIR = f"{PREFIX}/lib/t2istage/plugins"
PKGCONFIGDIR = f"{PREFIX}/lib/pkgconfig"
MANUALS = ("man8/t2istage.8", "man5/t2istage.conf.5", "man7/t2istage-plugin.7",
           "man7/t2istage-providers.7")
EXAMPLE = os.path.join(ROOT, "examples", "plugin-hello")
STRICT = "-O2 -g -Wall -Wextra -Werror"


class Install:
    def __init__(self, base):
        self.base = str(base)
        self.build = os.path.join(self.base, "build")
        self.destdir = os.path.join(self.base, "dest")
        self.vars = [f"BUILD={self.build}", f"PREFIX={PREFIX}", f"SYSCONFDIR={SYSCONFDIR}",
                     f"DESTDIR={self.destdir}"]

    def path(self, installed):
        """Where an installed path is inside DESTDIR."""
        return self.destdir + installed

    @property
    def binary(self):
        return self.path(f"{PREFIX}/bin/t2istage")

    def files(self):
        """Every file under DESTDIR, as installed paths."""
        out = set()
        for top, _dirs, names in os.walk(self.destdir):
            out.update(os.path.join(top, n)[len(self.destdir):] for n in names)
        return out

    def t2i(self, conf, *args, check=0):
        cp = subprocess.run([self.binary, "-c", conf, *args], capture_output=True, text=True,
                            timeout=RUN_TIMEOUT, cwd=self.base, env=make_env())
        if check is not None:
            assert cp.returncode == check, (args, cp.stdout[-3000:], cp.stderr[-3000:])
        return cp


@pytest.fixture(scope="module")
def inst(tmp_path_factory):
    i = Install(tmp_path_factory.mktemp("install"))
    os.chmod(i.base, 0o755)
    run_make("-j2", *i.vars, "install")
    return i


def shipped_plugins():
    return sorted(os.path.basename(p)[:-2] for p in glob.glob(os.path.join(ROOT, "plugins", "*.c"))
                  if os.path.basename(p) not in ("phttp.c", "phttp_task.c"))


def expected_files():
    man = {f"{PREFIX}/share/man/man{p[-1]}/{os.path.basename(p)}"
           for p in glob.glob(os.path.join(ROOT, "man", "*.[1-8]"))}
    return {
        f"{PREFIX}/bin/t2istage",
        f"{PREFIX}/lib/t2istage/thumb_vips.so",
        f"{PREFIX}/lib/t2istage/fetch_curl.so",
        f"{PREFIX}/lib/t2istage/post_curl.so",
        f"{PREFIX}/include/t2istage/plugin.h",
        f"{PKGCONFIGDIR}/t2istage-plugin.pc",
        f"{SYSCONFDIR}/t2istage/t2istage.conf.example",
        f"{PREFIX}/lib/systemd/system/t2istage.service",
    } | {f"{PLUGINDIR}/{p}.so" for p in shipped_plugins()} | man \
        | {f"{PREFIX}/share/man/{m}" for m in MANUALS}


def test_install_puts_every_file_in_place(inst):
    assert inst.files() == expected_files()
    for f in inst.files():
        mode = os.stat(inst.path(f)).st_mode & 0o7777
        want = 0o755 if f.endswith((".so", "/t2istage")) else 0o644
        assert mode == want, (f, oct(mode))
    with open(inst.path(f"{PREFIX}/include/t2istage/plugin.h"), "rb") as a, \
            open(os.path.join(ROOT, "include", "t2istage", "plugin.h"), "rb") as b:
        assert a.read() == b.read()


def read(inst, installed):
    with open(inst.path(installed)) as f:
        return f.read()


def assert_paths_rewritten(installed, text):
    """No placeholder left and no default path where another was asked for."""
    assert not re.search(r"@[A-Z_]+@", text), installed
    assert "/usr/local" not in text, installed
    assert "/etc/t2istage" not in text, installed


def test_installed_texts_name_the_installed_paths(inst):
    unit = read(inst, f"{PREFIX}/lib/systemd/system/t2istage.service")
    assert re.search(rf"^ExecStart={PREFIX}/bin/t2istage -c {SYSCONFDIR}/t2istage/t2istage.conf"
                     r" serve$", unit, re.M), unit
    conf = read(inst, f"{SYSCONFDIR}/t2istage/t2istage.conf.example")
    assert re.search(rf'^\s*dir = "{PLUGINDIR}";', conf, re.M), conf
    assert f"{SYSCONFDIR}/t2istage/t2istage.conf" in conf
    for f in sorted(inst.files()):
        if not f.endswith((".so", "/t2istage")):
            assert_paths_rewritten(f, read(inst, f))
    help_text = subprocess.run([inst.binary, "--help"], capture_output=True, text=True,
                               timeout=RUN_TIMEOUT).stdout
    assert f"{SYSCONFDIR}/t2istage/t2istage.conf" in help_text


def pkg_config(inst, *args, sysroot=False):
    e = make_env(PKG_CONFIG_PATH=inst.path(PKGCONFIGDIR))
    if sysroot:
        e["PKG_CONFIG_SYSROOT_DIR"] = inst.destdir
    cp = subprocess.run(["pkg-config", *args, "t2istage-plugin"], capture_output=True,
                        text=True, env=e, timeout=RUN_TIMEOUT)
    assert cp.returncode == 0, cp.stderr
    return cp.stdout.strip()


def test_pkg_config_file(inst):
    version = subprocess.run([inst.binary, "--version"], capture_output=True, text=True,
                             timeout=RUN_TIMEOUT).stdout.split()[1]
    assert pkg_config(inst, "--modversion") == version
    assert pkg_config(inst, "--cflags") == f"-I{PREFIX}/include"
    assert pkg_config(inst, "--cflags", sysroot=True) == f"-I{inst.destdir}{PREFIX}/include"
    assert pkg_config(inst, "--variable=plugindir") == PLUGINDIR
    assert pkg_config(inst, "--libs") == ""


def write_conf(inst, name, providers, thumbnails):
    path = os.path.join(inst.base, name)
    var = os.path.join(inst.base, "var-" + name)
    with open(path, "w") as f:
        f.write(f'database = "{var}/t2istage.db";\n'
                f'storage = {{ dir = "{var}/images"; thumbnails = {str(thumbnails).lower()}; }};\n'
                f'plugins = {{ dir = "{inst.path(PLUGINDIR)}"; }};\n'
                "providers = (\n  " + ",\n  ".join(providers) + "\n);\n")
    return path


def plugin_lines(inst, conf):
    """{plugin: its line} from `t2istage plugins`."""
    out = inst.t2i(conf, "plugins").stdout
    return {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}


def run_project(inst, conf, provider, ratio="1:1", resolution="1k"):
    """A two-storyboard project on provider; returns its image events."""
    proj = os.path.join(inst.base, f"project-{provider}.json")
    with open(proj, "w") as f:
        json.dump({"name": provider, "image_providers": [provider],
                   "params": {"ratio": ratio, "resolution": resolution},
                   "storyboards": [{"image_prompt": "a lighthouse at dusk"},
                                   {"image_prompt": "a fox in the snow"}]}, f)
    cp = inst.t2i(conf, "run", proj, "--json")
    events = [json.loads(line) for line in cp.stdout.splitlines() if line.strip()]
    assert events[-1]["type"] == "done" and events[-1]["data"]["success_count"] == 2, events[-1]
    return [e["image"] for e in events_of(events, "image_generated")]


def test_installed_binary_runs_installed_plugins(inst):
    conf = write_conf(inst, "shipped.conf",
                      ['{ name = "preview"; plugin = "placeholder"; default = true; }'],
                      thumbnails=True)
    lines = plugin_lines(inst, conf)
    assert sorted(lines) == shipped_plugins()
    for name, line in lines.items():
        assert line.split()[1] == "ok", line
    inst.t2i(conf, "check-config")
    images = run_project(inst, conf, "preview")
    for im in images:
        assert (im["width"], im["height"]) == (1024, 1024)
        assert os.path.isfile(im["file_path"])
        # Thumbnails come from the installed thumb_vips module.
        assert im["thumbnail_path"] and os.path.isfile(im["thumbnail_path"]), im


def build_example(inst, where):
    """examples/plugin-hello copied out of the tree, built against the
    DESTDIR install and installed into its plugin directory."""
    src = os.path.join(inst.base, where)
    shutil.copytree(EXAMPLE, src)
    pc = inst.path(PKGCONFIGDIR)
    run_make(f"CFLAGS={STRICT}", f"CXXFLAGS={STRICT}", cwd=src,
             env=make_env(PKG_CONFIG_PATH=pc, PKG_CONFIG_SYSROOT_DIR=inst.destdir))
    run_make("install", f"DESTDIR={inst.destdir}", cwd=src, env=make_env(PKG_CONFIG_PATH=pc))
    return src


def test_example_plugin_in_c_and_cxx(inst):
    before = inst.files()
    src = build_example(inst, "plugin-hello")
    try:
        for so in ("hello.so", "hello_cxx.so"):
            assert os.path.isfile(inst.path(f"{PLUGINDIR}/{so}")), so
        conf = write_conf(inst, "hello.conf",
                          ['{ name = "c"; plugin = "hello"; default = true; }',
                           '{ name = "cxx"; plugin = "hello_cxx"; }'], thumbnails=False)
        lines = plugin_lines(inst, conf)
        for name in ("hello", "hello_cxx"):
            assert lines[name].split()[1:3] == ["ok", "abi"], lines[name]
        for provider, ratio, size in (("c", "1:1", (1024, 1024)), ("cxx", "16:9", (1024, 576))):
            for im in run_project(inst, conf, provider, ratio=ratio, resolution="1k"):
                assert (im["width"], im["height"]) == size, im
                with open(im["file_path"], "rb") as f:
                    head = f.read(12)
                assert head[:4] == b"RIFF" and head[8:12] == b"WEBP", (provider, head)
    finally:
        run_make("uninstall", f"DESTDIR={inst.destdir}", cwd=src,
                 env=make_env(PKG_CONFIG_PATH=inst.path(PKGCONFIGDIR)))
    assert inst.files() == before


def test_uninstall_removes_every_file(inst):
    run_make(*inst.vars, "uninstall")
    assert inst.files() == set()
    for own in (f"{PREFIX}/lib/t2istage", f"{PREFIX}/include/t2istage",
                f"{SYSCONFDIR}/t2istage"):
        assert not os.path.exists(inst.path(own)), own
