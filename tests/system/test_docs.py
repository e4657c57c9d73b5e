"""The manuals and the documents the tree points to.

Each manual in man/ renders without a single groff warning and is shown by
`man -l`; t2istage.conf(5) documents every key src/core/config.c accepts (read
from its source, so that a key added without documentation fails here);
t2istage(8) documents every command and option of src/cli/main.c; the plugin in
t2istage-plugin(7)'s EXAMPLE compiles and makes images with the real binary;
and no file of the tree names a document (*.md, a manual, a path) that is not
in the tree."""

import glob
import hashlib
import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT

MAN = os.path.join(ROOT, "man")
PAGES = {"t2istage.8": "T2ISTAGE", "t2istage.conf.5": "T2ISTAGE.CONF",
         "t2istage-plugin.7": "T2ISTAGE-PLUGIN"}
# Files that other programs or people read: each may only point inside the tree.
SCANNED = ["README.md", "Makefile", "doc", "etc", "examples", "include", "man", "modules",
           "plugins", "src", "tests", "tools"]
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
    for struct in re.findall(r"^struct (t2i_\w+) \{", header, re.M):
        assert f"struct {struct} {{" in text, struct
    for word in ("T2I_ABI_VERSION", "struct_size", "pkg-config --cflags t2istage-plugin",
                 "pkg-config --variable=plugindir t2istage-plugin", "descriptor 3",
                 "timeout_s", "fork(2)", "RTLD_NOW | RTLD_LOCAL"):
        assert word in text, word


def test_plugin_manual_example_builds_and_runs(env, tmp_path):
    page = read("man/t2istage-plugin.7")
    code = unroff(page.split(".SH EXAMPLE\n", 1)[1].split(".EX\n", 1)[1].split(".EE\n", 1)[0])
    assert "generate_image" in code and "T2I_PLUGIN(" in code
    src = tmp_path / "still.c"
    src.write_text(code)
    so = os.path.join(env.plugins, "still.so")
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
                    "-I" + os.path.join(ROOT, "include"), "-o", so, str(src)], check=True)
    os.chmod(so, 0o755)
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


# ------------------------------------------------- references in the tree


def test_every_named_document_is_in_the_tree():
    """A name ending in .md and a manual t2istage*(N), in any file, and a
    path under one of the tree's top directories, in a document, must exist
    in the tree (code and tests build paths of their own)."""
    tops = "src|tests|tools|etc|plugins|doc|man|include|examples|modules"
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
