"""A fan-out under one parent run against a client starting the same child runs itself.

    .venv/bin/python -m bench.bench_children [--children 100] [--parallel 64] [--rounds 5]

The work is ``--children`` child runs of a 2-step chain (``a``, then ``b`` waiting
for ``a``, each a 4-token task), at most ``--parallel`` of them running at once,
on ``bench/configs/runs.yaml`` (two mock replicas of 64 slots, no token delay).
``--parallel`` is at most 64, the spec's bound on ``for_each.max_parallel``
(ORCH-0481). Two sides do it, each on a fresh ``orchq serve`` (real uvicorn on
loopback) with the same configuration:

- ``fan-out``: one parent run of a definition whose only step runs the child
  definition ``for_each`` item of a list input (spec section 12.8); the server
  creates each child and gathers their outputs. Done when the parent's event
  stream (``GET /v1/runs/{id}/events``) closes on ``run.completed``.
- ``client``: the same children as independent ``POST /v1/runs``, item by
  item, a new one as soon as fewer than ``--parallel`` are running (the first
  ``--parallel`` at once), each awaited on its own event stream as a client
  orchestrating by itself does. Done when every child's stream has closed on
  ``run.completed``.

Figures, per round: the wall time from the first POST to done; "start -> child
created", from the first POST (this machine's clock) to the ``created_at`` of
each of the first ``--parallel`` children created; "child ended -> next
created", from the j-th child's ``finished_at`` (in order of ending) to the
``created_at`` of the (``--parallel`` + j)-th child created, whose place it
freed; "fan-in", from the last child's ``finished_at`` to the fan-out step's
``finished_at`` (``fan-out``) or to the moment the client had read every
child's end (``client``). Server timestamps have millisecond resolution. Rounds
alternate which side goes first; figures are medians of rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx

from bench._api import completed_runs, expect, open_session, register, stamp_ms
from bench._common import (
    Figures,
    percentile,
    running,
    side_by_side,
    sides_table,
    write_json,
)

CONFIG = "runs.yaml"
CHILDREN = 100
PARALLEL = 64
MAX_PARALLEL = 64
"""The spec's bound on ``for_each.max_parallel`` (ORCH-0481)."""
MAX_ITEMS = 256
"""The spec's bound on the items of a ``list`` input (ORCH-0482)."""
TOKENS = 4
CHILD = "bench-child"
PARENT = "bench-fan-out"
SIDES = ("fan-out", "client")
_END = b"\nevent: run.completed\n"


@dataclass
class SideResult:
    wall_s: float
    start_ms: list[float]
    """One per child of the first ``parallel``: the first POST to its ``created_at``."""
    refill_ms: list[float]
    """One per later child: the end that freed its place to its ``created_at``."""
    fan_in_ms: float


def _child_definition() -> dict[str, Any]:
    steps = [
        {"id": "a", "prompt": "{{ inputs.item }}", "max_tokens": TOKENS},
        {"id": "b", "prompt": "{{ inputs.item }}", "max_tokens": TOKENS, "depends_on": ["a"]},
    ]
    return {"name": CHILD, "version": "1", "inputs": {"item": {"type": "string"}}, "steps": steps}


def _parent_definition(parallel: int) -> dict[str, Any]:
    fan_out = {
        "id": "fan",
        "run": {"definition": CHILD, "version": "1", "inputs": {}},
        "for_each": {"items": "{{ inputs.items }}", "as": "item", "max_parallel": parallel},
    }
    return {
        "name": PARENT,
        "version": "1",
        "inputs": {"items": {"type": "list"}},
        "steps": [fan_out],
    }


def _items(n: int) -> list[str]:
    return [f"item {i}" for i in range(n)]


async def _await_end(streams: httpx.AsyncClient, run: dict[str, Any]) -> None:
    """Read ``run``'s event stream to its end (the server closes it after the last event)."""
    async with streams.stream("GET", run["events_url"]) as response:
        text = await response.aread()
    if response.status_code != 200 or _END not in text:
        raise RuntimeError(f"run {run['run_id']} did not complete: {text[-300:]!r}")


def _timings(
    children: list[dict[str, Any]], parallel: int, started_ms: float
) -> tuple[list[float], list[float]]:
    """Start -> created of the first ``parallel`` children; end that freed a place -> the rest's.

    In order of creation: with at most ``parallel`` running, child ``parallel + j``
    can start only once ``j + 1`` children have ended.
    """
    created = sorted(stamp_ms(child["created_at"]) for child in children)
    ends = sorted(stamp_ms(child["finished_at"]) for child in children)
    refill = [created[parallel + j] - ends[j] for j in range(len(children) - parallel)]
    return [at - started_ms for at in created[:parallel]], refill


def _streams_client(url: str, parallel: int) -> httpx.AsyncClient:
    # Streams get fresh connections (no keep-alive) so none races the server's keep-alive
    # timeout after sitting idle; one per child that may be running.
    limits = httpx.Limits(max_connections=parallel, max_keepalive_connections=0)
    return httpx.AsyncClient(base_url=url, limits=limits, timeout=300)


