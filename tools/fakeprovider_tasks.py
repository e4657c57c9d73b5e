"""The paid and queued providers of tools/fakeprovider: Volcengine Ark (synchronous, errors
with codes), Alibaba DashScope (submit a task, then poll it) and ComfyUI (queue a prompt, then
look it up).  tools/fakeprovider calls install() with itself, which adds these routes,
settings, fault kinds and control endpoints to it.

Endpoints (the plugin's api_url is the part before /api or /prompt):
  POST /ark/api/v3/images/generations          Ark Seedream: Bearer key; model; size "WxH",
                                               "1K"/"2K"/"4K"; watermark; response_format;
                                               errors {"error": {code, message, param, type}}
  POST /dashscope/api/v1/services/aigc/text2image/image-synthesis
                                               Bearer key, X-DashScope-Async: enable; answers
                                               {"output": {"task_status": "PENDING", "task_id"}}
  GET  /dashscope/api/v1/tasks/{id}            PENDING, RUNNING, SUCCEEDED (results[].url),
                                               FAILED (code, message), CANCELED or UNKNOWN
  POST /comfyui/prompt                         {"prompt": <API workflow>, "client_id",
                                               "prompt_id"}; validated as ComfyUI does: 400
                                               {"error", "node_errors"}, or 200 with
                                               node_errors when some outputs are still valid
  GET  /comfyui/history/{id}, /comfyui/queue   {} until done / queue_running, queue_pending
  GET  /comfyui/view?filename&subfolder&type   the image's bytes (a real PNG)
  POST /comfyui/api/jobs/{id}/cancel           v0.26+ (setting comfy_jobs_api)
  POST /comfyui/queue {"delete": [ids]}, POST /comfyui/interrupt   older servers' cancel

Tasks run on the fake's clock: a DashScope task is PENDING for task_pending_s, RUNNING until
task_s after its submission, then done; its id is UNKNOWN task_ttl_s after submission.
ComfyUI runs one prompt at a time, each for task_s.  task_s may be longer than a worker's
deadline.

Control (not recorded):
  GET  /_counters   {"total": {provider: {submissions, polls, cancels}}, "tasks": {id:
                    {provider, prompt, submissions, polls, cancels, status}}}: submissions
                    (paid) and polls (free) counted apart, per task and in total
  POST /_forget     {"provider": "dashscope" | "comfyui"}: the provider forgets every task
                    (DashScope ids expired, a ComfyUI server restarted)
  POST /_reset      also clears the tasks and counters

Fault kinds (rules as in tools/fakeprovider; "match" is tested against the prompt):
  ark:        http500 http503 http429 content_policy auth quota and every Ark code in
              ARK_ERRORS (output_blocked, service_overdue, access_denied, model_not_open,
              endpoint_not_found, ipm_limit, quota_exceeded, set_limit, invalid_param)
  dashscope:  at submission http500 http503 http429 content_policy auth quota (Arrearage)
              timeout408, malformed not_json hang drop nginx_502; as the task's end
              task_failed task_blocked task_canceled task_unknown expired_url not_image
              empty_data; on a poll poll_http500 poll_malformed poll_drop
  comfyui:    at submission http500 malformed not_json hang drop, queued_then_hang (the
              prompt is queued, the answer never sent); as the prompt's end
              exec_error oom interrupted lost not_image empty_data; on a poll poll_http500
              poll_drop
"""

import hashlib
import json
import threading
import time
import uuid
from urllib.parse import parse_qs, unquote, urlsplit

core = None         # the fakeprovider module, set by install()

DEFAULTS = {
    "task_s": 0.2,                # a task's or prompt's run time: seconds or [min, max]
    "task_pending_s": 0,          # DashScope: PENDING this long before RUNNING
    "task_ttl_s": 86400,          # DashScope: a task id is known this long
    "comfy_checkpoints": ["sd_xl_base_1.0.safetensors", "v1-5-pruned-emaonly.safetensors"],
    "comfy_client_ids": True,     # v0.25+: the client's prompt_id is used
    "comfy_jobs_api": True,       # v0.26+: POST /api/jobs/{id}/cancel
    "comfy_api_key": None,        # a key a proxy in front of ComfyUI wants
    "comfy_auth_header": "authorization",   # where: "Bearer KEY" there, else KEY as is
}


def checks(c):
    return {
        "task_s": lambda v: c.is_number(v) or (isinstance(v, list) and len(v) == 2
                                               and all(map(c.is_number, v)) and v[0] <= v[1]),
        "task_pending_s": c.is_number,
        "task_ttl_s": c.is_number,
        "comfy_checkpoints": c.is_str_list,
        "comfy_client_ids": lambda v: isinstance(v, bool),
        "comfy_jobs_api": lambda v: isinstance(v, bool),
        "comfy_api_key": lambda v: v is None or (isinstance(v, str) and v != ""),
        "comfy_auth_header": lambda v: isinstance(v, str) and v != "",
    }


# ---------------------------------------------------------------------------
# Ark (synchronous): answered by tools/fakeprovider's generate() like the other image APIs.

def ark_error(status, code, message, type_, param=""):
    rid = "0217" + hashlib.sha256(message.encode()).hexdigest()[:20]
    return (status, {"error": {"code": code, "message": f"{message} Request id: {rid}",
                               "param": param, "type": type_}})


