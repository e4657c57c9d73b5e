"""The ark plugin (Volcengine Ark Seedream) through the real binary against
tools/fakeprovider: the exact request, the size each model family is sent, the stored JPEG
at that size, one warning for a negative prompt, every error code as its class (403
AccountOverdueError is quota, 429 QuotaExceeded is quota, 404 ModelNotOpen is auth), and the
key kept out of everything written."""

import pytest

from conftest import (API_KEY, events_of, http_provider, image_info, retry_conf,
                      warnings_of)
from provider_checks import assert_secret_nowhere, failover_pair, run_project, seen_class

PATH = "/ark/api/v3/images/generations"
V40 = "doubao-seedream-4-0-250828"


def ark(fake, name="ark", model=V40, default=True, **kw):
    # The region's base URL, as a user copies it: the plugin appends the endpoint.
    return http_provider(name, "ark", fake.url + "/ark/api/v3", model=model, default=default,
                         **kw)


def gen_requests(fake):
    return [r for r in fake.requests() if r["path"] == PATH]


def test_request_fields_headers_and_stored_jpeg(env, fake):
    env.write_config(providers=[ark(fake, seed=7, guidance_scale=2.5)], extra=retry_conf(1))
    rc, events, cp, pid = run_project(env, [
        {"image_prompt": "a lighthouse at dusk", "negative_prompt": "fog"},
        {"image_prompt": "a harbour", "negative_prompt": "rain",
         "params": {"ratio": "1:1", "resolution": "1k"}},
    ], expect=0)
    reqs = gen_requests(fake)
    assert len(reqs) == 2
    for r in reqs:
        assert r["method"] == "POST"
        assert r["headers"]["authorization"] == f"Bearer {API_KEY}"
        assert r["headers"]["content-type"] == "application/json"
        assert r["status"] == 200
    bodies = {r["body"]["prompt"]: r["body"] for r in reqs}
    # No negative_prompt (Ark has none), watermark off, the host's size as WxH.
    assert bodies == {
        "a lighthouse at dusk": {"model": V40, "prompt": "a lighthouse at dusk",
                                 "size": "2560x1440", "watermark": False,
                                 "response_format": "url", "seed": 7, "guidance_scale": 2.5},
        "a harbour": {"model": V40, "prompt": "a harbour", "size": "1024x1024",
                      "watermark": False, "response_format": "url", "seed": 7,
                      "guidance_scale": 2.5},
    }
    got = {}
    for e in events_of(events, "image_generated"):
        img = e["image"]
        mime, w, h = image_info(img["file_path"])
        assert (mime, w, h) == ("image/jpeg", img["width"], img["height"])
        assert img["url"].startswith(fake.url + "/images/")
        got[e["storyboard_index"]] = (w, h)
    assert got == {1: (2560, 1440), 2: (1024, 1024)}
    # Two storyboards with a negative prompt: one warning event in the run says why it is
    # not sent.
    neg = [w for w in warnings_of(events) if "negative prompt" in w]
    assert neg == ["provider ark: ark: Ark has no negative prompt field; the negative prompt "
                   "is not sent"], \
        warnings_of(events)


@pytest.mark.parametrize("model, params, size", [
    # 4.5 and 5.0 need 2560x1440 pixels or more: a 1k request becomes its ratio's 2K size.
    ("doubao-seedream-4-5-251128", {"ratio": "16:9", "resolution": "1k"}, "2560x1440"),
    ("doubao-seedream-5-0-260128", {"ratio": "1:1", "resolution": "1k"}, "2048x2048"),
    ("doubao-seedream-4-5-251128", {"ratio": "3:4", "resolution": "2k"}, "1728x2304"),
    # 3.0-t2i takes 512 to 2048 a side.
    ("doubao-seedream-3-0-t2i-250415", {"ratio": "16:9", "resolution": "2k"}, "2048x1152"),
    ("doubao-seedream-3-0-t2i-250415", {"ratio": "21:9", "resolution": "1k"}, "1195x512"),
    # 4.0 takes 1280x720 pixels or more (Ark's documentation): 1k is scaled up to that.
    ("doubao-seedream-4-0-250828", {"ratio": "9:16", "resolution": "1k"}, "720x1280"),
    ("doubao-seedream-4-0-250828", {"ratio": "1:1", "resolution": "1k"}, "1024x1024"),
    # An endpoint id says nothing of its model: the host's pixels as they are.
    ("ep-20250101-abcde", {"ratio": "4:3", "resolution": "2k"}, "2304x1728"),
])
def test_size_per_model_family(env, fake, model, params, size):
    env.write_config(providers=[ark(fake, model=model)], extra=retry_conf(1))
    rc, events, _, _ = run_project(env, [{"image_prompt": "a tram", "params": params}],
                                   expect=0)
    (r,) = gen_requests(fake)
    assert r["body"]["size"] == size and r["body"]["model"] == model
    (e,) = events_of(events, "image_generated")
    assert f'{e["image"]["width"]}x{e["image"]["height"]}' == size
    assert image_info(e["image"]["file_path"])[1:] == tuple(map(int, size.split("x")))


