"""The HTTP side under hostile clients, through the real binary over
loopback, raw sockets where a well-behaved client library cannot say what
an attacker says: request smuggling, slowloris, connection floods from one
address and from others, a Host that names another site, NUL bytes and
encoded slashes, HEAD, paging of big answers, the cap on request bodies,
event streams that never read, and what reaches the log."""

import json
import re
import socket
import time
import uuid

import pytest

from conftest import (SERVICE_WAIT, assert_json_error, http_request, provider_conf,
                      run_path, wait_for, wait_run_done)


# ---- raw HTTP ----

def connect(port, src="127.0.0.1", rcvbuf=None):
    s = socket.socket()
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s


def read_to_end(s, timeout=SERVICE_WAIT):
    """Everything the server sends until it closes; AssertionError when it
    keeps the connection open past timeout (a bounded wait, not a time
    measured).  A reset after the answer counts as the end."""
    s.settimeout(timeout)
    out = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                return out
            out += b
    except ConnectionResetError:
        return out
    except socket.timeout:
        raise AssertionError(f"the server kept the connection open; got {out[:300]!r}")
    finally:
        s.close()


def read_one(s, timeout=SERVICE_WAIT):
    """One answer with a Content-Length, on a connection that stays open."""
    s.settimeout(timeout)
    out = b""
    while b"\r\n\r\n" not in out:
        b = s.recv(65536)
        assert b, out
        out += b
    head, _, body = out.partition(b"\r\n\r\n")
    n = int(re.search(rb"content-length: (\d+)", head, re.I)[1])
    while len(body) < n:
        b = s.recv(65536)
        assert b, out
        body += b
    return head + b"\r\n\r\n" + body


def raw(port, data, src="127.0.0.1"):
    s = connect(port, src)
    s.sendall(data)
    return read_to_end(s)


def statuses(data):
    return [int(m) for m in re.findall(rb"^HTTP/1\.[01] (\d{3}) ", data, re.M)]


def metric(service, name, src="127.0.0.9"):
    """A sample of /metrics (name with its labels), asked from an address of
    its own so that it is never the one a test fills; None when a full
    service refuses the connection (in a wait_for, a try again)."""
    s = connect(service.port, src)
    s.sendall(f"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{service.port}\r\n"
              "Connection: close\r\n\r\n".encode())
    text = read_to_end(s).decode()
    if statuses(text.encode()) in ([503], []):
        return None
    m = re.search(r"^" + re.escape(name) + r" (\d+)$", text, re.M)
    assert m, (name, text[-2000:])
    return int(m[1])


def host(service):
    return f"127.0.0.1:{service.port}"


# ---- smuggling and framing ----

SMUGGLED = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def test_duplicate_content_length_is_refused_and_nothing_is_smuggled(service):
    """Two Content-Lengths: 400 with Connection: close, and the bytes after
    the shorter body are never answered as a request of their own."""
    service.configure()
    service.start()
    body = b"{}" + SMUGGLED
    for second in (len(body), 2):
        head = (f"POST /v1/projects HTTP/1.1\r\nHost: {host(service)}\r\n"
                "Content-Type: application/json\r\nContent-Length: 2\r\n"
                f"Content-Length: {second}\r\n\r\n").encode()
        got = raw(service.port, head + body)
        assert statuses(got) == [400], got
        assert b"more than one Content-Length" in got
        assert b"connection: close" in got.lower()
        assert b"t2istage_runs" not in got
    assert metric(service, 't2istage_http_requests_refused_total{reason="framing"}') == 2
    assert service.env.sql("SELECT count(*) FROM projects")[0][0] == 0


