"""The provider plugins (jimeng, openai, sdwebui) against tools/fakeprovider:
the exact requests that reach the provider, the files stored from its
answers, every fault reported as what it is (retried or not), failover on a
refused key, and the API key kept out of everything we write."""

import base64
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from conftest import (API_KEY, FakeProvider, events_of, generation_requests, http_provider,
                      image_info, project_id_of, rate_warnings, retry_conf, retry_warnings,
                      sha256_file, stage_status, storyboard_rows, warnings_of)

EXT = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
JIMENG_PATH = "/jimeng/v1/images/generations"
OPENAI_PATH = "/openai/v1/images/generations"
SDWEBUI_PATH = "/sdwebui/sdapi/v1/txt2img"


def jimeng(fake, name="jm", model="jimeng-4.0", **kw):
    return http_provider(name, "jimeng", fake.jimeng_url, model=model, **kw)


def openai(fake, name="oa", model="gpt-image-1", **kw):
    return http_provider(name, "openai", fake.openai_url, model=model, **kw)


def sdwebui(fake, name="sd", **kw):
    return http_provider(name, "sdwebui", fake.sdwebui_url, **kw)


PROVIDERS = {"jimeng": jimeng, "openai": openai, "sdwebui": sdwebui}


def downloads(fake):
    """The image downloads (GET /images/...) fake received, in order."""
    return [r for r in fake.requests() if r["method"] == "GET"
            and r["path"].startswith("/images/")]


def by_position(env, events):
    """{position: (storyboard id, prompt)} of the run's project."""
    return {pos: (sid, prompt) for sid, pos, prompt in storyboard_rows(env, project_id_of(events))}


def check_stored(env, image, primary_id=None):
    """image: an event's image object.  The file exists under storage.dir as
    <aa>/<sha256>.<ext of the sniffed type>, its own header gives the width
    and height reported, and the database row says the same.  Returns the
    mime type."""
    path = image["file_path"]
    assert os.path.isfile(path), path
    sha = sha256_file(path)
    mime, w, h = image_info(path)
    assert path == os.path.join(env.images, sha[:2], f"{sha}.{EXT[mime]}")
    assert (image["width"], image["height"], image["file_size"]) == (w, h, os.path.getsize(path))
    row = env.sql("SELECT status, width, height, file_size, file_path, sha256, mime, image_url,"
                  " is_primary, primary_id FROM generated_images WHERE id = ?", image["id"])
    assert row == [("completed", w, h, os.path.getsize(path), path, sha, mime, image["url"],
                    1 if primary_id is None else 0, primary_id)]
    return mime


def check_thumbnail(env, image):
    """A JPEG whose long edge is 320, with the image's aspect ratio."""
    thumb = image["thumbnail_path"]
    assert thumb and os.path.isfile(thumb), image
    assert thumb.startswith(env.images + os.sep)
    mime, w, h = image_info(thumb)
    assert mime == "image/jpeg"
    assert max(w, h) == 320, (w, h)
    assert abs(w / h - image["width"] / image["height"]) < 0.02, (w, h, image)
    assert env.sql("SELECT thumbnail_path FROM generated_images WHERE id = ?",
                   image["id"]) == [(thumb,)]


def url_path(url):
    return urlsplit(url).path


# ---------------------------------------------------------------------------
# What each plugin sends, and what is stored from its answer


