"""Runs that queue: beyond the runs the service processes at once (workers.max) a run is
accepted all the same, as 'queued', says so on its stream, starts when there is room in the
order runs were accepted (one run per project: fair across projects), can be cancelled while
it waits, and survives a restart.  No run is refused for want of room, whatever their number."""

import threading

from conftest import open_gate, read_trace, slow_service, storyboard_rows, wait_for


def start(service, pid):
    r = service.post(f"/v1/projects/{pid}/image-generation")
    assert r.status == 202, r
    return r.json()


def run_status(env, run_id):
    return env.sql("SELECT status FROM runs WHERE id = ?", run_id)[0][0]


def stream_types(service, run_id, n):
    """The first n messages of a run's stream (after `connected`), then closed."""
    c = service.sse(f"/v1/runs/{run_id}/events")
    try:
        assert c.status == 200
        first = c.next()
        assert first["data"]["type"] == "connected", first
        return [c.next()["data"] for _ in range(n)]
    finally:
        c.close()


def test_two_hundred_runs_at_once_are_queued_then_processed_in_turn(env, service):
    """200 projects, one run each, all started at once (from 8 threads) on a service that
    processes 4 at a time: every one is accepted (202, 196 or so of them queued), every
    one completes, and they start in the order they were queued."""
    slow_service(service, n_delay_ms=10, workers_max=4, trace=False)
    service.start()
    pids = [service.import_project([f"project {i} shot"]) for i in range(200)]
    answers = {}

    def starter(part):
        for pid in part:
            answers[pid] = start(service, pid)

    threads = [threading.Thread(target=starter, args=(pids[k::8],)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 200
    queued = [a for a in answers.values() if a["status"] == "queued"]
    assert len(queued) >= 150, len(queued)
    wait_for(lambda: env.sql("SELECT count(*) FROM runs WHERE status = 'completed'")[0][0]
             == 200, timeout=300, what="200 completed runs")
    # Turns: the runs started (their stage went 'processing', a time in ms) in the order
    # they were accepted (the order of their rows), a few of them in the same ms.
    started = [t for (t,) in env.sql(
        "SELECT st.started_at FROM runs r JOIN project_stages st ON st.project_id ="
        " r.project_id AND st.stage_type = 'image_generation' ORDER BY r.rowid")]
    assert started == sorted(started), started
    text = service.get("/metrics").body.decode()
    assert "t2istage_runs_queued 0" in text and "t2istage_runs_active 0" in text


def test_a_queued_run_says_so_and_can_be_cancelled(env, service):
    slow_service(service, workers_max=1)
    service.start()
    first = service.import_project(["GATE the first"])
    second = service.import_project(["waits its turn"])
    assert start(service, first)["status"] == "processing"
    answer = start(service, second)
    assert answer["status"] == "queued"
    assert run_status(env, answer["run_id"]) == "queued"
    head = stream_types(service, answer["run_id"], 2)
    assert head[0]["type"] == "stage_update" and head[0]["stage"]["status"] == "queued", head
    assert head[1]["type"] == "info" and "queued" in head[1]["message"], head
    # The project is busy while its run waits.
    r = service.patch(f"/v1/projects/{second}/storyboards/"
                      f"{storyboard_rows(env, second)[0][0]}", {"image_prompt": "x"})
    assert r.status == 409, r
    r = service.post(f"/v1/projects/{second}/image-generation/cancel", {})
    assert r.status == 202, r
    msgs = service.events(second)
    assert msgs[-1]["data"]["type"] == "done" and msgs[-1]["data"]["stage"]["status"] == \
        "cancelled", msgs[-1]
    assert run_status(env, answer["run_id"]) == "cancelled"
    open_gate(env)
    done = service.events(first)[-1]["data"]
    assert done["type"] == "done" and done["data"]["success_count"] == 1


def test_queued_runs_survive_a_restart(env, service):
    """kill -9 while one run is processed (held at a gate) and two wait: after the restart
    the first resumes and the other two still wait, then run, in their order."""
    trace = slow_service(service, workers_max=1)
    service.start()
    pids = [service.import_project([f"GATE run {i}"]) for i in range(3)]
    runs = [start(service, pid) for pid in pids]
    assert [a["status"] for a in runs] == ["processing", "queued", "queued"]
    wait_for(lambda: read_trace(trace), what="the first run's worker")
    service.kill9()
    service.start()
    assert [run_status(env, a["run_id"]) for a in runs] == ["processing", "queued", "queued"]
    head = stream_types(service, runs[2]["run_id"], 3)
    assert head[-1]["type"] == "info" and "still queued after a restart" in head[-1]["message"]
    open_gate(env)
    for pid in pids:
        done = service.events(pid)[-1]["data"]
        assert done["type"] == "done" and done["data"]["success_count"] == 1, done
    sb_project = {sid: pid for pid in pids for sid, _, _ in storyboard_rows(env, pid)}
    began = []
    for ev, _pid, sid, _ns in read_trace(trace):
        if ev == "start" and sb_project[sid] not in began:
            began.append(sb_project[sid])
    assert began == pids
