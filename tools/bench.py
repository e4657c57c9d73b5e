#!/usr/bin/env python3
"""make bench: throughput and memory of the supervisor, end to end.

10,000 storyboards go through the `tiny` test plugin, which returns an 8x8
PNG (different per storyboard) at once, so what is measured is t2istage
itself: planning, worker processes, pipes, storing files (with fsync) and
the database.  Prints storyboards per second, worker forks per second and
the supervisor's peak RSS (VmHWM, sampled from /proc while it runs).

This is a benchmark, not a test: it asserts nothing about time.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import bench_http

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def write_config(d, build, batch_size, workers):
    plugins = os.path.join(d, "plugins")
    os.makedirs(plugins)
    shutil.copy(os.path.join(ROOT, build, "tests", "plugins", "tiny.so"), plugins)
    conf = os.path.join(d, "bench.conf")
    with open(conf, "w") as f:
        f.write(f'database = "{d}/var/bench.db";\n'
                f'storage = {{ dir = "{d}/var/images"; thumbnails = false; }};\n'
                f'plugins = {{ dir = "{plugins}"; }};\n'
                f"workers = {{ max = {workers}; batch_size = {batch_size}; }};\n"
                'providers = ( { name = "tiny"; plugin = "tiny"; default = true;'
                f" concurrency = {workers}; }} );\n")
    return conf


def write_project(d, n):
    path = os.path.join(d, "bench.json")
    with open(path, "w") as f:
        json.dump({"name": "bench", "storyboards": [
            {"image_prompt": f"benchmark storyboard {i}: a lighthouse at dusk"}
            for i in range(n)]}, f)
    return path


def vm_hwm_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def one(build, n, batch_size, workers):
    d = tempfile.mkdtemp(prefix="t2istage-bench-")
    try:
        conf = write_config(d, build, batch_size, workers)
        project = write_project(d, n)
        binary = os.path.join(ROOT, build, "t2istage")
        out_path = os.path.join(d, "events.ndjson")
        err_path = os.path.join(d, "stderr.log")
        with open(out_path, "w") as out, open(err_path, "w") as errf:
            start = time.monotonic()
            p = subprocess.Popen([binary, "-c", conf, "run", project, "--json"],
                                 stdout=out, stderr=errf)
            peak = 0
            # VmHWM only grows, so the last sample before exit is the peak.
            while p.poll() is None:
                hwm = vm_hwm_kib(p.pid)
                if hwm:
                    peak = max(peak, hwm)
                time.sleep(0.02)
            elapsed = time.monotonic() - start
        with open(out_path) as f:
            lines = f.read().splitlines()
        done = json.loads(lines[-1]) if lines else {}
        if p.returncode != 0 or done.get("type") != "done":
            with open(err_path) as f:
                sys.exit(f"bench: run failed (exit {p.returncode}): {f.read()[-2000:]}")
        ok = done["data"]["success_count"]
        # Batches of batch_size; the smaller batches at the end of the run
        # (src/sup/scheduler.c) add a few more forks than this counts.
        forks = -(-n // batch_size)
        return {"storyboards": n, "batch_size": batch_size, "workers": workers,
                "completed": ok, "seconds": round(elapsed, 2),
                "storyboards_per_s": round(n / elapsed, 1),
                "worker_forks": forks, "forks_per_s": round(forks / elapsed, 1),
                "supervisor_peak_rss_mib": round(peak / 1024, 1)}
    finally:
        shutil.rmtree(d, ignore_errors=True)


def start_fake(d):
    port_file = os.path.join(d, "fake.port")
    log = open(os.path.join(d, "fake.log"), "w")
    p = subprocess.Popen([sys.executable, os.path.join(ROOT, "tools", "fakeprovider"),
                          "--port-file", port_file, "--seed", "1"],
                         stdout=subprocess.DEVNULL, stderr=log)
    for _ in range(500):   # bounded: 10 s
        if os.path.exists(port_file) and open(port_file).read().strip():
            return p, f"http://127.0.0.1:{open(port_file).read().strip()}"
        time.sleep(0.02)
    p.kill()
    sys.exit("bench: fakeprovider did not start")


def http_json(url, body=None):
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None
                                 else None, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def makespan(build, n, batch_size, conc):
    """n storyboards against the fake Jimeng with 50-150 ms latency at concurrency conc."""
    d = tempfile.mkdtemp(prefix="t2istage-bench-")
    fake, url = start_fake(d)
    try:
        http_json(url + "/_control", {"latency_ms": [50, 150]})
        conf = os.path.join(d, "bench.conf")
        with open(conf, "w") as f:
            f.write(f'database = "{d}/var/bench.db";\n'
                    f'storage = {{ dir = "{d}/var/images"; thumbnails = false; }};\n'
                    f'plugins = {{ dir = "{os.path.join(ROOT, build, "plugins")}"; }};\n'
                    f"workers = {{ max = {conc}; batch_size = {batch_size}; }};\n"
                    'generation = { ratio = "1:1"; resolution = "1k"; timeout = 60.0; };\n'
                    f'providers = ( {{ name = "jimeng"; plugin = "jimeng"; default = true;'
                    f' api_url = "{url}/jimeng/v1/images/generations"; api_key = "bench";'
                    f" concurrency = {conc}; }} );\n")
        project = os.path.join(d, "p.json")
        with open(project, "w") as f:
            json.dump({"name": "makespan", "storyboards": [
                {"image_prompt": f"makespan storyboard {i}"} for i in range(n)]}, f)
        start = time.monotonic()
        cp = subprocess.run([os.path.join(ROOT, build, "t2istage"), "-c", conf, "run", project,
                             "--json"], capture_output=True, text=True, timeout=600)
        span = time.monotonic() - start
        if cp.returncode != 0:
            sys.exit(f"bench: makespan run failed (exit {cp.returncode}): {cp.stderr[-2000:]}")
        reqs = [r for r in http_json(url + "/_requests")
                if r["path"].startswith("/jimeng/")]
        lat = [r["duration_s"] for r in reqs]
        ideal = sum(lat) / conc + max(lat)
        return {"storyboards": n, "batch_size": batch_size, "concurrency": conc,
                "requests": len(reqs), "makespan_s": round(span, 3),
                "ideal_s": round(ideal, 3), "ratio": round(span / ideal, 3)}
    finally:
        fake.terminate()
        fake.wait(timeout=30)
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--skip-makespan", action="store_true")
    ap.add_argument("--repeat", type=int, default=5, help="makespan runs per batch size")
    ap.add_argument("--batch", type=int, action="append",
                    help="batch sizes to measure (default: 3 and 32)")
    args = ap.parse_args()
    print(f"t2istage bench: {args.n} storyboards, tiny plugin, {args.workers} workers, "
          f"{os.cpu_count()} cores")
    for b in args.batch or [3, 32]:
        r = one(args.build, args.n, b, args.workers)
        print(f"  batch_size {b:>3}: {r['storyboards_per_s']:8.1f} storyboards/s  "
              f"{r['forks_per_s']:7.1f} worker forks/s  "
              f"supervisor peak RSS {r['supervisor_peak_rss_mib']:.1f} MiB  "
              f"({r['completed']}/{r['storyboards']} in {r['seconds']} s)")
        print("  " + json.dumps(r))
    bench_http.run(args.build, args)    # the HTTP side: SSE fan-out, the project view
    __import__("bench_hostile").run(args.build, args)   # the HTTP side under load
    __import__("bench_rate").run(args.build, args)
    __import__("bench_queue").run(args.build, args)
    __import__("bench_cluster").run(args.build, args)    # tools/bench_cluster.py
    if args.skip_makespan:
        return
    print("makespan: 200 storyboards, fake Jimeng with 50-150 ms latency, concurrency 8;"
          " ideal = sum of the server's request durations / 8 + the longest;"
          f" {args.repeat} runs each, median first")
    for b in (3, 1):
        runs = [makespan(args.build, 200, b, 8) for _ in range(args.repeat)]
        ratios = sorted(m["ratio"] for m in runs)
        med = sorted(runs, key=lambda m: m["ratio"])[len(runs) // 2]
        print(f"  batch_size {b}: median ratio {med['ratio']:.3f} (makespan"
              f" {med['makespan_s']:.2f} s, ideal {med['ideal_s']:.2f} s);"
              f" all ratios {', '.join(f'{x:.3f}' for x in ratios)}")
        for m in runs:
            print("  " + json.dumps(m))


if __name__ == "__main__":
    main()