ARK_ERRORS = {
    "http500": ark_error(500, "InternalServiceError", "The service encountered an unexpected "
                         "internal error.", "InternalServerError"),
    "http503": ark_error(503, "ServerOverloaded", "The service is currently unable to handle "
                         "additional requests due to server overload.", "ServiceUnavailable"),
    "http429": ark_error(429, "RateLimitExceeded.EndpointRPMExceeded", "The request has "
                         "exceeded the rate limit of the endpoint.", "TooManyRequests"),
    "content_policy": ark_error(400, "InputTextSensitiveContentDetected", "The request failed "
                                "because the input text may contain sensitive information.",
                                "BadRequest"),
    "output_blocked": ark_error(400, "OutputImageSensitiveContentDetected", "The request "
                                "failed because the output image may contain sensitive "
                                "information.", "BadRequest"),
    "auth": ark_error(401, "AuthenticationError", "The API key or AK/SK in the request is "
                      "missing or invalid.", "Unauthorized"),
    "quota": ark_error(403, "AccountOverdueError", "The request failed because your account "
                       "has an overdue balance.", "Forbidden"),
    "service_overdue": ark_error(403, "OperationDenied.ServiceOverdue", "Your account has an "
                                 "overdue balance and the service is suspended.", "Forbidden"),
    "access_denied": ark_error(403, "AccessDenied", "You do not have access to the "
                               "requested resource.", "Forbidden"),
    "model_not_open": ark_error(404, "ModelNotOpen", "Your account has not activated the "
                                "model. Please activate the model service in the Ark Console.",
                                "NotFound"),
    "endpoint_not_found": ark_error(404, "InvalidEndpointOrModel.NotFound", "The model or "
                                    "endpoint does not exist or you do not have access to it.",
                                    "NotFound"),
    "ipm_limit": ark_error(429, "ModelAccountIpmRateLimitExceeded", "The request has exceeded "
                           "the images per minute limit of the model.", "TooManyRequests"),
    "quota_exceeded": ark_error(429, "QuotaExceeded", "The request has exceeded your quota.",
                                "TooManyRequests"),
    "set_limit": ark_error(429, "SetLimitExceeded", "Your account has reached the inference "
                           "limit you set.", "TooManyRequests"),
    "invalid_param": ark_error(400, "InvalidParameter", "A parameter specified in the request "
                               "is not valid.", "BadRequest"),
}

ARK_MODELS = {"doubao-seedream-3-0-t2i-250415": "3.0", "doubao-seedream-4-0-250828": "4.0",
              "doubao-seedream-4-5-251128": "4.5", "doubao-seedream-5-0-260128": "5.0",
              "seedream-4-0-250828": "4.0", "seedream-4-5-251128": "4.5"}
ARK_PRESETS = {"1K": 1024, "2K": 2048, "4K": 4096}


def ark_size_error(size, family):
    """Why Ark refuses size for a model family, or None."""
    w, h = size
    if family == "3.0":
        if not (512 <= w <= 2048 and 512 <= h <= 2048):
            return "each side must be between 512 and 2048 for this model"
    elif family in ("4.5", "5.0"):
        if not 2560 * 1440 <= w * h <= 4096 * 4096:
            return "the total pixels must be between 3686400 (2560x1440) and 16777216"
    elif not (1280 * 720 <= w * h <= 4096 * 4096 and 1 / 16 <= w / h <= 16):
        return "the total pixels must be between 921600 and 16777216"
    return None


class Ark:
    name = "ark"

    @staticmethod
    def parse(body, headers, state):
        key = core.bearer_key(headers)
        if not key or key in state.get("bad_keys"):
            return core.error_reply("ark", "auth")
        if key in state.get("quota_keys"):
            return core.error_reply("ark", "quota")

        def bad(message, param):
            status, doc = ark_error(400, "InvalidParameter", message, "BadRequest", param)
            return core.Reply(status, doc)

        if not isinstance(body, dict):
            return bad("The request body is not valid JSON.", "")
        model, prompt = body.get("model"), body.get("prompt")
        if not isinstance(model, str) or not model:
            return bad("The parameter `model` specified in the request is missing.", "model")
        family = ARK_MODELS.get(model, "4.0" if model.startswith("ep-") else None)
        if family is None:
            return core.error_reply("ark", "endpoint_not_found")
        if not isinstance(prompt, str) or not prompt:
            return bad("The parameter `prompt` specified in the request is missing.", "prompt")
        size = ark_parse_size(body.get("size"), family)
        why = "not WxH or 1K, 2K, 4K" if size is None else ark_size_error(size, family)
        if why:
            return bad(f"The parameter `size` specified in the request is not valid: {why}.",
                       "size")
        for field in ("watermark",):
            if field in body and not isinstance(body[field], bool):
                return bad(f"The parameter `{field}` must be a boolean.", field)
        fmt = body.get("response_format", "url")
        if fmt not in ("url", "b64_json"):
            return bad("The parameter `response_format` must be url or b64_json.",
                       "response_format")
        count = 1
        if body.get("sequential_image_generation") == "auto":
            opts = body.get("sequential_image_generation_options") or {}
            count = opts.get("max_images", 15) if isinstance(opts, dict) else 15
            if not core.is_int(count, 1, 15):
                return bad("max_images must be between 1 and 15.", "max_images")
        plan = core.Plan(prompt, size[0], size[1], count, fmt == "b64_json", body)
        plan.format = "jpeg"            # Ark answers JPEG
        return plan

    @staticmethod
    def success(plan, payloads):
        field = "b64_json" if plan.b64 else "url"
        size = f"{plan.width}x{plan.height}"
        return core.Reply(200, {"model": plan.body["model"], "created": int(time.time()),
                                "data": [{field: p, "size": size} for p in payloads],
                                "usage": {"generated_images": len(payloads),
                                          "output_tokens": 4096 * len(payloads),
                                          "total_tokens": 4096 * len(payloads)}})

    @staticmethod
    def empty(plan):
        return core.Reply(200, {"model": plan.body["model"], "created": int(time.time()),
                                "data": [], "usage": {"generated_images": 0}})


