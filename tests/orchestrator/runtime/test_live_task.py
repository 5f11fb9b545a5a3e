"""What a queued task holds in memory.

A backlog keeps one LiveTask per queued task alive through every young GC
collection; the objects it holds set the length of the middle-generation
pauses (bench/RESULTS.md, "Fewer objects per queued task"). Its stream channel,
engine request and token list are made on first use, and a recovered task
resumes its stream from the persisted events.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from orchestrator.config import parse_config
from orchestrator.runtime import Orchestrator
from orchestrator.runtime.tasks import LiveTask
from orchestrator.schemas import SessionCreate, TaskCreate
from orchestrator.store import EventRow
from tests.orchestrator.unit.test_store import task

SLOW = {"engine": "mock", "token_delay_ms": 60_000}


def test_a_queued_task_makes_its_channel_request_and_tokens_only_when_used(
    tmp_path: Path,
) -> None:
    config = parse_config(
        {
            "database": str(tmp_path / "orchq.db"),
            "pools": [
                {
                    "pool_id": "default",
                    "replicas": [{"replica_id": "r1", **SLOW}, {"replica_id": "r2", **SLOW}],
                }
            ],
        }
    )

    async def run() -> list[tuple[bool, bool, bool]]:
        orchestrator = Orchestrator(config)
        await orchestrator.start()
        try:
            session = orchestrator.create_session(SessionCreate())["session_id"]
            body = TaskCreate(session_id=session, prompt="p", max_tokens=2)
            views = [await orchestrator.admit(body) for _ in range(12)]  # 8 slots, 4 queued
            await asyncio.sleep(0)
            queued = [orchestrator.live[v["task_id"]] for v in views[-4:]]
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
