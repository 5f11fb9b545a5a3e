"""Streaming throughput with zero token delay, orchestratord against a bare SSE baseline.

    .venv/bin/python -m bench.bench_stream [--rounds 3] [--single-reps 3] [--agg-reps 1]
    .venv/bin/python -m bench.bench_stream --against REV [--no-baseline]

- single: one task of 4096 tokens; timed from ``POST /v1/tasks`` to the
  ``end`` event, reading raw SSE lines with httpx streaming (sync client).
  Target >= 20,000 tokens/s.
- aggregate: 100 tasks x 1000 tokens streamed at once by an async httpx
  client (raw byte chunks split into lines with ``bytes.split``: httpx's text
  line decoder made the client, not the server, the bottleneck); timed from
  the first POST to the last ``end``. Target >= 30,000 tokens/s.

The client is this process; every server is a subprocess. The baseline
(bench/baseline_app.py) emits the same number of pre-built events framed like
orchestratord's, one event per write (``baseline/1``) and 32 events per write
(``baseline/32``, the mock engine's batch: the ceiling for a batching server).
Rounds alternate which server goes first; figures are medians.

``--against REV`` adds ``orchq@REV``: commit ``REV`` checked out in a temporary
worktree and served the same way (this venv's ``orchq``, that tree first on
``PYTHONPATH``), side by side with this tree in every round, so a change of
the streaming path is measured against what it replaces.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench._common import Server, fmt, log, median, running, table, worktree

CONFIG = "stream.yaml"
SINGLE_TOKENS = 4096
AGG_STREAMS = 100
AGG_TOKENS = 1000
TARGET_SINGLE = 20_000.0
TARGET_AGG = 30_000.0
BASELINE_CHUNKS = (1, 32)


@dataclass
class StreamOutcome:
    tokens: int
    ended: bool
    tokens_out: int | None


def _body(session_id: str, max_tokens: int, seed: int) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "prompt": "Stream me a long poem about queues.",
        "max_tokens": max_tokens,
        "params": {"seed": seed, "determinism": "strict"},
    }


def _read_lines(lines: Any) -> StreamOutcome:
    tokens = 0
    last_event = ""
    for line in lines:
        if line.startswith("event: "):
            last_event = line[7:]
            if last_event == "token":
                tokens += 1
        elif last_event in ("end", "error") and line.startswith("data: "):
            data = json.loads(line[6:])
            return StreamOutcome(tokens, last_event == "end", data.get("tokens_out"))
    return StreamOutcome(tokens, False, None)


def single_stream(client: httpx.Client, session_id: str, n: int, seed: int, extra: str) -> float:
    """Tokens per second of one task, from the POST to its ``end`` event."""
    start = time.perf_counter()
    admitted = client.post("/v1/tasks", json=_body(session_id, n, seed))
    if admitted.status_code != 202:
        raise RuntimeError(f"admission answered {admitted.status_code}: {admitted.text}")
    url = admitted.json()["stream_url"] + extra
    with client.stream("GET", url) as response:
        response.raise_for_status()
        outcome = _read_lines(response.iter_lines())
    elapsed = time.perf_counter() - start
    if not outcome.ended or outcome.tokens != n:
        raise RuntimeError(f"stream ended badly: {outcome}")
    return n / elapsed


class _ByteLines:
    """Counts SSE lines from raw byte chunks (``bytes.split`` per chunk, no text decoding).

    The aggregate client reads 100 streams in one process; httpx's text line
    decoder costs several times the server's per-event work, so lines are
    split as bytes here (same result, far cheaper).
    """

    def __init__(self) -> None:
        self.tail = b""
        self.tokens = 0
        self.last_event = b""
        self.done: StreamOutcome | None = None

    def feed(self, chunk: bytes) -> bool:
        lines = (self.tail + chunk).split(b"\n")
        self.tail = lines.pop()
        for line in lines:
            if line.startswith(b"event: "):
                self.last_event = line[7:]
                if self.last_event == b"token":
                    self.tokens += 1
            elif self.last_event in (b"end", b"error") and line.startswith(b"data: "):
                data = json.loads(line[6:])
                self.done = StreamOutcome(
                    self.tokens, self.last_event == b"end", data.get("tokens_out")
                )
                return True
        return False


async def _one_async(
    posts: httpx.AsyncClient,
    streams: httpx.AsyncClient,
    session_id: str,
    n: int,
    seed: int,
    extra: str,
) -> StreamOutcome:
    admitted = await posts.post("/v1/tasks", json=_body(session_id, n, seed))
    if admitted.status_code != 202:
        raise RuntimeError(f"admission answered {admitted.status_code}: {admitted.text}")
    url = admitted.json()["stream_url"] + extra
    reader = _ByteLines()
    async with streams.stream("GET", url) as response:
        response.raise_for_status()
        async for chunk in response.aiter_raw():
            if reader.feed(chunk):
                break
    return reader.done or StreamOutcome(reader.tokens, False, None)


async def _aggregate(url: str, session_id: str, streams: int, n: int, extra: str) -> float:
    # Admissions reuse keep-alive connections; every stream gets a fresh connection
    # (no keep-alive in its pool), so a stream request can never race the server's
    # 5 s keep-alive timeout on a connection that sat idle after an admission.
    post_limits = httpx.Limits(max_connections=streams, max_keepalive_connections=streams)
    stream_limits = httpx.Limits(max_connections=streams + 8, max_keepalive_connections=0)
    async with (
        httpx.AsyncClient(base_url=url, limits=post_limits, timeout=120) as posts,
        httpx.AsyncClient(base_url=url, limits=stream_limits, timeout=120) as gets,
    ):
        start = time.perf_counter()
        outcomes = await asyncio.gather(
            *(_one_async(posts, gets, session_id, n, seed, extra) for seed in range(streams))
        )
        elapsed = time.perf_counter() - start
    bad = [o for o in outcomes if not o.ended or o.tokens != n]
    if bad:
        raise RuntimeError(f"{len(bad)} streams ended badly, e.g. {bad[0]}")
    return streams * n / elapsed


def aggregate_streams(url: str, session_id: str, streams: int, n: int, extra: str) -> float:
    return asyncio.run(_aggregate(url, session_id, streams, n, extra))


def _session(client: httpx.Client) -> str:
    created = client.post("/v1/sessions", json={"ttl_seconds": 3600})
    created.raise_for_status()
    session_id: str = created.json()["session_id"]
    return session_id


def _variants(kind: str) -> list[tuple[str, str]]:
    if kind.startswith("orchq"):
        return [(kind, "")]
    return [(f"baseline/{chunk}", f"&chunk={chunk}") for chunk in BASELINE_CHUNKS]


@contextmanager
def _contender(kind: str, trees: dict[str, Path]) -> Iterator[Server]:
    """A fresh server of ``kind``; ``orchq@REV`` is ``orchq`` serving that commit's tree."""
    tree = trees.get(kind)
    if tree is None:
        with running(kind, CONFIG) as server:
            yield server
        return
    with running("orchq", CONFIG, {"PYTHONPATH": str(tree)}) as server:
        yield server


