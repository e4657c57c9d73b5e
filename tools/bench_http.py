#!/usr/bin/env python3
"""make bench, the service's HTTP side: event streams and the project view.

1. Fan-out: 1,000 EventSource-like clients (asyncio, one process, reading
   the stream over loopback as a browser does: ?access_token=, chunked SSE)
   follow one 200-storyboard run live.  Every storyboard waits at a gate
   (the `slow` test plugin with no delay: an image at once, like `tiny`,
   but held until every client is attached); the clock runs from the
   opening of the gate to the last client's `done`.  Each client must have
   received every event, seq 1 to the last, once and in order.
2. Replay: 1,000 clients connect at once to the same run, now ended, and
   read it whole (the stream comes from the database).
3. Requests per second of GET /v1/projects/{id} for a 1,000-storyboard
   project (every storyboard with an image, so each answer signs 2,000
   URLs), under wrk (Debian's, installed by tools/install-deps).

Prints the supervisor's peak RSS (VmRSS sampled from /proc) during each.
This is a benchmark, not a test: it asserts nothing about time.  Run alone
with `tools/bench_http.py --build build`.
"""

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
TOKEN = "bench-token-0123456789"
ID_LINE = re.compile(rb"^id: (\d+)$", re.M)


class Service:
    """`t2istage serve` in a scratch directory, on a free port."""

    def __init__(self, build, d, workers=8, batch_size=3):
        self.d = d
        plugins = os.path.join(d, "plugins")
        os.makedirs(plugins)
        for name in ("tiny.so", "slow.so"):
            shutil.copy(os.path.join(ROOT, build, "tests", "plugins", name), plugins)
        self.gate = os.path.join(d, "gate")
        self.conf = os.path.join(d, "bench.conf")
        with open(self.conf, "w") as f:
            f.write(f'database = "{d}/var/bench.db";\n'
                    f'storage = {{ dir = "{d}/var/images"; thumbnails = false; }};\n'
                    f'plugins = {{ dir = "{plugins}"; }};\n'
                    f"workers = {{ max = {workers}; batch_size = {batch_size}; }};\n"
                    f'http = {{ listen = "127.0.0.1:0"; token = "{TOKEN}"; }};\n'
                    'providers = ( { name = "tiny"; plugin = "tiny"; default = true;'
                    f" concurrency = {workers}; }},\n"
                    '  { name = "gated"; plugin = "slow"; concurrency = '
                    f'{workers}; options = {{ delay_ms = 0; gate = "{self.gate}"; }}; }} );\n')
        self.log_path = os.path.join(d, "serve.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([os.path.join(ROOT, build, "t2istage"), "-c", self.conf,
                                      "serve"], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        self.port = self._port()

    def _port(self):
        for _ in range(1500):   # bounded: 30 s
            if self.proc.poll() is not None:
                sys.exit(f"bench_http: serve exited: {open(self.log_path).read()[-2000:]}")
            m = re.search(r"http: listening on \S+ \(port (\d+)\)", open(self.log_path).read())
            if m:
                return int(m[1])
            time.sleep(0.02)
        sys.exit("bench_http: serve did not start")

    def call(self, method, path, body=None):
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            return json.loads(r.read())

    def project(self, n, provider, prompt):
        return self.call("POST", "/v1/projects", {
            "name": f"bench {n}", "image_providers": [provider],
            "storyboards": [{"image_prompt": prompt.format(i=i)} for i in range(n)]})["id"]

    def wait_run(self, run_id):
        for _ in range(60000):   # bounded: 10 min
            run = self.call("GET", f"/v1/runs/{run_id}")
            if run["status"] != "processing":
                return run
            time.sleep(0.01)
        sys.exit(f"bench_http: run {run_id} did not end")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Sampler(threading.Thread):
    """While it runs: the largest VmRSS of pid (every 10 ms), and the CPU
    time pid and this process (the clients) spent."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak_kib, self.stopping = pid, 0, False
        self.cpu0, self.self0 = self.cpu(), self.self_cpu()
        self.before_kib = self.rss()

    def cpu(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def self_cpu():
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    def rss(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def run(self):
        while not self.stopping:
            try:
                self.peak_kib = max(self.peak_kib, self.rss())
            except OSError:
                return
            time.sleep(0.01)

    def stop(self):
        self.stopping = True
        self.join()
        return {"supervisor_rss_before_mib": round(self.before_kib / 1024, 1),
                "supervisor_peak_rss_mib": round(self.peak_kib / 1024, 1),
                "supervisor_cpu_s": round(self.cpu() - self.cpu0, 2),
                "client_cpu_s": round(self.self_cpu() - self.self0, 2)}


class Client:
    """One EventSource-like reader of a stream: de-chunks the HTTP body and
    checks that the ids run 1, 2, 3... to the run's `done`."""

    def __init__(self):
        self.last = 0
        self.events = 0
        self.done_at = None
        self.error = None
        self.attached = asyncio.Event()

    async def follow(self, port, path):
        try:
            await self._follow(port, path)
        except (OSError, asyncio.IncompleteReadError, ValueError) as e:
            self.error = repr(e)
        self.attached.set()

    async def _follow(self, port, path):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                     "Accept: text/event-stream\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200") or b"chunked" not in head.lower():
            raise ValueError(head[:200])
        buf = b""
        while self.done_at is None:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                break
            buf += await reader.readexactly(size + 2)
            cut = buf.rfind(b"\n\n")
            if cut >= 0:
                self._messages(buf[:cut])
                buf = buf[cut + 2:]
        writer.close()
        if self.done_at is None:
            raise ValueError(f"stream ended at seq {self.last} without done")

    def _messages(self, block):
        for m in ID_LINE.finditer(block):
            seq = int(m[1])
            if seq != self.last + 1:
                raise ValueError(f"seq {seq} after {self.last}")
            self.last = seq
            self.events += 1
        if self.last > 0:
            self.attached.set()
        if b'"type":"done"' in block:
            self.done_at = time.monotonic()