def ark_parse_size(size, family):
    if size is None:
        side = 1024 if family == "3.0" else 2048
        return side, side
    if isinstance(size, str) and size in ARK_PRESETS:
        return ARK_PRESETS[size], ARK_PRESETS[size]
    if isinstance(size, str) and "x" in size:
        w, _, h = size.partition("x")
        if w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0:
            return int(w), int(h)
    return None


# ---------------------------------------------------------------------------
# The tasks of DashScope and ComfyUI, and their counters


class Task:
    def __init__(self, provider, task_id, prompt, width, height, count, outcome, now, run_s):
        self.provider, self.id, self.prompt = provider, task_id, prompt
        self.width, self.height, self.count = width, height, count
        self.outcome = outcome          # None (success) or an end-of-task fault kind
        self.created = self.start = now
        self.end = now + run_s
        self.submissions, self.polls, self.cancels = 1, 0, 0
        self.cancelled = None           # "pending" or "running" when cancelled
        self.forgotten = False
        self.results = None             # the answer's images, made once
        self.number = 0
        self.extra = {}                 # provider-specific


class Book:
    """Every task of the fake, under one lock (handler threads share it)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.tasks = {}             # (provider, id) -> Task
            self.comfy_free_at = 0.0    # ComfyUI runs one prompt at a time
            self.comfy_number = 0
            self.files = {}             # ComfyUI (subfolder, filename, type) -> image spec

    def counters(self):
        with self.lock:
            total = {p: {"submissions": 0, "polls": 0, "cancels": 0}
                     for p in ("dashscope", "comfyui")}
            tasks = {}
            for (p, tid), t in self.tasks.items():
                for k in ("submissions", "polls", "cancels"):
                    total[p][k] += getattr(t, k)
                tasks[tid] = {"provider": p, "prompt": t.prompt, "submissions": t.submissions,
                              "polls": t.polls, "cancels": t.cancels,
                              "status": self.status_locked(t, time.monotonic())}
            return {"total": total, "tasks": tasks}

    def forget(self, provider):
        with self.lock:
            for (p, _), t in self.tasks.items():
                if p == provider:
                    t.forgotten = True

    def status_locked(self, t, now):
        if t.provider == "dashscope":
            return ds_status(t, now)
        return comfy_status(t, now)


BOOK = Book()


def run_seconds(state, key="task_s"):
    with state.lock:
        v = state.settings[key]
        return state.rng.uniform(*v) if isinstance(v, list) else v


def note(state, rec, op, task_id=None):
    """Marks the request's log record with what it was (submit, poll, cancel, ...)."""
    with state.lock:
        rec["op"] = op
        if task_id is not None:
            rec["task"] = task_id


def plain_fault_reply(kind):
    """The replies of the generic fault kinds at a submission; None for other kinds."""
    if kind in ("hang", "drop"):
        return kind
    if kind == "malformed":
        return core.Reply(200, b'{"output": {"task_')
    if kind == "not_json":
        return core.Reply(200, b"<!DOCTYPE html><html><body>Please sign in</body></html>",
                          "text/html; charset=utf-8")
    if kind == "nginx_502":
        return core.Reply(502, core.NGINX_502, "text/html")
    return None


def with_rule_headers(reply, rule):
    if isinstance(reply, core.Reply) and rule:
        if "status" in rule:
            reply.status = rule["status"]
        if "retry_after" in rule:
            reply.headers.append(("Retry-After", core.number_text(rule["retry_after"])))
    return reply


def task_images(state, t, base_url):
    """The image URLs of a finished task, made on first use (and then the same)."""
    if t.results is None:
        fmt = state.get("format")
        t.results = []
        for item in range(t.count):
            spec = None if t.outcome == "not_image" else core.image_spec(
                t.prompt, item, t.width, t.height, fmt)
            token = state.store(spec, expired=t.outcome == "expired_url")
            t.results.append(f"{base_url}/images/{token}.{core.IMAGE_TYPES[fmt][0]}")
    return t.results


# ---------------------------------------------------------------------------
# DashScope

DS_SUBMIT = "/dashscope/api/v1/services/aigc/text2image/image-synthesis"
DS_TASKS = "/dashscope/api/v1/tasks/"
DS_MODELS = ("wan2.2-t2i-flash", "wan2.2-t2i-plus", "wanx2.1-t2i-turbo", "wanx2.1-t2i-plus",
             "wan2.5-t2i-preview", "qwen-image", "qwen-image-plus")
QWEN_SIZES = ("1664*928", "1472*1140", "1328*1328", "1140*1472", "928*1664")


def ds_error(status, code, message):
    return (status, {"request_id": str(uuid.uuid5(uuid.NAMESPACE_URL, message)), "code": code,
                     "message": message})


