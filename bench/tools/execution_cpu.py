"""The runtime's CPU per task, without HTTP: admit N one-token tasks, run them all.

    .venv/bin/python -m bench.tools.execution_cpu [--tasks 10000] [--rounds 3]

In-process: an :class:`Orchestrator` on ``bench/configs/admission.yaml`` (two
zero-delay mock replicas) and a temporary database; N admissions are started at
once through ``Orchestrator.admit`` and the clock stops when the last task has
finished. Reports microseconds of wall time per task (admission, dispatch,
decode, persistence; the process is CPU-bound, so this is its CPU cost) and
SQLite commits per task, medians over rounds. It isolates what the admission
benchmark's background execution costs: under wrk, every microsecond here is
taken from admissions on the same event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench._common import BENCH_DIR, median, table
from orchestrator.config import parse_config
from orchestrator.runtime import Orchestrator
from orchestrator.schemas import SessionCreate, TaskCreate

CONFIG = BENCH_DIR / "configs" / "admission.yaml"


async def _one_round(tasks: int, database: Path) -> tuple[float, int]:
    raw: dict[str, Any] = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    raw["database"] = str(database)
    orchestrator = Orchestrator(parse_config(raw))
    await orchestrator.start()
    commits = 0

    def count(statement: str) -> None:
        nonlocal commits
        commits += statement == "COMMIT"

    try:
        session = orchestrator.create_session(SessionCreate()).session_id
        body = TaskCreate(session_id=session, prompt="Write a haiku about queues.", max_tokens=1)
        orchestrator.store._db.set_trace_callback(count)
        started = time.perf_counter()
        await asyncio.gather(*(orchestrator.admit(body) for _ in range(tasks)))
        while orchestrator.live:  # noqa: ASYNC110 (the runtime has no "all done" event)
            await asyncio.sleep(0.001)
        elapsed = time.perf_counter() - started
        orchestrator.store._db.set_trace_callback(None)
    finally:
        await orchestrator.stop()
    return elapsed, commits


def bench(tasks: int = 10_000, rounds: int = 3) -> dict[str, Any]:
    runs = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="orchq-bench-exec-") as tmp:
            elapsed, commits = asyncio.run(_one_round(tasks, Path(tmp) / "orchq.db"))
        runs.append({"us_per_task": 1e6 * elapsed / tasks, "commits_per_task": commits / tasks})
    return {
        "tasks": tasks,
        "runs": runs,
        "us_per_task": median([r["us_per_task"] for r in runs]),
        "commits_per_task": median([r["commits_per_task"] for r in runs]),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    result = bench(args.tasks, args.rounds)
    rows = [
        [i + 1, f"{r['us_per_task']:.0f}", f"{r['commits_per_task']:.3f}"]
        for i, r in enumerate(result["runs"])
    ]
    rows.append(["median", f"{result['us_per_task']:.0f}", f"{result['commits_per_task']:.3f}"])
    print(table(["round", "µs per task", "commits per task"], rows))


if __name__ == "__main__":
    main()
