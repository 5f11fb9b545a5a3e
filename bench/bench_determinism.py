"""Strict determinism over HTTP: 64 seeds x 2 replicas x 32 tokens, timed.

    .venv/bin/python -m bench.bench_determinism [--rounds 3] [--seeds 64] [--tokens 32]

Each seed is admitted twice (strict mode, same prompt) into a pool of two
mock replicas; both streams are read as raw SSE lines and everything after the
``started`` event (token events with their ids, and ``end``) must be
byte-identical. The ``started`` event names the replica: a seed whose two runs
landed on the same replica is run again, one run at a time (at most 8 more),
until the other replica has served it too; the extra runs count in the time. Target: <= 5 s from the
first admission to the last verified stream. A negative control (replica r2
nondeterministic) must be caught.

Side by side in every round (alternating which goes first), the same client
verifies the bare baseline (bench/baseline_app.py: pre-built streams, no
engine, replicas named in turn): the ratio of the medians, orchestratord's
seconds over the baseline's, is what admission, dispatch, the mock engines and
the event journal add to the client's own work.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench._common import fmt, log, median, running, table

CONFIG = "determinism.yaml"
NEGATIVE_CONFIG = "determinism_negative.yaml"
TARGET_S = 5.0
MAX_EXTRA_RUNS_PER_SEED = 8
CONCURRENCY = 32


@dataclass
class Run:
    seed: int
    replica_id: str
    body: bytes
    """Every raw line after the ``started`` event, newline-joined."""


@dataclass
class Verdict:
    seconds: float
    runs: int
    extra_runs: int
    seeds_on_both: int
    mismatched_seeds: list[int] = field(default_factory=list)


async def _run_once(
    client: httpx.AsyncClient, gate: asyncio.Semaphore, session_id: str, seed: int, tokens: int
) -> Run:
    async with gate:
        admitted = await client.post(
            "/v1/tasks",
            json={
                "session_id": session_id,
                "prompt": "Write a haiku about determinism.",
                "max_tokens": tokens,
                "params": {"seed": seed, "determinism": "strict"},
            },
        )
        if admitted.status_code != 202:
            raise RuntimeError(f"admission answered {admitted.status_code}: {admitted.text}")
        replica_id = ""
        after_started: list[str] = []
        in_started = False
        seen_started = False
        async with client.stream("GET", admitted.json()["stream_url"]) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if not seen_started:
                    if line == "event: started":
                        in_started = True
                    elif in_started and line.startswith("data: "):
                        replica_id = json.loads(line[6:])["replica_id"]
                    elif in_started and line == "":
                        seen_started = True
                    continue
                after_started.append(line)
                ended = after_started[-2:-1] in (["event: end"], ["event: error"])
                if line.startswith("data: ") and ended:
                    break
        if not replica_id or not after_started or after_started[-2] != "event: end":
            raise RuntimeError(f"seed {seed}: stream did not end cleanly: {after_started[-3:]}")
        return Run(seed, replica_id, "\n".join(after_started).encode())


async def _verify(url: str, seeds: int, tokens: int) -> Verdict:
    limits = httpx.Limits(max_connections=CONCURRENCY + 4, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        created = await client.post("/v1/sessions", json={"ttl_seconds": 3600})
        created.raise_for_status()
        session_id = created.json()["session_id"]
        gate = asyncio.Semaphore(CONCURRENCY)
        start = time.perf_counter()
        runs = await asyncio.gather(
            *(
                _run_once(client, gate, session_id, seed, tokens)
                for seed in range(seeds)
                for _ in range(2)
            )
        )
        by_seed: dict[int, list[Run]] = defaultdict(list)
        for run in runs:
            by_seed[run.seed].append(run)
        total = len(runs)
        # A seed both of whose runs landed on one replica is run again, one run at a
        # time: with both replicas idle the pool's tie rotation alternates replicas,
        # so a repeat reaches the other one within a run or two (bounded anyway).
        for seed in range(seeds):
            for _ in range(MAX_EXTRA_RUNS_PER_SEED):
                if len({r.replica_id for r in by_seed[seed]}) >= 2:
                    break
                by_seed[seed].append(await _run_once(client, gate, session_id, seed, tokens))
                total += 1
        elapsed = time.perf_counter() - start
    mismatched = [s for s, runs in by_seed.items() if len({r.body for r in runs}) != 1]
    both = sum(1 for runs in by_seed.values() if len({r.replica_id for r in runs}) >= 2)
    return Verdict(elapsed, total, total - 2 * seeds, both, sorted(mismatched))


def verify(url: str, seeds: int, tokens: int) -> Verdict:
    return asyncio.run(_verify(url, seeds, tokens))


def bench(rounds: int = 3, seeds: int = 64, tokens: int = 32) -> dict[str, Any]:
    verdicts: list[Verdict] = []
    baseline: list[Verdict] = []
    for round_no in range(1, rounds + 1):
        kinds = ["orchq", "baseline"] if round_no % 2 else ["baseline", "orchq"]
        for kind in kinds:
            with running(kind, CONFIG) as server:
                verdict = verify(server.url, seeds, tokens)
            (verdicts if kind == "orchq" else baseline).append(verdict)
            log(
                f"determinism round {round_no} {kind}: {verdict.seconds:.2f} s, {verdict.runs} "
                f"runs ({verdict.extra_runs} extra), {verdict.seeds_on_both}/{seeds} seeds on "
                f"both replicas, {len(verdict.mismatched_seeds)} mismatched"
            )
    with running("orchq", NEGATIVE_CONFIG) as server:
        negative = verify(server.url, seeds, tokens)
    log(
        f"determinism negative control: {len(negative.mismatched_seeds)}/{seeds} seeds "
        f"mismatched (must be > 0)"
    )
    seconds = median([v.seconds for v in verdicts])
    baseline_s = median([v.seconds for v in baseline])
    all_ok = all(not v.mismatched_seeds and v.seeds_on_both == seeds for v in verdicts)
    summary = {
        "median_s": seconds,
        "baseline_median_s": baseline_s,
        "ratio": seconds / baseline_s if baseline_s > 0 else float("nan"),
        "identical_and_covered": all_ok,
        "negative_control_caught": len(negative.mismatched_seeds) > 0,
        "negative_mismatched": len(negative.mismatched_seeds),
    }
    summary["pass"] = seconds <= TARGET_S and all_ok and summary["negative_control_caught"]
    return {
        "params": {"rounds": rounds, "seeds": seeds, "tokens": tokens, "concurrency": CONCURRENCY},
        "rounds": [vars(v) for v in verdicts],
        "baseline": [vars(v) for v in baseline],
        "negative": vars(negative),
        "summary": summary,
    }


def _row(label: object, verdict: dict[str, Any], seeds: int) -> list[object]:
    return [
        label,
        fmt(verdict["seconds"], 2),
        verdict["runs"],
        verdict["extra_runs"],
        f"{verdict['seeds_on_both']}/{seeds}",
        len(verdict["mismatched_seeds"]),
    ]


def render(result: dict[str, Any]) -> str:
    p = result["params"]
    rows = [_row(i + 1, r, p["seeds"]) for i, r in enumerate(result["rounds"])]
    rows += [_row(f"{i + 1} baseline", r, p["seeds"]) for i, r in enumerate(result["baseline"])]
    rows.append(_row("negative control", result["negative"], p["seeds"]))
    s = result["summary"]
    return "\n".join(
        [
            table(
                [
                    "round",
                    "seconds",
                    "runs",
                    "extra runs",
                    "seeds on both replicas",
                    "mismatched seeds",
                ],
                rows,
            ),
            "",
            table(
                ["target", "orchq", "pass"],
                [
                    [
                        f"{p['seeds']} seeds x 2 replicas x {p['tokens']} tokens "
                        f"<= {TARGET_S:.0f} s, byte-identical",
                        f"{fmt(s['median_s'], 2)} s (median), identical: "
                        f"{s['identical_and_covered']}, negative control caught: "
                        f"{s['negative_control_caught']}",
                        "PASS" if s["pass"] else "FAIL",
                    ]
                ],
            ),
            "",
            f"orchq / baseline: {fmt(s['median_s'], 2)} s / {fmt(s['baseline_median_s'], 2)} s "
            f"= {s['ratio']:.2f}x (medians of {p['rounds']} rounds)",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Print the report; exit 0 when every target is met."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--json", default=None, help="Also write the results here.")
    args = parser.parse_args(argv)
    result = bench(args.rounds, args.seeds, args.tokens)
    print(render(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)

    return 0 if result["summary"]["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