DS_ERRORS = {
    "http500": ds_error(500, "InternalError", "An internal error has occured, please try "
                        "again later or contact service support."),
    "http503": ds_error(503, "InternalError.Timeout", "The service is temporarily "
                        "unavailable."),
    "http429": ds_error(429, "Throttling.RateQuota", "Requests rate limit exceeded, please "
                        "try again later."),
    "content_policy": ds_error(400, "DataInspectionFailed", "Input data may contain "
                               "inappropriate content."),
    "auth": ds_error(401, "InvalidApiKey", "Invalid API-key provided."),
    "quota": ds_error(400, "Arrearage", "Access denied, please make sure your account is in "
                      "good standing."),
    "timeout408": ds_error(408, "RequestTimeOut", "Request timed out, please try again "
                           "later."),
}
DS_OUTCOMES = {
    "task_failed": ("FAILED", "InternalError.Algo", "Algorithm process error."),
    "task_blocked": ("FAILED", "DataInspectionFailed", "Output data may contain inappropriate "
                     "content."),
    "task_canceled": ("CANCELED", None, None),
    "task_unknown": ("UNKNOWN", None, None),
}
DS_SUBMIT_KINDS = frozenset(DS_ERRORS) | {"malformed", "not_json", "hang", "drop", "nginx_502"}
DS_END_KINDS = frozenset(DS_OUTCOMES) | {"expired_url", "not_image", "empty_data"}
DS_POLL_KINDS = frozenset({"poll_http500", "poll_malformed", "poll_drop"})


def ds_reply(kind):
    status, doc = DS_ERRORS[kind]
    return core.Reply(status, doc)


def ds_status(t, now):
    if t.forgotten or (t.outcome == "task_unknown" and now >= t.end) or \
            now - t.created >= t.extra["ttl"]:
        return "UNKNOWN"
    if t.cancelled:
        return "CANCELED"
    if now < t.created + t.extra["pending"]:
        return "PENDING"
    if now < t.end:
        return "RUNNING"
    return DS_OUTCOMES[t.outcome][0] if t.outcome in DS_OUTCOMES else "SUCCEEDED"


def ds_auth(state, headers):
    key = core.bearer_key(headers)
    if not key or key in state.get("bad_keys"):
        return ds_reply("auth")
    return None


def ds_check(body):
    """(prompt, width, height, n) of a valid submission, or an error Reply."""
    def bad(message, code="InvalidParameter"):
        return core.Reply(400, ds_error(400, code, message)[1])

    if not isinstance(body, dict):
        return bad("Request body is not valid JSON.")
    model, inp = body.get("model"), body.get("input")
    params = body.get("parameters", {})
    if model not in DS_MODELS:
        return bad("Model not exist.")
    if not isinstance(inp, dict) or not isinstance(inp.get("prompt"), str) or not inp["prompt"]:
        return bad("Field required: input.prompt")
    neg = inp.get("negative_prompt", "")
    if not isinstance(neg, str) or len(neg) > 500:
        return bad("input.negative_prompt must be a string of at most 500 characters")
    if not isinstance(params, dict):
        return bad("parameters must be an object")
    n = params.get("n", 4)                      # billed per image: 4 unless told
    if not core.is_int(n, 1, 4):
        return bad("parameters.n must be between 1 and 4")
    seed = params.get("seed", 0)
    if not core.is_int(seed, 0, 2147483647):
        return bad("parameters.seed must be between 0 and 2147483647")
    size = params.get("size", "1328*1328" if model.startswith("qwen") else "1024*1024")
    w, _, h = size.partition("*") if isinstance(size, str) else ("", "", "")
    if not (w.isdigit() and h.isdigit()):
        return bad(f"The size is not valid: {size!r}")
    if model.startswith("qwen") and size not in QWEN_SIZES:
        return bad(f"The size is not match the allowed size {list(QWEN_SIZES)}")
    if not model.startswith("qwen") and not (512 <= int(w) <= 1440 and 512 <= int(h) <= 1440):
        return bad("The size is not valid: each side must be between 512 and 1440")
    return inp["prompt"], int(w), int(h), n


def ds_submit(state, body, headers, rec):
    refusal = ds_auth(state, headers)
    if refusal is None and core.bearer_key(headers) in state.get("quota_keys"):
        refusal = ds_reply("quota")
    if refusal is None and headers.get("x-dashscope-async") != "enable":
        refusal = core.Reply(403, ds_error(403, "AccessDenied", "current user api does not "
                                           "support synchronous calls")[1])
    note(state, rec, "submit")
    if refusal is not None:
        return None, refusal
    checked = ds_check(body)
    if isinstance(checked, core.Reply):
        return None, checked
    prompt, w, h, n = checked
    rule = state.take_fault("dashscope", prompt, kinds=DS_SUBMIT_KINDS | DS_END_KINDS)
    kind = rule["kind"] if rule else None
    if kind in DS_ERRORS:
        return kind, with_rule_headers(ds_reply(kind), rule)
    if kind in DS_SUBMIT_KINDS:
        return kind, with_rule_headers(plain_fault_reply(kind), rule)
    now = time.monotonic()
    t = Task("dashscope", str(uuid.uuid4()), prompt, w, h, 0 if kind == "empty_data" else n,
             kind, now, run_seconds(state))
    t.extra = {"pending": run_seconds(state, "task_pending_s"), "ttl": state.get("task_ttl_s"),
               "submitted": time.strftime("%Y-%m-%d %H:%M:%S.000")}
    with BOOK.lock:
        BOOK.tasks[("dashscope", t.id)] = t
    note(state, rec, "submit", t.id)
    return kind, core.Reply(200, {"request_id": str(uuid.uuid4()),
                                  "output": {"task_status": "PENDING", "task_id": t.id}})


