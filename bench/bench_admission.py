"""Admission throughput: ``POST /v1/tasks`` under wrk, orchestratord against a bare baseline.

    .venv/bin/python -m bench.bench_admission [--rounds 3] [--duration 10] [--connections 64]
        [--neighbours 2]

Each round starts both servers fresh (temporary databases), one after the
other, alternating which goes first, and runs ``wrk -t1 -c64 -d10s --latency``
with bench/wrk/post_task.lua against each, after a short warm-up run. The
baseline (bench/baseline_app.py) decodes the JSON and does one SQLite insert.
Prints the ratio of the medians of req/s (orchestratord / baseline) and the
median p99. Targets (docs/design/performance.md): ratio >= 1.0x, p99 <= 25 ms.
``--neighbours N`` runs everything beside N CPU-bound processes: the host at
its slowest, on demand.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from bench._common import (
    WRK_DIR,
    WrkResult,
    busy_neighbours,
    ensure_wrk,
    fmt,
    log,
    median,
    run_wrk,
    running,
    table,
)

CONFIG = "admission.yaml"
SCRIPT = WRK_DIR / "post_task.lua"
TARGET_RATIO = 1.0
TARGET_P99_MS = 25.0


@dataclass
class AdmissionRun:
    server: str
    round: int
    wrk: WrkResult
    queue_depth: int | None = None
    running: int | None = None
    admitted_total: int | None = None


def _session(url: str) -> str:
    with httpx.Client(base_url=url, timeout=10) as client:
        created = client.post("/v1/sessions", json={"ttl_seconds": 3600})
        created.raise_for_status()
        session_id: str = created.json()["session_id"]
        probe = client.post(
            "/v1/tasks", json={"session_id": session_id, "prompt": "probe", "max_tokens": 1}
        )
        if probe.status_code != 202:
            raise RuntimeError(f"probe admission answered {probe.status_code}: {probe.text}")
    return session_id


def _pool_state(url: str) -> tuple[int, int, int]:
    with httpx.Client(base_url=url, timeout=30) as client:
        pool = client.get("/v1/pools/default").json()
        depth = sum(pool["queue_depth"].values())
        in_flight = sum(r["in_flight"] for r in pool["replicas"])
        admitted = 0
        for line in client.get("/metrics").text.splitlines():
            if line.startswith("orchq_tasks_admitted_total{"):
                admitted += int(float(line.rsplit(" ", 1)[1]))
    return depth, in_flight, admitted


def one_run(
    kind: str,
    round_no: int,
    *,
    duration_s: int,
    connections: int,
    warmup_s: int,
    config: str = CONFIG,
    extra_env: dict[str, str] | None = None,
    python: str | None = None,
    off: Sequence[str] = (),
) -> AdmissionRun:
    """One measured run of ``kind``; ``off``: the optimisations orchq runs without."""
    with running(kind, config, extra_env, python=python, off=off) as server:
        session_id = _session(server.url)
        if warmup_s > 0:
            run_wrk(
                server.url,
                SCRIPT,
                [session_id],
                threads=1,
                connections=connections,
                duration_s=warmup_s,
            )
        result = run_wrk(
            server.url,
            SCRIPT,
            [session_id],
            threads=1,
            connections=connections,
            duration_s=duration_s,
        )
        run = AdmissionRun(kind, round_no, result)
        if kind.startswith("orchq"):
            run.queue_depth, run.running, run.admitted_total = _pool_state(server.url)
        log(
            f"admission round {round_no} {kind}: {result.rps:,.0f} req/s, "
            f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, non-2xx {result.non_2xx}"
            + (f", queue depth after {run.queue_depth}" if run.queue_depth is not None else "")
        )
        return run


def bench(
    rounds: int = 3,
    duration_s: int = 10,
    connections: int = 64,
    warmup_s: int = 2,
    config: str = CONFIG,
    neighbours: int = 0,
) -> dict[str, Any]:
    """``neighbours``: CPU-bound processes running beside every round (a loaded host)."""
    ensure_wrk()
    runs: list[AdmissionRun] = []
    kinds = ["baseline", "orchq"]
    with busy_neighbours(neighbours):
        for round_no in range(1, rounds + 1):
            order = kinds if round_no % 2 else kinds[::-1]
            for kind in order:
                runs.append(
                    one_run(
                        kind,
                        round_no,
                        duration_s=duration_s,
                        connections=connections,
                        warmup_s=warmup_s,
                        config=config,
                    )
                )
    ours = [r for r in runs if r.server == "orchq"]
    base = [r for r in runs if r.server == "baseline"]
    per_round_ratio = [
        o.wrk.rps / b.wrk.rps for o in ours for b in base if o.round == b.round and b.wrk.rps > 0
    ]
    summary: dict[str, Any] = {
        "orchq_rps": median([r.wrk.rps for r in ours]),
        "orchq_p50_ms": median([r.wrk.p50_ms for r in ours]),
        "orchq_p99_ms": median([r.wrk.p99_ms for r in ours]),
        "baseline_rps": median([r.wrk.rps for r in base]),
        "baseline_p50_ms": median([r.wrk.p50_ms for r in base]),
        "baseline_p99_ms": median([r.wrk.p99_ms for r in base]),
        "ratio_of_medians": median([r.wrk.rps for r in ours]) / median([r.wrk.rps for r in base]),
        "median_round_ratio": median(per_round_ratio),
        "queue_depth_after": [r.queue_depth for r in ours],
        "non_2xx": sum(r.wrk.non_2xx for r in runs),
    }
    summary["pass_ratio"] = summary["ratio_of_medians"] >= TARGET_RATIO
    summary["pass_p99"] = summary["orchq_p99_ms"] <= TARGET_P99_MS
    return {
        "params": {
            "rounds": rounds,
            "duration_s": duration_s,
            "connections": connections,
            "threads": 1,
            "warmup_s": warmup_s,
            "neighbours": neighbours,
        },
        "runs": [
            {**asdict(r), "wrk": {k: v for k, v in asdict(r.wrk).items() if k != "raw"}}
            for r in runs
        ],
        "summary": summary,
    }


def render(result: dict[str, Any]) -> str:
    rows = []
    for run in result["runs"]:
        w = run["wrk"]
        rows.append(
            [
                run["round"],
                run["server"],
                fmt(w["rps"], 0),
                fmt(w["p50_ms"], 2),
                fmt(w["p90_ms"], 2),
                fmt(w["p99_ms"], 2),
                w["requests"],
                w["non_2xx"],
                "-" if run["queue_depth"] is None else run["queue_depth"],
            ]
        )
    s = result["summary"]
    out = [
        table(
            [
                "round",
                "server",
                "req/s",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "requests",
                "non-2xx",
                "queue depth after",
            ],
            rows,
        ),
        "",
        table(
            ["metric", "orchq (median)", "baseline (median)", "ratio / target", "pass"],
            [
                [
                    "req/s",
                    fmt(s["orchq_rps"], 0),
                    fmt(s["baseline_rps"], 0),
                    f"{s['ratio_of_medians']:.2f}x "
                    f"(per-round median {s['median_round_ratio']:.2f}x)"
                    f" / >= {TARGET_RATIO:.1f}x",
                    "PASS" if s["pass_ratio"] else "FAIL",
                ],
                [
                    "p99 ms",
                    fmt(s["orchq_p99_ms"], 2),
                    fmt(s["baseline_p99_ms"], 2),
                    f"<= {TARGET_P99_MS:.0f} ms",
                    "PASS" if s["pass_p99"] else "FAIL",
                ],
                ["p50 ms", fmt(s["orchq_p50_ms"], 2), fmt(s["baseline_p50_ms"], 2), "", ""],
            ],
        ),
    ]
    if result["params"].get("neighbours"):
        out += [
            "",
            f"Both servers ran beside {result['params']['neighbours']} CPU-bound neighbour "
            "process(es) (`--neighbours`): a loaded host.",
        ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Print the report; exit 0 when every target is met."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--neighbours",
        type=int,
        default=0,
        help="Run beside this many CPU-bound processes (2 on this 2-core host: its slow end).",
    )
    parser.add_argument("--json", default=None, help="Also write the results here.")
    parser.add_argument(
        "--config",
        default=CONFIG,
        help="orchestratord config under bench/configs/ (admission-paced.yaml: replicas at "
        "20 ms/token instead of zero delay; admission-busy.yaml: every slot held by a long "
        "generation, so admission is measured alone).",
    )
    args = parser.parse_args(argv)
    result = bench(
        args.rounds,
        args.duration,
        args.connections,
        args.warmup,
        args.config,
        args.neighbours,
    )
    print(render(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)

    return 0 if result["summary"]["pass_ratio"] and result["summary"]["pass_p99"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