def bench(
    rounds: int = 3,
    single_reps: int = 3,
    agg_reps: int = 1,
    against: dict[str, Path] | None = None,
    baseline: bool = True,
    *,
    single_tokens: int = SINGLE_TOKENS,
    agg_streams: int = AGG_STREAMS,
    agg_tokens: int = AGG_TOKENS,
) -> dict[str, Any]:
    """``against``: ``orchq@REV`` -> that commit's tree, served beside this one."""
    single: dict[str, list[float]] = {}
    aggregate: dict[str, list[float]] = {}
    trees = against or {}
    kinds = [
        *(["baseline"] if baseline else []),
        "orchq",
        *trees,
    ]
    for round_no in range(1, rounds + 1):
        order = kinds if round_no % 2 else kinds[::-1]
        for kind in order:
            with _contender(kind, trees) as server:
                with httpx.Client(base_url=server.url, timeout=60) as client:
                    session_id = _session(client)
                    for name, extra in _variants(kind):
                        single_stream(client, session_id, 256, 10_000, extra)  # warm-up
                        rates = [
                            single_stream(client, session_id, single_tokens, rep, extra)
                            for rep in range(single_reps)
                        ]
                        single.setdefault(name, []).extend(rates)
                        log(
                            f"stream round {round_no} {name}: single "
                            + ", ".join(f"{r:,.0f}" for r in rates)
                            + " tokens/s"
                        )
                for name, extra in _variants(kind):
                    rates = [
                        aggregate_streams(server.url, session_id, agg_streams, agg_tokens, extra)
                        for _ in range(agg_reps)
                    ]
                    aggregate.setdefault(name, []).extend(rates)
                    log(
                        f"stream round {round_no} {name}: aggregate "
                        + ", ".join(f"{r:,.0f}" for r in rates)
                        + " tokens/s"
                    )
    summary: dict[str, Any] = {
        "single_median": {k: median(v) for k, v in single.items()},
        "aggregate_median": {k: median(v) for k, v in aggregate.items()},
    }
    summary["pass_single"] = summary["single_median"]["orchq"] >= TARGET_SINGLE
    summary["pass_aggregate"] = summary["aggregate_median"]["orchq"] >= TARGET_AGG
    return {
        "params": {
            "rounds": rounds,
            "single_reps": single_reps,
            "agg_reps": agg_reps,
            "single_tokens": single_tokens,
            "agg_streams": agg_streams,
            "agg_tokens": agg_tokens,
        },
        "single": single,
        "aggregate": aggregate,
        "summary": summary,
    }


