"""make bench, rate limits and spend: t2istage against tools/fakeprovider's limits.

Each figure is printed beside its ideal:

- K: the fake serves K=3 requests at once (1-2 s each) and answers 429 with a Retry-After
  above that; t2istage asks with concurrency 12, at the default retry settings.  Throughput
  against what K allows (the server's own durations of the requests it served, over K), the
  429s against the first overshoot (concurrency - K), every storyboard completed.
- rate: the fake takes 120 requests a minute, t2istage is configured with rate = 120: the
  rate achieved (requests over the span between the first and the last) and the 429s (none).
- budget: cost = 1 and budget = { per_run = 25; } over 40 storyboards: the requests sent
  against the 25 the budget allows, and the storyboards failed with "budget reached".

A benchmark, not a test: it asserts nothing about time.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import bench

K = 3
CONCURRENCY = 12
OPENAI = "/openai/v1/images/generations"


def conf_text(d, build, url, workers, provider_extra, extra=""):
    return (f'database = "{d}/var/bench.db";\n'
            f'storage = {{ dir = "{d}/var/images"; thumbnails = false; }};\n'
            f'plugins = {{ dir = "{os.path.join(bench.ROOT, build, "plugins")}"; }};\n'
            f"workers = {{ max = {workers}; }};\n"
            'generation = { ratio = "1:1"; resolution = "1k"; timeout = 120.0; };\n'
            f"{extra}\n"
            f'providers = ( {{ name = "limited"; plugin = "openai"; default = true;'
            f' api_url = "{url}{OPENAI}"; api_key = "sk-bench"; model = "gpt-image-1";'
            f" {provider_extra} }} );\n")


def run_project(d, build, conf, n, label):
    """`run` over n storyboards; (seconds, events)."""
    path = os.path.join(d, "conf")
    with open(path, "w") as f:
        f.write(conf)
    project = os.path.join(d, "p.json")
    with open(project, "w") as f:
        json.dump({"name": label, "storyboards": [
            {"image_prompt": f"{label} storyboard {i}"} for i in range(n)]}, f)
    start = time.monotonic()
    cp = subprocess.run([os.path.join(bench.ROOT, build, "t2istage"), "-c", path, "run",
                         project, "--json"], capture_output=True, text=True, timeout=1800)
    span = time.monotonic() - start
    events = [json.loads(line) for line in cp.stdout.splitlines() if line.strip()]
    if not events or events[-1].get("type") != "done":
        sys.exit(f"bench_rate: {label}: no done event (exit {cp.returncode}): "
                 f"{cp.stderr[-2000:]}")
    return span, events


def generations(url):
    return [r for r in bench.http_json(url + "/_requests") if r["path"] == OPENAI]


def with_fake(fn):
    """fn(d, url) with a fresh fake provider in a scratch directory."""
    d = tempfile.mkdtemp(prefix="t2istage-bench-rate-")
    fake, url = bench.start_fake(d)
    try:
        return fn(d, url)
    finally:
        fake.terminate()
        fake.wait(timeout=30)
        shutil.rmtree(d, ignore_errors=True)


def k_limited(build, n):
    def go(d, url):
        bench.http_json(url + "/_control", {"latency_ms": [1000, 2000],
                                            "limit_concurrent": K, "limit_retry_after": 1})
        span, events = run_project(d, build, conf_text(
            d, build, url, CONCURRENCY, f"concurrency = {CONCURRENCY};"), n, "k-limited")
        reqs = generations(url)
        served = [r["duration_s"] for r in reqs if r["status"] == 200]
        refused = sum(1 for r in reqs if r["fault"] == "limit_concurrent")
        ideal = sum(served) / K
        done = events[-1]["data"]
        return {"storyboards": n, "completed": done["success_count"],
                "failed": done["failed_count"], "makespan_s": round(span, 2),
                "ideal_s": round(ideal, 2), "throughput_of_k": round(ideal / span, 3),
                "429s": refused, "first_overshoot": CONCURRENCY - K,
                "max_in_flight": bench.http_json(url + "/_limits")["max_in_flight"]}
    return with_fake(go)


def rated(build, n, rate):
    def go(d, url):
        bench.http_json(url + "/_control", {"latency_ms": [100, 200], "limit_rate": rate})
        span, events = run_project(d, build, conf_text(
            d, build, url, 8, f"concurrency = 8; rate = {rate};"), n, "rated")
        reqs = generations(url)
        times = sorted(r["time"] for r in reqs)
        achieved = (len(times) - 1) / (times[-1] - times[0]) * 60 if len(times) > 1 else 0
        return {"storyboards": n, "completed": events[-1]["data"]["success_count"],
                "requests": len(reqs), "rate_per_min": round(achieved, 1),
                "ideal_per_min": rate,
                "429s": sum(1 for r in reqs if r["fault"] == "limit_rate"),
                "makespan_s": round(span, 2)}
    return with_fake(go)


def budgeted(build, n, budget):
    def go(d, url):
        bench.http_json(url + "/_control", {"latency_ms": [100, 200]})
        span, events = run_project(d, build, conf_text(
            d, build, url, 4, f"concurrency = 4; cost = 1; budget = {{ per_run = {budget}; }};"),
            n, "budget")
        errors = [e for e in events if e["type"] == "error"]
        return {"storyboards": n, "requests": len(generations(url)), "budget_allows": budget,
                "completed": events[-1]["data"]["success_count"],
                "budget_reached": sum("budget reached" in e["error"] for e in errors)}
    return with_fake(go)


def run(build, args):
    n = getattr(args, "rate_storyboards", None) or 60
    print(f"rate limits: fake provider serving K={K} at once (429 + Retry-After above),"
          f" t2istage concurrency {CONCURRENCY}, {n} storyboards of 1-2 s, default retry")
    r = k_limited(build, n)
    print(f"  throughput {r['throughput_of_k']:.3f} of K's (makespan {r['makespan_s']} s,"
          f" ideal {r['ideal_s']} s); 429s {r['429s']} (first overshoot"
          f" {r['first_overshoot']}); completed {r['completed']}/{r['storyboards']}")
    print("  " + json.dumps(r))
    r = rated(build, 200, 120)
    print(f"rate = 120 over 200 storyboards: {r['rate_per_min']} requests a minute"
          f" (ideal {r['ideal_per_min']}); 429s {r['429s']} (ideal 0);"
          f" completed {r['completed']}/{r['storyboards']}")
    print("  " + json.dumps(r))
    r = budgeted(build, 40, 25)
    print(f"budget per_run = 25 at cost 1, 40 storyboards: {r['requests']} requests sent"
          f" (the budget allows {r['budget_allows']}); {r['budget_reached']} failed with"
          f" \"budget reached\"")
    print("  " + json.dumps(r))
