"""The execution workload bench/tools/ab_instructions.py counts: admit N one-token tasks, run them.

    python bench/tools/execution_child.py N CONFIG

Run as a script with the tree under test first on ``PYTHONPATH``: it imports
only orchestratord's public runtime API, never the ``bench`` package, so the
same driver measures any commit. It runs on the event loop ``orchq serve``
runs on (uvloop, through ``orchestrator.server.run``), and waits for the end
by polling every 50 ms rather than every millisecond (as
bench/tools/execution_cpu.py does), so the instructions an idle poll costs stay a
negligible share of the count.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from orchestrator.config import parse_config
from orchestrator.runtime import Orchestrator
from orchestrator.schemas import SessionCreate, TaskCreate
from orchestrator.server import run as run_on_server_loop

POLL_S = 0.05


async def run(tasks: int, raw: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory(prefix="orchq-icount-") as tmp:
        raw["database"] = str(Path(tmp) / "orchq.db")
        orchestrator = Orchestrator(parse_config(raw))
        await orchestrator.start()
        try:
            created: Any = orchestrator.create_session(SessionCreate())
            # A model since the runtime answers with the wire models, a dict in older commits.
            session = created["session_id"] if isinstance(created, dict) else created.session_id
            body = TaskCreate(
                session_id=session, prompt="Write a haiku about queues.", max_tokens=1
            )
            await asyncio.gather(*(orchestrator.admit(body) for _ in range(tasks)))
            while orchestrator.live:  # noqa: ASYNC110 (the runtime has no "all done" event)
                await asyncio.sleep(POLL_S)
        finally:
            await orchestrator.stop()


if __name__ == "__main__":
    config = yaml.safe_load(Path(sys.argv[2]).read_text(encoding="utf-8"))
    run_on_server_loop(run(int(sys.argv[1]), config))