def test_jimeng_request_fields_and_stored_files(env, fake):
    # size, width and height in the options must not reach the proxy: it
    # refuses any request that carries one.
    env.write_config(providers=[jimeng(fake, sample_strength=0.7, size="1024x1024", width=512,
                                       height=512)], thumbnails=True, extra=retry_conf(1))
    p = env.project([
        {"image_prompt": "a lighthouse at dusk", "negative_prompt": "fog"},
        {"image_prompt": "a harbour", "params": {"ratio": "9:16", "resolution": "1k",
                                                 "options": {"sample_strength": 0.3}}},
    ])
    rc, events, cp = env.run_json(p, expect=0)

    reqs = generation_requests(fake)
    assert len(reqs) == 2
    for r in reqs:
        assert r["path"] == JIMENG_PATH
        assert r["headers"]["authorization"] == f"Bearer {API_KEY}"
        assert r["headers"]["content-type"] == "application/json"
        assert r["fault"] is None and r["status"] == 200
    bodies = {r["body"]["prompt"]: r["body"] for r in reqs}
    assert bodies == {
        "a lighthouse at dusk": {"model": "jimeng-4.0", "prompt": "a lighthouse at dusk",
                                 "negative_prompt": "fog", "ratio": "16:9",
                                 "resolution": "2k", "sample_strength": 0.7},
        "a harbour": {"model": "jimeng-4.0", "prompt": "a harbour", "negative_prompt": "",
                      "ratio": "9:16", "resolution": "1k", "sample_strength": 0.3},
    }
    assert 'option "size" is not sent' in cp.stderr
    assert 'option "width" is not sent' in cp.stderr

    gen = events_of(events, "image_generated")
    assert len(gen) == 2
    got = {}
    fetched = [url_path(r["path"]) for r in downloads(fake)]
    for e in gen:
        img = e["image"]
        assert check_stored(env, img) == "image/png"
        check_thumbnail(env, img)
        # The event's url is the provider's, which the worker downloaded at once.
        assert img["url"].startswith(fake.url + "/images/")
        assert url_path(img["url"]) in fetched
        assert img["cached"] is False and "variants" not in img
        got[e["storyboard_index"]] = (img["width"], img["height"])
    assert got == {1: (2560, 1440), 2: (576, 1024)}
    assert all(r["status"] == 200 for r in downloads(fake))


def test_jimeng_four_images_are_primary_and_three_variants(env, fake):
    fake.control({"images_per_request": 4})
    env.write_config(providers=[jimeng(fake)], extra=retry_conf(1))
    rc, events, _ = env.run_json(env.project([{"image_prompt": "four harbours",
                                               "params": {"resolution": "1k"}}]), expect=0)
    (e,) = events_of(events, "image_generated")
    img = e["image"]
    check_stored(env, img)
    assert len(img["variants"]) == 3
    for v in img["variants"]:
        assert v["id"] != img["id"]
        check_stored(env, v, primary_id=img["id"])
    shas = {os.path.basename(x["file_path"]) for x in [img] + img["variants"]}
    assert len(shas) == 4, "four different images, four files"
    # In the provider's order: the first URL it returned is the primary image.
    gets = downloads(fake)
    assert [url_path(x["url"]) for x in [img] + img["variants"]] == [r["path"] for r in gets]
    assert len(generation_requests(fake)) == 1
    rows = env.sql("SELECT is_primary, count(*) FROM generated_images WHERE storyboard_id = ?"
                   " GROUP BY is_primary ORDER BY is_primary", e["storyboard_id"])
    assert rows == [(0, 3), (1, 1)]
    done = events[-1]
    assert done["data"]["success_count"] == 1
    assert done["data"]["generated_image_ids"] == [img["id"]]


@pytest.mark.parametrize("fmt, mime", [("webp", "image/webp"), ("jpeg", "image/jpeg")])
def test_type_is_sniffed_from_the_bytes_not_the_url(env, fake, fmt, mime):
    fake.control({"format": fmt, "lying_extension": True})
    env.write_config(providers=[jimeng(fake)], thumbnails=True, extra=retry_conf(1))
    rc, events, _ = env.run_json(env.project([{"image_prompt": "a tram", "params": {
        "ratio": "4:3", "resolution": "1k"}}]), expect=0)
    (e,) = events_of(events, "image_generated")
    img = e["image"]
    assert img["url"].endswith(".png")          # the URL lies
    assert check_stored(env, img) == mime       # the stored file does not
    assert img["file_path"].endswith("." + EXT[mime])
    assert (img["width"], img["height"]) == (1024, 768)
    check_thumbnail(env, img)


def test_jimeng_base64_answer_has_no_url(env, fake):
    env.write_config(providers=[jimeng(fake, response_format="b64_json")], extra=retry_conf(1))
    rc, events, _ = env.run_json(env.project([{"image_prompt": "a kite", "params": {
        "ratio": "1:1", "resolution": "1k"}}]), expect=0)
    (req,) = generation_requests(fake)
    assert req["body"]["response_format"] == "b64_json"
    (e,) = events_of(events, "image_generated")
    assert e["image"]["url"] is None
    assert check_stored(env, e["image"]) == "image/png"
    assert (e["image"]["width"], e["image"]["height"]) == (1024, 1024)
    assert downloads(fake) == []


