"""Diagnostic: what the event loop and the garbage collector do to admission latency.

    .venv/bin/python -m bench.diag_admission [--rounds 1] [--config admission.yaml]

The admission workload of bench/bench_admission.py (wrk -t1 -c64, 2 s warm-up,
then 10 s) against ``orchq serve`` variants from bench/_serve_diag.py: uvloop
(what ``orchq serve`` runs on) or the stdlib loop, GC on (every pause over
20 ms logged) or off. GC off is not a proposal; it shows how much of the tail
the collector causes while queued tasks pile up (the replicas are slower than
admission). Not a target check.
"""

from __future__ import annotations

import argparse
import re

from bench import bench_admission
from bench._common import WRK_DIR, ensure_wrk, fmt, log, median, run_wrk, running, table

KINDS = ("orchq+gclog", "orchq+nogc", "orchq+asyncio+gclog", "orchq+asyncio+nogc")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--config", default=bench_admission.CONFIG)
    args = parser.parse_args(argv)
    ensure_wrk()
    rows = []
    results: dict[str, list[tuple[float, float, float, list[int]]]] = {}
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
                int(m.group(1)) for m in map(re.compile(r"GC gen2 (\d+) ms").search, output) if m
            ]
            results.setdefault(kind, []).append((result.rps, result.p50_ms, result.p99_ms, pauses))
            log(
                f"diag round {round_no} {kind}: {result.rps:,.0f} req/s, "
                f"p99 {result.p99_ms:.1f} ms, gen2 pauses > 20 ms: {pauses}"
            )
    for kind, runs in results.items():
        pauses = [p for run in runs for p in run[3]]
        rows.append(
            [
                kind,
                fmt(median([r[0] for r in runs]), 0),
                fmt(median([r[1] for r in runs]), 2),
                fmt(median([r[2] for r in runs]), 2),
                "-" if "nogc" in kind else f"{len(pauses)} (max {max(pauses, default=0)} ms)",
            ]
        )
    print(table(["server", "req/s", "p50 ms", "p99 ms", "gen2 GC pauses > 20 ms"], rows))


if __name__ == "__main__":
    main()