async def fan_out(port, run_id, n, before_clock=None):
    """n clients on the run's stream; before_clock (awaited once every
    client has its first event) starts the clock.  Returns (clients,
    connect seconds, clock start)."""
    path = f"/v1/runs/{run_id}/events?access_token={TOKEN}"
    clients = [Client() for _ in range(n)]
    t0 = time.monotonic()
    tasks = [asyncio.create_task(c.follow(port, path)) for c in clients]
    if before_clock is not None:
        await asyncio.gather(*(c.attached.wait() for c in clients))
    attached = time.monotonic()
    if before_clock is not None:
        before_clock()
    start = time.monotonic()
    await asyncio.gather(*tasks)
    return clients, attached - t0, start


def summary(clients, start, last_seq):
    bad = [c for c in clients if c.error or c.last != last_seq]
    if bad:
        sys.exit(f"bench_http: {len(bad)} clients missed events, e.g. "
                 f"{bad[0].error or f'last seq {bad[0].last} of {last_seq}'}")
    ends = sorted(c.done_at - start for c in clients)
    return {"clients": len(clients), "events_each": last_seq,
            "events_total": sum(c.events for c in clients),
            "all_done_s": round(ends[-1], 3), "median_done_s": round(ends[len(ends) // 2], 3),
            "events_per_s": round(sum(c.events for c in clients) / ends[-1])}


def iso_unix(iso):
    return time.mktime(time.strptime(iso[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone + \
        float("0" + iso[19:].rstrip("Z"))


def streams(svc, n_clients, storyboards):
    pid = svc.project(storyboards, "gated", "GATE bench storyboard {i}: a lighthouse at dusk")
    run_id = svc.call("POST", f"/v1/projects/{pid}/image-generation")["run_id"]
    opened = []

    def open_gate():
        opened.append(time.time())
        open(svc.gate, "w").close()
    sampler = Sampler(svc.proc.pid)
    sampler.start()
    clients, connect_s, start = asyncio.run(fan_out(svc.port, run_id, n_clients,
                                                    before_clock=open_gate))
    usage = sampler.stop()
    run = svc.wait_run(run_id)
    live = summary(clients, start, run["last_seq"])
    live.update(connect_s=round(connect_s, 3), run_status=run["status"],
                run_ended_s=round(iso_unix(run["finished_at"]) - opened[0], 3), **usage)
    live["supervisor_us_per_event"] = round(1e6 * usage["supervisor_cpu_s"] / live["events_total"], 2)
    sampler = Sampler(svc.proc.pid)
    sampler.start()
    clients, _c, start = asyncio.run(fan_out(svc.port, run_id, n_clients))
    replay = summary(clients, start, run["last_seq"])
    replay.update(sampler.stop())
    replay["supervisor_us_per_event"] = round(1e6 * replay["supervisor_cpu_s"] /
                                              replay["events_total"], 2)
    return live, replay


WRK_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
WRK_N = re.compile(r"^\s+(\d+) requests in", re.M)
WRK_PCT = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)


def project_view(svc, storyboards, seconds, connections):
    pid = svc.project(storyboards, "tiny", "bench storyboard {i}: a lighthouse at dusk, wide")
    run = svc.wait_run(svc.call("POST", f"/v1/projects/{pid}/image-generation")["run_id"])
    size = len(json.dumps(svc.call("GET", f"/v1/projects/{pid}")))
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("bench_http: wrk is missing: run tools/install-deps")
    sampler = Sampler(svc.proc.pid)
    sampler.start()
    cp = subprocess.run([wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
                         "-H", f"Authorization: Bearer {TOKEN}",
                         f"http://127.0.0.1:{svc.port}/v1/projects/{pid}"],
                        capture_output=True, text=True, timeout=seconds + 60)
    usage = sampler.stop()
    del usage["client_cpu_s"]   # wrk is a process of its own
    m = WRK_RPS.search(cp.stdout)
    if cp.returncode != 0 or m is None or "Non-2xx" in cp.stdout:
        sys.exit(f"bench_http: wrk failed: {cp.stdout[-2000:]} {cp.stderr[-2000:]}")
    unit = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    pct = {p: round(float(v) * unit[u], 2) for p, v, u in WRK_PCT.findall(cp.stdout)}
    n = int(WRK_N.search(cp.stdout)[1])
    return {"storyboards": storyboards, "run_status": run["status"], "answer_bytes": size,
            "connections": connections, "seconds": seconds,
            "requests_per_s": float(m[1]), "latency_p50_ms": pct.get("50"),
            "latency_p99_ms": pct.get("99"), "requests": n,
            "supervisor_cpu_ms_per_request": round(1000 * usage["supervisor_cpu_s"] / n, 1),
            **usage}


def raise_fd_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, need)
    if want < need:
        sys.exit(f"bench_http: {need} descriptors needed, the hard limit is {hard}")
    # The service inherits it: its connection limit follows the fd limit.
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def run(build, args):
    clients = getattr(args, "sse_clients", 1000)
    raise_fd_limit(clients + 512)
    print(f"http: {clients} SSE clients on a 200-storyboard run; GET /v1/projects/{{id}} of a"
          f" 1,000-storyboard project under wrk; {os.cpu_count()} cores, clients on the same"
          " machine")
    d = tempfile.mkdtemp(prefix="t2istage-bench-http-")
    svc = Service(build, d)
    try:
        live, replay = streams(svc, clients, 200)
        print(f"  live fan-out: {live['clients']} clients x {live['events_each']} events in"
              f" {live['all_done_s']:.2f} s from the gate (median client {live['median_done_s']:.2f}"
              f" s; {live['events_per_s']:,} events/s delivered; attached in"
              f" {live['connect_s']:.2f} s; the run itself ended {live['run_ended_s']:.2f} s"
              f" after the gate), supervisor RSS {live['supervisor_rss_before_mib']:.1f} MiB before,"
              f" peak {live['supervisor_peak_rss_mib']:.1f} MiB,"
              f" CPU {live['supervisor_cpu_s']} s ({live['supervisor_us_per_event']} us an event;"
              f" clients {live['client_cpu_s']} s)")
        print("  " + json.dumps(live))
        print(f"  replay of the ended run: {replay['clients']} clients x {replay['events_each']}"
              f" events in {replay['all_done_s']:.2f} s ({replay['events_per_s']:,} events/s),"
              f" supervisor peak RSS {replay['supervisor_peak_rss_mib']:.1f} MiB, CPU"
              f" {replay['supervisor_cpu_s']} s ({replay['supervisor_us_per_event']} us an event;"
              f" clients {replay['client_cpu_s']} s)")
        print("  " + json.dumps(replay))
        view = project_view(svc, 1000, getattr(args, "wrk_seconds", 10), 8)
        print(f"  GET /v1/projects/{{id}}, {view['storyboards']} storyboards"
              f" ({view['answer_bytes']:,} bytes): {view['requests_per_s']:.1f} requests/s"
              f" with wrk, {view['connections']} connections (p50 {view['latency_p50_ms']} ms,"
              f" p99 {view['latency_p99_ms']} ms), supervisor peak RSS"
              f" {view['supervisor_peak_rss_mib']:.1f} MiB, CPU"
              f" {view['supervisor_cpu_ms_per_request']} ms a request")
        print("  " + json.dumps(view))
    finally:
        svc.stop()
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--sse-clients", type=int, default=1000)
    ap.add_argument("--wrk-seconds", type=int, default=10)
    args = ap.parse_args()
    run(args.build, args)


if __name__ == "__main__":
    main()
