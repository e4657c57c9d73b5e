"""tools/fakeprovider itself: the wire formats the provider plugins are tested
against, the control interface, every fault kind, and its determinism."""

import base64
import http.client
import json
import signal
import threading
from urllib.parse import urlsplit

import pytest

from conftest import FakeProvider

KEY = "sk-test"
JIMENG = "/jimeng/v1/images/generations"
OPENAI = "/openai/v1/images/generations"
SDWEBUI = "/sdwebui/sdapi/v1/txt2img"
PATHS = {"jimeng": JIMENG, "openai": OPENAI, "sdwebui": SDWEBUI}


def call(fake, method, path, body=None, headers=None, raw=None):
    """One request on a fresh connection: (status, headers with lower-cased
    names, body bytes).  A connection closed without a response raises
    http.client.RemoteDisconnected."""
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=30)
    try:
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=data,
                     headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def bearer(key=KEY):
    return {"Authorization": f"Bearer {key}"} if key else {}


def gen(fake, endpoint, body, key=KEY, headers=None):
    """A generation request; (status, headers, parsed JSON or raw bytes)."""
    status, hdrs, data = call(fake, "POST", PATHS[endpoint], body,
                              {**(bearer(key) if endpoint != "sdwebui" else {}),
                               **(headers or {})})
    try:
        return status, hdrs, json.loads(data)
    except ValueError:
        return status, hdrs, data


def fetch(fake, url):
    assert url.startswith(fake.url + "/images/"), url
    return call(fake, "GET", urlsplit(url).path)