def test_a_size_ark_refuses_is_rejected_with_its_words(env, fake):
    # A size in the options is sent as given: Ark's refusal is the user's to read.
    env.write_config(providers=[ark(fake, size="300x300")], extra=retry_conf(3, 0.01, 0.02))
    rc, events, _, _ = run_project(env, ["a tram"], expect=1)
    (err,) = events_of(events, "error")
    assert "ark: HTTP 400 InvalidParameter" in err["error"] and "`size`" in err["error"], err
    assert len(gen_requests(fake)) == 1              # rejected: not retried


def test_watermark_and_response_format_follow_the_options(env, fake):
    env.write_config(providers=[ark(fake, watermark=True, response_format="b64_json")],
                     extra=retry_conf(1))
    rc, events, _, _ = run_project(env, ["a kite"], expect=0)
    (r,) = gen_requests(fake)
    assert r["body"]["watermark"] is True and r["body"]["response_format"] == "b64_json"
    (e,) = events_of(events, "image_generated")
    assert e["image"]["url"] is None                  # bytes, not a URL to download
    assert image_info(e["image"]["file_path"]) == ("image/jpeg", 2560, 1440)
    assert [x for x in fake.requests() if x["path"].startswith("/images/")] == []


# (fault kind, class, the provider's words that reach the message)
CASES = [
    ("content_policy", "rejected", "InputTextSensitiveContentDetected"),
    ("output_blocked", "rejected", "OutputImageSensitiveContentDetected"),
    ("invalid_param", "rejected", "InvalidParameter"),
    ("auth", "auth", "AuthenticationError"),
    ("access_denied", "auth", "AccessDenied"),
    ("model_not_open", "auth", "ModelNotOpen"),
    ("endpoint_not_found", "auth", "InvalidEndpointOrModel.NotFound"),
    ("quota", "quota", "AccountOverdueError"),
    ("service_overdue", "quota", "OperationDenied.ServiceOverdue"),
    ("quota_exceeded", "quota", "QuotaExceeded"),
    ("set_limit", "quota", "SetLimitExceeded"),
    ("http429", "rate_limited", "RateLimitExceeded.EndpointRPMExceeded"),
    ("ipm_limit", "rate_limited", "ModelAccountIpmRateLimitExceeded"),
    ("http500", "transient", "InternalServiceError"),
    ("http503", "transient", "ServerOverloaded"),
    ("malformed", "transient", "malformed response"),
    ("not_json", "transient", "malformed response"),
    ("empty_data", "transient", "response without images"),
]


@pytest.mark.parametrize("kind, cls, words", CASES)
def test_each_error_code_is_its_class(env, fake, kind, cls, words):
    fake.control({"faults": [{"kind": kind, "endpoint": "ark", "times": 1}]})
    env.write_config(providers=failover_pair(ark(fake, name="a", default=False)),
                     extra=retry_conf(2, 0.01, 0.02))
    rc, events, cp, _ = run_project(env, ["a quiet street"], image_providers=["a", "b"])
    got, cause = seen_class(events)
    assert (got, words in cause) == (cls, True), (kind, got, cause)
    assert cause.startswith("ark: "), cause
    n = len(gen_requests(fake))
    if cls in ("transient", "rate_limited"):
        assert rc == 0 and n == 2                   # retried on Ark, then its image
    elif cls in ("auth", "quota"):
        assert rc == 0 and n == 1                   # failed over to b, not asked again
    else:
        assert rc == 1 and n == 1                   # neither retried nor failed over


def test_key_appears_in_no_output_event_or_database_byte(env, fake):
    fake.control({"faults": [{"kind": k, "match": f"<{k}>", "times": -1, "endpoint": "ark"}
                             for k in ("http500", "content_policy", "not_json", "quota")]})
    env.write_config(providers=failover_pair(ark(fake, name="a", default=False)),
                     thumbnails=True, extra=retry_conf(2, 0.01, 0.02))
    sbs = [{"image_prompt": f"scene <{k}>", "negative_prompt": "x"}
           for k in ("http500", "content_policy", "not_json", "quota")]
    sbs.append("a good scene")
    rc, events, cp, pid = run_project(env, sbs, image_providers=["a", "b"])
    assert events[-1]["type"] == "done"
    assert all(r["headers"]["authorization"] == f"Bearer {API_KEY}" for r in gen_requests(fake))
    assert_secret_nowhere(env, API_KEY, [cp.stdout, cp.stderr], pid)


@pytest.mark.parametrize("plugin, path", [("ark", "/ark/api/v3"), ("dashscope", "/dashscope")])
def test_a_provider_without_its_key_is_a_config_error(env, fake, plugin, path):
    # Both bill an account: the plugin declares that it needs a key.
    env.write_config(providers=[http_provider("p", plugin, fake.url + path, api_key=None)])
    cp = env.t2i("check-config")
    assert cp.returncode == 1
    assert f"providers[0].api_key: missing (plugin {plugin} needs an api key" in cp.stderr
    assert fake.requests() == []
