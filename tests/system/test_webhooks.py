"""Webhooks: delivery at least once through the outbox, Standard Webhooks
signatures (checked here with Python's own hmac), retries, kill -9 and
SIGTERM, receivers that hang or drop the connection, the sender process,
events filtering, /metrics, and the secret kept out of everything.

Receivers are Python HTTP servers this test starts on 127.0.0.1 with a
free port.  Waits are bounded polls; nothing asserts on wall-clock time."""

import base64
import hashlib
import hmac
import json
import os
import re
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import db_events, http_request, process_role, service_pids, wait_for

pytestmark = pytest.mark.backends

KEY = bytes(range(1, 33))
SECRET = "whsec_" + base64.b64encode(KEY).decode()


class Receiver:
    """A webhook endpoint.  Each request is recorded (headers with lower-case
    names, the body's bytes, what was answered) and answered by the next
    entry of script, then by default: an HTTP status, "hang" (no answer until
    release() or the end of the test) or "close" (the connection is closed
    without an answer)."""

    def __init__(self, script=(), default=200):
        self.script = list(script)
        self.default = default
        self.requests = []
        self.lock = threading.Lock()
        self.released = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    how = receiver.script.pop(0) if receiver.script else receiver.default
                    receiver.requests.append({
                        "path": self.path, "body": body, "answer": how,
                        "headers": {k.lower(): v for k, v in self.headers.items()}})
                if how == "hang":
                    receiver.released.wait(300)
                    self.close_connection = True
                elif how == "close":
                    self.close_connection = True
                else:
                    self.send_response(how)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def set(self, default=None, script=None):
        with self.lock:
            if default is not None:
                self.default = default
            if script is not None:
                self.script = list(script)

    def got(self):
        with self.lock:
            return list(self.requests)

    def events(self):
        return [json.loads(r["body"]) for r in self.got()]

    def wait(self, pred, what, timeout=60):
        return wait_for(lambda: pred(self.got()), timeout=timeout, what=what)

    def release(self):
        self.released.set()

    def stop(self):
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers():
    made = []

    def make(*args, **kw):
        made.append(Receiver(*args, **kw))
        return made[-1]
    yield make
    for r in made:
        r.stop()


def webhook_conf(*hooks, retry_for=None):
    """The webhooks list: each hook a dict of url and optional secret,
    secret_file, events (list) and timeout."""
    groups = []
    for h in hooks:
        text = f'{{ url = {json.dumps(h["url"])};'
        if "secret_file" in h:
            text += f' secret_file = {json.dumps(h["secret_file"])};'
        else:
            text += f' secret = {json.dumps(h.get("secret", SECRET))};'
        if "events" in h:
            text += " events = [" + ", ".join(json.dumps(e) for e in h["events"]) + "];"
        if "timeout" in h:
            text += f' timeout = {float(h["timeout"])};'
        groups.append(text + " }")
    text = "webhooks = (\n  " + ",\n  ".join(groups) + "\n);\n"
    if retry_for is not None:
        text += f"webhook_retry_for = {float(retry_for)};\n"
    return text


def verify(req, key=KEY):
    """Checks a request the Standard Webhooks way; returns its webhook-id."""
    h = req["headers"]
    assert h["content-type"] == "application/json", h
    msg_id, ts, sig = h["webhook-id"], h["webhook-timestamp"], h["webhook-signature"]
    assert re.fullmatch(r"msg_[0-9a-f-]{36}", msg_id), msg_id
    assert re.fullmatch(r"\d{10}", ts), ts
    want = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + req["body"],
                                     hashlib.sha256).digest()).decode()
    assert sig.startswith("v1,"), sig
    assert hmac.compare_digest(sig[3:], want), (sig, want)
    return msg_id


def outbox(env, **where):
    cond = " AND ".join(f"{k} = ?" for k in where) or "1 = 1"
    cols = ("webhook_id", "endpoint", "run_id", "seq", "status", "attempts", "last_status",
            "last_error")
    rows = env.sql(f"SELECT {', '.join(cols)} FROM webhook_outbox WHERE {cond}"
                   " ORDER BY run_id, seq, endpoint", *where.values())
    return [dict(zip(cols, r)) for r in rows]


def metric(service, name):
    text = service.get("/metrics").body.decode()
    m = re.search(rf"^{re.escape(name)} (\d+)$", text, re.M)
    assert m, (name, text[-3000:])
    return int(m[1])