async def _fan_out_side(url: str, n: int, parallel: int) -> SideResult:
    async with httpx.AsyncClient(base_url=url, timeout=300) as http:
        await register(http, _child_definition())
        await register(http, _parent_definition(parallel))
        body = {
            "session_id": await open_session(http),
            "definition": PARENT,
            "version": "1",
            "inputs": {"items": _items(n)},
        }
        started_ms = time.time() * 1000.0
        started = time.perf_counter()
        parent = expect(await http.post("/v1/runs", json=body), 202, "POST /v1/runs")
        async with _streams_client(url, 1) as streams:
            await _await_end(streams, parent)
        elapsed = time.perf_counter() - started
        (parent,) = await completed_runs(http, [parent["run_id"]])
        (step,) = parent["steps"]
        children = await completed_runs(http, step["children"])
        if len(children) != n:
            raise RuntimeError(f"the fan-out step created {len(children)} children, not {n}")
        start_ms, refill_ms = _timings(children, parallel, started_ms)
        last_end = max(stamp_ms(child["finished_at"]) for child in children)
        return SideResult(elapsed, start_ms, refill_ms, stamp_ms(step["finished_at"]) - last_end)


async def _client_side(url: str, n: int, parallel: int) -> SideResult:
    limits = httpx.Limits(max_connections=parallel, max_keepalive_connections=parallel)
    async with (
        httpx.AsyncClient(base_url=url, limits=limits, timeout=300) as posts,
        _streams_client(url, parallel) as streams,
    ):
        await register(posts, _child_definition())
        session_id = await open_session(posts)
        places = asyncio.Semaphore(parallel)
        body = {"session_id": session_id, "definition": CHILD, "version": "1"}

        async def child(item: str) -> str:
            try:
                answer = await posts.post("/v1/runs", json={**body, "inputs": {"item": item}})
                run = expect(answer, 202, "POST /v1/runs")
                await _await_end(streams, run)
                return str(run["run_id"])
            finally:
                places.release()

        started_ms = time.time() * 1000.0
        started = time.perf_counter()
        waiting = []
        for item in _items(n):  # a child as soon as a place is free, in item order
            await places.acquire()
            waiting.append(asyncio.ensure_future(child(item)))
        run_ids = list(await asyncio.gather(*waiting))
        fan_in_at = time.time() * 1000.0
        elapsed = time.perf_counter() - started
        children = await completed_runs(posts, run_ids)
        start_ms, refill_ms = _timings(children, parallel, started_ms)
        last_end = max(stamp_ms(child["finished_at"]) for child in children)
        return SideResult(elapsed, start_ms, refill_ms, fan_in_at - last_end)


def one_side(side: str, n: int, parallel: int) -> SideResult:
    """Side ``side`` once, on a fresh server."""
    with running("orchq", CONFIG) as server:
        work = _fan_out_side if side == "fan-out" else _client_side
        return asyncio.run(work(server.url, n, parallel))


def bench(rounds: int = 5, children: int = CHILDREN, parallel: int = PARALLEL) -> dict[str, Any]:
    if not 1 <= parallel <= MAX_PARALLEL:
        raise ValueError(f"--parallel must be 1 to {MAX_PARALLEL} (ORCH-0481), not {parallel}")

    def measure(side: str) -> Figures:
        result = one_side(side, children, parallel)
        return {
            "wall_s": result.wall_s,
            "start_p99_ms": percentile(result.start_ms, 0.99),
            "refill_p50_ms": percentile(result.refill_ms, 0.50),
            "refill_p99_ms": percentile(result.refill_ms, 0.99),
            "fan_in_ms": result.fan_in_ms,
        }

    def describe(figures: Figures) -> str:
        return (
            f"{figures['wall_s']:.3f} s, "
            f"start -> child created p99 {figures['start_p99_ms']:.1f} ms, "
            f"child ended -> next created p50 {figures['refill_p50_ms']:.1f} ms, "
            f"p99 {figures['refill_p99_ms']:.1f} ms, fan-in {figures['fan_in_ms']:.1f} ms"
        )

    per_round, summary = side_by_side("children", SIDES, rounds, measure, describe)
    return {
        "params": {
            "rounds": rounds,
            "children": children,
            "parallel": parallel,
            "tokens": TOKENS,
        },
        "rounds": per_round,
        "summary": summary,
        "ratio_wall_s": summary["fan-out"]["wall_s"] / summary["client"]["wall_s"],
    }


def render(result: dict[str, Any]) -> str:
    p = result["params"]
    labels = {"fan-out": "orchestratord fan-out", "client": "client-side runs"}
    corner = f"{p['children']} children, {p['parallel']} at once"
    columns = [
        ("start -> child created p99 ms", "start_p99_ms", 1),
        ("child ended -> next created p50 ms", "refill_p50_ms", 1),
        ("p99 ms", "refill_p99_ms", 1),
        ("fan-in ms", "fan_in_ms", 1),
    ]
    ratio = f"wall time, orchestratord fan-out over client-side runs: {result['ratio_wall_s']:.2f}x"
    return sides_table(result, labels, corner, ("wall s", "wall_s", 3), columns, ratio)


def main(argv: list[str] | None = None) -> int:
    """Print the report; exit 0 when both sides ran every round."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--children", type=int, default=CHILDREN, help="Child runs (items).")
    parser.add_argument(
        "--parallel",
        type=int,
        default=PARALLEL,
        help=f"Children running at once (for_each.max_parallel, 1 to {MAX_PARALLEL}).",
    )
    parser.add_argument("--json", default=None, help="Also write the results here.")
    args = parser.parse_args(argv)
    if not 1 <= args.parallel <= MAX_PARALLEL:
        parser.error(f"--parallel must be 1 to {MAX_PARALLEL} (ORCH-0481)")
    if not args.parallel <= args.children <= MAX_ITEMS:
        parser.error(f"--children must be --parallel to {MAX_ITEMS} (ORCH-0482)")
    result = bench(args.rounds, args.children, args.parallel)
    print(render(result))
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