def ds_poll(state, task_id, headers, base_url, rec):
    refusal = ds_auth(state, headers)
    note(state, rec, "poll", task_id)
    if refusal is not None:
        return None, refusal
    now = time.monotonic()
    with BOOK.lock:
        t = BOOK.tasks.get(("dashscope", task_id))
        if t is not None:
            t.polls += 1
    rule = state.take_fault("dashscope", t.prompt, kinds=DS_POLL_KINDS) if t else None
    kind = rule["kind"] if rule else None
    if kind == "poll_http500":
        return kind, ds_reply("http500")
    if kind == "poll_malformed":
        return kind, core.Reply(200, b'{"request_id": "x", "output": {"task_st')
    if kind == "poll_drop":
        return kind, "drop"
    rid = str(uuid.uuid4())
    with BOOK.lock:
        st = ds_status(t, now) if t is not None else "UNKNOWN"
    out = {"task_id": task_id, "task_status": st}
    if t is not None and st != "UNKNOWN":
        out["submit_time"] = t.extra["submitted"]
    if st == "SUCCEEDED":
        with BOOK.lock:
            urls = list(task_images(state, t, base_url))
        out["results"] = [{"orig_prompt": t.prompt, "actual_prompt": t.prompt, "url": u}
                          for u in urls]
        out["task_metrics"] = {"TOTAL": len(urls), "SUCCEEDED": len(urls), "FAILED": 0}
        return kind, core.Reply(200, {"request_id": rid, "output": out,
                                      "usage": {"image_count": len(urls)}})
    if st == "FAILED":
        _, out["code"], out["message"] = DS_OUTCOMES[t.outcome]
    if st in ("PENDING", "RUNNING"):
        out["task_metrics"] = {"TOTAL": t.count, "SUCCEEDED": 0, "FAILED": 0}
    return kind, core.Reply(200, {"request_id": rid, "output": out})


# ---------------------------------------------------------------------------
# ComfyUI

COMFY = "/comfyui"
LINK = "LINK"
SAMPLERS = ("euler", "euler_ancestral", "dpmpp_2m", "dpmpp_2m_sde", "ddim", "uni_pc")
SCHEDULERS = ("normal", "karras", "exponential", "simple", "sgm_uniform", "beta")
# Each known class's required inputs: LINK, "STRING", ("INT", lo, hi), ("FLOAT", lo, hi),
# ("ENUM", values) or "CHECKPOINT".
COMFY_NODES = {
    "CheckpointLoaderSimple": {"ckpt_name": "CHECKPOINT"},
    "CLIPTextEncode": {"text": "STRING", "clip": LINK},
    "EmptyLatentImage": {"width": ("INT", 16, 16384), "height": ("INT", 16, 16384),
                         "batch_size": ("INT", 1, 4096)},
    "KSampler": {"model": LINK, "seed": ("INT", 0, 2**64 - 1), "steps": ("INT", 1, 10000),
                 "cfg": ("FLOAT", 0.0, 100.0), "sampler_name": ("ENUM", SAMPLERS),
                 "scheduler": ("ENUM", SCHEDULERS), "positive": LINK, "negative": LINK,
                 "latent_image": LINK, "denoise": ("FLOAT", 0.0, 1.0)},
    "VAEDecode": {"samples": LINK, "vae": LINK},
    "SaveImage": {"images": LINK, "filename_prefix": "STRING"},
    "PreviewImage": {"images": LINK},
}
COMFY_OUTPUTS = ("SaveImage", "PreviewImage")
COMFY_SUBMIT_KINDS = frozenset({"http500", "malformed", "not_json", "hang", "drop",
                                "queued_then_hang"})
COMFY_END_KINDS = frozenset({"exec_error", "oom", "interrupted", "lost", "not_image",
                             "empty_data"})
COMFY_POLL_KINDS = frozenset({"poll_http500", "poll_drop"})


def node_error(kind, message, details, name):
    return {"type": kind, "message": message, "details": details,
            "extra_info": {"input_name": name}}


def check_input(name, spec, value, graph, state):
    """The error of one input, or None."""
    if spec == LINK:
        ok = isinstance(value, list) and len(value) == 2 and str(value[0]) in graph \
            and core.is_int(value[1], 0, 64)
        return None if ok else node_error("bad_linked_input", "Bad linked input, must be a "
                                          "length-2 list of [node_id, slot_index]", name, name)
    if isinstance(value, list):
        return None                     # a link in place of a widget value is allowed
    if spec == "STRING":
        return None if isinstance(value, str) else node_error(
            "invalid_input_type", "Failed to convert an input value to a STRING value",
            f"{name}, {value!r}", name)
    if spec == "CHECKPOINT":
        names = state.get("comfy_checkpoints")
        return None if value in names else node_error(
            "value_not_in_list", "Value not in list", f"{name}: {value!r} not in {names}", name)
    if spec[0] == "ENUM":
        return None if value in spec[1] else node_error(
            "value_not_in_list", "Value not in list",
            f"{name}: {value!r} not in {list(spec[1])}", name)
    typ, lo, hi = spec
    good = core.is_int(value, -2**64, 2**64) if typ == "INT" else \
        isinstance(value, (int, float)) and not isinstance(value, bool)
    if not good:
        return node_error("invalid_input_type", f"Failed to convert an input value to a {typ} "
                          "value", f"{name}, {value!r}", name)
    if value < lo:
        return node_error("value_smaller_than_min", f"Value {value} smaller than min of {lo}",
                          name, name)
    if value > hi:
        return node_error("value_bigger_than_max", f"Value {value} bigger than max of {hi}",
                          name, name)
    return None


def comfy_invalid(message, details=""):
    return core.Reply(400, {"error": {"type": "invalid_prompt", "message": message,
                                      "details": details, "extra_info": {}},
                            "node_errors": {}})


