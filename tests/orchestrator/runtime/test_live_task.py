"""What a queued task holds in memory.

Every object the garbage collector tracks that a queued task keeps alive is
scanned again by each collection of the generation it reaches, so a backlog's
objects set the length of the collector's pauses (docs/design/performance.md,
``packed_queued_tasks``). A task
that only waits is packed as bytes, which the collector never tracks; its LiveTask
is made when something asks for it. A LiveTask makes its stream
channel, engine request and token list on first use, and a recovered task
resumes its stream from the persisted events.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from dataclasses import replace
from pathlib import Path

from orchestrator.config import Config, parse_config
from orchestrator.runtime import Orchestrator
from orchestrator.runtime.tasks import LiveTask, LiveTasks
from orchestrator.schemas import SessionCreate, TaskCreate
from orchestrator.store import EventRow, TaskRow
from tests.orchestrator.unit.test_store import task

SLOW = {"engine": "mock", "token_delay_ms": 60_000}


def _busy_config(tmp_path: Path) -> Config:
    return parse_config(
        {
            "database": str(tmp_path / "orchq.db"),
            "pools": [
                {
                    "pool_id": "default",
                    "queue_capacity": 10_000,
                    "replicas": [{"replica_id": "r1", **SLOW}, {"replica_id": "r2", **SLOW}],
                }
            ],
        }
    )


def test_a_queued_task_is_made_with_its_row_and_admission_time() -> None:
    row = TaskRow(
        "task_1", "sess_1", 7, "default", "batch", "a prompt", 16,
        {"seed": 3, "determinism": "strict", "temperature": 0.5, "top_p": 0.9}, 3, "queued",
        None, None, None, 0, None, None, 1_000, None, None,
    )  # fmt: skip
    live = LiveTasks()
    before = time.monotonic()
    live.add_queued(row)
    after = time.monotonic()
    time.sleep(0.02)

    lt = live["task_1"]

    assert lt.row == row and lt.row is not row
    assert before <= lt.admitted_at <= after  # when it was admitted, not when it was made
    assert live.get("task_1") is lt  # made once
    assert "task_1" in live and len(live) == 1
    assert live.pop("task_1") is lt and live.get("task_1") is None


def test_a_session_s_tasks_are_found_whether_made_or_not() -> None:
    live = LiveTasks()
    for task_id, session_id in [("a", "s1"), ("b", "s2"), ("c", "s1")]:
        live.add_queued(replace(task(), task_id=task_id, session_id=session_id))
    live.add_queued(replace(task(), task_id="d", session_id="s2", prompt="not s1 but s1"))
    made = live["c"]

    assert [lt.row.task_id for lt in live.of_session("s1")] == ["a", "c"]
    assert live.of_session("s1")[1] is made
    assert [lt.row.task_id for lt in live.made()] == ["a", "c", "d"]  # d named s1: checked
    assert live.pop("b") is None  # nothing was made for it


def test_a_row_marshal_cannot_encode_is_kept_as_it_is() -> None:
    live = LiveTasks()
    row = replace(task(), params={"seed": 1, "odd": object()})
    live.add_queued(row)
    assert live["t1"].row is row


def test_a_backlog_holds_nothing_the_collector_tracks(tmp_path: Path) -> None:
    async def run() -> float:
        orchestrator = Orchestrator(_busy_config(tmp_path))
        await orchestrator.start()
        try:
            session = orchestrator.create_session(SessionCreate()).session_id
            body = TaskCreate(session_id=session, prompt="p", max_tokens=2)
            for _ in range(20):  # fill the 8 slots, warm every code path up
                await orchestrator.admit(body)
            await asyncio.sleep(0)
            gc.collect()
            tracked = len(gc.get_objects())
            backlog = 2_000
            for _ in range(backlog // 100):
                await asyncio.gather(*(orchestrator.admit(body) for _ in range(100)))
            await asyncio.sleep(0)
            return (len(gc.get_objects()) - tracked) / backlog  # no collection in between
        finally:
            await orchestrator.stop()

    gc.disable()  # nothing untracks what a collection would
    try:
        per_task = asyncio.run(run())
    finally:
        gc.enable()
    assert per_task < 0.05, f"{per_task:.2f} tracked objects per queued task"


def test_a_queued_task_makes_its_channel_request_and_tokens_only_when_used(
    tmp_path: Path,
) -> None:
    config = _busy_config(tmp_path)

    async def run() -> list[tuple[bool, bool, bool]]:
        orchestrator = Orchestrator(config)
        await orchestrator.start()
        try:
            session = orchestrator.create_session(SessionCreate()).session_id
            body = TaskCreate(session_id=session, prompt="p", max_tokens=2)
            views = [await orchestrator.admit(body) for _ in range(12)]  # 8 slots, 4 queued
            await asyncio.sleep(0)
            queued = [orchestrator.live[v.task_id] for v in views[-4:]]
            made = [
                (lt._channel is not None, lt._request is not None, lt._sent is not None)
                for lt in queued
            ]
            assert queued[0].request.prompt == "p"  # made on demand, from the row
            assert queued[0].sent == [] and queued[0].channel.last_seq == 0
            return made
        finally:
            await orchestrator.stop()

    assert asyncio.run(run()) == [(False, False, False)] * 4


def test_a_resumed_task_goes_on_from_its_persisted_events() -> None:
    token = json.dumps({"index": 0, "text": "a", "token_id": 7})
    events = [EventRow(1, "started", "{}"), EventRow(2, "token", token)]
    lt = LiveTask.resumed(task(), events)
    assert lt.started_sent
    assert [(t.index, t.text, t.token_id) for t in lt.sent] == [(0, "a", 7)]
    assert lt.channel.last_seq == 2