def run_to_done(service, prompts=("a", "b")):
    pid = service.import_project(list(prompts))
    run_id = service.start_run(pid)
    wait_for(lambda: any(t == "done" for _s, t, _b in db_events(service.env, run_id)),
             what="done in the database")
    return pid, run_id


def done_body(env, run_id):
    (body,) = [b for _s, t, b in env.sql("SELECT seq, type, body FROM run_events"
                                         " WHERE run_id = ?", run_id) if t == "done"]
    return body.encode()


def sender_pids(conf):
    return [p for p in service_pids(conf) if process_role(p) == "t2istage-hook"]


# ---------------------------------------------------------------------------


def test_500_twice_then_200_delivers_done_once(service, receivers):
    rx = receivers(script=[500, 500])
    service.configure(extra=webhook_conf({"url": rx.url}))
    service.start()
    _pid, run_id = run_to_done(service)
    wait_for(lambda: outbox(service.env, run_id=run_id)[0]["status"] == "delivered",
             what="the delivery")
    got = rx.got()
    assert [r["answer"] for r in got] == [500, 500, 200]
    # Every attempt: the same webhook-id, a valid signature, the done event
    # exactly as stored.
    ids = {verify(r) for r in got}
    (row,) = outbox(service.env, run_id=run_id)
    assert ids == {row["webhook_id"]}
    assert all(r["body"] == done_body(service.env, run_id) for r in got)
    assert json.loads(got[0]["body"])["type"] == "done"
    assert (row["attempts"], row["last_status"], row["last_error"]) == (3, 200, None)
    assert metric(service, "t2istage_webhook_deliveries_total") == 1
    assert metric(service, 't2istage_webhook_failures_total{kind="http"}') == 2
    assert metric(service, "t2istage_webhook_queue") == 0
    # Delivered means never again: a second run's done comes, the first's does not.
    _pid2, run2 = run_to_done(service, ["c"])
    rx.wait(lambda g: len(g) == 4, "the second run's done")
    assert verify(rx.got()[3]) == outbox(service.env, run_id=run2)[0]["webhook_id"]
    assert [verify(r) for r in rx.got()].count(row["webhook_id"]) == 3


def test_kill9_after_done_delivers_after_restart(service, receivers):
    rx = receivers(default="close")     # drops every connection: nothing is delivered
    service.configure(extra=webhook_conf({"url": rx.url}))
    service.start()
    _pid, run_id = run_to_done(service)
    wait_for(lambda: outbox(service.env, run_id=run_id)[0]["attempts"] >= 1,
             what="a failed attempt on record")
    service.kill9()
    # The sender died with the supervisor.
    wait_for(lambda: not service_pids(service.env.conf), what="every process to die")
    (row,) = outbox(service.env, run_id=run_id)
    assert row["status"] == "pending", row
    assert "Empty reply" in row["last_error"] or "closed" in row["last_error"], row
    rx.set(default=200)
    service.start()
    wait_for(lambda: outbox(service.env, run_id=run_id)[0]["status"] == "delivered",
             what="the delivery after the restart")
    got = rx.got()
    assert got[-1]["answer"] == 200 and [r["answer"] for r in got].count(200) == 1
    assert {verify(r) for r in got} == {row["webhook_id"]}
    assert got[-1]["body"] == done_body(service.env, run_id)


def test_kill9_with_the_delivery_in_flight_sends_it_again(service, receivers):
    rx = receivers()
    service.configure(extra=webhook_conf({"url": rx.url, "timeout": 1}))
    service.start()
    (sender,) = wait_for(lambda: sender_pids(service.env.conf), what="the sender")
    os.kill(sender, signal.SIGSTOP)     # it takes the request and never answers
    _pid, run_id = run_to_done(service)
    claimed = "SELECT count(*) FROM webhook_outbox WHERE run_id = ? AND next_attempt_ms > queued_ms"
    wait_for(lambda: service.env.sql(claimed, run_id)[0][0] == 1, what="the claim")
    service.kill9()
    wait_for(lambda: not service_pids(service.env.conf), what="every process to die")
    assert rx.got() == []
    (row,) = outbox(service.env, run_id=run_id)
    assert (row["status"], row["attempts"]) == ("pending", 0)
    service.start()
    wait_for(lambda: outbox(service.env, run_id=run_id)[0]["status"] == "delivered",
             what="the delivery after the restart")
    (req,) = rx.got()
    assert verify(req) == row["webhook_id"]
    assert req["body"] == done_body(service.env, run_id)