@pytest.mark.parametrize("model, sizes", [
    ("gpt-image-1", {"16:9": "1536x1024", "9:16": "1024x1536", "1:1": "1024x1024",
                     "21:9": "1536x1024"}),
    ("dall-e-3", {"16:9": "1792x1024", "9:16": "1024x1792", "1:1": "1024x1024",
                  "3:4": "1024x1792"}),
])
def test_openai_maps_ratio_to_an_allowed_size(env, fake, model, sizes):
    env.write_config(providers=[openai(fake, model=model, quality="high")], extra=retry_conf(1))
    sbs = [{"image_prompt": f"a {ratio} street", "negative_prompt": "rain",
            "params": {"ratio": ratio}} for ratio in sizes]
    rc, events, cp = env.run_json(env.project(sbs), expect=0)
    reqs = generation_requests(fake)
    assert len(reqs) == len(sizes)
    url_answer = model.startswith("dall-e")
    for r in reqs:
        ratio = r["body"]["prompt"].split()[1]
        assert r["path"] == OPENAI_PATH
        assert r["headers"]["authorization"] == f"Bearer {API_KEY}"
        want = {"model": model, "prompt": f"a {ratio} street", "n": 1, "size": sizes[ratio],
                "quality": "high"}
        if url_answer:
            want["response_format"] = "url"     # GPT image models refuse the field
        assert r["body"] == want                 # no negative_prompt: the API has none
    assert "no negative prompt" in cp.stderr
    gen = events_of(events, "image_generated")
    assert len(gen) == len(sizes)
    rows = by_position(env, events)
    for e in gen:
        img = e["image"]
        ratio = rows[e["storyboard_index"]][1].split()[1]
        check_stored(env, img)
        assert f'{img["width"]}x{img["height"]}' == sizes[ratio]
        if url_answer:
            assert img["url"].startswith(fake.url + "/images/")
        else:
            assert img["url"] is None
    assert len(downloads(fake)) == (len(sizes) if url_answer else 0)


def test_sdwebui_basic_auth_and_sizes_in_multiples_of_8(env, fake):
    fake.control({"sd_basic_auth": "painter:s3cret-pass"})
    env.write_config(providers=[sdwebui(fake, api_key="painter:s3cret-pass",
                                        sampler_name="Euler a", steps=12)], extra=retry_conf(1))
    cases = {"16:9": (1024, 576), "21:9": (1192, 512), "3:2": (1024, 680), "2:3": (680, 1024)}
    sbs = [{"image_prompt": f"a {ratio} valley", "negative_prompt": "blur",
            "params": {"ratio": ratio, "resolution": "1k"}} for ratio in cases]
    rc, events, _ = env.run_json(env.project(sbs), expect=0)
    reqs = generation_requests(fake)
    assert len(reqs) == len(cases)
    basic = "Basic " + base64.b64encode(b"painter:s3cret-pass").decode()
    for r in reqs:
        b = r["body"]
        ratio = b["prompt"].split()[1]
        assert r["path"] == SDWEBUI_PATH
        assert r["headers"]["authorization"] == basic
        assert b["width"] % 8 == 0 and b["height"] % 8 == 0
        assert (b["width"], b["height"]) == cases[ratio]
        assert b["negative_prompt"] == "blur"
        assert b["sampler_name"] == "Euler a" and b["steps"] == 12
    rows = by_position(env, events)
    gen = events_of(events, "image_generated")
    assert len(gen) == len(cases)
    for e in gen:
        img = e["image"]
        assert check_stored(env, img) == "image/png"
        assert img["url"] is None
        assert (img["width"], img["height"]) == cases[rows[e["storyboard_index"]][1].split()[1]]
    assert downloads(fake) == []


# ---------------------------------------------------------------------------
# Faults: each reported as what it is


