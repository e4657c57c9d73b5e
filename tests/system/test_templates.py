"""Plugin templates: the spawner keeps a process per plugin file that has loaded the plugin
once, and forks that plugin's workers from it (src/proc/template.h).  These tests look at the
process tree through /proc: who is whose parent, and which processes are left."""

import json
import os
import shutil
import signal

from conftest import (db_events, process_role, provider_conf, read_trace, retry_conf, service_pids,
                      wait_for, worker_pids)
from test_serve import open_gate, slow_service, wait_run_done


def ppid_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def role_pids(env, role):
    return [p for p in service_pids(env.conf) if process_role(p) == role]


def held_worker(service, pid_project):
    """Starts a run whose first storyboard waits at the gate; returns the worker's pid."""
    env = service.env
    run = service.start_run(pid_project)
    wait_for(lambda: worker_pids(env.conf), what="a worker")
    (w,) = worker_pids(env.conf)
    return run, w


def test_workers_are_forked_from_the_plugin_template(service):
    trace = slow_service(service, n_delay_ms=10, workers_max=1, batch_size=1)
    service.start()
    env = service.env
    # The service warms the configured plugin's template before any run.
    wait_for(lambda: role_pids(env, "t2istage-tmpl"), what="the template")
    (tmpl,) = role_pids(env, "t2istage-tmpl")
    (spawner,) = role_pids(env, "t2istage-spawn")
    assert ppid_of(tmpl) == spawner
    # It keeps min(concurrency, workers.max) = 1 worker forked ahead of need: the first
    # batch goes to that spare, which then names itself a worker.
    wait_for(lambda: role_pids(env, "t2istage-spare"), what="a spare worker")
    (spare,) = role_pids(env, "t2istage-spare")
    assert ppid_of(spare) == tmpl
    pid = service.import_project(["held GATE", "next"])
    run, w = held_worker(service, pid)
    assert w == spare and ppid_of(w) == tmpl
    # A new spare is forked once the old one is taken.
    wait_for(lambda: [p for p in role_pids(env, "t2istage-spare") if p != spare],
             what="the next spare")
    open_gate(env)
    assert wait_run_done(env, run)["success"] is True
    starts = [t for t in read_trace(trace) if t[0] == "start"]
    assert len(starts) == 2 and len({t[1] for t in starts}) == 2
    # One template served both workers: it is still the same process.
    assert role_pids(env, "t2istage-tmpl") == [tmpl]


def test_replaced_plugin_gets_a_new_template(service):
    """A .so replaced on disk (new inode) is loaded by a new template for the next batch; the
    old template exits once its workers have."""
    env = service.env
    so = os.path.join(env.plugins, "slow.so")
    trace = slow_service(service, n_delay_ms=10, workers_max=1, batch_size=1)
    service.start()
    wait_for(lambda: role_pids(env, "t2istage-tmpl"), what="the template")
    (old,) = role_pids(env, "t2istage-tmpl")
    pid = service.import_project(["held GATE", "after"])
    run, w = held_worker(service, pid)
    assert ppid_of(w) == old
    # Replace the file while the first worker is held, then let it go.
    shutil.copy(so, so + ".new")
    os.chmod(so + ".new", 0o755)
    os.rename(so + ".new", so)
    open_gate(env)
    assert wait_run_done(env, run)["success"] is True
    starts = [t for t in read_trace(trace) if t[0] == "start"]
    assert len(starts) == 2
    wait_for(lambda: old not in role_pids(env, "t2istage-tmpl"), what="the old template to exit")
    (new,) = role_pids(env, "t2istage-tmpl")
    assert new != old


def test_plugin_with_a_thread_is_forked_without_template(env):
    """A plugin that starts a thread while loading cannot be forked safely: the template says
    so and gives up, the workers are forked by the spawner, and the run completes."""
    trace = os.path.join(env.path, "trace")
    env.write_config(providers=[provider_conf("threaded", trace=trace)], workers_max=2,
                     batch_size=1)
    rc, events, cp = env.run_json(env.project([f"shot {i}" for i in range(4)]), expect=0)
    assert "started a thread while loading" in cp.stderr and "threaded.so" in cp.stderr
    starts = [t for t in read_trace(trace) if t[0] == "start"]
    assert len(starts) == 4
    assert events[-1]["type"] == "done" and events[-1]["success"] is True


def test_template_killed_mid_batch(service):
    """kill -9 of a template takes its running worker with it (PR_SET_PDEATHSIG); the spawner
    still reports that worker's death, its storyboard is retried, and a new template serves
    the next batch."""
    trace = slow_service(service, n_delay_ms=10, workers_max=1, batch_size=1,
                         extra=retry_conf(3))
    service.start()
    env = service.env
    wait_for(lambda: role_pids(env, "t2istage-tmpl"), what="the template")
    (tmpl,) = role_pids(env, "t2istage-tmpl")
    pid = service.import_project(["held GATE", "next"])
    run, w = held_worker(service, pid)
    # Killed once the worker is inside generate_image(), held at the gate.
    wait_for(lambda: [t for t in read_trace(trace) if t[0] == "start"],
             what="the held storyboard to start")
    os.kill(tmpl, signal.SIGKILL)
    wait_for(lambda: not os.path.exists(f"/proc/{w}") or process_role(w) is None or
             open(f"/proc/{w}/stat").read().rsplit(")", 1)[1].split()[0] == "Z",
             what="the worker to die with its template")
    open_gate(env)
    done = wait_run_done(env, run)
    assert done["success"] is True, done
    warnings = [b.get("message", "") for _s, t, b in db_events(env, run) if t == "warning"]
    assert any("worker crashed: signal 9" in w for w in warnings), warnings
    new = role_pids(env, "t2istage-tmpl")
    assert new and tmpl not in new
    starts = [t[2] for t in read_trace(trace) if t[0] == "start"]
    assert len(starts) == 3          # the held storyboard twice, the other once


def test_plugin_stuck_while_loading(env):
    """A plugin whose constructor never returns: its template never becomes ready, the first
    batch waits for it a bounded time and is then forked directly, that worker is killed at
    its deadline, and the run ends failed with the cause.  Nothing is left running."""
    env.write_config(providers=[provider_conf("stuck")], workers_max=1, batch_size=1,
                     timeout=1.0, extra=retry_conf(1))
    cp = env.t2i("run", env.project(["a"]), "--json", env={"T2ISTAGE_TEST_STUCK": "1"})
    events = [json.loads(line) for line in cp.stdout.splitlines() if line.strip()]
    assert cp.returncode == 1, cp.stderr[-2000:]
    (err,) = [e for e in events if e["type"] == "error"]
    assert "timed out after 1 s" in err["error"], err
    assert events[-1]["type"] == "done" and events[-1]["success"] is False
    wait_for(lambda: not service_pids(env.conf), what="every process of the run to exit")