def test_sigterm_keeps_undelivered_rows(service, receivers):
    rx = receivers(default=503)
    service.configure(extra=webhook_conf({"url": rx.url, "events": ["image_generated", "done"]}))
    service.start()
    (sender,) = wait_for(lambda: sender_pids(service.env.conf), what="the sender")
    _pid, run_id = run_to_done(service, ["a", "b", "c"])
    wait_for(lambda: all(r["attempts"] >= 1 for r in outbox(service.env, run_id=run_id)),
             what="a failed attempt of each")
    # One more event while the sender cannot answer: its delivery is in
    # flight when SIGTERM comes.
    os.kill(sender, signal.SIGSTOP)
    _pid2, run2 = run_to_done(service, ["d"])
    claimed = "SELECT count(*) FROM webhook_outbox WHERE run_id = ? AND next_attempt_ms > queued_ms"
    wait_for(lambda: service.env.sql(claimed, run2)[0][0] >= 1, what="a claim")
    assert service.stop() == 0
    rows = outbox(service.env)
    assert len(rows) == 3 + 1 + 2 and {r["status"] for r in rows} == {"pending"}, rows
    # The lease of what was in flight was given back: due at once.
    (in_flight,) = service.env.sql("SELECT count(*) FROM webhook_outbox WHERE run_id = ?"
                                   " AND attempts = 0 AND next_attempt_ms > ?", run2,
                                   int(time.time() * 1000) + 1000)
    assert in_flight == (0,)
    rx.set(default=200)
    service.start()
    wait_for(lambda: {r["status"] for r in outbox(service.env)} == {"delivered"},
             what="every delivery after the restart")
    ok = [r for r in rx.got() if r["answer"] == 200]
    assert sorted(verify(r) for r in ok) == sorted(r["webhook_id"] for r in rows)


def test_hanging_and_closing_receivers_never_delay_the_loop(service, receivers):
    hang, drop, ok = receivers(default="hang"), receivers(default="close"), receivers()
    every = ["stage_update", "info", "progress", "image_generated", "warning", "error", "done"]
    service.configure(extra=webhook_conf({"url": hang.url, "events": every, "timeout": 300},
                                         {"url": drop.url, "events": every},
                                         {"url": ok.url, "events": every}))
    service.start()
    _pid, run_id = run_to_done(service, [f"p{i}" for i in range(6)])
    stored = db_events(service.env, run_id)
    ok.wait(lambda g: len(g) == len(stored), "every event at the healthy receiver")
    # The hanging receiver holds its deliveries, unanswered, all the while.
    assert 1 <= len(hang.got()) <= 4 and not hang.released.is_set()
    assert http_request(service.port, "GET", "/healthz").status == 200
    bodies = service.env.sql("SELECT body FROM run_events WHERE run_id = ? ORDER BY seq", run_id)
    assert sorted((r["body"] for r in ok.got()), key=lambda b: json.loads(b)["seq"]) == \
        [b.encode() for (b,) in bodies]
    drop.wait(lambda g: len(g) >= len(stored), "the dropping receiver's attempts")
    assert metric(service, 't2istage_webhook_failures_total{kind="closed"}') >= len(stored)
    # Pending: every delivery to the hanging and to the dropping receiver.
    assert metric(service, "t2istage_webhook_queue") == 2 * len(stored)
    # A second run is not held up either.
    _pid2, run2 = run_to_done(service, ["q"])
    ok.wait(lambda g: len(g) == len(stored) + len(db_events(service.env, run2)),
            "the second run's events")


def test_sender_is_restarted_when_it_dies(service, receivers):
    rx = receivers()
    service.configure(extra=webhook_conf({"url": rx.url}))
    service.start()
    (first,) = wait_for(lambda: sender_pids(service.env.conf), what="the sender")
    os.kill(first, signal.SIGKILL)
    service.wait_log("webhook sender exited")
    (second,) = wait_for(lambda: [p for p in sender_pids(service.env.conf) if p != first],
                         what="a new sender")
    _pid, run_id = run_to_done(service)
    rx.wait(lambda g: len(g) == 1, "the delivery")
    assert verify(rx.got()[0]) == outbox(service.env, run_id=run_id)[0]["webhook_id"]
    # libcurl is in the sender, never in the supervisor.
    with open(f"/proc/{second}/maps") as f:
        assert "libcurl" in f.read()
    with open(f"/proc/{service.pid}/maps") as f:
        assert "libcurl" not in f.read()


