"""The stream-format checks find each kind of broken stream, naming its ORCH ID."""

from __future__ import annotations

import pytest

from harness.fuzz.sse import RUN_STREAM, stream_problems

STARTED = (
    '{"task_id":"t","replica_id":"r1","engine":"mock","engine_version":"mock-1",'
    '"seed":7,"sampler_profile_version":"v1"}'
)
TOKEN = '{"index":0,"text":"a","token_id":1}'
END = '{"tokens_out":1,"finish_reason":"length","seed":7}'
GOOD = (
    f"retry: 3000\n\nid: 1\nevent: started\ndata: {STARTED}\n\n"
    f"id: 2\nevent: token\ndata: {TOKEN}\n\n: ping\n\nid: 3\nevent: end\ndata: {END}\n\n"
)


def test_a_conformant_stream_has_no_problem() -> None:
    assert stream_problems(GOOD) == []
    assert stream_problems(GOOD.replace("\n", "\r\n")) == []


def test_a_resumed_stream_starts_after_last_event_id() -> None:
    resumed = f"retry: 3000\n\nid: 3\nevent: end\ndata: {END}\n\n"
    assert stream_problems(resumed, after=2) == []
    assert stream_problems("retry: 3000\n\n", after=3) == []
    assert stream_problems(resumed)[0].startswith("ORCH-0072: ")


@pytest.mark.parametrize(
    ("broken", "req"),
    [
        (GOOD.replace("retry: 3000\n\n", ""), "ORCH-0073"),
        (GOOD + "retry: 10\n\n", "ORCH-0073"),
        (GOOD.replace("id: 2\n", "id: 1\n"), "ORCH-0072"),
        (GOOD.replace("id: 3\n", "id: 5\n"), "ORCH-0072"),
        (GOOD.replace("id: 2\n", ""), "ORCH-0071"),
        (GOOD.replace(f"data: {TOKEN}\n", f"data: {TOKEN}\ndata: {TOKEN}\n"), "ORCH-0071"),
        (GOOD.replace("event: token", "event: chunk"), "ORCH-0071"),
        (GOOD.replace(f"data: {TOKEN}", "data: [1]"), "ORCH-0071"),
        (GOOD.replace('"token_id":1', '"token_id":1,"logprob":0'), "ORCH-0076"),
        (GOOD.replace("event: end", "event: token").replace(END, TOKEN), "ORCH-0081"),
        (GOOD + f"id: 4\nevent: end\ndata: {END}\n\n", "ORCH-0081"),
    ],
)
def test_each_broken_stream_names_its_requirement(broken: str, req: str) -> None:
    problems = stream_problems(broken)
    assert any(p.startswith(f"{req}: ") for p in problems), (req, problems)


def test_a_stream_read_only_in_part_is_not_blamed_for_its_missing_end() -> None:
    head = GOOD.split("id: 3")[0]
    assert stream_problems(head, complete=False) == []
    assert stream_problems(head)[0].startswith("ORCH-0081: ")


RUN_GOOD = (
    "retry: 3000\n\n"
    'id: 1\nevent: run.started\ndata: {"run_id": "r", "definition": "d", "version": "1", '
    '"seed": 7}\n\n'
    'id: 2\nevent: step.started\ndata: {"step_id": "a", "attempt": 1, "task_id": "t"}\n\n'
    'id: 3\nevent: step.succeeded\ndata: {"step_id": "a", "task_id": "t", "output": "o"}\n\n'
    'id: 4\nevent: run.completed\ndata: {"run_id": "r"}\n\n'
)


def test_a_run_stream_is_read_with_its_own_events() -> None:
    assert stream_problems(RUN_GOOD, rules=RUN_STREAM) == []
    assert stream_problems(RUN_GOOD)[0].startswith("ORCH-0071: "), "not a task stream"


@pytest.mark.parametrize(
    ("name", "broken", "req"),
    [
        (
            "extra data field",
            RUN_GOOD.replace('"output": "o"', '"output": "o", "tokens_out": 2'),
            "ORCH-0351",
        ),
        ("missing data field", RUN_GOOD.replace(', "seed": 7', ""), "ORCH-0351"),
        ("no closing event", RUN_GOOD[: RUN_GOOD.index("id: 4")], "ORCH-0352"),
        ("a task's closing event", RUN_GOOD.replace("run.completed", "end"), "ORCH-0350"),
        ("ids with a gap", RUN_GOOD.replace("id: 3\n", "id: 5\n"), "ORCH-0350"),
    ],
)
def test_a_broken_run_stream_names_the_run_requirement(name: str, broken: str, req: str) -> None:
    problems = stream_problems(broken, rules=RUN_STREAM)
    assert problems, name
    assert problems[0].startswith(f"{req}: "), problems