# (endpoint, fault kind, error class, words of the cause)
RETRIED_FAULTS = [
    ("jimeng", "jimeng_enotfound", "transient", "-1000 getaddrinfo ENOTFOUND"),
    ("jimeng", "jimeng_eai_again", "transient", "-1000 getaddrinfo EAI_AGAIN"),
    ("jimeng", "jimeng_econnrefused", "transient", "-1000 connect ECONNREFUSED"),
    ("jimeng", "jimeng_econnreset", "transient", "-1000 read ECONNRESET"),
    ("jimeng", "jimeng_etimedout", "transient", "-1000 connect ETIMEDOUT"),
    ("jimeng", "jimeng_socket_hang_up", "transient", "-1000 socket hang up"),
    ("jimeng", "jimeng_axios_timeout", "transient", "-1000 timeout of 45000ms exceeded"),
    ("jimeng", "nginx_502", "transient", "HTTP 502"),
    ("jimeng", "malformed", "transient", "malformed response"),
    ("jimeng", "not_json", "transient", "malformed response"),
    ("jimeng", "drop", "transient", "jimeng: "),
    ("jimeng", "empty_data", "transient", "response without images"),
    ("jimeng", "jimeng_rate", "rate_limited", "请求频率限制"),
    ("jimeng", "jimeng_upstream", "transient", "服务器错误"),
    ("jimeng", "jimeng_timeout", "transient", "请求超时"),
    ("jimeng", "jimeng_failed", "transient", "图片生成失败"),
    ("openai", "http500", "transient", "server had an error"),
    ("openai", "http503", "transient", "overloaded"),
    ("openai", "http429", "rate_limited", "Rate limit"),
    ("openai", "malformed", "transient", "malformed response"),
    ("openai", "not_json", "transient", "malformed response"),
    ("openai", "drop", "transient", "openai: "),
    ("openai", "empty_data", "transient", "response without images"),
    ("openai", "nginx_502", "transient", "HTTP 502"),
    ("sdwebui", "http500", "transient", "CUDA out of memory"),
    ("sdwebui", "http503", "transient", "HTTP 503"),
    ("sdwebui", "http429", "rate_limited", "HTTP 429"),
    ("sdwebui", "malformed", "transient", "malformed response"),
    ("sdwebui", "not_json", "transient", "malformed response"),
    ("sdwebui", "drop", "transient", "sdwebui: "),
    ("sdwebui", "empty_data", "transient", "response without images"),
]


@pytest.mark.parametrize("endpoint", ["jimeng", "openai", "sdwebui"])
def test_transient_faults_are_retried_then_succeed(env, fake, endpoint):
    """One storyboard per fault kind, each faulted once (a rule matching its
    prompt): one retry warning naming the class and cause, then its image."""
    cases = [c for c in RETRIED_FAULTS if c[0] == endpoint]
    fake.control({"faults": [{"kind": kind, "match": f"<{kind}>", "times": 1}
                             for _, kind, _, _ in cases]})
    env.write_config(providers=[PROVIDERS[endpoint](fake, name="p")], workers_max=4,
                     batch_size=2, extra=retry_conf(3, 0.01, 0.02))
    sbs = [{"image_prompt": f"scene <{kind}>", "params": {"resolution": "1k"}}
           for _, kind, _, _ in cases]
    rc, events, cp = env.run_json(env.project(sbs), expect=0)
    assert not events_of(events, "error")
    assert len(events_of(events, "image_generated")) == len(cases)
    warnings = {w["index"]: w for w in retry_warnings(events)}
    # A rate-limited answer uses up no attempt: its warning says it waits.
    waits = {w["index"]: dict(w, attempt=1, of=3, cls="rate_limited")
             for w in rate_warnings(events)}
    assert len(warnings) + len(waits) == len(retry_warnings(events)) + len(
        rate_warnings(events)) == len(cases), warnings_of(events)
    warnings.update(waits)
    reqs = generation_requests(fake)
    for pos, (_, kind, cls, words) in enumerate(cases, 1):
        w = warnings[pos]
        assert (w["attempt"], w["of"], w["provider"], w["cls"]) == (1, 3, "p", cls), (kind, w)
        assert words in w["cause"], (kind, w)
        mine = [r["fault"] for r in reqs if r["body"]["prompt"] == f"scene <{kind}>"]
        assert mine == [kind, None], (kind, mine)
    assert stage_status(env, project_id_of(events)) == "completed"


@pytest.mark.parametrize("endpoint, kind, header, wait", [
    ("jimeng", "jimeng_rate", {"retry_after": 1}, 1.0),
    ("openai", "http429", {"retry_after_ms": 1200}, 1.2),
])
def test_retry_after_is_honoured(env, fake, endpoint, kind, header, wait):
    fake.control({"faults": [{"kind": kind, "times": 1, **header}]})
    # A backoff far below the Retry-After (which backoff_max bounds): only the header can
    # make the wait.
    env.write_config(providers=[PROVIDERS[endpoint](fake, name="p")],
                     extra=retry_conf(3, 0.01, 5.0))
    rc, events, _ = env.run_json(env.project([{"image_prompt": "a queue", "params": {
        "resolution": "1k"}}]), expect=0)
    (w,) = rate_warnings(events)
    assert retry_warnings(events) == []
    assert w["delay_s"] >= wait - 0.05, w
    first, second = generation_requests(fake)
    assert (first["fault"], first["status"], second["fault"]) == (kind, 429 if kind == "http429"
                                                                  else 200, None)
    # The server's own clock: the one place a time comparison means something.
    assert second["time"] - first["time"] >= wait * 0.9


