"""Numbers keep the digits the user wrote.  A provider option 0.6 in the
config, a project option 0.3 and a storyboard option 0.7 come back as 0.6, 0.3
and 0.7 (not 0.59999999999999998, 0.29999999999999999, 0.69999999999999996)
in the NDJSON events, in the SSE stream, in the database's JSON columns, in
`images --json` and in every API answer.

Every check reads the JSON text with parse_float=str: read as floats, the
long and the short text are the same double and no test could tell them
apart.  The `error` test plugin's "echo" option puts the options text the
plugin was given into its error message, so the events show what reached the
plugin."""

import hashlib
import json
import os
import re

from conftest import events_of, provider_conf

MODEL = "echo-1"
CONFIG_OPTIONS = {"sample_strength": 0.6, "echo": True}
PROJECT_OPTIONS = {"scale": 0.3}
STORYBOARD_OPTIONS = {"strength": 0.7}
# Every real exactly as written; the booleans as JSON has them.
WANT = {"echo": True, "sample_strength": "0.6", "scale": "0.3", "strength": "0.7"}
PROMPTS = ["a calm lake at dawn", "ERROR a storm over the sea"]


def literal(text):
    """JSON text with every real kept as the text it was written as."""
    return json.loads(text, parse_float=str)


def provider():
    return provider_conf("echo", plugin="error", **CONFIG_OPTIONS).replace(
        "default = true;", f'default = true; model = "{MODEL}";')


def configure(env):
    env.write_config(providers=[provider()])


def project_doc():
    return {"name": "numbers", "params": {"options": PROJECT_OPTIONS},
            "storyboards": [{"image_prompt": p, "params": {"options": STORYBOARD_OPTIONS}}
                            for p in PROMPTS]}


def echoed_options(message):
    """The options text the error plugin was given, from its message."""
    m = re.search(r"; options (\{.*\})$", message)
    assert m, message
    return literal(m[1])


def check_error_event(ev):
    assert ev["type"] == "error", ev
    assert echoed_options(ev["error"]) == WANT, ev["error"]


def check_generation_params(gp_text_or_obj):
    gp = literal(gp_text_or_obj) if isinstance(gp_text_or_obj, str) else gp_text_or_obj
    assert gp["options"] == WANT, gp
    return gp


def jansson17(v):
    """JSON text as jansson writes it by default (compact, sorted keys, reals
    with 17 significant digits): what cache keys were made of before reals
    kept their shortest text."""
    if isinstance(v, bool) or v is None:
        return json.dumps(v)
    if isinstance(v, float):
        t = format(v, ".17g")
        return t if ("." in t or "e" in t) else t + ".0"
    if isinstance(v, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{jansson17(v[k])}" for k in sorted(v)) + "}"
    if isinstance(v, list):
        return "[" + ",".join(jansson17(x) for x in v) + "]"
    return json.dumps(v, ensure_ascii=False)


def run_numbers(env):
    """Runs the project from a file; returns (events as literal JSON, project id)."""
    configure(env)
    path = os.path.join(env.path, "numbers.json")
    with open(path, "w") as f:
        json.dump(project_doc(), f)
    cp = env.t2i("run", path, "--json", check=3)
    lines = [literal(line) for line in cp.stdout.splitlines() if line.strip()]
    return lines, lines[0]["project_id"]


def test_run_events_keep_options_as_written(env):
    lines, _pid = run_numbers(env)
    errors = events_of(lines, "error")
    assert len(errors) == 1, lines
    check_error_event(errors[0])
    # The same event as stored for SSE replay.
    (body,), = env.sql("SELECT body FROM run_events WHERE type = 'error'")
    check_error_event(literal(body))


