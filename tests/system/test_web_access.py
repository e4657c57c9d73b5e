"""What a browser needs of `t2istage serve` (version 2 of the API contract):
CORS for the origins in http.cors_origins, CSRF refusals, signed image
URLs, ?access_token= on the event streams (redacted in the access log),
and the end of a stream (retry:, then 204 for a reconnect past `done`).

Over loopback against the real binary, with raw HTTP, so that every
header is the test's own choice.  test_browser_*.py drive the same
through headless Chromium."""

import hashlib
import hmac
import json
import os
import re
import signal
import time
import uuid

from conftest import (SIGNED_URL, assert_json_error, check_signed_urls, http_request,
                      provider_conf, run_path, slow_service, open_gate, wait_for, wait_run_done)

UI = "http://ui.example:8081"
EVIL = "http://evil.example"
CORS = f'cors_origins = ["{UI}", "https://other.example"];'


def cors_of(r):
    return {k: v for k, v in r.headers.items() if k.startswith("access-control-")}


def finished_project(service, prompts=("a", "b", "c"), **body):
    """Imports a project and runs it to the end; returns (project id, run id)."""
    pid = service.import_project(list(prompts))
    run = service.start_run(pid, body or None)
    wait_run_done(service.env, run)
    return pid, run


# --------------------------------------------------------------------------
# CORS