def depends_on(graph, node_id, seen=None):
    """node_id and every node it reads from."""
    seen = set() if seen is None else seen
    if node_id in seen or node_id not in graph:
        return seen
    seen.add(node_id)
    for v in graph[node_id]["inputs"].values():
        if isinstance(v, list) and len(v) == 2:
            depends_on(graph, str(v[0]), seen)
    return seen


def comfy_validate(graph, state):
    """(outputs that passed, node_errors) or an error Reply, as ComfyUI's validate_prompt."""
    if not isinstance(graph, dict):
        return comfy_invalid("Cannot execute because the prompt is not a JSON object.")
    for nid, node in graph.items():
        if not isinstance(node, dict) or "class_type" not in node:
            return comfy_invalid("Cannot execute because a node is missing the class_type "
                                 "property.", f"Node ID '#{nid}'")
        if node["class_type"] not in COMFY_NODES:
            return comfy_invalid(f"Cannot execute because node {node['class_type']} does not "
                                 "exist.", f"Node ID '#{nid}'")
        if not isinstance(node.get("inputs"), dict):
            return comfy_invalid("Cannot execute because a node has no inputs.",
                                 f"Node ID '#{nid}'")
    outputs = [nid for nid, n in graph.items() if n["class_type"] in COMFY_OUTPUTS]
    if not outputs:
        return core.Reply(400, {"error": {"type": "prompt_no_outputs", "message": "Prompt has "
                                          "no outputs", "details": "", "extra_info": {}},
                                "node_errors": []})
    bad = {}
    for nid, node in graph.items():
        errs = []
        for name, spec in COMFY_NODES[node["class_type"]].items():
            if name not in node["inputs"]:
                errs.append(node_error("required_input_missing", "Required input is missing",
                                       name, name))
            else:
                e = check_input(name, spec, node["inputs"][name], graph, state)
                if e:
                    errs.append(e)
        if errs:
            bad[nid] = {"errors": errs, "dependent_outputs": [], "class_type": node["class_type"]}
    good = []
    for out in outputs:
        failed = [nid for nid in depends_on(graph, out) if nid in bad]
        for nid in failed:
            bad[nid]["dependent_outputs"].append(out)
        if not failed:
            good.append(out)
    return good, bad


def trace(graph, node_id, input_name):
    """The node an input links to, or None."""
    v = graph.get(node_id, {}).get("inputs", {}).get(input_name)
    return str(v[0]) if isinstance(v, list) and len(v) == 2 and str(v[0]) in graph else None


