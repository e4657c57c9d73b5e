#!/usr/bin/env python3
"""make bench, several instances: 1 instance of `serve` on SQLite, 1 on
PostgreSQL, 3 on PostgreSQL (one database, one storage.dir), measured on:

- makespan: N storyboards against the fake Jimeng (latency 50-150 ms) at a
  provider concurrency of 6 (over all instances), from the start request
  to the run's `done` in the database;
- claims per second: M storyboards with the `tiny` test plugin, which
  answers at once, so that what is measured is the claiming, the workers
  and the database;
- /healthz p99 on each instance while the tiny run goes (a client per
  instance asking every 10 ms): what the loop's waits on the database
  cost the HTTP clients;
- database round trips per storyboard (PostgreSQL: the instances'
  t2istage_db_round_trips_total over the run) and the longest wait of the
  loop on the database (t2istage_db_wait_seconds_max).

The PostgreSQL server is the tests' (tests/system/pgserver.py: a real
server in a temporary directory).  A benchmark, not a test: it asserts
nothing about time."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "system"))


def http(port, method, path, body=None, timeout=30):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


class Instance:
    def __init__(self, build, d, conf, k):
        self.log = os.path.join(d, f"serve-{k}.log")
        with open(self.log, "w") as err:
            self.proc = subprocess.Popen([os.path.join(ROOT, build, "t2istage"), "-c", conf,
                                          "serve"], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err, cwd=d,
                                         env=dict(os.environ, RUNTIME_DIRECTORY=d))
        self.port = None
        for _ in range(1500):       # bounded: 30 s
            m = re.search(r"listening on \S+ \(port (\d+)\)", open(self.log).read())
            if m:
                self.port = int(m[1])
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        if self.port is None:
            sys.exit(f"bench: serve did not start: {open(self.log).read()[-2000:]}")

    def metric(self, name):
        text = http(self.port, "GET", "/metrics")[1].decode()
        m = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.M)
        return float(m[1]) if m else 0.0

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Prober(threading.Thread):
    """GET /healthz every 10 ms; latencies in seconds."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.lat, self.stop_ev = port, [], threading.Event()

    def run(self):
        while not self.stop_ev.is_set():
            t0 = time.monotonic()
            try:
                http(self.port, "GET", "/healthz", timeout=30)
                self.lat.append(time.monotonic() - t0)
            except OSError:
                pass
            self.stop_ev.wait(0.01)

    def p99_ms(self):
        lat = sorted(self.lat)
        return round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 2) if lat else None


def write_conf(d, build, database, plugin_dir, provider, workers):
    conf = os.path.join(d, "bench.conf")
    with open(conf, "w") as f:
        f.write(database +
                f'storage = {{ dir = "{d}/images"; thumbnails = false; }};\n'
                f'plugins = {{ dir = "{plugin_dir}"; }};\n'
                f"workers = {{ max = {workers}; batch_size = 3; }};\n"
                'generation = { ratio = "1:1"; resolution = "1k"; timeout = 60.0; };\n'
                'http = { listen = "127.0.0.1:0"; };\n'
                f"providers = ( {provider} );\n")
    return conf


def done_in(inst, run_id, timeout=900):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = json.loads(http(inst.port, "GET", f"/v1/runs/{run_id}")[1])
        if body.get("status") not in ("processing", "queued"):
            return body
        time.sleep(0.02)
    sys.exit(f"bench: run {run_id} did not end")


