"""Diagnostic: what the event loop and the garbage collector do to admission latency.

    .venv/bin/python -m bench.tools.diag_admission [--rounds 1] [--config admission.yaml]

The admission workload of bench/bench_admission.py (wrk -t1 -c64, 2 s warm-up,
then 10 s) against ``orchq serve`` variants from bench/tools/serve_diag.py: uvloop
(what ``orchq serve`` runs on) or the stdlib loop, GC on (every pause over
20 ms logged) or off. GC off is not a proposal; it shows how much of the tail
the collector causes while queued tasks pile up (the replicas are slower than
admission). Every pause over 20 ms is reported by generation (a pause of
the middle generation under a backlog is what ``packed_queued_tasks`` removes:
docs/design/performance.md). Not a target check.
"""

from __future__ import annotations

import argparse
import re

from bench import bench_admission
from bench._common import WRK_DIR, ensure_wrk, fmt, log, median, run_wrk, running, table

_GC_PAUSE = re.compile(r"GC gen(\d) (\d+) ms")
"""What bench/tools/serve_diag.py prints for a collection over 20 ms, of any generation."""

KINDS = ("orchq+gclog", "orchq+nogc", "orchq+asyncio+gclog", "orchq+asyncio+nogc")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--config", default=bench_admission.CONFIG)
    args = parser.parse_args(argv)
    ensure_wrk()
    rows = []
    results: dict[str, list[tuple[float, float, float, list[tuple[int, int]]]]] = {}
    for round_no in range(1, args.rounds + 1):
        order = KINDS if round_no % 2 else KINDS[::-1]
        for kind in order:
            with running(kind, args.config) as server:
                session_id = bench_admission._session(server.url)
                script = WRK_DIR / "post_task.lua"
                run_wrk(server.url, script, [session_id], threads=1, connections=64, duration_s=2)
                mark = len(server.output)
                result = run_wrk(
                    server.url,
                    script,
                    [session_id],
                    threads=1,
                    connections=64,
                    duration_s=args.duration,
                )
                output = list(server.output)[mark:]
            pauses = [
                (int(m.group(1)), int(m.group(2)))
                for m in map(_GC_PAUSE.search, output)
                if m is not None
            ]
            results.setdefault(kind, []).append((result.rps, result.p50_ms, result.p99_ms, pauses))
            log(
                f"diag round {round_no} {kind}: {result.rps:,.0f} req/s, "
                f"p99 {result.p99_ms:.1f} ms, GC pauses > 20 ms: {_pauses(pauses)}"
            )
    for kind, runs in results.items():
        pauses = [p for run in runs for p in run[3]]
        rows.append(
            [
                kind,
                fmt(median([r[0] for r in runs]), 0),
                fmt(median([r[1] for r in runs]), 2),
                fmt(median([r[2] for r in runs]), 2),
                "-" if "nogc" in kind else _pauses(pauses),
            ]
        )
    print(table(["server", "req/s", "p50 ms", "p99 ms", "GC pauses > 20 ms"], rows))


def _pauses(pauses: list[tuple[int, int]]) -> str:
    """``gen1: 2 (max 124 ms)``, per generation; ``none`` if there were none."""
    by_generation: dict[int, list[int]] = {}
    for generation, ms in pauses:
        by_generation.setdefault(generation, []).append(ms)
    return (
        ", ".join(
            f"gen{generation}: {len(ms)} (max {max(ms)} ms)"
            for generation, ms in sorted(by_generation.items())
        )
        or "none"
    )


if __name__ == "__main__":
    main()
