"""Cross-site request forgery and CORS, in headless Chromium: what a page of
an unlisted site can send changes nothing; a page of a listed origin can
use the API with the token, and one of another origin cannot."""

import re

from conftest import run_browser

ACCESS = re.compile(r"http: (GET|POST|OPTIONS|PATCH|DELETE) (\S+) (\d{3}) ")


def test_csrf_from_another_site_changes_nothing(service, site):
    """No token: the Origin check and the JSON content type are all that
    stand between a page of another site and the service."""
    service.configure()
    service.start()
    env = service.env
    pid = service.import_project(["a", "b"])
    sid = service.get(f"/v1/projects/{pid}").json()["storyboards"][0]["id"]
    snap = env.snapshot()
    api = f"http://127.0.0.1:{service.port}"
    assert service.get("/mark-before").status == 404
    service.wait_log("/mark-before")
    got = run_browser("csrf.mjs", site=site.origin, api=api, project=pid, storyboard=sid)
    assert got["nocors_run"] == got["nocors_import"] == "opaque", got
    for k in ("cors_run", "cors_delete", "cors_patch"):
        assert got[k] == "TypeError", got
    # Nothing started, imported, edited or deleted.
    assert env.snapshot() == snap
    assert env.sql("SELECT count(*) FROM runs") == [(0,)]
    # Each attempt reached the service and was refused there: the posts for
    # their Origin (403), the preflights of the CORS fetches (403).
    assert service.get("/mark-after").status == 404
    service.wait_log("/mark-after")
    log = service.log()
    lines = ACCESS.findall(log[log.index("/mark-before"):log.index("/mark-after")])
    posts = [(m, p, s) for m, p, s in lines if m == "POST"]
    assert len(posts) == 5 and {s for _m, _p, s in posts} == {"403"}, posts
    preflights = [(m, p, s) for m, p, s in lines if m == "OPTIONS"]
    assert len(preflights) == 3 and {s for _m, _p, s in preflights} == {"403"}, preflights
    assert not [x for x in lines if x[0] in ("PATCH", "DELETE")]


def test_cors_for_a_listed_origin_only(service, site, other_site):
    token = "tok-cors-0123456789"
    service.configure(token=token, http=f'cors_origins = ["{site.origin}"];')
    service.start()
    env = service.env
    pid = service.import_project(["a"])
    api = f"http://127.0.0.1:{service.port}"
    ok = run_browser("cors.mjs", site=site.origin, api=api, token=token, project=pid)
    assert ok["list"]["status"] == 200 and ok["list"]["body"]["projects"][0]["id"] == pid
    assert ok["import"]["status"] == 201, ok
    made = ok["import"]["body"]["id"]
    assert ok["get"]["status"] == 200 and ok["get"]["body"]["id"] == made
    assert ok["patch"]["status"] == 200 and \
        ok["patch"]["body"]["image_prompt"] == "edited in the page"
    assert ok["delete"]["status"] == 200 and ok["delete"]["body"]["deleted"] is True
    assert ok["preflight_free_get"]["status"] == 401    # the error is readable too
    assert env.sql("SELECT count(*) FROM projects WHERE id = ?", made) == [(0,)]

    snap = env.snapshot()
    no = run_browser("cors.mjs", site=other_site.origin, api=api, token=token, project=pid)
    for k in ("list", "import", "get", "patch", "delete", "preflight_free_get"):
        assert no[k] == {"blocked": "TypeError"}, (k, no)
    assert env.snapshot() == snap