def one(build, kind, n_instances, provider, plugin_dir, n, workers, pg):
    d = tempfile.mkdtemp(prefix="t2istage-bench-", dir=os.path.join(ROOT, build))
    insts = []
    try:
        if kind == "sqlite":
            database = f'database = "{d}/bench.db";\n'
        else:
            db = pg.create_database()
            with open(os.path.join(d, "pw"), "w") as f:
                f.write(pg.password + "\n")
            database = (f'database = "{pg.uri(db)}";\ndatabase_password_file = "{d}/pw";\n')
        conf = write_conf(d, build, database, plugin_dir, provider, workers)
        insts = [Instance(build, d, conf, k) for k in range(n_instances)]
        probes = [Prober(i.port) for i in insts]
        doc = {"name": "bench", "params": {"ratio": "1:1", "resolution": "1k"},
               "storyboards": [{"image_prompt": f"bench {kind} {i}"} for i in range(n)]}
        status, body = http(insts[0].port, "POST", "/v1/projects", doc)
        pid = json.loads(body)["id"]
        trips0 = sum(i.metric("t2istage_db_round_trips_total") for i in insts)
        for p in probes:
            p.start()
        t0 = time.monotonic()
        run_id = json.loads(http(insts[-1].port, "POST",
                                 f"/v1/projects/{pid}/image-generation")[1])["run_id"]
        run = done_in(insts[0], run_id)
        span = time.monotonic() - t0
        for p in probes:
            p.stop_ev.set()
            p.join()
        trips = sum(i.metric("t2istage_db_round_trips_total") for i in insts) - trips0
        wait_max = max(i.metric("t2istage_db_wait_seconds_max") for i in insts)
        return {"backend": kind, "instances": n_instances, "storyboards": n,
                "completed": run["success_count"], "seconds": round(span, 2),
                "storyboards_per_s": round(n / span, 1),
                "healthz_p99_ms": [p.p99_ms() for p in probes],
                "db_round_trips_per_storyboard": round(trips / n, 1) if kind == "pg" else None,
                "db_wait_max_ms": round(wait_max * 1000, 1) if kind == "pg" else None}
    finally:
        for i in insts:
            i.stop()
        shutil.rmtree(d, ignore_errors=True)


def run(build, args):
    from pgserver import PgServer

    sys.path.insert(0, os.path.join(ROOT, "tools"))
    pg = PgServer()
    plugins = os.path.join(ROOT, build, "plugins")
    tiny_dir = tempfile.mkdtemp(prefix="t2istage-bench-plugins-", dir=os.path.join(ROOT, build))
    shutil.copy(os.path.join(ROOT, build, "tests", "plugins", "tiny.so"), tiny_dir)
    os.chmod(tiny_dir, 0o755)
    fake = subprocess.Popen([sys.executable, os.path.join(ROOT, "tools", "fakeprovider"),
                             "--seed", "1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    url = fake.stdout.readline().split()[-1]
    try:
        http(int(url.rsplit(":", 1)[1]), "POST", "/_control", {"latency_ms": [50, 150]})
        jimeng = (f'{{ name = "jimeng"; plugin = "jimeng"; default = true; api_key = "bench";'
                  f' api_url = "{url}/jimeng/v1/images/generations"; concurrency = 6; }}')
        tiny = '{ name = "tiny"; plugin = "tiny"; default = true; concurrency = 8; }'
        n_fake, n_tiny = getattr(args, "cluster_fake", 300), getattr(args, "cluster_tiny", 2000)
        print(f"cluster: makespan of {n_fake} storyboards against the fake Jimeng (50-150 ms,"
              f" concurrency 6 over all instances); {n_tiny} storyboards with the tiny plugin"
              f" (8 workers per instance); {os.cpu_count()} cores")
        for kind, k in (("sqlite", 1), ("pg", 1), ("pg", 3)):
            m = one(build, kind, k, jimeng, plugins, n_fake, 6, pg)
            t = one(build, kind, k, tiny, tiny_dir, n_tiny, 8, pg)
            print(f"  {kind:>6} x{k}: makespan {m['seconds']:6.2f} s;"
                  f" tiny {t['storyboards_per_s']:7.1f} claims/s;"
                  f" /healthz p99 {t['healthz_p99_ms']} ms;"
                  f" round trips/storyboard {t['db_round_trips_per_storyboard']};"
                  f" longest database wait {t['db_wait_max_ms']} ms")
            print("  " + json.dumps({"makespan": m, "tiny": t}))
    finally:
        fake.terminate()
        fake.wait(timeout=30)
        pg.close()
        shutil.rmtree(tiny_dir, ignore_errors=True)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--cluster-fake", type=int, default=300)
    ap.add_argument("--cluster-tiny", type=int, default=2000)
    a = ap.parse_args()
    run(a.build, a)
