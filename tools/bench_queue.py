"""make bench, queued runs: the supervisor's memory with 1,000 runs of 10 storyboards queued.

`serve` with workers.max = 1 and the `slow` test plugin held at a gate: the first run is
processed (and waits), the other 999 are accepted as queued.  Prints the supervisor's
resident memory (VmRSS) idle, and with the runs queued, and what one queued run costs.
A benchmark, not a test: it asserts nothing.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import http.client

import bench

RUNS = 1000
STORYBOARDS = 10


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def post(port, path, body):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", path, body=json.dumps(body),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


def start_serve(d, build):
    plugins = os.path.join(d, "plugins")
    os.makedirs(plugins)
    shutil.copy(os.path.join(bench.ROOT, build, "tests", "plugins", "slow.so"), plugins)
    conf = os.path.join(d, "serve.conf")
    with open(conf, "w") as f:
        f.write(f'database = "{d}/var/bench.db";\n'
                f'storage = {{ dir = "{d}/var/images"; thumbnails = false; }};\n'
                f'plugins = {{ dir = "{plugins}"; }};\n'
                "workers = { max = 1; batch_size = 1; };\n"
                'http = { listen = "127.0.0.1:0"; };\n'
                'providers = ( { name = "slow"; plugin = "slow"; default = true;'
                f' options = {{ gate = "{d}/gate"; }}; }} );\n')
    log = os.path.join(d, "serve.log")
    p = subprocess.Popen([os.path.join(bench.ROOT, build, "t2istage"), "-c", conf, "serve"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=open(log, "w"), cwd=d)
    for _ in range(1500):           # bounded: 30 s
        m = re.search(r"http: listening on \S+ \(port (\d+)\)", open(log).read())
        if m:
            return p, int(m[1])
        if p.poll() is not None:
            break
        time.sleep(0.02)
    p.kill()
    sys.exit(f"bench_queue: serve did not start: {open(log).read()[-2000:]}")


def run(build, args):
    d = tempfile.mkdtemp(prefix="t2istage-bench-queue-")
    serve, port = start_serve(d, build)
    try:
        idle = vm_rss_kib(serve.pid)
        queued = 0
        for i in range(RUNS):
            status, project = post(port, "/v1/projects", {"name": f"queued {i}", "storyboards": [
                {"image_prompt": f"GATE queued run {i} storyboard {k}"}
                for k in range(STORYBOARDS)]})
            if status != 201:
                sys.exit(f"bench_queue: import answered {status}: {project}")
            status, answer = post(port, f"/v1/projects/{project['id']}/image-generation", {})
            if status != 202:
                sys.exit(f"bench_queue: start answered {status}: {answer}")
            queued += answer["status"] == "queued"
        time.sleep(0.5)             # the loop has taken every request in
        full = vm_rss_kib(serve.pid)
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)
        shutil.rmtree(d, ignore_errors=True)
    per_run = (full - idle) / max(queued, 1)
    print(f"queued runs: {queued} of {RUNS} runs of {STORYBOARDS} storyboards queued"
          f" (workers.max = 1): supervisor RSS {full / 1024:.1f} MiB, idle"
          f" {idle / 1024:.1f} MiB, {per_run:.1f} KiB a queued run")
    print("  " + json.dumps({"runs": RUNS, "queued": queued, "storyboards_per_run": STORYBOARDS,
                             "rss_mib": round(full / 1024, 1),
                             "idle_rss_mib": round(idle / 1024, 1),
                             "kib_per_queued_run": round(per_run, 1)}))