def image_size(data):
    """(format, width, height) from an image's header."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        assert data[12:16] == b"IHDR"
        return "png", int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 <= len(data):
            assert data[i] == 0xFF, i
            marker, length = data[i + 1], int.from_bytes(data[i + 2:i + 4], "big")
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):    # SOFn
                return ("jpeg", int.from_bytes(data[i + 7:i + 9], "big"),
                        int.from_bytes(data[i + 5:i + 7], "big"))
            i += 2 + length
        raise AssertionError("JPEG without a frame header")
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        chunk = data[12:16]
        if chunk == b"VP8 ":
            assert data[23:26] == b"\x9d\x01\x2a"
            return ("webp", int.from_bytes(data[26:28], "little") & 0x3FFF,
                    int.from_bytes(data[28:30], "little") & 0x3FFF)
        if chunk == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return "webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if chunk == b"VP8X":
            return ("webp", int.from_bytes(data[24:27], "little") + 1,
                    int.from_bytes(data[27:30], "little") + 1)
    raise AssertionError(f"not an image: {data[:40]!r}")


# ---- generation endpoints -------------------------------------------------

JIMENG_CASES = [
    ("1k", "1:1", 1024, 1024), ("1k", "4:3", 1024, 768), ("1k", "3:4", 768, 1024),
    ("1k", "16:9", 1024, 576), ("1k", "9:16", 576, 1024), ("1k", "3:2", 1024, 682),
    ("1k", "2:3", 682, 1024), ("1k", "21:9", 1195, 512),
    ("2k", "16:9", 2560, 1440), ("2k", "2:3", 1664, 2496),
    ("4k", "21:9", 6048, 2592), ("4k", "3:4", 3456, 4608),
]


def test_jimeng_url_sizes(fake):
    for res, ratio, w, h in JIMENG_CASES:
        status, _, doc = gen(fake, "jimeng", {"model": "jimeng-4.0", "prompt": "a lighthouse",
                                              "ratio": ratio, "resolution": res})
        assert status == 200 and isinstance(doc["created"], int), doc
        [item] = doc["data"]
        assert item["url"].endswith(".png")
        status, hdrs, data = fetch(fake, item["url"])
        assert (status, hdrs["content-type"]) == (200, "image/png")
        assert image_size(data) == ("png", w, h), (res, ratio)
    # Without ratio and resolution the proxy's defaults apply: 1:1 at 2k.
    _, _, doc = gen(fake, "jimeng", {"prompt": "a lighthouse"})
    assert image_size(fetch(fake, doc["data"][0]["url"])[2]) == ("png", 2048, 2048)


def test_jimeng_several_images_and_b64(fake):
    fake.control({"images_per_request": 3})
    body = {"prompt": "two ships", "ratio": "16:9", "resolution": "1k"}
    _, _, doc = gen(fake, "jimeng", body)
    urls = [d["url"] for d in doc["data"]]
    assert len(set(urls)) == 3
    images = [fetch(fake, u)[2] for u in urls]
    assert len(set(images)) == 3, "the variants of one request differ"

    _, _, doc = gen(fake, "jimeng", {**body, "response_format": "b64_json"})
    decoded = [base64.b64decode(d["b64_json"], validate=True) for d in doc["data"]]
    assert [image_size(b) for b in decoded] == [("png", 1024, 576)] * 3
    assert decoded == images, "the same prompt gives the same images either way"
    _, _, other = gen(fake, "jimeng", {**body, "prompt": "three ships",
                                       "response_format": "b64_json"})
    assert other["data"][0]["b64_json"] != doc["data"][0]["b64_json"]


@pytest.mark.parametrize("fmt,ext,ctype", [("jpeg", "jpg", "image/jpeg"),
                                           ("webp", "webp", "image/webp")])
def test_formats_and_lying_extension(fake, fmt, ext, ctype):
    body = {"prompt": "a fox", "ratio": "3:2", "resolution": "1k"}
    fake.control({"format": fmt})
    _, _, doc = gen(fake, "jimeng", body)
    url = doc["data"][0]["url"]
    assert url.endswith("." + ext)
    status, hdrs, data = fetch(fake, url)
    assert (status, hdrs["content-type"], image_size(data)) == (200, ctype, (fmt, 1024, 682))

    fake.control({"lying_extension": True})
    _, _, doc = gen(fake, "jimeng", body)
    url = doc["data"][0]["url"]
    assert url.endswith(".png")
    status, hdrs, data = fetch(fake, url)
    assert (status, hdrs["content-type"], image_size(data)) == (200, ctype, (fmt, 1024, 682))

    _, _, doc = gen(fake, "openai", {"model": "gpt-image-1", "prompt": "a fox",
                                     "size": "1024x1536"})
    assert image_size(base64.b64decode(doc["data"][0]["b64_json"])) == (fmt, 1024, 1536)


# The proxy's own words: -1000 (its catch-all, thrown by its checks) for the refused size
# fields and for a ratio or resolution it does not know, -2000 for its body and header
# validation.  (body, code, message)
JIMENG_REFUSALS = [
    ({"prompt": "p", "size": "1024x1024"}, -1000, "不支持的参数: size"),
    ({"prompt": "p", "width": 1024}, -1000, "不支持的参数: width"),
    ({"prompt": "p", "height": 1024, "ratio": "1:1", "size": "1x1"}, -1000,
     "不支持的参数: size, height"),
    ({"prompt": "p", "ratio": "5:4"}, -1000, '在 "2k" 分辨率下，不支持的比例 "5:4"'),
    ({"prompt": "p", "ratio": "5:4", "resolution": "1k"}, -1000,
     '在 "1k" 分辨率下，不支持的比例 "5:4"'),
    ({"prompt": "p", "resolution": "8k"}, -1000, '不支持的分辨率 "8k"'),
    ({"prompt": "p", "response_format": "gif"}, -2000, "Params body.response_format invalid"),
    ({"prompt": "p", "sample_strength": "0.5"}, -2000, "Params body.sample_strength invalid"),
    ({"prompt": ""}, -2000, "Params body.prompt invalid"),
    ({"ratio": "1:1"}, -2000, "Params body.prompt invalid"),
]


def test_jimeng_refusals(fake):
    for body, code, message in JIMENG_REFUSALS:
        status, _, doc = gen(fake, "jimeng", body)
        assert (status, doc) == (200, {"code": code, "message": message, "data": None}), body
    assert [r["status"] for r in fake.requests()] == [200] * len(JIMENG_REFUSALS)


def test_jimeng_without_bearer_token(fake):
    """No session id: the proxy's header validation, -2000, whatever the fault rules say
    (they apply only to requests that pass validation)."""
    fake.control({"faults": [{"kind": "jimeng_enotfound", "times": -1}]})
    no_auth = {"code": -2000, "message": "Params headers.authorization invalid", "data": None}
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer "}):
        status, _, doc = call(fake, "POST", JIMENG, {"prompt": "p"}, headers)
        assert (status, json.loads(doc)) == (200, no_auth), headers
    assert [r["fault"] for r in fake.requests()] == [None] * 3
    # The size check comes first, as in the proxy.
    status, _, doc = call(fake, "POST", JIMENG, {"prompt": "p", "size": "1x1"})
    assert json.loads(doc)["message"] == "不支持的参数: size"


def test_jimeng_network_failure_answers_late(fake):
    """The proxy tries its upstream three times 5 s apart before it answers: the fake waits
    network_delay_ms (the server's own clock is the one compared)."""
    assert fake.settings()["network_delay_ms"] == 50      # conftest's short default
    fake.control({"network_delay_ms": 400, "faults": [{"kind": "jimeng_enotfound"}]})
    status, _, doc = gen(fake, "jimeng", {"prompt": "p", "resolution": "1k"})
    assert (status, doc) == (200, {"code": -1000, "data": None,
                                   "message": "getaddrinfo ENOTFOUND jimeng.jianying.com"})
    assert fake.requests()[0]["duration_s"] >= 0.4
    fake.reset()
    assert fake.settings()["network_delay_ms"] == 50, "a reset keeps the command line's"


def test_openai(fake):
    status, _, doc = gen(fake, "openai", {"model": "dall-e-3", "prompt": "a harbour",
                                          "size": "1792x1024"})
    assert status == 200
    [item] = doc["data"]
    assert item["revised_prompt"] == "a harbour"
    assert image_size(fetch(fake, item["url"])[2]) == ("png", 1792, 1024)

    # GPT image models default to base64; auto is 1024x1024.
    _, _, doc = gen(fake, "openai", {"model": "gpt-image-1", "prompt": "a harbour", "n": 2,
                                     "size": "auto"})
    images = [base64.b64decode(d["b64_json"], validate=True) for d in doc["data"]]
    assert [image_size(b) for b in images] == [("png", 1024, 1024)] * 2
    assert images[0] != images[1]
    _, _, doc = gen(fake, "openai", {"model": "dall-e-2", "prompt": "a harbour",
                                     "size": "256x256", "response_format": "b64_json"})
    assert image_size(base64.b64decode(doc["data"][0]["b64_json"])) == ("png", 256, 256)

    status, _, doc = gen(fake, "openai", {"model": "dall-e-3", "prompt": "p", "size": "1000x1000"})
    assert status == 400
    assert (doc["error"]["type"], doc["error"]["param"]) == ("invalid_request_error", "size")


def test_sdwebui(fake):
    body = {"prompt": "a valley", "negative_prompt": "fog", "width": 640, "height": 384,
            "steps": 20, "cfg_scale": 6.5, "seed": 1234, "sampler_name": "Euler a",
            "batch_size": 2, "n_iter": 2}
    status, _, doc = gen(fake, "sdwebui", body)
    assert status == 200
    images = [base64.b64decode(b, validate=True) for b in doc["images"]]
    assert [image_size(b) for b in images] == [("png", 640, 384)] * 4
    assert len(set(images)) == 4
    assert {k: doc["parameters"][k] for k in body} == body
    info = json.loads(doc["info"])
    assert info["all_seeds"] == [1234, 1235, 1236, 1237] and info["prompt"] == "a valley"

    _, _, doc = gen(fake, "sdwebui", {"prompt": "defaults"})
    assert [image_size(base64.b64decode(b)) for b in doc["images"]] == [("png", 512, 512)]

    for field, value in (("width", 650), ("height", 8200), ("width", 56)):
        status, _, doc = gen(fake, "sdwebui", {"prompt": "p", field: value})
        assert status == 422
        assert doc["detail"][0]["loc"] == ["body", field]
        assert doc["detail"][0]["type"] == "value_error"


def test_auth_and_quota(fake):
    fake.control({"bad_keys": ["revoked"], "quota_keys": ["broke"]})
    token_expired = {"code": -2002, "message": "token已失效", "data": None}
    assert gen(fake, "jimeng", {"prompt": "p"}, key=None)[2] == {
        "code": -2000, "message": "Params headers.authorization invalid", "data": None}
    assert gen(fake, "jimeng", {"prompt": "p"}, key="revoked")[2] == token_expired
    assert gen(fake, "jimeng", {"prompt": "p"}, key="broke")[2] == {
        "code": -2009, "message": "积分不足", "data": None}

    unauthorised = {"error": {"message": "Incorrect API key provided",
                              "type": "invalid_request_error", "param": None,
                              "code": "invalid_api_key"}}
    for key in (None, "revoked"):
        status, _, doc = gen(fake, "openai", {"prompt": "p"}, key=key)
        assert (status, doc) == (401, unauthorised)
    status, _, doc = gen(fake, "openai", {"prompt": "p"}, key="broke")
    assert (status, doc["error"]["code"]) == (429, "insufficient_quota")

    fake.control({"sd_basic_auth": "user:secret"})
    good = "Basic " + base64.b64encode(b"user:secret").decode()
    bad = "Basic " + base64.b64encode(b"user:wrong").decode()
    for headers in ({}, {"Authorization": bad}, {"Authorization": "Basic %%%"}):
        status, hdrs, _ = gen(fake, "sdwebui", {"prompt": "p"}, headers=headers)
        assert (status, hdrs["www-authenticate"]) == (401, "Basic")
    assert gen(fake, "sdwebui", {"prompt": "p"}, headers={"Authorization": good})[0] == 200


def test_url_expiry(fake):
    _, _, doc = gen(fake, "jimeng", {"prompt": "p", "resolution": "1k"})
    fresh = doc["data"][0]["url"]
    fake.control({"url_ttl_s": 0})
    _, _, doc = gen(fake, "jimeng", {"prompt": "p", "resolution": "1k"})
    stale = doc["data"][0]["url"]
    status, hdrs, body = fetch(fake, stale)
    assert status == 404 and b"expired" in body and hdrs["content-type"] == "application/xml"
    fake.control({"expired_status": 403})
    assert fetch(fake, stale)[0] == 403
    assert fetch(fake, fresh)[0] == 200, "a URL keeps the ttl it was created with"
    assert call(fake, "GET", "/images/0123456789abcdef.png")[0] == 404
    downloads = [r for r in fake.requests() if r["method"] == "GET"]
    assert [r["status"] for r in downloads] == [404, 403, 200, 404]


# ---- faults -----------------------------------------------------------------
# Each check gets (fake, status, headers, parsed body or bytes); None for the
# statuses means the connection closed without a response.

def jimeng_code(code, needle):
    def check(fake, status, hdrs, doc):
        assert status == 200 and doc["code"] == code and needle in doc["message"], doc
        assert doc["data"] is None
    return check


def nginx_502(fake, status, hdrs, doc):
    assert status == 502 and hdrs["content-type"] == "text/html"
    assert b"<title>502 Bad Gateway</title>" in doc and b"nginx" in doc


def http_error(want, check_doc):
    def check(fake, status, hdrs, doc):
        assert status == want, (status, doc)
        assert check_doc(doc), doc
    return check


def disconnected(fake, status, hdrs, doc):
    assert status is None, f"a response was sent: {status} {doc!r}"


def rate_limited(fake, status, hdrs, doc):
    assert status == 429
    assert (doc["error"]["type"], doc["error"]["code"]) == ("requests", "rate_limit_exceeded")
    assert (hdrs["retry-after"], hdrs["retry-after-ms"]) == ("3", "1500")


def malformed(fake, status, hdrs, doc):
    assert (status, doc) == (200, b'{"data": [')


def not_json(fake, status, hdrs, doc):
    assert status == 200 and hdrs["content-type"].startswith("text/html")
    assert doc.startswith(b"<!DOCTYPE html>")


def expired_url(fake, status, hdrs, doc):
    assert status == 200
    assert fetch(fake, doc["data"][0]["url"])[0] == 404


def not_image_url(fake, status, hdrs, doc):
    url = doc["data"][0]["url"]
    assert url.endswith(".png")
    status, hdrs, data = fetch(fake, url)
    assert (status, hdrs["content-type"], data) == (200, "image/png",
                                                     b"<html>not an image</html>")


def not_image_b64(fake, status, hdrs, doc):
    assert status == 200
    assert base64.b64decode(doc["data"][0]["b64_json"]) == b"<html>not an image</html>"


FAULT_CASES = [
    ("http500", "openai", {}, http_error(500, lambda d: d["error"]["type"] == "server_error")),
    ("http500", "sdwebui", {}, http_error(500, lambda d: "error" in d)),
    ("nginx_502", "jimeng", {}, nginx_502),
    ("nginx_502", "openai", {}, nginx_502),
    ("http503", "openai", {}, http_error(503, lambda d: d["error"]["type"] == "server_error")),
    ("http429", "openai", {"retry_after": 3, "retry_after_ms": 1500}, rate_limited),
    ("malformed", "jimeng", {}, malformed),
    ("not_json", "openai", {}, not_json),
    ("hang", "jimeng", {}, disconnected),
    ("drop", "openai", {}, disconnected),
    ("jimeng_rate", "jimeng", {}, jimeng_code(-2001, "请求频率限制")),
    ("jimeng_upstream", "jimeng", {}, jimeng_code(-2001, "服务器错误")),
    ("jimeng_timeout", "jimeng", {}, jimeng_code(-2001, "请求超时")),
    ("jimeng_failed", "jimeng", {}, jimeng_code(-2007, "图片生成失败")),
    ("jimeng_token", "jimeng", {}, jimeng_code(-2002, "token已失效")),
    ("jimeng_blocked", "jimeng", {}, jimeng_code(-2006, "内容被拦截")),
    ("jimeng_quota", "jimeng", {}, jimeng_code(-2009, "积分不足")),
    ("jimeng_param", "jimeng", {}, jimeng_code(-1000, '不支持的比例 "5:4"')),
    ("jimeng_no_auth", "jimeng", {}, jimeng_code(-2000, "headers.authorization")),
    ("jimeng_enotfound", "jimeng", {}, jimeng_code(-1000, "getaddrinfo ENOTFOUND ")),
    ("jimeng_eai_again", "jimeng", {}, jimeng_code(-1000, "getaddrinfo EAI_AGAIN ")),
    ("jimeng_econnrefused", "jimeng", {}, jimeng_code(-1000, "connect ECONNREFUSED ")),
    ("jimeng_econnreset", "jimeng", {}, jimeng_code(-1000, "read ECONNRESET")),
    ("jimeng_etimedout", "jimeng", {}, jimeng_code(-1000, "connect ETIMEDOUT ")),
    ("jimeng_socket_hang_up", "jimeng", {}, jimeng_code(-1000, "socket hang up")),
    ("jimeng_axios_timeout", "jimeng", {}, jimeng_code(-1000, "timeout of 45000ms exceeded")),
    ("content_policy", "jimeng", {}, jimeng_code(-2006, "内容被拦截")),
    ("content_policy", "openai", {}, http_error(
        400, lambda d: d["error"]["code"] == "content_policy_violation")),
    ("content_policy", "sdwebui", {}, http_error(
        400, lambda d: d["detail"] == "content filtered")),
    ("auth", "jimeng", {}, jimeng_code(-2002, "token")),
    ("auth", "openai", {}, http_error(401, lambda d: d["error"]["code"] == "invalid_api_key")),
    ("auth", "sdwebui", {}, http_error(401, lambda d: "detail" in d)),
    ("quota", "openai", {}, http_error(
        429, lambda d: d["error"]["code"] == "insufficient_quota")),
    ("empty_data", "jimeng", {}, http_error(
        200, lambda d: d["data"] == [] and isinstance(d["created"], int))),
    ("empty_data", "sdwebui", {}, http_error(200, lambda d: d["images"] == [])),
    ("expired_url", "jimeng", {}, expired_url),
    ("not_image", "jimeng", {}, not_image_url),
    ("not_image", "openai", {}, not_image_b64),
]

FAULT_BODIES = {
    "jimeng": {"prompt": "a faulty prompt", "ratio": "1:1", "resolution": "1k"},
    "openai": {"model": "gpt-image-1", "prompt": "a faulty prompt", "size": "256x256"},
    "sdwebui": {"prompt": "a faulty prompt", "width": 64, "height": 64},
}


def test_each_fault_kind(fake):
    # One server for every case, reset in between: a server per case would
    # make this file slow.
    for kind, endpoint, extra, check in FAULT_CASES:
        fake.reset()
        try:
            one_fault(fake, kind, endpoint, extra, check)
        except AssertionError as e:
            raise AssertionError(f"fault {kind} on {endpoint}: {e}") from e
    assert {c[0] for c in FAULT_CASES} == set(
        "http500 http503 http429 malformed not_json hang drop jimeng_rate jimeng_upstream "
        "jimeng_timeout jimeng_failed jimeng_token jimeng_blocked jimeng_quota jimeng_param "
        "jimeng_no_auth jimeng_enotfound jimeng_eai_again jimeng_econnrefused jimeng_econnreset "
        "jimeng_etimedout jimeng_socket_hang_up jimeng_axios_timeout nginx_502 content_policy "
        "auth quota expired_url not_image empty_data".split()), "every kind is tried"


def test_jimeng_answers_no_http_error_status(fake):
    """The proxy answers every failure of its own with HTTP 200: rules of the HTTP error
    kinds do not apply to its endpoint (nginx_502 stands for a server in front of it)."""
    fake.control({"faults": [{"kind": k, "times": -1} for k in ("http500", "http503",
                                                                  "http429")]})
    status, _, doc = gen(fake, "jimeng", FAULT_BODIES["jimeng"])
    assert status == 200 and doc["data"], doc
    assert fake.requests()[0]["fault"] is None
    assert gen(fake, "openai", FAULT_BODIES["openai"])[0] == 500


def one_fault(fake, kind, endpoint, extra, check):
    fake.control({"hang_s": 0.05, "faults": [{"kind": kind, **extra}]})
    body = FAULT_BODIES[endpoint]
    try:
        status, hdrs, doc = gen(fake, endpoint, body)
    except http.client.RemoteDisconnected:
        status, hdrs, doc = None, None, None
    check(fake, status, hdrs, doc)
    rec = fake.requests()[0]
    assert (rec["fault"], rec["path"], rec["status"]) == (kind, PATHS[endpoint], status)
    # times defaults to 1: the next request succeeds.
    status, _, doc = gen(fake, endpoint, body)
    assert status == 200 and "code" not in doc and doc.get("data", doc.get("images"))
    assert fake.requests()[-1]["fault"] is None


def test_fault_rules(fake):
    fake.control({"faults": [
        {"kind": "jimeng_rate", "times": -1},                # never applies to openai
        {"kind": "http500", "match": "storm", "times": 2, "status": 502},
        {"kind": "http503", "endpoint": "sdwebui", "times": -1},
        {"kind": "http429", "endpoint": "openai"},
    ]})

    def oa(prompt):
        return gen(fake, "openai", {"prompt": prompt, "size": "256x256"})[0]

    assert [oa("a storm"), oa("calm"), oa("storm again"), oa("storm"), oa("calm")] == \
        [502, 429, 502, 200, 200]
    assert gen(fake, "sdwebui", {"prompt": "storm", "width": 64, "height": 64})[0] == 503
    assert gen(fake, "jimeng", {"prompt": "storm"})[2]["code"] == -2001
    assert [f["times"] for f in fake.settings()["faults"]] == [-1, 0, -1, 0]
    assert [r["fault"] for r in fake.requests()] == [
        "http500", "http429", "http500", None, None, "http503", "jimeng_rate"]


def test_rule_message_replaces_a_jimeng_message(fake):
    fake.control({"faults": [{"kind": "jimeng_econnreset", "message": "write EPIPE"},
                             {"kind": "jimeng_param", "message": '不支持的分辨率 "8k"'},
                             {"kind": "content_policy", "message": "ignored", "times": -1}]})
    body = FAULT_BODIES["jimeng"]
    assert gen(fake, "jimeng", body)[2] == {"code": -1000, "message": "write EPIPE",
                                            "data": None}
    assert gen(fake, "jimeng", body)[2]["message"] == '不支持的分辨率 "8k"'
    assert gen(fake, "jimeng", body)[2] == {"code": -2006, "message": "ignored", "data": None}
    status, _, doc = gen(fake, "openai", FAULT_BODIES["openai"])
    assert status == 400 and doc["error"]["message"].startswith("Your request was rejected")
    status, _, body = call(fake, "POST", "/_control", {"faults": [{"kind": "drop",
                                                                   "message": 7}]})
    assert status == 400 and b"message" in body


def test_seeded_probability_is_deterministic(fake, tmp_path):
    rule = {"faults": [{"kind": "http500", "probability": 0.5, "times": -1}]}

    def pattern(server):
        server.control(rule)
        return [gen(server, "openai", {"prompt": f"p{i}", "size": "256x256"})[0]
                for i in range(24)]

    servers = []
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            servers.append(FakeProvider(tmp_path / name, "--seed", "7"))
        first, second = pattern(servers[0]), pattern(servers[1])
    finally:
        exits = [s.stop() for s in servers]
    assert exits == [0, 0]
    assert first == second
    assert 0 < first.count(500) < 24
    zero = pattern(fake)
    assert zero != first, "seed 0 draws differently from seed 7"
    fake.reset()
    assert pattern(fake) == zero, "a reset reseeds the RNG"


def test_latency_range_is_seeded(fake):
    fake.control({"latency_ms": [1, 5]})
    assert gen(fake, "jimeng", {"prompt": "slow", "resolution": "1k"})[0] == 200
    assert fake.settings()["latency_ms"] == [1, 5]


# ---- control and recording ------------------------------------------------

def test_recorded_requests_and_log(fake):
    status, _, doc = gen(fake, "jimeng", {"prompt": "logged", "resolution": "1k"},
                         headers={"X-Trace-Id": "abc"})
    fetch(fake, doc["data"][0]["url"])
    call(fake, "POST", JIMENG, raw=b"not json", headers=bearer())
    call(fake, "GET", "/nowhere")
    fake.settings()                       # control requests are not recorded
    reqs = fake.requests()
    assert [(r["seq"], r["method"], r["status"]) for r in reqs] == [
        (1, "POST", 200), (2, "GET", 200), (3, "POST", 200), (4, "GET", 404)]
    first = reqs[0]
    assert first["path"] == JIMENG and first["fault"] is None
    assert first["body"] == {"prompt": "logged", "resolution": "1k"}
    assert first["headers"]["authorization"] == f"Bearer {KEY}"
    assert first["headers"]["x-trace-id"] == "abc"
    assert first["headers"]["content-type"] == "application/json"
    assert reqs[1]["path"] == urlsplit(doc["data"][0]["url"]).path and reqs[1]["body"] is None
    assert reqs[2]["body"] is None
    assert reqs[0]["time"] <= reqs[1]["time"] <= reqs[3]["time"]
    with open(fake.log, encoding="utf-8") as f:
        assert [json.loads(line) for line in f] == reqs


def test_control_validation_and_reset(fake):
    defaults = fake.settings()
    assert defaults["format"] == "png" and defaults["faults"] == [] and defaults["hang_s"] == 300
    for bad in ({"no_such_key": 1}, {"format": "gif"}, {"latency_ms": [5, 1]},
                {"faults": [{"kind": "nope"}]}, {"faults": [{"kind": "drop", "tims": 2}]},
                {"faults": [{"kind": "drop", "probability": 2}]}, [1]):
        status, _, body = call(fake, "POST", "/_control", bad)
        assert status == 400 and json.loads(body)["error"], bad
    assert fake.settings() == defaults, "a refused control changes nothing"

    settings = fake.control({"format": "webp", "faults": [{"kind": "drop"}]})
    assert settings["format"] == "webp"
    assert settings["faults"] == [{"kind": "drop", "times": 1}]
    gen(fake, "jimeng", {"prompt": "p", "size": "1x1"})
    assert fake.requests()
    fake.reset()
    assert fake.settings() == defaults and fake.requests() == []


def test_hang_ends_at_shutdown(tmp_path):
    server = FakeProvider(tmp_path)
    outcome = []

    def client():
        try:
            outcome.append(gen(server, "openai", {"prompt": "p", "size": "256x256"})[0])
        except http.client.RemoteDisconnected:
            outcome.append("closed")

    try:
        server.control({"faults": [{"kind": "hang"}]})      # hang_s stays 300
        t = threading.Thread(target=client)
        t.start()
        for _ in range(3000):                               # bounded wait for the hang
            if server.requests():
                break
            t.join(0.01)
        assert server.requests()[0]["fault"] == "hang"
    finally:
        assert server.stop() == 0
    t.join(30)
    assert outcome == ["closed"]


def test_sigint_exits_cleanly(tmp_path):
    server = FakeProvider(tmp_path)
    with open(tmp_path / "port") as f:
        assert int(f.read()) == server.port
    server.proc.send_signal(signal.SIGINT)
    assert server.proc.wait(timeout=30) == 0
    server.stop()