def test_hang_times_out_and_is_retried(env, fake):
    fake.control({"faults": [{"kind": "hang", "match": "HANG", "times": -1}], "hang_s": 30})
    env.write_config(providers=[jimeng(fake)], timeout=2.0, workers_max=2, batch_size=1,
                     extra=retry_conf(2, 0.01, 0.02))
    rc, events, _ = env.run_json(env.project([
        {"image_prompt": "HANG forever", "params": {"resolution": "1k"}},
        {"image_prompt": "a calm sea", "params": {"resolution": "1k"}}]), expect=3)
    (w,) = retry_warnings(events)
    assert w["index"] == 1 and w["cls"] == "transient" and "timed out" in w["cause"], w
    (err,) = events_of(events, "error")
    assert "timed out" in err["error"]
    assert err["error"].startswith("storyboard 1: ")
    assert [r["fault"] for r in generation_requests(fake)
            if r["body"]["prompt"].startswith("HANG")] == ["hang", "hang"]
    assert len(events_of(events, "image_generated")) == 1


@pytest.mark.parametrize("endpoint, kind, words", [
    ("jimeng", "jimeng_blocked", "内容被拦截"),
    ("jimeng", "content_policy", "内容被拦截"),
    ("openai", "content_policy", "safety system"),
    ("sdwebui", "content_policy", "content filtered"),
])
def test_content_policy_fails_at_once_without_retries(env, fake, endpoint, kind, words):
    fake.control({"faults": [{"kind": kind, "match": "BLOCKED", "times": -1}]})
    env.write_config(providers=[PROVIDERS[endpoint](fake, name="p")],
                     extra=retry_conf(5, 0.01, 0.02))
    sbs = [{"image_prompt": p, "params": {"resolution": "1k"}}
           for p in ("a quiet street", "a BLOCKED scene", "a market")]
    rc, events, _ = env.run_json(env.project(sbs), expect=3)
    rows = by_position(env, events)
    blocked_id = rows[2][0]
    mine = [r for r in generation_requests(fake) if "BLOCKED" in r["body"]["prompt"]]
    assert [r["fault"] for r in mine] == [kind]          # exactly one request: no retry
    assert retry_warnings(events) == [] and warnings_of(events) == []
    (err,) = events_of(events, "error")
    assert err["storyboard_id"] == blocked_id
    assert err["error"].startswith("storyboard 2: ") and words in err["error"], err
    assert sorted(e["storyboard_id"] for e in events_of(events, "image_generated")) == sorted(
        [rows[1][0], rows[3][0]])
    done = events[-1]
    assert done["data"]["success_count"] == 2 and done["data"]["failed_count"] == 1
    assert done["stage"]["status"] == "partial"
    assert stage_status(env, project_id_of(events)) == "partial"
    assert env.sql("SELECT status, attempts FROM generated_images WHERE storyboard_id = ?",
                   blocked_id) == [("failed", 1)]
    (error,) = env.sql("SELECT error FROM generated_images WHERE storyboard_id = ?",
                       blocked_id)[0]
    assert words in error


@pytest.mark.parametrize("endpoint, model, status", [
    ("jimeng", "jimeng-4.0", 404),
    ("openai", "dall-e-3", 403),       # dall-e models answer with URLs
])
def test_expired_image_url_is_reported_as_expired(env, fake, endpoint, model, status):
    fake.control({"faults": [{"kind": "expired_url", "match": "EXPIRED", "times": -1}],
                  "expired_status": status})
    env.write_config(providers=[PROVIDERS[endpoint](fake, name="p", model=model)],
                     extra=retry_conf(1))
    rc, events, _ = env.run_json(env.project(["a fresh one", "an EXPIRED one"]), expect=3)
    (err,) = events_of(events, "error")
    assert err["storyboard_id"] == by_position(env, events)[2][0]
    assert "expired" in err["error"] and f"HTTP {status}" in err["error"], err
    assert retry_warnings(events) == []
    assert sorted(r["status"] for r in downloads(fake)) == sorted([200, status])
    assert len(generation_requests(fake)) == 2


