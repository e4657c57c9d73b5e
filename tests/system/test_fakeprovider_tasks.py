"""tools/fakeprovider's Ark, DashScope and ComfyUI (tools/fakeprovider_tasks.py): their wire
formats, task lifetimes on the fake's clock, the counters of submissions and polls, and the
cancel endpoints, checked over HTTP without the binary."""

import time

from conftest import wait_for
from test_comfyui import graph
from test_fakeprovider import call, image_size

KEY = {"Authorization": "Bearer sk-test"}
ASYNC = {**KEY, "X-DashScope-Async": "enable"}
DS_SUBMIT = "/dashscope/api/v1/services/aigc/text2image/image-synthesis"
ARK = "/ark/api/v3/images/generations"


def jcall(fake, method, path, body=None, headers=None):
    import json
    status, hdrs, data = call(fake, method, path, body, headers)
    try:
        return status, json.loads(data)
    except ValueError:
        return status, data


def ds_body(prompt="a fox", **params):
    return {"model": "wan2.2-t2i-flash", "input": {"prompt": prompt}, "parameters": params}


def counters(fake):
    return jcall(fake, "GET", "/_counters")[1]


# ---------------------------------------------------------------------------- Ark

def test_ark_sizes_per_model_and_its_error_body(fake):
    ok = {"model": "doubao-seedream-4-5-251128", "prompt": "a fox", "size": "2560x1440"}
    status, doc = jcall(fake, "POST", ARK, ok, KEY)
    assert status == 200 and doc["data"][0]["size"] == "2560x1440"
    assert doc["usage"]["generated_images"] == 1
    status, _, data = call(fake, "GET", doc["data"][0]["url"].split(str(fake.port))[1])
    assert image_size(data) == ("jpeg", 2560, 1440)           # Ark answers JPEG
    status, doc = jcall(fake, "POST", ARK, {**ok, "size": "1024x1024"}, KEY)
    assert status == 400 and doc["error"]["code"] == "InvalidParameter"
    assert doc["error"]["param"] == "size" and "Request id: " in doc["error"]["message"]
    status, doc = jcall(fake, "POST", ARK, {**ok, "model": "doubao-seedream-3-0-t2i-250415",
                                            "size": "2560x1440"}, KEY)
    assert status == 400                                       # 512-2048 a side
    status, doc = jcall(fake, "POST", ARK, {**ok, "model": "nope"}, KEY)
    assert (status, doc["error"]["code"]) == (404, "InvalidEndpointOrModel.NotFound")
    fake.control({"quota_keys": ["sk-test"]})
    status, doc = jcall(fake, "POST", ARK, ok, KEY)
    assert (status, doc["error"]["code"]) == (403, "AccountOverdueError")


# ------------------------------------------------------------------------ DashScope

def test_dashscope_wants_async_and_bills_four_images_unless_told(fake):
    status, doc = jcall(fake, "POST", DS_SUBMIT, ds_body(), KEY)
    assert (status, doc["code"]) == (403, "AccessDenied")
    status, doc = jcall(fake, "POST", DS_SUBMIT, ds_body(), ASYNC)
    assert status == 200 and doc["output"]["task_status"] == "PENDING"
    task = doc["output"]["task_id"]
    wait_for(lambda: jcall(fake, "GET", f"/dashscope/api/v1/tasks/{task}", None, KEY)[1]
             ["output"]["task_status"] == "SUCCEEDED", what="the task")
    _, doc = jcall(fake, "GET", f"/dashscope/api/v1/tasks/{task}", None, KEY)
    assert len(doc["output"]["results"]) == 4 and doc["usage"] == {"image_count": 4}
    status, doc = jcall(fake, "POST", DS_SUBMIT, ds_body(size="2000*1000"), ASYNC)
    assert (status, doc["code"]) == (400, "InvalidParameter")
    fake.control({"quota_keys": ["sk-test"]})
    status, doc = jcall(fake, "POST", DS_SUBMIT, ds_body(), ASYNC)
    assert (status, doc["code"]) == (400, "Arrearage")


def test_dashscope_task_life_and_counters(fake):
    fake.control({"task_s": 0.6, "task_pending_s": 0.3, "task_ttl_s": 1.2})
    _, doc = jcall(fake, "POST", DS_SUBMIT, ds_body(n=1), ASYNC)
    task = doc["output"]["task_id"]
    seen = []
    while not seen or seen[-1] != "UNKNOWN":
        _, doc = jcall(fake, "GET", f"/dashscope/api/v1/tasks/{task}", None, KEY)
        st = doc["output"]["task_status"]
        if not seen or seen[-1] != st:
            seen.append(st)
        time.sleep(0.05)
    # The id is valid for task_ttl_s, then UNKNOWN like an id never made.
    assert seen == ["PENDING", "RUNNING", "SUCCEEDED", "UNKNOWN"]
    _, doc = jcall(fake, "GET", "/dashscope/api/v1/tasks/no-such-task", None, KEY)
    assert doc["output"] == {"task_id": "no-such-task", "task_status": "UNKNOWN"}
    c = counters(fake)
    assert c["total"]["dashscope"]["submissions"] == 1
    assert c["tasks"][task]["submissions"] == 1 and c["tasks"][task]["polls"] >= 4
    assert c["total"]["dashscope"]["polls"] == c["tasks"][task]["polls"]
    jcall(fake, "POST", "/_reset", {})
    assert counters(fake)["tasks"] == {}


