"""The comfyui plugin through the real binary against tools/fakeprovider's ComfyUI: a workflow
file in API format with the prompt, negative prompt, size and seed put where the options say
(node-input paths or %placeholders%), the storyboard's own seed, prompt_id = the host's
idempotency key looked up before anything is queued, images fetched through /view, ComfyUI's
own words for an invalid workflow (HTTP 400, or 200 with node_errors), check-config catching
a bad workflow at load, cancel through the API, and the key kept out of everything."""

import hashlib
import json
import os
import re
import signal

import pytest

from conftest import (events_of, image_info, retry_conf, retry_warnings, wait_for,
                      warnings_of)
from provider_checks import assert_secret_nowhere, run_project, seen_class

CKPT = "v1-5-pruned-emaonly.safetensors"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
PATHS = {"prompt": "6.inputs.text", "negative_prompt": "7.inputs.text",
         "width": "5.inputs.width", "height": "5.inputs.height", "seed": "3.inputs.seed"}


def graph(text="", negative="", width=512, height=512, seed=0, ckpt=CKPT):
    """The default text-to-image workflow as ComfyUI's "Export (API)" writes it."""
    return {
        "3": {"class_type": "KSampler", "inputs": {
            "seed": seed, "steps": 20, "cfg": 7.0, "sampler_name": "euler",
            "scheduler": "normal", "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0],
            "negative": ["7", 0], "latent_image": ["5", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "5": {"class_type": "EmptyLatentImage",
              "inputs": {"width": width, "height": height, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": negative, "clip": ["4", 1]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "t2i", "images": ["8", 0]}},
    }


def write_workflow(env, doc, name="workflow.json"):
    path = os.path.join(env.path, name)
    with open(path, "w") as f:
        f.write(doc if isinstance(doc, str) else json.dumps(doc, indent=1))
    return path


def libconfig(v):
    if isinstance(v, dict):
        return "{ " + " ".join(f"{k} = {libconfig(x)};" for k, x in v.items()) + " }"
    if isinstance(v, bool):
        return "true" if v else "false"
    return json.dumps(v)


def comfyui(fake, workflow, name="cf", default=True, inputs=None, api_key=None, **options):
    opts = {"workflow": workflow, "poll_interval": 0.05, **options}
    if inputs is not None:
        opts["inputs"] = inputs
    text = f'{{ name = "{name}"; plugin = "comfyui"; api_url = "{fake.url}/comfyui";'
    if api_key is not None:
        text += f' api_key = "{api_key}";'
    if default:
        text += " default = true;"
    return text + f" options = {libconfig(opts)}; }}"


def seed_of(storyboard_id):
    return int.from_bytes(hashlib.sha256(b"t2istage seed " + storyboard_id.encode())
                          .digest()[:6], "big")


def by_op(fake, op):
    return [r for r in fake.requests() if r.get("op") == op]


def counters(fake):
    return fake._call("GET", "/_counters")


def test_inputs_by_node_paths_and_the_image_through_view(env, fake):
    wf = write_workflow(env, graph())
    env.write_config(providers=[comfyui(fake, wf, inputs=PATHS)], extra=retry_conf(1))
    rc, events, _, _ = run_project(env, [
        {"image_prompt": "a lighthouse at dusk", "negative_prompt": "fog",
         "params": {"ratio": "3:2", "resolution": "1k"}}], expect=0)
    (sub,) = by_op(fake, "submit")
    (e,) = events_of(events, "image_generated")
    pid = sub["body"]["prompt_id"]
    assert UUID.match(pid) and sub["task"] == pid
    assert sub["body"]["client_id"] == "t2istage"
    want = graph("a lighthouse at dusk", "fog", 1024, 680, seed_of(e["storyboard_id"]))
    assert sub["body"]["prompt"] == want        # 1024x682 rounded down to a multiple of 8
    # The prompt was looked up (not there yet) before it was queued.
    first = fake.requests()[:2]
    assert [r["path"] for r in first] == [f"/comfyui/history/{pid}", "/comfyui/queue"]
    assert all(r["op"] == "poll" for r in by_op(fake, "poll")) and \
        {r["task"] for r in by_op(fake, "poll")} == {pid}
    (view,) = by_op(fake, "view")
    assert view["path"] == "/comfyui/view?filename=t2i_00001_.png&subfolder=&type=output"
    img = e["image"]
    assert image_info(img["file_path"]) == ("image/png", 1024, 680)
    assert img["url"] == fake.url + view["path"]
    assert counters(fake)["tasks"][pid]["submissions"] == 1


def test_inputs_by_placeholders(env, fake):
    g = graph("a photo of %prompt%, detailed", "%negative_prompt%", "%width%", "%height%",
              "%seed%")
    wf = write_workflow(env, g)
    env.write_config(providers=[comfyui(fake, wf)], extra=retry_conf(1))
    rc, events, _, _ = run_project(env, [
        {"image_prompt": "a harbour", "params": {"ratio": "9:16", "resolution": "1k",
                                                 "options": {"seed": 1234}}}], expect=0)
    (sub,) = by_op(fake, "submit")
    assert sub["body"]["prompt"] == graph("a photo of a harbour, detailed", "", 576, 1024, 1234)
    (e,) = events_of(events, "image_generated")
    assert image_info(e["image"]["file_path"]) == ("image/png", 576, 1024)


def test_the_seed_is_the_storyboards_own(env, fake):
    wf = write_workflow(env, graph())
    env.write_config(providers=[comfyui(fake, wf, inputs=PATHS)], extra=retry_conf(1))
    rc, events, _, project = run_project(env, ["one", "two"], expect=0)
    env.t2i("run", project, "--no-cache", "--json", check=0)
    seeds = {}
    for r in by_op(fake, "submit"):
        seeds.setdefault(r["body"]["prompt"]["6"]["inputs"]["text"], set()).add(
            r["body"]["prompt"]["3"]["inputs"]["seed"])
    ids = {e["storyboard_index"]: e["storyboard_id"] for e in events_of(events, "image_generated")}
    # The same for each run of a storyboard, different between storyboards.
    assert seeds == {"one": {seed_of(ids[1])}, "two": {seed_of(ids[2])}}


def test_an_invalid_workflow_is_rejected_with_comfyuis_words(env, fake):
    wf = write_workflow(env, graph(ckpt="nope.safetensors"))
    env.write_config(providers=[comfyui(fake, wf, inputs=PATHS)],
                     extra=retry_conf(3, 0.01, 0.02))
    rc, events, _, _ = run_project(env, ["a kite"], expect=1)
    (err,) = events_of(events, "error")
    assert "comfyui: HTTP 400: Prompt outputs failed validation; node 4 " \
           "(CheckpointLoaderSimple): Value not in list: ckpt_name: 'nope.safetensors' not in" \
           in err["error"], err
    assert len(by_op(fake, "submit")) == 1 and retry_warnings(events) == []


def test_node_errors_with_http_200_are_rejected_and_the_prompt_dropped(env, fake):
    # Two outputs, one of them on a checkpoint the server lacks: ComfyUI queues the valid
    # one and answers 200 with node_errors for the other.
    g = graph()
    g["10"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "gone.ckpt"}}
    g["11"] = {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["10", 2]}}
    g["12"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": "b", "images": ["11", 0]}}
    wf = write_workflow(env, g)
    env.write_config(providers=[comfyui(fake, wf, inputs=PATHS)],
                     extra=retry_conf(3, 0.01, 0.02))
    rc, events, _, _ = run_project(env, ["a kite"], expect=1)
    (err,) = events_of(events, "error")
    assert "comfyui: HTTP 200: prompt refused; node 10 (CheckpointLoaderSimple): Value not " \
           "in list: ckpt_name: 'gone.ckpt'" in err["error"], err
    (sub,) = by_op(fake, "submit")
    assert sub["status"] == 200
    (cancel,) = by_op(fake, "cancel")
    assert cancel["path"] == f"/comfyui/api/jobs/{sub['task']}/cancel"
    assert counters(fake)["tasks"][sub["task"]]["cancels"] == 1


@pytest.mark.parametrize("kind, cls, words, paid", [
    ("exec_error", "rejected", "failed in node 3 (KSampler): RuntimeError: mat1", 1),
    ("oom", "transient", "torch.OutOfMemoryError: CUDA out of memory", 2),
    ("interrupted", "transient", "was interrupted at the server", 2),
    ("lost", "transient", "neither in the history nor in the queue", 2),
    ("http500", "transient", "HTTP 500", 2),
    ("malformed", "transient", "answer to /prompt without a usable prompt_id", 2),
    ("not_json", "transient", "answer to /prompt without a usable prompt_id", 2),
    ("not_image", "transient", "no image could be stored", 1),
])
def test_each_failure_is_its_class(env, fake, kind, cls, words, paid):
    fake.control({"faults": [{"kind": kind, "endpoint": "comfyui", "times": 1}]})
    wf = write_workflow(env, graph())
    env.write_config(providers=[comfyui(fake, wf, inputs=PATHS)],
                     extra=retry_conf(2, 0.01, 0.02))
    rc, events, cp, _ = run_project(env, ["a quiet street"])
    got, cause = seen_class(events)
    assert (got, words in cause) == (cls, True), (kind, got, cause)
    assert cause.startswith("comfyui: "), cause
    subs = by_op(fake, "submit")
    assert len(subs) == paid
    if kind == "lost":      # queued again under the same id: the idempotency key
        assert subs[0]["body"]["prompt_id"] == subs[1]["body"]["prompt_id"]
    if kind in ("oom", "interrupted"):   # failed at the server: a new id for the new prompt
        assert subs[0]["body"]["prompt_id"] != subs[1]["body"]["prompt_id"]


def test_a_prompt_longer_than_the_attempt_is_found_by_the_retry(env, fake):
    fake.control({"task_s": 4})
    wf = write_workflow(env, graph())
    env.write_config(providers=[comfyui(fake, wf, inputs=PATHS)], timeout=1.0,
                     extra=retry_conf(5, 0.01, 0.02))
    rc, events, cp, _ = run_project(env, ["a slow sunrise"], expect=0)
    assert [w for w in retry_warnings(events) if "timed out" in w["cause"]]
    (sub,) = by_op(fake, "submit")
    assert {r["task"] for r in by_op(fake, "poll")} == {sub["task"]}


def test_a_prompt_queued_by_an_attempt_that_died_before_its_checkpoint(env, fake):
    # The server queues the prompt but its answer never arrives: the attempt ends at its
    # deadline with nothing committed.  The retry finds the prompt by its prompt_id (the
    # idempotency key), commits it and waits for it: one prompt queued in all.
    fake.control({"task_s": 3, "faults": [{"kind": "queued_then_hang", "times": 1}]})
    wf = write_workflow(env, graph())
    env.write_config(providers=[comfyui(fake, wf, inputs=PATHS)], timeout=1.5,
                     extra=retry_conf(4, 0.01, 0.02))
    rc, events, cp, _ = run_project(env, ["an unanswered prompt"], expect=0)
    assert retry_warnings(events)
    (sub,) = by_op(fake, "submit")
    assert sub["fault"] == "queued_then_hang"
    assert counters(fake)["tasks"][sub["task"]]["submissions"] == 1
    assert len(events_of(events, "image_generated")) == 1


def test_the_last_attempts_budget_cancels_the_prompt_at_the_server(env, fake):
    fake.control({"task_s": 30})
    wf = write_workflow(env, graph())
    env.write_config(providers=[comfyui(fake, wf, inputs=PATHS)], timeout=1.0,
                     extra=retry_conf(1))
    rc, events, _, _ = run_project(env, ["an endless night"], expect=1)
    (err,) = events_of(events, "error")
    (sub,) = by_op(fake, "submit")
    assert f"comfyui: task {sub['task']} not finished: the image's time budget (1 s) is used " \
           "up on its last attempt; it was cancelled at the server" in err["error"], err
    assert counters(fake)["tasks"][sub["task"]]["cancels"] == 1
    # Given up for good: the committed prompt is cleared, no later attempt waits for it.
    assert env.sql("SELECT count(*) FROM provider_tasks") == [(0,)]


@pytest.mark.parametrize("jobs_api, how", [(True, "it was cancelled at the server"),
                                           (False, "it was interrupted at the server")])
def test_a_cancelled_run_cancels_its_prompt(service, fake, jobs_api, how):
    fake.control({"task_s": 60, "comfy_jobs_api": jobs_api})
    env = service.env
    wf = write_workflow(env, graph())
    service.configure(providers=[comfyui(fake, wf, inputs=PATHS)], extra=retry_conf(1))
    service.start()
    project = service.import_project(["a long exposure"])
    run = service.start_run(project)
    wait_for(lambda: counters(fake)["total"]["comfyui"]["polls"] >= 1, what="a poll")
    r = service.post(f"/v1/projects/{project}/image-generation/cancel")
    assert r.status == 202, r
    wait_for(lambda: counters(fake)["total"]["comfyui"]["cancels"] == 1, what="the cancel")
    wait_for(lambda: env.sql("SELECT status FROM runs WHERE id = ?", run) == [("cancelled",)],
             what="the run to end")
    cancels = by_op(fake, "cancel")
    (sub,) = by_op(fake, "submit")
    if jobs_api:
        assert [c["path"] for c in cancels] == [f"/comfyui/api/jobs/{sub['task']}/cancel"]
    else:   # an older server: the jobs API is not there, the running prompt is interrupted
        assert [c["path"] for c in cancels] == [f"/comfyui/api/jobs/{sub['task']}/cancel",
                                                "/comfyui/interrupt"]
        assert cancels[1]["body"] == {"prompt_id": sub["task"]}
    service.wait_log(f"comfyui: prompt {sub['task']} given up: {how}")


def test_an_older_server_drops_a_waiting_prompt_from_its_queue(service, fake):
    # Two prompts, one running and one waiting behind it, on a server without the jobs API.
    fake.control({"task_s": 60, "comfy_jobs_api": False})
    env = service.env
    wf = write_workflow(env, graph())
    service.configure(providers=[comfyui(fake, wf, inputs=PATHS).replace(
        "default = true;", "default = true; concurrency = 2;")], batch_size=1,
        extra=retry_conf(1))
    service.start()
    project = service.import_project(["first", "second"])
    service.start_run(project)
    wait_for(lambda: len(by_op(fake, "submit")) == 2 and len(by_op(fake, "poll")) >= 4,
             what="both prompts queued and polled")
    assert service.post(f"/v1/projects/{project}/image-generation/cancel").status == 202
    wait_for(lambda: counters(fake)["total"]["comfyui"]["cancels"] == 2, what="both cancels")
    paths = sorted(c["path"] for c in by_op(fake, "cancel") if "/api/jobs/" not in c["path"])
    assert paths == ["/comfyui/interrupt", "/comfyui/queue"]
    (delete,) = [c for c in by_op(fake, "cancel") if c["path"] == "/comfyui/queue"]
    (waiting,) = [r["task"] for r in by_op(fake, "submit") if r["task"] in delete["body"]["delete"]]
    service.wait_log(f"comfyui: prompt {waiting} given up: it was removed from the server's queue")


BAD_WORKFLOWS = [
    # (file contents, options.inputs, words)
    (None, None, "unable to open"),
    ("{ not json", None, "not JSON"),
    (json.dumps({"nodes": [], "links": []}), None, "not a workflow in API format: it is the UI "
                                                  "format"),
    (json.dumps(graph()), {"prompt": "16.inputs.text"}, 'the workflow has no node "16"'),
    (json.dumps(graph()), {"prompt": "6.inputs.txt"},
     'node "6" (CLIPTextEncode) has no such input'),
    (json.dumps(graph()), {"prompt": "6.inputs.clip"}, "it is a link to another node"),
    (json.dumps(graph()), None, "no place for the prompt"),
    (json.dumps(graph()), {"prompt": "6.inputs.text", "style": "1.inputs.x"},
     "options.inputs.style: unknown"),
]


@pytest.mark.parametrize("contents, inputs, words", BAD_WORKFLOWS)
def test_check_config_catches_a_bad_workflow(env, fake, contents, inputs, words):
    path = os.path.join(env.path, "workflow.json")
    if contents is not None:
        write_workflow(env, contents)
    env.write_config(providers=[comfyui(fake, path, inputs=inputs)])
    cp = env.t2i("check-config")
    assert cp.returncode == 1, (cp.stdout, cp.stderr)
    (line,) = cp.stderr.splitlines()
    assert re.match(rf"^t2istage: {re.escape(env.conf)}:\d+: providers\[0\]\.options: "
                    r"comfyui: ", line), line
    assert words in line, line
    # A run fails it the same way, without asking the server.
    rc, events, _, _ = run_project(env, ["a kite"], expect=1)
    assert words in events_of(events, "error")[0]["error"]
    assert fake.requests() == []


def test_check_config_accepts_a_good_workflow(env, fake):
    wf = write_workflow(env, graph())
    env.write_config(providers=[comfyui(fake, wf, inputs=PATHS)])
    cp = env.t2i("check-config", check=0)
    assert "is valid" in cp.stdout


def test_a_reload_with_a_bad_workflow_keeps_the_running_configuration(service, fake):
    env = service.env
    wf = write_workflow(env, graph())
    service.configure(providers=[comfyui(fake, wf, inputs=PATHS)])
    service.start()
    service.configure(providers=[comfyui(fake, wf, inputs={"prompt": "99.inputs.text"})])
    service.kill(signal.SIGHUP)
    service.wait_log("reload refused")
    assert 'the workflow has no node "99"' in service.log()


def test_key_appears_in_no_output_event_or_database_byte(env, fake):
    key = "cf-proxy-SECRET-9931"
    fake.control({"comfy_api_key": key, "comfy_auth_header": "X-Api-Key",
                  "faults": [{"kind": "exec_error", "match": "<bad>", "times": -1}]})
    wf = write_workflow(env, graph())
    env.write_config(providers=[comfyui(fake, wf, inputs=PATHS, api_key=key,
                                        auth_header="X-Api-Key")],
                     thumbnails=True, extra=retry_conf(2, 0.01, 0.02))
    rc, events, cp, project = run_project(env, ["scene <bad>", "a good scene"], expect=3)
    assert all(r["headers"].get("x-api-key") == key for r in fake.requests())
    assert "authorization" not in fake.requests()[0]["headers"]
    assert_secret_nowhere(env, key, [cp.stdout, cp.stderr], project)
    assert warnings_of(events) == []