@pytest.mark.parametrize("endpoint", ["jimeng", "openai", "sdwebui"])
def test_body_that_is_not_an_image_is_reported_as_such(env, fake, endpoint):
    # jimeng hands over a URL whose body is HTML; openai (gpt-image-1) and
    # sdwebui hand over base64 of it.
    fake.control({"faults": [{"kind": "not_image", "match": "BROKEN", "times": -1}]})
    env.write_config(providers=[PROVIDERS[endpoint](fake, name="p")],
                     extra=retry_conf(2, 0.01, 0.02))
    rc, events, _ = env.run_json(env.project([
        {"image_prompt": "a BROKEN picture", "params": {"resolution": "1k"}},
        {"image_prompt": "a whole picture", "params": {"resolution": "1k"}}]), expect=3)
    (w,) = retry_warnings(events)                   # transient: retried once
    assert w["index"] == 1 and "not an image" in w["cause"], w
    (err,) = events_of(events, "error")
    assert err["error"].startswith("storyboard 1: ") and "not an image" in err["error"], err
    (e,) = events_of(events, "image_generated")
    stored = [os.path.join(d, f) for d, _, fs in os.walk(env.images) for f in fs]
    assert stored == [e["image"]["file_path"]]      # nothing kept of the broken body
    assert env.sql("SELECT status, attempts FROM generated_images WHERE storyboard_id = ?",
                   err["storyboard_id"]) == [("failed", 2)]


# ---------------------------------------------------------------------------
# Failover on a refused key, quota


@pytest.mark.parametrize("control, words", [
    ({"bad_keys": ["sk-a-KEY-111"]}, "-2002 token已失效"),
    # The proxy saw no session id (-2000 on the header): as unusable as an expired one.
    ({"faults": [{"kind": "jimeng_no_auth", "times": 1}]},
     "-2000 Params headers.authorization invalid"),
], ids=["expired", "no-authorization"])
def test_auth_failure_fails_over_and_is_not_asked_again(env, fake, control, words):
    fake.control(control)
    env.write_config(providers=[jimeng(fake, name="a", api_key="sk-a-KEY-111", default=False),
                                jimeng(fake, name="b", api_key="sk-b-KEY-222")],
                     workers_max=1, batch_size=10, extra=retry_conf(3, 0.01, 0.02))
    sbs = [{"image_prompt": f"shot {i}", "params": {"resolution": "1k"}} for i in range(1, 6)]
    rc, events, _ = env.run_json(env.project(sbs, image_providers=["a", "b"]), expect=0)
    reqs = generation_requests(fake)
    a = [r for r in reqs if r["headers"]["authorization"] == "Bearer sk-a-KEY-111"]
    b = [r for r in reqs if r["headers"]["authorization"] == "Bearer sk-b-KEY-222"]
    assert len(a) == 1, "a is not asked again after its first auth failure"
    assert len(b) == 5 and len(reqs) == 6
    warnings = warnings_of(events)
    unusable = [w for w in warnings if w.startswith("provider a is unusable")]
    assert len(unusable) == 1 and unusable[0].endswith("; not asked again in this run")
    assert words in unusable[0]
    assert any(w.startswith(f"storyboard 1: provider a failed (auth: jimeng: {words})")
               and w.endswith("; moving to provider b") for w in warnings), warnings
    assert retry_warnings(events) == []
    assert not events_of(events, "error")
    assert len(events_of(events, "image_generated")) == 5
    assert stage_status(env, project_id_of(events)) == "completed"
    (b_id,) = env.sql("SELECT id FROM model_providers WHERE name = 'b'")[0]
    assert env.sql("SELECT DISTINCT model_provider_id, status FROM generated_images") == [
        (b_id, "completed")]


def test_auth_failover_to_the_default_with_concurrent_workers(env, fake):
    # a (openai, refused key) is the project's only provider; b (jimeng) the
    # default.  Workers already running for a may each have asked it once.
    fake.control({"bad_keys": ["sk-a-KEY-111"]})
    env.write_config(providers=[openai(fake, name="a", api_key="sk-a-KEY-111", default=False),
                                jimeng(fake, name="b")],
                     workers_max=3, batch_size=1, extra=retry_conf(3, 0.01, 0.02))
    sbs = [{"image_prompt": f"shot {i}", "params": {"resolution": "1k"}} for i in range(1, 7)]
    rc, events, _ = env.run_json(env.project(sbs, image_providers=["a"]), expect=0)
    reqs = generation_requests(fake)
    a = [r for r in reqs if r["path"] == OPENAI_PATH]
    assert 1 <= len(a) <= 3
    assert all(r["status"] == 401 for r in a)
    assert len([r for r in reqs if r["path"] == JIMENG_PATH]) == 6
    assert sum(w.startswith("provider a is unusable") for w in warnings_of(events)) == 1
    assert len(events_of(events, "image_generated")) == 6
    assert events[-1]["stage"]["status"] == "completed"


