"""The jimeng plugin against tools/fakeprovider answering as the real jimeng-api proxy does:
every failure is HTTP 200, and its catch-all -1000 carries both the proxy's own failed
requests to its upstream (Node's error text, after the proxy's own tries: transient) and its
parameter errors (rejected).  (-2000 on headers.authorization, which is auth, is among the
failover tests of test_providers.py.)"""

from conftest import (events_of, generation_requests, http_provider, project_id_of,
                      retry_conf, retry_warnings, stage_status, storyboard_rows, warnings_of)

# The fake's network kinds and the words of the Node error each one carries.
NETWORK = [
    ("jimeng_enotfound", "getaddrinfo ENOTFOUND jimeng.jianying.com"),
    ("jimeng_eai_again", "getaddrinfo EAI_AGAIN jimeng.jianying.com"),
    ("jimeng_econnrefused", "connect ECONNREFUSED"),
    ("jimeng_econnreset", "read ECONNRESET"),
    ("jimeng_etimedout", "connect ETIMEDOUT"),
    ("jimeng_socket_hang_up", "socket hang up"),
    ("jimeng_axios_timeout", "timeout of 45000ms exceeded"),
    ("jimeng_enotfound", "getaddrinfo ENOTFOUND jimeng.jianying.com"),
]


def jimeng(fake, name="jm", **kw):
    return http_provider(name, "jimeng", fake.jimeng_url, model="jimeng-4.0", **kw)


def positions(env, events):
    """{position: (storyboard id, prompt)}."""
    return {pos: (sid, prompt) for sid, pos, prompt in storyboard_rows(env, project_id_of(events))}


def faults_of(fake, prompt):
    return [r["fault"] for r in generation_requests(fake) if r["body"]["prompt"] == prompt]


def test_network_failures_are_retried_and_the_run_completes(env, fake):
    """Each storyboard's first two attempts meet the proxy's network failures (two of the
    Node messages each); the third succeeds.  Every failure is a retry warning naming the
    class and the proxy's own message."""
    rules = []
    for i in range(4):
        for kind, _ in NETWORK[2 * i:2 * i + 2]:
            rules.append({"kind": kind, "match": f"<sb{i + 1}>", "times": 1})
    fake.control({"faults": rules})
    env.write_config(providers=[jimeng(fake)], workers_max=2, batch_size=2,
                     extra=retry_conf(3, 0.01, 0.02))
    sbs = [{"image_prompt": f"harbour at dawn <sb{i}>", "params": {"resolution": "1k"}}
           for i in range(1, 5)]
    rc, events, cp = env.run_json(env.project(sbs), expect=0)
    assert not events_of(events, "error"), events_of(events, "error")
    rows = positions(env, events)
    warnings = retry_warnings(events)
    assert len(warnings) == len(warnings_of(events)) == 8, warnings_of(events)
    for pos, (sid, prompt) in rows.items():
        expected = NETWORK[2 * (pos - 1):2 * pos]
        assert faults_of(fake, prompt) == [k for k, _ in expected] + [None], prompt
        mine = [w for w in warnings if w["index"] == pos]
        assert [(w["attempt"], w["of"], w["provider"], w["cls"]) for w in mine] == [
            (1, 3, "jm", "transient"), (2, 3, "jm", "transient")], mine
        for w, (_, words) in zip(mine, expected):
            assert w["cause"].startswith("jimeng: -1000 ") and words in w["cause"], w
        assert env.sql("SELECT status, attempts FROM generated_images WHERE storyboard_id = ?"
                       " AND is_primary = 1", sid) == [("completed", 3)]
    assert len(events_of(events, "image_generated")) == 4
    assert events[-1]["data"]["success_count"] == 4
    assert stage_status(env, project_id_of(events)) == "completed"


