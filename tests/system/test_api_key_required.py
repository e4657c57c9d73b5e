"""Plugins that need an api key say so in their data symbol (T2I_PLUGIN_NEEDS_API_KEY, ABI
version 2): a provider of theirs without a key is a configuration error, named FILE:LINE:
providers[N].api_key, for check-config, run, retry, serve at start and a reload, with
nothing written.  A plugin built against the version 1 header has no flags and still loads.
"""

import os
import signal

from conftest import SERVICE_WAIT, http_provider, provider_conf

JIMENG_URL = "http://127.0.0.1:9/jimeng/v1/images/generations"     # never asked


def line_of(path, name):
    """The 1-based line of path on which provider name's group opens."""
    with open(path) as f:
        return next(n for n, text in enumerate(f.read().splitlines(), 1)
                    if f'{{ name = "{name}";' in text)


def keyless(name, plugin, url=JIMENG_URL):
    """A provider group over three lines: the line named must be the opening one."""
    return f'{{ name = "{name}"; plugin = "{plugin}";\n    api_url = "{url}";\n  }}'


def missing_key(path, line, index, plugin):
    return (f"{path}:{line}: providers[{index}].api_key: missing (plugin {plugin} needs an "
            "api key: set api_key or api_key_file)")


def test_check_config_names_file_line_and_key(env):
    env.write_config(providers=[provider_conf("ok", "ok"), keyless("jm", "jimeng"),
                                keyless("oa", "openai"), keyless("sd", "sdwebui")])
    cp = env.t2i("check-config")
    assert cp.returncode == 1 and cp.stdout == "", cp
    # sdwebui's Basic auth is optional: no line for it.
    assert cp.stderr.splitlines() == [
        "t2istage: " + missing_key(env.conf, line_of(env.conf, "jm"), 1, "jimeng"),
        "t2istage: " + missing_key(env.conf, line_of(env.conf, "oa"), 2, "openai")]
    assert env.snapshot() is None

    # With keys (inline or from a file) the same providers are valid.
    keyfile = os.path.join(env.path, "jm.key")
    with open(keyfile, "w") as f:
        f.write("sk-from-file\n")
    env.write_config(providers=[
        provider_conf("ok", "ok"),
        f'{{ name = "jm"; plugin = "jimeng"; api_url = "{JIMENG_URL}"; api_key_file = "jm.key"; }}',
        http_provider("oa", "openai", JIMENG_URL, default=False), keyless("sd", "sdwebui")])
    cp = env.t2i("check-config", check=0)
    assert "is valid (4 providers)" in cp.stdout and cp.stderr == ""


def test_provider_in_an_included_file_names_that_file(env):
    inc = os.path.join(env.path, "providers.inc")
    with open(inc, "w") as f:
        f.write("# providers\n\n" + provider_conf("ok", "ok") + ",\n" + keyless("jm", "jimeng")
                + "\n")
    assert line_of(inc, "jm") == 4
    env.write_config(providers=[])
    with open(env.conf) as f:
        text = f.read().replace("providers = (\n  \n);",
                                'providers = (\n@include "providers.inc"\n);')
    with open(env.conf, "w") as f:
        f.write(text)
    cp = env.t2i("check-config")
    assert cp.returncode == 1
    # The file as the @include names it, as for every other error inside it.
    assert cp.stderr == "t2istage: " + missing_key("providers.inc", 4, 1, "jimeng") + "\n"


def test_run_and_retry_refuse_before_writing_anything(env):
    project = env.project(["a"])
    env.write_config(providers=[provider_conf("ok", "ok")])
    cp = env.t2i("import", project, check=0)
    pid = cp.stdout.strip()
    before = env.snapshot()
    env.write_config(providers=[provider_conf("ok", "ok"), keyless("jm", "jimeng")])
    want = "t2istage: " + missing_key(env.conf, line_of(env.conf, "jm"), 1, "jimeng") + "\n"
    for args in (("run", env.project(["b"]), "--json"), ("run", pid), ("retry", pid)):
        cp = env.t2i(*args)
        assert (cp.returncode, cp.stdout, cp.stderr) == (1, "", want), (args, cp)
        assert env.snapshot() == before, args
    # A fresh state directory: not even the database is created.
    os.remove(env.db)
    cp = env.t2i("run", project, "--json")
    assert cp.returncode == 1 and not os.path.exists(env.db)


def test_serve_refuses_to_start_and_a_reload_is_refused(env, service):
    providers = [provider_conf("ok", "ok"), keyless("jm", "jimeng")]
    service.configure(providers=providers)
    line = line_of(env.conf, "jm")
    service.start(wait=False)
    assert service.proc.wait(timeout=SERVICE_WAIT) == 1
    log = service.log()
    assert missing_key(env.conf, line, 1, "jimeng") in log, log
    assert "listening" not in log
    assert env.snapshot() is None, "serve wrote nothing before refusing"

    # Started with a key; the reload that drops it is refused and the old one stays.
    service.configure(providers=[provider_conf("ok", "ok"),
                                 http_provider("jm", "jimeng", JIMENG_URL, default=False)])
    service.start()
    service.configure(providers=providers)
    service.kill(signal.SIGHUP)
    service.wait_log("reload refused")
    refused = [t for t in service.log().splitlines() if "reload refused" in t]
    assert len(refused) == 1 and missing_key(env.conf, line, 1, "jimeng") in refused[0]
    assert service.get("/healthz").status == 200
    assert service.proc.poll() is None


def test_plugins_shows_the_flag_and_a_version_1_plugin_loads(env):
    cp = env.t2i("plugins", check=0)
    rows = {line.split()[0]: line for line in cp.stdout.splitlines()[1:]}
    assert "(host ABI 2)" in cp.stdout.splitlines()[0]
    for name in ("jimeng", "openai"):
        assert rows[name].split()[1:4] == ["ok", "abi", "2"], rows[name]
        assert rows[name].endswith(" [needs api_key]"), rows[name]
    for name in ("sdwebui", "placeholder", "ok"):
        assert "needs api_key" not in rows[name], rows[name]
    # Built against the version 1 header: its struct ends before flags.
    assert rows["abi1"].split()[1:4] == ["ok", "abi", "1"], rows["abi1"]
    assert rows["abi1"].endswith("abi1 1.0: test: built against ABI version 1")

    env.write_config(providers=[provider_conf("v1", "abi1")])
    assert "is valid" in env.t2i("check-config", check=0).stdout
    rc, events, _ = env.run_json(env.project(["old plugin", "still works"]), expect=0)
    assert events[-1]["data"]["success_count"] == 2
