"""Runs against client-side orchestration: N diamond DAGs at once on zero-delay replicas.

    .venv/bin/python -m bench.bench_runs [--runs 1000] [--rounds 3] [--connections 64]

The work is N runs of a 5-step diamond (``a``; then ``b``, ``c`` and ``d``, each
waiting for ``a``; then ``e``, waiting for all three), every step a 4-token task
on ``bench/configs/runs.yaml`` (two mock replicas of 64 slots, no token delay).
Two sides do it, each on a fresh ``orchq serve`` (real uvicorn on loopback) with
the same configuration, from one async httpx client of ``--connections``
connections:

- ``runs``: the diamond registered once, N ``POST /v1/runs`` at once; the server
  starts each step when its dependencies succeeded (spec section 12). Done when
  ``GET /v1/runs?state=running`` lists none.
- ``tasks``: the same 5·N steps as plain tasks; the client starts a step when it
  has read the ``end`` of each of its dependencies' streams (``GET
  /v1/tasks/{id}/stream``), as a client orchestrating by itself does. Done when
  every ``e`` has ended.

Figures: runs completed per second (N over the time from the first POST to
done), and "dependency succeeded -> dependant started", the time from the
``finished_at`` of a step's task (the last of them for ``e``) to the
``created_at`` of the dependant's task, read from the tasks after the timed part
(server timestamps, millisecond resolution; four per run: ``b``, ``c``, ``d``,
``e``). Rounds alternate which side goes first; figures are medians of rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx

from bench._api import (
    completed_runs,
    expect,
    open_session,
    register,
    stamp_ms,
    until_no_run_running,
)
from bench._common import (
    Figures,
    percentile,
    running,
    side_by_side,
    sides_table,
    write_json,
)

CONFIG = "runs.yaml"
RUNS = 1000
CONNECTIONS = 64
TOKENS = 4
DEFINITION = "bench-diamond"
DIAMOND: dict[str, tuple[str, ...]] = {
    "a": (),
    "b": ("a",),
    "c": ("a",),
    "d": ("a",),
    "e": ("b", "c", "d"),
}
"""Each step and the steps it waits for, in definition order."""
SIDES = ("runs", "tasks")


@dataclass
class SideResult:
    runs_per_s: float
    dependency_ms: list[float]
    """One per dependant step: its dependencies' last ``finished_at`` to its ``created_at``."""


def _definition() -> dict[str, Any]:
    steps = [
        {"id": step, "prompt": "hello", "max_tokens": TOKENS, "depends_on": list(needs)}
        for step, needs in DIAMOND.items()
    ]
    return {"name": DEFINITION, "version": "1", "steps": steps}


async def _tasks(http: httpx.AsyncClient, task_ids: list[str]) -> dict[str, dict[str, Any]]:
    answers = await asyncio.gather(*(http.get(f"/v1/tasks/{task_id}") for task_id in task_ids))
    tasks = {
        task_id: expect(a, 200, "GET task") for task_id, a in zip(task_ids, answers, strict=True)
    }
    unfinished = [t for t in tasks.values() if t["state"] != "completed"]
    if unfinished:
        raise RuntimeError(f"{len(unfinished)} steps did not complete, e.g. {unfinished[0]}")
    return tasks


async def _dependency_ms(http: httpx.AsyncClient, diamonds: list[dict[str, str]]) -> list[float]:
    """The wait of each dependant step of ``diamonds`` (step -> its task's id)."""
    tasks = await _tasks(http, [task_id for diamond in diamonds for task_id in diamond.values()])
    waits = []
    for diamond in diamonds:
        for step, needs in DIAMOND.items():
            if needs:
                ready = max(stamp_ms(tasks[diamond[need]]["finished_at"]) for need in needs)
                waits.append(stamp_ms(tasks[diamond[step]]["created_at"]) - ready)
    return waits


async def _runs_side(url: str, n: int, limits: httpx.Limits) -> SideResult:
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=300) as http:
        await register(http, _definition())
        session_id = await open_session(http)
        body = {"session_id": session_id, "definition": DEFINITION, "version": "1"}
        started = time.perf_counter()
        created = await asyncio.gather(*(http.post("/v1/runs", json=body) for _ in range(n)))
        run_ids = [str(expect(answer, 202, "POST /v1/runs")["run_id"]) for answer in created]
        await until_no_run_running(http)
        elapsed = time.perf_counter() - started
        runs = await completed_runs(http, run_ids)
        diamonds = [{step["step_id"]: step["task_id"] for step in run["steps"]} for run in runs]
        return SideResult(n / elapsed, await _dependency_ms(http, diamonds))