def test_content_length_with_transfer_encoding_is_refused(service):
    service.configure()
    service.start()
    head = (f"POST /v1/projects HTTP/1.1\r\nHost: {host(service)}\r\n"
            "Content-Type: application/json\r\nContent-Length: 5\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()
    got = raw(service.port, head + b"0\r\n\r\n" + SMUGGLED)
    assert statuses(got) == [400], got
    assert b"Content-Length and Transfer-Encoding" in got
    assert b"t2istage_runs" not in got


@pytest.mark.parametrize("coding", ["gzip", "chunked, gzip", "gzip, chunked", "identity"])
def test_unknown_transfer_coding_is_refused_at_once(service, coding):
    """Before: the connection hung until the idle timeout."""
    service.configure()
    service.start()
    head = (f"POST /v1/projects HTTP/1.1\r\nHost: {host(service)}\r\n"
            f"Content-Type: application/json\r\nTransfer-Encoding: {coding}\r\n\r\n").encode()
    got = raw(service.port, head + b"{}")
    assert statuses(got) == [400], got
    assert b"a transfer coding other than chunked" in got


def test_transfer_encoding_twice_and_in_http10(service):
    service.configure()
    service.start()
    for head in ("POST /v1/projects HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n"
                 "Transfer-Encoding: chunked\r\n", "POST /v1/projects HTTP/1.0\r\nHost: {h}\r\n"
                 "Transfer-Encoding: chunked\r\n"):
        got = raw(service.port, (head.format(h=host(service)) +
                                 "Content-Type: application/json\r\n\r\n0\r\n\r\n").encode())
        assert statuses(got) == [400], got


def test_a_good_chunked_body_still_works(service):
    service.configure()
    service.start()
    body = json.dumps({"name": "chunked", "storyboards": [{"image_prompt": "a"}]}).encode()
    head = (f"POST /v1/projects HTTP/1.1\r\nHost: {host(service)}\r\nConnection: close\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    got = raw(service.port, head + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
    assert statuses(got) == [201], got


# ---- the target and the headers ----

def test_nul_and_encoded_slash_in_the_path(service):
    """Before: /v1/images/ID%00/file answered the JSON route (MHD cut the
    path at the decoded NUL), and /v1/images/ID%2ffile the file."""
    service.configure()
    service.start()
    pid = service.import_project(["a"])
    run = service.start_run(pid)
    wait_run_done(service.env, run)
    (img,) = service.env.sql("SELECT id FROM generated_images WHERE run_id = ?", run)[0]
    assert service.get(f"/v1/images/{img}").status == 200
    for target in (f"/v1/images/{img}%00/file", f"/v1/images/{img}%2ffile",
                   f"/v1/images/{img}%2Ffile", f"/v1/images%2F{img}",
                   "/v1/projects?after=%00"):
        got = raw(service.port, f"GET {target} HTTP/1.1\r\nHost: {host(service)}\r\n\r\n".encode())
        assert statuses(got) == [400], (target, got)
        assert b"%00, an encoded" in got
    # A raw NUL or a space in the target, a target that is no path.
    for target in (f"/v1/images/{img}\0/file".encode(), b"/v1/a b", b"v1/projects", b"*"):
        got = raw(service.port, b"GET " + target + b" HTTP/1.1\r\nHost: " +
                  host(service).encode() + b"\r\n\r\n")
        assert statuses(got) == [400], (target, got)


def test_nul_in_a_header(service):
    """Before: a NUL inside Authorization was accepted (MHD cut the value at
    it, and the token before it matched)."""
    token = "tok-" + uuid.uuid4().hex
    service.configure(token=token)
    service.start()
    good = (f"GET /v1/projects HTTP/1.1\r\nHost: {host(service)}\r\nConnection: close\r\n"
            f"Authorization: Bearer {token}\r\n\r\n").encode()
    assert statuses(raw(service.port, good)) == [200]
    for bad in (good.replace(token.encode(), token.encode() + b"\0junk"),
                good.replace(b"\r\n\r\n", b"\r\nX-Other: a\0b\r\n\r\n"),
                good.replace(b"\r\n\r\n", b"\r\nX-Ctl: a\x01b\r\n\r\n"),
                good.replace(b"\r\n\r\n", b"\r\nBad Name: x\r\n\r\n"),
                good.replace(b"\r\n\r\n", b"\r\nContent-Length : 0\r\n\r\n"),
                good.replace(b"GET ", b"G\x01T ")):
        got = raw(service.port, bad)
        assert statuses(got) == [400], (bad, got)


def test_missing_or_duplicate_host(service):
    service.configure()
    service.start()
    for head in ("GET /healthz HTTP/1.1\r\n", f"GET /healthz HTTP/1.1\r\nHost: {host(service)}"
                 f"\r\nHost: {host(service)}\r\n"):
        got = raw(service.port, (head + "\r\n").encode())
        assert statuses(got) == [400], (head, got)
        assert b"Host" in got
    # HTTP/1.0 needs none (and its connection ends with the answer).
    assert statuses(raw(service.port, b"GET /healthz HTTP/1.0\r\n\r\n")) == [200]


def test_absolute_form_target(service):
    """RFC 9112 3.2.2: routed on its path; its host, not Host, is checked.
    Before: 404."""
    service.configure()
    service.start()
    got = raw(service.port, f"GET http://{host(service)}/v1/projects HTTP/1.1\r\n"
              "Host: other.example\r\nConnection: close\r\n\r\n".encode())
    assert statuses(got) == [200], got
    assert b'"projects"' in got
    got = raw(service.port, f"GET http://evil.example:{service.port}/v1/projects HTTP/1.1\r\n"
              f"Host: {host(service)}\r\nConnection: close\r\n\r\n".encode())
    assert statuses(got) == [421], got


def test_host_names_another_site_421(service):
    """DNS rebinding: a page of evil.example, its name rebound to 127.0.0.1,
    sends Host: evil.example:PORT.  It reaches nothing but /healthz, token
    or not (the Host is checked before the token)."""
    token = "tok-" + uuid.uuid4().hex
    service.configure(token=token)
    service.start()
    auth = {"Authorization": f"Bearer {token}"}
    evil = {"Host": f"evil.example:{service.port}", **auth}
    for method, path in (("GET", "/v1/projects"), ("GET", "/metrics"), ("GET", "/v1/nothing"),
                         ("POST", "/v1/projects")):
        r = http_request(service.port, method, path, body=b"{}" if method == "POST" else None,
                         headers={**evil, "Content-Type": "application/json"})
        assert_json_error(r, 421, "http.server_names")
    r = http_request(service.port, "GET", "/v1/projects", headers={"Host": "evil.example",
                                                                   "Authorization": "x"})
    assert r.status == 421    # not 401: nothing about the token is told
    assert http_request(service.port, "GET", "/healthz", headers=evil).status == 200
    for name in (host(service), f"localhost:{service.port}", "localhost",
                 f"[::1]:{service.port}", "127.0.0.1"):
        r = http_request(service.port, "GET", "/v1/projects", headers={"Host": name, **auth})
        assert r.status == 200, (name, r)
    assert http_request(service.port, "GET", "/v1/projects", headers={
        "Host": "127.0.0.1:1", **auth}).status == 421
    assert metric(service, 't2istage_http_requests_refused_total{reason="host"}') == 6


def test_server_names_configured(service):
    service.configure(http='server_names = ["images.example", "proxy.example:443"];')
    service.start()
    for name, want in (("images.example", 200), (f"images.example:{service.port}", 200),
                       ("proxy.example:443", 200), ("proxy.example", 421),
                       (host(service), 421)):
        r = http_request(service.port, "GET", "/v1/projects", headers={"Host": name})
        assert r.status == want, (name, r)


# ---- HEAD ----

def test_head_on_every_get_route(service):
    """The headers of GET and no body.  Before: 405."""
    import http.client

    service.configure(thumbnails=True)
    service.start()
    pid = service.import_project(["a", "b"])
    run = service.start_run(pid)
    wait_run_done(service.env, run)
    (img,) = service.env.sql("SELECT id FROM generated_images WHERE run_id = ? LIMIT 1", run)[0]
    for path in ("/healthz", "/metrics", "/v1/projects", f"/v1/projects/{pid}",
                 f"/v1/projects/{pid}/images", f"/v1/projects/{pid}/runs", f"/v1/runs/{run}",
                 f"/v1/images/{img}", f"/v1/images/{img}/file", f"/v1/images/{img}/thumbnail",
                 f"/v1/runs/{run}/events", run_path(pid, "/events")):
        got = {}
        for method in ("GET", "HEAD"):
            c = http.client.HTTPConnection("127.0.0.1", service.port, timeout=SERVICE_WAIT)
            c.request(method, path)
            r = c.getresponse()
            got[method] = (r.status, r.getheader("Content-Type"), r.getheader("Content-Length"),
                           r.read())
            c.close()
        # (The metrics' length changes as they count these requests.)
        n = 2 if path == "/metrics" else 3
        assert got["HEAD"][:n] == got["GET"][:n], (path, got["HEAD"][:3], got["GET"][:3])
        assert got["HEAD"][0] in (200, 204), (path, got["HEAD"])
        assert got["HEAD"][3] == b"", path
    r = http_request(service.port, "PUT", "/healthz")
    assert r.status == 405 and r.headers["allow"] == "GET, HEAD"


# ---- deadlines and limits ----

def test_slowloris_ends_at_the_deadline(service):
    """A client that sends its head a byte at a time (which resets MHD's
    own timeout each time) is told 408 and closed at http.request_timeout
    from its connection, and so is one whose body stops coming.  Before:
    the first was served for ever, the second held until the idle timeout
    with no answer."""
    service.configure(http="request_timeout = 2;")
    service.start()
    s = connect(service.port)
    head = f"GET /healthz HTTP/1.1\r\nHost: {host(service)}\r\nX-Slow: ".encode()
    got, deadline = b"", time.monotonic() + SERVICE_WAIT
    s.settimeout(0.2)
    try:
        for byte in head + b"a" * 10000:
            s.send(bytes([byte]))
            try:
                b = s.recv(4096)
                if not b:
                    break
                got += b
            except socket.timeout:
                pass
            assert time.monotonic() < deadline, "the server still reads the trickle"
    except (BrokenPipeError, ConnectionResetError):
        pass
    got += read_to_end(s)
    assert statuses(got) == [408], got
    assert b"http.request_timeout" in got

    s = connect(service.port)
    s.sendall(f"POST /v1/projects HTTP/1.1\r\nHost: {host(service)}\r\n"
              "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"na".encode())
    got = read_to_end(s)
    assert statuses(got) == [408], got
    assert metric(service, 't2istage_http_requests_refused_total{reason="request_timeout"}') == 2
    service.wait_log("POST /v1/projects 408")
    assert "(request timeout)" in service.log()


def test_per_address_limit_spares_other_addresses(service):
    """With http.max_connections_per_ip connections open from 127.0.0.1,
    the next one from there is answered 503 and closed, while 127.0.0.2
    still gets /healthz; a full service refuses everyone with its own
    reason.  Warned once, counted by reason.  Before: no limit at all."""
    service.configure(http="max_connections_per_ip = 4; max_connections = 12;")
    service.start()
    # The start's own /healthz connection may not be closed yet.
    wait_for(lambda: metric(service, "t2istage_http_connections") == 1,
             what="no connection but this one")
    held = [connect(service.port) for _ in range(4)]
    for s in held:      # each is taken (and kept: keep-alive)
        s.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host(service)}\r\n\r\n".encode())
        assert statuses(read_one(s)) == [200]
    wait_for(lambda: metric(service, "t2istage_http_connections") == 4 + 1,
             what="only the 4 connections to be open")
    for _ in range(3):
        got = raw(service.port, f"GET /healthz HTTP/1.1\r\nHost: {host(service)}\r\n\r\n"
                  .encode())
        assert statuses(got) in ([503], []), got     # [] when reset before the answer
        assert b"200 OK" not in got
    got = raw(service.port, f"GET /healthz HTTP/1.1\r\nHost: {host(service)}\r\n"
              "Connection: close\r\n\r\n".encode(), src="127.0.0.2")
    assert statuses(got) == [200], got
    assert metric(service,
                  't2istage_http_connections_refused_total{reason="max_connections_per_ip"}') == 3
    # Fill the rest from other addresses: then even a new address is refused.
    held += [connect(service.port, f"127.0.0.{3 + i % 3}") for i in range(8)]

    def refused():
        got = raw(service.port, f"GET /healthz HTTP/1.1\r\nHost: {host(service)}\r\n"
                  "Connection: close\r\n\r\n".encode(), src="127.0.0.7")
        return b"200 OK" not in got
    wait_for(refused, what="a full service to refuse a new address")
    for s in held:
        s.close()
    wait_for(lambda: metric(service, "t2istage_http_connections") == 1,
             what="the held connections to close")
    assert metric(service, 't2istage_http_connections_refused_total{reason="max_connections"}') \
        >= 1
    log = service.log()
    assert log.count("refusing connections from 127.0.0.1") == 1, log
    assert "the limit of http.max_connections_per_ip" in log


def test_body_memory_cap(service):
    """Request bodies held at once are capped (http.max_body_memory): an
    upload beyond it is refused with 503 and Retry-After, and served once
    the memory is free.  Before: every connection could hold 32 MiB."""
    service.configure(http=f"max_body_memory = {32 * 1024 * 1024};")
    service.start()
    big = 20 * 1024 * 1024
    first = connect(service.port)
    first.sendall(f"POST /v1/projects HTTP/1.1\r\nHost: {host(service)}\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {big}\r\n\r\n"
                  .encode() + b" " * 1024)
    wait_for(lambda: (metric(service, "t2istage_http_body_bytes") or 0) >= big,
             what="the first upload to be held")
    second = connect(service.port)
    second.sendall(f"POST /v1/projects HTTP/1.1\r\nHost: {host(service)}\r\n"
                   f"Content-Type: application/json\r\nContent-Length: {big}\r\n"
                   "Expect: 100-continue\r\n\r\n".encode())
    got = read_to_end(second)
    assert statuses(got) == [503], got
    assert b"retry-after:" in got.lower()
    assert b"http.max_body_memory" in got
    assert metric(service, 't2istage_http_requests_refused_total{reason="max_body_memory"}') == 1
    # The first goes on, and its memory is given back.
    doc = json.dumps({"name": "big", "storyboards": [{"image_prompt": "a"}]}).encode()
    first.sendall(b" " * (big - 1024 - len(doc)) + doc)
    got = read_one(first)
    assert statuses(got) == [201], got
    first.close()
    wait_for(lambda: metric(service, "t2istage_http_body_bytes") == 0,
             what="the body memory to be given back")
    r = service.post("/v1/projects", {"name": "after", "storyboards": [{"image_prompt": "b"}]})
    assert r.status == 201, r


# ---- event streams ----

def server_send_queue(service_port, client_port):
    """Bytes the service's socket of this connection has not had
    acknowledged (tx_queue of /proc/net/tcp); None when it is gone."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if local.endswith(":%04X" % service_port) and remote.endswith(":%04X" % client_port):
                return int(fields[4].split(":")[0], 16)
    return None


def test_stream_that_never_reads_is_capped_and_dropped(service):
    """An SSE client that reads nothing: the service's socket holds at most
    its capped send buffer, and the stream is dropped (with a reset, so the
    kernel keeps nothing) after http.sse_stall_timeout without progress;
    the client then resumes with Last-Event-ID and misses nothing.  Before:
    megabytes of send queue per client, kept for 120 s."""
    service.configure(http="sse_stall_timeout = 1;")
    service.start()
    prompt = "a lighthouse at dusk " * 100          # 2 KB: events of ~2.5 KB
    pid = service.import_project([f"{i}: {prompt}" for i in range(400)])
    run = service.start_run(pid)
    wait_run_done(service.env, run)
    stalled = connect(service.port, rcvbuf=4096)
    stalled.sendall(f"GET /v1/runs/{run}/events HTTP/1.1\r\nHost: {host(service)}\r\n"
                    "Accept: text/event-stream\r\n\r\n".encode())
    client_port = stalled.getsockname()[1]
    peak = 0

    def dropped():
        nonlocal peak
        q = server_send_queue(service.port, client_port)
        if q is not None:
            peak = max(peak, q)
        return q is None
    wait_for(dropped, what="the stalled stream to be dropped")
    # Twice the cap (the kernel doubles SO_SNDBUF), and some room.
    assert 0 < peak <= 2 * 32768 + 16384, peak
    service.wait_log("(stream stalled: dropped, see http.sse_stall_timeout)")
    assert metric(service, "t2istage_http_streams_stalled_total") == 1
    # What it got is a prefix of the stream; it resumes after its last id.
    got = b""
    stalled.setblocking(False)
    try:
        while True:
            b = stalled.recv(65536)
            if not b:
                break
            got += b
    except (BlockingIOError, ConnectionResetError):
        pass
    stalled.close()
    ids = [int(x) for x in re.findall(rb"^id: (\d+)$", got, re.M)]
    last = ids[-1] if ids else 0
    c = service.sse(f"/v1/runs/{run}/events", headers={"Last-Event-ID": str(last)})
    msgs = c.read_all()
    c.close()
    seqs = [m["id"] for m in msgs if m["id"] is not None]
    (total,) = service.env.sql("SELECT max(seq) FROM run_events WHERE run_id = ?", run)[0]
    assert seqs == list(range(last + 1, total + 1))
    assert msgs[-1]["data"]["type"] == "done"


# ---- the access log ----

def test_log_escapes_what_clients_send(service):
    """Control characters and invalid UTF-8 from the method and the path are
    escaped: no client can split a line, forge one or break its encoding.
    Before: the method and invalid UTF-8 were written raw."""
    service.configure()
    service.start()
    for data in (b"G\x1b[31mT /x HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                 b"GET /v1/%%0a%%1b[2J%%ff%%c3%%28\\%%20ok HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                 b"GET /caf\xc3\xa9/\xe2\x82 HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"):
        raw(service.port, data % host(service).encode())
    service.wait_log("caf")
    assert service.stop() == 0
    with open(service.logs[-1], "rb") as f:
        text = f.read()
    text.decode("utf-8")                       # strictly valid UTF-8
    assert not re.search(rb"[\x00-\x09\x0b-\x1f\x7f]", text), text
    assert rb"G\x1b[31mT /x 400" in text
    assert rb"GET /v1/\x0a\x1b[2J\xff\xc3(\x5c\x20ok 404" in text, text
    assert "GET /café/\\xe2\\x82 404".encode() in text, text


def test_repeated_401s_are_summed_up_per_address(service):
    """One line for an address's first 401, then one line per interval with
    the count (here at the stop); each address apart.  Before: a line each
    (2.28 million in one session)."""
    service.configure(token="tok-" + uuid.uuid4().hex)
    service.start()
    for src, n in (("127.0.0.1", 40), ("127.0.0.2", 3)):
        for _ in range(n):
            s = connect(service.port, src)
            s.sendall(f"GET /v1/projects HTTP/1.1\r\nHost: {host(service)}\r\n"
                      "Authorization: Bearer wrong\r\nConnection: close\r\n\r\n".encode())
            assert statuses(read_to_end(s)) == [401]
    mark = f"/v1/projects/{uuid.uuid4()}"
    assert http_request(service.port, "GET", mark).status == 401
    assert service.stop() == 0
    log = service.log()
    assert log.count("GET /v1/projects 401") == 2, log     # one per address
    assert "http: 127.0.0.1: 40 more requests answered 401 in the last 60 s" in log, log
    assert "http: 127.0.0.2: 2 more requests answered 401 in the last 60 s" in log, log
    assert mark not in log


# ---- pages ----

def page_all(service, path, key, limit=None):
    out, after, pages = [], None, 0
    while True:
        q = [f"limit={limit}"] if limit else []
        if after:
            q.append(f"after={after}")
        r = service.get(path + ("?" + "&".join(q) if q else ""),
                        headers={"Accept": "application/json"})
        assert r.status == 200, r
        doc = r.json()
        out += doc[key]
        pages += 1
        after = doc["next"]
        if after is None:
            return out, pages, doc


def test_pages_of_big_answers(service):
    """The project view, its images, its runs and a run's events are paged
    (limit, after, an opaque next), small by default, and a big page goes
    out in pieces (chunked).  Before: every storyboard and image at once,
    built whole in the loop."""
    service.configure(providers=[provider_conf("ok")])
    service.start()
    pid = service.import_project([f"shot {i}" for i in range(250)])
    runs = [service.start_run(pid, {"storyboard_ids": None}) for _ in range(1)]
    wait_run_done(service.env, runs[0])
    for _ in range(2):
        runs.append(service.start_run(pid, {"no_cache": True}))
        wait_run_done(service.env, runs[-1])
    r = service.get(f"/v1/projects/{pid}")
    doc = r.json()
    assert len(doc["storyboards"]) == 100 and doc["next"]
    assert doc["counts"]["storyboards"] == 250 and doc["counts"]["completed"] == 250
    assert list(doc)[-2:] == ["storyboards", "next"]
    sbs, pages, last = page_all(service, f"/v1/projects/{pid}", "storyboards")
    assert pages == 3 and [s["index"] for s in sbs] == [s["index"] for s in sorted(
        sbs, key=lambda s: s["index"])] and len({s["id"] for s in sbs}) == 250
    assert all(s["image"]["status"] == "completed" and s["image"]["file_url"] for s in sbs)
    assert last["id"] == pid and "counts" in last
    # A page of 1000: in pieces, chunked.
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", service.port, timeout=SERVICE_WAIT)
    c.request("GET", f"/v1/projects/{pid}/images?limit=1000")
    resp = c.getresponse()
    assert resp.getheader("Transfer-Encoding") == "chunked"
    images = json.loads(resp.read())
    c.close()
    assert len(images["images"]) == 750 and images["next"] is None
    got, pages, _ = page_all(service, f"/v1/projects/{pid}/images", "images", limit=333)
    assert pages == 3 and [i["id"] for i in got] == [i["id"] for i in images["images"]]
    got, pages, _ = page_all(service, f"/v1/projects/{pid}/runs", "runs", limit=2)
    assert pages == 2 and [x["id"] for x in got] == runs[::-1]
    # A run's stored events as JSON pages (Accept: application/json).
    evs, pages, _ = page_all(service, f"/v1/runs/{runs[0]}/events", "events", limit=200)
    want = [s for (s,) in service.env.sql(
        "SELECT seq FROM run_events WHERE run_id = ? ORDER BY seq", runs[0])]
    assert [e["seq"] for e in evs] == want and pages == -(-len(want) // 200)
    assert all(e["image"]["file_url"] for e in evs if e["type"] == "image_generated")
    # Bad cursors (another list's too) and limits are 400.
    cursor = service.get(f"/v1/projects/{pid}/runs?limit=1").json()["next"]
    for path in (f"/v1/projects/{pid}?after={cursor}", f"/v1/projects/{pid}/images?after=zz",
                 f"/v1/projects/{pid}?limit=0", f"/v1/projects/{pid}/runs?limit=1001",
                 f"/v1/runs/{runs[0]}/events?after={cursor}"):
        r = service.get(path, headers={"Accept": "application/json"})
        assert_json_error(r, 400)
