"""The manuals and the documents the tree points to.

Each manual in man/ renders without a single groff warning and is shown by
`man -l`; t2istage.conf(5) documents every key src/core/config.c accepts (read
from its source, so that a key added without documentation fails here);
t2istage(8) documents every command and option of src/cli/main.c; the two
plugins of t2istage-plugin(7)'s EXAMPLE compile and make images with the real
binary, the asynchronous one resuming its task after an interruption;
t2istage-providers(7) has a section for every shipped plugin with the options
its source reads, and a configuration example that check-config accepts and
that makes an image against tools/fakeprovider; and no file of the tree names
a document (*.md, a manual, a path) that is not in the tree."""

import glob
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import zlib

import pytest

from conftest import ROOT, events_of, image_info, interrupt_run

MAN = os.path.join(ROOT, "man")
PAGES = {"t2istage.8": "T2ISTAGE", "t2istage.conf.5": "T2ISTAGE.CONF",
         "t2istage-plugin.7": "T2ISTAGE-PLUGIN", "t2istage-providers.7": "T2ISTAGE-PROVIDERS"}
# Files that other programs or people read: each may only point inside the tree.
SCANNED = ["README.md", "Makefile", "doc", "etc", "examples", "include", "man", "modules",
           "plugins", "src", "tests", "tools", "web"]
DOCUMENTS = ("README.md", "doc/", "etc/", "man/")


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def render(page):
    """A manual as plain text (no bold, underline or colour), each paragraph
    on one line: nothing is hyphenated, broken or spread by justification."""
    cp = subprocess.run(["groff", "-man", "-Tutf8", "-P-cbou", "-rLL=2000n",
                         os.path.join(MAN, page)], capture_output=True, text=True, check=True)
    return cp.stdout


def roff_args(text):
    """A macro line's arguments: words, or "quoted" with "" for a quote."""
    args, i = [], 0
    while i < len(text):
        if text[i] == " ":
            i += 1
        elif text[i] == '"':
            j, arg = i + 1, ""
            while j < len(text) and not (text[j] == '"' and text[j + 1:j + 2] != '"'):
                arg += text[j]
                j += 2 if text[j] == '"' else 1
            args.append(arg)
            i = j + 1
        else:
            j = text.find(" ", i)
            j = len(text) if j < 0 else j
            args.append(text[i:j])
            i = j
    return args


def roff_plain(line):
    """The text of one input line of a manual, without fonts or escapes."""
    m = re.match(r"\.(B|I|BI|BR|IB|IR|RB|RI)(?: (.*))?$", line)
    if m:
        args = roff_args(m[2] or "")
        line = (" " if len(m[1]) == 1 else "").join(args)
    for esc, plain in (("\\-", "-"), ("\\&", ""), ("\\~", " "), ("\\ ", " "),
                       ("\\(dq", '"'), ("\\(bu", "*"), ("\\e", "\\"), ("\\c", "")):
        line = line.replace(esc, plain)
    return re.sub(r"\\f[BIRP]", "", line).strip()


def tags(page):
    """The tags of a manual's tagged paragraphs (the line after each .TP)."""
    lines = read(f"man/{page}").splitlines()
    return {roff_plain(lines[i + 1]) for i, line in enumerate(lines[:-1]) if line == ".TP"}


def subsections(page):
    return {roff_plain(line[4:]) for line in read(f"man/{page}").splitlines()
            if line.startswith(".SS ")}


def tree_files():
    """The project's own files under SCANNED: what git tracks when this is a
    checkout, else every file but installed packages (node_modules)."""
    cp = subprocess.run(["git", "ls-files", "--", *SCANNED], cwd=ROOT, capture_output=True,
                        text=True)
    if cp.returncode == 0 and cp.stdout.strip():
        names = cp.stdout.splitlines()
    else:
        names = []
        for top in SCANNED:
            path = os.path.join(ROOT, top)
            if os.path.isfile(path):
                names.append(top)
            for d, dirs, files in os.walk(path):
                dirs[:] = [x for x in dirs if x not in ("node_modules", "__pycache__")]
                names += [os.path.relpath(os.path.join(d, n), ROOT) for n in files]
    for rel in names:
        if os.path.isfile(os.path.join(ROOT, rel)) and \
                not rel.endswith((".so", ".o", ".png", ".jpg", ".webp", ".pyc")):
            yield rel


