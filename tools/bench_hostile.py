#!/usr/bin/env python3
"""make bench, the HTTP side under load: /healthz latency while the service
serves what a busy team and a careless client throw at it.

1. Paging: 4 clients page through a 10,000-storyboard project (its view, a
   page of 100 storyboards at a time with their images, and its images
   list), over and over, while a probe asks /healthz on its own connection;
   prints /healthz p50 and p99, and the same with no load beside it.
2. Streams: 500 SSE clients that never read follow a run (its events come
   from the slow test plugin for about 20 s), from 10 loopback addresses
   (127.0.0.2 to .11, 50 each, within http.max_connections_per_ip); prints
   /healthz p50 and p99 during the run, the kernel's TCP memory
   (/proc/net/sockstat, pages of 4 KiB, clients' and service's sockets
   together) and the service's RSS, during the run and once
   http.sse_stall_timeout has dropped the streams.

Entry point run(build, args) (tools/bench.py calls it); also runs alone:
tools/bench_hostile.py [--build build].  A benchmark: it asserts nothing.
"""

import argparse
import http.client
import json
import multiprocessing
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
STALL_S = 10        # http.sse_stall_timeout of the stream part
NEXT = re.compile(rb'"next":"([0-9a-f]+)"}\s*$')


def write_config(d, build, extra=""):
    plugins = os.path.join(d, "plugins")
    os.makedirs(plugins, exist_ok=True)
    for name in ("tiny.so", "slow.so"):
        shutil.copy(os.path.join(ROOT, build, "tests", "plugins", name), plugins)
    conf = os.path.join(d, "bench.conf")
    with open(conf, "w") as f:
        f.write(f'database = "{d}/var/bench.db";\n'
                f'storage = {{ dir = "{d}/var/images"; thumbnails = false; }};\n'
                f'plugins = {{ dir = "{plugins}"; }};\n'
                "workers = { max = 4; batch_size = 32; };\n"
                f'http = {{ listen = "127.0.0.1:0"; sse_stall_timeout = {STALL_S}; {extra} }};\n'
                'providers = ( { name = "tiny"; plugin = "tiny"; default = true;'
                " concurrency = 4; },\n"
                '  { name = "slow"; plugin = "slow"; concurrency = 4;'
                " options = { delay_ms = 200; }; } );\n")
    return conf


def write_project(d, n, provider=None):
    path = os.path.join(d, f"project-{n}.json")
    doc = {"name": f"bench {n}", "storyboards": [
        {"image_prompt": f"benchmark storyboard {i}: a lighthouse at dusk, waves, gulls"}
        for i in range(n)]}
    if provider:
        doc["image_providers"] = [provider]
    with open(path, "w") as f:
        json.dump(doc, f)
    return path