def test_reload_changes_where_events_go(service, receivers):
    old, new = receivers(default=500), receivers()
    service.configure(extra=webhook_conf({"url": old.url}))
    service.start()
    _pid, run1 = run_to_done(service)
    wait_for(lambda: outbox(service.env, run_id=run1)[0]["attempts"] >= 1, what="an attempt")
    # A url no longer configured: its queued delivery is given up.
    service.configure(extra=webhook_conf({"url": new.url}))
    service.kill(signal.SIGHUP)
    service.wait_log("reloaded")
    wait_for(lambda: outbox(service.env, run_id=run1)[0]["status"] == "gave_up",
             what="the old endpoint's delivery to be given up")
    assert "no longer configured" in outbox(service.env, run_id=run1)[0]["last_error"]
    _pid, run2 = run_to_done(service)
    new.wait(lambda g: len(g) == 1, "the new endpoint's delivery")
    assert verify(new.got()[0]) == outbox(service.env, run_id=run2)[0]["webhook_id"]
    assert all(json.loads(r["body"])["run_id"] == run1 for r in old.got())


def test_events_filter_what_each_endpoint_gets(service, receivers):
    some, default = receivers(), receivers()
    service.configure(extra=webhook_conf({"url": some.url, "events": ["image_generated", "done"]},
                                         {"url": default.url}))
    service.start()
    _pid, run_id = run_to_done(service, ["a", "b", "c"])
    some.wait(lambda g: len(g) == 4, "three images and done")
    default.wait(lambda g: len(g) == 1, "done")
    assert sorted(e["type"] for e in some.events()) == ["done"] + ["image_generated"] * 3
    assert [e["type"] for e in default.events()] == ["done"]
    want = {s for s, t, _b in db_events(service.env, run_id) if t in ("image_generated", "done")}
    assert {e["seq"] for e in some.events()} == want
    assert len(outbox(service.env)) == 5


def test_given_up_after_webhook_retry_for(service, receivers):
    rx = receivers(default=500)
    service.configure(extra=webhook_conf({"url": rx.url}, retry_for=2))
    service.start()
    _pid, run_id = run_to_done(service)
    wait_for(lambda: outbox(service.env, run_id=run_id)[0]["status"] == "gave_up",
             what="the delivery to be given up")
    (row,) = outbox(service.env, run_id=run_id)
    assert row["attempts"] == len(rx.got()) >= 2 and row["last_status"] == 500
    assert metric(service, "t2istage_webhook_gave_up_total") == 1
    assert metric(service, 't2istage_webhook_failures_total{kind="http"}') == row["attempts"]
    assert metric(service, "t2istage_webhook_queue") == 0
    service.wait_log(f"webhook {row['webhook_id']} to {rx.url}: gave up after")


def test_run_command_delivers_before_it_exits(env, receivers):
    rx = receivers(script=[500])
    env.write_config(extra=webhook_conf({"url": rx.url}))
    rc, events, cp = env.run_json(env.project(["a", "b"]), expect=0)
    run_id = events[-1]["run_id"]
    # Retried within the command's wait: delivered before it exited.
    assert [r["answer"] for r in rx.got()] == [500, 200]
    assert rx.got()[-1]["body"] == done_body(env, run_id)
    assert json.loads(rx.got()[-1]["body"]) == events[-1]
    assert outbox(env, run_id=run_id)[0]["status"] == "delivered"


def test_run_command_leaves_undelivered_to_serve(service, receivers):
    env = service.env
    rx = receivers(default="close")
    service.configure(extra=webhook_conf({"url": rx.url}))
    rc, events, cp = env.run_json(env.project(["a"]), expect=0)
    run_id = events[-1]["run_id"]
    (row,) = outbox(env, run_id=run_id)
    assert row["status"] == "pending" and row["attempts"] >= 1, row
    assert "stay queued" in cp.stderr
    rx.set(default=200)
    service.start()
    wait_for(lambda: outbox(env, run_id=run_id)[0]["status"] == "delivered",
             what="serve to deliver it")
    assert verify(rx.got()[-1]) == row["webhook_id"]


