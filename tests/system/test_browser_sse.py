"""A page on another origin follows a run of a token-protected service in
headless Chromium: EventSource with ?access_token=, every image shown in an
<img> through its signed file_url, and no reconnect loop after `done`."""

import re

from conftest import provider_conf, run_browser

STREAM_LINE = r"http: GET /v1/runs/{run}/events\?access_token=\[redacted\] (\d{{3}}) "


def test_other_origin_follows_a_run_and_shows_its_images(service, site):
    token = "tok-browser-0123456789"
    service.configure(token=token, thumbnails=True, http=f'cors_origins = ["{site.origin}"];',
                      providers=[provider_conf("ok")])
    service.start()
    prompts = [f"shot {i}" for i in range(6)]
    pid = service.import_project(prompts)
    api = f"http://127.0.0.1:{service.port}"
    got = run_browser("sse_follow.mjs", site=site.origin, api=api, token=token, project=pid)

    assert got["start"] == 202
    run = got["run"]
    types = got["types"]
    assert types[0] == "connected" and types[-1] == "done", types
    assert types.count("image_generated") == len(prompts)
    assert types.count("done") == 1            # nothing replayed twice
    # Every image decoded in the page, at the size the event gave.
    assert len(got["images"]) == len(prompts)
    for im in got["images"]:
        assert "error" not in im, im
        assert im["naturalWidth"] > 0 and im["naturalWidth"] == im["width"], im
        assert im["naturalHeight"] == im["height"], im
        assert "access_token" not in im["src"] and token not in im["src"]
    assert got["complete"] == [True] * len(prompts)
    # After done: one reconnect, told 204, then closed for good.
    assert got["readyState"] == 2, got
    assert got["opens"] == 1, got
    assert got["closedAfter"] == {"opens": got["opens"], "errors": got["errors"]}
    # At the server: exactly one stream and one 204, however long it watched.
    service.wait_log(f"/v1/runs/{run}/events?access_token=[redacted] 204")
    statuses = re.findall(STREAM_LINE.format(run=run), service.log())
    assert statuses == ["200", "204"], statuses
    assert token not in service.log()
    # The run really happened, and its images are on disk.
    doc = service.get(f"/v1/projects/{pid}").json()
    assert all(sb["image"]["status"] == "completed" for sb in doc["storyboards"])