def test_quota_fails_over_to_the_next_provider(env, fake):
    fake.control({"quota_keys": ["sk-a-KEY-111"]})
    env.write_config(providers=[jimeng(fake, name="a", api_key="sk-a-KEY-111", default=False),
                                jimeng(fake, name="b", api_key="sk-b-KEY-222")],
                     workers_max=2, batch_size=2, extra=retry_conf(3, 0.01, 0.02))
    sbs = [{"image_prompt": f"shot {i}", "params": {"resolution": "1k"}} for i in range(1, 4)]
    rc, events, _ = env.run_json(env.project(sbs, image_providers=["a", "b"]), expect=0)
    reqs = generation_requests(fake)
    for i in range(1, 4):
        mine = [r["headers"]["authorization"] for r in reqs if r["body"]["prompt"] == f"shot {i}"]
        # quota is not retried on the same provider: at most one ask of a, then b.
        assert mine[-1] == "Bearer sk-b-KEY-222" and mine.count("Bearer sk-a-KEY-111") <= 1
    moves = [w for w in warnings_of(events) if "moving to provider b" in w]
    assert moves and all("(quota: " in w and "积分不足" in w for w in moves), moves
    assert retry_warnings(events) == []
    assert len(events_of(events, "image_generated")) == 3


# ---------------------------------------------------------------------------
# Done-when: 30 storyboards through 20% transient faults


def test_thirty_storyboards_through_transient_faults_complete(env, tmp_path_factory):
    fake = FakeProvider(tmp_path_factory.mktemp("fakeprovider"), "--seed", "7")
    try:
        # What the real proxy answers while it cannot reach its upstream.
        fake.control({"faults": [{"kind": "jimeng_enotfound", "probability": 0.2,
                                  "times": -1}]})
        # 8 attempts: a storyboard failing all of them has odds 0.2^8.
        env.write_config(providers=[jimeng(fake, concurrency=4)], workers_max=4, batch_size=3,
                         extra=retry_conf(8, 0.05, 0.2))
        sbs = [{"image_prompt": f"storyboard number {i}", "params": {"resolution": "1k"}}
               for i in range(1, 31)]
        rc, events, _ = env.run_json(env.project(sbs), expect=0)
        reqs = generation_requests(fake)
    finally:
        fake.stop()
    faulted = [r for r in reqs if r["fault"] is not None]
    assert all(r["fault"] == "jimeng_enotfound" and r["status"] == 200 for r in faulted)
    assert all(r["status"] == 200 for r in reqs if r["fault"] is None)
    assert faulted, "the seed should fault some requests"
    warnings = retry_warnings(events)
    # Every retry was forced by a fault, and each is a warning.
    assert len(reqs) == 30 + len(faulted) == 30 + len(warnings)
    assert all(w["cls"] == "transient" and "-1000 getaddrinfo ENOTFOUND" in w["cause"]
               for w in warnings)
    rows = by_position(env, events)
    for pos, (sid, prompt) in rows.items():
        mine = [r["fault"] for r in reqs if r["body"]["prompt"] == prompt]
        assert mine[-1] is None and len(mine) - 1 == sum(w["index"] == pos for w in warnings)
        assert env.sql("SELECT attempts FROM generated_images WHERE storyboard_id = ?",
                       sid) == [(len(mine),)]
    assert not events_of(events, "error")
    done = events[-1]
    assert done["data"]["success_count"] == 30 and done["data"]["failed_count"] == 0
    assert done["stage"]["status"] == "completed"
    assert stage_status(env, project_id_of(events)) == "completed"


# ---------------------------------------------------------------------------
# The API key goes nowhere, even when a provider echoes it


ECHO_KEY = "sk-echo-SECRET-4711"
ECHO_PASS = "pw-SECRET-0815"