def render(result: dict[str, Any]) -> str:
    s = result["summary"]
    ours_single, ours_agg = s["single_median"]["orchq"], s["aggregate_median"]["orchq"]
    names = sorted(s["single_median"], key=lambda n: (not n.startswith("orchq"), n))
    rows = []
    for name in names:
        single = s["single_median"][name]
        agg = s["aggregate_median"][name]
        rows.append(
            [
                name,
                fmt(single, 0),
                f"{s['single_median']['orchq'] / single:.0%}",
                " / ".join(fmt(v, 0) for v in result["single"][name]),
                fmt(agg, 0),
                f"{s['aggregate_median']['orchq'] / agg:.0%}",
                " / ".join(fmt(v, 0) for v in result["aggregate"][name]),
            ]
        )
    p = result["params"]
    return "\n".join(
        [
            table(
                [
                    "server",
                    f"single {p['single_tokens']} tok/s (median)",
                    "orchq / this",
                    "single runs",
                    f"aggregate {p['agg_streams']}x{p['agg_tokens']} tok/s (median)",
                    "orchq / this",
                    "aggregate runs",
                ],
                rows,
            ),
            "",
            table(
                ["target", "orchq", "pass"],
                [
                    [
                        f"single stream >= {TARGET_SINGLE:,.0f} tok/s",
                        fmt(ours_single, 0),
                        "PASS" if s["pass_single"] else "FAIL",
                    ],
                    [
                        f"aggregate >= {TARGET_AGG:,.0f} tok/s",
                        fmt(ours_agg, 0),
                        "PASS" if s["pass_aggregate"] else "FAIL",
                    ],
                ],
            ),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Print the report; exit 0 when every target is met."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--single-reps", type=int, default=3)
    parser.add_argument("--agg-reps", type=int, default=1)
    parser.add_argument("--single-tokens", type=int, default=SINGLE_TOKENS)
    parser.add_argument("--agg-streams", type=int, default=AGG_STREAMS)
    parser.add_argument("--agg-tokens", type=int, default=AGG_TOKENS)
    parser.add_argument(
        "--against", default=None, metavar="REV", help="Also serve this commit (orchq@REV)."
    )
    parser.add_argument(
        "--no-baseline", action="store_true", help="Leave out the bare SSE baseline."
    )
    parser.add_argument("--json", default=None, help="Also write the results here.")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        against = None
        if args.against is not None:
            against = {f"orchq@{args.against}": stack.enter_context(worktree(args.against))}
        result = bench(
            args.rounds,
            args.single_reps,
            args.agg_reps,
            against,
            baseline=not args.no_baseline,
            single_tokens=args.single_tokens,
            agg_streams=args.agg_streams,
            agg_tokens=args.agg_tokens,
        )
    print(render(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)

    return 0 if result["summary"]["pass_single"] and result["summary"]["pass_aggregate"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