def comfy_picture(graph, out):
    """(prompt text, width, height, count) of an output node's images."""
    decode = trace(graph, out, "images")
    sampler = trace(graph, decode, "samples") if decode else None
    if sampler is None:
        sampler = next((k for k, n in graph.items() if n["class_type"] == "KSampler"), None)
    latent = trace(graph, sampler, "latent_image") if sampler else None
    positive = trace(graph, sampler, "positive") if sampler else None
    if latent is None:
        latent = next((k for k, n in graph.items() if n["class_type"] == "EmptyLatentImage"), None)
    li = graph[latent]["inputs"] if latent else {}
    text = graph[positive]["inputs"].get("text", "") if positive else ""
    w, h, n = li.get("width", 512), li.get("height", 512), li.get("batch_size", 1)
    ints = all(isinstance(x, int) for x in (w, h, n))
    return (text if isinstance(text, str) else "", (w // 8) * 8 if ints else 512,
            (h // 8) * 8 if ints else 512, n if ints else 1)


def comfy_status(t, now):
    """pending, running, done, cancelled or gone."""
    if t.forgotten or (t.outcome == "lost" and now >= t.start):
        return "gone"
    if t.cancelled == "pending":
        return "cancelled"
    if t.cancelled == "running" or now >= t.end:
        return "done"
    return "running" if now >= t.start else "pending"


def comfy_auth(state, headers):
    key = state.get("comfy_api_key")
    if key is None:
        return None
    name = state.get("comfy_auth_header").lower()
    given = headers.get(name, "")
    if name == "authorization":
        given = core.bearer_key(headers)
    return None if given == key else core.Reply(401, b"401: Unauthorized", "text/plain")


def comfy_submit(state, body, headers, rec):
    note(state, rec, "submit")
    graph = body.get("prompt") if isinstance(body, dict) else None
    checked = comfy_validate(graph, state)
    if isinstance(checked, core.Reply):
        return None, checked
    good, bad = checked
    if not good:
        return None, core.Reply(400, {"error": {"type": "prompt_outputs_failed_validation",
                                                "message": "Prompt outputs failed validation",
                                                "details": "", "extra_info": {}},
                                      "node_errors": bad})
    given = body.get("prompt_id")
    pid = given if state.get("comfy_client_ids") and isinstance(given, str) and given \
        else str(uuid.uuid4())
    text, w, h, n = comfy_picture(graph, good[0])
    rule = state.take_fault("comfyui", text, kinds=COMFY_SUBMIT_KINDS | COMFY_END_KINDS)
    kind = rule["kind"] if rule else None
    if kind == "http500":
        return kind, core.Reply(500, b"500 Internal Server Error\n\nServer got itself in "
                                b"trouble", "text/plain")
    if kind in COMFY_SUBMIT_KINDS - {"queued_then_hang"}:
        return kind, with_rule_headers(plain_fault_reply(kind), rule)
    comfy_queue(state, pid, graph, good, text, w, h, n, kind, body.get("client_id"))
    note(state, rec, "submit", pid)
    if kind == "queued_then_hang":      # queued, but the answer never comes
        return kind, "hang"
    with BOOK.lock:
        number = BOOK.tasks[("comfyui", pid)].number
    return kind, core.Reply(200, {"prompt_id": pid, "number": number, "node_errors": bad})


def comfy_queue(state, pid, graph, good, text, w, h, n, kind, client_id):
    run_s = run_seconds(state)
    with BOOK.lock:
        old = BOOK.tasks.get(("comfyui", pid))
        now = time.monotonic()
        t = Task("comfyui", pid, text, w, h, 0 if kind == "empty_data" else n, kind, now, 0)
        t.start = max(now, BOOK.comfy_free_at)
        t.end = BOOK.comfy_free_at = t.start + run_s
        t.number = BOOK.comfy_number
        BOOK.comfy_number += 1
        t.extra = {"graph": graph, "outputs": good, "client_id": client_id}
        if old is not None:             # the same prompt_id again: queued again, paid again
            t.submissions, t.polls, t.cancels = old.submissions + 1, old.polls, old.cancels
        BOOK.tasks[("comfyui", pid)] = t


def comfy_outputs(state, t):
    """The history's outputs of a finished prompt, its files registered for /view."""
    if t.results is None:
        t.results = {}
        graph = t.extra["graph"]
        for out in t.extra["outputs"]:
            save = graph[out]["class_type"] == "SaveImage"
            prefix = graph[out]["inputs"].get("filename_prefix", "ComfyUI") if save else \
                "ComfyUI_temp_" + t.id[:5]
            images = []
            for item in range(t.count):
                name = f"{prefix}_{t.number * 16 + item + 1:05}_.png"
                typ = "output" if save else "temp"
                spec = None if t.outcome == "not_image" else core.image_spec(
                    t.prompt, item, t.width, t.height, "png")
                BOOK.files[("", name, typ)] = spec
                images.append({"filename": name, "subfolder": "", "type": typ})
            t.results[out] = {"images": images}
    return t.results


def comfy_history_entry(state, t, now):
    ms = int(time.time() * 1000)
    if t.cancelled == "running" or t.outcome == "interrupted":
        status = {"status_str": "error", "completed": False, "messages": [
            ["execution_start", {"prompt_id": t.id, "timestamp": ms}],
            ["execution_interrupted", {"prompt_id": t.id, "node_id": "3",
                                       "node_type": "KSampler", "executed": [],
                                       "timestamp": ms}]]}
        outputs = {}
    elif t.outcome in ("exec_error", "oom"):
        etype, emsg = ("torch.OutOfMemoryError", "CUDA out of memory. Tried to allocate 2.00 "
                       "GiB") if t.outcome == "oom" else ("RuntimeError", "mat1 and mat2 shapes "
                                                          "cannot be multiplied (154x2048 and "
                                                          "768x320)")
        status = {"status_str": "error", "completed": False, "messages": [
            ["execution_start", {"prompt_id": t.id, "timestamp": ms}],
            ["execution_error", {"prompt_id": t.id, "node_id": "3", "node_type": "KSampler",
                                 "executed": [], "exception_message": emsg,
                                 "exception_type": etype, "traceback": [],
                                 "current_inputs": {}, "current_outputs": {},
                                 "timestamp": ms}]]}
        outputs = {}
    else:
        status = {"status_str": "success", "completed": True, "messages": [
            ["execution_start", {"prompt_id": t.id, "timestamp": ms}],
            ["execution_success", {"prompt_id": t.id, "timestamp": ms}]]}
        outputs = comfy_outputs(state, t)
    return {"prompt": [t.number, t.id, t.extra["graph"], {"client_id": t.extra["client_id"]},
                       t.extra["outputs"]],
            "outputs": outputs, "status": status, "meta": {}}


def comfy_history(state, pid, rec):
    note(state, rec, "poll", pid)
    now = time.monotonic()
    with BOOK.lock:
        t = BOOK.tasks.get(("comfyui", pid))
        if t is not None:
            t.polls += 1
    rule = state.take_fault("comfyui", t.prompt, kinds=COMFY_POLL_KINDS) if t else None
    kind = rule["kind"] if rule else None
    if kind == "poll_http500":
        return kind, core.Reply(500, b"500 Internal Server Error", "text/plain")
    if kind == "poll_drop":
        return kind, "drop"
    with BOOK.lock:
        if t is None or comfy_status(t, now) != "done":
            return kind, core.Reply(200, {})
        return kind, core.Reply(200, {pid: comfy_history_entry(state, t, now)})


def comfy_queue_view(state, rec):
    note(state, rec, "queue")
    now = time.monotonic()
    running, pending = [], []
    with BOOK.lock:
        for (p, _), t in sorted(BOOK.tasks.items(), key=lambda kv: kv[1].number):
            if p != "comfyui":
                continue
            item = [t.number, t.id, t.extra["graph"], {"client_id": t.extra["client_id"]},
                    t.extra["outputs"]]
            st = comfy_status(t, now)
            if st == "running":
                running.append(item)
            elif st == "pending":
                pending.append(item)
    return None, core.Reply(200, {"queue_running": running, "queue_pending": pending})


def comfy_cancel_one(pid, allowed):
    """Cancels a prompt in the states allowed; True when it was."""
    now = time.monotonic()
    with BOOK.lock:
        t = BOOK.tasks.get(("comfyui", pid))
        if t is None:
            return False
        st = comfy_status(t, now)
        if st not in allowed:
            return False
        t.cancels += 1
        t.cancelled = st
        if st == "running":
            t.end = now
    return True


def comfy_post_queue(state, body, rec):
    note(state, rec, "cancel")
    ids = body.get("delete", []) if isinstance(body, dict) else []
    for pid in ids if isinstance(ids, list) else []:
        comfy_cancel_one(str(pid), ("pending",))
    return None, core.Reply(200, b"", "text/plain")


def comfy_interrupt(state, body, rec):
    note(state, rec, "cancel")
    pid = body.get("prompt_id") if isinstance(body, dict) else None
    now = time.monotonic()
    with BOOK.lock:
        running = [t.id for (p, _), t in BOOK.tasks.items()
                   if p == "comfyui" and comfy_status(t, now) == "running"]
    for r in running:
        if pid is None or pid == r:
            comfy_cancel_one(r, ("running",))
    return None, core.Reply(200, b"", "text/plain")


def comfy_jobs_cancel(state, pid, rec):
    note(state, rec, "cancel", pid)
    if not state.get("comfy_jobs_api"):
        return None, core.Reply(404, b"404: Not Found", "text/plain")
    if comfy_cancel_one(pid, ("pending", "running")):
        return None, core.Reply(200, {"success": True})
    return None, core.Reply(404, {"error": f"job {pid} not found or already finished"})


def comfy_view(state, query, rec):
    note(state, rec, "view")
    q = parse_qs(query)
    key = (q.get("subfolder", [""])[0], q.get("filename", [""])[0], q.get("type", ["output"])[0])
    with BOOK.lock:
        found = key in BOOK.files
        spec = BOOK.files.get(key)
    if not found:
        return None, core.Reply(404, b"404: Not Found", "text/plain")
    data, ctype = core.render(spec)
    return None, core.Reply(200, data, ctype)


def comfy_serve(state, method, path, query, body, headers, rec):
    refusal = comfy_auth(state, headers)
    if refusal is not None:
        note(state, rec, "refused")
        return None, refusal
    sub = path[len(COMFY):]
    if (method, sub) == ("POST", "/prompt"):
        return comfy_submit(state, body, headers, rec)
    if method == "GET" and sub.startswith("/history/"):
        return comfy_history(state, unquote(sub[len("/history/"):]), rec)
    if (method, sub) == ("GET", "/queue"):
        return comfy_queue_view(state, rec)
    if (method, sub) == ("POST", "/queue"):
        return comfy_post_queue(state, body, rec)
    if (method, sub) == ("POST", "/interrupt"):
        return comfy_interrupt(state, body, rec)
    if method == "POST" and sub.startswith("/api/jobs/") and sub.endswith("/cancel"):
        return comfy_jobs_cancel(state, unquote(sub[len("/api/jobs/"):-len("/cancel")]), rec)
    if (method, sub) == ("GET", "/view"):
        return comfy_view(state, query, rec)
    return None, core.Reply(404, b"404: Not Found", "text/plain")


# ---------------------------------------------------------------------------
# Hooks called by tools/fakeprovider

PREFIXES = ("/dashscope/", COMFY + "/")


def serve(state, method, raw_path, body, headers, base_url, rec):
    """Answers a request under PREFIXES: (fault kind or None, Reply or "hang" or "drop")."""
    parts = urlsplit(raw_path)
    path = parts.path
    if path == DS_SUBMIT and method == "POST":
        return ds_submit(state, body, headers, rec)
    if path.startswith(DS_TASKS) and method == "GET":
        return ds_poll(state, unquote(path[len(DS_TASKS):]), headers, base_url, rec)
    if path.startswith(COMFY + "/"):
        return comfy_serve(state, method, path, parts.query, body, headers, rec)
    return None, core.Reply(404, {"request_id": str(uuid.uuid4()), "code": "NotFound",
                                  "message": f"no endpoint {method} {path}"})


CONTROLS = ("/_counters", "/_forget")


def control(state, method, path, raw):
    """The control endpoints of the tasks; None for others (/_reset clears the tasks and
    is then answered by tools/fakeprovider)."""
    if (method, path) == ("POST", "/_reset"):
        BOOK.reset()
        return None
    if (method, path) == ("GET", "/_counters"):
        return core.Reply(200, BOOK.counters())
    if (method, path) == ("POST", "/_forget"):
        try:
            provider = json.loads(raw or b"{}").get("provider")
        except (ValueError, AttributeError):
            provider = None
        if provider not in ("dashscope", "comfyui"):
            return core.Reply(400, {"error": "provider must be dashscope or comfyui"})
        BOOK.forget(provider)
        return core.Reply(200, BOOK.counters())
    return None


def install(module):
    """Adds Ark, DashScope and ComfyUI to tools/fakeprovider (module)."""
    global core
    core = module
    module.DEFAULTS.update(DEFAULTS)
    module.SETTING_CHECKS.update(checks(module))
    module.ERROR_REPLIES["ark"] = ARK_ERRORS
    # The kinds of these two are answered here: take_fault() needs them listed.
    module.ERROR_REPLIES["dashscope"] = {k: DS_ERRORS.get(k) for k in
                                         DS_SUBMIT_KINDS | DS_END_KINDS | DS_POLL_KINDS}
    module.ERROR_REPLIES["comfyui"] = {k: None for k in
                                       COMFY_SUBMIT_KINDS | COMFY_END_KINDS | COMFY_POLL_KINDS}
    module.FAULT_KINDS = module.FAULT_KINDS.union(*module.ERROR_REPLIES.values())
    module.ROUTES["/ark/api/v3/images/generations"] = Ark
