"""Checks shared by the tests of the ark, dashscope and comfyui plugins: what class of error
a run saw, and that a secret reached no output, event or database byte."""

import os
import re

from conftest import events_of, project_id_of, rate_warnings, retry_warnings

FAILOVER = re.compile(r"^storyboard \d+: provider (\S+) failed \((\w+): (.*)\); moving to "
                      r"provider \S+$", re.S)


def seen_class(events):
    """(class, cause) of the first failure of the run's first provider: from a retry
    warning, a failover warning, or (rejected, not retried, not failed over) an error."""
    for e in events_of(events, "warning"):
        for w in retry_warnings([e]):
            return w["cls"], w["cause"]
        for w in rate_warnings([e]):
            return "rate_limited", w["cause"]
    for e in events_of(events, "warning"):
        m = FAILOVER.match(e["message"])
        if m:
            return m[2], m[3]
    errors = events_of(events, "error")
    if errors:
        return "rejected", re.sub(r"^storyboard \d+: ", "", errors[0]["error"])
    return None, None


def failover_pair(primary):
    """A provider under test (its config text) with the placeholder behind it, so that auth
    and quota show as a failover and the run still completes."""
    return [primary, '{ name = "b"; plugin = "placeholder"; }']


def assert_secret_nowhere(env, secret, texts, project_id):
    """secret is in none of texts (outputs of the binary), nor in what status and images
    print, nor in any byte of the database and its side files."""
    assert all(secret not in t for t in texts)
    for args in (("status",), ("status", project_id, "--json"), ("images", project_id),
                 ("images", project_id, "--json")):
        cp = env.t2i(*args)
        assert secret not in cp.stdout + cp.stderr, args
    for suffix in ("", "-wal", "-shm", "-journal"):
        if os.path.exists(env.db + suffix):
            with open(env.db + suffix, "rb") as f:
                assert secret.encode() not in f.read(), env.db + suffix


def run_project(env, sbs, *args, expect=None, **top):
    """`run FILE --json -v`: (exit status, events, CompletedProcess, project id)."""
    cp = env.t2i("-v", "run", env.project(sbs, **top), "--json", *args, check=expect)
    import json
    events = [json.loads(line) for line in cp.stdout.splitlines() if line.strip()]
    return cp.returncode, events, cp, project_id_of(events)