BAD_CONFIGS = [
    ('webhooks = ( { url = "ftp://pipeline.example/x"; secret = "s3cret-XYZ"; } );',
     "webhooks[0].url", "http:// or https://"),
    ('webhooks = ( { url = "file:///etc/passwd"; secret = "s3cret-XYZ"; } );',
     "webhooks[0].url", "http:// or https://"),
    ('webhooks = ( { url = "http://"; secret = "s3cret-XYZ"; } );',
     "webhooks[0].url", "with a host"),
    ('webhooks = ( { url = "https://a.example/x"; } );', "webhooks[0].secret", "missing"),
    ('webhooks = ( { secret = "s3cret-XYZ"; } );', "webhooks[0].url", "missing"),
    ('webhooks = ( { url = "https://a.example/x"; secret = "whsec_s3cret-XYZ!"; } );',
     "webhooks[0].secret", "base64"),
    ('webhooks = ( { url = "https://a.example/x"; secret = "s3cret-XYZ";'
     ' events = ["done", "finished"]; } );', "webhooks[0].events[1]", "unknown event type"),
    ('webhooks = ( { url = "https://a.example/x"; secret = "s3cret-XYZ"; },'
     ' { url = "https://a.example/x"; secret = "s3cret-XYZ"; } );', "webhooks[1].url",
     "duplicate"),
    ('webhooks = ( { url = "https://a.example/x"; secret = "s3cret-XYZ"; timeout = 0; } );',
     "webhooks[0].timeout", "more than 0"),
    ("webhook_retry_for = -1;", "webhook_retry_for", "more than 0"),
]


@pytest.mark.parametrize("text,key,needle", BAD_CONFIGS)
def test_bad_webhook_config_is_refused(env, text, key, needle):
    env.write_config(extra=text)
    for cmd in (["check-config"], ["serve"]):
        cp = env.t2i(*cmd, timeout=30)
        assert cp.returncode != 0, (cmd, cp.stdout, cp.stderr)
        assert re.search(rf"{re.escape(env.conf)}:\d+: {re.escape(key)}: .*{re.escape(needle)}",
                         cp.stderr), cp.stderr
        assert "s3cret" not in cp.stderr
    assert not os.path.exists(env.db)


def test_webhook_config_is_valid(env, tmp_path):
    secret_file = tmp_path / "hook.secret"
    secret_file.write_text(SECRET + "\n")
    env.write_config(extra=webhook_conf(
        {"url": "https://pipeline.example/hooks", "secret_file": str(secret_file),
         "events": ["done", "error"], "timeout": 5},
        {"url": "HTTP://10.0.0.1:8080/x?y=1", "secret": "raw secret"}, retry_for=3600))
    cp = env.t2i("check-config", check=0)
    assert "(1 providers, 2 webhooks)" in cp.stdout
    assert SECRET not in cp.stdout + cp.stderr


def test_the_secret_appears_nowhere(service, receivers, tmp_path):
    raw = "raw-secret-Q7f2-kept-out-of-everything"
    rx = receivers()
    every = ["stage_update", "info", "progress", "image_generated", "warning", "error", "done"]
    service.configure(extra=webhook_conf({"url": rx.url, "secret": raw, "events": every}))
    service.start()
    pid, run_id = run_to_done(service, ["a", "b"])
    rx.wait(lambda g: len(g) == len(db_events(service.env, run_id)), "every event")
    # A raw secret is the key as it is written.
    assert all(verify(r, raw.encode()) for r in rx.got())
    seen = [service.get(p).body for p in (f"/v1/projects/{pid}", f"/v1/projects/{pid}/images",
                                          "/metrics", f"/v1/projects/{pid}/image-generation/events")]
    seen += [json.dumps(r["headers"]).encode() + r["body"] for r in rx.got()]
    for args in (["status"], ["status", "--json"], ["status", pid], ["check-config"]):
        cp = service.env.t2i(*args)
        seen.append((cp.stdout + cp.stderr).encode())
    service.stop()
    seen.append(service.all_logs().encode())
    for path in (service.env.db, service.env.db + "-wal"):
        if os.path.exists(path):
            with open(path, "rb") as f:
                seen.append(f.read())
    for blob in seen:
        assert raw.encode() not in blob
        assert base64.b64encode(raw.encode()) not in blob