def test_the_message_tells_a_parameter_error_from_a_network_failure(env, fake):
    """Under the same -1000, a parameter error fails its storyboard at once with exactly one
    request, while a network failure beside it is retried; a -2000 validation error of the
    body is rejected too (here the proxy's own check of a string sample_strength)."""
    fake.control({"faults": [
        {"kind": "jimeng_param", "match": "PARAM", "times": -1},
        {"kind": "jimeng_econnrefused", "match": "NETWORK", "times": 1},
    ]})
    env.write_config(providers=[jimeng(fake, name="jm"),
                                jimeng(fake, name="str", default=False,
                                       sample_strength="0.6")],
                     workers_max=2, batch_size=1, extra=retry_conf(5, 0.01, 0.02))
    sbs = [{"image_prompt": "a PARAM scene", "params": {"resolution": "1k"}},
           {"image_prompt": "a NETWORK scene", "params": {"resolution": "1k"}}]
    rc, events, _ = env.run_json(env.project(sbs), expect=3)
    rows = positions(env, events)
    assert faults_of(fake, "a PARAM scene") == ["jimeng_param"]     # one request, no retry
    assert faults_of(fake, "a NETWORK scene") == ["jimeng_econnrefused", None]
    (w,) = retry_warnings(events)
    assert (w["index"], w["cls"]) == (2, "transient") and "ECONNREFUSED" in w["cause"], w
    (err,) = events_of(events, "error")
    assert err["storyboard_id"] == rows[1][0]
    assert err["error"] == 'storyboard 1: jimeng: -1000 在 "2k" 分辨率下，不支持的比例 "5:4"', err
    assert env.sql("SELECT status, attempts, error FROM generated_images"
                   " WHERE storyboard_id = ?", rows[1][0]) == [("failed", 1, err["error"][14:])]
    assert stage_status(env, project_id_of(events)) == "partial"

    # The proxy's -2000 for a body field it refuses: rejected, one request.
    before = len(generation_requests(fake))
    rc, events, _ = env.run_json(env.project(["a string strength"], image_providers=["str"]),
                                 expect=1)
    reqs = generation_requests(fake)[before:]
    assert [(r["body"]["sample_strength"], r["fault"]) for r in reqs] == [("0.6", None)]
    (err,) = events_of(events, "error")
    assert err["error"].endswith("jimeng: -2000 Params body.sample_strength invalid"), err
    assert warnings_of(events) == []


# Other -1000 texts and the class each must get.  Node names a failed socket, DNS lookup or
# TLS handshake by its system error code (as a word of its own), axios a timeout by a phrase;
# every other -1000 is one of the proxy's parameter errors.
MINUS_1000 = [
    ("write EPIPE", "transient"),
    ("connect ENETUNREACH 203.0.113.7:443", "transient"),
    ("connect EHOSTUNREACH 203.0.113.7:443", "transient"),
    ("connect ENETDOWN 203.0.113.7:443", "transient"),
    ("connect EHOSTDOWN 203.0.113.7:443", "transient"),
    ("ECONNABORTED", "transient"),
    ("ESOCKETTIMEDOUT", "transient"),
    ("Client network socket disconnected before secure TLS connection was established",
     "transient"),
    ('不支持的分辨率 "8k"', "rejected"),
    ("不支持的参数: size", "rejected"),
    ('国际版不支持模型 "jimeng-4.6"', "rejected"),
    ('模型 "MY_ETIMEDOUT_2" 不存在', "rejected"),     # a code inside a longer token
    ("", "rejected"),
]


def test_each_minus_1000_message_gets_its_class(env, fake):
    fake.control({"faults": [{"kind": "jimeng_param", "match": f"<m{i}>", "times": 1,
                              "message": message}
                             for i, (message, _) in enumerate(MINUS_1000)]})
    env.write_config(providers=[jimeng(fake)], workers_max=4, batch_size=2,
                     extra=retry_conf(2, 0.01, 0.02))
    sbs = [{"image_prompt": f"scene <m{i}>", "params": {"resolution": "1k"}}
           for i in range(len(MINUS_1000))]
    rc, events, _ = env.run_json(env.project(sbs), expect=3)
    rows = positions(env, events)
    warnings = {w["index"]: w for w in retry_warnings(events)}
    errors = {e["storyboard_id"]: e["error"] for e in events_of(events, "error")}
    for pos, (message, cls) in enumerate(MINUS_1000, 1):
        sid, prompt = rows[pos]
        cause = "jimeng: -1000 " + (message or "(no message)")
        if cls == "transient":
            assert faults_of(fake, prompt) == ["jimeng_param", None], message
            assert (warnings[pos]["cls"], warnings[pos]["cause"]) == (cls, cause)
            assert sid not in errors
        else:
            assert faults_of(fake, prompt) == ["jimeng_param"], message
            assert pos not in warnings
            assert errors[sid] == f"storyboard {pos}: {cause}"