# ---------------------------------------------------------------- manuals


def test_every_manual_is_there():
    found = sorted(os.path.basename(p) for p in glob.glob(os.path.join(MAN, "*.[1-8]")))
    assert found == sorted(PAGES), found
    for page, title in PAGES.items():
        section = page.rsplit(".", 1)[1]
        th = re.search(r"^\.TH (\S+) (\S+)", read(f"man/{page}"), re.M)
        assert th and (th[1], th[2]) == (title, section), (page, th and th.groups())


@pytest.mark.parametrize("page", sorted(PAGES))
@pytest.mark.parametrize("device", ["utf8", "ascii"])
def test_manual_renders_without_warnings(page, device):
    cp = subprocess.run(["groff", "-man", "-ww", f"-T{device}", os.path.join(MAN, page)],
                        capture_output=True, text=True)
    assert cp.returncode == 0 and cp.stderr == "", cp.stderr
    plain = re.sub(r".\x08", "", cp.stdout)   # overstruck bold and underline
    assert "NAME" in plain and "SEE ALSO" in plain


@pytest.mark.parametrize("page", sorted(PAGES))
def test_man_shows_manual(page):
    # No seccomp sandbox: some containers refuse to load man-db's filter.
    env = dict(os.environ, MANPAGER="cat", PAGER="cat", MANWIDTH="80", LC_ALL="C",
               MAN_DISABLE_SECCOMP="1")
    env.pop("MANOPT", None)
    cp = subprocess.run(["man", "-l", os.path.join(MAN, page)], capture_output=True,
                        text=True, env=env, timeout=60)
    assert cp.returncode == 0, cp.stderr
    assert cp.stderr == "", cp.stderr
    first = cp.stdout.splitlines()[0]
    assert first.startswith(PAGES[page] + "(" + page.rsplit(".", 1)[1] + ")"), first
    # Every line fits the terminal: nothing is cut or wrapped by the pager.
    assert max(len(line) for line in cp.stdout.splitlines()) <= 80


# ----------------------------------------------------- t2istage.conf(5)


def config_keys():
    """Every key src/core/config.c accepts, as the manual writes it: "database",
    "storage.dir", "providers[N].name".  The keys are the KEYS(...) lists of
    the root, of each group (get_group) and of a provider (check_keys on a
    provider group); any other KEYS list is a new pattern this test must
    learn."""
    src = read("src/core/config.c")
    lists = lambda body: re.findall(r'"([a-z_]+)"', body)  # noqa: E731
    root = re.findall(r"check_keys\(ld,\s*root,\s*KEYS\(([^)]*)\)\)", src)
    groups = re.findall(r'get_group\(ld,\s*root,\s*"([a-z_]+)",\s*KEYS\(([^)]*)\)\)', src)
    # The members of each entry of a list: providers (the list with
    # "plugin") and webhooks (the one with "url").
    entries = re.findall(r"check_keys\(ld,\s*g,\s*KEYS\(([^)]*)\)\)", src)
    lists_of = {("providers" if '"plugin"' in body else "webhooks" if '"url"' in body
                 else None): body for body in entries}
    # Groups inside a provider's entry (budget = { per_run; per_day; }).
    inner = re.findall(r'get_group\(ld,\s*g,\s*"([a-z_]+)",\s*KEYS\(([^)]*)\)\)', src)
    assert len(root) == 1 and None not in lists_of and len(lists_of) == len(entries) and groups
    uses = len(re.findall(r"\bKEYS\(", src)) - 1   # the #define
    assert uses == len(root) + len(groups) + len(entries) + len(inner), \
        "src/core/config.c lists keys in a way this test does not read"
    keys = set(lists(root[0]))
    names = {name for name, _body in groups}
    assert names <= keys, names - keys
    keys -= names
    for name, body in groups:
        keys |= {f"{name}.{k}" for k in lists(body)}
    for name, body in lists_of.items():
        keys |= {f"{name}[N].{k}" for k in lists(body)}
    for name, body in inner:
        assert f"providers[N].{name}" in keys, name
        keys |= {f"providers[N].{name}.{k}" for k in lists(body)}
    return names, keys


