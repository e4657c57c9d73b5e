"""A first end-to-end run through the real binary."""

from conftest import events_of, png_size


def test_run_completes(env):
    p = env.project(["a red fox", "a blue whale"])
    rc, events, _ = env.run_json(p, expect=0)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "done"
    assert events[-1]["data"]["success_count"] == 2
    for e in events_of(events, "image_generated"):
        assert png_size(e["image"]["file_path"]) == (e["image"]["width"], e["image"]["height"])