# -------------------------------------------------------------------------- ComfyUI

def test_comfyui_queue_history_view_and_client_prompt_id(fake):
    fake.control({"task_s": 0.4})
    pid = "0b7f1c52-8a6e-4c61-9d1e-3d2a4f5e6b7c"
    g = graph("a fox", "", 640, 384, 7)
    status, doc = jcall(fake, "POST", "/comfyui/prompt", {"prompt": g, "prompt_id": pid})
    assert status == 200 and doc["prompt_id"] == pid and doc["node_errors"] == {}
    status, doc = jcall(fake, "POST", "/comfyui/prompt", {"prompt": g, "prompt_id": pid + "x"})
    # One at a time: the first runs, the second waits.
    _, q = jcall(fake, "GET", "/comfyui/queue")
    assert [i[1] for i in q["queue_running"]] == [pid]
    assert [i[1] for i in q["queue_pending"]] == [pid + "x"]
    assert jcall(fake, "GET", f"/comfyui/history/{pid}")[1] == {}
    wait_for(lambda: jcall(fake, "GET", f"/comfyui/history/{pid}")[1], what="the history")
    entry = jcall(fake, "GET", f"/comfyui/history/{pid}")[1][pid]
    assert entry["status"]["status_str"] == "success"
    (img,) = entry["outputs"]["9"]["images"]
    status, hdrs, data = call(fake, "GET", f"/comfyui/view?filename={img['filename']}"
                                           f"&subfolder=&type=output")
    assert (status, hdrs["content-type"], image_size(data)) == (200, "image/png",
                                                                 ("png", 640, 384))
    # The same prompt_id again is queued again, and counted as paid again.
    jcall(fake, "POST", "/comfyui/prompt", {"prompt": g, "prompt_id": pid})
    assert counters(fake)["tasks"][pid]["submissions"] == 2
    # An older server picks its own ids.
    fake.control({"comfy_client_ids": False})
    _, doc = jcall(fake, "POST", "/comfyui/prompt", {"prompt": g, "prompt_id": pid})
    assert doc["prompt_id"] != pid


def test_comfyui_validation_as_comfyui_answers_it(fake):
    status, doc = jcall(fake, "POST", "/comfyui/prompt", {"prompt": {"1": {"inputs": {}}}})
    assert status == 400 and doc["error"]["type"] == "invalid_prompt"
    g = graph()
    del g["9"]
    status, doc = jcall(fake, "POST", "/comfyui/prompt", {"prompt": g})
    assert (status, doc["error"]["type"]) == (400, "prompt_no_outputs")
    g = graph(width=99999)
    status, doc = jcall(fake, "POST", "/comfyui/prompt", {"prompt": g})
    assert (status, doc["error"]["type"]) == (400, "prompt_outputs_failed_validation")
    (err,) = doc["node_errors"]["5"]["errors"]
    assert err["type"] == "value_bigger_than_max" and doc["node_errors"]["5"][
        "dependent_outputs"] == ["9"]


def test_comfyui_cancel_endpoints(fake):
    fake.control({"task_s": 30})
    g = graph("a fox")
    ids = [jcall(fake, "POST", "/comfyui/prompt", {"prompt": g})[1]["prompt_id"]
           for _ in range(3)]
    assert jcall(fake, "POST", f"/comfyui/api/jobs/{ids[2]}/cancel", {})[0] == 200
    jcall(fake, "POST", "/comfyui/queue", {"delete": [ids[1]]})
    jcall(fake, "POST", "/comfyui/interrupt", {"prompt_id": ids[0]})
    _, q = jcall(fake, "GET", "/comfyui/queue")
    assert q == {"queue_running": [], "queue_pending": []}
    entry = jcall(fake, "GET", f"/comfyui/history/{ids[0]}")[1][ids[0]]
    assert entry["status"]["status_str"] == "error"
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"
    assert jcall(fake, "GET", f"/comfyui/history/{ids[1]}")[1] == {}
    assert [counters(fake)["tasks"][i]["cancels"] for i in ids] == [1, 1, 1]
    fake.control({"comfy_jobs_api": False})
    assert jcall(fake, "POST", f"/comfyui/api/jobs/{ids[0]}/cancel", {})[0] == 404