def test_config_manual_documents_every_key():
    groups, keys = config_keys()
    assert {"database", "storage.dir", "http.token_file", "providers",
            "providers[N].options"} <= keys, keys
    missing = sorted(groups - subsections("t2istage.conf.5"))
    assert not missing, f"t2istage.conf(5) has no subsection for {missing}"
    documented = tags("t2istage.conf.5")
    missing = sorted(keys - documented)
    assert not missing, f"t2istage.conf(5) has no entry for {missing}"
    # And documents no key that the loader does not accept.
    key_like = {e for e in documented
                if re.fullmatch(r"[a-z_]+(?:\.[a-z_]+|\[N\]\.[a-z_]+(?:\.[a-z_]+)?)?", e)}
    assert key_like - keys == set(), key_like - keys


def test_config_manual_example_is_valid(env):
    """The EXAMPLE of t2istage.conf(5) is accepted by the loader, paths and
    plugins aside (they name an installed system)."""
    text = read("man/t2istage.conf.5")
    block = text.split(".SH EXAMPLE\n.EX\n", 1)[1].split(".EE\n", 1)[0]
    conf = unroff(block)
    for old, new in (("/var/lib/t2istage", env.path), ("/usr/local/lib/t2istage/plugins",
                                                        env.plugins)):
        conf = conf.replace(old, new)
    for secret in ("token", "jimeng.key"):
        conf = conf.replace(f"/etc/t2istage/{secret}", os.path.join(env.path, secret))
        with open(os.path.join(env.path, secret), "w") as f:
            f.write("s3cret-value\n")
    with open(env.conf, "w") as f:
        f.write(conf)
    cp = env.t2i("check-config")
    assert cp.returncode == 0, cp.stderr
    assert "(2 providers)" in cp.stdout, cp.stdout


# ------------------------------------------------------------ t2istage(8)


def test_command_manual_documents_every_command_and_option():
    main = read("src/cli/main.c")
    commands = set(re.findall(r'strcmp\(cmd, "([a-z-]+)"\)', main))
    options = set(re.findall(r'strn?cmp\(argv\[i\], "(-[a-z-]+)=?"', main))
    assert {"run", "serve", "check-config"} <= commands, commands
    assert {"--json", "-c", "--version"} <= options, options
    text = render("t2istage.8")
    entries = tags("t2istage.8")
    documented = {e.split()[0] for e in entries}
    missing = sorted(commands - documented)
    assert not missing, f"t2istage(8) has no COMMANDS entry for {missing}"
    opt_entries = {o.rstrip(",") for e in entries for o in e.split()
                   if o.startswith("-")}
    missing = sorted(o for o in options if o not in opt_entries)
    assert not missing, f"t2istage(8) has no OPTIONS entry for {missing}"
    for status in ("0", "1", "2", "3"):
        assert status in documented, f"exit status {status}"
    for section in ("EXIT STATUS", "SIGNALS", "ENVIRONMENT", "FILES", "HTTP API"):
        assert re.search(rf"^{section}$", text, re.M), section
    for word in ("SIGHUP", "SIGTERM", "SIGINT", "T2ISTAGE_CONF", "connected",
                 "Last-Event-ID", "/etc/t2istage/t2istage.conf"):
        assert word in text, word


# ------------------------------------------------------- t2istage-plugin(7)


def unroff(text):
    """Text of a no-fill block (.EX) as typed: the escapes the manuals use."""
    for esc, plain in (("\\-", "-"), ("\\&", ""), ("\\(aq", "'"), ("\\(dq", '"'),
                       ("\\e", "\\")):
        text = text.replace(esc, plain)
    return text