class EchoHandler(BaseHTTPRequestHandler):
    """Answers each provider's endpoint with errors that quote the credential
    it was sent, the way careless proxies and some real APIs do."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        auth = self.headers.get("Authorization", "")
        secret = auth.split(" ", 1)[-1]
        if auth.startswith("Basic "):
            secret = base64.b64decode(secret).decode()
        with self.server.lock:
            n = self.server.counts[self.path] = self.server.counts.get(self.path, 0) + 1
        if self.path == JIMENG_PATH:
            status, body = [
                (200, {"code": -2007, "message": f"生成失败 session {secret}", "data": None}),
                (200, f"<html>Welcome back, {secret}!</html>"),
                (200, {"code": -2002, "message": f"token {secret} 已失效", "data": None}),
            ][min(n, 3) - 1]
        elif self.path == OPENAI_PATH:
            status, body = [
                (500, {"error": {"message": f"upstream rejected key {secret}", "type": "server"}}),
                (401, {"error": {"message": f"Incorrect API key provided: {secret}.",
                                 "type": "invalid_request_error", "code": "invalid_api_key"}}),
            ][min(n, 2) - 1]
        else:
            status, body = [
                (500, {"error": "RuntimeError", "detail": "", "errors": f"login {secret} failed"}),
                (401, {"detail": f"Incorrect username or password for {secret}"}),
            ][min(n, 2) - 1]
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def echo():
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
    server.lock, server.counts = threading.Lock(), {}
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def leaks(text, secrets):
    return [s for s in secrets if s in text]


def test_api_key_is_never_written_even_when_echoed(env, echo):
    secrets = [ECHO_KEY, ECHO_PASS, "admin:" + ECHO_PASS]
    env.write_config(providers=[
        http_provider("jm", "jimeng", echo + JIMENG_PATH, api_key=ECHO_KEY, default=False),
        http_provider("oa", "openai", echo + OPENAI_PATH, api_key=ECHO_KEY, default=False),
        http_provider("sd", "sdwebui", echo + "/sdwebui", api_key="admin:" + ECHO_PASS),
    ], workers_max=1, extra=retry_conf(3, 0.01, 0.02))
    # One storyboard walks the whole chain: each provider's transient echoes
    # are retried (warnings), then its auth echo makes it unusable.
    p = env.project(["a secret garden"], image_providers=["jm", "oa", "sd"])
    cp = env.t2i("-v", "run", p, "--json", check=1)
    events = [json.loads(line) for line in cp.stdout.splitlines() if line.strip()]
    messages = [e.get("message") or e.get("error") or "" for e in events
                if e["type"] in ("warning", "error")]
    # The providers did echo: the echoes arrive, masked.
    assert len(retry_warnings(events)) == 4, messages
    assert sum("unusable" in m for m in messages) == 3, messages
    masked = [m for m in messages if "***" in m or "[redacted]" in m]
    assert len(masked) >= 7, messages
    assert leaks(cp.stdout, secrets) == [] and leaks(cp.stderr, secrets) == []

    pid = project_id_of(events)
    for args in (("status",), ("status", "--json"), ("status", pid, "--json"),
                 ("images", pid), ("images", pid, "--json")):
        out = env.t2i(*args)
        assert leaks(out.stdout + out.stderr, secrets) == [], args
    for suffix in ("", "-wal", "-shm", "-journal"):
        path = env.db + suffix
        if os.path.exists(path):
            with open(path, "rb") as f:
                raw = f.read()
            assert [s for s in secrets if s.encode() in raw] == [], path
    (n,) = env.sql("SELECT count(*) FROM run_events")[0]
    assert n == len(events)


def test_api_key_is_not_written_on_a_normal_run(env, fake):
    """Every fault the fake has, with verbose logs: nothing of the key."""
    kinds = ["jimeng_enotfound", "jimeng_param", "nginx_502", "malformed", "not_json",
             "content_policy", "not_image", "expired_url", "empty_data"]
    fake.control({"faults": [{"kind": k, "match": f"<{k}>", "times": -1} for k in kinds]})
    env.write_config(providers=[jimeng(fake)], thumbnails=True, extra=retry_conf(2, 0.01, 0.02))
    sbs = [{"image_prompt": f"scene <{k}>", "params": {"resolution": "1k"}} for k in kinds]
    sbs.append({"image_prompt": "a good scene", "params": {"resolution": "1k"}})
    cp = env.t2i("-v", "run", env.project(sbs), "--json", check=3)
    assert API_KEY not in cp.stdout + cp.stderr
    assert all(r["headers"]["authorization"] == f"Bearer {API_KEY}"
               for r in generation_requests(fake))     # it was sent, where it belongs
    pid = json.loads(cp.stdout.splitlines()[0])["project_id"]
    for args in (("status", pid, "--json"), ("images", pid, "--json")):
        out = env.t2i(*args, check=0)
        assert API_KEY not in out.stdout + out.stderr
    for suffix in ("", "-wal"):
        if os.path.exists(env.db + suffix):
            with open(env.db + suffix, "rb") as f:
                assert API_KEY.encode() not in f.read()
