"""The openai plugin with gpt-image-1, the default since the dall-e models were retired:
quality and output_format sent as given and the stored image in that format, a
moderation_blocked refusal rejected, insufficient_quota as quota, and the duration-form
x-ratelimit-reset-* headers honoured when a rate limit has no Retry-After."""

import json
import signal
import subprocess

import pytest

from conftest import (API_KEY, BIN, RUN_TIMEOUT, events_of, generation_requests, http_provider,
                      image_info, rate_warnings, retry_conf)
from provider_checks import failover_pair, run_project, seen_class


def openai(fake, name="oa", default=True, **kw):
    # No model: the plugin's default is gpt-image-1.
    return http_provider(name, "openai", fake.openai_url, default=default, **kw)


@pytest.mark.parametrize("fmt, mime", [("jpeg", "image/jpeg"), ("webp", "image/webp"),
                                       ("png", "image/png")])
def test_gpt_image_1_is_the_default_with_quality_and_output_format(env, fake, fmt, mime):
    env.write_config(providers=[openai(fake, quality="medium", output_format=fmt)],
                     extra=retry_conf(1))
    rc, events, _, _ = run_project(env, [{"image_prompt": "a lantern",
                                          "params": {"ratio": "2:3"}}], expect=0)
    (r,) = generation_requests(fake)
    assert r["headers"]["authorization"] == f"Bearer {API_KEY}"
    assert r["body"] == {"model": "gpt-image-1", "prompt": "a lantern", "n": 1,
                         "size": "1024x1536", "quality": "medium", "output_format": fmt}
    (e,) = events_of(events, "image_generated")
    assert e["image"]["url"] is None                      # always base64
    assert image_info(e["image"]["file_path"]) == (mime, 1024, 1536)


@pytest.mark.parametrize("kind, cls, words", [
    ("moderation_blocked", "rejected", "(moderation_blocked)"),
    ("content_policy", "rejected", "(content_policy_violation)"),
    ("quota", "quota", "(insufficient_quota)"),
    ("http429", "rate_limited", "(rate_limit_exceeded)"),
])
def test_error_codes_are_their_classes(env, fake, kind, cls, words):
    fake.control({"faults": [{"kind": kind, "endpoint": "openai", "times": 1}]})
    env.write_config(providers=failover_pair(openai(fake, name="a", default=False)),
                     extra=retry_conf(2, 0.01, 0.02))
    rc, events, _, _ = run_project(env, ["a garden"], image_providers=["a", "b"])
    got, cause = seen_class(events)
    assert (got, words in cause, cause.startswith("openai: ")) == (cls, True, True), cause
    assert len(generation_requests(fake)) == (2 if cls == "rate_limited" else 1)


def test_rate_limit_waits_for_the_reset_duration(env, fake):
    # A 429 without Retry-After: the requests limit is spent and resets in 1.5 s.
    fake.control({"faults": [{"kind": "http429", "times": 1, "reset_requests": "1s500ms",
                              "reset_tokens": "20ms"}]})
    env.write_config(providers=[openai(fake)], extra=retry_conf(3, 0.01, 5.0))
    rc, events, _, _ = run_project(env, ["a queue"], expect=0)
    (w,) = rate_warnings(events)
    assert w["delay_s"] >= 1.5 - 0.05, w
    first, second = generation_requests(fake)
    assert (first["status"], second["status"]) == (429, 200)
    assert second["time"] - first["time"] >= 1.5 * 0.9   # the fake's own clock


def test_a_reset_in_minutes_is_read_as_such(env, fake):
    # "6m30s" is 390 s (within retry.backoff_max): the warning of the wait says so; the
    # run is stopped there.
    fake.control({"faults": [{"kind": "http429", "times": 1, "reset_requests": "6m30s"}]})
    env.write_config(providers=[openai(fake)], extra=retry_conf(3, 0.01, 600.0))
    proc = subprocess.Popen([BIN, "-c", env.conf, "run", env.project(["a queue"]), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            cwd=env.path)
    try:
        events = []
        for line in proc.stdout:
            events.append(json.loads(line))
            if rate_warnings(events):
                break
        (w,) = rate_warnings(events)
        assert w["delay_s"] == 390.0, w
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=RUN_TIMEOUT)
        proc.stdout.close()
    assert len(generation_requests(fake)) == 1