def test_plugin_manual_documents_the_abi():
    header = read("include/t2istage/plugin.h")
    classes = set(re.findall(r"\b(T2I_ERR_[A-Z_]+) = \d", header))
    assert len(classes) == 5, classes
    missing = sorted(classes - tags("t2istage-plugin.7"))
    assert not missing, f"t2istage-plugin(7) has no entry for {missing}"
    text = render("t2istage-plugin.7")
    for name in re.findall(r"^struct (t2i_\w+) \{", header, re.M):
        assert f"struct {name} {{" in text, name
    for word in ("T2I_ABI_VERSION", "struct_size", "pkg-config --cflags t2istage-plugin",
                 "pkg-config --variable=plugindir t2istage-plugin", "descriptor 3",
                 "timeout_s", "fork(2)", "RTLD_NOW | RTLD_LOCAL", "T2I_PLUGIN_FLAGS(",
                 "T2I_PLUGIN_NEEDS_API_KEY", "T2I_CHECKPOINT_MAX (16384)",
                 "int t2i_check_options(", "host->checkpoint()", "host->progress()",
                 "host->sleep()", "req->resume_json", "req->idempotency_key"):
        assert word in text, word
    # The structs in full: every member of the header's, in its order, with
    # the comment that ends each ABI version.
    page = unroff(read("man/t2istage-plugin.7"))
    for name, body in re.findall(r"^struct (t2i_\w+) \{\n(.*?)^\};", header, re.M | re.S):
        shown = re.search(rf"^struct {name} \{{[^\n]*\n(.*?)^\}};", page, re.M | re.S)
        assert shown, name
        assert struct_members(shown[1]) == struct_members(body), name
    # Each stop reason is explained, and so is each flag.
    stops = set(re.findall(r"\b(T2I_STOP_[A-Z]+) = [1-9]", header))
    assert len(stops) == 4 and stops <= tags("t2istage-plugin.7"), stops
    for flag in re.findall(r"^#define (T2I_PLUGIN_[A-Z_]+) 0x", header, re.M):
        assert flag in text, flag


def struct_members(body):
    """A struct body's member names and its "end of ABI version N" marks, in order."""
    out = []
    for line in body.splitlines():
        m = re.search(r"end of ABI version (\d)", line)
        if m:
            out.append(f"-- {m[1]}")
            continue
        line = re.sub(r"/\*.*?\*/", "", line).strip()
        if not line or line.startswith("/*") or line.startswith("*"):
            continue
        m = re.search(r"\(\*(\w+)\)\(|(\w+)(?:\[\w+\])?;$", line)
        if m:
            out.append(m[1] or m[2])
    return out


def test_plugin_manual_example_builds_and_runs(env, tmp_path):
    build_manual_plugin(env, tmp_path, ".SS A synchronous plugin", "still")
    not_image = tmp_path / "not-an-image.png"
    not_image.write_bytes(b"GIF89a, or anything else that is no PNG, JPEG or WebP\n" * 8)
    png = tmp_path / "still.png"
    # A real PNG made by the placeholder plugin, run through the binary.
    env.write_config(providers=['{ name = "preview"; plugin = "placeholder"; default = true; }'])
    _status, events, _cp = env.run_json(env.project(["a still"]), expect=0)
    path = [e for e in events if e["type"] == "image_generated"][0]["image"]["file_path"]
    shutil.copy(path, png)

    env.write_config(providers=[f'{{ name = "still"; plugin = "still"; default = true;'
                                f' api_url = "{png}"; }}'])
    listing = env.t2i("plugins", check=0).stdout
    assert re.search(r"^  still +ok +abi 2  still 1\.0: ", listing, re.M), listing
    env.t2i("check-config", check=0)
    status, events, cp = env.run_json(env.project(["one", "two"]), expect=0)
    done = events[-1]
    assert done["type"] == "done" and done["data"]["success_count"] == 2, cp.stdout
    want = hashlib.sha256(png.read_bytes()).hexdigest()
    for e in events:
        if e["type"] == "image_generated":
            with open(e["image"]["file_path"], "rb") as f:
                assert hashlib.sha256(f.read()).hexdigest() == want

    # Its errors as the manual says: a wrong path is rejected at once; bytes
    # that are no image are refused by the host, which says why.
    env.write_config(providers=['{ name = "still"; plugin = "still"; default = true;'
                                ' api_url = "/nonexistent/still.png"; }'],
                     extra="retry = { attempts = 1; };")
    status, events, _cp = env.run_json(env.project(["three"]), expect=1)
    err = [e for e in events if e["type"] == "error"][0]["error"]
    assert "still: /nonexistent/still.png: No such file or directory" in err, err
    env.write_config(providers=['{ name = "still"; plugin = "still"; default = true;'
                                f' api_url = "{not_image}"; }}'],
                     extra="retry = { attempts = 1; };")
    status, events, _cp = env.run_json(env.project(["four"]), expect=1)
    err = [e for e in events if e["type"] == "error"][0]["error"]
    assert "not an image" in err, err