def test_database_keeps_options_as_written(env):
    _lines, pid = run_numbers(env)
    # generation_params of both images, the completed and the failed one.
    rows = env.sql("SELECT g.status, g.generation_params FROM generated_images g"
                   " JOIN storyboards s ON s.id = g.storyboard_id WHERE s.project_id = ?"
                   " ORDER BY s.position", pid)
    assert [r[0] for r in rows] == ["completed", "failed"]
    for _status, gp in rows:
        check_generation_params(gp)
    # The project's and the storyboards' own params.
    (params,), = env.sql("SELECT params FROM projects WHERE id = ?", pid)
    assert literal(params) == {"options": {"scale": "0.3"}}, params
    for (sb_params,) in env.sql("SELECT params FROM storyboards WHERE project_id = ?", pid):
        assert literal(sb_params) == {"options": {"strength": "0.7"}}, sb_params


def test_cli_json_keeps_options_as_written(env):
    _lines, pid = run_numbers(env)
    images = literal(env.t2i("images", pid, "--json", check=0).stdout)
    assert len(images) == 2
    for im in images:
        check_generation_params(im["generation_params"])
    status = literal(env.t2i("status", pid, "--json", check=0).stdout)
    assert status["params"] == {"options": {"scale": "0.3"}}, status


def test_cache_key_text_is_unchanged(env):
    """Cache keys still hash jansson's 17-digit text, so images stored by
    earlier versions, whose keys were made that way, are still found."""
    run_numbers(env)
    rows = env.sql("SELECT s.image_prompt, s.negative_prompt, g.generation_params, g.cache_key"
                   " FROM generated_images g JOIN storyboards s ON s.id = g.storyboard_id")
    assert len(rows) == 2
    for prompt, negative, gp_text, key in rows:
        gp = json.loads(gp_text)
        text = json.dumps(["echo", MODEL, prompt, negative or "", gp["width"], gp["height"],
                           jansson17(gp["options"])], separators=(",", ":"), ensure_ascii=False)
        assert "0.59999999999999998" in text
        assert key == hashlib.sha256(text.encode()).hexdigest(), (text, key)


def test_api_keeps_options_as_written(service):
    service.configure(providers=[provider()])
    service.start()
    r = service.post("/v1/projects", project_doc())
    assert r.status == 201, r
    created = literal(r.body)
    assert created["params"] == {"options": {"scale": "0.3"}}, r.body
    pid = created["id"]
    service.start_run(pid)
    msgs = service.events(pid)
    assert msgs[-1]["data"]["type"] == "done"
    errors = [m["data"] for m in msgs if m["data"]["type"] == "error"]
    assert len(errors) == 1
    check_error_event(errors[0])

    r = service.get(f"/v1/projects/{pid}/images")
    assert r.status == 200, r
    images = literal(r.body)["images"]
    assert sorted(im["status"] for im in images) == ["completed", "failed"]
    for im in images:
        check_generation_params(im["generation_params"])
        one = service.get(f"/v1/images/{im['id']}")
        assert one.status == 200, one
        check_generation_params(literal(one.body)["generation_params"])

    r = service.get(f"/v1/projects/{pid}")
    project = literal(r.body)
    assert project["params"] == {"options": {"scale": "0.3"}}, r.body
    for sb in project["storyboards"]:
        assert sb["params"] == {"options": {"strength": "0.7"}}, sb
        if sb["image"] is not None:
            check_generation_params(sb["image"]["generation_params"])


def test_every_json_text_goes_through_jsontext():
    """jansson's dump functions are called only by src/core/jsontext.c, and by the
    cache key (src/stage/stage.c: cache_options, which keeps the 17-digit text on
    purpose, and cache_key, whose array holds no real): any other call would
    write reals with 17 digits again."""
    from conftest import ROOT
    allowed = {"src/core/jsontext.c": 1, "src/stage/stage.c": 2}
    found = {}
    for top, _dirs, names in os.walk(ROOT):
        rel = os.path.relpath(top, ROOT)
        if rel.split(os.sep)[0] not in ("src", "plugins", "modules"):
            continue
        for name in sorted(names):
            if not name.endswith(".c"):
                continue
            with open(os.path.join(top, name)) as f:
                n = len(re.findall(r"\bjson_dump(?:s|b|f|fd|_file|_callback)\s*\(", f.read()))
            if n:
                found[os.path.join(rel, name)] = n
    assert found == allowed, found