class Service:
    def __init__(self, build, conf, d):
        self.log = os.path.join(d, "serve.log")
        self.err = open(self.log, "w")
        self.proc = subprocess.Popen([os.path.join(ROOT, build, "t2istage"), "-c", conf,
                                      "serve"], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.err, cwd=d)
        deadline = time.monotonic() + 60
        self.port = None
        while self.port is None and time.monotonic() < deadline:
            with open(self.log) as f:
                m = re.search(r"listening on \S+ \(port (\d+)\)", f.read())
            if m:
                self.port = int(m[1])
            elif self.proc.poll() is not None:
                raise SystemExit(f"serve exited: see {self.log}")
            else:
                time.sleep(0.05)

    def get(self, path, accept=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            c.request("GET", path, headers={"Accept": accept} if accept else {})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def rss_mib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.err.close()


def probe(port, seconds, out):
    """GET /healthz on one keep-alive connection, back to back with a 5 ms
    pause, for seconds; the latencies in ms go to out.  A process of its
    own: the clients' threads must not hold it up (the GIL)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    ms, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        t = time.perf_counter()
        c.request("GET", "/healthz")
        c.getresponse().read()
        ms.append((time.perf_counter() - t) * 1000)
        time.sleep(0.005)
    c.close()
    out.send(ms)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))] if xs else float("nan")


def summary(ms):
    return f"p50 {pct(ms, 50):.2f} ms, p99 {pct(ms, 99):.2f} ms, max {max(ms):.1f} ms" \
           f" ({len(ms)} requests)"


def probe_for(port, seconds):
    mine, theirs = multiprocessing.Pipe()
    p = multiprocessing.Process(target=probe, args=(port, seconds, theirs))
    p.start()
    ms = mine.recv()
    p.join()
    return ms


def pager(svc, pid, stop, pages):
    """Pages through the project view and its images list, over and over."""
    c = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=120)
    while not stop.is_set():
        for base in (f"/v1/projects/{pid}", f"/v1/projects/{pid}/images"):
            after = None
            while not stop.is_set():
                c.request("GET", base + "?limit=100" + (f"&after={after}" if after else ""))
                # "next" ends the answer: no need to parse the rest.
                m = NEXT.search(c.getresponse().read()[-300:])
                pages[0] += 1
                after = m[1].decode() if m else None
                if not after:
                    break
    c.close()


def paging(build, d, seconds):
    d = os.path.abspath(d)
    conf = write_config(d, build)
    subprocess.run([os.path.join(ROOT, build, "t2istage"), "-c", conf, "run",
                    write_project(d, 10000), "--json"], stdout=subprocess.DEVNULL, check=True,
                   cwd=d)
    svc = Service(build, conf, d)
    try:
        pid = json.loads(svc.get("/v1/projects?limit=1")[1])["projects"][0]["id"]
        idle = probe_for(svc.port, 3)
        stop, pages = threading.Event(), [0]
        clients = [threading.Thread(target=pager, args=(svc, pid, stop, pages), daemon=True)
                   for _ in range(4)]
        for t in clients:
            t.start()
        time.sleep(1)
        loaded = probe_for(svc.port, seconds)
        stop.set()
        for t in clients:
            t.join()
        print("paging: 10,000 storyboards (and their 10,000 images), 4 clients paging"
              " 100 at a time")
        print(f"  /healthz alone:          {summary(idle)}")
        print(f"  /healthz beside paging:  {summary(loaded)}; {pages[0]} pages served")
    finally:
        svc.stop()


def tcp_mem_kib():
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                fields = line.split()
                return int(fields[fields.index("mem") + 1]) * 4


def socket_mem_kib(port):
    """What the kernel holds for the connections to port, by `ss -tm`: the
    service's sockets' send queues, and the clients' receive queues."""
    out = subprocess.run(["ss", "-tmnH", "state", "established"], capture_output=True,
                         text=True).stdout
    served = clients = 0
    lines = out.splitlines()
    for head, mem in zip(lines[::2], lines[1::2]):
        f = head.split()
        m = re.search(r"r(\d+),rb\d+,t(\d+),tb\d+,f\d+,w(\d+)", mem)
        if len(f) < 4 or not m:
            continue
        if f[2].endswith(f":{port}"):
            served += int(m[2]) + int(m[3])
        elif f[3].endswith(f":{port}"):
            clients += int(m[1])
    return served // 1024, clients // 1024


def sse_clients(port, run_id, n):
    """n connections asking for the run's stream, never reading; 10 source
    addresses."""
    socks = []
    req = (f"GET /v1/runs/{run_id}/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
           "Accept: text/event-stream\r\n\r\n").encode()
    for i in range(n):
        s = socket.socket()
        s.bind((f"127.0.0.{2 + i % 10}", 0))
        s.connect(("127.0.0.1", port))
        s.sendall(req)
        socks.append(s)
    return socks


def streams(build, d, n_clients, seconds):
    d = os.path.abspath(d)
    conf = write_config(d, build)
    svc = Service(build, conf, d)
    socks = []
    try:
        body = open(write_project(d, 400, provider="slow")).read()
        c = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=60)
        c.request("POST", "/v1/projects", body, {"Content-Type": "application/json"})
        pid = json.loads(c.getresponse().read())["id"]
        c.request("POST", f"/v1/projects/{pid}/image-generation", "{}",
                  {"Content-Type": "application/json"})
        run_id = json.loads(c.getresponse().read())["run_id"]
        c.close()
        mem0, rss0 = tcp_mem_kib(), svc.rss_mib()
        socks = sse_clients(svc.port, run_id, n_clients)
        time.sleep(1)
        during = probe_for(svc.port, seconds)
        mem1, rss1, ss1 = tcp_mem_kib(), svc.rss_mib(), socket_mem_kib(svc.port)
        time.sleep(STALL_S + 2)
        mem2, rss2, ss2 = tcp_mem_kib(), svc.rss_mib(), socket_mem_kib(svc.port)
        for s in socks:
            s.close()
        socks = []
        time.sleep(1)
        mem3 = tcp_mem_kib()
        with open(svc.log) as f:
            dropped = f.read().count("stream stalled")
        print(f"streams: {n_clients} SSE clients that never read follow a run of 400"
              " storyboards (slow plugin, 200 ms each, 4 workers)")
        print(f"  /healthz during the run: {summary(during)}")
        print(f"  kernel TCP memory (/proc/net/sockstat, the whole machine): {mem0} KiB"
              f" before, {mem1} KiB with the clients ({(mem1 - mem0) / n_clients:.0f} KiB"
              f" each, both ends); of which the service's send queues {ss1[0]} KiB"
              f" ({ss1[0] / n_clients:.0f} KiB each) and the clients' receive queues"
              f" {ss1[1]} KiB (ss -tm)")
        print(f"  {dropped} streams dropped after http.sse_stall_timeout = {STALL_S} s:"
              f" the service's send queues {ss2[0]} KiB; {mem2} KiB left in all, the"
              f" clients' unread bytes, {mem3} KiB once the clients close")
        print(f"  service RSS: {rss0:.1f} MiB before, {rss1:.1f} MiB with the clients,"
              f" {rss2:.1f} MiB after")
    finally:
        for s in socks:
            s.close()
        svc.stop()


def run(build, args=None):
    seconds = getattr(args, "hostile_seconds", 10) if args is not None else 10
    for part in (paging, streams):
        d = tempfile.mkdtemp(prefix="t2istage-bench-http-")
        try:
            if part is paging:
                paging(build, d, seconds)
            else:
                streams(build, d, 500, seconds)
        finally:
            shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--hostile-seconds", type=int, default=10,
                    help="seconds /healthz is probed under each load")
    args = ap.parse_args()
    run(args.build, args)


if __name__ == "__main__":
    sys.exit(main())