def png_bytes(width, height):
    """A real PNG of width x height: what a renderer would write."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    rows = b"".join(b"\0" + bytes([(y * 7) % 256, 90, 160]) * width for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                              0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 1)) + chunk(b"IEND", b""))


def build_manual_plugin(env, tmp_path, section, name):
    """Compiles the first example after `section` of t2istage-plugin(7) into
    env's plugin directory as name.so."""
    page = read("man/t2istage-plugin.7")
    code = unroff(page.split(section + "\n", 1)[1].split(".EX\n", 1)[1].split(".EE\n", 1)[0])
    assert "generate_image" in code and f'T2I_PLUGIN("{name}"' in code
    src = tmp_path / f"{name}.c"
    src.write_text(code)
    so = os.path.join(env.plugins, f"{name}.so")
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-shared",
                    "-fPIC", "-I" + os.path.join(ROOT, "include"), "-o", so, str(src)],
                   check=True)
    os.chmod(so, 0o755)


def spool_tasks(env):
    """{storyboard_id: state} of the provider tasks the database holds."""
    return {sb: json.loads(st) for sb, st in env.sql(
        "SELECT storyboard_id, state FROM provider_tasks")}


def test_plugin_manual_async_example_resumes_its_task(env, tmp_path):
    """The asynchronous plugin of t2istage-plugin(7) against a spool
    directory, the test being its renderer: a run interrupted while the jobs
    wait leaves them queued and committed; a `retry` run (new image rows, so
    new idempotency keys) polls those jobs and queues none again; on the last
    attempt's deadline a job is taken off the queue and forgotten."""
    build_manual_plugin(env, tmp_path, ".SS An asynchronous plugin", "spool")
    spool = tmp_path / "spool"
    spool.mkdir()
    env.write_config(providers=[f'{{ name = "queue"; plugin = "spool"; default = true;'
                                f' api_url = "{spool}"; }}'], workers_max=2)
    listing = env.t2i("plugins", check=0).stdout
    assert re.search(r"^  spool +ok +abi 2  spool 1\.0: ", listing, re.M), listing
    env.t2i("check-config", check=0)
    project = env.project(["a lighthouse", "a fox"], params={"ratio": "1:1",
                                                            "resolution": "1k"})
    pid = env.t2i("import", project, check=0).stdout.strip()

    rc, out, err = interrupt_run(env, pid, lambda: len(spool_tasks(env)) == 2,
                                 "two jobs committed")
    assert rc != 0, out
    jobs = sorted(p.name for p in spool.iterdir())
    tasks = {t["task"] for t in spool_tasks(env).values()}
    # The tasks outlive the run, and the images show them.
    shown = json.loads(env.t2i("images", pid, "--json", check=0).stdout)
    assert sorted(im["provider_task"]["state"]["task"] for im in shown
                  if im["provider_task"]) == sorted(tasks)
    assert jobs == sorted(f"{t}.job" for t in tasks), jobs     # left queued, nothing else
    # Both polled, reporting progress of an unknown fraction; stopped by the
    # interruption, they were put back, not failed.
    first = [json.loads(line) for line in out.splitlines() if line.strip()]
    polled = {e["storyboard"]["index"] for e in events_of(first, "progress")
              if "fraction" in e and e["fraction"] is None and e["message"].endswith(": queued")}
    assert polled == {1, 2} and not events_of(first, "error"), out[-2000:]

    rendered = {}
    for task in tasks:
        w, h = map(int, (spool / f"{task}.job").read_text().split("\n")[0].split())
        rendered[task] = png_bytes(w, h)
        (spool / f"{task}.part").write_bytes(rendered[task])
        os.rename(spool / f"{task}.part", spool / f"{task}.png")
    cp = env.t2i("retry", pid, "--json", check=0)
    events = [json.loads(line) for line in cp.stdout.splitlines() if line.strip()]
    images = events_of(events, "image_generated")
    assert len(images) == 2, cp.stdout[-2000:]
    want = {hashlib.sha256(b).hexdigest() for b in rendered.values()}
    got = set()
    for ev in images:
        with open(ev["image"]["file_path"], "rb") as f:
            got.add(hashlib.sha256(f.read()).hexdigest())
        assert (ev["image"]["width"], ev["image"]["height"]) == (1024, 1024)
    assert got == want
    # Nothing was queued again, and the finished tasks are forgotten.
    assert sorted(p.name for p in spool.iterdir()) == sorted(
        [f"{t}.job" for t in tasks] + [f"{t}.png" for t in tasks])
    assert spool_tasks(env) == {}

    # The last attempt's deadline: the job leaves the queue, the task is forgotten.
    env.write_config(providers=[f'{{ name = "queue"; plugin = "spool"; default = true;'
                                f' api_url = "{spool}"; }}'], timeout=1.0,
                     extra="retry = { attempts = 1; };")
    before = set(os.listdir(spool))
    status, events, cp = env.run_json(env.project(["never rendered"]), expect=1)
    (error,) = events_of(events, "error")
    assert "stopped; job cancelled" in error["error"], error
    assert set(os.listdir(spool)) == before
    assert spool_tasks(env) == {}