def test_cors_headers_and_preflights(service):
    token = "tok-" + uuid.uuid4().hex
    service.configure(token=token, http=CORS)
    service.start()
    pid, run = finished_project(service)
    sid = service.get(f"/v1/projects/{pid}").json()["storyboards"][0]["id"]
    # Every answer to a listed origin says so: JSON, errors, streams, 204.
    for path, headers, status in [
            (f"/v1/projects/{pid}", {}, 200),
            ("/v1/projects", {}, 200),
            (f"/v1/projects/{uuid.uuid4()}", {}, 404),
            (f"/v1/projects/{pid}", {"Authorization": "Bearer wrong"}, 401),
            (f"/v1/runs/{run}/events", {}, 200),
            (f"/v1/runs/{run}/events", {"Last-Event-ID": "999"}, 204)]:
        r = service.get(path, headers={"Origin": UI, **headers})
        assert r.status == status, (path, r)
        assert r.headers.get("access-control-allow-origin") == UI, (path, r.headers)
        assert r.headers.get("vary") == "Origin", (path, r.headers)
    # Another origin gets no CORS header (the browser then hides the answer).
    r = service.get(f"/v1/projects/{pid}", headers={"Origin": EVIL})
    assert r.status == 200 and cors_of(r) == {}, r.headers
    assert r.headers.get("vary") == "Origin"

    # Preflights: no token needed, the methods of the path, the headers a page sends.
    for path, methods in [("/v1/projects", "GET, POST, HEAD"),
                          (f"/v1/projects/{pid}", "GET, DELETE, HEAD"),
                          (f"/v1/projects/{pid}/storyboards/{sid}", "PATCH"),
                          (run_path(pid), "POST"),
                          (f"/v1/runs/{run}/events", "GET, HEAD")]:
        r = http_request(service.port, "OPTIONS", path, headers={
            "Origin": UI, "Access-Control-Request-Method": [m for m in methods.split(", ") if m != "HEAD"][-1],
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert r.status == 204, (path, r)
        assert r.body == b""
        assert r.headers["access-control-allow-origin"] == UI
        assert r.headers["access-control-allow-methods"] == methods, (path, r.headers)
        allowed = {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
        assert {"authorization", "content-type", "last-event-id"} <= allowed
    # From another origin a preflight is refused, and says nothing of CORS.
    r = http_request(service.port, "OPTIONS", "/v1/projects",
                     headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"})
    assert_json_error(r, 403, "not in http.cors_origins")
    assert cors_of(r) == {}
    # A preflight of a path that does not exist.
    r = http_request(service.port, "OPTIONS", "/v1/nothing",
                     headers={"Origin": UI, "Access-Control-Request-Method": "GET"})
    assert_json_error(r, 404)
    # OPTIONS that is no preflight is an ordinary request: the token first.
    assert_json_error(http_request(service.port, "OPTIONS", "/v1/projects"), 401)
    assert_json_error(service.request("OPTIONS", "/v1/projects"), 405)


def test_cors_reload_and_none_by_default(service):
    service.configure()
    service.start()
    r = service.get("/v1/projects", headers={"Origin": UI})
    assert r.status == 200 and cors_of(r) == {} and "vary" not in r.headers
    r = http_request(service.port, "OPTIONS", "/v1/projects",
                     headers={"Origin": UI, "Access-Control-Request-Method": "GET"})
    assert_json_error(r, 403)
    # SIGHUP brings the list in, and takes it out again.
    service.configure(http=CORS)
    service.kill(signal.SIGHUP)
    service.wait_log("reloaded:")
    r = service.get("/v1/projects", headers={"Origin": UI})
    assert r.headers.get("access-control-allow-origin") == UI
    service.configure()
    service.kill(signal.SIGHUP)
    service.wait_log("reloaded:", 2)
    assert cors_of(service.get("/v1/projects", headers={"Origin": UI})) == {}


# --------------------------------------------------------------------------
# CSRF


def count(env, table):
    return env.sql(f"SELECT count(*) FROM {table}")[0][0]


def test_csrf_refusals_change_nothing(service):
    """Without a token, as with one: what a cross-site form or a no-cors fetch
    can send is refused before anything changes."""
    slow_service(service, n_delay_ms=0, trace=False, http=CORS)
    service.start()
    env = service.env
    pid = service.import_project(["a", "GATE b"])
    sid = service.get(f"/v1/projects/{pid}").json()["storyboards"][0]["id"]
    snap = env.snapshot()
    own = f"http://127.0.0.1:{service.port}"
    project = json.dumps({"name": "x", "storyboards": [{"image_prompt": "a"}]})
    attempts = [
        # A form post (urlencoded or multipart) and a no-cors fetch (text/plain).
        ("POST", run_path(pid), {"Content-Type": "application/x-www-form-urlencoded"}, "a=1", 415),
        ("POST", run_path(pid), {"Content-Type": "multipart/form-data; boundary=x"}, "", 415),
        ("POST", run_path(pid), {"Content-Type": "text/plain;charset=UTF-8"}, "{}", 415),
        ("POST", run_path(pid), {}, None, 415),
        ("POST", "/v1/projects", {"Content-Type": "text/plain"}, project, 415),
        ("PATCH", f"/v1/projects/{pid}/storyboards/{sid}", {"Content-Type": "text/plain"},
         '{"image_prompt": "x"}', 415),
        ("DELETE", f"/v1/projects/{pid}", {}, None, 415),
        # The right type from a page of another site, or from a sandboxed frame.
        ("POST", run_path(pid), {"Content-Type": "application/json", "Origin": EVIL}, "{}", 403),
        ("POST", "/v1/projects", {"Content-Type": "application/json", "Origin": "null"},
         project, 403),
        ("DELETE", f"/v1/projects/{pid}", {"Content-Type": "application/json", "Origin": EVIL},
         None, 403),
        ("PATCH", f"/v1/projects/{pid}/storyboards/{sid}",
         {"Content-Type": "application/json", "Origin": "https://127.0.0.1.evil.example"},
         '{"image_prompt": "x"}', 403),
    ]
    for method, path, headers, body, status in attempts:
        r = http_request(service.port, method, path, body, headers)
        assert_json_error(r, status, "Content-Type" if status == 415 else "Origin")
    assert env.snapshot() == snap
    # The service's own origin, and a listed one, may.
    r = http_request(service.port, "PATCH", f"/v1/projects/{pid}/storyboards/{sid}",
                     '{"negative_prompt": "blur"}',
                     {"Content-Type": "application/json", "Origin": own})
    assert r.status == 200, r
    # Behind a proxy that rewrote Host, the origin it was reached at.
    r = http_request(service.port, "PATCH", f"/v1/projects/{pid}/storyboards/{sid}",
                     '{"negative_prompt": "grain"}',
                     {"Content-Type": "application/json", "Origin": "https://t2i.example",
                      "X-Forwarded-Host": "t2i.example"})
    assert r.status == 200, r
    r = http_request(service.port, "POST", run_path(pid), "",
                     {"Content-Type": "application/json; charset=utf-8", "Origin": UI})
    assert r.status == 202, r
    assert r.headers["access-control-allow-origin"] == UI
    run = r.json()["run_id"]
    # Cancel: a JSON type, and nothing or {} for a body.
    r = http_request(service.port, "POST", run_path(pid, "/cancel"), None, {})
    assert_json_error(r, 415)
    assert_json_error(service.post(run_path(pid, "/cancel"), {"now": True}), 400, "no arguments")
    assert env.sql("SELECT status FROM runs WHERE id = ?", run) == [("processing",)]
    assert service.post(run_path(pid, "/cancel"), {}).status == 202
    open_gate(env)
    wait_run_done(env, run)


def test_csrf_with_a_token(service):
    token = "tok-" + uuid.uuid4().hex
    service.configure(token=token)
    service.start()
    pid = service.import_project(["a"])
    snap = service.env.snapshot()
    # Even holding the token (a browser sends no Authorization by itself, but
    # a page might have one), a foreign Origin is refused first.
    r = service.post(run_path(pid), {}, headers={"Origin": EVIL})
    assert_json_error(r, 403, "Origin")
    r = service.post(run_path(pid), "{}", headers={"Content-Type": "text/plain"})
    assert_json_error(r, 415)
    r = http_request(service.port, "POST", run_path(pid), "{}", {"Content-Type": "text/plain"})
    assert_json_error(r, 401)   # no token: 401 before the content type
    assert service.env.snapshot() == snap


# --------------------------------------------------------------------------
# Signed image URLs


def image_objects(service, pid):
    """Every image object the API hands out for a project: the project view,
    the image list and each image's metadata."""
    doc = service.get(f"/v1/projects/{pid}").json()
    out = [sb["image"] for sb in doc["storyboards"] if sb["image"]]
    images = service.get(f"/v1/projects/{pid}/images").json()["images"]
    out += images
    out += [service.get(f"/v1/images/{im['id']}").json() for im in images]
    return out


def sign(key, path, exp):
    return hmac.new(key, f"{path}?exp={exp}".encode(), hashlib.sha256).hexdigest()


def test_signed_urls(service):
    token = "tok-" + uuid.uuid4().hex
    service.configure(token=token, thumbnails=True,
                      providers=[provider_conf("ok", images=2)])
    service.start()
    env = service.env
    pid, run = finished_project(service)
    objs = image_objects(service, pid)
    assert len(objs) == 3 + 6 + 6      # current images; primaries and variants, twice
    for im in objs:
        check_signed_urls(im)
        assert im["thumbnail_path"]
    # The key was made once beside the database: 32 bytes, private.
    key_path = os.path.join(os.path.dirname(env.db), "url.key")
    assert oct(os.stat(key_path).st_mode & 0o777) == "0o600"
    with open(key_path, "rb") as f:
        key = f.read()
    assert len(key) == 32
    now = int(time.time())
    for im in objs:
        for what in ("file", "thumbnail"):
            url = im[f"{what}_url"]
            m = SIGNED_URL.match(url)
            path, exp = url.split("?")[0], int(m[3])
            # sig = HMAC-SHA256(key, "PATH?exp=EXP"); a day's lifetime.
            assert url.endswith(f"&sig={sign(key, path, exp)}")
            assert now <= exp <= now + 86400 + 60
            r = http_request(service.port, "GET", url)     # no token, no header
            assert r.status == 200, (url, r)
            with open(im[f"{what}_path"], "rb") as f:
                assert r.body == f.read()
            assert re.fullmatch(r"private, max-age=\d+", r.headers["cache-control"])
    # The token is in no URL, no answer.
    for im in objs:
        assert token not in json.dumps(im)
    # Bad signatures: 403 with a JSON error, with or without the token.
    im = objs[0]
    other = objs[1] if objs[1]["id"] != im["id"] else objs[2]
    path = f"/v1/images/{im['id']}/file"
    m = SIGNED_URL.match(im["file_url"])
    exp, sig = int(m[3]), im["file_url"].rsplit("=", 1)[1]
    bad = [
        (f"{path}?exp={exp}&sig={sig[:-1]}{'0' if sig[-1] != '0' else '1'}", "bad signature"),
        (f"{path}?exp={exp + 1}&sig={sig}", "bad signature"),
        (f"/v1/images/{other['id']}/file?exp={exp}&sig={sig}", "bad signature"),
        (f"/v1/images/{im['id']}/thumbnail?exp={exp}&sig={sig}", "bad signature"),
        (f"{path}?exp={exp}", "needs exp"),
        (f"{path}?sig={sig}", "needs exp"),
        (f"{path}?exp=soon&sig={sig}", "needs exp"),
        # Signed with the right key, but expired.
        (f"{path}?exp={now - 10}&sig={sign(key, path, now - 10)}", "expired"),
    ]
    for url, why in bad:
        assert_json_error(http_request(service.port, "GET", url), 403, why)
        assert_json_error(service.get(url), 403, why)
    # A signature opens the file routes only: elsewhere the token is needed.
    assert_json_error(http_request(service.port, "GET",
                                   f"/v1/images/{im['id']}?exp={exp}&sig={sig}"), 401)
    # Without any: the token, as in version 1.
    assert_json_error(http_request(service.port, "GET", path), 401)
    assert service.get(path).status == 200
    # The access log has paths only: no signature, no token.
    assert "sig=" not in service.log() and token not in service.log()


def test_signed_urls_key_file_and_replay_after_ttl(service):
    """A configured key signs; a replay of the run's events long after
    url_ttl still hands out URLs that load (they are signed as they go out,
    not when the event was written)."""
    env = service.env
    key = os.urandom(48)
    with open(os.path.join(env.path, "my.key"), "wb") as f:
        f.write(key)
    os.chmod(os.path.join(env.path, "my.key"), 0o600)
    service.configure(http='url_key_file = "my.key"; url_ttl = 5;')
    service.start()
    pid, run = finished_project(service, ("one", "two"))
    first = [m["data"] for m in service.events(pid) if m["data"]["type"] == "image_generated"]
    assert len(first) == 2
    for ev in first:
        url = ev["image"]["file_url"]
        path, exp = url.split("?")[0], int(SIGNED_URL.match(url)[3])
        assert url.endswith("&sig=" + sign(key, path, exp))
    # Bounded wait for the clock to pass the first URLs' expiry.
    url = first[0]["image"]["file_url"]
    wait_for(lambda: http_request(service.port, "GET", url).status == 403, timeout=30,
             interval=0.2, what="the URL to expire")
    assert_json_error(http_request(service.port, "GET", url), 403, "expired")
    for stream in (f"/v1/runs/{run}/events", run_path(pid, "/events")):
        c = service.sse(stream)
        try:
            again = [m["data"] for m in c.read_all() if m["data"]["type"] == "image_generated"]
        finally:
            c.close()
        assert [e["image"]["id"] for e in again] == [e["image"]["id"] for e in first]
        for ev in again:
            assert ev["image"]["file_url"] != url
            r = http_request(service.port, "GET", ev["image"]["file_url"])
            assert r.status == 200, r
    # A new key on SIGHUP: what is handed out from then on is signed with
    # it (no event signed a moment before, with the same exp, is served
    # again), and the old key's URLs are refused.
    service.configure(http='url_key_file = "my.key"; url_ttl = 600;')
    service.kill(signal.SIGHUP)
    service.wait_log("reloaded:")
    c = service.sse(f"/v1/runs/{run}/events")
    old_url = [m["data"] for m in c.read_all()
               if m["data"]["type"] == "image_generated"][0]["image"]["file_url"]
    c.close()
    key2 = os.urandom(32)
    with open(os.path.join(env.path, "my.key"), "wb") as f:
        f.write(key2)
    service.kill(signal.SIGHUP)
    service.wait_log("reloaded:", 2)
    assert_json_error(http_request(service.port, "GET", old_url), 403, "bad signature")
    c = service.sse(f"/v1/runs/{run}/events")
    third = [m["data"] for m in c.read_all() if m["data"]["type"] == "image_generated"]
    c.close()
    for ev in third:
        url = ev["image"]["file_url"]
        path, exp = url.split("?")[0], int(SIGNED_URL.match(url)[3])
        assert url.endswith("&sig=" + sign(key2, path, exp))
        assert http_request(service.port, "GET", url).status == 200


# --------------------------------------------------------------------------
# ?access_token= and the access log


ACCESS = re.compile(r"http: (GET|POST|OPTIONS|PATCH|DELETE) (\S+) (\d{3}) ")


def test_access_token_on_streams_only(service):
    token = "tok-" + uuid.uuid4().hex
    service.configure(token=token)
    service.start()
    pid, run = finished_project(service, ("a",))
    for path in (run_path(pid, "/events"), f"/v1/runs/{run}/events"):
        c = http_request(service.port, "GET", f"{path}?access_token={token}",
                         headers={"Accept": "text/event-stream"})
        assert c.status == 200 and b'"type":"done"' in c.body, c
        assert_json_error(http_request(service.port, "GET", f"{path}?access_token=wrong"), 401,
                          "token")
    # Anywhere else a token in the query is refused, even a right one beside
    # a right header: it would end up in histories and logs.
    for method, path in [("GET", f"/v1/projects/{pid}"), ("GET", "/v1/projects"),
                         ("GET", f"/v1/runs/{run}"), ("POST", run_path(pid)),
                         ("GET", "/healthz"), ("GET", "/v1/nothing")]:
        r = service.request(method, f"{path}?access_token={token}")
        assert_json_error(r, 401, "token in the wrong place")
    assert service.get("/v1/projects?limit=1").status == 200
    marker = f"/v1/projects/{uuid.uuid4()}"
    assert service.get(marker).status == 404
    service.wait_log(marker)
    log = service.log()
    assert token not in log
    lines = ACCESS.findall(log)
    redacted = [p for _m, p, _s in lines if "access_token" in p]
    assert redacted and all(p.endswith("?access_token=[redacted]") for p in redacted), redacted
    assert (("GET", f"/v1/runs/{run}/events?access_token=[redacted]", "200")) in lines
    # Other query strings are not logged at all.
    assert not [p for _m, p, _s in lines if "?" in p and "access_token" not in p]


# --------------------------------------------------------------------------
# The end of a stream


def test_stream_end_retry_and_204(service):
    slow_service(service, n_delay_ms=0, trace=False)
    service.start()
    env = service.env
    pid = service.import_project(["a", "GATE b"])
    run = service.start_run(pid)
    c = service.sse(f"/v1/runs/{run}/events")
    try:
        assert c.status == 200
        first = c.next()
        assert c.lines[:2] == ["retry: 3000", ""] and c.retry == 3000
        assert first["data"]["type"] == "connected"
        # Reconnects before `done` resume, from where the client is.
        seen = [c.next()["id"], c.next()["id"]]
        for path in (f"/v1/runs/{run}/events", run_path(pid, "/events")):
            again = service.sse(path, headers={"Last-Event-ID": str(seen[-1])})
            assert again.status == 200
            assert again.next()["data"]["type"] == "connected"
            assert again.next()["id"] == seen[-1] + 1
            again.close()
        open_gate(env)
        msgs = c.read_all()
    finally:
        c.close()
    done = msgs[-1]
    assert done["data"]["type"] == "done"
    # The stream ended after done; an EventSource would come back with its
    # Last-Event-ID and be told 204 (test_browser_sse watches one stop).
    for after in (done["id"], done["id"] + 5):
        c = service.sse(f"/v1/runs/{run}/events", headers={"Last-Event-ID": str(after)})
        assert c.status == 204 and c.resp.read() == b""
        c.close()
    # From before done: the rest, then the end.
    c = service.sse(f"/v1/runs/{run}/events", headers={"Last-Event-ID": str(done["id"] - 1)})
    rest = c.read_all()
    c.close()
    assert [m["data"]["type"] for m in rest] == ["connected", "done"]