async def _step_task(posts: httpx.AsyncClient, streams: httpx.AsyncClient, session_id: str) -> str:
    """Admit one step's task and wait for its ``end``, as a client does: on its stream."""
    body = {"session_id": session_id, "prompt": "hello", "max_tokens": TOKENS}
    admitted = expect(await posts.post("/v1/tasks", json=body), 202, "POST /v1/tasks")
    async with streams.stream("GET", admitted["stream_url"]) as response:
        text = await response.aread()  # the server closes the stream after end or error
    if response.status_code != 200 or b"\nevent: end\n" not in text:
        raise RuntimeError(f"task {admitted['task_id']} did not end: {text[-300:]!r}")
    return str(admitted["task_id"])


async def _client_diamond(
    posts: httpx.AsyncClient, streams: httpx.AsyncClient, session_id: str
) -> dict[str, str]:
    done: dict[str, asyncio.Task[str]] = {}

    async def step(needs: tuple[str, ...]) -> str:
        await asyncio.gather(*(done[need] for need in needs))
        return await _step_task(posts, streams, session_id)

    for name, needs in DIAMOND.items():  # definition order: dependencies first
        done[name] = asyncio.ensure_future(step(needs))
    return {name: await task for name, task in done.items()}


async def _tasks_side(url: str, n: int, limits: httpx.Limits) -> SideResult:
    # Streams get fresh connections (no keep-alive) so none races the server's keep-alive
    # timeout after sitting idle; admissions reuse theirs. Same budget as the runs side.
    stream_limits = httpx.Limits(
        max_connections=limits.max_connections, max_keepalive_connections=0
    )
    async with (
        httpx.AsyncClient(base_url=url, limits=limits, timeout=300) as posts,
        httpx.AsyncClient(base_url=url, limits=stream_limits, timeout=300) as streams,
    ):
        session_id = await open_session(posts)
        started = time.perf_counter()
        diamonds = await asyncio.gather(
            *(_client_diamond(posts, streams, session_id) for _ in range(n))
        )
        elapsed = time.perf_counter() - started
        return SideResult(n / elapsed, await _dependency_ms(posts, list(diamonds)))


def one_side(side: str, n: int, connections: int) -> SideResult:
    """Side ``side`` once, on a fresh server."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    with running("orchq", CONFIG) as server:
        work = _runs_side if side == "runs" else _tasks_side
        return asyncio.run(work(server.url, n, limits))


def bench(rounds: int = 3, runs: int = RUNS, connections: int = CONNECTIONS) -> dict[str, Any]:
    def measure(side: str) -> Figures:
        result = one_side(side, runs, connections)
        return {
            "runs_per_s": result.runs_per_s,
            "dependency_p50_ms": percentile(result.dependency_ms, 0.50),
            "dependency_p99_ms": percentile(result.dependency_ms, 0.99),
        }

    def describe(figures: Figures) -> str:
        return (
            f"{figures['runs_per_s']:,.1f} runs/s, "
            f"dependency -> dependant p50 {figures['dependency_p50_ms']:.1f} ms, "
            f"p99 {figures['dependency_p99_ms']:.1f} ms"
        )

    per_round, summary = side_by_side("runs", SIDES, rounds, measure, describe)
    return {
        "params": {"rounds": rounds, "runs": runs, "connections": connections, "tokens": TOKENS},
        "rounds": per_round,
        "summary": summary,
        "ratio_runs_per_s": summary["runs"]["runs_per_s"] / summary["tasks"]["runs_per_s"],
    }


def render(result: dict[str, Any]) -> str:
    p = result["params"]
    labels = {"runs": "orchestratord runs", "tasks": "client-side tasks"}
    corner = f"{p['runs']} diamonds, {p['connections']} connections"
    columns = [
        ("dependency -> dependant p50 ms", "dependency_p50_ms", 1),
        ("p99 ms (median)", "dependency_p99_ms", 1),
    ]
    ratio = f"runs/s, orchestratord runs over client-side tasks: {result['ratio_runs_per_s']:.2f}x"
    return sides_table(result, labels, corner, ("runs/s", "runs_per_s", 1), columns, ratio)


def main(argv: list[str] | None = None) -> int:
    """Print the report; exit 0 when both sides ran every round."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=RUNS, help="Diamonds at once (N).")
    parser.add_argument("--connections", type=int, default=CONNECTIONS)
    parser.add_argument("--json", default=None, help="Also write the results here.")
    args = parser.parse_args(argv)
    result = bench(args.rounds, args.runs, args.connections)
    print(render(result))
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