# --------------------------------------------------- t2istage-providers(7)

PROVIDERS_PAGE = "t2istage-providers.7"


def shipped_plugins():
    return sorted(os.path.basename(p)[:-2] for p in glob.glob(os.path.join(ROOT, "plugins",
                                                                           "*.c"))
                  if not os.path.basename(p).startswith("phttp"))


def provider_sections():
    """{plugin: roff text} of the .SS sections of PROVIDERS."""
    body = read(f"man/{PROVIDERS_PAGE}").split("\n.SH PROVIDERS\n", 1)[1].split("\n.SH ", 1)[0]
    parts = re.split(r"^\.SS (\S+)\n", body, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def section_tags(section):
    """The words of the tags of a section's tagged paragraphs."""
    lines = section.splitlines()
    return {w.strip() for i, line in enumerate(lines[:-1]) if line == ".TP"
            for w in roff_plain(lines[i + 1]).split(",")}


def options_read(plugin):
    """The option names a plugin's source reads: looked up in its options (or
    the request parameters made of them), given a default, its own list, and
    those of phttp_task.c when it polls tasks."""
    src = read(f"plugins/{plugin}.c")
    names = set(re.findall(r"\b(?:json_object_get|phttp_str|phttp_set_default)\(\s*"
                           r"(?:c->)?(?:opts|body|params)\s*,\s*\"([a-z_]+)\"", src))
    for lst in re.findall(r"(?:own_options|refused)\[\]\s*=\s*\{([^}]*)\}", src):
        names |= set(re.findall(r'"([a-z_]+)"', lst))
    if "phttp_task_init(" in src:
        names |= set(re.findall(r'seconds_option\(opts,\s*"([a-z_]+)"',
                                read("plugins/phttp_task.c")))
    return names


def manual_workflow():
    """The ComfyUI workflow of t2istage-providers(7), as JSON."""
    for block in re.findall(r"^\.EX\n(.*?)^\.EE\n", read(f"man/{PROVIDERS_PAGE}"), re.M | re.S):
        try:
            doc = json.loads(unroff(block))
        except ValueError:
            continue
        if isinstance(doc, dict) and all("class_type" in n for n in doc.values()):
            return doc
    raise AssertionError("t2istage-providers(7) shows no workflow in API format")


def provider_example(env, plugin):
    """The configuration example of plugin's section, its /etc/t2istage files
    made real: keys, and the manual's own workflow."""
    blocks = re.findall(r"^\.EX\n(providers = \(.*?)^\.EE\n", provider_sections()[plugin],
                        re.M | re.S)
    assert len(blocks) == 1, (plugin, len(blocks))
    conf = unroff(blocks[0])
    for path in set(re.findall(r'"(/etc/t2istage/[\w./-]+)"', conf)):
        mine = os.path.join(env.path, path[len("/etc/t2istage/"):])
        os.makedirs(os.path.dirname(mine), exist_ok=True)
        with open(mine, "w") as f:
            f.write(json.dumps(manual_workflow()) if path.endswith(".json")
                    else f"sk-{plugin}-docs-KEY-1\n")
        conf = conf.replace(f'"{path}"', json.dumps(mine))
    return conf


def write_example(env, conf):
    with open(env.conf, "w") as f:
        f.write(f'database = "{env.db}";\n'
                f'storage = {{ dir = "{env.images}"; thumbnails = false; }};\n'
                f'plugins = {{ dir = "{env.plugins}"; }};\n'
                "generation = { timeout = 30.0; };\n" + conf)


def test_providers_manual_has_every_plugin_and_its_options():
    sections = provider_sections()
    assert sorted(sections) == shipped_plugins(), sorted(sections)
    synopsis = roff_plain(read(f"man/{PROVIDERS_PAGE}").split(".SH DESCRIPTION", 1)[0]
                          .replace("\n", " "))
    for plugin, section in sections.items():
        assert plugin in synopsis, plugin
        read_by_source = options_read(plugin)
        assert read_by_source or plugin == "placeholder", plugin
        missing = sorted(read_by_source - section_tags(section))
        assert not missing, f"t2istage-providers(7), {plugin}: no entry for options {missing}"
    # Who bills what, and the plugins that need a key.
    page = read(f"man/{PROVIDERS_PAGE}")
    costs = page.split("\n.SH WHAT A FAILURE COSTS\n", 1)[1].split("\n.SH ", 1)[0]
    assert section_tags(costs) == set(shipped_plugins()), section_tags(costs)
    text = render(PROVIDERS_PAGE)
    needs_key = sorted(p for p in shipped_plugins()
                       if "T2I_PLUGIN_NEEDS_API_KEY" in read(f"plugins/{p}.c"))
    listed = re.search(r"\[needs api_key\] by t2istage plugins \(([^)]*)\)", text)
    assert listed and sorted(re.findall(r"\w+", listed[1])) == needs_key, needs_key


@pytest.mark.parametrize("plugin", shipped_plugins())
def test_providers_manual_example_is_valid(env, plugin):
    write_example(env, provider_example(env, plugin))
    cp = env.t2i("check-config")
    assert cp.returncode == 0, cp.stderr
    assert "(1 providers)" in cp.stdout, cp.stdout


def fake_url(fake, plugin):
    return {"jimeng": fake.jimeng_url, "openai": fake.openai_url,
            "sdwebui": fake.sdwebui_url, "ark": fake.url + "/ark/api/v3",
            "dashscope": fake.url + "/dashscope", "comfyui": fake.url + "/comfyui"}[plugin]


@pytest.mark.parametrize("plugin", [p for p in shipped_plugins() if p != "placeholder"])
def test_providers_manual_example_makes_an_image(env, fake, plugin):
    """Each example as it stands, its api_url pointed at tools/fakeprovider's
    imitation of the service (and its poll interval shortened): one image."""
    conf = provider_example(env, plugin)
    conf, n = re.subn(r'api_url = "[^"]*"', f"api_url = {json.dumps(fake_url(fake, plugin))}",
                      conf)
    assert n == 1, conf
    conf = re.sub(r"poll_interval = [\d.]+", "poll_interval = 0.05", conf)
    write_example(env, conf)
    status, events, cp = env.run_json(env.project([{"image_prompt": "a lighthouse at dusk",
                                                    "negative_prompt": "blurry"}]), expect=0)
    (ev,) = events_of(events, "image_generated")
    mime, width, height = image_info(ev["image"]["file_path"])
    assert mime in ("image/png", "image/jpeg", "image/webp") and width > 0 and height > 0


# ------------------------------------------------- references in the tree


def test_every_named_document_is_in_the_tree():
    """A name ending in .md and a manual t2istage*(N), in any file, and a
    path under one of the tree's top directories, in a document, must exist
    in the tree (code and tests build paths of their own)."""
    tops = "src|tests|tools|etc|plugins|doc|man|include|examples|modules|web"
    bad = []
    for rel in tree_files():
        try:
            text = read(rel)
        except UnicodeDecodeError:
            continue
        here = os.path.dirname(os.path.join(ROOT, rel))
        for m in re.finditer(r"(?<![\w./-])([\w./-]*[\w-]\.md)\b", text):
            name = m[1]
            if not (os.path.exists(os.path.join(here, name)) or
                    os.path.exists(os.path.join(ROOT, name))):
                bad.append(f"{rel}: {name}")
        for m in re.finditer(r"\b(t2istage[\w.-]*)(?:\\f[A-Z])?\((\d)\)", text):
            if not os.path.exists(os.path.join(MAN, f"{m[1]}.{m[2]}")):
                bad.append(f"{rel}: {m[1]}({m[2]})")
        if not rel.startswith(DOCUMENTS):
            continue
        for m in re.finditer(rf"(?<![\w./<>-])((?:{tops})/[\w./*-]*[\w*/])", text):
            path = m[1]
            if not glob.glob(os.path.join(ROOT, path)):
                bad.append(f"{rel}: {path}")
    assert not bad, "names of documents or paths that are not in the tree:\n" + "\n".join(bad)
